#pragma once
// Shared by the virtio-vsock tests: a VsockDevice listening in a temporary directory, the driver
// side of its three queues in real guest memory (each queue's descriptors point at buffers of
// their own, reused as the device gives them back), and helpers for both ends: the guest's
// packets, and host processes on real Unix sockets.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/virtio/vsock/vsock_device.hpp"
#include "tests/unit/support/fake_device_host.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::test {

namespace vsock = virtio::vsock;

// A directory of its own under $TMPDIR (or /tmp), removed with everything in it.
struct TempDir {
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "kvmlet-vsock-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::filesystem::path path;
};

struct VsockInterrupt final : virtio::Interrupt {
    void used_buffers(std::size_t queue) noexcept override { used.push_back(queue); }
    void config_changed() noexcept override {}
    void needs_reset() noexcept override { ++resets; }
    std::vector<std::size_t> used;
    int resets = 0;
};

inline sockaddr_un unix_address(std::string const& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof address.sun_path);
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return address;
}

inline std::vector<std::byte> bytes_of(std::string_view s) {
    auto const b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}
inline std::string string_of(std::span<std::byte const> b) {
    return {reinterpret_cast<char const*>(b.data()), b.size()};
}

struct Packet {
    vsock::Header header;
    std::vector<std::byte> payload;
};

class VsockRig {
public:
    static constexpr std::uint32_t cid = 42;
    static constexpr std::uint64_t ram_size = 32 * MiB;
    static constexpr std::uint32_t rx_buffer_size = 4096 + sizeof(vsock::Header);
    static constexpr std::uint32_t tx_buffer_size = 80 * 1024;
    static constexpr std::uint16_t rx_slots = 64;
    static constexpr std::uint16_t tx_slots = 128;

    explicit VsockRig(virtio::VsockLimits limits = {})
        : device(virtio::VsockConfig{.guest_cid = cid, .uds_path = dir.path / "v.sock", .limits = limits}) {
        for (std::uint16_t i = 0; i < rx_slots; ++i) rx_free.push_back(i);
        for (std::uint16_t i = 0; i < tx_slots; ++i) tx_free.push_back(i);
    }

    TempDir dir;
    GuestMemory memory = flat_ram(ram_size);
    FakeDriver rx{memory, 256, 0x10000, 0};
    FakeDriver tx{memory, 256, 0x20000, 0};
    FakeDriver event{memory, 256, 0x30000, 0};
    VsockInterrupt irq;
    RecordingDeviceHost host;
    virtio::VsockDevice device;
    std::vector<std::uint16_t> rx_free;  // slot i: descriptor i, buffer at rx_buffer(i)
    std::vector<std::uint16_t> tx_free;
    // The guest's credit for the connections it makes or accepts.
    std::uint32_t guest_buf_alloc = 256 * 1024;
    std::uint32_t guest_fwd_cnt = 0;

    static std::uint64_t rx_buffer(std::uint16_t slot) { return 0x100000 + std::uint64_t{slot} * 0x2000; }
    static std::uint64_t tx_buffer(std::uint16_t slot) { return 0x400000 + std::uint64_t{slot} * 0x20000; }

    std::filesystem::path uds() const { return dir.path / "v.sock"; }
    std::string port_path(std::uint32_t port) const { return uds().string() + "_" + std::to_string(port); }

    void activate(bool event_idx = false) {
        std::vector<virtio::SplitQueue> queues;
        for (FakeDriver* d : {&rx, &tx, &event})
            queues.push_back(virtio::SplitQueue::activate(memory, d->config(), 256, event_idx, true).value());
        std::uint64_t const features = device.features() | virtio::bit(virtio::feature::version_1);
        REQUIRE(device.activate({memory, std::move(queues), features, irq, host}));
    }

    // Guest side.
    vsock::Header header(std::uint32_t src_port, std::uint32_t dst_port, std::uint16_t op,
                         std::uint32_t len = 0) const {
        return {.src_cid = cid,
                .dst_cid = vsock::host_cid,
                .src_port = src_port,
                .dst_port = dst_port,
                .len = len,
                .type = vsock::type_stream,
                .op = op,
                .flags = 0,
                .buf_alloc = guest_buf_alloc,
                .fwd_cnt = guest_fwd_cnt};
    }
    // Puts a packet (header + payload, `bytes` in total from guest RAM) on the tx queue without
    // notifying. Returns its descriptor.
    std::uint16_t queue_tx(vsock::Header const& h, std::span<std::byte const> payload = {}) {
        reclaim_tx();
        REQUIRE(!tx_free.empty());
        std::uint16_t const slot = tx_free.back();
        tx_free.pop_back();
        std::vector<std::byte> bytes(sizeof h + payload.size());
        std::memcpy(bytes.data(), &h, sizeof h);
        if (!payload.empty()) std::memcpy(bytes.data() + sizeof h, payload.data(), payload.size());
        REQUIRE(bytes.size() <= tx_buffer_size);
        REQUIRE(memory.write_bytes(GuestAddress{tx_buffer(slot)}, bytes));
        tx.write_descriptor(slot, {tx_buffer(slot), static_cast<std::uint32_t>(bytes.size()), 0, 0});
        tx.publish(slot);
        return slot;
    }
    virtio::Work send(vsock::Header const& h, std::span<std::byte const> payload = {}) {
        queue_tx(h, payload);
        return device.process_queue(vsock::tx_queue);
    }
    virtio::Work send(vsock::Header const& h, std::string_view payload) {
        auto const b = bytes_of(payload);
        return send(h, b);
    }
    void reclaim_tx() {
        while (auto used = tx.next_used()) tx_free.push_back(static_cast<std::uint16_t>(used->id));
    }
    // Posts `count` receive buffers (without notifying).
    void queue_rx(int count, std::uint32_t len = rx_buffer_size) {
        for (int i = 0; i < count; ++i) {
            REQUIRE(!rx_free.empty());
            std::uint16_t const slot = rx_free.back();
            rx_free.pop_back();
            rx.write_descriptor(slot, {rx_buffer(slot), len, virtio::desc_f_write, 0});
            rx.publish(slot);
        }
    }
    virtio::Work post_rx(int count, std::uint32_t len = rx_buffer_size) {
        queue_rx(count, len);
        return device.process_queue(vsock::rx_queue);
    }
    // The next packet the device put in a receive buffer (a used length of 0 is an empty packet).
    std::optional<Packet> receive() {
        auto used = rx.next_used();
        if (!used) return std::nullopt;
        auto const slot = static_cast<std::uint16_t>(used->id);
        rx_free.push_back(slot);
        Packet p{};
        if (used->len < sizeof p.header) return p;
        p.header = guest<vsock::Header>(memory, rx_buffer(slot));
        REQUIRE(used->len == sizeof p.header + p.header.len);
        p.payload = guest_bytes(memory, rx_buffer(slot) + sizeof p.header, p.header.len);
        return p;
    }
    // Every packet waiting, in order.
    std::vector<Packet> receive_all() {
        std::vector<Packet> out;
        while (auto p = receive()) out.push_back(std::move(*p));
        return out;
    }

    // Host side: the device's socket events, as the event loop would run them.
    void pump(int rounds = 4) {
        for (int i = 0; i < rounds; ++i) device.host_events();
    }
    UniqueFd host_connect() {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        auto const address = unix_address(uds().string());
        REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof address) == 0);
        return fd;
    }
    UniqueFd host_listen(std::uint32_t port) {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        auto const address = unix_address(port_path(port));
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof address) == 0);
        REQUIRE(::listen(fd.get(), 16) == 0);
        return fd;
    }
    static UniqueFd host_accept(UniqueFd const& listener) {
        UniqueFd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        REQUIRE(fd.valid());
        return fd;
    }
    static void host_write(UniqueFd const& fd, std::string_view s) {
        REQUIRE(::send(fd.get(), s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
    }
    // What the socket holds now; nullopt at EOF (or an error other than "nothing yet").
    static std::optional<std::string> host_read(UniqueFd const& fd) {
        std::string out;
        char buffer[65536];
        while (true) {
            ssize_t const n = ::recv(fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
            if (n > 0) {
                out.append(buffer, static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return out;
            if (out.empty()) return std::nullopt;
            return out;
        }
    }
    // EOF, or a reset (the device closed its end with bytes unread).
    static bool host_closed(UniqueFd const& fd) {
        char b;
        ssize_t const n = ::recv(fd.get(), &b, 1, MSG_DONTWAIT | MSG_PEEK);
        return n == 0 || (n < 0 && errno == ECONNRESET);
    }

    // A host-initiated connection to guest port `guest_port` up to the guest's RESPONSE and the
    // OK line. Returns the host's socket and the connection's host port.
    std::pair<UniqueFd, std::uint32_t> connect_from_host(std::uint32_t guest_port) {
        UniqueFd s = host_connect();
        host_write(s, "CONNECT " + std::to_string(guest_port) + "\n");
        pump();
        post_rx(1);
        auto request = receive();
        REQUIRE(request);
        REQUIRE(request->header.op == vsock::op::request);
        std::uint32_t const host_port = request->header.src_port;
        send(header(guest_port, host_port, vsock::op::response));
        REQUIRE(host_read(s) == "OK " + std::to_string(host_port) + "\n");
        return {std::move(s), host_port};
    }
    // A guest-initiated connection from `guest_port` to host port `port` (listening at
    // <uds>_<port>) up to the RESPONSE. Returns the host's accepted socket.
    UniqueFd connect_from_guest(UniqueFd const& listener, std::uint32_t guest_port, std::uint32_t port) {
        send(header(guest_port, port, vsock::op::request));
        post_rx(1);
        auto response = receive();
        REQUIRE(response);
        REQUIRE(response->header.op == vsock::op::response);
        REQUIRE(response->header.dst_port == guest_port);
        REQUIRE(response->header.src_port == port);
        return host_accept(listener);
    }
};

}  // namespace kvmlet::test
