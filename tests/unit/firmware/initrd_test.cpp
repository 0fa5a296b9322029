#include "firmware/x86_64/initrd.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "firmware/x86_64/kernel_boot.hpp"
#include "firmware/x86_64/layout.hpp"
#include "tests/unit/firmware/bzimage_builder.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"

using kvmlet::GiB;
using kvmlet::GuestAddress;
using kvmlet::KiB;
using kvmlet::MiB;
using kvmlet::test::BzImageBuilder;
using kvmlet::test::flat_ram;
using kvmlet::test::guest;
using kvmlet::test::pattern;
namespace x86 = kvmlet::x86_64;

TEST_CASE("the initrd goes page-aligned as high as low RAM allows", "[firmware]") {
    auto const placed =
        x86::place_initrd(0x1800, GuestAddress{0x200'0000}, 0x7fff'ffff, GuestAddress{64 * MiB});
    CHECK(placed.start == GuestAddress{64 * MiB - 0x2000});
    CHECK(placed.size == 0x1800);
}

TEST_CASE("the initrd stays at or below initrd_addr_max, its highest byte", "[firmware]") {
    // boot.rst's example: 131072 bytes under 0x37FFFFFF start at 0x37FE0000.
    auto const placed =
        x86::place_initrd(131072, GuestAddress{0x100'0000}, 0x37ff'ffff, GuestAddress{2 * GiB});
    CHECK(placed.start == GuestAddress{0x37fe'0000});
    auto const odd = x86::place_initrd(0x1000, GuestAddress{0x100'0000}, 0x37ff'fffe, GuestAddress{2 * GiB});
    CHECK(odd.start == GuestAddress{0x37ff'e000});  // the last page would reach 0x37ffffff
}

TEST_CASE("an initrd that fits exactly starts at the kernel's page-aligned end", "[firmware]") {
    auto const placed =
        x86::place_initrd(0xff'f000, GuestAddress{0x100'0001}, 0x7fff'ffff, GuestAddress{32 * MiB});
    CHECK(placed.start == GuestAddress{0x100'1000});
}

TEST_CASE("an initrd too big for the room above the kernel is rejected", "[firmware]") {
    REQUIRE_THROWS_WITH(
        x86::place_initrd(0xff'f001, GuestAddress{0x100'0001}, 0x7fff'ffff, GuestAddress{32 * MiB}),
        "initrd: 16 MiB does not fit in guest RAM between the kernel (ends at 0x1000001) and 0x2000000 (use "
        "more --memory)");
    // A kernel that ends above the limit leaves no room at all, not a huge one.
    REQUIRE_THROWS_WITH(x86::place_initrd(1, GuestAddress{40 * MiB}, 0x7fff'ffff, GuestAddress{32 * MiB}),
                        "initrd: 1 MiB does not fit in guest RAM between the kernel (ends at 0x2800000) and "
                        "0x2000000 (use more --memory)");
    REQUIRE_THROWS_AS(x86::place_initrd(1, GuestAddress{UINT64_MAX - 5}, UINT64_MAX, GuestAddress{32 * MiB}),
                      kvmlet::Error);
    REQUIRE_THROWS_AS(x86::place_initrd(UINT64_MAX, GuestAddress{0}, UINT64_MAX, GuestAddress{32 * MiB}),
                      kvmlet::Error);
}

TEST_CASE("a bzImage's initrd goes above its decompression area and into the zero page", "[firmware]") {
    auto const memory = flat_ram(64 * MiB);
    auto const initrd = pattern(5 * KiB, 3);
    auto const kernel = x86::load_kernel(
        memory,
        {.kernel = BzImageBuilder{}.build(), .initrd = initrd, .cmdline = "", .cpus = 1, .entry = {}});
    REQUIRE(kernel.initrd);
    CHECK(kernel.initrd->start == GuestAddress{64 * MiB - 8 * KiB});
    CHECK(kernel.initrd->size == initrd.size());
    std::vector<std::byte> copied(initrd.size());
    REQUIRE(memory.read_bytes(kernel.initrd->start, copied));
    CHECK(copied == initrd);
    std::uint64_t const zp = x86::zero_page_start.value;
    CHECK(guest<std::uint32_t>(memory, zp + 0x218) == kernel.initrd->start.value);  // ramdisk_image
    CHECK(guest<std::uint32_t>(memory, zp + 0x21c) == initrd.size());               // ramdisk_size
    CHECK(guest<std::uint32_t>(memory, zp + 0x0c0) == 0);                           // ext_ramdisk_image
    CHECK(guest<std::uint32_t>(memory, zp + 0x0c4) == 0);                           // ext_ramdisk_size
}

TEST_CASE("a bzImage's initrd may not overlap the kernel's decompression area", "[firmware]") {
    auto const memory = flat_ram(26 * MiB);  // 2 MiB free above 16 MiB + 8 MiB
    auto const fits = pattern(2 * MiB, 4);
    CHECK_NOTHROW(x86::load_kernel(
        memory, {.kernel = BzImageBuilder{}.build(), .initrd = fits, .cmdline = "", .cpus = 1, .entry = {}}));
    auto const too_big = pattern(2 * MiB + 1, 4);
    REQUIRE_THROWS_WITH(
        x86::load_kernel(
            memory,
            {.kernel = BzImageBuilder{}.build(), .initrd = too_big, .cmdline = "", .cpus = 1, .entry = {}}),
        "initrd: 3 MiB does not fit in guest RAM between the kernel (ends at 0x1800000) and "
        "0x1a00000 (use more --memory)");
}

TEST_CASE("a bzImage's initrd_addr_max is honoured", "[firmware]") {
    auto const memory = flat_ram(64 * MiB);
    BzImageBuilder b;
    b.initrd_addr_max = 0x1ff'ffff;  // 32 MiB - 1
    auto const initrd = pattern(4 * KiB, 5);
    auto const kernel = x86::load_kernel(
        memory, {.kernel = b.build(), .initrd = initrd, .cmdline = "", .cpus = 1, .entry = {}});
    REQUIRE(kernel.initrd);
    CHECK(kernel.initrd->start == GuestAddress{32 * MiB - 4 * KiB});
}
