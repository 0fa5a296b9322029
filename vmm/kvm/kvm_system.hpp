#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "vmm/base/unique_fd.hpp"

namespace kvmlet {

class VmFd;

// /dev/kvm: the capabilities kvmlet needs are checked once, when it is opened.
class KvmSystem {
public:
    KvmSystem();  // throws Error with a line the user can act on ("/dev/kvm: permission denied")

    int fd() const noexcept { return fd_.get(); }
    int check_extension(unsigned capability) const noexcept;
    std::size_t vcpu_mmap_size() const noexcept { return vcpu_mmap_size_; }
    std::vector<kvm_cpuid_entry2> supported_cpuid() const;
    // The MSRs KVM saves and restores for a vCPU (KVM_GET_MSR_INDEX_LIST).
    std::vector<std::uint32_t> msr_index_list() const;
    VmFd create_vm() const;

private:
    UniqueFd fd_;
    std::size_t vcpu_mmap_size_ = 0;
};

}  // namespace kvmlet
