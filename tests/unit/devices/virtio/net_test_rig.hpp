#pragma once
// Shared by the virtio-net tests: a NetDevice over one end of a socket pair (the test holds the
// other end, the "peer", and plays the network), two FakeDrivers for its queues in real guest
// memory, a recording Interrupt and a recording DeviceHost.
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/net/socket_endpoint.hpp"
#include "tests/unit/support/fake_device_host.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::test {

namespace net = virtio::net;

struct NetInterrupt final : virtio::Interrupt {
    void used_buffers(std::size_t queue) noexcept override { used.push_back(queue); }
    void config_changed() noexcept override { ++config; }
    void needs_reset() noexcept override { ++resets; }
    std::vector<std::size_t> used;
    int config = 0;
    int resets = 0;
};

using RecordingWatch = RecordingDeviceHost;  // the device's watches of its endpoint

// A packet as the endpoint carries it: header, then frame.
inline std::vector<std::byte> packet_bytes(net::Header const& header, std::span<std::byte const> frame) {
    std::vector<std::byte> out(sizeof header + frame.size());
    std::memcpy(out.data(), &header, sizeof header);
    if (!frame.empty()) std::memcpy(out.data() + sizeof header, frame.data(), frame.size());
    return out;
}

// `len` bytes of frame: a broadcast Ethernet header, then bytes counting up from `seed`.
inline std::vector<std::byte> frame_bytes(std::size_t len, std::uint8_t seed = 0) {
    std::vector<std::byte> out(len);
    for (std::size_t i = 0; i < len; ++i)
        out[i] = i < 6 ? std::byte{0xff} : std::byte{static_cast<std::uint8_t>(seed + i)};
    return out;
}

inline std::uint64_t all_net_features(virtio::NetDevice const& device) {
    return device.features() | virtio::bit(virtio::feature::version_1);
}

struct NetRig {
    static constexpr std::uint64_t ram_size = 8 * MiB;
    static constexpr std::uint64_t outside_ram = 16 * MiB;

    explicit NetRig(virtio::NetConfig config = {.mac = {{0x06, 0, 0xac, 0x10, 0, 2}}},
                    int type = SOCK_SEQPACKET)
        : device(on_rig_clock(config), make_endpoint(type)) {}

    GuestMemory memory = flat_ram(ram_size);
    FakeDriver rx{memory, 256, 0x10000, 0x100000};
    FakeDriver tx{memory, 256, 0x20000, 0x400000};
    NetInterrupt irq;
    RecordingWatch watch;
    virtio::RateClock::time_point now{std::chrono::seconds(1)};  // the rate limits' clock
    UniqueFd peer;
    net::SocketEndpoint* endpoint = nullptr;
    virtio::NetDevice device;

    virtio::NetConfig on_rig_clock(virtio::NetConfig config) {
        if (!config.clock) config.clock = [this] { return now; };
        return config;
    }
    std::unique_ptr<net::Endpoint> make_endpoint(int type) {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) == 0);
        peer.reset(fds[1]);
        auto e = std::make_unique<net::SocketEndpoint>(UniqueFd{fds[0]}, "test");
        endpoint = e.get();
        return e;
    }

    // DRIVER_OK with `features` (all the device offers unless told otherwise).
    void activate(std::optional<std::uint64_t> features = std::nullopt, bool event_idx = false) {
        std::uint64_t acked = features ? *features : all_net_features(device);
        if (event_idx) acked |= virtio::bit(virtio::feature::ring_event_idx);
        std::vector<virtio::SplitQueue> queues;
        queues.push_back(virtio::SplitQueue::activate(memory, rx.config(), 256, event_idx, true).value());
        queues.push_back(virtio::SplitQueue::activate(memory, tx.config(), 256, event_idx, true).value());
        REQUIRE(device.activate({memory, std::move(queues), acked, irq, watch}));
    }

    // The peer plays the network.
    void peer_send(std::span<std::byte const> packet) {
        REQUIRE(::send(peer.get(), packet.data(), packet.size(), MSG_DONTWAIT) ==
                static_cast<ssize_t>(packet.size()));
    }
    void peer_send(net::Header const& header, std::span<std::byte const> frame) {
        peer_send(packet_bytes(header, frame));
    }
    std::optional<std::vector<std::byte>> peer_receive() {
        std::vector<std::byte> buffer(128 * 1024);
        ssize_t n = ::recv(peer.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n < 0) return std::nullopt;
        buffer.resize(static_cast<std::size_t>(n));
        return buffer;
    }
    // Packets waiting at the device's end, unread.
    bool device_end_has_packet() {
        std::byte b;
        return ::recv(endpoint->fd(), &b, 1, MSG_DONTWAIT | MSG_PEEK) >= 0;
    }

    // Guest side: a transmit chain holding `packet` in one buffer.
    std::uint16_t transmit(std::span<std::byte const> packet) {
        auto at = tx.alloc_with(packet);
        return tx.add_chain({{at, static_cast<std::uint32_t>(packet.size()), false}});
    }
    // Guest side: a receive chain of one writable buffer of `len` bytes; returns its address.
    std::uint64_t post_rx(std::uint32_t len) {
        auto at = rx.alloc(len);
        rx.add_chain({{at, len, true}});
        return at;
    }
    net::Header guest_header(std::uint64_t at) { return guest<net::Header>(memory, at); }
};

}  // namespace kvmlet::test
