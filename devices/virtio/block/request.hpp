#pragma once
// How a virtio-blk request lies in its descriptor chain (virtio 1.2 §5.2.6): a 16-byte header at
// the front of the readable bytes, then (for a write) the data; the status byte is the last
// writable byte, and (for a read) the data is the writable bytes before it. The driver may split
// any of these across buffers however it likes (§2.7.4), so nothing here assumes a layout.
#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "devices/virtio/queue.hpp"

namespace kvmlet::virtio::blk {

struct ChainLayout {
    std::uint64_t readable = 0;          // bytes in device-readable buffers
    std::uint64_t writable = 0;          // bytes in device-writable buffers, the status byte included
    std::optional<GuestAddress> status;  // nullopt: no writable byte to put the status in

    static ChainLayout of(DescriptorChain const& chain) noexcept;
};

}  // namespace kvmlet::virtio::blk
