#pragma once
// The x86_64 guest-physical memory map kvmlet builds, in one place.
//
//   0x0000_0000  0x0000_0fff  real-mode IVT / BDA (left zero)
//   0x0000_0500               GDT (4 entries), then an empty IDT at 0x520
//   0x0000_2000  0x0000_2fff  kernel command line, NUL-terminated
//   0x0000_6000  0x0000_6fff  PVH: hvm_start_info, its module list (the initrd) and memory map
//   0x0000_7000  0x0000_7fff  zero page (Linux boot_params)
//   0x0000_8ff0               initial stack pointer (grows down)
//   0x0000_9000  0x0000_efff  identity page tables: PML4, PDPT, 4 PDs of 2 MiB pages (0-4 GiB)
//   0x0000_f000  0x0000_ffff  reserved for kvmlet's firmware tables
//   0x0001_0000  0x0009_fbff  free RAM: tiny guests may load here (e820 RAM)
//   0x0009_fc00  0x0009_ffff  last KiB of base memory: MP floating pointer (e820 reserved from here)
//   0x000a_0000  0x000e_ffff  legacy VGA / option ROM area (e820 reserved; unused)
//   0x000f_0000  0x000f_1fff  MP configuration table, in the BIOS ROM area (e820 reserved)
//   0x0010_0000  ...          kernels: a bzImage's protected-mode code loads here, vmlinux at its paddr
//   RAM up to 3 GiB, then the 32-bit MMIO hole [3 GiB, 4 GiB), then the rest of RAM from 4 GiB.
//   The initrd goes as high as it can below min(3 GiB, end of RAM, the kernel's initrd_addr_max).
#include <cstdint>
#include <vector>

#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

inline constexpr GuestAddress gdt_start{0x500};
inline constexpr GuestAddress idt_start{0x520};
inline constexpr GuestAddress cmdline_start{0x2000};
inline constexpr std::uint64_t cmdline_capacity = 0x1000;  // bytes, with the terminating NUL
inline constexpr GuestAddress pvh_start_info_start{0x6000};
inline constexpr GuestAddress pvh_modlist_start{0x6040};
inline constexpr GuestAddress pvh_memmap_start{0x6080};
inline constexpr GuestAddress pvh_area_end{0x7000};
inline constexpr GuestAddress zero_page_start{0x7000};
inline constexpr GuestAddress boot_stack_pointer{0x8ff0};
inline constexpr GuestAddress pml4_start{0x9000};
inline constexpr GuestAddress pdpt_start{0xa000};
inline constexpr GuestAddress pd_start{0xb000};  // 4 pages
inline constexpr std::uint64_t identity_mapped_size = 4 * GiB;
inline constexpr GuestAddress firmware_end{0x10000};  // [0, firmware_end) belongs to kvmlet

// The PC's reserved range below 1 MiB: the last KiB of base memory (where an EBDA would be),
// the VGA hole and the BIOS ROM area. Guest RAM backs it, but e820 reports it reserved and no
// kernel segment may load into it.
inline constexpr GuestAddress bios_area_start{0x9fc00};
inline constexpr GuestAddress bios_area_end{0x100000};
// MP spec 1.4 §4: the floating pointer must be in the first KiB of the EBDA, the last KiB of base
// memory, or the BIOS ROM [0xf0000, 0x100000); the configuration table may be anywhere.
inline constexpr GuestAddress mp_floating_pointer_start{0x9fc00};
inline constexpr GuestAddress mp_config_table_start{0xf0000};
inline constexpr GuestAddress mp_config_table_end{0xf2000};

// boot.rst "Loading The Rest of The Kernel": a bzImage's protected-mode code loads at 1 MiB.
inline constexpr GuestAddress bzimage_load_address{0x100000};

inline constexpr GuestAddress mmio_hole_start{3 * GiB};
inline constexpr GuestAddress mmio_hole_end{4 * GiB};
inline constexpr GuestAddress high_ram_start{4 * GiB};

// Firecracker-compatible boot-timer MMIO page, at the start of the MMIO hole.
inline constexpr GuestAddress boot_timer_mmio{0xc000'0000};
// virtio-mmio devices: one 4 KiB register window each, from here up, in the order disks (as on
// the command line), console, rng; device i raises IOAPIC pin virtio_mmio_first_irq + i.
inline constexpr GuestAddress virtio_mmio_start{0xd000'0000};
inline constexpr std::uint64_t virtio_mmio_stride = 0x1000;
inline constexpr std::uint32_t virtio_mmio_first_irq = 5;
inline constexpr std::uint32_t virtio_mmio_last_irq = 23;  // the IOAPIC has 24 pins
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
