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

BufferCursor::BufferCursor(std::span<Descriptor const> buffers) noexcept
    : buffers_(buffers), remaining_(total_length(buffers)) {}

ChainReader::ChainReader(GuestMemory const& memory, DescriptorChain const& chain) noexcept
    : memory_(&memory), cursor_(std::span(chain.descriptors).first(first_writable(chain))) {}

bool ChainReader::read(std::span<std::byte> out) noexcept {
    return cursor_.advance(out.size(), [&](GuestAddress at, std::size_t from, std::size_t n) {
        return memory_->read_bytes(at, out.subspan(from, n));
    });
}

bool ChainReader::skip(std::uint64_t len) noexcept {
    if (len > cursor_.remaining()) return false;
    return cursor_.advance(static_cast<std::size_t>(len),
                           [](GuestAddress, std::size_t, std::size_t) { return true; });
}

std::optional<std::uint64_t> view_buffers(GuestMemory const& memory, DescriptorChain const& chain,
                                          Direction direction, std::uint64_t skip, std::uint64_t len,
                                          std::vector<iovec>& out) noexcept {
    bool const writable = direction == Direction::writable;
    std::uint64_t viewed = 0;
    // Bound: a chain has at most queue-size descriptors.
    for (auto const& d : chain.descriptors) {
        if (viewed == len) break;
        if (d.device_writable != writable) continue;
        if (skip >= d.len) {
            skip -= d.len;
            continue;
        }
        std::uint64_t const take = std::min<std::uint64_t>(d.len - skip, len - viewed);
        auto bytes = memory.slice(GuestAddress{d.addr.value + skip}, take);
        if (!bytes || out.size() == out.capacity()) return std::nullopt;
        out.push_back(iovec{bytes->data(), bytes->size()});
        viewed += take;
        skip = 0;
    }
    if (skip != 0) return std::nullopt;
    return viewed;
}

ChainWriter::ChainWriter(GuestMemory const& memory, DescriptorChain const& chain) noexcept
    : memory_(&memory), cursor_(std::span(chain.descriptors).subspan(first_writable(chain))) {}

bool ChainWriter::write(std::span<std::byte const> in) noexcept {
    return cursor_.advance(in.size(), [&](GuestAddress at, std::size_t from, std::size_t n) {
        if (!memory_->write_bytes(at, in.subspan(from, n))) return false;
        written_ += static_cast<std::uint32_t>(n);
        return true;
    });
}

}  // namespace kvmlet::virtio
