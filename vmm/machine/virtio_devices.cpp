#include "vmm/machine/virtio_devices.hpp"

#include <unistd.h>

#include <array>

#include "devices/virtio/block/block_device.hpp"
#include "devices/virtio/console/console_device.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/net/tap.hpp"
#include "devices/virtio/rng/rng_device.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

struct Inputs {
    MachineConfig const& config;
    ByteSink& console_out;
};

void add_disks(Inputs const& in, VirtioDevices& out) {
    for (auto const& disk : in.config.disks)
        out.push_back(std::make_shared<virtio::BlockDevice>(Disk(disk), disk.rate_limiter));
}

virtio::net::MacAddress interface_mac(NetInterfaceConfig const& net) {
    if (net.mac) {
        auto mac = virtio::net::MacAddress::parse(*net.mac);
        if (!mac)
            throw Error(fmt::format(
                "net: MAC '{}': expected six hex bytes such as 06:00:ac:10:00:02, not multicast", *net.mac));
        return *mac;
    }
    virtio::net::MacAddress mac;
    if (::getentropy(mac.bytes.data(), mac.bytes.size()) != 0) throw system_error("net: getentropy");
    mac.bytes[0] = static_cast<std::uint8_t>((mac.bytes[0] & 0xfc) | 0x02);  // unicast, locally administered
    return mac;
}

void add_nets(Inputs const& in, VirtioDevices& out) {
    for (std::size_t i = 0; i < in.config.nets.size(); ++i) {
        NetInterfaceConfig const& net = in.config.nets[i];
        virtio::NetConfig device_config{.mac = interface_mac(net)};
        device_config.offloads = net.offloads;
        device_config.mmds = net.mmds;
        device_config.rx_rate_limiter = net.rx_rate_limiter;
        device_config.tx_rate_limiter = net.tx_rate_limiter;
        auto tap = std::make_unique<virtio::net::Tap>(net.tap ? virtio::net::Tap::open(*net.tap)
                                                              : virtio::net::Tap::create());
        log::debug("net: eth{} on TAP {}, MAC {}{}", i, tap->name(), device_config.mac.to_string(),
                   net.mmds ? ", MMDS" : "");
        out.push_back(std::make_shared<virtio::NetDevice>(device_config, std::move(tap)));
    }
}

void add_console(Inputs const& in, VirtioDevices& out) {
    if (in.config.console != ConsoleKind::virtio) return;
    out.push_back(std::make_shared<virtio::ConsoleDevice>(in.console_out));
}

void add_rng(Inputs const& in, VirtioDevices& out) {
    if (in.config.rng) out.push_back(std::make_shared<virtio::RngDevice>(*in.config.rng));
}

void add_vsock(Inputs const& in, VirtioDevices& out) {
    if (in.config.vsock) out.push_back(std::make_shared<virtio::VsockDevice>(*in.config.vsock));
}

using Factory = void (*)(Inputs const&, VirtioDevices&);
constexpr std::array<Factory, 5> factories{add_disks, add_nets, add_console, add_rng, add_vsock};

}  // namespace

VirtioDevices make_virtio_devices(MachineConfig const& config, ByteSink& console_out) {
    VirtioDevices out;
    Inputs const in{config, console_out};
    for (Factory make : factories) make(in, out);
    return out;
}

}  // namespace kvmlet
