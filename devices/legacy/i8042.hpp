#pragma once
// Just enough of the i8042 keyboard controller for Linux to probe it without hanging and to reset
// the machine through it (`reboot=k`). Commands and bits: the IBM PC/AT Technical Reference,
// "Keyboard Controller", as summarised in the OSDev "8042 PS/2 Controller" page.
//
// There is no keyboard or mouse behind it: bytes written to the data port for a device are dropped
// and the controller raises no interrupt. Boot Linux with `i8042.noaux i8042.nomux i8042.nopnp
// i8042.dumbkbd` (as Firecracker does) so the driver does not wait for replies that never come.
//
// Bus placement: insert the same object twice on the PIO bus, at data_port and at command_port,
// each with length 1; IoAccess::address tells the two apart. Port 0x61 (PC speaker / NMI status)
// lies between them and is not part of this device. Accesses wider than one byte are ignored.
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "vmm/bus/bus_device.hpp"

namespace kvmlet {

class I8042 final : public BusDevice {
public:
    static constexpr std::uint64_t data_port = 0x60;
    static constexpr std::uint64_t command_port = 0x64;  // reads: status; writes: command
    static constexpr std::uint64_t port_length = 1;      // of each of the two insertions

    // Called on the vCPU thread that pulsed the reset line, without the device's lock held. It must
    // not throw and must tolerate repeated calls: Linux pulses the line up to ten times.
    using ResetCallback = std::function<void()>;

    explicit I8042(ResetCallback on_reset);
    I8042(I8042 const&) = delete;
    I8042& operator=(I8042 const&) = delete;

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override;
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override;

private:
    enum class Pending { none, config_byte, output_port };

    std::uint8_t status() const noexcept;
    bool write_command(std::uint8_t value) noexcept;  // returns whether the reset line was pulsed
    bool write_data(std::uint8_t value) noexcept;     // same
    void reply(std::uint8_t value) noexcept;

    ResetCallback on_reset_;
    mutable std::mutex mutex_;  // guards everything below
    std::uint8_t config_;
    std::uint8_t output_port_;
    std::uint8_t output_buffer_ = 0;
    bool output_full_ = false;
    bool last_write_was_command_ = false;
    Pending pending_ = Pending::none;
};

}  // namespace kvmlet
