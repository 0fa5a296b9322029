#pragma once
// virtio over PCI, modern interface only (virtio 1.2 §4.1): a PCI function with one 64-bit memory
// BAR that holds the common configuration, ISR status, device configuration and notification
// regions, each announced by a vendor-specific capability, plus the MSI-X table and PBA. Queue and
// configuration interrupts go through MSI-X when the driver enables it, else through INTx (the ISR
// status register and a level-triggered line).
//
// Locks: the bus calls config_*() under its configuration lock, bar_*() on vCPU threads; the
// transport's two mutexes (transport.hpp) cover the registers and the device; MSI-X has its own
// lock, taken after either.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "devices/irq_line.hpp"
#include "devices/pci/msix.hpp"
#include "devices/pci/pci_device.hpp"
#include "devices/virtio/transport.hpp"

namespace kvmlet::virtio {

// A snapshot's section (virtio-pci.S, S the slot; docs/snapshot.md) is the configuration space,
// the MSI-X table, the shared transport state (Transport::save_shared), this transport's
// registers, then the device's own state.
class PciTransport final : public pci::PciDevice, public Transport, public Persistent {
public:
    // BAR 0 layout; each region starts on its own page.
    static constexpr std::uint32_t bar = 0;
    static constexpr std::uint64_t bar_size = 0x8000;
    static constexpr std::uint64_t common_offset = 0x0000;
    static constexpr std::uint64_t isr_offset = 0x1000;
    static constexpr std::uint64_t device_config_offset = 0x2000;
    static constexpr std::uint64_t notify_offset = 0x3000;
    static constexpr std::uint64_t msix_table_offset = 0x4000;
    static constexpr std::uint64_t msix_pba_offset = 0x6000;
    static constexpr std::uint64_t region_size = 0x1000;
    static constexpr std::uint32_t notify_off_multiplier = 4;  // queue q notifies at notify_offset + 4 q

    // Called with the guest-physical address of the notification region whenever it moves (or
    // nullopt when the BAR is not decoded): where the VMM keeps its ioeventfds.
    using NotifyRegionHandler = std::function<void(std::optional<std::uint64_t> notify_base)>;

    // `intx` is asserted for queue and configuration interrupts while MSI-X is off; it is level
    // triggered: the VMM re-asserts it while intx_pending() after the guest's EOI.
    PciTransport(GuestMemory const& memory, std::shared_ptr<Device> device, pci::MsiRouter& msi,
                 IrqLine& intx);

    void set_notify_region_handler(NotifyRegionHandler handler) {
        notify_region_handler_ = std::move(handler);
    }
    // Where queue `queue` is notified, in a notification region at `region`.
    static std::uint64_t notify_address(std::uint64_t region, std::uint32_t queue) noexcept {
        return region + std::uint64_t{queue} * notify_off_multiplier;
    }
    bool intx_pending() const noexcept { return isr_.load() != 0; }
    // Whether the INTx line should be up: an interrupt pending, INTx not disabled in the command
    // register, and MSI-X off (with MSI-X enabled the device never uses INTx: PCI, virtio 1.2
    // §4.1.4.5). The VMM re-asserts the line after the guest's EOI only while this holds.
    bool intx_asserted() const noexcept;

    // Persistent. load() runs before anything does; the bus's own load() routes the BAR after it.
    // A device it activated has every queue served once when the slot starts.
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;

    // PciDevice
    void config_read(std::uint32_t offset, std::span<std::byte> data) noexcept override;
    void config_write(std::uint32_t offset, std::span<std::byte const> data) noexcept override;
    void bar_read(std::uint32_t bar, std::uint64_t offset, std::span<std::byte> data) noexcept override;
    void bar_write(std::uint32_t bar, std::uint64_t offset,
                   std::span<std::byte const> data) noexcept override;
    void bar_moved(std::uint32_t bar, std::optional<std::uint64_t> address) noexcept override;

private:
    void add_capabilities();
    void read_common(std::uint64_t offset, std::span<std::byte> data) noexcept;
    void write_common(std::uint64_t offset, std::span<std::byte const> data) noexcept;
    void write_common_field(std::uint64_t offset, std::size_t size, std::uint32_t value) noexcept;
    void write_queue_field(std::uint64_t offset, std::size_t size, std::uint32_t value) noexcept;
    std::uint16_t accepted_vector(std::uint32_t value) const noexcept;
    void reset_transport() noexcept override;
    bool pci_cfg_data(std::uint32_t offset, std::size_t size) const noexcept;
    void pci_cfg_access(std::span<std::byte> data, bool write) noexcept;
    void raise(std::uint16_t vector, std::uint8_t isr_bit) noexcept;
    void load_registers(StateReader& in);

    // Interrupt
    void used_buffers(std::size_t queue) noexcept override;
    void config_changed() noexcept override;

    pci::Msix msix_;
    IrqLine& intx_;
    NotifyRegionHandler notify_region_handler_;
    std::uint8_t pci_cfg_cap_ = 0;
    std::atomic<bool> intx_disabled_{false};
    std::atomic<std::uint8_t> isr_{0};

    // Mutex held (transport.hpp).
    std::uint32_t device_feature_select_ = 0;
    std::uint32_t driver_feature_select_ = 0;
    std::uint16_t queue_select_ = 0;
    // Written with the mutex held, read by interrupts on the device's executor.
    std::atomic<std::uint16_t> config_vector_{pci::Msix::no_vector};
    std::vector<std::atomic<std::uint16_t>> queue_vectors_;
    std::atomic<std::uint8_t> config_generation_{0};
};

}  // namespace kvmlet::virtio
