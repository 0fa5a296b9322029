#pragma once
// Where a character device's output goes: stdout, a log file, or a recorder in tests.
#include <cstddef>
#include <functional>
#include <span>

namespace kvmlet {

// Called on vCPU threads, one call per chunk of guest output, in guest order. Implementations must
// not throw and must not call back into the device that writes to them.
class ByteSink {
public:
    virtual ~ByteSink() = default;
    virtual void write(std::span<std::byte const> bytes) noexcept = 0;
};

}  // namespace kvmlet

namespace kvmlet {

// Output that must come after what another device has pending: `before()` runs first (the VMM
// has it flush the 8250's batched writes, which the guest made before this output).
class OrderedSink final : public ByteSink {
public:
    explicit OrderedSink(ByteSink& out) noexcept : out_(out) {}
    // Set before the guest runs; must not write to this sink.
    void run_before(std::function<void()> before) noexcept { before_ = std::move(before); }
    void write(std::span<std::byte const> bytes) noexcept override {
        if (before_) before_();
        out_.write(bytes);
    }

private:
    ByteSink& out_;
    std::function<void()> before_;
};

// Output nobody reads (--console none): dropped.
class DiscardSink final : public ByteSink {
public:
    void write(std::span<std::byte const>) noexcept override {}
};

}  // namespace kvmlet
