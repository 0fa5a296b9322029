#include "vmm/cli/rate_limit_option.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdint>

namespace kvmlet::cli {
namespace {

constexpr std::uint64_t max_tokens = 0x7fff'ffff'ffff'ffff;  // Firecracker's int64 fields
constexpr std::int64_t max_period_ms = 24 * 3600 * 1000;

// A whole number at the start of `text`, consumed from it.
std::optional<std::uint64_t> leading_number(std::string_view& text) {
    std::uint64_t n = 0;
    auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || end == text.data()) return std::nullopt;
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));
    return n;
}

// SIZE (with_units) or COUNT; nullopt when malformed, zero or too large.
std::optional<std::uint64_t> token_count(std::string_view text, bool with_units) {
    auto n = leading_number(text);
    if (!n) return std::nullopt;
    int shift = 0;
    if (with_units && text.size() == 1) {
        switch (text[0]) {
            case 'K':
            case 'k':
                shift = 10;
                break;
            case 'M':
            case 'm':
                shift = 20;
                break;
            case 'G':
            case 'g':
                shift = 30;
                break;
            default:
                return std::nullopt;
        }
        text.remove_prefix(1);
    }
    if (!text.empty() || *n == 0 || *n > (max_tokens >> shift)) return std::nullopt;
    return *n << shift;
}

std::optional<std::chrono::milliseconds> period(std::string_view text) {
    std::uint64_t count = 1;
    if (!text.empty() && text[0] >= '0' && text[0] <= '9') {
        auto n = leading_number(text);
        if (!n || *n == 0 || *n > static_cast<std::uint64_t>(max_period_ms)) return std::nullopt;
        count = *n;
    }
    std::uint64_t unit_ms = 0;
    if (text == "s") unit_ms = 1000;
    if (text == "ms") unit_ms = 1;
    if (unit_ms == 0 || count > static_cast<std::uint64_t>(max_period_ms) / unit_ms) return std::nullopt;
    return std::chrono::milliseconds(static_cast<std::int64_t>(count * unit_ms));
}

std::optional<virtio::BucketConfig> bucket(std::string_view text, bool bytes) {
    std::optional<std::string_view> burst;
    if (auto colon = text.find(':'); colon != std::string_view::npos) {
        if (text.substr(colon + 1).rfind("burst=", 0) != 0) return std::nullopt;
        burst = text.substr(colon + 7);
        text = text.substr(0, colon);
    }
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto size = token_count(text.substr(0, slash), bytes);
    auto refill = period(text.substr(slash + 1));
    if (!size || !refill) return std::nullopt;
    virtio::BucketConfig b{.size = *size, .one_time_burst = 0, .refill_time = *refill};
    if (burst) {
        auto n = token_count(*burst, bytes);
        if (!n) return std::nullopt;
        b.one_time_burst = *n;
    }
    return b;
}

}  // namespace

bool is_rate_limit(std::string_view item) noexcept {
    return item.starts_with("bw:") || item.starts_with("ops:");
}

std::optional<std::string> add_rate_limit(virtio::RateLimiterConfig& limiter, std::string_view limit) {
    bool const bw = limit.starts_with("bw:");
    if (!bw && !limit.starts_with("ops:"))
        return fmt::format("rate limit '{}': expected bw:SIZE/PERIOD or ops:COUNT/PERIOD", limit);
    auto& slot = bw ? limiter.bandwidth : limiter.ops;
    if (slot) return fmt::format("rate limit '{}': {} given twice", limit, bw ? "bw" : "ops");
    auto b = bucket(limit.substr(bw ? 3 : 4), bw);
    if (!b)
        return fmt::format(
            "rate limit '{}': expected {} (a number above 0{}; PERIOD s, ms, Ns or Nms up to 24 h)", limit,
            bw ? "bw:SIZE/PERIOD[:burst=SIZE]" : "ops:COUNT/PERIOD[:burst=COUNT]",
            bw ? " with an optional K, M or G" : "");
    slot = *b;
    return std::nullopt;
}

}  // namespace kvmlet::cli
