#include "vmm/kvm/kvm_system.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <memory>

#include "vmm/base/error.hpp"
#include "vmm/kvm/flex_structs.hpp"
#include "vmm/kvm/vm_fd.hpp"

namespace kvmlet {
namespace {

constexpr int kvm_api_version = 12;  // the only stable KVM API version (Documentation/virt/kvm/api.rst)

struct RequiredCapability {
    unsigned id;
    char const* name;
};
constexpr RequiredCapability required_capabilities[] = {
    {KVM_CAP_IRQCHIP, "IRQCHIP"},
    {KVM_CAP_USER_MEMORY, "USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR"},
    {KVM_CAP_PIT2, "PIT2"},
    {KVM_CAP_IRQFD, "IRQFD"},
    {KVM_CAP_IOEVENTFD, "IOEVENTFD"},
    {KVM_CAP_EXT_CPUID, "EXT_CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT"},
};

UniqueFd open_kvm() {
    UniqueFd fd(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (fd.valid()) return fd;
    int err = errno;
    if (err == EACCES || err == EPERM)
        throw Error("/dev/kvm: permission denied (add yourself to group kvm, or run as root)");
    if (err == ENOENT) throw Error("/dev/kvm: not found (is KVM enabled in the host kernel and BIOS?)");
    throw system_error("/dev/kvm", err);
}

}  // namespace

KvmSystem::KvmSystem() : fd_(open_kvm()) {
    int version = ::ioctl(fd_.get(), KVM_GET_API_VERSION, 0);
    if (version != kvm_api_version)
        throw Error(fmt::format("/dev/kvm: API version {} (kvmlet needs {})", version, kvm_api_version));
    for (auto const& cap : required_capabilities) {
        if (check_extension(cap.id) <= 0)
            throw Error(fmt::format("/dev/kvm: missing capability KVM_CAP_{}", cap.name));
    }
    int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < static_cast<int>(sizeof(kvm_run))) throw system_error("/dev/kvm: KVM_GET_VCPU_MMAP_SIZE");
    vcpu_mmap_size_ = static_cast<std::size_t>(size);
}

int KvmSystem::check_extension(unsigned capability) const noexcept {
    return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
}

std::vector<kvm_cpuid_entry2> KvmSystem::supported_cpuid() const {
    // Grow the buffer until KVM stops answering E2BIG.
    for (std::uint32_t count = 128; count <= 4096; count *= 2) {
        kvm_abi::FlexBuffer<kvm_cpuid_entry2> cpuid(count);
        if (::ioctl(fd_.get(), kvm_abi::get_supported_cpuid, cpuid.data()) == 0) return cpuid.entries();
        if (errno != E2BIG) throw system_error("/dev/kvm: KVM_GET_SUPPORTED_CPUID");
    }
    throw Error("/dev/kvm: KVM_GET_SUPPORTED_CPUID returned too many entries");
}

VmFd KvmSystem::create_vm() const {
    // Retry on EINTR: KVM_CREATE_VM can be interrupted while the kernel allocates.
    for (int attempt = 0; attempt < 10; ++attempt) {
        int fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
        if (fd >= 0) return VmFd(UniqueFd(fd), vcpu_mmap_size_);
        if (errno != EINTR) throw system_error("/dev/kvm: KVM_CREATE_VM");
    }
    throw Error("/dev/kvm: KVM_CREATE_VM kept being interrupted");
}

std::vector<std::uint32_t> KvmSystem::msr_index_list() const {
    // The count first, then the indices: E2BIG with the count filled in when it is too small.
    for (std::uint32_t capacity = 256; capacity <= 16384; capacity *= 4) {
        std::vector<std::uint32_t> buffer(capacity + 1);
        buffer[0] = capacity;
        if (::ioctl(fd_.get(), kvm_abi::get_msr_index_list, buffer.data()) == 0)
            return {buffer.begin() + 1, buffer.begin() + 1 + std::min(buffer[0], capacity)};
        if (errno != E2BIG) throw system_error("KVM_GET_MSR_INDEX_LIST");
    }
    throw Error("KVM_GET_MSR_INDEX_LIST: more than 16384 MSRs");
}

}  // namespace kvmlet
