// Fuzz target: virtio-vsock (devices/virtio/vsock/) over guest RAM the fuzzer wrote, with host
// processes the fuzzer plays on real Unix sockets: the three rings, the guest's packets, CONNECT
// lines (good and bad), host data, hang-ups, listeners for guest connections, timers, resets.
//
// Input: u8 flags (bit 0 EVENT_IDX, bit 1 INDIRECT_DESC), u8 rx, tx and event queue sizes
// (1 << (byte % 9)), u16 ram_len and the RAM image; the rx queue in the compact layout
// (fuzz_support.hpp) at 0, the tx and event queues in the same layout each at the next 16-byte
// boundary after the previous one. Then up to max_ops operations, an op byte each:
//   op % 16 == 0  notify rx          1  notify tx          2  notify the event queue
//   op % 16 == 3  the epoll set is ready (only if the device asked; else ignored)
//   op % 16 == 4  a host process connects: u8 kind (% 4: 0 "CONNECT <u16 port>\n", 1 u8 length
//                 and that many raw bytes, 2 the same line in two writes, 3 nothing), u16 port
//   op % 16 == 5  a host socket writes: u8 index, u16 length (of a byte ramp, at most 8 KiB)
//   op % 16 == 6  a host socket closes (op bit 4: shuts down its write side only): u8 index
//   op % 16 == 7  a listener at <uds>_<5000 + u8 % 4> exists, and accepts what waits there
//   op % 16 == 8  patch RAM: u16 address, u8 length, bytes (fuzz_support.hpp apply_patch)
//   op % 16 == 9  the oldest pending timer fires
//   op % 16 == 10 reset, then DRIVER_OK again with the same features and rings
//   op % 16 == 11 send a transport-reset event
//   op % 16 == 12 every host socket reads what it has
//   otherwise     serve the queues the device kicked
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/vsock/unix_socket.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace kvmlet::fuzz {
namespace {

namespace vsock = virtio::vsock;
using virtio::bit;

constexpr int max_ops = 64;
constexpr std::size_t max_host_sockets = 32;
constexpr std::size_t max_connections = 8;
constexpr std::size_t max_timers = 256;

class RecordingInterrupt final : public virtio::Interrupt {
public:
    void used_buffers(std::size_t queue) noexcept override { KVMLET_FUZZ_CHECK(queue <= vsock::event_queue); }
    void config_changed() noexcept override { invariant_failed("virtio-vsock never changes its config"); }
    void needs_reset() noexcept override { ++resets; }
    std::uint64_t resets = 0;
};

// Holds the device to its host contract: one epoll watch at a time, on its epoll fd.
class CheckingHost final : public virtio::DeviceHost {
public:
    void watch(int fd, Readiness readiness, Callback) noexcept override {
        KVMLET_FUZZ_CHECK(readiness == Readiness::readable && fd == epoll_fd && !watching);
        watching = true;
    }
    void after(std::chrono::nanoseconds, Callback due) noexcept override {
        if (timers.size() < max_timers) timers.push_back(std::move(due));
    }
    void post(Callback) noexcept override { invariant_failed("virtio-vsock posted work"); }
    void kick(std::size_t queue) noexcept override {
        KVMLET_FUZZ_CHECK(queue <= vsock::event_queue);
        kicked.push_back(queue);
    }
    int epoll_fd = -1;
    bool watching = false;
    std::deque<Callback> timers;
    std::vector<std::size_t> kicked;
};

// A directory of the process's own for the sockets, removed at exit. Never destroyed itself, so
// the exit handler can still read it.
std::filesystem::path const& socket_dir() {
    static std::filesystem::path const* const dir = [] {
        char const* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp ? tmp : "/tmp") + "/kvmlet-fuzz-vsock-XXXXXX";
        if (!::mkdtemp(pattern.data())) std::abort();
        return new std::filesystem::path(pattern);
    }();
    static bool const cleanup_registered = [] {
        return std::atexit([] {
                   std::error_code ec;
                   std::filesystem::remove_all(*dir, ec);
               }) == 0;
    }();
    (void)cleanup_registered;
    return *dir;
}

UniqueFd connect_to(std::string const& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    // Safety: sockaddr_un is connect()'s address type for AF_UNIX.
    if (::connect(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof address) != 0) return {};
    return fd;
}

UniqueFd listen_at(std::string const& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    ::unlink(path.c_str());
    // Safety: as above.
    if (::bind(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof address) != 0 ||
        ::listen(fd.get(), 16) != 0)
        return {};
    return fd;
}

struct Rig {
    std::uint8_t flags = 0;
    std::array<virtio::QueueConfig, 3> configs{};
    RecordingInterrupt interrupt;
    CheckingHost host;
    std::unique_ptr<virtio::VsockDevice> device;
    std::vector<UniqueFd> sockets;
    std::map<std::uint32_t, UniqueFd> listeners;

    ~Rig() {
        for (auto const& listener : listeners)
            ::unlink(vsock::port_path(device->config().uds_path, listener.first).c_str());
    }

    bool activate() {
        bool const event_idx = (flags & flag_event_idx) != 0;
        bool const indirect = (flags & flag_indirect) != 0;
        std::vector<virtio::SplitQueue> queues;
        for (auto const& config : configs) {
            auto q = virtio::SplitQueue::activate(ram(), config, virtio::VsockDevice::queue_size, event_idx,
                                                  indirect);
            if (!q) return false;
            queues.push_back(std::move(q).value());
        }
        std::uint64_t features = bit(virtio::feature::version_1) | bit(vsock::feature::stream);
        if (event_idx) features |= bit(virtio::feature::ring_event_idx);
        if (indirect) features |= bit(virtio::feature::ring_indirect_desc);
        interrupt.resets = 0;
        return device->activate({ram(), std::move(queues), features, interrupt, host});
    }
    void add_socket(UniqueFd fd) {
        if (fd.valid() && sockets.size() < max_host_sockets) sockets.push_back(std::move(fd));
    }
    UniqueFd* socket(ByteReader& in) {
        auto const i = in.take<std::uint8_t>();
        return sockets.empty() ? nullptr : &sockets[i % sockets.size()];
    }
};

std::vector<char> const& ramp() {
    static std::vector<char> const bytes = [] {
        std::vector<char> out(8192);
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(i);
        return out;
    }();
    return bytes;
}

void send_all(UniqueFd const& fd, std::string_view bytes) {
    (void)::send(fd.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void host_connects(Rig& rig, ByteReader& in) {
    auto const kind = in.take<std::uint8_t>() % 4;
    auto const port = in.take<std::uint16_t>();
    UniqueFd fd = connect_to(rig.device->config().uds_path.string());
    std::string const line = "CONNECT " + std::to_string(port) + "\n";
    if (kind == 0) send_all(fd, line);
    if (kind == 1) {
        auto const raw = in.take_bytes(in.take<std::uint8_t>());
        send_all(fd, {reinterpret_cast<char const*>(raw.data()), raw.size()});
    }
    if (kind == 2) {
        send_all(fd, std::string_view(line).substr(0, 5));
        rig.add_socket(std::move(fd));
        if (std::exchange(rig.host.watching, false)) rig.device->host_events();
        send_all(rig.sockets.back(), std::string_view(line).substr(5));
        return;
    }
    rig.add_socket(std::move(fd));
}

void host_listens(Rig& rig, ByteReader& in) {
    std::uint32_t const port = 5000 + in.take<std::uint8_t>() % 4;
    auto& listener = rig.listeners[port];
    if (!listener.valid()) listener = listen_at(vsock::port_path(rig.device->config().uds_path, port));
    // Bound: the backlog holds at most 16.
    for (int i = 0; i < 16 && listener.valid(); ++i) {
        UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!accepted.valid()) break;
        rig.add_socket(std::move(accepted));
    }
}

void host_reads(Rig& rig) {
    static char buffer[65536];
    for (auto const& fd : rig.sockets)
        // Bound: a socket holds a bounded number of bytes.
        for (int i = 0; i < 64 && ::recv(fd.get(), buffer, sizeof buffer, MSG_DONTWAIT) > 0; ++i) {
        }
}

void serve_kicks(Rig& rig) {
    auto kicked = std::exchange(rig.host.kicked, {});
    for (std::size_t queue : kicked) (void)rig.device->process_queue(queue);
}

void run_op(Rig& rig, ByteReader& in, std::uint8_t op) {
    switch (op % 16) {
        case 0:
        case 1:
        case 2:
            (void)rig.device->process_queue(op % 16);
            return;
        case 3:
            if (std::exchange(rig.host.watching, false)) rig.device->host_events();
            return;
        case 4:
            return host_connects(rig, in);
        case 5: {
            UniqueFd* fd = rig.socket(in);
            std::size_t const len = std::min<std::size_t>(in.take<std::uint16_t>(), ramp().size());
            if (fd) send_all(*fd, {ramp().data(), len});
            return;
        }
        case 6: {
            UniqueFd* fd = rig.socket(in);
            if (fd && (op & 16)) ::shutdown(fd->get(), SHUT_WR);
            if (fd && !(op & 16)) fd->reset();
            return;
        }
        case 7:
            return host_listens(rig, in);
        case 8:
            (void)apply_patch(in);
            return;
        case 9:
            if (!rig.host.timers.empty()) {
                auto due = std::move(rig.host.timers.front());
                rig.host.timers.pop_front();
                due();
            }
            return;
        case 10:
            rig.device->reset();
            (void)rig.activate();
            return;
        case 11:
            (void)rig.device->send_event(vsock::event_transport_reset);
            return;
        case 12:
            return host_reads(rig);
        default:
            return serve_kicks(rig);
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
    std::uint64_t base = 0;
    for (auto& config : rig.configs) {
        config = compact_layout(static_cast<std::uint16_t>(1u << (in.take<std::uint8_t>() % 9)));
        config.desc.value += base;
        config.avail.value += base;
        config.used.value += base;
        base = (config.used.value + 6 + 8ull * config.size + 15) & ~15ull;
    }
    take_ram_image(in);
    virtio::VsockLimits limits;
    limits.max_connections = max_connections;
    limits.buffer_bytes = 4096;
    rig.device = std::make_unique<virtio::VsockDevice>(
        virtio::VsockConfig{.guest_cid = 3, .uds_path = socket_dir() / "v.sock", .limits = limits});
    rig.host.epoll_fd = rig.device->epoll_fd();
    if (!rig.activate()) return 0;
    for (int op = 0; op < max_ops && !in.empty(); ++op) {
        run_op(rig, in, in.take<std::uint8_t>());
        KVMLET_FUZZ_CHECK(rig.interrupt.resets <= 1);  // per activation
        KVMLET_FUZZ_CHECK(rig.device->connection_count() <= max_connections);
    }
    return 0;
}
