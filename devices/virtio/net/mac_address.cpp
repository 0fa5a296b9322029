#include "devices/virtio/net/mac_address.hpp"

#include <fmt/format.h>

#include <charconv>

namespace kvmlet::virtio::net {
namespace {

constexpr std::size_t group_digits = 2;
constexpr std::size_t text_length = 6 * group_digits + 5;  // "xx:xx:xx:xx:xx:xx"

}  // namespace

std::optional<MacAddress> MacAddress::parse(std::string_view text) noexcept {
    if (text.size() != text_length) return std::nullopt;
    MacAddress mac;
    for (std::size_t i = 0; i < mac.bytes.size(); ++i) {
        std::size_t const at = i * (group_digits + 1);
        if (i > 0 && text[at - 1] != ':') return std::nullopt;
        char const* first = text.data() + at;
        auto [end, error] = std::from_chars(first, first + group_digits, mac.bytes[i], 16);
        if (error != std::errc{} || end != first + group_digits) return std::nullopt;
    }
    if (mac.multicast()) return std::nullopt;
    return mac;
}

std::string MacAddress::to_string() const {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2], bytes[3],
                       bytes[4], bytes[5]);
}

}  // namespace kvmlet::virtio::net
