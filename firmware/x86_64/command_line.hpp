#pragma once
// The kernel command line: checked against the kernel's limit, written NUL-terminated at
// cmdline_start for both the zero page (cmd_line_ptr) and PVH (cmdline_paddr).
#include <cstdint>
#include <string_view>

#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

// Linux x86's COMMAND_LINE_SIZE (arch/x86/include/asm/setup.h), with the NUL: the limit for a
// kernel without a setup header to state its own (an ELF vmlinux).
inline constexpr std::uint32_t linux_command_line_size = 2048;

// Throws Error "cmdline: N bytes, the kernel accepts at most M" when the command line is longer
// than `kernel_max` bytes (the header's cmdline_size: without the NUL), longer than kvmlet's buffer
// holds, or holds a NUL byte.
void check_cmdline(std::string_view cmdline, std::uint64_t kernel_max);

// check_cmdline, then writes it. Returns where it went.
GuestAddress write_cmdline(GuestMemory const& memory, std::string_view cmdline, std::uint64_t kernel_max);

}  // namespace kvmlet::x86_64
