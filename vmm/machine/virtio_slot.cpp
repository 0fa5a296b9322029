#include "vmm/machine/virtio_slot.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>

#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/pci_transport.hpp"
#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/security/seccomp.hpp"

namespace kvmlet {
namespace {

std::uint32_t mmio_pin(std::uint32_t index) {
    if (index >= VirtioSlot::mmio_capacity())
        throw Error(fmt::format("too many virtio devices: at most {} on the MMIO transport",
                                VirtioSlot::mmio_capacity()));
    return x86_64::virtio_mmio_first_irq + index;
}

// A virtio-pci notification is a 16-bit write of the queue index (§4.1.5.2).
constexpr std::uint32_t pci_notify_width = 2;

log::RateLimit ioeventfd_log{5, std::chrono::seconds(10)};

// boost::asio::post allocates; out of memory the request is lost, and said.
template <class F>
bool post_safely(boost::asio::io_context& io, F&& f) noexcept {
    try {
        boost::asio::post(io, std::forward<F>(f));
        return true;
    } catch (std::exception const& e) {
        log::error("virtio: cannot queue work on the event loop: {}", e.what());
        return false;
    }
}

}  // namespace

std::uint32_t VirtioSlot::mmio_capacity() noexcept {
    return x86_64::virtio_mmio_last_irq - x86_64::virtio_mmio_first_irq + 1;
}

VirtioSlot::VirtioSlot(VirtioSlotContext const& context, Executor executor, std::uint32_t queues)
    : vm_(context.vm), io_(context.io), executor_(executor) {
    for (std::uint32_t q = 0; q < queues; ++q) {
        notify_.push_back(std::make_unique<EventFd>());
        if (executor_ == Executor::event_loop)
            waits_.push_back(
                std::make_unique<boost::asio::posix::stream_descriptor>(io_, ::dup(notify_.back()->fd())));
    }
    again_posted_.assign(queues, false);
}

void VirtioSlot::kick(std::uint32_t queue) noexcept {
    if (queue < notify_.size()) notify_[queue]->signal();
}

VirtioSlot::Executor VirtioSlot::executor_for(virtio::Device const& device) noexcept {
    return device.blocking() ? Executor::worker_thread : Executor::event_loop;
}

std::unique_ptr<VirtioSlot> VirtioSlot::on_mmio(VirtioSlotContext const& context, IoBus& mmio,
                                                std::uint32_t index, std::shared_ptr<virtio::Device> device) {
    auto const queues = static_cast<std::uint32_t>(device->queue_max_sizes().size());
    std::unique_ptr<VirtioSlot> slot(new VirtioSlot(context, executor_for(*device), queues));
    GuestAddress const base{x86_64::virtio_mmio_start.value + index * x86_64::virtio_mmio_stride};
    std::uint32_t const gsi = mmio_pin(index);
    slot->mmio_ = MmioPlacement{base, virtio::MmioTransport::window_size, gsi};
    slot->irq_ = std::make_unique<IrqfdLine>(context.vm, gsi);
    auto transport = std::make_shared<virtio::MmioTransport>(context.memory, std::move(device), *slot->irq_);
    mmio.insert(transport, base.value, virtio::MmioTransport::window_size);
    for (std::uint32_t q = 0; q < queues; ++q)
        context.vm.register_ioeventfd(slot->notify_[q]->fd(),
                                      base.value + virtio::MmioTransport::queue_notify_offset, 4, false, q);
    slot->attach(std::move(transport));
    return slot;
}

// A notification KVM did not catch (none should slip through) takes the same path as one it did.
void VirtioSlot::attach(std::shared_ptr<virtio::Transport> transport) {
    transport->set_notify_handler([this](std::uint32_t queue) { notify_[queue]->signal(); });
    transport->set_device_host(host_);
    transport_ = std::move(transport);
}

std::unique_ptr<VirtioSlot> VirtioSlot::on_pci(VirtioSlotContext const& context, pci::PciBus& bus,
                                               GsiRoutes& routes, std::shared_ptr<virtio::Device> device) {
    auto const queues = static_cast<std::uint32_t>(device->queue_max_sizes().size());
    std::unique_ptr<VirtioSlot> slot(new VirtioSlot(context, executor_for(*device), queues));
    std::uint8_t const pci_slot = bus.next_free_slot();
    // One MSI-X vector per queue plus one for configuration changes (what PciTransport offers);
    // INTx on the pin the DSDT's _PRT names for this slot.
    slot->msi_ = std::make_unique<KvmMsiRouter>(context.vm, routes, static_cast<std::uint16_t>(queues + 1));
    slot->intx_ = std::make_unique<LevelIrqfdLine>(
        context.vm, x86_64::pci_intx_first_irq + pci_slot % x86_64::pci_intx_irqs);
    slot->resample_wait_ = std::make_unique<boost::asio::posix::stream_descriptor>(
        context.io, ::dup(slot->intx_->resample().fd()));
    auto transport =
        std::make_shared<virtio::PciTransport>(context.memory, std::move(device), *slot->msi_, *slot->intx_);
    transport->set_notify_region_handler(
        [s = slot.get()](std::optional<std::uint64_t> base) { s->move_notify_region(base); });
    slot->attach(transport);
    slot->pci_slot_ = bus.add(std::move(transport));
    return slot;
}

// On a vCPU thread (the guest moved the BAR or switched decoding) or at set-up.
void VirtioSlot::move_notify_region(std::optional<std::uint64_t> base) noexcept {
    std::lock_guard lock(notify_region_mutex_);
    for (std::uint32_t q = 0; q < notify_.size(); ++q) {
        if (notify_region_)
            vm_.unregister_ioeventfd(notify_[q]->fd(),
                                     virtio::PciTransport::notify_address(*notify_region_, q),
                                     pci_notify_width, false, q);
        if (base &&
            !vm_.try_register_ioeventfd(notify_[q]->fd(), virtio::PciTransport::notify_address(*base, q),
                                        pci_notify_width, false, q) &&
            ioeventfd_log.allow())
            log::warn("virtio-pci: ioeventfd at {:#x}: {} (notifications exit to userspace)",
                      virtio::PciTransport::notify_address(*base, q), std::strerror(errno));
    }
    notify_region_ = base;
}

VirtioSlot::~VirtioSlot() {
    stop();
}

std::string VirtioSlot::kernel_cmdline() const {
    if (!mmio_) return {};
    return fmt::format("virtio_mmio.device=4K@{:#x}:{}", mmio_->base.value, mmio_->gsi);
}

void VirtioSlot::start() {
    if (resample_wait_) wait_for_resample();
    if (executor_ == Executor::worker_thread) {
        worker_ = std::thread([this] { serve_on_worker(); });
        return;
    }
    for (std::uint32_t q = 0; q < waits_.size(); ++q) wait_for_notify(q);
}

void VirtioSlot::wait_for_notify(std::uint32_t queue) {
    waits_[queue]->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                              [this, queue](boost::system::error_code ec) {
                                  if (ec) return;
                                  notify_[queue]->consume();
                                  serve(queue);
                                  wait_for_notify(queue);
                              });
}

// One bounded call into the device; when it left work, another call goes to the back of the
// event loop's queue, behind every handler that is ready now (signals, other devices, input).
void VirtioSlot::serve(std::uint32_t queue) {
    if (transport_->notify(queue) == virtio::Work::done || again_posted_[queue]) return;
    again_posted_[queue] = post_safely(io_, [this, queue] {
        again_posted_[queue] = false;
        serve(queue);
    });
}

// The guest EOId the INTx line: assert it again while the ISR still has something to say.
void VirtioSlot::wait_for_resample() {
    resample_wait_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                               [this](boost::system::error_code ec) {
                                   if (ec) return;
                                   intx_->resample().consume();
                                   if (static_cast<virtio::PciTransport&>(*transport_).intx_asserted())
                                       intx_->trigger();
                                   wait_for_resample();
                               });
}

void VirtioSlot::serve_on_worker() noexcept {
    // Process signals belong to the VMM thread.
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
    ::pthread_setname_np(::pthread_self(), "disk worker");
    security::confine(security::ThreadKind::worker);
    std::vector<pollfd> fds;
    for (auto const& n : notify_) fds.push_back({n->fd(), POLLIN, 0});
    fds.push_back({stop_worker_.fd(), POLLIN, 0});
    // Queues whose last call stopped at its bound: served again after a look at the stop request.
    std::vector<bool> more(notify_.size(), false);
    while (true) {
        bool const any_more = std::find(more.begin(), more.end(), true) != more.end();
        if (::poll(fds.data(), fds.size(), any_more ? 0 : -1) < 0) {
            if (errno == EINTR) continue;
            log::error("virtio worker: poll: {}", std::strerror(errno));
            return;
        }
        if (fds.back().revents) return;
        for (std::uint32_t q = 0; q < notify_.size(); ++q) {
            if (fds[q].revents) notify_[q]->consume();
            if (fds[q].revents || more[q]) more[q] = transport_->notify(q) == virtio::Work::more;
        }
    }
}

// The device asked from any thread with its lock held: the work starts on the event loop.
void VirtioSlot::Host::watch(int fd, Readiness readiness, Callback ready) noexcept {
    post_safely(slot_.io_, [this, fd, readiness, ready = std::move(ready)]() mutable {
        struct stat now {};
        if (::fstat(fd, &now) != 0) {
            // Closed by the device before this ran: there is nothing to wait for.
            log::debug("virtio: watch of fd {}: {}", fd, std::strerror(errno));
            return;
        }
        auto& watched = watched_[fd];
        if (!watched.descriptor || watched.device != now.st_dev || watched.inode != now.st_ino) {
            int const copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
            if (copy < 0) {
                log::warn("virtio: cannot watch fd {}: {}", fd, std::strerror(errno));
                return;
            }
            // Replacing a stale duplicate cancels its waits (their callbacks see operation_aborted).
            watched = {std::make_unique<boost::asio::posix::stream_descriptor>(slot_.io_, copy), now.st_dev,
                       now.st_ino};
        }
        auto& descriptor = watched.descriptor;
        auto const type = readiness == Readiness::readable
                              ? boost::asio::posix::stream_descriptor::wait_read
                              : boost::asio::posix::stream_descriptor::wait_write;
        descriptor->async_wait(type, [this, ready = std::move(ready)](boost::system::error_code ec) {
            if (!ec) run_locked(ready);
        });
    });
}

void VirtioSlot::Host::after(std::chrono::nanoseconds delay, Callback due) noexcept {
    post_safely(slot_.io_, [this, delay, due = std::move(due)]() mutable {
        auto timer = std::make_shared<boost::asio::steady_timer>(slot_.io_, delay);
        timer->async_wait([this, timer, due = std::move(due)](boost::system::error_code ec) {
            if (!ec) run_locked(due);
        });
    });
}

void VirtioSlot::Host::post(Callback work) noexcept {
    post_safely(slot_.io_, [this, work = std::move(work)] { run_locked(work); });
}

void VirtioSlot::Host::kick(std::size_t queue) noexcept {
    slot_.kick(static_cast<std::uint32_t>(queue));
}

void VirtioSlot::Host::run_locked(Callback const& callback) noexcept {
    slot_.transport_->locked([&] { callback(); });
}

void VirtioSlot::stop() noexcept {
    boost::system::error_code ec;
    for (auto& wait : waits_) wait->cancel(ec);
    if (resample_wait_) resample_wait_->cancel(ec);
    if (worker_.joinable()) {
        stop_worker_.signal();
        worker_.join();
    }
}

}  // namespace kvmlet
