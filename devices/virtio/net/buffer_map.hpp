#pragma once
// A received packet's way into the views of a receive chain (chain_io.hpp, view_buffers).
#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/queue.hpp"

namespace kvmlet::virtio::net {

// Copies `from` into the memory `to` views, front to back; false when they hold less.
bool scatter(std::span<std::byte const> from, std::span<iovec const> to) noexcept;

}  // namespace kvmlet::virtio::net
