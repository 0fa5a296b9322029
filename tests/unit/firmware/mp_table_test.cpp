#include "firmware/x86_64/mp_table.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "firmware/x86_64/layout.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"

using kvmlet::GuestAddress;
using kvmlet::GuestMemory;
using kvmlet::MiB;
using kvmlet::test::x86_ram;
namespace x86 = kvmlet::x86_64;

namespace {

GuestMemory ram() {
    return x86_ram(16 * MiB);
}

std::vector<std::uint8_t> bytes(GuestMemory const& memory, std::uint64_t at, std::size_t size) {
    std::vector<std::uint8_t> out(size);
    REQUIRE(memory.read_bytes(GuestAddress{at}, std::as_writable_bytes(std::span{out})));
    return out;
}

unsigned sum(std::vector<std::uint8_t> const& data) {
    unsigned total = 0;
    for (auto b : data) total += b;
    return total % 256;
}

std::uint32_t u32(std::vector<std::uint8_t> const& data, std::size_t at) {
    std::uint32_t v;
    std::memcpy(&v, data.data() + at, sizeof v);
    return v;
}

std::uint16_t u16(std::vector<std::uint8_t> const& data, std::size_t at) {
    std::uint16_t v;
    std::memcpy(&v, data.data() + at, sizeof v);
    return v;
}

// The configuration table read back from guest RAM, through the floating pointer, as an MP kernel
// reads it (MP spec 1.4 §4): the header, then entries of 20 bytes (processors) or 8 bytes (others).
struct MpTable {
    std::vector<std::uint8_t> config;
    std::vector<std::vector<std::uint8_t>> entries;
};

MpTable read_mp_table(GuestMemory const& memory) {
    auto const pointer = bytes(memory, x86::mp_floating_pointer_start.value, 16);
    REQUIRE(std::string(pointer.begin(), pointer.begin() + 4) == "_MP_");
    auto const header = bytes(memory, u32(pointer, 4), 44);
    MpTable table{bytes(memory, u32(pointer, 4), u16(header, 4)), {}};
    std::size_t at = 44;
    for (std::uint16_t i = 0; i < u16(header, 34); ++i) {
        REQUIRE(at < table.config.size());
        std::size_t const size = table.config[at] == 0 ? 20 : 8;
        table.entries.emplace_back(table.config.begin() + static_cast<std::ptrdiff_t>(at),
                                   table.config.begin() + static_cast<std::ptrdiff_t>(at + size));
        at += size;
    }
    CHECK(at == table.config.size());
    return table;
}

std::vector<std::vector<std::uint8_t>> of_type(MpTable const& table, std::uint8_t type) {
    std::vector<std::vector<std::uint8_t>> out;
    for (auto const& e : table.entries)
        if (e[0] == type) out.push_back(e);
    return out;
}

}  // namespace

TEST_CASE("the MP floating pointer sums to zero and points at the configuration table", "[firmware]") {
    auto const memory = ram();
    x86::write_mp_table(memory, 2);
    auto const pointer = bytes(memory, 0x9fc00, 16);
    CHECK(std::string(pointer.begin(), pointer.begin() + 4) == "_MP_");
    CHECK(u32(pointer, 4) == x86::mp_config_table_start.value);
    CHECK(pointer[8] == 1);   // length in paragraphs
    CHECK(pointer[9] == 4);   // spec 1.4
    CHECK(pointer[11] == 0);  // a configuration table follows, no default configuration
    CHECK(pointer[12] == 0);  // virtual wire mode
    CHECK(sum(pointer) == 0);
}

TEST_CASE("the MP configuration table header sums to zero and names the local APIC", "[firmware]") {
    auto const memory = ram();
    x86::write_mp_table(memory, 3);
    auto const table = read_mp_table(memory);
    auto const& config = table.config;
    CHECK(std::string(config.begin(), config.begin() + 4) == "PCMP");
    CHECK(config[6] == 4);
    CHECK(std::string(config.begin() + 8, config.begin() + 16) == "KVMLET  ");
    CHECK(u32(config, 36) == 0xfee0'0000);
    CHECK(u16(config, 40) == 0);  // no extended table
    CHECK(sum(config) == 0);
    CHECK(config.size() == 44 + 3 * 20 + 8 + 8 + 18 * 8);
}

TEST_CASE("the MP table lists N enabled processors with the boot flag only on CPU 0", "[firmware]") {
    std::uint32_t const cpus = GENERATE(1u, 2u, 64u, 254u);
    auto const memory = ram();
    x86::write_mp_table(memory, cpus);
    auto const table = read_mp_table(memory);
    CHECK(sum(table.config) == 0);
    auto const processors = of_type(table, 0);
    REQUIRE(processors.size() == cpus);
    for (std::uint32_t i = 0; i < cpus; ++i) {
        INFO("CPU " << i);
        CHECK(processors[i][1] == i);                     // local APIC ID
        CHECK(processors[i][2] == 0x14);                  // local APIC version
        CHECK(processors[i][3] == (i == 0 ? 0x3 : 0x1));  // EN, and BP on CPU 0 only
    }
}

TEST_CASE("the MP table has one ISA bus and one I/O APIC after the CPUs' APIC IDs", "[firmware]") {
    auto const memory = ram();
    x86::write_mp_table(memory, 4);
    auto const table = read_mp_table(memory);
    auto const buses = of_type(table, 1);
    REQUIRE(buses.size() == 1);
    CHECK(buses[0][1] == 0);
    CHECK(std::string(buses[0].begin() + 2, buses[0].end()) == "ISA   ");
    auto const io_apics = of_type(table, 2);
    REQUIRE(io_apics.size() == 1);
    CHECK(io_apics[0][1] == 4);     // ID
    CHECK(io_apics[0][2] == 0x11);  // version
    CHECK(io_apics[0][3] == 1);     // enabled
    CHECK(u32(io_apics[0], 4) == 0xfec0'0000);
}

TEST_CASE("the MP table routes ISA IRQ n to I/O APIC pin n and wires LINT0/LINT1", "[firmware]") {
    auto const memory = ram();
    x86::write_mp_table(memory, 2);
    auto const table = read_mp_table(memory);
    auto const irqs = of_type(table, 3);
    REQUIRE(irqs.size() == 16);
    for (std::uint8_t n = 0; n < 16; ++n) {
        INFO("IRQ " << int{n});
        CHECK(irqs[n][1] == 0);       // INT
        CHECK(u16(irqs[n], 2) == 0);  // conforms to the bus: ISA, edge, active high
        CHECK(irqs[n][4] == 0);       // ISA bus
        CHECK(irqs[n][5] == n);       // source IRQ
        CHECK(irqs[n][6] == 2);       // the I/O APIC
        CHECK(irqs[n][7] == n);       // pin
    }
    auto const locals = of_type(table, 4);
    REQUIRE(locals.size() == 2);
    CHECK(locals[0][1] == 3);  // ExtINT
    CHECK(locals[0][6] == 0xff);
    CHECK(locals[0][7] == 0);  // LINT0
    CHECK(locals[1][1] == 1);  // NMI
    CHECK(locals[1][6] == 0xff);
    CHECK(locals[1][7] == 1);  // LINT1
}

TEST_CASE("an MP table for no CPUs or more than APIC IDs allow is rejected", "[firmware]") {
    auto const memory = ram();
    REQUIRE_THROWS_WITH(x86::write_mp_table(memory, 0), "mptable: 0 CPUs; the MP table describes 1 to 254");
    REQUIRE_THROWS_WITH(x86::write_mp_table(memory, 255),
                        "mptable: 255 CPUs; the MP table describes 1 to 254");
}

TEST_CASE("an MP table that does not fit in guest RAM is rejected", "[firmware]") {
    kvmlet::RamRange const ranges[] = {{GuestAddress{0}, 0x9f000}};
    REQUIRE_THROWS_WITH(x86::write_mp_table(GuestMemory::create(ranges), 1),
                        "mptable: the MP table at 0x9fc00 and 0xf0000 does not fit in guest RAM");
}
