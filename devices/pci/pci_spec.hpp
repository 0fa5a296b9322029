#pragma once
// PCI configuration space constants (PCI Local Bus 3.0 §6; PCIe 5.0 §7.5 for ECAM-only parts).
#include <cstdint>

namespace kvmlet::pci {

inline constexpr std::uint32_t config_size = 256;  // type 0 header + capabilities
inline constexpr std::uint32_t ecam_function_size =
    0x1000;  // PCIe §7.2.2: extended space, read as 0 above 256
inline constexpr std::uint32_t slots = 32;
inline constexpr std::uint32_t bar_count = 6;

// §6.1 type 0 header.
namespace reg {
inline constexpr std::uint32_t vendor_id = 0x00;
inline constexpr std::uint32_t device_id = 0x02;
inline constexpr std::uint32_t command = 0x04;
inline constexpr std::uint32_t status = 0x06;
inline constexpr std::uint32_t revision_id = 0x08;
inline constexpr std::uint32_t class_code = 0x09;  // 3 bytes: programming interface, subclass, class
inline constexpr std::uint32_t cache_line_size = 0x0c;
inline constexpr std::uint32_t latency_timer = 0x0d;
inline constexpr std::uint32_t header_type = 0x0e;
inline constexpr std::uint32_t bar0 = 0x10;
inline constexpr std::uint32_t subsystem_vendor_id = 0x2c;
inline constexpr std::uint32_t subsystem_id = 0x2e;
inline constexpr std::uint32_t capabilities_pointer = 0x34;
inline constexpr std::uint32_t interrupt_line = 0x3c;
inline constexpr std::uint32_t interrupt_pin = 0x3d;
inline constexpr std::uint32_t first_capability = 0x40;
}  // namespace reg

// §6.2.2 Command register.
namespace command {
inline constexpr std::uint16_t io_space = 1 << 0;
inline constexpr std::uint16_t memory_space = 1 << 1;
inline constexpr std::uint16_t bus_master = 1 << 2;
inline constexpr std::uint16_t parity_error_response = 1 << 6;
inline constexpr std::uint16_t serr = 1 << 8;
inline constexpr std::uint16_t interrupt_disable = 1 << 10;
inline constexpr std::uint16_t writable =
    io_space | memory_space | bus_master | parity_error_response | serr | interrupt_disable;
}  // namespace command

// §6.2.3 Status register.
namespace status {
inline constexpr std::uint16_t interrupt = 1 << 3;
inline constexpr std::uint16_t capabilities_list = 1 << 4;
}  // namespace status

// §6.2.5.1 Base Address Registers.
namespace bar {
inline constexpr std::uint32_t memory_64bit = 0b10 << 1;
inline constexpr std::uint32_t prefetchable = 1 << 3;
inline constexpr std::uint32_t memory_flags_mask = 0xf;
}  // namespace bar

// Capability IDs (PCI Code and ID Assignment Specification §2).
namespace capability {
inline constexpr std::uint8_t vendor_specific = 0x09;
inline constexpr std::uint8_t msix = 0x11;
}  // namespace capability

inline constexpr std::uint8_t interrupt_pin_inta = 1;

}  // namespace kvmlet::pci
