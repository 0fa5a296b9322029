#pragma once
// The allow-lists, one per thread kind: what each kvmlet thread may call once it is confined.
// seccomp_filters.cpp holds them, each system call with who needs it.
#include <cstdint>
#include <optional>
#include <vector>

#include "vmm/security/seccomp.hpp"

namespace kvmlet::security {

// One allowed system call, with at most one argument check: (argument & mask) == value. A
// system call listed several times is allowed when any of its rules matches.
struct SyscallRule {
    struct Arg {
        unsigned index;
        std::uint64_t mask;
        std::uint64_t value;
    };
    long number;
    std::optional<Arg> arg;
};

std::vector<SyscallRule> allow_list(Confinement const& confinement);

}  // namespace kvmlet::security
