#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>

#include "vmm/base/unique_fd.hpp"
#include "vmm/kvm/vcpu_exit.hpp"

namespace kvmlet {

// A vCPU file descriptor and its kvm_run mapping. Used by one thread at a time, except kick().
class VcpuFd {
public:
    VcpuFd(UniqueFd fd, void* run, std::size_t run_size) noexcept;
    VcpuFd(VcpuFd&& other) noexcept;
    VcpuFd& operator=(VcpuFd&&) = delete;
    VcpuFd(VcpuFd const&) = delete;
    ~VcpuFd();

    // KVM_RUN until the next exit. Never throws: a failing ioctl other than EINTR is returned as
    // FailEntry with hardware_reason = errno | (1 << 63) so the caller can stop the VM.
    VcpuExit run() noexcept;
    // Makes the current or next KVM_RUN return Interrupted (pair with a signal to the thread).
    void request_immediate_exit() noexcept;

    kvm_regs regs() const;
    void set_regs(kvm_regs const&) const;
    kvm_sregs sregs() const;
    void set_sregs(kvm_sregs const&) const;
    kvm_fpu fpu() const;
    void set_fpu(kvm_fpu const&) const;
    void set_cpuid(std::span<kvm_cpuid_entry2 const> entries) const;
    void set_msrs(std::span<kvm_msr_entry const> entries) const;
    kvm_lapic_state lapic() const;
    void set_lapic(kvm_lapic_state const&) const;
    kvm_mp_state mp_state() const;
    void set_vcpu_events(kvm_vcpu_events const&) const;
    kvm_vcpu_events vcpu_events() const;
    // The guest TSC frequency, when KVM knows it (KVM_CAP_GET_TSC_KHZ).
    std::optional<std::uint32_t> tsc_khz() const noexcept;
    // Guest-virtual to guest-physical through the vCPU's current page tables.
    std::optional<std::uint64_t> translate(std::uint64_t linear) const noexcept;

    static constexpr std::uint64_t run_failed_flag = std::uint64_t{1} << 63;

private:
    UniqueFd fd_;
    kvm_run* run_;
    std::size_t run_size_;
};

}  // namespace kvmlet
