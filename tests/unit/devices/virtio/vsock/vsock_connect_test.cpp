#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "tests/unit/devices/virtio/vsock/vsock_test_rig.hpp"

namespace kvmlet::test {
namespace {

using vsock::Header;
namespace op = vsock::op;

TEST_CASE("a host process connects to a guest port with CONNECT and gets OK with its host port") {
    VsockRig rig;
    rig.activate();
    UniqueFd host = rig.host_connect();
    VsockRig::host_write(host, "CONNECT 1234\n");
    rig.pump();
    CHECK(rig.host.readable >= 1);  // the device watches its epoll set
    rig.post_rx(1);
    auto request = rig.receive();
    REQUIRE(request);
    Header const& h = request->header;
    CHECK(h.op == op::request);
    CHECK(h.src_cid == vsock::host_cid);
    CHECK(h.dst_cid == VsockRig::cid);
    CHECK(h.dst_port == 1234);
    CHECK(h.src_port >= (1u << 30));
    CHECK(h.type == vsock::type_stream);
    CHECK(h.buf_alloc == virtio::VsockLimits{}.buffer_bytes);
    CHECK(VsockRig::host_read(host) == "");  // nothing before the guest answers
    rig.send(rig.header(1234, h.src_port, op::response));
    CHECK(VsockRig::host_read(host) == "OK " + std::to_string(h.src_port) + "\n");
    CHECK(rig.device.counters().connections_opened.value() == 1);
}

TEST_CASE("a host-initiated connection carries bytes both ways") {
    VsockRig rig;
    rig.activate();
    auto [host, host_port] = rig.connect_from_host(80);
    VsockRig::host_write(host, "hello guest");
    rig.post_rx(2);
    rig.pump();
    auto data = rig.receive();
    REQUIRE(data);
    CHECK(data->header.op == op::rw);
    CHECK(data->header.src_port == host_port);
    CHECK(data->header.dst_port == 80);
    CHECK(string_of(data->payload) == "hello guest");
    rig.send(rig.header(80, host_port, op::rw, 11), "hello host!");
    CHECK(VsockRig::host_read(host) == "hello host!");
    CHECK(rig.device.counters().rx_bytes.value() == 11);
    CHECK(rig.device.counters().tx_bytes.value() == 11);
}

TEST_CASE("bytes a host process sends right after its CONNECT line reach the guest after the OK") {
    VsockRig rig;
    rig.activate();
    UniqueFd host = rig.host_connect();
    VsockRig::host_write(host, "CONN");
    rig.pump();
    VsockRig::host_write(host, "ECT 7\nearly bytes");  // the line in two parts, data behind it
    rig.pump();
    rig.post_rx(1);
    auto request = rig.receive();
    REQUIRE(request);
    REQUIRE(request->header.op == op::request);
    rig.send(rig.header(7, request->header.src_port, op::response));
    CHECK(VsockRig::host_read(host) == "OK " + std::to_string(request->header.src_port) + "\n");
    rig.post_rx(1);
    rig.pump();
    auto data = rig.receive();
    REQUIRE(data);
    CHECK(string_of(data->payload) == "early bytes");
}

TEST_CASE("a host connection with a bad CONNECT line, or none in time, is closed") {
    VsockRig rig;
    rig.activate();
    UniqueFd bad = rig.host_connect();
    VsockRig::host_write(bad, "HELLO 12\n");
    UniqueFd endless = rig.host_connect();
    VsockRig::host_write(endless, std::string(40, '1'));  // no newline within 32 bytes
    UniqueFd silent = rig.host_connect();
    rig.pump();
    CHECK(VsockRig::host_closed(bad));
    CHECK(VsockRig::host_closed(endless));
    CHECK(!VsockRig::host_closed(silent));
    CHECK(rig.device.connection_count() == 1);
    REQUIRE(!rig.host.timers.empty());
    for (auto& timer : rig.host.timers) timer.due();  // the request timeout
    CHECK(VsockRig::host_closed(silent));
    CHECK(rig.device.connection_count() == 0);
    CHECK(rig.device.counters().connections_refused.value() == 2);
    rig.post_rx(1);
    CHECK(!rig.receive());  // the guest heard of none of them
}

TEST_CASE("the guest's RST, or no RESPONSE in time, closes the host socket") {
    VsockRig rig;
    rig.activate();
    rig.post_rx(2);
    UniqueFd refused = rig.host_connect();
    VsockRig::host_write(refused, "CONNECT 9\n");
    rig.pump();
    auto request = rig.receive();
    REQUIRE(request);
    rig.send(rig.header(9, request->header.src_port, op::rst));
    CHECK(VsockRig::host_closed(refused));

    UniqueFd unanswered = rig.host_connect();
    VsockRig::host_write(unanswered, "CONNECT 10\n");
    rig.host.timers.clear();
    rig.pump();
    auto second = rig.receive();
    REQUIRE(second);
    REQUIRE(second->header.op == op::request);
    CHECK(second->header.src_port != request->header.src_port);
    REQUIRE(rig.host.timers.size() == 2);  // for the line, then for the RESPONSE
    CHECK(rig.host.timers[1].delay == virtio::VsockLimits{}.request_timeout);
    rig.host.timers[0].due();  // superseded: nothing happens
    CHECK(!VsockRig::host_closed(unanswered));
    rig.host.timers[1].due();
    CHECK(VsockRig::host_closed(unanswered));
    rig.post_rx(1);
    auto rst = rig.receive();
    REQUIRE(rst);
    CHECK(rst->header.op == op::rst);
    CHECK(rst->header.src_port == second->header.src_port);
    // A late RESPONSE finds no connection: RST.
    rig.send(rig.header(10, second->header.src_port, op::response));
    rig.post_rx(1);
    auto late = rig.receive();
    REQUIRE(late);
    CHECK(late->header.op == op::rst);
}

TEST_CASE("a guest connection to host port P reaches the listener at <uds>_P, and bytes flow both ways") {
    VsockRig rig;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    rig.send(rig.header(1025, 5000, op::rw, 4), "ping");
    CHECK(VsockRig::host_read(host) == "ping");
    VsockRig::host_write(host, "pong");
    rig.post_rx(1);
    rig.pump();
    auto data = rig.receive();
    REQUIRE(data);
    CHECK(data->header.op == op::rw);
    CHECK(data->header.src_port == 5000);
    CHECK(data->header.dst_port == 1025);
    CHECK(string_of(data->payload) == "pong");
    CHECK(rig.device.counters().connections_opened.value() == 1);
}

TEST_CASE("a guest connection to a port nobody listens on is refused with RST") {
    VsockRig rig;
    rig.activate();
    rig.send(rig.header(1025, 6000, op::request));
    rig.post_rx(1);
    auto rst = rig.receive();
    REQUIRE(rst);
    CHECK(rst->header.op == op::rst);
    CHECK(rst->header.src_port == 6000);
    CHECK(rst->header.dst_port == 1025);
    CHECK(rig.device.counters().connections_refused.value() == 1);
    CHECK(rig.device.connection_count() == 0);
}

TEST_CASE("the guest's SHUTDOWN(SEND) becomes EOF for the host, which can still send") {
    VsockRig rig;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    rig.send(rig.header(1025, 5000, op::rw, 3), "bye");
    Header shut = rig.header(1025, 5000, op::shutdown);
    shut.flags = vsock::shutdown_send;
    rig.send(shut);
    CHECK(VsockRig::host_read(host) == "bye");
    CHECK(VsockRig::host_closed(host));  // EOF
    VsockRig::host_write(host, "reply");
    rig.post_rx(1);
    rig.pump();
    auto data = rig.receive();
    REQUIRE(data);
    CHECK(string_of(data->payload) == "reply");
    // Data after its own SHUTDOWN(SEND) is a protocol error.
    rig.send(rig.header(1025, 5000, op::rw, 1), "x");
    rig.post_rx(1);
    auto rst = rig.receive();
    REQUIRE(rst);
    CHECK(rst->header.op == op::rst);
    CHECK(rig.device.counters().protocol_errors.value() == 1);
}

TEST_CASE("the guest's SHUTDOWN of both directions ends the connection with RST") {
    VsockRig rig;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    Header shut = rig.header(1025, 5000, op::shutdown);
    shut.flags = vsock::shutdown_both;
    rig.send(shut);
    rig.post_rx(1);
    auto rst = rig.receive();
    REQUIRE(rst);
    CHECK(rst->header.op == op::rst);
    CHECK(VsockRig::host_closed(host));
    CHECK(rig.device.connection_count() == 0);
}

TEST_CASE("the host's EOF becomes a SHUTDOWN for the guest, and its RST ends the connection") {
    VsockRig rig;
    rig.activate();
    auto [host, host_port] = rig.connect_from_host(80);
    VsockRig::host_write(host, "last words");
    ::shutdown(host.get(), SHUT_WR);
    rig.post_rx(2);
    rig.pump();
    auto data = rig.receive();
    REQUIRE(data);
    CHECK(string_of(data->payload) == "last words");
    auto shut = rig.receive();
    REQUIRE(shut);
    CHECK(shut->header.op == op::shutdown);
    CHECK(shut->header.flags == vsock::shutdown_both);
    rig.send(rig.header(80, host_port, op::rst));
    CHECK(rig.device.connection_count() == 0);
    CHECK(VsockRig::host_closed(host));
}

TEST_CASE("a host process that closes its socket: its last bytes reach the guest, then SHUTDOWN") {
    VsockRig rig;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    VsockRig::host_write(host, "goodbye");
    host.reset();
    rig.pump();
    rig.post_rx(2);
    auto data = rig.receive();
    REQUIRE(data);
    CHECK(string_of(data->payload) == "goodbye");
    auto shut = rig.receive();
    REQUIRE(shut);
    CHECK(shut->header.op == op::shutdown);
    // The guest does not answer: the shutdown timer ends it.
    REQUIRE(!rig.host.timers.empty());
    rig.host.timers.back().due();
    rig.post_rx(1);
    auto rst = rig.receive();
    REQUIRE(rst);
    CHECK(rst->header.op == op::rst);
    CHECK(rig.device.connection_count() == 0);
}

TEST_CASE("writing to a host socket whose peer has gone resets the connection") {
    VsockRig rig;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    host.reset();
    rig.send(rig.header(1025, 5000, op::rw, 4), "lost");
    rig.post_rx(1);
    auto rst = rig.receive();
    REQUIRE(rst);
    CHECK(rst->header.op == op::rst);
    CHECK(rig.device.counters().host_errors.value() == 1);
}

TEST_CASE("a device reset closes every host socket") {
    VsockRig rig;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd a = rig.connect_from_guest(listener, 1025, 5000);
    auto [b, port] = rig.connect_from_host(80);
    UniqueFd waiting = rig.host_connect();
    rig.pump();
    CHECK(rig.device.connection_count() == 3);
    rig.device.reset();
    CHECK(rig.device.connection_count() == 0);
    CHECK(VsockRig::host_closed(a));
    CHECK(VsockRig::host_closed(b));
    CHECK(VsockRig::host_closed(waiting));
    rig.device.host_events();  // a watch answered after the reset finds nothing to do
}

TEST_CASE("the event queue takes a transport reset event when the driver posted a buffer") {
    VsockRig rig;
    rig.activate();
    CHECK(!rig.device.send_event(vsock::event_transport_reset));
    auto at = std::uint64_t{0x1800000};
    rig.event.write_descriptor(0, {at, 4, virtio::desc_f_write, 0});
    rig.event.publish(0);
    CHECK(rig.device.process_queue(vsock::event_queue) == virtio::Work::done);
    CHECK(rig.device.send_event(vsock::event_transport_reset));
    auto used = rig.event.next_used();
    REQUIRE(used);
    CHECK(used->len == 4);
    CHECK(guest<std::uint32_t>(rig.memory, at) == vsock::event_transport_reset);
}

}  // namespace
}  // namespace kvmlet::test
