#pragma once
// The files a machine reads: kernel, initrd and disk images, checked by kind (stat(2) only)
// before /dev/kvm is opened or anything is built, so a FIFO, device node, directory or socket
// given by mistake is one error line at once, on any host. Machine opens them later with the same
// check (open_input_file), which also covers a path changed in between.
#include "vmm/machine/machine_config.hpp"

namespace kvmlet {

// Throws Error naming the option and the path, as the open in Machine would:
// "kernel: /tmp/x: not a regular file (a FIFO)", "disk /tmp/y: No such file or directory".
void check_input_files(MachineConfig const& config);

}  // namespace kvmlet
