#include "vmm/jail/cgroup_spec.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <set>

#include "vmm/base/error.hpp"

namespace kvmlet::jail {
namespace {

// Files the jailer writes itself: a --cgroup for them would move processes or controllers.
constexpr std::array<std::string_view, 6> reserved_files{
    "cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.kill", "tasks", "cgroup.type"};

std::vector<std::string_view> tokens(std::string_view text) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
        std::size_t start = i;
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) == 0) ++i;
        if (i > start) out.push_back(text.substr(start, i - start));
    }
    return out;
}

std::optional<std::uint64_t> number(std::string_view text) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// "512M" -> 536870912; a plain number as it is. Overflow is no size.
std::optional<std::uint64_t> size_in_bytes(std::string_view text) {
    if (text.empty()) return std::nullopt;
    unsigned shift = 0;
    switch (text.back()) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        case 't':
        case 'T':
            shift = 40;
            break;
        default:
            break;
    }
    auto value = number(shift == 0 ? text : text.substr(0, text.size() - 1));
    if (!value || *value > (UINT64_MAX >> shift)) return std::nullopt;
    return *value << shift;
}

// "0-2,5" -> {0, 1, 2, 5}; nullopt when it is no list.
std::optional<std::set<std::uint64_t>> id_list(std::string_view text) {
    std::set<std::uint64_t> ids;
    constexpr std::uint64_t max_span = 1 << 16;
    while (!text.empty()) {
        auto comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        auto dash = item.find('-');
        auto first = number(item.substr(0, dash));
        auto last = dash == std::string_view::npos ? first : number(item.substr(dash + 1));
        if (!first || !last || *last < *first || *last - *first > max_span) return std::nullopt;
        for (std::uint64_t id = *first; id <= *last; ++id) ids.insert(id);
    }
    return ids;
}

bool token_matches(std::string_view written, std::string_view read, std::uint64_t page_size) {
    if (written == read) return true;
    auto read_value = number(read);
    if (!read_value) return false;
    constexpr std::uint64_t v1_unlimited_from = std::uint64_t{1} << 62;
    if (written == "-1") return *read_value >= v1_unlimited_from;
    auto bytes = size_in_bytes(written);
    if (!bytes) return false;
    return *bytes == *read_value || (page_size != 0 && *bytes / page_size * page_size == *read_value);
}

bool lists_file(std::string_view file) {
    return file.ends_with(".cpus") || file.ends_with(".mems") || file.ends_with(".cpus.exclusive");
}

bool valid_file_name(std::string_view file) {
    auto dot = file.find('.');
    if (dot == 0 || dot == std::string_view::npos || file.back() == '.') return false;
    return std::all_of(file.begin(), file.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    });
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 3 < text.size()) {
            auto code = text.substr(i + 1, 3);
            if (std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '7'; })) {
                out += static_cast<char>((code[0] - '0') * 64 + (code[1] - '0') * 8 + (code[2] - '0'));
                i += 3;
                continue;
            }
        }
        out += text[i];
    }
    return out;
}

std::vector<std::string> v1_controllers(std::string_view super_options) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= super_options.size()) {
        auto comma = super_options.find(',', start);
        auto option = super_options.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (!option.empty() && option != "rw" && option != "ro" && option.find('=') == std::string_view::npos)
            out.emplace_back(option);
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return out;
}

std::optional<CgroupMount> cgroup_mount(std::string_view line) {
    auto separator = line.find(" - ");
    if (separator == std::string_view::npos) return std::nullopt;
    auto head = tokens(line.substr(0, separator));
    auto tail = tokens(line.substr(separator + 3));
    if (head.size() < 5 || tail.size() < 3) return std::nullopt;
    if (tail[0] == "cgroup2") return CgroupMount{unescape(head[4]), 2, {}};
    if (tail[0] == "cgroup") return CgroupMount{unescape(head[4]), 1, v1_controllers(tail[2])};
    return std::nullopt;
}

}  // namespace

CgroupSetting parse_cgroup_setting(std::string_view text) {
    auto equals = text.find('=');
    if (equals == std::string_view::npos)
        throw UsageError(fmt::format("--cgroup {}: expected FILE=VALUE (cpu.max=\"50000 100000\")", text));
    std::string_view file = text.substr(0, equals);
    std::string_view value = text.substr(equals + 1);
    if (!valid_file_name(file))
        throw UsageError(fmt::format(
            "--cgroup {}: '{}' is no cgroup file (CONTROLLER.NAME of a-z, 0-9, _ and .)", text, file));
    if (std::find(reserved_files.begin(), reserved_files.end(), file) != reserved_files.end())
        throw UsageError(fmt::format("--cgroup {}: {} is written by the jailer itself", text, file));
    if (tokens(value).empty()) throw UsageError(fmt::format("--cgroup {}: empty value", text));
    if (value.find('\n') != std::string_view::npos)
        throw UsageError(fmt::format("--cgroup {}: the value holds a newline", file));
    return CgroupSetting{std::string(file), std::string(value)};
}

std::string_view controller_of(std::string_view file) noexcept {
    return file.substr(0, file.find('.'));
}

std::vector<CgroupMount> parse_cgroup_mounts(std::string_view mountinfo) {
    std::vector<CgroupMount> out;
    while (!mountinfo.empty()) {
        auto newline = mountinfo.find('\n');
        if (auto mount = cgroup_mount(mountinfo.substr(0, newline))) out.push_back(std::move(*mount));
        mountinfo = newline == std::string_view::npos ? std::string_view{} : mountinfo.substr(newline + 1);
    }
    return out;
}

bool cgroup_value_matches(std::string_view file, std::string_view written, std::string_view read,
                          std::uint64_t page_size) {
    auto w = tokens(written);
    auto r = tokens(read);
    if (lists_file(file) && w.size() == 1 && r.size() <= 1) {
        auto written_ids = id_list(w[0]);
        auto read_ids = id_list(r.empty() ? std::string_view{} : r[0]);
        return written_ids && read_ids && *written_ids == *read_ids;
    }
    if (w.empty() || w.size() > r.size()) return false;
    for (std::size_t i = 0; i < w.size(); ++i) {
        if (!token_matches(w[i], r[i], page_size)) return false;
    }
    return true;
}

}  // namespace kvmlet::jail
