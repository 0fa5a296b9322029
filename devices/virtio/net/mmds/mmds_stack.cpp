#include "devices/virtio/net/mmds/mmds_stack.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

#include "devices/virtio/net/mmds/mmds_http.hpp"
#include "devices/virtio/net/mmds/packet_spec.hpp"

namespace kvmlet::virtio::net::mmds {
namespace {

using Bytes = std::span<std::byte const>;

std::array<std::uint8_t, 6> load_mac(Bytes at, std::size_t offset) noexcept {
    std::array<std::uint8_t, 6> mac{};
    for (std::size_t i = 0; i < mac.size(); ++i) mac[i] = std::to_integer<std::uint8_t>(at[offset + i]);
    return mac;
}

void store_mac(std::span<std::byte> at, std::size_t offset, std::array<std::uint8_t, 6> const& mac) noexcept {
    for (std::size_t i = 0; i < mac.size(); ++i) at[offset + i] = std::byte{mac[i]};
}

bool multicast(std::array<std::uint8_t, 6> const& mac) noexcept {
    return (mac[0] & 1) != 0;
}

// Class D and E, and the limited broadcast: never the source of a connection.
bool multicast_ip(std::uint32_t ip) noexcept {
    return (ip >> 28) >= 0xe;
}

// RFC 9293 §3.2: walks the options in a TCP header; false when one is malformed. Bounded: every
// pass moves at least one byte through at most 40.
bool read_options(Bytes options, std::optional<std::uint16_t>& mss) noexcept {
    std::size_t i = 0;
    while (i < options.size()) {
        auto const kind = std::to_integer<std::uint8_t>(options[i]);
        if (kind == tcp::option_end) return true;
        if (kind == tcp::option_nop) {
            ++i;
            continue;
        }
        if (i + 1 >= options.size()) return false;
        auto const length = std::to_integer<std::size_t>(options[i + 1]);
        if (length < 2 || length > options.size() - i) return false;
        if (kind == tcp::option_mss) {
            if (length != tcp::option_mss_length) return false;
            mss = load16(options, i + 2);
        }
        i += length;
    }
    return true;
}

// The sequence space a segment occupies: its data, and one each for SYN and FIN.
std::uint32_t segment_length(SegmentIn const& s) noexcept {
    return static_cast<std::uint32_t>(s.payload.size()) + ((s.flags & tcp::syn) ? 1u : 0u) +
           ((s.flags & tcp::fin) ? 1u : 0u);
}

}  // namespace

MmdsStack::MmdsStack(MmdsConfig config) : config_(std::move(config)) {
    resets_.reserve(max_pending_resets);
    connections_.reserve(max_connections);
    if (::getrandom(&iss_state_, sizeof iss_state_, 0) != static_cast<ssize_t>(sizeof iss_state_))
        iss_state_ = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
    iss_state_ |= 1;  // xorshift needs a state other than zero
}

void MmdsStack::reset() noexcept {
    arp_reply_.reset();
    resets_.clear();
    connections_.clear();
}

Clock::time_point MmdsStack::now() const noexcept {
    return config_.clock ? config_.clock() : Clock::now();
}

std::uint32_t MmdsStack::our_ip() const noexcept {
    auto const& a = config_.ipv4_address;
    return (std::uint32_t{a[0]} << 24) | (std::uint32_t{a[1]} << 16) | (std::uint32_t{a[2]} << 8) | a[3];
}

// xorshift64: initial sequence numbers need only be hard to guess from outside the guest, and
// nothing outside the guest sees them.
std::uint32_t MmdsStack::next_iss() noexcept {
    iss_state_ ^= iss_state_ << 13;
    iss_state_ ^= iss_state_ >> 7;
    iss_state_ ^= iss_state_ << 17;
    return static_cast<std::uint32_t>(iss_state_ >> 16);
}

bool MmdsStack::addressed_to_mmds(Bytes prefix) const noexcept {
    if (prefix.size() < ethernet::header) return false;
    std::uint16_t const type = load16(prefix, ethernet::type);
    if (type == ethernet::type_arp && prefix.size() >= ethernet::header + arp::length)
        return load32(prefix, ethernet::header + arp::tpa) == our_ip();
    if (type == ethernet::type_ipv4 && prefix.size() >= ethernet::header + ipv4::min_header)
        return load32(prefix, ethernet::header + ipv4::dst) == our_ip();
    return false;
}

MmdsStack::Verdict MmdsStack::handle_frame(Bytes frame, bool checksum_partial) noexcept {
    if (!addressed_to_mmds(frame)) return Verdict::not_mmds;
    counters_.frames_taken.add();
    if (multicast(load_mac(frame, ethernet::src))) {
        counters_.unsupported.add();
        return Verdict::taken;
    }
    if (load16(frame, ethernet::type) == ethernet::type_arp)
        handle_arp(frame);
    else
        handle_ipv4(frame, checksum_partial);
    return Verdict::taken;
}

void MmdsStack::handle_arp(Bytes frame) noexcept {
    Bytes const p = frame.subspan(ethernet::header);
    if (load16(p, arp::htype) != arp::htype_ethernet || load16(p, arp::ptype) != ethernet::type_ipv4 ||
        std::to_integer<unsigned>(p[arp::hlen]) != 6 || std::to_integer<unsigned>(p[arp::plen]) != 4) {
        counters_.malformed.add();
        return;
    }
    auto const sender = load_mac(p, arp::sha);
    if (load16(p, arp::oper) != arp::oper_request || multicast(sender)) {
        counters_.unsupported.add();
        return;
    }
    arp_reply_ = ArpReply{sender, load32(p, arp::spa)};
}

void MmdsStack::handle_ipv4(Bytes frame, bool checksum_partial) noexcept {
    Bytes const ip = frame.subspan(ethernet::header);
    auto const version_ihl = std::to_integer<unsigned>(ip[ipv4::version_ihl]);
    std::size_t const header = (version_ihl & 0xf) * 4u;
    std::size_t const total = load16(ip, ipv4::total_length);
    // Lengths first: the header within the packet, the packet within the frame (which may be
    // padded to the Ethernet minimum), then the header checksum.
    if ((version_ihl >> 4) != 4 || header < ipv4::min_header || total < header || total > ip.size() ||
        checksum_of(ones_sum(ip.first(header))) != 0) {
        counters_.malformed.add();
        return;
    }
    std::uint16_t const fragment = load16(ip, ipv4::flags_fragment);
    std::uint32_t const src = load32(ip, ipv4::src);
    if ((fragment & (ipv4::more_fragments | ipv4::fragment_offset_mask)) != 0 ||
        std::to_integer<std::uint8_t>(ip[ipv4::protocol]) != ipv4::protocol_tcp || multicast_ip(src)) {
        counters_.unsupported.add();
        return;
    }
    Peer peer{.mac = load_mac(frame, ethernet::src), .ip = src};
    handle_tcp(peer, ip.subspan(header, total - header), src, checksum_partial);
}

void MmdsStack::handle_tcp(Peer const& from, Bytes segment, std::uint32_t src_ip,
                           bool checksum_partial) noexcept {
    if (segment.size() < tcp::min_header) {
        counters_.malformed.add();
        return;
    }
    std::size_t const header = (std::to_integer<std::size_t>(segment[tcp::data_offset]) >> 4) * 4;
    bool const checksum_ok =
        checksum_partial ||
        checksum_of(ones_sum(segment, pseudo_header_sum(src_ip, our_ip(), segment.size()))) == 0;
    SegmentIn s{.seq = load32(segment, tcp::seq),
                .ack = load32(segment, tcp::ack),
                .flags = std::to_integer<std::uint8_t>(segment[tcp::flags]),
                .window = load16(segment, tcp::window),
                .mss = std::nullopt,
                .payload = {}};
    if (header < tcp::min_header || header > segment.size() || !checksum_ok ||
        !read_options(segment.subspan(tcp::min_header, header - tcp::min_header), s.mss)) {
        counters_.malformed.add();
        return;
    }
    s.payload = segment.subspan(header);
    Peer peer = from;
    peer.port = load16(segment, tcp::src_port);
    peer.our_port = load16(segment, tcp::dst_port);
    if (peer.our_port != http_port) {
        queue_reset(peer, s);  // as a host with no listener on that port
        return;
    }
    handle_segment(peer, s);
}

void MmdsStack::handle_segment(Peer const& peer, SegmentIn const& s) noexcept {
    auto it = std::find_if(connections_.begin(), connections_.end(),
                           [&](auto const& e) { return e->peer.ip == peer.ip && e->peer.port == peer.port; });
    if (it == connections_.end()) {
        bool const syn_only = (s.flags & (tcp::syn | tcp::ack_flag | tcp::rst | tcp::fin)) == tcp::syn;
        if (syn_only)
            open(peer, s);
        else
            queue_reset(peer, s);
        return;
    }
    Entry& e = **it;
    e.peer.mac = peer.mac;  // replies go where the guest sends from
    e.tcp.receive(s, now());
    serve(e.tcp);
    if (e.tcp.finished()) connections_.erase(it);
}

void MmdsStack::open(Peer const& peer, SegmentIn const& syn) noexcept {
    Clock::time_point const t = now();
    if (connections_.size() >= max_connections) {
        auto idlest = std::min_element(
            connections_.begin(), connections_.end(),
            [](auto const& a, auto const& b) { return a->tcp.last_active() < b->tcp.last_active(); });
        if (t - (*idlest)->tcp.last_active() < idle_eviction) {
            queue_reset(peer, syn);
            return;
        }
        connections_.erase(idlest);
        counters_.connections_evicted.add();
    }
    connections_.push_back(std::make_unique<Entry>(Entry{peer, TcpConnection(syn, next_iss(), t)}));
    counters_.connections_opened.add();
}

// Answers the next complete request once the previous response is all acknowledged (one
// response at a time), and closes once the guest has closed and nothing is left to answer.
void MmdsStack::serve(TcpConnection& tcp) noexcept {
    if (!tcp.established() || !tcp.idle()) return;
    std::string_view const received = tcp.received();
    std::size_t const end = request_head_end(received);
    if (end != std::string_view::npos) {
        HttpReply reply;
        try {
            reply = answer_request(received.substr(0, end), config_, now());
        } catch (...) {  // only allocation can fail: the guest gets no answer, and the stream ends
            reply.close = true;
        }
        counters_.requests.add();
        tcp.consume(end);
        tcp.send(reply.bytes);
        if (reply.close) tcp.close();
        return;
    }
    if (received.size() >= TcpConnection::receive_buffer) {
        tcp.consume(received.size());
        tcp.send(request_too_large().bytes);
        tcp.close();
        return;
    }
    if (tcp.fin_received()) tcp.close();
}

void MmdsStack::queue_reset(Peer const& peer, SegmentIn const& cause) noexcept {
    if (cause.flags & tcp::rst) return;  // RFC 9293 §3.10.7.1: never answer a RST
    if (resets_.size() >= max_pending_resets) {
        counters_.resets_dropped.add();
        return;
    }
    // RFC 9293 §3.10.7.1: SEQ=SEG.ACK for a segment with ACK, else ACK=SEG.SEQ+SEG.LEN.
    if (cause.flags & tcp::ack_flag)
        resets_.push_back({peer, cause.ack, 0, false});
    else
        resets_.push_back({peer, 0, cause.seq + segment_length(cause), true});
}

bool MmdsStack::has_frame() const noexcept {
    return arp_reply_ || !resets_.empty() ||
           std::any_of(connections_.begin(), connections_.end(),
                       [](auto const& e) { return e->tcp.wants_to_send(); });
}

std::size_t MmdsStack::next_frame(std::span<std::byte> out) noexcept {
    if (out.size() < max_frame) return 0;
    std::size_t n = 0;
    if (arp_reply_) {
        n = write_arp_reply(out);
        arp_reply_.reset();
        counters_.arp_replies.add();
    } else if (!resets_.empty()) {
        Reset const r = resets_.front();
        resets_.erase(resets_.begin());
        SegmentOut s{.seq = r.seq,
                     .ack = r.ack,
                     .flags = static_cast<std::uint8_t>(tcp::rst | (r.with_ack ? tcp::ack_flag : 0)),
                     .mss = std::nullopt,
                     .payload = {}};
        n = write_tcp(out, r.peer, s);
        counters_.resets_sent.add();
    } else {
        // Round robin, so one connection with a long response cannot starve the others.
        for (std::size_t i = 0; i < connections_.size() && n == 0; ++i) {
            std::size_t const k = (next_to_send_ + i) % connections_.size();
            Entry& e = *connections_[k];
            if (auto s = e.tcp.next_segment()) {
                n = write_tcp(out, e.peer, *s);
                next_to_send_ = k + 1;
                if (e.tcp.finished())
                    connections_.erase(connections_.begin() + static_cast<std::ptrdiff_t>(k));
            }
        }
    }
    if (n > 0) counters_.frames_sent.add();
    return n;
}

std::size_t MmdsStack::write_arp_reply(std::span<std::byte> out) noexcept {
    store_mac(out, ethernet::dst, arp_reply_->mac);
    store_mac(out, ethernet::src, mac);
    store16(out, ethernet::type, ethernet::type_arp);
    auto p = out.subspan(ethernet::header, arp::length);
    store16(p, arp::htype, arp::htype_ethernet);
    store16(p, arp::ptype, ethernet::type_ipv4);
    p[arp::hlen] = std::byte{6};
    p[arp::plen] = std::byte{4};
    store16(p, arp::oper, arp::oper_reply);
    store_mac(p, arp::sha, mac);
    store32(p, arp::spa, our_ip());
    store_mac(p, arp::tha, arp_reply_->mac);
    store32(p, arp::tpa, arp_reply_->ip);
    return ethernet::header + arp::length;
}

std::size_t MmdsStack::write_tcp(std::span<std::byte> out, Peer const& peer, SegmentOut const& s) noexcept {
    std::size_t const tcp_header = tcp::min_header + (s.mss ? tcp::option_mss_length : 0);
    std::size_t const tcp_length = tcp_header + s.payload.size();
    std::size_t const ip_length = ipv4::min_header + tcp_length;
    store_mac(out, ethernet::dst, peer.mac);
    store_mac(out, ethernet::src, mac);
    store16(out, ethernet::type, ethernet::type_ipv4);
    auto ip = out.subspan(ethernet::header, ip_length);
    std::fill(ip.begin(), ip.begin() + ipv4::min_header + tcp::min_header, std::byte{0});
    ip[ipv4::version_ihl] = std::byte{0x45};
    store16(ip, ipv4::total_length, static_cast<std::uint16_t>(ip_length));
    store16(ip, ipv4::identification, ip_id_++);
    store16(ip, ipv4::flags_fragment, ipv4::dont_fragment);
    ip[ipv4::ttl] = std::byte{ipv4::default_ttl};
    ip[ipv4::protocol] = std::byte{ipv4::protocol_tcp};
    store32(ip, ipv4::src, our_ip());
    store32(ip, ipv4::dst, peer.ip);
    store16(ip, ipv4::checksum, checksum_of(ones_sum(ip.first(ipv4::min_header))));
    auto t = ip.subspan(ipv4::min_header);
    store16(t, tcp::src_port, peer.our_port);
    store16(t, tcp::dst_port, peer.port);
    store32(t, tcp::seq, s.seq);
    store32(t, tcp::ack, s.ack);
    t[tcp::data_offset] = std::byte{static_cast<std::uint8_t>((tcp_header / 4) << 4)};
    t[tcp::flags] = std::byte{s.flags};
    store16(t, tcp::window, s.window);
    if (s.mss) {
        t[tcp::min_header] = std::byte{tcp::option_mss};
        t[tcp::min_header + 1] = std::byte{tcp::option_mss_length};
        store16(t, tcp::min_header + 2, *s.mss);
    }
    if (!s.payload.empty()) std::memcpy(t.data() + tcp_header, s.payload.data(), s.payload.size());
    store16(t, tcp::checksum, checksum_of(ones_sum(t, pseudo_header_sum(our_ip(), peer.ip, tcp_length))));
    return ethernet::header + ip_length;
}

}  // namespace kvmlet::virtio::net::mmds
