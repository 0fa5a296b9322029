// virtio-blk under a rate limiter: the device stops taking requests when the limiter refuses, asks
// for one timer, and serves the queue again when it fires. The rig's clock is a fake one moved by
// the test, so the figures are exact.
#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/unit/devices/virtio/block_test_rig.hpp"

namespace kvmlet::test {
namespace {

using namespace std::chrono_literals;
namespace blk = virtio::blk;

virtio::BucketConfig bucket(std::uint64_t size, std::chrono::milliseconds refill) {
    return {.size = size, .one_time_burst = 0, .refill_time = refill};
}

std::uint64_t metric(virtio::Device const& device, std::string_view name) {
    for (auto const& m : device.metrics())
        if (m.name == name) return m.value;
    FAIL("no metric " << name);
    return 0;
}

// Reads of `chunk` bytes, `depth` at a time, until `total` bytes were read: whenever the device
// stops with requests left, the test moves the clock to its timer and fires it (the timer kicks
// the queue; the test then serves it, as the disk's worker would). Returns the time it took.
// With `wall_clock` the rig's clock follows the real one and a timer is a real sleep: the time
// then includes the device's own work (and whatever else the machine does).
std::chrono::duration<double> read_under_limit(BlockRig& rig, std::uint32_t chunk, std::uint64_t total,
                                               int depth = 8, bool wall_clock = false) {
    auto const tick = [&] {
        if (wall_clock) rig.now = virtio::RateClock::now();
    };
    tick();
    std::vector<std::vector<Buffer>> chains;
    for (int i = 0; i < depth; ++i)
        chains.push_back({rig.header(blk::request_type::in, 0), rig.data_in(chunk), rig.status()});
    auto const start = rig.now;
    std::uint64_t moved = 0;
    while (moved < total) {
        rig.driver.recycle_descriptors();
        for (auto const& chain : chains) rig.driver.add_chain(chain);
        int done = 0;
        while (done < depth) {
            tick();
            rig.device.process_queue(0);
            while (auto used = rig.driver.next_used()) {
                REQUIRE(used->len == chunk + 1);
                ++done;
                moved += chunk;
            }
            if (done == depth) break;
            REQUIRE(rig.host.timers.size() == 1);  // one timer, however the device was called
            auto timer = std::move(rig.host.timers.back());
            rig.host.timers.clear();
            auto const kicks = rig.host.kicks.size();
            if (wall_clock)
                std::this_thread::sleep_for(timer.delay);
            else
                rig.now += std::chrono::duration_cast<virtio::RateClock::duration>(timer.delay);
            tick();
            timer.due();
            REQUIRE(rig.host.kicks.size() == kicks + 1);
        }
    }
    tick();
    return rig.now - start;
}

TEST_CASE("virtio-blk under 10 MiB/s moves 10 MiB past its first bucket in one second") {
    TempImage image(1 * MiB);
    // 1 MiB per 100 ms: 10 MiB/s, and the first MiB is the full bucket.
    BlockRig rig({.path = image.path()}, 0, {.bandwidth = bucket(1 * MiB, 100ms)});
    auto const took = read_under_limit(rig, 128 * 1024, 11 * MiB);
    CHECK(took.count() == Approx(1.0).epsilon(0.01));
    CHECK(rig.device.counters().bytes_read.value() == 11 * MiB);
    CHECK(rig.device.throttled() > 0);
    CHECK(metric(rig.device, "rate_limiter_throttled_events") == rig.device.throttled());
}

TEST_CASE(
    "virtio-blk under 10 MiB/s on the real clock moves 10 MiB past its first bucket in about one second") {
    TempImage image(1 * MiB);
    BlockRig rig({.path = image.path()}, 0, {.bandwidth = bucket(1 * MiB, 100ms)});
    auto const took = read_under_limit(rig, 128 * 1024, 11 * MiB, 8, true);
    WARN("10 MiB at 10 MiB/s, wall clock: " << took.count() << " s");
    // Loosely: never faster than the limit; slower only by what a busy machine adds.
    CHECK(took.count() >= 0.99);
    CHECK(took.count() < 3.0);
}

TEST_CASE("virtio-blk under 1000 ops/s serves 1000 requests past its first bucket in one second") {
    TempImage image(1 * MiB);
    BlockRig rig({.path = image.path()}, 0, {.ops = bucket(100, 100ms)});
    auto const took = read_under_limit(rig, 512, 1100 * 512, 10);
    CHECK(took.count() == Approx(1.0).epsilon(0.01));
    CHECK(rig.device.counters().reads.value() == 1100);
}

TEST_CASE("virtio-blk without a limiter asks for no timer") {
    TempImage image(1 * MiB);
    BlockRig rig({.path = image.path()});
    auto const took = read_under_limit(rig, 128 * 1024, 4 * MiB);
    CHECK(took.count() == 0);
    CHECK(rig.host.timers.empty());
    CHECK(rig.device.throttled() == 0);
}

struct Throttled {
    TempImage image{64 * 1024};
    BlockRig rig{{.path = image.path()}, 0, {.bandwidth = bucket(4096, 1000ms)}};
    std::vector<Buffer> a{rig.header(blk::request_type::in, 0), rig.data_in(4096), rig.status()};
    std::vector<Buffer> b{rig.header(blk::request_type::in, 8), rig.data_in(4096), rig.status()};

    // The first read empties the bucket, the second waits.
    void start() {
        rig.driver.add_chain(a);
        rig.driver.add_chain(b);
        rig.device.process_queue(0);
        REQUIRE(rig.driver.next_used());
        REQUIRE_FALSE(rig.driver.next_used());
        REQUIRE(rig.host.timers.size() == 1);
        CHECK(rig.host.timers[0].delay == 1s);
    }
};

TEST_CASE("virtio-blk: notifications while throttled neither serve the request nor add timers") {
    Throttled t;
    t.start();
    for (int i = 0; i < 100; ++i) t.rig.device.process_queue(0);
    CHECK_FALSE(t.rig.driver.next_used());
    CHECK(t.rig.host.timers.size() == 1);
    CHECK(t.rig.device.throttled() == 1);
    t.rig.now += 1s;
    t.rig.host.timers[0].due();
    t.rig.device.process_queue(0);
    auto used = t.rig.driver.next_used();
    REQUIRE(used);
    CHECK(used->len == 4097);
    CHECK(t.rig.guest_data(t.b[1]) == t.image.expected(8 * 512, 4096));
}

TEST_CASE("virtio-blk: a runtime update takes effect at once, and the old timer is moot") {
    Throttled t;
    t.start();
    t.rig.device.update_rate_limiter({.bandwidth = bucket(0, 0ms)});  // PATCH: disabled
    REQUIRE(t.rig.host.kicks.size() == 1);                            // the waiting queue is served again
    t.rig.device.process_queue(0);
    CHECK(t.rig.driver.next_used());
    CHECK_FALSE(t.rig.device.rate_limiter().bandwidth);
    t.rig.host.timers[0].due();  // fires later: nothing to do
    CHECK(t.rig.host.kicks.size() == 1);
}

TEST_CASE("virtio-blk: an update to a slower limit holds the next requests longer") {
    TempImage image(64 * 1024);
    BlockRig rig({.path = image.path()}, 0, {.bandwidth = bucket(1 * MiB, 100ms)});
    rig.device.update_rate_limiter({.ops = bucket(1, 1000ms)});  // bandwidth kept, ops added
    CHECK(rig.device.rate_limiter().bandwidth == bucket(1 * MiB, 100ms));
    auto const took = read_under_limit(rig, 4096, 5 * 4096, 5);
    CHECK(took.count() == Approx(4.0).epsilon(0.01));  // one op per second, the first free
}

TEST_CASE("virtio-blk: a reset drops the held request and a late timer is harmless") {
    Throttled t;
    t.start();
    t.rig.device.reset();
    t.rig.now += 1s;
    t.rig.host.timers[0].due();
    CHECK(t.rig.host.kicks.empty());
}

}  // namespace
}  // namespace kvmlet::test
