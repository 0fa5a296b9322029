#include "devices/legacy/i8042.hpp"

#include <array>
#include <chrono>
#include <utility>

#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

// Status register (IBM PC/AT Technical Reference, "Keyboard Controller: Status Register").
// The input buffer is consumed at once, so "input buffer full" (bit 1) always reads clear,
// which is what Linux's kb_wait() polls for before writing a command.
constexpr std::uint8_t status_output_full = 0x01;
constexpr std::uint8_t status_system_flag = 0x04;
constexpr std::uint8_t status_last_was_command = 0x08;
constexpr std::uint8_t status_not_inhibited = 0x10;

// Controller configuration byte ("command byte"), read by 0x20 and written by 0x60.
constexpr std::uint8_t config_keyboard_interrupt = 0x01;
constexpr std::uint8_t config_system_flag = 0x04;
constexpr std::uint8_t config_keyboard_disabled = 0x10;
constexpr std::uint8_t config_aux_disabled = 0x20;
constexpr std::uint8_t config_translate = 0x40;
constexpr std::uint8_t default_config = config_keyboard_interrupt | config_system_flag | config_translate;

// Output port: bit 0 drives the CPU reset line (active low), bit 1 the A20 gate.
constexpr std::uint8_t output_port_not_reset = 0x01;
constexpr std::uint8_t output_port_a20 = 0x02;
constexpr std::uint8_t default_output_port = output_port_not_reset | output_port_a20;

// Controller commands written to the command port.
constexpr std::uint8_t cmd_read_config = 0x20;
constexpr std::uint8_t cmd_write_config = 0x60;
constexpr std::uint8_t cmd_disable_aux = 0xa7;
constexpr std::uint8_t cmd_enable_aux = 0xa8;
constexpr std::uint8_t cmd_self_test = 0xaa;
constexpr std::uint8_t cmd_keyboard_test = 0xab;
constexpr std::uint8_t cmd_disable_keyboard = 0xad;
constexpr std::uint8_t cmd_enable_keyboard = 0xae;
constexpr std::uint8_t cmd_read_output_port = 0xd0;
constexpr std::uint8_t cmd_write_output_port = 0xd1;
// Take a data byte for the loopback of the keyboard's or the auxiliary port's output buffer, or
// for the auxiliary device: dropped here (no mouse; Linux's AUX and MUX probes then find none).
constexpr std::uint8_t cmd_write_keyboard_output = 0xd2;
constexpr std::uint8_t cmd_write_aux_output = 0xd3;
constexpr std::uint8_t cmd_write_aux_device = 0xd4;
// 0xf0-0xff pulse the output-port lines whose bits are clear in the low nibble; 0xfe pulses reset.
constexpr std::uint8_t cmd_pulse_mask = 0xf0;
constexpr std::uint8_t cmd_pulse_reset_line = 0x01;

constexpr std::uint8_t self_test_passed = 0x55;
constexpr std::uint8_t interface_test_passed = 0x00;
constexpr std::uint8_t all_ones = 0xff;

// The controller's translation of scan code set 2 to set 1 (configuration bit 6), for the codes
// this keyboard sends (ps2_keyboard.cpp); bytes from 0x80 up (replies, prefixes) pass unchanged
// but for set 2's F7, 0x83, which also ends the keyboard's ID. A set 2 break prefix (0xf0) is
// swallowed and sets bit 7 of the next code, set 1's break.
constexpr std::uint8_t set2_break = 0xf0;
constexpr std::uint8_t set1_break = 0x80;
struct Translation {
    std::uint8_t set2;
    std::uint8_t set1;
};
constexpr std::array<Translation, 4> set2_to_set1{{
    {0x14, 0x1d},  // left Ctrl
    {0x11, 0x38},  // left Alt
    {0x71, 0x53},  // Delete (after 0xe0), keypad '.'
    {0x83, 0x41},  // F7
}};

std::uint8_t translate(std::uint8_t set2) noexcept {
    for (auto const& t : set2_to_set1)
        if (t.set2 == set2) return t.set1;
    return set2;
}

std::uint8_t set_bit(std::uint8_t value, std::uint8_t bit, bool on) noexcept {
    return static_cast<std::uint8_t>(on ? (value | bit) : (value & ~bit));
}

void note_ignored(char const* what, IoAccess const& access, std::size_t size) noexcept {
    static log::RateLimit limit(10, std::chrono::seconds(1));
    if (log::enabled(log::Level::debug) && limit.allow())
        log::debug("i8042: ignored {}-byte {} at {:#x}", size, what, access.address);
}

}  // namespace

I8042::I8042(IrqLine& keyboard_irq, ResetCallback on_reset)
    : keyboard_irq_(keyboard_irq),
      on_reset_(std::move(on_reset)),
      config_(default_config),
      output_port_(default_output_port) {}

void I8042::read(IoAccess const& access, std::span<std::byte> data) noexcept {
    bool known = access.address == data_port || access.address == command_port;
    if (data.size() != 1 || !known) {
        for (auto& b : data) b = std::byte{all_ones};
        note_ignored("read", access, data.size());
        return;
    }
    std::unique_lock lock(mutex_);
    if (access.address == command_port) {
        data[0] = std::byte{status()};
        return;
    }
    // The key came first, if both are there; a stale byte when the buffer is empty, as on hardware.
    std::optional<std::uint8_t>& source = key_output_ ? key_output_ : reply_output_;
    if (source) last_output_ = *std::exchange(source, std::nullopt);
    data[0] = std::byte{last_output_};
    bool const interrupt = take_keyboard_byte();
    lock.unlock();
    if (interrupt) keyboard_irq_.trigger();
}

void I8042::write(IoAccess const& access, std::span<std::byte const> data) noexcept {
    bool known = access.address == data_port || access.address == command_port;
    if (data.size() != 1 || !known) {
        note_ignored("write", access, data.size());
        return;
    }
    auto value = std::to_integer<std::uint8_t>(data[0]);
    std::unique_lock lock(mutex_);
    bool const interrupt_was_due = keyboard_interrupt_due();
    last_write_was_command_ = access.address == command_port;
    bool reset = last_write_was_command_ ? write_command(value) : write_data(value);
    // The keyboard may have replied, or a command enabled the keyboard or its interrupt.
    bool const interrupt = take_keyboard_byte() || (!interrupt_was_due && keyboard_interrupt_due());
    lock.unlock();
    if (interrupt) keyboard_irq_.trigger();
    if (reset && on_reset_) on_reset_();
}

bool I8042::press_ctrl_alt_del() noexcept {
    std::unique_lock lock(mutex_);
    if (!keyboard_.press_ctrl_alt_del()) return false;
    bool const interrupt = take_keyboard_byte();
    lock.unlock();
    if (interrupt) keyboard_irq_.trigger();
    return true;
}

bool I8042::take_keyboard_byte() noexcept {
    if (key_output_ || reply_output_ || (config_ & config_keyboard_disabled)) return false;
    while (auto byte = keyboard_.send()) {
        if (!(config_ & config_translate)) {
            key_output_ = *byte;
            break;
        }
        if (*byte == set2_break) {
            translate_break_ = true;
            continue;
        }
        key_output_ = static_cast<std::uint8_t>(translate(*byte) | (translate_break_ ? set1_break : 0));
        translate_break_ = false;
        break;
    }
    return key_output_ && (config_ & config_keyboard_interrupt);
}

// A key already waiting when the guest turns the keyboard interrupt on is announced then.
bool I8042::keyboard_interrupt_due() const noexcept {
    return key_output_ && (config_ & config_keyboard_interrupt) && !(config_ & config_keyboard_disabled);
}

std::uint8_t I8042::status() const noexcept {
    std::uint8_t value = status_not_inhibited;
    if (key_output_ || reply_output_) value |= status_output_full;
    if (config_ & config_system_flag) value |= status_system_flag;
    if (last_write_was_command_) value |= status_last_was_command;
    return value;
}

bool I8042::write_command(std::uint8_t value) noexcept {
    pending_ = Pending::none;  // a new command abandons one still waiting for its data byte
    switch (value) {
        case cmd_read_config:
            reply(config_);
            break;
        case cmd_write_config:
            pending_ = Pending::config_byte;
            break;
        case cmd_disable_aux:
            config_ = set_bit(config_, config_aux_disabled, true);
            break;
        case cmd_enable_aux:
            config_ = set_bit(config_, config_aux_disabled, false);
            break;
        case cmd_self_test:
            reply(self_test_passed);
            break;
        case cmd_keyboard_test:
            reply(interface_test_passed);
            break;
        case cmd_disable_keyboard:
            config_ = set_bit(config_, config_keyboard_disabled, true);
            break;
        case cmd_enable_keyboard:
            config_ = set_bit(config_, config_keyboard_disabled, false);
            break;
        case cmd_read_output_port:
            reply(output_port_);
            break;
        case cmd_write_output_port:
            pending_ = Pending::output_port;
            break;
        case cmd_write_keyboard_output:
        case cmd_write_aux_output:
        case cmd_write_aux_device:
            pending_ = Pending::discarded_byte;
            break;
        default:
            return (value & cmd_pulse_mask) == cmd_pulse_mask && (value & cmd_pulse_reset_line) == 0;
    }
    return false;
}

// A data byte completes a pending command; otherwise it is meant for the keyboard.
bool I8042::write_data(std::uint8_t value) noexcept {
    Pending pending = std::exchange(pending_, Pending::none);
    switch (pending) {
        case Pending::config_byte:
            config_ = value;
            return false;
        case Pending::output_port:
            output_port_ = value;
            return (value & output_port_not_reset) == 0;
        case Pending::discarded_byte:
            return false;
        case Pending::none:
            keyboard_.receive(value);
            return false;
    }
    return false;
}

// Replaces an unread earlier reply, but not a key.
void I8042::reply(std::uint8_t value) noexcept {
    reply_output_ = value;
}

void I8042::save(StateWriter& out) const {
    std::lock_guard lock(mutex_);
    out.put(config_);
    out.put(output_port_);
    out.put_optional(key_output_);
    out.put_optional(reply_output_);
    out.put(last_output_);
    out.put_bool(translate_break_);
    out.put_bool(last_write_was_command_);
    out.put(static_cast<std::uint8_t>(pending_));
    keyboard_.save(out);
}

void I8042::load(StateReader& in) {
    std::lock_guard lock(mutex_);
    config_ = in.get<std::uint8_t>();
    output_port_ = in.get<std::uint8_t>();
    key_output_ = in.get_optional<std::uint8_t>();
    reply_output_ = in.get_optional<std::uint8_t>();
    last_output_ = in.get<std::uint8_t>();
    translate_break_ = in.get_bool();
    last_write_was_command_ = in.get_bool();
    auto pending = in.get<std::uint8_t>();
    if (pending > static_cast<std::uint8_t>(Pending::discarded_byte))
        throw in.malformed("unknown pending command");
    pending_ = static_cast<Pending>(pending);
    keyboard_.load(in);
    in.finish();
}

}  // namespace kvmlet
