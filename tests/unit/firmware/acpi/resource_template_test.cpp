#include "firmware/acpi/resource_template.hpp"

#include <catch2/catch.hpp>
#include <cstdint>

#include "vmm/base/error.hpp"

namespace res = kvmlet::firmware::acpi::resource;
using res::Bytes;

TEST_CASE("IO is a small 16-bit-decode descriptor: min, max, alignment, length", "[firmware][acpi]") {
    CHECK(res::io(0x3f8, 0x3f8, 1, 8) == Bytes{0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08});
}

TEST_CASE("IRQNoFlags is a small descriptor with a 16-bit IRQ mask", "[firmware][acpi]") {
    CHECK(res::irq_no_flags(4) == Bytes{0x22, 0x10, 0x00});
    CHECK(res::irq_no_flags(15) == Bytes{0x22, 0x00, 0x80});
    CHECK_THROWS_AS(res::irq_no_flags(16), kvmlet::Error);
}

TEST_CASE("Memory32Fixed is read-write with a 32-bit base and length", "[firmware][acpi]") {
    CHECK(res::memory32_fixed(0xd000'0000, 0x1000) ==
          Bytes{0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00});
}

TEST_CASE("the Extended Interrupt descriptor encodes mode, polarity and sharing", "[firmware][acpi]") {
    CHECK(
        res::extended_interrupt(5, res::Trigger::edge, res::Polarity::active_high, res::Sharing::exclusive) ==
        Bytes{0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00});
    CHECK(res::extended_interrupt(0x11223344, res::Trigger::level, res::Polarity::active_low,
                                  res::Sharing::shared) ==
          Bytes{0x89, 0x06, 0x00, 0x0d, 0x01, 0x44, 0x33, 0x22, 0x11});
}

TEST_CASE("WordBusNumber and WordIO are fixed producer windows", "[firmware][acpi]") {
    CHECK(res::word_bus_number(0, 0xff) ==
          Bytes{0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0x00, 0x00, 0xff, 0x00, 0, 0, 0x00, 0x01});
    CHECK(res::word_io(0xd00, 0xffff) ==
          Bytes{0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x0d, 0xff, 0xff, 0, 0, 0x00, 0xf3});
}

TEST_CASE("DWordMemory and QWordMemory carry caching and read-write flags", "[firmware][acpi]") {
    CHECK(res::dword_memory(0xe800'0000, 0xfebf'ffff, res::Cacheability::non_cacheable) ==
          Bytes{0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0,    0,    0, 0,  // type, flags, granularity
                0x00, 0x00, 0x00, 0xe8, 0xff, 0xff, 0xbf, 0xfe,        // min, max
                0,    0,    0,    0,    0x00, 0x00, 0xc0, 0x16});      // translation, length
    auto const q = res::qword_memory(0x1'0000'0000, 0x1'ffff'ffff, res::Cacheability::cacheable);
    REQUIRE(q.size() == 46);
    CHECK(Bytes(q.begin(), q.begin() + 6) == Bytes{0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03});
    CHECK(Bytes(q.begin() + 14, q.begin() + 30) ==
          Bytes{0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0});
    CHECK(Bytes(q.begin() + 38, q.end()) == Bytes{0, 0, 0, 0, 1, 0, 0, 0});
}

TEST_CASE("address ranges that are empty or whose length overflows are rejected", "[firmware][acpi]") {
    CHECK_THROWS_AS(res::word_io(2, 1), kvmlet::Error);
    CHECK_THROWS_AS(res::word_io(0, 0xffff), kvmlet::Error);
    CHECK_THROWS_AS(res::qword_memory(0, UINT64_MAX, res::Cacheability::cacheable), kvmlet::Error);
    CHECK(res::word_bus_number(0, 0).back() == 0x00);  // one bus: length 1
}

TEST_CASE("a resource template is a buffer of the descriptors and an end tag with checksum 0",
          "[firmware][acpi]") {
    CHECK(res::resource_template({}) == Bytes{0x11, 0x05, 0x0a, 0x02, 0x79, 0x00});
    CHECK(res::resource_template({res::io(0x3f8, 0x3f8, 1, 8), res::irq_no_flags(4)}) ==
          Bytes{0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00,
                0x79, 0x00});
}
