#include "devices/virtio/pci_transport.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "devices/pci/pci_bus.hpp"
#include "devices/virtio/console/console_device.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"

namespace kvmlet::test {
namespace {

// Spelled out from the specs so the test does not trust the transport's constants.
// PCI 3.0 §6.1, §6.2.2, §6.8.2.
namespace pcireg {
constexpr std::uint32_t vendor_id = 0x00, device_id = 0x02, command = 0x04, status = 0x06, revision = 0x08,
                        bar0 = 0x10, subsystem_vendor = 0x2c, cap_pointer = 0x34, interrupt_pin = 0x3d;
constexpr std::uint16_t memory_space = 1 << 1, interrupt_disable = 1 << 10, status_capabilities = 1 << 4,
                        status_interrupt = 1 << 3;
constexpr std::uint16_t msix_enable = 1u << 15, msix_function_mask = 1u << 14;
}  // namespace pcireg
// virtio 1.2 §4.1.4: capability types and §4.1.4.3 struct virtio_pci_common_cfg.
namespace cfg {
constexpr std::uint8_t common = 1, notify = 2, isr = 3, device = 4, pci = 5;
}
namespace cc {
constexpr std::uint64_t device_feature_select = 0x00, device_feature = 0x04, driver_feature_select = 0x08,
                        driver_feature = 0x0c, config_msix_vector = 0x10, num_queues = 0x12,
                        device_status = 0x14, config_generation = 0x15, queue_select = 0x16,
                        queue_size = 0x18, queue_msix_vector = 0x1a, queue_enable = 0x1c,
                        queue_notify_off = 0x1e, queue_desc = 0x20, queue_driver = 0x28, queue_device = 0x30,
                        size = 0x38;
}
// §2.1 status bits, §4.1.4.5 ISR bits, §4.1.5.1.2 VIRTIO_MSI_NO_VECTOR.
constexpr std::uint32_t acknowledge = 1, driver = 2, driver_ok = 4, features_ok = 8, device_needs_reset = 64;
constexpr std::uint8_t isr_queue = 1, isr_config = 2;
constexpr std::uint16_t no_vector = 0xffff;
constexpr std::uint64_t f_version_1 = std::uint64_t{1} << 32;
constexpr std::uint64_t f_indirect = std::uint64_t{1} << 28;
constexpr std::uint64_t f_event_idx = std::uint64_t{1} << 29;

constexpr pci::Windows windows{.mmio32_start = 0xc000'0000,
                               .mmio32_end = 0xfec0'0000,
                               .mmio64_start = 64 * GiB,
                               .mmio64_end = 128 * GiB};
constexpr std::uint64_t ecam_base = 0xb000'0000;

struct RecordingIrq final : IrqLine {
    void trigger() noexcept override { ++count; }
    std::atomic<int> count{0};
};

struct MsiEvent {
    bool route;
    std::uint16_t vector;
    pci::MsiMessage message{};
    bool operator==(MsiEvent const&) const = default;
};
struct RecordingRouter final : pci::MsiRouter {
    void set_route(std::uint16_t vector, pci::MsiMessage const& message) noexcept override {
        events.push_back({true, vector, message});
    }
    void signal(std::uint16_t vector) noexcept override { events.push_back({false, vector}); }
    std::vector<std::uint16_t> signals() const {
        std::vector<std::uint16_t> out;
        for (auto const& e : events)
            if (!e.route) out.push_back(e.vector);
        return out;
    }
    std::vector<MsiEvent> events;
};

struct RecordingSink final : ByteSink {
    void write(std::span<std::byte const> bytes) noexcept override {
        for (auto b : bytes) out.push_back(static_cast<char>(b));
    }
    std::string out;
};

// A device with a patterned configuration space that records config writes and hands out the
// Interrupt it was activated with.
class ConfigDevice final : public virtio::Device {
public:
    virtio::DeviceType type() const noexcept override { return virtio::DeviceType::net; }
    std::uint64_t features() const noexcept override { return 0; }
    std::span<std::uint16_t const> queue_max_sizes() const noexcept override { return max_sizes; }
    void read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept override {
        for (std::size_t i = 0; i < data.size(); ++i)
            data[i] =
                offset + i < 12 ? std::byte{static_cast<std::uint8_t>(0xc0 + offset + i)} : std::byte{0};
    }
    void write_config(std::uint64_t offset, std::span<std::byte const> data) noexcept override {
        config_writes.push_back({offset, std::vector<std::byte>(data.begin(), data.end())});
    }
    bool activate(virtio::Activation a) noexcept override {
        interrupt = &a.interrupt;
        return true;
    }
    virtio::Work process_queue(std::size_t) noexcept override { return virtio::Work::done; }
    void reset() noexcept override { interrupt = nullptr; }

    std::array<std::uint16_t, 1> max_sizes{16};
    std::vector<std::pair<std::uint64_t, std::vector<std::byte>>> config_writes;
    virtio::Interrupt* interrupt = nullptr;
};

struct VirtioCap {
    std::uint32_t at;  // where the capability is in configuration space
    std::uint8_t cap_len, bar;
    std::uint32_t offset, length;
    std::uint32_t multiplier = 0;  // notify only
};

std::vector<std::byte> bytes(std::uint64_t value, std::size_t size) {
    std::vector<std::byte> out(size);
    std::memcpy(out.data(), &value, size);
    return out;
}
std::uint64_t value_of(std::span<std::byte const> data) {
    std::uint64_t v = 0;
    std::memcpy(&v, data.data(), std::min(data.size(), sizeof v));
    return v;
}
std::span<std::byte const> text(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// A guest driver at the bus level: configuration through ECAM, BAR 0 through the MMIO window.
struct Rig {
    explicit Rig(std::shared_ptr<virtio::Device> dev = nullptr)
        : device(dev ? dev : std::make_shared<virtio::ConsoleDevice>(sink)),
          transport(std::make_shared<virtio::PciTransport>(memory, device, msi, intx)) {
        transport->set_notify_region_handler(
            [this](std::optional<std::uint64_t> at) { notify_regions.push_back(at); });
        slot = bus->add(transport);
        walk_capabilities();
    }
    virtio::ConsoleDevice& console() { return dynamic_cast<virtio::ConsoleDevice&>(*device); }

    GuestMemory memory = flat_ram(4 * MiB);
    RecordingRouter msi;
    RecordingIrq intx;
    RecordingSink sink;
    std::shared_ptr<virtio::Device> device;
    std::shared_ptr<virtio::PciTransport> transport;
    std::shared_ptr<pci::PciBus> bus = std::make_shared<pci::PciBus>(windows);
    std::shared_ptr<BusDevice> ecam = pci::make_ecam(bus);
    std::shared_ptr<BusDevice> window = pci::make_bar_window(bus);
    std::vector<std::optional<std::uint64_t>> notify_regions;
    std::uint32_t slot = 0;
    std::map<std::uint8_t, VirtioCap> caps;
    std::map<std::uint8_t, int> cap_counts;
    std::uint32_t msix_cap = 0;
    FakeDriver rx{memory, 16, 0x10000, 0x100000};
    FakeDriver tx{memory, 16, 0x20000, 0x200000};

    // Configuration space.
    std::uint64_t cfg_read(std::uint32_t reg, std::size_t size) {
        std::vector<std::byte> data(size, std::byte{0x5a});
        std::uint64_t const offset = std::uint64_t{slot} << 15 | reg;
        ecam->read({ecam_base + offset, offset}, data);
        return value_of(data);
    }
    void cfg_write(std::uint32_t reg, std::size_t size, std::uint64_t value) {
        std::uint64_t const offset = std::uint64_t{slot} << 15 | reg;
        ecam->write({ecam_base + offset, offset}, bytes(value, size));
    }
    std::uint64_t bar_base() {
        return (cfg_read(pcireg::bar0, 4) & ~0xfull) | cfg_read(pcireg::bar0 + 4, 4) << 32;
    }

    // §4.1.4.1: walk the list from 0x34, keep the vendor-specific virtio capabilities.
    void walk_capabilities() {
        auto at = static_cast<std::uint32_t>(cfg_read(pcireg::cap_pointer, 1));
        for (int n = 0; at != 0 && n < 48; ++n, at = static_cast<std::uint32_t>(cfg_read(at + 1, 1))) {
            auto const id = cfg_read(at, 1);
            if (id == 0x11) msix_cap = at;
            if (id != 0x09) continue;
            VirtioCap c{at, static_cast<std::uint8_t>(cfg_read(at + 2, 1)),
                        static_cast<std::uint8_t>(cfg_read(at + 4, 1)),
                        static_cast<std::uint32_t>(cfg_read(at + 8, 4)),
                        static_cast<std::uint32_t>(cfg_read(at + 12, 4))};
            auto const type = static_cast<std::uint8_t>(cfg_read(at + 3, 1));
            if (type == cfg::notify) c.multiplier = static_cast<std::uint32_t>(cfg_read(at + 16, 4));
            if (!caps.contains(type)) caps[type] = c;  // §4.1.4: the first of each type is the one to use
            ++cap_counts[type];
        }
    }
    std::uint64_t region(std::uint8_t type) { return bar_base() + caps.at(type).offset; }

    // MMIO through the window.
    std::uint64_t mem_read(std::uint64_t address, std::size_t size) {
        std::vector<std::byte> data(size, std::byte{0x5a});
        window->read({address, 0}, data);
        return value_of(data);
    }
    void mem_write(std::uint64_t address, std::size_t size, std::uint64_t value) {
        window->write({address, 0}, bytes(value, size));
    }
    std::uint64_t common(std::uint64_t field, std::size_t size) {
        return mem_read(region(cfg::common) + field, size);
    }
    void set_common(std::uint64_t field, std::size_t size, std::uint64_t value) {
        mem_write(region(cfg::common) + field, size, value);
    }
    std::uint8_t isr() { return static_cast<std::uint8_t>(mem_read(region(cfg::isr), 1)); }
    std::uint32_t status() { return static_cast<std::uint32_t>(common(cc::device_status, 1)); }
    void add_status(std::uint32_t bits) { set_common(cc::device_status, 1, status() | bits); }

    std::uint64_t device_features() {
        set_common(cc::device_feature_select, 4, 0);
        std::uint64_t low = common(cc::device_feature, 4);
        set_common(cc::device_feature_select, 4, 1);
        return low | common(cc::device_feature, 4) << 32;
    }
    // §3.1.1 steps 1-5; returns whether FEATURES_OK stuck.
    bool negotiate(std::uint64_t features) {
        set_common(cc::device_status, 1, 0);
        add_status(acknowledge);
        add_status(driver);
        set_common(cc::driver_feature_select, 4, 0);
        set_common(cc::driver_feature, 4, features & 0xffff'ffff);
        set_common(cc::driver_feature_select, 4, 1);
        set_common(cc::driver_feature, 4, features >> 32);
        add_status(features_ok);
        return (status() & features_ok) != 0;
    }
    // §4.1.5.1.3, with 64-bit fields written as two 32-bit halves as Linux does.
    void setup_queue(std::uint16_t index, FakeDriver const& q) {
        auto const c = q.config();
        set_common(cc::queue_select, 2, index);
        set_common(cc::queue_size, 2, c.size);
        for (auto [field, address] :
             {std::pair{cc::queue_desc, c.desc.value}, std::pair{cc::queue_driver, c.avail.value},
              std::pair{cc::queue_device, c.used.value}}) {
            set_common(field, 4, address & 0xffff'ffff);
            set_common(field + 4, 4, address >> 32);
        }
        set_common(cc::queue_enable, 2, 1);
    }
    // The whole init sequence; with `msix`, the vectors are assigned after FEATURES_OK as Linux
    // does (a reset clears them).
    void bring_up(std::uint64_t features = f_version_1, bool msix = false) {
        REQUIRE(negotiate(features));
        if (msix) use_msix();
        setup_queue(0, rx);
        if (transport->queue_count() > 1) setup_queue(1, tx);
        add_status(driver_ok);
        REQUIRE(transport->active());
    }
    // §4.1.4.4: queue q notifies at cap.offset + queue_notify_off * notify_off_multiplier.
    std::uint64_t notify_address(std::uint16_t queue) {
        set_common(cc::queue_select, 2, queue);
        return region(cfg::notify) + common(cc::queue_notify_off, 2) * caps.at(cfg::notify).multiplier;
    }
    void notify(std::uint16_t queue) { mem_write(notify_address(queue), 2, queue); }

    // MSI-X: Message Control in config space, the table in the BAR its capability names.
    void set_msix_control(std::uint16_t bits) { cfg_write(msix_cap + 2, 2, bits); }
    std::uint64_t msix_table() { return bar_base() + (cfg_read(msix_cap + 4, 4) & ~7ull); }
    std::uint64_t msix_pba() { return bar_base() + (cfg_read(msix_cap + 8, 4) & ~7ull); }
    static pci::MsiMessage message_for(std::uint16_t vector) {
        return {.address = 0xfee0'0000 | std::uint64_t{vector} << 12, .data = 0x30u + vector};
    }
    void program_vector(std::uint16_t vector, bool masked) {
        auto const m = message_for(vector);
        std::uint64_t const entry = msix_table() + 16ull * vector;
        mem_write(entry, 8, m.address);
        mem_write(entry + 8, 4, m.data);
        mem_write(entry + 12, 4, masked ? 1 : 0);
    }
    // MSI-X on, one vector per queue (queue q on vector q + 1) and vector 0 for configuration.
    void use_msix() {
        for (std::uint16_t v = 0; v <= transport->queue_count(); ++v) program_vector(v, false);
        set_msix_control(pcireg::msix_enable);
        set_common(cc::config_msix_vector, 2, 0);
        for (std::uint16_t q = 0; q < transport->queue_count(); ++q) {
            set_common(cc::queue_select, 2, q);
            set_common(cc::queue_msix_vector, 2, q + 1u);
        }
    }

    // The driver prints through the console's transmit queue.
    void transmit(std::string_view s) {
        tx.add_chain({{tx.alloc_with(text(s)), static_cast<std::uint32_t>(s.size()), false}});
        notify(1);
    }
};

}  // namespace

TEST_CASE("virtio-pci identifies a modern virtio device with one 64-bit memory BAR", "[pci]") {
    Rig r;
    CHECK(r.cfg_read(pcireg::vendor_id, 2) == 0x1af4);
    CHECK(r.cfg_read(pcireg::device_id, 2) == 0x1040 + 3);  // console
    CHECK(r.cfg_read(pcireg::revision, 1) >= 1);
    CHECK(r.cfg_read(pcireg::revision, 4) >> 8 == 0x07'80'00);
    CHECK(r.cfg_read(pcireg::subsystem_vendor, 2) == 0x1af4);
    CHECK(r.cfg_read(pcireg::interrupt_pin, 1) == 1);
    CHECK(r.cfg_read(pcireg::status, 2) & pcireg::status_capabilities);
    CHECK(Rig(std::make_shared<ConfigDevice>()).cfg_read(pcireg::device_id, 2) == 0x1041);

    // BAR 0 is 64-bit memory; sizing it shows its size, and it comes back afterwards.
    std::uint64_t const base = r.bar_base();
    CHECK((r.cfg_read(pcireg::bar0, 4) & 0x7) == 0x4);
    CHECK(base >= windows.mmio32_start);
    r.cfg_write(pcireg::bar0, 4, 0xffff'ffff);
    r.cfg_write(pcireg::bar0 + 4, 4, 0xffff'ffff);
    std::uint64_t const mask = (r.cfg_read(pcireg::bar0, 4) & ~0xfull) | r.cfg_read(pcireg::bar0 + 4, 4)
                                                                             << 32;
    std::uint64_t const size = ~mask + 1;
    CHECK(size >= 0x4000);
    r.cfg_write(pcireg::bar0, 4, base & 0xffff'ffff);
    r.cfg_write(pcireg::bar0 + 4, 4, base >> 32);
    CHECK(r.bar_base() == base);
    for (std::uint32_t i = 1; i < 6; ++i) {  // BAR 1 is BAR 0's upper half; the rest are absent
        if (i == 1) continue;
        r.cfg_write(pcireg::bar0 + 4 * i, 4, 0xffff'ffff);
        CHECK(r.cfg_read(pcireg::bar0 + 4 * i, 4) == 0);
    }
    CHECK(r.common(cc::num_queues, 2) == 2);  // still decoded where it was
}

TEST_CASE("The virtio capabilities describe the regions of BAR 0 without overlaps", "[pci]") {
    Rig r;
    for (std::uint8_t type : {cfg::common, cfg::notify, cfg::isr, cfg::device, cfg::pci}) {
        CAPTURE(type);
        REQUIRE(r.caps.contains(type));
        CHECK(r.cap_counts[type] == 1);
        CHECK(r.caps[type].cap_len >= 16);
        CHECK(r.caps[type].at % 4 == 0);
    }
    CHECK(r.caps[cfg::notify].cap_len >= 20);
    CHECK(r.caps[cfg::pci].cap_len >= 20);
    REQUIRE(r.msix_cap != 0);

    std::uint64_t const bar_size = 0x8000;
    struct Region {
        char const* name;
        std::uint64_t start, length;
    };
    std::vector<Region> regions;
    for (std::uint8_t type : {cfg::common, cfg::notify, cfg::isr, cfg::device}) {
        auto const& c = r.caps[type];
        CHECK(c.bar == 0);
        CHECK(c.length > 0);
        CHECK(c.offset + std::uint64_t{c.length} <= bar_size);
        regions.push_back({"virtio", c.offset, c.length});
    }
    CHECK(r.caps[cfg::common].length >= cc::size);
    CHECK(r.caps[cfg::isr].length >= 1);
    // §4.1.4.4: every queue's notify address lies in the region, 2 bytes wide.
    auto const& n = r.caps[cfg::notify];
    CHECK((n.multiplier == 0 || (n.multiplier % 2 == 0 && (n.multiplier & (n.multiplier - 1)) == 0)));
    for (std::uint16_t q = 0; q < 2; ++q) {
        CAPTURE(q);
        std::uint64_t const at = r.notify_address(q) - r.region(cfg::notify);
        CHECK(at + 2 <= n.length);
    }

    // MSI-X: one vector per queue plus configuration; table and PBA in BAR 0.
    CHECK(r.cfg_read(r.msix_cap + 2, 2) == 2);  // table size 3, encoded N - 1
    CHECK((r.cfg_read(r.msix_cap + 4, 4) & 7) == 0);
    CHECK((r.cfg_read(r.msix_cap + 8, 4) & 7) == 0);
    regions.push_back({"table", r.msix_table() - r.bar_base(), 3 * 16});
    regions.push_back({"pba", r.msix_pba() - r.bar_base(), 8});
    for (std::size_t i = 0; i < regions.size(); ++i) {
        CHECK(regions[i].start + regions[i].length <= bar_size);
        for (std::size_t j = i + 1; j < regions.size(); ++j) {
            CAPTURE(i, j);
            CHECK((regions[i].start + regions[i].length <= regions[j].start ||
                   regions[j].start + regions[j].length <= regions[i].start));
        }
    }
}

TEST_CASE("virtio-pci offers VERSION_1 and FEATURES_OK needs it", "[pci]") {
    Rig r;
    CHECK(r.device_features() == (f_version_1 | f_indirect | f_event_idx));
    r.set_common(cc::device_feature_select, 4, 2);
    CHECK(r.common(cc::device_feature, 4) == 0);
    CHECK_FALSE(r.negotiate(0));
    CHECK_FALSE(r.negotiate(f_indirect));
    CHECK_FALSE(r.negotiate(f_version_1 | std::uint64_t{1} << 33));  // not offered
    CHECK(r.negotiate(f_version_1 | f_event_idx));
    r.set_common(cc::driver_feature_select, 4, 0);
    CHECK(r.common(cc::driver_feature, 4) == static_cast<std::uint32_t>(f_event_idx));
    r.set_common(cc::driver_feature_select, 4, 1);
    CHECK(r.common(cc::driver_feature, 4) == 1);
    r.set_common(cc::driver_feature, 4, 0);  // after FEATURES_OK: ignored
    CHECK(r.common(cc::driver_feature, 4) == 1);
}

TEST_CASE("Queue fields are set through common cfg and freeze once the queue is enabled", "[pci]") {
    Rig r;
    CHECK(r.common(cc::num_queues, 2) == 2);
    CHECK(r.common(cc::queue_select, 2) == 0);
    CHECK(r.common(cc::queue_size, 2) == 256);  // defaults to the maximum
    CHECK(r.common(cc::queue_enable, 2) == 0);
    r.set_common(cc::queue_select, 2, 1);
    CHECK(r.common(cc::queue_size, 2) == 256);
    CHECK(r.common(cc::queue_notify_off, 2) == 1);
    r.set_common(cc::queue_select, 2, 2);  // no such queue
    CHECK(r.common(cc::queue_size, 2) == 0);
    r.set_common(cc::queue_size, 2, 16);
    CHECK(r.common(cc::queue_size, 2) == 0);

    REQUIRE(r.negotiate(f_version_1));
    r.set_common(cc::queue_select, 2, 0);
    r.set_common(cc::queue_size, 2, 16);
    r.set_common(cc::queue_desc, 4, 0x1234'5000);
    r.set_common(cc::queue_desc + 4, 4, 0x1);
    r.set_common(cc::queue_driver + 4, 4, 0xabcd);
    r.set_common(cc::queue_driver, 4, 0x6000);
    r.set_common(cc::queue_device, 4, 0x7000);
    CHECK(r.common(cc::queue_size, 2) == 16);
    CHECK(r.common(cc::queue_desc, 8) == 0x1'1234'5000);
    CHECK(r.common(cc::queue_desc + 4, 4) == 1);
    CHECK(r.common(cc::queue_driver, 8) == 0xabcd'0000'6000);
    CHECK(r.common(cc::queue_device, 4) == 0x7000);
    CHECK(r.common(cc::queue_device + 4, 4) == 0);
    // Queue 1 kept its own values.
    r.set_common(cc::queue_select, 2, 1);
    CHECK(r.common(cc::queue_desc, 8) == 0);
    CHECK(r.common(cc::queue_size, 2) == 256);

    // Enabled: size and addresses are fixed, and so is enable itself.
    r.setup_queue(0, r.rx);
    r.set_common(cc::queue_select, 2, 0);
    CHECK(r.common(cc::queue_enable, 2) == 1);
    r.set_common(cc::queue_size, 2, 8);
    r.set_common(cc::queue_desc, 4, 0x9000);
    r.set_common(cc::queue_enable, 2, 0);
    CHECK(r.common(cc::queue_size, 2) == 16);
    CHECK(r.common(cc::queue_desc, 8) == r.rx.desc_table());
    CHECK(r.common(cc::queue_enable, 2) == 1);

    // After DRIVER_OK every queue is fixed.
    r.setup_queue(1, r.tx);
    r.add_status(driver_ok);
    REQUIRE(r.transport->active());
    r.set_common(cc::queue_select, 2, 1);
    r.set_common(cc::queue_size, 2, 4);
    r.set_common(cc::queue_driver, 4, 0);
    CHECK(r.common(cc::queue_size, 2) == 16);
    CHECK(r.common(cc::queue_driver, 8) == r.tx.avail_ring());
}

TEST_CASE("After DRIVER_OK even a queue that was never enabled cannot be configured", "[pci]") {
    Rig r;
    REQUIRE(r.negotiate(f_version_1));
    r.setup_queue(0, r.rx);
    r.add_status(driver_ok);  // queue 1 is not enabled: the device needs a reset
    REQUIRE(r.status() & device_needs_reset);
    r.set_common(cc::queue_select, 2, 1);
    r.set_common(cc::queue_size, 2, 16);
    r.set_common(cc::queue_desc, 4, 0x20000);
    r.set_common(cc::queue_enable, 2, 1);
    CHECK(r.common(cc::queue_size, 2) == 256);
    CHECK(r.common(cc::queue_desc, 8) == 0);
    CHECK(r.common(cc::queue_enable, 2) == 0);
    CHECK_FALSE(r.transport->active());
}

TEST_CASE("A queue the driver never sizes gets the maximum size", "[pci]") {
    Rig r;
    FakeDriver big{r.memory, 256, 0x40000, 0x200000};
    REQUIRE(r.negotiate(f_version_1));
    r.set_common(cc::queue_select, 2, 0);
    auto const c = big.config();
    r.set_common(cc::queue_desc, 4, c.desc.value);
    r.set_common(cc::queue_driver, 4, c.avail.value);
    r.set_common(cc::queue_device, 4, c.used.value);
    r.set_common(cc::queue_enable, 2, 1);
    CHECK(r.common(cc::queue_size, 2) == 256);
    r.setup_queue(1, r.tx);
    r.add_status(driver_ok);
    CHECK(r.transport->active());
}

TEST_CASE("DRIVER_OK activates the device and a write to the notify region runs its queue", "[pci]") {
    Rig r;
    r.bring_up();
    CHECK(r.status() == (acknowledge | driver | features_ok | driver_ok));
    r.transmit("hello over pci");
    CHECK(r.sink.out == "hello over pci");
    CHECK(r.tx.next_used());
    CHECK(r.console().bytes_out() == 14);
}

TEST_CASE("Notify writes reach the notify handler for queues that exist", "[pci]") {
    Rig r;
    std::vector<std::uint32_t> notified;
    r.transport->set_notify_handler([&](std::uint32_t q) { notified.push_back(q); });
    r.bring_up();
    CHECK(notified == std::vector<std::uint32_t>{0, 1});  // activation: each queue once
    notified.clear();
    r.notify(1);
    r.notify(0);
    std::uint64_t const base = r.region(cfg::notify);
    r.mem_write(base + 2 * r.caps[cfg::notify].multiplier, 2, 2);  // queue 2 does not exist
    r.mem_write(base + 0x800, 2, 0);                               // queue 0x200
    r.mem_write(base, 4, 0);                                       // another width still notifies queue 0
    CHECK(notified == std::vector<std::uint32_t>{1, 0, 0});
    CHECK(r.sink.out.empty());
}

TEST_CASE("MSI-X vectors are accepted per queue and for configuration, or read back as NO_VECTOR", "[pci]") {
    Rig r;
    CHECK(r.common(cc::config_msix_vector, 2) == no_vector);
    for (std::uint16_t q = 0; q < 2; ++q) {
        r.set_common(cc::queue_select, 2, q);
        CHECK(r.common(cc::queue_msix_vector, 2) == no_vector);
    }
    r.set_common(cc::config_msix_vector, 2, 2);
    CHECK(r.common(cc::config_msix_vector, 2) == 2);
    r.set_common(cc::config_msix_vector, 2, 3);  // the table has 3 entries
    CHECK(r.common(cc::config_msix_vector, 2) == no_vector);
    r.set_common(cc::queue_select, 2, 0);
    r.set_common(cc::queue_msix_vector, 2, 1);
    r.set_common(cc::queue_select, 2, 1);
    r.set_common(cc::queue_msix_vector, 2, 0x8000);
    CHECK(r.common(cc::queue_msix_vector, 2) == no_vector);
    r.set_common(cc::queue_msix_vector, 2, 0);
    CHECK(r.common(cc::queue_msix_vector, 2) == 0);
    r.set_common(cc::queue_select, 2, 0);
    CHECK(r.common(cc::queue_msix_vector, 2) == 1);
    r.set_common(cc::queue_select, 2, 7);
    r.set_common(cc::queue_msix_vector, 2, 1);
    CHECK(r.common(cc::queue_msix_vector, 2) == 0);  // no queue there: reads as nothing
}

TEST_CASE("With MSI-X enabled, queue and configuration interrupts go to their vectors, not INTx", "[pci]") {
    Rig r;
    r.bring_up(f_version_1, true);
    r.transmit("x");
    CHECK(r.msi.signals() == std::vector<std::uint16_t>{2});
    r.rx.add_chain({{r.rx.alloc(8), 8, true}});
    CHECK(r.transport->locked([&] { return r.console().enqueue_input(text("in")); }) == 2);
    CHECK(r.msi.signals() == std::vector<std::uint16_t>{2, 1});
    // Routes came first, with the messages the driver programmed.
    for (std::uint16_t v = 0; v < 3; ++v)
        CHECK(std::find(r.msi.events.begin(), r.msi.events.end(), MsiEvent{true, v, Rig::message_for(v)}) !=
              r.msi.events.end());
    CHECK(r.intx.count == 0);
    CHECK(r.isr() == 0);
    CHECK_FALSE(r.transport->intx_pending());

    // A configuration change: DEVICE_NEEDS_RESET after a failed activation, on vector 0.
    REQUIRE(r.negotiate(f_version_1));
    r.use_msix();
    r.add_status(driver_ok);  // no queue enabled
    CHECK(r.status() & device_needs_reset);
    CHECK(r.msi.signals().back() == 0);
    CHECK(r.intx.count == 0);
}

TEST_CASE("With MSI-X enabled, a masked vector is pending in the PBA and a queue without one is silent",
          "[pci]") {
    Rig r;
    r.bring_up(f_version_1, true);
    r.program_vector(2, true);
    r.transmit("a");
    CHECK(r.msi.signals().empty());
    CHECK(r.mem_read(r.msix_pba(), 8) == 0b100);
    r.mem_write(r.msix_table() + 2 * 16 + 12, 4, 0);
    CHECK(r.msi.signals() == std::vector<std::uint16_t>{2});
    CHECK(r.mem_read(r.msix_pba(), 8) == 0);

    // Function Mask holds the vector pending, as a driver does while it reprograms the table.
    r.set_msix_control(pcireg::msix_enable | pcireg::msix_function_mask);
    r.transmit("b");
    CHECK(r.mem_read(r.msix_pba(), 8) == 0b100);
    r.set_msix_control(pcireg::msix_enable);
    CHECK(r.msi.signals() == std::vector<std::uint16_t>{2, 2});

    r.set_common(cc::queue_select, 2, 1);
    r.set_common(cc::queue_msix_vector, 2, no_vector);
    r.transmit("c");
    CHECK(r.sink.out == "abc");
    CHECK(r.msi.signals().size() == 2);
    CHECK(r.intx.count == 0);
    CHECK(r.isr() == 0);
}

TEST_CASE("Without MSI-X, interrupts set the ISR and assert INTx, and reading the ISR clears it", "[pci]") {
    Rig r;
    r.bring_up();
    CHECK_FALSE(r.cfg_read(pcireg::status, 2) & pcireg::status_interrupt);
    r.transmit("x");
    CHECK(r.intx.count == 1);
    CHECK(r.transport->intx_pending());
    CHECK(r.cfg_read(pcireg::status, 2) & pcireg::status_interrupt);  // PCI 3.0 §6.2.3 bit 3
    CHECK(r.isr() == isr_queue);
    CHECK_FALSE(r.transport->intx_pending());
    CHECK_FALSE(r.cfg_read(pcireg::status, 2) & pcireg::status_interrupt);
    CHECK(r.isr() == 0);
    CHECK(r.msi.events.empty());

    // Queue vectors set while MSI-X is off do not matter.
    r.set_common(cc::queue_select, 2, 1);
    r.set_common(cc::queue_msix_vector, 2, 1);
    r.transmit("y");
    CHECK(r.intx.count == 2);
    CHECK(r.isr() == isr_queue);

    // A configuration interrupt sets bit 1 and bumps config_generation.
    auto const generation = r.common(cc::config_generation, 1);
    r.set_common(cc::device_status, 1, 0);
    REQUIRE(r.negotiate(f_version_1));
    r.add_status(driver_ok);  // no queue enabled: DEVICE_NEEDS_RESET
    CHECK(r.status() & device_needs_reset);
    CHECK(r.intx.count == 3);
    CHECK(r.common(cc::config_generation, 1) != generation);
    CHECK(r.isr() == isr_config);
}

TEST_CASE("The Interrupt Disable bit of the command register keeps INTx quiet but still sets the ISR",
          "[pci]") {
    Rig r;
    r.bring_up();
    auto const command = r.cfg_read(pcireg::command, 2);
    r.cfg_write(pcireg::command, 2, command | pcireg::interrupt_disable);
    r.transmit("x");
    CHECK(r.intx.count == 0);
    CHECK(r.cfg_read(pcireg::status, 2) & pcireg::status_interrupt);  // shown even while disabled
    CHECK(r.isr() == isr_queue);
    r.cfg_write(pcireg::command, 2, command);
    r.transmit("y");
    CHECK(r.intx.count == 1);
}

TEST_CASE("Clearing Interrupt Disable while the ISR is set asserts INTx, as a level-triggered line does",
          "[pci]") {
    // PCI 3.0 §6.2.2 bit 10 only gates INTx#: once it is clear again, a pending interrupt shows.
    // Nothing else would deliver it: no interrupt was taken, so no EOI makes the VMM re-assert.
    Rig r;
    r.bring_up();
    auto const command = r.cfg_read(pcireg::command, 2);
    r.cfg_write(pcireg::command, 2, command | pcireg::interrupt_disable);
    r.transmit("x");
    REQUIRE(r.intx.count == 0);
    REQUIRE(r.transport->intx_pending());
    r.cfg_write(pcireg::command, 2, command);
    CHECK(r.intx.count == 1);
}

TEST_CASE("INTx is re-asserted after an EOI only while it is enabled and MSI-X is off", "[pci]") {
    // The VMM asks intx_asserted() when the guest EOIs the level-triggered line.
    Rig r;
    r.bring_up();
    r.transmit("x");
    CHECK(r.transport->intx_asserted());
    auto const command = r.cfg_read(pcireg::command, 2);
    r.cfg_write(pcireg::command, 2, command | pcireg::interrupt_disable);
    CHECK(r.transport->intx_pending());  // the ISR still says so
    CHECK_FALSE(r.transport->intx_asserted());
    r.cfg_write(pcireg::command, 2, command);
    CHECK(r.transport->intx_asserted());

    Rig m;
    m.bring_up(f_version_1, true);
    m.transmit("y");
    CHECK_FALSE(m.transport->intx_asserted());
}

TEST_CASE("Device status 0 resets the device, the queues, the selectors and the vectors", "[pci]") {
    Rig r;
    r.bring_up(f_version_1 | f_indirect, true);
    CHECK(r.common(cc::config_msix_vector, 2) == 0);
    r.set_common(cc::queue_select, 2, 1);
    CHECK(r.common(cc::queue_msix_vector, 2) == 2);
    r.set_msix_control(0);  // INTx, so the ISR gets set
    r.transmit("x");
    r.set_common(cc::device_feature_select, 4, 1);
    r.set_common(cc::driver_feature_select, 4, 1);
    r.set_common(cc::queue_select, 2, 1);
    REQUIRE(r.transport->intx_pending());

    r.set_common(cc::device_status, 1, 0);
    CHECK_FALSE(r.transport->active());
    CHECK(r.status() == 0);
    CHECK_FALSE(r.transport->intx_pending());
    CHECK(r.common(cc::device_feature_select, 4) == 0);
    CHECK(r.common(cc::driver_feature_select, 4) == 0);
    CHECK(r.common(cc::queue_select, 2) == 0);
    CHECK(r.common(cc::config_msix_vector, 2) == no_vector);
    r.set_common(cc::driver_feature_select, 4, 0);
    CHECK(r.common(cc::driver_feature, 4) == 0);
    for (std::uint16_t q = 0; q < 2; ++q) {
        CAPTURE(q);
        r.set_common(cc::queue_select, 2, q);
        CHECK(r.common(cc::queue_msix_vector, 2) == no_vector);
        CHECK(r.common(cc::queue_enable, 2) == 0);
        CHECK(r.common(cc::queue_size, 2) == 256);
        CHECK(r.common(cc::queue_desc, 8) == 0);
    }
    // The device is idle: a notify does nothing.
    r.tx.add_chain({{r.tx.alloc_with(text("lost")), 4, false}});
    r.notify(1);
    CHECK(r.sink.out == "x");
}

TEST_CASE("The PCI configuration access capability reads and writes BAR 0", "[pci]") {
    Rig r;
    auto const& c = r.caps[cfg::pci];
    auto window = [&](std::uint8_t bar, std::uint64_t offset, std::uint32_t length) {
        r.cfg_write(c.at + 4, 1, bar);
        r.cfg_write(c.at + 8, 4, offset);
        r.cfg_write(c.at + 12, 4, length);
    };
    std::uint32_t const common = r.caps[cfg::common].offset;

    window(0, common + cc::num_queues, 2);
    CHECK((r.cfg_read(c.at + 16, 4) & 0xffff) == 2);
    window(0, common + cc::queue_size, 2);
    CHECK((r.cfg_read(c.at + 16, 4) & 0xffff) == 256);

    window(0, common + cc::device_status, 1);
    r.cfg_write(c.at + 16, 4, acknowledge);
    CHECK(r.status() == acknowledge);
    CHECK((r.cfg_read(c.at + 16, 4) & 0xff) == acknowledge);

    // Bad windows move nothing: another BAR, a length other than 1, 2 or 4, a misaligned offset.
    for (auto [bar, offset, length] : {std::tuple{std::uint8_t{1}, common + cc::device_status, 1u},
                                       std::tuple{std::uint8_t{0}, common + cc::device_status, 3u},
                                       std::tuple{std::uint8_t{0}, common + cc::device_status, 8u},
                                       std::tuple{std::uint8_t{0}, common + cc::num_queues - 1, 2u}}) {
        CAPTURE(bar, offset, length);
        window(bar, offset, length);
        r.cfg_write(c.at + 16, 4, 0);
        CHECK(r.status() == acknowledge);
        CHECK(r.cfg_read(c.at + 16, 4) == 0);
    }
    CHECK(r.common(cc::queue_select, 2) == 0);

    // Through the window a driver can bring the device up and notify it.
    window(0, common + cc::queue_select, 2);
    r.cfg_write(c.at + 16, 2, 1);
    CHECK(r.common(cc::queue_select, 2) == 1);
}

TEST_CASE("Common cfg writes of the wrong width, misaligned or to read-only fields are ignored", "[pci]") {
    Rig r;
    struct Bad {
        std::uint64_t offset;
        std::size_t size;
    };
    r.set_common(cc::queue_select, 2, 1);
    r.set_common(cc::device_feature_select, 4, 1);
    for (auto b : {Bad{cc::device_feature_select, 2}, Bad{cc::device_feature_select, 1},
                   Bad{cc::device_feature_select, 8}, Bad{cc::device_feature_select + 1, 4},
                   Bad{cc::queue_select, 1}, Bad{cc::queue_select, 4}, Bad{cc::queue_select + 1, 2},
                   Bad{cc::device_status, 2}, Bad{cc::device_status, 4}, Bad{cc::config_msix_vector, 4},
                   Bad{cc::queue_msix_vector, 4}, Bad{cc::queue_msix_vector + 1, 2}, Bad{cc::num_queues, 2},
                   Bad{cc::config_generation, 1}, Bad{cc::queue_notify_off, 2}, Bad{cc::device_feature, 4},
                   Bad{cc::size, 4}, Bad{0x100, 4}, Bad{0xfff, 1}}) {
        CAPTURE(b.offset, b.size);
        r.set_common(b.offset, b.size, 0);
        CHECK(r.common(cc::queue_select, 2) == 1);
        CHECK(r.common(cc::device_feature_select, 4) == 1);
        CHECK(r.status() == 0);
        CHECK(r.common(cc::num_queues, 2) == 2);
        CHECK(r.common(cc::queue_notify_off, 2) == 1);
        CHECK(r.common(cc::config_msix_vector, 2) == no_vector);
        CHECK(r.common(cc::queue_msix_vector, 2) == no_vector);
    }
    r.set_common(cc::queue_select, 2, 0);
    r.set_common(cc::queue_size, 1, 4);  // half a field
    CHECK(r.common(cc::queue_size, 2) == 256);
    r.set_common(cc::queue_desc + 2, 4, 0xffff'ffff);  // misaligned half
    r.set_common(cc::queue_desc + 4, 2, 0xffff);
    CHECK(r.common(cc::queue_desc, 8) == 0);
    // Reads of any width and offset see the structure; beyond it, zeros.
    CHECK(r.common(cc::num_queues, 1) == 2);
    CHECK(r.common(cc::config_msix_vector, 4) == (0xffffu | 2u << 16));
    CHECK(r.common(cc::size, 4) == 0);
    CHECK(r.common(cc::size - 4, 8) == 0);
}

TEST_CASE("The device configuration region reaches the device's config space", "[pci]") {
    auto device = std::make_shared<ConfigDevice>();
    Rig r(device);
    std::uint64_t const at = r.region(cfg::device);
    CHECK(r.mem_read(at, 4) == 0xc3c2'c1c0);
    CHECK(r.mem_read(at + 10, 2) == 0xcbca);
    CHECK(r.mem_read(at + 11, 1) == 0xcb);
    CHECK(r.mem_read(at + 12, 4) == 0);
    r.mem_write(at + 6, 2, 0x1234);
    REQUIRE(device->config_writes.size() == 1);
    CHECK(device->config_writes[0].first == 6);
    CHECK(device->config_writes[0].second == bytes(0x1234, 2));

    // The device's configuration changes: config_generation moves and the config vector fires.
    r.bring_up(f_version_1, true);
    REQUIRE(device->interrupt);
    auto const generation = r.common(cc::config_generation, 1);
    r.transport->locked([&] { device->interrupt->config_changed(); });
    CHECK(r.common(cc::config_generation, 1) == ((generation + 1) & 0xff));
    CHECK(r.msi.signals() == std::vector<std::uint16_t>{0});
}

TEST_CASE("The notify region handler hears where the notify region is, wherever the BAR goes", "[pci]") {
    Rig r;
    std::uint64_t const notify_offset = r.caps[cfg::notify].offset;
    std::uint64_t const base = r.bar_base();
    auto last = [&] {
        REQUIRE_FALSE(r.notify_regions.empty());
        return r.notify_regions.back();
    };
    REQUIRE(last());
    CHECK(*last() == base + notify_offset);

    r.cfg_write(pcireg::bar0, 4, 0xd000'0000);
    REQUIRE(last());
    CHECK(*last() == 0xd000'0000 + notify_offset);
    CHECK(r.region(cfg::notify) == 0xd000'0000 + notify_offset);

    auto const command = r.cfg_read(pcireg::command, 2);
    r.cfg_write(pcireg::command, 2, command & ~std::uint64_t{pcireg::memory_space});
    CHECK_FALSE(last());
    r.cfg_write(pcireg::command, 2, command);
    REQUIRE(last());
    CHECK(*last() == 0xd000'0000 + notify_offset);
}

}  // namespace kvmlet::test

namespace kvmlet::test {
namespace {

// A function's snapshot section (virtio-pci.S) and its bus's (pci), as the machine saves them.
struct Saved {
    std::vector<std::byte> function, bus;
};

Saved save(Rig& r) {
    StateWriter function, bus;
    r.transport->save(function);
    r.bus->save(bus);
    return {function.take(), bus.take()};
}

// Loads `saved` into a fresh rig's function, then its bus (the machine's order).
void load(Rig& r, Saved const& saved) {
    StateReader function(saved.function, "virtio-pci.1");
    r.transport->load(function);
    StateReader bus(saved.bus, "pci");
    r.bus->load(bus);
}

// A driver half way through its set-up, as a snapshot may find it: features accepted, MSI-X on
// with vector 2 masked and pending, the queues configured, the BAR moved, DRIVER_OK not yet set.
std::uint64_t set_up_and_move(Rig& r, std::uint64_t to) {
    REQUIRE(r.negotiate(f_version_1));
    r.use_msix();
    r.setup_queue(0, r.rx);
    r.setup_queue(1, r.tx);
    r.program_vector(2, true);
    r.cfg_write(pcireg::bar0, 4, to & 0xffff'ffff);
    r.cfg_write(pcireg::bar0 + 4, 4, to >> 32);
    REQUIRE(r.bar_base() == to);
    return to;
}

}  // namespace

TEST_CASE("A virtio-pci function's snapshot brings back its BAR, MSI-X table and routes, vectors and queues",
          "[pci]") {
    Rig live;
    std::uint64_t const bar = set_up_and_move(live, 0xd000'0000);
    auto const saved = save(live);

    Rig restored;
    REQUIRE(restored.bar_base() != bar);
    restored.msi.events.clear();
    load(restored, saved);
    CHECK(restored.bar_base() == bar);
    REQUIRE_FALSE(restored.notify_regions.empty());
    CHECK(restored.notify_regions.back() == bar + virtio::PciTransport::notify_offset);
    // Every vector the guest can be sent has its route again; the masked one waits for its unmask.
    std::vector<MsiEvent> const routes{{true, 0, Rig::message_for(0)}, {true, 1, Rig::message_for(1)}};
    CHECK(restored.msi.events == routes);
    CHECK(restored.status() == (acknowledge | driver | features_ok));
    CHECK(restored.common(cc::config_msix_vector, 2) == 0);
    restored.set_common(cc::queue_select, 2, 1);
    CHECK(restored.common(cc::queue_msix_vector, 2) == 2);
    CHECK(restored.common(cc::queue_desc, 4) == restored.tx.config().desc.value);
    CHECK(save(restored).function == saved.function);

    // The driver goes on: DRIVER_OK, a transmit on queue 1, its interrupt on vector 2 once unmasked.
    restored.add_status(driver_ok);
    REQUIRE(restored.transport->active());
    restored.transmit("after");
    CHECK(restored.sink.out == "after");
    CHECK(restored.msi.signals().empty());
    CHECK(restored.mem_read(restored.msix_pba(), 8) == 0b100);
    restored.mem_write(restored.msix_table() + 2 * 16 + 12, 4, 0);
    CHECK(restored.msi.signals() == std::vector<std::uint16_t>{2});
}

TEST_CASE("A virtio-pci section takes only the guest-writable bits of configuration space", "[pci]") {
    Rig live;
    set_up_and_move(live, 0xd000'0000);
    auto saved = save(live);
    saved.function[pcireg::vendor_id] = std::byte{0x34};  // read-only: the function's own
    Rig restored;
    load(restored, saved);
    CHECK(restored.cfg_read(pcireg::vendor_id, 2) == 0x1af4);
    CHECK(restored.bar_base() == 0xd000'0000);
}

TEST_CASE("A virtio-pci section with another vector count, a vector or ISR bits that do not exist is refused",
          "[pci]") {
    Rig live;
    set_up_and_move(live, 0xd000'0000);
    auto const saved = save(live);
    // Layout (docs/snapshot.md): configuration space (256), u16 vector count, ...; the end is
    // the configuration vector, two queue vectors, generation, ISR, then the console's u64.
    std::size_t const size = saved.function.size();
    struct Case {
        std::size_t at;
        std::uint16_t value;
        std::size_t width;
        char const* words;
    };
    for (auto const& c :
         {Case{256, 4, 2, "MSI-X vectors"}, Case{size - 16, 7, 2, "vector 7 does not exist"},
          Case{size - 12, 3, 2, "vector 3 does not exist"}, Case{size - 9, 4, 1, "ISR status"}}) {
        auto broken = saved;
        std::memcpy(broken.function.data() + c.at, &c.value, c.width);
        Rig restored;
        StateReader in(broken.function, "virtio-pci.1");
        CHECK_THROWS_WITH(restored.transport->load(in), Catch::Contains(c.words));
    }
}

}  // namespace kvmlet::test
