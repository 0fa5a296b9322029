#pragma once
// Host views (iovecs) of a chain's buffers in guest RAM: what a large transmitted packet is
// gathered from in one writev, and what a received packet is copied into. The views are taken
// after the queue validated the chain and used at once, under the device's lock; the guest may
// change the bytes meanwhile, which only changes the packet it sends or receives.
#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/queue.hpp"

namespace kvmlet::virtio::net {

// Appends views of the chain's readable (or writable) buffers, from `skip` bytes in, to `out`.
// Returns the bytes viewed; nullopt when a buffer (skipped ones included) lies outside RAM, the
// buffers hold fewer than `skip` bytes, or `out` would outgrow its capacity (reserved at setup).
std::optional<std::uint64_t> map_buffers(GuestMemory const& memory, DescriptorChain const& chain, bool writable,
                                         std::uint64_t skip, std::vector<iovec>& out) noexcept;

// Copies `from` into the memory `to` views, front to back; false when they hold less.
bool scatter(std::span<std::byte const> from, std::span<iovec const> to) noexcept;

}  // namespace kvmlet::virtio::net
