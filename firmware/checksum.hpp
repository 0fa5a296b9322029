#pragma once
// The 8-bit checksum firmware tables carry (Intel MP spec 1.4 §4.1 and §4.2; ACPI §5.2): every
// byte of the table, the checksum byte included, sums to 0 modulo 256.
#include <cstddef>
#include <cstdint>
#include <span>

namespace kvmlet::firmware {

// The value to store in a checksum byte that currently holds 0.
inline std::uint8_t checksum_byte(std::span<std::byte const> bytes) noexcept {
    unsigned sum = 0;
    for (std::byte b : bytes) sum += std::to_integer<unsigned>(b);
    return static_cast<std::uint8_t>(0x100u - (sum & 0xffu));
}

}  // namespace kvmlet::firmware
