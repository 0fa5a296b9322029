#include "devices/virtio/mmio_transport.hpp"

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"

namespace kvmlet::test {
namespace {

// virtio 1.2 §4.2.2 register offsets, spelled out here so the test does not trust the
// transport's own constants.
namespace reg {
constexpr std::uint64_t magic = 0x000, version = 0x004, device_id = 0x008, vendor_id = 0x00c,
                        device_features = 0x010, device_features_sel = 0x014, driver_features = 0x020,
                        driver_features_sel = 0x024, queue_sel = 0x030, queue_num_max = 0x034,
                        queue_num = 0x038, queue_ready = 0x044, queue_notify = 0x050,
                        interrupt_status = 0x060, interrupt_ack = 0x064, status = 0x070,
                        queue_desc_low = 0x080, queue_desc_high = 0x084, queue_driver_low = 0x090,
                        queue_driver_high = 0x094, queue_device_low = 0x0a0, queue_device_high = 0x0a4,
                        shm_sel = 0x0ac, shm_len_low = 0x0b0, shm_len_high = 0x0b4, config_generation = 0x0fc,
                        config = 0x100;
}  // namespace reg

// §2.1 device status bits.
constexpr std::uint32_t acknowledge = 1, driver = 2, driver_ok = 4, features_ok = 8, device_needs_reset = 64;
// §4.2.2 InterruptStatus bits.
constexpr std::uint32_t used_buffer_interrupt = 1, config_change_interrupt = 2;

constexpr std::uint64_t window = 0xd000'0000;
constexpr std::uint64_t ram_size = 4 * MiB;

constexpr std::uint64_t f_indirect = std::uint64_t{1} << 28;
constexpr std::uint64_t f_event_idx = std::uint64_t{1} << 29;
constexpr std::uint64_t f_version_1 = std::uint64_t{1} << 32;
constexpr std::uint64_t f_device_low = std::uint64_t{1} << 5;    // a device-specific bit
constexpr std::uint64_t f_device_high = std::uint64_t{1} << 35;  // one in the high half

struct RecordingIrq final : IrqLine {
    void trigger() noexcept override { ++count; }
    std::atomic<int> count{0};
};

// A virtio device that records what the transport does to it. Its queues are served by popping
// every chain and returning it used with length 0.
class FakeDevice final : public virtio::Device {
public:
    static constexpr std::uint64_t offered = f_indirect | f_event_idx | f_device_low | f_device_high;

    virtio::DeviceType type() const noexcept override { return virtio::DeviceType::block; }
    std::uint64_t features() const noexcept override { return offered; }
    std::span<std::uint16_t const> queue_max_sizes() const noexcept override { return max_sizes; }

    void read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept override {
        for (std::size_t i = 0; i < data.size(); ++i)
            data[i] = offset + i < config.size() ? config[offset + i] : std::byte{0};
    }
    void write_config(std::uint64_t offset, std::span<std::byte const> data) noexcept override {
        config_writes.push_back({offset, std::vector<std::byte>(data.begin(), data.end())});
    }

    bool activate(virtio::Activation a) noexcept override {
        ++activations;
        acked_features = a.features;
        queues = std::move(a.queues);
        interrupt = &a.interrupt;
        return accept_activation;
    }
    virtio::Work process_queue(std::size_t queue) noexcept override {
        if (on_process) on_process();
        processed.push_back(queue);
        auto& q = queues.at(queue);
        while (auto chain = q.pop()) q.add_used(chain->head, 0);
        if (q.needs_interrupt()) interrupt->used_buffers(queue);
        return virtio::Work::done;
    }
    void reset() noexcept override {
        ++resets;
        queues.clear();
        interrupt = nullptr;
    }

    std::array<std::uint16_t, 2> max_sizes{16, 8};
    std::array<std::byte, 12> config{};
    struct ConfigWrite {
        std::uint64_t offset;
        std::vector<std::byte> bytes;
    };
    std::vector<ConfigWrite> config_writes;
    bool accept_activation = true;
    int activations = 0;
    int resets = 0;
    std::uint64_t acked_features = 0;
    std::vector<virtio::SplitQueue> queues;
    virtio::Interrupt* interrupt = nullptr;
    std::vector<std::size_t> processed;
    std::function<void()> on_process;  // e.g. a disk's slow I/O
};

// A driver at the register level: every access is an IoAccess with a span, as a vCPU exit makes.
struct Mmio {
    Mmio() {
        for (std::size_t i = 0; i < device->config.size(); ++i)
            device->config[i] = std::byte{static_cast<std::uint8_t>(0xc0 + i)};
    }

    GuestMemory memory = flat_ram(ram_size);
    RecordingIrq irq;
    std::shared_ptr<FakeDevice> device = std::make_shared<FakeDevice>();
    virtio::MmioTransport transport{memory, device, irq};
    FakeDriver q0{memory, 16, 0x10000, 0x100000};
    FakeDriver q1{memory, 8, 0x20000, 0x200000};

    std::uint32_t read32(std::uint64_t offset) {
        std::array<std::byte, 4> data;
        data.fill(std::byte{0xa5});
        transport.read(IoAccess{window + offset, offset}, data);
        std::uint32_t value;
        std::memcpy(&value, data.data(), sizeof value);
        return value;
    }
    void write32(std::uint64_t offset, std::uint32_t value) {
        std::array<std::byte, 4> data;
        std::memcpy(data.data(), &value, sizeof value);
        transport.write(IoAccess{window + offset, offset}, data);
    }
    void add_status(std::uint32_t bits) { write32(reg::status, read32(reg::status) | bits); }

    std::uint64_t device_features() {
        write32(reg::device_features_sel, 0);
        std::uint64_t low = read32(reg::device_features);
        write32(reg::device_features_sel, 1);
        return low | std::uint64_t{read32(reg::device_features)} << 32;
    }
    void write_driver_features(std::uint64_t features) {
        write32(reg::driver_features_sel, 0);
        write32(reg::driver_features, static_cast<std::uint32_t>(features));
        write32(reg::driver_features_sel, 1);
        write32(reg::driver_features, static_cast<std::uint32_t>(features >> 32));
    }
    // §3.1.1 steps 1-5; returns whether FEATURES_OK stuck.
    bool negotiate(std::uint64_t features) {
        write32(reg::status, 0);
        add_status(acknowledge);
        add_status(driver);
        write_driver_features(features);
        add_status(features_ok);
        return (read32(reg::status) & features_ok) != 0;
    }
    // §4.2.3.2.
    void setup_queue(std::uint32_t index, virtio::QueueConfig const& c) {
        write32(reg::queue_sel, index);
        write32(reg::queue_num, c.size);
        write32(reg::queue_desc_low, static_cast<std::uint32_t>(c.desc.value));
        write32(reg::queue_desc_high, static_cast<std::uint32_t>(c.desc.value >> 32));
        write32(reg::queue_driver_low, static_cast<std::uint32_t>(c.avail.value));
        write32(reg::queue_driver_high, static_cast<std::uint32_t>(c.avail.value >> 32));
        write32(reg::queue_device_low, static_cast<std::uint32_t>(c.used.value));
        write32(reg::queue_device_high, static_cast<std::uint32_t>(c.used.value >> 32));
        write32(reg::queue_ready, 1);
    }
    void setup_queues() {
        setup_queue(0, q0.config());
        setup_queue(1, q1.config());
    }
    // The whole init sequence; the device must end up active.
    void bring_up(std::uint64_t features = f_version_1) {
        REQUIRE(negotiate(features));
        setup_queues();
        add_status(driver_ok);
        REQUIRE(transport.active());
    }
};

}  // namespace

TEST_CASE("The MMIO register file identifies a modern virtio device") {
    Mmio m;
    CHECK(m.read32(reg::magic) == 0x7472'6976);  // "virt"
    CHECK(m.read32(reg::version) == 2);
    CHECK(m.read32(reg::device_id) == 2);  // block
    CHECK(m.read32(reg::vendor_id) == 0x4c4d'564b);
    CHECK(m.read32(reg::status) == 0);
    CHECK(m.read32(reg::interrupt_status) == 0);
    CHECK(m.read32(reg::config_generation) == 0);
    m.write32(reg::shm_sel, 0);
    CHECK(m.read32(reg::shm_len_low) == 0xffff'ffff);  // §4.2.2: no such region
    CHECK(m.read32(reg::shm_len_high) == 0xffff'ffff);
}

TEST_CASE("Device features are offered in two 32-bit halves and VERSION_1 is always offered") {
    Mmio m;
    m.write32(reg::device_features_sel, 0);
    CHECK(m.read32(reg::device_features) == static_cast<std::uint32_t>(FakeDevice::offered));
    m.write32(reg::device_features_sel, 1);
    CHECK(m.read32(reg::device_features) == (1u | static_cast<std::uint32_t>(FakeDevice::offered >> 32)));
    CHECK(m.device_features() == (FakeDevice::offered | f_version_1));
    m.write32(reg::device_features_sel, 2);
    CHECK(m.read32(reg::device_features) == 0);
    m.write32(reg::device_features_sel, 0xffff'ffff);
    CHECK(m.read32(reg::device_features) == 0);
}

TEST_CASE("FEATURES_OK sticks when the driver acks VERSION_1 and only offered bits") {
    Mmio m;
    CHECK(m.negotiate(f_version_1));
    CHECK(m.read32(reg::status) == (acknowledge | driver | features_ok));
    CHECK(m.negotiate(FakeDevice::offered | f_version_1));
}

TEST_CASE("FEATURES_OK stays clear when the driver omits VERSION_1") {
    Mmio m;
    CHECK_FALSE(m.negotiate(0));
    CHECK_FALSE(m.negotiate(f_indirect | f_event_idx));
    CHECK(m.read32(reg::status) == (acknowledge | driver));
}

TEST_CASE("FEATURES_OK stays clear when the driver acks a bit the device did not offer") {
    Mmio m;
    CHECK_FALSE(m.negotiate(f_version_1 | (std::uint64_t{1} << 0)));   // low half
    CHECK_FALSE(m.negotiate(f_version_1 | (std::uint64_t{1} << 33)));  // high half: ACCESS_PLATFORM
    CHECK_FALSE(m.negotiate(f_version_1 | (std::uint64_t{1} << 63)));
    CHECK(m.negotiate(f_version_1 | f_device_high));
}

TEST_CASE("Driver features selected beyond the second word are ignored") {
    Mmio m;
    m.write32(reg::status, acknowledge | driver);
    m.write_driver_features(f_version_1);
    m.write32(reg::driver_features_sel, 2);
    m.write32(reg::driver_features, 0xffff'ffff);
    m.add_status(features_ok);
    CHECK(m.read32(reg::status) & features_ok);
}

TEST_CASE("Driver features cannot change once FEATURES_OK is set") {
    Mmio m;
    REQUIRE(m.negotiate(f_version_1 | f_indirect));
    m.write_driver_features(f_version_1 | f_event_idx);
    m.setup_queues();
    m.add_status(driver_ok);
    REQUIRE(m.transport.active());
    CHECK(m.device->acked_features == (f_version_1 | f_indirect));
}

TEST_CASE("QueueNumMax reports each queue's maximum and zero for a queue that does not exist") {
    Mmio m;
    m.write32(reg::queue_sel, 0);
    CHECK(m.read32(reg::queue_num_max) == 16);
    m.write32(reg::queue_sel, 1);
    CHECK(m.read32(reg::queue_num_max) == 8);
    m.write32(reg::queue_sel, 2);
    CHECK(m.read32(reg::queue_num_max) == 0);
    CHECK(m.read32(reg::queue_ready) == 0);
    m.write32(reg::queue_num, 4);  // ignored, and must not touch another queue
    m.write32(reg::queue_ready, 1);
    CHECK(m.read32(reg::queue_ready) == 0);
    m.write32(reg::queue_sel, 0xffff'ffff);
    CHECK(m.read32(reg::queue_num_max) == 0);
}

TEST_CASE("DRIVER_OK activates the device with the configured queues and the acked features") {
    Mmio m;
    m.bring_up(f_version_1 | f_event_idx);
    CHECK(m.read32(reg::status) == (acknowledge | driver | features_ok | driver_ok));
    CHECK(m.device->activations == 1);
    CHECK(m.device->acked_features == (f_version_1 | f_event_idx));
    REQUIRE(m.device->queues.size() == 2);
    CHECK(m.device->queues[0].size() == 16);
    CHECK(m.device->queues[1].size() == 8);
    for (std::uint32_t q : {0u, 1u}) {
        m.write32(reg::queue_sel, q);
        CHECK(m.read32(reg::queue_ready) == 1);
    }
    CHECK(m.irq.count == 0);

    // The queues are the driver's rings: a chain on queue 1 comes back through queue 1's used ring.
    auto head = m.q1.add_chain({{m.q1.alloc(8), 8, true}});
    m.write32(reg::queue_notify, 1);
    auto used = m.q1.next_used();
    REQUIRE(used);
    CHECK(used->id == head);
    CHECK_FALSE(m.q0.next_used());
}

TEST_CASE("Negotiated EVENT_IDX and INDIRECT_DESC reach the device's queues, each on its own") {
    // An indirect chain is served only with INDIRECT_DESC; pop on the empty ring writes
    // avail_event only with EVENT_IDX.
    struct Case {
        std::uint64_t features;
        bool indirect;
        bool event_idx;
    };
    for (auto c : {Case{0, false, false}, Case{f_indirect, true, false}, Case{f_event_idx, false, true},
                   Case{f_indirect | f_event_idx, true, true}}) {
        CAPTURE(c.features);
        Mmio m;
        m.bring_up(f_version_1 | c.features);
        REQUIRE(m.memory.write(GuestAddress{m.q0.used_ring() + 4 + 8 * 16}, std::uint16_t{0x7777}));
        m.q0.add_indirect_chain({{m.q0.alloc(8), 8, true}});
        m.write32(reg::queue_notify, 0);
        CHECK(m.device->queues[0].bad_chains() == (c.indirect ? 0 : 1));
        CHECK(m.q0.avail_event() == (c.event_idx ? 1 : 0x7777));
    }
}

TEST_CASE("Queue addresses combine the low and high register halves") {
    // RAM above 4 GiB, so every ring address needs its high half.
    RamRange const ranges[] = {{GuestAddress{0}, 1 * MiB}, {GuestAddress{4 * GiB}, 4 * MiB}};
    GuestMemory memory = GuestMemory::create(ranges);
    RecordingIrq irq;
    auto device = std::make_shared<FakeDevice>();
    virtio::MmioTransport transport{memory, device, irq};
    FakeDriver q0{memory, 16, 4 * GiB + 0x10000, 4 * GiB + 0x100000};
    FakeDriver q1{memory, 8, 4 * GiB + 0x20000, 4 * GiB + 0x200000};
    auto write32 = [&](std::uint64_t offset, std::uint32_t value) {
        std::array<std::byte, 4> data;
        std::memcpy(data.data(), &value, sizeof value);
        transport.write(IoAccess{window + offset, offset}, data);
    };
    write32(reg::status, acknowledge | driver);
    write32(reg::driver_features_sel, 1);
    write32(reg::driver_features, 1);  // VERSION_1
    write32(reg::status, acknowledge | driver | features_ok);
    for (std::uint32_t i = 0; i < 2; ++i) {
        auto c = (i == 0 ? q0 : q1).config();
        write32(reg::queue_sel, i);
        write32(reg::queue_num, c.size);
        write32(reg::queue_desc_low, static_cast<std::uint32_t>(c.desc.value));
        write32(reg::queue_desc_high, static_cast<std::uint32_t>(c.desc.value >> 32));
        write32(reg::queue_driver_low, static_cast<std::uint32_t>(c.avail.value));
        write32(reg::queue_driver_high, static_cast<std::uint32_t>(c.avail.value >> 32));
        write32(reg::queue_device_low, static_cast<std::uint32_t>(c.used.value));
        write32(reg::queue_device_high, static_cast<std::uint32_t>(c.used.value >> 32));
        write32(reg::queue_ready, 1);
    }
    write32(reg::status, acknowledge | driver | features_ok | driver_ok);
    REQUIRE(transport.active());
    auto head = q0.add_chain({{q0.alloc(8), 8, true}});
    write32(reg::queue_notify, 0);
    auto used = q0.next_used();
    REQUIRE(used);
    CHECK(used->id == head);
}

TEST_CASE(
    "DRIVER_OK with a bad queue configuration sets DEVICE_NEEDS_RESET and raises a config-change interrupt") {
    struct Case {
        char const* what;
        std::uint32_t queue;
        std::uint64_t offset;  // register to spoil after a good setup
        std::uint32_t value;
    };
    std::array const cases{
        Case{"size zero", 0, reg::queue_num, 0},
        Case{"size not a power of two", 0, reg::queue_num, 12},
        Case{"size above QueueNumMax", 1, reg::queue_num, 16},
        Case{"size above 16 bits", 1, reg::queue_num, 0x1'0008},
        Case{"descriptor table misaligned", 0, reg::queue_desc_low, 0x10008},
        Case{"driver area misaligned", 1, reg::queue_driver_low, 0x20081},
        Case{"device area misaligned", 1, reg::queue_device_low, 0x21002},
        Case{"descriptor table outside RAM", 0, reg::queue_desc_high, 1},
        Case{"driver area straddling the end of RAM", 0, reg::queue_driver_low, ram_size - 16},
        Case{"device area outside RAM", 1, reg::queue_device_low, 0xfee0'0000},
        Case{"queue not ready", 1, reg::queue_ready, 0},
    };
    for (auto const& c : cases) {
        CAPTURE(c.what);
        Mmio m;
        REQUIRE(m.negotiate(f_version_1));
        m.setup_queue(0, m.q0.config());
        m.setup_queue(1, m.q1.config());
        m.write32(reg::queue_sel, c.queue);
        m.write32(reg::queue_ready, 0);  // registers are writable only while not ready
        if (c.offset != reg::queue_ready) {
            m.write32(c.offset, c.value);
            m.write32(reg::queue_ready, 1);
        }
        m.add_status(driver_ok);
        CHECK_FALSE(m.transport.active());
        CHECK(m.device->activations == 0);
        CHECK(m.read32(reg::status) & device_needs_reset);
        CHECK(m.read32(reg::interrupt_status) & config_change_interrupt);
        CHECK(m.irq.count == 1);
        CHECK(m.read32(reg::config_generation) == 1);

        // Notifications go nowhere, and a reset recovers the device.
        m.write32(reg::queue_notify, 0);
        CHECK(m.device->processed.empty());
        m.bring_up();
        CHECK(m.device->activations == 1);
    }
}

TEST_CASE("DRIVER_OK when the device refuses to start sets DEVICE_NEEDS_RESET") {
    Mmio m;
    m.device->accept_activation = false;
    REQUIRE(m.negotiate(f_version_1));
    m.setup_queues();
    m.add_status(driver_ok);
    CHECK(m.device->activations == 1);
    CHECK_FALSE(m.transport.active());
    CHECK(m.read32(reg::status) & device_needs_reset);
    CHECK(m.read32(reg::interrupt_status) == config_change_interrupt);
    CHECK(m.irq.count == 1);
}

TEST_CASE("DRIVER_OK without FEATURES_OK does not activate the device") {
    Mmio m;
    m.add_status(acknowledge | driver);
    m.setup_queues();
    m.add_status(driver_ok);
    CHECK_FALSE(m.transport.active());
    CHECK(m.device->activations == 0);
    m.write32(reg::queue_notify, 0);
    CHECK(m.device->processed.empty());
}

TEST_CASE("QueueNotify reaches the device only while it is active and only for queues that exist") {
    Mmio m;
    m.write32(reg::queue_notify, 0);
    REQUIRE(m.negotiate(f_version_1));
    m.setup_queues();
    m.write32(reg::queue_notify, 0);  // configured but not DRIVER_OK
    CHECK(m.device->processed.empty());

    m.add_status(driver_ok);
    REQUIRE(m.transport.active());
    // Activation serves every queue once, for what the driver queued before DRIVER_OK.
    CHECK(m.device->processed == std::vector<std::size_t>{0, 1});
    m.device->processed.clear();
    for (std::uint32_t q : {0u, 1u, 2u, 0xffffu, 0x1'0000u, 0xffff'ffffu}) m.write32(reg::queue_notify, q);
    CHECK(m.device->processed == std::vector<std::size_t>{0, 1});

    m.transport.notify(1);  // the ioeventfd path
    m.transport.notify(7);
    CHECK(m.device->processed == std::vector<std::size_t>{0, 1, 1});

    m.write32(reg::status, 0);
    m.write32(reg::queue_notify, 0);
    m.transport.notify(0);
    CHECK(m.device->processed == std::vector<std::size_t>{0, 1, 1});
}

TEST_CASE("A notify handler receives QueueNotify writes for queues that exist") {
    Mmio m;
    std::vector<std::uint32_t> notified;
    m.transport.set_notify_handler([&](std::uint32_t q) { notified.push_back(q); });
    m.bring_up();
    CHECK(notified == std::vector<std::uint32_t>{0, 1});  // activation: each queue once
    notified.clear();
    for (std::uint32_t q : {1u, 0u, 2u, 0xffff'ffffu}) m.write32(reg::queue_notify, q);
    CHECK(notified == std::vector<std::uint32_t>{1, 0});
    CHECK(m.device->processed.empty());  // the handler decides when the device runs
}

TEST_CASE("Used-buffer interrupts set InterruptStatus bit 0 and InterruptACK clears it") {
    Mmio m;
    m.bring_up();
    m.q0.add_chain({{m.q0.alloc(8), 8, true}});
    m.write32(reg::queue_notify, 0);
    CHECK(m.irq.count == 1);
    CHECK(m.read32(reg::interrupt_status) == used_buffer_interrupt);
    m.write32(reg::interrupt_ack, config_change_interrupt);  // acking what is not pending changes nothing
    CHECK(m.read32(reg::interrupt_status) == used_buffer_interrupt);
    m.write32(reg::interrupt_ack, used_buffer_interrupt);
    CHECK(m.read32(reg::interrupt_status) == 0);

    m.q0.add_chain({{m.q0.alloc(8), 8, true}});
    m.write32(reg::queue_notify, 0);
    m.transport.locked([&] { m.device->interrupt->config_changed(); });
    CHECK(m.irq.count == 3);
    CHECK(m.read32(reg::interrupt_status) == (used_buffer_interrupt | config_change_interrupt));
    m.write32(reg::interrupt_ack, config_change_interrupt);
    CHECK(m.read32(reg::interrupt_status) == used_buffer_interrupt);
    m.write32(reg::interrupt_ack, 0xffff'ffff);
    CHECK(m.read32(reg::interrupt_status) == 0);
}

TEST_CASE("ConfigGeneration increments when the device reports a configuration change") {
    Mmio m;
    m.bring_up();
    CHECK(m.read32(reg::config_generation) == 0);
    m.transport.locked([&] { m.device->interrupt->config_changed(); });
    CHECK(m.read32(reg::config_generation) == 1);
    m.transport.locked([&] { m.device->interrupt->config_changed(); });
    CHECK(m.read32(reg::config_generation) == 2);
    CHECK(m.read32(reg::interrupt_status) == config_change_interrupt);
    CHECK(m.irq.count == 2);
}

TEST_CASE("A device that asks for a reset gets DEVICE_NEEDS_RESET and a config-change interrupt") {
    Mmio m;
    m.bring_up();
    m.transport.locked([&] { m.device->interrupt->needs_reset(); });
    CHECK(m.read32(reg::status) & device_needs_reset);
    CHECK(m.read32(reg::interrupt_status) & config_change_interrupt);
    CHECK(m.irq.count == 1);
    m.write32(reg::status, 0);
    CHECK(m.read32(reg::status) == 0);
    CHECK(m.device->resets == 1);
}

TEST_CASE("Writing status 0 resets the device and every register") {
    Mmio m;
    m.bring_up(f_version_1 | f_indirect);
    m.q0.add_chain({{m.q0.alloc(8), 8, true}});
    m.write32(reg::queue_notify, 0);
    REQUIRE(m.read32(reg::interrupt_status) != 0);
    m.write32(reg::device_features_sel, 1);
    m.write32(reg::queue_sel, 1);

    m.write32(reg::status, 0);
    CHECK(m.device->resets == 1);
    CHECK_FALSE(m.transport.active());
    CHECK(m.read32(reg::status) == 0);
    CHECK(m.read32(reg::interrupt_status) == 0);
    CHECK(m.read32(reg::queue_num_max) == 16);  // QueueSel is back to 0
    CHECK(m.read32(reg::device_features) == static_cast<std::uint32_t>(FakeDevice::offered));  // sel 0
    for (std::uint32_t q : {0u, 1u}) {
        m.write32(reg::queue_sel, q);
        CHECK(m.read32(reg::queue_ready) == 0);
    }
    // Driver features are gone: FEATURES_OK without writing them again is refused.
    m.write32(reg::status, acknowledge | driver | features_ok);
    CHECK_FALSE(m.read32(reg::status) & features_ok);
    // Queues forgot their configuration: DRIVER_OK without setting them up fails.
    REQUIRE(m.negotiate(f_version_1));
    m.add_status(driver_ok);
    CHECK_FALSE(m.transport.active());
    CHECK(m.read32(reg::status) & device_needs_reset);

    // And the whole sequence works again.
    m.bring_up();
    CHECK(m.device->activations == 2);
    CHECK(m.device->acked_features == f_version_1);
}

TEST_CASE("Writing status 0 before activation does not reset the device") {
    Mmio m;
    m.add_status(acknowledge);
    m.write32(reg::status, 0);
    CHECK(m.device->resets == 0);
    CHECK(m.read32(reg::status) == 0);
}

TEST_CASE("Status writes that clear bits are ignored") {
    Mmio m;
    m.write32(reg::status, acknowledge | driver);
    m.write32(reg::status, acknowledge);
    CHECK(m.read32(reg::status) == (acknowledge | driver));
    m.write32(reg::status, driver | features_ok);
    CHECK(m.read32(reg::status) == (acknowledge | driver));

    m.bring_up();
    m.write32(reg::status, acknowledge | driver | features_ok);  // drops DRIVER_OK
    CHECK(m.read32(reg::status) == (acknowledge | driver | features_ok | driver_ok));
    CHECK(m.transport.active());
    CHECK(m.device->resets == 0);
}

TEST_CASE("Register accesses that are not 4 bytes wide or not aligned are ignored and read as zero") {
    Mmio m;
    auto read = [&](std::uint64_t offset, std::size_t width) {
        std::vector<std::byte> data(width, std::byte{0xa5});
        m.transport.read(IoAccess{window + offset, offset}, data);
        return data;
    };
    auto write = [&](std::uint64_t offset, std::vector<std::byte> const& data) {
        m.transport.write(IoAccess{window + offset, offset}, data);
    };
    for (std::size_t width : {1u, 2u, 3u, 8u}) {
        CAPTURE(width);
        CHECK(read(reg::magic, width) == std::vector<std::byte>(width));
        CHECK(read(reg::version, width) == std::vector<std::byte>(width));
    }
    for (std::uint64_t offset : {1u, 2u, 3u, 5u, 0x72u}) {
        CAPTURE(offset);
        CHECK(read(offset, 4) == std::vector<std::byte>(4));
    }

    // A 1-byte status write, an 8-byte one, and a misaligned 4-byte one.
    write(reg::status, {std::byte{acknowledge}});
    write(reg::status, std::vector<std::byte>(8, std::byte{acknowledge}));
    write(reg::status + 1, std::vector<std::byte>(4, std::byte{0xff}));
    CHECK(m.read32(reg::status) == 0);

    m.bring_up();
    m.device->processed.clear();  // activation's own pass over the queues
    write(reg::queue_notify, {std::byte{0}});
    write(reg::queue_notify, {std::byte{0}, std::byte{0}});
    write(reg::queue_notify + 2, std::vector<std::byte>(4));
    CHECK(m.device->processed.empty());
    m.write32(reg::queue_notify, 0);
    CHECK(m.device->processed.size() == 1);
}

TEST_CASE("Configuration space reads and writes at 0x100 and beyond reach the device at any width") {
    Mmio m;
    auto read = [&](std::uint64_t offset, std::size_t width) {
        std::vector<std::byte> data(width, std::byte{0xa5});
        m.transport.read(IoAccess{window + offset, offset}, data);
        return data;
    };
    auto expect = [](std::uint64_t first, std::size_t width) {
        std::vector<std::byte> v;
        for (std::size_t i = 0; i < width; ++i)
            v.push_back(first + i < 12 ? std::byte{static_cast<std::uint8_t>(0xc0 + first + i)}
                                       : std::byte{0});
        return v;
    };
    for (std::size_t width : {1u, 2u, 4u, 8u}) {
        for (std::uint64_t at : {0u, 1u, 3u, 6u, 11u, 12u, 0x200u, 0xeffu}) {
            CAPTURE(width, at);
            CHECK(read(reg::config + at, width) == expect(at, width));
        }
    }

    std::vector<std::byte> one{std::byte{0x5a}};
    m.transport.write(IoAccess{window + reg::config + 5, reg::config + 5}, one);
    std::vector<std::byte> eight(8, std::byte{0x11});
    m.transport.write(IoAccess{window + reg::config + 3, reg::config + 3}, eight);
    std::vector<std::byte> four(4, std::byte{0x22});
    m.transport.write(IoAccess{window + reg::config, reg::config}, four);
    m.transport.write(IoAccess{window + reg::config, reg::config}, one);
    REQUIRE(m.device->config_writes.size() == 4);
    CHECK(m.device->config_writes[0].offset == 5);
    CHECK(m.device->config_writes[0].bytes == one);
    CHECK(m.device->config_writes[1].offset == 3);
    CHECK(m.device->config_writes[1].bytes == eight);
    CHECK(m.device->config_writes[2].offset == 0);
    CHECK(m.device->config_writes[2].bytes == four);
    CHECK(m.device->config_writes[3].offset == 0);
    CHECK(m.device->config_writes[3].bytes == one);
}

TEST_CASE("Queue registers are ignored while the queue is ready and after DRIVER_OK") {
    Mmio m;
    REQUIRE(m.negotiate(f_version_1));
    m.setup_queues();
    m.write32(reg::queue_sel, 0);
    m.write32(reg::queue_num, 4);  // ready: ignored
    m.write32(reg::queue_desc_low, 0x3000);
    m.add_status(driver_ok);
    REQUIRE(m.transport.active());
    CHECK(m.device->queues[0].size() == 16);

    // After DRIVER_OK even QueueReady is fixed.
    m.write32(reg::queue_ready, 0);
    CHECK(m.read32(reg::queue_ready) == 1);
    m.write32(reg::queue_sel, 1);
    m.write32(reg::queue_ready, 0);
    CHECK(m.read32(reg::queue_ready) == 1);

    // The rings did not move: a chain on queue 0 still comes back.
    auto head = m.q0.add_chain({{m.q0.alloc(8), 8, true}});
    m.write32(reg::queue_notify, 0);
    auto used = m.q0.next_used();
    REQUIRE(used);
    CHECK(used->id == head);
}

TEST_CASE("Reading and writing every register offset never crashes") {
    Mmio m;
    auto sweep_reads = [&] {
        for (std::uint64_t offset = 0; offset < reg::config; ++offset) {
            for (std::size_t width : {1u, 2u, 4u, 8u}) {
                std::vector<std::byte> data(width, std::byte{0xa5});
                m.transport.read(IoAccess{window + offset, offset}, data);
                if (width != 4 || offset % 4 != 0) {
                    CAPTURE(offset, width);
                    CHECK(data == std::vector<std::byte>(width));
                }
            }
        }
    };
    sweep_reads();
    m.bring_up();
    sweep_reads();

    // Writes of every value pattern to every register, active or not. Status 0 then resets.
    for (std::uint32_t value : {0u, 1u, 0xffu, 0x8000'0000u, 0xffff'ffffu}) {
        for (std::uint64_t offset = 0; offset < reg::config; offset += 4) {
            if (offset == reg::queue_notify) continue;  // covered elsewhere; here it would run queues
            m.write32(offset, value);
        }
        for (std::uint64_t offset = 0; offset < reg::config; ++offset) (void)m.read32(offset);
    }
    m.bring_up();  // the register file still works afterwards
    CHECK(m.read32(reg::magic) == 0x7472'6976);
}

TEST_CASE("A vCPU reads the registers while the device is busy in a slow call, without waiting for it") {
    // The disk's worker sits in a slow fdatasync (simulated: process_queue blocks until released);
    // register reads and writes on another thread must not wait for it.
    Mmio m;
    m.bring_up();
    std::promise<void> entered, release;
    auto released = release.get_future().share();
    m.device->on_process = [&] {
        entered.set_value();
        released.wait();
    };
    auto worker = std::async(std::launch::async, [&] { return m.transport.notify(0); });
    entered.get_future().wait();
    auto vcpu = std::async(std::launch::async, [&] {
        std::uint32_t status = m.read32(reg::status);
        std::uint32_t config = m.read32(reg::config);
        m.write32(reg::queue_sel, 1);
        return std::pair{status, config};
    });
    bool const answered = vcpu.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    release.set_value();
    worker.wait();
    REQUIRE(answered);
    auto [status, config] = vcpu.get();
    CHECK(status == (acknowledge | driver | features_ok | driver_ok));
    CHECK(config == 0xc3c2c1c0);
}

TEST_CASE("A reset waits for the device's call in progress, then resets it") {
    Mmio m;
    m.bring_up();
    std::promise<void> entered, release;
    auto released = release.get_future().share();
    std::atomic<bool> call_done{false};
    m.device->on_process = [&] {
        entered.set_value();
        released.wait();
        call_done = true;
    };
    auto worker = std::async(std::launch::async, [&] { return m.transport.notify(0); });
    entered.get_future().wait();
    auto vcpu = std::async(std::launch::async, [&] { m.write32(reg::status, 0); });
    // Order, not time: the reset cannot have run while the call is still blocked.
    vcpu.wait_for(std::chrono::milliseconds(100));
    CHECK(m.device->resets == 0);
    release.set_value();
    vcpu.wait();
    worker.wait();
    CHECK(call_done);
    CHECK(m.device->resets == 1);
    CHECK_FALSE(m.transport.active());
}

}  // namespace kvmlet::test
