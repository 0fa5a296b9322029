#include "firmware/x86_64/bzimage.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "firmware/x86_64/kernel_boot.hpp"
#include "firmware/x86_64/layout.hpp"
#include "tests/unit/firmware/bzimage_builder.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"

using Catch::Matchers::StartsWith;
using kvmlet::Error;
using kvmlet::GuestAddress;
using kvmlet::GuestMemory;
using kvmlet::MiB;
using kvmlet::test::BzImageBuilder;
using kvmlet::test::flat_ram;
using kvmlet::test::get;
using kvmlet::test::guest;
using kvmlet::test::guest_bytes;
using kvmlet::test::put;
namespace x86 = kvmlet::x86_64;

namespace {

GuestMemory ram(std::uint64_t size = 64 * MiB) {
    return flat_ram(size);
}

x86::KernelBoot boot(GuestMemory const& memory, std::vector<std::byte> const& image, std::string cmdline = "",
                     x86::EntryProtocol entry = x86::EntryProtocol::automatic) {
    return x86::load_kernel(
        memory, {.kernel = image, .initrd = {}, .cmdline = std::move(cmdline), .cpus = 1, .entry = entry});
}

}  // namespace

TEST_CASE("a bzImage's protected-mode kernel loads at 1 MiB and enters 64-bit code at 0x100200",
          "[firmware]") {
    auto const memory = ram();
    BzImageBuilder const builder;
    auto const image = builder.build();
    auto const kernel = boot(memory, image);

    CHECK(std::string(kernel.protocol) == "linux64 (bzImage)");
    CHECK(kernel.cpu.rip == 0x100200);
    CHECK(kernel.cpu.rsi == x86::zero_page_start.value);
    CHECK(kernel.cpu.efer == 0x500);  // long mode
    CHECK(kernel.cpu.cs.selector == 0x10);
    CHECK(kernel.kernel_start == GuestAddress{0x100000});
    CHECK(kernel.kernel_end == GuestAddress{0x100'0000 + 0x80'0000});  // runtime start + init_size
    std::vector<std::byte> const code(image.begin() + static_cast<std::ptrdiff_t>(builder.setup_size()),
                                      image.end());
    CHECK(guest_bytes(memory, 0x100000, code.size()) == code);
    CHECK_FALSE(kernel.initrd);
}

TEST_CASE("the zero page carries the bzImage's setup header and the loader's fields", "[firmware]") {
    auto const memory = ram();
    auto const image = BzImageBuilder{}.build();
    boot(memory, image, "console=ttyS0");
    std::uint64_t const zp = x86::zero_page_start.value;

    CHECK(guest<std::uint8_t>(memory, zp + 0x1f1) == 8);            // setup_sects
    CHECK(guest<std::uint16_t>(memory, zp + 0x1fe) == 0xaa55);      // boot_flag
    CHECK(guest<std::uint32_t>(memory, zp + 0x202) == 0x53726448);  // "HdrS"
    CHECK(guest<std::uint16_t>(memory, zp + 0x206) == 0x020f);      // version
    CHECK(guest<std::uint32_t>(memory, zp + 0x260) == 0x80'0000);   // init_size
    CHECK(guest<std::uint32_t>(memory, zp + 0x268) == 0x1234);  // kernel_info_offset: the last byte copied
    CHECK(guest<std::uint8_t>(memory, zp + 0x1ef) == 0);        // sentinel
    CHECK(guest<std::uint8_t>(memory, zp + 0x210) == 0xff);     // type_of_loader
    CHECK(guest<std::uint16_t>(memory, zp + 0x1fa) == 0xffff);  // vid_mode normal
    CHECK(guest<std::uint8_t>(memory, zp + 0x211) == 0x01);     // loadflags: LOADED_HIGH only
    CHECK(guest<std::uint32_t>(memory, zp + 0x228) == x86::cmdline_start.value);
    CHECK(guest<std::uint32_t>(memory, zp + 0x0c8) == 0);  // ext_cmd_line_ptr
    CHECK(guest<std::uint32_t>(memory, zp + 0x218) == 0);  // no ramdisk
    CHECK(guest<std::uint8_t>(memory, zp + 0x1e8) == 3);   // e820_entries
    std::string const cmdline = "console=ttyS0";
    auto const bytes = guest_bytes(memory, x86::cmdline_start.value, cmdline.size() + 1);
    CHECK(std::string(reinterpret_cast<char const*>(bytes.data())) == cmdline);
}

TEST_CASE("an image with neither the ELF magic nor the bzImage magics is rejected", "[firmware]") {
    auto const memory = ram();
    BzImageBuilder bad_flag;
    bad_flag.boot_flag = 0x55aa;
    BzImageBuilder bad_magic;
    bad_magic.header_magic = 0x53726449;
    REQUIRE_THROWS_WITH(boot(memory, bad_flag.build()), "kernel: not an ELF or bzImage");
    REQUIRE_THROWS_WITH(boot(memory, bad_magic.build()), "kernel: not an ELF or bzImage");
    REQUIRE_THROWS_WITH(boot(memory, {}), "kernel: not an ELF or bzImage");
    CHECK_FALSE(x86::is_bzimage(bad_magic.build()));
    CHECK(x86::is_bzimage(BzImageBuilder{}.build()));
}

TEST_CASE("a bzImage older than boot protocol 2.12 is rejected", "[firmware]") {
    BzImageBuilder b;
    b.version = 0x020b;
    REQUIRE_THROWS_WITH(
        x86::parse_bzimage(b.build()),
        "kernel: bzImage boot protocol 2.11 is too old: the 64-bit entry needs 2.12 or later");
    b.version = 0x020c;
    CHECK_NOTHROW(x86::parse_bzimage(b.build()));
}

TEST_CASE("a bzImage without the 64-bit entry or not loaded high is rejected", "[firmware]") {
    BzImageBuilder no_64;
    no_64.xloadflags = 0x7e;
    REQUIRE_THROWS_WITH(x86::parse_bzimage(no_64.build()),
                        "kernel: bzImage has no 64-bit entry point (XLF_KERNEL_64 clear: a 32-bit kernel?)");
    BzImageBuilder low;
    low.loadflags = 0;
    REQUIRE_THROWS_WITH(x86::parse_bzimage(low.build()), StartsWith("kernel: bzImage is not loaded high"));
}

TEST_CASE("a bzImage setup_sects that is not sane or leaves no kernel is rejected", "[firmware]") {
    BzImageBuilder huge;
    huge.setup_sects = 64;
    REQUIRE_THROWS_WITH(
        x86::parse_bzimage(huge.build()),
        "kernel: bzImage setup_sects 64 is not sane (the real-mode code is at most 32 KiB: 63 "
        "sectors)");
    // setup_sects 40 claims 20.5 KiB of setup in a file that has 4.5 KiB plus 1 KiB of kernel.
    BzImageBuilder b;
    b.setup_sects = 8;
    b.protected_mode_size = 0x400;
    b.syssize_bytes = 0x400;
    auto image = b.build();
    put<std::uint8_t>(image, 0x1f1, 40);
    REQUIRE_THROWS_WITH(
        x86::parse_bzimage(image),
        "kernel: bzImage setup (40 sectors, 20992 bytes) leaves no protected-mode kernel in the "
        "5632-byte file");
    // The 64-bit entry at 0x200 must lie inside the protected-mode kernel.
    b.protected_mode_size = b.syssize_bytes = 0x200;
    REQUIRE_THROWS_WITH(x86::parse_bzimage(b.build()), StartsWith("kernel: bzImage setup (8 sectors"));
}

TEST_CASE("a bzImage setup_sects of 0 means 4", "[firmware]") {
    BzImageBuilder b;
    b.setup_sects = 0;
    auto const image = b.build();
    auto const parsed = x86::parse_bzimage(image);
    CHECK(parsed.protected_mode.data() == image.data() + 5 * 512);
    CHECK(parsed.protected_mode.size() == b.protected_mode_size);
}

TEST_CASE("a bzImage shorter than its header says is rejected as truncated", "[firmware]") {
    BzImageBuilder b;
    b.syssize_bytes = b.protected_mode_size + 16;
    REQUIRE_THROWS_WITH(
        x86::parse_bzimage(b.build()),
        "kernel: bzImage is truncated: the header says the protected-mode kernel is 65552 bytes, "
        "the file holds 65536");
    // Up to 15 bytes of the last paragraph may be missing (syssize rounds up).
    b.syssize_bytes = b.protected_mode_size;
    b.protected_mode_size -= 15;
    CHECK_NOTHROW(x86::parse_bzimage(b.build()));
}

TEST_CASE("every truncation of a bzImage's setup is rejected without reading past it", "[firmware]") {
    auto const memory = ram();
    auto const image = BzImageBuilder{}.build();
    for (std::size_t length = 0; length <= BzImageBuilder{}.setup_size() + 0x200; ++length) {
        INFO("length " << length);
        std::vector<std::byte> const truncated(image.begin(),
                                               image.begin() + static_cast<std::ptrdiff_t>(length));
        REQUIRE_THROWS_AS(boot(memory, truncated), Error);
    }
}

TEST_CASE("a bzImage setup header that is too short or has a negative length is rejected", "[firmware]") {
    BzImageBuilder short_header;
    short_header.jump = 0x60;  // ends at 0x262, inside init_size
    REQUIRE_THROWS_WITH(x86::parse_bzimage(short_header.build()),
                        "kernel: bzImage setup header ends at 0x262; protocol 2.12 needs it to reach 0x268");
    BzImageBuilder negative;
    negative.jump = 0x80;
    REQUIRE_THROWS_WITH(x86::parse_bzimage(negative.build()),
                        "kernel: bzImage setup header length (jump offset 0x80) is negative");
    BzImageBuilder longest;
    longest.jump = 0x7f;  // the most the jump reaches: copied into the zero page's spare room
    CHECK(x86::parse_bzimage(longest.build()).setup_header.size() == 0x281 - 0x1f1);
}

TEST_CASE("a bzImage whose init_size does not fit in guest RAM is rejected", "[firmware]") {
    auto const memory = ram(20 * MiB);
    // Runs at 16 MiB (pref_address) and needs 8 MiB from there.
    REQUIRE_THROWS_WITH(boot(memory, BzImageBuilder{}.build()),
                        "kernel: needs 24 MiB of RAM to decompress, the guest has 20");
    CHECK_NOTHROW(boot(ram(24 * MiB), BzImageBuilder{}.build()));
}

TEST_CASE("a bzImage's runtime start follows relocatable_kernel, kernel_alignment and pref_address",
          "[firmware]") {
    BzImageBuilder b;
    CHECK(x86::parse_bzimage(b.build()).runtime_start == GuestAddress{0x100'0000});
    b.pref_address = 0x10'0000;  // 1 MiB aligned up to 2 MiB
    CHECK(x86::parse_bzimage(b.build()).runtime_start == GuestAddress{0x20'0000});
    b.relocatable = 0;
    b.pref_address = 0x300'0000;
    CHECK(x86::parse_bzimage(b.build()).runtime_start == GuestAddress{0x300'0000});
    b.pref_address = 0x8'0000;
    REQUIRE_THROWS_WITH(x86::parse_bzimage(b.build()),
                        "kernel: bzImage wants to run at 0x80000, below 0x100000");
    b.relocatable = 1;
    b.kernel_alignment = 0x30'0000;
    REQUIRE_THROWS_WITH(x86::parse_bzimage(b.build()),
                        "kernel: bzImage kernel_alignment 0x300000 is not a power of two");
    b.kernel_alignment = 0;
    REQUIRE_THROWS_AS(x86::parse_bzimage(b.build()), Error);
}

TEST_CASE("a bzImage's runtime range that wraps around 2^64 is rejected", "[firmware]") {
    BzImageBuilder b;
    b.relocatable = 0;
    b.pref_address = UINT64_MAX - 0x1000;
    REQUIRE_THROWS_WITH(x86::parse_bzimage(b.build()), StartsWith("kernel: bzImage runtime range"));
}

TEST_CASE("a command line longer than the bzImage's cmdline_size is rejected", "[firmware]") {
    auto const memory = ram();
    BzImageBuilder b;
    b.cmdline_size = 16;
    REQUIRE_THROWS_WITH(boot(memory, b.build(), std::string(17, 'x')),
                        "cmdline: 17 bytes, the kernel accepts at most 16");
    CHECK_NOTHROW(boot(memory, b.build(), std::string(16, 'x')));
}

TEST_CASE("the PVH entry is refused for a bzImage", "[firmware]") {
    REQUIRE_THROWS_WITH(boot(ram(), BzImageBuilder{}.build(), "", x86::EntryProtocol::pvh),
                        StartsWith("kernel: no PVH entry note in a bzImage"));
    CHECK(std::string(boot(ram(), BzImageBuilder{}.build(), "", x86::EntryProtocol::linux64).protocol) ==
          "linux64 (bzImage)");
}
