#pragma once
// Numbers and wire structures of the virtio block device (virtio 1.2 §5.2). Multi-byte fields
// are little-endian on the wire; kvmlet only runs on little-endian hosts (asserted below).
#include <bit>
#include <cstddef>
#include <cstdint>

namespace kvmlet::virtio::blk {

static_assert(std::endian::native == std::endian::little, "virtio-blk wire structs are copied as-is");

// §5.2.3 Feature bits (bit numbers).
namespace feature {
inline constexpr std::uint32_t size_max = 1;
inline constexpr std::uint32_t seg_max = 2;
inline constexpr std::uint32_t ro = 5;
inline constexpr std::uint32_t blk_size = 6;
inline constexpr std::uint32_t flush = 9;
inline constexpr std::uint32_t discard = 13;
inline constexpr std::uint32_t write_zeroes = 14;
}  // namespace feature

// §5.2.6 Device Operation: request types, status values, the ID length and the sector unit.
namespace request_type {
inline constexpr std::uint32_t in = 0;
inline constexpr std::uint32_t out = 1;
inline constexpr std::uint32_t flush = 4;
inline constexpr std::uint32_t get_id = 8;
inline constexpr std::uint32_t discard = 11;
inline constexpr std::uint32_t write_zeroes = 13;
}  // namespace request_type

namespace status {
inline constexpr std::uint8_t ok = 0;
inline constexpr std::uint8_t ioerr = 1;
inline constexpr std::uint8_t unsupp = 2;
}  // namespace status

inline constexpr std::size_t id_bytes = 20;  // VIRTIO_BLK_ID_BYTES: NUL-padded, no terminator at 20
inline constexpr std::uint64_t sector_size = 512;
inline constexpr std::uint32_t sector_shift = 9;

// The header at the front of every request (struct virtio_blk_req without data and status).
struct RequestHeader {
    std::uint32_t type;
    std::uint32_t reserved;  // was ioprio in the legacy interface
    std::uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

// One range of a DISCARD or WRITE_ZEROES request (struct virtio_blk_discard_write_zeroes).
struct DiscardSegment {
    std::uint64_t sector;
    std::uint32_t num_sectors;
    std::uint32_t flags;
};
static_assert(sizeof(DiscardSegment) == 16);
inline constexpr std::uint32_t segment_flag_unmap = 1u << 0;  // the other 31 bits are reserved

// §5.2.4 Device configuration layout, up to the secure-erase fields (the zoned characteristics
// that follow are never offered and read as zero).
struct Config {
    std::uint64_t capacity;  // in 512-byte sectors
    std::uint32_t size_max;
    std::uint32_t seg_max;
    std::uint16_t geometry_cylinders;
    std::uint8_t geometry_heads;
    std::uint8_t geometry_sectors;
    std::uint32_t blk_size;
    std::uint8_t topology_physical_block_exp;
    std::uint8_t topology_alignment_offset;
    std::uint16_t topology_min_io_size;
    std::uint32_t topology_opt_io_size;
    std::uint8_t writeback;
    std::uint8_t unused0;
    std::uint16_t num_queues;
    std::uint32_t max_discard_sectors;
    std::uint32_t max_discard_seg;
    std::uint32_t discard_sector_alignment;
    std::uint32_t max_write_zeroes_sectors;
    std::uint32_t max_write_zeroes_seg;
    std::uint8_t write_zeroes_may_unmap;
    std::uint8_t unused1[3];
    std::uint32_t max_secure_erase_sectors;
    std::uint32_t max_secure_erase_seg;
    std::uint32_t secure_erase_sector_alignment;
};
static_assert(sizeof(Config) == 72);
static_assert(offsetof(Config, blk_size) == 20);
static_assert(offsetof(Config, max_discard_sectors) == 36);
static_assert(offsetof(Config, write_zeroes_may_unmap) == 56);

}  // namespace kvmlet::virtio::blk
