#include "vmm/cli/firecracker_command_line.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "vmm/api/api_router.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/long_flag.hpp"

namespace kvmlet::cli {
namespace {

using api::FirecrackerOptions;

struct FlagSpec {
    std::string_view name;
    std::string_view value_name;  // empty: takes no value
    std::string_view help;
    void (*apply)(FirecrackerOptions&, std::string_view value);
};

void check_instance_id(std::string_view id) {
    bool ok = !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
    });
    if (!ok) throw UsageError(fmt::format("--id {}: 1 to 64 characters of A-Z, a-z, 0-9, - and _", id));
}

void ignored(FirecrackerOptions&, std::string_view) {}

// Firecracker's file is BPF compiled by its seccompiler from its own JSON lists; kvmlet's threads
// and system calls differ, so its own filters apply (docs/security.md).
void seccomp_filter(FirecrackerOptions&, std::string_view) {
    log::warn("--seccomp-filter: accepted but not acted on (kvmlet installs its own filters)");
}

constexpr std::array<FlagSpec, 21> flags{{
    {"--api-sock", "PATH", "the API's Unix socket (default /run/firecracker.socket)",
     [](FirecrackerOptions& o, std::string_view v) { o.api_sock = std::string(v); }},
    {"--config-file", "PATH", "a config file in Firecracker's schema: the microVM boots at once",
     [](FirecrackerOptions& o, std::string_view v) { o.config_file = std::string(v); }},
    {"--no-api", "", "no API socket (needs --config-file)",
     [](FirecrackerOptions& o, std::string_view) { o.api_sock.reset(); }},
    {"--id", "ID", "the microVM's id (GET /)",
     [](FirecrackerOptions& o, std::string_view v) {
         check_instance_id(v);
         o.id = std::string(v);
     }},
    {"--boot-timer", "", "accepted: kvmlet's boot timer device is always present", ignored},
    {"--level", "LEVEL", "log level: Error, Warning, Info, Debug, Trace or Off",
     [](FirecrackerOptions& o, std::string_view v) { o.level = std::string(v); }},
    {"--log-path", "PATH", "write the log to this file or named pipe",
     [](FirecrackerOptions& o, std::string_view v) { o.log_path = std::string(v); }},
    {"--show-level", "", "log lines show their level (errors always do)",
     [](FirecrackerOptions& o, std::string_view) { o.show_level = true; }},
    {"--show-log-origin", "", "log lines show their source file and line",
     [](FirecrackerOptions& o, std::string_view) { o.show_log_origin = true; }},
    {"--module", "MODULE", "log only lines from this source directory (e.g. devices/virtio/net)",
     [](FirecrackerOptions& o, std::string_view v) { o.module = std::string(v); }},
    {"--metadata", "PATH", "a JSON file: the initial contents of the MMDS",
     [](FirecrackerOptions& o, std::string_view v) { o.metadata = std::string(v); }},
    {"--seccomp-filter", "PATH", "accepted, not acted on: kvmlet installs its own filters", seccomp_filter},
    {"--no-seccomp", "", "no seccomp filters (kvmlet run --seccomp off)",
     [](FirecrackerOptions& o, std::string_view) { o.seccomp = security::SeccompMode::off; }},
    {"--http-api-max-payload-size", "BYTES", "accepted; the limit stays 51200", ignored},
    {"--mmds-size-limit", "BYTES", "accepted; the limit stays 51200", ignored},
    {"--start-time-us", "US", "accepted (passed by Firecracker's jailer)", ignored},
    {"--start-time-cpu-us", "US", "accepted (passed by Firecracker's jailer)", ignored},
    {"--parent-cpu-time-us", "US", "accepted (passed by Firecracker's jailer)", ignored},
    {"--enable-pci", "", "virtio over PCI instead of MMIO",
     [](FirecrackerOptions& o, std::string_view) { o.enable_pci = true; }},
    {"--verbose", "", "log more detail (kvmlet's own flag)",
     [](FirecrackerOptions& o, std::string_view) { o.verbose = true; }},
    {"--help", "", "print this help and exit", ignored},
}};

}  // namespace

std::string firecracker_version_text() {
    return fmt::format(
        "Firecracker v{}\n\nkvmlet {} (speaks a subset of Firecracker's API and command line)\n",
        api::firecracker_version, KVMLET_VERSION);
}

std::string firecracker_help() {
    std::string out =
        "Usage: firecracker [OPTIONS]  (kvmlet speaking Firecracker's command line)\n\n"
        "Starts a microVM configured by --config-file, over the API socket, or both; exits when the\n"
        "guest powers off. See docs/api.md for what differs from Firecracker.\n\nOptions:\n";
    return out + long_flag_help(flags, 30) +
           long_flag_help_row("--version", "print the version and exit", 30);
}

Command parse_firecracker_command_line(std::span<char const* const> args) {
    FirecrackerOptions options;
    std::vector<std::string_view> seen;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view const token = argument(args, i);
        if (token == "--version" || token == "-V") return FirecrackerVersionCommand{};
        if (token == "--help" || token == "-h") return FirecrackerHelpCommand{};
        auto [spec, value] = take_long_flag(args, i, flags, seen, "firecracker --help");
        spec->apply(options, value);
    }
    bool no_api = std::find(seen.begin(), seen.end(), "--no-api") != seen.end();
    if (no_api && !options.config_file) throw UsageError("--no-api needs --config-file");
    if (no_api && std::find(seen.begin(), seen.end(), "--api-sock") != seen.end())
        throw UsageError("--no-api and --api-sock contradict each other");
    return FirecrackerCommand{std::move(options)};
}

}  // namespace kvmlet::cli
