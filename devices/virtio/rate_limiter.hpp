#pragma once
// Token buckets as Firecracker's RateLimiter schema describes them (firecracker-api.yaml,
// RateLimiter and TokenBucket): a limiter has an optional bandwidth bucket (tokens are bytes) and
// an optional ops bucket (tokens are requests); each holds at most `size` tokens, gains `size`
// tokens per `refill_time` continuously, and starts full. `one_time_burst` tokens come on top at
// the start; they are spent first and never come back.
//
// A request larger than the bucket (bytes > size) could never pass if it had to fit. It passes
// once the bucket is full (Firecracker allows it then too, and makes the limiter wait for what it
// overdrew): the bucket goes into debt by the excess, and the refill pays the debt back before
// the bucket holds anything again, so the long-run rate stays size per refill_time.
//
// Pure arithmetic: no clock, no timers, no locks. Time comes in as an argument, so tests are
// exact; the caller (a device) owns the limiter and asks its DeviceHost for the timer.
#include <chrono>
#include <cstdint>
#include <optional>

namespace kvmlet {
class StateWriter;
class StateReader;
}  // namespace kvmlet

namespace kvmlet::virtio {

using RateClock = std::chrono::steady_clock;

struct BucketConfig {
    std::uint64_t size = 0;  // tokens; 0 disables the bucket
    std::uint64_t one_time_burst = 0;
    std::chrono::milliseconds refill_time{0};  // for `size` tokens; 0 disables the bucket

    bool disabled() const noexcept { return size == 0 || refill_time.count() <= 0; }
    bool operator==(BucketConfig const&) const = default;
};

// Firecracker's RateLimiter object. As a configuration a missing or disabled bucket means no
// limit; as a change (update(), PATCH) a missing bucket means "keep the one there is", a disabled
// one removes it, any other replaces it with a new, full bucket.
struct RateLimiterConfig {
    std::optional<BucketConfig> bandwidth{};  // bytes
    std::optional<BucketConfig> ops{};        // requests
    bool operator==(RateLimiterConfig const&) const = default;
};

class TokenBucket {
public:
    using TimePoint = RateClock::time_point;

    // Full, plus the one-time burst. `config` must not be disabled().
    explicit TokenBucket(BucketConfig const& config) noexcept;

    // nullopt when `tokens` can be taken at `now`; otherwise the earliest time they can.
    std::optional<TimePoint> ready_at(std::uint64_t tokens, TimePoint now) noexcept;
    // Takes `tokens` (after ready_at said nullopt for them at the same `now`).
    void take(std::uint64_t tokens) noexcept;
    // Takes up to `tokens` as they are at `now` (burst first), for a consumer that can use part of
    // what it asked for; returns how many. Never overdraws.
    std::uint64_t take_up_to(std::uint64_t tokens, TimePoint now) noexcept;

    BucketConfig const& config() const noexcept { return config_; }
    // What could be taken without waiting (burst included), as of the last refill.
    std::uint64_t available() const noexcept { return burst_ + budget_; }

    // A snapshot's bytes (docs/snapshot.md): the configuration and the tokens as of the last
    // refill. A loaded bucket refills from the time of its first use: time spent saved earns
    // nothing, as the guest's clock does not count it either. load() throws Error on a bucket
    // that cannot be (disabled, more tokens than it holds, debt beside a budget).
    void save(StateWriter& out) const;
    static TokenBucket load(StateReader& in);

private:
    void refill(TimePoint now) noexcept;
    std::uint64_t refill_ns() const noexcept;

    BucketConfig config_;
    std::uint64_t burst_ = 0;        // what is left of the one-time burst
    std::uint64_t budget_ = 0;       // <= size
    std::uint64_t debt_ = 0;         // overdrawn by an oversized request; budget_ is 0 while > 0
    std::uint64_t fraction_ = 0;     // of the next token, in tokens x ns (< refill_ns())
    std::optional<TimePoint> last_;  // the refill accounted for time up to here
};

class RateLimiter {
public:
    using TimePoint = RateClock::time_point;

    RateLimiter() = default;  // no limits
    explicit RateLimiter(RateLimiterConfig const& config) noexcept { update(config); }

    // One request moving `bytes`: one token of ops and `bytes` of bandwidth, both or neither.
    // nullopt when granted (the tokens are taken); otherwise the earliest time the same request
    // can pass, nothing taken.
    std::optional<TimePoint> consume(std::uint64_t bytes, TimePoint now) noexcept;
    // Applies a change (see RateLimiterConfig): the buckets it names start afresh.
    void update(RateLimiterConfig const& change) noexcept;

    bool limited() const noexcept { return bandwidth_ || ops_; }
    // The configuration in force (disabled buckets left out).
    RateLimiterConfig config() const noexcept;

    // A snapshot's bytes: each bucket (opt) with its tokens (TokenBucket::save). load() throws
    // Error on a bucket that cannot be.
    void save(StateWriter& out) const;
    void load(StateReader& in);

private:
    std::optional<TokenBucket> bandwidth_;
    std::optional<TokenBucket> ops_;
};

}  // namespace kvmlet::virtio
