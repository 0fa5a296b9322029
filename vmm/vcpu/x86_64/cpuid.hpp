#pragma once
// The CPUID a vCPU sees: what KVM supports, filtered through a named template, with the topology
// of the machine (N cores in one socket, one thread each, APIC ID = vCPU index).
#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/machine/machine_config.hpp"

namespace kvmlet::x86_64 {

struct CpuTopology {
    std::uint32_t apic_id;
    std::uint32_t cpu_count;
};

std::vector<kvm_cpuid_entry2> build_cpuid(std::span<kvm_cpuid_entry2 const> supported, CpuTemplate cpu_template,
                                          CpuTopology topology);

}  // namespace kvmlet::x86_64
