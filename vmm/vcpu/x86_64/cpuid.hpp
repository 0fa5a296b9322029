#pragma once
// The CPUID a vCPU sees: what KVM supports, filtered through a named template, with the topology
// of the machine (N cores in one socket, one thread each, APIC ID = vCPU index).
#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vmm/vcpu/cpu_template.hpp"

namespace kvmlet::x86_64 {

struct CpuTopology {
    std::uint32_t apic_id;
    std::uint32_t cpu_count;
};

// `tsc_khz`, when KVM reports it, goes into the hypervisor timing leaf 0x4000'0010 (EAX: TSC kHz,
// EBX: local APIC bus kHz), so a guest need not calibrate against a timer.
std::vector<kvm_cpuid_entry2> build_cpuid(std::span<kvm_cpuid_entry2 const> supported,
                                          CpuTemplate cpu_template, CpuTopology topology,
                                          std::optional<std::uint32_t> tsc_khz = std::nullopt);

}  // namespace kvmlet::x86_64
