#pragma once
// The guest-physical memory map kvmlet reports to the kernel: the e820 table in the zero page,
// and the same entries as the PVH memory map.
//
//   [0, 0x9fc00)            RAM
//   [0x9fc00, 0x100000)     reserved: last KiB of base memory (MP floating pointer), VGA hole, BIOS
//                           ROM area (MP configuration table), as on a PC
//   [0x100000, low end)     RAM, up to the end of RAM or the MMIO hole at 3 GiB
//   [4 GiB, ...)            RAM above the hole, when the guest has more than 3 GiB
//   and the caller's reserved ranges (the PCI ECAM window: Linux uses ECAM only where e820 or an
//   ACPI motherboard resource reserves it), all sorted by address.
//
// kvmlet's own firmware area [0, 0x10000) (GDT, page tables, command line, zero page) is reported
// as RAM, as a PC BIOS reports the same low memory holding its IVT and data area: the kernel copies
// the zero page, command line and PVH start info before it allocates anything, and never allocates
// below 1 MiB anyway (Linux reserves all of it since 5.13, "x86/setup: Always reserve the first 1M
// of RAM"; older kernels reserve the first 64 KiB, CONFIG_X86_RESERVE_LOW). Calling it reserved
// would change nothing for Linux and would only hide RAM from other guests.
#include <cstdint>
#include <span>
#include <vector>

#include "firmware/x86_64/boot_params.hpp"
#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

// A range outside RAM that e820 reports reserved.
struct E820Reservation {
    GuestAddress start;
    std::uint64_t size;
};

// One entry per range above, from guest RAM's regions and `reserved`. Throws Error when a
// reservation is empty, wraps or overlaps another entry, or when there would be more entries than
// the zero page holds (e820_max_entries_zeropage).
std::vector<E820Entry> e820_map(GuestMemory const& memory, std::span<E820Reservation const> reserved = {});

// The end of the RAM region that starts at address 0: the contiguous RAM below the MMIO hole, where
// a kernel decompresses and the initrd goes. Throws Error when no region starts at 0.
GuestAddress low_ram_end(GuestMemory const& memory);

}  // namespace kvmlet::x86_64
