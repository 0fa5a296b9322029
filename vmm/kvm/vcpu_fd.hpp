#pragma once
#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vmm/base/unique_fd.hpp"
#include "vmm/kvm/flex_structs.hpp"
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
    // For snapshots (vmm/snapshot/vcpu_state): the rest of what a vCPU holds.
    void set_mp_state(kvm_mp_state const&) const;
    kvm_abi::XsaveArea xsave() const;  // the legacy 4 KiB area (KVM_GET_XSAVE; no AMX tile data)
    void set_xsave(kvm_abi::XsaveArea const&) const;
    kvm_xcrs xcrs() const;
    void set_xcrs(kvm_xcrs const&) const;
    kvm_debugregs debug_regs() const;
    void set_debug_regs(kvm_debugregs const&) const;
    // The values of `indices`, in their order; an MSR KVM refuses to read is left out (as its
    // index list can name MSRs this vCPU's CPUID does not have).
    std::vector<kvm_msr_entry> msrs(std::span<std::uint32_t const> indices) const;
    std::vector<kvm_cpuid_entry2> cpuid() const;  // what KVM_SET_CPUID2 set (KVM_GET_CPUID2)
    void set_tsc_khz(std::uint32_t khz) const;
    // KVM_RUN with immediate_exit set: KVM completes the exit last served (the data of an IN or
    // MMIO read, RIP past an OUT) and returns without running the guest. Throws Error on failure.
    void complete_pending_exit();
    // The guest TSC frequency, when KVM knows it (KVM_CAP_GET_TSC_KHZ).
    std::optional<std::uint32_t> tsc_khz() const noexcept;
    // Guest-virtual to guest-physical through the vCPU's current page tables.
    std::optional<std::uint64_t> translate(std::uint64_t linear) const noexcept;

    static constexpr std::uint64_t run_failed_flag = std::uint64_t{1} << 63;

    // Page `page_offset` of the kvm_run mapping (where KVM puts shared pages such as the coalesced
    // I/O ring), or an empty span when the mapping is shorter.
    std::span<std::byte> mapped_page(std::size_t page_offset) const noexcept;

    // The descriptor's number (close_in_background: which descriptors keep the VM alive).
    int number() const noexcept { return fd_.get(); }

private:
    UniqueFd fd_;
    kvm_run* run_;
    std::size_t run_size_;
};

}  // namespace kvmlet
