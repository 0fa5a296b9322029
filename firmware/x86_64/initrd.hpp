#pragma once
// Where the initrd goes: page-aligned, as high as it can, below the kernel's limit and the end of
// low RAM, above everything the kernel occupies while it boots (boot.rst: "an initrd should be
// placed near end of memory"; initrd_addr_max "the maximum address that may be occupied").
#include <cstddef>
#include <cstdint>
#include <span>

#include "vmm/base/guest_address.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

struct InitrdPlacement {
    GuestAddress start;
    std::uint64_t size;
};

// A kernel without a setup header (an ELF vmlinux) gets the limit every 64-bit kernel states in its
// header since 2.6.x: 2 GiB - 1.
inline constexpr std::uint64_t default_initrd_addr_max = 0x7fff'ffff;

// Chooses the highest page-aligned start such that [start, start + size) lies in
// [align_up(kernel_end), min(addr_max + 1, ram_end)). Throws Error "initrd: N MiB does not fit ..."
// when there is no such start.
InitrdPlacement place_initrd(std::uint64_t size, GuestAddress kernel_end, std::uint64_t addr_max,
                             GuestAddress ram_end);

// place_initrd, then copies the image there. Throws Error.
InitrdPlacement load_initrd(GuestMemory const& memory, std::span<std::byte const> initrd,
                            GuestAddress kernel_end, std::uint64_t addr_max);

}  // namespace kvmlet::x86_64
