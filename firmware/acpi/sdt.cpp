#include "firmware/acpi/sdt.hpp"

#include <fmt/format.h>

#include <cstring>
#include <limits>

#include "firmware/checksum.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::firmware::acpi {
namespace {

constexpr std::array<char, 8> rsdp_signature{'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '};
constexpr Signature xsdt_signature{'X', 'S', 'D', 'T'};
constexpr std::uint8_t xsdt_revision = 1;
constexpr std::uint8_t bits_per_byte = 8;

}  // namespace

GenericAddress io_port_byte(std::uint16_t port) noexcept {
    return GenericAddress{gas_system_io, bits_per_byte, 0, gas_access_byte, port};
}

std::vector<std::uint8_t> make_table(Signature signature, std::uint8_t revision,
                                     std::span<std::uint8_t const> body) {
    if (body.size() > std::numeric_limits<std::uint32_t>::max() - sizeof(SdtHeader))
        throw Error(fmt::format("acpi: a {}-byte table body", body.size()));
    SdtHeader header{};
    header.signature = signature;
    header.length = static_cast<std::uint32_t>(sizeof header + body.size());
    header.revision = revision;
    header.oem_id = oem_id;
    header.oem_table_id = oem_table_id;
    header.oem_revision = oem_revision;
    header.creator_id = creator_id;
    header.creator_revision = creator_revision;
    std::vector<std::uint8_t> table;
    append_struct(table, header);
    table.insert(table.end(), body.begin(), body.end());
    table[offsetof(SdtHeader, checksum)] = checksum_byte(std::as_bytes(std::span{table}));
    return table;
}

std::vector<std::uint8_t> make_xsdt(std::span<GuestAddress const> tables) {
    std::vector<std::uint8_t> body;
    for (auto const& table : tables) append_struct(body, table.value);
    return make_table(xsdt_signature, xsdt_revision, body);
}

Rsdp make_rsdp(GuestAddress xsdt) noexcept {
    Rsdp rsdp{};
    rsdp.signature = rsdp_signature;
    rsdp.oem_id = oem_id;
    rsdp.revision = rsdp_revision;
    rsdp.length = sizeof rsdp;
    rsdp.xsdt_address = xsdt.value;
    auto const bytes = std::as_bytes(std::span{&rsdp, 1});
    rsdp.checksum = checksum_byte(bytes.first(rsdp_v1_size));
    rsdp.extended_checksum = checksum_byte(bytes);
    return rsdp;
}

}  // namespace kvmlet::firmware::acpi
