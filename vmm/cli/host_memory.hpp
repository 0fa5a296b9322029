#pragma once
// How much RAM the host has, so `--memory` can be refused up front rather than failing later in
// mmap or, worse, in the OOM killer.
#include <cstdint>
#include <optional>
#include <string_view>

namespace kvmlet::cli {

// MemTotal from /proc/meminfo, in bytes. Throws Error if the file cannot be read or has no
// usable MemTotal line.
std::uint64_t host_memory_bytes();

// The MemTotal line of /proc/meminfo text ("MemTotal:  16303424 kB") in bytes, or nullopt.
std::optional<std::uint64_t> parse_meminfo_total(std::string_view meminfo) noexcept;

}  // namespace kvmlet::cli
