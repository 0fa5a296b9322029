#include "vmm/bus/io_bus.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <vector>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {

// Remembers every access and answers reads with a fixed byte, so a test can tell which device
// (if any) claimed an access and what offset it saw.
struct RecordingDevice final : BusDevice {
    explicit RecordingDevice(std::uint8_t fill) : fill(fill) {}

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override {
        reads.push_back(access);
        for (auto& b : data) b = std::byte{fill};
    }
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override {
        writes.push_back(access);
        written.assign(data.begin(), data.end());
    }

    std::uint8_t fill;
    std::vector<IoAccess> reads;
    std::vector<IoAccess> writes;
    std::vector<std::byte> written;
};

std::shared_ptr<RecordingDevice> device(std::uint8_t fill = 0x5a) {
    return std::make_shared<RecordingDevice>(fill);
}

// A bus with one device on [0x100, 0x110).
struct OneDeviceBus {
    IoBus bus{"test"};
    std::shared_ptr<RecordingDevice> dev = device();
    OneDeviceBus() { bus.insert(dev, 0x100, 0x10); }
};

}  // namespace

TEST_CASE("a range overlapping one already on the bus is rejected") {
    OneDeviceBus b;                                               // [0x100, 0x10f]
    CHECK_THROWS_AS(b.bus.insert(device(), 0x100, 0x10), Error);  // exact
    CHECK_THROWS_AS(b.bus.insert(device(), 0xf8, 0x10), Error);   // over the start
    CHECK_THROWS_AS(b.bus.insert(device(), 0x108, 0x10), Error);  // over the end
    CHECK_THROWS_AS(b.bus.insert(device(), 0x104, 0x4), Error);   // contained
    CHECK_THROWS_AS(b.bus.insert(device(), 0x80, 0x100), Error);  // containing
    CHECK_THROWS_AS(b.bus.insert(device(), 0x10f, 1), Error);     // the last byte only
    CHECK_THROWS_AS(b.bus.insert(device(), 0xff, 2), Error);      // one byte before, one inside
}

TEST_CASE("a rejected range leaves the bus as it was") {
    OneDeviceBus b;
    CHECK_THROWS_AS(b.bus.insert(device(), 0x108, 0x10), Error);
    std::array<std::byte, 1> data{};
    CHECK_FALSE(b.bus.read(0x110, data));  // the rejected range's tail is still unclaimed
    CHECK(b.bus.read(0x10f, data));
    CHECK(b.dev->reads.size() == 1);
}

TEST_CASE("ranges adjacent on either side are accepted and each claims its own bytes") {
    OneDeviceBus b;
    auto below = device(0x11);
    auto above = device(0x22);
    REQUIRE_NOTHROW(b.bus.insert(below, 0xf0, 0x10));   // ends at 0xff
    REQUIRE_NOTHROW(b.bus.insert(above, 0x110, 0x10));  // starts at 0x110

    std::array<std::byte, 1> data{};
    REQUIRE(b.bus.read(0xff, data));
    CHECK(data[0] == std::byte{0x11});
    REQUIRE(b.bus.read(0x100, data));
    CHECK(data[0] == std::byte{0x5a});
    REQUIRE(b.bus.read(0x110, data));
    CHECK(data[0] == std::byte{0x22});
}

TEST_CASE("an empty range is rejected") {
    IoBus bus("test");
    CHECK_THROWS_AS(bus.insert(device(), 0x100, 0), Error);
}

TEST_CASE("a range that wraps past the top of the address space is rejected") {
    IoBus bus("test");
    CHECK_THROWS_AS(bus.insert(device(), UINT64_MAX, 2), Error);
    CHECK_THROWS_AS(bus.insert(device(), UINT64_MAX - 0xf, 0x11), Error);
    CHECK_THROWS_AS(bus.insert(device(), 2, UINT64_MAX), Error);
}

TEST_CASE("a range ending at the very last address is accepted and its last byte is reachable") {
    IoBus bus("test");
    auto dev = device();
    REQUIRE_NOTHROW(bus.insert(dev, UINT64_MAX - 0xf, 0x10));
    std::array<std::byte, 1> data{};
    CHECK(bus.read(UINT64_MAX, data));
    REQUIRE(dev->reads.size() == 1);
    CHECK(dev->reads[0].offset == 0xf);
    // Its last byte is taken: a one-byte range there overlaps.
    CHECK_THROWS_AS(bus.insert(device(), UINT64_MAX, 1), Error);
}

TEST_CASE("the device sees the absolute address and the offset relative to its range") {
    OneDeviceBus b;
    std::array<std::byte, 2> data{std::byte{1}, std::byte{2}};
    REQUIRE(b.bus.write(0x106, data));
    REQUIRE(b.dev->writes.size() == 1);
    CHECK(b.dev->writes[0].address == 0x106);
    CHECK(b.dev->writes[0].offset == 6);
    CHECK(b.dev->written == std::vector<std::byte>{std::byte{1}, std::byte{2}});

    REQUIRE(b.bus.read(0x100, data));
    REQUIRE(b.dev->reads.size() == 1);
    CHECK(b.dev->reads[0].address == 0x100);
    CHECK(b.dev->reads[0].offset == 0);
}

TEST_CASE("an access that ends on the last byte of a range is claimed") {
    OneDeviceBus b;
    std::array<std::byte, 4> four{};
    CHECK(b.bus.read(0x10c, four));
    std::array<std::byte, 1> one{};
    CHECK(b.bus.read(0x10f, one));
    REQUIRE(b.dev->reads.size() == 2);
    CHECK(b.dev->reads[0].offset == 0xc);
    CHECK(b.dev->reads[1].offset == 0xf);
    CHECK(b.bus.unclaimed_reads() == 0);
}

TEST_CASE("an access running past the end of a device is unclaimed") {
    OneDeviceBus b;
    std::array<std::byte, 4> data{};
    CHECK_FALSE(b.bus.read(0x10d, data));
    CHECK_FALSE(b.bus.write(0x10f, std::span<std::byte const>(data.data(), 2)));
    CHECK(b.dev->reads.empty());
    CHECK(b.dev->writes.empty());
}

TEST_CASE("an access spanning two adjacent devices is claimed by neither") {
    OneDeviceBus b;
    auto next = device(0x22);
    b.bus.insert(next, 0x110, 0x10);
    std::array<std::byte, 4> data{};
    CHECK_FALSE(b.bus.read(0x10e, data));
    CHECK_FALSE(b.bus.write(0x10e, data));
    CHECK(b.dev->reads.empty());
    CHECK(b.dev->writes.empty());
    CHECK(next->reads.empty());
    CHECK(next->writes.empty());
}

TEST_CASE("an unclaimed read returns all-ones and is counted") {
    OneDeviceBus b;
    std::array<std::byte, 8> data{};
    CHECK_FALSE(b.bus.read(0x200, data));
    for (auto byte : data) CHECK(byte == std::byte{0xff});
    CHECK_FALSE(b.bus.read(0x0, std::span(data.data(), 1)));  // below every range
    CHECK(b.bus.unclaimed_reads() == 2);
    CHECK(b.bus.unclaimed_writes() == 0);
}

TEST_CASE("an unclaimed write is counted and reaches no device") {
    OneDeviceBus b;
    std::array<std::byte, 2> data{std::byte{7}, std::byte{8}};
    CHECK_FALSE(b.bus.write(0xfe, data));   // straddles the start of the device
    CHECK_FALSE(b.bus.write(0x500, data));  // far past it
    CHECK(b.bus.unclaimed_writes() == 2);
    CHECK(b.bus.unclaimed_reads() == 0);
    CHECK(b.dev->writes.empty());
}

TEST_CASE("an empty bus claims nothing") {
    IoBus bus("empty");
    std::array<std::byte, 1> data{};
    CHECK_FALSE(bus.read(0, data));
    CHECK(data[0] == std::byte{0xff});
    CHECK_FALSE(bus.write(UINT64_MAX, data));
    CHECK(bus.unclaimed_reads() == 1);
    CHECK(bus.unclaimed_writes() == 1);
}

}  // namespace kvmlet
