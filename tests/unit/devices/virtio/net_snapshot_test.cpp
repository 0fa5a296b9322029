// virtio-net in a snapshot (docs/snapshot.md): the rate limiters' buckets round-trip, and the chains
// the device took and has not used (a packet the limiter held, a spare receive chain, the chains of
// a packet half delivered) are given back in the saved queue indices, so a device restored from
// them over the same RAM sends each packet once and loses no receive buffer.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>

#include "tests/unit/devices/virtio/net_test_rig.hpp"

namespace kvmlet::test {
namespace {

using namespace std::chrono_literals;

virtio::RateLimiterConfig one_op_an_hour() {
    return {.bandwidth = std::nullopt,
            .ops = virtio::BucketConfig{.size = 1, .one_time_burst = 0, .refill_time = 1h}};
}

// A second device over the rig's RAM and rings, as a restore builds it: a fresh endpoint (the
// test holds its peer), the queues going on from `at`, the saved state loaded.
struct Restored {
    Restored() : device(config(), endpoint()) {}

    virtio::NetConfig config() {
        return {.mac = {{0x06, 0, 0xac, 0x10, 0, 2}}, .clock = [] { return now(); }};
    }
    static virtio::RateClock::time_point now() {
        return virtio::RateClock::time_point{std::chrono::seconds(1)};
    }
    std::unique_ptr<net::Endpoint> endpoint() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0);
        peer.reset(fds[1]);
        return std::make_unique<net::SocketEndpoint>(UniqueFd{fds[0]}, "restored");
    }
    void restore(NetRig& rig, std::vector<virtio::QueueIndices> const& at,
                 std::vector<std::byte> const& state, std::uint64_t features) {
        std::vector<virtio::SplitQueue> queues;
        queues.push_back(virtio::SplitQueue::activate(rig.memory, rig.rx.config(), 256, false, true).value());
        queues.push_back(virtio::SplitQueue::activate(rig.memory, rig.tx.config(), 256, false, true).value());
        queues[0].resume_at(at[0]);
        queues[1].resume_at(at[1]);
        REQUIRE(device.activate({rig.memory, std::move(queues), features, irq, watch}));
        StateReader in(state, "virtio.0");
        device.load(in);
        in.finish();
    }
    std::optional<std::vector<std::byte>> peer_receive() {
        std::vector<std::byte> buffer(128 * 1024);
        ssize_t n = ::recv(peer.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n < 0) return std::nullopt;
        buffer.resize(static_cast<std::size_t>(n));
        return buffer;
    }

    UniqueFd peer;
    NetInterrupt irq;
    RecordingWatch watch;
    virtio::NetDevice device;
};

std::vector<std::byte> saved(virtio::NetDevice const& device) {
    StateWriter out;
    device.save(out);
    return out.take();
}

}  // namespace

TEST_CASE("virtio-net state round-trips its rate limiters' buckets into a fresh device") {
    virtio::RateLimiterConfig const rx{.bandwidth = virtio::BucketConfig{.size = 4096, .refill_time = 100ms}};
    NetRig rig(
        {.mac = {{0x06, 0, 0xac, 0x10, 0, 2}}, .rx_rate_limiter = rx, .tx_rate_limiter = one_op_an_hour()});
    rig.activate();
    auto const bytes = saved(rig.device);

    NetRig fresh;
    StateReader in(bytes, "virtio.0");
    fresh.device.load(in);
    in.finish();
    CHECK(fresh.device.rx_rate_limiter() == rx);
    CHECK(fresh.device.tx_rate_limiter() == one_op_an_hour());
    CHECK(saved(fresh.device) == bytes);
}

TEST_CASE("virtio-net state with a bucket fuller than its size is refused") {
    NetRig rig({.mac = {{0x06, 0, 0xac, 0x10, 0, 2}}, .tx_rate_limiter = one_op_an_hour()});
    auto bytes = saved(rig.device);
    // rx: no bucket at all (two absent options); tx: ops present, then size, burst, refill ms,
    // burst left, budget.
    std::size_t const tx_ops_budget = 2 + 1 + 1 + 8 + 8 + 8 + 8;
    REQUIRE(bytes.size() > tx_ops_budget + 8);
    std::uint64_t const too_full = 2;
    std::memcpy(bytes.data() + tx_ops_budget, &too_full, sizeof too_full);
    NetRig fresh;
    StateReader in(bytes, "virtio.0");
    CHECK_THROWS_AS(fresh.device.load(in), Error);
}

TEST_CASE("A transmit chain the limiter held is given back by the snapshot and sent once after the restore") {
    NetRig rig({.mac = {{0x06, 0, 0xac, 0x10, 0, 2}}, .tx_rate_limiter = one_op_an_hour()});
    rig.activate();
    auto const first = packet_bytes(net::Header{}, frame_bytes(100, 1));
    auto const second = packet_bytes(net::Header{}, frame_bytes(100, 2));
    rig.transmit(first);
    rig.transmit(second);
    rig.device.process_queue(net::transmit_queue);
    CHECK(rig.peer_receive() == first);
    CHECK_FALSE(rig.peer_receive());  // the second waits for a token, an hour away
    REQUIRE(rig.tx.next_used());
    CHECK_FALSE(rig.tx.next_used());
    auto const at = rig.device.queue_indices();
    REQUIRE(at.size() == 2);
    CHECK(at[net::transmit_queue].next_avail == 1);  // rewound over the held chain
    CHECK(at[net::transmit_queue].next_used == 1);

    // The restore's bucket has a token (as if refilled): the held chain goes, once.
    Restored restored;
    NetRig unlimited;
    restored.restore(rig, at, saved(unlimited.device), all_net_features(rig.device));
    restored.device.process_queue(net::transmit_queue);
    CHECK(restored.peer_receive() == second);
    CHECK_FALSE(restored.peer_receive());
    auto const used = rig.tx.next_used();
    REQUIRE(used);
    CHECK(used->len == 0);
    CHECK_FALSE(rig.tx.next_used());
}

TEST_CASE("A packet half delivered into mergeable buffers gives its chains back, and they are used again") {
    NetRig rig;
    rig.activate();
    // A 1000-byte frame into 200-byte buffers: five chains, and the driver posted two.
    auto const first_buffer = rig.post_rx(200);
    rig.post_rx(200);
    rig.peer_send(net::Header{}, frame_bytes(1000));
    rig.device.endpoint_readable();
    CHECK_FALSE(rig.rx.next_used());  // none is given back before the packet is complete
    auto const at = rig.device.queue_indices();
    CHECK(at[net::receive_queue].next_avail == 0);
    CHECK(at[net::receive_queue].next_used == 0);

    // Restored: the packet is gone (as a network may lose one); the next fits in the first chain.
    Restored restored;
    restored.restore(rig, at, saved(rig.device), all_net_features(rig.device));
    auto const small = frame_bytes(100, 7);
    REQUIRE(::send(restored.peer.get(), packet_bytes(net::Header{}, small).data(), sizeof(net::Header) + 100,
                   MSG_DONTWAIT) == static_cast<ssize_t>(sizeof(net::Header) + 100));
    restored.device.endpoint_readable();
    auto const used = rig.rx.next_used();
    REQUIRE(used);
    CHECK(used->len == sizeof(net::Header) + 100);
    CHECK(rig.guest_header(first_buffer).num_buffers == 1);
}

TEST_CASE("A virtio-net with MMDS is not saveable, one without is") {
    NetRig plain;
    CHECK(plain.device.saveable());
    NetRig with_mmds({.mac = {{0x06, 0, 0xac, 0x10, 0, 2}}, .mmds = net::mmds::MmdsConfig{}});
    CHECK_FALSE(with_mmds.device.saveable());
}

}  // namespace kvmlet::test
