#pragma once
// One guest TCP connection to MMDS (RFC 9293, the server half, much simplified): kvmlet is the
// passive end. A SYN makes one; the handshake, in-order data into a fixed receive buffer, ACKs,
// FIN from either side and RST. What it leaves out, and why that is safe here:
//  - Retransmission timers. Segments to the guest are not sent over a wire: the device holds
//    them until the guest posts receive buffers and then writes them into its ring, in order, so
//    they are not lost on the way. A guest that loses one anyway gets it again when it asks: a
//    retransmitted SYN is answered with the SYN-ACK again, and three duplicate ACKs rewind
//    sending to the first unacknowledged byte (go-back-N). The guest's own losses are covered by
//    its retransmissions, which are ACKed again.
//  - Out-of-order data: dropped and answered with an ACK of what came in order.
//  - Options other than MSS (no window scaling, timestamps or SACK: none is offered, so the
//    guest uses none), urgent data (ignored), congestion control (the guest's window bounds
//    what is in flight).
// The receive window is receive_buffer minus what waits to be served, so the guest can never
// send more than the buffer holds; data beyond the window is dropped.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "devices/virtio/net/mmds/packet_spec.hpp"
#include "devices/virtio/net/mmds/token_authority.hpp"

namespace kvmlet::virtio::net::mmds {

// A validated TCP segment from the guest.
struct SegmentIn {
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint8_t flags = 0;
    std::uint16_t window = 0;
    std::optional<std::uint16_t> mss{};  // the MSS option, when present
    std::span<std::byte const> payload{};
};

// A segment for the guest; `payload` views the connection's send buffer until its next call.
struct SegmentOut {
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint8_t flags = 0;
    std::uint16_t window = 0;
    std::optional<std::uint16_t> mss{};
    std::span<std::byte const> payload{};
};

// RFC 9293 §3.4: sequence numbers compare modulo 2^32.
inline bool seq_lt(std::uint32_t a, std::uint32_t b) noexcept {
    return static_cast<std::int32_t>(a - b) < 0;
}
inline bool seq_le(std::uint32_t a, std::uint32_t b) noexcept {
    return a == b || seq_lt(a, b);
}

class TcpConnection {
public:
    static constexpr std::size_t receive_buffer = 4096;
    static constexpr std::uint16_t max_mss = 1460;  // a 1500-byte MTU less IPv4 and TCP headers
    static constexpr std::uint16_t min_mss = 64;
    static constexpr int duplicate_acks_to_resend = 3;  // RFC 5681 §3.2

    // From the guest's SYN; `iss` is our initial sequence number.
    TcpConnection(SegmentIn const& syn, std::uint32_t iss, Clock::time_point now) noexcept;

    void receive(SegmentIn const& segment, Clock::time_point now) noexcept;
    // The next segment to send, if any (committed: call again for the one after).
    std::optional<SegmentOut> next_segment() noexcept;
    bool wants_to_send() const noexcept;

    // The request bytes received in order and not yet consumed.
    std::string_view received() const noexcept { return in_; }
    void consume(std::size_t n) noexcept { in_.erase(0, n); }
    // True while nothing sent is unacknowledged and nothing waits to be sent: a response may go.
    bool idle() const noexcept { return out_.empty() && !fin_queued_; }
    void send(std::string_view bytes) noexcept;
    void close() noexcept { fin_queued_ = true; }
    bool closing() const noexcept { return fin_queued_; }
    bool fin_received() const noexcept { return fin_received_; }
    bool established() const noexcept { return state_ == State::established; }
    // Reset by the guest, or both sides closed and everything acknowledged: forget it.
    bool finished() const noexcept;
    Clock::time_point last_active() const noexcept { return last_active_; }

private:
    enum class State { syn_received, established };
    struct Plan {
        SegmentOut segment;
        std::size_t data = 0;  // payload bytes of out_ it takes
        bool fin = false;
    };
    std::optional<Plan> plan() const noexcept;
    std::uint16_t window() const noexcept;
    void receive_syn_received(SegmentIn const& s) noexcept;
    bool receive_ack(SegmentIn const& s) noexcept;
    void receive_data(SegmentIn const& s) noexcept;

    State state_ = State::syn_received;
    std::uint32_t iss_ = 0;
    std::uint32_t snd_una_ = 0;  // oldest unacknowledged
    std::uint32_t snd_nxt_ = 0;  // next to send
    std::uint32_t out_seq_ = 0;  // sequence number of out_[0]
    std::uint32_t rcv_nxt_ = 0;
    std::uint16_t peer_window_ = 0;
    std::uint16_t mss_ = tcp::default_mss;
    int duplicate_acks_ = 0;
    bool syn_ack_due_ = true;
    bool ack_due_ = false;
    bool fin_queued_ = false;  // FIN goes after out_
    bool fin_sent_ = false;
    bool fin_acked_ = false;
    bool fin_received_ = false;
    bool reset_ = false;
    std::string in_;
    std::string out_;
    Clock::time_point last_active_;
};

}  // namespace kvmlet::virtio::net::mmds
