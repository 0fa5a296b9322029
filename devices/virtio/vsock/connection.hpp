#pragma once
// One vsock stream connection between a guest port and a host Unix socket, and its credit
// accounting (virtio 1.2 §5.10.6.3): each side tells the other, in every header, how big its
// receive buffer is (buf_alloc) and how many bytes it has taken out of it so far (fwd_cnt); a
// sender may have at most buf_alloc - (sent - fwd_cnt) bytes in flight. Counters wrap at 2^32.
#include <compare>
#include <cstdint>
#include <string>

#include "devices/virtio/vsock/byte_ring.hpp"
#include "devices/virtio/vsock/vsock_spec.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::virtio::vsock {

// A connection as both sides name it (the CIDs are fixed: the host's and the guest's).
struct ConnectionKey {
    std::uint32_t local_port = 0;  // the host's end
    std::uint32_t peer_port = 0;   // the guest's end
    auto operator<=>(ConnectionKey const&) const = default;
};

enum class ConnectionState {
    connect_line,  // host-initiated: reading "CONNECT <port>\n"; no key yet
    requesting,    // host-initiated: REQUEST sent (or queued), waiting for the guest's RESPONSE
    established,   // data flows, until RST (either side) or both sides have shut down
};

struct Connection {
    Connection(std::uint64_t id, UniqueFd socket, std::uint32_t buffer_bytes) noexcept
        : id(id), socket(std::move(socket)), pending(buffer_bytes) {}

    std::uint64_t id;  // never reused: stale timers and queued packets find nothing
    UniqueFd socket;
    ConnectionState state = ConnectionState::established;
    ConnectionKey key;
    std::string line;  // connect_line: what came of the line so far
    std::string ack;   // "OK <port>\n" still to write to the host socket, before any data

    // Guest to host: bytes the host socket did not take yet. Its capacity is our buf_alloc.
    ByteRing pending;
    std::uint32_t fwd_cnt = 0;          // guest bytes written to the host socket
    std::uint32_t fwd_cnt_told = 0;     // fwd_cnt as the guest last heard it
    bool credit_update_queued = false;  // a CREDIT_UPDATE waits in the device's control queue
    // Host to guest: what the guest told us of its buffer, and what we sent into it.
    std::uint32_t peer_buf_alloc = 0;
    std::uint32_t peer_fwd_cnt = 0;
    std::uint32_t tx_cnt = 0;
    bool credit_requested = false;  // a CREDIT_REQUEST went out for the current stall

    bool guest_shut_rcv = false;   // SHUTDOWN: the guest takes no more data
    bool guest_shut_send = false;  // SHUTDOWN: the guest sends no more data
    bool host_eof = false;         // the host socket's read side ended
    bool host_hangup = false;      // both sides of the host socket are closed: out of the epoll set
    bool host_write_shut = false;  // shutdown(SHUT_WR) done after the guest's SHUTDOWN(SEND)
    bool closing = false;          // a kill timer runs: RST when it fires
    bool readable = false;         // in the device's list of sockets to read into rx buffers
    std::uint32_t events = 0;      // the epoll events registered for `socket`
    std::uint64_t timer = 0;       // generation of the one timer that counts

    // Bytes the guest may still send us in flight: its view of our free buffer, from the last
    // fwd_cnt we told it (may be negative when it sent more than it knew it could).
    std::int64_t guest_view_of_space() const noexcept {
        auto const unseen = static_cast<std::uint32_t>(fwd_cnt - fwd_cnt_told);
        return static_cast<std::int64_t>(pending.capacity()) - static_cast<std::int64_t>(unseen) -
               static_cast<std::int64_t>(pending.size());
    }
    // Whether to tell the guest about space it does not know of: once its view drops under half
    // the buffer (so a sender that waits for credit always hears of it).
    bool guest_needs_credit_update() const noexcept {
        return fwd_cnt != fwd_cnt_told &&
               guest_view_of_space() < static_cast<std::int64_t>(pending.capacity() / 2);
    }
    // Bytes we may send the guest now. A fwd_cnt from the guest ahead of what we sent (which no
    // honest driver writes) leaves no credit rather than a huge one.
    std::uint32_t peer_credit() const noexcept {
        auto const in_flight = static_cast<std::uint32_t>(tx_cnt - peer_fwd_cnt);
        return in_flight > peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
    }
    void take_peer_credit(Header const& header) noexcept {
        peer_buf_alloc = header.buf_alloc;
        peer_fwd_cnt = header.fwd_cnt;
        if (peer_credit() > 0) credit_requested = false;
    }
    bool has_output() const noexcept { return !ack.empty() || !pending.empty(); }
    // Whether host data may go to the guest (given credit and buffers).
    bool may_receive() const noexcept {
        return state == ConnectionState::established && !guest_shut_rcv && !host_eof;
    }
};

}  // namespace kvmlet::virtio::vsock
