#pragma once
// virtio over MMIO, version 2 (modern only; virtio 1.2 §4.2): the register file a driver uses to
// negotiate features, configure queues and set the status, plus the interrupt status register.
// The state both transports share is in transport.hpp; the interrupt status here is an atomic
// so the guest's interrupt handler never waits for a request in progress.
#include <atomic>
#include <cstdint>
#include <memory>

#include "devices/irq_line.hpp"
#include "devices/virtio/mmio_spec.hpp"
#include "devices/virtio/transport.hpp"
#include "vmm/base/state_stream.hpp"
#include "vmm/bus/bus_device.hpp"

namespace kvmlet::virtio {

// A snapshot's section (virtio.N, docs/snapshot.md) is the shared state (Transport::save_shared),
// then this transport's registers, then the device's own state; the device's kind must be
// saveable (the machine refuses a snapshot otherwise).
class MmioTransport final : public BusDevice, public Transport, public Persistent {
public:
    static constexpr std::uint64_t window_size = 0x1000;
    static constexpr std::uint64_t queue_notify_offset = mmio::reg::queue_notify;

    MmioTransport(GuestMemory const& memory, std::shared_ptr<Device> device, IrqLine& irq);

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override;
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override;

    // Persistent. load() serves every queue of a device it activated once (on the executor,
    // when the slot starts), for what the driver made available while the guest was saved.
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;

private:
    std::uint32_t read_register(std::uint64_t offset) noexcept;
    void write_register(std::uint64_t offset, std::uint32_t value) noexcept;
    void write_queue_register(std::uint64_t offset, std::uint32_t value) noexcept;
    void reset_transport() noexcept override;

    // Interrupt
    void used_buffers(std::size_t queue) noexcept override;
    void config_changed() noexcept override;

    IrqLine& irq_;
    std::uint32_t device_features_sel_ = 0;
    std::uint32_t driver_features_sel_ = 0;
    std::uint32_t queue_sel_ = 0;
    std::atomic<std::uint32_t> config_generation_{0};  // bumped by config_changed() on the executor
    std::atomic<std::uint32_t> interrupt_status_{0};
};

}  // namespace kvmlet::virtio
