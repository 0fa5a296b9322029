#pragma once
// The ACPI tables that describe an x86_64 kvmlet machine to a kernel that speaks ACPI (ACPI 6.5
// chapter 5), written once into guest RAM at [acpi_tables_start, acpi_tables_end):
//
//   RSDP (revision 2) -> XSDT -> FADT -> DSDT (AML: \_SB_.PCI0, motherboard resources, COM1,
//                                              the i8042, the power button and its GED,
//                                              virtio-mmio devices, \_S5_)
//                             -> MADT (local APICs, the I/O APIC, LINT1 NMI)
//                             -> MCFG (ECAM, when there is PCI)
//
// The machine is "hardware-reduced" (§4.1): no PM1 event/control blocks, no SCI, no GPEs, no FACS.
// Its power button is therefore a control-method one (PNP0C0C) that a Generic Event Device
// (§5.6.9) notifies when its interrupt fires.
// Soft-off and reset go through the FADT's one-byte sleep control and reset registers in I/O space
// (devices/legacy/acpi_power.hpp answers them). The MP table (mp_table.hpp) stays for kernels
// built without ACPI; a kernel with ACPI prefers these tables.
#include <cstdint>
#include <vector>

#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

// KVM_MAX_VCPUS on x86 since Linux 5.15; CPUs from APIC ID 255 on get x2APIC entries.
inline constexpr std::uint32_t acpi_max_cpus = 1024;
// PCI device numbers on bus 0 are 0..31; 0 is the host bridge.
inline constexpr std::uint8_t acpi_max_pci_slot = 31;
// The DSDT names virtio-mmio devices VR00..VRFF.
inline constexpr std::size_t acpi_max_virtio_mmio = 256;

struct AcpiMmioDevice {  // a virtio-mmio register window and its interrupt
    GuestAddress base;
    std::uint64_t size;
    std::uint32_t gsi;
};

struct AcpiConfig {
    std::uint32_t cpus = 1;                   // APIC IDs 0..cpus-1, all enabled
    bool pci = false;                         // PCI root bridge in the DSDT, and the MCFG
    std::uint64_t ram_size = 0;               // places the 64-bit PCI window (pci_mmio64_start)
    std::vector<std::uint8_t> pci_slots;      // bus-0 device numbers with INTA, for _PRT; not 0
    std::vector<AcpiMmioDevice> virtio_mmio;  // "LNRO0005" devices, _UID = index
    bool power_button = false;                // \_SB_.PWRB and its GED on acpi_power_button_irq
};

// Writes the RSDP at acpi_tables_start and the other tables after it. Returns the RSDP's address
// (for the zero page's acpi_rsdp_addr and PVH's rsdp_paddr). Throws kvmlet::Error for a config
// outside the limits above, a virtio-mmio window above 4 GiB, or tables that do not fit below
// acpi_tables_end or in guest RAM.
GuestAddress write_acpi_tables(GuestMemory const& memory, AcpiConfig const& config);

}  // namespace kvmlet::x86_64
