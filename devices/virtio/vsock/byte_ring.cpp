#include "devices/virtio/vsock/byte_ring.hpp"

#include <algorithm>
#include <new>

namespace kvmlet::virtio::vsock {

bool ByteRing::allocate() noexcept {
    if (!storage_) storage_.reset(new (std::nothrow) std::byte[capacity_]);
    return storage_ != nullptr;
}

std::size_t ByteRing::front(std::array<iovec, 2>& out) const noexcept {
    if (size_ == 0) return 0;
    std::size_t const first = std::min(size_, capacity_ - head_);
    out[0] = iovec{storage_.get() + head_, first};
    if (first == size_) return 1;
    out[1] = iovec{storage_.get(), size_ - first};
    return 2;
}

void ByteRing::consume(std::size_t n) noexcept {
    n = std::min(n, size_);
    if (n == 0) return;
    head_ = (head_ + n) % capacity_;
    size_ -= n;
    if (size_ == 0) {
        storage_.reset();
        head_ = 0;
    }
}

}  // namespace kvmlet::virtio::vsock
