#pragma once
// The Multiple APIC Description Table (ACPI 6.5 §5.2.12) for kvmlet's x86_64 machine, the ACPI
// counterpart of the MP table's processor, I/O APIC and local-interrupt entries (mp_table.hpp):
//
// - One Processor Local APIC entry per vCPU, APIC ID = ACPI processor UID = the vCPU index,
//   enabled; from ID 255 on (255 is the xAPIC broadcast ID) Processor Local x2APIC entries.
// - One I/O APIC at ioapic_start, GSI base 0, ID `cpus` as in the MP table (capped at 254: the
//   field is 8 bits, and with x2APIC CPUs there is no shared APIC bus for the IDs to collide on).
// - NMI on LINT1 of every local APIC (and of every x2APIC, when there are any).
// - No Interrupt Source Overrides. KVM's in-kernel irqchip wires GSI n to I/O APIC pin n, the PIT
//   included (GSI 0, not pin 2 as behind a PC's 8259 cascade); without overrides ISA IRQ n is GSI n,
//   edge, active high (§5.2.12.5: ISA interrupts are identity-mapped unless overridden). A
//   hardware-reduced machine has no SCI, so it needs no SCI override either.
// - Flags: PCAT_COMPAT set. KVM_CREATE_IRQCHIP does emulate the dual 8259s (the MP table routes
//   their output to LINT0 as ExtINT), and the flag tells an OS to mask them before it uses the I/O
//   APIC. Linux ignores the flag (with hardware-reduced ACPI it uses no PIC at all); others honour it.
#include <cstdint>
#include <vector>

namespace kvmlet::x86_64 {

std::vector<std::uint8_t> make_madt(std::uint32_t cpus);

}  // namespace kvmlet::x86_64
