#pragma once
// The options of `kvmlet run`, as a table: the parser (command_line.cpp) and the help text
// (help_text.cpp) both walk it, so a new option is one entry here and nothing else.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "vmm/machine/machine_config.hpp"
#include "vmm/security/seccomp.hpp"

namespace kvmlet::cli {

// Longest --cmdline accepted, not counting the NUL the loader adds. A kernel may accept less
// (its boot header's cmdline_size); the loader checks that against the image.
inline constexpr std::size_t max_cmdline_bytes = 4096;

// What `kvmlet run` fills in while it reads its options.
struct RunState {
    MachineConfig config{};
    std::uint64_t host_memory_bytes = 0;  // upper limit for --memory
    bool help = false;                    // --help seen: stop and print the help
    // --config and --api-sock: the microVM is configured the Firecracker way instead.
    std::optional<std::string> config_file{};
    std::optional<std::string> api_sock{};
    // --restore and --mem: checked together once every option is read.
    std::optional<std::string> restore_state{};
    std::optional<std::string> restore_memory{};
    security::SeccompMode seccomp = security::SeccompMode::kill;  // --seccomp, for either way
};

struct OptionSpec {
    std::string_view name{};        // "--cpus"
    std::string_view short_name{};  // "-v", or empty
    std::string_view value_name{};  // "N" for "--cpus N"; empty for a flag, which takes no value
    std::string_view help{};        // may hold '\n' to break a long text
    bool required = false;
    bool repeatable = false;  // may be given more than once; each use adds one item
    // The default as the help shows it, read from a default MachineConfig; null for none.
    std::string (*default_text)(MachineConfig const&) = nullptr;
    // Checks the value and stores it; throws UsageError naming `name` and the value. A flag
    // gets an empty value.
    void (*apply)(RunState& state, std::string_view name, std::string_view value) = nullptr;

    bool flag() const noexcept { return value_name.empty(); }
};

std::span<OptionSpec const> run_options() noexcept;

}  // namespace kvmlet::cli
