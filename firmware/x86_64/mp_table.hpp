#pragma once
// The Intel MultiProcessor Specification 1.4 tables that tell a kernel without ACPI how many CPUs
// there are and how ISA interrupts reach the I/O APIC.
//
// - The floating pointer ("_MP_") goes in the last KiB of base memory (0x9fc00), where every MP
//   kernel scans; the configuration table ("PCMP") in the BIOS ROM area (0xf0000): 64 CPUs need
//   1.5 KiB, more than the last KiB holds. Both lie in the range e820 reports reserved.
// - One processor entry per vCPU: APIC ID i, the boot processor is CPU 0.
// - One ISA bus, one I/O APIC with ID `cpus` (the first ID after the CPUs) at 0xfec00000.
// - ISA IRQ n is wired to I/O APIC pin n for n in 0..15, all "conforming to the bus" (edge, active
//   high). That is how KVM's in-kernel irqchip routes GSIs by default (GSI n to I/O APIC pin n; the
//   PIT raises GSI 0), so IRQ 0 is on pin 0 here, not on pin 2 as behind a PC's 8259 cascade.
// - LINT0 of every local APIC is ExtINT (the 8259) and LINT1 is NMI: virtual wire mode (§3.6.2.2).
#include <cstdint>

#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

// APIC IDs are 8 bits; 0xff means "all", and the I/O APIC takes the ID after the last CPU.
inline constexpr std::uint32_t mp_table_max_cpus = 254;

// Writes the floating pointer and the configuration table for `cpus` processors. Throws Error for
// 0 or more than mp_table_max_cpus CPUs, or when the tables do not fit in guest RAM.
void write_mp_table(GuestMemory const& memory, std::uint32_t cpus);

}  // namespace kvmlet::x86_64
