#pragma once
// One virtio device as the machine wires it on the MMIO transport: a 4 KiB register window on
// the MMIO bus, an irqfd on its own IOAPIC pin, one ioeventfd per queue (so a queue notification
// costs the vCPU no exit to userspace), and the executor that serves those notifications: the
// VMM thread's event loop for devices that never block, or a worker thread of its own for a
// device that does blocking I/O (disks).
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "devices/virtio/mmio_transport.hpp"
#include "vmm/base/event_fd.hpp"
#include "vmm/bus/io_bus.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/machine/irqfd_line.hpp"

namespace kvmlet {

enum class Executor { event_loop, worker_thread };

class VirtioSlot {
public:
    // Places the device in window `index` of the virtio-mmio area (x86_64/layout.hpp). Throws
    // Error when there is no IOAPIC pin left for it.
    VirtioSlot(VmFd const& vm, GuestMemory const& memory, IoBus& mmio, boost::asio::io_context& io,
               std::uint32_t index, std::shared_ptr<virtio::Device> device, Executor executor);
    VirtioSlot(VirtioSlot const&) = delete;
    VirtioSlot& operator=(VirtioSlot const&) = delete;
    ~VirtioSlot();

    // Starts serving queue notifications; stop() (or the destructor) ends it.
    void start();
    void stop() noexcept;

    virtio::MmioTransport& transport() noexcept { return *transport_; }
    // What tells Linux where the device is: virtio_mmio.device=<size>@<base>:<irq>.
    std::string kernel_cmdline() const;
    // How many slots fit: one IOAPIC pin each.
    static std::uint32_t capacity() noexcept;

private:
    void wait_for_notify(std::uint32_t queue);
    void serve_on_worker() noexcept;

    GuestAddress base_;
    std::uint32_t gsi_;
    IrqfdLine irq_;
    std::shared_ptr<virtio::MmioTransport> transport_;
    Executor executor_;
    std::vector<std::unique_ptr<EventFd>> notify_;
    std::vector<std::unique_ptr<boost::asio::posix::stream_descriptor>> waits_;
    EventFd stop_worker_;
    std::thread worker_;
};

}  // namespace kvmlet
