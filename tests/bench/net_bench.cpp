// Host-side packet rate of the virtio-net device model through a socket pair (SOCK_SEQPACKET,
// the stand-in for a TAP), 64-byte and 1500-byte frames:
//  - device_tx: the guest (plain stores into its rings, as in blk_bench) posts a batch of
//    transmit chains, the device sends them (process_queue), the peer drains the other end;
//  - device_rx: the peer writes a batch of packets, the device delivers them into posted
//    mergeable receive buffers (endpoint_readable, as the event loop calls it);
// next to plain write(2) of the same packets (virtio_net_hdr + frame) into the same kind of
// socket, the limit, and plain read(2) of them. Only the device's (or the raw call's) part is
// timed, in thread CPU time: the guest's and the peer's work is not. Prints one JSON object;
// tools/bench/net turns it into a report.
//
// Usage: kvmlet_net_bench [--seconds S] [--rounds N] [--batch B] [--only NAME]
// (--only runs one row, e.g. device_rx_64, for a profiler.)
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/net/socket_endpoint.hpp"
#include "devices/virtio/split_ring_spec.hpp"
#include "tests/bench/bench_clock.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet {
namespace {

namespace net = virtio::net;

constexpr std::uint16_t queue_size = 256;
constexpr std::uint64_t ram_size = 16 * MiB;
constexpr std::uint32_t buffer_size = 2048;  // per ring slot: a receive buffer or a transmit packet
constexpr std::uint16_t rx_cushion = 64;     // receive buffers the guest keeps posted beyond a batch
constexpr std::uint32_t frame_sizes[] = {64, 1500};
constexpr int socket_buffer = 1 << 20;  // the kernel caps it (net.core.wmem_max / rmem_max)
constexpr int warmup_batches = 16;
// virtio 1.2 §2.7.5 descriptor flag.
constexpr std::uint16_t desc_f_write = 2;

struct Layout {
    std::uint64_t desc, avail, used, buffers;
};
constexpr Layout rx_layout{0x10000, 0x11000, 0x12000, 0x100000};
constexpr Layout tx_layout{0x20000, 0x21000, 0x22000, 0x300000};

struct Options {
    double seconds = 1.0;
    int rounds = 5;
    std::uint16_t batch = 32;
    std::string only;
};

using bench::clock_s;

// Sums the thread CPU time and wall time of the timed parts of a row.
struct Sample {
    std::uint64_t packets = 0;
    double cpu_s = 0;
    double wall_s = 0;

    template <class F>
    void time(std::uint64_t n, F&& f) {
        double const cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID), wall0 = clock_s(CLOCK_MONOTONIC);
        f();
        cpu_s += clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
        wall_s += clock_s(CLOCK_MONOTONIC) - wall0;
        packets += n;
    }
};

using virtio::RawDescriptor;

// The guest's side of one queue, minimal: slot i is descriptor i, one buffer of the slot's own.
class BenchRing {
public:
    BenchRing(GuestMemory const& memory, Layout layout)
        : ram_(memory.slice(GuestAddress{0}, ram_size).value()), layout_(layout) {}

    virtio::QueueConfig config() const {
        return {.size = queue_size,
                .desc = GuestAddress{layout_.desc},
                .avail = GuestAddress{layout_.avail},
                .used = GuestAddress{layout_.used},
                .ready = true};
    }
    std::uint64_t buffer(std::uint16_t slot) const {
        return layout_.buffers + std::uint64_t{buffer_size} * slot;
    }
    void build(std::uint32_t len, bool writable) {
        for (std::uint16_t i = 0; i < queue_size; ++i)
            put(layout_.desc + 16u * i,
                RawDescriptor{buffer(i), len, writable ? desc_f_write : std::uint16_t{0}, 0});
    }
    void put_bytes(std::uint64_t at, std::span<std::byte const> bytes) {
        std::memcpy(ram_.data() + at, bytes.data(), bytes.size());
    }
    void submit(std::uint16_t count) {
        for (std::uint16_t i = 0; i < count; ++i, ++avail_idx_)
            put(layout_.avail + 4 + 2u * (avail_idx_ % queue_size),
                static_cast<std::uint16_t>(avail_idx_ % queue_size));
        std::atomic_thread_fence(std::memory_order_release);  // virtio 1.2 §2.7.13: entries before idx
        put(layout_.avail + 2, avail_idx_);
    }
    // Takes back `count` used chains, each of `len` bytes.
    void reap(std::uint16_t count, std::uint32_t len) {
        auto const idx = get<std::uint16_t>(layout_.used + 2);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (static_cast<std::uint16_t>(idx - last_used_) != count)
            throw Error("net bench: a packet went missing");
        for (; last_used_ != idx; ++last_used_)
            if (get<std::uint32_t>(layout_.used + 8 + 8u * (last_used_ % queue_size)) != len)
                throw Error("net bench: a used length is wrong");
    }

private:
    template <class T>
    void put(std::uint64_t at, T const& value) {
        std::memcpy(ram_.data() + at, &value, sizeof value);
    }
    template <class T>
    T get(std::uint64_t at) const {
        T value;
        std::memcpy(&value, ram_.data() + at, sizeof value);
        return value;
    }

    std::span<std::byte> ram_;
    Layout layout_;
    std::uint16_t avail_idx_ = 0;
    std::uint16_t last_used_ = 0;
};

struct NullInterrupt final : virtio::Interrupt {
    void used_buffers(std::size_t) noexcept override {}
    void config_changed() noexcept override {}
    void needs_reset() noexcept override { broken = true; }
    bool broken = false;
};

// Stands in for the event loop: the bench calls the device back itself, batch by batch.
struct BenchWatch final : virtio::DeviceHost {
    void watch(int, Readiness readiness, Callback) noexcept override {
        if (readiness == Readiness::writable) ++writable;
    }
    void after(std::chrono::nanoseconds, Callback) noexcept override {}
    void post(Callback) noexcept override {}
    void kick(std::size_t) noexcept override {}
    std::uint64_t writable = 0;
};

// A packet as the endpoint carries it: an empty virtio_net_hdr and a broadcast frame.
std::vector<std::byte> make_packet(std::uint32_t frame) {
    std::vector<std::byte> p(sizeof(net::Header) + frame, std::byte{0x5a});
    std::memset(p.data(), 0, sizeof(net::Header));
    std::memset(p.data() + sizeof(net::Header), 0xff, 6);
    return p;
}

std::pair<UniqueFd, UniqueFd> socket_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
        throw system_error("net bench: socketpair");
    for (int fd : fds) {
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &socket_buffer, sizeof socket_buffer);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &socket_buffer, sizeof socket_buffer);
    }
    return {UniqueFd{fds[0]}, UniqueFd{fds[1]}};
}

void write_packets(int fd, std::vector<std::byte> const& packet, std::uint16_t count) {
    for (std::uint16_t i = 0; i < count; ++i)
        if (::write(fd, packet.data(), packet.size()) != static_cast<ssize_t>(packet.size()))
            throw system_error("net bench: write");
}

void read_packets(int fd, std::uint16_t count, std::size_t expected) {
    static std::vector<std::byte> buffer(buffer_size);
    for (std::uint16_t i = 0; i < count; ++i)
        if (::read(fd, buffer.data(), buffer.size()) != static_cast<ssize_t>(expected))
            throw system_error("net bench: read");
}

// The device and its guest: both queues, all features a Linux guest takes (mergeable buffers,
// offloads, EVENT_IDX).
struct DeviceRig {
    GuestMemory memory = GuestMemory::create(std::vector<RamRange>{{GuestAddress{0}, ram_size}});
    BenchRing rx{memory, rx_layout};
    BenchRing tx{memory, tx_layout};
    NullInterrupt irq;
    BenchWatch watch;
    UniqueFd peer;
    std::unique_ptr<virtio::NetDevice> device;

    DeviceRig() {
        auto [mine, theirs] = socket_pair();
        peer = std::move(theirs);
        device = std::make_unique<virtio::NetDevice>(virtio::NetConfig{.mac = {{2, 0, 0, 0, 0, 1}}},
                                                     std::make_unique<net::SocketEndpoint>(std::move(mine)));
        std::vector<virtio::SplitQueue> queues;
        for (auto* ring : {&rx, &tx}) {
            auto q = virtio::SplitQueue::activate(memory, ring->config(), queue_size, true, true);
            if (!q) throw Error("net bench: " + q.error());
            queues.push_back(std::move(q).value());
        }
        if (!device->activate({memory, std::move(queues),
                               device->features() | virtio::bit(virtio::feature::version_1), irq, watch}))
            throw Error("net bench: activate");
        rx.build(buffer_size, true);
        rx.submit(rx_cushion);
    }
};

Sample device_tx(DeviceRig& rig, std::uint32_t frame, Options const& o) {
    auto const packet = make_packet(frame);
    for (std::uint16_t i = 0; i < queue_size; ++i) rig.tx.put_bytes(rig.tx.buffer(i), packet);
    rig.tx.build(static_cast<std::uint32_t>(packet.size()), false);
    Sample s;
    auto batch = [&](bool timed) {
        rig.tx.submit(o.batch);
        if (timed)
            s.time(o.batch, [&] { rig.device->process_queue(net::transmit_queue); });
        else
            rig.device->process_queue(net::transmit_queue);
        read_packets(rig.peer.get(), o.batch, packet.size());
        rig.tx.reap(o.batch, 0);
    };
    for (int i = 0; i < warmup_batches; ++i) batch(false);
    while (s.cpu_s < o.seconds) batch(true);
    return s;
}

Sample device_rx(DeviceRig& rig, std::uint32_t frame, Options const& o) {
    auto const packet = make_packet(frame);
    Sample s;
    auto batch = [&](bool timed) {
        rig.rx.submit(o.batch);
        write_packets(rig.peer.get(), packet, o.batch);
        if (timed)
            s.time(o.batch, [&] { rig.device->endpoint_readable(); });
        else
            rig.device->endpoint_readable();
        rig.rx.reap(o.batch, static_cast<std::uint32_t>(packet.size()));
    };
    for (int i = 0; i < warmup_batches; ++i) batch(false);
    while (s.cpu_s < o.seconds) batch(true);
    return s;
}

Sample raw_write(std::uint32_t frame, Options const& o) {
    auto [mine, peer] = socket_pair();
    auto const packet = make_packet(frame);
    Sample s;
    while (s.cpu_s < o.seconds) {
        s.time(o.batch, [&] { write_packets(mine.get(), packet, o.batch); });
        read_packets(peer.get(), o.batch, packet.size());
    }
    return s;
}

Sample raw_read(std::uint32_t frame, Options const& o) {
    auto [mine, peer] = socket_pair();
    auto const packet = make_packet(frame);
    Sample s;
    while (s.cpu_s < o.seconds) {
        write_packets(peer.get(), packet, o.batch);
        s.time(o.batch, [&] { read_packets(mine.get(), o.batch, packet.size()); });
    }
    return s;
}

enum class Kind { raw_write, raw_read, device_tx, device_rx };
constexpr std::pair<Kind, char const*> kinds[] = {
    {Kind::raw_write, "raw_write"},
    {Kind::device_tx, "device_tx"},
    {Kind::raw_read, "raw_read"},
    {Kind::device_rx, "device_rx"},
};

Sample run_row(Kind kind, std::uint32_t frame, Options const& o) {
    switch (kind) {
        case Kind::raw_write:
            return raw_write(frame, o);
        case Kind::raw_read:
            return raw_read(frame, o);
        case Kind::device_tx:
        case Kind::device_rx: {
            DeviceRig rig;
            auto s = kind == Kind::device_tx ? device_tx(rig, frame, o) : device_rx(rig, frame, o);
            auto const& c = rig.device->counters();
            if (c.rx_dropped() + c.tx_dropped() + c.tx_blocked.value() != 0 || rig.irq.broken)
                throw Error(
                    "net bench: the device dropped packets or found the socket full (try a smaller --batch)");
            return s;
        }
    }
    return {};
}

// One round: every row once, raw and device alternating so drift hits both.
void run_round(Options const& o, bool last_round) {
    std::vector<std::string> samples;
    for (std::uint32_t frame : frame_sizes) {
        for (auto [kind, prefix] : kinds) {
            std::string const name = fmt::format("{}_{}", prefix, frame);
            if (!o.only.empty() && o.only != name) continue;
            Sample const s = run_row(kind, frame, o);
            samples.push_back(
                fmt::format(R"(    {{"name": "{}", "packets": {}, "cpu_s": {:.6f}, "wall_s": {:.6f}}})", name,
                            s.packets, s.cpu_s, s.wall_s));
        }
    }
    std::printf("   [\n%s\n   ]%s\n", fmt::format("{}", fmt::join(samples, ",\n")).c_str(),
                last_round ? "" : ",");
    std::fflush(stdout);
}

void run(Options const& o) {
    std::printf(
        "{\n  \"socket\": \"AF_UNIX SOCK_SEQPACKET\", \"header_bytes\": %zu, \"frame_sizes\": [%u, %u],\n",
        sizeof(net::Header), frame_sizes[0], frame_sizes[1]);
    std::printf("  \"batch\": %u, \"cpu_seconds_per_run\": %.3f, \"rounds\": [\n", o.batch, o.seconds);
    for (int round = 0; round < o.rounds; ++round) run_round(o, round + 1 == o.rounds);
    std::printf("  ]\n}\n");
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string_view flag = argv[i];
        char const* value = argv[i + 1];
        if (flag == "--seconds") {
            o.seconds = std::strtod(value, nullptr);
        } else if (flag == "--rounds") {
            o.rounds = std::atoi(value);
        } else if (flag == "--batch") {
            o.batch = static_cast<std::uint16_t>(std::strtoul(value, nullptr, 10));
        } else if (flag == "--only") {
            o.only = value;
        } else {
            throw UsageError(fmt::format("unknown option {}", flag));
        }
    }
    if (argc % 2 == 0) throw UsageError("options take a value: --seconds S --rounds N --batch B --only NAME");
    if (o.seconds <= 0 || o.rounds < 1) throw UsageError("seconds and rounds must be > 0");
    if (o.batch < 1 || o.batch > queue_size - rx_cushion) throw UsageError("--batch must be in [1, 192]");
    return o;
}

}  // namespace
}  // namespace kvmlet

int main(int argc, char** argv) {
    try {
        kvmlet::run(kvmlet::parse(argc, argv));
        return 0;
    } catch (kvmlet::Error const& e) {
        std::fprintf(stderr, "kvmlet_net_bench: %s\n", e.what());
        return static_cast<int>(e.status());
    }
}
