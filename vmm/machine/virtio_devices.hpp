#pragma once
// The virtio devices a MachineConfig asks for, made by a table of factories, one per kind of
// config entry, in the order x86_64/layout.hpp promises: disks, network interfaces, console, rng, vsock.
// The machine wires each into a slot the same way and knows none of them by kind (the one that
// takes stdin says so: Device::takes_console_input).
#include <memory>
#include <vector>

#include "devices/legacy/byte_sink.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "vmm/machine/machine_config.hpp"

namespace kvmlet {

using VirtioDevices = std::vector<std::shared_ptr<virtio::Device>>;

// Throws Error (a setup error) when a device cannot be made: a disk that does not open, a TAP
// that cannot be created, a bad MAC.
VirtioDevices make_virtio_devices(MachineConfig const& config, ByteSink& console_out);

}  // namespace kvmlet
