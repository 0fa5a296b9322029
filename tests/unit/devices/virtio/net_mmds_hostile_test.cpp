// virtio-net with MMDS: what a hostile guest sends. Every bad frame is dropped and counted, never
// reaches the TAP, and leaves MMDS serving; the limits on connections, RSTs and bytes hold.
#include <catch2/catch.hpp>

#include "tests/unit/devices/virtio/net_mmds_rig.hpp"

namespace kvmlet::test {
namespace {

namespace tcp = mmds::tcp;

std::string const request = "GET /a HTTP/1.1\r\nConnection: close\r\n\r\n";

// Sends `frame`, expects no answer, no packet at the TAP, and `counter` one higher.
void dropped(MmdsRig& r, std::vector<std::byte> const& frame, virtio::Counter const& counter) {
    auto before = counter.value();
    r.guest_sends(frame);
    CHECK(r.guest_receives().empty());
    CHECK_FALSE(r.rig.peer_receive());
    CHECK(counter.value() == before + 1);
}

// MMDS still answers after whatever came before.
void still_serves(MmdsRig& r, std::uint16_t port = 50000) {
    REQUIRE_FALSE(r.store->replace(R"({"a": "ok"})"));
    Client c{r, port};
    c.connect();
    CHECK(body(c.exchange(request)) == "ok");
}

TEST_CASE("MMDS drops IPv4 packets with bad lengths or a bad header checksum") {
    MmdsRig r;
    auto const& malformed = r.stack().counters().malformed;
    auto good = tcp_frame({.seq = 1, .flags = tcp::syn});
    auto with = [&](std::size_t at, std::uint8_t value, bool fix_checksum = true) {
        auto f = good;
        f[at] = std::byte{value};
        if (fix_checksum) {
            mmds::store16(f, 24, 0);
            mmds::store16(f, 24, mmds::checksum_of(mmds::ones_sum(std::span(f).subspan(14, 20))));
        }
        return f;
    };
    dropped(r, with(24, 0x12, false), malformed);  // header checksum
    dropped(r, with(14, 0x44), malformed);         // IHL 4
    dropped(r, with(14, 0x4f), malformed);         // IHL 15: header longer than the packet
    dropped(r, with(14, 0x65), malformed);         // version 6
    dropped(r, with(16, 0xff), malformed);         // total length beyond the frame
    dropped(r, with(17, 10), malformed);           // total length shorter than the header
    auto truncated = with(17, 20);                 // no room for the TCP header
    dropped(r, truncated, malformed);
    still_serves(r);
}

TEST_CASE("MMDS drops fragments, protocols other than TCP and multicast senders") {
    MmdsRig r;
    auto const& unsupported = r.stack().counters().unsupported;
    auto fragment = [&](std::uint16_t flags_offset) {
        auto f = tcp_frame({.seq = 1, .flags = tcp::syn});
        mmds::store16(f, 20, flags_offset);
        mmds::store16(f, 24, 0);
        mmds::store16(f, 24, mmds::checksum_of(mmds::ones_sum(std::span(f).subspan(14, 20))));
        return f;
    };
    dropped(r, fragment(0x2000), unsupported);  // more fragments
    dropped(r, fragment(0x0001), unsupported);  // a later fragment
    std::vector<std::byte> udp(8 + 10);
    dropped(r, ipv4_frame(17, udp), unsupported);
    dropped(r, ipv4_frame(1, udp), unsupported);
    auto f = tcp_frame({.seq = 1, .flags = tcp::syn});
    f[6] = std::byte{0x01};  // a multicast source MAC
    dropped(r, f, unsupported);
    dropped(r, arp_request(mmds_ip, {0x01, 0, 0x5e, 0, 0, 1}), unsupported);
    still_serves(r);
}

TEST_CASE("MMDS drops TCP segments with a bad checksum, data offset or options") {
    MmdsRig r;
    auto const& malformed = r.stack().counters().malformed;
    auto bad_sum = tcp_frame({.seq = 1, .flags = tcp::syn});
    bad_sum[14 + 20 + 16] ^= std::byte{1};
    dropped(r, bad_sum, malformed);
    auto offset = [&](std::uint8_t value) {
        auto segment = tcp_segment({.seq = 1, .flags = tcp::syn});
        segment[12] = std::byte{value};
        mmds::store16(segment, 16, 0);
        mmds::store16(segment, 16,
                      mmds::checksum_of(mmds::ones_sum(
                          segment, mmds::pseudo_header_sum(guest_ip, mmds_ip, segment.size()))));
        return ipv4_frame(6, segment);
    };
    dropped(r, offset(0x40), malformed);  // 16 bytes: shorter than a TCP header
    dropped(r, offset(0xf0), malformed);  // 60 bytes: longer than the segment
    auto options = [&](std::vector<std::uint8_t> o) {
        return tcp_frame({.seq = 1, .flags = tcp::syn, .options = o});
    };
    dropped(r, options({2, 3, 5, 0}), malformed);   // MSS of length 3
    dropped(r, options({8, 0, 0, 0}), malformed);   // length 0
    dropped(r, options({1, 1, 8, 10}), malformed);  // runs past the header
    dropped(r, options({1, 1, 1, 2}), malformed);   // a kind without its length
    r.guest_sends(options({1, 1, 1, 0}));           // NOPs and the end: fine
    auto replies = r.replies();
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].has(tcp::syn | tcp::ack_flag));
    still_serves(r);
}

TEST_CASE("MMDS trusts a partial checksum the guest asked the device to complete") {
    MmdsRig r;
    auto f = tcp_frame({.seq = 1, .flags = tcp::syn});
    mmds::store16(f, 14 + 20 + 16, 0x1234);
    net::Header h{};
    h.flags = net::header_flag::needs_csum;
    h.csum_start = 34;
    h.csum_offset = 16;
    r.guest_sends(f, h);
    CHECK(r.replies().size() == 1);
}

TEST_CASE("MMDS sends no more than the guest's window and MSS allow") {
    MmdsRig r;
    std::string const big(5000, 'x');
    REQUIRE_FALSE(r.store->replace(R"({"a": ")" + big + R"("})"));
    auto const [window, mss, largest] =
        GENERATE(std::tuple{std::uint16_t{100}, std::uint16_t{1460}, std::size_t{100}},
                 std::tuple{std::uint16_t{65535}, std::uint16_t{1460}, std::size_t{1460}},
                 std::tuple{std::uint16_t{65535}, std::uint16_t{1}, std::size_t{64}});
    Client c{r};
    c.window = window;
    r.guest_sends(
        tcp_frame({.src_port = c.port,
                   .seq = c.seq++,
                   .flags = tcp::syn,
                   .window = window,
                   .options = {2, 4, static_cast<std::uint8_t>(mss >> 8), static_cast<std::uint8_t>(mss)}}));
    auto synack = r.replies();
    REQUIRE(synack.size() == 1);
    c.ack = synack[0].seq + 1;
    r.guest_sends(tcp_frame(
        {.src_port = c.port, .seq = c.seq, .ack = c.ack, .flags = tcp::ack_flag, .window = window}));
    std::string response;
    c.send(tcp::ack_flag | tcp::psh, request);
    // Unlike Client::collect, look at every round: in flight never beyond the window.
    for (int round = 0; round < 1000 && !c.fin_seen; ++round) {
        auto replies = r.replies();
        REQUIRE_FALSE(replies.empty());
        std::size_t in_flight = 0;
        for (auto const& s : replies) {
            CHECK(s.payload.size() <= largest);
            in_flight += s.payload.size();
            REQUIRE(s.seq == c.ack);
            response += s.payload;
            c.ack += static_cast<std::uint32_t>(s.payload.size()) + (s.has(tcp::fin) ? 1 : 0);
            c.fin_seen = s.has(tcp::fin);
        }
        CHECK(in_flight <= window);
        c.send(tcp::ack_flag);
    }
    CHECK(body(response) == big);
}

TEST_CASE("MMDS's MSS option from the guest is clamped") {
    MmdsRig r;
    REQUIRE_FALSE(r.store->replace(R"({"a": ")" + std::string(300, 'y') + R"("})"));
    Client c{r};
    r.guest_sends(tcp_frame({.src_port = c.port, .seq = c.seq, .flags = tcp::syn, .options = {2, 4, 0, 1}}));
    c.seq++;
    auto synack = r.replies();
    REQUIRE(synack.size() == 1);
    c.ack = synack[0].seq + 1;
    c.send(tcp::ack_flag);
    c.send(tcp::ack_flag | tcp::psh, request);
    auto replies = r.replies();
    REQUIRE_FALSE(replies.empty());
    for (auto const& s : replies) CHECK(s.payload.size() <= 64);
}

TEST_CASE("an RST storm for no connection gets at most a bounded number of RSTs back") {
    MmdsRig r(mmds::Version::v1, false, 0);  // RSTs pile up while the guest has no receive buffers
    // The fake driver's transmit ring takes 256 chains in all: 150 are plenty.
    for (std::uint16_t i = 0; i < 150; ++i)
        r.guest_sends(tcp_frame(
            {.src_port = static_cast<std::uint16_t>(1000 + i), .seq = i, .ack = 77, .flags = tcp::ack_flag}));
    r.post_buffers(64);
    auto replies = r.replies();
    CHECK(replies.size() == mmds::MmdsStack::max_pending_resets);
    CHECK(r.stack().counters().resets_dropped.value() == 150 - mmds::MmdsStack::max_pending_resets);
    for (auto const& s : replies) {
        CHECK(s.flags == tcp::rst);
        CHECK(s.seq == 77);
    }
    CHECK(r.stack().counters().resets_dropped.value() > 0);
    // RSTs are never answered.
    for (std::uint16_t i = 0; i < 100; ++i)
        r.guest_sends(
            tcp_frame({.src_port = static_cast<std::uint16_t>(3000 + i), .seq = i, .flags = tcp::rst}));
    CHECK(r.replies().empty());
    still_serves(r);
}

TEST_CASE("segments to another port are refused with RST") {
    MmdsRig r;
    r.guest_sends(tcp_frame({.dst_port = 8080, .seq = 5, .flags = tcp::syn}));
    auto replies = r.replies();
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].flags == (tcp::rst | tcp::ack_flag));
    CHECK(replies[0].ack == 6);
    CHECK(replies[0].src_port == 8080);
}

TEST_CASE("an RST resets a connection only with the exact sequence number") {
    MmdsRig r;
    Client c{r};
    c.connect();
    r.guest_sends(tcp_frame(c.fields(tcp::rst)));
    CHECK(r.stack().connections() == 0);
}

TEST_CASE("an RST inside the window but not at its start gets a challenge ACK") {
    MmdsRig r;
    Client c{r};
    c.connect();
    auto f = c.fields(tcp::rst);
    f.seq += 10;
    r.guest_sends(tcp_frame(f));
    auto replies = r.replies();
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].flags == tcp::ack_flag);
    CHECK(replies[0].ack == c.seq);
    f.seq += 100000;  // outside: ignored
    r.guest_sends(tcp_frame(f));
    CHECK(r.replies().empty());
    CHECK(r.stack().connections() == 1);
    REQUIRE_FALSE(r.store->replace(R"({"a": "ok"})"));
    CHECK(body(c.exchange(request)) == "ok");
}

TEST_CASE("MMDS holds at most 16 connections and evicts only long idle ones") {
    MmdsRig r;
    for (std::uint16_t i = 0; i < mmds::MmdsStack::max_connections; ++i)
        r.guest_sends(
            tcp_frame({.src_port = static_cast<std::uint16_t>(2000 + i), .seq = 1, .flags = tcp::syn}));
    CHECK(r.replies().size() == mmds::MmdsStack::max_connections);
    r.guest_sends(tcp_frame({.src_port = 3000, .seq = 1, .flags = tcp::syn}));
    auto refused = r.replies();
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].flags == (tcp::rst | tcp::ack_flag));
    CHECK(r.stack().connections() == mmds::MmdsStack::max_connections);
    r.now += mmds::MmdsStack::idle_eviction;
    r.guest_sends(tcp_frame({.src_port = 3000, .seq = 1, .flags = tcp::syn}));
    auto opened = r.replies();
    REQUIRE(opened.size() == 1);
    CHECK(opened[0].has(tcp::syn | tcp::ack_flag));
    CHECK(r.stack().counters().connections_evicted.value() == 1);
    CHECK(r.stack().connections() == mmds::MmdsStack::max_connections);
}

TEST_CASE("a request head larger than the receive buffer is a 400 and no more is taken") {
    MmdsRig r;
    Client c{r};
    c.connect();
    std::uint32_t const start = c.seq;
    std::uint32_t highest_ack = 0;
    for (int i = 0; i < 5; ++i) {  // 5 x 1000 bytes: the last ones do not fit
        r.guest_sends(tcp_frame(c.fields(tcp::ack_flag, std::string(1000, 'a'))));
        c.seq += 1000;
        for (auto const& s : r.replies()) {
            highest_ack = std::max(highest_ack, s.ack - start);
            if (!s.payload.empty()) CHECK(status_line(s.payload) == "HTTP/1.1 400 Bad Request");
        }
    }
    CHECK(highest_ack == mmds::TcpConnection::receive_buffer);
}

TEST_CASE("out-of-order data is dropped and answered with the ACK the guest needs") {
    MmdsRig r;
    Client c{r};
    c.connect();
    auto f = c.fields(tcp::ack_flag | tcp::psh, request);
    f.seq += 5;
    r.guest_sends(tcp_frame(f));
    auto replies = r.replies();
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].ack == c.seq);
    CHECK(replies[0].payload.empty());
    CHECK(r.stack().counters().requests.value() == 0);
    REQUIRE_FALSE(r.store->replace(R"({"a": "ok"})"));
    CHECK(body(c.exchange(request)) == "ok");
}

TEST_CASE("an ACK of what MMDS never sent changes nothing") {
    MmdsRig r;
    Client c{r};
    c.connect();
    auto f = c.fields(tcp::ack_flag, request);
    f.ack += 100000;
    r.guest_sends(tcp_frame(f));
    auto replies = r.replies();
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].payload.empty());
    CHECK(r.stack().counters().requests.value() == 0);
}

TEST_CASE("a retransmitted SYN gets the SYN-ACK again, and three duplicate ACKs resend the data") {
    MmdsRig r;
    REQUIRE_FALSE(r.store->replace(R"({"a": "ok"})"));
    Client c{r};
    c.send(tcp::syn);
    auto first = r.replies();
    c.seq--;
    c.send(tcp::syn);
    auto again = r.replies();
    REQUIRE(first.size() == 1);
    REQUIRE(again.size() == 1);
    CHECK(again[0].seq == first[0].seq);
    c.ack = first[0].seq + 1;
    c.send(tcp::ack_flag);
    c.send(tcp::ack_flag | tcp::psh, request);
    auto lost = r.replies();  // the guest "loses" these
    REQUIRE_FALSE(lost.empty());
    for (int i = 0; i < 3; ++i) r.guest_sends(tcp_frame(c.fields(tcp::ack_flag)));
    auto resent = r.replies();
    REQUIRE_FALSE(resent.empty());
    CHECK(resent[0].seq == lost[0].seq);
    CHECK(resent[0].payload == lost[0].payload);
}

TEST_CASE("sequence numbers that wrap around 2^32 work") {
    MmdsRig r;
    REQUIRE_FALSE(r.store->replace(R"({"a": "ok"})"));
    Client c{r};
    c.seq = 0xffffffff - 10;
    c.connect();
    CHECK(body(c.exchange(request)) == "ok");
}

}  // namespace
}  // namespace kvmlet::test
