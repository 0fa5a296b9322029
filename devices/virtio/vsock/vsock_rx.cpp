// VsockDevice, host to guest: packets into the rx queue's buffers (see vsock_device.hpp).
// Control packets (answers, requests, credit, RST) go first; then data, read from the host
// sockets straight into the guest's buffers, one connection after another.
#include <sys/uio.h>

#include <cerrno>

#include "devices/virtio/vsock/vsock_device.hpp"

namespace kvmlet::virtio {
namespace {

using vsock::Header;

}  // namespace

Work VsockDevice::deliver() noexcept {
    Work work = Work::more;
    for (std::uint32_t n = 0; n < packets_per_call; ++n) {
        if (control_.empty() && readable_.empty()) {
            work = Work::done;
            break;
        }
        auto chain = next_rx_chain();
        if (!chain) {  // the driver's next rx buffers resume (process_queue)
            work = Work::done;
            break;
        }
        bool const used = control_.empty() ? send_data(*chain) : send_control(*chain);
        if (!used) rx_spare_ = std::move(chain);
    }
    // The guest's packets waited while their answers piled up: room again.
    if (tx_paused_ && control_.size() < control_soft_limit) {
        tx_paused_ = false;
        active_->host().kick(vsock::tx_queue);
    }
    return work;
}

// The next rx chain with room for a header and some data; smaller ones go back unused.
std::optional<DescriptorChain> VsockDevice::next_rx_chain() noexcept {
    SplitQueue& rx = active_->queue(vsock::rx_queue);
    // Bound: every pass takes one chain; a queue holds at most queue_size at once.
    for (std::uint32_t pass = 0; pass <= queue_size; ++pass) {
        auto chain = rx_spare_ ? std::exchange(rx_spare_, std::nullopt) : rx.pop();
        if (!chain) return std::nullopt;
        if (ChainWriter(active_->memory(), *chain).remaining() > sizeof(Header)) return chain;
        counters_.rx_bad_buffers.add();
        warn("rx buffer too small for a packet header and data: given back unused");
        rx.add_used(chain->head, 0);
    }
    return std::nullopt;
}

// Sends the first control packet; false when it was for a connection that has gone since (the
// chain stays unused).
bool VsockDevice::send_control(DescriptorChain const& chain) noexcept {
    Control const control = control_.front();
    control_.pop_front();
    if (control.connection == 0) {
        put_packet(chain, header_to_guest(control.key, control.op));
        return true;
    }
    Connection* c = find(control.connection);
    if (!c) return false;
    if (control.op == vsock::op::credit_update) c->credit_update_queued = false;
    Header header = header_to_guest(*c, control.op);
    header.flags = control.flags;
    put_packet(chain, header);
    return true;
}

// Reads host data into the chain for the next readable connection that has some; false when
// none had (the chain stays unused).
bool VsockDevice::send_data(DescriptorChain& chain) noexcept {
    // Bound: every pass takes one entry off the list; entries come back only after a read that
    // used a chain.
    while (!readable_.empty()) {
        Connection* c = find(readable_.front());
        readable_.pop_front();
        if (!c || !c->readable) continue;
        c->readable = false;
        std::uint32_t const credit = std::min(c->peer_credit(), vsock::max_payload);
        if (!c->may_receive() || credit == 0) {
            if (c->may_receive() && !std::exchange(c->credit_requested, true))
                queue_control({.connection = c->id, .key = c->key, .op = vsock::op::credit_request});
            update_interest(*c);
            continue;
        }
        if (read_into(*c, chain, credit)) return true;
    }
    return false;
}

// Reads at most `credit` bytes from the connection's socket into the chain, behind the header;
// false when nothing came and the chain stays unused.
bool VsockDevice::read_into(Connection& c, DescriptorChain const& chain, std::uint32_t credit) noexcept {
    iov_.clear();
    auto const room =
        view_buffers(active_->memory(), chain, Direction::writable, sizeof(Header), credit, iov_);
    if (!room || *room == 0) {  // cannot be (RAM and room were checked): the chain goes back
        c.readable = true;
        readable_.push_front(c.id);
        counters_.rx_bad_buffers.add();
        active_->queue(vsock::rx_queue).add_used(chain.head, 0);
        return true;
    }
    ssize_t const n = ::readv(c.socket.get(), iov_.data(), static_cast<int>(iov_.size()));
    if (n <= 0) return read_failed(c, chain, n < 0 ? -errno : 0);
    Header header = header_to_guest(c, vsock::op::rw);
    header.len = static_cast<std::uint32_t>(n);
    c.tx_cnt += header.len;
    counters_.rx_bytes.add(header.len);
    put_packet(chain, header);
    // A full buffer may have left more behind: its turn comes again after the others.
    c.readable = static_cast<std::uint64_t>(n) == *room;
    if (c.readable) readable_.push_back(c.id);
    update_interest(c);
    return true;
}

// A read that brought nothing: EOF becomes a SHUTDOWN of both directions in this chain (true),
// as Firecracker does, with the timer that ends the connection if the guest does not; EAGAIN
// waits for the socket; an error resets the connection.
bool VsockDevice::read_failed(Connection& c, DescriptorChain const& chain, ssize_t result) noexcept {
    if (result == 0 || (c.host_hangup && (result == -EAGAIN || result == -EWOULDBLOCK))) {
        c.host_eof = true;
        Header header = header_to_guest(c, vsock::op::shutdown);
        header.flags = vsock::shutdown_both;
        put_packet(chain, header);
        if (!std::exchange(c.closing, true)) arm_timer(c, config_.limits.shutdown_timeout);
        update_interest(c);
        return true;
    }
    bool const nothing_yet = result == -EAGAIN || result == -EWOULDBLOCK || result == -EINTR;
    if (nothing_yet && !c.host_hangup) {  // a hung-up socket has nothing more to come: EOF above
        update_interest(c);
        return false;
    }
    counters_.host_errors.add();
    warn("reading a host socket failed: reset");
    reset_connection(c);
    return false;
}

// A header for a packet about no live connection (RST): no credit to report.
Header VsockDevice::header_to_guest(ConnectionKey key, std::uint16_t op) const noexcept {
    return {.src_cid = vsock::host_cid,
            .dst_cid = config_.guest_cid,
            .src_port = key.local_port,
            .dst_port = key.peer_port,
            .len = 0,
            .type = vsock::type_stream,
            .op = op,
            .flags = 0,
            .buf_alloc = 0,
            .fwd_cnt = 0};
}

// A header for connection `c`, with its credit: the guest hears our fwd_cnt now.
Header VsockDevice::header_to_guest(Connection& c, std::uint16_t op) noexcept {
    Header header = header_to_guest(c.key, op);
    header.buf_alloc = static_cast<std::uint32_t>(c.pending.capacity());
    header.fwd_cnt = c.fwd_cnt;
    c.fwd_cnt_told = c.fwd_cnt;
    return header;
}

// The header, then the payload already read into the chain behind it.
void VsockDevice::put_packet(DescriptorChain const& chain, Header const& header) noexcept {
    ChainWriter writer(active_->memory(), chain);
    // The chain has room for the header (next_rx_chain) and lies in RAM (the queue checked).
    std::uint32_t const used = writer.write_obj(header) ? writer.written() + header.len : 0;
    active_->queue(vsock::rx_queue).add_used(chain.head, used);
    counters_.rx_packets.add();
}

}  // namespace kvmlet::virtio
