#include "firmware/x86_64/e820.hpp"

#include <catch2/catch.hpp>

#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

using kvmlet::GiB;
using kvmlet::GuestAddress;
using kvmlet::GuestMemory;
using kvmlet::MiB;
using kvmlet::RamRange;
namespace x86 = kvmlet::x86_64;

namespace {

void check_entry(x86::E820Entry const& e, std::uint64_t addr, std::uint64_t size, std::uint32_t type) {
    std::uint64_t const a = e.addr, s = e.size;
    std::uint32_t const t = e.type;
    CHECK(a == addr);
    CHECK(s == size);
    CHECK(t == type);
}

}  // namespace

TEST_CASE("the e820 map of 128 MiB is base memory, the reserved BIOS area and the rest as RAM",
          "[firmware]") {
    auto const memory = GuestMemory::create(x86::ram_ranges(128 * MiB));
    auto const map = x86::e820_map(memory);
    REQUIRE(map.size() == 3);
    check_entry(map[0], 0, 0x9fc00, 1);
    check_entry(map[1], 0x9fc00, 0x100000 - 0x9fc00, 2);
    check_entry(map[2], 0x100000, 128 * MiB - 0x100000, 1);
    CHECK(x86::low_ram_end(memory) == GuestAddress{128 * MiB});
}

TEST_CASE("the e820 map of more than 3 GiB has RAM below the MMIO hole and above 4 GiB", "[firmware]") {
    auto const memory = GuestMemory::create(x86::ram_ranges(3 * GiB + 64 * MiB));
    auto const map = x86::e820_map(memory);
    REQUIRE(map.size() == 4);
    check_entry(map[0], 0, 0x9fc00, 1);
    check_entry(map[1], 0x9fc00, 0x100000 - 0x9fc00, 2);
    check_entry(map[2], 0x100000, 3 * GiB - 0x100000, 1);
    check_entry(map[3], 4 * GiB, 64 * MiB, 1);
    CHECK(x86::low_ram_end(memory) == GuestAddress{3 * GiB});
}

TEST_CASE("the e820 map still reserves the BIOS area when RAM ends below it", "[firmware]") {
    RamRange const ranges[] = {{GuestAddress{0}, 0x80000}};
    auto const map = x86::e820_map(GuestMemory::create(ranges));
    REQUIRE(map.size() == 2);
    check_entry(map[0], 0, 0x80000, 1);
    check_entry(map[1], 0x9fc00, 0x100000 - 0x9fc00, 2);
}

TEST_CASE("guest RAM that does not start at 0 has no low RAM end", "[firmware]") {
    RamRange const ranges[] = {{GuestAddress{1 * MiB}, 1 * MiB}};
    REQUIRE_THROWS_WITH(x86::low_ram_end(GuestMemory::create(ranges)),
                        "e820: guest RAM does not start at address 0");
}

TEST_CASE("a reserved range outside RAM is sorted into the e820 map", "[firmware]") {
    auto const memory = GuestMemory::create(x86::ram_ranges(3 * GiB + 64 * MiB));
    x86::E820Reservation const ecam[] = {{x86::pci_ecam_start, x86::pci_ecam_size}};
    auto const map = x86::e820_map(memory, ecam);
    REQUIRE(map.size() == 5);
    check_entry(map[2], 0x100000, 3 * GiB - 0x100000, 1);
    check_entry(map[3], 0xe000'0000, 0x10'0000, 2);
    check_entry(map[4], 4 * GiB, 64 * MiB, 1);
}

TEST_CASE("reserved ranges are sorted among themselves and after small RAM", "[firmware]") {
    auto const memory = GuestMemory::create(x86::ram_ranges(128 * MiB));
    x86::E820Reservation const reserved[] = {{GuestAddress{0xfec0'0000}, 0x1000},
                                             {GuestAddress{0xe000'0000}, 0x10'0000}};
    auto const map = x86::e820_map(memory, reserved);
    REQUIRE(map.size() == 5);
    check_entry(map[3], 0xe000'0000, 0x10'0000, 2);
    check_entry(map[4], 0xfec0'0000, 0x1000, 2);
}

TEST_CASE("a reserved range that is empty, wraps or overlaps another entry is rejected", "[firmware]") {
    auto const memory = GuestMemory::create(x86::ram_ranges(128 * MiB));
    x86::E820Reservation reserved[] = {{GuestAddress{0xe000'0000}, 0x1000},
                                       {GuestAddress{0xe000'0000}, 0x1000}};
    SECTION("empty") {
        reserved[1] = {GuestAddress{0xf000'0000}, 0};
    }
    SECTION("wraps") {
        reserved[1] = {GuestAddress{~0ull - 0xfff}, 0x2000};
    }
    SECTION("overlaps RAM") {
        reserved[1] = {GuestAddress{120 * MiB}, 16 * MiB};
    }
    SECTION("overlaps the BIOS area") {
        reserved[1] = {GuestAddress{0xf0000}, 0x1000};
    }
    SECTION("overlaps the other reservation") {
        reserved[1] = {GuestAddress{0xdfff'f000}, 0x2000};
    }
    CHECK_THROWS_AS(x86::e820_map(memory, reserved), kvmlet::Error);
}
