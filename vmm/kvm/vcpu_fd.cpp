#include "vmm/kvm/vcpu_fd.hpp"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <memory>

#include "vmm/base/error.hpp"
#include "vmm/kvm/flex_structs.hpp"

namespace kvmlet {
namespace {

template <class T>
T get(int fd, unsigned long request, char const* name) {
    T value{};
    if (::ioctl(fd, request, &value) != 0) throw system_error(name);
    return value;
}

template <class T>
void set(int fd, unsigned long request, T const& value, char const* name) {
    if (::ioctl(fd, request, &value) != 0) throw system_error(name);
}

}  // namespace

VcpuFd::VcpuFd(UniqueFd fd, void* run, std::size_t run_size) noexcept
    : fd_(std::move(fd)), run_(static_cast<kvm_run*>(run)), run_size_(run_size) {}

VcpuFd::VcpuFd(VcpuFd&& other) noexcept
    : fd_(std::move(other.fd_)), run_(other.run_), run_size_(other.run_size_) {
    other.run_ = nullptr;
}

VcpuFd::~VcpuFd() {
    if (run_) ::munmap(run_, run_size_);
}

VcpuExit VcpuFd::run() noexcept {
    if (::ioctl(fd_.get(), KVM_RUN, 0) != 0) {
        int err = errno;
        if (err == EINTR || err == EAGAIN) {
            __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_RELAXED);
            return Interrupted{};
        }
        return FailEntry{run_failed_flag | static_cast<std::uint64_t>(err)};
    }
    return decode_exit(*run_, run_size_);
}

void VcpuFd::request_immediate_exit() noexcept {
    __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_RELEASE);
}

kvm_regs VcpuFd::regs() const {
    return get<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS");
}
void VcpuFd::set_regs(kvm_regs const& r) const {
    set(fd_.get(), KVM_SET_REGS, r, "KVM_SET_REGS");
}
kvm_sregs VcpuFd::sregs() const {
    return get<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS");
}
void VcpuFd::set_sregs(kvm_sregs const& s) const {
    set(fd_.get(), KVM_SET_SREGS, s, "KVM_SET_SREGS");
}
kvm_fpu VcpuFd::fpu() const {
    return get<kvm_fpu>(fd_.get(), KVM_GET_FPU, "KVM_GET_FPU");
}
void VcpuFd::set_fpu(kvm_fpu const& f) const {
    set(fd_.get(), KVM_SET_FPU, f, "KVM_SET_FPU");
}
kvm_lapic_state VcpuFd::lapic() const {
    return get<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
void VcpuFd::set_lapic(kvm_lapic_state const& l) const {
    set(fd_.get(), KVM_SET_LAPIC, l, "KVM_SET_LAPIC");
}
kvm_mp_state VcpuFd::mp_state() const {
    return get<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
kvm_vcpu_events VcpuFd::vcpu_events() const {
    return get<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
void VcpuFd::set_vcpu_events(kvm_vcpu_events const& e) const {
    set(fd_.get(), KVM_SET_VCPU_EVENTS, e, "KVM_SET_VCPU_EVENTS");
}

void VcpuFd::set_cpuid(std::span<kvm_cpuid_entry2 const> entries) const {
    kvm_abi::FlexBuffer<kvm_cpuid_entry2> cpuid(entries.size());
    cpuid.set_entries(entries);
    if (::ioctl(fd_.get(), kvm_abi::set_cpuid2, cpuid.data()) != 0) throw system_error("KVM_SET_CPUID2");
}

void VcpuFd::set_msrs(std::span<kvm_msr_entry const> entries) const {
    kvm_abi::FlexBuffer<kvm_msr_entry> msrs(entries.size());
    msrs.set_entries(entries);
    int written = ::ioctl(fd_.get(), kvm_abi::set_msrs, msrs.data());
    if (written < 0) throw system_error("KVM_SET_MSRS");
    if (static_cast<std::size_t>(written) != entries.size())
        throw Error(fmt::format("KVM_SET_MSRS: MSR {:#x} was refused",
                                entries[static_cast<std::size_t>(written)].index));
}

std::optional<std::uint32_t> VcpuFd::tsc_khz() const noexcept {
    int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
    if (khz <= 0) return std::nullopt;
    return static_cast<std::uint32_t>(khz);
}

std::optional<std::uint64_t> VcpuFd::translate(std::uint64_t linear) const noexcept {
    kvm_translation t{};
    t.linear_address = linear;
    if (::ioctl(fd_.get(), KVM_TRANSLATE, &t) != 0 || !t.valid) return std::nullopt;
    return t.physical_address;
}

}  // namespace kvmlet
