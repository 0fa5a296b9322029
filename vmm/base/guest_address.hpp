#pragma once
#include <compare>
#include <cstdint>
#include <optional>

namespace kvmlet {

// A guest-physical address. Not interchangeable with host pointers or plain integers.
struct GuestAddress {
    std::uint64_t value = 0;
    auto operator<=>(GuestAddress const&) const = default;

    // Overflow-checked offset: nullopt when value + offset wraps.
    std::optional<GuestAddress> checked_add(std::uint64_t offset) const noexcept {
        if (offset > UINT64_MAX - value) return std::nullopt;
        return GuestAddress{value + offset};
    }
};

inline constexpr std::uint64_t KiB = 1024;
inline constexpr std::uint64_t MiB = 1024 * KiB;
inline constexpr std::uint64_t GiB = 1024 * MiB;

}  // namespace kvmlet
