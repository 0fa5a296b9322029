#pragma once
// What every virtio device holds between DRIVER_OK and reset, in one value (as Firecracker's
// ActiveState and Cloud Hypervisor's VirtioCommon): guest memory, the validated queues, the
// features the driver accepted, how to interrupt it and the device's host. A device keeps a
// std::optional<ActiveState>: engaged while active, reset() disengages it.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "devices/virtio/virtio_device.hpp"

namespace kvmlet::virtio {

class ActiveState {
public:
    explicit ActiveState(Activation activation) noexcept;

    GuestMemory const& memory() const noexcept { return *memory_; }
    SplitQueue& queue(std::size_t index) noexcept { return queues_[index]; }
    std::size_t queue_count() const noexcept { return queues_.size(); }
    std::uint64_t features() const noexcept { return features_; }
    bool has(std::uint32_t feature_bit) const noexcept { return (features_ & bit(feature_bit)) != 0; }
    Interrupt& interrupt() const noexcept { return *interrupt_; }
    DeviceHost& host() const noexcept { return *host_; }

    // The tail of every pass over a queue: a broken queue asks for DEVICE_NEEDS_RESET, once per
    // activation (§2.1.2); otherwise the driver gets an interrupt if it wants one (§2.7.7.2).
    void signal(std::size_t queue) noexcept;
    // Every queue's indices, in order (Device::queue_indices).
    std::vector<QueueIndices> indices() const;

private:
    GuestMemory const* memory_;
    std::vector<SplitQueue> queues_;
    std::uint64_t features_;
    Interrupt* interrupt_;
    DeviceHost* host_;
    bool reset_requested_ = false;
};

}  // namespace kvmlet::virtio
