// Fuzz target: PCI configuration (0xCF8/0xCFC and ECAM) and BAR accesses against a PciBus that
// holds the host bridge, a virtio-pci rng device (devices/virtio/pci_transport.cpp, MSI-X
// included) and a probe function with 32- and 64-bit BARs, as a guest (or a confused one) would
// reach them.
//
// Input: u16 ram_len and that many bytes of RAM image at guest address 0, then up to max_ops
// operations, each an op byte and its operands:
//   op & 7 == 0  port access: u8 form (bits 0-2: port 0xCF8 + n; bits 3-4: width 1 << n, at most
//                4 and inside the 8 ports; bit 5 set: read, else write u32)
//   op & 7 == 1  0xCF8 = enable | u8 bus << 16 | u8 devfn << 8 | u8 register (bus 0 unless the
//                byte is odd: then 1)
//   op & 7 == 2  ECAM access: u32 offset & 0x1fffff (bus 0 and 1), width 1 << ((op >> 3) & 3);
//                bit 5 set: read, else write u64 (its first width bytes)
//   op & 7 == 3  ECAM dword write: u8 slot (% 4), u8 register (dword index), u32 value
//   op & 7 == 4  BAR window access: u8 mode, u16 or u64 address part, width 1 << ((op >> 3) & 3);
//                bit 5 set: read, else write u64. Mode % 4: 0 virtio BAR 0 + u16 % 0x8000,
//                1 probe BAR (mode >> 2) % 3 + u16, 2 a window edge + (s8) u16, 3 raw u64
//   op & 7 == 5  patch RAM: u16 address, u8 length, bytes (the driver filling rings)
//   op & 7 == 6  a driver bring-up through BAR 0's common configuration (where the BAR is now):
//                u8 queue size log2, u8 flags (bit 0 EVENT_IDX, 1 INDIRECT_DESC, 2 MSI-X on
//                with vectors 0 and 1 unmasked, 3 drop VERSION_1); queue 0 in the compact
//                layout (fuzz_support.hpp), DRIVER_OK, then a notify write
//   op & 7 == 7  the ioeventfd path: PciTransport::notify(u8)
//
// Invariants (KVMLET_FUZZ_CHECK): a BAR is decoded exactly when Memory Space is on and it lies
// inside a window, and bar_moved only ever reports such addresses; a device only sees accesses
// inside its BAR; an MSI-X vector is signalled only after its route was set; absent functions
// read all-ones; read-only identity registers keep their values.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "devices/irq_line.hpp"
#include "devices/pci/pci_bus.hpp"
#include "devices/virtio/pci_transport.hpp"
#include "devices/virtio/rng/rng_device.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace kvmlet::fuzz {
namespace {

constexpr int max_ops = 512;
constexpr std::uint16_t config_port = 0xcf8;
constexpr std::uint64_t ecam_base = 0xb000'0000;
constexpr pci::Windows windows{.mmio32_start = 0xc000'0000,
                               .mmio32_end = 0xfec0'0000,
                               .mmio64_start = std::uint64_t{64} << 30,
                               .mmio64_end = std::uint64_t{128} << 30};
constexpr std::uint32_t present_slots = 3;  // host bridge, virtio, probe

bool inside_window(std::uint64_t start, std::uint64_t size) {
    auto inside = [&](std::uint64_t begin, std::uint64_t end) {
        return start >= begin && start < end && size <= end - start;
    };
    return inside(windows.mmio32_start, windows.mmio32_end) ||
           inside(windows.mmio64_start, windows.mmio64_end);
}
bool point_in_window(std::uint64_t address) {
    return inside_window(address, 1);
}

class CountingIrq final : public IrqLine {
public:
    void trigger() noexcept override { ++edges; }
    std::uint64_t edges = 0;
};

// Checks that the transport routes a vector before it signals it (the VMM's irqfd needs its GSI
// route first) and that vectors stay inside the table.
class CheckingRouter final : public pci::MsiRouter {
public:
    explicit CheckingRouter(std::size_t vectors) : routed_(vectors, false) {}
    void set_route(std::uint16_t vector, pci::MsiMessage const&) noexcept override {
        KVMLET_FUZZ_CHECK(vector < routed_.size());
        routed_[vector] = true;
    }
    void signal(std::uint16_t vector) noexcept override {
        KVMLET_FUZZ_CHECK(vector < routed_.size());
        KVMLET_FUZZ_CHECK(routed_[vector]);
    }

private:
    std::vector<bool> routed_;
};

// A function with three BARs that checks every access the bus hands it.
class Probe final : public pci::PciDevice {
public:
    static constexpr std::array<std::uint32_t, 3> bars{0, 2, 4};
    Probe() : PciDevice(pci::ConfigSpace({.vendor = 0x1234, .device = 0x0001, .class_code = 0xff0000}, 1)) {
        config_.add_memory_bar(0, 0x1000, false);
        config_.add_memory_bar(2, std::uint64_t{512} << 20, true);  // large: the 64-bit window
        config_.add_memory_bar(4, 16, true);
    }
    void bar_read(std::uint32_t bar, std::uint64_t offset, std::span<std::byte> data) noexcept override {
        check(bar, offset, data.size());
        std::memset(data.data(), 0x42, data.size());
    }
    void bar_write(std::uint32_t bar, std::uint64_t offset,
                   std::span<std::byte const> data) noexcept override {
        check(bar, offset, data.size());
    }
    void bar_moved(std::uint32_t bar, std::optional<std::uint64_t> address) noexcept override {
        KVMLET_FUZZ_CHECK(config_.bar(bar).size != 0);
        if (address) KVMLET_FUZZ_CHECK(inside_window(*address, config_.bar(bar).size));
    }

private:
    void check(std::uint32_t bar, std::uint64_t offset, std::size_t size) const noexcept {
        std::uint64_t const bar_size = config_.bar(bar).size;
        KVMLET_FUZZ_CHECK(bar_size != 0);
        KVMLET_FUZZ_CHECK(offset < bar_size && size <= bar_size - offset);
    }
};

struct Machine {
    Machine()
        : rng(std::make_shared<virtio::RngDevice>(virtio::RngConfig{},
                                                  [](std::span<std::byte> out) {
                                                      std::memset(out.data(), 0x5a, out.size());
                                                      return true;
                                                  })),
          transport(std::make_shared<virtio::PciTransport>(ram(), rng, router, intx)) {
        transport->set_notify_region_handler([](std::optional<std::uint64_t> at) {
            if (at) KVMLET_FUZZ_CHECK(point_in_window(*at));
        });
        KVMLET_FUZZ_CHECK(bus->add(transport) == 1);
        KVMLET_FUZZ_CHECK(bus->add(probe) == 2);
    }

    CountingIrq intx;
    CheckingRouter router{2};  // rng: one queue plus configuration
    std::shared_ptr<virtio::RngDevice> rng;
    std::shared_ptr<virtio::PciTransport> transport;
    std::shared_ptr<Probe> probe = std::make_shared<Probe>();
    std::shared_ptr<pci::PciBus> bus = std::make_shared<pci::PciBus>(windows);
    std::shared_ptr<BusDevice> config_io = pci::make_config_io(bus);
    std::shared_ptr<BusDevice> ecam = pci::make_ecam(bus);
    std::shared_ptr<BusDevice> window = pci::make_bar_window(bus);

    // Every access uses a buffer of exactly its width, so ASan sees any byte written or read past it.
    std::vector<std::byte> io(BusDevice& device, std::uint64_t base, std::uint64_t offset, std::size_t width,
                              bool is_read, std::uint64_t value) {
        std::vector<std::byte> data(width);
        std::memcpy(data.data(), &value, std::min(width, sizeof value));
        if (is_read)
            device.read({base + offset, offset}, data);
        else
            device.write({base + offset, offset}, data);
        return data;
    }
    std::uint64_t ecam_read(std::uint64_t offset, std::size_t width) {
        auto data = io(*ecam, ecam_base, offset, width, true, 0);
        std::uint64_t v = 0;
        std::memcpy(&v, data.data(), width);
        return v;
    }
    void bar_write(std::uint64_t address, std::size_t width, std::uint64_t value) {
        (void)io(*window, 0, address, width, false, value);
    }
    std::uint64_t bar_read(std::uint64_t address, std::size_t width) {
        auto data = io(*window, 0, address, width, true, 0);
        std::uint64_t v = 0;
        std::memcpy(&v, data.data(), width);
        return v;
    }

    void bring_up(std::uint8_t size_log2, std::uint8_t flags);
    void check_routes();
    void check_identity();
};

// virtio 1.2 §4.1.4.3 offsets in the common configuration, and the notify region.
namespace common {
constexpr std::uint64_t driver_feature_select = 0x08, driver_feature = 0x0c, config_msix_vector = 0x10,
                        device_status = 0x14, queue_select = 0x16, queue_size = 0x18,
                        queue_msix_vector = 0x1a, queue_enable = 0x1c, queue_desc = 0x20, queue_driver = 0x28,
                        queue_device = 0x30;
}

void Machine::bring_up(std::uint8_t size_log2, std::uint8_t flags) {
    std::uint64_t const bar = transport->config().bar_address(virtio::PciTransport::bar);
    std::uint64_t const c = bar + virtio::PciTransport::common_offset;
    std::uint64_t features = 0;
    if (!(flags & 8)) features |= virtio::bit(virtio::feature::version_1);
    if (flags & 1) features |= virtio::bit(virtio::feature::ring_event_idx);
    if (flags & 2) features |= virtio::bit(virtio::feature::ring_indirect_desc);
    auto const layout = compact_layout(static_cast<std::uint16_t>(1u << (size_log2 % 10)));
    namespace st = virtio::status;
    bar_write(c + common::device_status, 1, 0);
    bar_write(c + common::device_status, 1, st::acknowledge | st::driver);
    bar_write(c + common::driver_feature_select, 4, 0);
    bar_write(c + common::driver_feature, 4, features & 0xffff'ffff);
    bar_write(c + common::driver_feature_select, 4, 1);
    bar_write(c + common::driver_feature, 4, features >> 32);
    bar_write(c + common::device_status, 1, st::acknowledge | st::driver | st::features_ok);
    if (flags & 4) {
        std::uint64_t const table = bar + virtio::PciTransport::msix_table_offset;
        for (std::uint64_t v = 0; v < 2; ++v) {
            bar_write(table + 16 * v, 8, 0xfee0'0000);
            bar_write(table + 16 * v + 8, 4, 0x40 + v);
            bar_write(table + 16 * v + 12, 4, 0);
        }
        std::uint64_t const slot1 = std::uint64_t{1} << 15;
        std::uint64_t at = ecam_read(slot1 + 0x34, 1);
        for (int n = 0; at != 0 && n < 48; at = ecam_read(slot1 + at + 1, 1), ++n) {
            if (ecam_read(slot1 + at, 1) == pci::capability::msix)
                (void)io(*ecam, ecam_base, slot1 + at + 2, 2, false, 0x8000);
        }
        bar_write(c + common::config_msix_vector, 2, 0);
    }
    bar_write(c + common::queue_select, 2, 0);
    if (flags & 4) bar_write(c + common::queue_msix_vector, 2, 1);
    bar_write(c + common::queue_size, 2, layout.size);
    bar_write(c + common::queue_desc, 4, layout.desc.value);
    bar_write(c + common::queue_driver, 4, layout.avail.value);
    bar_write(c + common::queue_device, 4, layout.used.value);
    bar_write(c + common::queue_enable, 2, 1);
    bar_write(c + common::device_status, 1, st::acknowledge | st::driver | st::features_ok | st::driver_ok);
    bar_write(virtio::PciTransport::notify_address(bar, 0), 2, 0);
}

// The bus decodes exactly the BARs whose function has Memory Space on and that lie in a window.
// Runs after every operation, so each BAR's place is worked out once per call.
void Machine::check_routes() {
    struct Bar {
        std::uint64_t start = 0;
        std::uint64_t size = 0;
        bool decoded = false;
    };
    auto place = [](pci::PciDevice const& device, std::uint32_t index) {
        auto const& config = device.config();
        Bar b{config.bar_address(index), config.bar(index).size, false};
        b.decoded = (config.command() & pci::command::memory_space) && inside_window(b.start, b.size);
        return b;
    };
    std::array<Bar, 4> const bars{place(*transport, 0), place(*probe, 0), place(*probe, 2), place(*probe, 4)};
    auto covered = [&](std::uint64_t address) {
        return std::any_of(bars.begin(), bars.end(), [&](Bar const& b) {
            return b.decoded && address >= b.start && address - b.start < b.size;
        });
    };
    for (auto const& b : bars) {
        for (std::uint64_t address : {b.start, b.start + b.size - 1}) {
            std::array<std::byte, 1> probe_byte{};
            KVMLET_FUZZ_CHECK(bus->bar_read(address, probe_byte) == covered(address));
        }
    }
}

// Identity registers are read-only; absent slots and functions read all-ones.
void Machine::check_identity() {
    KVMLET_FUZZ_CHECK(ecam_read(0, 4) == 0x0008'1b36);
    KVMLET_FUZZ_CHECK(ecam_read(std::uint64_t{1} << 15, 4) == 0x1044'1af4);
    KVMLET_FUZZ_CHECK(ecam_read(std::uint64_t{2} << 15, 4) == 0x0001'1234);
    KVMLET_FUZZ_CHECK(ecam_read(std::uint64_t{3} << 15, 4) == 0xffff'ffff);
    KVMLET_FUZZ_CHECK(ecam_read((std::uint64_t{1} << 15) | (std::uint64_t{1} << 12), 4) == 0xffff'ffff);
}

std::uint64_t bar_address(Machine& m, ByteReader& in) {
    auto const mode = in.take<std::uint8_t>();
    switch (mode % 4) {
        case 0:
            return m.transport->config().bar_address(0) + in.take<std::uint16_t>() % 0x8000;
        case 1:
            return m.probe->config().bar_address(Probe::bars[(mode >> 2) % 3]) + in.take<std::uint16_t>();
        case 2: {
            std::uint64_t const edges[] = {windows.mmio32_start, windows.mmio32_end, windows.mmio64_start,
                                           windows.mmio64_end};
            return edges[(mode >> 2) % 4] +
                   static_cast<std::uint64_t>(static_cast<std::int16_t>(in.take<std::uint16_t>()));
        }
        default:
            return in.take<std::uint64_t>();
    }
}

}  // namespace
}  // namespace kvmlet::fuzz

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace kvmlet;
    using namespace kvmlet::fuzz;
    quiet_logs();
    ByteReader in({data, size});
    take_ram_image(in);
    Machine m;
    m.check_identity();
    m.check_routes();

    for (int op_count = 0; op_count < max_ops && !in.empty(); ++op_count) {
        auto const op = in.take<std::uint8_t>();
        bool const is_read = (op & 0x20) != 0;
        switch (op & 7) {
            case 0: {
                auto const form = in.take<std::uint8_t>();
                std::uint64_t const port = form & 7;
                std::size_t width = std::min<std::size_t>(std::size_t{1} << ((form >> 3) & 3), 4);
                if (port + width > 8) width = 8 - port;  // the PIO bus hands out only its own ports
                (void)m.io(*m.config_io, config_port, port, width, (form & 0x20) != 0,
                           in.take<std::uint32_t>());
                break;
            }
            case 1: {
                std::uint32_t const bus = in.take<std::uint8_t>() & 1u;
                std::uint32_t const devfn = in.take<std::uint8_t>();
                std::uint32_t const reg = in.take<std::uint8_t>();
                (void)m.io(*m.config_io, config_port, 0, 4, false,
                           0x8000'0000u | bus << 16 | devfn << 8 | reg);
                break;
            }
            case 2: {
                std::uint64_t const offset = in.take<std::uint32_t>() & 0x1f'ffff;
                std::size_t const width = std::size_t{1} << ((op >> 3) & 3);
                auto const value = in.take<std::uint64_t>();
                auto const out = m.io(*m.ecam, ecam_base, offset, width, is_read, value);
                std::uint64_t const slot = (offset >> 15) & 0x1f, function = (offset >> 12) & 7;
                bool const absent = offset >= (1u << 20) || slot >= present_slots || function != 0;
                if (is_read && absent)
                    for (auto b : out) KVMLET_FUZZ_CHECK(b == std::byte{0xff});
                break;
            }
            case 3: {
                std::uint64_t const slot = in.take<std::uint8_t>() % 4;
                std::uint64_t const reg = std::uint64_t{in.take<std::uint8_t>()} * 4 % 256;
                (void)m.io(*m.ecam, ecam_base, slot << 15 | reg, 4, false, in.take<std::uint32_t>());
                break;
            }
            case 4: {
                std::uint64_t const address = bar_address(m, in);
                std::size_t const width = std::size_t{1} << ((op >> 3) & 3);
                (void)m.io(*m.window, 0, address, width, is_read, in.take<std::uint64_t>());
                break;
            }
            case 5:
                (void)apply_patch(in);
                break;
            case 6: {
                auto const size_log2 = in.take<std::uint8_t>();
                m.bring_up(size_log2, in.take<std::uint8_t>());
                break;
            }
            default:
                m.transport->notify(in.take<std::uint8_t>());
                break;
        }
        m.check_routes();
    }
    m.check_identity();
    return 0;
}
