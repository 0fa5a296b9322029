#pragma once
// Where a character device's output goes: stdout, a log file, or a recorder in tests.
#include <cstddef>
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

// Output nobody reads (--console none): dropped.
class DiscardSink final : public ByteSink {
public:
    void write(std::span<std::byte const>) noexcept override {}
};

}  // namespace kvmlet
