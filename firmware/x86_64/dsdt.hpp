#pragma once
// The Differentiated System Description Table (ACPI 6.5 §5.2.11.1): kvmlet's devices in AML.
//
//   Scope (\_SB_) {
//     Device (PCI0)   PCI root bridge, bus 0 (with PCI): _HID PNP0A03, _SEG/_BBN/_UID 0, _CRS
//                     (bus numbers, the I/O ports but the 0xcf8 configuration pair, the 32-bit and
//                     64-bit BAR windows) and _PRT (INTA..INTD of each slot, swizzled onto the
//                     pci_intx pins)
//     Device (MBRD)   PNP0C02 motherboard resources (with PCI): reserves the ECAM window, where
//                     Linux looks before it trusts the MCFG
//     Device (COM1)   PNP0501 at 0x3f8, IRQ 4
//     Device (PS2K)   PNP0303 i8042 keyboard controller at 0x60 and 0x64, IRQ 1
//     Device (PWRB)   PNP0C0C power button (with power_button): a control-method button
//     Device (GED0)   ACPI0013 Generic Event Device (with power_button): its interrupt is
//                     acpi_power_button_irq, edge-triggered; its _EVT does Notify (PWRB, 0x80),
//                     "button pressed" (ACPI 6.5 §5.6.9, §4.8.3.1.1)
//     Device (VRnn)   "LNRO0005" virtio-mmio: register window and edge-triggered interrupt
//   }
//   Name (\_S5_, Package () { acpi_s5_sleep_type, 0, 0, 0 })
//
// PCI0 is a PNP0A03 (PCI) host bridge, not a PNP0A08 (PCI Express) one, although the MCFG offers
// ECAM: for a PNP0A08 bridge without an _OSC method Linux reports "_OSC: platform retains control
// of PCIe features", and kvmlet has no PCIe ports, hot plug or AER to hand over. Linux x86 uses
// the MCFG's ECAM with either. PCI0 has no _ADR: a device has an _HID or an _ADR, "but should not
// contain both" (§6.1).
#include <cstdint>
#include <vector>

#include "firmware/x86_64/acpi_tables.hpp"

namespace kvmlet::x86_64 {

std::vector<std::uint8_t> make_dsdt(AcpiConfig const& config);

}  // namespace kvmlet::x86_64
