#pragma once
// Shared by the MMDS tests: a NetDevice with MMDS on (net_test_rig.hpp), a clock the test moves,
// and a guest that builds its own Ethernet/IPv4/TCP frames and reads what MMDS answers from its
// receive queue.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/net/mmds/packet_spec.hpp"
#include "tests/unit/devices/virtio/net_test_rig.hpp"

namespace kvmlet::test {

namespace mmds = virtio::net::mmds;

inline constexpr std::array<std::uint8_t, 6> guest_mac{0x06, 0, 0xac, 0x10, 0, 2};
inline constexpr std::uint32_t guest_ip = 0xa9fe0102;  // 169.254.1.2
inline constexpr std::uint32_t mmds_ip = 0xa9fea9fe;   // 169.254.169.254

inline void put(std::vector<std::byte>& out, std::size_t at, std::span<std::uint8_t const> bytes) {
    for (std::size_t i = 0; i < bytes.size(); ++i) out[at + i] = std::byte{bytes[i]};
}

// An Ethernet header from the guest, then `payload`.
inline std::vector<std::byte> ethernet_frame(std::uint16_t type, std::span<std::byte const> payload,
                                             std::array<std::uint8_t, 6> src = guest_mac) {
    std::vector<std::byte> f(14 + payload.size());
    std::array<std::uint8_t, 6> const dst{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    put(f, 0, dst);
    put(f, 6, src);
    mmds::store16(f, 12, type);
    std::copy(payload.begin(), payload.end(), f.begin() + 14);
    return f;
}

inline std::vector<std::byte> arp_request(std::uint32_t target,
                                          std::array<std::uint8_t, 6> sender = guest_mac) {
    std::vector<std::byte> p(28);
    mmds::store16(p, 0, 1);
    mmds::store16(p, 2, 0x0800);
    p[4] = std::byte{6};
    p[5] = std::byte{4};
    mmds::store16(p, 6, 1);
    put(p, 8, sender);
    mmds::store32(p, 14, guest_ip);
    mmds::store32(p, 24, target);
    return ethernet_frame(0x0806, p, sender);
}

struct TcpFields {
    std::uint16_t src_port = 40000;
    std::uint16_t dst_port = 80;
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint8_t flags = 0;
    std::uint16_t window = 65535;
    std::vector<std::uint8_t> options{};  // a multiple of 4 bytes
    std::string payload{};
};

// An IPv4 packet (in a frame) from the guest, with correct checksums.
inline std::vector<std::byte> ipv4_frame(std::uint8_t protocol, std::span<std::byte const> payload,
                                         std::uint32_t dst = mmds_ip, std::uint32_t src = guest_ip) {
    std::vector<std::byte> ip(20 + payload.size());
    ip[0] = std::byte{0x45};
    mmds::store16(ip, 2, static_cast<std::uint16_t>(ip.size()));
    ip[8] = std::byte{64};
    ip[9] = std::byte{protocol};
    mmds::store32(ip, 12, src);
    mmds::store32(ip, 16, dst);
    mmds::store16(ip, 10, mmds::checksum_of(mmds::ones_sum(std::span(ip).first(20))));
    std::copy(payload.begin(), payload.end(), ip.begin() + 20);
    return ethernet_frame(0x0800, ip);
}

inline std::vector<std::byte> tcp_segment(TcpFields const& t, std::uint32_t dst = mmds_ip) {
    std::size_t const header = 20 + t.options.size();
    std::vector<std::byte> s(header + t.payload.size());
    mmds::store16(s, 0, t.src_port);
    mmds::store16(s, 2, t.dst_port);
    mmds::store32(s, 4, t.seq);
    mmds::store32(s, 8, t.ack);
    s[12] = std::byte{static_cast<std::uint8_t>((header / 4) << 4)};
    s[13] = std::byte{t.flags};
    mmds::store16(s, 14, t.window);
    put(s, 20, t.options);
    std::memcpy(s.data() + header, t.payload.data(), t.payload.size());
    mmds::store16(s, 16,
                  mmds::checksum_of(mmds::ones_sum(s, mmds::pseudo_header_sum(guest_ip, dst, s.size()))));
    return s;
}

inline std::vector<std::byte> tcp_frame(TcpFields const& t, std::uint32_t dst = mmds_ip) {
    return ipv4_frame(6, tcp_segment(t, dst), dst);
}

// A TCP segment MMDS sent, checked on the way: addresses, both checksums.
struct Reply {
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint8_t flags = 0;
    std::uint16_t window = 0;
    std::optional<std::uint16_t> mss;
    std::string payload{};
    bool has(std::uint8_t f) const { return (flags & f) == f; }
};

inline Reply parse_reply(std::vector<std::byte> const& f) {
    REQUIRE(f.size() >= 54);
    CHECK(mmds::load16(f, 12) == 0x0800);
    std::span<std::byte const> ip = std::span(f).subspan(14);
    std::size_t const total = mmds::load16(ip, 2);
    REQUIRE(total <= ip.size());
    CHECK(mmds::checksum_of(mmds::ones_sum(ip.first(20))) == 0);
    CHECK(mmds::load32(ip, 12) == mmds_ip);
    auto const dst = mmds::load32(ip, 16);
    auto const t = ip.subspan(20, total - 20);
    CHECK(mmds::checksum_of(mmds::ones_sum(t, mmds::pseudo_header_sum(mmds_ip, dst, t.size()))) == 0);
    Reply r;
    r.src_port = mmds::load16(t, 0);
    r.dst_port = mmds::load16(t, 2);
    r.seq = mmds::load32(t, 4);
    r.ack = mmds::load32(t, 8);
    std::size_t const header = (std::to_integer<std::size_t>(t[12]) >> 4) * 4;
    r.flags = std::to_integer<std::uint8_t>(t[13]);
    r.window = mmds::load16(t, 14);
    if (header >= 24 && std::to_integer<int>(t[20]) == 2) r.mss = mmds::load16(t, 22);
    for (std::size_t i = header; i < t.size(); ++i) r.payload += static_cast<char>(t[i]);
    return r;
}

struct MmdsRig {
    mmds::Clock::time_point now{std::chrono::hours(1)};
    std::shared_ptr<mmds::MmdsStore> store = std::make_shared<mmds::MmdsStore>();
    std::shared_ptr<mmds::TokenAuthority> tokens = std::make_shared<mmds::TokenAuthority>();
    NetRig rig;
    std::map<std::uint16_t, std::uint64_t> rx_buffers;  // head -> address
    static constexpr std::uint32_t buffer_size = 2048;

    explicit MmdsRig(mmds::Version version = mmds::Version::v1, bool imds_compat = false, int buffers = 64)
        : rig(virtio::NetConfig{.mac = {guest_mac},
                                .mmds = mmds::MmdsConfig{.version = version,
                                                         .imds_compat = imds_compat,
                                                         .store = store,
                                                         .tokens = tokens,
                                                         .clock = [this] { return now; }}}) {
        rig.activate();
        post_buffers(buffers);
    }

    void post_buffers(int n) {
        for (int i = 0; i < n; ++i) {
            auto at = rig.rx.alloc(buffer_size);
            rx_buffers[rig.rx.add_chain({{at, buffer_size, true}})] = at;
        }
        rig.device.process_queue(net::receive_queue);
    }

    void guest_sends(std::span<std::byte const> frame, net::Header header = {}) {
        rig.transmit(packet_bytes(header, frame));
        rig.device.process_queue(net::transmit_queue);
    }

    // Every frame the guest has received since the last call (its buffers are posted again).
    std::vector<std::vector<std::byte>> guest_receives() {
        std::vector<std::vector<std::byte>> frames;
        int used = 0;
        while (auto u = rig.rx.next_used()) {
            ++used;
            REQUIRE(u->len >= sizeof(net::Header));
            auto at = rx_buffers.at(static_cast<std::uint16_t>(u->id));
            CHECK(rig.guest_header(at).num_buffers == 1);
            frames.push_back(guest_bytes(rig.memory, at + sizeof(net::Header), u->len - sizeof(net::Header)));
        }
        if (used > 0) post_buffers(used);
        return frames;
    }

    std::vector<Reply> replies() {
        std::vector<Reply> out;
        for (auto const& f : guest_receives()) out.push_back(parse_reply(f));
        return out;
    }

    mmds::MmdsStack const& stack() const { return *rig.device.mmds(); }
};

// The guest's side of one connection to MMDS.
struct Client {
    MmdsRig& r;
    std::uint16_t port = 40000;
    std::uint32_t seq = 1000;
    std::uint32_t ack = 0;
    std::uint16_t window = 65535;
    bool fin_seen = false;

    TcpFields fields(std::uint8_t flags, std::string payload = {}) const {
        return {.src_port = port,
                .seq = seq,
                .ack = ack,
                .flags = flags,
                .window = window,
                .payload = std::move(payload)};
    }
    void send(std::uint8_t flags, std::string payload = {}) {
        r.guest_sends(tcp_frame(fields(flags, payload)));
        seq += static_cast<std::uint32_t>(payload.size());
        if (flags & (mmds::tcp::syn | mmds::tcp::fin)) ++seq;
    }
    void connect() {
        send(mmds::tcp::syn);
        auto replies = r.replies();
        REQUIRE(replies.size() == 1);
        REQUIRE(replies[0].has(mmds::tcp::syn | mmds::tcp::ack_flag));
        CHECK(replies[0].ack == seq);
        CHECK(replies[0].mss == 1460);
        ack = replies[0].seq + 1;
        send(mmds::tcp::ack_flag);
        CHECK(r.replies().empty());
    }
    // Sends `request`, then ACKs everything that comes back until nothing more does.
    std::string exchange(std::string const& request) {
        send(mmds::tcp::psh | mmds::tcp::ack_flag, request);
        return collect();
    }
    std::string collect() {
        std::string response;
        for (int round = 0; round < 200; ++round) {
            auto replies = r.replies();
            if (replies.empty()) break;
            for (auto const& s : replies) {
                if (s.has(mmds::tcp::rst)) FAIL("unexpected RST");
                if (s.seq != ack) continue;  // a retransmission we already have
                response += s.payload;
                ack += static_cast<std::uint32_t>(s.payload.size());
                if (s.has(mmds::tcp::fin)) {
                    ++ack;
                    fin_seen = true;
                }
            }
            send(fin_seen ? mmds::tcp::ack_flag | mmds::tcp::fin : mmds::tcp::ack_flag);
            if (fin_seen) {  // our FIN is acknowledged, and that is all
                auto last = r.replies();
                REQUIRE(last.size() == 1);
                CHECK(last[0].flags == mmds::tcp::ack_flag);
                CHECK(last[0].ack == seq);
                break;
            }
        }
        return response;
    }
};

// The body of an HTTP response, and its status line.
inline std::string status_line(std::string const& response) {
    return response.substr(0, response.find("\r\n"));
}
inline std::string body(std::string const& response) {
    auto at = response.find("\r\n\r\n");
    return at == std::string::npos ? "" : response.substr(at + 4);
}

}  // namespace kvmlet::test
