#pragma once
// The calling thread's capabilities (they are per thread in Linux): dropped from its bounding,
// ambient, inheritable, permitted and effective sets, all but the ones it keeps.
#include <span>
#include <string>

namespace kvmlet::security {

// Returns what failed, or an empty string. Unprivileged, the bounding set cannot shrink
// (no CAP_SETPCAP); that is no failure: such a thread has no capabilities to lose.
std::string drop_capabilities(std::span<int const> keep) noexcept;

}  // namespace kvmlet::security
