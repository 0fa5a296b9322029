#include "firmware/x86_64/e820.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

void add_low_ram(std::vector<E820Entry>& map, std::uint64_t end) {
    map.push_back({0, std::min(end, bios_area_start.value), e820_ram});
    map.push_back({bios_area_start.value, bios_area_end.value - bios_area_start.value, e820_reserved});
    if (end > bios_area_end.value) map.push_back({bios_area_end.value, end - bios_area_end.value, e820_ram});
}

bool overlaps(E820Entry const& e, std::uint64_t start, std::uint64_t size) {
    return start < e.addr + e.size && e.addr < start + size;
}

void add_reservation(std::vector<E820Entry>& map, E820Reservation const& r) {
    if (r.size == 0 || !r.start.checked_add(r.size))
        throw Error(fmt::format("e820: reserved range at {:#x} of {:#x} bytes is empty or wraps",
                                r.start.value, r.size));
    for (auto const& e : map)
        if (overlaps(e, r.start.value, r.size))
            throw Error(fmt::format("e820: reserved range [{:#x}, {:#x}) overlaps [{:#x}, {:#x})",
                                    r.start.value, r.start.value + r.size, std::uint64_t{e.addr},
                                    e.addr + e.size));
    map.push_back({r.start.value, r.size, e820_reserved});
}

}  // namespace

std::vector<E820Entry> e820_map(GuestMemory const& memory, std::span<E820Reservation const> reserved) {
    std::vector<E820Entry> map;
    for (auto const& region : memory.regions()) {
        if (region.start.value == 0)
            add_low_ram(map, region.size);
        else
            map.push_back({region.start.value, region.size, e820_ram});
    }
    for (auto const& r : reserved) add_reservation(map, r);
    std::sort(map.begin(), map.end(), [](E820Entry const& a, E820Entry const& b) { return a.addr < b.addr; });
    if (map.size() > e820_max_entries_zeropage)
        throw Error(fmt::format("e820: {} memory ranges, the zero page holds at most {}", map.size(),
                                e820_max_entries_zeropage));
    return map;
}

GuestAddress low_ram_end(GuestMemory const& memory) {
    for (auto const& region : memory.regions()) {
        if (region.start.value == 0) return GuestAddress{region.size};
    }
    throw Error("e820: guest RAM does not start at address 0");
}

}  // namespace kvmlet::x86_64
