#pragma once
// Numbers and wire structures of the virtio network device (virtio 1.2 §5.1). Multi-byte fields
// are little-endian on the wire; kvmlet only runs on little-endian hosts (asserted below), and
// the TAP's virtio_net_hdr is little-endian too for a VERSION_1 device on such a host.
#include <bit>
#include <cstddef>
#include <cstdint>

namespace kvmlet::virtio::net {

static_assert(std::endian::native == std::endian::little, "virtio-net wire structs are copied as-is");

// §5.1.2 Virtqueues: receiveq1 and transmitq1 (no control queue, no multiqueue).
inline constexpr std::size_t receive_queue = 0;
inline constexpr std::size_t transmit_queue = 1;

// §5.1.3 Feature bits (bit numbers).
namespace feature {
inline constexpr std::uint32_t csum = 0;        // the device takes packets with a partial checksum
inline constexpr std::uint32_t guest_csum = 1;  // the driver takes packets with a partial checksum
inline constexpr std::uint32_t mtu = 3;
inline constexpr std::uint32_t mac = 5;
inline constexpr std::uint32_t guest_tso4 = 7;
inline constexpr std::uint32_t guest_tso6 = 8;
inline constexpr std::uint32_t guest_ecn = 9;
inline constexpr std::uint32_t guest_ufo = 10;
inline constexpr std::uint32_t host_tso4 = 11;
inline constexpr std::uint32_t host_tso6 = 12;
inline constexpr std::uint32_t host_ecn = 13;
inline constexpr std::uint32_t host_ufo = 14;
inline constexpr std::uint32_t mrg_rxbuf = 15;
inline constexpr std::uint32_t status = 16;
inline constexpr std::uint32_t ctrl_vq = 17;
inline constexpr std::uint32_t mq = 22;
}  // namespace feature

// §5.1.4 status field.
inline constexpr std::uint16_t status_link_up = 1;
inline constexpr std::uint16_t status_announce = 2;
// §5.1.4 speed and duplex when VIRTIO_NET_F_SPEED_DUPLEX is not offered: unknown.
inline constexpr std::uint32_t speed_unknown = 0xffff'ffff;
inline constexpr std::uint8_t duplex_unknown = 0xff;

// §5.1.4 Device configuration layout, up to supported_hash_types.
struct Config {
    std::uint8_t mac[6];
    std::uint16_t status;
    std::uint16_t max_virtqueue_pairs;
    std::uint16_t mtu;
    std::uint32_t speed;
    std::uint8_t duplex;
    std::uint8_t rss_max_key_size;
    std::uint16_t rss_max_indirection_table_length;
    std::uint32_t supported_hash_types;
};
static_assert(sizeof(Config) == 24);
static_assert(offsetof(Config, status) == 6);
static_assert(offsetof(Config, max_virtqueue_pairs) == 8);
static_assert(offsetof(Config, mtu) == 10);
static_assert(offsetof(Config, speed) == 12);
static_assert(offsetof(Config, supported_hash_types) == 20);

// §5.1.6 Device Operation: the header in front of every packet, in both directions. With
// VERSION_1 it always has num_buffers (12 bytes), MRG_RXBUF or not; the hash fields that
// follow exist only with VIRTIO_NET_F_HASH_REPORT, never offered.
struct Header {
    std::uint8_t flags;
    std::uint8_t gso_type;
    std::uint16_t hdr_len;
    std::uint16_t gso_size;
    std::uint16_t csum_start;
    std::uint16_t csum_offset;
    std::uint16_t num_buffers;
};
static_assert(sizeof(Header) == 12);
static_assert(offsetof(Header, num_buffers) == 10);

namespace header_flag {
inline constexpr std::uint8_t needs_csum = 1;
inline constexpr std::uint8_t data_valid = 2;
inline constexpr std::uint8_t rsc_info = 4;
}  // namespace header_flag

namespace gso {
inline constexpr std::uint8_t none = 0;
inline constexpr std::uint8_t tcpv4 = 1;
inline constexpr std::uint8_t udp = 3;
inline constexpr std::uint8_t tcpv6 = 4;
inline constexpr std::uint8_t udp_l4 = 5;
inline constexpr std::uint8_t ecn = 0x80;  // a flag on top of the type
}  // namespace gso

// Frame sizes (IEEE 802.3): the Ethernet header, one 802.1Q tag, the smallest IPv4 MTU.
inline constexpr std::uint32_t ethernet_header = 14;
inline constexpr std::uint32_t vlan_tag = 4;
inline constexpr std::uint32_t min_mtu = 68;  // RFC 791
inline constexpr std::uint16_t default_mtu = 1500;
// The largest packet a segmentation offload carries: Linux caps a GSO packet for virtio-net at
// 64 KiB (GSO_LEGACY_MAX_SIZE); the Ethernet header and a VLAN tag may come on top.
inline constexpr std::uint32_t max_gso_packet = 64 * 1024;
inline constexpr std::uint32_t max_gso_frame = max_gso_packet + ethernet_header + vlan_tag;
// The most an endpoint can hand the device in one packet: header + the largest frame.
inline constexpr std::uint32_t max_packet = sizeof(Header) + max_gso_frame;

}  // namespace kvmlet::virtio::net
