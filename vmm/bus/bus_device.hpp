#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

namespace kvmlet {

// One guest access to a device's range: `offset` is relative to the start of the range the device
// was inserted at; the access size is the size of the data span (1, 2, 4 or 8 bytes).
struct IoAccess {
    std::uint64_t address;  // absolute port number or guest-physical address
    std::uint64_t offset;   // address - start of the device's range
};

// A device on a PIO or MMIO bus. Called on vCPU threads, possibly several at once: implementations
// synchronise their own state. Guest-reachable, so never throws (STYLE.md §4).
class BusDevice {
public:
    virtual ~BusDevice() = default;
    virtual void read(IoAccess const& access, std::span<std::byte> data) noexcept = 0;
    virtual void write(IoAccess const& access, std::span<std::byte const> data) noexcept = 0;
};

}  // namespace kvmlet
