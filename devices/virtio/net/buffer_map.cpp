#include "devices/virtio/net/buffer_map.hpp"

#include <algorithm>
#include <cstring>

namespace kvmlet::virtio::net {

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
