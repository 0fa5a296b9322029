// NetDevice, receive side: endpoint packets to guest chains (see net_device.hpp).
#include <cerrno>
#include <cstring>

#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/net/buffer_map.hpp"
#include "devices/virtio/net/net_device.hpp"

namespace kvmlet::virtio {

void NetDevice::receive() noexcept {
    for (std::uint32_t n = 0; n < max_packets_per_call; ++n) {
        if (delivery_.active && !continue_delivery()) return;  // waits for the driver's next buffers
        if (rx_throttled_) {  // the packet the limiter refused goes first, once it may
            if (!resume_throttled()) return;
            continue;
        }
        if (mmds_ && mmds_->has_frame()) {  // MMDS's answers go before the endpoint's packets
            if (!receive_mmds_frame()) return;
            continue;
        }
        if (!receive_packet()) return;
    }
    watch_readable();  // the bound: come back once the loop has served the others
}

// Reads one packet once there is a chain for it. False when reading stops: no buffers (the
// driver's notification resumes), nothing to read (the watch resumes), or the endpoint failed.
bool NetDevice::receive_packet() noexcept {
    // A packet's first chain holds at least its header and the Ethernet header.
    auto rx = next_rx_chain(sizeof(net::Header) + net::ethernet_header);
    if (!rx) return false;
    iovec const whole{packet_.data(), packet_.size()};
    ssize_t const result = endpoint_->receive(std::span{&whole, 1});
    if (result <= 0) {
        rx_spare_ = std::move(rx->chain);
        return receive_failed(result);
    }
    auto const length = static_cast<std::uint64_t>(result);
    net::Header header{};
    std::memcpy(&header, packet_.data(), sizeof header);  // looked at only if the packet is long enough
    if (auto verdict = check_received(header, length, rx->capacity); verdict != RxVerdict::ok) {
        drop_rx(verdict);
        rx_spare_ = std::move(rx->chain);  // nothing of the packet reached it
        return true;
    }
    // §5.1.6.4: DATA_VALID only with GUEST_CSUM, never RSC_INFO; num_buffers is 1 unless the
    // packet takes more chains (finish_delivery).
    if (!acked(net::feature::guest_csum)) header.flags = 0;
    header.flags &= static_cast<std::uint8_t>(net::header_flag::needs_csum | net::header_flag::data_valid);
    header.num_buffers = 1;
    std::memcpy(packet_.data(), &header, sizeof header);
    return start_delivery(*rx, static_cast<std::size_t>(length));
}

// Puts MMDS's next frame into the next receive chain; false when the guest has none.
bool NetDevice::receive_mmds_frame() noexcept {
    auto rx = next_rx_chain(sizeof(net::Header) + net::ethernet_header);
    if (!rx) return false;
    net::Header header{};
    header.num_buffers = 1;  // the stack completes every checksum: no flags
    std::memcpy(packet_.data(), &header, sizeof header);
    std::size_t const frame = mmds_->next_frame(std::span(packet_).subspan(sizeof header));
    std::uint64_t const length = sizeof header + frame;
    if (frame == 0 || (length > rx->capacity && !acked(net::feature::mrg_rxbuf))) {
        if (frame != 0) drop_rx(RxVerdict::too_big);  // the guest's TCP asks again (tcp_connection.hpp)
        rx_spare_ = std::move(rx->chain);
        return true;
    }
    counters_.rx_mmds.add();
    return start_delivery(*rx, static_cast<std::size_t>(length));
}

// The packet in packet_ (length bytes, header included) goes into `rx` and the chains after it, if
// the receive limiter lets it; otherwise it waits there, and `rx` with it, and reading stops
// (false) until the throttle's timer.
bool NetDevice::start_delivery(RxChain& rx, std::size_t length) noexcept {
    if (!rx_throttle_.admit(length - sizeof(net::Header), active_->host())) {
        rx_throttled_ = length;
        rx_spare_ = std::move(rx.chain);
        return false;
    }
    delivery_.active = true;
    delivery_.chains.clear();
    delivery_.offset = 0;
    delivery_.length = length;
    place(rx);
    delivery_.first = std::move(rx.chain);
    if (delivery_.offset == delivery_.length) finish_delivery();
    return true;
}

// Tries the refused packet again, in the chain it was refused with (rx_spare_, so the capacity
// checked for it still holds).
bool NetDevice::resume_throttled() noexcept {
    auto rx = next_rx_chain(sizeof(net::Header) + net::ethernet_header);
    if (!rx) return false;
    std::size_t const length = *std::exchange(rx_throttled_, std::nullopt);
    return start_delivery(*rx, length);
}

bool NetDevice::receive_failed(ssize_t result) noexcept {
    if (result == -EAGAIN || result == -EWOULDBLOCK || result == -EINTR) {
        watch_readable();
        return false;
    }
    // The peer went away (0) or the endpoint failed: waiting for readable could spin on an
    // endpoint that stays readable, so reading stops until the driver next notifies queue 0.
    counters_.rx_errors.add();
    warn(result == 0 ? "the endpoint's peer has gone; receiving waits for the next notification"
                     : "reading the endpoint failed; receiving waits for the next notification");
    return false;
}

// The next receive chain with at least `min_capacity` writable bytes, mapped into iov_. Chains
// outside RAM or too small go back unused.
std::optional<NetDevice::RxChain> NetDevice::next_rx_chain(std::uint64_t min_capacity) noexcept {
    SplitQueue& rx = active_->queue(net::receive_queue);
    // Bound: every pass takes one chain; a queue holds at most queue_size at once.
    for (std::uint32_t pass = 0; pass <= queue_size; ++pass) {
        auto chain = rx_spare_ ? std::exchange(rx_spare_, std::nullopt) : rx.pop();
        if (!chain) return std::nullopt;
        iov_.clear();
        auto capacity = view_buffers(active_->memory(), *chain, Direction::writable, 0, all_bytes, iov_);
        if (capacity && *capacity >= min_capacity) return RxChain{std::move(*chain), *capacity};
        counters_.rx_bad_buffers.add();
        warn("receive chain outside RAM, or too small for the headers");
        rx.add_used(chain->head, 0);
    }
    return std::nullopt;
}

// Whether a packet of `length` bytes (header included) with `header` may go to the guest,
// whose next chain holds `capacity` bytes.
NetDevice::RxVerdict NetDevice::check_received(net::Header const& header, std::uint64_t length,
                                               std::uint64_t capacity) const noexcept {
    if (length > net::max_packet) return RxVerdict::too_big;  // or cut short by the buffer
    if (length < sizeof header + net::ethernet_header) return RxVerdict::too_short;
    // §5.1.6.4: offloads the driver accepted only; ECN and UDP segmentation are never offered.
    if ((header.flags & net::header_flag::needs_csum) && !acked(net::feature::guest_csum))
        return RxVerdict::bad_offload;
    std::uint64_t const frame = length - sizeof header;
    switch (header.gso_type) {
        case net::gso::none:
            // §5.1.4.1: with VIRTIO_NET_F_MTU no unsegmented packet beyond the MTU.
            if (acked(net::feature::mtu) &&
                frame > std::uint64_t{config_.mtu} + net::ethernet_header + net::vlan_tag)
                return RxVerdict::too_big;
            break;
        case net::gso::tcpv4:
            if (!acked(net::feature::guest_tso4)) return RxVerdict::bad_offload;
            break;
        case net::gso::tcpv6:
            if (!acked(net::feature::guest_tso6)) return RxVerdict::bad_offload;
            break;
        default:
            return RxVerdict::bad_offload;
    }
    if (length > capacity && !acked(net::feature::mrg_rxbuf)) return RxVerdict::too_big;  // §5.1.6.3.1
    return RxVerdict::ok;
}

// Counts and logs a received packet that does not go to the guest.
void NetDevice::drop_rx(RxVerdict verdict) noexcept {
    switch (verdict) {
        case RxVerdict::too_big:
            counters_.rx_too_big.add();
            return warn("received packet dropped: larger than the guest's buffers, MTU or 64 KiB");
        case RxVerdict::too_short:
            counters_.rx_malformed.add();
            return warn("received packet dropped: shorter than the header and an Ethernet header");
        case RxVerdict::bad_offload:
            counters_.rx_malformed.add();
            return warn("received packet dropped: it uses an offload the driver did not accept");
        case RxVerdict::ok:
            return;
    }
}

// Copies the next part of the packet into the chain mapped in iov_.
void NetDevice::place(RxChain const& rx) noexcept {
    std::size_t const n =
        static_cast<std::size_t>(std::min<std::uint64_t>(rx.capacity, delivery_.length - delivery_.offset));
    (void)net::scatter(std::span(packet_).subspan(delivery_.offset, n),
                       iov_);  // n fits: at most the capacity
    delivery_.chains.push_back({rx.chain.head, static_cast<std::uint32_t>(n)});
    delivery_.offset += n;
}

// Copies the rest of a packet into further chains (MRG_RXBUF); false while the driver has none.
bool NetDevice::continue_delivery() noexcept {
    // Bound: every pass fills one chain; a packet takes at most queue_size of them, since the
    // driver cannot recycle chains the device has not given back.
    while (delivery_.offset < delivery_.length) {
        if (delivery_.chains.size() >= queue_size) {
            drop_delivery();
            return true;
        }
        auto rx = next_rx_chain(1);
        if (!rx) return false;
        place(*rx);
    }
    finish_delivery();
    return true;
}

// Gives the packet's chains back, in order, once the first says how many there are.
void NetDevice::finish_delivery() noexcept {
    delivery_.active = false;
    if (delivery_.chains.size() > 1) {
        net::Header header{};
        std::memcpy(&header, packet_.data(), sizeof header);
        header.num_buffers = static_cast<std::uint16_t>(delivery_.chains.size());
        ChainWriter writer(active_->memory(), delivery_.first);
        (void)writer.write_obj(header);  // the first chain was mapped whole: it is in RAM
    }
    SplitQueue& rx = active_->queue(net::receive_queue);
    for (auto const& c : delivery_.chains) rx.add_used(c.head, c.len);
    counters_.rx_packets.add();
    counters_.rx_bytes.add(delivery_.length - sizeof(net::Header));
}

// A packet that needs more chains than the queue holds: its chains go back unused.
void NetDevice::drop_delivery() noexcept {
    counters_.rx_too_big.add();
    warn("received packet dropped: it needs more buffers than the receive queue holds");
    SplitQueue& rx = active_->queue(net::receive_queue);
    for (auto const& c : delivery_.chains) rx.add_used(c.head, 0);
    delivery_.active = false;
    delivery_.chains.clear();
}

}  // namespace kvmlet::virtio
