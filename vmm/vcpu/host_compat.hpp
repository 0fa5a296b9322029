#pragma once
// Host-compatibility mode: everything kvmlet does differently on hosts whose KVM cannot run guest
// kernels as real hardware would, kept in this one place and off on real KVM.
//
// `pvm`: nested KVM through kvm_pvm, where guest CPL0 code is instruction-emulated and some
// instructions are not emulated at all (../shared/HOST.md). In this mode kvmlet
//  - hides CPUID features whose instructions fail here (CX16) and the KVM paravirtual features
//    that use hypercalls or MSRs this host does not serve (vmcall spins forever here);
//  - appends kernel parameters that keep Linux off the instructions the host cannot run at CPL0;
//  - recovers two instructions Linux runs at every boot: int3 (int3_selftest) by stepping over it
//    and injecting #BP, and fwait (fpu__drop) with no pending x87 exception by stepping over it.
#include <linux/kvm.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/kvm/vcpu_exit.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/memory/guest_memory.hpp"
#include "vmm/vcpu/host_compat_mode.hpp"

namespace kvmlet {

// `pvm` when the kvm_pvm module is loaded, else `none`.
HostCompat detect_host_compat(char const* sysfs_module_dir = "/sys/module/kvm_pvm");
char const* name(HostCompat mode) noexcept;

// Kernel parameters appended to the guest command line in this mode ("" for none).
std::string compat_cmdline(HostCompat mode);

void adjust_cpuid(HostCompat mode, std::vector<kvm_cpuid_entry2>& entries) noexcept;

// What to do about an internal error: recovered (resume the vCPU) or not (stop the VM).
enum class Recovery { recovered, not_recovered };

// The instruction at the failing RIP: KVM's bytes when it reported them, else read from guest RAM.
std::optional<std::uint8_t> failing_opcode(InternalError const& error, VcpuFd const& vcpu,
                                           GuestMemory const& memory);

Recovery recover(HostCompat mode, InternalError const& error, VcpuFd const& vcpu,
                 GuestMemory const& memory) noexcept;

}  // namespace kvmlet
