#pragma once
// The parts of ACPI's table framework every architecture shares (ACPI 6.5 §5.2): the Root System
// Description Pointer, the System Description Table header and its checksum, the XSDT, and the
// Generic Address Structure that names a register. Wire structs are little-endian, as ACPI is.
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vmm/base/guest_address.hpp"

namespace kvmlet::firmware::acpi {

static_assert(std::endian::native == std::endian::little, "ACPI tables are written as host structs");

using Signature = std::array<char, 4>;
inline constexpr std::array<char, 6> oem_id{'K', 'V', 'M', 'L', 'E', 'T'};
inline constexpr std::array<char, 8> oem_table_id{'K', 'V', 'M', 'L', 'E', 'T', ' ', ' '};
inline constexpr std::uint32_t oem_revision = 1;
inline constexpr Signature creator_id{'K', 'V', 'M', 'L'};  // the "ASL compiler" that made the tables
inline constexpr std::uint32_t creator_revision = 1;

#pragma pack(push, 1)

// §5.2.5.3 Table 5.3 "Root System Description Pointer (RSDP) Structure", revision 2.
struct Rsdp {
    std::array<char, 8> signature;  // "RSD PTR "
    std::uint8_t checksum;          // over the first 20 bytes (the ACPI 1.0 structure)
    std::array<char, 6> oem_id;
    std::uint8_t revision;
    std::uint32_t rsdt_address;  // 0: kvmlet has an XSDT only
    std::uint32_t length;
    std::uint64_t xsdt_address;
    std::uint8_t extended_checksum;  // over all 36 bytes
    std::array<std::uint8_t, 3> reserved;
};
static_assert(sizeof(Rsdp) == 36);
static_assert(offsetof(Rsdp, xsdt_address) == 24);

// §5.2.6 Table 5.4 "DESCRIPTION_HEADER Fields".
struct SdtHeader {
    Signature signature;
    std::uint32_t length;  // of the whole table, header included
    std::uint8_t revision;
    std::uint8_t checksum;  // the whole table sums to 0
    std::array<char, 6> oem_id;
    std::array<char, 8> oem_table_id;
    std::uint32_t oem_revision;
    Signature creator_id;
    std::uint32_t creator_revision;
};
static_assert(sizeof(SdtHeader) == 36);
static_assert(offsetof(SdtHeader, checksum) == 9);

// §5.2.3.2 Table 5.1 "Generic Address Structure (GAS)".
struct GenericAddress {
    std::uint8_t space_id;
    std::uint8_t bit_width;
    std::uint8_t bit_offset;
    std::uint8_t access_size;
    std::uint64_t address;
};
static_assert(sizeof(GenericAddress) == 12);

#pragma pack(pop)

inline constexpr std::uint8_t rsdp_revision = 2;  // ACPI 2.0 and later: with the XSDT
inline constexpr std::size_t rsdp_v1_size = 20;   // what the first checksum covers
inline constexpr std::uint8_t gas_system_io = 1;  // Address Space ID
inline constexpr std::uint8_t gas_access_byte = 1;

// A one-byte register in I/O space at `port`.
GenericAddress io_port_byte(std::uint16_t port) noexcept;

// The table with this signature and revision: kvmlet's header, then `body`, the length and the
// checksum filled in.
std::vector<std::uint8_t> make_table(Signature signature, std::uint8_t revision,
                                     std::span<std::uint8_t const> body);

// §5.2.8 the XSDT: the 64-bit addresses of every other table but the DSDT (which the FADT names).
std::vector<std::uint8_t> make_xsdt(std::span<GuestAddress const> tables);

// The RSDP naming the XSDT at `xsdt`, both checksums set.
Rsdp make_rsdp(GuestAddress xsdt) noexcept;

// A struct's bytes, for a table body.
template <class T>
void append_struct(std::vector<std::uint8_t>& out, T const& value) {
    auto const bytes = std::as_bytes(std::span{&value, 1});
    for (auto b : bytes) out.push_back(std::to_integer<std::uint8_t>(b));
}

}  // namespace kvmlet::firmware::acpi
