#include "firmware/x86_64/long_mode.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <optional>

#include "firmware/x86_64/layout.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"

using kvmlet::GiB;
using kvmlet::GuestAddress;
using kvmlet::GuestMemory;
using kvmlet::MiB;
using kvmlet::test::flat_ram;
using kvmlet::test::guest;
namespace x86 = kvmlet::x86_64;

namespace {

GuestMemory ram(std::uint64_t size = 1 * MiB) {
    return flat_ram(size);
}

std::uint64_t entry_at(GuestMemory const& memory, GuestAddress table, std::uint64_t index) {
    return guest<std::uint64_t>(memory, table.value + index * 8);
}

// Walks the tables the way the MMU does for a 2 MiB page (Intel SDM Vol. 3A §4.5); nullopt when
// some level is not present.
std::optional<std::uint64_t> translate(GuestMemory const& memory, std::uint64_t cr3, std::uint64_t linear) {
    constexpr std::uint64_t present = 1, large = 1 << 7, address_mask = 0x000f'ffff'ffff'f000;
    std::uint64_t const pml4e = entry_at(memory, GuestAddress{cr3}, (linear >> 39) & 0x1ff);
    if (!(pml4e & present)) return std::nullopt;
    std::uint64_t const pdpte = entry_at(memory, GuestAddress{pml4e & address_mask}, (linear >> 30) & 0x1ff);
    if (!(pdpte & present)) return std::nullopt;
    std::uint64_t const pde = entry_at(memory, GuestAddress{pdpte & address_mask}, (linear >> 21) & 0x1ff);
    if (!(pde & present) || !(pde & large)) return std::nullopt;
    return (pde & 0x000f'ffff'ffe0'0000) | (linear & (2 * MiB - 1));
}

}  // namespace

TEST_CASE("the boot CPU state enters 64-bit mode at the entry point with paging on", "[firmware]") {
    auto const memory = ram();
    auto const state = x86::setup_long_mode(memory, GuestAddress{0x100000});
    CHECK(state.rip == 0x100000);
    CHECK(state.rsp == x86::boot_stack_pointer.value);
    CHECK(state.rflags == 0x2);  // reserved bit 1 only; interrupts off
    CHECK(state.rsi == 0);
    CHECK(state.cr0 == 0x8000'0033);  // PG | NE | ET | MP | PE
    CHECK(state.cr3 == x86::pml4_start.value);
    CHECK(state.cr4 == 0x20);    // PAE
    CHECK(state.efer == 0x500);  // LMA | LME
}

TEST_CASE("the segment registers hold the flat Linux boot-protocol segments", "[firmware]") {
    auto const state = x86::setup_long_mode(ram(), GuestAddress{0x100000});
    CHECK(state.cs.selector == 0x10);
    CHECK(state.cs.l == 1);
    CHECK(state.cs.db == 0);
    CHECK(state.cs.limit == 0xffff'ffff);
    CHECK(state.cs.g == 1);
    for (auto const* s : {&state.ds, &state.es, &state.fs, &state.gs, &state.ss}) {
        CHECK(s->selector == 0x18);
        CHECK(s->type == 0x3);
        CHECK(s->present == 1);
        CHECK(s->s == 1);
    }
    CHECK(state.tr.type == 0xb);  // busy 64-bit TSS, as VM entry in long mode requires
    CHECK(state.tr.present == 1);
    CHECK(state.tr.s == 0);
}

TEST_CASE("the GDT in guest RAM matches the segment registers", "[firmware]") {
    auto const memory = ram();
    auto const state = x86::setup_long_mode(memory, GuestAddress{0x100000});
    CHECK(state.gdt.base == x86::gdt_start.value);
    CHECK(state.gdt.limit == 4 * 8 - 1);
    CHECK(entry_at(memory, x86::gdt_start, 0) == 0);
    CHECK(entry_at(memory, x86::gdt_start, 1) == 0x00cf'9b00'0000'ffff);  // 32-bit flat code, for PVH
    // The well-known flat descriptors: 64-bit code 0xa09b and data 0xc093 in access/flags form.
    CHECK(entry_at(memory, x86::gdt_start, state.cs.selector / 8) == 0x00af'9b00'0000'ffff);
    CHECK(entry_at(memory, x86::gdt_start, state.ds.selector / 8) == 0x00cf'9300'0000'ffff);
    CHECK(entry_at(memory, x86::gdt_start, state.cs.selector / 8) == x86::gdt_descriptor(state.cs));
    CHECK(entry_at(memory, x86::gdt_start, state.ss.selector / 8) == x86::gdt_descriptor(state.ss));
}

TEST_CASE("the IDT is empty so any exception triple-faults", "[firmware]") {
    auto const state = x86::setup_long_mode(ram(), GuestAddress{0x100000});
    CHECK(state.idt.base == x86::idt_start.value);
    CHECK(state.idt.limit == 0);
}

TEST_CASE("gdt_descriptor places every field where the SDM says", "[firmware]") {
    x86::Segment const s{.base = 0x1234'5678,
                         .limit = 0xa'bcde,
                         .selector = 0,
                         .type = 0x3,
                         .present = 1,
                         .dpl = 3,
                         .db = 1,
                         .s = 1,
                         .l = 0,
                         .g = 0};
    CHECK(x86::gdt_descriptor(s) == 0x124a'f334'5678'bcde);
}

TEST_CASE("the page tables identity-map the first 4 GiB with 2 MiB pages", "[firmware]") {
    auto const memory = ram();
    auto const state = x86::setup_long_mode(memory, GuestAddress{0x100000});
    CHECK(entry_at(memory, x86::pml4_start, 0) == (x86::pdpt_start.value | 0x3));
    CHECK(entry_at(memory, x86::pml4_start, 1) == 0);
    for (std::uint64_t i = 0; i < 4; ++i)
        CHECK(entry_at(memory, x86::pdpt_start, i) == ((x86::pd_start.value + i * 0x1000) | 0x3));
    CHECK(entry_at(memory, x86::pdpt_start, 4) == 0);
    // The PD entry for 3 GiB (the MMIO hole) maps 3 GiB: present, writable, PS.
    CHECK(entry_at(memory, GuestAddress{x86::pd_start.value + 3 * 0x1000}, 0) == (3 * GiB | 0x83));
    CHECK(entry_at(memory, GuestAddress{x86::pd_start.value + 3 * 0x1000}, 511) ==
          ((4 * GiB - 2 * MiB) | 0x83));

    for (std::uint64_t linear :
         std::array<std::uint64_t, 5>{0, 0x100000, 0x1234'5678, 3 * GiB + 0x1000, 4 * GiB - 1})
        CHECK(translate(memory, state.cr3, linear) == linear);
    CHECK_FALSE(translate(memory, state.cr3, 4 * GiB).has_value());
}

TEST_CASE("long mode setup fails cleanly when the tables do not fit in RAM", "[firmware]") {
    auto const memory = ram(0x1000);
    REQUIRE_THROWS_WITH(x86::setup_long_mode(memory, GuestAddress{0x100}),
                        "long mode: the PML4 at 0x9000 does not fit in guest RAM");
}

TEST_CASE("an entry point above the identity map is rejected", "[firmware]") {
    REQUIRE_THROWS_WITH(x86::setup_long_mode(ram(), GuestAddress{4 * GiB}),
                        "long mode: entry point 0x100000000 is above the identity-mapped 4 GiB");
}

TEST_CASE("the protected-mode state enters 32-bit code with paging off", "[firmware]") {
    auto const memory = ram();
    auto const state = x86::setup_protected_mode(memory, GuestAddress{0x1000850});
    CHECK(state.rip == 0x1000850);
    CHECK(state.cr0 == 0x11);  // ET | PE
    CHECK(state.cr3 == 0);
    CHECK(state.cr4 == 0);
    CHECK(state.efer == 0);
    CHECK(state.rflags == 0x2);
    CHECK(state.rbx == 0);
    CHECK(state.cs.selector == 0x08);
    CHECK(state.cs.db == 1);
    CHECK(state.cs.l == 0);
    CHECK(state.cs.base == 0);
    CHECK(state.cs.limit == 0xffff'ffff);
    for (auto const* s : {&state.ds, &state.es, &state.ss}) {
        CHECK(s->selector == 0x18);
        CHECK(s->db == 1);
        CHECK(s->limit == 0xffff'ffff);
    }
    CHECK(state.tr.type == 0xb);  // busy 32-bit TSS outside IA-32e mode
    CHECK(state.tr.limit == 0x67);
    CHECK(entry_at(memory, x86::gdt_start, 1) == x86::gdt_descriptor(state.cs));
    CHECK(entry_at(memory, x86::gdt_start, 3) == x86::gdt_descriptor(state.ds));
}

TEST_CASE("the protected-mode setup writes no page tables", "[firmware]") {
    auto const memory = ram();
    x86::setup_protected_mode(memory, GuestAddress{0x100000});
    CHECK(entry_at(memory, x86::pml4_start, 0) == 0);
}

TEST_CASE("a protected-mode entry point above 4 GiB is rejected", "[firmware]") {
    REQUIRE_THROWS_WITH(x86::setup_protected_mode(ram(), GuestAddress{4 * GiB}),
                        "protected mode: entry point 0x100000000 is not a 32-bit address");
}
