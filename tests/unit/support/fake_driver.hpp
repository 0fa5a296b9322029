#pragma once
// FakeDriver: the driver side of one split virtqueue, writing real descriptors and ring entries
// into real GuestMemory (STYLE.md §6), so queue and device tests exercise the same bytes a guest
// would write. It can also write what no honest driver would: loops, bad addresses, index jumps.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/queue.hpp"
#include "devices/virtio/split_ring_spec.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::test {

using virtio::desc_f_indirect;
using virtio::desc_f_next;
using virtio::desc_f_write;
using virtio::RawDescriptor;
using virtio::UsedElement;

// A buffer to put in a chain: `len` bytes at `addr`, device-writable or not.
struct Buffer {
    std::uint64_t addr = 0;
    std::uint32_t len = 0;
    bool writable = false;
};

class FakeDriver {
public:
    // Rings for a queue of `size` at `base` (page-aligned, in RAM): descriptor table, then the
    // avail ring, then the used ring at the next 4 KiB boundary. Data buffers are allocated
    // from `data` upwards with alloc().
    FakeDriver(GuestMemory const& memory, std::uint16_t size, std::uint64_t base = 0x10000,
               std::uint64_t data = 0x100000)
        : memory_(memory),
          size_(size),
          desc_(base),
          avail_(base + 16ull * size),
          used_((avail_ + 6 + 2ull * size + 0xfff) & ~0xfffull),
          next_data_(data) {}

    virtio::QueueConfig config() const {
        return {.size = size_,
                .desc = GuestAddress{desc_},
                .avail = GuestAddress{avail_},
                .used = GuestAddress{used_},
                .ready = true};
    }
    std::uint16_t size() const { return size_; }
    std::uint64_t desc_table() const { return desc_; }
    std::uint64_t avail_ring() const { return avail_; }
    std::uint64_t used_ring() const { return used_; }

    // `len` bytes of zeroed guest RAM for buffers, 16-byte aligned.
    std::uint64_t alloc(std::uint64_t len) {
        std::uint64_t at = next_data_;
        next_data_ = (next_data_ + len + 15) & ~15ull;
        std::vector<std::byte> zeros(len);
        REQUIRE(memory_.write_bytes(GuestAddress{at}, zeros));
        return at;
    }
    // A buffer filled with `bytes`.
    std::uint64_t alloc_with(std::span<std::byte const> bytes) {
        std::uint64_t at = alloc(bytes.size());
        REQUIRE(memory_.write_bytes(GuestAddress{at}, bytes));
        return at;
    }

    void write_descriptor(std::uint16_t index, RawDescriptor const& d) {
        REQUIRE(memory_.write(GuestAddress{desc_ + 16ull * index}, d));
    }

    // Writes `buffers` as a direct chain into free descriptor slots and makes it available.
    // Returns the head index.
    std::uint16_t add_chain(std::vector<Buffer> const& buffers) {
        std::uint16_t head = place_chain(buffers);
        publish(head);
        return head;
    }

    // Writes `buffers` as an indirect table in guest RAM, referenced by one descriptor; makes it
    // available and returns the head index.
    std::uint16_t add_indirect_chain(std::vector<Buffer> const& buffers) {
        std::uint64_t table = alloc(16 * buffers.size());
        for (std::size_t i = 0; i < buffers.size(); ++i) {
            RawDescriptor d{buffers[i].addr, buffers[i].len,
                            static_cast<std::uint16_t>((buffers[i].writable ? desc_f_write : 0) |
                                                       (i + 1 < buffers.size() ? desc_f_next : 0)),
                            static_cast<std::uint16_t>(i + 1)};
            REQUIRE(memory_.write(GuestAddress{table + 16 * i}, d));
        }
        std::uint16_t head = take_slot();
        write_descriptor(head, {table, static_cast<std::uint32_t>(16 * buffers.size()), desc_f_indirect, 0});
        publish(head);
        return head;
    }

    // Makes every descriptor slot free again (call once the device returned all chains).
    void recycle_descriptors() { next_slot_ = 0; }

    // Puts `head` in the next avail ring slot and bumps avail.idx.
    void publish(std::uint16_t head) {
        REQUIRE(memory_.write(GuestAddress{avail_ + 4 + 2ull * (avail_idx_ % size_)}, head));
        set_avail_idx(static_cast<std::uint16_t>(avail_idx_ + 1));
    }
    void set_avail_idx(std::uint16_t idx) {
        avail_idx_ = idx;
        REQUIRE(memory_.write(GuestAddress{avail_ + 2}, idx));
    }
    std::uint16_t avail_idx() const { return avail_idx_; }
    void set_avail_flags(std::uint16_t flags) { REQUIRE(memory_.write(GuestAddress{avail_}, flags)); }
    // used_event, after the avail ring (§2.7.6).
    void set_used_event(std::uint16_t value) {
        REQUIRE(memory_.write(GuestAddress{avail_ + 4 + 2ull * size_}, value));
    }
    // avail_event, after the used ring (§2.7.8).
    std::uint16_t avail_event() const {
        return *memory_.read<std::uint16_t>(GuestAddress{used_ + 4 + 8ull * size_});
    }
    std::uint16_t used_idx() const { return *memory_.read<std::uint16_t>(GuestAddress{used_ + 2}); }

    // The next used element the device published, if any.
    std::optional<UsedElement> next_used() {
        if (used_idx() == last_used_) return std::nullopt;
        auto e = memory_.read<UsedElement>(GuestAddress{used_ + 4 + 8ull * (last_used_ % size_)});
        REQUIRE(e);
        ++last_used_;
        return *e;
    }

private:
    std::uint16_t take_slot() {
        REQUIRE(next_slot_ < size_);
        return next_slot_++;
    }
    std::uint16_t place_chain(std::vector<Buffer> const& buffers) {
        REQUIRE(!buffers.empty());
        std::vector<std::uint16_t> slots;
        for (std::size_t i = 0; i < buffers.size(); ++i) slots.push_back(take_slot());
        for (std::size_t i = 0; i < buffers.size(); ++i) {
            bool last = i + 1 == buffers.size();
            write_descriptor(slots[i], {buffers[i].addr, buffers[i].len,
                                        static_cast<std::uint16_t>((buffers[i].writable ? desc_f_write : 0) |
                                                                   (last ? 0 : desc_f_next)),
                                        last ? std::uint16_t{0} : slots[i + 1]});
        }
        return slots.front();
    }

    GuestMemory const& memory_;
    std::uint16_t size_;
    std::uint64_t desc_;
    std::uint64_t avail_;
    std::uint64_t used_;
    std::uint64_t next_data_;
    std::uint16_t next_slot_ = 0;
    std::uint16_t avail_idx_ = 0;
    std::uint16_t last_used_ = 0;
};

}  // namespace kvmlet::test
