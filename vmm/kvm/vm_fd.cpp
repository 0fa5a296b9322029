#include "vmm/kvm/vm_fd.hpp"

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vmm/base/error.hpp"
#include "vmm/kvm/vcpu_fd.hpp"

namespace kvmlet {

void VmFd::set_tss_address(GuestAddress address) const {
    if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(address.value)) != 0)
        throw system_error("KVM_SET_TSS_ADDR");
}

void VmFd::set_identity_map_address(GuestAddress address) const {
    std::uint64_t value = address.value;
    if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &value) != 0) throw system_error("KVM_SET_IDENTITY_MAP_ADDR");
}

void VmFd::create_irqchip() const {
    if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) != 0) throw system_error("KVM_CREATE_IRQCHIP");
}

void VmFd::create_pit() const {
    kvm_pit_config config{};
    // Without an emulated PC speaker port (0x61) the PIT's channel 2 gate is ignored.
    config.flags = KVM_PIT_SPEAKER_DUMMY;
    if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &config) != 0) throw system_error("KVM_CREATE_PIT2");
}

void VmFd::set_memory_region(std::uint32_t slot, GuestAddress guest, std::uint64_t size, void* host) const {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.guest_phys_addr = guest.value;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<std::uint64_t>(host);
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0)
        throw system_error(fmt::format("KVM_SET_USER_MEMORY_REGION {:#x}+{:#x}", guest.value, size));
}

void VmFd::register_irqfd(int event_fd, std::uint32_t gsi) const {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<std::uint32_t>(event_fd);
    irqfd.gsi = gsi;
    if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) != 0) throw system_error(fmt::format("KVM_IRQFD gsi {}", gsi));
}

void VmFd::register_ioeventfd(int event_fd, std::uint64_t address, std::uint32_t length, bool pio,
                              std::optional<std::uint64_t> datamatch) const {
    kvm_ioeventfd ioeventfd{};
    ioeventfd.addr = address;
    ioeventfd.len = length;
    ioeventfd.fd = event_fd;
    ioeventfd.flags = pio ? KVM_IOEVENTFD_FLAG_PIO : 0;
    if (datamatch) {
        ioeventfd.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
        ioeventfd.datamatch = *datamatch;
    }
    if (::ioctl(fd_.get(), KVM_IOEVENTFD, &ioeventfd) != 0)
        throw system_error(fmt::format("KVM_IOEVENTFD {:#x}", address));
}

VcpuFd VmFd::create_vcpu(std::uint32_t id) const {
    UniqueFd fd(::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
    if (!fd.valid()) throw system_error(fmt::format("KVM_CREATE_VCPU {}", id));
    void* run = ::mmap(nullptr, vcpu_mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (run == MAP_FAILED) throw system_error(fmt::format("vCPU {}: mmap of kvm_run", id));
    return VcpuFd(std::move(fd), run, vcpu_mmap_size_);
}

}  // namespace kvmlet
