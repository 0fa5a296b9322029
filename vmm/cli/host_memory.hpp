#pragma once
// How much RAM the host has, so `--memory` can be refused up front rather than failing later in
// mmap or, worse, in the OOM killer.
#include <cstdint>

namespace kvmlet::cli {

// The host's RAM in bytes (sysinfo's totalram, /proc/meminfo's MemTotal). Throws Error if the
// kernel's answer is unusable.
std::uint64_t host_memory_bytes();

// sysinfo's answer (totalram in units of mem_unit bytes) in bytes; throws Error on zero or overflow.
std::uint64_t host_memory_bytes(std::uint64_t total_units, std::uint32_t unit_bytes);

}  // namespace kvmlet::cli
