#include "devices/legacy/ps2_keyboard.hpp"

#include <array>

namespace kvmlet {
namespace {

// Keyboard commands (OSDev "PS/2 Keyboard", "Commands").
constexpr std::uint8_t cmd_set_leds = 0xed;       // + LED bits
constexpr std::uint8_t cmd_echo = 0xee;           // answered with 0xee, not an ACK
constexpr std::uint8_t cmd_scan_code_set = 0xf0;  // + 0 (get) or the set to use
constexpr std::uint8_t cmd_identify = 0xf2;       // ACK, then the two ID bytes
constexpr std::uint8_t cmd_set_typematic = 0xf3;  // + rate and delay
constexpr std::uint8_t cmd_enable_scanning = 0xf4;
constexpr std::uint8_t cmd_disable_scanning = 0xf5;  // also restores the defaults
constexpr std::uint8_t cmd_set_defaults = 0xf6;
constexpr std::uint8_t cmd_first_set3_command = 0xf7;  // 0xf7-0xfd: key types in set 3, acknowledged
constexpr std::uint8_t cmd_resend = 0xfe;
constexpr std::uint8_t cmd_reset = 0xff;  // ACK, then the self-test (BAT) result

constexpr std::uint8_t reply_ack = 0xfa;
constexpr std::uint8_t reply_resend = 0xfe;  // also "unknown command"
constexpr std::uint8_t reply_self_test_passed = 0xaa;
constexpr std::uint8_t reply_echo = 0xee;
constexpr std::uint8_t scan_code_set_2 = 0x02;
// An MF2 keyboard's ID, as Linux's atkbd expects it (0xab 0x83; the controller's translation
// turns the 0x83 into 0x41).
constexpr std::array<std::uint8_t, 3> identify_reply{reply_ack, 0xab, 0x83};

// Scan code set 2: make codes, a break is 0xf0 then the make code; extended keys start with 0xe0.
constexpr std::uint8_t set2_extended = 0xe0;
constexpr std::uint8_t set2_break = 0xf0;
constexpr std::uint8_t set2_left_ctrl = 0x14;
constexpr std::uint8_t set2_left_alt = 0x11;
constexpr std::uint8_t set2_delete = 0x71;  // after set2_extended (without it: keypad '.')
constexpr std::array<std::uint8_t, 11> ctrl_alt_del_sequence{
    set2_left_ctrl, set2_left_alt, set2_extended, set2_delete, set2_extended,  set2_break,
    set2_delete,    set2_break,    set2_left_alt, set2_break,  set2_left_ctrl,
};
static_assert(ctrl_alt_del_sequence.size() <= Ps2Keyboard::buffer_size);

bool takes_parameter(std::uint8_t command) noexcept {
    return command == cmd_set_leds || command == cmd_scan_code_set || command == cmd_set_typematic;
}

}  // namespace

void Ps2Keyboard::receive(std::uint8_t byte) noexcept {
    if (awaiting_parameter_) {
        std::uint8_t const command = *awaiting_parameter_;
        awaiting_parameter_.reset();
        // Only set 2 is spoken; a request for another is acknowledged and ignored, as Linux's
        // atkbd does not check. "Get" (0) answers with the set.
        if (command == cmd_scan_code_set && byte == 0) {
            reply(std::array{reply_ack, scan_code_set_2});
            return;
        }
        reply(std::array{reply_ack});
        return;
    }
    execute(byte);
}

void Ps2Keyboard::execute(std::uint8_t command) noexcept {
    if (takes_parameter(command)) {
        awaiting_parameter_ = command;
        reply(std::array{reply_ack});
        return;
    }
    switch (command) {
        case cmd_echo:
            reply(std::array{reply_echo});
            return;
        case cmd_identify:
            reply(identify_reply);
            return;
        case cmd_enable_scanning:
            scanning_ = true;
            reply(std::array{reply_ack});
            return;
        case cmd_disable_scanning:
            scanning_ = false;
            reply(std::array{reply_ack});
            return;
        case cmd_reset:
            scanning_ = true;
            reply(std::array{reply_ack, reply_self_test_passed});
            return;
        default:
            break;
    }
    bool const acknowledged = command == cmd_set_defaults || command == cmd_resend ||
                              (command >= cmd_first_set3_command && command < cmd_resend);
    reply(std::array{acknowledged ? reply_ack : reply_resend});
}

// A command's reply replaces whatever the keyboard still held (it clears its buffer on a command).
void Ps2Keyboard::reply(std::span<std::uint8_t const> bytes) noexcept {
    head_ = 0;
    count_ = 0;
    push(bytes);
}

bool Ps2Keyboard::push(std::span<std::uint8_t const> bytes) noexcept {
    if (bytes.size() > buffer_size - count_) return false;
    for (std::uint8_t byte : bytes) buffer_[(head_ + count_++) % buffer_size] = byte;
    return true;
}

std::optional<std::uint8_t> Ps2Keyboard::send() noexcept {
    if (count_ == 0) return std::nullopt;
    std::uint8_t const byte = buffer_[head_];
    head_ = (head_ + 1) % buffer_size;
    --count_;
    return byte;
}

bool Ps2Keyboard::press_ctrl_alt_del() noexcept {
    if (!scanning_) return false;
    return push(ctrl_alt_del_sequence);
}

void Ps2Keyboard::save(StateWriter& out) const {
    out.put(buffer_);
    out.put(static_cast<std::uint32_t>(head_));
    out.put(static_cast<std::uint32_t>(count_));
    out.put_optional(awaiting_parameter_);
    out.put_bool(scanning_);
}

void Ps2Keyboard::load(StateReader& in) {
    buffer_ = in.get<std::array<std::uint8_t, buffer_size>>();
    auto head = in.get<std::uint32_t>();
    auto count = in.get<std::uint32_t>();
    if (head >= buffer_size || count > buffer_size) throw in.malformed("keyboard buffer index out of range");
    head_ = head;
    count_ = count;
    awaiting_parameter_ = in.get_optional<std::uint8_t>();
    scanning_ = in.get_bool();
}

}  // namespace kvmlet
