#pragma once
// A PCI function as the bus sees it: its configuration space and its memory BARs. The bus calls
// the config methods with its configuration lock held (one at a time), and the BAR methods on
// vCPU threads (possibly several at once: the device synchronises its own state).
#include <cstdint>
#include <optional>
#include <span>

#include "devices/pci/config_space.hpp"

namespace kvmlet::pci {

class PciDevice {
public:
    explicit PciDevice(ConfigSpace config) : config_(config) {}
    virtual ~PciDevice() = default;
    PciDevice(PciDevice const&) = delete;
    PciDevice& operator=(PciDevice const&) = delete;

    ConfigSpace const& config() const noexcept { return config_; }
    ConfigSpace& config() noexcept { return config_; }

    // Guest configuration accesses; a device overrides them to react to its capabilities.
    virtual void config_read(std::uint32_t offset, std::span<std::byte> data) noexcept {
        config_.read(offset, data);
    }
    virtual void config_write(std::uint32_t offset, std::span<std::byte const> data) noexcept {
        config_.write(offset, data);
    }

    // An access inside BAR `bar` at `offset` from its start.
    virtual void bar_read(std::uint32_t bar, std::uint64_t offset, std::span<std::byte> data) noexcept = 0;
    virtual void bar_write(std::uint32_t bar, std::uint64_t offset,
                           std::span<std::byte const> data) noexcept = 0;
    // Where the guest now decodes BAR `bar` (moved, or memory decoding switched): nullopt when it
    // does not decode it at all.
    virtual void bar_moved(std::uint32_t bar, std::optional<std::uint64_t> address) noexcept {
        (void)bar, (void)address;
    }

protected:
    ConfigSpace config_;
};

}  // namespace kvmlet::pci
