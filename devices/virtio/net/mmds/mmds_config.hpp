#pragma once
// What makes a virtio-net interface answer MMDS requests (Firecracker's mmds-config): the
// version, the IPv4 address the guest reaches it at, whether answers are always IMDS style, and
// the microVM's data store and token authority, shared by all its MMDS interfaces.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>

#include "devices/virtio/net/mmds/mmds_store.hpp"
#include "devices/virtio/net/mmds/token_authority.hpp"

namespace kvmlet::virtio::net::mmds {

enum class Version { v1, v2 };

struct MmdsConfig {
    Version version = Version::v1;
    std::array<std::uint8_t, 4> ipv4_address{169, 254, 169, 254};
    bool imds_compat = false;  // IMDS style whatever the Accept header says
    std::shared_ptr<MmdsStore> store{};
    std::shared_ptr<TokenAuthority> tokens{};
    std::function<Clock::time_point()> clock{};  // empty: steady_clock (tests set their own)
};

}  // namespace kvmlet::virtio::net::mmds
