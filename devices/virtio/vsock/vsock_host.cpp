// VsockDevice, the host side: the listening socket, CONNECT lines, and readiness of the
// connections' sockets (see vsock_device.hpp). Everything comes from the device's epoll set.
#include <sys/epoll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <string_view>

#include "devices/virtio/vsock/connect_line.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"

namespace kvmlet::virtio {
namespace {

using vsock::ConnectionKey;
using vsock::ConnectionState;

constexpr std::uint64_t listener_id = 0;
// Host-initiated connections get local ports from [2^30, 2^31), as in Firecracker.
constexpr std::uint32_t first_host_port = 1u << 30;
constexpr std::uint32_t host_port_end = 1u << 31;

bool would_block(int error) {
    return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

}  // namespace

void VsockDevice::host_event(std::uint64_t id, std::uint32_t events) noexcept {
    if (id == listener_id) return accept_connections();
    Connection* c = find(id);
    if (!c) return;  // ended earlier in this batch
    if (c->state == ConnectionState::connect_line) return read_connect_line(*c);
    socket_event(*c, events);
}

void VsockDevice::accept_connections() noexcept {
    for (std::size_t n = 0; n < accepts_per_call; ++n) {
        UniqueFd socket(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!socket.valid()) {
            if (would_block(errno) || errno == ECONNABORTED) return;
            // Out of descriptors, say: the listener would stay readable, so it rests a while.
            counters_.host_errors.add();
            warn("accepting a host connection failed; trying again shortly");
            epoll_event rest{.events = 0, .data = {.u64 = listener_id}};
            listener_paused_ = ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listener_.get(), &rest) == 0;
            active_->host().after(accept_retry, [this] {
                epoll_event again{.events = EPOLLIN, .data = {.u64 = listener_id}};
                if (std::exchange(listener_paused_, false))
                    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listener_.get(), &again);
            });
            return;
        }
        if (connections_.size() >= config_.limits.max_connections) {
            counters_.connections_refused.add();
            warn("connection limit reached: a host connection is closed");
            continue;  // closed by its UniqueFd
        }
        Connection* c = add_connection(std::move(socket), EPOLLIN);
        if (!c) continue;
        c->state = ConnectionState::connect_line;
        arm_timer(*c, config_.limits.request_timeout);
    }
}

// Takes the line's bytes as they come, never past its '\n': what follows is the stream's.
void VsockDevice::read_connect_line(Connection& c) noexcept {
    std::array<char, vsock::max_connect_line> bytes{};
    std::size_t const want = vsock::max_connect_line - c.line.size();
    ssize_t const peeked = ::recv(c.socket.get(), bytes.data(), want, MSG_PEEK | MSG_DONTWAIT);
    if (peeked < 0 && would_block(errno)) return;
    if (peeked <= 0) return remove(c);  // closed, or failed, before its line
    std::string_view const seen(bytes.data(), static_cast<std::size_t>(peeked));
    std::size_t const newline = seen.find('\n');
    std::size_t const take = newline == std::string_view::npos ? seen.size() : newline + 1;
    if (::recv(c.socket.get(), bytes.data(), take, MSG_DONTWAIT) != static_cast<ssize_t>(take))
        return remove(c);
    c.line.append(bytes.data(), take);
    if (newline == std::string_view::npos && c.line.size() < vsock::max_connect_line) return;
    auto const port = vsock::parse_connect_line(c.line);
    if (!port) {
        counters_.connections_refused.add();
        warn("a host connection sent something other than 'CONNECT <port>': closed");
        return remove(c);
    }
    connect_to_guest(c, *port);
}

void VsockDevice::connect_to_guest(Connection& c, std::uint32_t guest_port) noexcept {
    auto const host_port = allocate_host_port(guest_port);
    if (!host_port) {
        counters_.connections_refused.add();
        return remove(c);
    }
    c.state = ConnectionState::requesting;
    set_key(c, {.local_port = *host_port, .peer_port = guest_port});
    c.line = std::string();
    counters_.connections_opened.add();
    queue_control({.connection = c.id, .key = c.key, .op = vsock::op::request});
    arm_timer(c, config_.limits.request_timeout);
    update_interest(c);
}

std::optional<std::uint32_t> VsockDevice::allocate_host_port(std::uint32_t guest_port) noexcept {
    // Bound: at most one port per connection is taken.
    for (std::size_t tries = 0; tries <= connections_.size(); ++tries) {
        std::uint32_t const port = next_host_port_;
        next_host_port_ = port + 1 == host_port_end ? first_host_port : port + 1;
        if (!by_key_.contains({.local_port = port, .peer_port = guest_port})) return port;
    }
    return std::nullopt;
}

void VsockDevice::socket_event(Connection& c, std::uint32_t events) noexcept {
    if (events & EPOLLERR) {
        counters_.host_errors.add();
        warn("a host socket failed: reset");
        return reset_connection(c);
    }
    // Waiting for the guest's RESPONSE the device watches nothing: a hang-up ends the attempt.
    if (c.state == ConnectionState::requesting) return reset_connection(c);
    if ((events & EPOLLOUT) && !flush(c)) return;
    if (events & EPOLLHUP) return host_hung_up(c);
    if ((events & EPOLLIN) && !c.readable) {
        c.readable = true;
        readable_.push_back(c.id);
    }
    update_interest(c);
}

// Both directions of the host socket are closed: what it still holds goes to the guest (then its
// EOF: SHUTDOWN), nothing goes to it any more. It leaves the epoll set, which would report the
// hang-up for ever.
void VsockDevice::host_hung_up(Connection& c) noexcept {
    c.host_hangup = true;
    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.socket.get(), nullptr);
    c.events = 0;
    if (c.has_output() || (!c.may_receive() && !c.host_eof)) return reset_connection(c);
    update_interest(c);
}

}  // namespace kvmlet::virtio
