#pragma once
// What a virtio-vsock device is configured with (MachineConfig::vsock): plain values, checked by
// the device (VsockDevice's constructor).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace kvmlet::virtio {

struct VsockLimits {
    std::size_t max_connections = 1024;
    std::uint32_t buffer_bytes = 256 * 1024;  // buf_alloc: guest data held per connection
    // For the CONNECT line, and for the guest's RESPONSE to a host-initiated connection.
    std::chrono::milliseconds request_timeout{2000};
    // From a SHUTDOWN of both directions (either side's) to the RST that ends the connection.
    std::chrono::milliseconds shutdown_timeout{2000};
};

struct VsockConfig {
    std::uint32_t guest_cid = 3;  // 3 to 0xfffffffe
    std::filesystem::path uds_path;
    VsockLimits limits{};
};

}  // namespace kvmlet::virtio
