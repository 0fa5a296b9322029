#include "devices/legacy/i8042.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>

namespace kvmlet {
namespace {

constexpr std::uint64_t data_port = 0x60;
constexpr std::uint64_t command_port = 0x64;
constexpr std::uint8_t status_obf = 0x01;

struct Controller {
    int resets = 0;
    I8042 device{[this] { ++resets; }};

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

TEST_CASE("Unknown commands and data bytes for the absent keyboard are ignored") {
    Controller c;
    c.out(command_port, 0x12);
    c.out(data_port, 0xff);  // keyboard reset, nobody listens
    CHECK((c.in(command_port)&status_obf) == 0);
    CHECK(c.command_reply(0x20) == 0x45);
    c.out(command_port, 0x60);
    c.out(command_port, 0x12);  // a new command abandons the pending configuration write
    c.out(data_port, 0x00);
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
    I8042 device{nullptr};
    std::byte b{0xfe};
    device.write(IoAccess{command_port, 0}, std::span<std::byte const>(&b, 1));
    SUCCEED();
}

}  // namespace kvmlet
