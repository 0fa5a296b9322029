// TAP endpoints, each test in a network namespace of its own (tests/unit/support/private_netns.hpp):
// no TAP is ever made in the host's namespace, and no packet leaves the test's.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>  // before linux/if_tun.h
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <map>

#include "devices/virtio/net/tap.hpp"
#include "tests/unit/devices/virtio/net_test_rig.hpp"
#include "tests/unit/support/private_netns.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::test {
namespace {

constexpr std::uint16_t test_ethertype = 0x88b5;  // IEEE 802 local experimental
constexpr int poll_timeout_ms = 2000;

void run_netns(std::function<void()> const& body) {
    auto outcome = run_in_private_netns(body);
    if (outcome.skipped) {
        WARN("skipped: cannot make a network namespace (needs root)");
        return;
    }
    INFO(outcome.failure);
    CHECK(outcome.failure.empty());
}

// The message of the Error that `f` throws; empty when it throws none.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (Error const& e) {
        return e.what();
    }
    return {};
}

short interface_flags(std::string const& name) {
    UniqueFd sock{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    netns_expect(::ioctl(sock.get(), SIOCGIFFLAGS, &request) == 0, "SIOCGIFFLAGS " + name);
    return request.ifr_flags;
}

// What `ip tuntap add dev NAME mode tap|tun` does: a persistent interface nobody is attached to.
void add_persistent(std::string const& name, short mode) {
    UniqueFd fd{::open("/dev/net/tun", O_RDWR | O_CLOEXEC)};
    netns_expect(fd.valid(), "open /dev/net/tun");
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    request.ifr_flags = static_cast<short>(mode | IFF_NO_PI);
    netns_expect(::ioctl(fd.get(), TUNSETIFF, &request) == 0, "TUNSETIFF " + name);
    netns_expect(::ioctl(fd.get(), TUNSETPERSIST, 1) == 0, "TUNSETPERSIST " + name);
}

bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, poll_timeout_ms) == 1;
}

TEST_CASE("a TAP kvmlet creates is named by the kernel, up, and gone once closed") {
    run_netns([] {
        std::string name;
        {
            auto tap = virtio::net::Tap::create();
            name = tap.name();
            netns_expect(name.rfind("kvmlet", 0) == 0 && name != "kvmlet%d", "kernel-chosen name: " + name);
            netns_expect(interface_flags(name) & IFF_UP, name + " is up");
            netns_expect(tap.set_offloads({.csum = true, .tso4 = true, .tso6 = true}).has_value(),
                         "TUNSETOFFLOAD");
            netns_expect(tap.set_offloads({}).has_value(), "TUNSETOFFLOAD 0");
        }
        netns_expect(::if_nametoindex(name.c_str()) == 0, name + " removed when its descriptor closed");
    });
}

TEST_CASE("opening a TAP fails with one clear line when it is missing, busy or not a TAP") {
    run_netns([] {
        netns_expect(error_of([] { virtio::net::Tap::open("vmtap0"); }) ==
                         "net: TAP vmtap0: no such interface (create it: ip tuntap add dev vmtap0 mode tap)",
                     "missing");
        netns_expect(::if_nametoindex("vmtap0") == 0, "opening a missing TAP creates none");
        netns_expect(
            error_of([] { virtio::net::Tap::open("lo"); }).starts_with("net: TAP lo: not a TAP interface"),
            "lo");
        add_persistent("vmtun0", IFF_TUN);
        netns_expect(
            error_of([] { virtio::net::Tap::open("vmtun0"); }).starts_with("net: TAP vmtun0: not a TAP"),
            "a TUN");
        netns_expect(
            error_of([] { virtio::net::Tap::open("kvmlet%d"); }).starts_with("net: TAP kvmlet%d: '%' names"),
            "a pattern");
        netns_expect(error_of([] {
                         virtio::net::Tap::open("a-name-far-too-long");
                     }).starts_with("net: TAP a-name-far-too-long: not an interface name"),
                     "long name");
        add_persistent("vmtap0", IFF_TAP);
        auto tap = virtio::net::Tap::open("vmtap0");
        netns_expect(tap.name() == "vmtap0", "opened");
        netns_expect(
            error_of([] { virtio::net::Tap::open("vmtap0"); }).starts_with("net: TAP vmtap0: already in use"),
            "busy");
    });
}

// A raw socket on the TAP's interface, for our test EtherType only: what the host side sees.
UniqueFd packet_socket(std::string const& name) {
    UniqueFd sock{::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(test_ethertype))};
    netns_expect(sock.valid(), "AF_PACKET socket");
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(test_ethertype);
    address.sll_ifindex = static_cast<int>(::if_nametoindex(name.c_str()));
    netns_expect(::bind(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0,
                 "bind AF_PACKET");
    return sock;
}

std::vector<std::byte> test_frame(std::uint8_t seed) {
    auto frame = frame_bytes(60, seed);
    for (std::size_t i = 6; i < 12; ++i)
        frame[i] = std::byte{static_cast<std::uint8_t>(i == 6 ? 0x02 : i - 6)};
    frame[12] = std::byte{test_ethertype >> 8};
    frame[13] = std::byte{test_ethertype & 0xff};
    return frame;
}

struct TapRig {
    GuestMemory memory = flat_ram(8 * MiB);
    FakeDriver rx{memory, 256, 0x10000, 0x100000};
    FakeDriver tx{memory, 256, 0x20000, 0x400000};
    NetInterrupt irq;
    RecordingWatch watch;
    virtio::NetDevice device{{.mac = {{0x06, 0, 0xac, 0x10, 0, 2}}},
                             std::make_unique<virtio::net::Tap>(virtio::net::Tap::create())};

    TapRig() {
        std::vector<virtio::SplitQueue> queues;
        queues.push_back(virtio::SplitQueue::activate(memory, rx.config(), 256, false, true).value());
        queues.push_back(virtio::SplitQueue::activate(memory, tx.config(), 256, false, true).value());
        netns_expect(device.activate({memory, std::move(queues), all_net_features(device), irq, watch}),
                     "activate");
    }
};

TEST_CASE("frames cross a real TAP both ways through the device") {
    run_netns([] {
        TapRig rig;
        auto host = packet_socket(rig.device.endpoint().name());
        // Guest to host: the device writes the frame into the TAP; the host side receives it.
        auto const out = test_frame(1);
        auto at = rig.tx.alloc_with(packet_bytes(virtio::net::Header{}, out));
        rig.tx.add_chain({{at, static_cast<std::uint32_t>(12 + out.size()), false}});
        rig.device.process_queue(virtio::net::transmit_queue);
        netns_expect(wait_readable(host.get()), "the host side sees the guest's frame");
        std::vector<std::byte> got(2048);
        ssize_t n = ::recv(host.get(), got.data(), got.size(), 0);
        got.resize(static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
        netns_expect(got == out, "the same frame");
        // Host to guest: the host side sends a frame out of the TAP; the device receives it. The
        // kernel may send its own packets (IPv6 neighbour discovery) too: look for ours.
        constexpr int buffers = 16;
        std::map<std::uint32_t, std::uint64_t> posted;  // head -> buffer
        for (int i = 0; i < buffers; ++i) {
            auto buffer = rig.rx.alloc(2048);
            posted[rig.rx.add_chain({{buffer, 2048, true}})] = buffer;
        }
        rig.device.process_queue(virtio::net::receive_queue);
        auto const in = test_frame(2);
        netns_expect(::send(host.get(), in.data(), in.size(), 0) == static_cast<ssize_t>(in.size()), "send");
        netns_expect(wait_readable(rig.device.endpoint().fd()), "the TAP has the host's frame");
        rig.device.endpoint_readable();
        bool found = false;
        for (int i = 0; i < buffers && !found; ++i) {
            auto used = rig.rx.next_used();
            if (!used) break;
            found =
                used->len == 12 + in.size() &&
                guest_bytes(rig.memory, posted.at(used->id) + sizeof(virtio::net::Header), in.size()) == in;
        }
        netns_expect(found, "the guest received the host's frame");
        netns_expect(rig.device.counters().rx_dropped() == 0 && rig.device.counters().tx_dropped() == 0,
                     "nothing dropped");
    });
}

}  // namespace
}  // namespace kvmlet::test
