#pragma once
// The MMDS network stack of one virtio-net interface (Firecracker's docs/mmds/mmds-design.md
// describes the same role): it looks at every frame the guest transmits and takes those meant
// for MMDS, which never reach the endpoint, and it makes the frames that answer them, which
// the device puts into the guest's receive queue before any from the endpoint.
//
// Taken (handle_frame says `taken`): ARP (RFC 826) frames whose target protocol address is the
// MMDS address, and IPv4 frames to that address. Of those, a valid ARP request is answered with
// `mac` (the MMDS's own MAC, kvmlet's choice); a valid TCP segment to port 80 goes to its
// connection (tcp_connection.hpp), whose byte stream carries HTTP requests (mmds_http.hpp); a
// segment to another port, or for no connection, is answered with RST. Everything else taken is
// dropped and counted: bad lengths, header or TCP checksums, IPv4 fragments (never reassembled),
// other protocols, malformed TCP options, broadcast or multicast senders. 802.1Q-tagged frames
// are not looked into: they go to the endpoint.
//
// Bounds: at most max_connections connections, each holding at most the TCP receive buffer of
// request bytes and one response; at most max_pending_resets RSTs waiting (more are dropped);
// one ARP reply waiting (the latest request). When all connections are in use a SYN evicts the
// connection idle longest if it has been idle for idle_eviction, or is answered with RST.
// Every call does work bounded by the frame's length and these limits; nothing is allocated
// per frame beyond a connection's buffers.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/counter.hpp"
#include "devices/virtio/net/mmds/mmds_config.hpp"
#include "devices/virtio/net/mmds/tcp_connection.hpp"

namespace kvmlet::virtio::net::mmds {

struct MmdsCounters {
    Counter frames_taken;  // guest frames for MMDS (ARP or IPv4 to its address)
    Counter frames_sent;   // frames made for the guest
    Counter arp_replies;
    Counter malformed;    // bad lengths, fields, checksums or options: dropped
    Counter unsupported;  // fragments, protocols other than TCP, multicast senders: dropped
    Counter connections_opened;
    Counter connections_evicted;
    Counter resets_sent;
    Counter resets_dropped;  // the RST queue was full
    Counter requests;        // HTTP requests answered
};

class MmdsStack {
public:
    static constexpr std::size_t max_connections = 16;
    static constexpr std::size_t max_pending_resets = 16;
    static constexpr std::chrono::seconds idle_eviction{30};
    static constexpr std::uint16_t http_port = 80;
    // The largest frame it makes: Ethernet, IPv4 and TCP headers with the MSS option, a full MSS.
    static constexpr std::size_t max_frame = 14 + 20 + 24 + TcpConnection::max_mss;
    static constexpr std::array<std::uint8_t, 6> mac{0x06, 0x6b, 0x76, 0x6d, 0x00, 0x01};

    enum class Verdict { not_mmds, taken };

    explicit MmdsStack(MmdsConfig config);

    // A frame the guest transmits (without the virtio_net_hdr). `checksum_partial`: the guest
    // asked for the TCP checksum to be completed (NEEDS_CSUM), so it is not checked.
    Verdict handle_frame(std::span<std::byte const> frame, bool checksum_partial) noexcept;
    // Whether the frame's first bytes (at least 42, or the whole frame) say it is for MMDS:
    // the device reads only these from guest RAM for the frames that are not.
    bool addressed_to_mmds(std::span<std::byte const> prefix) const noexcept;
    static constexpr std::size_t classify_bytes = 42;

    bool has_frame() const noexcept;
    // Writes the next frame for the guest into `out` (at least max_frame bytes); its length, or
    // 0 when there is none.
    std::size_t next_frame(std::span<std::byte> out) noexcept;

    // The device was reset: every connection, pending RST and ARP reply is forgotten.
    void reset() noexcept;

    MmdsCounters const& counters() const noexcept { return counters_; }
    std::size_t connections() const noexcept { return connections_.size(); }
    MmdsConfig const& config() const noexcept { return config_; }

private:
    using Mac = std::array<std::uint8_t, 6>;
    struct Peer {  // the guest's end of a connection
        Mac mac{};
        std::uint32_t ip = 0;
        std::uint16_t port = 0;
        std::uint16_t our_port = http_port;
    };
    struct Entry {
        Peer peer;
        TcpConnection tcp;
    };
    struct Reset {
        Peer peer;
        std::uint32_t seq = 0;
        std::uint32_t ack = 0;
        bool with_ack = false;
    };
    struct ArpReply {
        Mac mac{};
        std::uint32_t ip = 0;
    };

    Clock::time_point now() const noexcept;
    void handle_arp(std::span<std::byte const> frame) noexcept;
    void handle_ipv4(std::span<std::byte const> frame, bool checksum_partial) noexcept;
    void handle_tcp(Peer const& peer, std::span<std::byte const> segment, std::uint32_t src_ip,
                    bool checksum_partial) noexcept;
    void handle_segment(Peer const& peer, SegmentIn const& segment) noexcept;
    void open(Peer const& peer, SegmentIn const& syn) noexcept;
    void serve(TcpConnection& tcp) noexcept;
    void queue_reset(Peer const& peer, SegmentIn const& cause) noexcept;
    std::size_t write_arp_reply(std::span<std::byte> out) noexcept;
    std::size_t write_tcp(std::span<std::byte> out, Peer const& peer, SegmentOut const& segment) noexcept;
    std::uint32_t next_iss() noexcept;
    std::uint32_t our_ip() const noexcept;

    MmdsConfig config_;
    std::optional<ArpReply> arp_reply_;
    std::vector<Reset> resets_;
    std::vector<std::unique_ptr<Entry>> connections_;
    std::size_t next_to_send_ = 0;  // round robin over connections
    std::uint16_t ip_id_ = 0;
    std::uint64_t iss_state_ = 0;
    MmdsCounters counters_;
};

}  // namespace kvmlet::virtio::net::mmds
