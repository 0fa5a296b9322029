#include "devices/virtio/active_state.hpp"

#include <catch2/catch.hpp>
#include <vector>

#include "tests/unit/support/fake_device_host.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"

namespace kvmlet::test {
namespace {

struct CountingInterrupt final : virtio::Interrupt {
    void used_buffers(std::size_t queue) noexcept override { used.push_back(queue); }
    void config_changed() noexcept override {}
    void needs_reset() noexcept override { ++resets; }
    std::vector<std::size_t> used;
    int resets = 0;
};

struct Rig {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    CountingInterrupt interrupt;
    RecordingDeviceHost host;

    virtio::ActiveState activate() {
        std::vector<virtio::SplitQueue> queues;
        queues.push_back(virtio::SplitQueue::activate(memory, driver.config(), 16, false, false).value());
        return virtio::ActiveState(
            {memory, std::move(queues), virtio::bit(virtio::feature::ring_event_idx), interrupt, host});
    }
};

TEST_CASE("ActiveState interrupts the driver for used buffers, once per batch") {
    Rig rig;
    auto state = rig.activate();
    CHECK(state.has(virtio::feature::ring_event_idx));
    CHECK_FALSE(state.has(virtio::feature::ring_indirect_desc));
    rig.driver.add_chain({{rig.driver.alloc(8), 8, true}});
    auto chain = state.queue(0).pop();
    REQUIRE(chain);
    state.queue(0).add_used(chain->head, 0);
    state.signal(0);
    state.signal(0);  // nothing new since
    CHECK(rig.interrupt.used == std::vector<std::size_t>{0});
}

TEST_CASE("ActiveState asks for a reset once when a queue breaks, however often it is signalled") {
    Rig rig;
    auto state = rig.activate();
    rig.driver.set_avail_idx(100);  // runs more than the queue size ahead: broken
    CHECK_FALSE(state.queue(0).pop());
    REQUIRE(state.queue(0).broken());
    state.signal(0);
    state.signal(0);
    CHECK(rig.interrupt.resets == 1);
    CHECK(rig.interrupt.used.empty());
}

TEST_CASE("A configuration space reads as zeros past its end") {
    std::array<std::byte, 4> space{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    std::array<std::byte, 4> out{};
    virtio::read_config_space(space, 2, out);
    CHECK(out == std::array<std::byte, 4>{std::byte{3}, std::byte{4}, std::byte{0}, std::byte{0}});
    virtio::read_config_space(space, 9, out);
    CHECK(out == std::array<std::byte, 4>{});
}

}  // namespace
}  // namespace kvmlet::test
