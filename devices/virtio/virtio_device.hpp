#pragma once
// What a virtio device implements, independent of its transport (MMIO now, PCI later). The
// transport owns the register file and feature negotiation; at DRIVER_OK it validates the queues
// and hands them to the device. A transport serialises every call into the device with one lock,
// so a device is single-threaded code.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "devices/virtio/device_host.hpp"
#include "devices/virtio/queue.hpp"
#include "devices/virtio/virtio_spec.hpp"
#include "vmm/base/state_stream.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::virtio {

// How a device interrupts its driver; the transport implements it (MMIO: the interrupt status
// register and an IrqLine; PCI: an MSI-X vector per queue).
class Interrupt {
public:
    virtual ~Interrupt() = default;
    virtual void used_buffers(std::size_t queue) noexcept = 0;
    virtual void config_changed() noexcept = 0;
    // A queue broke: set DEVICE_NEEDS_RESET and tell the driver (§2.1.2).
    virtual void needs_reset() noexcept = 0;
};

// What a device gets at DRIVER_OK (kept in an ActiveState, active_state.hpp).
struct Activation {
    GuestMemory const& memory;
    std::vector<SplitQueue> queues;  // one per queue_max_sizes() entry, already validated
    std::uint64_t features;          // what the driver accepted
    Interrupt& interrupt;
    DeviceHost& host;  // the device's wake-ups: fds, timers, work
};

// Copies `data.size()` bytes of a configuration space from `offset`; zeros past its end.
void read_config_space(std::span<std::byte const> space, std::uint64_t offset,
                       std::span<std::byte> data) noexcept;

// One counter of a device's metrics, named as Firecracker's metrics name it where it has one
// (block read_bytes, net rx_packets_count, ...). Counters only grow while the device lives.
struct Metric {
    std::string_view name;
    std::uint64_t value;
};

// What a call into a device left undone. Every call does a bounded amount of work (chains and
// bytes, then it stops: STYLE.md §5.3), so no guest can keep a thread from the rest of its work:
// `more` means it stopped at that bound with work still waiting, and its executor calls it again
// after serving whatever else is ready (other queues, signals, timers, console input).
enum class Work { done, more };

class Device {
public:
    virtual ~Device() = default;

    virtual DeviceType type() const noexcept = 0;
    // Feature bits the device offers (VERSION_1 is added by the transport).
    virtual std::uint64_t features() const noexcept = 0;
    // The maximum size of each queue; the count is the number of queues.
    virtual std::span<std::uint16_t const> queue_max_sizes() const noexcept = 0;

    // Device configuration space (§4.2.2 offset 0x100 onwards on MMIO). Out-of-range reads
    // return zeros; writes to read-only fields are ignored.
    virtual void read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept = 0;
    virtual void write_config(std::uint64_t offset, std::span<std::byte const> data) noexcept {
        (void)offset, (void)data;
    }

    // DRIVER_OK. Returns false when the device cannot start (the transport then sets
    // DEVICE_NEEDS_RESET).
    virtual bool activate(Activation activation) noexcept = 0;
    // The driver notified `queue` (only called while active). Also called once per queue right
    // after activation, for what the driver queued before DRIVER_OK.
    virtual Work process_queue(std::size_t queue) noexcept = 0;
    // Status 0 written: drop the queues and return to the initial state.
    virtual void reset() noexcept = 0;
    // Whether process_queue may block (file I/O): the device then gets a worker thread of its
    // own; otherwise it runs on the VMM thread's event loop and must never block.
    virtual bool blocking() const noexcept { return false; }
    // Whether the device takes the host's console input (stdin); the VMM then calls
    // console_input() with the device lock held. Returns how many bytes it took (0 while it cannot
    // take any: the caller keeps them and offers them again).
    virtual bool takes_console_input() const noexcept { return false; }
    // The device's counters, for metrics. Any thread, without the device lock: counters are
    // atomic (counter.hpp).
    virtual std::vector<Metric> metrics() const { return {}; }
    virtual std::size_t console_input(std::span<std::byte const> bytes) noexcept {
        (void)bytes;
        return 0;
    }

    // Snapshots (docs/snapshot.md). A device whose kind can be saved says so and keeps its own
    // state in two methods: save() runs with the device lock held while the guest is paused;
    // load() runs on a freshly built device once the transport has put its registers and queues
    // back (and activated the device, if the driver had), before anything runs, and throws Error
    // (through StateReader) on state that cannot be the device's.
    virtual bool saveable() const noexcept { return false; }
    virtual void save(StateWriter& out) const { (void)out; }
    virtual void load(StateReader& in) { (void)in; }
    // While active: where each queue stands for a snapshot. A snapshot holds no request in
    // flight: a device gives back the requests it took and has not started (next_avail rewound
    // over them, so a restore takes them again) and finishes the others before it is saved.
    virtual std::vector<QueueIndices> queue_indices() const { return {}; }
};

}  // namespace kvmlet::virtio
