#pragma once
// What `kvmlet --help` and `kvmlet run --help` print.
#include <string>

namespace kvmlet::cli {

// kvmlet --help: the commands.
std::string usage();

// kvmlet run --help: every option with its default, the exit statuses and the console keys.
std::string run_help();

}  // namespace kvmlet::cli
