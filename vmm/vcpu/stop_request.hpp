#pragma once
// Why a machine stops. Any thread may request a stop; the first request wins, later ones are
// ignored, and the owner is notified once (from the requesting thread).
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "vmm/base/error.hpp"

namespace kvmlet {

enum class StopKind {
    power_off,  // ACPI or KVM system event shutdown
    reset,      // i8042 reset, KVM system event reset
    halted,     // every vCPU halted with interrupts disabled: nothing can wake it
    crashed,    // triple fault, internal error, failed entry
    quit,       // the user typed Ctrl-A x
    signal,     // SIGINT/SIGTERM/SIGHUP to kvmlet
};

struct StopReason {
    StopKind kind;
    std::string message;  // first line: what happened; further lines: details (register dump)
};

ExitStatus exit_status(StopKind kind) noexcept;
char const* describe(StopKind kind) noexcept;

class StopRequest {
public:
    explicit StopRequest(std::function<void()> notify) : notify_(std::move(notify)) {}

    // Returns true for the request that won. noexcept: called on vCPU threads.
    bool request(StopKind kind, std::string message = {}) noexcept;
    bool requested() const noexcept { return requested_.load(std::memory_order_acquire); }
    std::optional<StopReason> reason() const;

private:
    std::function<void()> notify_;
    std::atomic<bool> requested_{false};
    mutable std::mutex mutex_;
    std::optional<StopReason> reason_;
};

}  // namespace kvmlet
