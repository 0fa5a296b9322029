#pragma once
// What a CPU finds at the real-mode reset vector, F000:FFF0 (physical 0xffff0), where a PC's BIOS
// has its entry. Linux jumps there when its other reboot methods did not reset the machine
// (BOOT_BIOS, `reboot=b`, and the last resort after BOOT_EFI, which Debian's kernels pick on
// kvmlet's hardware-reduced ACPI): with nothing there it ran through zeroed memory until it
// halted. kvmlet has no BIOS; a few real-mode instructions pulse the reset line through the
// i8042 instead (command 0xfe on port 0x64), which kvmlet takes as the guest's reset, then halt.
#include <array>
#include <cstdint>

#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

// mov al, 0xfe; out 0x64, al; cli; hlt; jmp back to the hlt.
inline constexpr std::array<std::uint8_t, 8> reset_vector_code{0xb0, 0xfe, 0xe6, 0x64,
                                                               0xfa, 0xf4, 0xeb, 0xfd};

// Writes reset_vector_code at reset_vector_start (layout.hpp). Throws Error when guest RAM does
// not reach it.
void write_reset_vector(GuestMemory const& memory);

}  // namespace kvmlet::x86_64
