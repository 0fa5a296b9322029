#pragma once
// Resource descriptors (ACPI 6.5 §6.4 "Resource Data Types for ACPI") and the AML buffer that
// carries them, ResourceTemplate() in ASL: what a device's _CRS returns. Each function returns one
// descriptor's bytes; resource_template() wraps a list of them in a Buffer with the End Tag.
//
// The address-space descriptors (WordBusNumber, WordIO, DWordMemory, QWordMemory) describe what a
// bridge produces for its children: ResourceProducer, MinFixed, MaxFixed, PosDecode, granularity
// and translation 0, length max - min + 1 (the forms a PCI host bridge's _CRS uses).
#include <cstdint>
#include <vector>

#include "firmware/acpi/aml.hpp"

namespace kvmlet::firmware::acpi::resource {

using aml::Bytes;

enum class Trigger : std::uint8_t { level, edge };
enum class Polarity : std::uint8_t { active_high, active_low };
enum class Sharing : std::uint8_t { exclusive, shared };
enum class Cacheability : std::uint8_t { non_cacheable, cacheable };

// §6.4.2.5 I/O Port Descriptor, 16-bit decode: IO (Decode16, min, max, alignment, length).
Bytes io(std::uint16_t min, std::uint16_t max, std::uint8_t alignment, std::uint8_t length);
// §6.4.2.1 IRQ Descriptor without the information byte: IRQNoFlags () {irq}, an ISA IRQ (0..15),
// edge-triggered, active high, exclusive.
Bytes irq_no_flags(std::uint8_t irq);
// §6.4.3.4 32-Bit Fixed Memory Range Descriptor: Memory32Fixed (ReadWrite, base, length).
Bytes memory32_fixed(std::uint32_t base, std::uint32_t length);
// §6.4.3.6 Extended Interrupt Descriptor, one interrupt, ResourceConsumer, no resource source.
Bytes extended_interrupt(std::uint32_t gsi, Trigger trigger, Polarity polarity, Sharing sharing);
// §6.4.3.5.3 Word Address Space Descriptor.
Bytes word_bus_number(std::uint16_t min, std::uint16_t max);
Bytes word_io(std::uint16_t min, std::uint16_t max);  // EntireRange
// §6.4.3.5.2 DWord and §6.4.3.5.1 QWord Address Space Descriptors: ReadWrite memory.
Bytes dword_memory(std::uint32_t min, std::uint32_t max, Cacheability cacheability);
Bytes qword_memory(std::uint64_t min, std::uint64_t max, Cacheability cacheability);

// Buffer () { descriptors..., End Tag (§6.4.2.9) with checksum 0: "treated as if the checksum
// operation succeeded" }.
Bytes resource_template(std::vector<Bytes> const& descriptors);

}  // namespace kvmlet::firmware::acpi::resource
