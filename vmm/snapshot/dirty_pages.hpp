#pragma once
// The pages of guest RAM changed since the last snapshot (Diff snapshots, docs/snapshot.md): KVM's
// dirty log of each RAM slot (what the guest wrote, and what KVM wrote for it such as kvmclock's
// page) together with the VMM's own marks (GuestMemory: what devices and loaders wrote).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vmm/kvm/vm_fd.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::snapshot {

struct DirtyPages {
    // One bitmap per GuestMemory region, one bit per page (KVM_GET_DIRTY_LOG's layout).
    std::vector<std::vector<std::uint64_t>> regions;

    bool dirty(std::size_t region, std::uint64_t page) const noexcept {
        return region < regions.size() && page / 64 < regions[region].size() &&
               (regions[region][page / 64] >> (page % 64) & 1) != 0;
    }
    std::uint64_t count() const noexcept;
};

// Takes both logs, clearing them: the next take has what changed after this one. Region i must be
// KVM memory slot i, registered with dirty logging (Machine::create_memory). Throws Error; what
// was taken before a failure is given back first.
DirtyPages take_dirty_pages(VmFd const& vm, GuestMemory const& memory);

// Marks `pages` again in the VMM's log, so that the next take has them too: for a snapshot that
// failed after its take.
void give_back(GuestMemory const& memory, DirtyPages const& pages) noexcept;

}  // namespace kvmlet::snapshot
