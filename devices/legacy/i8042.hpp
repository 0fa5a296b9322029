#pragma once
// The i8042 keyboard controller, with a PS/2 keyboard behind it: enough for Linux to probe both
// (i8042 and atkbd), to reset the machine through it (`reboot=k`) and to receive Ctrl-Alt-Del
// from the host (Firecracker's SendCtrlAltDel). Commands and bits: the IBM PC/AT Technical
// Reference, "Keyboard Controller", as summarised in the OSDev "8042 PS/2 Controller" page.
//
// There is no mouse: bytes for the auxiliary port are dropped. The keyboard (ps2_keyboard.hpp)
// speaks scan code set 2; with the configuration's translate bit set (the default, as a BIOS
// leaves it) the controller hands the guest set 1, as Linux's atkbd then expects. A keyboard byte
// in the output buffer raises IRQ 1 when the configuration's keyboard-interrupt bit is set; the
// controller's own replies raise none (Linux polls for them).
//
// Bus placement: insert the same object twice on the PIO bus, at data_port and at command_port,
// each with length 1; IoAccess::address tells the two apart. Port 0x61 (PC speaker / NMI status)
// lies between them and is not part of this device. Accesses wider than one byte are ignored.
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "devices/irq_line.hpp"
#include "devices/legacy/ps2_keyboard.hpp"
#include "vmm/bus/bus_device.hpp"

namespace kvmlet {

class I8042 final : public BusDevice, public Persistent {
public:
    static constexpr std::uint64_t data_port = 0x60;
    static constexpr std::uint64_t command_port = 0x64;  // reads: status; writes: command
    static constexpr std::uint64_t port_length = 1;      // of each of the two insertions

    // Called on the vCPU thread that pulsed the reset line, without the device's lock held. It must
    // not throw and must tolerate repeated calls: Linux pulses the line up to ten times.
    using ResetCallback = std::function<void()>;

    // keyboard_irq: IRQ 1, edge-triggered.
    I8042(IrqLine& keyboard_irq, ResetCallback on_reset);
    I8042(I8042 const&) = delete;
    I8042& operator=(I8042 const&) = delete;

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override;
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override;

    // From any thread: the keyboard sends Ctrl-Alt-Del (pressed, then released). False, and nothing
    // sent, while the guest keeps its keyboard from scanning or has not read earlier keys.
    bool press_ctrl_alt_del() noexcept;

    // Snapshot state: the controller's registers and output buffer, and its keyboard's.
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;

private:
    enum class Pending { none, config_byte, output_port, discarded_byte };

    std::uint8_t status() const noexcept;
    bool write_command(std::uint8_t value) noexcept;  // returns whether the reset line was pulsed
    bool write_data(std::uint8_t value) noexcept;     // same
    void reply(std::uint8_t value) noexcept;
    // Moves the keyboard's next byte into the empty output buffer (translated when asked), if the
    // keyboard interface is enabled; returns whether IRQ 1 is to be raised for it.
    bool take_keyboard_byte() noexcept;
    bool keyboard_interrupt_due() const noexcept;

    IrqLine& keyboard_irq_;
    ResetCallback on_reset_;
    mutable std::mutex mutex_;  // guards everything below
    std::uint8_t config_;
    std::uint8_t output_port_;
    // The output buffer holds a keyboard byte, a controller reply, or both (the key was there
    // first and is read first); one of each at most, so a guest that never reads bounds it.
    std::optional<std::uint8_t> key_output_;
    std::optional<std::uint8_t> reply_output_;
    std::uint8_t last_output_ = 0;  // what a read of an empty output buffer returns
    bool translate_break_ = false;  // translation saw set 2's break prefix (0xf0)
    bool last_write_was_command_ = false;
    Pending pending_ = Pending::none;
    Ps2Keyboard keyboard_;
};

}  // namespace kvmlet
