#pragma once
// One PCI function's 256-byte configuration space as a byte array with a write mask: the guest
// changes only the bits the mask allows, so BAR sizing (write all-ones, read back the mask) and
// read-only fields need no special cases.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "devices/pci/pci_spec.hpp"
#include "vmm/base/state_stream.hpp"

namespace kvmlet::pci {

struct Identity {
    std::uint16_t vendor;
    std::uint16_t device;
    std::uint32_t class_code;  // class << 16 | subclass << 8 | programming interface
    std::uint8_t revision = 0;
    std::uint16_t subsystem_vendor = 0;
    std::uint16_t subsystem = 0;
};

class ConfigSpace {
public:
    ConfigSpace(Identity const& identity, std::uint8_t interrupt_pin);

    // Set-up. A memory BAR of `size` bytes (a power of two, at least 16); a 64-bit BAR takes
    // `index` and `index + 1`. Throws Error for a bad index or size.
    void add_memory_bar(std::uint32_t index, std::uint64_t size, bool is_64bit, bool prefetchable = false);
    // Appends a capability: `body` from the ID byte on (its byte 1, the next pointer, is filled in);
    // `writable` masks the bits the guest may change (same length, or empty for read-only).
    // Returns the capability's offset. Throws Error when it does not fit.
    std::uint8_t add_capability(std::span<std::uint8_t const> body,
                                std::span<std::uint8_t const> writable = {});

    // Guest accesses: any offset and size; beyond 256 bytes reads zeros and writes are dropped.
    void read(std::uint32_t offset, std::span<std::byte> data) const noexcept;
    void write(std::uint32_t offset, std::span<std::byte const> data) noexcept;

    // Values for the device model.
    std::uint16_t read16(std::uint32_t offset) const noexcept;
    std::uint32_t read32(std::uint32_t offset) const noexcept;
    void set16(std::uint32_t offset, std::uint16_t value) noexcept;  // ignore the mask
    void set32(std::uint32_t offset, std::uint32_t value) noexcept;
    std::uint16_t command() const noexcept { return read16(reg::command); }

    struct Bar {
        std::uint64_t size = 0;  // 0: not implemented
        bool is_64bit = false;
    };
    Bar bar(std::uint32_t index) const noexcept;
    // The address BAR `index` holds now (for a 64-bit BAR, from both registers).
    std::uint64_t bar_address(std::uint32_t index) const noexcept;
    void set_bar_address(std::uint32_t index, std::uint64_t address) noexcept;

    // Snapshots (docs/snapshot.md): the 256 bytes. load() takes only the bits the guest may
    // write (command, BARs, interrupt line, writable capability fields); the read-only ones stay
    // the device's own, so a snapshot cannot change what the function is.
    void save(StateWriter& out) const { out.put(bytes_); }
    void load(StateReader& in);

private:
    std::array<std::uint8_t, config_size> bytes_{};
    std::array<std::uint8_t, config_size> writable_{};
    std::array<Bar, bar_count> bars_{};
    std::array<bool, bar_count> bar_taken_{};  // implemented, or the upper half of a 64-bit BAR
    std::uint32_t next_capability_ = reg::first_capability;
    std::uint8_t last_capability_ = 0;
};

}  // namespace kvmlet::pci
