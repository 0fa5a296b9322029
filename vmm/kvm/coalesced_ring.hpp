#pragma once
// KVM's coalesced I/O ring (Documentation/virt/kvm/api.rst, KVM_REGISTER_COALESCED_MMIO and
// KVM_CAP_COALESCED_PIO): writes the guest makes to a registered zone do not exit to user space;
// KVM appends them to a ring in a page of every vCPU's kvm_run mapping, and user space replays them
// in order before it serves the next exit (so a device sees its writes in the guest's order). The
// ring page is shared by every vCPU of the VM: drain() may run on several vCPU threads at once and
// serialises them.
#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

namespace kvmlet {

// One replayed write, checked: 1..8 bytes, at an address inside the zone given to the ring.
struct CoalescedWrite {
    std::uint64_t address;  // a port number for port I/O
    bool pio;
    std::span<std::byte const> data;
};

class CoalescedRing {
public:
    // `page` is the ring's page in a vCPU's kvm_run mapping (page offset KVM_CHECK_EXTENSION
    // (KVM_CAP_COALESCED_MMIO)); writes outside [zone_start, zone_start + zone_size) of kind
    // `zone_pio` are dropped as malformed.
    CoalescedRing(std::span<std::byte> page, std::uint64_t zone_start, std::uint64_t zone_size,
                  bool zone_pio) noexcept;
    CoalescedRing(CoalescedRing const&) = delete;
    CoalescedRing& operator=(CoalescedRing const&) = delete;

    // Replays every write KVM appended since the last call, oldest first, then frees their slots.
    // Returns how many were replayed. Malformed entries (bad length, address or kind) are dropped
    // with a rate-limited log line; an index out of the ring's range empties it.
    std::size_t drain(std::function<void(CoalescedWrite const&)> const& replay) noexcept;

    // Entries the ring holds (KVM_COALESCED_MMIO_MAX for a 4 KiB page).
    std::uint32_t capacity() const noexcept { return capacity_; }

    // The ring's layout as the kernel (C) sees it: `first` and `last`, then the entries at byte 8.
    // Not linux/kvm.h's kvm_coalesced_mmio_ring: compiled as C++, its __DECLARE_FLEX_ARRAY's empty
    // struct takes a byte and moves the entries to byte 16.
    static constexpr std::size_t first_offset = 0;
    static constexpr std::size_t last_offset = 4;
    static constexpr std::size_t entries_offset = 8;

private:
    std::uint32_t* first_;
    std::uint32_t* last_;
    kvm_coalesced_mmio* entries_;
    std::uint32_t capacity_;
    std::uint64_t zone_start_;
    std::uint64_t zone_size_;
    bool zone_pio_;
    std::mutex mutex_;
};

}  // namespace kvmlet
