#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "firmware/x86_64/e820.hpp"
#include "firmware/x86_64/kernel_boot.hpp"
#include "firmware/x86_64/layout.hpp"
#include "firmware/x86_64/pvh_start_info.hpp"
#include "tests/unit/firmware/elf_builder.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"

using Catch::Matchers::StartsWith;
using kvmlet::Error;
using kvmlet::GuestMemory;
using kvmlet::KiB;
using kvmlet::MiB;
using kvmlet::test::ElfBuilder;
using kvmlet::test::guest;
using kvmlet::test::pattern;
using kvmlet::test::x86_ram;
namespace x86 = kvmlet::x86_64;

namespace {

constexpr std::uint32_t phys32_entry = 18;  // XEN_ELFNOTE_PHYS32_ENTRY

// One ELF note with the given header fields; the name and description are padded to 4 bytes.
std::vector<std::byte> note(std::uint32_t namesz, std::uint32_t descsz, std::uint32_t type,
                            std::string const& name, std::vector<std::byte> const& desc) {
    std::vector<std::byte> out(12);
    std::memcpy(out.data(), &namesz, 4);
    std::memcpy(out.data() + 4, &descsz, 4);
    std::memcpy(out.data() + 8, &type, 4);
    for (char c : name) out.push_back(static_cast<std::byte>(c));
    while (out.size() % 4) out.push_back(std::byte{0});
    out.insert(out.end(), desc.begin(), desc.end());
    while (out.size() % 4) out.push_back(std::byte{0});
    return out;
}

template <class T>
std::vector<std::byte> le(T value) {
    std::vector<std::byte> out(sizeof value);
    std::memcpy(out.data(), &value, sizeof value);
    return out;
}

std::vector<std::byte> pvh_note(std::uint64_t entry) {
    return note(4, 8, phys32_entry, std::string("Xen\0", 4), le(entry));
}

std::vector<std::byte> concat(std::vector<std::vector<std::byte>> const& parts) {
    std::vector<std::byte> out;
    for (auto const& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// A vmlinux-like ELF: 64-bit entry at 1 MiB, and a note segment (if any).
std::vector<std::byte> kernel_with_notes(std::vector<std::byte> const& notes) {
    ElfBuilder b;
    b.entry(0x100000).segment(0x100000, 0x100000, pattern(0x100, 1), 0x2000);
    if (!notes.empty()) b.segment(0, 0, notes, notes.size(), PT_NOTE);
    return b.build();
}

GuestMemory ram(std::uint64_t size = 64 * MiB) {
    return x86_ram(size);
}

x86::KernelBoot boot(GuestMemory const& memory, std::vector<std::byte> const& kernel,
                     x86::EntryProtocol entry = x86::EntryProtocol::automatic,
                     std::optional<std::span<std::byte const>> initrd = {}) {
    return x86::load_kernel(
        memory, {.kernel = kernel, .initrd = initrd, .cmdline = "console=hvc0", .cpus = 2, .entry = entry});
}

}  // namespace

TEST_CASE("an ELF with the PVH note enters in 32-bit protected mode with EBX at hvm_start_info",
          "[firmware]") {
    auto const memory = ram();
    auto const kernel = boot(memory, kernel_with_notes(pvh_note(0x100040)));
    CHECK(std::string(kernel.protocol) == "pvh");
    CHECK(kernel.cpu.rip == 0x100040);
    CHECK(kernel.cpu.rbx == x86::pvh_start_info_start.value);
    CHECK(kernel.cpu.cr0 == 0x11);  // PE | ET, paging off
    CHECK(kernel.cpu.cr4 == 0);
    CHECK(kernel.cpu.efer == 0);
    CHECK(kernel.cpu.cs.selector == 0x08);
    CHECK(kernel.cpu.cs.db == 1);
    CHECK(kernel.cpu.cs.l == 0);
    CHECK(kernel.cpu.ds.selector == 0x18);
    CHECK(kernel.cpu.ss.selector == 0x18);
}

TEST_CASE("hvm_start_info carries the command line, the memory map and the initrd as its module",
          "[firmware]") {
    auto const memory = ram();
    auto const initrd = pattern(3 * KiB, 7);
    auto const kernel = boot(memory, kernel_with_notes(pvh_note(0x100040)), x86::EntryProtocol::pvh, initrd);
    auto const info = guest<x86::HvmStartInfo>(memory, kernel.cpu.rbx);
    CHECK(info.magic == 0x336ec578);
    CHECK(info.version == 1);
    CHECK(info.cmdline_paddr == x86::cmdline_start.value);
    CHECK(info.rsdp_paddr == 0);

    REQUIRE(info.nr_modules == 1);
    auto const module = guest<x86::HvmModlistEntry>(memory, info.modlist_paddr);
    REQUIRE(kernel.initrd);
    CHECK(module.paddr == kernel.initrd->start.value);
    CHECK(module.size == initrd.size());
    CHECK(module.cmdline_paddr == 0);

    auto const expected = x86::e820_map(memory);
    REQUIRE(info.memmap_entries == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        auto const entry =
            guest<x86::HvmMemmapEntry>(memory, info.memmap_paddr + i * sizeof(x86::HvmMemmapEntry));
        std::uint64_t const addr = expected[i].addr, size = expected[i].size;
        std::uint32_t const type = expected[i].type;
        CHECK(entry.addr == addr);
        CHECK(entry.size == size);
        CHECK(entry.type == type);
        CHECK(entry.reserved == 0);
    }
}

TEST_CASE("hvm_start_info carries the caller's RSDP and reserved ranges", "[firmware]") {
    auto const memory = ram();
    auto const kernel = x86::load_kernel(memory, {.kernel = kernel_with_notes(pvh_note(0x100040)),
                                                  .initrd = {},
                                                  .cmdline = "",
                                                  .cpus = 1,
                                                  .entry = x86::EntryProtocol::pvh,
                                                  .acpi_rsdp = x86::acpi_tables_start,
                                                  .reserved = {{x86::pci_ecam_start, x86::pci_ecam_size}}});
    auto const info = guest<x86::HvmStartInfo>(memory, kernel.cpu.rbx);
    CHECK(info.rsdp_paddr == 0xe0000);
    REQUIRE(info.memmap_entries == 4);
    auto const last = guest<x86::HvmMemmapEntry>(memory, info.memmap_paddr + 3 * sizeof(x86::HvmMemmapEntry));
    CHECK(last.addr == 0xe000'0000);
    CHECK(last.size == 0x10'0000);
    CHECK(last.type == 2);
}

TEST_CASE("hvm_start_info has no module without an initrd", "[firmware]") {
    auto const memory = ram();
    auto const kernel = boot(memory, kernel_with_notes(pvh_note(0x100040)));
    auto const info = guest<x86::HvmStartInfo>(memory, kernel.cpu.rbx);
    CHECK(info.nr_modules == 0);
    CHECK(info.modlist_paddr == 0);
}

TEST_CASE("the PVH note is found among other notes, with a 4-byte address too", "[firmware]") {
    auto const notes =
        concat({note(4, 6, 6, std::string("Xen\0", 4), pattern(6, 1)),        // XEN_ELFNOTE_LOADER
                note(4, 20, 3, std::string("GNU\0", 4), pattern(20, 2)),      // a build ID
                note(6, 4, phys32_entry, std::string("Linux\0", 6), le(0u)),  // type 18, not Xen
                note(4, 4, phys32_entry, std::string("Xen\0", 4), le(0x100080u))});
    auto const memory = ram();
    auto const kernel = boot(memory, kernel_with_notes(notes));
    CHECK(std::string(kernel.protocol) == "pvh");
    CHECK(kernel.cpu.rip == 0x100080);
}

TEST_CASE("linux64 ignores the PVH note and automatic falls back to it without one", "[firmware]") {
    auto const memory = ram();
    auto const forced = boot(memory, kernel_with_notes(pvh_note(0x100040)), x86::EntryProtocol::linux64);
    CHECK(std::string(forced.protocol) == "linux64 (ELF)");
    CHECK(forced.cpu.rip == 0x100000);
    CHECK(forced.cpu.rsi == x86::zero_page_start.value);
    auto const plain =
        boot(memory, kernel_with_notes(note(4, 20, 3, std::string("GNU\0", 4), pattern(20, 2))));
    CHECK(std::string(plain.protocol) == "linux64 (ELF)");
}

TEST_CASE("the PVH entry is refused for an ELF without the note", "[firmware]") {
    auto const memory = ram();
    REQUIRE_THROWS_WITH(boot(memory, kernel_with_notes({}), x86::EntryProtocol::pvh),
                        "kernel: no PVH entry note (needs CONFIG_PVH)");
}

TEST_CASE("a PVH note with a description too short or too long for an address is rejected", "[firmware]") {
    auto const memory = ram();
    REQUIRE_THROWS_WITH(
        boot(memory, kernel_with_notes(note(4, 2, phys32_entry, std::string("Xen\0", 4), pattern(2, 1)))),
        "kernel: malformed PVH note: a 2-byte entry address, expected 4 or 8");
    REQUIRE_THROWS_WITH(
        boot(memory, kernel_with_notes(note(4, 12, phys32_entry, std::string("Xen\0", 4), pattern(12, 1)))),
        "kernel: malformed PVH note: a 12-byte entry address, expected 4 or 8");
    REQUIRE_THROWS_WITH(boot(memory, kernel_with_notes(pvh_note(0x1'0000'0000))),
                        "kernel: malformed PVH note: entry 0x100000000 is not a 32-bit address");
}

TEST_CASE("a PVH note whose sizes run past its segment is rejected", "[firmware]") {
    auto const memory = ram();
    auto namesz_overflow = pvh_note(0x100040);
    std::uint32_t const huge = 0xffff'ffff;
    std::memcpy(namesz_overflow.data(), &huge, 4);
    REQUIRE_THROWS_WITH(boot(memory, kernel_with_notes(namesz_overflow)),
                        StartsWith("kernel: malformed PVH note at"));
    auto descsz_overflow = pvh_note(0x100040);
    std::uint32_t const past_end = 9;  // 8 bytes are there
    std::memcpy(descsz_overflow.data() + 4, &past_end, 4);
    REQUIRE_THROWS_WITH(boot(memory, kernel_with_notes(descsz_overflow)),
                        StartsWith("kernel: malformed PVH note at"));
    // A broken note of another type hides whatever follows it, so it fails the image too.
    auto const broken_other = concat({note(4, 64, 6, std::string("Xen\0", 4), {}), pvh_note(0x100040)});
    REQUIRE_THROWS_WITH(boot(memory, kernel_with_notes(broken_other)),
                        StartsWith("kernel: malformed ELF note at"));
    REQUIRE_THROWS_WITH(boot(memory, kernel_with_notes(pattern(8, 1))),
                        StartsWith("kernel: malformed ELF note at file offset"));
}

TEST_CASE("a note segment outside the image is rejected", "[firmware]") {
    auto const memory = ram();
    ElfBuilder b;
    b.entry(0x100000).segment(0x100000, 0x100000, pattern(0x100, 1), 0x2000);
    b.segment(0, 0, pvh_note(0x100040), 24, PT_NOTE);
    auto const image = b.build([](auto&, auto ph) { ph[1].p_filesz = 4096; });
    REQUIRE_THROWS_WITH(boot(memory, image), "kernel: note segment 1 outside the file");
}

TEST_CASE("a PVH entry outside the loaded kernel is rejected", "[firmware]") {
    auto const memory = ram();
    REQUIRE_THROWS_WITH(boot(memory, kernel_with_notes(pvh_note(0x200000))),
                        "kernel: PVH entry 0x200000 is outside the loaded kernel [0x100000, 0x102000)");
}
