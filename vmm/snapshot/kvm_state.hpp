#pragma once
// What KVM holds for a VM and its vCPUs, as snapshot sections (docs/snapshot.md): captured from a
// paused machine and put back into a freshly built one, in the order KVM needs.
#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/base/state_stream.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"

namespace kvmlet::snapshot {

// The KVM capabilities a snapshot needs; throws one Error naming every one this host lacks.
void require_capabilities(VmFd const& vm);

struct VcpuState {
    std::vector<kvm_cpuid_entry2> cpuid;
    kvm_mp_state mp_state{};
    kvm_regs regs{};
    kvm_sregs sregs{};
    kvm_abi::XsaveArea xsave{};
    kvm_xcrs xcrs{};
    kvm_debugregs debug_regs{};
    kvm_lapic_state lapic{};
    std::vector<kvm_msr_entry> msrs;
    kvm_vcpu_events events{};
    std::uint32_t tsc_khz = 0;  // 0: KVM did not say

    void save(StateWriter& out) const;
    static VcpuState load(StateReader& in);
};

// From a vCPU that is out of KVM_RUN for good (parked): completes its last exit first, so that
// nothing is done twice after a restore (an OUT executed again, an IN's data lost).
VcpuState capture(VcpuFd& vcpu, std::span<std::uint32_t const> msr_indices);
// Into a vCPU just created (after the VM's irqchip state is back).
void restore(VcpuFd const& vcpu, VcpuState const& state);

struct VmState {
    kvm_irqchip pic_master{};
    kvm_irqchip pic_slave{};
    kvm_irqchip ioapic{};
    kvm_pit_state2 pit{};
    kvm_clock_data clock{};

    void save(StateWriter& out) const;
    static VmState load(StateReader& in);
};

VmState capture(VmFd const& vm);
// Into a VM with its irqchip and PIT created, before its vCPUs are restored. With `clock_realtime`
// the KVM clock is advanced by the wall-clock time since the state was captured (Error when the
// capture had no real time: its host's clock was not stable).
void restore(VmFd const& vm, VmState const& state, bool clock_realtime = false);

}  // namespace kvmlet::snapshot
