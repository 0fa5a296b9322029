#pragma once
// The timeline of one kvmlet process: when each phase of a boot was first reached (wall and CPU
// time since process start, see process_clock.hpp), and how many VM exits to userspace happened
// during each phase, by reason. Marked from any thread, lock-free; read at the end.
#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

#include "vmm/base/process_clock.hpp"

namespace kvmlet {

// In the order a boot reaches them.
enum class Phase : std::uint8_t {
    process_start,
    args_parsed,
    vm_created,
    memory_ready,
    devices_ready,  // before the kernel: its command line names the virtio-mmio devices
    kernel_loaded,
    first_kvm_run,
    first_console_byte,
    boot_timer,  // the guest wrote 123 to the boot-timer port: "I am up"
    shutdown_request,
    process_exit,
};
inline constexpr std::size_t phase_count = 11;

// Exits the VMM serves (ioeventfd writes and in-kernel devices never reach userspace).
enum class ExitReason : std::uint8_t {
    pio,
    mmio,
    hlt,
    shutdown,
    system_event,
    internal_error,
    fail_entry,
    signal,  // KVM_RUN interrupted by a kick (EINTR) or immediate_exit
    other,
};
inline constexpr std::size_t exit_reason_count = 9;

std::string_view name(Phase phase) noexcept;
std::string_view name(ExitReason reason) noexcept;

class Timeline {
public:
    Timeline() noexcept;  // process_start is reached at time 0
    Timeline(Timeline const&) = delete;
    Timeline& operator=(Timeline const&) = delete;

    // Records `phase` at `at` (now by default) the first time only. Exits counted from now on
    // belong to the latest phase reached.
    void mark(Phase phase) noexcept { mark(phase, since_process_start()); }
    void mark(Phase phase, ProcessTimes at) noexcept;
    void count_exit(ExitReason reason) noexcept;

    std::optional<ProcessTimes> reached(Phase phase) const noexcept;
    std::uint64_t exits(Phase phase, ExitReason reason) const noexcept;
    std::uint64_t total_exits(ExitReason reason) const noexcept;

private:
    struct Mark {
        std::atomic<bool> set{false};
        std::atomic<bool> writing{false};
        ProcessTimes at{};
    };
    std::array<Mark, phase_count> marks_;
    std::array<std::array<std::atomic<std::uint64_t>, exit_reason_count>, phase_count> exits_{};
    std::atomic<std::uint8_t> current_{0};
};

// The process's timeline, which kvmlet's parts mark as a boot goes on.
Timeline& process_timeline() noexcept;

}  // namespace kvmlet
