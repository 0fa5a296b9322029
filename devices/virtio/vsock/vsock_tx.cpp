// VsockDevice, guest to host: the tx queue's packets (see vsock_device.hpp).
#include <sys/socket.h>

#include <cerrno>

#include "devices/virtio/vsock/connect_line.hpp"
#include "devices/virtio/vsock/unix_socket.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"

namespace kvmlet::virtio {
namespace {

using vsock::ConnectionKey;
using vsock::ConnectionState;
using vsock::Header;

constexpr int send_flags = MSG_DONTWAIT | MSG_NOSIGNAL;  // EPIPE, not SIGPIPE, when the peer left

// Bytes sent, or -errno; EAGAIN (the socket is full) counts as 0 bytes.
ssize_t send_iov(int fd, iovec const* iov, std::size_t count) noexcept {
    msghdr message{};
    // Safety: sendmsg only reads the iovecs; msghdr's member is not const-qualified.
    message.msg_iov = const_cast<iovec*>(iov);
    message.msg_iovlen = count;
    ssize_t const n = ::sendmsg(fd, &message, send_flags);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
}

ConnectionKey key_of(Header const& header) {
    return {.local_port = header.dst_port, .peer_port = header.src_port};
}

}  // namespace

Work VsockDevice::transmit() noexcept {
    SplitQueue& tx = active_->queue(vsock::tx_queue);
    for (std::uint32_t n = 0; n < packets_per_call; ++n) {
        // Every packet may need an answer: with the answers piling up (the guest posts no rx
        // buffers) its packets wait in the ring until deliver() makes room.
        if (control_.size() >= control_soft_limit) {
            tx_paused_ = true;
            return Work::done;
        }
        auto chain = tx.pop();
        if (!chain) return Work::done;
        guest_packet(*chain);
        tx.add_used(chain->head, 0);  // the device writes nothing into a tx chain
    }
    return Work::more;
}

void VsockDevice::guest_packet(DescriptorChain const& chain) noexcept {
    ChainReader reader(active_->memory(), chain);
    Header header{};
    if (!reader.read_obj(header)) {
        counters_.tx_malformed.add();
        return warn("packet shorter than its header: dropped");
    }
    if (!packet_acceptable(header, reader)) return;
    counters_.tx_packets.add();
    Connection* c = find(key_of(header));
    if (c) return connection_packet(*c, header, chain, reader);
    if (header.op == vsock::op::request) return open_to_host(header);
    // §5.10.6.4: a packet for no connection is answered with RST, but an RST never is.
    if (header.op != vsock::op::rst) queue_reset(key_of(header));
}

// The checks every packet passes before it may touch a connection.
bool VsockDevice::packet_acceptable(Header const& header, ChainReader const& reader) noexcept {
    if (header.src_cid != config_.guest_cid || header.dst_cid != vsock::host_cid) {
        counters_.tx_wrong_cid.add();
        warn("packet with a source CID not the guest's or a destination not the host: dropped");
        return false;
    }
    bool const length_ok = header.len <= vsock::max_payload && header.len <= reader.remaining();
    bool const op_known = header.op >= vsock::op::request && header.op <= vsock::op::credit_request;
    if (length_ok && op_known && header.type == vsock::type_stream) return true;
    counters_.tx_malformed.add();
    warn("packet with a bad length, type or op: reset");
    if (header.op != vsock::op::rst) queue_reset(key_of(header));
    if (Connection* c = find(key_of(header))) remove(*c);  // the RST ends it
    return false;
}

void VsockDevice::connection_packet(Connection& c, Header const& header, DescriptorChain const& chain,
                                    ChainReader& reader) noexcept {
    if (header.op == vsock::op::rst) return remove(c);  // the guest ended it: no answer
    std::uint64_t const id = c.id;                      // what follows may end the connection
    c.take_peer_credit(header);
    if (c.state == ConnectionState::requesting) {
        if (header.op != vsock::op::response) return protocol_error(c, "packet before the RESPONSE");
        c.state = ConnectionState::established;
        ++c.timer;  // the request timer no longer counts
        c.ack = vsock::ok_line(c.key.local_port);
        if (!flush(c)) return;
        return update_interest(c);
    }
    switch (header.op) {
        case vsock::op::rw:
            guest_data(c, header, chain, reader);
            break;
        case vsock::op::shutdown:
            guest_shutdown(c, header.flags);
            break;
        case vsock::op::credit_request:
            queue_credit_update(c);
            break;
        case vsock::op::credit_update:
            break;  // the credit came with the header
        default:    // REQUEST or RESPONSE on an established connection
            return protocol_error(c, "REQUEST or RESPONSE on an established connection");
    }
    if (Connection* still = find(id)) update_interest(*still);
}

// A guest connection to host port P: to the socket listening at <uds_path>_P.
void VsockDevice::open_to_host(Header const& header) noexcept {
    ConnectionKey const key = key_of(header);
    UniqueFd socket;
    int const error = connections_.size() >= config_.limits.max_connections
                          ? EMFILE
                          : vsock::connect_unix(vsock::port_path(config_.uds_path, key.local_port), socket);
    Connection* c = error == 0 ? add_connection(std::move(socket), 0) : nullptr;
    if (!c) {
        counters_.connections_refused.add();
        return queue_reset(key);
    }
    set_key(*c, key);
    c->take_peer_credit(header);
    counters_.connections_opened.add();
    queue_control({.connection = c->id, .key = key, .op = vsock::op::response, .flags = 0});
    update_interest(*c);
}

void VsockDevice::guest_data(Connection& c, Header const& header, DescriptorChain const& chain,
                             ChainReader& reader) noexcept {
    if (c.guest_shut_send) return protocol_error(c, "data after the guest's SHUTDOWN(SEND)");
    if (header.len > c.pending.space()) return protocol_error(c, "data beyond the credit given");
    if (header.len == 0) return;
    std::uint64_t written = 0;
    if (!c.has_output()) {  // straight from guest RAM to the socket, in order
        iov_.clear();
        if (!view_buffers(active_->memory(), chain, Direction::readable, sizeof(Header), header.len, iov_))
            return protocol_error(c, "data outside RAM");
        ssize_t const n = send_iov(c.socket.get(), iov_.data(), iov_.size());
        if (n < 0) {
            counters_.host_errors.add();
            warn("writing to a host socket failed: reset");
            return reset_connection(c);
        }
        written = static_cast<std::uint64_t>(n);
        c.fwd_cnt += static_cast<std::uint32_t>(written);
    }
    auto const rest = static_cast<std::size_t>(header.len - written);
    if (!reader.skip(written) ||
        !c.pending.push(rest, [&](std::span<std::byte> s) { return reader.read(s); }))
        return protocol_error(c, "data outside RAM, or no memory to hold it");
    counters_.tx_bytes.add(header.len);
    if (c.guest_needs_credit_update()) queue_credit_update(c);
}

// §5.10.6.5: the flags only add up; with both, the connection ends (RST) once its data is out.
void VsockDevice::guest_shutdown(Connection& c, std::uint32_t flags) noexcept {
    c.guest_shut_rcv = c.guest_shut_rcv || (flags & vsock::shutdown_rcv) != 0;
    c.guest_shut_send = c.guest_shut_send || (flags & vsock::shutdown_send) != 0;
    if (c.guest_shut_rcv && c.guest_shut_send && !c.closing) {
        c.closing = true;
        arm_timer(c, config_.limits.shutdown_timeout);
    }
    after_flush(c);
}

// Writes what the connection holds for the host socket; false when that ended the connection.
bool VsockDevice::flush(Connection& c) noexcept {
    if (!flush_ack(c)) return false;
    if (c.ack.empty() && !c.pending.empty()) {
        std::array<iovec, 2> views{};
        std::size_t const count = c.pending.front(views);
        ssize_t const n = send_iov(c.socket.get(), views.data(), count);
        if (n < 0) {
            counters_.host_errors.add();
            warn("writing to a host socket failed: reset");
            reset_connection(c);
            return false;
        }
        c.pending.consume(static_cast<std::size_t>(n));
        c.fwd_cnt += static_cast<std::uint32_t>(n);
    }
    if (c.guest_needs_credit_update()) queue_credit_update(c);
    std::uint64_t const id = c.id;
    after_flush(c);
    return find(id) != nullptr;
}

bool VsockDevice::flush_ack(Connection& c) noexcept {
    if (c.ack.empty()) return true;
    iovec const view{c.ack.data(), c.ack.size()};
    ssize_t const n = send_iov(c.socket.get(), &view, 1);
    if (n < 0) {
        counters_.host_errors.add();
        warn("the host socket went away before its OK: reset");
        reset_connection(c);
        return false;
    }
    c.ack.erase(0, static_cast<std::size_t>(n));
    return true;
}

// Once the guest's data is all out: pass on its SHUTDOWN(SEND), and end a connection both sides
// shut down.
void VsockDevice::after_flush(Connection& c) noexcept {
    if (c.has_output()) return;
    if (c.guest_shut_send && !c.host_write_shut && !c.host_hangup) {
        c.host_write_shut = true;
        ::shutdown(c.socket.get(), SHUT_WR);
    }
    if (c.guest_shut_rcv && c.guest_shut_send) reset_connection(c);
}

void VsockDevice::protocol_error(Connection& c, char const* what) noexcept {
    counters_.protocol_errors.add();
    warn(what);
    reset_connection(c);
}

}  // namespace kvmlet::virtio
