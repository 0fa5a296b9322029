#pragma once
// WriteBatching through KVM's coalesced port I/O: while on, one-byte writes to `port` go to the
// VM's coalesced ring (vmm/kvm/coalesced_ring.hpp), which each vCPU drains before serving an exit.
#include <cstdint>

#include "devices/legacy/write_batching.hpp"
#include "vmm/base/log.hpp"
#include "vmm/kvm/vm_fd.hpp"

namespace kvmlet {

class CoalescedPort final : public WriteBatching {
public:
    CoalescedPort(VmFd const& vm, std::uint16_t port) noexcept : vm_(vm), port_(port) {}

    void batch(bool on) noexcept override {
        if (on == registered_) return;
        bool const done =
            on ? vm_.register_coalesced(port_, 1, true) : vm_.unregister_coalesced(port_, 1, true);
        if (done)
            registered_ = on;
        else
            log::debug("coalesced port {:#x}: cannot turn batching {}", port_, on ? "on" : "off");
    }

private:
    VmFd const& vm_;
    std::uint16_t port_;
    bool registered_ = false;
};

}  // namespace kvmlet
