#include "firmware/x86_64/zero_page.hpp"

#include <fmt/format.h>

#include <cstring>

#include "firmware/x86_64/command_line.hpp"
#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

// The protocol whose fields kvmlet fills in for a kernel that brings no header (2.12: xloadflags,
// cmdline_size, initrd_addr_max and the ext_* fields all exist).
constexpr std::uint16_t made_up_header_version = 0x020c;

std::uint32_t low_half(std::uint64_t value) {
    return static_cast<std::uint32_t>(value);
}
std::uint32_t high_half(std::uint64_t value) {
    return static_cast<std::uint32_t>(value >> 32);
}

void set_header(BootParams& params, std::span<std::byte const> header) {
    if (header.empty()) {
        params.hdr.boot_flag = boot_flag_magic;
        params.hdr.header = header_magic;
        params.hdr.version = made_up_header_version;
        params.hdr.cmdline_size = linux_command_line_size - 1;
        params.hdr.initrd_addr_max = default_initrd_addr_max;
        return;
    }
    if (header.size() > setup_header_max_end - setup_header_offset)
        throw Error(fmt::format("kernel: a {}-byte setup header does not fit the zero page", header.size()));
    // Safety: BootParams is a packed standard-layout struct of 4096 bytes; the header area starts at
    // setup_header_offset and runs to edd_mbr_sig_buffer, and the size was checked against it.
    std::memcpy(reinterpret_cast<std::byte*>(&params) + setup_header_offset, header.data(), header.size());
}

void set_memory_map(BootParams& params, std::span<E820Entry const> map) {
    if (map.size() > e820_max_entries_zeropage)
        throw Error(fmt::format("e820: {} memory ranges, the zero page holds at most {}", map.size(),
                                e820_max_entries_zeropage));
    std::memcpy(params.e820_table, map.data(), map.size_bytes());
    params.e820_entries = static_cast<std::uint8_t>(map.size());
}

}  // namespace

BootParams make_boot_params(ZeroPageContents const& contents) {
    BootParams params{};
    set_header(params, contents.setup_header);
    params.hdr.type_of_loader = type_of_loader_undefined;
    params.hdr.vid_mode = vid_mode_normal;
    params.hdr.cmd_line_ptr = low_half(contents.cmdline.value);
    params.ext_cmd_line_ptr = high_half(contents.cmdline.value);
    if (contents.initrd) {
        params.hdr.ramdisk_image = low_half(contents.initrd->start.value);
        params.ext_ramdisk_image = high_half(contents.initrd->start.value);
        params.hdr.ramdisk_size = low_half(contents.initrd->size);
        params.ext_ramdisk_size = high_half(contents.initrd->size);
    }
    set_memory_map(params, contents.memory_map);
    if (contents.acpi_rsdp) params.acpi_rsdp_addr = contents.acpi_rsdp->value;
    return params;
}

GuestAddress write_zero_page(GuestMemory const& memory, ZeroPageContents const& contents) {
    if (!memory.write(zero_page_start, make_boot_params(contents)))
        throw Error(fmt::format("zero page: {:#x} is not in guest RAM", zero_page_start.value));
    return zero_page_start;
}

}  // namespace kvmlet::x86_64
