#include "devices/virtio/chain_io.hpp"

#include <algorithm>

namespace kvmlet::virtio {
namespace {

// The chain's buffers are readable ones then writable ones (the queue checked the order).
std::size_t first_writable(DescriptorChain const& chain) {
    auto it = std::find_if(chain.descriptors.begin(), chain.descriptors.end(),
                           [](Descriptor const& d) { return d.device_writable; });
    return static_cast<std::size_t>(it - chain.descriptors.begin());
}

std::uint64_t total_length(std::span<Descriptor const> buffers) {
    std::uint64_t total = 0;
    for (auto const& d : buffers) total += d.len;
    return total;
}

}  // namespace

ChainReader::ChainReader(GuestMemory const& memory, DescriptorChain const& chain) noexcept
    : memory_(&memory), buffers_(std::span(chain.descriptors).first(first_writable(chain))),
      remaining_(total_length(buffers_)) {}

bool ChainReader::read(std::span<std::byte> out) noexcept {
    if (out.size() > remaining_) return false;
    while (!out.empty()) {
        auto const& d = buffers_[index_];
        std::size_t n = std::min<std::size_t>(out.size(), d.len - offset_);
        if (n != 0 && !memory_->read_bytes(GuestAddress{d.addr.value + offset_}, out.first(n))) return false;
        out = out.subspan(n);
        remaining_ -= n;
        offset_ += static_cast<std::uint32_t>(n);
        if (offset_ == d.len) ++index_, offset_ = 0;
    }
    return true;
}

ChainWriter::ChainWriter(GuestMemory const& memory, DescriptorChain const& chain) noexcept
    : memory_(&memory), buffers_(std::span(chain.descriptors).subspan(first_writable(chain))),
      remaining_(total_length(buffers_)) {}

bool ChainWriter::write(std::span<std::byte const> in) noexcept {
    if (in.size() > remaining_) return false;
    while (!in.empty()) {
        auto const& d = buffers_[index_];
        std::size_t n = std::min<std::size_t>(in.size(), d.len - offset_);
        if (n != 0 && !memory_->write_bytes(GuestAddress{d.addr.value + offset_}, in.first(n))) return false;
        in = in.subspan(n);
        remaining_ -= n;
        written_ += static_cast<std::uint32_t>(n);
        offset_ += static_cast<std::uint32_t>(n);
        if (offset_ == d.len) ++index_, offset_ = 0;
    }
    return true;
}

}  // namespace kvmlet::virtio
