#include "devices/virtio/block/request.hpp"

#include <algorithm>

namespace kvmlet::virtio::blk {

ChainLayout ChainLayout::of(DescriptorChain const& chain) noexcept {
    ChainLayout layout;
    for (auto const& d : chain.descriptors) {
        if (!d.device_writable) {
            layout.readable += d.len;
            continue;
        }
        layout.writable += d.len;
        // The queue checked that addr + len does not wrap.
        if (d.len > 0) layout.status = GuestAddress{d.addr.value + d.len - 1};
    }
    return layout;
}

bool collect_iovecs(GuestMemory const& memory, DescriptorChain const& chain, bool writable,
                    std::uint64_t skip, std::uint64_t len, std::vector<iovec>& out) noexcept {
    for (auto const& d : chain.descriptors) {
        if (len == 0) break;
        if (d.device_writable != writable) continue;
        if (skip >= d.len) {
            skip -= d.len;
            continue;
        }
        std::uint64_t const take = std::min<std::uint64_t>(d.len - skip, len);
        auto bytes = memory.slice(GuestAddress{d.addr.value + skip}, take);
        if (!bytes || out.size() == out.capacity()) return false;
        out.push_back(iovec{bytes->data(), bytes->size()});
        len -= take;
        skip = 0;
    }
    return len == 0;
}

}  // namespace kvmlet::virtio::blk
