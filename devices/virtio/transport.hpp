#pragma once
// What the virtio transports (MMIO §4.2, PCI §4.1) share: the device status, feature negotiation,
// the queue configurations the driver writes, and activation at DRIVER_OK. The transports add
// their register layout and their way of interrupting the driver.
//
// Threads: vCPU threads read and write registers under the register mutex (`mutex_`); the
// device's executor (the event loop or a disk's worker) calls notify(), which takes only the
// device mutex. Everything that reaches the device runs under the device mutex, so devices are
// single-threaded code; activation and reset take both (register mutex first), so a vCPU waits
// for a device's I/O in flight only when it activates or resets it, never to read a register.
// A device's read_config() must therefore not depend on what process_queue() changes, and its
// interrupts (Interrupt, on the executor) touch only atomics and the MSI-X state (own lock).
// Members marked "mutex held" expect the caller to hold the register mutex.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "devices/virtio/virtio_device.hpp"

namespace kvmlet::virtio {

class Transport : protected Interrupt {
public:
    // Where queue notifications that KVM did not catch with an ioeventfd go; by default they are
    // served at once, on the vCPU thread (fine for tests).
    using NotifyHandler = std::function<void(std::uint32_t queue)>;

    Transport(GuestMemory const& memory, std::shared_ptr<Device> device, char const* name);
    Transport(Transport const&) = delete;
    Transport& operator=(Transport const&) = delete;
    ~Transport() override = default;

    void set_notify_handler(NotifyHandler handler) { notify_handler_ = std::move(handler); }
    // What the device gets as its host at activation (the VMM's slot). Without one (unit tests of
    // the transport) the device's requests are dropped with a warning.
    void set_device_host(DeviceHost& host) noexcept { host_ = &host; }
    // The driver notified `queue`: let the device process it (if active). `more`: call again.
    Work notify(std::uint32_t queue) noexcept;

    // Runs f() with the device mutex held: for calls into the device from the VMM's side (console
    // input, timers, backends).
    template <class F>
    auto locked(F&& f) {
        std::lock_guard lock(device_mutex_);
        return f();
    }

    // Runs f() with both mutexes held (registers first): for a change of the device's
    // configuration space from the VMM's side. vCPUs reading registers meanwhile wait.
    template <class F>
    auto locked_with_registers(F&& f) {
        std::lock_guard registers(mutex_);
        std::lock_guard lock(device_mutex_);
        return f();
    }

    // Host input for a device that takes console input (Device::console_input), under the device
    // mutex; 0 while frozen (the caller offers it again later).
    std::size_t console_input(std::span<std::byte const> bytes) noexcept;

    // Snapshots: while frozen the device is not called to serve its queues (notifications, kicks,
    // its worker and console input find nothing to do), so guest RAM and the device's state stay
    // as the snapshot saves them, from the device state to the last page of the memory file.
    // freeze() waits for a call in progress. thaw() serves every queue once, for the
    // notifications and kicks that came meanwhile. Any thread.
    void freeze() noexcept;
    void thaw() noexcept;

    Device& device() const noexcept { return *device_; }
    std::uint32_t queue_count() const noexcept { return static_cast<std::uint32_t>(queues_.size()); }
    std::uint32_t status() const noexcept;
    bool active() const noexcept;

protected:
    // Mutex held for everything below.
    std::uint64_t offered_features() const noexcept;
    // 32-bit word `select` of the offered / accepted features (0 beyond the second word).
    std::uint32_t device_features_word(std::uint32_t select) const noexcept;
    std::uint32_t driver_features_word(std::uint32_t select) const noexcept;
    // Ignored once FEATURES_OK is set (§3.1.1).
    void write_driver_features_word(std::uint32_t select, std::uint32_t value) noexcept;
    // 0 resets; otherwise bits are only added (§2.1.1), FEATURES_OK only when acceptable, and
    // DRIVER_OK activates the device.
    void write_status(std::uint32_t value) noexcept;
    std::uint64_t driver_features() const noexcept { return driver_features_; }
    std::uint32_t status_locked() const noexcept { return status_; }
    bool active_locked() const noexcept { return active_; }
    // The queue `index` while the driver may still configure it (before DRIVER_OK; the caller
    // checks `ready`): nullptr otherwise, or when there is no such queue.
    QueueConfig* configurable_queue(std::uint32_t index) noexcept;
    QueueConfig const* queue_config(std::uint32_t index) const noexcept;
    void dispatch_notify(std::uint32_t queue) noexcept;  // any thread, no lock needed
    // After a register write, with the mutex released: a device that has just been activated
    // gets a notification for each queue (through the notify handler, so on its executor), for
    // the buffers the driver made available before DRIVER_OK.
    void after_register_write() noexcept;

    // Interrupt: set DEVICE_NEEDS_RESET, then tell the driver through config_changed().
    void needs_reset() noexcept override;
    // The transport's own state to clear on reset (mutex held).
    virtual void reset_transport() noexcept {}

    // Snapshots (docs/snapshot.md), the part both transports share: the status, the accepted
    // features, every queue's configuration and, while the device is active, every queue's
    // indices. save_shared() expects both mutexes held. load_shared() runs on a fresh transport
    // before anything runs: it puts the registers back and, when the driver had the device
    // running, activates it with the saved indices; the queues are served at the next
    // after_register_write(). It throws Error (StateReader) on state this transport cannot have
    // had: a queue count that is not the device's, accepted features it would have refused, an
    // active device without DRIVER_OK, a request in flight, a queue that fails activation.
    void save_shared(StateWriter& out) const;
    void load_shared(StateReader& in);

    char const* name_;
    mutable std::mutex mutex_;         // registers
    mutable std::mutex device_mutex_;  // the device: after mutex_ when both are taken

private:
    bool features_acceptable() const noexcept;
    void activate() noexcept;
    Result<std::vector<SplitQueue>> activate_queues() noexcept;
    void activate_restored(StateReader& in, std::vector<QueueIndices> const& indices);
    void reset() noexcept;

    class DetachedHost final : public DeviceHost {
    public:
        explicit DetachedHost(Transport& transport) noexcept : transport_(transport) {}
        void watch(int, Readiness, Callback) noexcept override;
        void after(std::chrono::nanoseconds, Callback) noexcept override;
        void post(Callback) noexcept override;
        void kick(std::size_t queue) noexcept override;

    private:
        Transport& transport_;
    };

    GuestMemory const& memory_;
    std::shared_ptr<Device> device_;
    DetachedHost detached_host_{*this};
    DeviceHost* host_ = &detached_host_;
    NotifyHandler notify_handler_;
    std::atomic<std::uint32_t> status_{0};  // DEVICE_NEEDS_RESET may come from the executor
    std::uint64_t driver_features_ = 0;
    std::vector<QueueConfig> queues_;
    bool active_ = false;                   // written under both mutexes
    bool frozen_ = false;                   // device mutex
    std::atomic<bool> kick_queues_{false};  // set at activation, taken by after_register_write()
};

}  // namespace kvmlet::virtio
