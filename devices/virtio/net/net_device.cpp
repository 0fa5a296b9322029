#include "devices/virtio/net/net_device.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "vmm/base/error.hpp"

namespace kvmlet::virtio {
namespace {

// iovecs for one packet: the header, then at most one per descriptor of a chain.
constexpr std::size_t max_iovecs = 1 + NetDevice::queue_size;

net::Config make_config_space(NetConfig const& config) {
    net::Config c{};
    std::copy(config.mac.bytes.begin(), config.mac.bytes.end(), c.mac);
    c.status = net::status_link_up;
    c.max_virtqueue_pairs = 1;
    c.mtu = config.mtu;
    c.speed = net::speed_unknown;
    c.duplex = net::duplex_unknown;
    return c;
}

NetConfig checked(NetConfig config) {
    if (config.mtu < net::min_mtu)
        throw Error(fmt::format("net: MTU {} is below the minimum of {}", config.mtu, net::min_mtu));
    if (config.mac.multicast() || config.mac == net::MacAddress{})
        throw Error(fmt::format("net: MAC {} cannot belong to an interface (multicast or all zeros)",
                                config.mac.to_string()));
    return config;
}

}  // namespace

NetDevice::NetDevice(NetConfig config, std::unique_ptr<net::Endpoint> endpoint)
    : config_(checked(config)),
      endpoint_(std::move(endpoint)),
      config_space_(make_config_space(config_)),
      rx_throttle_(net::receive_queue, config_.rx_rate_limiter, config_.clock),
      tx_throttle_(net::transmit_queue, config_.tx_rate_limiter, config_.clock) {
    if (!endpoint_) throw Error("net: no endpoint");
    iov_.reserve(max_iovecs);
    delivery_.chains.reserve(queue_size);
    // One byte more than the largest packet, so a packet that fills it is too big.
    packet_.resize(net::max_packet + 1);
    tx_copy_.resize(max_copied_packet);
    if (config_.mmds) {
        mmds_ = std::make_unique<net::mmds::MmdsStack>(*config_.mmds);
        mmds_frame_.resize(net::max_gso_frame);
    }
}

std::vector<Metric> NetDevice::metrics() const {
    auto const& c = counters_;
    std::vector<Metric> out{
        {"rx_bytes_count", c.rx_bytes.value()},
        {"rx_packets_count", c.rx_packets.value()},
        {"rx_fails", c.rx_errors.value()},
        {"rx_dropped", c.rx_dropped()},
        {"tx_bytes_count", c.tx_bytes.value()},
        {"tx_packets_count", c.tx_packets.value()},
        {"tx_fails", c.tx_errors.value()},
        {"tx_malformed_frames", c.tx_too_short.value() + c.tx_too_big.value() + c.tx_bad_offload.value()},
        {"tx_dropped", c.tx_dropped()},
        {"rx_rate_limiter_throttled", rx_throttle_.throttled()},
        {"tx_rate_limiter_throttled", tx_throttle_.throttled()}};
    if (mmds_) {
        // "mmds." metrics go to the metrics line's own mmds section (Firecracker's), summed over
        // the interfaces; the names are Firecracker's where the meaning is the same.
        auto const& m = mmds_->counters();
        out.insert(out.end(), {{"mmds.rx_accepted", m.frames_taken.value()},
                               {"mmds.rx_accepted_err", m.malformed.value()},
                               {"mmds.rx_accepted_unusual", m.unsupported.value()},
                               {"mmds.rx_count", m.requests.value()},
                               {"mmds.tx_frames", m.frames_sent.value()},
                               {"mmds.connections_created", m.connections_opened.value()},
                               {"mmds.connections_evicted", m.connections_evicted.value()},
                               {"mmds.arp_replies", m.arp_replies.value()},
                               {"mmds.resets_sent", m.resets_sent.value()},
                               {"mmds.resets_dropped", m.resets_dropped.value()}});
    }
    return out;
}

std::uint64_t NetDevice::features() const noexcept {
    std::uint64_t f = bit(net::feature::mac) | bit(net::feature::status) | bit(net::feature::mtu) |
                      bit(net::feature::mrg_rxbuf) | bit(feature::ring_indirect_desc) |
                      bit(feature::ring_event_idx);
    if (!config_.offloads) return f;
    return f | bit(net::feature::csum) | bit(net::feature::guest_csum) | bit(net::feature::host_tso4) |
           bit(net::feature::host_tso6) | bit(net::feature::guest_tso4) | bit(net::feature::guest_tso6);
}

void NetDevice::read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept {
    read_config_space(std::as_bytes(std::span{&config_space_, 1}), offset, data);
}

// What the endpoint may hand the guest: §5.1.3.1 makes GUEST_TSO4/6 depend on GUEST_CSUM.
net::Offloads NetDevice::guest_offloads(std::uint64_t acked_features) const noexcept {
    auto const has = [&](std::uint32_t f) { return (acked_features & bit(f)) != 0; };
    bool const csum = has(net::feature::guest_csum);
    return {.csum = csum,
            .tso4 = csum && has(net::feature::guest_tso4),
            .tso6 = csum && has(net::feature::guest_tso6)};
}

bool NetDevice::activate(Activation activation) noexcept {
    if (activation.queues.size() != max_sizes_.size()) return false;
    if (auto set = endpoint_->set_offloads(guest_offloads(activation.features)); !set) {
        if (failure_log_.allow())
            log::warn("virtio-net {}: cannot start: {}", endpoint_->name(), set.error());
        return false;
    }
    active_.emplace(std::move(activation));
    watch_readable();  // packets may have come before DRIVER_OK, and buffers with them
    return true;
}

void NetDevice::reset() noexcept {
    active_.reset();
    tx_held_.reset();
    tx_held_admitted_ = false;
    tx_waiting_ = false;
    rx_spare_.reset();
    rx_throttled_.reset();
    rx_throttle_.reset();
    tx_throttle_.reset();
    delivery_.active = false;
    delivery_.chains.clear();
    if (mmds_) mmds_->reset();
}

void NetDevice::save(StateWriter& out) const {
    rx_throttle_.save(out);
    tx_throttle_.save(out);
}

void NetDevice::load(StateReader& in) {
    rx_throttle_.load(in);
    tx_throttle_.load(in);
}

std::vector<QueueIndices> NetDevice::queue_indices() const {
    if (!active_) return {};
    auto indices = active_->indices();
    // None of these chains is in the used ring yet, and every chain popped before them is.
    std::size_t const taken = (rx_spare_ ? 1 : 0) + (delivery_.active ? delivery_.chains.size() : 0);
    indices[net::receive_queue].next_avail =
        static_cast<std::uint16_t>(indices[net::receive_queue].next_avail - taken);
    if (tx_held_) --indices[net::transmit_queue].next_avail;
    return indices;
}

Work NetDevice::process_queue(std::size_t queue) noexcept {
    if (!active()) return Work::done;
    if (queue == net::receive_queue) {
        receive();  // new buffers: read what waits in the endpoint
        active_->signal(net::receive_queue);
    } else if (queue == net::transmit_queue) {
        transmit();
        active_->signal(net::transmit_queue);
        deliver_mmds_frames();
    }
    return Work::done;
}

void NetDevice::update_rate_limiters(RateLimiterConfig const& rx, RateLimiterConfig const& tx) noexcept {
    DeviceHost* host = active() ? &active_->host() : nullptr;
    rx_throttle_.update(rx, host);
    tx_throttle_.update(tx, host);
}

void NetDevice::endpoint_readable() noexcept {
    read_watch_pending_ = false;
    if (!active()) return;
    receive();
    active_->signal(net::receive_queue);
}

void NetDevice::endpoint_writable() noexcept {
    write_watch_pending_ = false;
    if (!active()) return;
    tx_waiting_ = false;
    transmit();
    active_->signal(net::transmit_queue);
    deliver_mmds_frames();
}

// What MMDS answered to what the guest just sent goes to the guest now, if it has buffers.
void NetDevice::deliver_mmds_frames() noexcept {
    if (!mmds_ || !mmds_->has_frame()) return;
    receive();
    active_->signal(net::receive_queue);
}

void NetDevice::watch_readable() noexcept {
    if (!std::exchange(read_watch_pending_, true))
        active_->host().watch(endpoint_->fd(), DeviceHost::Readiness::readable,
                              [this] { endpoint_readable(); });
}

void NetDevice::watch_writable() noexcept {
    if (!std::exchange(write_watch_pending_, true))
        active_->host().watch(endpoint_->fd(), DeviceHost::Readiness::writable,
                              [this] { endpoint_writable(); });
}

void NetDevice::warn(char const* what) noexcept {
    if (failure_log_.allow()) log::warn("virtio-net {}: {}", endpoint_->name(), what);
}

}  // namespace kvmlet::virtio
