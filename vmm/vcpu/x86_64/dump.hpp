#pragma once
// Human-readable vCPU state for crash reports: registers, segments, control registers and the
// bytes at RIP.
#include <string>

#include "vmm/kvm/vcpu_exit.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::x86_64 {

std::string dump_state(VcpuFd const& vcpu, GuestMemory const& memory);
std::string describe_internal_error(InternalError const& error);
// "triple fault", with a warning where KVM runs on SVM: it re-initialises the vCPU at a SHUTDOWN
// intercept (the VMCB is undefined after it), so dump_state() then shows reset state, not the fault.
std::string describe_triple_fault();
std::string hex_bytes(std::span<std::uint8_t const> bytes);

}  // namespace kvmlet::x86_64
