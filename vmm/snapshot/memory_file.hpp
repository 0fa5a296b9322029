#pragma once
// A snapshot's guest memory file (Firecracker's layout): every RAM region's bytes one after
// another, in address order, so byte i of the file is byte i of RAM counted across the regions.
// Full: pages that are all zeros are holes (the file is sparse). Diff: only the pages dirtied since
// the last snapshot are written, zeros or not, every other page a hole; merged onto its base Full
// file (merge_memory_file) it is a Full file again. A restore maps the file MAP_PRIVATE
// (GuestMemory::map_private).
#include <cstdint>
#include <string>

#include "vmm/memory/guest_memory.hpp"
#include "vmm/snapshot/dirty_pages.hpp"

namespace kvmlet::snapshot {

struct MemoryFileStats {
    std::uint64_t size = 0;           // the file's length (all of RAM)
    std::uint64_t written_bytes = 0;  // pages written (Full: the non-zero ones); the rest are holes
};

// Writes (creates or replaces, mode 0600, then fsync) the file from RAM the guest cannot change
// meanwhile (its vCPUs parked): a Full file, or with `diff` a Diff file of those pages only.
// Throws Error.
MemoryFileStats write_memory_file(GuestMemory const& memory, std::string const& path,
                                  DirtyPages const* diff = nullptr);

// Writes the Diff file's data (its pages that are not holes) over the base file at the same
// offsets, then fsyncs it: base becomes the memory file of the Diff's snapshot (Firecracker's
// snapshot-editor `edit-memory rebase`). Both must be regular files of one size, and not the same
// file. Throws Error; returns the bytes copied.
std::uint64_t merge_memory_file(std::string const& base, std::string const& diff);

}  // namespace kvmlet::snapshot
