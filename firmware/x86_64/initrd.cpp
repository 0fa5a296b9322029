#include "firmware/x86_64/initrd.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "firmware/x86_64/e820.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

constexpr std::uint64_t page_size = 4 * KiB;

std::uint64_t align_down(std::uint64_t value) {
    return value & ~(page_size - 1);
}

// nullopt when rounding up wraps around 2^64.
std::optional<std::uint64_t> align_up(std::uint64_t value) {
    if (value > UINT64_MAX - (page_size - 1)) return std::nullopt;
    return align_down(value + page_size - 1);
}

std::uint64_t mib_rounded_up(std::uint64_t size) {
    return size / MiB + (size % MiB != 0 ? 1 : 0);
}

}  // namespace

InitrdPlacement place_initrd(std::uint64_t size, GuestAddress kernel_end, std::uint64_t addr_max,
                             GuestAddress ram_end) {
    // addr_max is the highest byte the initrd may occupy, so the limit is one past it.
    std::uint64_t const limit = addr_max < ram_end.value ? addr_max + 1 : ram_end.value;
    auto const floor = align_up(kernel_end.value);
    if (!floor || *floor > limit || size > limit - *floor)
        throw Error(
            fmt::format("initrd: {} MiB does not fit in guest RAM between the kernel (ends at {:#x}) "
                        "and {:#x} (use more --memory)",
                        mib_rounded_up(size), kernel_end.value, limit));
    return InitrdPlacement{GuestAddress{align_down(limit - size)}, size};
}

InitrdPlacement load_initrd(GuestMemory const& memory, std::span<std::byte const> initrd,
                            GuestAddress kernel_end, std::uint64_t addr_max) {
    auto const placement = place_initrd(initrd.size(), kernel_end, addr_max, low_ram_end(memory));
    if (!memory.write_bytes(placement.start, initrd))
        throw Error(
            fmt::format("initrd: [{:#x}, +{:#x}) is not in guest RAM", placement.start.value, initrd.size()));
    return placement;
}

}  // namespace kvmlet::x86_64
