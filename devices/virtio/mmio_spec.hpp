#pragma once
// The virtio-mmio register file (virtio 1.2 §4.2.2), once for the C++ side: the transport and its
// fuzzer. tests/unit/devices/virtio/mmio_transport_test.cpp spells the offsets out again on
// purpose (the test does not trust these), and the freestanding C tiny guests keep their own copy
// in tests/guests/virtio.h.
#include <cstdint>

namespace kvmlet::virtio::mmio {

namespace reg {
inline constexpr std::uint64_t magic_value = 0x000;
inline constexpr std::uint64_t version = 0x004;
inline constexpr std::uint64_t device_id = 0x008;
inline constexpr std::uint64_t vendor_id = 0x00c;
inline constexpr std::uint64_t device_features = 0x010;
inline constexpr std::uint64_t device_features_sel = 0x014;
inline constexpr std::uint64_t driver_features = 0x020;
inline constexpr std::uint64_t driver_features_sel = 0x024;
inline constexpr std::uint64_t queue_sel = 0x030;
inline constexpr std::uint64_t queue_num_max = 0x034;
inline constexpr std::uint64_t queue_num = 0x038;
inline constexpr std::uint64_t queue_ready = 0x044;
inline constexpr std::uint64_t queue_notify = 0x050;
inline constexpr std::uint64_t interrupt_status = 0x060;
inline constexpr std::uint64_t interrupt_ack = 0x064;
inline constexpr std::uint64_t status = 0x070;
inline constexpr std::uint64_t queue_desc_low = 0x080;
inline constexpr std::uint64_t queue_desc_high = 0x084;
inline constexpr std::uint64_t queue_driver_low = 0x090;
inline constexpr std::uint64_t queue_driver_high = 0x094;
inline constexpr std::uint64_t queue_device_low = 0x0a0;
inline constexpr std::uint64_t queue_device_high = 0x0a4;
inline constexpr std::uint64_t shm_sel = 0x0ac;
inline constexpr std::uint64_t shm_len_low = 0x0b0;
inline constexpr std::uint64_t shm_len_high = 0x0b4;
inline constexpr std::uint64_t config_generation = 0x0fc;
inline constexpr std::uint64_t config = 0x100;
}  // namespace reg

inline constexpr std::uint32_t magic = 0x7472'6976;  // "virt"
inline constexpr std::uint32_t version_modern = 2;
// InterruptStatus bits.
inline constexpr std::uint32_t interrupt_used_buffer = 1;
inline constexpr std::uint32_t interrupt_config_change = 2;

}  // namespace kvmlet::virtio::mmio
