#include "firmware/x86_64/long_mode.hpp"

#include <fmt/format.h>

#include <array>
#include <cstddef>
#include <string_view>

#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

// Intel SDM Vol. 3A §2.5 "Control Registers" (Figure 2-7).
constexpr std::uint64_t cr0_pe = 1ull << 0;   // protection enable
constexpr std::uint64_t cr0_mp = 1ull << 1;   // monitor coprocessor: WAIT honours CR0.TS
constexpr std::uint64_t cr0_et = 1ull << 4;   // extension type, hardwired to 1 on modern CPUs
constexpr std::uint64_t cr0_ne = 1ull << 5;   // native x87 error reporting, not the PC-style IRQ 13
constexpr std::uint64_t cr0_pg = 1ull << 31;  // paging
constexpr std::uint64_t cr4_pae = 1ull << 5;  // physical address extension, required for long mode
// Intel SDM Vol. 3A §2.2.1 "Extended Feature Enable Register" (IA32_EFER, MSR 0xc000'0080).
constexpr std::uint64_t efer_lme = 1ull << 8;   // long mode enable
constexpr std::uint64_t efer_lma = 1ull << 10;  // long mode active (set by the CPU; KVM wants it in sregs)
// Intel SDM Vol. 1 §3.4.3 "EFLAGS Register": bit 1 is reserved and reads as 1. IF stays clear.
constexpr std::uint64_t rflags_reserved_one = 1ull << 1;

// Intel SDM Vol. 3A §4.5 "4-Level Paging": formats of a PML4E, a PDPTE, and a PDE that maps a 2 MiB page.
constexpr std::uint64_t pte_present = 1ull << 0;
constexpr std::uint64_t pte_writable = 1ull << 1;
constexpr std::uint64_t pde_large_page = 1ull << 7;  // PS: this PDE maps a 2 MiB page
constexpr std::size_t page_table_entries = 512;
constexpr std::uint64_t page_table_size = 4 * KiB;
constexpr std::uint64_t large_page_size = 2 * MiB;
constexpr std::uint64_t page_directory_span = page_table_entries * large_page_size;  // 1 GiB
constexpr std::size_t page_directory_count = identity_mapped_size / page_directory_span;
using PageTable = std::array<std::uint64_t, page_table_entries>;
static_assert(sizeof(PageTable) == page_table_size);

// Intel SDM Vol. 3A §3.4.5.1 Table 3-1 (code/data types, "accessed" set so the CPU never writes
// the GDT, and because VM entry requires it) and §3.5 Table 3-2 (system types).
constexpr std::uint8_t type_code_execute_read_accessed = 0xb;
constexpr std::uint8_t type_data_read_write_accessed = 0x3;
constexpr std::uint8_t type_tss_64_busy = 0xb;
constexpr std::uint32_t flat_limit = 0xffff'ffff;
// A 64-bit TSS is 104 bytes (SDM Vol. 3A "Task Management in 64-bit Mode").
constexpr std::uint32_t tss_64_limit = 0x67;
constexpr unsigned granularity_shift = 12;  // g = 1: the descriptor's limit counts 4 KiB units

// Intel SDM Vol. 3A §3.4.5 "Segment Descriptors", Figure 3-8: bit positions in the descriptor.
constexpr unsigned desc_base_low_shift = 16;  // base 23:0 at bits 39:16
constexpr unsigned desc_type_shift = 40;      // bits 43:40
constexpr unsigned desc_s_shift = 44;
constexpr unsigned desc_dpl_shift = 45;  // bits 46:45
constexpr unsigned desc_present_shift = 47;
constexpr unsigned desc_limit_high_shift = 48;  // limit 19:16 at bits 51:48
constexpr unsigned desc_l_shift = 53;
constexpr unsigned desc_db_shift = 54;
constexpr unsigned desc_g_shift = 55;
constexpr unsigned desc_base_high_shift = 56;  // base 31:24 at bits 63:56

constexpr std::size_t gdt_entries = 4;  // null, 32-bit code 0x08, 64-bit code 0x10, data 0x18
using Gdt = std::array<std::uint64_t, gdt_entries>;
static_assert(boot_code32_selector / sizeof(std::uint64_t) == 1);
static_assert(boot_code_selector / sizeof(std::uint64_t) == 2);
static_assert(boot_data_selector / sizeof(std::uint64_t) == 3);
static_assert(gdt_start.value + sizeof(Gdt) <= idt_start.value);
static_assert(pml4_start.value + page_table_size <= pdpt_start.value);
static_assert(pdpt_start.value + page_table_size <= pd_start.value);
static_assert(pd_start.value + page_directory_count * page_table_size <= firmware_end.value);

constexpr Segment boot_code_segment{.base = 0,
                                    .limit = flat_limit,
                                    .selector = boot_code_selector,
                                    .type = type_code_execute_read_accessed,
                                    .present = 1,
                                    .dpl = 0,
                                    .db = 0,  // must be 0 when l = 1
                                    .s = 1,
                                    .l = 1,
                                    .g = 1};
constexpr Segment boot_code32_segment{.base = 0,
                                      .limit = flat_limit,
                                      .selector = boot_code32_selector,
                                      .type = type_code_execute_read_accessed,
                                      .present = 1,
                                      .dpl = 0,
                                      .db = 1,  // 32-bit default operand size
                                      .s = 1,
                                      .l = 0,
                                      .g = 1};
constexpr Segment boot_data_segment{.base = 0,
                                    .limit = flat_limit,
                                    .selector = boot_data_selector,
                                    .type = type_data_read_write_accessed,
                                    .present = 1,
                                    .dpl = 0,
                                    .db = 1,
                                    .s = 1,
                                    .l = 0,
                                    .g = 1};
// VM entry requires a usable TR holding a busy TSS (SDM Vol. 3C "Checks on Guest Segment
// Registers"): type 0xb is a busy 64-bit TSS in IA-32e mode and a busy 32-bit TSS outside it, which
// is also what the PVH entry state asks for (base 0, limit 0x67). The 4-entry GDT has no room for a
// TSS descriptor, so selector 0 names none: the CPU only reads the TSS on a privilege change, an
// IST switch or a task switch, which cannot happen before the guest loads its own IDT and TR.
constexpr Segment boot_task_segment{.base = 0,
                                    .limit = tss_64_limit,
                                    .selector = 0,
                                    .type = type_tss_64_busy,
                                    .present = 1,
                                    .dpl = 0,
                                    .db = 0,
                                    .s = 0,
                                    .l = 0,
                                    .g = 0};

template <class T>
void write_table(GuestMemory const& memory, GuestAddress at, T const& table, std::string_view what) {
    if (!memory.write(at, table))
        throw Error(fmt::format("long mode: the {} at {:#x} does not fit in guest RAM", what, at.value));
}

void write_gdt(GuestMemory const& memory) {
    Gdt const gdt{0, gdt_descriptor(boot_code32_segment), gdt_descriptor(boot_code_segment),
                  gdt_descriptor(boot_data_segment)};
    write_table(memory, gdt_start, gdt, "GDT");
}

// Identity map of [0, 4 GiB) with 2 MiB pages: one PML4 entry, four PDPT entries, four full PDs.
void write_page_tables(GuestMemory const& memory) {
    PageTable pml4{};
    pml4[0] = pdpt_start.value | pte_present | pte_writable;
    write_table(memory, pml4_start, pml4, "PML4");

    PageTable pdpt{};
    for (std::size_t i = 0; i < page_directory_count; ++i)
        pdpt[i] = (pd_start.value + i * page_table_size) | pte_present | pte_writable;
    write_table(memory, pdpt_start, pdpt, "PDPT");

    for (std::size_t d = 0; d < page_directory_count; ++d) {
        PageTable pd{};
        for (std::size_t e = 0; e < page_table_entries; ++e)
            pd[e] =
                (d * page_directory_span + e * large_page_size) | pte_present | pte_writable | pde_large_page;
        write_table(memory, GuestAddress{pd_start.value + d * page_table_size}, pd, "page directory");
    }
}

// What both entry modes share: flat data segments, the GDT, an empty IDT, a stack, interrupts off.
BootCpuState common_cpu_state(GuestAddress entry) {
    BootCpuState state;
    state.rip = entry.value;
    state.rsp = boot_stack_pointer.value;
    state.rflags = rflags_reserved_one;
    state.ds = state.es = state.fs = state.gs = state.ss = boot_data_segment;
    state.tr = boot_task_segment;
    state.gdt = DescriptorTable{gdt_start.value, static_cast<std::uint16_t>(sizeof(Gdt) - 1)};
    // Limit 0: every vector lies outside the IDT, so any exception escalates to a triple fault,
    // which tiny guests use to report failure.
    state.idt = DescriptorTable{idt_start.value, 0};
    return state;
}

BootCpuState long_mode_cpu_state(GuestAddress entry) {
    BootCpuState state = common_cpu_state(entry);
    state.cr0 = cr0_pe | cr0_mp | cr0_et | cr0_ne | cr0_pg;
    state.cr3 = pml4_start.value;
    state.cr4 = cr4_pae;
    state.efer = efer_lme | efer_lma;
    state.cs = boot_code_segment;
    return state;
}

// The PVH entry state: "cr0: bit 0 (PE) must be set. All the other writeable bits are cleared";
// CR4 clear; no EFER bits (ET is not writable: it reads as 1 on every CPU KVM runs on).
BootCpuState protected_mode_cpu_state(GuestAddress entry) {
    BootCpuState state = common_cpu_state(entry);
    state.cr0 = cr0_pe | cr0_et;
    state.cs = boot_code32_segment;
    return state;
}

}  // namespace

std::uint64_t gdt_descriptor(Segment const& segment) noexcept {
    std::uint64_t const limit = segment.g ? segment.limit >> granularity_shift : segment.limit;
    std::uint64_t descriptor = limit & 0xffff;
    descriptor |= (segment.base & 0xff'ffff) << desc_base_low_shift;
    descriptor |= std::uint64_t{segment.type & 0xfu} << desc_type_shift;
    descriptor |= std::uint64_t{segment.s & 1u} << desc_s_shift;
    descriptor |= std::uint64_t{segment.dpl & 3u} << desc_dpl_shift;
    descriptor |= std::uint64_t{segment.present & 1u} << desc_present_shift;
    descriptor |= ((limit >> 16) & 0xf) << desc_limit_high_shift;
    descriptor |= std::uint64_t{segment.l & 1u} << desc_l_shift;
    descriptor |= std::uint64_t{segment.db & 1u} << desc_db_shift;
    descriptor |= std::uint64_t{segment.g & 1u} << desc_g_shift;
    descriptor |= ((segment.base >> 24) & 0xff) << desc_base_high_shift;
    return descriptor;
}

BootCpuState setup_long_mode(GuestMemory const& memory, GuestAddress entry) {
    if (entry.value >= identity_mapped_size)
        throw Error(fmt::format("long mode: entry point {:#x} is above the identity-mapped {} GiB",
                                entry.value, identity_mapped_size / GiB));
    write_gdt(memory);
    write_page_tables(memory);
    return long_mode_cpu_state(entry);
}

BootCpuState setup_protected_mode(GuestMemory const& memory, GuestAddress entry) {
    if (entry.value > UINT32_MAX)
        throw Error(fmt::format("protected mode: entry point {:#x} is not a 32-bit address", entry.value));
    write_gdt(memory);
    return protected_mode_cpu_state(entry);
}

}  // namespace kvmlet::x86_64
