#include "devices/pci/pci_bus.hpp"

#include <fmt/format.h>

#include <cstring>

#include "vmm/base/error.hpp"

namespace kvmlet::pci {
namespace {

// Red Hat's IDs for virtual hardware (QEMU docs/specs/pci-ids): 1b36:0008 is the "PCIe host bridge".
constexpr Identity host_bridge_identity{.vendor = 0x1b36, .device = 0x0008, .class_code = 0x06'00'00};

class HostBridge final : public PciDevice {
public:
    HostBridge() : PciDevice(ConfigSpace(host_bridge_identity, 0)) {}
    void bar_read(std::uint32_t, std::uint64_t, std::span<std::byte> data) noexcept override {
        std::memset(data.data(), 0xff, data.size());
    }
    void bar_write(std::uint32_t, std::uint64_t, std::span<std::byte const>) noexcept override {}
};

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
    return (value + alignment - 1) & ~(alignment - 1);
}

// Mechanism #1 (PCI 3.0 §3.2.2.3.2): 0xCF8 holds enable (bit 31), bus, device, function and the
// register's dword; 0xCFC-0xCFF move the data.
constexpr std::uint32_t config_address_enable = 1u << 31;
constexpr std::uint64_t config_data_offset = 4;

class ConfigIo final : public BusDevice {
public:
    explicit ConfigIo(std::shared_ptr<PciBus> bus) : bus_(std::move(bus)) {}

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override {
        std::memset(data.data(), 0xff, data.size());
        if (access.offset < config_data_offset) {
            if (access.offset != 0 || data.size() != 4) return;
            std::uint32_t value = bus_->config_address();
            std::memcpy(data.data(), &value, sizeof value);
            return;
        }
        if (auto target = decode(access.offset))
            bus_->config_read(target->slot, target->function, target->offset, data);
    }

    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override {
        if (access.offset < config_data_offset) {
            if (access.offset != 0 || data.size() != 4) return;  // 0xCF9 & co are not ours
            std::uint32_t value;
            std::memcpy(&value, data.data(), sizeof value);
            bus_->set_config_address(value);
            return;
        }
        if (auto target = decode(access.offset))
            bus_->config_write(target->slot, target->function, target->offset, data);
    }

private:
    struct Target {
        std::uint32_t slot, function, offset;
    };
    std::optional<Target> decode(std::uint64_t port_offset) const noexcept {
        std::uint32_t const address = bus_->config_address();
        if (!(address & config_address_enable) || ((address >> 16) & 0xff) != 0) return std::nullopt;
        return Target{(address >> 11) & 0x1f, (address >> 8) & 0x7,
                      (address & 0xfc) + static_cast<std::uint32_t>(port_offset - config_data_offset)};
    }

    std::shared_ptr<PciBus> bus_;
};

// ECAM: bus << 20 | device << 15 | function << 12 | register (PCIe 5.0 §7.2.2, Table 7-1).
class Ecam final : public BusDevice {
public:
    explicit Ecam(std::shared_ptr<PciBus> bus) : bus_(std::move(bus)) {}

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override {
        std::memset(data.data(), 0xff, data.size());
        if (aligned(access, data.size()))
            bus_->config_read(slot(access), function(access), reg(access), data);
    }
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override {
        if (aligned(access, data.size()))
            bus_->config_write(slot(access), function(access), reg(access), data);
    }

private:
    // Only bus 0 lies in the window; an access must not cross a dword.
    static bool aligned(IoAccess const& access, std::size_t size) noexcept {
        return access.offset < (std::uint64_t{1} << 20) && size <= 4 && access.offset % size == 0;
    }
    static std::uint32_t slot(IoAccess const& a) noexcept {
        return static_cast<std::uint32_t>(a.offset >> 15) & 0x1f;
    }
    static std::uint32_t function(IoAccess const& a) noexcept {
        return static_cast<std::uint32_t>(a.offset >> 12) & 0x7;
    }
    static std::uint32_t reg(IoAccess const& a) noexcept {
        return static_cast<std::uint32_t>(a.offset & 0xfff);
    }

    std::shared_ptr<PciBus> bus_;
};

class BarWindow final : public BusDevice {
public:
    explicit BarWindow(std::shared_ptr<PciBus> bus) : bus_(std::move(bus)) {}
    void read(IoAccess const& access, std::span<std::byte> data) noexcept override {
        if (!bus_->bar_read(access.address, data)) std::memset(data.data(), 0xff, data.size());
    }
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override {
        bus_->bar_write(access.address, data);
    }

private:
    std::shared_ptr<PciBus> bus_;
};

}  // namespace

PciBus::PciBus(Windows const& windows)
    : windows_(windows), next32_(windows.mmio32_start), next64_(windows.mmio64_start) {
    devices_[0] = make_host_bridge();
}

std::uint64_t PciBus::allocate(std::uint64_t size, bool is_64bit) {
    bool const high = is_64bit && size >= large_bar;
    std::uint64_t& next = high ? next64_ : next32_;
    std::uint64_t const end = high ? windows_.mmio64_end : windows_.mmio32_end;
    std::uint64_t const start = align_up(next, size);
    if (start < next || start > end || size > end - start)
        throw Error(fmt::format("pci: no room for a {:#x}-byte BAR in the {} window", size,
                                high ? "64-bit" : "32-bit"));
    next = start + size;
    return start;
}

std::uint8_t PciBus::next_free_slot() const {
    std::uint32_t slot = 1;
    while (slot < slots && devices_[slot]) ++slot;
    if (slot == slots) throw Error(fmt::format("pci: bus 0 is full ({} devices)", slots - 1));
    return static_cast<std::uint8_t>(slot);
}

std::uint8_t PciBus::add(std::shared_ptr<PciDevice> device) {
    std::uint32_t const slot = next_free_slot();
    ConfigSpace& config = device->config();
    for (std::uint32_t i = 0; i < bar_count; ++i) {
        auto const bar = config.bar(i);
        if (bar.size != 0) config.set_bar_address(i, allocate(bar.size, bar.is_64bit));
    }
    std::uint16_t const command = config.command() | command::memory_space;
    config.write(reg::command, std::as_bytes(std::span(&command, 1)));
    devices_[slot] = std::move(device);
    std::lock_guard lock(config_mutex_);
    update_routes(slot);
    return static_cast<std::uint8_t>(slot);
}

void PciBus::config_read(std::uint32_t slot, std::uint32_t function, std::uint32_t offset,
                         std::span<std::byte> data) noexcept {
    std::lock_guard lock(config_mutex_);
    if (slot >= slots || function != 0 || !devices_[slot]) {
        std::memset(data.data(), 0xff, data.size());
        return;
    }
    devices_[slot]->config_read(offset, data);
}

void PciBus::config_write(std::uint32_t slot, std::uint32_t function, std::uint32_t offset,
                          std::span<std::byte const> data) noexcept {
    std::lock_guard lock(config_mutex_);
    if (slot >= slots || function != 0 || !devices_[slot]) return;
    devices_[slot]->config_write(offset, data);
    update_routes(slot);
}

std::uint32_t PciBus::config_address() const noexcept {
    std::lock_guard lock(config_mutex_);
    return config_address_;
}

void PciBus::set_config_address(std::uint32_t value) noexcept {
    std::lock_guard lock(config_mutex_);
    config_address_ = value;
}

void PciBus::save(StateWriter& out) const {
    std::lock_guard lock(config_mutex_);
    out.put(config_address_);
    devices_[0]->config().save(out);
}

void PciBus::load(StateReader& in) {
    std::lock_guard lock(config_mutex_);
    config_address_ = in.get<std::uint32_t>();
    devices_[0]->config().load(in);
    in.finish();
    for (std::uint32_t slot = 0; slot < slots; ++slot)
        if (devices_[slot]) update_routes(slot);
}

bool PciBus::in_window(std::uint64_t start, std::uint64_t size) const noexcept {
    auto inside = [&](std::uint64_t begin, std::uint64_t end) {
        return start >= begin && start < end && size <= end - start;
    };
    return inside(windows_.mmio32_start, windows_.mmio32_end) ||
           inside(windows_.mmio64_start, windows_.mmio64_end);
}

// Config lock held. A BAR is decoded when memory decoding is on and it lies inside a window: a
// BAR being sized (all-ones) or parked at 0 is not.
void PciBus::update_routes(std::uint32_t slot) noexcept {
    PciDevice& device = *devices_[slot];
    bool const decoding = device.config().command() & command::memory_space;
    for (std::uint32_t i = 0; i < bar_count; ++i) {
        auto const bar = device.config().bar(i);
        if (bar.size == 0) continue;
        std::uint64_t const address = device.config().bar_address(i);
        std::optional<std::uint64_t> now;
        if (decoding && in_window(address, bar.size)) now = address;
        if (now == decoded_[slot][i]) continue;
        decoded_[slot][i] = now;
        {
            std::unique_lock lock(routes_mutex_);
            std::erase_if(routes_, [&](Route const& r) { return r.device == &device && r.bar == i; });
            if (now) routes_.push_back({*now, bar.size, &device, i});
        }
        device.bar_moved(i, now);
    }
}

PciBus::Route const* PciBus::find(std::uint64_t address, std::size_t size) const noexcept {
    for (auto const& route : routes_)
        if (address >= route.start && address - route.start < route.size &&
            size <= route.size - (address - route.start))
            return &route;
    return nullptr;
}

bool PciBus::bar_read(std::uint64_t address, std::span<std::byte> data) noexcept {
    std::shared_lock lock(routes_mutex_);
    Route const* route = find(address, data.size());
    if (!route) return false;
    route->device->bar_read(route->bar, address - route->start, data);
    return true;
}

bool PciBus::bar_write(std::uint64_t address, std::span<std::byte const> data) noexcept {
    std::shared_lock lock(routes_mutex_);
    Route const* route = find(address, data.size());
    if (!route) return false;
    route->device->bar_write(route->bar, address - route->start, data);
    return true;
}

std::shared_ptr<BusDevice> make_config_io(std::shared_ptr<PciBus> bus) {
    return std::make_shared<ConfigIo>(std::move(bus));
}
std::shared_ptr<BusDevice> make_ecam(std::shared_ptr<PciBus> bus) {
    return std::make_shared<Ecam>(std::move(bus));
}
std::shared_ptr<BusDevice> make_bar_window(std::shared_ptr<PciBus> bus) {
    return std::make_shared<BarWindow>(std::move(bus));
}
std::shared_ptr<PciDevice> make_host_bridge() {
    return std::make_shared<HostBridge>();
}

}  // namespace kvmlet::pci
