#pragma once
// Numbers and wire structures of the virtio socket device (virtio 1.2 §5.10), stream sockets
// only. Multi-byte fields are little-endian on the wire; kvmlet only runs on little-endian hosts
// (asserted below), so the structs are copied as they are.
#include <bit>
#include <cstddef>
#include <cstdint>

namespace kvmlet::virtio::vsock {

static_assert(std::endian::native == std::endian::little, "virtio-vsock wire structs are copied as-is");

// §5.10.2 Virtqueues.
inline constexpr std::size_t rx_queue = 0;  // device to driver
inline constexpr std::size_t tx_queue = 1;  // driver to device
inline constexpr std::size_t event_queue = 2;

// §5.10.3 Feature bits (bit numbers): stream sockets (also what a device without any bit does).
namespace feature {
inline constexpr std::uint32_t stream = 0;
}  // namespace feature

// §5.10.4 Device configuration layout.
struct Config {
    std::uint64_t guest_cid = 0;
};
static_assert(sizeof(Config) == 8);

// §5.10.4: CIDs 0 to 2 are reserved (2 is the host), and 0xffffffff means "any".
inline constexpr std::uint64_t host_cid = 2;
inline constexpr std::uint64_t min_guest_cid = 3;
inline constexpr std::uint64_t max_guest_cid = 0xffff'fffe;

// §5.10.6 Device Operation: the header in front of every packet on the rx and tx queues.
#pragma pack(push, 1)
struct Header {
    std::uint64_t src_cid = 0;
    std::uint64_t dst_cid = 0;
    std::uint32_t src_port = 0;
    std::uint32_t dst_port = 0;
    std::uint32_t len = 0;  // payload bytes after the header
    std::uint16_t type = 0;
    std::uint16_t op = 0;
    std::uint32_t flags = 0;
    std::uint32_t buf_alloc = 0;  // the sender's receive buffer for this connection
    std::uint32_t fwd_cnt = 0;    // bytes the sender has taken out of that buffer, modulo 2^32
};
#pragma pack(pop)
static_assert(sizeof(Header) == 44);

// §5.10.6: type.
inline constexpr std::uint16_t type_stream = 1;

// §5.10.6: op.
namespace op {
inline constexpr std::uint16_t invalid = 0;
inline constexpr std::uint16_t request = 1;
inline constexpr std::uint16_t response = 2;
inline constexpr std::uint16_t rst = 3;
inline constexpr std::uint16_t shutdown = 4;
inline constexpr std::uint16_t rw = 5;
inline constexpr std::uint16_t credit_update = 6;
inline constexpr std::uint16_t credit_request = 7;
}  // namespace op

// §5.10.6.5: flags of a SHUTDOWN: the sender will receive (send) no more data.
inline constexpr std::uint32_t shutdown_rcv = 1;
inline constexpr std::uint32_t shutdown_send = 2;
inline constexpr std::uint32_t shutdown_both = shutdown_rcv | shutdown_send;

// §5.10.6.6 Device Events.
struct Event {
    std::uint32_t id = 0;
};
static_assert(sizeof(Event) == 4);
inline constexpr std::uint32_t event_transport_reset = 0;

// The largest payload in one packet, in either direction: what Linux's driver uses
// (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE); a larger len from the driver is a protocol error.
inline constexpr std::uint32_t max_payload = 64 * 1024;

}  // namespace kvmlet::virtio::vsock
