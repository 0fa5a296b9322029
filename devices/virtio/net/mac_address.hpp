#pragma once
// An Ethernet MAC address: the value in virtio-net's config space (§5.1.4 mac) and on the
// command line (06:00:ac:10:00:02).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvmlet::virtio::net {

struct MacAddress {
    std::array<std::uint8_t, 6> bytes{};

    // Six two-digit hex groups separated by ':'; nullopt otherwise. Multicast addresses (bit 0
    // of the first byte) cannot belong to an interface and are refused too.
    static std::optional<MacAddress> parse(std::string_view text) noexcept;
    std::string to_string() const;
    bool multicast() const noexcept { return (bytes[0] & 1) != 0; }
    bool operator==(MacAddress const&) const = default;
};

}  // namespace kvmlet::virtio::net
