#include "firmware/elf_loader.hpp"

#include <elf.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <span>
#include <vector>

#include "tests/unit/firmware/elf_builder.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"

using kvmlet::Error;
using kvmlet::GuestAddress;
using kvmlet::GuestMemory;
using kvmlet::MiB;
using kvmlet::RamRange;
using kvmlet::firmware::load_elf;
using kvmlet::test::ElfBuilder;
using kvmlet::test::flat_ram;
using kvmlet::test::guest_bytes;
using kvmlet::test::pattern;

namespace {

constexpr GuestAddress firmware_end{0x10000};

// A tiny guest: code at 1 MiB, data plus bss at 1 MiB + 64 KiB, entry at the code.
ElfBuilder tiny_guest() {
    ElfBuilder b;
    b.entry(0x100000).segment(0x100000, 0x100000, pattern(100, 1), 100);
    b.segment(0x110000, 0x110000, pattern(50, 2), 0x2000);
    return b;
}

GuestMemory ram(std::uint64_t size = 4 * MiB) {
    return flat_ram(size);
}

void fill(GuestMemory const& memory, std::byte value) {
    auto const all = memory.slice(GuestAddress{0}, memory.total_size());
    REQUIRE(all);
    std::fill(all->begin(), all->end(), value);
}

}  // namespace

TEST_CASE("an ELF executable's segments land at their physical addresses with bss zeroed", "[firmware]") {
    auto const memory = ram();
    fill(memory, std::byte{0xaa});
    auto const kernel = load_elf(memory, tiny_guest().build(), firmware_end);

    CHECK(guest_bytes(memory, 0x100000, 100) == pattern(100, 1));
    CHECK(guest_bytes(memory, 0x110000, 50) == pattern(50, 2));
    auto const bss = guest_bytes(memory, 0x110000 + 50, 0x2000 - 50);
    CHECK(std::all_of(bss.begin(), bss.end(), [](std::byte b) { return b == std::byte{0}; }));
    CHECK(guest_bytes(memory, 0x112000, 1)[0] == std::byte{0xaa});  // nothing past p_memsz
    CHECK(kernel.entry == GuestAddress{0x100000});
    CHECK(kernel.start == GuestAddress{0x100000});
    CHECK(kernel.end == GuestAddress{0x112000});
    CHECK(kernel.notes.empty());
}

TEST_CASE("a vmlinux-like entry point is translated from virtual to physical", "[firmware]") {
    auto const memory = ram(32 * MiB);
    ElfBuilder b;
    b.entry(0xffff'ffff'8100'0040).segment(0xffff'ffff'8100'0000, 0x100'0000, pattern(0x80, 3), 0x1000);
    auto const kernel = load_elf(memory, b.build(), firmware_end);
    CHECK(kernel.entry == GuestAddress{0x100'0040});
    CHECK(kernel.start == GuestAddress{0x100'0000});
    CHECK(kernel.end == GuestAddress{0x100'1000});
    CHECK(guest_bytes(memory, 0x100'0000, 0x80) == pattern(0x80, 3));
}

TEST_CASE("a vmlinux entry point that is already physical is taken as it is", "[firmware]") {
    // Linux's vmlinux: ENTRY(phys_startup_64), so e_entry = 0x1000000 while the text segment runs at
    // 0xffffffff81000000; the zero-based per-CPU segment shows the virtual lookup runs first.
    auto const memory = ram(64 * MiB);
    ElfBuilder b;
    b.entry(0x100'0000).segment(0xffff'ffff'8100'0000, 0x100'0000, pattern(0x80, 3), 0x20'0000);
    b.segment(0, 0x130'0000, pattern(0x10, 4), 0x3'4000);
    auto const kernel = load_elf(memory, b.build(), firmware_end);
    CHECK(kernel.entry == GuestAddress{0x100'0000});
    CHECK(kernel.start == GuestAddress{0x100'0000});
    CHECK(kernel.end == GuestAddress{0x133'4000});
}

TEST_CASE("a virtual entry point wins over a physical reading of the same number", "[firmware]") {
    // 0x1010 is inside segment 1's virtual range and segment 0's physical range.
    auto const memory = ram(64 * MiB);
    ElfBuilder b;
    b.entry(0x1010).segment(0x20'0000, 0x1000, pattern(0x40, 5), 0x1000);
    b.segment(0x1000, 0x30'0000, pattern(0x40, 6), 0x1000);
    auto const kernel = load_elf(memory, b.build(), GuestAddress{0});
    CHECK(kernel.entry == GuestAddress{0x30'0010});
}

TEST_CASE("the entry point may lie in any segment, including in its bss", "[firmware]") {
    auto const memory = ram();
    auto const kernel = load_elf(memory, tiny_guest().entry(0x111fff).build(), firmware_end);
    CHECK(kernel.entry == GuestAddress{0x111fff});
}

TEST_CASE("note segments are reported by their file range and not loaded", "[firmware]") {
    auto const memory = ram();
    auto b = tiny_guest();
    b.segment(0, 0, pattern(24, 4), 24, PT_NOTE);
    auto const image = b.build();
    auto const kernel = load_elf(memory, image, firmware_end);
    REQUIRE(kernel.notes.size() == 1);
    CHECK(kernel.notes[0].size == 24);
    CHECK(kernel.notes[0].offset == image.size() - 24);
}

TEST_CASE("segments with nothing in memory are skipped", "[firmware]") {
    auto const memory = ram();
    auto b = tiny_guest();
    b.segment(0, 0, {}, 0);  // would be in the firmware area if it occupied anything
    CHECK(load_elf(memory, b.build(), firmware_end).start == GuestAddress{0x100000});
}

TEST_CASE("is_elf recognises the ELF magic only", "[firmware]") {
    CHECK(kvmlet::firmware::is_elf(tiny_guest().build()));
    CHECK_FALSE(kvmlet::firmware::is_elf(pattern(64, 0)));
    CHECK_FALSE(kvmlet::firmware::is_elf({}));
}

TEST_CASE("an image without the ELF magic is rejected", "[firmware]") {
    auto const memory = ram();
    REQUIRE_THROWS_WITH(load_elf(memory, pattern(4096, 0), firmware_end), "kernel: not an ELF or bzImage");
    REQUIRE_THROWS_WITH(load_elf(memory, {}, firmware_end), "kernel: not an ELF or bzImage");
}

TEST_CASE("every truncation of the ELF header is rejected without reading past the image", "[firmware]") {
    auto const memory = ram();
    auto const image = tiny_guest().build();
    for (std::size_t length = 0; length < sizeof(Elf64_Ehdr); ++length) {
        INFO("length " << length);
        // A copy of exactly `length` bytes, so AddressSanitizer sees any read past the end.
        std::vector<std::byte> const truncated(image.begin(),
                                               image.begin() + static_cast<std::ptrdiff_t>(length));
        REQUIRE_THROWS_AS(load_elf(memory, truncated, firmware_end), Error);
        if (length >= SELFMAG)
            REQUIRE_THROWS_WITH(load_elf(memory, truncated, firmware_end),
                                Catch::Matchers::StartsWith("kernel: truncated ELF header"));
    }
}

TEST_CASE("an image truncated inside the program headers or data is rejected", "[firmware]") {
    auto const memory = ram();
    auto const image = tiny_guest().build();
    for (std::size_t length = sizeof(Elf64_Ehdr); length < image.size(); ++length) {
        INFO("length " << length);
        std::vector<std::byte> const truncated(image.begin(),
                                               image.begin() + static_cast<std::ptrdiff_t>(length));
        REQUIRE_THROWS_WITH(load_elf(memory, truncated, firmware_end),
                            Catch::Matchers::StartsWith("kernel: "));
    }
}

TEST_CASE("ELF images for other classes, byte orders, machines and types are rejected", "[firmware]") {
    auto const memory = ram();
    auto const with = [&](ElfBuilder::Tamper const& t) { return tiny_guest().build(t); };
    auto const load = [&](std::vector<std::byte> const& image) { load_elf(memory, image, firmware_end); };
    using Catch::Matchers::StartsWith;

    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_ident[EI_CLASS] = ELFCLASS32; })),
                        StartsWith("kernel: ELF is not 64-bit x86-64"));
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_machine = EM_AARCH64; })),
                        StartsWith("kernel: ELF is not 64-bit x86-64"));
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_ident[EI_DATA] = ELFDATA2MSB; })),
                        "kernel: ELF is not little-endian");
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_version = 2; })),
                        "kernel: unsupported ELF version 2");
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_type = ET_DYN; })),
                        StartsWith("kernel: ELF is position-independent (ET_DYN)"));
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_type = ET_REL; })),
                        "kernel: ELF type 1 is not an executable (ET_EXEC)");
}

TEST_CASE("a malformed program header table is rejected", "[firmware]") {
    auto const memory = ram();
    auto const with = [&](ElfBuilder::Tamper const& t) { return tiny_guest().build(t); };
    auto const load = [&](std::vector<std::byte> const& image) { load_elf(memory, image, firmware_end); };

    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_phentsize = 32; })),
                        "kernel: ELF program header size is 32 bytes, expected 56");
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_phnum = 129; })),
                        "kernel: too many program headers (129, at most 128)");
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_phnum = PN_XNUM; })),
                        "kernel: too many program headers (65535, at most 128)");
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_phnum = 0; })), "kernel: no loadable segments");
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_phoff = 1 << 20; })),
                        "kernel: program header table outside the file");
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_phnum = 100; })),
                        "kernel: program header table outside the file");
    // phoff + phnum * phentsize wraps around 2^64 to a small number.
    REQUIRE_THROWS_WITH(load(with([](auto& eh, auto) { eh.e_phoff = UINT64_MAX - 50; })),
                        "kernel: program header table outside the file");
}

TEST_CASE("segment data outside the file is rejected", "[firmware]") {
    auto const memory = ram();
    auto const with = [&](ElfBuilder::Tamper const& t) { return tiny_guest().build(t); };
    auto const load = [&](std::vector<std::byte> const& image) { load_elf(memory, image, firmware_end); };

    REQUIRE_THROWS_WITH(load(with([](auto&, auto ph) { ph[1].p_offset += 1; })),
                        "kernel: segment 1 data outside the file");
    REQUIRE_THROWS_WITH(load(with([](auto&, auto ph) { ph[0].p_offset = 1ull << 40; })),
                        "kernel: segment 0 data outside the file");
    // p_offset + p_filesz wraps around 2^64.
    REQUIRE_THROWS_WITH(load(with([](auto&, auto ph) {
                            ph[0].p_offset = UINT64_MAX - 10;
                            ph[0].p_filesz = ph[0].p_memsz = 100;
                        })),
                        "kernel: segment 0 data outside the file");
    REQUIRE_THROWS_WITH(load(with([](auto&, auto ph) { ph[1].p_filesz = ph[1].p_memsz + 1; })),
                        "kernel: segment 1 file size 0x2001 exceeds its memory size 0x2000");
}

TEST_CASE("segments outside guest RAM are rejected", "[firmware]") {
    auto const memory = ram(4 * MiB);
    auto const image_with = [](std::uint64_t paddr, std::uint64_t memsz) {
        ElfBuilder b;
        b.entry(paddr).segment(paddr, paddr, pattern(16, 5), memsz);
        return b.build();
    };
    auto const load = [&](std::vector<std::byte> const& image) { load_elf(memory, image, firmware_end); };

    REQUIRE_THROWS_WITH(load(image_with(8 * MiB, 0x1000)),
                        "kernel: segment 0 at [0x800000, 0x801000) is outside guest RAM");
    REQUIRE_THROWS_WITH(load(image_with(4 * MiB - 0x1000, 0x1001)),
                        "kernel: segment 0 at [0x3ff000, 0x400001) is outside guest RAM");
    REQUIRE_THROWS_WITH(load(image_with(0xffff'ffff'ffff'f000, 0x2000)),
                        "kernel: segment 0 at 0xfffffffffffff000 with size 0x2000 wraps around 2^64");
    CHECK_NOTHROW(load(image_with(4 * MiB - 0x1000, 0x1000)));  // ends exactly at the end of RAM
}

TEST_CASE("a segment spanning the gap between two RAM ranges is rejected", "[firmware]") {
    RamRange const ranges[] = {{GuestAddress{0}, 1 * MiB}, {GuestAddress{2 * MiB}, 1 * MiB}};
    auto const memory = GuestMemory::create(ranges);
    ElfBuilder b;
    b.entry(MiB - 0x1000).segment(MiB - 0x1000, MiB - 0x1000, pattern(16, 6), 0x2000);
    REQUIRE_THROWS_WITH(load_elf(memory, b.build(), firmware_end),
                        "kernel: segment 0 at [0xff000, 0x101000) is outside guest RAM");
}

TEST_CASE("a segment whose virtual range wraps around 2^64 is rejected", "[firmware]") {
    auto const memory = ram();
    auto const image = tiny_guest().build([](auto&, auto ph) { ph[0].p_vaddr = UINT64_MAX - 10; });
    REQUIRE_THROWS_WITH(load_elf(memory, image, firmware_end),
                        Catch::Matchers::StartsWith("kernel: segment 0 virtual address 0xfffffffffffffff5"));
}

TEST_CASE("overlapping segments are rejected and touching ones accepted", "[firmware]") {
    auto const memory = ram();
    ElfBuilder overlapping;
    overlapping.entry(0x100000).segment(0x100000, 0x100000, pattern(16, 7), 0x1000);
    overlapping.segment(0x200000, 0x200000, pattern(16, 8), 0x1000);
    overlapping.segment(0x300000, 0x100fff, pattern(16, 9), 0x1000);
    REQUIRE_THROWS_WITH(load_elf(memory, overlapping.build(), firmware_end),
                        "kernel: segments 0 and 2 overlap");

    ElfBuilder touching;
    touching.entry(0x100000).segment(0x100000, 0x100000, pattern(16, 7), 0x1000);
    touching.segment(0x101000, 0x101000, pattern(16, 8), 0x1000);
    CHECK(load_elf(memory, touching.build(), firmware_end).end == GuestAddress{0x102000});
}

TEST_CASE("a segment below the lowest allowed address is rejected", "[firmware]") {
    auto const memory = ram();
    ElfBuilder b;
    b.entry(0xf000).segment(0xf000, 0xf000, pattern(16, 10), 0x2000);
    REQUIRE_THROWS_WITH(
        load_elf(memory, b.build(), firmware_end),
        "kernel: segment 0 at [0xf000, 0x11000) overlaps kvmlet's firmware area [0x0, 0x10000)");
}

TEST_CASE("a segment touching any reserved range is rejected with that range's name", "[firmware]") {
    auto const memory = ram();
    kvmlet::firmware::ReservedRange const reserved[] = {
        {GuestAddress{0}, firmware_end, "kvmlet's firmware area"},
        {GuestAddress{0x9fc00}, GuestAddress{0x100000}, "the BIOS area"}};
    auto const image_at = [](std::uint64_t paddr, std::uint64_t size) {
        ElfBuilder b;
        b.entry(paddr).segment(paddr, paddr, pattern(1, 12), size);
        return b.build();
    };
    REQUIRE_THROWS_WITH(load_elf(memory, image_at(0x9f000, 0xc01), reserved),
                        "kernel: segment 0 at [0x9f000, 0x9fc01) overlaps the BIOS area [0x9fc00, 0x100000)");
    REQUIRE_THROWS_WITH(
        load_elf(memory, image_at(0xfffff, 1), reserved),
        "kernel: segment 0 at [0xfffff, 0x100000) overlaps the BIOS area [0x9fc00, 0x100000)");
    CHECK_NOTHROW(load_elf(memory, image_at(0x9f000, 0xc00), reserved));    // ends where the area starts
    CHECK_NOTHROW(load_elf(memory, image_at(0x100000, 0x1000), reserved));  // starts where it ends
    CHECK_NOTHROW(load_elf(memory, image_at(0x10000, 0x1000), reserved));
}

TEST_CASE("an entry point outside every loadable segment is rejected", "[firmware]") {
    auto const memory = ram();
    REQUIRE_THROWS_WITH(load_elf(memory, tiny_guest().entry(0x112000).build(), firmware_end),
                        "kernel: entry point 0x112000 is outside every loadable segment");
    REQUIRE_THROWS_WITH(load_elf(memory, tiny_guest().entry(0xfffff).build(), firmware_end),
                        "kernel: entry point 0xfffff is outside every loadable segment");
}

TEST_CASE("an image without loadable segments is rejected", "[firmware]") {
    auto const memory = ram();
    ElfBuilder b;
    b.entry(0x100000).segment(0x100000, 0x100000, pattern(16, 11), 16, PT_NOTE);
    REQUIRE_THROWS_WITH(load_elf(memory, b.build(), firmware_end), "kernel: no loadable segments");
}

TEST_CASE("a rejected image leaves guest RAM untouched", "[firmware]") {
    auto const memory = ram();
    fill(memory, std::byte{0x55});
    // Segment 0 is good; segment 1 is not, and is only found after segment 0 was checked.
    auto const image = tiny_guest().build([](auto&, auto ph) { ph[1].p_paddr = 64 * MiB; });
    REQUIRE_THROWS_AS(load_elf(memory, image, firmware_end), Error);
    CHECK(guest_bytes(memory, 0x100000, 1)[0] == std::byte{0x55});
}
