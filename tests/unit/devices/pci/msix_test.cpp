#include "devices/pci/msix.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vmm/base/error.hpp"

namespace kvmlet::test {
namespace {

using pci::MsiMessage;

// PCI 3.0 §6.8.2: capability layout, Message Control bits, table entry layout.
constexpr std::uint8_t msix_id = 0x11;
constexpr std::uint16_t control_enable = 1u << 15, control_function_mask = 1u << 14;
constexpr std::uint64_t entry_address_low = 0, entry_address_high = 4, entry_data = 8, entry_control = 12;
constexpr std::uint32_t table_offset = 0x2000, pba_offset = 0x3000;
constexpr std::uint8_t table_bar = 2;

struct Event {
    enum Kind { route, signal } kind;
    std::uint16_t vector;
    MsiMessage message{};
    bool operator==(Event const&) const = default;
};

struct RecordingRouter final : pci::MsiRouter {
    void set_route(std::uint16_t vector, MsiMessage const& message) noexcept override {
        events.push_back({Event::route, vector, message});
    }
    void signal(std::uint16_t vector) noexcept override { events.push_back({Event::signal, vector}); }
    std::vector<Event> events;
};

Event route(std::uint16_t vector, MsiMessage m) {
    return {Event::route, vector, m};
}
Event signal(std::uint16_t vector) {
    return {Event::signal, vector};
}

MsiMessage message_for(std::uint16_t vector) {
    return {.address = 0xfee0'0000 | std::uint64_t{vector} << 12, .data = 0x4000u + vector};
}

constexpr pci::Identity identity{.vendor = 0x1af4, .device = 0x1041, .class_code = 0};
constexpr std::array<std::uint8_t, 8> other_capability{0x09, 0, 8, 1, 2, 3, 4, 5};

// A function with another capability before MSI-X, so MSI-X is not at the first offset.
struct Rig {
    explicit Rig(std::uint16_t vectors = 4) : msix(vectors, router) {
        config.add_memory_bar(table_bar, 0x4000, true);
        config.add_capability(other_capability);
        msix.add_capability(config, table_bar, table_offset, pba_offset);
        cap = find_capability();
    }

    std::uint32_t find_capability() const {
        std::uint32_t at = config.read32(0x34) & 0xff;
        for (int n = 0; at != 0 && n < 48; ++n, at = config.read32(at) >> 8 & 0xff)
            if ((config.read32(at) & 0xff) == msix_id) return at;
        FAIL("no MSI-X capability");
        return 0;
    }

    // Message Control written by the guest, as the bus would: config space, then the hook.
    void set_control(std::uint16_t bits) {
        config.write(cap + 2, std::as_bytes(std::span(&bits, 1)));
        msix.config_written(config);
    }
    std::uint16_t control() const { return config.read16(cap + 2); }

    void write(std::uint64_t offset, std::uint64_t value, std::size_t size) {
        std::array<std::byte, 8> data;
        std::memcpy(data.data(), &value, sizeof value);
        msix.table_write(offset, std::span(data).first(size));
    }
    std::uint64_t read(std::uint64_t offset, std::size_t size) const {
        std::array<std::byte, 8> data;
        data.fill(std::byte{0xa5});
        msix.table_read(offset, std::span(data).first(size));
        std::uint64_t value = 0;
        std::memcpy(&value, data.data(), size);
        return value;
    }
    std::uint64_t pba(std::uint64_t offset, std::size_t size = 8) const {
        std::array<std::byte, 8> data;
        data.fill(std::byte{0xa5});
        msix.pba_read(offset, std::span(data).first(size));
        std::uint64_t value = 0;
        std::memcpy(&value, data.data(), size);
        return value;
    }
    // Programs an entry as a driver does: address and data while masked, then the mask.
    void program(std::uint16_t vector, MsiMessage m, bool masked) {
        std::uint64_t const entry = 16ull * vector;
        write(entry + entry_address_low, m.address & 0xffff'ffff, 4);
        write(entry + entry_address_high, m.address >> 32, 4);
        write(entry + entry_data, m.data, 4);
        write(entry + entry_control, masked ? 1 : 0, 4);
    }
    void mask(std::uint16_t vector, bool masked) { write(16ull * vector + entry_control, masked ? 1 : 0, 4); }

    pci::ConfigSpace config{identity, 1};
    RecordingRouter router;
    pci::Msix msix;
    std::uint32_t cap = 0;
};

}  // namespace

TEST_CASE("The MSI-X capability announces the table size, the BAR and both offsets", "[pci]") {
    Rig r(5);
    CHECK(r.cap != 0x40);
    CHECK(r.cap % 4 == 0);
    CHECK(r.control() == 4);  // table size N - 1, disabled, unmasked
    CHECK(r.config.read32(r.cap + 4) == (table_offset | table_bar));
    CHECK(r.config.read32(r.cap + 8) == (pba_offset | table_bar));
    CHECK(r.msix.vectors() == 5);
    CHECK(r.msix.table_size() == 5 * 16);
    CHECK(r.msix.pba_size() == 8);
    CHECK(Rig(64).msix.pba_size() == 8);
    CHECK(Rig(65).msix.pba_size() == 16);

    // Only Enable and Function Mask are the guest's.
    std::uint32_t const all = 0xffff'ffff;
    for (std::uint32_t off = 0; off < 12; off += 4)
        r.config.write(r.cap + off, std::as_bytes(std::span(&all, 1)));
    CHECK(r.control() == (4 | control_enable | control_function_mask));
    CHECK((r.config.read32(r.cap) & 0xff) == msix_id);
    CHECK(r.config.read32(r.cap + 4) == (table_offset | table_bar));
    CHECK(r.config.read32(r.cap + 8) == (pba_offset | table_bar));
}

TEST_CASE("MSI-X refuses 0 vectors and more than 2048", "[pci]") {
    RecordingRouter router;
    CHECK_THROWS_AS(pci::Msix(0, router), Error);
    CHECK_THROWS_AS(pci::Msix(2049, router), Error);
    CHECK_THROWS_AS(pci::Msix(0xffff, router), Error);
    CHECK(pci::Msix(2048, router).vectors() == 2048);
}

TEST_CASE("With MSI-X disabled, trigger returns false and nothing is sent or pending", "[pci]") {
    Rig r;
    r.program(0, message_for(0), false);
    CHECK_FALSE(r.msix.enabled());
    CHECK_FALSE(r.msix.trigger(0));
    CHECK_FALSE(r.msix.trigger(3));
    CHECK_FALSE(r.msix.trigger(pci::Msix::no_vector));
    CHECK(r.router.events.empty());
    CHECK(r.pba(0) == 0);
    // Function Mask alone does not enable it.
    r.set_control(control_function_mask);
    CHECK_FALSE(r.msix.trigger(0));
    CHECK(r.pba(0) == 0);
}

TEST_CASE("Vectors start masked: a trigger sets the pending bit, unmasking routes then sends it", "[pci]") {
    Rig r;
    r.set_control(control_enable);
    CHECK(r.msix.enabled());
    CHECK(r.read(entry_control, 4) == 1);
    CHECK(r.read(16 * 3 + entry_control, 4) == 1);
    r.program(2, message_for(2), true);
    CHECK(r.msix.trigger(2));
    CHECK(r.msix.trigger(2));  // still one pending bit
    CHECK(r.router.events.empty());
    CHECK(r.pba(0) == 0b100);

    r.mask(2, false);
    CHECK(r.router.events == std::vector<Event>{route(2, message_for(2)), signal(2)});
    CHECK(r.pba(0) == 0);

    // Unmasked now: straight through, no second route.
    CHECK(r.msix.trigger(2));
    CHECK(r.router.events == std::vector<Event>{route(2, message_for(2)), signal(2), signal(2)});
}

TEST_CASE("Function Mask holds every vector pending until it is cleared", "[pci]") {
    Rig r;
    r.program(0, message_for(0), false);
    r.program(1, message_for(1), false);
    r.program(3, message_for(3), true);
    r.set_control(control_enable | control_function_mask);
    CHECK(r.router.events.empty());
    CHECK(r.msix.trigger(0));
    CHECK(r.msix.trigger(3));
    CHECK(r.router.events.empty());
    CHECK(r.pba(0) == 0b1001);

    r.set_control(control_enable);
    // Every unmasked vector gets its route; the pending one fires; vector 3 stays masked and pending.
    CHECK(r.router.events ==
          std::vector<Event>{route(0, message_for(0)), signal(0), route(1, message_for(1))});
    CHECK(r.pba(0) == 0b1000);
    r.mask(3, false);
    CHECK(r.router.events.back() == signal(3));
    CHECK(r.pba(0) == 0);
}

TEST_CASE("Disabling MSI-X forgets nothing and sends nothing", "[pci]") {
    Rig r;
    r.program(0, message_for(0), true);
    r.set_control(control_enable);
    CHECK(r.msix.trigger(0));
    r.set_control(0);
    CHECK_FALSE(r.msix.trigger(0));
    r.mask(0, false);
    CHECK(r.router.events.empty());
    CHECK(r.pba(0) == 1);
    r.set_control(control_enable);
    CHECK(r.router.events == std::vector<Event>{route(0, message_for(0)), signal(0)});
}

TEST_CASE("The table reads and writes aligned dwords and qwords", "[pci]") {
    Rig r;
    r.write(16 + entry_address_low, 0x1122'3344'5566'7788, 8);
    r.write(16 + entry_data, 0xffff'ffff'0000'abcd, 8);  // data and vector control together
    CHECK(r.read(16 + entry_address_low, 4) == 0x5566'7788);
    CHECK(r.read(16 + entry_address_high, 4) == 0x1122'3344);
    CHECK(r.read(16 + entry_address_low, 8) == 0x1122'3344'5566'7788);
    CHECK(r.read(16 + entry_data, 4) == 0xabcd);
    CHECK(r.read(16 + entry_control, 4) == 1);  // only the Mask Bit is kept
    CHECK(r.read(16 + entry_data, 8) == 0x1'0000'abcd);
    r.write(16 + entry_control, 0xffff'fffe, 4);
    CHECK(r.read(16 + entry_control, 4) == 0);
    // Other entries are untouched.
    CHECK(r.read(0, 8) == 0);
    CHECK(r.read(32, 8) == 0);
    CHECK(r.read(entry_control, 4) == 1);
    // The last dword of the table.
    r.write(16 * 3 + entry_data, 0x77, 4);
    CHECK(r.read(16 * 3 + entry_data, 4) == 0x77);
}

TEST_CASE("Misaligned, odd-sized and out-of-range table and PBA accesses are ignored", "[pci]") {
    Rig r;
    r.write(0, 0x1111'1111, 4);
    auto const snapshot = [&] {
        std::vector<std::uint64_t> v;
        for (std::uint64_t at = 0; at < r.msix.table_size(); at += 8) v.push_back(r.read(at, 8));
        return v;
    };
    auto const before = snapshot();
    struct Access {
        std::uint64_t offset;
        std::size_t size;
    };
    for (auto a : {Access{0, 1}, Access{0, 2}, Access{1, 4}, Access{2, 4}, Access{4, 8}, Access{12, 8},
                   Access{0, 3}, Access{8, 6}, Access{64, 4}, Access{64, 8}, Access{0xffff'fff8, 8},
                   Access{0xffff'ffff'ffff'fff8, 8}}) {
        CAPTURE(a.offset, a.size);
        r.write(a.offset, 0xffff'ffff'ffff'ffff, a.size);
        CHECK(r.read(a.offset, a.size) == 0);
    }
    CHECK(snapshot() == before);
    CHECK(r.router.events.empty());

    r.set_control(control_enable);
    CHECK(r.msix.trigger(1));
    CHECK(r.pba(0, 4) == 0b10);
    CHECK(r.pba(0, 2) == 0);
    CHECK(r.pba(1, 4) == 0);
    CHECK(r.pba(4, 8) == 0);
    CHECK(r.pba(8, 8) == 0);
    CHECK(r.pba(0xffff'ffff'ffff'fff8, 8) == 0);
}

TEST_CASE("The PBA holds one bit per vector across qwords", "[pci]") {
    Rig r(70);
    r.set_control(control_enable);
    for (int v : {0, 33, 63, 64, 69}) CHECK(r.msix.trigger(static_cast<std::uint16_t>(v)));
    CHECK(r.pba(0) == (1ull | 1ull << 33 | 1ull << 63));
    CHECK(r.pba(0, 4) == 1);
    CHECK(r.pba(4, 4) == (1u << 1 | 1u << 31));
    CHECK(r.pba(8) == (1ull | 1ull << 5));
    CHECK(r.pba(12, 4) == 0);
    r.mask(64, false);
    CHECK(r.pba(8) == (1ull << 5));
    CHECK(r.router.events.back() == signal(64));
}

TEST_CASE("The router hears of a vector's message only when it changes", "[pci]") {
    Rig r;
    r.program(1, message_for(1), false);
    r.set_control(control_enable);
    CHECK(r.router.events == std::vector<Event>{route(1, message_for(1))});

    // Mask and unmask, disable and enable, function mask on and off: same message, no new route.
    r.mask(1, true);
    r.mask(1, false);
    r.set_control(0);
    r.set_control(control_enable);
    r.set_control(control_enable | control_function_mask);
    r.set_control(control_enable);
    r.write(16 + entry_data, message_for(1).data, 4);
    CHECK(r.router.events.size() == 1);

    // A new message written while masked is routed at the unmask, before the pending signal.
    r.mask(1, true);
    MsiMessage const moved{.address = 0x1'fee0'1000, .data = 0x99};
    r.write(16 + entry_address_low, moved.address & 0xffff'ffff, 4);
    r.write(16 + entry_address_high, moved.address >> 32, 4);
    r.write(16 + entry_data, moved.data, 4);
    CHECK(r.msix.trigger(1));
    CHECK(r.router.events.size() == 1);
    r.mask(1, false);
    CHECK(r.router.events == std::vector<Event>{route(1, message_for(1)), route(1, moved), signal(1)});
}

TEST_CASE("Triggers of vectors the table does not have are ignored", "[pci]") {
    Rig r;
    for (std::uint16_t v = 0; v < 4; ++v) r.program(v, message_for(v), false);
    r.set_control(control_enable);
    r.router.events.clear();
    for (std::uint16_t v : {std::uint16_t{4}, std::uint16_t{5}, std::uint16_t{2048}, pci::Msix::no_vector}) {
        CAPTURE(v);
        CHECK(r.msix.trigger(v));  // enabled: the device must not fall back to INTx
    }
    CHECK(r.router.events.empty());
    CHECK(r.pba(0) == 0);
    CHECK(r.msix.trigger(3));
    CHECK(r.router.events == std::vector<Event>{signal(3)});
}

}  // namespace kvmlet::test
