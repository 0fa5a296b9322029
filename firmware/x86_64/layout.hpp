#pragma once
// The x86_64 guest-physical memory map kvmlet builds, in one place.
//
//   0x0000_0000  0x0000_0fff  real-mode IVT / BDA (left zero)
//   0x0000_0500               GDT (4 entries), then an empty IDT at 0x520
//   0x0000_7000               zero page (Linux boot_params, issue 3)
//   0x0000_8ff0               initial stack pointer (grows down)
//   0x0000_9000  0x0000_efff  identity page tables: PML4, PDPT, 4 PDs of 2 MiB pages (0-4 GiB)
//   0x0000_f000  0x0000_ffff  reserved for kvmlet's firmware tables
//   0x0001_0000  ...          free RAM: kernels and tiny guests load here and above
//   RAM up to 3 GiB, then the 32-bit MMIO hole [3 GiB, 4 GiB), then the rest of RAM from 4 GiB.
#include <cstdint>
#include <vector>

#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

inline constexpr GuestAddress gdt_start{0x500};
inline constexpr GuestAddress idt_start{0x520};
inline constexpr GuestAddress zero_page_start{0x7000};
inline constexpr GuestAddress boot_stack_pointer{0x8ff0};
inline constexpr GuestAddress pml4_start{0x9000};
inline constexpr GuestAddress pdpt_start{0xa000};
inline constexpr GuestAddress pd_start{0xb000};  // 4 pages
inline constexpr std::uint64_t identity_mapped_size = 4 * GiB;
inline constexpr GuestAddress firmware_end{0x10000};  // [0, firmware_end) belongs to kvmlet

inline constexpr GuestAddress mmio_hole_start{3 * GiB};
inline constexpr GuestAddress mmio_hole_end{4 * GiB};
inline constexpr GuestAddress high_ram_start{4 * GiB};

// Firecracker-compatible boot-timer MMIO page, at the start of the MMIO hole.
inline constexpr GuestAddress boot_timer_mmio{0xc000'0000};
// Local APIC and IO-APIC, where the in-kernel irqchip puts them.
inline constexpr GuestAddress ioapic_start{0xfec0'0000};
inline constexpr GuestAddress lapic_start{0xfee0'0000};
// Below the 4 GiB boundary, outside RAM, for KVM_SET_TSS_ADDR (3 pages) and the identity map.
inline constexpr GuestAddress kvm_identity_map_start{0xfffb'c000};
inline constexpr GuestAddress kvm_tss_start{0xfffb'd000};

// RAM ranges for `size` bytes of guest RAM: below the MMIO hole first, the rest above 4 GiB.
inline std::vector<RamRange> ram_ranges(std::uint64_t size) {
    std::uint64_t low = size < mmio_hole_start.value ? size : mmio_hole_start.value;
    std::vector<RamRange> ranges{{GuestAddress{0}, low}};
    if (size > low) ranges.push_back({high_ram_start, size - low});
    return ranges;
}

}  // namespace kvmlet::x86_64
