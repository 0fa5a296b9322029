#include "vmm/kvm/vcpu_fd.hpp"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
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

std::span<std::byte> VcpuFd::mapped_page(std::size_t page_offset) const noexcept {
    std::size_t const page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    if (run_ == nullptr || page_offset >= run_size_ / page) return {};
    // Safety: the page lies inside the mapping, checked above; it lives as long as this VcpuFd.
    return {reinterpret_cast<std::byte*>(run_) + page_offset * page, page};
}

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

void VcpuFd::set_mp_state(kvm_mp_state const& m) const {
    set(fd_.get(), KVM_SET_MP_STATE, m, "KVM_SET_MP_STATE");
}
kvm_abi::XsaveArea VcpuFd::xsave() const {
    return get<kvm_abi::XsaveArea>(fd_.get(), kvm_abi::get_xsave, "KVM_GET_XSAVE");
}
void VcpuFd::set_xsave(kvm_abi::XsaveArea const& x) const {
    set(fd_.get(), kvm_abi::set_xsave, x, "KVM_SET_XSAVE");
}
kvm_xcrs VcpuFd::xcrs() const {
    return get<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS");
}
void VcpuFd::set_xcrs(kvm_xcrs const& x) const {
    set(fd_.get(), KVM_SET_XCRS, x, "KVM_SET_XCRS");
}
kvm_debugregs VcpuFd::debug_regs() const {
    return get<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
void VcpuFd::set_debug_regs(kvm_debugregs const& d) const {
    set(fd_.get(), KVM_SET_DEBUGREGS, d, "KVM_SET_DEBUGREGS");
}

std::vector<kvm_msr_entry> VcpuFd::msrs(std::span<std::uint32_t const> indices) const {
    std::vector<kvm_msr_entry> wanted;
    for (auto index : indices) wanted.push_back(kvm_msr_entry{.index = index, .reserved = 0, .data = 0});
    // KVM_GET_MSRS stops at the first MSR it cannot read and says how many it read: drop that one
    // and ask again for the rest.
    std::vector<kvm_msr_entry> out;
    std::span<kvm_msr_entry const> rest = wanted;
    while (!rest.empty()) {
        kvm_abi::FlexBuffer<kvm_msr_entry> buffer(rest.size());
        buffer.set_entries(rest);
        int read = ::ioctl(fd_.get(), kvm_abi::get_msrs, buffer.data());
        if (read < 0) throw system_error("KVM_GET_MSRS");
        auto got = buffer.entries();
        out.insert(out.end(), got.begin(), got.begin() + read);
        rest = rest.subspan(std::min(rest.size(), static_cast<std::size_t>(read) + 1));
    }
    return out;
}

std::vector<kvm_cpuid_entry2> VcpuFd::cpuid() const {
    constexpr std::size_t max_entries = 256;
    kvm_abi::FlexBuffer<kvm_cpuid_entry2> buffer(max_entries);
    if (::ioctl(fd_.get(), kvm_abi::get_cpuid2, buffer.data()) != 0) throw system_error("KVM_GET_CPUID2");
    return buffer.entries();
}

void VcpuFd::set_tsc_khz(std::uint32_t khz) const {
    if (::ioctl(fd_.get(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) != 0)
        throw system_error(fmt::format("KVM_SET_TSC_KHZ {}", khz));
}

void VcpuFd::complete_pending_exit() {
    request_immediate_exit();
    int result = ::ioctl(fd_.get(), KVM_RUN, 0);
    int const err = errno;
    __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_RELAXED);
    if (result == 0 || (err != EINTR && err != EAGAIN)) throw system_error("KVM_RUN (immediate exit)", err);
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
