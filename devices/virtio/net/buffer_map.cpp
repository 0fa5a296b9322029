#include "devices/virtio/net/buffer_map.hpp"

#include <algorithm>
#include <cstring>

namespace kvmlet::virtio::net {

std::optional<std::uint64_t> map_buffers(GuestMemory const& memory, DescriptorChain const& chain, bool writable,
                                         std::uint64_t skip, std::vector<iovec>& out) noexcept {
    std::uint64_t viewed = 0;
    // Bound: a chain has at most queue-size descriptors.
    for (auto const& d : chain.descriptors) {
        if (d.device_writable != writable) continue;
        auto bytes = memory.slice(d.addr, d.len);
        if (!bytes) return std::nullopt;
        std::uint64_t const skipped = std::min<std::uint64_t>(skip, d.len);
        skip -= skipped;
        if (skipped == d.len) continue;
        if (out.size() == out.capacity()) return std::nullopt;
        out.push_back(iovec{bytes->data() + skipped, d.len - skipped});
        viewed += d.len - skipped;
    }
    if (skip != 0) return std::nullopt;
    return viewed;
}

bool scatter(std::span<std::byte const> from, std::span<iovec const> to) noexcept {
    for (auto const& v : to) {
        if (from.empty()) return true;
        std::size_t const n = std::min(from.size(), v.iov_len);
        std::memcpy(v.iov_base, from.data(), n);
        from = from.subspan(n);
    }
    return from.empty();
}

}  // namespace kvmlet::virtio::net
