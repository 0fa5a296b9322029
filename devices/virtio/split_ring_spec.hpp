#pragma once
// The split virtqueue's wire format (virtio 1.2 §2.7), once: the device (queue.cpp), the test
// driver (tests/unit/support/fake_driver.hpp), the fuzzers and the benchmarks all use these.
#include <cstdint>

namespace kvmlet::virtio {

// §2.7.5 The Virtqueue Descriptor Table.
struct RawDescriptor {
    std::uint64_t addr = 0;
    std::uint32_t len = 0;
    std::uint16_t flags = 0;
    std::uint16_t next = 0;
};
static_assert(sizeof(RawDescriptor) == 16);

inline constexpr std::uint16_t desc_f_next = 1;
inline constexpr std::uint16_t desc_f_write = 2;
inline constexpr std::uint16_t desc_f_indirect = 4;

// §2.7.6: avail.flags bit that asks the device not to interrupt (without EVENT_IDX).
inline constexpr std::uint16_t avail_f_no_interrupt = 1;

// §2.7.8 The Virtqueue Used Ring: one element.
struct UsedElement {
    std::uint32_t id = 0;
    std::uint32_t len = 0;
};
static_assert(sizeof(UsedElement) == 8);

// Ring layouts (§2.7.6, §2.7.8): flags (2 bytes), idx (2), ring[size], then the event index (2).
inline constexpr std::uint64_t ring_header = 4;
inline constexpr std::uint64_t avail_entry = 2;
inline constexpr std::uint64_t used_entry = sizeof(UsedElement);
// §2.7 Table: alignment of the descriptor table, driver (avail) and device (used) areas.
inline constexpr std::uint64_t desc_alignment = 16;
inline constexpr std::uint64_t avail_alignment = 2;
inline constexpr std::uint64_t used_alignment = 4;

}  // namespace kvmlet::virtio
