#pragma once
// A bounded FIFO of bytes: what a vsock connection holds of the guest's data while the host
// socket does not take it. Storage is allocated on the first push and given back once the ring
// is empty again, so an idle connection costs no buffer.
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <memory>
#include <span>

namespace kvmlet::virtio::vsock {

class ByteRing {
public:
    explicit ByteRing(std::size_t capacity) noexcept : capacity_(capacity) {}

    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    std::size_t space() const noexcept { return capacity_ - size_; }
    bool empty() const noexcept { return size_ == 0; }

    // Appends `n` bytes (n <= space()), which `fill(span)` writes into at most two pieces in order;
    // fill returns false when it cannot, and then nothing is appended. False as well when the
    // storage cannot be allocated.
    template <class Fill>
    bool push(std::size_t n, Fill fill) noexcept {
        if (n == 0) return true;
        if (n > space() || !allocate()) return false;
        std::size_t const tail = (head_ + size_) % capacity_;
        std::size_t const first = std::min(n, capacity_ - tail);
        if (!fill(std::span(storage_.get() + tail, first))) return false;
        if (first < n && !fill(std::span(storage_.get(), n - first))) return false;
        size_ += n;
        return true;
    }
    // The queued bytes as at most two views, front first; returns how many views.
    std::size_t front(std::array<iovec, 2>& out) const noexcept;
    // Drops the first n bytes (n <= size()).
    void consume(std::size_t n) noexcept;

private:
    bool allocate() noexcept;

    std::size_t capacity_;
    std::unique_ptr<std::byte[]> storage_;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

}  // namespace kvmlet::virtio::vsock
