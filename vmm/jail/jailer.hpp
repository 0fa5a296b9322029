#pragma once
// `kvmlet jail` (and kvmlet called `jailer`): builds the jail, starts the VMM in it, waits for it,
// removes the jail and the cgroup, and exits with the VMM's status (docs/jailer.md).
#include <span>

namespace kvmlet::jail {

// `args` excludes argv[0] and the word "jail". Prints its own error lines ("kvmlet jail: <step>:
// ..."); returns the exit status: 2 for a usage error, 1 for a failed step, else the VMM's
// (128 + the signal that ended it).
int run_jail(std::span<char const* const> args) noexcept;

}  // namespace kvmlet::jail
