#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "tests/unit/devices/virtio/vsock/vsock_test_rig.hpp"

namespace kvmlet::test {
namespace {

using vsock::Header;
namespace op = vsock::op;

// The one packet the guest got back, which must be an RST for (src_port, dst_port) of its own.
void expect_rst(VsockRig& rig, std::uint32_t guest_port, std::uint32_t host_port) {
    rig.post_rx(1);
    auto p = rig.receive();
    REQUIRE(p);
    CHECK(p->header.op == op::rst);
    CHECK(p->header.dst_port == guest_port);
    CHECK(p->header.src_port == host_port);
    CHECK(p->header.dst_cid == VsockRig::cid);
    CHECK(!rig.receive());
}

TEST_CASE("packets for no connection are answered with RST, but an RST is not") {
    VsockRig rig;
    rig.activate();
    rig.send(rig.header(1, 2, op::rw, 3), "abc");
    expect_rst(rig, 1, 2);
    rig.send(rig.header(1, 2, op::rst));
    rig.send(rig.header(1, 2, op::credit_update));
    expect_rst(rig, 1, 2);
    CHECK(rig.device.counters().resets_sent.value() == 2);
}

TEST_CASE("a tx chain shorter than a header is dropped and counted, and goes back used") {
    VsockRig rig;
    rig.activate();
    std::vector<std::byte> shorter(20, std::byte{0xff});
    rig.tx.write_descriptor(0, {VsockRig::tx_buffer(0), 20, 0, 0});
    REQUIRE(rig.memory.write_bytes(GuestAddress{VsockRig::tx_buffer(0)}, shorter));
    rig.tx.publish(0);
    rig.device.process_queue(vsock::tx_queue);
    auto used = rig.tx.next_used();
    REQUIRE(used);
    CHECK(used->len == 0);
    CHECK(rig.device.counters().tx_malformed.value() == 1);
    rig.post_rx(1);
    CHECK(!rig.receive());
}

TEST_CASE("bad lengths, types and ops are reset, and end the connection they name") {
    VsockRig rig;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);

    SECTION("len beyond the chain") {
        Header h = rig.header(1025, 5000, op::rw, 100);
        rig.send(h, "only ten b");
    }
    SECTION("len beyond 64 KiB") {
        Header h = rig.header(1025, 5000, op::rw, vsock::max_payload + 1);
        std::string big(vsock::max_payload + 1, 'x');
        rig.send(h, big);
    }
    SECTION("len of 4 GiB - 1") {
        rig.send(rig.header(1025, 5000, op::rw, 0xffff'ffff), "x");
    }
    SECTION("op 0") {
        rig.send(rig.header(1025, 5000, op::invalid));
    }
    SECTION("op 8") {
        rig.send(rig.header(1025, 5000, 8));
    }
    SECTION("op 0xffff") {
        rig.send(rig.header(1025, 5000, 0xffff));
    }
    SECTION("seqpacket type") {
        Header h = rig.header(1025, 5000, op::rw, 1);
        h.type = 2;
        rig.send(h, "x");
    }
    SECTION("a second REQUEST") {
        rig.send(rig.header(1025, 5000, op::request));
    }
    SECTION("a RESPONSE on an established connection") {
        rig.send(rig.header(1025, 5000, op::response));
    }
    expect_rst(rig, 1025, 5000);
    CHECK(rig.device.connection_count() == 0);
    CHECK(VsockRig::host_closed(host));
    CHECK(rig.device.counters().tx_malformed.value() + rig.device.counters().protocol_errors.value() == 1);
}

TEST_CASE("packets with CIDs other than the guest's and the host's are dropped without an answer") {
    VsockRig rig;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    Header from_elsewhere = rig.header(1025, 5000, op::request);
    from_elsewhere.src_cid = VsockRig::cid + 1;
    rig.send(from_elsewhere);
    Header to_elsewhere = rig.header(1025, 5000, op::request);
    to_elsewhere.dst_cid = 7;
    rig.send(to_elsewhere);
    Header high_bits = rig.header(1025, 5000, op::request);
    high_bits.src_cid |= std::uint64_t{1} << 32;
    rig.send(high_bits);
    rig.post_rx(1);
    CHECK(!rig.receive());
    CHECK(rig.device.counters().tx_wrong_cid.value() == 3);
    CHECK(rig.device.connection_count() == 0);
    rig.reclaim_tx();
    CHECK(rig.tx_free.size() == VsockRig::tx_slots);  // every chain went back
}

TEST_CASE("rx buffers too small for a packet go back unused and counted") {
    VsockRig rig;
    rig.activate();
    rig.send(rig.header(1, 2, op::rw, 1), "x");  // an RST to deliver
    rig.post_rx(2, sizeof(Header));
    auto a = rig.rx.next_used();
    auto b = rig.rx.next_used();
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->len == 0);
    CHECK(b->len == 0);
    CHECK(rig.device.counters().rx_bad_buffers.value() == 2);
    rig.rx_free.push_back(static_cast<std::uint16_t>(a->id));
    rig.rx_free.push_back(static_cast<std::uint16_t>(b->id));
    expect_rst(rig, 1, 2);
}

TEST_CASE("a chain with a buffer outside RAM never reaches the device") {
    VsockRig rig;
    rig.activate();
    rig.tx.write_descriptor(0, {VsockRig::ram_size - 16, 64, 0, 0});
    rig.tx.publish(0);
    rig.device.process_queue(vsock::tx_queue);
    auto used = rig.tx.next_used();
    REQUIRE(used);
    CHECK(used->len == 0);
    rig.send(rig.header(1, 2, op::rw, 1), "x");  // an RST to deliver
    rig.rx.write_descriptor(0, {VsockRig::ram_size + 4096, 4096, virtio::desc_f_write, 0});
    rig.rx.publish(0);
    rig.device.process_queue(vsock::rx_queue);
    auto rx_used = rig.rx.next_used();
    REQUIRE(rx_used);
    CHECK(rx_used->id == 0);
    CHECK(rx_used->len == 0);
    expect_rst(rig, 1, 2);
    CHECK(rig.irq.resets == 0);
}

TEST_CASE("connections beyond the limit are refused on both sides") {
    virtio::VsockLimits limits;
    limits.max_connections = 3;
    VsockRig rig(limits);
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    std::vector<UniqueFd> hosts;
    for (std::uint32_t port = 1; port <= 3; ++port)
        hosts.push_back(rig.connect_from_guest(listener, port, 5000));
    rig.send(rig.header(4, 5000, op::request));
    expect_rst(rig, 4, 5000);
    UniqueFd late = rig.host_connect();
    rig.pump();
    CHECK(VsockRig::host_closed(late));
    CHECK(rig.device.counters().connections_refused.value() == 2);
    CHECK(rig.device.connection_count() == 3);
    // One ends: room for another.
    rig.send(rig.header(1, 5000, op::rst));
    hosts.push_back(rig.connect_from_guest(listener, 4, 5000));
}

TEST_CASE("with no rx buffers the answers pile up to a bound, and the guest's packets wait") {
    VsockRig rig;
    rig.activate();
    // Each RW to no connection earns an RST the guest has no buffer for.
    std::uint32_t port = 0;
    for (int batch = 0; batch < 3; ++batch) {
        rig.reclaim_tx();
        while (!rig.tx_free.empty()) rig.queue_tx(rig.header(port++, 9, op::rw, 1), bytes_of("x"));
        rig.device.process_queue(vsock::tx_queue);
    }
    CHECK(rig.device.counters().resets_sent.value() == virtio::VsockDevice::control_soft_limit);
    rig.reclaim_tx();
    CHECK(rig.tx_free.empty());  // the third batch waits in the ring
    rig.post_rx(VsockRig::rx_slots);
    CHECK(rig.host.kicks == std::vector<std::size_t>{vsock::tx_queue});  // the rest is served again
    CHECK(rig.receive_all().size() == VsockRig::rx_slots);
    CHECK(rig.device.counters().control_dropped.value() == 0);
}

TEST_CASE("one call serves at most packets_per_call guest packets and says there is more") {
    VsockRig rig;
    rig.activate();
    rig.post_rx(VsockRig::rx_slots);                                  // room for some answers
    for (int i = 0; i < 4; ++i) rig.send(rig.header(1, 2, op::rst));  // never answered
    int queued = 0;
    while (!rig.tx_free.empty()) {
        rig.queue_tx(rig.header(1, 2, op::rst));
        ++queued;
    }
    CHECK(queued == VsockRig::tx_slots);
    CHECK(rig.device.process_queue(vsock::tx_queue) == virtio::Work::done);  // 128 < 256
}

}  // namespace
}  // namespace kvmlet::test
