// Fuzz target: virtio-net (devices/virtio/net/) over guest RAM the fuzzer wrote and a socket pair
// whose other end the fuzzer drives as the network: both rings, the packets that arrive, and the
// order of notifications and endpoint readiness.
//
// Input: u8 features (bit 0 EVENT_IDX, 1 INDIRECT_DESC, 2 MRG_RXBUF, 3 CSUM + HOST_TSO4/6,
// 4 GUEST_CSUM + GUEST_TSO4/6, 5 MTU, 6 SOCK_DGRAM instead of SOCK_SEQPACKET, 7 offloads
// configured off), u8 receive and u8 transmit queue size (1 << (byte % 9)), u16 ram_len and the
// RAM image; the receive queue in the compact layout (fuzz_support.hpp) at 0, the transmit queue
// in the same layout right after it, at the next 16-byte boundary. Then up to max_ops operations, an op byte
// each:
//   op % 8 == 0  notify the receive queue      op % 8 == 1  notify the transmit queue
//   op % 8 == 2  endpoint readable (only if the device asked; else ignored)
//   op % 8 == 3  endpoint writable (likewise)
//   op % 8 == 4  the network sends a packet: 12 header bytes, u16 frame length (op bit 3:
//                times 8, up to past the largest frame), u8 seed of the frame bytes (the device
//                never looks inside a frame, so they need not come from the input)
//   op % 8 == 5  the network reads everything waiting for it
//   op % 8 == 6  patch RAM: u16 address, u8 length, bytes (fuzz_support.hpp apply_patch)
//   op % 8 == 7  reset, then DRIVER_OK again with the same features and rings
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/net/socket_endpoint.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace kvmlet::fuzz {
namespace {

namespace net = virtio::net;
using virtio::bit;

constexpr int max_ops = 64;
constexpr std::size_t max_packet_bytes = net::max_packet + 64;
constexpr std::uint8_t big_frame_flag = 1u << 3;

class RecordingInterrupt final : public virtio::Interrupt {
public:
    void used_buffers(std::size_t queue) noexcept override {
        KVMLET_FUZZ_CHECK(queue <= net::transmit_queue);
    }
    void config_changed() noexcept override { invariant_failed("virtio-net never changes its config"); }
    void needs_reset() noexcept override { ++resets; }
    std::uint64_t resets = 0;
};

// Holds the device to its watch contract (net_device.hpp): never two watches of one kind
// outstanding; it asks its host for nothing else.
class CheckingWatch final : public virtio::DeviceHost {
public:
    void watch(int, Readiness readiness, Callback) noexcept override {
        bool& pending = readiness == Readiness::readable ? readable : writable;
        KVMLET_FUZZ_CHECK(!pending);
        pending = true;
    }
    void after(std::chrono::nanoseconds, Callback) noexcept override {
        invariant_failed("virtio-net set a timer");
    }
    void post(Callback) noexcept override { invariant_failed("virtio-net posted work"); }
    void kick(std::size_t) noexcept override { invariant_failed("virtio-net kicked a queue"); }
    bool readable = false;
    bool writable = false;
};

std::uint64_t acked_features(std::uint8_t flags, virtio::NetDevice const& device) {
    std::uint64_t f = bit(virtio::feature::version_1) | bit(net::feature::mac) | bit(net::feature::status);
    if (flags & 1) f |= bit(virtio::feature::ring_event_idx);
    if (flags & 2) f |= bit(virtio::feature::ring_indirect_desc);
    if (flags & 4) f |= bit(net::feature::mrg_rxbuf);
    if (flags & 8) f |= bit(net::feature::csum) | bit(net::feature::host_tso4) | bit(net::feature::host_tso6);
    if (flags & 16)
        f |= bit(net::feature::guest_csum) | bit(net::feature::guest_tso4) | bit(net::feature::guest_tso6);
    if (flags & 32) f |= bit(net::feature::mtu);
    return f & (device.features() | bit(virtio::feature::version_1));  // as the transport checks
}

struct Rig {
    std::uint8_t flags = 0;
    virtio::QueueConfig rx_config;
    virtio::QueueConfig tx_config;
    RecordingInterrupt interrupt;
    CheckingWatch watch;
    UniqueFd network;
    std::unique_ptr<virtio::NetDevice> device;

    bool activate() {
        auto const acked = acked_features(flags, *device);
        bool const event_idx = (acked & bit(virtio::feature::ring_event_idx)) != 0;
        bool const indirect = (acked & bit(virtio::feature::ring_indirect_desc)) != 0;
        auto rx = virtio::SplitQueue::activate(ram(), rx_config, virtio::NetDevice::queue_size, event_idx,
                                               indirect);
        auto tx = virtio::SplitQueue::activate(ram(), tx_config, virtio::NetDevice::queue_size, event_idx,
                                               indirect);
        if (!rx || !tx) return false;
        std::vector<virtio::SplitQueue> queues;
        queues.push_back(std::move(rx).value());
        queues.push_back(std::move(tx).value());
        interrupt.resets = 0;
        return device->activate({ram(), std::move(queues), acked, interrupt, watch});
    }
};

// Byte i is i mod 256: a frame's bytes are a slice of it (one memcpy; a per-byte loop, with
// every comparison traced by the fuzzer, took most of the target's time).
std::vector<std::uint8_t> const& ramp() {
    static std::vector<std::uint8_t> const bytes = [] {
        std::vector<std::uint8_t> out(max_packet_bytes + 256);
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(i);
        return out;
    }();
    return bytes;
}

// The network sends one packet; a full socket drops it, as a network would.
void network_sends(Rig& rig, ByteReader& in, std::uint8_t op) {
    static std::vector<std::uint8_t> packet(max_packet_bytes);
    auto const header = in.take_bytes(sizeof(net::Header));
    std::size_t length = in.take<std::uint16_t>();
    if (op & big_frame_flag) length *= 8;
    length = std::min(sizeof(net::Header) + length, max_packet_bytes);
    auto const seed = in.take<std::uint8_t>();
    std::fill(packet.begin(), packet.begin() + sizeof(net::Header), std::uint8_t{0});
    std::copy(header.begin(), header.end(), packet.begin());
    // Frame byte i (counted from the packet's start) is seed + i mod 256.
    std::size_t const frame = sizeof(net::Header);
    std::memcpy(packet.data() + frame, ramp().data() + seed + frame, length - frame);
    (void)::send(rig.network.get(), packet.data(), length, MSG_DONTWAIT);
}

// The network reads what the device sent; every packet is one the device may send.
void network_reads(Rig& rig) {
    static std::vector<std::byte> buffer(max_packet_bytes);
    // Bound: the socket holds a bounded number of packets (its buffer size).
    for (int i = 0; i < 4096; ++i) {
        ssize_t const n = ::recv(rig.network.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) return;
        auto const length = static_cast<std::size_t>(n);
        KVMLET_FUZZ_CHECK(length >= sizeof(net::Header) + net::ethernet_header && length <= net::max_packet);
    }
}

void run_op(Rig& rig, ByteReader& in, std::uint8_t op) {
    switch (op % 8) {
        case 0:
            (void)rig.device->process_queue(net::receive_queue);
            return;
        case 1:
            (void)rig.device->process_queue(net::transmit_queue);
            return;
        case 2:
            if (std::exchange(rig.watch.readable, false)) rig.device->endpoint_readable();
            return;
        case 3:
            if (std::exchange(rig.watch.writable, false)) rig.device->endpoint_writable();
            return;
        case 4:
            return network_sends(rig, in, op);
        case 5:
            return network_reads(rig);
        case 6:
            (void)apply_patch(in);
            return;
        default:
            rig.device->reset();
            (void)rig.activate();
            return;
    }
}

}  // namespace
}  // namespace kvmlet::fuzz

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace kvmlet;
    using namespace kvmlet::fuzz;
    quiet_logs();
    ByteReader in({data, size});
    Rig rig;
    rig.flags = in.take<std::uint8_t>();
    rig.rx_config = compact_layout(static_cast<std::uint16_t>(1u << (in.take<std::uint8_t>() % 9)));
    rig.tx_config = compact_layout(static_cast<std::uint16_t>(1u << (in.take<std::uint8_t>() % 9)));
    std::uint64_t const tx_base = (rig.rx_config.used.value + 6 + 8ull * rig.rx_config.size + 15) & ~15ull;
    rig.tx_config.desc.value += tx_base;
    rig.tx_config.avail.value += tx_base;
    rig.tx_config.used.value += tx_base;
    take_ram_image(in);

    int fds[2];
    int const type = (rig.flags & 64) ? SOCK_DGRAM : SOCK_SEQPACKET;
    if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) != 0) return 0;
    rig.network.reset(fds[1]);
    rig.device = std::make_unique<virtio::NetDevice>(
        virtio::NetConfig{.mac = {{2, 0, 0, 0, 0, 1}}, .mtu = 1500, .offloads = (rig.flags & 128) == 0},
        std::make_unique<net::SocketEndpoint>(UniqueFd{fds[0]}));
    if (!rig.activate()) return 0;
    for (int op = 0; op < max_ops && !in.empty(); ++op) {
        run_op(rig, in, in.take<std::uint8_t>());
        KVMLET_FUZZ_CHECK(rig.interrupt.resets <= 1);  // per activation
    }
    network_reads(rig);
    return 0;
}
