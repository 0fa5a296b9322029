#include "devices/virtio/net/socket_endpoint.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>

#include "vmm/base/error.hpp"

namespace kvmlet::virtio::net {

SocketEndpoint::SocketEndpoint(UniqueFd socket, std::string name)
    : socket_(std::move(socket)), name_(std::move(name)) {
    int const flags = ::fcntl(socket_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(socket_.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        throw system_error("net: " + name_ + ": making the socket non-blocking");
}

ssize_t SocketEndpoint::send(std::span<iovec const> packet) noexcept {
    // No SIGPIPE when the peer has gone: the error comes back as EPIPE instead.
    int const flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    if (packet.size() == 1) {  // the common case, and cheaper in the kernel than sendmsg
        ssize_t const n = ::send(socket_.get(), packet[0].iov_base, packet[0].iov_len, flags);
        return n < 0 ? -errno : n;
    }
    msghdr message{};
    // Safety: sendmsg only reads the iovecs; msghdr's member is not const-qualified.
    message.msg_iov = const_cast<iovec*>(packet.data());
    message.msg_iovlen = packet.size();
    ssize_t const n = ::sendmsg(socket_.get(), &message, flags);
    return n < 0 ? -errno : n;
}

ssize_t SocketEndpoint::receive(std::span<iovec const> buffers) noexcept {
    // MSG_TRUNC: the datagram's real length, even when the buffers were too small for it.
    int const flags = MSG_DONTWAIT | MSG_TRUNC;
    if (buffers.size() == 1) {
        ssize_t const n = ::recv(socket_.get(), buffers[0].iov_base, buffers[0].iov_len, flags);
        return n < 0 ? -errno : n;
    }
    msghdr message{};
    // Safety: recvmsg writes through the iovecs, never into them.
    message.msg_iov = const_cast<iovec*>(buffers.data());
    message.msg_iovlen = buffers.size();
    ssize_t const n = ::recvmsg(socket_.get(), &message, flags);
    return n < 0 ? -errno : n;
}

Result<void> SocketEndpoint::set_offloads(Offloads offloads) noexcept {
    offloads_ = offloads;
    ++offload_requests_;
    return {};
}

}  // namespace kvmlet::virtio::net
