#pragma once
// Rate limits as the command line writes them (--disk ...,rate=..., --net ...,rate=...):
//
//   LIMIT  := bw:SIZE/PERIOD[:burst=SIZE] | ops:COUNT/PERIOD[:burst=COUNT]
//   SIZE   := bytes, a whole number with an optional K, M or G (binary: 50M = 50 MiB)
//   COUNT  := requests (or packets), a whole number
//   PERIOD := [N]s | [N]ms, 1 ms to 24 h: the refill time of SIZE (COUNT) tokens
//
// "bw:50M/s" is Firecracker's bandwidth bucket {size: 50 MiB, refill_time: 1000}, "ops:200/100ms"
// its ops bucket {size: 200, refill_time: 100}; burst= is its one_time_burst.
#include <optional>
#include <string>
#include <string_view>

#include "devices/virtio/rate_limiter.hpp"

namespace kvmlet::cli {

// Whether `item` is a LIMIT (starts with "bw:" or "ops:").
bool is_rate_limit(std::string_view item) noexcept;
// Adds the bucket `limit` describes to `limiter`; returns what is wrong with it instead (a
// bucket given twice is wrong too), changing nothing.
std::optional<std::string> add_rate_limit(virtio::RateLimiterConfig& limiter, std::string_view limit);

}  // namespace kvmlet::cli
