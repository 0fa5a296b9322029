#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "devices/virtio/rng/rng_device.hpp"
#include "tests/unit/support/fake_device_host.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"

namespace kvmlet::test {
namespace {

struct CountingInterrupt final : virtio::Interrupt {
    void used_buffers(std::size_t) noexcept override { ++used; }
    void config_changed() noexcept override {}
    void needs_reset() noexcept override { ++resets; }
    int used = 0;
    int resets = 0;
};

using namespace std::chrono_literals;
using Clock = virtio::RateClock;

virtio::BucketConfig bucket(std::uint64_t size, std::chrono::milliseconds refill) {
    return {.size = size, .one_time_burst = 0, .refill_time = refill};
}

std::uint64_t metric(virtio::Device const& device, std::string_view name) {
    for (auto const& m : device.metrics())
        if (m.name == name) return m.value;
    FAIL("no metric " << name);
    return 0;
}

struct RngRig {
    explicit RngRig(virtio::RateLimiterConfig const& limits = {}) : rng(make(limits)) {}

    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    CountingInterrupt interrupt;
    Clock::time_point now{};
    RecordingDeviceHost host;  // its timers are the rate limit's retries
    virtio::RngDevice rng;

    virtio::RngDevice make(virtio::RateLimiterConfig const& limits) {
        return virtio::RngDevice(
            {.rate_limiter = limits},
            [](std::span<std::byte> out) {
                for (auto& b : out) b = std::byte{0x5a};
                return true;
            },
            [this] { return now; });
    }
    void activate() {
        std::vector<virtio::SplitQueue> queues;
        queues.push_back(virtio::SplitQueue::activate(memory, driver.config(), 256, false, false).value());
        REQUIRE(rng.activate({memory, std::move(queues), 0, interrupt, host}));
    }
};

TEST_CASE("virtio-rng fills every writable buffer and reports the length") {
    RngRig rig;
    rig.activate();
    auto a = rig.driver.alloc(16), b = rig.driver.alloc(48);
    rig.driver.add_chain({{a, 16, true}, {b, 48, true}});
    rig.rng.process_queue(0);
    auto used = rig.driver.next_used();
    REQUIRE(used);
    CHECK(used->len == 64);
    CHECK(guest<std::uint8_t>(rig.memory, b + 47) == 0x5a);
    CHECK(rig.interrupt.used == 1);
    CHECK(rig.rng.bytes_served() == 64);
}

TEST_CASE("virtio-rng with the real source writes something other than zeros") {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    CountingInterrupt interrupt;
    RecordingDeviceHost host;
    virtio::RngDevice rng({});
    std::vector<virtio::SplitQueue> queues;
    queues.push_back(virtio::SplitQueue::activate(memory, driver.config(), 256, false, false).value());
    REQUIRE(rng.activate({memory, std::move(queues), 0, interrupt, host}));
    auto buf = driver.alloc(64);
    driver.add_chain({{buf, 64, true}});
    rng.process_queue(0);
    auto bytes = guest_bytes(memory, buf, 64);
    CHECK(std::any_of(bytes.begin(), bytes.end(), [](std::byte b) { return b != std::byte{0}; }));
}

TEST_CASE("virtio-rng serves a bounded number of requests per call while the driver keeps re-posting") {
    // A second vCPU that makes every used chain available again at once: the call must end.
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    CountingInterrupt interrupt;
    std::uint16_t head = 0;
    std::uint32_t fills = 0;
    RecordingDeviceHost host;
    virtio::RngDevice rng({}, [&](std::span<std::byte>) {
        ++fills;
        driver.publish(head);  // the same chain, again
        return true;
    });
    std::vector<virtio::SplitQueue> queues;
    queues.push_back(virtio::SplitQueue::activate(memory, driver.config(), 256, false, false).value());
    REQUIRE(rng.activate({memory, std::move(queues), 0, interrupt, host}));
    auto buf = driver.alloc(64);
    head = driver.add_chain({{buf, 64, true}});
    CHECK(rng.process_queue(0) == virtio::Work::more);
    CHECK(fills == virtio::RngDevice::chains_per_call);
    CHECK(rng.process_queue(0) == virtio::Work::more);
    CHECK(fills == 2 * virtio::RngDevice::chains_per_call);
}

TEST_CASE("virtio-rng says done once the ring is empty") {
    RngRig rig;
    rig.activate();
    auto buf = rig.driver.alloc(64);
    rig.driver.add_chain({{buf, 64, true}});
    CHECK(rig.rng.process_queue(0) == virtio::Work::done);
}

TEST_CASE("virtio-rng stops at its rate limit, asks for a timer, and resumes when it fires") {
    RngRig rig({.bandwidth = bucket(100, 1000ms)});  // 100 bytes per second, starting full
    rig.activate();
    for (int i = 0; i < 3; ++i) rig.driver.add_chain({{rig.driver.alloc(64), 64, true}});
    rig.rng.process_queue(0);
    auto first = rig.driver.next_used();
    REQUIRE(first);
    CHECK(first->len == 64);
    CHECK_FALSE(rig.driver.next_used());  // 36 bytes left: the second request waits for 64
    REQUIRE(rig.host.timers.size() == 1);
    CHECK(rig.host.timers[0].delay == 280ms);
    CHECK(rig.rng.throttled() == 1);
    CHECK(metric(rig.rng, "entropy_rate_limiter_throttled") == 1);

    rig.now += 280ms;
    rig.host.timers[0].due();  // the timer serves the queue again, through the host
    CHECK(rig.host.kicks == std::vector<std::size_t>{0});
    rig.rng.process_queue(0);
    auto second = rig.driver.next_used();
    REQUIRE(second);
    CHECK(second->len == 64);
    CHECK_FALSE(rig.driver.next_used());
}

TEST_CASE("virtio-rng gives a request larger than its bandwidth bucket one bucket of bytes") {
    RngRig rig({.bandwidth = bucket(10, 1000ms)});
    rig.activate();
    rig.driver.add_chain({{rig.driver.alloc(64), 64, true}});
    rig.rng.process_queue(0);
    auto used = rig.driver.next_used();
    REQUIRE(used);
    CHECK(used->len == 10);
}

TEST_CASE("virtio-rng keeps one retry timer however often the driver notifies while out of tokens") {
    RngRig rig({.bandwidth = bucket(10, 1000ms)});
    rig.activate();
    rig.driver.add_chain({{rig.driver.alloc(64), 64, true}});
    rig.rng.process_queue(0);  // the bucket of 10 bytes
    rig.driver.add_chain({{rig.driver.alloc(64), 64, true}});
    for (int i = 0; i < 1000; ++i) rig.rng.process_queue(0);
    CHECK(rig.host.timers.size() == 1);
    rig.host.timers[0].due();
    rig.rng.process_queue(0);  // still no tokens (the clock stood still): a new timer
    CHECK(rig.host.timers.size() == 2);
}

// Keeps `depth` requests of `chunk` bytes posted for `window` and serves them as the event loop
// would: whenever the device stops, the test moves the clock to its timer and fires it. With
// `wall_clock` the clock is the real one and a timer is a real sleep. Returns the bytes granted.
std::uint64_t bytes_in_window(RngRig& rig, std::uint32_t chunk, std::chrono::milliseconds window,
                              bool wall_clock = false) {
    auto const tick = [&] {
        if (wall_clock) rig.now = Clock::now();
    };
    tick();
    auto const end = rig.now + window;
    constexpr int depth = 8;
    for (int i = 0; i < depth; ++i) rig.driver.add_chain({{rig.driver.alloc(chunk), chunk, true}});
    std::uint64_t granted = 0;
    while (rig.now < end) {
        rig.rng.process_queue(0);
        bool any = false;
        while (auto used = rig.driver.next_used()) {
            granted += used->len;
            rig.driver.publish(static_cast<std::uint16_t>(used->id));  // the same buffer, again
            any = true;
        }
        if (any) continue;
        REQUIRE(rig.host.timers.size() == 1);  // one timer, however the device was called
        auto timer = std::move(rig.host.timers.back());
        rig.host.timers.clear();
        if (wall_clock)
            std::this_thread::sleep_for(timer.delay);
        else
            rig.now += std::chrono::duration_cast<Clock::duration>(timer.delay);
        tick();
        timer.due();
    }
    return granted;
}

TEST_CASE("virtio-rng under 64 KiB per 100 ms grants about its bucket plus the refill in one second") {
    RngRig rig({.bandwidth = bucket(64 * 1024, 100ms)});
    rig.activate();
    auto const granted = bytes_in_window(rig, 4096, 1000ms);
    // The full bucket at the start, then 640 KiB per second.
    CHECK(granted >= 640 * 1024);
    CHECK(granted <= 64 * 1024 + 640 * 1024 + 4096);
    CHECK(rig.rng.throttled() > 0);
}

TEST_CASE("virtio-rng under 64 KiB per 100 ms on the real clock stays near its limit") {
    RngRig rig({.bandwidth = bucket(64 * 1024, 100ms)});
    rig.activate();
    auto const granted = bytes_in_window(rig, 4096, 500ms, true);
    WARN("granted in 0.5 s at 640 KiB/s (bucket 64 KiB), wall clock: " << granted << " bytes");
    // Loosely: never more than the bucket and the refill; not far below it unless the machine is
    // very busy.
    CHECK(granted <= 64 * 1024 + 320 * 1024 + 4096);
    CHECK(granted >= 96 * 1024);
}

TEST_CASE("virtio-rng under 100 requests per second serves about that many, and more as it refills") {
    RngRig rig({.ops = bucket(10, 100ms)});
    rig.activate();
    auto const granted = bytes_in_window(rig, 16, 1000ms);
    CHECK(granted / 16 >= 100);
    CHECK(granted / 16 <= 111);
    auto const more = bytes_in_window(rig, 16, 500ms);  // the same device, half a second later
    CHECK(more / 16 >= 45);
    CHECK(more / 16 <= 60);
}

TEST_CASE("virtio-rng without a limiter asks for no timer") {
    RngRig rig;
    rig.activate();
    for (int i = 0; i < 16; ++i) rig.driver.add_chain({{rig.driver.alloc(4096), 4096, true}});
    CHECK(rig.rng.process_queue(0) == virtio::Work::done);
    CHECK(rig.rng.bytes_served() == 16 * 4096);
    CHECK(rig.host.timers.empty());
}

TEST_CASE("virtio-rng: a reset drops the request waiting for tokens, and a late timer is harmless") {
    RngRig rig({.bandwidth = bucket(64, 1000ms)});
    rig.activate();
    rig.driver.add_chain({{rig.driver.alloc(64), 64, true}});
    rig.driver.add_chain({{rig.driver.alloc(64), 64, true}});
    rig.rng.process_queue(0);
    REQUIRE(rig.host.timers.size() == 1);
    rig.rng.reset();
    rig.now += 1s;
    rig.host.timers[0].due();
    CHECK(rig.host.kicks.empty());
    CHECK(rig.rng.bytes_served() == 64);
}

TEST_CASE("virtio-rng returns a buffer outside RAM without bytes and keeps serving") {
    RngRig rig;
    rig.activate();
    rig.driver.add_chain({{8 * MiB, 32, true}});
    auto ok = rig.driver.alloc(8);
    rig.driver.add_chain({{ok, 8, true}});
    rig.rng.process_queue(0);
    auto bad = rig.driver.next_used();
    auto good = rig.driver.next_used();
    REQUIRE(bad);
    REQUIRE(good);
    CHECK(bad->len == 0);
    CHECK(good->len == 8);
}

TEST_CASE("virtio-rng ignores notifications before activation and after reset") {
    RngRig rig;
    rig.rng.process_queue(0);
    rig.activate();
    rig.rng.reset();
    rig.rng.process_queue(0);
    CHECK(rig.rng.bytes_served() == 0);
}

}  // namespace
}  // namespace kvmlet::test
