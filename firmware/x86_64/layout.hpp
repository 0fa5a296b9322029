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
//   0x000a_0000  0x000d_ffff  legacy VGA / option ROM area (e820 reserved; unused)
//   0x000e_0000  0x000e_ffff  ACPI tables: RSDP first, then XSDT, FADT, MADT, MCFG, DSDT (reserved)
//   0x000f_0000  0x000f_1fff  MP configuration table, in the BIOS ROM area (e820 reserved)
//   0x000f_fff0  0x000f_fff7  at the real-mode reset vector F000:FFF0: an i8042 reset (reset_vector.hpp)
//   0x0010_0000  ...          kernels: a bzImage's protected-mode code loads here, vmlinux at its paddr
//   RAM up to 3 GiB, then the 32-bit MMIO hole [3 GiB, 4 GiB), then the rest of RAM from 4 GiB.
//   In the hole: boot timer 0xc000_0000, virtio-mmio windows from 0xd000_0000, PCI ECAM (bus 0)
//   at 0xe000_0000, PCI 32-bit BARs in [0xe800_0000, 0xfec0_0000), IOAPIC, LAPIC, KVM's pages.
//   Above RAM: the PCI 64-bit window (large 64-bit BARs).
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
// F000:FFF0, where a real-mode jump to the BIOS's reset entry lands (reset_vector.hpp).
inline constexpr GuestAddress reset_vector_start{0xffff0};

// boot.rst "Loading The Rest of The Kernel": a bzImage's protected-mode code loads at 1 MiB.
inline constexpr GuestAddress bzimage_load_address{0x100000};

inline constexpr GuestAddress mmio_hole_start{3 * GiB};
inline constexpr GuestAddress mmio_hole_end{4 * GiB};
inline constexpr GuestAddress high_ram_start{4 * GiB};

// Firecracker-compatible boot-timer MMIO page, at the start of the MMIO hole.
inline constexpr GuestAddress boot_timer_mmio{0xc000'0000};
// virtio-mmio devices: one 4 KiB register window each, from here up, in the order disks (as on
// the command line), network interfaces, console, rng, vsock; device i raises IOAPIC pin
// virtio_mmio_first_irq + i.
inline constexpr GuestAddress virtio_mmio_start{0xd000'0000};
inline constexpr std::uint64_t virtio_mmio_stride = 0x1000;
inline constexpr std::uint32_t virtio_mmio_first_irq = 5;
inline constexpr std::uint32_t virtio_mmio_last_irq = 23;  // the IOAPIC has 24 pins
// PCI: one root bus (0). ECAM (PCIe 5.0 §7.2.2, "MMCONFIG"): 4 KiB per function, 32 devices x 8
// functions = 1 MiB for bus 0; e820 reports it reserved (Linux checks before using it).
inline constexpr GuestAddress pci_ecam_start{0xe000'0000};
inline constexpr std::uint64_t pci_ecam_size = 0x10'0000;
inline constexpr std::uint8_t pci_last_bus = 0;
// 32-bit memory BARs are placed in [pci_mmio32_start, pci_mmio32_end); the guest may move them
// anywhere inside it (the window the DSDT's root bridge _CRS declares).
inline constexpr GuestAddress pci_mmio32_start{0xe800'0000};
inline constexpr GuestAddress pci_mmio32_end{0xfec0'0000};
// The 64-bit window starts at the first 1 GiB boundary at or above max(4 GiB, end of RAM).
inline constexpr std::uint64_t pci_mmio64_alignment = 1 * GiB;
inline constexpr std::uint64_t pci_mmio64_size = 64 * GiB;
// PCI INTx: INTA of slot s raises IOAPIC pin pci_intx_first_irq + (s % pci_intx_irqs) (the DSDT's
// _PRT says so); level-triggered, active low, as PCI interrupts are.
inline constexpr std::uint32_t pci_intx_first_irq = 16;
inline constexpr std::uint32_t pci_intx_irqs = 8;
// ACPI tables in the BIOS area: Linux finds the RSDP through the zero page's acpi_rsdp_addr, PVH's
// rsdp_paddr, or by scanning [0xe0000, 0x100000).
inline constexpr GuestAddress acpi_tables_start{0xe0000};
inline constexpr GuestAddress acpi_tables_end{0xf0000};
// ACPI hardware-reduced registers (ACPI 6.5 §4.8.3.7, FADT SLEEP_CONTROL_REG / SLEEP_STATUS_REG;
// §4.8.3.6 RESET_REG), one byte each in I/O space.
inline constexpr std::uint16_t acpi_sleep_control_port = 0x600;
inline constexpr std::uint16_t acpi_sleep_status_port = 0x601;
inline constexpr std::uint16_t acpi_reset_port = 0x602;
inline constexpr std::uint8_t acpi_reset_value = 0x01;
// The SLP_TYP the DSDT's \_S5 package names for soft-off.
inline constexpr std::uint8_t acpi_s5_sleep_type = 5;
// The PC/AT first serial port, where devices/legacy/serial.hpp's COM1 sits; the DSDT describes it.
inline constexpr std::uint16_t serial_com1_base = 0x3f8;
inline constexpr std::uint8_t serial_com1_ports = 8;
inline constexpr std::uint8_t serial_com1_irq = 4;
// The PC/AT keyboard controller (devices/legacy/i8042.hpp) and its keyboard's interrupt; the DSDT
// describes them.
inline constexpr std::uint16_t i8042_data_port = 0x60;
inline constexpr std::uint16_t i8042_command_port = 0x64;
inline constexpr std::uint8_t i8042_keyboard_irq = 1;
// The ACPI power button's interrupt: the DSDT's Generic Event Device (ACPI0013) takes it and
// notifies \_SB_.PWRB. IRQ 3 (a PC's COM2, which kvmlet does not have) is free: COM1 has 4, the
// keyboard 1, virtio-mmio devices start at virtio_mmio_first_irq and PCI INTx at pci_intx_first_irq.
inline constexpr std::uint8_t acpi_power_button_irq = 3;
static_assert(acpi_power_button_irq < virtio_mmio_first_irq);
// Local APIC and IO-APIC, where the in-kernel irqchip puts them.
inline constexpr GuestAddress ioapic_start{0xfec0'0000};
inline constexpr GuestAddress lapic_start{0xfee0'0000};
// Below the 4 GiB boundary, outside RAM, for KVM_SET_TSS_ADDR (3 pages) and the identity map.
inline constexpr GuestAddress kvm_identity_map_start{0xfffb'c000};
inline constexpr GuestAddress kvm_tss_start{0xfffb'd000};

// The PCI 64-bit window for `ram_size` bytes of guest RAM: [start, start + pci_mmio64_size).
inline GuestAddress pci_mmio64_start(std::uint64_t ram_size) {
    std::uint64_t low = ram_size < mmio_hole_start.value ? ram_size : mmio_hole_start.value;
    std::uint64_t top = high_ram_start.value + (ram_size - low);
    return GuestAddress{(top + pci_mmio64_alignment - 1) / pci_mmio64_alignment * pci_mmio64_alignment};
}

// RAM ranges for `size` bytes of guest RAM: below the MMIO hole first, the rest above 4 GiB.
inline std::vector<RamRange> ram_ranges(std::uint64_t size) {
    std::uint64_t low = size < mmio_hole_start.value ? size : mmio_hole_start.value;
    std::vector<RamRange> ranges{{GuestAddress{0}, low}};
    if (size > low) ranges.push_back({high_ram_start, size - low});
    return ranges;
}

}  // namespace kvmlet::x86_64
