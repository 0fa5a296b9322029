// virtio-net: receiving, with and without mergeable buffers, and when the guest has no buffers.
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "tests/unit/devices/virtio/net_test_rig.hpp"

namespace kvmlet::test {
namespace {

using virtio::bit;
namespace feature = net::feature;

constexpr std::uint64_t without_mrg_rxbuf(std::uint64_t features) {
    return features & ~bit(feature::mrg_rxbuf);
}

std::vector<std::byte> frame_at(GuestMemory const& memory, std::uint64_t at, std::size_t len) {
    return guest_bytes(memory, at + sizeof(net::Header), len);
}

TEST_CASE("virtio-net receives a packet into one buffer with num_buffers 1") {
    int const type = GENERATE(SOCK_SEQPACKET, SOCK_DGRAM);
    NetRig rig({.mac = {{2, 0, 0, 0, 0, 1}}}, type);
    bool const mergeable = GENERATE(true, false);
    rig.activate(mergeable ? all_net_features(rig.device) : without_mrg_rxbuf(all_net_features(rig.device)));
    auto at = rig.post_rx(1526);
    auto const frame = frame_bytes(100);
    rig.peer_send(net::Header{}, frame);
    rig.device.process_queue(net::receive_queue);
    auto used = rig.rx.next_used();
    REQUIRE(used);
    CHECK(used->len == 112);
    CHECK(rig.guest_header(at).num_buffers == 1);
    CHECK(frame_at(rig.memory, at, 100) == frame);
    CHECK(rig.irq.used == std::vector<std::size_t>{net::receive_queue});
    CHECK(rig.device.counters().rx_packets.value() == 1);
    CHECK(rig.device.counters().rx_bytes.value() == 100);
    CHECK(rig.watch.readable == 1);  // at activation only: then the buffers ran out
}

TEST_CASE("virtio-net spreads a packet over several chains with MRG_RXBUF and says how many") {
    NetRig rig;
    rig.activate();
    // The first chain splits the header itself 6 + 6 and holds 500 bytes in all.
    auto a = rig.rx.alloc(6), b = rig.rx.alloc(494);
    rig.rx.add_chain({{a, 6, true}, {b, 494, true}});
    auto c = rig.post_rx(512);
    auto d = rig.post_rx(512);
    auto const frame = frame_bytes(1400, 9);
    rig.peer_send(net::Header{}, frame);
    rig.device.process_queue(net::receive_queue);
    std::vector<std::uint32_t> lens;
    while (auto used = rig.rx.next_used()) lens.push_back(used->len);
    CHECK(lens == std::vector<std::uint32_t>{500, 512, 400});  // 12 + 1400 bytes
    auto header_bytes = guest_bytes(rig.memory, a, 6);
    auto rest = guest_bytes(rig.memory, b, 6);
    header_bytes.insert(header_bytes.end(), rest.begin(), rest.end());
    net::Header header{};
    std::memcpy(&header, header_bytes.data(), sizeof header);
    CHECK(header.num_buffers == 3);
    std::vector<std::byte> got = guest_bytes(rig.memory, b + 6, 488);
    for (auto [at, len] : {std::pair{c, 512}, std::pair{d, 400}}) {
        auto part = guest_bytes(rig.memory, at, static_cast<std::size_t>(len));
        got.insert(got.end(), part.begin(), part.end());
    }
    CHECK(got == frame);
    CHECK(rig.device.counters().rx_bytes.value() == 1400);
}

TEST_CASE("virtio-net holds a half-delivered mergeable packet until the guest posts more buffers") {
    NetRig rig;
    rig.activate();
    auto first = rig.post_rx(512);
    auto const frame = frame_bytes(1400, 1);
    rig.peer_send(net::Header{}, frame);
    rig.peer_send(net::Header{}, frame_bytes(60, 2));
    rig.device.process_queue(net::receive_queue);
    CHECK_FALSE(rig.rx.next_used());  // nothing is given back before the packet is complete
    CHECK(rig.irq.used.empty());
    rig.post_rx(512);
    rig.post_rx(512);
    auto third = rig.post_rx(512);
    rig.device.process_queue(net::receive_queue);
    std::vector<std::uint32_t> lens;
    while (auto used = rig.rx.next_used()) lens.push_back(used->len);
    CHECK(lens == std::vector<std::uint32_t>{512, 512, 388, 72});
    CHECK(rig.guest_header(first).num_buffers == 3);
    CHECK(rig.guest_header(third).num_buffers == 1);
    CHECK(frame_at(rig.memory, third, 60) == frame_bytes(60, 2));
    CHECK(rig.device.counters().rx_packets.value() == 2);
}

TEST_CASE("virtio-net reads nothing while the guest has no buffers, and loses nothing") {
    NetRig rig;
    rig.activate();
    for (std::uint8_t i = 0; i < 3; ++i) rig.peer_send(net::Header{}, frame_bytes(60, i));
    rig.device.endpoint_readable();  // the activation's request: readable, but no buffers
    rig.device.process_queue(net::receive_queue);
    CHECK(rig.device_end_has_packet());
    CHECK(rig.watch.readable == 1);  // no new request without buffers: no busy loop
    CHECK(rig.device.counters().rx_packets.value() == 0);

    auto a = rig.post_rx(1526);
    rig.device.process_queue(net::receive_queue);  // the driver's notification
    CHECK(rig.device.counters().rx_packets.value() == 1);
    CHECK(rig.watch.readable == 1);
    auto b = rig.post_rx(1526);
    auto c = rig.post_rx(1526);
    auto d = rig.post_rx(1526);
    rig.device.process_queue(net::receive_queue);
    CHECK(rig.device.counters().rx_packets.value() == 3);
    CHECK(rig.watch.readable == 2);  // buffers left and the socket empty: wait for readable
    CHECK(frame_at(rig.memory, a, 60) == frame_bytes(60, 0));
    CHECK(frame_at(rig.memory, b, 60) == frame_bytes(60, 1));
    CHECK(frame_at(rig.memory, c, 60) == frame_bytes(60, 2));

    rig.peer_send(net::Header{}, frame_bytes(60, 3));
    rig.device.endpoint_readable();
    CHECK(frame_at(rig.memory, d, 60) == frame_bytes(60, 3));
    CHECK(rig.device.counters().rx_dropped() == 0);
}

TEST_CASE("virtio-net drops a packet too big for the chain without MRG_RXBUF and reuses the chain") {
    NetRig rig;
    rig.activate(without_mrg_rxbuf(all_net_features(rig.device)));
    auto at = rig.post_rx(256);
    rig.peer_send(net::Header{}, frame_bytes(1000));
    rig.peer_send(net::Header{}, frame_bytes(200, 5));
    rig.device.process_queue(net::receive_queue);
    auto used = rig.rx.next_used();
    REQUIRE(used);
    CHECK(used->len == 212);
    CHECK_FALSE(rig.rx.next_used());
    CHECK(frame_at(rig.memory, at, 200) == frame_bytes(200, 5));
    CHECK(rig.device.counters().rx_too_big.value() == 1);
    CHECK(rig.device.counters().rx_packets.value() == 1);
}

TEST_CASE("virtio-net passes received offload header fields through when the driver accepted them") {
    NetRig rig;
    rig.activate();
    net::Header tso{};
    tso.flags = net::header_flag::needs_csum;
    tso.gso_type = net::gso::tcpv4;
    tso.hdr_len = 66;
    tso.gso_size = 1448;
    tso.csum_start = 34;
    tso.csum_offset = 16;
    tso.num_buffers = 99;  // the device's to set
    auto const frame = frame_bytes(20000);
    for (int i = 0; i < 8; ++i) rig.post_rx(4096);
    rig.peer_send(tso, frame);
    rig.device.process_queue(net::receive_queue);
    auto got = rig.guest_header(0x100000);
    CHECK(got.flags == tso.flags);
    CHECK(got.gso_type == tso.gso_type);
    CHECK(got.hdr_len == tso.hdr_len);
    CHECK(got.gso_size == tso.gso_size);
    CHECK(got.csum_start == tso.csum_start);
    CHECK(got.csum_offset == tso.csum_offset);
    CHECK(got.num_buffers == 5);  // 20012 bytes in 4096-byte buffers
}

TEST_CASE("virtio-net keeps received offloads the driver did not accept from it") {
    NetRig rig;
    rig.activate(bit(feature::mac) | bit(feature::mrg_rxbuf) | bit(feature::mtu));
    auto at = rig.post_rx(2048);
    net::Header valid{};
    valid.flags = net::header_flag::data_valid;  // fine, but without GUEST_CSUM it reads 0
    net::Header partial{};
    partial.flags = net::header_flag::needs_csum;
    net::Header tso{};
    tso.gso_type = net::gso::tcpv6;
    rig.peer_send(partial, frame_bytes(60));
    rig.peer_send(tso, frame_bytes(1400));
    rig.peer_send(net::Header{}, frame_bytes(1519));  // beyond the MTU the driver accepted
    rig.peer_send(frame_bytes(20));                   // shorter than header + Ethernet header
    rig.peer_send(valid, frame_bytes(60));
    rig.device.process_queue(net::receive_queue);
    auto used = rig.rx.next_used();
    REQUIRE(used);
    CHECK(used->len == 72);
    CHECK_FALSE(rig.rx.next_used());
    CHECK(rig.guest_header(at).flags == 0);
    CHECK(rig.device.counters().rx_malformed.value() == 3);
    CHECK(rig.device.counters().rx_too_big.value() == 1);
}

TEST_CASE("virtio-net gives back receive chains outside RAM or too small, and uses the next") {
    NetRig rig;
    rig.activate();
    rig.rx.add_chain({{NetRig::outside_ram, 1526, true}});
    rig.post_rx(12);  // room for the header only
    auto good = rig.post_rx(1526);
    rig.peer_send(net::Header{}, frame_bytes(60));
    rig.device.process_queue(net::receive_queue);
    CHECK(rig.rx.next_used()->len == 0);
    CHECK(rig.rx.next_used()->len == 0);
    CHECK(rig.rx.next_used()->len == 72);
    CHECK(frame_at(rig.memory, good, 60) == frame_bytes(60));
    CHECK(rig.device.counters().rx_bad_buffers.value() == 1);  // the one outside RAM: the queue's
}

TEST_CASE("virtio-net drops a packet bigger than the largest it accepts") {
    NetRig rig;
    int const size = 1 << 20;
    REQUIRE(::setsockopt(rig.peer.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0);
    rig.activate();
    for (int i = 0; i < 40; ++i) rig.post_rx(4096);
    rig.peer_send(net::Header{}, frame_bytes(net::max_gso_frame + 1));
    rig.peer_send(net::Header{}, frame_bytes(60));
    rig.device.process_queue(net::receive_queue);
    CHECK(rig.rx.next_used()->len == 72);
    CHECK(rig.device.counters().rx_too_big.value() == 1);
}

TEST_CASE("virtio-net stops after a bounded number of packets and asks to be called again") {
    NetRig rig;
    int const size = 1 << 20;
    REQUIRE(::setsockopt(rig.peer.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0);
    rig.activate();
    for (std::uint32_t i = 0; i < virtio::NetDevice::max_packets_per_call; ++i) rig.post_rx(128);
    for (std::uint32_t i = 0; i <= virtio::NetDevice::max_packets_per_call; ++i)
        rig.peer_send(net::Header{}, frame_bytes(60));
    rig.device.endpoint_readable();
    CHECK(rig.device.counters().rx_packets.value() == virtio::NetDevice::max_packets_per_call);
    CHECK(rig.watch.readable == 2);
    CHECK(rig.device_end_has_packet());
}

TEST_CASE("virtio-net stops reading when the peer has gone, without asking to be called again") {
    NetRig rig;
    rig.activate();
    rig.post_rx(1526);
    rig.peer.reset();
    rig.device.endpoint_readable();
    CHECK(rig.device.counters().rx_errors.value() == 1);
    CHECK(rig.watch.readable == 1);  // only the activation's
    CHECK_FALSE(rig.rx.next_used());
}

TEST_CASE("virtio-net suppresses receive interrupts as EVENT_IDX asks") {
    NetRig rig;
    rig.activate(std::nullopt, true);
    rig.rx.set_used_event(1);  // interrupt once the second chain is used
    for (int i = 0; i < 3; ++i) rig.post_rx(1526);
    rig.peer_send(net::Header{}, frame_bytes(60));
    rig.device.process_queue(net::receive_queue);
    CHECK(rig.irq.used.empty());
    rig.peer_send(net::Header{}, frame_bytes(60));
    rig.device.endpoint_readable();
    CHECK(rig.irq.used == std::vector<std::size_t>{net::receive_queue});
    rig.peer_send(net::Header{}, frame_bytes(60));
    rig.device.endpoint_readable();
    CHECK(rig.irq.used.size() == 1);  // used_event still 1: no more
}

}  // namespace
}  // namespace kvmlet::test
