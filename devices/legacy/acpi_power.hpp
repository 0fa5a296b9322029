#pragma once
// The registers of a hardware-reduced ACPI machine that turn it off and reset it (ACPI 6.5
// §4.8.3.7 "Sleep Control and Status Registers", §4.8.3.6 "Reset Register"), each one byte in
// I/O space at the ports the FADT names:
//
// - sleep control: a write with SLP_EN (bit 5) set and SLP_TYP (bits 4:2) equal to the \_S5
//   package's type powers the machine off. Other sleep types (S1..S4) are not supported: ignored,
//   with one log line. Reads return 0.
// - sleep status: reads 0 (WAK_STS never set: the machine never wakes from a sleep state); writes
//   (an OS clears WAK_STS before it sleeps) are ignored.
// - reset: writing the FADT's RESET_VALUE resets the machine; other values are ignored.
//
// Accesses wider than one byte are ignored (reads return zeros). Bus placement: insert the same
// object three times on the PIO bus, at each of the ports with length 1 (port_length);
// IoAccess::address tells them apart.
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>

#include "vmm/bus/bus_device.hpp"

namespace kvmlet {

class AcpiPower final : public BusDevice {
public:
    static constexpr std::uint64_t port_length = 1;

    struct Ports {
        std::uint16_t sleep_control;
        std::uint16_t sleep_status;
        std::uint16_t reset;
    };
    struct Values {
        std::uint8_t s5_sleep_type;  // SLP_TYP of \_S5 in the DSDT
        std::uint8_t reset_value;    // the FADT's RESET_VALUE
    };
    // Called on the vCPU thread that wrote the register. They must not throw, and must tolerate
    // being called again (several vCPUs, or a guest that retries).
    struct Callbacks {
        std::function<void()> power_off;
        std::function<void()> reset;
    };

    AcpiPower(Ports ports, Values values, Callbacks callbacks);
    AcpiPower(AcpiPower const&) = delete;
    AcpiPower& operator=(AcpiPower const&) = delete;

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override;
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override;

private:
    void write_sleep_control(std::uint8_t value) noexcept;

    Ports ports_;
    Values values_;
    Callbacks callbacks_;
    std::atomic_flag unsupported_sleep_logged_;
};

}  // namespace kvmlet
