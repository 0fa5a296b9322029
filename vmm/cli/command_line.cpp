#include "vmm/cli/command_line.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/cli/firecracker_command_line.hpp"
#include "vmm/cli/run_options.hpp"

namespace kvmlet::cli {

namespace {

using Args = std::span<char const* const>;

std::string_view arg_at(Args args, std::size_t i) noexcept {
    return args[i] == nullptr ? std::string_view{} : std::string_view{args[i]};
}

bool looks_like_option(std::string_view token) noexcept {
    return token.size() > 1 && token[0] == '-';
}

// "--name=value" splits at the first '='; anything else is all name.
std::pair<std::string_view, std::optional<std::string_view>> split_option(std::string_view token) noexcept {
    auto const equals = token.find('=');
    if (!token.starts_with("--") || equals == std::string_view::npos) return {token, std::nullopt};
    return {token.substr(0, equals), token.substr(equals + 1)};
}

std::optional<std::size_t> find_option(std::span<OptionSpec const> options, std::string_view name) noexcept {
    for (std::size_t i = 0; i < options.size(); ++i) {
        if (options[i].name == name || (!options[i].short_name.empty() && options[i].short_name == name))
            return i;
    }
    return std::nullopt;
}

// The option's value: the text after '=', or the next argument, which must not itself start with
// "--" (so `--kernel --cpus 2` is a missing value, not a kernel named "--cpus"). Advances `i`.
std::string_view take_value(OptionSpec const& spec, std::optional<std::string_view> inline_value, Args args,
                            std::size_t& i) {
    if (spec.flag()) {
        if (inline_value)
            throw UsageError(fmt::format("{}={}: {} takes no value", spec.name, *inline_value, spec.name));
        return {};
    }
    if (inline_value) return *inline_value;
    if (i + 1 >= args.size() || arg_at(args, i + 1).starts_with("--"))
        throw UsageError(fmt::format("{}: missing value ({} {})", spec.name, spec.name, spec.value_name));
    return arg_at(args, ++i);
}

void check_required(std::span<OptionSpec const> options, std::vector<bool> const& seen) {
    for (std::size_t i = 0; i < options.size(); ++i) {
        if (options[i].required && !seen[i])
            throw UsageError(
                fmt::format("missing {} {} (see kvmlet run --help)", options[i].name, options[i].value_name));
    }
}

// `kvmlet run --config F` and/or `--api-sock S`: the options of the machine come from the file or
// the API, so no other option may set them.
Command firecracker_run(std::span<OptionSpec const> options, std::vector<bool> const& seen, RunState& state) {
    for (std::size_t i = 0; i < options.size(); ++i) {
        std::string_view name = options[i].name;
        if (seen[i] && name != "--config" && name != "--api-sock" && name != "--verbose" &&
            name != "--seccomp")
            throw UsageError(fmt::format(
                "{}: not with --config or --api-sock (the config file or the API sets it)", name));
    }
    api::FirecrackerOptions fc;
    fc.api_sock = state.api_sock;
    fc.config_file = state.config_file;
    fc.verbose = state.config.verbose;
    fc.seccomp = state.seccomp;
    return FirecrackerCommand{std::move(fc)};
}

// `kvmlet run --restore S --mem M`: the snapshot sets what the options that shape the machine
// would, and there is no kernel to load.
void check_restore(std::span<OptionSpec const> options, std::vector<bool>& seen, RunState& state) {
    if (!state.restore_state && !state.restore_memory) return;
    if (!state.restore_state) throw UsageError("--mem: only with --restore");
    if (!state.restore_memory) throw UsageError("--restore: missing --mem PATH (the snapshot's memory file)");
    constexpr std::string_view allowed[] = {"--restore", "--mem",     "--console", "--host-compat",
                                            "--seccomp", "--verbose", "--timeline"};
    for (std::size_t i = 0; i < options.size(); ++i) {
        bool const ok =
            std::find(std::begin(allowed), std::end(allowed), options[i].name) != std::end(allowed);
        if (seen[i] && !ok)
            throw UsageError(
                fmt::format("{}: not with --restore (the snapshot sets the machine)", options[i].name));
        if (options[i].required) seen[i] = true;  // --kernel: the snapshot's memory holds it
    }
    state.config.restore = RestoreFiles{*state.restore_state, *state.restore_memory};
}

Command parse_run(Args args, std::uint64_t host_memory_bytes) {
    RunState state{.host_memory_bytes = host_memory_bytes};
    auto const options = run_options();
    std::vector<bool> seen(options.size());
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view const token = arg_at(args, i);
        if (!looks_like_option(token))
            throw UsageError(
                fmt::format("unexpected argument {} (see kvmlet run --help)", token.empty() ? "''" : token));
        auto const [name, inline_value] = split_option(token);
        auto const index = find_option(options, name);
        if (!index) throw UsageError(fmt::format("unknown option {} (see kvmlet run --help)", name));
        OptionSpec const& spec = options[*index];
        std::string_view const value = take_value(spec, inline_value, args, i);
        if (seen[*index] && !spec.repeatable)
            throw UsageError(fmt::format("{}: given more than once", spec.name));
        seen[*index] = true;
        spec.apply(state, spec.name, value);
        if (state.help) return RunHelpCommand{};
    }
    if (state.config_file || state.api_sock) return firecracker_run(options, seen, state);
    check_restore(options, seen, state);
    check_required(options, seen);
    return RunCommand{std::move(state.config), state.seccomp};
}

// A top-level word: a subcommand, or an option that stands alone (--help, --version).
struct TopLevelEntry {
    std::string_view name;
    Command (*parse)(std::string_view name, Args rest, std::uint64_t host_memory_bytes);
};

template <class C>
Command alone(std::string_view name, Args rest, std::uint64_t) {
    if (!rest.empty())
        throw UsageError(fmt::format("unexpected argument {} after {}", arg_at(rest, 0), name));
    return C{};
}

constexpr std::array<TopLevelEntry, 5> top_level{{
    {"--help", alone<HelpCommand>},
    {"-h", alone<HelpCommand>},
    {"--version", alone<VersionCommand>},
    {"run",
     [](std::string_view, Args rest, std::uint64_t host_memory) { return parse_run(rest, host_memory); }},
    {"firecracker",
     [](std::string_view, Args rest, std::uint64_t) { return parse_firecracker_command_line(rest); }},
}};

}  // namespace

Command parse_command_line(Args args, std::uint64_t host_memory_bytes) {
    if (args.empty()) throw UsageError("missing command (see kvmlet --help)");
    std::string_view const first = arg_at(args, 0);
    // How a jailer starts the VMM: `/<exec-name> --id ID ...` (docs/jailer.md).
    if (first == "--id" || first.starts_with("--id=")) return parse_firecracker_command_line(args);
    for (auto const& entry : top_level) {
        if (entry.name == first) return entry.parse(first, args.subspan(1), host_memory_bytes);
    }
    if (looks_like_option(first))
        throw UsageError(fmt::format("unknown option {} (see kvmlet --help)", first));
    throw UsageError(fmt::format("unknown command {} (see kvmlet --help)", first.empty() ? "''" : first));
}

}  // namespace kvmlet::cli
