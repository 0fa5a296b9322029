// virtio-net: configuration, features, offload negotiation, transmit, reset.
#include <linux/if_tun.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "devices/virtio/net/tap.hpp"
#include "tests/unit/devices/virtio/net_test_rig.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::test {
namespace {

using virtio::bit;
namespace feature = net::feature;

template <class T>
T config_field(virtio::NetDevice const& device, std::uint64_t offset) {
    T value{};
    device.read_config(offset, std::as_writable_bytes(std::span{&value, 1}));
    return value;
}

TEST_CASE("virtio-net config space holds the MAC, link up, one queue pair and the MTU") {
    NetRig rig({.mac = {{0x06, 0x00, 0xac, 0x10, 0x00, 0x02}}, .mtu = 9000});
    std::array<std::uint8_t, 6> mac{};
    rig.device.read_config(0, std::as_writable_bytes(std::span{mac}));
    CHECK(mac == std::array<std::uint8_t, 6>{0x06, 0x00, 0xac, 0x10, 0x00, 0x02});
    CHECK(config_field<std::uint16_t>(rig.device, 6) == net::status_link_up);
    CHECK(config_field<std::uint16_t>(rig.device, 8) == 1);
    CHECK(config_field<std::uint16_t>(rig.device, 10) == 9000);
    CHECK(config_field<std::uint8_t>(rig.device, 3) == 0x10);  // a byte in the middle of the MAC
    CHECK(config_field<std::uint32_t>(rig.device, 24) == 0);   // past the end: zeros
    CHECK(config_field<std::uint32_t>(rig.device, 22) == 0);   // straddling the end: zeros beyond it
    std::array<std::byte, 6> changed{};
    rig.device.write_config(0, changed);  // read-only (§5.1.4: no CTRL_MAC_ADDR)
    CHECK(config_field<std::uint8_t>(rig.device, 0) == 0x06);
}

TEST_CASE("virtio-net offers offloads unless configured off, and never a control queue or multiqueue") {
    NetRig with;
    NetRig without({.mac = {{2, 0, 0, 0, 0, 1}}, .mtu = 1500, .offloads = false});
    std::uint64_t const always = bit(feature::mac) | bit(feature::status) | bit(feature::mtu) |
                                 bit(feature::mrg_rxbuf) | bit(virtio::feature::ring_event_idx) |
                                 bit(virtio::feature::ring_indirect_desc);
    std::uint64_t const offloads = bit(feature::csum) | bit(feature::guest_csum) | bit(feature::host_tso4) |
                                   bit(feature::host_tso6) | bit(feature::guest_tso4) |
                                   bit(feature::guest_tso6);
    CHECK(with.device.features() == (always | offloads));
    CHECK(without.device.features() == always);
    CHECK((with.device.features() & (bit(feature::ctrl_vq) | bit(feature::mq))) == 0);
    CHECK(with.device.queue_max_sizes().size() == 2);
    CHECK(with.device.type() == virtio::DeviceType::net);
}

TEST_CASE("virtio-net refuses a tiny MTU, a multicast MAC and the all-zero MAC") {
    CHECK_THROWS_AS(NetRig({.mac = {{2, 0, 0, 0, 0, 1}}, .mtu = 67}), Error);
    CHECK_THROWS_AS(NetRig({.mac = {{1, 0, 0x5e, 0, 0, 1}}}), Error);
    CHECK_THROWS_AS(NetRig({.mac = {}}), Error);
}

TEST_CASE("virtio-net sets the endpoint's offloads from the GUEST_ features the driver accepted") {
    NetRig rig;
    SECTION("all of them") {
        rig.activate();
        CHECK(rig.endpoint->offloads() == net::Offloads{.csum = true, .tso4 = true, .tso6 = true});
    }
    SECTION("segmentation without checksums is none at all (§5.1.3.1)") {
        rig.activate(bit(feature::guest_tso4) | bit(feature::guest_tso6) | bit(feature::mrg_rxbuf));
        CHECK(rig.endpoint->offloads() == net::Offloads{});
    }
    SECTION("checksums and TSO over IPv4 only") {
        rig.activate(bit(feature::guest_csum) | bit(feature::guest_tso4));
        CHECK(rig.endpoint->offloads() == net::Offloads{.csum = true, .tso4 = true, .tso6 = false});
    }
    SECTION("none, after a reset that had them") {
        rig.activate();
        rig.device.reset();
        rig.activate(bit(feature::mac));
        CHECK(rig.endpoint->offloads() == net::Offloads{});
        CHECK(rig.endpoint->offload_requests() == 2);
    }
}

TEST_CASE("TAP offload flags follow the offloads, TSO only with checksums") {
    CHECK(net::Tap::tun_flags({}) == 0);
    CHECK(net::Tap::tun_flags({.csum = false, .tso4 = true, .tso6 = true}) == 0);
    CHECK(net::Tap::tun_flags({.csum = true}) == TUN_F_CSUM);
    CHECK(net::Tap::tun_flags({.csum = true, .tso4 = true, .tso6 = true}) ==
          (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6));
}

TEST_CASE("virtio-net transmits a one-buffer chain as one packet and returns it with length 0") {
    NetRig rig;
    rig.activate();
    auto const frame = frame_bytes(60);
    net::Header header{};
    header.num_buffers = 7;  // unused on transmit: the endpoint sees 0
    auto head = rig.transmit(packet_bytes(header, frame));
    rig.device.process_queue(net::transmit_queue);
    auto got = rig.peer_receive();
    REQUIRE(got);
    header.num_buffers = 0;
    CHECK(*got == packet_bytes(header, frame));
    auto used = rig.tx.next_used();
    REQUIRE(used);
    CHECK(used->id == head);
    CHECK(used->len == 0);
    CHECK(rig.irq.used == std::vector<std::size_t>{net::transmit_queue});
    CHECK(rig.device.counters().tx_packets.value() == 1);
    CHECK(rig.device.counters().tx_bytes.value() == 60);
}

TEST_CASE("virtio-net gathers a packet split anywhere across buffers, direct or indirect, small or large") {
    NetRig rig({.mac = {{2, 0, 0, 0, 0, 1}}, .mtu = 9000});
    rig.activate();
    // Small packets are copied out of guest RAM, large ones sent from it: both ways.
    std::size_t const frame = GENERATE(std::size_t{100}, virtio::NetDevice::max_copied_packet + 1);
    auto const packet = packet_bytes(net::Header{}, frame_bytes(frame, 3));
    std::span<std::byte const> p(packet);
    // The header split 5 + 7, the frame 40 + the rest.
    std::vector<Buffer> buffers{
        {rig.tx.alloc_with(p.subspan(0, 5)), 5, false},
        {rig.tx.alloc_with(p.subspan(5, 47)), 47, false},
        {rig.tx.alloc_with(p.subspan(52)), static_cast<std::uint32_t>(p.size() - 52), false}};
    bool const indirect = GENERATE(false, true);
    if (indirect)
        rig.tx.add_indirect_chain(buffers);
    else
        rig.tx.add_chain(buffers);
    rig.device.process_queue(net::transmit_queue);
    auto got = rig.peer_receive();
    REQUIRE(got);
    CHECK(*got == packet);
}

TEST_CASE("virtio-net drops a frame larger than the MTU allows and sends the next") {
    NetRig rig;
    rig.activate();
    rig.transmit(packet_bytes({}, frame_bytes(1500 + 14 + 4 + 1)));
    rig.transmit(packet_bytes({}, frame_bytes(1500 + 14 + 4)));  // with a VLAN tag: the largest
    rig.device.process_queue(net::transmit_queue);
    auto got = rig.peer_receive();
    REQUIRE(got);
    CHECK(got->size() == 12 + 1518);
    CHECK_FALSE(rig.peer_receive());
    CHECK(rig.tx.next_used()->len == 0);
    CHECK(rig.tx.next_used()->len == 0);
    CHECK(rig.device.counters().tx_too_big.value() == 1);
    CHECK(rig.device.counters().tx_packets.value() == 1);
}

TEST_CASE("virtio-net transmits segmentation offloads the driver accepted and drops the others") {
    NetRig rig;
    net::Header tso{};
    tso.flags = net::header_flag::needs_csum;
    tso.gso_type = net::gso::tcpv6;
    tso.hdr_len = 74;
    tso.gso_size = 1440;
    tso.csum_start = 54;
    tso.csum_offset = 16;
    auto const big = frame_bytes(60000);
    SECTION("accepted: header and 60000-byte frame go out as they are") {
        rig.activate();
        rig.transmit(packet_bytes(tso, big));
        rig.device.process_queue(net::transmit_queue);
        auto got = rig.peer_receive();
        REQUIRE(got);
        CHECK(*got == packet_bytes(tso, big));
    }
    SECTION("not accepted: TSO6 without HOST_TSO6") {
        rig.activate(bit(feature::host_tso4) | bit(feature::csum));
        rig.transmit(packet_bytes(tso, big));
        rig.device.process_queue(net::transmit_queue);
        CHECK_FALSE(rig.peer_receive());
        CHECK(rig.device.counters().tx_bad_offload.value() == 1);
    }
    SECTION("not accepted: a partial checksum without CSUM, UDP segmentation, ECN") {
        rig.activate(bit(feature::mac));
        net::Header csum_only{};
        csum_only.flags = net::header_flag::needs_csum;
        net::Header ufo{};
        ufo.gso_type = net::gso::udp;
        net::Header ecn{};
        ecn.gso_type = static_cast<std::uint8_t>(net::gso::tcpv4 | net::gso::ecn);
        for (auto const& h : {csum_only, ufo, ecn}) rig.transmit(packet_bytes(h, frame_bytes(60)));
        rig.device.process_queue(net::transmit_queue);
        CHECK_FALSE(rig.peer_receive());
        CHECK(rig.device.counters().tx_bad_offload.value() == 3);
    }
    SECTION("a segmented frame beyond 64 KiB and its headers") {
        rig.activate();
        rig.transmit(packet_bytes(tso, frame_bytes(net::max_gso_frame + 1)));
        rig.device.process_queue(net::transmit_queue);
        CHECK_FALSE(rig.peer_receive());
        CHECK(rig.device.counters().tx_too_big.value() == 1);
    }
}

TEST_CASE("virtio-net drops a transmit chain that leaves RAM and keeps working") {
    NetRig rig;
    rig.activate();
    auto const header = packet_bytes({}, {});
    auto h = rig.tx.alloc_with(header);
    rig.tx.add_chain({{h, 12, false}, {NetRig::outside_ram, 60, false}});
    rig.tx.add_chain({{NetRig::outside_ram, 72, false}});  // the header itself outside RAM
    rig.transmit(packet_bytes({}, frame_bytes(60)));
    rig.device.process_queue(net::transmit_queue);
    auto got = rig.peer_receive();
    REQUIRE(got);
    CHECK(got->size() == 72);
    CHECK_FALSE(rig.peer_receive());
    CHECK(rig.device.counters().tx_outside_ram.value() == 0);  // the queue gave them back itself
    for (int i = 0; i < 3; ++i) CHECK(rig.tx.next_used()->len == 0);
}

TEST_CASE("virtio-net drops a transmit chain shorter than the 12-byte header or an Ethernet header") {
    NetRig rig;
    rig.activate();
    auto const eight = frame_bytes(8);
    rig.transmit(eight);
    rig.transmit(packet_bytes({}, frame_bytes(13)));
    rig.device.process_queue(net::transmit_queue);
    CHECK_FALSE(rig.peer_receive());
    CHECK(rig.device.counters().tx_too_short.value() == 2);
    CHECK(rig.device.counters().tx_dropped() == 2);
}

// Makes the device's end of the socket pair hold at most a few packets.
void shrink_send_buffer(NetRig& rig) {
    int const size = 4096;  // the kernel's minimum is about this much
    REQUIRE(::setsockopt(rig.endpoint->fd(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0);
}

TEST_CASE("virtio-net waits for a full endpoint without losing or reordering packets") {
    NetRig rig;
    shrink_send_buffer(rig);
    rig.activate();
    constexpr int packets = 40;
    for (int i = 0; i < packets; ++i)
        rig.transmit(packet_bytes({}, frame_bytes(1000, static_cast<std::uint8_t>(i))));
    rig.device.process_queue(net::transmit_queue);
    REQUIRE(rig.watch.writable == 1);
    auto const sent_first = rig.device.counters().tx_packets.value();
    CHECK(sent_first < packets);
    CHECK(rig.device.counters().tx_blocked.value() == 1);
    rig.device.process_queue(net::transmit_queue);  // a notification while waiting changes nothing
    CHECK(rig.device.counters().tx_packets.value() == sent_first);
    CHECK(rig.watch.writable == 1);
    int received = 0;
    // Bound: each round the watch fires once the peer has read everything.
    for (int round = 0; round < packets && received < packets; ++round) {
        while (auto got = rig.peer_receive()) {
            CHECK(*got == packet_bytes({}, frame_bytes(1000, static_cast<std::uint8_t>(received))));
            ++received;
        }
        rig.device.endpoint_writable();
    }
    CHECK(received == packets);
    CHECK(rig.device.counters().tx_packets.value() == packets);
    CHECK(rig.device.counters().tx_dropped() == 0);
}

TEST_CASE("virtio-net counts a packet the endpoint refuses and sends the next") {
    NetRig rig({.mac = {{2, 0, 0, 0, 0, 1}}}, SOCK_DGRAM);
    rig.activate();
    rig.peer.reset();  // nobody at the other end: ECONNREFUSED
    rig.transmit(packet_bytes({}, frame_bytes(60)));
    rig.device.process_queue(net::transmit_queue);
    CHECK(rig.device.counters().tx_errors.value() == 1);
    CHECK(rig.tx.next_used()->len == 0);
    CHECK(rig.watch.writable == 0);
}

TEST_CASE("virtio-net transmits over a datagram socket as over a seqpacket one") {
    int const type = GENERATE(SOCK_DGRAM, SOCK_SEQPACKET);
    NetRig rig({.mac = {{2, 0, 0, 0, 0, 1}}}, type);
    rig.activate();
    rig.transmit(packet_bytes({}, frame_bytes(64)));
    rig.device.process_queue(net::transmit_queue);
    auto got = rig.peer_receive();
    REQUIRE(got);
    CHECK(got->size() == 76);
}

TEST_CASE("virtio-net suppresses transmit interrupts as EVENT_IDX asks") {
    NetRig rig;
    rig.activate(std::nullopt, true);
    rig.tx.set_used_event(2);  // interrupt once the third chain is used
    rig.transmit(packet_bytes({}, frame_bytes(60)));
    rig.transmit(packet_bytes({}, frame_bytes(60)));
    rig.device.process_queue(net::transmit_queue);
    CHECK(rig.irq.used.empty());
    rig.transmit(packet_bytes({}, frame_bytes(60)));
    rig.device.process_queue(net::transmit_queue);
    CHECK(rig.irq.used == std::vector<std::size_t>{net::transmit_queue});
    CHECK(rig.tx.avail_event() == 3);  // and asks to be notified of the next chain
}

TEST_CASE("virtio-net asks for a reset once when a queue breaks, and the other queue keeps working") {
    NetRig rig;
    rig.activate();
    rig.tx.set_avail_idx(1000);  // more than the queue holds
    rig.device.process_queue(net::transmit_queue);
    rig.device.process_queue(net::transmit_queue);
    CHECK(rig.irq.resets == 1);
    auto at = rig.post_rx(1526);
    rig.peer_send(net::Header{}, frame_bytes(60));
    rig.device.process_queue(net::receive_queue);
    CHECK(rig.rx.next_used()->len == 72);
    CHECK(rig.guest_header(at).num_buffers == 1);
}

TEST_CASE("virtio-net ignores calls before activation and after reset, and keeps its endpoint") {
    NetRig rig;
    rig.device.process_queue(net::receive_queue);
    rig.device.endpoint_readable();
    rig.device.endpoint_writable();
    rig.activate();
    CHECK(rig.watch.readable == 1);  // packets from before DRIVER_OK
    rig.transmit(packet_bytes({}, frame_bytes(60)));
    rig.device.reset();
    rig.device.process_queue(net::transmit_queue);
    rig.device.endpoint_readable();
    CHECK_FALSE(rig.peer_receive());
    CHECK(rig.device.counters().tx_packets.value() == 0);
    // The same endpoint after a new activation (the driver set up its rings again).
    rig.activate();
    rig.device.process_queue(net::transmit_queue);  // the chain made before the reset is still in the ring
    CHECK(rig.peer_receive());
}

}  // namespace
}  // namespace kvmlet::test

namespace kvmlet::test {
namespace {

TEST_CASE("MAC addresses parse from six hex pairs and print back the same") {
    auto mac = net::MacAddress::parse("06:00:AC:10:00:02");
    REQUIRE(mac);
    CHECK(mac->bytes == std::array<std::uint8_t, 6>{0x06, 0x00, 0xac, 0x10, 0x00, 0x02});
    CHECK(mac->to_string() == "06:00:ac:10:00:02");
    for (char const* bad : {"06:00:ac:10:00", "06-00-ac-10-00-02", "06:00:ac:10:00:0g", "06:00:ac:10:00:021",
                            "+6:00:ac:10:00:02", " 6:00:ac:10:00:02", "6:00:ac:10:00:02:", ""}) {
        INFO(bad);
        CHECK_FALSE(net::MacAddress::parse(bad));
    }
    CHECK_FALSE(net::MacAddress::parse("01:00:5e:00:00:01"));  // multicast
}

}  // namespace
}  // namespace kvmlet::test
