#include "firmware/x86_64/kernel_boot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "firmware/elf_loader.hpp"
#include "firmware/x86_64/bzimage.hpp"
#include "firmware/x86_64/command_line.hpp"
#include "firmware/x86_64/e820.hpp"
#include "firmware/x86_64/layout.hpp"
#include "firmware/x86_64/mp_table.hpp"
#include "firmware/x86_64/pvh_note.hpp"
#include "firmware/x86_64/pvh_start_info.hpp"
#include "firmware/x86_64/reset_vector.hpp"
#include "firmware/x86_64/zero_page.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

// No kernel segment may load where kvmlet keeps its own tables.
constexpr firmware::ReservedRange reserved_ranges[] = {
    {GuestAddress{0}, firmware_end, "kvmlet's firmware area"},
    {bios_area_start, bios_area_end, "the BIOS area"},
};

// What every entry protocol passes the same way.
struct BootTables {
    GuestAddress cmdline;
    std::optional<InitrdPlacement> initrd;
    std::vector<E820Entry> memory_map;
    std::optional<GuestAddress> acpi_rsdp;
};

BootTables write_tables(GuestMemory const& memory, KernelBootConfig const& config, GuestAddress kernel_end,
                        std::uint64_t initrd_addr_max, std::uint64_t cmdline_max) {
    BootTables tables;
    tables.cmdline = write_cmdline(memory, config.cmdline, cmdline_max);
    if (config.initrd)
        tables.initrd =
            load_initrd(memory, *config.initrd, std::max(kernel_end, bios_area_end), initrd_addr_max);
    write_mp_table(memory, config.cpus);
    write_reset_vector(memory);
    tables.memory_map = e820_map(memory, config.reserved);
    tables.acpi_rsdp = config.acpi_rsdp;
    return tables;
}

BootCpuState linux64_cpu(GuestMemory const& memory, BootTables const& tables,
                         std::span<std::byte const> setup_header, GuestAddress entry) {
    GuestAddress const zero_page = write_zero_page(
        memory, {setup_header, tables.cmdline, tables.initrd, tables.memory_map, tables.acpi_rsdp});
    BootCpuState cpu = setup_long_mode(memory, entry);
    cpu.rsi = zero_page.value;
    return cpu;
}

std::optional<GuestAddress> pvh_entry(KernelBootConfig const& config, firmware::LoadedKernel const& kernel) {
    if (config.entry == EntryProtocol::linux64) return std::nullopt;
    auto const entry = find_pvh_entry(config.kernel, kernel.notes);
    if (!entry && config.entry == EntryProtocol::pvh)
        throw Error("kernel: no PVH entry note (needs CONFIG_PVH)");
    if (entry && (*entry < kernel.start || *entry >= kernel.end))
        throw Error(fmt::format("kernel: PVH entry {:#x} is outside the loaded kernel [{:#x}, {:#x})",
                                entry->value, kernel.start.value, kernel.end.value));
    return entry;
}

KernelBoot boot_elf(GuestMemory const& memory, KernelBootConfig const& config) {
    std::uint64_t const cmdline_max = linux_command_line_size - 1;
    check_cmdline(config.cmdline, cmdline_max);  // before guest RAM is touched
    auto const kernel = firmware::load_elf(memory, config.kernel, reserved_ranges);
    auto const pvh = pvh_entry(config, kernel);
    auto const tables = write_tables(memory, config, kernel.end, default_initrd_addr_max, cmdline_max);
    KernelBoot boot{{}, "linux64 (ELF)", kernel.start, kernel.end, tables.initrd};
    if (pvh) {
        auto const start_info = write_pvh_start_info(
            memory, {tables.cmdline, tables.initrd, tables.memory_map, tables.acpi_rsdp});
        boot.cpu = pvh_cpu_state(memory, *pvh, start_info);
        boot.protocol = "pvh";
    } else {
        boot.cpu = linux64_cpu(memory, tables, {}, kernel.entry);
    }
    return boot;
}

void load_protected_mode(GuestMemory const& memory, BzImage const& image) {
    GuestAddress const ram_end = low_ram_end(memory);
    if (image.runtime_end > ram_end.value)
        throw Error(fmt::format("kernel: needs {} MiB of RAM to decompress, the guest has {}",
                                image.runtime_end / MiB + (image.runtime_end % MiB != 0),
                                ram_end.value / MiB));
    if (!memory.write_bytes(bzimage_load_address, image.protected_mode))
        throw Error(
            fmt::format("kernel: the {}-byte protected-mode kernel does not fit in guest RAM at {:#x}",
                        image.protected_mode.size(), bzimage_load_address.value));
}

KernelBoot boot_bzimage(GuestMemory const& memory, KernelBootConfig const& config) {
    if (config.entry == EntryProtocol::pvh)
        throw Error("kernel: no PVH entry note in a bzImage (the PVH entry boots the vmlinux ELF)");
    auto const image = parse_bzimage(config.kernel);
    std::uint32_t const cmdline_max = image.header.cmdline_size;
    check_cmdline(config.cmdline, cmdline_max);
    load_protected_mode(memory, image);
    GuestAddress const kernel_end{
        std::max(bzimage_load_address.value + image.protected_mode.size(), image.runtime_end)};
    auto const tables = write_tables(memory, config, kernel_end, image.header.initrd_addr_max, cmdline_max);
    GuestAddress const entry{bzimage_load_address.value + bzimage_entry_64_offset};
    return KernelBoot{linux64_cpu(memory, tables, image.setup_header, entry), "linux64 (bzImage)",
                      bzimage_load_address, kernel_end, tables.initrd};
}

}  // namespace

KernelBoot load_kernel(GuestMemory const& memory, KernelBootConfig const& config) {
    if (firmware::is_elf(config.kernel)) return boot_elf(memory, config);
    if (is_bzimage(config.kernel)) return boot_bzimage(memory, config);
    throw Error("kernel: not an ELF or bzImage");
}

}  // namespace kvmlet::x86_64
