// Fuzz target: a snapshot's state file (vmm/snapshot/snapshot_file.cpp) and every section parser
// behind it: the VM's and vCPUs' KVM state, the 8250, the i8042 and its keyboard, the boot timer,
// and a virtio-mmio transport's section (virtio.N) with a virtio-rng, a virtio-console or a
// virtio-net (over a socket pair) behind it, whose load may activate the device on a small RAM
// (queues checked against it); a virtio-pci function's section (virtio-pci.S: configuration space,
// MSI-X table, transport) with the same devices, and the PCI bus's (pci).
// The input is the file. Decoding and loading may only fail with Error (one line for the user);
// a section that loads must save back to the same bytes (what a device accepts it can write); a PCI
// configuration space keeps only the bits the guest may write, so there the bytes saved after one
// load must load and save back unchanged.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "devices/legacy/boot_timer.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/serial.hpp"
#include "devices/pci/pci_bus.hpp"
#include "devices/virtio/console/console_device.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/net/socket_endpoint.hpp"
#include "devices/virtio/pci_transport.hpp"
#include "devices/virtio/rng/rng_device.hpp"
#include "vmm/base/error.hpp"
#include "vmm/snapshot/kvm_state.hpp"
#include "vmm/snapshot/snapshot_file.hpp"

namespace {

using namespace kvmlet;

struct NoIrq final : IrqLine {
    void trigger() noexcept override {}
};
struct NoSink final : ByteSink {
    void write(std::span<std::byte const>) noexcept override {}
};
// What a loaded device asks of its host (a net device's watch of its endpoint) goes nowhere.
struct NoHost final : virtio::DeviceHost {
    void watch(int, Readiness, Callback) noexcept override {}
    void after(std::chrono::nanoseconds, Callback) noexcept override {}
    void post(Callback) noexcept override {}
    void kick(std::size_t) noexcept override {}
};

struct NoMsi final : pci::MsiRouter {
    void set_route(std::uint16_t, pci::MsiMessage const&) noexcept override {}
    void signal(std::uint16_t) noexcept override {}
};

// A virtio-net over one end of a socket pair (the other end closed: nothing is ever received).
std::shared_ptr<virtio::Device> make_net() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
    ::close(fds[1]);
    return std::make_shared<virtio::NetDevice>(
        virtio::NetConfig{.mac = {{0x06, 0, 0xac, 0x10, 0, 2}}},
        std::make_unique<virtio::net::SocketEndpoint>(UniqueFd{fds[0]}, "fuzz"));
}

// Loads `section` into `target` and checks that saving gives the same bytes back.
template <class Load, class Save>
void round_trip(std::span<std::byte const> section, Load load, Save save) {
    StateReader in(section, "fuzz");
    try {
        load(in);
    } catch (Error const&) {
        return;
    }
    StateWriter out;
    save(out);
    auto const& bytes = out.bytes();
    if (bytes.size() != section.size() || !std::equal(bytes.begin(), bytes.end(), section.begin()))
        std::abort();
}

// Loads `section` into a fresh target; what it saves must load into another and save the same.
template <class Make>
void stable_round_trip(std::span<std::byte const> section, Make make) {
    StateWriter first;
    {
        auto target = make();
        StateReader in(section, "fuzz");
        try {
            target->load(in);
        } catch (Error const&) {
            return;
        }
        target->save(first);
    }
    auto again = make();
    StateReader in(first.bytes(), "fuzz");
    again->load(in);  // an Error here escapes: what was saved must load
    StateWriter second;
    again->save(second);
    if (second.bytes() != first.bytes()) std::abort();
}

GuestMemory const& fuzz_memory() {
    static GuestMemory const memory = [] {
        RamRange const ranges[] = {{GuestAddress{0}, 2 << 20}};  // the corpus guests' rings fit
        return GuestMemory::create(ranges);
    }();
    return memory;
}

void parse_section(snapshot::Section const& section) {
    std::span<std::byte const> bytes = section.bytes;
    NoIrq irq;
    NoSink sink;
    if (section.name == "kvm.vm") {
        snapshot::VmState vm;
        round_trip(
            bytes, [&](StateReader& in) { vm = snapshot::VmState::load(in); },
            [&](StateWriter& out) { vm.save(out); });
    } else if (section.name.starts_with("kvm.vcpu.")) {
        snapshot::VcpuState vcpu;
        round_trip(
            bytes, [&](StateReader& in) { vcpu = snapshot::VcpuState::load(in); },
            [&](StateWriter& out) { vcpu.save(out); });
    } else if (section.name == "dev.serial") {
        Serial serial(irq, sink);
        round_trip(
            bytes, [&](StateReader& in) { serial.load(in); }, [&](StateWriter& out) { serial.save(out); });
    } else if (section.name == "dev.i8042") {
        I8042 i8042(irq, [] {});
        round_trip(
            bytes, [&](StateReader& in) { i8042.load(in); }, [&](StateWriter& out) { i8042.save(out); });
    } else if (section.name == "dev.boot_timer") {
        BootTimer timer;
        round_trip(
            bytes, [&](StateReader& in) { timer.load(in); }, [&](StateWriter& out) { timer.save(out); });
    } else if (section.name == "pci") {
        stable_round_trip(bytes, [] {
            return std::make_unique<pci::PciBus>(
                pci::Windows{0xc000'0000, 0xe000'0000, 1ull << 36, 1ull << 37});
        });
    } else if (section.name.starts_with("virtio-pci.")) {
        NoMsi msi;
        NoHost host;
        for (int kind = 0; kind < 3; ++kind) {
            stable_round_trip(bytes, [&] {
                std::shared_ptr<virtio::Device> device;
                if (kind == 0) device = std::make_shared<virtio::RngDevice>(virtio::RngConfig{});
                if (kind == 1) device = std::make_shared<virtio::ConsoleDevice>(sink);
                if (kind == 2) device = make_net();
                auto transport = std::make_unique<virtio::PciTransport>(fuzz_memory(), device, msi, irq);
                transport->set_notify_handler([](std::uint32_t) {});
                transport->set_device_host(host);
                return transport;
            });
        }
    } else if (section.name.starts_with("virtio.")) {
        GuestMemory const& memory = fuzz_memory();
        // The section does not say its device's kind (the machine section does): try each.
        std::shared_ptr<virtio::Device> const devices[] = {
            std::make_shared<virtio::RngDevice>(virtio::RngConfig{}),
            std::make_shared<virtio::ConsoleDevice>(sink), make_net()};
        NoHost host;
        for (auto const& device : devices) {
            virtio::MmioTransport transport(memory, device, irq);
            transport.set_device_host(host);
            // A restore's first pass over the queues is not the section's: nothing served here.
            transport.set_notify_handler([](std::uint32_t) {});
            round_trip(
                bytes, [&](StateReader& in) { transport.load(in); },
                [&](StateWriter& out) { transport.save(out); });
        }
    }
}

// Decodes `bytes` and, when it is a state file, checks it encodes back the same and parses every
// section.
void decode_and_parse(std::span<std::byte const> bytes) {
    snapshot::StateFile file;
    try {
        file = snapshot::StateFile::decode(bytes, "fuzz");
    } catch (Error const&) {
        return;
    }
    // What decodes must encode to the same file.
    auto again = file.encode();
    if (again.size() != bytes.size() || !std::equal(again.begin(), again.end(), bytes.begin())) std::abort();
    for (auto const& section : file.sections()) parse_section(section);
}

}  // namespace

// The input as it is (the CRC check among the rest), then with its CRC made right, so that the
// mutations reach the section parsers instead of stopping at the CRC.
extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    auto bytes = std::as_bytes(std::span{data, size});
    decode_and_parse(bytes);
    if (size < snapshot::header_size + snapshot::trailer_size) return 0;
    std::vector<std::byte> fixed(bytes.begin(), bytes.end());
    std::uint64_t const crc = snapshot::crc64(std::span{fixed}.first(size - snapshot::trailer_size));
    std::memcpy(fixed.data() + size - snapshot::trailer_size, &crc, sizeof crc);
    decode_and_parse(fixed);
    return 0;
}
