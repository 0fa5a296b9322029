#include "devices/legacy/acpi_power.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>

namespace kvmlet {
namespace {

constexpr std::uint16_t sleep_control = 0x600;
constexpr std::uint16_t sleep_status = 0x601;
constexpr std::uint16_t reset_port = 0x602;
constexpr std::uint8_t s5 = 5;
constexpr std::uint8_t reset_value = 0x01;
constexpr std::uint8_t slp_en = 0x20;

std::uint8_t sleep_request(std::uint8_t type) {
    return static_cast<std::uint8_t>(slp_en | type << 2);
}

struct Rig {
    int power_offs = 0;
    int resets = 0;
    AcpiPower device{{sleep_control, sleep_status, reset_port},
                     {s5, reset_value},
                     {[this] { ++power_offs; }, [this] { ++resets; }}};

    void out(std::uint16_t port, std::uint8_t value) {
        std::byte b{value};
        device.write(IoAccess{port, 0}, std::span<std::byte const>(&b, 1));
    }
    std::uint8_t in(std::uint16_t port) {
        std::byte b{0xaa};
        device.read(IoAccess{port, 0}, std::span(&b, 1));
        return std::to_integer<std::uint8_t>(b);
    }
};

}  // namespace

TEST_CASE("writing SLP_EN with the S5 sleep type powers off", "[devices]") {
    Rig rig;
    rig.out(sleep_control, sleep_request(s5));
    CHECK(rig.power_offs == 1);
    CHECK(rig.resets == 0);
    rig.out(sleep_control, static_cast<std::uint8_t>(sleep_request(s5) | 0x80));  // other bits do not matter
    CHECK(rig.power_offs == 2);
}

TEST_CASE("the S5 sleep type without SLP_EN does nothing", "[devices]") {
    Rig rig;
    rig.out(sleep_control, static_cast<std::uint8_t>(s5 << 2));
    CHECK(rig.power_offs == 0);
}

TEST_CASE("other sleep types are ignored", "[devices]") {
    Rig rig;
    for (std::uint8_t type : std::initializer_list<std::uint8_t>{0, 1, 2, 3, 4, 6, 7})
        rig.out(sleep_control, sleep_request(type));
    CHECK(rig.power_offs == 0);
    CHECK(rig.resets == 0);
}

TEST_CASE("writing the reset value to the reset port resets, other values do not", "[devices]") {
    Rig rig;
    rig.out(reset_port, 0x02);
    rig.out(reset_port, 0x00);
    CHECK(rig.resets == 0);
    rig.out(reset_port, reset_value);
    CHECK(rig.resets == 1);
    CHECK(rig.power_offs == 0);
}

TEST_CASE("the reset value or a sleep request at the wrong port does nothing", "[devices]") {
    Rig rig;
    rig.out(sleep_control, reset_value);
    rig.out(reset_port, sleep_request(s5));
    rig.out(sleep_status, sleep_request(s5));
    rig.out(sleep_status, reset_value);
    CHECK(rig.resets == 0);
    CHECK(rig.power_offs == 0);
}

TEST_CASE("every register reads 0: sleep status never reports a wake", "[devices]") {
    Rig rig;
    rig.out(sleep_status, 0x80);  // the OS clears WAK_STS
    CHECK(rig.in(sleep_status) == 0);
    CHECK(rig.in(sleep_control) == 0);
    CHECK(rig.in(reset_port) == 0);
}

TEST_CASE("accesses wider than a byte are ignored", "[devices]") {
    Rig rig;
    std::array<std::byte, 2> const request{std::byte{sleep_request(s5)}, std::byte{0}};
    rig.device.write(IoAccess{sleep_control, 0}, request);
    std::array<std::byte, 4> const reset{std::byte{reset_value}, std::byte{0}, std::byte{0}, std::byte{0}};
    rig.device.write(IoAccess{reset_port, 0}, reset);
    CHECK(rig.power_offs == 0);
    CHECK(rig.resets == 0);
    std::array<std::byte, 2> wide{std::byte{0xaa}, std::byte{0xaa}};
    rig.device.read(IoAccess{sleep_status, 0}, wide);
    CHECK(wide == std::array<std::byte, 2>{});
}

TEST_CASE("missing callbacks are not called", "[devices]") {
    AcpiPower device{{sleep_control, sleep_status, reset_port}, {s5, reset_value}, {}};
    std::byte off{sleep_request(s5)};
    std::byte reset{reset_value};
    device.write(IoAccess{sleep_control, 0}, std::span<std::byte const>(&off, 1));
    device.write(IoAccess{reset_port, 0}, std::span<std::byte const>(&reset, 1));
    SUCCEED();
}

}  // namespace kvmlet
