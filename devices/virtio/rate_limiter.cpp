#include "devices/virtio/rate_limiter.hpp"

#include <algorithm>
#include <limits>

#include "vmm/base/state_stream.hpp"

namespace kvmlet::virtio {
namespace {

using u128 = unsigned __int128;

// Bounds that keep every product below 2^128: a refill time of at most ~146 years, and no wait
// longer than that either.
constexpr std::uint64_t max_refill_ns = std::uint64_t{1} << 62;
constexpr std::uint64_t max_wait_ns = std::uint64_t{1} << 62;
constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

std::uint64_t ceil_div(u128 a, u128 b) {
    u128 q = (a + b - 1) / b;
    return q > u64_max ? u64_max : static_cast<std::uint64_t>(q);
}

RateClock::duration nanoseconds(std::uint64_t ns) {
    return std::chrono::duration_cast<RateClock::duration>(
        std::chrono::nanoseconds(static_cast<std::int64_t>(std::min(ns, max_wait_ns))));
}

}  // namespace

TokenBucket::TokenBucket(BucketConfig const& config) noexcept
    : config_(config), burst_(config.one_time_burst), budget_(config.size) {}

std::uint64_t TokenBucket::refill_ns() const noexcept {
    auto const ms = static_cast<std::uint64_t>(std::max<std::int64_t>(config_.refill_time.count(), 1));
    return ms > max_refill_ns / 1'000'000 ? max_refill_ns : ms * 1'000'000;
}

// Adds what the time since last_ earned: first to the debt, then to the budget, up to size. The
// part of a token earned so far is kept (fraction_, in tokens x ns / refill_ns), so none is lost
// between refills however often they come.
void TokenBucket::refill(TimePoint now) noexcept {
    TimePoint const since = last_.value_or(now);
    last_ = std::max(since, now);
    if (now <= since) return;
    if (debt_ == 0 && budget_ == config_.size) {
        fraction_ = 0;
        return;
    }
    auto const elapsed = static_cast<std::uint64_t>(std::chrono::nanoseconds(now - since).count());
    u128 const deficit = u128{debt_} + (config_.size - budget_);
    u128 const total = u128{elapsed} * config_.size + fraction_;
    u128 const earned = total / refill_ns();
    if (earned >= deficit) {
        debt_ = 0;
        budget_ = config_.size;
        fraction_ = 0;
        return;
    }
    fraction_ = static_cast<std::uint64_t>(total % refill_ns());
    auto const tokens = static_cast<std::uint64_t>(earned);  // < deficit, which is < 2^64 here
    std::uint64_t const paid = std::min(debt_, tokens);
    debt_ -= paid;
    budget_ += tokens - paid;
}

std::optional<TokenBucket::TimePoint> TokenBucket::ready_at(std::uint64_t tokens, TimePoint now) noexcept {
    refill(now);
    std::uint64_t const rest = tokens > burst_ ? tokens - burst_ : 0;
    if (rest == 0) return std::nullopt;
    // An oversized request waits for a full bucket.
    std::uint64_t const target = std::min(rest, config_.size);
    if (debt_ == 0 && budget_ >= target) return std::nullopt;
    u128 const missing = u128{debt_} + target - budget_;  // >= 1
    std::uint64_t const wait = ceil_div(missing * refill_ns() - fraction_, config_.size);
    return *last_ + nanoseconds(wait);
}

void TokenBucket::take(std::uint64_t tokens) noexcept {
    std::uint64_t const from_burst = std::min(burst_, tokens);
    burst_ -= from_burst;
    std::uint64_t const rest = tokens - from_burst;
    if (rest <= budget_) {
        budget_ -= rest;
        return;
    }
    std::uint64_t const over = rest - budget_;
    debt_ = over > u64_max - debt_ ? u64_max : debt_ + over;
    budget_ = 0;
}

std::uint64_t TokenBucket::take_up_to(std::uint64_t tokens, TimePoint now) noexcept {
    refill(now);
    std::uint64_t const n = std::min(tokens, burst_ + budget_);
    take(n);
    return n;
}

std::optional<RateLimiter::TimePoint> RateLimiter::consume(std::uint64_t bytes, TimePoint now) noexcept {
    std::optional<TimePoint> until;
    auto const wait_for = [&](std::optional<TimePoint> t) {
        if (t && (!until || *t > *until)) until = t;
    };
    if (bandwidth_) wait_for(bandwidth_->ready_at(bytes, now));
    if (ops_) wait_for(ops_->ready_at(1, now));
    if (until) return until;
    if (bandwidth_) bandwidth_->take(bytes);
    if (ops_) ops_->take(1);
    return std::nullopt;
}

void RateLimiter::update(RateLimiterConfig const& change) noexcept {
    auto const apply = [](std::optional<TokenBucket>& bucket, std::optional<BucketConfig> const& config) {
        if (!config) return;
        if (config->disabled())
            bucket.reset();
        else
            bucket.emplace(*config);
    };
    apply(bandwidth_, change.bandwidth);
    apply(ops_, change.ops);
}

RateLimiterConfig RateLimiter::config() const noexcept {
    RateLimiterConfig out;
    if (bandwidth_) out.bandwidth = bandwidth_->config();
    if (ops_) out.ops = ops_->config();
    return out;
}

}  // namespace kvmlet::virtio

namespace kvmlet::virtio {

void TokenBucket::save(StateWriter& out) const {
    out.put(config_.size);
    out.put(config_.one_time_burst);
    out.put(static_cast<std::int64_t>(config_.refill_time.count()));
    out.put(burst_);
    out.put(budget_);
    out.put(debt_);
    out.put(fraction_);
}

TokenBucket TokenBucket::load(StateReader& in) {
    BucketConfig config;
    config.size = in.get<std::uint64_t>();
    config.one_time_burst = in.get<std::uint64_t>();
    config.refill_time = std::chrono::milliseconds(in.get<std::int64_t>());
    if (config.disabled()) throw in.malformed("a token bucket of size 0 or refill time 0");
    TokenBucket bucket(config);
    bucket.burst_ = in.get<std::uint64_t>();
    bucket.budget_ = in.get<std::uint64_t>();
    bucket.debt_ = in.get<std::uint64_t>();
    bucket.fraction_ = in.get<std::uint64_t>();
    if (bucket.burst_ > config.one_time_burst || bucket.budget_ > config.size)
        throw in.malformed("a token bucket holds more tokens than its size");
    if (bucket.debt_ != 0 && bucket.budget_ != 0) throw in.malformed("a token bucket in debt has a budget");
    if (bucket.fraction_ >= bucket.refill_ns())
        throw in.malformed("a token bucket's fraction is a whole token");
    return bucket;
}

void RateLimiter::save(StateWriter& out) const {
    for (auto const* bucket : {&bandwidth_, &ops_}) {
        out.put_bool(bucket->has_value());
        if (*bucket) (*bucket)->save(out);
    }
}

void RateLimiter::load(StateReader& in) {
    for (auto* bucket : {&bandwidth_, &ops_}) {
        bucket->reset();
        if (in.get_bool()) bucket->emplace(TokenBucket::load(in));
    }
}

}  // namespace kvmlet::virtio
