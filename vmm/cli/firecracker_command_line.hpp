#pragma once
// Firecracker's command line, for when kvmlet is run as `firecracker` (a symlink; orchestrators
// call it by that name) or as `kvmlet firecracker ...`.
#include <span>
#include <string>

#include "vmm/cli/command_line.hpp"

namespace kvmlet::cli {

// `args` excludes argv[0] (and the word "firecracker" after kvmlet). Throws UsageError.
Command parse_firecracker_command_line(std::span<char const* const> args);
std::string firecracker_help();
// What --version prints: Firecracker's first line (Kata parses it), then kvmlet's.
std::string firecracker_version_text();

}  // namespace kvmlet::cli
