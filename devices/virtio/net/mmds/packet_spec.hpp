#pragma once
// The wire formats the MMDS stack reads and writes: Ethernet II (IEEE 802.3), ARP for IPv4 over
// Ethernet (RFC 826), IPv4 (RFC 791) and TCP (RFC 9293). Fields are big-endian on the wire and
// are read and written byte by byte at named offsets, never through structs laid over a frame:
// frames come from the guest and need not be aligned.
#include <cstddef>
#include <cstdint>
#include <span>

namespace kvmlet::virtio::net::mmds {

// Ethernet II header.
namespace ethernet {
inline constexpr std::size_t dst = 0;
inline constexpr std::size_t src = 6;
inline constexpr std::size_t type = 12;
inline constexpr std::size_t header = 14;
inline constexpr std::uint16_t type_ipv4 = 0x0800;
inline constexpr std::uint16_t type_arp = 0x0806;
}  // namespace ethernet

// RFC 826, for IPv4 over Ethernet: offsets from the start of the ARP packet.
namespace arp {
inline constexpr std::size_t htype = 0;
inline constexpr std::size_t ptype = 2;
inline constexpr std::size_t hlen = 4;
inline constexpr std::size_t plen = 5;
inline constexpr std::size_t oper = 6;
inline constexpr std::size_t sha = 8;
inline constexpr std::size_t spa = 14;
inline constexpr std::size_t tha = 18;
inline constexpr std::size_t tpa = 24;
inline constexpr std::size_t length = 28;
inline constexpr std::uint16_t htype_ethernet = 1;
inline constexpr std::uint16_t oper_request = 1;
inline constexpr std::uint16_t oper_reply = 2;
}  // namespace arp

// RFC 791 §3.1: offsets from the start of the IPv4 header.
namespace ipv4 {
inline constexpr std::size_t version_ihl = 0;
inline constexpr std::size_t total_length = 2;
inline constexpr std::size_t identification = 4;
inline constexpr std::size_t flags_fragment = 6;
inline constexpr std::size_t ttl = 8;
inline constexpr std::size_t protocol = 9;
inline constexpr std::size_t checksum = 10;
inline constexpr std::size_t src = 12;
inline constexpr std::size_t dst = 16;
inline constexpr std::size_t min_header = 20;
inline constexpr std::uint8_t protocol_tcp = 6;
inline constexpr std::uint16_t more_fragments = 0x2000;
inline constexpr std::uint16_t fragment_offset_mask = 0x1fff;
inline constexpr std::uint16_t dont_fragment = 0x4000;
inline constexpr std::uint8_t default_ttl = 64;
}  // namespace ipv4

// RFC 9293 §3.1: offsets from the start of the TCP header.
namespace tcp {
inline constexpr std::size_t src_port = 0;
inline constexpr std::size_t dst_port = 2;
inline constexpr std::size_t seq = 4;
inline constexpr std::size_t ack = 8;
inline constexpr std::size_t data_offset = 12;
inline constexpr std::size_t flags = 13;
inline constexpr std::size_t window = 14;
inline constexpr std::size_t checksum = 16;
inline constexpr std::size_t urgent = 18;
inline constexpr std::size_t min_header = 20;
inline constexpr std::size_t max_header = 60;
inline constexpr std::uint8_t fin = 0x01;
inline constexpr std::uint8_t syn = 0x02;
inline constexpr std::uint8_t rst = 0x04;
inline constexpr std::uint8_t psh = 0x08;
inline constexpr std::uint8_t ack_flag = 0x10;
inline constexpr std::uint8_t urg = 0x20;
// §3.2 options: end of list, no-operation, maximum segment size (kind, length 4, value).
inline constexpr std::uint8_t option_end = 0;
inline constexpr std::uint8_t option_nop = 1;
inline constexpr std::uint8_t option_mss = 2;
inline constexpr std::uint8_t option_mss_length = 4;
inline constexpr std::uint16_t default_mss = 536;  // RFC 9293 §3.7.1, without the option
}  // namespace tcp

inline std::uint16_t load16(std::span<std::byte const> at, std::size_t offset) noexcept {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(at[offset]) << 8) |
                                      std::to_integer<unsigned>(at[offset + 1]));
}
inline std::uint32_t load32(std::span<std::byte const> at, std::size_t offset) noexcept {
    return (std::uint32_t{load16(at, offset)} << 16) | load16(at, offset + 2);
}
inline void store16(std::span<std::byte> at, std::size_t offset, std::uint16_t value) noexcept {
    at[offset] = std::byte{static_cast<std::uint8_t>(value >> 8)};
    at[offset + 1] = std::byte{static_cast<std::uint8_t>(value)};
}
inline void store32(std::span<std::byte> at, std::size_t offset, std::uint32_t value) noexcept {
    store16(at, offset, static_cast<std::uint16_t>(value >> 16));
    store16(at, offset + 2, static_cast<std::uint16_t>(value));
}

// RFC 1071: the ones' complement sum of 16-bit words, folded, starting from `sum`; a packet whose
// checksum field is filled in sums to 0xffff.
inline std::uint32_t ones_sum(std::span<std::byte const> bytes, std::uint32_t sum = 0) noexcept {
    std::size_t i = 0;
    for (; i + 1 < bytes.size(); i += 2) sum += load16(bytes, i);
    if (i < bytes.size()) sum += std::to_integer<std::uint32_t>(bytes[i]) << 8;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}
inline std::uint16_t checksum_of(std::uint32_t folded_sum) noexcept {
    return static_cast<std::uint16_t>(~folded_sum & 0xffff);
}
// RFC 9293 §3.1: the TCP pseudo-header sum (source, destination, zero + protocol, TCP length).
inline std::uint32_t pseudo_header_sum(std::uint32_t src, std::uint32_t dst,
                                       std::size_t tcp_length) noexcept {
    std::uint32_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + ipv4::protocol_tcp +
                        static_cast<std::uint32_t>(tcp_length);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

}  // namespace kvmlet::virtio::net::mmds
