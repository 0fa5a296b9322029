#pragma once
// Finds the PVH entry point of an ELF kernel: the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (Xen
// include/public/elfnote.h), which Linux emits when built with CONFIG_PVH
// (arch/x86/platform/pvh/head.S). Notes are untrusted input; every size is checked against the
// note segment before it is used.
#include <cstddef>
#include <optional>
#include <span>

#include "firmware/elf_loader.hpp"
#include "vmm/base/guest_address.hpp"

namespace kvmlet::x86_64 {

// The 32-bit physical PVH entry point, or nullopt when no note segment holds the note. Walks every
// note in `notes` (ranges of `image` that load_elf checked); throws Error "kernel: malformed PVH
// note ..." (or "malformed ELF note" for a note of another type) when a note's sizes run past its
// segment, or the PVH note's description is not a 4- or 8-byte address below 4 GiB.
std::optional<GuestAddress> find_pvh_entry(std::span<std::byte const> image,
                                           std::span<firmware::ImageRange const> notes);

}  // namespace kvmlet::x86_64
