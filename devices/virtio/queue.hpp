#pragma once
// A split virtqueue (virtio 1.2 §2.7), seen from the device. The driver owns the rings; every
// read of them is a copy through GuestMemory, validated before use, and every loop over guest
// data has a bound (STYLE.md §5): a chain has at most `size` descriptors, an indirect table
// cannot contain another, and a chain's total length fits in 32 bits.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmm/base/guest_address.hpp"
#include "vmm/base/result.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::virtio {

// What the driver wrote into the transport's queue registers.
struct QueueConfig {
    std::uint16_t size = 0;
    GuestAddress desc;   // descriptor table: 16 * size bytes, 16-byte aligned
    GuestAddress avail;  // driver area: 6 + 2 * size bytes, 2-byte aligned
    GuestAddress used;   // device area: 6 + 8 * size bytes, 4-byte aligned
    bool ready = false;
};

// One buffer of a chain, after indirect tables are resolved: it lies entirely in RAM (checked
// once, at pop). Devices still reach it only through GuestMemory (chain_io.hpp), whose views are
// taken and used at once.
struct Descriptor {
    GuestAddress addr;
    std::uint32_t len = 0;
    bool device_writable = false;
};

// A chain popped from the available ring: the head index to hand back through add_used, and its
// buffers in order. Readable buffers come before writable ones (§2.7.4.2 is enforced).
struct DescriptorChain {
    std::uint16_t head = 0;
    std::vector<Descriptor> descriptors;
};

// Where a queue's device side stands, for a snapshot (docs/snapshot.md): the next available entry
// to take, the next used entry to write, and next_used at the last interrupt decision (the
// event-index batch, §2.7.7.2).
struct QueueIndices {
    std::uint16_t next_avail = 0;
    std::uint16_t next_used = 0;
    std::uint16_t signalled_used = 0;
    bool operator==(QueueIndices const&) const = default;
};

class SplitQueue {
public:
    // Checks the configuration against §2.7: the driver made it ready, size a power of two in
    // [1, max_size], the three areas aligned and entirely inside RAM. `event_idx` is whether
    // VIRTIO_F_EVENT_IDX was negotiated, `indirect` whether VIRTIO_F_INDIRECT_DESC was.
    static Result<SplitQueue> activate(GuestMemory const& memory, QueueConfig const& config,
                                       std::uint16_t max_size, bool event_idx, bool indirect);

    // The next available chain. Chains that are malformed (a next index out of range, a loop or
    // a chain longer than the queue, an indirect table that is empty, outside RAM, nested or
    // not negotiated, a readable buffer after a writable one, a total length over 2^32, a buffer
    // not entirely in RAM) never
    // reach the device: they go back to the driver as used with length 0, and are counted.
    // Returns nullopt when the ring is empty or the queue is broken.
    std::optional<DescriptorChain> pop() noexcept;

    // Returns a chain to the driver with `written` bytes written into its writable buffers.
    void add_used(std::uint16_t head, std::uint32_t written) noexcept;

    // Whether the driver wants an interrupt for the used buffers added since the last call
    // (§2.7.7.2: used_event with EVENT_IDX, otherwise the NO_INTERRUPT flag). Resets the batch.
    bool needs_interrupt() noexcept;

    // An avail index that runs more than `size` ahead of the device, or a ring that cannot be
    // read or written: the queue stops and the device must ask for a reset (DEVICE_NEEDS_RESET).
    bool broken() const noexcept { return broken_; }
    QueueIndices indices() const noexcept { return {next_avail_, next_used_, signalled_used_}; }
    // A restored queue goes on from where its snapshot left it instead of from zero. Any values
    // are safe: a ring that does not match them breaks the queue at its next pass, as a driver's
    // runaway index would.
    void resume_at(QueueIndices const& at) noexcept;
    std::uint16_t size() const noexcept { return size_; }
    std::uint64_t bad_chains() const noexcept { return bad_chains_; }

private:
    Result<DescriptorChain> walk(std::uint16_t head) const noexcept;
    bool ring_empty() noexcept;
    SplitQueue(GuestMemory const& memory, QueueConfig const& config, bool event_idx, bool indirect) noexcept;

    GuestMemory const* memory_;
    GuestAddress desc_;
    GuestAddress avail_;
    GuestAddress used_;
    std::uint16_t size_;
    bool event_idx_;
    bool indirect_;
    std::uint16_t next_avail_ = 0;
    std::uint16_t next_used_ = 0;
    std::uint16_t signalled_used_ = 0;  // next_used_ at the last needs_interrupt()
    bool broken_ = false;
    std::uint64_t bad_chains_ = 0;
};

}  // namespace kvmlet::virtio
