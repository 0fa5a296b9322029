#include "devices/pci/pci_bus.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/base/guest_address.hpp"

namespace kvmlet::test {
namespace {

using pci::PciBus;

// PCI 3.0 §6.1 offsets and §6.2.2 bits, spelled out so the test does not trust pci_spec.hpp.
constexpr std::uint32_t vendor_id = 0x00, command = 0x04, class_revision = 0x08, cache_line = 0x0c,
                        bar0 = 0x10, interrupt_line = 0x3c;
constexpr std::uint32_t memory_space = 1 << 1;
constexpr std::uint32_t enable = 1u << 31;  // 0xCF8 bit 31

constexpr std::uint16_t port_base = 0xcf8;
constexpr std::uint64_t ecam_base = 0xb000'0000;

// Windows the way an x86 machine lays them out: below the IOAPIC, and high above RAM.
constexpr pci::Windows windows{.mmio32_start = 0xc000'0000,
                               .mmio32_end = 0xfec0'0000,
                               .mmio64_start = 64 * GiB,
                               .mmio64_end = 128 * GiB};

struct BarAccess {
    std::uint32_t bar;
    std::uint64_t offset;
    std::vector<std::byte> data;
    bool operator==(BarAccess const&) const = default;
};
struct Move {
    std::uint32_t bar;
    std::optional<std::uint64_t> address;
    bool operator==(Move const&) const = default;
};

struct BarSpec {
    std::uint32_t index;
    std::uint64_t size;
    bool is_64bit;
};

// A function with the BARs it is given that records what the bus does to it. BAR reads return
// a pattern derived from the BAR and the offset.
class RecordingDevice final : public pci::PciDevice {
public:
    explicit RecordingDevice(std::vector<BarSpec> const& bars, std::uint16_t device_id = 0x0001)
        : PciDevice(pci::ConfigSpace({.vendor = 0x1234, .device = device_id, .class_code = 0xff0000}, 1)) {
        for (auto const& b : bars) config_.add_memory_bar(b.index, b.size, b.is_64bit);
    }
    void bar_read(std::uint32_t bar, std::uint64_t offset, std::span<std::byte> data) noexcept override {
        reads.push_back({bar, offset, std::vector<std::byte>(data.size())});
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = pattern(bar, offset + i);
    }
    void bar_write(std::uint32_t bar, std::uint64_t offset,
                   std::span<std::byte const> data) noexcept override {
        writes.push_back({bar, offset, std::vector<std::byte>(data.begin(), data.end())});
    }
    void bar_moved(std::uint32_t bar, std::optional<std::uint64_t> address) noexcept override {
        moves.push_back({bar, address});
    }
    static std::byte pattern(std::uint32_t bar, std::uint64_t at) {
        return std::byte{static_cast<std::uint8_t>(bar * 0x40 + at * 7 + 1)};
    }

    std::vector<BarAccess> reads, writes;
    std::vector<Move> moves;
};

std::vector<std::byte> bytes(std::uint64_t value, std::size_t size) {
    std::vector<std::byte> out(size);
    std::memcpy(out.data(), &value, size);
    return out;
}
std::uint64_t value_of(std::span<std::byte const> data) {
    std::uint64_t v = 0;
    std::memcpy(&v, data.data(), data.size());
    return v;
}

struct Rig {
    std::shared_ptr<PciBus> bus = std::make_shared<PciBus>(windows);
    std::shared_ptr<BusDevice> io = pci::make_config_io(bus);
    std::shared_ptr<BusDevice> ecam = pci::make_ecam(bus);
    std::shared_ptr<BusDevice> window = pci::make_bar_window(bus);

    // 0xCF8-0xCFF, as the PIO bus hands them to the adapter.
    std::uint64_t io_read(std::uint16_t port, std::size_t size) {
        std::vector<std::byte> data(size, std::byte{0x5a});
        io->read({port, std::uint64_t{port} - port_base}, data);
        return value_of(data);
    }
    void io_write(std::uint16_t port, std::size_t size, std::uint64_t value) {
        io->write({port, std::uint64_t{port} - port_base}, bytes(value, size));
    }
    static std::uint32_t cf8(std::uint32_t bus, std::uint32_t slot, std::uint32_t function,
                             std::uint32_t reg) {
        return enable | bus << 16 | slot << 11 | function << 8 | reg;
    }

    static std::uint64_t ecam_offset(std::uint32_t slot, std::uint32_t function, std::uint32_t reg) {
        return std::uint64_t{slot} << 15 | std::uint64_t{function} << 12 | reg;
    }
    std::uint64_t ecam_read_at(std::uint64_t offset, std::size_t size) {
        std::vector<std::byte> data(size, std::byte{0x5a});
        ecam->read({ecam_base + offset, offset}, data);
        return value_of(data);
    }
    void ecam_write_at(std::uint64_t offset, std::size_t size, std::uint64_t value) {
        ecam->write({ecam_base + offset, offset}, bytes(value, size));
    }
    std::uint32_t cfg32(std::uint32_t slot, std::uint32_t reg) {
        return static_cast<std::uint32_t>(ecam_read_at(ecam_offset(slot, 0, reg), 4));
    }
    void set_cfg32(std::uint32_t slot, std::uint32_t reg, std::uint32_t value) {
        ecam_write_at(ecam_offset(slot, 0, reg), 4, value);
    }
    void set_command(std::uint32_t slot, std::uint32_t value) {
        ecam_write_at(ecam_offset(slot, 0, command), 2, value);
    }

    // The MMIO bus's view of the windows: unclaimed reads are all-ones.
    std::vector<std::byte> mmio_read(std::uint64_t address, std::size_t size) {
        std::vector<std::byte> data(size, std::byte{0x5a});
        window->read({address, address - windows.mmio32_start}, data);
        return data;
    }
    bool routed(std::uint64_t address, std::size_t size = 4) {
        std::vector<std::byte> data(size);
        return bus->bar_read(address, data);
    }
};

}  // namespace

TEST_CASE("The host bridge sits at 00:00.0 with Red Hat's host bridge IDs and no BARs", "[pci]") {
    Rig r;
    CHECK(r.cfg32(0, vendor_id) == 0x0008'1b36);
    CHECK(r.cfg32(0, class_revision) >> 8 == 0x06'00'00);
    CHECK((r.cfg32(0, cache_line) >> 16 & 0x7f) == 0);  // header type 0 (byte 0x0e)
    for (std::uint32_t i = 0; i < 6; ++i) {
        r.set_cfg32(0, bar0 + 4 * i, 0xffff'ffff);
        CHECK(r.cfg32(0, bar0 + 4 * i) == 0);
    }
    // Only the host bridge: every other slot is empty.
    for (std::uint32_t slot = 1; slot < 32; ++slot) CHECK(r.cfg32(slot, vendor_id) == 0xffff'ffff);
}

TEST_CASE("Mechanism #1 moves configuration dwords through 0xCFC once 0xCF8 holds an enabled address",
          "[pci]") {
    Rig r;
    r.bus->add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{}, 0xbeef));
    r.io_write(0xcf8, 4, Rig::cf8(0, 1, 0, vendor_id));
    CHECK(r.io_read(0xcf8, 4) == Rig::cf8(0, 1, 0, vendor_id));
    CHECK(r.io_read(0xcfc, 4) == 0xbeef'1234);
    r.io_write(0xcf8, 4, Rig::cf8(0, 0, 0, vendor_id));
    CHECK(r.io_read(0xcfc, 4) == 0x0008'1b36);

    SECTION("the enable bit clear reads all-ones and drops writes") {
        r.io_write(0xcf8, 4, Rig::cf8(0, 1, 0, cache_line) & ~enable);
        CHECK(r.io_read(0xcfc, 4) == 0xffff'ffff);
        r.io_write(0xcfc, 1, 0x10);
        r.io_write(0xcf8, 4, Rig::cf8(0, 1, 0, cache_line));
        CHECK(r.io_read(0xcfc, 1) == 0);
    }
    SECTION("bytes and words at 0xCFD-0xCFF reach the register's other bytes") {
        r.io_write(0xcf8, 4, Rig::cf8(0, 1, 0, vendor_id));
        CHECK(r.io_read(0xcfc, 1) == 0x34);
        CHECK(r.io_read(0xcfd, 1) == 0x12);
        CHECK(r.io_read(0xcfe, 1) == 0xef);
        CHECK(r.io_read(0xcff, 1) == 0xbe);
        CHECK(r.io_read(0xcfe, 2) == 0xbeef);
        CHECK(r.io_read(0xcfc, 2) == 0x1234);
        r.io_write(0xcf8, 4, Rig::cf8(0, 1, 0, cache_line));
        r.io_write(0xcfd, 1, 0x40);  // latency timer
        r.io_write(0xcfc, 1, 0x10);  // cache line size
        CHECK(r.cfg32(1, cache_line) == 0x4010);
        r.io_write(0xcf8, 4, Rig::cf8(0, 1, 0, interrupt_line));
        r.io_write(0xcfc, 2, 0xff0b);  // line is writable, the pin is not
        CHECK((r.cfg32(1, interrupt_line) & 0xffff) == 0x010b);
    }
    SECTION("the low two bits of 0xCF8 do not select a byte") {
        r.io_write(0xcf8, 4, Rig::cf8(0, 1, 0, vendor_id) | 2);
        CHECK(r.io_read(0xcfc, 4) == 0xbeef'1234);
    }
    SECTION("accesses to 0xCF8-0xCFB that are not one dword at 0xCF8 are ignored") {
        r.io_write(0xcf8, 1, 0);
        r.io_write(0xcf8, 2, 0);
        r.io_write(0xcf9, 1, 0x06);  // the reset control register on real chipsets
        r.io_write(0xcfa, 2, 0);
        CHECK(r.io_read(0xcf8, 4) == Rig::cf8(0, 0, 0, vendor_id));
        CHECK(r.io_read(0xcf8, 1) == 0xff);
        CHECK(r.io_read(0xcf8, 2) == 0xffff);
        CHECK(r.io_read(0xcf9, 1) == 0xff);
        CHECK(r.io_read(0xcfc, 4) == 0x0008'1b36);
    }
    SECTION("buses other than 0 and absent slots or functions read all-ones and drop writes") {
        for (std::uint32_t address :
             {Rig::cf8(1, 1, 0, vendor_id), Rig::cf8(0xff, 0, 0, vendor_id), Rig::cf8(0, 2, 0, vendor_id),
              Rig::cf8(0, 31, 0, vendor_id), Rig::cf8(0, 1, 1, vendor_id), Rig::cf8(0, 1, 7, vendor_id)}) {
            CAPTURE(address);
            r.io_write(0xcf8, 4, address);
            CHECK(r.io_read(0xcfc, 4) == 0xffff'ffff);
            CHECK(r.io_read(0xcfe, 2) == 0xffff);
        }
        r.io_write(0xcf8, 4, Rig::cf8(1, 1, 0, cache_line));
        r.io_write(0xcfc, 4, 0x10);
        CHECK(r.cfg32(1, cache_line) == 0);
    }
}

TEST_CASE("ECAM decodes device, function and register from the offset", "[pci]") {
    Rig r;
    auto device = std::make_shared<RecordingDevice>(std::vector<BarSpec>{}, 0xbeef);
    REQUIRE(r.bus->add(device) == 1);
    CHECK(r.ecam_read_at(Rig::ecam_offset(1, 0, vendor_id), 4) == 0xbeef'1234);
    CHECK(r.ecam_read_at(Rig::ecam_offset(1, 0, vendor_id + 2), 2) == 0xbeef);
    CHECK(r.ecam_read_at(Rig::ecam_offset(1, 0, vendor_id + 3), 1) == 0xbe);
    CHECK(r.ecam_read_at(Rig::ecam_offset(0, 0, vendor_id), 4) == 0x0008'1b36);
    r.ecam_write_at(Rig::ecam_offset(1, 0, cache_line + 1), 1, 0x40);
    CHECK(device->config().read32(cache_line) == 0x4000);

    SECTION("extended registers of a present function read zero") {
        for (std::uint32_t reg : {0x100u, 0x104u, 0x800u, 0xffcu}) {
            CAPTURE(reg);
            r.ecam_write_at(Rig::ecam_offset(1, 0, reg), 4, 0xffff'ffff);
            CHECK(r.ecam_read_at(Rig::ecam_offset(1, 0, reg), 4) == 0);
            CHECK(r.ecam_read_at(Rig::ecam_offset(0, 0, reg), 4) == 0);
        }
    }
    SECTION("absent slots and functions read all-ones") {
        for (auto offset : {Rig::ecam_offset(2, 0, 0), Rig::ecam_offset(31, 0, 0), Rig::ecam_offset(1, 1, 0),
                            Rig::ecam_offset(0, 7, 0), Rig::ecam_offset(1, 3, 0x100)}) {
            CAPTURE(offset);
            CHECK(r.ecam_read_at(offset, 4) == 0xffff'ffff);
            CHECK(r.ecam_read_at(offset, 1) == 0xff);
        }
    }
    SECTION("misaligned and oversized accesses, and offsets past bus 0, are ignored") {
        CHECK(r.ecam_read_at(Rig::ecam_offset(1, 0, 1), 2) == 0xffff);
        CHECK(r.ecam_read_at(Rig::ecam_offset(1, 0, 2), 4) == 0xffff'ffff);
        CHECK(r.ecam_read_at(Rig::ecam_offset(1, 0, 0), 8) == 0xffff'ffff'ffff'ffff);
        CHECK(r.ecam_read_at(std::uint64_t{1} << 20, 4) == 0xffff'ffff);  // bus 1, slot 0
        r.ecam_write_at(Rig::ecam_offset(1, 0, cache_line + 1), 2, 0xffff);
        r.ecam_write_at(Rig::ecam_offset(1, 0, cache_line), 8, 0xffff'ffff'ffff'ffff);
        r.ecam_write_at((std::uint64_t{1} << 20) + Rig::ecam_offset(1, 0, cache_line), 4, 0xffff'ffff);
        CHECK(device->config().read32(cache_line) == 0x4000);
    }
}

TEST_CASE("add() places devices in slots 1 onwards and their BARs naturally aligned in the windows",
          "[pci]") {
    Rig r;
    auto a = std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x1000, false}});
    auto b = std::make_shared<RecordingDevice>(
        std::vector<BarSpec>{{0, 0x10'0000, false}, {2, 0x4000, true}, {4, 0x100, false}});
    auto c = std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 512 * MiB, true}, {2, 0x2000, true}});
    CHECK(r.bus->add(a) == 1);
    CHECK(r.bus->add(b) == 2);
    CHECK(r.bus->add(c) == 3);

    struct Placed {
        std::uint64_t start, size;
    };
    std::vector<Placed> placed;
    auto check = [&](RecordingDevice& d, std::uint32_t bar, bool high) {
        CAPTURE(bar, high);
        std::uint64_t const size = d.config().bar(bar).size;
        std::uint64_t const at = d.config().bar_address(bar);
        CHECK(at % size == 0);
        if (high)
            CHECK((at >= windows.mmio64_start && at + size <= windows.mmio64_end));
        else
            CHECK((at >= windows.mmio32_start && at + size <= windows.mmio32_end));
        for (auto const& p : placed) CHECK((at + size <= p.start || p.start + p.size <= at));
        placed.push_back({at, size});
        // The bus routes it and told the device where it is.
        CHECK(r.routed(at));
        CHECK(r.routed(at + size - 4));
        CHECK(std::find(d.moves.begin(), d.moves.end(), Move{bar, at}) != d.moves.end());
    };
    check(*a, 0, false);
    check(*b, 0, false);
    check(*b, 2, false);  // 64-bit but small: below 4 GiB
    check(*b, 4, false);
    check(*c, 0, true);  // 64-bit and large: above RAM
    check(*c, 2, false);
    // What firmware leaves for the OS: memory decoding on.
    for (auto* d : {a.get(), b.get(), c.get()}) CHECK(d->config().command() & memory_space);
}

TEST_CASE("add() throws when the bus or a window is full", "[pci]") {
    SECTION("31 devices fill bus 0") {
        PciBus bus(windows);
        for (std::uint32_t i = 1; i < 32; ++i)
            CHECK(bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{})) == i);
        CHECK_THROWS_AS(bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{})), Error);
    }
    SECTION("the 32-bit window") {
        PciBus bus({.mmio32_start = 0xc000'0000,
                    .mmio32_end = 0xc000'3000,
                    .mmio64_start = 64 * GiB,
                    .mmio64_end = 128 * GiB});
        bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x1000, false}}));
        bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x1000, false}}));
        CHECK_THROWS_AS(bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x2000, false}})),
                        Error);
        bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x1000, false}}));
        CHECK_THROWS_AS(bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x10, false}})),
                        Error);
    }
    SECTION("the 64-bit window") {
        PciBus bus({.mmio32_start = 0xc000'0000,
                    .mmio32_end = 0xe000'0000,
                    .mmio64_start = 64 * GiB,
                    .mmio64_end = 65 * GiB});
        bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 512 * MiB, true}}));
        bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 512 * MiB, true}}));
        CHECK_THROWS_AS(
            bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 512 * MiB, true}})), Error);
        CHECK_THROWS_AS(bus.add(std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 64 * GiB, true}})),
                        Error);
    }
}

TEST_CASE("BAR accesses reach the device that decodes them, at the BAR's index and offset", "[pci]") {
    Rig r;
    auto a = std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x1000, false}});
    auto b = std::make_shared<RecordingDevice>(std::vector<BarSpec>{{1, 0x1000, false}, {2, 0x4000, true}});
    r.bus->add(a);
    r.bus->add(b);
    std::uint64_t const a0 = a->config().bar_address(0);
    std::uint64_t const b1 = b->config().bar_address(1);
    std::uint64_t const b2 = b->config().bar_address(2);

    auto data = r.mmio_read(b2 + 0x3ff8, 8);
    REQUIRE(b->reads.size() == 1);
    CHECK(b->reads[0].bar == 2);
    CHECK(b->reads[0].offset == 0x3ff8);
    CHECK(b->reads[0].data.size() == 8);
    for (std::size_t i = 0; i < 8; ++i) CHECK(data[i] == RecordingDevice::pattern(2, 0x3ff8 + i));

    r.window->write({b1 + 0x10, 0}, bytes(0xdead'beef, 4));
    r.window->write({a0 + 3, 0}, bytes(0x7f, 1));
    REQUIRE(b->writes.size() == 1);
    CHECK(b->writes[0] == BarAccess{1, 0x10, bytes(0xdead'beef, 4)});
    REQUIRE(a->writes.size() == 1);
    CHECK(a->writes[0] == BarAccess{0, 3, bytes(0x7f, 1)});

    // Nothing decodes below the first BAR, past a BAR's end, or across it: all-ones, no call.
    a->reads.clear();
    b->reads.clear();
    CHECK(r.mmio_read(windows.mmio32_start - 4, 4) == std::vector<std::byte>(4, std::byte{0xff}));
    CHECK(r.mmio_read(a0 + 0xffe, 4) == std::vector<std::byte>(4, std::byte{0xff}));
    CHECK_FALSE(r.bus->bar_write(a0 + 0xffc, bytes(0, 8)));
    std::vector<std::byte> four(4);
    CHECK(r.bus->bar_read(a0 + 0xffc, four));
    CHECK(a->reads.size() == 1);
    CHECK(b->reads.empty());
}

TEST_CASE("A BAR the guest moves is decoded at its new address only", "[pci]") {
    Rig r;
    auto d = std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x1000, false}, {2, 0x4000, true}});
    std::uint8_t const slot = r.bus->add(d);
    std::uint64_t const old0 = d->config().bar_address(0);
    std::uint64_t const old2 = d->config().bar_address(2);
    d->moves.clear();

    r.set_cfg32(slot, bar0, 0xd000'0000);
    CHECK(d->moves == std::vector<Move>{{0, 0xd000'0000}});
    CHECK_FALSE(r.routed(old0));
    REQUIRE(r.routed(0xd000'0ffc));
    CHECK(d->reads.back().bar == 0);
    CHECK(d->reads.back().offset == 0xffc);

    // A 64-bit BAR moves above 4 GiB in two steps: the high half first lands it in the 64-bit window.
    r.set_cfg32(slot, bar0 + 12, static_cast<std::uint32_t>(windows.mmio64_start >> 32));
    std::uint64_t const high = windows.mmio64_start | (old2 & 0xffff'ffff);
    CHECK(d->moves.back() == Move{2, high});
    r.set_cfg32(slot, bar0 + 8, 0x4000);
    CHECK(d->moves.back() == Move{2, windows.mmio64_start + 0x4000});
    CHECK_FALSE(r.routed(old2));
    CHECK_FALSE(r.routed(high));
    CHECK(r.routed(windows.mmio64_start + 0x4000));
    CHECK(d->reads.back().bar == 2);
    // BAR 0 did not move again.
    CHECK(std::count_if(d->moves.begin(), d->moves.end(), [](Move const& m) { return m.bar == 0; }) == 1);
}

TEST_CASE("Memory Space off stops decoding every BAR until it is back on", "[pci]") {
    Rig r;
    auto d = std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 0x1000, false}, {2, 0x4000, true}});
    std::uint8_t const slot = r.bus->add(d);
    std::uint64_t const a0 = d->config().bar_address(0), a2 = d->config().bar_address(2);
    d->moves.clear();

    r.set_command(slot, 0);
    CHECK(d->moves == std::vector<Move>{{0, std::nullopt}, {2, std::nullopt}});
    CHECK_FALSE(r.routed(a0));
    CHECK_FALSE(r.routed(a2));
    CHECK(r.mmio_read(a0, 4) == std::vector<std::byte>(4, std::byte{0xff}));
    CHECK(d->reads.empty());

    // Moving it while off is remembered, not decoded.
    r.set_cfg32(slot, bar0, 0xd000'0000);
    CHECK(d->moves.size() == 2);
    CHECK_FALSE(r.routed(0xd000'0000));

    r.set_command(slot, memory_space);
    CHECK(d->moves == std::vector<Move>{{0, std::nullopt}, {2, std::nullopt}, {0, 0xd000'0000}, {2, a2}});
    CHECK(r.routed(0xd000'0000));
    CHECK(r.routed(a2));
    // Writing the command register again changes nothing.
    r.set_command(slot, memory_space | 0x4);
    CHECK(d->moves.size() == 4);
}

TEST_CASE("A BAR moved outside the windows, or across a window's end, is not decoded", "[pci]") {
    Rig r;
    auto d = std::make_shared<RecordingDevice>(std::vector<BarSpec>{{0, 8 * MiB, false}});
    std::uint8_t const slot = r.bus->add(d);
    std::uint64_t const at = d->config().bar_address(0);
    for (std::uint32_t address : {0u, 0x8000'0000u, 0xbf80'0000u, 0xfe80'0000u, 0xff00'0000u}) {
        CAPTURE(address);
        d->moves.clear();
        r.set_cfg32(slot, bar0, address);
        CHECK(d->config().bar_address(0) == address);
        CHECK(d->moves == std::vector<Move>{{0, std::nullopt}});
        CHECK_FALSE(r.routed(address));
        CHECK_FALSE(r.routed(at));
        r.set_cfg32(slot, bar0, static_cast<std::uint32_t>(at));
        CHECK(d->moves.back() == Move{0, at});
    }
    // The last 8 MiB that fit below the window's end are fine.
    r.set_cfg32(slot, bar0, 0xfe00'0000);
    CHECK(d->moves.back() == Move{0, 0xfe00'0000});
    CHECK(r.routed(0xfe7f'fffc));
}

TEST_CASE("Sizing every BAR leaves the routes as they were", "[pci]") {
    Rig r;
    auto d = std::make_shared<RecordingDevice>(std::vector<BarSpec>{
        {0, 0x1000, false}, {1, 0x10'0000, false}, {2, 0x4000, true}, {4, 512 * MiB, true}});
    std::uint8_t const slot = r.bus->add(d);
    std::array<std::uint64_t, 6> before{};
    for (std::uint32_t i : {0u, 1u, 2u, 4u}) before[i] = d->config().bar_address(i);

    // What Linux's __pci_read_base does, without turning decoding off.
    for (std::uint32_t reg = bar0; reg < bar0 + 24; reg += 4) {
        std::uint32_t const original = r.cfg32(slot, reg);
        r.set_cfg32(slot, reg, 0xffff'ffff);
        (void)r.cfg32(slot, reg);
        r.set_cfg32(slot, reg, original);
    }
    std::uint64_t const sizes[] = {0x1000, 0x10'0000, 0x4000, 0, 512 * MiB};
    for (std::uint32_t i : {0u, 1u, 2u, 4u}) {
        CAPTURE(i);
        CHECK(d->config().bar_address(i) == before[i]);
        CHECK(r.routed(before[i]));
        CHECK(d->reads.back().bar == i);
        CHECK(r.routed(before[i] + sizes[i] - 4));
        // The last word the device heard about this BAR is its old address.
        auto last =
            std::find_if(d->moves.rbegin(), d->moves.rend(), [&](Move const& m) { return m.bar == i; });
        REQUIRE(last != d->moves.rend());
        CHECK(last->address == before[i]);
    }
}

}  // namespace kvmlet::test
