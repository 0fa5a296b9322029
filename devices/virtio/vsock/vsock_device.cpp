#include "devices/virtio/vsock/vsock_device.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>

#include "devices/virtio/vsock/unix_socket.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::virtio {
namespace {

using vsock::ConnectionKey;
using vsock::ConnectionState;

constexpr std::uint64_t listener_id = 0;
constexpr int listen_backlog = 128;
// Besides the soft limit, room for what live connections may still say (REQUEST, RESPONSE,
// credit, RST each): the control queue never grows past this.
constexpr std::size_t control_packets_per_connection = 4;

VsockConfig checked(VsockConfig config) {
    if (config.guest_cid < vsock::min_guest_cid || config.guest_cid > vsock::max_guest_cid)
        throw Error(
            fmt::format("vsock: guest CID {} must be 3 to {}", config.guest_cid, vsock::max_guest_cid));
    if (config.limits.max_connections == 0 || config.limits.buffer_bytes == 0)
        throw Error("vsock: the connection limit and the buffer size must be at least 1");
    return config;
}

UniqueFd make_epoll() {
    UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!fd.valid()) throw system_error("vsock: epoll_create1");
    return fd;
}

}  // namespace

VsockDevice::VsockDevice(VsockConfig config)
    : config_(checked(std::move(config))),
      config_space_{.guest_cid = config_.guest_cid},
      listener_(vsock::listen_unix(config_.uds_path, listen_backlog)),
      epoll_(make_epoll()) {
    epoll_event event{.events = EPOLLIN, .data = {.u64 = listener_id}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &event) != 0)
        throw system_error("vsock: epoll_ctl");
    iov_.reserve(queue_size);
    connections_.reserve(config_.limits.max_connections);
}

VsockDevice::~VsockDevice() {
    ::unlink(config_.uds_path.c_str());
}

std::vector<Metric> VsockDevice::metrics() const {
    auto const& c = counters_;
    return {{"rx_packets_count", c.rx_packets.value()},    {"rx_bytes_count", c.rx_bytes.value()},
            {"tx_packets_count", c.tx_packets.value()},    {"tx_bytes_count", c.tx_bytes.value()},
            {"conns_added", c.connections_opened.value()}, {"conns_refused", c.connections_refused.value()},
            {"resets_sent", c.resets_sent.value()},        {"tx_malformed", c.tx_malformed.value()},
            {"tx_wrong_cid", c.tx_wrong_cid.value()},      {"protocol_errors", c.protocol_errors.value()},
            {"host_errors", c.host_errors.value()}};
}

std::uint64_t VsockDevice::features() const noexcept {
    return bit(vsock::feature::stream) | bit(feature::ring_indirect_desc) | bit(feature::ring_event_idx);
}

void VsockDevice::read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept {
    read_config_space(std::as_bytes(std::span{&config_space_, 1}), offset, data);
}

bool VsockDevice::activate(Activation activation) noexcept {
    if (activation.queues.size() != max_sizes_.size()) return false;
    active_.emplace(std::move(activation));
    watch();  // host connections may have come before DRIVER_OK
    return true;
}

void VsockDevice::reset() noexcept {
    active_.reset();
    // Every connection ends with the driver; host sockets are closed (their peers see EOF).
    connections_.clear();
    by_key_.clear();
    control_.clear();
    readable_.clear();
    rx_spare_.reset();
    tx_paused_ = false;
}

Work VsockDevice::process_queue(std::size_t queue) noexcept {
    if (!active_) return Work::done;
    Work work = Work::done;
    if (queue == vsock::tx_queue) {
        work = transmit();
        active_->signal(vsock::tx_queue);
    }
    if (queue == vsock::tx_queue || queue == vsock::rx_queue) {
        if (deliver() == Work::more) work = Work::more;
        active_->signal(vsock::rx_queue);
    }
    // The event queue's buffers wait for send_event().
    return active_->queue(queue).broken() ? Work::done : work;
}

void VsockDevice::host_events() noexcept {
    watch_pending_ = false;
    if (!active_) return;  // activation watches again
    std::array<epoll_event, events_per_call> events{};
    int const n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 0);
    for (int i = 0; i < n; ++i)
        host_event(events[static_cast<std::size_t>(i)].data.u64, events[static_cast<std::size_t>(i)].events);
    if (deliver() == Work::more) active_->host().kick(vsock::rx_queue);
    active_->signal(vsock::rx_queue);
    watch();  // more events than one call takes come back through the event loop
}

bool VsockDevice::send_event(std::uint32_t id) noexcept {
    if (!active_) return false;
    SplitQueue& q = active_->queue(vsock::event_queue);
    auto chain = q.pop();
    if (!chain) return false;
    ChainWriter writer(active_->memory(), *chain);
    bool const written = writer.write_obj(vsock::Event{id});
    q.add_used(chain->head, writer.written());
    active_->signal(vsock::event_queue);
    return written;
}

void VsockDevice::watch() noexcept {
    if (!active_ || std::exchange(watch_pending_, true)) return;
    active_->host().watch(epoll_.get(), DeviceHost::Readiness::readable, [this] { host_events(); });
}

VsockDevice::Connection* VsockDevice::find(std::uint64_t id) noexcept {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : &it->second;
}

VsockDevice::Connection* VsockDevice::find(ConnectionKey key) noexcept {
    auto it = by_key_.find(key);
    return it == by_key_.end() ? nullptr : find(it->second);
}

// A new connection around `socket`, in the epoll set for `events`; nullptr when it cannot be
// registered (the socket is closed then).
VsockDevice::Connection* VsockDevice::add_connection(UniqueFd socket, std::uint32_t events) noexcept {
    std::uint64_t const id = next_id_++;
    epoll_event event{.events = events, .data = {.u64 = id}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, socket.get(), &event) != 0) {
        counters_.host_errors.add();
        warn("cannot watch a connection's socket");
        return nullptr;
    }
    auto [it, inserted] = connections_.try_emplace(id, id, std::move(socket), config_.limits.buffer_bytes);
    it->second.events = events;
    return &it->second;
}

void VsockDevice::set_key(Connection& c, ConnectionKey key) noexcept {
    c.key = key;
    by_key_[key] = c.id;
}

// Forgets the connection and closes its host socket (which leaves the epoll set with it).
void VsockDevice::remove(Connection& c) noexcept {
    if (c.state != ConnectionState::connect_line) by_key_.erase(c.key);
    std::uint64_t const id = c.id;  // not a reference into what erase destroys
    connections_.erase(id);
}

// Ends the connection with an RST to the guest.
void VsockDevice::reset_connection(Connection& c) noexcept {
    if (c.state != ConnectionState::connect_line) queue_reset(c.key);
    remove(c);
}

void VsockDevice::queue_control(Control control) noexcept {
    std::size_t const hard_limit =
        control_soft_limit + control_packets_per_connection * config_.limits.max_connections;
    if (control_.size() >= hard_limit) {
        counters_.control_dropped.add();
        return warn("control queue full: a packet for the guest is lost");
    }
    control_.push_back(control);
}

void VsockDevice::queue_reset(ConnectionKey key) noexcept {
    counters_.resets_sent.add();
    queue_control({.connection = 0, .key = key, .op = vsock::op::rst, .flags = 0});
}

void VsockDevice::queue_credit_update(Connection& c) noexcept {
    if (std::exchange(c.credit_update_queued, true)) return;
    queue_control({.connection = c.id, .key = c.key, .op = vsock::op::credit_update, .flags = 0});
}

// Registers the events the connection waits for now: readable while host data may go to the
// guest (with credit, or to ask for some once) and is not already waiting for rx buffers,
// writable while it holds output. A socket that hung up has left the set (its HUP would be
// reported for ever): it is read from the list only.
void VsockDevice::update_interest(Connection& c) noexcept {
    bool const wants_data = c.may_receive() && !c.readable && (c.peer_credit() > 0 || !c.credit_requested);
    if (c.host_hangup) {
        if (wants_data) {
            c.readable = true;
            readable_.push_back(c.id);
        }
        return;
    }
    std::uint32_t events = 0;
    if (c.state == ConnectionState::connect_line || wants_data) events |= EPOLLIN;
    if (c.state == ConnectionState::established && c.has_output()) events |= EPOLLOUT;
    if (events == c.events) return;
    epoll_event event{.events = events, .data = {.u64 = c.id}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.socket.get(), &event) != 0) {
        counters_.host_errors.add();
        warn("cannot change the events watched on a connection's socket");
    }
    c.events = events;
}

void VsockDevice::arm_timer(Connection& c, std::chrono::milliseconds delay) noexcept {
    std::uint64_t const generation = ++c.timer;
    active_->host().after(delay, [this, id = c.id, generation] { timer_expired(id, generation); });
}

// The CONNECT line or the guest's RESPONSE did not come in time, or a connection that both sides
// shut down did not end: it ends now.
void VsockDevice::timer_expired(std::uint64_t id, std::uint64_t generation) noexcept {
    Connection* c = find(id);
    if (!c || c->timer != generation) return;
    if (c->state == ConnectionState::established && !c->closing) return;
    reset_connection(*c);
    if (active_ && deliver() == Work::more) active_->host().kick(vsock::rx_queue);
    if (active_) active_->signal(vsock::rx_queue);
}

void VsockDevice::warn(char const* what) noexcept {
    if (failure_log_.allow()) log::warn("virtio-vsock {}: {}", config_.uds_path.string(), what);
}

}  // namespace kvmlet::virtio
