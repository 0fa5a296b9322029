#pragma once
// A packet endpoint over one end of socketpair(AF_UNIX, SOCK_SEQPACKET or SOCK_DGRAM): stands in
// for a TAP in tests and benchmarks. The peer writes and reads whole packets (net::Header +
// frame). Offloads are only recorded: nothing on the other side segments or checksums.
#include <cstdint>
#include <string>

#include "devices/virtio/net/endpoint.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::virtio::net {

class SocketEndpoint final : public Endpoint {
public:
    // Makes `socket` non-blocking. Throws Error when it is not a descriptor.
    explicit SocketEndpoint(UniqueFd socket, std::string name = "socket");

    int fd() const noexcept override { return socket_.get(); }
    std::string const& name() const noexcept override { return name_; }
    ssize_t send(std::span<iovec const> packet) noexcept override;
    ssize_t receive(std::span<iovec const> buffers) noexcept override;
    Result<void> set_offloads(Offloads offloads) noexcept override;

    // What the device last asked for, and how many times it asked.
    Offloads offloads() const noexcept { return offloads_; }
    std::uint32_t offload_requests() const noexcept { return offload_requests_; }

private:
    UniqueFd socket_;
    std::string name_;
    Offloads offloads_;
    std::uint32_t offload_requests_ = 0;
};

}  // namespace kvmlet::virtio::net
