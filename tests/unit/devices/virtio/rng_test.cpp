#include <catch2/catch.hpp>

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

using Clock = virtio::RngDevice::Clock;

struct RngRig {
    explicit RngRig(std::optional<std::uint64_t> rate) : rng(make(rate)) {}

    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    CountingInterrupt interrupt;
    Clock::time_point now{};
    RecordingDeviceHost host;  // its timers are the rate limit's retries
    virtio::RngDevice rng;

    virtio::RngDevice make(std::optional<std::uint64_t> rate) {
        return virtio::RngDevice(
            {.bytes_per_second = rate},
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
    RngRig rig(std::nullopt);
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
    RngRig rig(std::nullopt);
    rig.activate();
    auto buf = rig.driver.alloc(64);
    rig.driver.add_chain({{buf, 64, true}});
    CHECK(rig.rng.process_queue(0) == virtio::Work::done);
}

TEST_CASE("virtio-rng stops at its rate limit, asks to be called again, and resumes") {
    RngRig rig(100);  // bytes per second: a burst of 100
    rig.activate();
    for (int i = 0; i < 3; ++i) {
        auto buf = rig.driver.alloc(64);
        rig.driver.add_chain({{buf, 64, true}});
    }
    rig.rng.process_queue(0);
    auto first = rig.driver.next_used();
    auto second = rig.driver.next_used();
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->len == 64);
    CHECK(second->len == 36);  // what was left of the burst
    CHECK_FALSE(rig.driver.next_used());
    REQUIRE(rig.host.timers.size() == 1);
    CHECK(rig.host.timers[0].delay >= std::chrono::milliseconds(1));

    rig.now += std::chrono::milliseconds(500);  // 50 bytes back
    rig.host.timers[0].due();                   // the timer serves the queue again, through the host
    CHECK(rig.host.kicks == std::vector<std::size_t>{0});
    rig.rng.process_queue(0);
    auto third = rig.driver.next_used();
    REQUIRE(third);
    CHECK(third->len == 50);
}

TEST_CASE("virtio-rng keeps one retry timer however often the driver notifies while out of tokens") {
    RngRig rig(10);
    rig.activate();
    auto buf = rig.driver.alloc(64);
    rig.driver.add_chain({{buf, 64, true}});
    rig.rng.process_queue(0);  // the burst of 10 bytes
    rig.driver.add_chain({{rig.driver.alloc(64), 64, true}});
    for (int i = 0; i < 1000; ++i) rig.rng.process_queue(0);
    CHECK(rig.host.timers.size() == 1);
    rig.host.timers[0].due();
    rig.rng.process_queue(0);  // still no tokens (the clock stood still): a new timer
    CHECK(rig.host.timers.size() == 2);
}

TEST_CASE("virtio-rng returns a buffer outside RAM without bytes and keeps serving") {
    RngRig rig(std::nullopt);
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
    RngRig rig(std::nullopt);
    rig.rng.process_queue(0);
    rig.activate();
    rig.rng.reset();
    rig.rng.process_queue(0);
    CHECK(rig.rng.bytes_served() == 0);
}

}  // namespace
}  // namespace kvmlet::test
