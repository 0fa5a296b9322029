#pragma once
// What a snapshot says of the machine's shape (its "machine" section): the vCPUs, RAM, ACPI and
// virtio transport a restore builds before it loads the state into them.
#include "vmm/machine/machine_config.hpp"
#include "vmm/snapshot/snapshot_file.hpp"

namespace kvmlet {

// The section's bytes for `config`.
std::vector<std::byte> save_machine_shape(MachineConfig const& config);
// `config` with the snapshot's shape put in (everything else, such as the console, stays the
// caller's). Throws Error on a section that cannot be a machine kvmlet builds.
MachineConfig restored_config(MachineConfig config, snapshot::StateFile const& state);

}  // namespace kvmlet
