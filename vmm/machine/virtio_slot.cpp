#include "vmm/machine/virtio_slot.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet {

std::uint32_t VirtioSlot::capacity() noexcept {
    return x86_64::virtio_mmio_last_irq - x86_64::virtio_mmio_first_irq + 1;
}

namespace {
std::uint32_t pin_for(std::uint32_t index) {
    if (index >= VirtioSlot::capacity())
        throw Error(fmt::format("too many virtio devices: at most {} on the MMIO transport", VirtioSlot::capacity()));
    return x86_64::virtio_mmio_first_irq + index;
}
}  // namespace

VirtioSlot::VirtioSlot(VmFd const& vm, GuestMemory const& memory, IoBus& mmio, boost::asio::io_context& io,
                       std::uint32_t index, std::shared_ptr<virtio::Device> device, Executor executor)
    : base_{x86_64::virtio_mmio_start.value + index * x86_64::virtio_mmio_stride},
      gsi_{pin_for(index)},
      irq_(vm, gsi_),
      transport_(std::make_shared<virtio::MmioTransport>(memory, std::move(device), irq_)),
      executor_(executor) {
    mmio.insert(transport_, base_.value, virtio::MmioTransport::window_size);
    auto queues = static_cast<std::uint32_t>(transport_->device().queue_max_sizes().size());
    for (std::uint32_t q = 0; q < queues; ++q) {
        notify_.push_back(std::make_unique<EventFd>());
        vm.register_ioeventfd(notify_.back()->fd(), base_.value + virtio::MmioTransport::queue_notify_offset, 4,
                              false, q);
        if (executor_ == Executor::event_loop)
            waits_.push_back(std::make_unique<boost::asio::posix::stream_descriptor>(io, ::dup(notify_.back()->fd())));
    }
    // A notification KVM did not catch (none should slip through) takes the same path.
    transport_->set_notify_handler([this](std::uint32_t queue) { notify_[queue]->signal(); });
}

VirtioSlot::~VirtioSlot() { stop(); }

std::string VirtioSlot::kernel_cmdline() const {
    return fmt::format("virtio_mmio.device=4K@{:#x}:{}", base_.value, gsi_);
}

void VirtioSlot::start() {
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
                                  transport_->notify(queue);
                                  wait_for_notify(queue);
                              });
}

void VirtioSlot::serve_on_worker() noexcept {
    // Process signals belong to the VMM thread.
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
    std::vector<pollfd> fds;
    for (auto const& n : notify_) fds.push_back({n->fd(), POLLIN, 0});
    fds.push_back({stop_worker_.fd(), POLLIN, 0});
    while (true) {
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            log::error("virtio worker: poll: {}", std::strerror(errno));
            return;
        }
        if (fds.back().revents) return;
        for (std::uint32_t q = 0; q < notify_.size(); ++q) {
            if (!fds[q].revents) continue;
            notify_[q]->consume();
            transport_->notify(q);
        }
    }
}

void VirtioSlot::stop() noexcept {
    for (auto& wait : waits_) {
        boost::system::error_code ec;
        wait->cancel(ec);
    }
    if (worker_.joinable()) {
        stop_worker_.signal();
        worker_.join();
    }
}

}  // namespace kvmlet
