#include "devices/legacy/i8042.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace kvmlet {
namespace {

constexpr std::uint64_t data_port = 0x60;
constexpr std::uint64_t command_port = 0x64;
constexpr std::uint8_t status_obf = 0x01;

struct CountingIrq final : IrqLine {
    int triggered = 0;
    void trigger() noexcept override { ++triggered; }
};

struct Controller {
    int resets = 0;
    CountingIrq irq;
    I8042 device{irq, [this] { ++resets; }};

    std::uint8_t in(std::uint64_t port) {
        std::byte b{0xaa};
        device.read(IoAccess{port, 0}, std::span(&b, 1));
        return std::to_integer<std::uint8_t>(b);
    }
    void out(std::uint64_t port, std::uint8_t value) {
        std::byte b{value};
        device.write(IoAccess{port, 0}, std::span<std::byte const>(&b, 1));
    }
    std::uint8_t command_reply(std::uint8_t command) {
        out(command_port, command);
        REQUIRE((in(command_port)&status_obf) == status_obf);
        std::uint8_t reply = in(data_port);
        CHECK((in(command_port)&status_obf) == 0);
        return reply;
    }
};

}  // namespace

TEST_CASE("A fresh i8042 has no output pending and an empty input buffer") {
    Controller c;
    std::uint8_t status = c.in(command_port);
    CHECK((status & 0x01) == 0);     // OBF
    CHECK((status & 0x02) == 0);     // IBF: Linux's kb_wait() spins while it is set
    CHECK((status & 0x04) == 0x04);  // system flag, from the default configuration byte
    CHECK(c.resets == 0);
}

TEST_CASE("Command 0xFE pulses the reset line and calls the reset callback each time") {
    Controller c;
    c.out(command_port, 0xfe);
    CHECK(c.resets == 1);
    c.out(command_port, 0xfe);
    CHECK(c.resets == 2);
}

TEST_CASE("Pulse commands that leave bit 0 set do not reset") {
    Controller c;
    c.out(command_port, 0xff);
    c.out(command_port, 0xfd);
    CHECK(c.resets == 0);
    c.out(command_port, 0xf0);  // pulses all four lines, reset among them
    CHECK(c.resets == 1);
}

TEST_CASE("Writing the output port resets only when bit 0 is clear") {
    Controller c;
    c.out(command_port, 0xd1);
    c.out(data_port, 0x03);
    CHECK(c.resets == 0);
    CHECK(c.command_reply(0xd0) == 0x03);
    c.out(command_port, 0xd1);
    c.out(data_port, 0x02);
    CHECK(c.resets == 1);
}

TEST_CASE("Controller self-test replies 0x55 and the interface test 0x00 through the data port") {
    Controller c;
    CHECK(c.command_reply(0xaa) == 0x55);
    CHECK(c.command_reply(0xab) == 0x00);
}

TEST_CASE("The configuration byte is read with 0x20 and written with 0x60 and a data byte") {
    Controller c;
    CHECK(c.command_reply(0x20) == 0x45);
    c.out(command_port, 0x60);
    CHECK((c.in(command_port)&0x08) == 0x08);  // the last write went to the command port
    c.out(data_port, 0x31);
    CHECK((c.in(command_port)&0x08) == 0);
    CHECK(c.command_reply(0x20) == 0x31);
    CHECK((c.in(command_port)&0x04) == 0);  // system flag follows configuration bit 2
}

TEST_CASE("Port disable and enable commands set and clear the configuration's disable bits") {
    Controller c;
    c.out(command_port, 0xad);
    c.out(command_port, 0xa7);
    CHECK(c.command_reply(0x20) == (0x45 | 0x10 | 0x20));
    c.out(command_port, 0xae);
    CHECK(c.command_reply(0x20) == (0x45 | 0x20));
    c.out(command_port, 0xa8);
    CHECK(c.command_reply(0x20) == 0x45);
}

TEST_CASE("Unknown commands are ignored and a pending data byte is abandoned by a new command") {
    Controller c;
    c.out(command_port, 0x12);
    CHECK((c.in(command_port)&status_obf) == 0);
    CHECK(c.command_reply(0x20) == 0x45);
    c.out(command_port, 0x60);
    c.out(command_port, 0x12);  // a new command abandons the pending configuration write
    c.out(data_port, 0x00);     // so this byte goes to the keyboard, which knows no command 0
    CHECK(c.in(data_port) == 0xfe);
    CHECK(c.command_reply(0x20) == 0x45);
    CHECK(c.resets == 0);
}

TEST_CASE("Wide accesses and addresses outside the two ports are ignored") {
    Controller c;
    std::array<std::byte, 2> wide{std::byte{0xfe}, std::byte{0}};
    c.device.write(IoAccess{command_port, 0}, std::span<std::byte const>(wide));
    CHECK(c.resets == 0);
    c.device.read(IoAccess{command_port, 0}, wide);
    CHECK(wide == std::array<std::byte, 2>{std::byte{0xff}, std::byte{0xff}});
    c.out(0x61, 0xfe);
    CHECK(c.resets == 0);
    CHECK(c.in(0x61) == 0xff);
}

TEST_CASE("An i8042 without a reset callback survives a reset command") {
    CountingIrq irq;
    I8042 device{irq, nullptr};
    std::byte b{0xfe};
    device.write(IoAccess{command_port, 0}, std::span<std::byte const>(&b, 1));
    SUCCEED();
}

}  // namespace kvmlet

namespace kvmlet {
namespace {

constexpr std::uint8_t config_keyboard_interrupt = 0x01;
constexpr std::uint8_t config_translate = 0x40;

// Reads every byte the output buffer holds, as Linux's interrupt handler does one per IRQ.
std::vector<std::uint8_t> drain(Controller& c) {
    std::vector<std::uint8_t> bytes;
    for (int i = 0; i < 64 && (c.in(command_port)&status_obf); ++i) bytes.push_back(c.in(data_port));
    return bytes;
}

void write_config(Controller& c, std::uint8_t config) {
    c.out(command_port, 0x60);
    c.out(data_port, config);
}

using Bytes = std::vector<std::uint8_t>;

}  // namespace

TEST_CASE("The keyboard acknowledges a reset and reports its self-test passed, with an interrupt each") {
    Controller c;
    c.out(data_port, 0xff);
    CHECK(c.irq.triggered == 1);  // the ACK is in the output buffer
    CHECK(c.in(data_port) == 0xfa);
    CHECK(c.irq.triggered == 2);  // the next byte moved in
    CHECK(c.in(data_port) == 0xaa);
    CHECK((c.in(command_port)&status_obf) == 0);
    CHECK(c.irq.triggered == 2);
}

TEST_CASE("The keyboard identifies as an MF2 keyboard, its ID translated to set 1 as on a PC") {
    Controller c;
    c.out(data_port, 0xf2);
    CHECK(drain(c) == Bytes{0xfa, 0xab, 0x41});
    write_config(c, 0x45 & ~config_translate);
    c.out(data_port, 0xf2);
    CHECK(drain(c) == Bytes{0xfa, 0xab, 0x83});
}

TEST_CASE("Keyboard commands with a parameter are acknowledged twice, and echo and unknown commands answer") {
    Controller c;
    c.out(data_port, 0xed);  // LEDs
    CHECK(drain(c) == Bytes{0xfa});
    c.out(data_port, 0x07);
    CHECK(drain(c) == Bytes{0xfa});
    c.out(data_port, 0xf0);  // scan code set: get
    CHECK(drain(c) == Bytes{0xfa});
    c.out(data_port, 0x00);
    CHECK(drain(c) == Bytes{0xfa, 0x02});
    c.out(data_port, 0xee);
    CHECK(drain(c) == Bytes{0xee});
    c.out(data_port, 0x42);
    CHECK(drain(c) == Bytes{0xfe});
}

TEST_CASE(
    "Ctrl-Alt-Del arrives in scan code set 1 through the translating controller, pressed then released") {
    Controller c;
    CHECK(c.device.press_ctrl_alt_del());
    CHECK(drain(c) == Bytes{0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d});
    CHECK(c.irq.triggered == 8);  // one per byte, as Linux reads one byte per interrupt
}

TEST_CASE("Ctrl-Alt-Del arrives in scan code set 2 when the guest turns translation off") {
    Controller c;
    write_config(c, 0x45 & ~config_translate);
    CHECK(c.device.press_ctrl_alt_del());
    CHECK(drain(c) == Bytes{0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14});
}

TEST_CASE("Keys wait while the keyboard interface is disabled and raise no interrupt while it is masked") {
    Controller c;
    write_config(c, 0x45 & ~config_keyboard_interrupt);
    c.out(command_port, 0xad);  // disable the keyboard interface
    CHECK(c.device.press_ctrl_alt_del());
    CHECK((c.in(command_port)&status_obf) == 0);
    c.out(command_port, 0xae);
    CHECK((c.in(command_port)&status_obf) == status_obf);
    CHECK(c.irq.triggered == 0);
    write_config(c, 0x45);  // the interrupt enabled with a key waiting: announced once
    CHECK(c.irq.triggered == 1);
    c.out(command_port, 0x20);
    CHECK(drain(c) == Bytes{0x1d, 0x45, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d});  // the key came first
}

TEST_CASE("Ctrl-Alt-Del is refused while scanning is off or the guest has not read earlier keys") {
    Controller c;
    c.out(data_port, 0xf5);  // disable scanning
    CHECK(drain(c) == Bytes{0xfa});
    CHECK_FALSE(c.device.press_ctrl_alt_del());
    c.out(data_port, 0xf4);
    CHECK(drain(c) == Bytes{0xfa});
    CHECK(c.device.press_ctrl_alt_del());        // 11 bytes, 1 of them in the output buffer
    CHECK_FALSE(c.device.press_ctrl_alt_del());  // 10 + 11 > 16: refused whole
    CHECK(drain(c).size() == 8);
    CHECK(c.device.press_ctrl_alt_del());
}

TEST_CASE(
    "Bytes for the auxiliary port and the output-buffer loopbacks are dropped, not sent to the keyboard") {
    Controller c;
    for (int command : {0xd2, 0xd3, 0xd4}) {
        c.out(command_port, static_cast<std::uint8_t>(command));
        c.out(data_port, 0xff);
        CHECK((c.in(command_port)&status_obf) == 0);
    }
    CHECK(c.irq.triggered == 0);
}

TEST_CASE("A guest that never reads holds at most one key and one reply in the output buffer") {
    Controller c;
    CHECK(c.device.press_ctrl_alt_del());
    for (int i = 0; i < 100; ++i) c.out(command_port, 0x20);
    CHECK(drain(c) == Bytes{0x1d, 0x45, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d});
}

}  // namespace kvmlet

namespace kvmlet {

TEST_CASE("An i8042 saved halfway through Ctrl-Alt-Del goes on in a new one with the keys not yet read") {
    Controller a;
    write_config(a, 0x45 & ~config_translate);
    REQUIRE(a.device.press_ctrl_alt_del());
    CHECK(a.in(data_port) == 0x14);  // the first key read; the rest still in the keyboard's buffer
    StateWriter out;
    a.device.save(out);

    Controller b;
    StateReader in(out.bytes(), "dev.i8042");
    b.device.load(in);
    CHECK(drain(b) == Bytes{0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14});
    CHECK(b.command_reply(0x20) == (0x45 & ~config_translate));
}

TEST_CASE(
    "An i8042 state with an unknown pending command or a keyboard buffer index out of range is refused") {
    Controller a;
    StateWriter out;
    a.device.save(out);
    auto bytes = out.take();
    // config, output port, 2 x opt<u8> (2 bytes each), last output, 2 flags: the pending command.
    std::size_t const pending = 2 + 4 + 1 + 2;
    auto bad = bytes;
    bad[pending] = std::byte{9};
    Controller b;
    StateReader bad_in(bad, "dev.i8042");
    CHECK_THROWS_WITH(b.device.load(bad_in), Catch::Contains("unknown pending command"));
    bad = bytes;
    bad[pending + 1 + 16 + 4] = std::byte{17};  // the keyboard's count, after its buffer and head
    StateReader count_in(bad, "dev.i8042");
    CHECK_THROWS_WITH(b.device.load(count_in), Catch::Contains("keyboard buffer index out of range"));
}

}  // namespace kvmlet
