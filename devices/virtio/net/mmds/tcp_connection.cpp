#include "devices/virtio/net/mmds/tcp_connection.hpp"

#include <algorithm>

namespace kvmlet::virtio::net::mmds {

TcpConnection::TcpConnection(SegmentIn const& syn, std::uint32_t iss, Clock::time_point now) noexcept
    : iss_(iss),
      snd_una_(iss),
      snd_nxt_(iss),
      out_seq_(iss + 1),
      rcv_nxt_(syn.seq + 1),
      peer_window_(syn.window),
      last_active_(now) {
    if (syn.mss) mss_ = std::clamp(*syn.mss, min_mss, max_mss);
}

bool TcpConnection::finished() const noexcept {
    return reset_ || (fin_received_ && fin_acked_ && !ack_due_ && !syn_ack_due_);
}

std::uint16_t TcpConnection::window() const noexcept {
    return static_cast<std::uint16_t>(receive_buffer - std::min(in_.size(), receive_buffer));
}

void TcpConnection::send(std::string_view bytes) noexcept {
    out_.append(bytes);
}

void TcpConnection::receive(SegmentIn const& s, Clock::time_point now) noexcept {
    last_active_ = now;
    if (state_ == State::syn_received) {
        receive_syn_received(s);
        if (state_ != State::established) return;
    }
    if (s.flags & tcp::rst) {
        // RFC 5961 §3.2: only the exact next sequence number resets; one in the window is
        // answered with an ACK (a challenge); others are dropped.
        if (s.seq == rcv_nxt_)
            reset_ = true;
        else if (seq_lt(rcv_nxt_, s.seq) && seq_lt(s.seq, rcv_nxt_ + window()))
            ack_due_ = true;
        return;
    }
    if (s.flags & tcp::syn) {  // RFC 5961 §4.2: a SYN on an open connection gets a challenge ACK
        ack_due_ = true;
        return;
    }
    if (!(s.flags & tcp::ack_flag)) return;
    if (!receive_ack(s)) return;
    receive_data(s);
}

void TcpConnection::receive_syn_received(SegmentIn const& s) noexcept {
    if (s.flags & tcp::rst) {
        if (s.seq == rcv_nxt_) reset_ = true;
        return;
    }
    if (s.flags & tcp::syn) {  // our SYN-ACK went missing in the guest: send it again
        syn_ack_due_ = true;
        return;
    }
    if (!(s.flags & tcp::ack_flag) || s.ack != iss_ + 1 || syn_ack_due_) return;
    state_ = State::established;
    snd_una_ = iss_ + 1;
}

// False when the segment goes no further (it acknowledges what was never sent).
bool TcpConnection::receive_ack(SegmentIn const& s) noexcept {
    if (seq_lt(snd_nxt_, s.ack)) {
        ack_due_ = true;
        return false;
    }
    if (seq_lt(s.ack, snd_una_)) return true;  // old: its data still counts
    bool const duplicate = s.ack == snd_una_ && s.payload.empty() && !(s.flags & tcp::fin) &&
                           s.window == peer_window_ && snd_nxt_ != snd_una_;
    peer_window_ = s.window;
    if (duplicate && ++duplicate_acks_ >= duplicate_acks_to_resend) {
        duplicate_acks_ = 0;
        snd_nxt_ = snd_una_;
        fin_sent_ = fin_sent_ && fin_acked_;
    }
    if (!duplicate) duplicate_acks_ = 0;
    if (s.ack == snd_una_) return true;
    snd_una_ = s.ack;
    std::size_t acked = std::min<std::size_t>(s.ack - out_seq_, out_.size());
    out_.erase(0, acked);
    out_seq_ += static_cast<std::uint32_t>(acked);
    if (fin_sent_ && out_.empty() && s.ack == out_seq_ + 1) fin_acked_ = true;
    return true;
}

void TcpConnection::receive_data(SegmentIn const& s) noexcept {
    std::size_t const length = s.payload.size();
    bool const fin = (s.flags & tcp::fin) != 0;
    if (length == 0 && !fin) return;
    ack_due_ = true;  // every segment with data or FIN is answered, duplicates too
    if (fin_received_ || seq_lt(rcv_nxt_, s.seq)) return;  // after our FIN, or out of order
    std::size_t const old = rcv_nxt_ - s.seq;              // already received
    if (old > length) return;
    std::size_t const fresh = length - old;
    std::size_t const take = std::min<std::size_t>(fresh, window());
    auto const bytes = s.payload.subspan(old, take);
    in_.append(reinterpret_cast<char const*>(bytes.data()), bytes.size());
    rcv_nxt_ += static_cast<std::uint32_t>(take);
    if (fin && take == fresh) {
        fin_received_ = true;
        rcv_nxt_ += 1;
    }
}

std::optional<TcpConnection::Plan> TcpConnection::plan() const noexcept {
    Plan p;
    p.segment.ack = rcv_nxt_;
    p.segment.window = window();
    if (state_ == State::syn_received) {
        if (!syn_ack_due_) return std::nullopt;
        p.segment.seq = iss_;
        p.segment.flags = tcp::syn | tcp::ack_flag;
        p.segment.mss = max_mss;
        return p;
    }
    p.segment.seq = snd_nxt_;
    p.segment.flags = tcp::ack_flag;
    std::size_t const sent = snd_nxt_ - out_seq_;
    if (!fin_sent_ && sent < out_.size()) {
        std::uint32_t const window_end = snd_una_ + peer_window_;
        std::size_t const usable = seq_lt(snd_nxt_, window_end) ? window_end - snd_nxt_ : 0;
        p.data = std::min({out_.size() - sent, std::size_t{mss_}, usable});
        if (p.data > 0) {
            p.segment.flags |= tcp::psh;
            p.segment.payload = std::as_bytes(std::span(out_).subspan(sent, p.data));
            return p;
        }
    }
    if (fin_queued_ && !fin_sent_ && sent == out_.size()) {
        p.fin = true;
        p.segment.flags |= tcp::fin;
        return p;
    }
    if (ack_due_) return p;
    return std::nullopt;
}

bool TcpConnection::wants_to_send() const noexcept {
    return plan().has_value();
}

std::optional<SegmentOut> TcpConnection::next_segment() noexcept {
    auto p = plan();
    if (!p) return std::nullopt;
    ack_due_ = false;
    if (state_ == State::syn_received) {
        syn_ack_due_ = false;
        snd_nxt_ = iss_ + 1;
    } else {
        snd_nxt_ += static_cast<std::uint32_t>(p->data);
        if (p->fin) {
            snd_nxt_ += 1;
            fin_sent_ = true;
        }
    }
    return p->segment;
}

}  // namespace kvmlet::virtio::net::mmds
