#include "devices/virtio/rate_limiter.hpp"

#include <catch2/catch.hpp>

namespace kvmlet::test {
namespace {

using virtio::BucketConfig;
using virtio::RateLimiter;
using virtio::RateLimiterConfig;
using virtio::TokenBucket;
using namespace std::chrono_literals;
using TimePoint = virtio::RateClock::time_point;

constexpr TimePoint t0{1s};

BucketConfig bucket(std::uint64_t size, std::chrono::milliseconds refill, std::uint64_t burst = 0) {
    return {.size = size, .one_time_burst = burst, .refill_time = refill};
}

TEST_CASE("a token bucket starts full and then refills continuously, size tokens per refill time") {
    TokenBucket b(bucket(1000, 1000ms));
    CHECK_FALSE(b.ready_at(1000, t0));
    b.take(1000);
    auto until = b.ready_at(100, t0);
    REQUIRE(until);
    CHECK(*until == t0 + 100ms);  // 100 tokens take 100 ms
    CHECK(b.ready_at(100, t0 + 99ms));
    CHECK_FALSE(b.ready_at(100, t0 + 100ms));
    b.take(100);
    // Never more than full, however long it waits.
    CHECK_FALSE(b.ready_at(1000, t0 + 1h));
    CHECK(b.available() == 1000);
}

TEST_CASE("a token bucket loses no fractions of a token between refills") {
    TokenBucket b(bucket(3, 1000ms));  // one token every 333.33 ms
    b.take(3);
    CHECK(b.ready_at(1, t0));  // the refill counts from here
    TimePoint now = t0;
    std::uint64_t taken = 0;
    for (int i = 0; i < 3000; ++i) {  // 3000 looks, 1 ms apart: 3 s
        now += 1ms;
        if (!b.ready_at(1, now)) {
            b.take(1);
            ++taken;
        }
    }
    CHECK(taken == 9);
}

TEST_CASE("the one-time burst is spent first and never refilled") {
    TokenBucket b(bucket(100, 1000ms, 500));
    CHECK(b.available() == 600);
    CHECK_FALSE(b.ready_at(600, t0));
    b.take(600);
    CHECK(b.ready_at(1, t0));
    CHECK_FALSE(b.ready_at(100, t0 + 1s));
    b.take(100);
    CHECK(b.available() == 0);
    CHECK_FALSE(b.ready_at(100, t0 + 10s));
    CHECK(b.available() == 100);  // the burst did not come back
}

TEST_CASE("part of a request can come from the burst and the rest from the bucket") {
    TokenBucket b(bucket(100, 1000ms, 50));
    CHECK_FALSE(b.ready_at(120, t0));
    b.take(120);
    CHECK(b.available() == 30);
    // 150 would need the burst again: it waits for a full bucket plus nothing, not for ever.
    auto until = b.ready_at(100, t0);
    REQUIRE(until);
    CHECK(*until == t0 + 700ms);
}

TEST_CASE("a request larger than the bucket passes when the bucket is full, and the debt is paid back") {
    TokenBucket b(bucket(1000, 1000ms));
    b.take(500);
    auto until = b.ready_at(3000, t0);
    REQUIRE(until);
    CHECK(*until == t0 + 500ms);  // it waits for a full bucket, not for 3000 tokens
    CHECK_FALSE(b.ready_at(3000, t0 + 500ms));
    b.take(3000);  // 2000 in debt
    auto next = b.ready_at(1, t0 + 500ms);
    REQUIRE(next);
    CHECK(*next == t0 + 500ms + 2001ms);  // the debt first, then one token
    CHECK(b.ready_at(1, t0 + 2500ms));
    CHECK_FALSE(b.ready_at(1, t0 + 2501ms));
}

TEST_CASE("a rate limiter takes bandwidth and ops together or not at all") {
    RateLimiter limiter(RateLimiterConfig{.bandwidth = bucket(4096, 1000ms), .ops = bucket(2, 1000ms)});
    CHECK_FALSE(limiter.consume(1000, t0));
    CHECK_FALSE(limiter.consume(1000, t0));
    auto until = limiter.consume(1000, t0);  // the ops bucket is empty; bandwidth had 2096
    REQUIRE(until);
    CHECK(*until == t0 + 500ms);
    // Nothing was taken from bandwidth by the refused request: 2096 + 500 ms of refill is full.
    CHECK_FALSE(limiter.consume(4096, t0 + 500ms));
}

TEST_CASE("a rate limiter waits for the slower of its buckets") {
    RateLimiter limiter(RateLimiterConfig{.bandwidth = bucket(1000, 1000ms), .ops = bucket(10, 1000ms)});
    CHECK_FALSE(limiter.consume(1000, t0));
    auto until = limiter.consume(500, t0);
    REQUIRE(until);
    CHECK(*until == t0 + 500ms);
}

TEST_CASE("a rate limiter without buckets, or with size or refill time 0, grants everything") {
    RateLimiter none;
    CHECK_FALSE(none.limited());
    CHECK_FALSE(none.consume(~std::uint64_t{0}, t0));
    RateLimiter zero(RateLimiterConfig{.bandwidth = bucket(0, 1000ms), .ops = bucket(10, 0ms)});
    CHECK_FALSE(zero.limited());
    for (int i = 0; i < 100; ++i) CHECK_FALSE(zero.consume(1 << 20, t0));
}

TEST_CASE("an update replaces the buckets it names, disables those of size 0 and keeps the others") {
    RateLimiter limiter(RateLimiterConfig{.bandwidth = bucket(1000, 1000ms), .ops = bucket(1, 1000ms)});
    CHECK_FALSE(limiter.consume(1000, t0));
    CHECK(limiter.consume(1, t0));
    // A new bandwidth bucket, full; ops untouched (still empty).
    limiter.update({.bandwidth = bucket(10'000, 1000ms)});
    CHECK(limiter.config().bandwidth == bucket(10'000, 1000ms));
    CHECK(limiter.config().ops == bucket(1, 1000ms));
    CHECK(limiter.consume(1, t0));
    limiter.update({.ops = bucket(0, 0ms)});
    CHECK_FALSE(limiter.config().ops);
    CHECK_FALSE(limiter.consume(10'000, t0));
    CHECK(limiter.consume(1, t0));
    limiter.update({.bandwidth = bucket(0, 1000ms)});
    CHECK_FALSE(limiter.limited());
    CHECK_FALSE(limiter.consume(1 << 30, t0));
}

TEST_CASE("take_up_to grants what there is and never overdraws") {
    TokenBucket b(bucket(100, 1000ms));
    CHECK(b.take_up_to(60, t0) == 60);
    CHECK(b.take_up_to(60, t0) == 40);
    CHECK(b.take_up_to(60, t0) == 0);
    CHECK(b.take_up_to(60, t0 + 250ms) == 25);
}

TEST_CASE("a token bucket survives extreme sizes, times and requests") {
    std::uint64_t const huge = 0x7fff'ffff'ffff'ffff;
    TokenBucket b(bucket(huge, std::chrono::milliseconds(huge), huge));
    CHECK_FALSE(b.ready_at(huge, t0));
    b.take(huge);
    CHECK_FALSE(b.ready_at(huge, t0));
    b.take(~std::uint64_t{0});
    auto until = b.ready_at(~std::uint64_t{0}, t0 + 1s);
    REQUIRE(until);
    CHECK(*until > t0 + 1s);
    TokenBucket tiny(bucket(1, 1ms));
    tiny.take(~std::uint64_t{0});  // an enormous debt
    auto later = tiny.ready_at(1, t0);
    REQUIRE(later);
    CHECK(*later > t0);
    CHECK(tiny.ready_at(1, t0 + 24h));
}

}  // namespace
}  // namespace kvmlet::test
