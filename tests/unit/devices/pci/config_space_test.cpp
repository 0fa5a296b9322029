#include "devices/pci/config_space.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/base/guest_address.hpp"

namespace kvmlet::test {
namespace {

using pci::ConfigSpace;

// PCI 3.0 §6.1 offsets and §6.2 bits, spelled out so the test does not trust pci_spec.hpp.
constexpr std::uint32_t vendor_id = 0x00, device_id = 0x02, command = 0x04, status = 0x06, revision = 0x08,
                        class_code = 0x09, cache_line = 0x0c, latency = 0x0d, header_type = 0x0e, bar0 = 0x10,
                        subsystem_vendor = 0x2c, subsystem = 0x2e, cap_pointer = 0x34, interrupt_line = 0x3c,
                        interrupt_pin = 0x3d;
constexpr std::uint16_t command_writable = 0x0001 | 0x0002 | 0x0004 | 0x0040 | 0x0100 | 0x0400;
constexpr std::uint16_t status_capabilities = 1 << 4;
constexpr std::uint32_t bar_64bit = 0x4, bar_prefetchable = 0x8;

constexpr pci::Identity identity{.vendor = 0x1234,
                                 .device = 0x5678,
                                 .class_code = 0x0c'03'30,
                                 .revision = 0x9a,
                                 .subsystem_vendor = 0xabcd,
                                 .subsystem = 0xef01};

std::uint32_t read(ConfigSpace const& c, std::uint32_t offset, std::size_t size) {
    std::array<std::byte, 4> data;
    data.fill(std::byte{0xa5});
    c.read(offset, std::span(data).first(size));
    std::uint32_t value = 0;
    std::memcpy(&value, data.data(), size);
    return value;
}

void write(ConfigSpace& c, std::uint32_t offset, std::size_t size, std::uint32_t value) {
    std::array<std::byte, 4> data;
    std::memcpy(data.data(), &value, sizeof value);
    c.write(offset, std::span(data).first(size));
}

std::array<std::uint8_t, 256> image(ConfigSpace const& c) {
    std::array<std::uint8_t, 256> out;
    c.read(0, std::as_writable_bytes(std::span(out)));
    return out;
}

// BAR 0: 32-bit, 4 KiB. BARs 2-3: 64-bit, 16 KiB. BARs 4-5: 64-bit, prefetchable, 8 GiB.
// One read-only capability and one with writable bits.
struct Rig {
    Rig() {
        c.add_memory_bar(0, 0x1000, false);
        c.add_memory_bar(2, 0x4000, true);
        c.add_memory_bar(4, 8 * GiB, true, true);
        std::uint8_t const ro[] = {0x09, 0x77, 6, 1, 2, 3};
        ro_cap = c.add_capability(ro);
        std::uint8_t const rw[] = {0x11, 0x55, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60};
        std::uint8_t const mask[] = {0xff, 0xff, 0x0f, 0x00, 0xff, 0x00, 0x81, 0x00};
        rw_cap = c.add_capability(rw, mask);
    }
    ConfigSpace c{identity, 1};
    std::uint8_t ro_cap = 0, rw_cap = 0;

    // Which bits of each byte the guest may change, written out from the spec and the set-up above.
    std::array<std::uint8_t, 256> expected_mask() const {
        std::array<std::uint8_t, 256> m{};
        m[command] = static_cast<std::uint8_t>(command_writable);
        m[command + 1] = static_cast<std::uint8_t>(command_writable >> 8);
        m[cache_line] = m[latency] = m[interrupt_line] = 0xff;
        auto put32 = [&](std::uint32_t at, std::uint32_t v) { std::memcpy(&m[at], &v, 4); };
        put32(bar0, 0xffff'f000);
        put32(bar0 + 8, 0xffff'c000);
        put32(bar0 + 12, 0xffff'ffff);
        put32(bar0 + 16, 0);  // 8 GiB: no address bit in the low dword
        put32(bar0 + 20, 0xffff'fffe);
        m[rw_cap + 2] = 0x0f;
        m[rw_cap + 4] = 0xff;
        m[rw_cap + 6] = 0x81;  // ID and next pointer stay read-only whatever the mask says
        return m;
    }
};

}  // namespace

TEST_CASE("A new configuration space holds the identity, the interrupt pin and the BAR flags", "[pci]") {
    Rig r;
    CHECK(read(r.c, vendor_id, 2) == 0x1234);
    CHECK(read(r.c, device_id, 2) == 0x5678);
    CHECK(read(r.c, revision, 1) == 0x9a);
    CHECK(read(r.c, class_code, 1) == 0x30);
    CHECK(read(r.c, class_code + 1, 1) == 0x03);
    CHECK(read(r.c, class_code + 2, 1) == 0x0c);
    CHECK(read(r.c, revision, 4) == 0x0c03'309a);
    CHECK(read(r.c, header_type, 1) == 0);
    CHECK(read(r.c, subsystem_vendor, 2) == 0xabcd);
    CHECK(read(r.c, subsystem, 2) == 0xef01);
    CHECK(read(r.c, interrupt_pin, 1) == 1);
    CHECK(read(r.c, interrupt_line, 1) == 0);
    CHECK(read(r.c, command, 2) == 0);
    CHECK(read(r.c, bar0, 4) == 0);
    CHECK(read(r.c, bar0 + 4, 4) == 0);  // not implemented
    CHECK(read(r.c, bar0 + 8, 4) == bar_64bit);
    CHECK(read(r.c, bar0 + 16, 4) == (bar_64bit | bar_prefetchable));
    CHECK(r.c.read16(vendor_id) == 0x1234);
    CHECK(r.c.read32(vendor_id) == 0x5678'1234);
}

TEST_CASE("Every offset and size changes only the bits the write mask allows", "[pci]") {
    Rig r;
    auto const mask = r.expected_mask();
    auto model = image(r.c);
    for (std::uint32_t value : {0xffff'ffffu, 0u, 0x5a5a'a5a5u}) {
        for (std::size_t size : {1u, 2u, 4u}) {
            for (std::uint32_t offset = 0; offset + size <= 256; ++offset) {
                CAPTURE(value, size, offset);
                write(r.c, offset, size, value);
                for (std::size_t i = 0; i < size; ++i) {
                    auto const v = static_cast<std::uint8_t>(value >> (8 * i));
                    auto& b = model[offset + i];
                    b = static_cast<std::uint8_t>((b & ~mask[offset + i]) | (v & mask[offset + i]));
                }
                REQUIRE(image(r.c) == model);
                std::uint32_t expected = 0;
                std::memcpy(&expected, &model[offset], size);
                REQUIRE(read(r.c, offset, size) == expected);
            }
        }
    }
}

TEST_CASE("Accesses beyond 256 bytes read zeros and are dropped", "[pci]") {
    Rig r;
    auto const before = image(r.c);
    for (std::uint32_t offset : {0x100u, 0x101u, 0xfffu, 0xffff'fffcu, 0xffff'ffffu}) {
        CAPTURE(offset);
        CHECK(read(r.c, offset, 4) == 0);
        write(r.c, offset, 4, 0xffff'ffff);
    }
    CHECK(image(r.c) == before);
    CHECK(r.c.read16(0xff) == 0);
    CHECK(r.c.read32(0xfd) == 0);

    // A dword straddling the end moves its first bytes only.
    ConfigSpace c(identity, 0);
    std::vector<std::uint8_t> body(0xc0, 0), mask(0xc0, 0xff);
    body[0] = 0x09;
    REQUIRE(c.add_capability(body, mask) == 0x40);
    write(c, 0xfe, 4, 0x1122'3344);
    CHECK(read(c, 0xfe, 4) == 0x3344);
    CHECK(read(c, 0xfc, 4) == 0x3344'0000);
}

TEST_CASE("Sizing a 32-bit BAR reads back the size mask and the flags, then the address is restored",
          "[pci]") {
    Rig r;
    r.c.set_bar_address(0, 0xc000'1000);
    write(r.c, bar0, 4, 0xffff'ffff);
    CHECK(read(r.c, bar0, 4) == 0xffff'f000);
    CHECK(~(read(r.c, bar0, 4) & ~0xfu) + 1 == 0x1000);
    write(r.c, bar0, 4, 0xc000'1000);
    CHECK(read(r.c, bar0, 4) == 0xc000'1000);
    CHECK(r.c.bar_address(0) == 0xc000'1000);
}

TEST_CASE("Sizing a 64-bit BAR reads back the mask in both halves", "[pci]") {
    Rig r;
    SECTION("16 KiB") {
        write(r.c, bar0 + 8, 4, 0xffff'ffff);
        write(r.c, bar0 + 12, 4, 0xffff'ffff);
        CHECK(read(r.c, bar0 + 8, 4) == (0xffff'c000u | bar_64bit));
        CHECK(read(r.c, bar0 + 12, 4) == 0xffff'ffff);
        CHECK(r.c.bar_address(2) == 0xffff'ffff'ffff'c000);
    }
    SECTION("8 GiB, prefetchable") {
        write(r.c, bar0 + 16, 4, 0xffff'ffff);
        write(r.c, bar0 + 20, 4, 0xffff'ffff);
        CHECK(read(r.c, bar0 + 16, 4) == (bar_64bit | bar_prefetchable));
        CHECK(read(r.c, bar0 + 20, 4) == 0xffff'fffe);
        std::uint64_t const mask =
            std::uint64_t{read(r.c, bar0 + 20, 4)} << 32 | (read(r.c, bar0 + 16, 4) & ~0xfu);
        CHECK(~mask + 1 == 8 * GiB);
        write(r.c, bar0 + 16, 4, 0);
        write(r.c, bar0 + 20, 4, 0x10);
        CHECK(r.c.bar_address(4) == 0x10'0000'0000);
        CHECK(read(r.c, bar0 + 16, 4) == (bar_64bit | bar_prefetchable));
    }
}

TEST_CASE("set_bar_address writes the address, keeps the flags, and bar_address reads it back", "[pci]") {
    Rig r;
    r.c.set_bar_address(0, 0xe000'1000);
    CHECK(read(r.c, bar0, 4) == 0xe000'1000);
    CHECK(r.c.bar_address(0) == 0xe000'1000);

    r.c.set_bar_address(2, 0x1'2345'c000);
    CHECK(read(r.c, bar0 + 8, 4) == (0x2345'c000u | bar_64bit));
    CHECK(read(r.c, bar0 + 12, 4) == 1);
    CHECK(r.c.bar_address(2) == 0x1'2345'c000);

    r.c.set_bar_address(4, 0x40'0000'0000);
    CHECK(read(r.c, bar0 + 16, 4) == (bar_64bit | bar_prefetchable));
    CHECK(r.c.bar_address(4) == 0x40'0000'0000);

    // The flag bits of an address never reach the register.
    r.c.set_bar_address(2, 0x8000'000f);
    CHECK(read(r.c, bar0 + 8, 4) == (0x8000'0000u | bar_64bit));
    CHECK(r.c.bar_address(2) == 0x8000'0000);

    // Unimplemented BARs, the upper half of a 64-bit BAR, and indices past the last read 0 and
    // ignore the call.
    for (std::uint32_t index : {1u, 3u, 5u, 6u, 0xffff'ffffu}) {
        CAPTURE(index);
        auto const before = image(r.c);
        r.c.set_bar_address(index, 0xd000'0000);
        CHECK(image(r.c) == before);
        CHECK(r.c.bar(index).size == 0);
    }
    CHECK(r.c.bar_address(1) == 0);
    CHECK(r.c.bar_address(6) == 0);
    CHECK(r.c.bar(0).size == 0x1000);
    CHECK_FALSE(r.c.bar(0).is_64bit);
    CHECK(r.c.bar(2).size == 0x4000);
    CHECK(r.c.bar(2).is_64bit);
    CHECK(r.c.bar(4).size == 8 * GiB);
}

TEST_CASE("The capability list starts at 0x34, is DWORD aligned, and ends with a zero pointer", "[pci]") {
    ConfigSpace c(identity, 0);
    CHECK((read(c, status, 2) & status_capabilities) == 0);
    CHECK(read(c, cap_pointer, 1) == 0);

    std::vector<std::vector<std::uint8_t>> const bodies = {
        {0x11, 0xee, 1, 2, 3},              // next pointer in the body is replaced
        {0x09, 0x00, 7, 6, 5, 4, 3, 2, 1},  // 9 bytes: the next one starts 3 bytes later
        {0x05, 0x00},                       // the smallest
        {0x10, 0x00, 0xaa, 0xbb},
    };
    std::vector<std::uint8_t> offsets;
    for (auto const& b : bodies) offsets.push_back(c.add_capability(b));
    CHECK((read(c, status, 2) & status_capabilities) != 0);

    std::uint32_t at = read(c, cap_pointer, 1);
    std::size_t n = 0;
    std::uint32_t end_of_previous = 0x40;
    while (at != 0 && n < 48) {
        CAPTURE(n, at);
        REQUIRE(n < bodies.size());
        CHECK(at == offsets[n]);
        CHECK(at % 4 == 0);
        CHECK(at >= end_of_previous);  // no overlap
        auto const& b = bodies[n];
        CHECK(read(c, at, 1) == b[0]);
        for (std::size_t i = 2; i < b.size(); ++i)
            CHECK(read(c, at + static_cast<std::uint32_t>(i), 1) == b[i]);
        end_of_previous = at + static_cast<std::uint32_t>(b.size());
        at = read(c, at + 1, 1);
        ++n;
    }
    CHECK(n == bodies.size());
    CHECK(offsets[0] == 0x40);
}

TEST_CASE("Capability IDs and next pointers stay read-only, and masked body bits are writable", "[pci]") {
    Rig r;
    auto const mask = r.expected_mask();
    write(r.c, r.rw_cap, 4, 0xffff'ffff);
    write(r.c, r.rw_cap + 4, 4, 0xffff'ffff);
    CHECK(read(r.c, r.rw_cap, 1) == 0x11);
    CHECK(read(r.c, r.rw_cap + 1, 1) == 0);  // the last capability
    CHECK(read(r.c, r.rw_cap + 2, 1) == 0x1f);
    CHECK(read(r.c, r.rw_cap + 3, 1) == 0x20);
    CHECK(read(r.c, r.rw_cap + 4, 4) == 0x60d1'40ff);
    write(r.c, r.ro_cap, 4, 0);
    CHECK(read(r.c, r.ro_cap, 1) == 0x09);
    CHECK(read(r.c, r.ro_cap + 1, 1) == r.rw_cap);
    CHECK(mask[r.rw_cap] == 0);
}

TEST_CASE("Capabilities that do not fit, or whose mask has another length, throw", "[pci]") {
    ConfigSpace c(identity, 0);
    std::uint8_t const tiny[] = {0x09};
    CHECK_THROWS_AS(c.add_capability(tiny), Error);
    std::uint8_t const body[] = {0x09, 0, 1, 2};
    std::uint8_t const short_mask[] = {0, 0, 0xff};
    CHECK_THROWS_AS(c.add_capability(body, short_mask), Error);
    std::vector<std::uint8_t> const too_big(256 - 0x40 + 1, 0x09);
    CHECK_THROWS_AS(c.add_capability(too_big), Error);
    // Nothing was added by the failures.
    CHECK(read(c, cap_pointer, 1) == 0);

    std::vector<std::uint8_t> big(0x60, 0);
    big[0] = 0x09;
    CHECK(c.add_capability(big) == 0x40);
    CHECK(c.add_capability(big) == 0xa0);
    CHECK_THROWS_AS(c.add_capability(big), Error);
}

TEST_CASE("A capability after one that ends at the last byte of configuration space throws", "[pci]") {
    // Three 64-byte capabilities fill 0x40-0xff exactly; nothing is left for a fourth.
    ConfigSpace c(identity, 0);
    std::vector<std::uint8_t> quarter(0x40, 0x5a);
    quarter[0] = 0x09;
    CHECK(c.add_capability(quarter) == 0x40);
    CHECK(c.add_capability(quarter) == 0x80);
    CHECK(c.add_capability(quarter) == 0xc0);
    std::uint8_t const small[] = {0x05, 0, 0xaa, 0xbb};
    CHECK_THROWS_AS(c.add_capability(small), Error);
    // The third capability's last bytes are intact.
    CHECK(read(c, 0xfc, 4) == 0x5a5a'5a5a);
}

TEST_CASE("Bad BAR indices and sizes throw", "[pci]") {
    ConfigSpace c(identity, 0);
    CHECK_THROWS_AS(c.add_memory_bar(6, 0x1000, false), Error);
    CHECK_THROWS_AS(c.add_memory_bar(0xffff'ffff, 0x1000, false), Error);
    CHECK_THROWS_AS(c.add_memory_bar(5, 0x1000, true), Error);  // no room for the upper half
    for (std::uint64_t size : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{8}, std::uint64_t{0x3000},
                               std::uint64_t{0x1001}, 4 * GiB, 8 * GiB}) {
        CAPTURE(size);
        CHECK_THROWS_AS(c.add_memory_bar(0, size, false), Error);
    }
    CHECK_THROWS_AS(c.add_memory_bar(0, 0x6000, true), Error);
    CHECK_THROWS_AS(c.add_memory_bar(0, 0, true), Error);
    for (std::uint32_t i = 0; i < 6; ++i) CHECK(c.bar(i).size == 0);

    c.add_memory_bar(0, 16, false);                          // the smallest
    c.add_memory_bar(1, 2 * GiB, false);                     // the largest 32-bit one
    c.add_memory_bar(2, std::uint64_t{1} << 63, true);       // the largest 64-bit one
    CHECK_THROWS_AS(c.add_memory_bar(0, 16, false), Error);  // taken
    CHECK(c.bar(0).size == 16);
    CHECK(read(c, bar0 + 4, 4) == 0);
    write(c, bar0 + 4, 4, 0xffff'ffff);
    CHECK(read(c, bar0 + 4, 4) == 0x8000'0000);
    write(c, bar0 + 12, 4, 0xffff'ffff);
    CHECK(read(c, bar0 + 12, 4) == 0x8000'0000);
}

TEST_CASE("A BAR that overlaps either half of a 64-bit BAR throws", "[pci]") {
    ConfigSpace c(identity, 0);
    c.add_memory_bar(2, 0x4000, true);  // BARs 2 and 3
    CHECK_THROWS_AS(c.add_memory_bar(3, 0x1000, false), Error);
    CHECK_THROWS_AS(c.add_memory_bar(3, 0x1000, true), Error);
    CHECK_THROWS_AS(c.add_memory_bar(1, 0x1000, true), Error);  // its upper half would be BAR 2
    // BAR 2 is still a 64-bit BAR of 16 KiB.
    CHECK(c.bar(2).size == 0x4000);
    CHECK(c.bar(2).is_64bit);
    CHECK(c.bar(1).size == 0);
    CHECK(c.bar(3).size == 0);
    CHECK(read(c, bar0 + 8, 4) == bar_64bit);
    write(c, bar0 + 12, 4, 0xffff'ffff);
    CHECK(read(c, bar0 + 12, 4) == 0xffff'ffff);
}

}  // namespace kvmlet::test
