#pragma once
// The zero page (Linux struct boot_params) for the 64-bit entry: boot.rst "64-bit Boot Protocol"
// and zero-page.rst. Starts all zero; takes the kernel's setup header when the kernel has one (a
// bzImage) or a minimal one kvmlet makes up (an ELF vmlinux); then the fields a boot loader
// writes: type_of_loader, vid_mode, the command line, the initrd, the e820 map and the RSDP.
#include <cstddef>
#include <optional>
#include <span>

#include "firmware/x86_64/boot_params.hpp"
#include "firmware/x86_64/initrd.hpp"
#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

struct ZeroPageContents {
    std::span<std::byte const> setup_header;  // the image's bytes [0x1f1, header end); empty for an ELF
    GuestAddress cmdline;
    std::optional<InitrdPlacement> initrd;
    std::span<E820Entry const> memory_map;
    std::optional<GuestAddress> acpi_rsdp = {};  // none: the kernel scans the BIOS area for it
};

// Throws Error when the memory map has more entries than the zero page holds or the header is
// longer than its room in the zero page.
BootParams make_boot_params(ZeroPageContents const& contents);

// make_boot_params, written at zero_page_start. Returns that address, for RSI.
GuestAddress write_zero_page(GuestMemory const& memory, ZeroPageContents const& contents);

}  // namespace kvmlet::x86_64
