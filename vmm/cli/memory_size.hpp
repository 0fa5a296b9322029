#pragma once
// Memory sizes as people write them on a command line ("512M", "2G", "4096KiB"), and back.
#include <cstdint>
#include <string>
#include <string_view>

#include "vmm/base/result.hpp"

namespace kvmlet::cli {

// A decimal number with an optional unit K, M, G or T (binary: K = 1024), case-insensitive,
// optionally followed by "B" or "iB" ("512M", "512MB", "512MiB" are equal). "B" alone means
// bytes; a bare number means MiB, as in QEMU's -m. Errors: "not a size ..." or "too large".
Result<std::uint64_t> parse_memory_size(std::string_view text);

// "15.6 GiB", "128 MiB", "512 B": the largest binary unit that keeps the number >= 1.
std::string format_memory_size(std::uint64_t bytes);

}  // namespace kvmlet::cli
