#pragma once
// A bzImage (Documentation/arch/x86/boot.rst): the real-mode setup with its header, then the
// protected-mode kernel, which decompresses itself. kvmlet enters it through the 64-bit entry
// ("64-bit Boot Protocol"), so it needs protocol 2.12+ (xloadflags) and XLF_KERNEL_64. The image is
// untrusted input: parse_bzimage checks every field it uses before anything is written to the guest.
//
// Loading: the protected-mode kernel goes at 1 MiB (bzimage_load_address, boot.rst "Loading The
// Rest of The Kernel"), its 64-bit entry is 0x200 past that. It decompresses itself to its runtime
// start address (boot.rst "init_size"), which needs init_size bytes of contiguous RAM from there.
// code32_start keeps its default (0x100000, where it is loaded); CAN_USE_HEAP stays clear: the heap
// belongs to the real-mode setup code, which the 64-bit entry skips.
#include <cstddef>
#include <span>

#include "firmware/x86_64/boot_params.hpp"
#include "vmm/base/guest_address.hpp"

namespace kvmlet::x86_64 {

inline constexpr std::uint64_t bzimage_entry_64_offset = 0x200;

struct BzImage {
    SetupHeader header;                         // checked copy of the image's header
    std::span<std::byte const> setup_header;    // the image's bytes [0x1f1, header end), for the zero page
    std::span<std::byte const> protected_mode;  // loaded at bzimage_load_address
    GuestAddress runtime_start;                 // where it decompresses to
    std::uint64_t runtime_end;                  // runtime_start + init_size, checked not to wrap
};

// boot_flag 0xAA55 at 0x1fe and "HdrS" at 0x202.
bool is_bzimage(std::span<std::byte const> image) noexcept;

// Checks the header (version, header length, loadflags, xloadflags, setup_sects, syssize,
// kernel_alignment) and locates the protected-mode kernel. Throws Error "kernel: ...".
BzImage parse_bzimage(std::span<std::byte const> image);

}  // namespace kvmlet::x86_64
