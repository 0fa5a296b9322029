#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "tests/unit/devices/virtio/vsock/vsock_test_rig.hpp"

namespace kvmlet::test {
namespace {

using vsock::Header;
namespace op = vsock::op;

std::string pattern(std::size_t n, char seed = 'a') {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 26);
    return s;
}

TEST_CASE("host data stops at the guest's credit, asks for more, and resumes on its CREDIT_UPDATE") {
    VsockRig rig;
    rig.guest_buf_alloc = 100;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    std::string const sent = pattern(250);
    VsockRig::host_write(host, sent);
    rig.post_rx(4);
    rig.pump();
    auto packets = rig.receive_all();
    REQUIRE(packets.size() == 2);
    CHECK(packets[0].header.op == op::rw);
    CHECK(packets[0].header.len == 100);
    CHECK(packets[1].header.op == op::credit_request);
    std::string got = string_of(packets[0].payload);

    rig.guest_fwd_cnt = 100;  // the guest's application read it all
    rig.send(rig.header(1025, 5000, op::credit_update));
    rig.pump();
    packets = rig.receive_all();
    REQUIRE(packets.size() >= 1);
    CHECK(packets[0].header.len == 100);
    got += string_of(packets[0].payload);
    rig.guest_fwd_cnt = 200;
    rig.send(rig.header(1025, 5000, op::credit_update));
    rig.post_rx(2);
    rig.pump();
    for (auto& p : rig.receive_all())
        if (p.header.op == op::rw) got += string_of(p.payload);
    CHECK(got == sent);
}

TEST_CASE("a guest that reads what it got hears of the device's freed buffer (CREDIT_UPDATE)") {
    virtio::VsockLimits limits;
    limits.buffer_bytes = 4096;
    VsockRig rig(limits);
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    rig.send(rig.header(1025, 5000, op::rw, 4096), pattern(4096));
    rig.post_rx(1);
    auto update = rig.receive();
    REQUIRE(update);
    CHECK(update->header.op == op::credit_update);
    CHECK(update->header.buf_alloc == 4096);
    CHECK(update->header.fwd_cnt == 4096);  // the host socket took it all
    CHECK(VsockRig::host_read(host)->size() == 4096);
    rig.send(rig.header(1025, 5000, op::credit_request));
    rig.post_rx(1);
    auto answer = rig.receive();
    REQUIRE(answer);
    CHECK(answer->header.op == op::credit_update);
}

TEST_CASE("data beyond the credit the device gave resets the connection") {
    virtio::VsockLimits limits;
    limits.buffer_bytes = 4096;
    VsockRig rig(limits);
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    rig.send(rig.header(1025, 5000, op::rw, 5000), pattern(5000));
    rig.post_rx(1);
    auto rst = rig.receive();
    REQUIRE(rst);
    CHECK(rst->header.op == op::rst);
    CHECK(rig.device.counters().protocol_errors.value() == 1);
    CHECK(VsockRig::host_closed(host));
}

TEST_CASE("a host that does not read: the device holds the guest's bytes up to its buffer, then flushes") {
    virtio::VsockLimits limits;
    limits.buffer_bytes = 64 * 1024;
    VsockRig rig(limits);
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    int size = 4096;
    REQUIRE(::setsockopt(host.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size) == 0);
    // The guest sends within the credit it hears of, until it hears of none.
    std::string sent;
    std::uint32_t guest_sent = 0, fwd_cnt = 0;
    rig.post_rx(8);
    for (int round = 0; round < 64; ++round) {
        for (auto& p : rig.receive_all()) fwd_cnt = p.header.fwd_cnt;
        rig.queue_rx(static_cast<int>(std::min<std::size_t>(rig.rx_free.size(), 8)));
        std::uint32_t const credit = limits.buffer_bytes - (guest_sent - fwd_cnt);
        if (credit == 0) break;
        std::string chunk =
            pattern(std::min<std::uint32_t>(credit, 16 * 1024), static_cast<char>('a' + round % 3));
        rig.send(rig.header(1025, 5000, op::rw, static_cast<std::uint32_t>(chunk.size())), chunk);
        sent += chunk;
        guest_sent += static_cast<std::uint32_t>(chunk.size());
    }
    CHECK(rig.device.counters().protocol_errors.value() == 0);
    CHECK(guest_sent - fwd_cnt == limits.buffer_bytes);  // stalled with a full device buffer
    // The host reads: EPOLLOUT flushes, credit updates let the guest finish.
    std::string got;
    for (int round = 0; round < 200 && got.size() < sent.size(); ++round) {
        got += *VsockRig::host_read(host);
        rig.pump(1);
    }
    CHECK(got == sent);
    std::uint32_t const stalled_at = fwd_cnt;
    for (auto& p : rig.receive_all()) fwd_cnt = p.header.fwd_cnt;
    CHECK(fwd_cnt != stalled_at);  // the guest heard of the space
}

TEST_CASE("a huge buf_alloc from the guest moves data only as fast as it posts buffers") {
    VsockRig rig;
    rig.guest_buf_alloc = 0xffff'ffff;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    std::string const sent = pattern(10000);
    VsockRig::host_write(host, sent);
    rig.post_rx(1);
    rig.pump();
    auto first = rig.receive();
    REQUIRE(first);
    CHECK(first->header.len == 4096);  // one rx buffer's worth
    CHECK(!rig.receive());
    rig.post_rx(4);
    std::string got = string_of(first->payload);
    for (auto& p : rig.receive_all()) got += string_of(p.payload);
    CHECK(got == sent);
}

TEST_CASE("a fwd_cnt ahead of what the device sent leaves the guest without credit, nothing worse") {
    VsockRig rig;
    rig.guest_buf_alloc = 1000;
    rig.guest_fwd_cnt = 0x8000'0000;
    rig.activate();
    UniqueFd listener = rig.host_listen(5000);
    UniqueFd host = rig.connect_from_guest(listener, 1025, 5000);
    VsockRig::host_write(host, "data");
    rig.post_rx(2);
    rig.pump();
    auto p = rig.receive();
    REQUIRE(p);
    CHECK(p->header.op == op::credit_request);
    CHECK(!rig.receive());
}

}  // namespace
}  // namespace kvmlet::test
