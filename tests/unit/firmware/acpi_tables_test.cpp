#include "firmware/x86_64/acpi_tables.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "firmware/x86_64/layout.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"

using kvmlet::GiB;
using kvmlet::GuestAddress;
using kvmlet::GuestMemory;
using kvmlet::KiB;
using kvmlet::MiB;
using kvmlet::test::flat_ram;
using kvmlet::test::x86_ram;
namespace x86 = kvmlet::x86_64;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bytes(GuestMemory const& memory, std::uint64_t at, std::size_t size) {
    Bytes out(size);
    REQUIRE(memory.read_bytes(GuestAddress{at}, std::as_writable_bytes(std::span{out})));
    return out;
}

template <class T>
T field(Bytes const& data, std::size_t at) {
    REQUIRE(at + sizeof(T) <= data.size());
    T v;
    std::memcpy(&v, data.data() + at, sizeof v);
    return v;
}

std::string text(Bytes const& data, std::size_t at, std::size_t size) {
    REQUIRE(at + size <= data.size());
    return std::string(data.begin() + static_cast<std::ptrdiff_t>(at),
                       data.begin() + static_cast<std::ptrdiff_t>(at + size));
}

unsigned sum(Bytes const& data, std::size_t size) {
    unsigned total = 0;
    for (std::size_t i = 0; i < size; ++i) total += data[i];
    return total % 256;
}

// The tables as a kernel finds them: the RSDP by scanning the BIOS area on 16-byte boundaries
// (ACPI 6.5 §5.2.5.1), then the XSDT, the tables it lists, and the DSDT through the FADT.
struct Tables {
    std::uint64_t rsdp_at = 0;
    Bytes rsdp;
    Bytes xsdt;
    std::map<std::string, Bytes> by_signature;
    std::map<std::string, std::uint64_t> address;
};

Bytes read_table(GuestMemory const& memory, std::uint64_t at) {
    auto const length = field<std::uint32_t>(bytes(memory, at, 8), 4);
    REQUIRE(length >= 36);
    return bytes(memory, at, length);
}

std::uint64_t scan_for_rsdp(GuestMemory const& memory) {
    for (std::uint64_t at = 0xe0000; at < 0x100000; at += 16) {
        auto const candidate = bytes(memory, at, 20);
        if (text(candidate, 0, 8) == "RSD PTR " && sum(candidate, 20) == 0) return at;
    }
    FAIL("no RSDP in [0xe0000, 0x100000)");
    return 0;
}

Tables read_tables(GuestMemory const& memory) {
    Tables t;
    t.rsdp_at = scan_for_rsdp(memory);
    t.rsdp = bytes(memory, t.rsdp_at, 36);
    t.xsdt = read_table(memory, field<std::uint64_t>(t.rsdp, 24));
    for (std::size_t at = 36; at + 8 <= t.xsdt.size(); at += 8) {
        auto const address = field<std::uint64_t>(t.xsdt, at);
        auto table = read_table(memory, address);
        auto const signature = text(table, 0, 4);
        t.address[signature] = address;
        t.by_signature[signature] = std::move(table);
    }
    REQUIRE(t.by_signature.count("FACP") == 1);
    auto const dsdt = field<std::uint64_t>(t.by_signature["FACP"], 140);
    t.address["DSDT"] = dsdt;
    t.by_signature["DSDT"] = read_table(memory, dsdt);
    return t;
}

x86::AcpiConfig pci_config(std::uint32_t cpus = 4) {
    return {.cpus = cpus,
            .pci = true,
            .ram_size = 4 * GiB,
            .pci_slots = {1, 2, 5},
            .virtio_mmio = {{GuestAddress{0xd000'0000}, 0x1000, 5}, {GuestAddress{0xd000'1000}, 0x1000, 6}},
            .power_button = true};
}

x86::AcpiConfig mmio_config(std::uint32_t cpus = 1) {
    return {.cpus = cpus,
            .pci = false,
            .ram_size = 128 * MiB,
            .pci_slots = {},
            .virtio_mmio = {{GuestAddress{0xd000'0000}, 0x1000, 5}}};
}

Tables write_and_read(x86::AcpiConfig const& config, std::uint64_t ram = 256 * MiB) {
    auto const memory = x86_ram(ram);
    auto const rsdp = x86::write_acpi_tables(memory, config);
    auto tables = read_tables(memory);
    CHECK(rsdp == GuestAddress{tables.rsdp_at});
    return tables;
}

// MADT entries as (type, bytes).
std::vector<Bytes> madt_entries(Bytes const& madt) {
    std::vector<Bytes> out;
    for (std::size_t at = 44; at < madt.size();) {
        REQUIRE(at + 2 <= madt.size());
        std::size_t const length = madt[at + 1];
        REQUIRE(length >= 2);
        REQUIRE(at + length <= madt.size());
        out.emplace_back(madt.begin() + static_cast<std::ptrdiff_t>(at),
                         madt.begin() + static_cast<std::ptrdiff_t>(at + length));
        at += length;
    }
    return out;
}

std::size_t count_type(std::vector<Bytes> const& entries, std::uint8_t type) {
    return static_cast<std::size_t>(
        std::count_if(entries.begin(), entries.end(), [&](Bytes const& e) { return e[0] == type; }));
}

// The 12 bytes of a Generic Address Structure: space, width, offset, access size, address.
void check_io_byte_register(Bytes const& fadt, std::size_t at, std::uint64_t port) {
    CHECK(fadt[at] == 1);      // System I/O
    CHECK(fadt[at + 1] == 8);  // bits
    CHECK(fadt[at + 2] == 0);
    CHECK(fadt[at + 3] == 1);  // byte access
    CHECK(field<std::uint64_t>(fadt, at + 4) == port);
}

}  // namespace

TEST_CASE("the RSDP is the first thing at acpi_tables_start, where a BIOS-area scan finds it",
          "[firmware][acpi]") {
    auto const tables = write_and_read(pci_config());
    CHECK(tables.rsdp_at == x86::acpi_tables_start.value);
    CHECK(tables.rsdp_at % 16 == 0);
    CHECK(tables.rsdp_at >= 0xe0000);
    CHECK(tables.rsdp_at < 0x100000);
}

TEST_CASE("the RSDP has revision 2, both checksums and the XSDT's address", "[firmware][acpi]") {
    auto const tables = write_and_read(pci_config());
    auto const& rsdp = tables.rsdp;
    CHECK(text(rsdp, 0, 8) == "RSD PTR ");
    CHECK(text(rsdp, 9, 6) == "KVMLET");
    CHECK(rsdp[15] == 2);
    CHECK(field<std::uint32_t>(rsdp, 16) == 0);   // no RSDT
    CHECK(field<std::uint32_t>(rsdp, 20) == 36);  // length
    CHECK(sum(rsdp, 20) == 0);
    CHECK(sum(rsdp, 36) == 0);
    CHECK(text(tables.xsdt, 0, 4) == "XSDT");
}

TEST_CASE("every table sums to zero, lies in the ACPI area and carries the KVMLET OEM ID",
          "[firmware][acpi]") {
    bool const pci = GENERATE(false, true);
    auto const tables = write_and_read(pci ? pci_config() : mmio_config());
    CHECK(sum(tables.xsdt, tables.xsdt.size()) == 0);
    for (auto const& [signature, table] : tables.by_signature) {
        INFO(signature);
        CHECK(field<std::uint32_t>(table, 4) == table.size());
        CHECK(sum(table, table.size()) == 0);
        CHECK(text(table, 10, 6) == "KVMLET");
        std::uint64_t const at = tables.address.at(signature);
        CHECK(at >= x86::acpi_tables_start.value);
        CHECK(at + table.size() <= x86::acpi_tables_end.value);
    }
}

TEST_CASE("the XSDT lists the FADT, the MADT and, with PCI, the MCFG, and the FADT names the DSDT",
          "[firmware][acpi]") {
    auto const with_pci = write_and_read(pci_config());
    CHECK(with_pci.xsdt.size() == 36 + 3 * 8);
    CHECK(text(with_pci.by_signature.at("FACP"), 0, 4) == "FACP");
    CHECK(with_pci.by_signature.count("APIC") == 1);
    CHECK(with_pci.by_signature.count("MCFG") == 1);
    CHECK(with_pci.by_signature.count("DSDT") == 1);
    auto const without = write_and_read(mmio_config());
    CHECK(without.xsdt.size() == 36 + 2 * 8);
    CHECK(without.by_signature.count("MCFG") == 0);
}

TEST_CASE("the FADT is hardware-reduced, revision 6.5, with sleep and reset registers in I/O space",
          "[firmware][acpi]") {
    auto const tables = write_and_read(pci_config());
    auto const& fadt = tables.by_signature.at("FACP");
    REQUIRE(fadt.size() == 276);
    CHECK(fadt[8] == 6);                                    // revision
    CHECK(fadt[131] == 5);                                  // minor version
    CHECK(field<std::uint32_t>(fadt, 36) == 0);             // no FACS
    CHECK(field<std::uint32_t>(fadt, 40) == 0);             // DSDT: only X_DSDT
    CHECK(field<std::uint16_t>(fadt, 46) == 0);             // no SCI
    CHECK(field<std::uint16_t>(fadt, 109) == 0x24);         // IAPC_BOOT_ARCH: no VGA, no CMOS RTC
    CHECK(field<std::uint32_t>(fadt, 112) == 0x0010'0400);  // HW_REDUCED_ACPI | RESET_REG_SUP
    check_io_byte_register(fadt, 116, x86::acpi_reset_port);
    CHECK(fadt[128] == x86::acpi_reset_value);
    CHECK(field<std::uint64_t>(fadt, 132) == 0);  // X_FIRMWARE_CTRL
    CHECK(field<std::uint64_t>(fadt, 140) == tables.address.at("DSDT"));
    check_io_byte_register(fadt, 244, x86::acpi_sleep_control_port);
    check_io_byte_register(fadt, 256, x86::acpi_sleep_status_port);
    CHECK(text(fadt, 268, 8) == "KVMLET  ");
}

TEST_CASE("the MADT has one enabled local APIC per CPU, one I/O APIC and an NMI on LINT1",
          "[firmware][acpi]") {
    std::uint32_t const cpus = GENERATE(1u, 4u, 64u);
    auto const tables = write_and_read(pci_config(cpus));
    auto const& madt = tables.by_signature.at("APIC");
    CHECK(field<std::uint32_t>(madt, 36) == 0xfee0'0000);
    CHECK(field<std::uint32_t>(madt, 40) == 1);  // PCAT_COMPAT
    auto const entries = madt_entries(madt);
    REQUIRE(entries.size() == cpus + 2);
    CHECK(count_type(entries, 0) == cpus);
    for (std::uint32_t i = 0; i < cpus; ++i) {
        INFO("CPU " << i);
        CHECK(entries[i] ==
              Bytes{0, 8, static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(i), 1, 0, 0, 0});
    }
    auto const& io_apic = entries[cpus];
    CHECK(io_apic[0] == 1);
    CHECK(io_apic[2] == cpus);  // ID after the CPUs', as in the MP table
    CHECK(field<std::uint32_t>(io_apic, 4) == 0xfec0'0000);
    CHECK(field<std::uint32_t>(io_apic, 8) == 0);  // GSI base
    CHECK(entries[cpus + 1] == Bytes{4, 6, 0xff, 0, 0, 1});
    CHECK(count_type(entries, 2) == 0);  // no interrupt source overrides
}

TEST_CASE("CPUs from APIC ID 255 on get x2APIC entries and an x2APIC NMI", "[firmware][acpi]") {
    auto const tables = write_and_read(pci_config(300));
    auto const entries = madt_entries(tables.by_signature.at("APIC"));
    CHECK(count_type(entries, 0) == 255);
    REQUIRE(count_type(entries, 9) == 45);
    auto const first_x2 =
        std::find_if(entries.begin(), entries.end(), [](Bytes const& e) { return e[0] == 9; });
    CHECK(field<std::uint32_t>(*first_x2, 4) == 255);   // x2APIC ID
    CHECK(field<std::uint32_t>(*first_x2, 8) == 1);     // enabled
    CHECK(field<std::uint32_t>(*first_x2, 12) == 255);  // processor UID
    CHECK(count_type(entries, 0x0a) == 1);
    auto const io_apic =
        std::find_if(entries.begin(), entries.end(), [](Bytes const& e) { return e[0] == 1; });
    CHECK((*io_apic)[2] == 254);
}

TEST_CASE("the MCFG gives one ECAM allocation for segment 0, buses 0 to pci_last_bus", "[firmware][acpi]") {
    auto const tables = write_and_read(pci_config());
    auto const& mcfg = tables.by_signature.at("MCFG");
    REQUIRE(mcfg.size() == 36 + 8 + 16);
    CHECK(field<std::uint64_t>(mcfg, 44) == x86::pci_ecam_start.value);
    CHECK(field<std::uint16_t>(mcfg, 52) == 0);
    CHECK(mcfg[54] == 0);
    CHECK(mcfg[55] == x86::pci_last_bus);
}

TEST_CASE("the DSDT has revision 2 and ends with the _S5_ object naming acpi_s5_sleep_type",
          "[firmware][acpi]") {
    auto const dsdt = write_and_read(mmio_config()).by_signature.at("DSDT");
    CHECK(dsdt[8] == 2);
    Bytes const s5{0x08, '\\', '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, x86::acpi_s5_sleep_type, 0, 0, 0};
    REQUIRE(dsdt.size() > s5.size());
    CHECK(Bytes(dsdt.end() - static_cast<std::ptrdiff_t>(s5.size()), dsdt.end()) == s5);
}

TEST_CASE("ACPI configurations outside the limits are rejected", "[firmware][acpi]") {
    auto const memory = x86_ram(16 * MiB);
    auto config = pci_config();
    SECTION("no CPUs") {
        config.cpus = 0;
    }
    SECTION("more CPUs than KVM runs") {
        config.cpus = x86::acpi_max_cpus + 1;
    }
    SECTION("slot 0, the host bridge") {
        config.pci_slots = {0};
    }
    SECTION("slot 32") {
        config.pci_slots = {32};
    }
    SECTION("a slot twice") {
        config.pci_slots = {3, 1, 3};
    }
    SECTION("a virtio-mmio window above 4 GiB") {
        config.virtio_mmio = {{GuestAddress{4 * GiB}, 0x1000, 5}};
    }
    SECTION("a virtio-mmio window across 4 GiB") {
        config.virtio_mmio = {{GuestAddress{4 * GiB - 0x1000}, 0x2000, 5}};
    }
    SECTION("too many virtio-mmio devices") {
        config.virtio_mmio.assign(x86::acpi_max_virtio_mmio + 1, {GuestAddress{0xd000'0000}, 0x1000, 5});
    }
    CHECK_THROWS_AS(x86::write_acpi_tables(memory, config), kvmlet::Error);
}

TEST_CASE("the largest configuration fits the ACPI area", "[firmware][acpi]") {
    auto config = pci_config(x86::acpi_max_cpus);
    config.pci_slots.clear();
    for (std::uint8_t s = 1; s <= x86::acpi_max_pci_slot; ++s) config.pci_slots.push_back(s);
    config.virtio_mmio.assign(x86::acpi_max_virtio_mmio, {GuestAddress{0xd000'0000}, 0x1000, 5});
    auto const tables = write_and_read(config);
    CHECK(madt_entries(tables.by_signature.at("APIC")).size() == x86::acpi_max_cpus + 3);
}

TEST_CASE("ACPI tables need guest RAM under the BIOS area", "[firmware][acpi]") {
    REQUIRE_THROWS_WITH(x86::write_acpi_tables(flat_ram(512 * KiB), pci_config()),
                        Catch::Matchers::StartsWith("acpi: the table at"));
}

// ---- iasl (ACPICA's disassembler) reads every table back --------------------------------------

namespace {

class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "kvmlet-acpi-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    TempDir(TempDir const&) = delete;
    TempDir& operator=(TempDir const&) = delete;
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    fs::path const& path() const { return path_; }

private:
    fs::path path_;
};

struct Disassembly {
    int status = -1;
    std::string output;  // iasl's stdout and stderr
    std::string dsl;     // the disassembled table
};

std::string slurp(fs::path const& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void require_iasl() {
    if (std::system("command -v iasl >/dev/null 2>&1") != 0)
        FAIL("iasl not found: run tools/setup (it installs acpica-tools)");
}

Disassembly disassemble(Bytes const& table) {
    require_iasl();
    TempDir dir;
    {
        std::ofstream out(dir.path() / "table.dat", std::ios::binary);
        out.write(reinterpret_cast<char const*>(table.data()), static_cast<std::streamsize>(table.size()));
    }
    std::string const command = "cd '" + dir.path().string() + "' && iasl -d table.dat 2>&1";
    Disassembly result;
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buffer[4096];
    while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) result.output.append(buffer, n);
    int const status = pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.dsl = slurp(dir.path() / "table.dsl");
    return result;
}

// Lines of iasl's output that report a problem.
std::vector<std::string> complaints(Disassembly const& d) {
    std::vector<std::string> out;
    std::istringstream lines(d.output + "\n" + d.dsl);
    for (std::string line; std::getline(lines, line);)
        if (line.find("Error") != std::string::npos || line.find("Warning") != std::string::npos ||
            line.find("Incorrect") != std::string::npos || line.find("****") != std::string::npos)
            out.push_back(line);
    return out;
}

Disassembly clean_disassembly(Bytes const& table) {
    auto d = disassemble(table);
    INFO(d.output);
    REQUIRE(d.status == 0);
    CHECK(complaints(d).empty());
    for (auto const& line : complaints(d)) WARN(line);
    REQUIRE(!d.dsl.empty());
    return d;
}

// The disassembly without blanks, so that multi-line ASL can be matched in one piece.
std::string squeezed(std::string const& s) {
    std::string out;
    for (char c : s)
        if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(c);
    return out;
}

std::size_t occurrences(std::string const& haystack, std::string const& needle) {
    std::size_t n = 0;
    for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
    return n;
}

// The value of the first "Address : ..." field after `heading` in a data-table disassembly.
std::string address_after(std::string const& dsl, std::string const& heading) {
    auto const s = squeezed(dsl);
    auto const at = s.find(squeezed(heading));
    REQUIRE(at != std::string::npos);
    auto const address = s.find("Address:", at);
    REQUIRE(address != std::string::npos);
    return s.substr(address + 8, 16);
}

}  // namespace

TEST_CASE(
    "iasl disassembles the DSDT with PCI: root bridge, _PRT, ECAM, COM1, i8042, power button, "
    "virtio-mmio, _S5_",
    "[firmware][acpi][iasl]") {
    auto const tables = write_and_read(pci_config());
    auto const dsl = clean_disassembly(tables.by_signature.at("DSDT")).dsl;
    auto const s = squeezed(dsl);
    CHECK(s.find("Scope(\\_SB){Device(PCI0){Name(_HID,EisaId(\"PNP0A03\")") != std::string::npos);
    CHECK(s.find("Name(_SEG,Zero)") != std::string::npos);
    CHECK(s.find("Name(_BBN,Zero)") != std::string::npos);
    CHECK(s.find("WordBusNumber(ResourceProducer,MinFixed,MaxFixed,PosDecode,0x0000,//Granularity0x0000,"
                 "//RangeMinimum0x0000,//RangeMaximum0x0000,//TranslationOffset0x0001,//Length") !=
          std::string::npos);
    CHECK(s.find("0x0000,//RangeMinimum0x0CF7,//RangeMaximum0x0000,//TranslationOffset0x0CF8,//Length") !=
          std::string::npos);
    CHECK(s.find("0x0D00,//RangeMinimum0xFFFF,//RangeMaximum0x0000,//TranslationOffset0xF300,//Length") !=
          std::string::npos);
    CHECK(s.find("0xE8000000,//RangeMinimum0xFEBFFFFF,//RangeMaximum") != std::string::npos);
    CHECK(s.find("0x0000000140000000,//RangeMinimum0x000000113FFFFFFF,//RangeMaximum") != std::string::npos);
    CHECK(s.find("Name(_PRT,Package(0x0C)") != std::string::npos);  // 3 slots x 4 pins
    CHECK(s.find("Package(0x04){0x0001FFFF,Zero,Zero,0x11}") != std::string::npos);
    CHECK(s.find("Package(0x04){0x0002FFFF,0x03,Zero,0x15}") != std::string::npos);
    CHECK(s.find("Package(0x04){0x0005FFFF,0x03,Zero,0x10}") != std::string::npos);  // (5 + 3) % 8
    CHECK(s.find("EisaId(\"PNP0C02\")") != std::string::npos);
    CHECK(s.find("Memory32Fixed(ReadWrite,0xE0000000,//AddressBase0x00100000,") != std::string::npos);
    CHECK(s.find("Device(COM1){Name(_HID,EisaId(\"PNP0501\")") != std::string::npos);
    CHECK(s.find("IO(Decode16,0x03F8,//RangeMinimum0x03F8,//RangeMaximum0x01,//Alignment0x08,") !=
          std::string::npos);
    CHECK(s.find("IRQNoFlags(){4}") != std::string::npos);
    CHECK(s.find("Device(PS2K){Name(_HID,EisaId(\"PNP0303\")") != std::string::npos);
    CHECK(s.find("IO(Decode16,0x0060,//RangeMinimum0x0060,//RangeMaximum0x01,//Alignment0x01,") !=
          std::string::npos);
    CHECK(s.find("IO(Decode16,0x0064,//RangeMinimum0x0064,//RangeMaximum0x01,//Alignment0x01,") !=
          std::string::npos);
    CHECK(s.find("IRQNoFlags(){1}") != std::string::npos);
    CHECK(s.find("PNP0F13") == std::string::npos);  // no mouse
    CHECK(s.find("Device(PWRB){Name(_HID,EisaId(\"PNP0C0C\")") != std::string::npos);
    CHECK(s.find("Device(GED0){Name(_HID,\"ACPI0013\"") != std::string::npos);
    CHECK(s.find("Interrupt(ResourceConsumer,Edge,ActiveHigh,Exclusive,,,){0x00000003,}") !=
          std::string::npos);
    CHECK(s.find("Method(_EVT,1,NotSerialized)") != std::string::npos);
    CHECK(s.find("Notify(PWRB,0x80)") != std::string::npos);
    CHECK(occurrences(s, "Name(_HID,\"LNRO0005\")") == 2);
    CHECK(s.find("Device(VR01){Name(_HID,\"LNRO0005\")//_HID:HardwareIDName(_UID,One)") != std::string::npos);
    CHECK(s.find("Memory32Fixed(ReadWrite,0xD0001000,//AddressBase0x00001000,") != std::string::npos);
    CHECK(s.find("Interrupt(ResourceConsumer,Edge,ActiveHigh,Exclusive,,,){0x00000006,}") !=
          std::string::npos);
    CHECK(s.find("Name(\\_S5,Package(0x04)//_S5_:S5SystemState{0x05,Zero,Zero,Zero})") != std::string::npos);
}

TEST_CASE("iasl disassembles the DSDT without PCI: no root bridge, no ECAM reservation",
          "[firmware][acpi][iasl]") {
    auto const tables = write_and_read(mmio_config());
    auto const s = squeezed(clean_disassembly(tables.by_signature.at("DSDT")).dsl);
    CHECK(s.find("PCI0") == std::string::npos);
    CHECK(s.find("PNP0C02") == std::string::npos);
    CHECK(s.find("PWRB") == std::string::npos);  // power_button not asked for
    CHECK(s.find("ACPI0013") == std::string::npos);
    CHECK(s.find("Device(COM1)") != std::string::npos);
    CHECK(s.find("Device(VR00){Name(_HID,\"LNRO0005\")") != std::string::npos);
    CHECK(s.find("Name(\\_S5,") != std::string::npos);
}

TEST_CASE("iasl disassembles the FADT, MADT, MCFG and XSDT", "[firmware][acpi][iasl]") {
    std::uint32_t const cpus = GENERATE(1u, 4u, 64u);
    auto const tables = write_and_read(pci_config(cpus));

    auto const fadt = clean_disassembly(tables.by_signature.at("FACP")).dsl;
    CHECK(address_after(fadt, "Sleep Control Register : [Generic Address Structure]") == "0000000000000600");
    CHECK(address_after(fadt, "Sleep Status Register : [Generic Address Structure]") == "0000000000000601");
    CHECK(address_after(fadt, "Reset Register : [Generic Address Structure]") == "0000000000000602");
    CHECK(squeezed(fadt).find("HardwareReduced(V5):1") != std::string::npos);
    CHECK(squeezed(fadt).find("VGANotPresent(V4):1") != std::string::npos);
    CHECK(squeezed(fadt).find("CMOSRTCNotPresent(V5):1") != std::string::npos);
    CHECK(squeezed(fadt).find("MSINotSupported(V4):0") != std::string::npos);

    auto const madt = squeezed(clean_disassembly(tables.by_signature.at("APIC")).dsl);
    CHECK(occurrences(madt, "SubtableType:00[ProcessorLocalAPIC]") == cpus);
    CHECK(occurrences(madt, "SubtableType:01[I/OAPIC]") == 1);
    CHECK(occurrences(madt, "SubtableType:04[LocalAPICNMI]") == 1);
    CHECK(madt.find("LocalApicAddress:FEE00000") != std::string::npos);

    auto const mcfg = squeezed(clean_disassembly(tables.by_signature.at("MCFG")).dsl);
    CHECK(mcfg.find("BaseAddress:00000000E0000000") != std::string::npos);
    CHECK(mcfg.find("EndBusNumber:00") != std::string::npos);

    auto const xsdt = squeezed(clean_disassembly(tables.xsdt).dsl);
    CHECK(occurrences(xsdt, "ACPITableAddress") == 3);
}
