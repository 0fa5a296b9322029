#pragma once
// Loads an ELF64 x86-64 executable (a tiny guest, or a Linux vmlinux) into guest RAM at the
// physical addresses its PT_LOAD segments name. The image is untrusted input: every field is
// checked before the first byte of guest RAM is written, and every failure throws one
// "kernel: ..." line (STYLE.md §4).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::firmware {

// A byte range of the image, checked to lie inside it.
struct ImageRange {
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
};

// A guest-physical range [start, end) that no segment may touch; `name` goes into the error.
struct ReservedRange {
    GuestAddress start;
    GuestAddress end;
    char const* name;
};

struct LoadedKernel {
    GuestAddress entry;  // physical: see load_elf
    GuestAddress start;  // lowest p_paddr of any loaded segment
    GuestAddress end;    // one past the highest p_paddr + p_memsz
    // PT_NOTE segments, for loaders that look for notes (e.g. the Xen PVH entry note).
    std::vector<ImageRange> notes;
};

// True when the image starts with the ELF magic, so a caller can choose a loader.
bool is_elf(std::span<std::byte const> image) noexcept;

// Loads every non-empty PT_LOAD segment at p_paddr: copies p_filesz bytes from the image and
// zero-fills up to p_memsz. Segments must lie in guest RAM, outside every reserved range, and must
// not overlap one another. Throws Error; guest RAM is untouched unless every check passes.
//
// The entry point is e_entry translated from virtual to physical through the segment whose
// [p_vaddr, p_vaddr + p_memsz) holds it; failing that, e_entry is taken as already physical when a
// segment's [p_paddr, p_paddr + p_memsz) holds it. Linux's vmlinux needs the second rule: its
// linker script says ENTRY(phys_startup_64), so e_entry is the physical address of startup_64
// (0x1000000) while its segments run at virtual 0xffffffff81000000.
LoadedKernel load_elf(GuestMemory const& memory, std::span<std::byte const> image,
                      std::span<ReservedRange const> reserved);

// Shorthand for one reserved range: [0, lowest_allowed), kvmlet's firmware area.
LoadedKernel load_elf(GuestMemory const& memory, std::span<std::byte const> image,
                      GuestAddress lowest_allowed);

}  // namespace kvmlet::firmware
