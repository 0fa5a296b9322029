#pragma once
// Where a virtio-net device's packets go and come from: a TAP interface, or (tests, benchmarks)
// one end of a UNIX datagram socket pair. Either way one read or write is one packet, made of
// the 12-byte virtio_net_hdr (net::Header, little-endian, num_buffers included) and the
// Ethernet frame: what a TAP opened with IFF_VNET_HDR and TUNSETVNETHDRSZ 12 carries.
#include <sys/types.h>
#include <sys/uio.h>

#include <span>
#include <string>

#include "vmm/base/result.hpp"

namespace kvmlet::virtio::net {

// Offloads the endpoint may use in the packets it hands the device (TUNSETOFFLOAD), derived
// from the GUEST_* features the driver accepted. Packets the device sends may use any offload:
// the TAP always accepts partial checksums and segmentation in what it is given.
struct Offloads {
    bool csum = false;  // partial checksums (NEEDS_CSUM)
    bool tso4 = false;
    bool tso6 = false;
    bool operator==(Offloads const&) const = default;
};

class Endpoint {
public:
    virtual ~Endpoint() = default;

    // The non-blocking descriptor the device's owner watches for readiness.
    virtual int fd() const noexcept = 0;
    // For log lines: the interface name, or what the socket stands for.
    virtual std::string const& name() const noexcept = 0;
    // Sends one packet gathered from `packet`. Returns the bytes sent, or -errno (-EAGAIN when
    // the endpoint cannot take it now).
    virtual ssize_t send(std::span<iovec const> packet) noexcept = 0;
    // Receives one packet into `buffers`. Returns its length (more than the buffers hold when it
    // was cut short and the endpoint can tell), 0 when the other side has gone, or -errno
    // (-EAGAIN when no packet is waiting).
    virtual ssize_t receive(std::span<iovec const> buffers) noexcept = 0;
    virtual Result<void> set_offloads(Offloads offloads) noexcept = 0;
};

}  // namespace kvmlet::virtio::net
