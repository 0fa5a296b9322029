#include "vmm/cli/memory_size.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <optional>

#include "vmm/base/guest_address.hpp"

namespace kvmlet::cli {

namespace {

constexpr std::uint64_t TiB = 1024 * GiB;

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

// Bytes per unit for the text after the digits, or nullopt if it is not a unit we know.
std::optional<std::uint64_t> unit_size(std::string_view unit) noexcept {
    if (unit.empty()) return MiB;
    if (equals_ignoring_case(unit, "b")) return 1;
    static constexpr std::array<std::pair<char, std::uint64_t>, 4> prefixes{
        {{'k', KiB}, {'m', MiB}, {'g', GiB}, {'t', TiB}}};
    std::string_view const rest = unit.substr(1);
    if (!rest.empty() && !equals_ignoring_case(rest, "b") && !equals_ignoring_case(rest, "ib"))
        return std::nullopt;
    for (auto const& [letter, size] : prefixes) {
        if (std::tolower(static_cast<unsigned char>(unit[0])) == letter) return size;
    }
    return std::nullopt;
}

}  // namespace

Result<std::uint64_t> parse_memory_size(std::string_view text) {
    std::uint64_t number = 0;
    char const* const end = text.data() + text.size();
    auto const [digits_end, ec] = std::from_chars(text.data(), end, number);
    auto const unit = unit_size(std::string_view(digits_end, static_cast<std::size_t>(end - digits_end)));
    if (ec == std::errc::invalid_argument || !unit) return unexpected("not a size (examples: 512M, 2G)");
    if (ec == std::errc::result_out_of_range || number > UINT64_MAX / *unit) return unexpected("too large");
    return number * *unit;
}

std::string format_memory_size(std::uint64_t bytes) {
    static constexpr std::array<std::string_view, 7> units{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < KiB) return fmt::format("{} B", bytes);
    std::size_t unit = 0;
    auto value = static_cast<double>(bytes);
    while (value >= 1024.0 && unit + 1 < units.size()) {
        value /= 1024.0;
        ++unit;
    }
    std::string number = fmt::format("{:.1f}", value);
    if (number.ends_with(".0")) number.resize(number.size() - 2);
    return fmt::format("{} {}", number, units[unit]);
}

}  // namespace kvmlet::cli
