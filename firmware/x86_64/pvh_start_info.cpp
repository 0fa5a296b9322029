#include "firmware/x86_64/pvh_start_info.hpp"

#include <fmt/format.h>

#include <vector>

#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

constexpr std::uint32_t start_info_version = 1;  // the first version with the memory map

static_assert(pvh_start_info_start.value + sizeof(HvmStartInfo) <= pvh_modlist_start.value);
static_assert(pvh_modlist_start.value + sizeof(HvmModlistEntry) <= pvh_memmap_start.value);
static_assert(pvh_memmap_start.value + e820_max_entries_zeropage * sizeof(HvmMemmapEntry) <=
              pvh_area_end.value);

[[noreturn]] void does_not_fit(char const* what, GuestAddress at) {
    throw Error(fmt::format("pvh: the {} at {:#x} does not fit in guest RAM", what, at.value));
}

void write_memmap(GuestMemory const& memory, std::span<E820Entry const> map) {
    if (map.size() > e820_max_entries_zeropage)
        throw Error(fmt::format("pvh: {} memory map entries, kvmlet has room for {}", map.size(),
                                e820_max_entries_zeropage));
    std::vector<HvmMemmapEntry> entries;
    for (auto const& e : map) entries.push_back(HvmMemmapEntry{e.addr, e.size, e.type, 0});
    if (!memory.write_bytes(pvh_memmap_start, std::as_bytes(std::span{entries})))
        does_not_fit("memory map", pvh_memmap_start);
}

}  // namespace

GuestAddress write_pvh_start_info(GuestMemory const& memory, PvhBootInfo const& info) {
    write_memmap(memory, info.memory_map);
    HvmStartInfo start{};
    start.magic = hvm_start_magic;
    start.version = start_info_version;
    start.cmdline_paddr = info.cmdline.value;
    start.memmap_paddr = pvh_memmap_start.value;
    start.memmap_entries = static_cast<std::uint32_t>(info.memory_map.size());
    if (info.acpi_rsdp) start.rsdp_paddr = info.acpi_rsdp->value;
    if (info.initrd) {
        HvmModlistEntry const module{info.initrd->start.value, info.initrd->size, 0, 0};
        if (!memory.write(pvh_modlist_start, module)) does_not_fit("module list", pvh_modlist_start);
        start.nr_modules = 1;
        start.modlist_paddr = pvh_modlist_start.value;
    }
    if (!memory.write(pvh_start_info_start, start)) does_not_fit("start info", pvh_start_info_start);
    return pvh_start_info_start;
}

BootCpuState pvh_cpu_state(GuestMemory const& memory, GuestAddress entry, GuestAddress start_info) {
    BootCpuState state = setup_protected_mode(memory, entry);
    state.rbx = start_info.value;
    return state;
}

}  // namespace kvmlet::x86_64
