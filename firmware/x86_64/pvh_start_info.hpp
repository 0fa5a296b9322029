#pragma once
// The PVH boot ABI's start-of-day structure (Xen include/public/arch-x86/hvm/start_info.h, version
// 1, and docs/misc/pvh.pandoc): hvm_start_info with the command line, the initrd as the single
// module, and the memory map; the kernel finds it through EBX at its 32-bit entry.
#include <cstdint>
#include <optional>
#include <span>

#include "firmware/x86_64/boot_params.hpp"
#include "firmware/x86_64/initrd.hpp"
#include "firmware/x86_64/long_mode.hpp"
#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

inline constexpr std::uint32_t hvm_start_magic = 0x336e'c578;  // XEN_HVM_START_MAGIC_VALUE, "xEn3" | 0x80

struct HvmStartInfo {
    std::uint32_t magic;
    std::uint32_t version;
    std::uint32_t flags;
    std::uint32_t nr_modules;
    std::uint64_t modlist_paddr;
    std::uint64_t cmdline_paddr;
    std::uint64_t rsdp_paddr;  // 0: no RSDP given; Linux scans the BIOS area for one, then the MP table
    std::uint64_t memmap_paddr;
    std::uint32_t memmap_entries;
    std::uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);

struct HvmModlistEntry {
    std::uint64_t paddr;
    std::uint64_t size;
    std::uint64_t cmdline_paddr;  // 0: the module has no command line
    std::uint64_t reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32);

struct HvmMemmapEntry {
    std::uint64_t addr;
    std::uint64_t size;
    std::uint32_t type;  // the e820 types: 1 RAM, 2 reserved
    std::uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

struct PvhBootInfo {
    GuestAddress cmdline;
    std::optional<InitrdPlacement> initrd;
    std::span<E820Entry const> memory_map;
    std::optional<GuestAddress> acpi_rsdp = {};
};

// Writes hvm_start_info at pvh_start_info_start, the module list and the memory map after it.
// Returns its address, for EBX. Throws Error when the memory map does not fit the PVH area.
GuestAddress write_pvh_start_info(GuestMemory const& memory, PvhBootInfo const& info);

// The PVH entry state: 32-bit protected mode, paging off (setup_protected_mode), EBX = start_info.
BootCpuState pvh_cpu_state(GuestMemory const& memory, GuestAddress entry, GuestAddress start_info);

}  // namespace kvmlet::x86_64
