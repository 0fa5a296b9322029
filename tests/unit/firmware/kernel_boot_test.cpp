#include "firmware/x86_64/kernel_boot.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "firmware/x86_64/layout.hpp"
#include "firmware/x86_64/reset_vector.hpp"
#include "tests/unit/firmware/elf_builder.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/mapped_file.hpp"

using Catch::Matchers::StartsWith;
using kvmlet::GuestAddress;
using kvmlet::GuestMemory;
using kvmlet::MiB;
using kvmlet::test::ElfBuilder;
using kvmlet::test::guest;
using kvmlet::test::pattern;
using kvmlet::test::x86_ram;
namespace x86 = kvmlet::x86_64;

namespace {

GuestMemory ram(std::uint64_t size = 64 * MiB) {
    return x86_ram(size);
}

std::vector<std::byte> tiny_guest() {
    ElfBuilder b;
    b.entry(0x100000).segment(0x100000, 0x100000, pattern(100, 1), 100);
    b.segment(0x10000, 0x10000, pattern(64, 2), 0x1000);  // an SMP trampoline below 1 MiB
    return b.build();
}

x86::KernelBoot boot(GuestMemory const& memory, std::vector<std::byte> const& kernel,
                     std::string cmdline = "") {
    return x86::load_kernel(memory, {.kernel = kernel,
                                     .initrd = {},
                                     .cmdline = std::move(cmdline),
                                     .cpus = 1,
                                     .entry = x86::EntryProtocol::automatic});
}

std::string guest_string(GuestMemory const& memory, std::uint64_t at, std::size_t max) {
    std::vector<char> bytes(max);
    REQUIRE(memory.read_bytes(GuestAddress{at}, std::as_writable_bytes(std::span{bytes})));
    return std::string(bytes.data(), strnlen(bytes.data(), max));
}

}  // namespace

TEST_CASE("an ELF kernel enters 64-bit code at its entry with RSI at the zero page", "[firmware]") {
    auto const memory = ram();
    auto const kernel = boot(memory, tiny_guest());
    CHECK(std::string(kernel.protocol) == "linux64 (ELF)");
    CHECK(kernel.cpu.rip == 0x100000);
    CHECK(kernel.cpu.rsi == x86::zero_page_start.value);
    CHECK(kernel.cpu.rbx == 0);
    CHECK(kernel.cpu.cs.selector == 0x10);
    CHECK(kernel.cpu.cr3 == x86::pml4_start.value);
    CHECK(kernel.kernel_start == GuestAddress{0x10000});
    CHECK(kernel.kernel_end == GuestAddress{0x100064});
}

TEST_CASE("an ELF kernel's zero page has a made-up header, the command line and e820", "[firmware]") {
    auto const memory = ram();
    boot(memory, tiny_guest(), "console=ttyS0 reboot=k");
    std::uint64_t const zp = x86::zero_page_start.value;
    CHECK(guest<std::uint16_t>(memory, zp + 0x1fe) == 0xaa55);
    CHECK(guest<std::uint32_t>(memory, zp + 0x202) == 0x53726448);
    CHECK(guest<std::uint16_t>(memory, zp + 0x206) == 0x020c);
    CHECK(guest<std::uint8_t>(memory, zp + 0x210) == 0xff);
    CHECK(guest<std::uint32_t>(memory, zp + 0x238) == 2047);  // cmdline_size
    CHECK(guest<std::uint32_t>(memory, zp + 0x228) == x86::cmdline_start.value);
    CHECK(guest_string(memory, x86::cmdline_start.value, 4096) == "console=ttyS0 reboot=k");
    REQUIRE(guest<std::uint8_t>(memory, zp + 0x1e8) == 3);
    CHECK(guest<std::uint64_t>(memory, zp + 0x2d0 + 2 * 20) == 0x100000);      // third entry: addr
    CHECK(guest<std::uint64_t>(memory, zp + 0x2d0 + 2 * 20 + 8) == 63 * MiB);  // size
    CHECK(guest<std::uint32_t>(memory, zp + 0x2d0 + 2 * 20 + 16) == 1);        // RAM
    CHECK(guest<std::uint32_t>(memory, zp + 0x2d0 + 20 + 16) == 2);            // second: reserved
}

TEST_CASE("every kernel gets the MP table for its CPUs", "[firmware]") {
    auto const memory = ram();
    x86::load_kernel(memory, {.kernel = tiny_guest(), .initrd = {}, .cmdline = "", .cpus = 4, .entry = {}});
    CHECK(guest<std::uint32_t>(memory, x86::mp_floating_pointer_start.value) == 0x5f504d5f);  // "_MP_"
    CHECK(guest<std::uint16_t>(memory, x86::mp_config_table_start.value + 34) == 4 + 1 + 1 + 16 + 2);
}

TEST_CASE("every kernel finds an i8042 reset at the real-mode reset vector, in reserved memory",
          "[firmware]") {
    auto const memory = ram();
    x86::load_kernel(memory, {.kernel = tiny_guest(), .initrd = {}, .cmdline = "", .cpus = 1, .entry = {}});
    std::array<std::uint8_t, x86::reset_vector_code.size()> code{};
    REQUIRE(memory.read_bytes(x86::reset_vector_start, std::as_writable_bytes(std::span{code})));
    CHECK(code == x86::reset_vector_code);
    CHECK(x86::reset_vector_start.value == 0xf0000 + 0xfff0);  // F000:FFF0
    CHECK(x86::reset_vector_start.value >= x86::bios_area_start.value);
    CHECK(x86::reset_vector_start.value + code.size() <= x86::bios_area_end.value);
}

TEST_CASE("the reset vector needs guest RAM below 1 MiB", "[firmware]") {
    kvmlet::RamRange const high[] = {{GuestAddress{2 * MiB}, 4 * MiB}};
    CHECK_THROWS_AS(x86::write_reset_vector(GuestMemory::create(high)), kvmlet::Error);
}

TEST_CASE("without an RSDP the zero page's acpi_rsdp_addr stays 0", "[firmware]") {
    auto const memory = ram();
    boot(memory, tiny_guest());
    CHECK(guest<std::uint64_t>(memory, x86::zero_page_start.value + 0x070) == 0);
}

TEST_CASE("the caller's RSDP goes into the zero page and its reserved ranges into e820", "[firmware]") {
    auto const memory = ram();
    x86::load_kernel(memory, {.kernel = tiny_guest(),
                              .initrd = {},
                              .cmdline = "",
                              .cpus = 1,
                              .entry = {},
                              .acpi_rsdp = x86::acpi_tables_start,
                              .reserved = {{x86::pci_ecam_start, x86::pci_ecam_size}}});
    std::uint64_t const zp = x86::zero_page_start.value;
    CHECK(guest<std::uint64_t>(memory, zp + 0x070) == 0xe0000);
    REQUIRE(guest<std::uint8_t>(memory, zp + 0x1e8) == 4);
    CHECK(guest<std::uint64_t>(memory, zp + 0x2d0 + 3 * 20) == 0xe000'0000);    // fourth entry: addr
    CHECK(guest<std::uint64_t>(memory, zp + 0x2d0 + 3 * 20 + 8) == 0x10'0000);  // size
    CHECK(guest<std::uint32_t>(memory, zp + 0x2d0 + 3 * 20 + 16) == 2);         // reserved
}

TEST_CASE("a vmlinux with a physical e_entry boots at that address", "[firmware]") {
    auto const memory = ram();
    ElfBuilder b;
    b.entry(0x100'0000).segment(0xffff'ffff'8100'0000, 0x100'0000, pattern(0x200, 3), 0x10'0000);
    auto const kernel = boot(memory, b.build());
    CHECK(kernel.cpu.rip == 0x100'0000);
    CHECK(kernel.kernel_end == GuestAddress{0x110'0000});
}

TEST_CASE("an ELF kernel's command line is limited to Linux's COMMAND_LINE_SIZE", "[firmware]") {
    auto const memory = ram();
    REQUIRE_THROWS_WITH(boot(memory, tiny_guest(), std::string(2048, 'x')),
                        "cmdline: 2048 bytes, the kernel accepts at most 2047");
    CHECK_NOTHROW(boot(memory, tiny_guest(), std::string(2047, 'x')));
    CHECK(guest<std::uint8_t>(memory, x86::cmdline_start.value + 2047) == 0);
}

TEST_CASE("a command line with a NUL byte is rejected", "[firmware]") {
    REQUIRE_THROWS_WITH(boot(ram(), tiny_guest(), std::string("a\0b", 3)), "cmdline: a NUL byte at offset 1");
}

TEST_CASE("an ELF segment in the reserved BIOS area is rejected", "[firmware]") {
    ElfBuilder b;
    b.entry(0x100000).segment(0x100000, 0x100000, pattern(16, 1), 16);
    b.segment(0xf0000, 0xf0000, pattern(16, 2), 16);
    REQUIRE_THROWS_WITH(boot(ram(), b.build()),
                        "kernel: segment 1 at [0xf0000, 0xf0010) overlaps the BIOS area [0x9fc00, 0x100000)");
}

TEST_CASE("an ELF kernel's initrd goes above the kernel, below 2 GiB", "[firmware]") {
    auto const memory = ram(3 * kvmlet::GiB);
    auto const initrd = pattern(4096, 8);
    auto const kernel = x86::load_kernel(
        memory, {.kernel = tiny_guest(), .initrd = initrd, .cmdline = "", .cpus = 1, .entry = {}});
    REQUIRE(kernel.initrd);
    CHECK(kernel.initrd->start == GuestAddress{0x8000'0000 - 4096});
    CHECK(guest<std::uint32_t>(memory, x86::zero_page_start.value + 0x218) == 0x8000'0000 - 4096);
}

TEST_CASE("an image that is neither ELF nor bzImage is rejected", "[firmware]") {
    REQUIRE_THROWS_WITH(boot(ram(), pattern(8192, 3)), "kernel: not an ELF or bzImage");
}

// Real kernels from guest-images/ (issue 3), when they have been built: skipped otherwise.
TEST_CASE("real kernels from the guest-image cache load", "[firmware][linux-image]") {
    char const* cache = std::getenv("KVMLET_CACHE");
    char const* home = std::getenv("HOME");
    std::filesystem::path const root =
        cache ? std::filesystem::path(cache) : std::filesystem::path(home ? home : "/") / ".cache/kvmlet";
    auto const bzimage = root / "minimal/bzImage";
    auto const vmlinux = root / "minimal/vmlinux";
    if (!std::filesystem::exists(bzimage) && !std::filesystem::exists(vmlinux)) {
        WARN("no kernels in " << (root / "minimal").string() << ": run guest-images/build minimal");
        return;
    }
    auto const memory = ram(256 * MiB);
    if (std::filesystem::exists(bzimage)) {
        kvmlet::MappedFile const image(bzimage, "kernel");
        auto const kernel = x86::load_kernel(
            memory,
            {.kernel = image.bytes(), .initrd = {}, .cmdline = "console=ttyS0", .cpus = 2, .entry = {}});
        CHECK(std::string(kernel.protocol) == "linux64 (bzImage)");
        CHECK(kernel.cpu.rip == 0x100200);
    }
    if (std::filesystem::exists(vmlinux)) {
        kvmlet::MappedFile const image(vmlinux, "kernel");
        for (auto const entry : {x86::EntryProtocol::linux64, x86::EntryProtocol::pvh}) {
            auto const kernel = x86::load_kernel(memory, {.kernel = image.bytes(),
                                                          .initrd = {},
                                                          .cmdline = "console=ttyS0",
                                                          .cpus = 2,
                                                          .entry = entry});
            CHECK(kernel.cpu.rip >= kernel.kernel_start.value);
            CHECK(kernel.cpu.rip < kernel.kernel_end.value);
        }
    }
}
