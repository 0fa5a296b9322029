#pragma once
// The virtio devices a MachineConfig asks for, made by a table of factories, one per kind of
// config entry, in the order x86_64/layout.hpp promises: disks, network interfaces, console, rng.
// The machine wires each into a slot the same way; it knows none of them by kind, except the
// console, which the host's stdin feeds.
#include <memory>
#include <vector>

#include "devices/legacy/byte_sink.hpp"
#include "devices/virtio/console/console_device.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "vmm/machine/machine_config.hpp"

namespace kvmlet {

struct VirtioDevices {
    std::vector<std::shared_ptr<virtio::Device>> devices;
    std::shared_ptr<virtio::ConsoleDevice> console;  // also in `devices`; null without --console virtio
};

// Throws Error (a setup error) when a device cannot be made: a disk that does not open, a TAP
// that cannot be created, a bad MAC.
VirtioDevices make_virtio_devices(MachineConfig const& config, ByteSink& console_out);

}  // namespace kvmlet
