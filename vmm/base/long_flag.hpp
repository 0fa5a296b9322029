#pragma once
// Long options in the GNU style that Firecracker's tools take: "--name", "--name value" or
// "--name=value". One table of specs per command (firecracker_command_line.cpp, vmm/jail); each
// spec has at least `name`, `value_name` (empty: the flag takes no value) and `help`, and may have
// `bool repeatable` (without it, a flag given twice is an error). The same table makes the
// command's --help (long_flag_help).
#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vmm/base/error.hpp"  // UsageError

namespace kvmlet {

// The argument at args[i] as a string (a null pointer reads as empty).
inline std::string_view argument(std::span<char const* const> args, std::size_t i) {
    return args[i] == nullptr ? std::string_view{} : std::string_view{args[i]};
}

// Reads the flag at args[i] and its value, leaving `i` at the last argument used, and records it
// in `seen`. Throws UsageError for an unknown flag (naming `help_command`), a repeated one, a
// missing or empty value, or a value given to a flag that takes none.
template <class Flags>
auto take_long_flag(std::span<char const* const> args, std::size_t& i, Flags const& flags,
                    std::vector<std::string_view>& seen, std::string_view help_command)
    -> std::pair<typename Flags::value_type const*, std::string_view> {
    using Spec = typename Flags::value_type;
    std::string_view token = argument(args, i);
    std::optional<std::string_view> inline_value;
    if (auto eq = token.find('='); token.starts_with("--") && eq != std::string_view::npos) {
        inline_value = token.substr(eq + 1);
        token = token.substr(0, eq);
    }
    auto spec = std::find_if(flags.begin(), flags.end(), [&](Spec const& f) { return f.name == token; });
    if (spec == flags.end())
        throw UsageError(
            fmt::format("unknown option {} (see {})", token.empty() ? "''" : token, help_command));
    bool repeatable = false;
    if constexpr (requires { spec->repeatable; }) repeatable = spec->repeatable;
    if (!repeatable && std::find(seen.begin(), seen.end(), spec->name) != seen.end())
        throw UsageError(fmt::format("{}: given more than once", spec->name));
    seen.push_back(spec->name);
    std::string_view value;
    if (!spec->value_name.empty()) {
        if (inline_value) {
            value = *inline_value;
        } else {
            if (i + 1 >= args.size() || args[i + 1] == nullptr)
                throw UsageError(
                    fmt::format("{}: missing value ({} {})", spec->name, spec->name, spec->value_name));
            value = args[++i];
        }
        if (value.empty()) throw UsageError(fmt::format("{}: empty value", spec->name));
    } else if (inline_value) {
        throw UsageError(fmt::format("{} takes no value", spec->name));
    }
    return {&*spec, value};
}

// One row of a --help flag table: "  LEFT" padded to `width` columns, a space, then `help`; a help of
// several lines continues under its first.
inline std::string long_flag_help_row(std::string_view left, std::string_view help, std::size_t width) {
    std::string text(help);
    for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1))
        text.insert(at + 1, std::string(width + 3, ' '));
    return fmt::format("  {:<{}} {}\n", left, width, text);
}

// The --help flag table of `flags`: "--name VALUE" and the help of each, in table order.
template <class Flags>
std::string long_flag_help(Flags const& flags, std::size_t width) {
    std::string out;
    for (auto const& f : flags)
        out += long_flag_help_row(
            f.value_name.empty() ? std::string(f.name) : fmt::format("{} {}", f.name, f.value_name), f.help,
            width);
    return out;
}

}  // namespace kvmlet
