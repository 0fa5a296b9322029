#pragma once
// A TAP interface as a packet endpoint (Linux Documentation/networking/tuntap.rst): opened
// non-blocking with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte vnet header, so every read
// and write is one net::Header followed by one Ethernet frame, offloads included.
//
// Either an existing interface (ip tuntap add dev vmtap0 mode tap; the user brings it up and
// routes it), or one kvmlet creates: the kernel picks the name, kvmlet brings it up, and since it
// is not persistent the kernel removes it when the descriptor closes (needs CAP_NET_ADMIN).
// Setup failures throw Error with one line: "net: TAP vmtap0: ...".
#include <cstdint>
#include <string>

#include "devices/virtio/net/endpoint.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::virtio::net {

class Tap final : public Endpoint {
public:
    // Attaches to the existing TAP interface `name`.
    static Tap open(std::string const& name);
    // Creates a TAP named from `pattern` (%d: the kernel picks a number) and brings it up.
    static Tap create(std::string const& pattern = "kvmlet%d");

    int fd() const noexcept override { return fd_.get(); }
    std::string const& name() const noexcept override { return name_; }
    ssize_t send(std::span<iovec const> packet) noexcept override;
    ssize_t receive(std::span<iovec const> buffers) noexcept override;
    Result<void> set_offloads(Offloads offloads) noexcept override;

    // The TUNSETOFFLOAD flags for `offloads` (segmentation only with checksums: the TAP ignores
    // TSO without TUN_F_CSUM).
    static unsigned tun_flags(Offloads offloads) noexcept;

private:
    Tap(UniqueFd fd, std::string name) noexcept : fd_(std::move(fd)), name_(std::move(name)) {}

    UniqueFd fd_;
    std::string name_;
};

}  // namespace kvmlet::virtio::net
