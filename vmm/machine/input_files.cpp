#include "vmm/machine/input_files.hpp"

#include <fmt/format.h>

#include "vmm/base/input_file.hpp"

namespace kvmlet {

// The contexts are those of MappedFile ("kernel: PATH") and Disk ("disk PATH"); a restore has
// no kernel to load, only the snapshot's two files.
void check_input_files(MachineConfig const& config) {
    if (config.restore) {
        check_input_kind(config.restore->state, InputKinds::regular_file,
                         fmt::format("snapshot {}", config.restore->state.string()));
        if (!config.restore->uffd)  // else a handler's socket
            check_input_kind(config.restore->memory, InputKinds::regular_file,
                             fmt::format("memory file {}", config.restore->memory.string()));
        return;
    }
    check_input_kind(config.kernel, InputKinds::regular_file,
                     fmt::format("kernel: {}", config.kernel.string()));
    if (config.initrd)
        check_input_kind(*config.initrd, InputKinds::regular_file,
                         fmt::format("initrd: {}", config.initrd->string()));
    for (DiskConfig const& disk : config.disks)
        check_input_kind(disk.path, InputKinds::regular_file_or_block_device,
                         fmt::format("disk {}", disk.path));
}

}  // namespace kvmlet
