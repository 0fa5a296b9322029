#include "devices/virtio/queue.hpp"

#include <atomic>
#include <bit>

#include "devices/virtio/split_ring_spec.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet::virtio {
namespace {

// A block request is header, data, status; most chains fit in this many descriptors.
constexpr std::size_t typical_chain_length = 4;
constexpr std::uint64_t max_chain_bytes = 0xffff'ffff;  // a used length is 32 bits

log::RateLimit bad_chain_log{10, std::chrono::seconds(5)};
// A guest looping reset, bad avail index, DRIVER_OK would otherwise write a line per loop.
log::RateLimit runaway_log{3, std::chrono::seconds(60)};

bool area_ok(GuestMemory const& memory, GuestAddress start, std::uint64_t len, std::uint64_t alignment) {
    return start.value % alignment == 0 && memory.contains(start, len);
}

}  // namespace

SplitQueue::SplitQueue(GuestMemory const& memory, QueueConfig const& config, bool event_idx,
                       bool indirect) noexcept
    : memory_(&memory),
      desc_(config.desc),
      avail_(config.avail),
      used_(config.used),
      size_(config.size),
      event_idx_(event_idx),
      indirect_(indirect) {}

Result<SplitQueue> SplitQueue::activate(GuestMemory const& memory, QueueConfig const& config,
                                        std::uint16_t max_size, bool event_idx, bool indirect) {
    if (!config.ready) return unexpected("queue is not ready");
    std::uint64_t size = config.size;
    if (size == 0 || size > max_size || !std::has_single_bit(size))
        return unexpected(fmt::format("queue size {} is not a power of two in [1, {}]", size, max_size));
    if (!area_ok(memory, config.desc, 16 * size, desc_alignment))
        return unexpected(
            fmt::format("descriptor table at {:#x} is misaligned or outside RAM", config.desc.value));
    if (!area_ok(memory, config.avail, ring_header + avail_entry * size + 2, avail_alignment))
        return unexpected(
            fmt::format("driver area at {:#x} is misaligned or outside RAM", config.avail.value));
    if (!area_ok(memory, config.used, ring_header + used_entry * size + 2, used_alignment))
        return unexpected(
            fmt::format("device area at {:#x} is misaligned or outside RAM", config.used.value));
    return SplitQueue(memory, config, event_idx, indirect);
}

void SplitQueue::resume_at(QueueIndices const& at) noexcept {
    next_avail_ = at.next_avail;
    next_used_ = at.next_used;
    signalled_used_ = at.signalled_used;
}

Result<DescriptorChain> SplitQueue::walk(std::uint16_t head) const noexcept {
    DescriptorChain chain{.head = head, .descriptors = {}};
    chain.descriptors.reserve(typical_chain_length);  // one allocation for the usual request
    GuestAddress table = desc_;
    std::uint32_t table_size = size_;
    bool in_indirect = false;
    std::uint64_t total = 0;
    std::uint32_t index = head;
    // Bound: every pass either adds a buffer (at most size_ of them) or enters the one indirect
    // table allowed.
    while (true) {
        if (index >= table_size) return unexpected(fmt::format("next index {} is out of range", index));
        auto raw = memory_->read<RawDescriptor>(GuestAddress{table.value + 16ull * index});
        if (!raw) return unexpected("descriptor outside RAM");
        if (raw->flags & desc_f_indirect) {
            if (in_indirect) return unexpected("indirect table inside an indirect table");
            if (!indirect_) return unexpected("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
            if (!chain.descriptors.empty() || (raw->flags & desc_f_next))
                return unexpected("indirect descriptor inside a chain");  // §2.7.5.3.1
            if (raw->len == 0 || raw->len % 16 != 0 || raw->len / 16 > size_)
                return unexpected(fmt::format("indirect table of {} bytes", raw->len));
            if (!memory_->contains(GuestAddress{raw->addr}, raw->len))
                return unexpected("indirect table outside RAM");
            table = GuestAddress{raw->addr};
            table_size = raw->len / 16;
            in_indirect = true;
            index = 0;
            continue;
        }
        if (chain.descriptors.size() >= size_) return unexpected("chain longer than the queue (a loop?)");
        if (raw->addr + raw->len < raw->addr) return unexpected("buffer wraps around the address space");
        bool writable = (raw->flags & desc_f_write) != 0;
        if (!writable && !chain.descriptors.empty() && chain.descriptors.back().device_writable)
            return unexpected("readable buffer after a writable one");  // §2.7.4.2
        total += raw->len;
        if (total > max_chain_bytes) return unexpected("chain of 4 GiB or more");
        // Checked once here, so no device meets a buffer outside RAM (STYLE.md §9).
        if (!memory_->contains(GuestAddress{raw->addr}, raw->len)) return unexpected("buffer outside RAM");
        chain.descriptors.push_back({GuestAddress{raw->addr}, raw->len, writable});
        if (!(raw->flags & desc_f_next)) return chain;
        index = raw->next;
    }
}

bool SplitQueue::ring_empty() noexcept {
    auto avail_idx = memory_->read<std::uint16_t>(GuestAddress{avail_.value + 2});
    if (!avail_idx) {
        broken_ = true;
        return true;
    }
    auto pending = static_cast<std::uint16_t>(*avail_idx - next_avail_);
    if (pending > size_) {
        if (runaway_log.allow())
            log::warn(
                "virtqueue: avail index {} is {} entries ahead of the device (queue size {}): queue broken",
                *avail_idx, pending, size_);
        broken_ = true;
        return true;
    }
    return pending == 0;
}

std::optional<DescriptorChain> SplitQueue::pop() noexcept {
    // Bound: each pass consumes one avail entry, and at most size_ can be pending.
    for (std::uint32_t pass = 0; pass <= size_ && !broken_; ++pass) {
        if (ring_empty()) {
            if (broken_ || !event_idx_) return std::nullopt;
            // §2.7.10: ask to be notified at the next entry, then look again, so a driver that
            // added one in between is not missed.
            if (!memory_->write(GuestAddress{used_.value + ring_header + used_entry * size_}, next_avail_))
                broken_ = true;
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (ring_empty()) return std::nullopt;
        }
        // §2.7.13.2: read the ring entry only after the index that published it.
        std::atomic_thread_fence(std::memory_order_acquire);
        auto head = memory_->read<std::uint16_t>(
            GuestAddress{avail_.value + ring_header + avail_entry * (next_avail_ % size_)});
        ++next_avail_;
        if (!head) break;
        auto chain = walk(*head);
        if (chain) return std::move(chain).value();
        ++bad_chains_;
        if (bad_chain_log.allow())
            log::warn("virtqueue: bad descriptor chain at head {}: {}", *head, chain.error());
        if (*head >= size_) {
            broken_ = true;  // no valid id to hand back
            break;
        }
        add_used(*head, 0);
    }
    return std::nullopt;
}

void SplitQueue::add_used(std::uint16_t head, std::uint32_t written) noexcept {
    GuestAddress slot{used_.value + ring_header + used_entry * (next_used_ % size_)};
    if (!memory_->write(slot, UsedElement{head, written})) {
        broken_ = true;
        return;
    }
    ++next_used_;
    // §2.7.13.3: the element must be visible before the index that publishes it.
    std::atomic_thread_fence(std::memory_order_release);
    if (!memory_->write(GuestAddress{used_.value + 2}, next_used_)) broken_ = true;
}

bool SplitQueue::needs_interrupt() noexcept {
    // §2.7.13.3: the used index must be visible before reading the driver's suppression state.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    std::uint16_t old = signalled_used_;
    signalled_used_ = next_used_;
    if (old == next_used_) return false;
    if (event_idx_) {
        auto used_event =
            memory_->read<std::uint16_t>(GuestAddress{avail_.value + ring_header + avail_entry * size_});
        if (!used_event) return true;
        // §2.7.7.2: interrupt when used_event lies in [old, next_used_).
        return static_cast<std::uint16_t>(next_used_ - *used_event - 1) <
               static_cast<std::uint16_t>(next_used_ - old);
    }
    auto flags = memory_->read<std::uint16_t>(avail_);
    return !flags || !(*flags & avail_f_no_interrupt);
}

}  // namespace kvmlet::virtio
