#include "vmm/snapshot/dirty_pages.hpp"

#include <bit>

#include "vmm/base/error.hpp"

namespace kvmlet::snapshot {

std::uint64_t DirtyPages::count() const noexcept {
    std::uint64_t total = 0;
    for (auto const& bitmap : regions)
        for (auto word : bitmap) total += static_cast<std::uint64_t>(std::popcount(word));
    return total;
}

DirtyPages take_dirty_pages(VmFd const& vm, GuestMemory const& memory) {
    DirtyPages pages;
    auto const regions = memory.regions();
    for (std::size_t i = 0; i < regions.size(); ++i) {
        std::vector<std::uint64_t> bitmap = memory.take_dirty_pages(i);
        bitmap.resize(static_cast<std::size_t>((regions[i].size / GuestMemory::page_size + 63) / 64));
        std::vector<std::uint64_t> guest(bitmap.size());
        try {
            vm.dirty_log(static_cast<std::uint32_t>(i), guest);
        } catch (Error const&) {
            pages.regions.push_back(std::move(bitmap));
            give_back(memory, pages);
            throw;
        }
        for (std::size_t w = 0; w < bitmap.size(); ++w) bitmap[w] |= guest[w];
        pages.regions.push_back(std::move(bitmap));
    }
    return pages;
}

void give_back(GuestMemory const& memory, DirtyPages const& pages) noexcept {
    for (std::size_t i = 0; i < pages.regions.size(); ++i) memory.mark_dirty_pages(i, pages.regions[i]);
}

}  // namespace kvmlet::snapshot
