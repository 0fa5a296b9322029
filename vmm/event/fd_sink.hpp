#pragma once
#include <atomic>

#include "devices/legacy/byte_sink.hpp"

namespace kvmlet {

// Writes device output to a file descriptor (stdout), whole, retrying short writes and EAGAIN.
// Errors other than those drop the output (and are counted) rather than stopping the guest.
class FdSink : public ByteSink {
public:
    explicit FdSink(int fd) noexcept : fd_(fd) {}
    void write(std::span<std::byte const> bytes) noexcept override;
    bool wrote_anything() const noexcept { return wrote_anything_.load(std::memory_order_relaxed); }

private:
    int fd_;
    std::atomic<bool> wrote_anything_{false};  // the serial port and virtio-console may both write
};

}  // namespace kvmlet
