#pragma once
// Puts a freshly created vCPU into its boot state: CPUID, FPU, local APIC interrupt pins, and for
// the boot processor the registers the firmware chose. Application processors keep KVM's reset
// state and wait for INIT/SIPI in the in-kernel LAPIC, as on hardware.
#include <linux/kvm.h>

#include <span>

#include "firmware/x86_64/long_mode.hpp"
#include "vmm/kvm/vcpu_fd.hpp"

namespace kvmlet::x86_64 {

void configure_vcpu(VcpuFd const& vcpu, std::span<kvm_cpuid_entry2 const> cpuid);
void set_boot_state(VcpuFd const& vcpu, BootCpuState const& state);

kvm_segment to_kvm_segment(Segment const& segment) noexcept;

}  // namespace kvmlet::x86_64
