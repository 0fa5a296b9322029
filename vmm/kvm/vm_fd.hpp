#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>

#include "vmm/base/guest_address.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet {

class VcpuFd;

// A VM file descriptor. Set-up calls throw Error; irq_line() is called while vCPUs run.
class VmFd {
public:
    VmFd(UniqueFd fd, std::size_t vcpu_mmap_size) noexcept
        : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

    int fd() const noexcept { return fd_.get(); }
    void set_tss_address(GuestAddress address) const;
    void set_identity_map_address(GuestAddress address) const;
    void create_irqchip() const;  // PIC + IOAPIC + per-vCPU LAPIC in the kernel
    void create_pit() const;      // i8254 PIT in the kernel (KVM_CREATE_PIT2)
    // With `log_dirty` (KVM_MEM_LOG_DIRTY_PAGES) KVM logs the pages the guest writes in the slot.
    void set_memory_region(std::uint32_t slot, GuestAddress guest, std::uint64_t size, void* host,
                           bool log_dirty = false) const;
    // The slot's dirty log since the last call, cleared as it is read (KVM_GET_DIRTY_LOG): one bit
    // per page, `bitmap` at least one word per 64 pages of the slot.
    void dirty_log(std::uint32_t slot, std::span<std::uint64_t> bitmap) const;
    void register_irqfd(int event_fd, std::uint32_t gsi) const;
    // A level-triggered irqfd: a write asserts the GSI until the guest's EOI, which de-asserts it
    // and signals `resample_fd` (the VMM re-asserts if the device still wants service).
    void register_resample_irqfd(int event_fd, int resample_fd, std::uint32_t gsi) const;
    // Replaces the whole GSI routing table (KVM_SET_GSI_ROUTING). noexcept: called while vCPUs
    // run; returns false (errno set) on failure.
    bool set_gsi_routing(std::span<kvm_irq_routing_entry const> entries) const noexcept;
    // With `datamatch`, only writes of that value signal the eventfd (others exit as usual).
    void register_ioeventfd(int event_fd, std::uint64_t address, std::uint32_t length, bool pio,
                            std::optional<std::uint64_t> datamatch = std::nullopt) const;
    // Removes a registration made with the same arguments; noexcept for use while vCPUs run.
    bool unregister_ioeventfd(int event_fd, std::uint64_t address, std::uint32_t length, bool pio,
                              std::optional<std::uint64_t> datamatch = std::nullopt) const noexcept;
    // register_ioeventfd, noexcept: false (errno set) on failure.
    bool try_register_ioeventfd(int event_fd, std::uint64_t address, std::uint32_t length, bool pio,
                                std::optional<std::uint64_t> datamatch = std::nullopt) const noexcept;
    // Coalesced I/O (KVM_REGISTER_COALESCED_MMIO, with `pio` KVM_CAP_COALESCED_PIO): the guest's
    // writes to [address, address + size) go to the ring (CoalescedRing) instead of exiting.
    // noexcept for use while vCPUs run; false (errno set) on failure.
    bool register_coalesced(std::uint64_t address, std::uint32_t size, bool pio) const noexcept;
    bool unregister_coalesced(std::uint64_t address, std::uint32_t size, bool pio) const noexcept;
    VcpuFd create_vcpu(std::uint32_t id) const;

    // For snapshots (vmm/snapshot/vm_state): the in-kernel PIC (chip 0 master, 1 slave) and
    // IOAPIC (2), the PIT, and the KVM clock.
    kvm_irqchip irqchip(std::uint32_t chip_id) const;
    void set_irqchip(kvm_irqchip const&) const;
    kvm_pit_state2 pit() const;
    void set_pit(kvm_pit_state2 const&) const;
    kvm_clock_data clock() const;
    void set_clock(kvm_clock_data const&) const;
    int check_extension(unsigned capability) const noexcept;

private:
    UniqueFd fd_;
    std::size_t vcpu_mmap_size_;
};

}  // namespace kvmlet
