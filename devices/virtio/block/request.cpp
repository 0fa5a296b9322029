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

}  // namespace kvmlet::virtio::blk
