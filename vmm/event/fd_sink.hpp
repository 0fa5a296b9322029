#pragma once
#include <atomic>
#include <cstdint>

#include "devices/legacy/byte_sink.hpp"

namespace kvmlet {

// Writes device output to a file descriptor (stdout), whole, retrying short writes and EAGAIN.
// Errors other than those drop the output (and are counted) rather than stopping the guest: a
// reader that went away (`kvmlet run ... | head`, EPIPE with SIGPIPE ignored) ends nothing.
class FdSink : public ByteSink {
public:
    explicit FdSink(int fd) noexcept : fd_(fd) {}
    void write(std::span<std::byte const> bytes) noexcept override;
    bool wrote_anything() const noexcept { return wrote_anything_.load(std::memory_order_relaxed); }
    // Bytes of output lost to write errors, and the errno of the last such error (0: none).
    std::uint64_t dropped_bytes() const noexcept { return dropped_bytes_.load(std::memory_order_relaxed); }
    int last_error() const noexcept { return last_error_.load(std::memory_order_relaxed); }

private:
    void drop(std::size_t bytes, int err) noexcept;

    int fd_;
    // The serial port and virtio-console may both write, from different threads.
    std::atomic<bool> wrote_anything_{false};
    std::atomic<std::uint64_t> dropped_bytes_{0};
    std::atomic<int> last_error_{0};
};

}  // namespace kvmlet
