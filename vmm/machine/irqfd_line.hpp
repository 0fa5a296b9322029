#pragma once
#include <cstdint>

#include "devices/irq_line.hpp"
#include "vmm/base/event_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"

namespace kvmlet {

// An IrqLine backed by an irqfd: a write to the eventfd makes KVM pulse the GSI (edge), with no
// ioctl on the device's thread.
class IrqfdLine final : public IrqLine {
public:
    IrqfdLine(VmFd const& vm, std::uint32_t gsi) { vm.register_irqfd(event_.fd(), gsi); }
    void trigger() noexcept override { event_.signal(); }

private:
    EventFd event_;
};

// A level-triggered line (PCI INTx) backed by a resampling irqfd: trigger() asserts the GSI; the
// guest's EOI de-asserts it and makes resample_fd() readable, and whoever watches it calls
// trigger() again while the device still wants service.
class LevelIrqfdLine final : public IrqLine {
public:
    LevelIrqfdLine(VmFd const& vm, std::uint32_t gsi) {
        vm.register_resample_irqfd(event_.fd(), resample_.fd(), gsi);
    }
    void trigger() noexcept override { event_.signal(); }
    EventFd const& resample() const noexcept { return resample_; }

private:
    EventFd event_;
    EventFd resample_;
};

}  // namespace kvmlet
