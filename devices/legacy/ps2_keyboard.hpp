#pragma once
// A PS/2 keyboard behind the i8042: it answers the commands a driver sends it (Linux's atkbd:
// reset, identify, LEDs, typematic rate, scanning off and on) and holds the bytes it has to send
// in a buffer of its own until the controller takes them. It speaks scan code set 2 only (the
// controller translates to set 1 when its configuration asks). Keys are pressed by the host,
// never by a person: only Ctrl-Alt-Del, for Firecracker's SendCtrlAltDel.
// Commands and replies: IBM PS/2 Hardware Interface Technical Reference, "Keyboard and Auxiliary
// Device Controller" / "Keyboard", as summarised in the OSDev "PS/2 Keyboard" page.
//
// Not thread-safe: the I8042 that owns it serialises every call under its lock.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "vmm/base/state_stream.hpp"

namespace kvmlet {

class Ps2Keyboard {
public:
    // Bytes the keyboard holds for the controller (a real one holds 16 key events).
    static constexpr std::size_t buffer_size = 16;

    // A byte from the controller: a command, or the parameter of the last one.
    void receive(std::uint8_t byte) noexcept;
    // The next byte for the controller, if any.
    std::optional<std::uint8_t> send() noexcept;
    bool has_output() const noexcept { return count_ != 0; }
    bool scanning() const noexcept { return scanning_; }

    // Queues Ctrl, Alt and Delete pressed, then released in reverse order, in scan code set 2.
    // False, and nothing queued, while scanning is off (the driver has not enabled the keyboard)
    // or the buffer lacks room (the guest does not read its keyboard).
    bool press_ctrl_alt_del() noexcept;

    // Snapshot state, saved and loaded within the I8042's section.
    void save(StateWriter& out) const;
    void load(StateReader& in);

private:
    void reply(std::span<std::uint8_t const> bytes) noexcept;
    bool push(std::span<std::uint8_t const> bytes) noexcept;
    void execute(std::uint8_t command) noexcept;

    std::array<std::uint8_t, buffer_size> buffer_{};
    std::size_t head_ = 0;
    std::size_t count_ = 0;
    std::optional<std::uint8_t> awaiting_parameter_;  // the command whose parameter comes next
    bool scanning_ = true;                            // as after power-on
};

}  // namespace kvmlet
