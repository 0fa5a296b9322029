// virtio-net under rate limiters, each direction on its own: a refused packet waits (in its transmit
// chain, or whole in the device's receive buffer) and the queue has one timer that serves it
// again. The rig's clock is a fake one moved by the test, so the figures are exact.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "tests/unit/devices/virtio/net_test_rig.hpp"

namespace kvmlet::test {
namespace {

using namespace std::chrono_literals;
constexpr int batch = 16;
constexpr std::size_t frame_size = 1024;

virtio::BucketConfig bucket(std::uint64_t size, std::chrono::milliseconds refill) {
    return {.size = size, .one_time_burst = 0, .refill_time = refill};
}

virtio::NetConfig limited(virtio::RateLimiterConfig rx, virtio::RateLimiterConfig tx) {
    return {.mac = {{2, 0, 0, 0, 0, 1}}, .rx_rate_limiter = rx, .tx_rate_limiter = tx};
}

std::uint64_t metric(virtio::Device const& device, std::string_view name) {
    for (auto const& m : device.metrics())
        if (m.name == name) return m.value;
    FAIL("no metric " << name);
    return 0;
}

// The device stopped with work left: move the clock to its one timer and fire it, which kicks
// `queue`.
void fire_timer(NetRig& rig, std::size_t queue) {
    REQUIRE(rig.watch.timers.size() == 1);
    auto timer = std::move(rig.watch.timers.back());
    rig.watch.timers.clear();
    rig.now += std::chrono::duration_cast<virtio::RateClock::duration>(timer.delay);
    timer.due();
    REQUIRE_FALSE(rig.watch.kicks.empty());
    CHECK(rig.watch.kicks.back() == queue);
}

// Sends `packets` frames of frame_size bytes from the guest, `batch` chains at a time.
std::chrono::duration<double> transmit_under_limit(NetRig& rig, int packets) {
    auto const packet = packet_bytes(net::Header{}, frame_bytes(frame_size));
    auto const at = rig.tx.alloc_with(packet);
    auto const start = rig.now;
    int sent = 0;
    while (sent < packets) {
        rig.tx.recycle_descriptors();
        for (int i = 0; i < batch; ++i)
            rig.tx.add_chain({{at, static_cast<std::uint32_t>(packet.size()), false}});
        int done = 0;
        while (true) {
            rig.device.process_queue(net::transmit_queue);
            while (rig.tx.next_used()) ++done;
            while (rig.peer_receive()) ++sent;
            if (done == batch) break;
            fire_timer(rig, net::transmit_queue);
        }
    }
    return rig.now - start;
}

// The peer sends `packets` frames of frame_size bytes; the guest posts `batch` buffers at a time.
std::chrono::duration<double> receive_under_limit(NetRig& rig, int packets) {
    auto const frame = frame_bytes(frame_size);
    auto const at = rig.rx.alloc(2048);
    auto const start = rig.now;
    int received = 0;
    while (received < packets) {
        rig.rx.recycle_descriptors();
        for (int i = 0; i < batch; ++i) {
            rig.rx.add_chain({{at, 2048, true}});
            rig.peer_send(net::Header{}, frame);
        }
        int done = 0;
        while (true) {
            rig.device.process_queue(net::receive_queue);
            while (auto used = rig.rx.next_used()) {
                REQUIRE(used->len == sizeof(net::Header) + frame_size);
                ++done;
            }
            if (done == batch) break;
            // The refused packet waits in the device, the ones after it in the endpoint.
            CHECK(rig.device_end_has_packet() == (batch - done > 1));
            fire_timer(rig, net::receive_queue);
        }
        received += done;
    }
    return rig.now - start;
}

TEST_CASE("virtio-net transmit under 1000 KiB/s sends 1000 KiB past its first bucket in one second") {
    NetRig rig(limited({}, {.bandwidth = bucket(100 * frame_size, 100ms)}));
    rig.activate();
    auto const took = transmit_under_limit(rig, 1104);  // 100 free, then 1004 in 1.004 s
    CHECK(took.count() == Approx(1.004).epsilon(0.01));
    CHECK(rig.device.counters().tx_packets.value() == 1104);
    CHECK(metric(rig.device, "tx_rate_limiter_throttled") > 0);
    CHECK(metric(rig.device, "rx_rate_limiter_throttled") == 0);
}

TEST_CASE("virtio-net transmit under 1000 packets/s sends 1000 packets past its first bucket in one second") {
    NetRig rig(limited({}, {.ops = bucket(100, 100ms)}));
    rig.activate();
    auto const took = transmit_under_limit(rig, 1104);
    CHECK(took.count() == Approx(1.004).epsilon(0.01));
}

TEST_CASE("virtio-net receive under 1000 KiB/s takes 1000 KiB past its first bucket in one second") {
    NetRig rig(limited({.bandwidth = bucket(100 * frame_size, 100ms)}, {}));
    rig.activate();
    auto const took = receive_under_limit(rig, 1104);
    CHECK(took.count() == Approx(1.004).epsilon(0.01));
    CHECK(rig.device.counters().rx_packets.value() == 1104);
    CHECK(rig.device.counters().rx_bytes.value() == 1104 * frame_size);
    CHECK(metric(rig.device, "rx_rate_limiter_throttled") > 0);
    CHECK(metric(rig.device, "tx_rate_limiter_throttled") == 0);
}

TEST_CASE("virtio-net receive under 1000 packets/s, with mergeable buffers or without") {
    NetRig rig(limited({.ops = bucket(100, 100ms)}, {}));
    bool const mergeable = GENERATE(true, false);
    auto features = all_net_features(rig.device);
    if (!mergeable) features &= ~virtio::bit(net::feature::mrg_rxbuf);
    rig.activate(features);
    auto const took = receive_under_limit(rig, 1104);
    CHECK(took.count() == Approx(1.004).epsilon(0.01));
}

TEST_CASE("virtio-net: a throttled receive queue reads nothing, however often it is woken") {
    NetRig rig(limited({.ops = bucket(1, 1000ms)}, {}));
    rig.activate();
    auto const at = rig.rx.alloc(2048);
    for (int i = 0; i < 3; ++i) {
        rig.rx.add_chain({{at, 2048, true}});
        rig.peer_send(net::Header{}, frame_bytes(100, static_cast<std::uint8_t>(i)));
    }
    rig.device.process_queue(net::receive_queue);
    CHECK(rig.rx.next_used());
    CHECK_FALSE(rig.rx.next_used());
    int const watches = rig.watch.readable;
    for (int i = 0; i < 50; ++i) {
        rig.device.process_queue(net::receive_queue);
        rig.device.endpoint_readable();
    }
    CHECK_FALSE(rig.rx.next_used());
    CHECK(rig.watch.timers.size() == 1);
    CHECK(rig.watch.readable == watches);  // no watch that would spin on a readable endpoint
    CHECK(rig.device_end_has_packet());    // the third packet is still in the endpoint
    fire_timer(rig, net::receive_queue);
    rig.device.process_queue(net::receive_queue);
    auto used = rig.rx.next_used();
    REQUIRE(used);
    CHECK(guest_bytes(rig.memory, at + sizeof(net::Header), 100) == frame_bytes(100, 1));  // in order
}

TEST_CASE("virtio-net: runtime updates of each direction take effect at once") {
    NetRig rig(limited({}, {.bandwidth = bucket(frame_size, 1000ms)}));
    rig.activate();
    auto const packet = packet_bytes(net::Header{}, frame_bytes(frame_size));
    rig.transmit(packet);
    rig.transmit(packet);
    rig.device.process_queue(net::transmit_queue);
    CHECK(rig.tx.next_used());
    CHECK_FALSE(rig.tx.next_used());
    REQUIRE(rig.watch.timers.size() == 1);
    // PATCH: rx gets a limit, tx's is disabled; the waiting transmit queue is served at once.
    rig.device.update_rate_limiters({.ops = bucket(10, 1000ms)}, {.bandwidth = bucket(0, 0ms)});
    CHECK(rig.device.rx_rate_limiter().ops == bucket(10, 1000ms));
    CHECK_FALSE(rig.device.tx_rate_limiter().bandwidth);
    REQUIRE(rig.watch.kicks == std::vector<std::size_t>{net::transmit_queue});
    rig.device.process_queue(net::transmit_queue);
    CHECK(rig.tx.next_used());
    CHECK(rig.peer_receive());
    CHECK(rig.peer_receive());
    rig.watch.timers[0].due();  // the old timer: moot
    CHECK(rig.watch.kicks.size() == 1);
}

TEST_CASE("virtio-net: a reset while throttled drops the waiting packet and leaks nothing") {
    NetRig rig(limited({.ops = bucket(1, 1000ms)}, {.ops = bucket(1, 1000ms)}));
    rig.activate();
    auto const at = rig.rx.alloc(2048);
    rig.rx.add_chain({{at, 2048, true}});
    rig.rx.add_chain({{at, 2048, true}});
    rig.peer_send(net::Header{}, frame_bytes(100));
    rig.peer_send(net::Header{}, frame_bytes(100));
    rig.transmit(packet_bytes(net::Header{}, frame_bytes(100)));
    rig.transmit(packet_bytes(net::Header{}, frame_bytes(100)));
    rig.device.process_queue(net::receive_queue);
    rig.device.process_queue(net::transmit_queue);
    REQUIRE(rig.watch.timers.size() == 2);
    rig.device.reset();
    for (auto& timer : rig.watch.timers) timer.due();
    CHECK(rig.watch.kicks.empty());
}

}  // namespace
}  // namespace kvmlet::test
