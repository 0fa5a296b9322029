#include "devices/legacy/i8042.hpp"

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
// 0xf0-0xff pulse the output-port lines whose bits are clear in the low nibble; 0xfe pulses reset.
constexpr std::uint8_t cmd_pulse_mask = 0xf0;
constexpr std::uint8_t cmd_pulse_reset_line = 0x01;

constexpr std::uint8_t self_test_passed = 0x55;
constexpr std::uint8_t interface_test_passed = 0x00;
constexpr std::uint8_t all_ones = 0xff;

std::uint8_t set_bit(std::uint8_t value, std::uint8_t bit, bool on) noexcept {
    return static_cast<std::uint8_t>(on ? (value | bit) : (value & ~bit));
}

void note_ignored(char const* what, IoAccess const& access, std::size_t size) noexcept {
    static log::RateLimit limit(10, std::chrono::seconds(1));
    if (log::enabled(log::Level::debug) && limit.allow())
        log::debug("i8042: ignored {}-byte {} at {:#x}", size, what, access.address);
}

}  // namespace

I8042::I8042(ResetCallback on_reset)
    : on_reset_(std::move(on_reset)), config_(default_config), output_port_(default_output_port) {}

void I8042::read(IoAccess const& access, std::span<std::byte> data) noexcept {
    bool known = access.address == data_port || access.address == command_port;
    if (data.size() != 1 || !known) {
        for (auto& b : data) b = std::byte{all_ones};
        note_ignored("read", access, data.size());
        return;
    }
    std::lock_guard lock(mutex_);
    if (access.address == command_port) {
        data[0] = std::byte{status()};
        return;
    }
    data[0] = std::byte{output_buffer_};  // a stale byte when the buffer is empty, as on hardware
    output_full_ = false;
}

void I8042::write(IoAccess const& access, std::span<std::byte const> data) noexcept {
    bool known = access.address == data_port || access.address == command_port;
    if (data.size() != 1 || !known) {
        note_ignored("write", access, data.size());
        return;
    }
    auto value = std::to_integer<std::uint8_t>(data[0]);
    std::unique_lock lock(mutex_);
    last_write_was_command_ = access.address == command_port;
    bool reset = last_write_was_command_ ? write_command(value) : write_data(value);
    lock.unlock();
    if (reset && on_reset_) on_reset_();
}

std::uint8_t I8042::status() const noexcept {
    std::uint8_t value = status_not_inhibited;
    if (output_full_) value |= status_output_full;
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
        default:
            return (value & cmd_pulse_mask) == cmd_pulse_mask && (value & cmd_pulse_reset_line) == 0;
    }
    return false;
}

// A data byte completes a pending command; otherwise it is meant for the keyboard, which is absent.
bool I8042::write_data(std::uint8_t value) noexcept {
    Pending pending = std::exchange(pending_, Pending::none);
    switch (pending) {
        case Pending::config_byte:
            config_ = value;
            return false;
        case Pending::output_port:
            output_port_ = value;
            return (value & output_port_not_reset) == 0;
        case Pending::none:
            return false;
    }
    return false;
}

void I8042::reply(std::uint8_t value) noexcept {
    output_buffer_ = value;
    output_full_ = true;
}

}  // namespace kvmlet
