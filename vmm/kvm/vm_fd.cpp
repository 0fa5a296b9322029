#include "vmm/kvm/vm_fd.hpp"

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vmm/base/error.hpp"
#include "vmm/kvm/flex_structs.hpp"
#include "vmm/kvm/vcpu_fd.hpp"

namespace kvmlet {

void VmFd::set_tss_address(GuestAddress address) const {
    if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(address.value)) != 0)
        throw system_error("KVM_SET_TSS_ADDR");
}

void VmFd::set_identity_map_address(GuestAddress address) const {
    std::uint64_t value = address.value;
    if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &value) != 0)
        throw system_error("KVM_SET_IDENTITY_MAP_ADDR");
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

void VmFd::set_memory_region(std::uint32_t slot, GuestAddress guest, std::uint64_t size, void* host,
                             bool log_dirty) const {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.flags = log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0;
    region.guest_phys_addr = guest.value;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<std::uint64_t>(host);
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0)
        throw system_error(fmt::format("KVM_SET_USER_MEMORY_REGION {:#x}+{:#x}", guest.value, size));
}

void VmFd::dirty_log(std::uint32_t slot, std::span<std::uint64_t> bitmap) const {
    kvm_dirty_log log{};
    log.slot = slot;
    log.dirty_bitmap = bitmap.data();
    if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) != 0)
        throw system_error(fmt::format("KVM_GET_DIRTY_LOG of memory slot {}", slot));
}

void VmFd::register_irqfd(int event_fd, std::uint32_t gsi) const {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<std::uint32_t>(event_fd);
    irqfd.gsi = gsi;
    if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) != 0) throw system_error(fmt::format("KVM_IRQFD gsi {}", gsi));
}

void VmFd::register_resample_irqfd(int event_fd, int resample_fd, std::uint32_t gsi) const {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<std::uint32_t>(event_fd);
    irqfd.gsi = gsi;
    irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<std::uint32_t>(resample_fd);
    if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) != 0)
        throw system_error(fmt::format("KVM_IRQFD (resample) gsi {}", gsi));
}

bool VmFd::set_gsi_routing(std::span<kvm_irq_routing_entry const> entries) const noexcept {
    try {
        kvm_abi::FlexBuffer<kvm_irq_routing_entry> table(entries.size());
        table.set_entries(entries);
        return ::ioctl(fd_.get(), kvm_abi::set_gsi_routing, table.data()) == 0;
    } catch (std::bad_alloc const&) {
        errno = ENOMEM;
        return false;
    }
}

namespace {
kvm_ioeventfd make_ioeventfd(int event_fd, std::uint64_t address, std::uint32_t length, bool pio,
                             std::optional<std::uint64_t> datamatch) {
    kvm_ioeventfd ioeventfd{};
    ioeventfd.addr = address;
    ioeventfd.len = length;
    ioeventfd.fd = event_fd;
    ioeventfd.flags = pio ? KVM_IOEVENTFD_FLAG_PIO : 0;
    if (datamatch) {
        ioeventfd.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
        ioeventfd.datamatch = *datamatch;
    }
    return ioeventfd;
}
}  // namespace

void VmFd::register_ioeventfd(int event_fd, std::uint64_t address, std::uint32_t length, bool pio,
                              std::optional<std::uint64_t> datamatch) const {
    if (!try_register_ioeventfd(event_fd, address, length, pio, datamatch))
        throw system_error(fmt::format("KVM_IOEVENTFD {:#x}", address));
}

bool VmFd::try_register_ioeventfd(int event_fd, std::uint64_t address, std::uint32_t length, bool pio,
                                  std::optional<std::uint64_t> datamatch) const noexcept {
    kvm_ioeventfd ioeventfd = make_ioeventfd(event_fd, address, length, pio, datamatch);
    return ::ioctl(fd_.get(), KVM_IOEVENTFD, &ioeventfd) == 0;
}

bool VmFd::unregister_ioeventfd(int event_fd, std::uint64_t address, std::uint32_t length, bool pio,
                                std::optional<std::uint64_t> datamatch) const noexcept {
    kvm_ioeventfd ioeventfd = make_ioeventfd(event_fd, address, length, pio, datamatch);
    ioeventfd.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    return ::ioctl(fd_.get(), KVM_IOEVENTFD, &ioeventfd) == 0;
}

namespace {

// KVM_(UN)REGISTER_COALESCED_MMIO on [address, address + size), port I/O with `pio`.
bool coalesced_zone(int vm, unsigned long request, std::uint64_t address, std::uint32_t size,
                    bool pio) noexcept {
    kvm_coalesced_mmio_zone zone{};
    zone.addr = address;
    zone.size = size;
    zone.pio = pio ? 1 : 0;
    return ::ioctl(vm, request, &zone) == 0;
}

}  // namespace

bool VmFd::register_coalesced(std::uint64_t address, std::uint32_t size, bool pio) const noexcept {
    return coalesced_zone(fd_.get(), KVM_REGISTER_COALESCED_MMIO, address, size, pio);
}

bool VmFd::unregister_coalesced(std::uint64_t address, std::uint32_t size, bool pio) const noexcept {
    return coalesced_zone(fd_.get(), KVM_UNREGISTER_COALESCED_MMIO, address, size, pio);
}

VcpuFd VmFd::create_vcpu(std::uint32_t id) const {
    UniqueFd fd(::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
    if (!fd.valid()) throw system_error(fmt::format("KVM_CREATE_VCPU {}", id));
    void* run = ::mmap(nullptr, vcpu_mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (run == MAP_FAILED) throw system_error(fmt::format("vCPU {}: mmap of kvm_run", id));
    return VcpuFd(std::move(fd), run, vcpu_mmap_size_);
}

kvm_irqchip VmFd::irqchip(std::uint32_t chip_id) const {
    kvm_irqchip chip{};
    chip.chip_id = chip_id;
    if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) != 0)
        throw system_error(fmt::format("KVM_GET_IRQCHIP {}", chip_id));
    return chip;
}

void VmFd::set_irqchip(kvm_irqchip const& chip) const {
    if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip) != 0)
        throw system_error(fmt::format("KVM_SET_IRQCHIP {}", chip.chip_id));
}

kvm_pit_state2 VmFd::pit() const {
    kvm_pit_state2 state{};
    if (::ioctl(fd_.get(), KVM_GET_PIT2, &state) != 0) throw system_error("KVM_GET_PIT2");
    return state;
}

void VmFd::set_pit(kvm_pit_state2 const& state) const {
    if (::ioctl(fd_.get(), KVM_SET_PIT2, &state) != 0) throw system_error("KVM_SET_PIT2");
}

kvm_clock_data VmFd::clock() const {
    kvm_clock_data clock{};
    if (::ioctl(fd_.get(), KVM_GET_CLOCK, &clock) != 0) throw system_error("KVM_GET_CLOCK");
    return clock;
}

void VmFd::set_clock(kvm_clock_data const& clock) const {
    if (::ioctl(fd_.get(), KVM_SET_CLOCK, &clock) != 0) throw system_error("KVM_SET_CLOCK");
}

int VmFd::check_extension(unsigned capability) const noexcept {
    return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
}

}  // namespace kvmlet
