#include "vmm/kvm/coalesced_ring.hpp"

#include <atomic>
#include <chrono>

#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

static_assert(sizeof(kvm_coalesced_mmio) == 24);
constexpr std::uint32_t max_write_bytes = sizeof(kvm_coalesced_mmio::data);

void note_malformed(char const* what, std::uint64_t a, std::uint64_t b) noexcept {
    static log::RateLimit limit(10, std::chrono::seconds(1));
    if (limit.allow()) log::warn("coalesced I/O ring: {} ({:#x}, {:#x}), dropped", what, a, b);
}

}  // namespace

CoalescedRing::CoalescedRing(std::span<std::byte> page, std::uint64_t zone_start, std::uint64_t zone_size,
                             bool zone_pio) noexcept
    // Safety: the page is the kernel's ring (a page, so 8-byte aligned and longer than the header),
    // laid out as the offsets in the header say.
    : first_(reinterpret_cast<std::uint32_t*>(page.data() + first_offset)),
      last_(reinterpret_cast<std::uint32_t*>(page.data() + last_offset)),
      entries_(reinterpret_cast<kvm_coalesced_mmio*>(page.data() + entries_offset)),
      capacity_(static_cast<std::uint32_t>((page.size() - entries_offset) / sizeof(kvm_coalesced_mmio))),
      zone_start_(zone_start),
      zone_size_(zone_size),
      zone_pio_(zone_pio) {}

std::size_t CoalescedRing::drain(std::function<void(CoalescedWrite const&)> const& replay) noexcept {
    std::lock_guard lock(mutex_);
    // KVM fills entry `last`, then publishes it by advancing `last`; the slot is KVM's again once
    // `first` moves past it.
    std::atomic_ref<std::uint32_t> first_ref(*first_);
    std::atomic_ref<std::uint32_t> last_ref(*last_);
    std::uint32_t first = first_ref.load(std::memory_order_relaxed);
    std::uint32_t const last = last_ref.load(std::memory_order_acquire);
    if (first >= capacity_ || last >= capacity_) {
        note_malformed("index out of range", first, last);
        first_ref.store(last < capacity_ ? last : 0, std::memory_order_release);
        return 0;
    }
    std::size_t replayed = 0;
    while (first != last) {
        kvm_coalesced_mmio const entry = entries_[first];  // copied out once
        bool const pio = entry.pio != 0;
        if (entry.len == 0 || entry.len > max_write_bytes)
            note_malformed("bad length", entry.phys_addr, entry.len);
        else if (pio != zone_pio_ || entry.phys_addr < zone_start_ || entry.len > zone_size_ ||
                 entry.phys_addr - zone_start_ > zone_size_ - entry.len)
            note_malformed("write outside its zone", entry.phys_addr, entry.len);
        else {
            replay(
                CoalescedWrite{entry.phys_addr, pio, std::as_bytes(std::span(entry.data)).first(entry.len)});
            ++replayed;
        }
        first = (first + 1) % capacity_;
        first_ref.store(first, std::memory_order_release);
    }
    return replayed;
}

}  // namespace kvmlet
