#pragma once
// The Uffd memory backend of a restore (Firecracker's `mem_backend` `Uffd`): guest RAM is left
// empty and registered with a userfaultfd for missing pages; the userfaultfd and a description of
// the regions go to a page-fault handler listening on a Unix socket, which fills each page the
// first time the guest (or KVM, or a device) touches it, typically from the snapshot's memory
// file. kvmlet never reads that file itself.
//
// The handshake (Firecracker's documented handler protocol): kvmlet connects to the socket and
// sends one message whose bytes are a JSON array, one object per region,
//   {"base_host_virt_addr": ADDRESS, "size": BYTES, "offset": OFFSET, "page_size": 4096,
//    "page_size_kib": 4}
// (OFFSET: the region's place in the memory file), with the userfaultfd as SCM_RIGHTS ancillary
// data. The connection stays open while the microVM lives.
#include <string>

#include "vmm/base/unique_fd.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::snapshot {

struct UffdBackend {
    UniqueFd uffd;
    UniqueFd connection;
};

// Registers every region of `memory` (none of whose pages may have been touched yet) and hands
// the userfaultfd to the handler at `socket_path`. Throws Error with one line (no userfaultfd on
// this host, no handler listening).
UffdBackend hand_to_uffd_handler(GuestMemory const& memory, std::string const& socket_path);

// The handshake's message (for tests).
std::string uffd_regions_json(GuestMemory const& memory);

}  // namespace kvmlet::snapshot
