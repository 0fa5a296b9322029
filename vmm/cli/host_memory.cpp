#include "vmm/cli/host_memory.hpp"

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

#include "vmm/base/error.hpp"
#include "vmm/base/guest_address.hpp"

namespace kvmlet::cli {

namespace {

constexpr std::string_view meminfo_path = "/proc/meminfo";

std::string_view trim_leading_spaces(std::string_view text) noexcept {
    auto const first = text.find_first_not_of(" \t");
    return first == std::string_view::npos ? std::string_view{} : text.substr(first);
}

// " 16303424 kB" in bytes. The kernel writes "kB" but means KiB (fs/proc/meminfo.c).
std::optional<std::uint64_t> parse_kib(std::string_view text) noexcept {
    text = trim_leading_spaces(text);
    std::uint64_t kib = 0;
    auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), kib);
    if (ec != std::errc{}) return std::nullopt;
    if (trim_leading_spaces(text.substr(static_cast<std::size_t>(end - text.data()))) != "kB")
        return std::nullopt;
    if (kib == 0 || kib > UINT64_MAX / KiB) return std::nullopt;
    return kib * KiB;
}

}  // namespace

std::optional<std::uint64_t> parse_meminfo_total(std::string_view meminfo) noexcept {
    constexpr std::string_view key = "MemTotal:";
    while (!meminfo.empty()) {
        auto const newline = meminfo.find('\n');
        std::string_view const line = meminfo.substr(0, newline);
        if (line.starts_with(key)) return parse_kib(line.substr(key.size()));
        if (newline == std::string_view::npos) break;
        meminfo.remove_prefix(newline + 1);
    }
    return std::nullopt;
}

std::uint64_t host_memory_bytes() {
    std::ifstream file{std::string(meminfo_path)};
    if (!file) throw system_error(fmt::format("cannot open {}", meminfo_path));
    std::ostringstream text;
    text << file.rdbuf();
    auto const total = parse_meminfo_total(text.str());
    if (!total) throw Error(fmt::format("{}: no MemTotal line in kB", meminfo_path));
    return *total;
}

}  // namespace kvmlet::cli
