#pragma once
// A snapshot's guest memory file (Firecracker's "Full" memory file): every RAM region's bytes one
// after another, in address order, so byte i of the file is byte i of RAM counted across the
// regions. Pages that are all zeros are holes (the file is sparse); a restore maps the file
// MAP_PRIVATE (GuestMemory::map_private).
#include <cstdint>
#include <string>

#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::snapshot {

struct MemoryFileStats {
    std::uint64_t size = 0;           // the file's length (all of RAM)
    std::uint64_t written_bytes = 0;  // non-zero pages written; the rest are holes
};

// Writes (creates or replaces, mode 0600, then fsync) the file from RAM the guest cannot change
// meanwhile (its vCPUs parked). Throws Error.
MemoryFileStats write_memory_file(GuestMemory const& memory, std::string const& path);

}  // namespace kvmlet::snapshot
