#pragma once
// The boot CPU's starting state: a GDT and an empty IDT written into guest RAM (plus identity page
// tables for [0, 4 GiB) for a 64-bit entry), and the registers that go with them as plain values.
// Firmware never includes KVM headers; the vCPU layer turns BootCpuState into kvm_regs/kvm_sregs.
//
// Two entry modes share one GDT:
// - 64-bit, paging on: the Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit Boot
//   Protocol"): __BOOT_CS = 0x10 and __BOOT_DS = 0x18, both flat over 4 GiB; tiny guests too.
// - 32-bit protected mode, paging off: the PVH entry (Xen include/public/arch-x86/hvm/start_info.h,
//   "entry state"): any flat 32-bit code selector (0x08 here) and flat data (0x18).
//
//   selector 0x00  null
//   selector 0x08  32-bit code: execute/read, D/B = 1 (PVH entry)
//   selector 0x10  64-bit code: execute/read, L = 1
//   selector 0x18  data: read/write, D/B = 1
#include <cstdint>

#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

inline constexpr std::uint16_t boot_code32_selector = 0x08;
inline constexpr std::uint16_t boot_code_selector = 0x10;
inline constexpr std::uint16_t boot_data_selector = 0x18;

// A segment register's selector and hidden part, shaped like kvm_segment. `limit` is in bytes, as
// the CPU caches it (0xffff'ffff for a flat 4 GiB segment with g = 1); the GDT descriptor holds
// limit >> 12 when g = 1.
struct Segment {
    std::uint64_t base = 0;
    std::uint32_t limit = 0;
    std::uint16_t selector = 0;
    std::uint8_t type = 0;  // Intel SDM Vol. 3A §3.4.5.1, Table 3-1 (code/data); Table 3-2 (system)
    std::uint8_t present = 0;
    std::uint8_t dpl = 0;
    std::uint8_t db = 0;  // default operation size / big
    std::uint8_t s = 0;   // 1 = code or data, 0 = system
    std::uint8_t l = 0;   // 64-bit code
    std::uint8_t g = 0;   // limit counts 4 KiB units
};

struct DescriptorTable {
    std::uint64_t base = 0;
    std::uint16_t limit = 0;  // size in bytes minus 1
};

struct BootCpuState {
    std::uint64_t rip = 0;
    std::uint64_t rsp = 0;
    std::uint64_t rflags = 0;
    std::uint64_t rbx = 0;  // 0 here; the PVH entry puts the hvm_start_info address in it
    std::uint64_t rsi = 0;  // 0 here; the Linux 64-bit entry puts the zero page address in it
    std::uint64_t cr0 = 0;
    std::uint64_t cr3 = 0;
    std::uint64_t cr4 = 0;
    std::uint64_t efer = 0;
    Segment cs, ds, es, fs, gs, ss, tr;
    DescriptorTable gdt, idt;
};

// Writes the GDT, page tables and initial CPU state for a 64-bit entry at `entry` (physical,
// identity-mapped). Throws Error when the tables do not fit in guest RAM or the entry point is not
// inside the identity map.
BootCpuState setup_long_mode(GuestMemory const& memory, GuestAddress entry);

// Writes the GDT and initial CPU state for a 32-bit protected-mode entry with paging off at `entry`
// (physical): CR0 = PE | ET, CR4 = 0, EFER = 0, CS = 0x08, the data segments 0x18. Throws Error
// when the GDT does not fit in guest RAM or the entry point is not a 32-bit address.
BootCpuState setup_protected_mode(GuestMemory const& memory, GuestAddress entry);

// The 8-byte GDT descriptor for a code or data segment (Intel SDM Vol. 3A §3.4.5, Figure 3-8).
std::uint64_t gdt_descriptor(Segment const& segment) noexcept;

}  // namespace kvmlet::x86_64
