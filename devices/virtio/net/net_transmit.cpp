// NetDevice, transmit side: guest chains to endpoint packets (see net_device.hpp).
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/net/buffer_map.hpp"
#include "devices/virtio/net/net_device.hpp"

namespace kvmlet::virtio {

void NetDevice::transmit() noexcept {
    if (tx_waiting_) return;  // the endpoint is full: endpoint_writable() resumes, in order
    SplitQueue& tx = active_->queue(net::transmit_queue);
    for (std::uint32_t n = 0; n < max_packets_per_call; ++n) {
        auto chain = tx_held_ ? std::exchange(tx_held_, std::nullopt) : tx.pop();
        if (!chain) return;
        if (!std::exchange(tx_held_admitted_, false) && !admit_tx(*chain)) {
            tx_held_ = std::move(chain);
            return;  // the throttle's timer serves the queue again
        }
        if (!send_packet(*chain)) {
            tx_held_ = std::move(chain);
            tx_held_admitted_ = true;
            tx_waiting_ = true;
            counters_.tx_blocked.add();
            watch_writable();
            return;
        }
        tx.add_used(chain->head, 0);  // the device writes nothing into a transmit chain
    }
    watch_writable();  // the bound: the endpoint is writable, so the loop calls back at once
}

// Whether the transmit limiter lets the chain's packet go now: one op, and its frame bytes from the
// descriptors' lengths (what send_packet will find behind the header), before guest memory is read.
bool NetDevice::admit_tx(DescriptorChain const& chain) noexcept {
    std::uint64_t readable = 0;
    for (auto const& d : chain.descriptors)
        if (!d.device_writable) readable += d.len;
    std::uint64_t const frame = readable > sizeof(net::Header) ? readable - sizeof(net::Header) : 0;
    return tx_throttle_.admit(frame, active_->host());
}

// Sends one chain's packet or drops it; false only when the endpoint cannot take it now.
bool NetDevice::send_packet(DescriptorChain const& chain) noexcept {
    ChainReader reader(active_->memory(), chain);
    net::Header header{};
    if (reader.remaining() < sizeof header + net::ethernet_header)
        return drop_tx(counters_.tx_too_short,
                       "transmit chain shorter than the header and an Ethernet header");
    if (!reader.read_obj(header)) return drop_tx(counters_.tx_outside_ram, "transmit header outside RAM");
    std::uint64_t const frame = reader.remaining();
    if (!offload_accepted(header))
        return drop_tx(counters_.tx_bad_offload,
                       "transmitted packet asks for an offload the driver did not accept");
    std::uint64_t const limit = header.gso_type == net::gso::none
                                    ? std::uint64_t{config_.mtu} + net::ethernet_header + net::vlan_tag
                                    : net::max_gso_frame;
    if (frame > limit)
        return drop_tx(counters_.tx_too_big, "transmitted frame larger than the offloads allow");
    if (mmds_ && take_for_mmds(chain, header, frame)) return true;
    header.num_buffers = 0;  // §5.1.6.2: unused on transmit
    // The header goes out from this copy, the one checked above: never read twice.
    if (!gather(chain, header, reader, frame))
        return drop_tx(counters_.tx_outside_ram, "transmit buffer outside RAM");
    ssize_t const sent = endpoint_->send(iov_);
    if (sent == -EAGAIN || sent == -EWOULDBLOCK || sent == -EINTR) return false;
    if (sent < 0) return drop_tx(counters_.tx_errors, "the endpoint refused a transmitted packet");
    counters_.tx_packets.add();
    counters_.tx_bytes.add(frame);
    return true;
}

// Puts the packet in iov_: a small one copied into one buffer (one iovec costs the kernel less
// than a gather of several), a large one as views of guest RAM behind the header.
bool NetDevice::gather(DescriptorChain const& chain, net::Header const& header, ChainReader& reader,
                       std::uint64_t frame) noexcept {
    iov_.clear();
    if (sizeof header + frame <= tx_copy_.size()) {
        std::memcpy(tx_copy_.data(), &header, sizeof header);
        auto const body = std::span(tx_copy_).subspan(sizeof header, static_cast<std::size_t>(frame));
        if (!reader.read(body)) return false;
        iov_.push_back(iovec{tx_copy_.data(), sizeof header + body.size()});
        return true;
    }
    // Safety: the kernel only reads through this iovec; the header lives until the send.
    iov_.push_back(iovec{const_cast<net::Header*>(&header), sizeof header});
    return view_buffers(active_->memory(), chain, Direction::readable, sizeof header, all_bytes, iov_)
        .has_value();
}

// Whether the frame is for MMDS (its first bytes say so): then it is copied out once and handed
// to the stack, which checks all of it on that copy, and it does not reach the endpoint.
bool NetDevice::take_for_mmds(DescriptorChain const& chain, net::Header const& header,
                              std::uint64_t frame) noexcept {
    std::array<std::byte, net::mmds::MmdsStack::classify_bytes> first{};
    auto const prefix =
        std::span(first).first(static_cast<std::size_t>(std::min<std::uint64_t>(frame, first.size())));
    ChainReader peek(active_->memory(), chain);
    if (!peek.skip(sizeof header) || !peek.read(prefix)) return false;  // outside RAM: gather() says so
    if (!mmds_->addressed_to_mmds(prefix)) return false;
    counters_.tx_mmds.add();
    // frame <= max_gso_frame, the buffer's size (send_packet checked it against the limits).
    auto const whole = std::span(mmds_frame_).first(static_cast<std::size_t>(frame));
    ChainReader reader(active_->memory(), chain);
    if (!reader.skip(sizeof header) || !reader.read(whole))
        return drop_tx(counters_.tx_outside_ram, "transmit buffer outside RAM");
    mmds_->handle_frame(whole, (header.flags & net::header_flag::needs_csum) != 0);
    return true;
}

bool NetDevice::drop_tx(NetCounters::Counter& counter, char const* what) noexcept {
    counter.add();
    warn(what);
    return true;
}

// §5.1.6.2: the driver uses checksum and segmentation offloads only once negotiated.
bool NetDevice::offload_accepted(net::Header const& header) const noexcept {
    if ((header.flags & net::header_flag::needs_csum) && !acked(net::feature::csum)) return false;
    switch (header.gso_type) {  // ECN and UDP segmentation are never offered
        case net::gso::none:
            return true;
        case net::gso::tcpv4:
            return acked(net::feature::host_tso4);
        case net::gso::tcpv6:
            return acked(net::feature::host_tso6);
        default:
            return false;
    }
}

}  // namespace kvmlet::virtio
