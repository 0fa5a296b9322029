#pragma once
// The kvmlet command line, read into a Command: what main() should do. Parsing only reads its
// arguments; printing and running are main()'s job.
#include <cstdint>
#include <span>
#include <variant>

#include "vmm/api/firecracker_options.hpp"
#include "vmm/machine/machine_config.hpp"

namespace kvmlet::cli {

struct HelpCommand {};     // kvmlet --help: print usage(), exit 0
struct VersionCommand {};  // kvmlet --version
struct RunHelpCommand {};  // kvmlet run --help: print run_help(), exit 0
struct RunCommand {        // kvmlet run ...: build and run this machine
    MachineConfig config;
    security::SeccompMode seccomp = security::SeccompMode::kill;
};

// The Firecracker way: a config file, the API, or both (`firecracker ...`, `kvmlet firecracker
// ...`, `kvmlet run --config F` or `--api-sock S`).
struct FirecrackerCommand {
    api::FirecrackerOptions options;
};
struct FirecrackerHelpCommand {};     // firecracker --help
struct FirecrackerVersionCommand {};  // firecracker --version

using Command = std::variant<HelpCommand, VersionCommand, RunHelpCommand, RunCommand, FirecrackerCommand,
                             FirecrackerHelpCommand, FirecrackerVersionCommand>;

// `args` excludes argv[0]. `host_memory_bytes` caps --memory (see host_memory.hpp). Throws only
// UsageError, with one line naming the option and value at fault; any input is safe to pass.
Command parse_command_line(std::span<char const* const> args, std::uint64_t host_memory_bytes);

}  // namespace kvmlet::cli
