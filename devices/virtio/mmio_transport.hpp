#pragma once
// virtio over MMIO, version 2 (modern only; virtio 1.2 §4.2): the register file a driver uses to
// negotiate features, configure queues and set the status, plus the interrupt status register.
//
// Threads: vCPU threads call read()/write(); the device's executor (the event loop or a disk's
// worker) calls notify() when an ioeventfd fires. One mutex serialises everything that reaches
// the device, so devices are single-threaded; the interrupt status is an atomic so the guest's
// interrupt handler never waits for a request in progress.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "devices/irq_line.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "vmm/bus/bus_device.hpp"

namespace kvmlet::virtio {

class MmioTransport final : public BusDevice, private Interrupt {
public:
    static constexpr std::uint64_t window_size = 0x1000;
    static constexpr std::uint64_t queue_notify_offset = 0x50;

    // Where QueueNotify writes that KVM did not catch with an ioeventfd go; by default they are
    // served at once, on the vCPU thread (fine for tests).
    using NotifyHandler = std::function<void(std::uint32_t queue)>;

    MmioTransport(GuestMemory const& memory, std::shared_ptr<Device> device, IrqLine& irq);
    MmioTransport(MmioTransport const&) = delete;
    MmioTransport& operator=(MmioTransport const&) = delete;

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override;
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override;

    void set_notify_handler(NotifyHandler handler) { notify_handler_ = std::move(handler); }
    // The driver notified `queue`: let the device process it (if active).
    void notify(std::uint32_t queue) noexcept;

    // Runs f() with the device lock held: for calls into the device from the VMM's side (console
    // input, timers).
    template <class F>
    auto locked(F&& f) {
        std::lock_guard lock(mutex_);
        return f();
    }

    Device& device() const noexcept { return *device_; }
    std::uint32_t status() const noexcept;
    bool active() const noexcept;

private:
    std::uint32_t read_register(std::uint64_t offset) noexcept;
    void write_register(std::uint64_t offset, std::uint32_t value) noexcept;
    void write_queue_register(std::uint64_t offset, std::uint32_t value) noexcept;
    void write_status(std::uint32_t value) noexcept;
    bool features_acceptable() const noexcept;
    void activate() noexcept;
    void reset() noexcept;

    // Interrupt
    void used_buffers(std::size_t queue) noexcept override;
    void config_changed() noexcept override;
    void needs_reset() noexcept override;

    GuestMemory const& memory_;
    std::shared_ptr<Device> device_;
    IrqLine& irq_;
    NotifyHandler notify_handler_;

    mutable std::mutex mutex_;
    std::uint32_t status_ = 0;
    std::uint32_t device_features_sel_ = 0;
    std::uint32_t driver_features_sel_ = 0;
    std::uint64_t driver_features_ = 0;
    std::uint32_t queue_sel_ = 0;
    std::vector<QueueConfig> queues_;
    std::uint32_t config_generation_ = 0;
    bool active_ = false;
    std::atomic<std::uint32_t> interrupt_status_{0};
};

}  // namespace kvmlet::virtio
