#include "firmware/acpi/aml.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "vmm/base/error.hpp"

namespace aml = kvmlet::firmware::acpi::aml;
using aml::Bytes;

namespace {

// A name's bytes, for building expected encodings.
Bytes chars(std::string const& text) {
    return Bytes(text.begin(), text.end());
}

Bytes cat(std::vector<Bytes> const& parts) {
    Bytes out;
    for (auto const& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

}  // namespace

TEST_CASE("PkgLength takes one byte while the whole package is at most 63 bytes", "[firmware][acpi]") {
    CHECK(aml::pkg_length(0) == Bytes{0x01});
    CHECK(aml::pkg_length(62) == Bytes{0x3f});
}

TEST_CASE("PkgLength takes two bytes from 64 to 4095 bytes, counting itself", "[firmware][acpi]") {
    CHECK(aml::pkg_length(63) == Bytes{0x41, 0x04});  // 63 + 2 = 65 = 0x041
    CHECK(aml::pkg_length(64) == Bytes{0x42, 0x04});
    CHECK(aml::pkg_length(4093) == Bytes{0x4f, 0xff});  // 4095
}

TEST_CASE("PkgLength takes three bytes from 4096 and four from 2^20", "[firmware][acpi]") {
    CHECK(aml::pkg_length(4094) == Bytes{0x81, 0x00, 0x01});             // 4097 = 0x1001
    CHECK(aml::pkg_length(0xffffc) == Bytes{0x8f, 0xff, 0xff});          // 2^20 - 1
    CHECK(aml::pkg_length(0xffffd) == Bytes{0xc1, 0x00, 0x00, 0x01});    // 2^20 + 1
    CHECK(aml::pkg_length(0xffffffb) == Bytes{0xcf, 0xff, 0xff, 0xff});  // 2^28 - 1
}

TEST_CASE("PkgLength refuses packages of 2^28 bytes or more", "[firmware][acpi]") {
    CHECK_THROWS_AS(aml::pkg_length(0xffffffc), kvmlet::Error);
}

TEST_CASE("integers use Zero, One, Ones or the shortest constant prefix", "[firmware][acpi]") {
    CHECK(aml::integer(0) == Bytes{0x00});
    CHECK(aml::integer(1) == Bytes{0x01});
    CHECK(aml::integer(std::numeric_limits<std::uint64_t>::max()) == Bytes{0xff});
    CHECK(aml::integer(2) == Bytes{0x0a, 0x02});
    CHECK(aml::integer(0xff) == Bytes{0x0a, 0xff});
    CHECK(aml::integer(0x100) == Bytes{0x0b, 0x00, 0x01});
    CHECK(aml::integer(0xffff) == Bytes{0x0b, 0xff, 0xff});
    CHECK(aml::integer(0x1'0000) == Bytes{0x0c, 0x00, 0x00, 0x01, 0x00});
    CHECK(aml::integer(0xffff'ffff) == Bytes{0x0c, 0xff, 0xff, 0xff, 0xff});
    CHECK(aml::integer(0x1'0000'0000) == Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0});
    CHECK(aml::integer(0xffff'ffff'ffff'fffe) == Bytes{0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
}

TEST_CASE("the explicit constant forms keep their width", "[firmware][acpi]") {
    CHECK(aml::zero() == Bytes{0x00});
    CHECK(aml::one() == Bytes{0x01});
    CHECK(aml::ones() == Bytes{0xff});
    CHECK(aml::byte_const(0) == Bytes{0x0a, 0x00});
    CHECK(aml::word_const(1) == Bytes{0x0b, 0x01, 0x00});
    CHECK(aml::dword_const(0x12345678) == Bytes{0x0c, 0x78, 0x56, 0x34, 0x12});
    CHECK(aml::qword_const(2) == Bytes{0x0e, 2, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("strings are NUL-terminated ASCII after the string prefix", "[firmware][acpi]") {
    CHECK(aml::string("LNRO0005") == cat({{0x0d}, chars("LNRO0005"), {0x00}}));
    CHECK(aml::string("") == Bytes{0x0d, 0x00});
    CHECK_THROWS_AS(aml::string(std::string("a\0b", 3)), kvmlet::Error);
    CHECK_THROWS_AS(aml::string("\xc3\xa9"), kvmlet::Error);
}

TEST_CASE("EISA IDs compress three letters and four hex digits into a DWord", "[firmware][acpi]") {
    CHECK(aml::eisa_id_value("PNP0A03") == 0x030a'd041);
    CHECK(aml::eisa_id_value("PNP0501") == 0x0105'd041);
    CHECK(aml::eisa_id_value("PNP0C02") == 0x020c'd041);
    CHECK(aml::eisa_id("PNP0A03") == Bytes{0x0c, 0x41, 0xd0, 0x0a, 0x03});
    CHECK_THROWS_AS(aml::eisa_id_value("PNP0A0"), kvmlet::Error);
    CHECK_THROWS_AS(aml::eisa_id_value("pnp0a03"), kvmlet::Error);
    CHECK_THROWS_AS(aml::eisa_id_value("PNP0G03"), kvmlet::Error);
    CHECK_THROWS_AS(aml::eisa_id_value("PN10A03"), kvmlet::Error);
}

TEST_CASE("a one-segment name is four characters, padded with underscores", "[firmware][acpi]") {
    CHECK(aml::name_string("_HID") == chars("_HID"));
    CHECK(aml::name_string("PCI") == chars("PCI_"));
    CHECK(aml::name_string("A") == chars("A___"));
}

TEST_CASE("root and parent prefixes come before the segments", "[firmware][acpi]") {
    CHECK(aml::name_string("\\_SB_") == chars("\\_SB_"));
    CHECK(aml::name_string("\\_S5_") == chars("\\_S5_"));
    CHECK(aml::name_string("^FOO") == chars("^FOO_"));
    CHECK(aml::name_string("^^X") == chars("^^X___"));
    CHECK(aml::name_string("\\") == Bytes{'\\', 0x00});  // the root itself: NullName
}

TEST_CASE("two segments take the dual prefix, more the multi prefix and a count", "[firmware][acpi]") {
    CHECK(aml::name_string("\\_SB_.PCI0") == cat({{'\\', 0x2e}, chars("_SB_PCI0")}));
    CHECK(aml::name_string("_SB.PCI0.COM1") == cat({{0x2f, 3}, chars("_SB_PCI0COM1")}));
    CHECK(aml::name_string("\\A.B.C.D") == cat({{'\\', 0x2f, 4}, chars("A___B___C___D___")}));
}

TEST_CASE("malformed names are rejected", "[firmware][acpi]") {
    for (char const* bad : {"", "1ABC", "ABCDE", "A.", ".A", "A..B", "abc", "A-B", "\\^A"}) {
        INFO(bad);
        CHECK_THROWS_AS(aml::name_string(bad), kvmlet::Error);
    }
}

TEST_CASE("Name, Package and Buffer encode their opcode, length and contents", "[firmware][acpi]") {
    CHECK(aml::name("_UID", aml::zero()) == cat({{0x08}, chars("_UID"), {0x00}}));
    CHECK(aml::package({aml::one(), aml::zero()}) == Bytes{0x12, 0x04, 0x02, 0x01, 0x00});
    CHECK(aml::package({}) == Bytes{0x12, 0x02, 0x00});
    Bytes const data{1, 2, 3};
    CHECK(aml::buffer(data) == Bytes{0x11, 0x06, 0x0a, 0x03, 1, 2, 3});
    CHECK_THROWS_AS(aml::package(std::vector<Bytes>(256, aml::zero())), kvmlet::Error);
}

TEST_CASE("Scope, Device and Method wrap their name and terms in a package length", "[firmware][acpi]") {
    CHECK(aml::scope("\\_SB_", {}) == cat({{0x10, 0x06}, chars("\\_SB_")}));
    CHECK(aml::device("COM1", {aml::name("_UID", aml::zero())}) ==
          cat({{0x5b, 0x82, 0x0b}, chars("COM1"), {0x08}, chars("_UID"), {0x00}}));
    CHECK(aml::method("_STA", 0, {aml::return_value(aml::integer(0x0f))}) ==
          cat({{0x14, 0x09}, chars("_STA"), {0x00, 0xa4, 0x0a, 0x0f}}));
    CHECK(aml::method("FOO", 2, {})[6] == 0x02);  // MethodFlags: ArgCount
    CHECK_THROWS_AS(aml::method("FOO", 8, {}), kvmlet::Error);
}

TEST_CASE("Notify names its object and the notification value", "[firmware][acpi]") {
    CHECK(aml::notify("PWRB", 0x80) == cat({{0x86}, chars("PWRB"), {0x0a, 0x80}}));
    CHECK(aml::notify("\\_SB_.PWRB", 0x02) == cat({{0x86, 0x5c, 0x2e}, chars("_SB_PWRB"), {0x0a, 0x02}}));
}

TEST_CASE("a device longer than 63 bytes gets a two-byte package length", "[firmware][acpi]") {
    Bytes const data(60, 0xaa);
    auto const dev = aml::device("DEV0", {aml::name("BUF0", aml::buffer(data))});
    // Buffer: opcode, PkgLength (63: one byte), ByteConst 60, 60 bytes = 64; Name: 1 + 4 + 64 = 69.
    // Device body: "DEV0" + Name = 73 bytes; with a two-byte PkgLength the package is 75 = 0x04b.
    REQUIRE(dev.size() == 2 + 2 + 73);
    CHECK(Bytes(dev.begin(), dev.begin() + 4) == Bytes{0x5b, 0x82, 0x4b, 0x04});
}
