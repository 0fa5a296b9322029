#pragma once
// A way for a device to let the hypervisor batch the guest's writes to one of its registers
// instead of exiting on each (KVM's coalesced I/O; vmm/kvm/coalesced_ring.hpp): the writes reach
// the device later, in order, before the guest's next access that does exit. A device turns it on
// only while a late write cannot be noticed: no interrupt and no read result depends on it.
namespace kvmlet {

// Called on vCPU threads (and once at set-up) with the device's lock held; must not call back into
// the device. A failure leaves batching off: writes then exit one by one, which is always correct.
class WriteBatching {
public:
    virtual ~WriteBatching() = default;
    virtual void batch(bool on) noexcept = 0;
};

}  // namespace kvmlet
