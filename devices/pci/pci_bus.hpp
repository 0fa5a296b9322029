#pragma once
// One PCI root bus (bus 0) with a host bridge at 00:00.0: configuration through the 0xCF8/0xCFC
// port pair (PCI 3.0 §3.2.2.3.2, mechanism #1) and through ECAM (PCIe 5.0 §7.2.2), and the memory
// BARs of its devices, wherever the guest moves them inside the windows.
//
// Threads: configuration accesses are serialised by one lock; BAR accesses take a shared lock on
// the routes, so vCPUs reach different devices' BARs in parallel.
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <vector>

#include "devices/pci/pci_device.hpp"
#include "vmm/base/state_stream.hpp"
#include "vmm/bus/bus_device.hpp"

namespace kvmlet::pci {

struct Windows {
    std::uint64_t mmio32_start, mmio32_end;  // [start, end)
    std::uint64_t mmio64_start, mmio64_end;
};

class PciBus final : public Persistent {
public:
    // 64-bit BARs at least this large go to the 64-bit window; everything else below 4 GiB.
    static constexpr std::uint64_t large_bar = std::uint64_t{256} << 20;

    explicit PciBus(Windows const& windows);

    // Set-up: places `device` in the next free slot, its BARs at the next naturally aligned
    // addresses with memory decoding on (what firmware leaves for the OS), and returns the slot.
    // Throws Error when the bus or a window is full.
    std::uint8_t add(std::shared_ptr<PciDevice> device);
    // The slot the next add() will use (its INTx pin is known before the device is made).
    // Throws Error when the bus is full.
    std::uint8_t next_free_slot() const;
    Windows const& windows() const noexcept { return windows_; }

    // Guest accesses. Absent functions read all-ones; writes to them are dropped.
    void config_read(std::uint32_t slot, std::uint32_t function, std::uint32_t offset,
                     std::span<std::byte> data) noexcept;
    void config_write(std::uint32_t slot, std::uint32_t function, std::uint32_t offset,
                      std::span<std::byte const> data) noexcept;
    // An access in the BAR windows; false when no decoded BAR holds all of it.
    bool bar_read(std::uint64_t address, std::span<std::byte> data) noexcept;
    bool bar_write(std::uint64_t address, std::span<std::byte const> data) noexcept;

    // Snapshots (docs/snapshot.md, section pci): the 0xCF8 address register and the host
    // bridge's configuration space. load() runs after every function's own section: it routes
    // each function's BARs where its loaded configuration space puts them (and tells the
    // function, which moves its notification ioeventfds).
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;

    // 0xCF8 address register for mechanism #1 (serialised with config accesses).
    std::uint32_t config_address() const noexcept;
    void set_config_address(std::uint32_t value) noexcept;

private:
    struct Route {
        std::uint64_t start, size;
        PciDevice* device;
        std::uint32_t bar;
    };
    std::uint64_t allocate(std::uint64_t size, bool is_64bit);
    void update_routes(std::uint32_t slot) noexcept;
    Route const* find(std::uint64_t address, std::size_t size) const noexcept;
    bool in_window(std::uint64_t start, std::uint64_t size) const noexcept;

    Windows windows_;
    std::uint64_t next32_, next64_;
    std::array<std::shared_ptr<PciDevice>, slots> devices_;
    std::array<std::array<std::optional<std::uint64_t>, bar_count>, slots> decoded_{};

    mutable std::mutex config_mutex_;
    std::uint32_t config_address_ = 0;
    mutable std::shared_mutex routes_mutex_;
    std::vector<Route> routes_;
};

// The guest's doors to the bus, for the machine's IoBuses.
std::shared_ptr<BusDevice> make_config_io(std::shared_ptr<PciBus> bus);   // 8 ports at 0xCF8
std::shared_ptr<BusDevice> make_ecam(std::shared_ptr<PciBus> bus);        // bus 0's 1 MiB
std::shared_ptr<BusDevice> make_bar_window(std::shared_ptr<PciBus> bus);  // insert over each window

// The host bridge at 00:00.0: identifies the bus, owns no BARs.
std::shared_ptr<PciDevice> make_host_bridge();

}  // namespace kvmlet::pci
