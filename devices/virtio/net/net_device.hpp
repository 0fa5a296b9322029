#pragma once
// virtio-net (virtio 1.2 §5.1) over a packet endpoint (net::Endpoint: a TAP, or a socket in
// tests): one receive and one transmit queue, no control queue, no multiqueue. Offers MAC,
// STATUS (link up), MTU, MRG_RXBUF and, unless configured off, the checksum and TCP segmentation
// offloads in both directions, which the endpoint carries in the virtio_net_hdr as they are.
//
// Transmit: one chain is one packet (header + frame, split across buffers however the driver
// likes, §2.7.4), sent with one write: copied into one buffer when small, gathered straight
// from guest RAM when large. A frame too short for an Ethernet header, larger than the offloads
// allow (MTU + Ethernet header + VLAN tag without segmentation, 64 KiB + those headers with
// it), asking for an offload the driver did not accept, or outside RAM is dropped and counted;
// the chain goes back with used length 0 either way.
// When the endpoint is full (EAGAIN) the device keeps that chain, stops transmitting and asks
// the watch for a writable callback: packets wait in the guest's ring, in order, and none is
// lost; the guest's further notifications change nothing until the callback.
//
// Receive: once the guest has posted a chain, a packet is read whole into a buffer of the
// device's and copied into the chain; with MRG_RXBUF into as many chains as it takes, and
// num_buffers says how many, without it a packet too big for the chain is dropped. (One read
// into one buffer and a copy cost less than one read scattered straight into the guest's
// buffers: the kernel's cost per extra iovec outweighs copying a 1500-byte frame.) While the
// guest has no receive buffers the device reads nothing: packets stay queued in the endpoint,
// and the driver's next notification of the receive queue resumes reading.
//
// MMDS: with NetConfig::mmds, every transmitted frame is first offered to the interface's MMDS
// stack (mmds/mmds_stack.hpp); the frames it takes never reach the endpoint, and the frames it
// makes go into receive chains before any packet from the endpoint.
//
// Every call handles at most max_packets_per_call packets per direction, then asks the watch to
// call again, so neither a busy guest nor a busy peer can hold the event loop.
//
// Rate limits (optional, Firecracker's rx_rate_limiter and tx_rate_limiter): each packet costs one
// op and its frame bytes (without the virtio_net_hdr). A transmitted packet the limiter refuses
// stays in its chain, held, and transmission waits; a received one waits whole in the device's
// buffer, and nothing more is read from the endpoint (packets queue there, as without buffers).
// Either way the queue's throttle (queue_throttle.hpp) has one timer that serves it again.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "devices/virtio/active_state.hpp"
#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/counter.hpp"
#include "devices/virtio/net/endpoint.hpp"
#include "devices/virtio/net/mac_address.hpp"
#include "devices/virtio/net/mmds/mmds_stack.hpp"
#include "devices/virtio/net/net_spec.hpp"
#include "devices/virtio/queue_throttle.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet::virtio {

// How a NetDevice hears that its endpoint is ready: it asks its device host (device_host.hpp) to
// watch endpoint().fd(), readable or writable, and the host calls endpoint_readable() or
// endpoint_writable() back on the event loop under the device lock. The device never has two
// watches of one kind outstanding, and counts on every one being answered, also across its
// reset(): the host must not drop a pending watch. It asks for readable only while it has
// receive buffers (and once at activation, for packets that came before DRIVER_OK); with none it
// waits for a notification of queue 0. A callback that finds nothing to do is harmless.

struct NetConfig {
    net::MacAddress mac;
    std::uint16_t mtu = net::default_mtu;
    bool offloads = true;                         // offer CSUM, GUEST_CSUM, HOST_TSO4/6 and GUEST_TSO4/6
    std::optional<net::mmds::MmdsConfig> mmds{};  // nullopt: no MMDS on this interface
    RateLimiterConfig rx_rate_limiter{};          // what the guest receives
    RateLimiterConfig tx_rate_limiter{};          // what the guest sends
    QueueThrottle::Now clock{};                   // for the rate limits; steady_clock by default
};

// Statistics, written by the device's thread and read by any (metrics, tests). Bytes are frame
// bytes, without the virtio_net_hdr.
struct NetCounters {
    using Counter = virtio::Counter;

    Counter rx_packets;
    Counter rx_bytes;
    Counter tx_packets;
    Counter tx_bytes;
    // Received packets dropped: larger than the guest's chain (without MRG_RXBUF), the MTU
    // (without segmentation) or 64 KiB + headers; shorter than header + Ethernet header, or with
    // an offload the driver did not accept.
    Counter rx_too_big;
    Counter rx_malformed;
    Counter rx_errors;       // the endpoint failed a read, or its peer went away
    Counter rx_bad_buffers;  // receive chains given back unused: outside RAM or too small
    // Transmitted packets dropped (chain used with length 0), and why.
    Counter tx_too_short;
    Counter tx_too_big;
    Counter tx_bad_offload;
    Counter tx_outside_ram;
    Counter tx_errors;   // the endpoint refused the packet
    Counter tx_blocked;  // times the endpoint was full and transmission waited
    Counter tx_mmds;     // transmitted frames MMDS took (not sent to the endpoint)
    Counter rx_mmds;     // frames from MMDS put into receive chains

    std::uint64_t rx_dropped() const noexcept { return rx_too_big.value() + rx_malformed.value(); }
    std::uint64_t tx_dropped() const noexcept {
        return tx_too_short.value() + tx_too_big.value() + tx_bad_offload.value() + tx_outside_ram.value() +
               tx_errors.value();
    }
};

class NetDevice final : public Device {
public:
    static constexpr std::uint16_t queue_size = 256;
    static constexpr std::uint32_t max_packets_per_call = 256;
    // Transmitted packets up to this size (header included: an MTU-sized frame with a VLAN tag
    // fits) are copied into one buffer and sent from it; larger ones are gathered from guest RAM.
    static constexpr std::size_t max_copied_packet = 2048;

    // Throws Error for an MTU below 68 (RFC 791), or a multicast or all-zero MAC.
    NetDevice(NetConfig config, std::unique_ptr<net::Endpoint> endpoint);
    NetDevice(NetDevice const&) = delete;
    std::vector<Metric> metrics() const override;
    NetDevice& operator=(NetDevice const&) = delete;

    DeviceType type() const noexcept override { return DeviceType::net; }
    std::uint64_t features() const noexcept override;
    std::span<std::uint16_t const> queue_max_sizes() const noexcept override { return max_sizes_; }
    void read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept override;
    bool activate(Activation activation) noexcept override;
    // Always `done`: the device bounds its own calls and comes back through its watch.
    Work process_queue(std::size_t queue) noexcept override;
    void reset() noexcept override;

    // What the device host calls once the endpoint's fd is ready (the device asked for it).
    void endpoint_readable() noexcept;
    void endpoint_writable() noexcept;

    net::Endpoint& endpoint() noexcept { return *endpoint_; }
    NetConfig const& config() const noexcept { return config_; }
    NetCounters const& counters() const noexcept { return counters_; }
    // The interface's MMDS stack, or nullptr.
    net::mmds::MmdsStack const* mmds() const noexcept { return mmds_.get(); }
    // Firecracker's PATCH /network-interfaces (RateLimiterConfig's semantics, each direction on
    // its own); a queue that waits is served again at once. Call with the device mutex held.
    void update_rate_limiters(RateLimiterConfig const& rx, RateLimiterConfig const& tx) noexcept;
    RateLimiterConfig rx_rate_limiter() const noexcept { return rx_throttle_.config(); }
    RateLimiterConfig tx_rate_limiter() const noexcept { return tx_throttle_.config(); }

    // Snapshots (docs/snapshot.md): the rate limiters' buckets; the features and so the endpoint's
    // offloads are the transport's, set again at the restored activation. Chains taken and not
    // used (a packet held for the full endpoint or the limiter, a spare receive chain, the
    // chains of a packet half delivered) are given back; a received packet not yet in the guest's
    // buffers is dropped, as a network may. Not with MMDS: its connections are not saved.
    bool saveable() const noexcept override { return !mmds_; }
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;
    std::vector<QueueIndices> queue_indices() const override;

private:
    struct UsedBuffer {
        std::uint16_t head = 0;
        std::uint32_t len = 0;
    };
    // A receive chain with its writable buffers mapped into iov_.
    struct RxChain {
        DescriptorChain chain;
        std::uint64_t capacity = 0;
    };
    // The received packet in packet_ on its way into the guest's chains. With MRG_RXBUF it may
    // wait there for more chains; none of its chains is given back before it is complete.
    struct Delivery {
        bool active = false;
        DescriptorChain first;           // holds the header, whose num_buffers is known last
        std::vector<UsedBuffer> chains;  // (head, used length) in order, the first included
        std::size_t offset = 0;          // packet_[offset, length) is still to copy
        std::size_t length = 0;
    };

    bool active() const noexcept { return active_.has_value(); }
    bool acked(std::uint32_t feature_bit) const noexcept { return active_ && active_->has(feature_bit); }
    net::Offloads guest_offloads(std::uint64_t acked_features) const noexcept;
    void watch_readable() noexcept;
    void watch_writable() noexcept;
    void warn(char const* what) noexcept;

    // Transmit (net_transmit.cpp).
    void transmit() noexcept;
    bool send_packet(DescriptorChain const& chain) noexcept;
    bool gather(DescriptorChain const& chain, net::Header const& header, ChainReader& reader,
                std::uint64_t frame) noexcept;
    bool drop_tx(NetCounters::Counter& counter, char const* what) noexcept;
    bool offload_accepted(net::Header const& header) const noexcept;
    bool take_for_mmds(DescriptorChain const& chain, net::Header const& header, std::uint64_t frame) noexcept;
    bool admit_tx(DescriptorChain const& chain) noexcept;
    void deliver_mmds_frames() noexcept;

    // Receive (net_receive.cpp).
    void receive() noexcept;
    bool receive_packet() noexcept;
    bool receive_mmds_frame() noexcept;
    bool receive_failed(ssize_t result) noexcept;
    bool start_delivery(RxChain& rx, std::size_t length) noexcept;
    bool resume_throttled() noexcept;
    std::optional<RxChain> next_rx_chain(std::uint64_t min_capacity) noexcept;
    enum class RxVerdict { ok, too_big, too_short, bad_offload };
    RxVerdict check_received(net::Header const& header, std::uint64_t length,
                             std::uint64_t capacity) const noexcept;
    void drop_rx(RxVerdict verdict) noexcept;
    void place(RxChain const& rx) noexcept;
    bool continue_delivery() noexcept;
    void finish_delivery() noexcept;
    void drop_delivery() noexcept;

    NetConfig config_;
    std::unique_ptr<net::Endpoint> endpoint_;
    net::Config config_space_{};
    std::array<std::uint16_t, 2> max_sizes_{queue_size, queue_size};

    std::optional<ActiveState> active_;

    bool read_watch_pending_ = false;  // survive reset(): the owner still answers them
    bool write_watch_pending_ = false;
    std::optional<DescriptorChain> tx_held_;   // the packet the full endpoint (or the limiter) did not take
    bool tx_held_admitted_ = false;            // the limiter granted it already (the endpoint was full)
    bool tx_waiting_ = false;                  // for endpoint_writable()
    std::optional<std::size_t> rx_throttled_;  // length of the packet in packet_ the limiter refused
    std::optional<DescriptorChain> rx_spare_;  // popped, not used: filled first next time
    Delivery delivery_;
    std::vector<iovec> iov_;          // scratch for one chain; reserved once
    std::vector<std::byte> packet_;   // one received packet, read whole
    std::vector<std::byte> tx_copy_;  // one small transmitted packet, copied out of guest RAM

    std::unique_ptr<net::mmds::MmdsStack> mmds_;
    std::vector<std::byte> mmds_frame_;  // one transmitted frame for MMDS, copied out of guest RAM

    QueueThrottle rx_throttle_;
    QueueThrottle tx_throttle_;
    NetCounters counters_;
    log::RateLimit failure_log_{10, std::chrono::seconds(5)};
};

}  // namespace kvmlet::virtio
