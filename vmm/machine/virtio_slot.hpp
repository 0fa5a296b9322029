#pragma once
// One virtio device as the machine wires it, on either transport:
// - MMIO: a 4 KiB register window, an irqfd on its own IOAPIC pin, one ioeventfd per queue at the
//   QueueNotify register (datamatch = queue index);
// - PCI: a function on the root bus with one BAR; MSI-X vectors as irqfds on GSIs of their own,
//   INTx as a resampling (level) irqfd on the slot's pin, and one ioeventfd per queue in the
//   notification region, moved whenever the guest moves the BAR.
// Either way a queue notification costs the vCPU no exit to userspace, and it is served by the
// slot's executor: the VMM thread's event loop for devices that never block, or a worker thread
// of its own for a device that does blocking I/O (Device::blocking(): disks). The slot is also
// the device's host (device_host.hpp): the fds it watches, its timers and posted work run on the
// event loop under the device lock.
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "devices/pci/pci_bus.hpp"
#include "devices/virtio/transport.hpp"
#include "vmm/base/event_fd.hpp"
#include "vmm/bus/io_bus.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/machine/gsi_routes.hpp"
#include "vmm/machine/irqfd_line.hpp"

namespace kvmlet {

struct VirtioSlotContext {
    VmFd const& vm;
    GuestMemory const& memory;
    boost::asio::io_context& io;
};

class VirtioSlot {
public:
    // Window `index` of the virtio-mmio area (x86_64/layout.hpp). Throws Error when there is no
    // IOAPIC pin left for it.
    static std::unique_ptr<VirtioSlot> on_mmio(VirtioSlotContext const& context, IoBus& mmio,
                                               std::uint32_t index, std::shared_ptr<virtio::Device> device);
    // The next free slot of `bus`. Throws Error when the bus is full.
    static std::unique_ptr<VirtioSlot> on_pci(VirtioSlotContext const& context, pci::PciBus& bus,
                                              GsiRoutes& routes, std::shared_ptr<virtio::Device> device);
    VirtioSlot(VirtioSlot const&) = delete;
    VirtioSlot& operator=(VirtioSlot const&) = delete;
    ~VirtioSlot();

    // Starts serving queue notifications (and INTx resamples); stop() (or the destructor) ends it.
    void start();
    void stop() noexcept;

    virtio::Transport& transport() noexcept { return *transport_; }
    // Has `queue` served on the slot's executor, as if the driver had notified it (a device's
    // timer, a backend that became ready). Any thread.
    void kick(std::uint32_t queue) noexcept;

    struct MmioPlacement {
        GuestAddress base;
        std::uint64_t size;
        std::uint32_t gsi;
    };
    std::optional<MmioPlacement> mmio_placement() const noexcept { return mmio_; }
    std::optional<std::uint8_t> pci_slot() const noexcept { return pci_slot_; }
    // MMIO only: what tells a kernel without ACPI where the device is:
    // virtio_mmio.device=<size>@<base>:<irq>.
    std::string kernel_cmdline() const;
    // How many MMIO slots fit: one IOAPIC pin each.
    static std::uint32_t mmio_capacity() noexcept;

private:
    enum class Executor { event_loop, worker_thread };

    // DeviceHost for the slot's device: everything runs on the event loop, under the device lock.
    class Host final : public virtio::DeviceHost {
    public:
        explicit Host(VirtioSlot& slot) noexcept : slot_(slot) {}
        void watch(int fd, Readiness readiness, Callback ready) noexcept override;
        void after(std::chrono::nanoseconds delay, Callback due) noexcept override;
        void post(Callback work) noexcept override;
        void kick(std::size_t queue) noexcept override;

    private:
        void run_locked(Callback const& callback) noexcept;
        VirtioSlot& slot_;
        // One descriptor (a duplicate) per watched fd number, with the identity of the file it was
        // made from: a number the device closed and reused for another file gets a new duplicate.
        // Used only on the event loop's thread.
        struct Watched {
            std::unique_ptr<boost::asio::posix::stream_descriptor> descriptor;
            dev_t device = 0;
            ino_t inode = 0;
        };
        std::map<int, Watched> watched_;
    };

    static Executor executor_for(virtio::Device const& device) noexcept;
    VirtioSlot(VirtioSlotContext const& context, Executor executor, std::uint32_t queues);
    void attach(std::shared_ptr<virtio::Transport> transport);
    void move_notify_region(std::optional<std::uint64_t> base) noexcept;
    void wait_for_notify(std::uint32_t queue);
    void serve(std::uint32_t queue);
    void wait_for_resample();
    void serve_on_worker() noexcept;

    VmFd const& vm_;
    boost::asio::io_context& io_;
    Executor executor_;
    std::vector<std::unique_ptr<EventFd>> notify_;
    std::vector<std::unique_ptr<boost::asio::posix::stream_descriptor>> waits_;
    std::vector<bool> again_posted_;  // event loop: a call for more work of that queue is posted
    EventFd stop_worker_;
    std::thread worker_;
    std::shared_ptr<virtio::Transport> transport_;
    Host host_{*this};

    // MMIO
    std::optional<MmioPlacement> mmio_;
    std::unique_ptr<IrqfdLine> irq_;
    // PCI
    std::optional<std::uint8_t> pci_slot_;
    std::unique_ptr<KvmMsiRouter> msi_;
    std::unique_ptr<LevelIrqfdLine> intx_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> resample_wait_;
    std::mutex notify_region_mutex_;
    std::optional<std::uint64_t> notify_region_;
};

}  // namespace kvmlet
