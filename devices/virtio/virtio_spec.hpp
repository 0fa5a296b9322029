#pragma once
// Numbers from the virtio 1.2 specification shared by every transport and device.
#include <cstdint>

namespace kvmlet::virtio {

// §2.1 Device Status Field.
namespace status {
inline constexpr std::uint32_t acknowledge = 1;
inline constexpr std::uint32_t driver = 2;
inline constexpr std::uint32_t driver_ok = 4;
inline constexpr std::uint32_t features_ok = 8;
inline constexpr std::uint32_t device_needs_reset = 64;
inline constexpr std::uint32_t failed = 128;
}  // namespace status

// §6 Reserved Feature Bits (bit numbers).
namespace feature {
inline constexpr std::uint32_t ring_indirect_desc = 28;
inline constexpr std::uint32_t ring_event_idx = 29;
inline constexpr std::uint32_t version_1 = 32;
inline constexpr std::uint32_t access_platform = 33;
}  // namespace feature

inline constexpr std::uint64_t bit(std::uint32_t feature_bit) {
    return std::uint64_t{1} << feature_bit;
}

// §5 Device Types.
enum class DeviceType : std::uint32_t {
    net = 1,
    block = 2,
    console = 3,
    rng = 4,
    vsock = 19,
};

// §2.7 Split virtqueues: the largest queue size a split ring can have.
inline constexpr std::uint16_t max_queue_size = 32768;

}  // namespace kvmlet::virtio
