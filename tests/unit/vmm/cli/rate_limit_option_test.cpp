// --disk ...,rate=..., --net ...,rate=|rx-rate=|tx-rate=... and --rng-rate (vmm/cli/rate_limit_option.hpp).
#include "vmm/cli/rate_limit_option.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/cli/command_line.hpp"

using namespace kvmlet;
using namespace kvmlet::cli;
using std::chrono::milliseconds;
using virtio::BucketConfig;

namespace {

MachineConfig run_config(std::vector<char const*> args) {
    args.insert(args.begin(), {"run", "--kernel", "vmlinux"});
    Command command = parse_command_line(args, 16 * GiB);
    REQUIRE(std::holds_alternative<RunCommand>(command));
    return std::get<RunCommand>(command).config;
}

std::string run_error(std::vector<char const*> args) {
    args.insert(args.begin(), {"run", "--kernel", "vmlinux"});
    try {
        parse_command_line(args, 16 * GiB);
    } catch (UsageError const& e) {
        return e.what();
    }
    FAIL("no UsageError for these arguments");
    return {};
}

}  // namespace

TEST_CASE(
    "kvmlet run --disk rate= takes a bandwidth and an ops limit, in either order, among the other "
    "properties") {
    auto c =
        run_config({"--disk", "img,rate=bw:50M/s,ops:2000/s,readonly", "--disk", "b,id=x,rate=ops:10/100ms"});
    REQUIRE(c.disks.size() == 2);
    CHECK(c.disks[0].read_only);
    CHECK(c.disks[0].rate_limiter.bandwidth == BucketConfig{50 * MiB, 0, milliseconds(1000)});
    CHECK(c.disks[0].rate_limiter.ops == BucketConfig{2000, 0, milliseconds(1000)});
    CHECK(c.disks[1].id == "x");
    CHECK(c.disks[1].rate_limiter.ops == BucketConfig{10, 0, milliseconds(100)});
    CHECK_FALSE(c.disks[1].rate_limiter.bandwidth);
    CHECK(run_config({"--disk", "img"}).disks[0].rate_limiter == virtio::RateLimiterConfig{});
}

TEST_CASE("a rate limit reads sizes with K, M or G, periods in s or ms, and a one-time burst") {
    virtio::RateLimiterConfig l;
    CHECK_FALSE(add_rate_limit(l, "bw:1M/100ms:burst=64M"));
    CHECK(l.bandwidth == BucketConfig{1 * MiB, 64 * MiB, milliseconds(100)});
    CHECK_FALSE(add_rate_limit(l, "ops:5/2s:burst=100"));
    CHECK(l.ops == BucketConfig{5, 100, milliseconds(2000)});
    virtio::RateLimiterConfig k;
    CHECK_FALSE(add_rate_limit(k, "bw:512k/ms"));
    CHECK(k.bandwidth == BucketConfig{512 * KiB, 0, milliseconds(1)});
    CHECK_FALSE(add_rate_limit(k, "ops:1/86400s"));
}

TEST_CASE("a bad rate limit is one usage error naming the option, the value and the limit") {
    CHECK(
        run_error({"--disk", "img,rate=bw:0/s"}) ==
        "--disk img,rate=bw:0/s: rate limit 'bw:0/s': expected bw:SIZE/PERIOD[:burst=SIZE] (a number above 0 "
        "with an optional K, M or G; PERIOD s, ms, Ns or Nms up to 24 h)");
    for (char const* bad : {"bw:50M", "bw:/s", "bw:50X/s", "bw:50M/min", "bw:50M/0s", "bw:50M/86401s",
                            "ops:2K/s", "ops:-1/s", "bw:1M/s:burst=", "bw:1M/s:bust=5", "ops:10/s:burst=0",
                            "bw:99999999999G/s", "bw:18446744073709551616/s", "iops:1/s", ""}) {
        virtio::RateLimiterConfig l;
        INFO(bad);
        CHECK(add_rate_limit(l, bad));
        CHECK(l == virtio::RateLimiterConfig{});
    }
    CHECK(
        run_error({"--disk", "img,rate=bw:1M/s,bw:2M/s"}).ends_with("rate limit 'bw:2M/s': bw given twice"));
    CHECK(run_error({"--disk", "img,rate="}).find("rate limit '': expected") != std::string::npos);
    // A limit outside a rate= is an unknown property.
    CHECK(run_error({"--disk", "img,ops:1/s"}).find("unknown property 'ops:1/s'") != std::string::npos);
    CHECK(run_error({"--disk", "img,readonly,ops:1/s"}).find("unknown property 'ops:1/s'") !=
          std::string::npos);
}

TEST_CASE("kvmlet run --net rate= limits both directions, rx-rate= and tx-rate= one each") {
    auto c = run_config({"--net", "tap=t1,rate=bw:100M/s", "--net",
                         "tap=t2,rx-rate=bw:10M/s,ops:100/s,tx-rate=ops:5/s,mac=06:00:00:00:00:01"});
    REQUIRE(c.nets.size() == 2);
    CHECK(c.nets[0].rx_rate_limiter.bandwidth == BucketConfig{100 * MiB, 0, milliseconds(1000)});
    CHECK(c.nets[0].tx_rate_limiter == c.nets[0].rx_rate_limiter);
    CHECK(c.nets[1].rx_rate_limiter.bandwidth == BucketConfig{10 * MiB, 0, milliseconds(1000)});
    CHECK(c.nets[1].rx_rate_limiter.ops == BucketConfig{100, 0, milliseconds(1000)});
    CHECK(c.nets[1].tx_rate_limiter.ops == BucketConfig{5, 0, milliseconds(1000)});
    CHECK_FALSE(c.nets[1].tx_rate_limiter.bandwidth);
    CHECK(c.nets[1].mac == "06:00:00:00:00:01");
    CHECK(run_error({"--net", "tap=t1,rate=bw:1M/s,rx-rate=bw:2M/s"}).ends_with("bw given twice"));
    CHECK(run_error({"--net", "tap=t1,rate=ops:1"}).find("rate limit 'ops:1': expected ops:COUNT/PERIOD") !=
          std::string::npos);
}

TEST_CASE("kvmlet run --rng-rate takes bytes per second or token buckets, and implies --rng") {
    auto bytes = run_config({"--rng-rate", "4096"});
    REQUIRE(bytes.rng);
    CHECK(bytes.rng->rate_limiter.bandwidth == BucketConfig{4096, 0, milliseconds(1000)});
    CHECK_FALSE(bytes.rng->rate_limiter.ops);
    auto buckets = run_config({"--rng", "--rng-rate", "bw:64K/s:burst=1M,ops:100/100ms"});
    REQUIRE(buckets.rng);
    CHECK(buckets.rng->rate_limiter.bandwidth == BucketConfig{64 * KiB, 1 * MiB, milliseconds(1000)});
    CHECK(buckets.rng->rate_limiter.ops == BucketConfig{100, 0, milliseconds(100)});
    auto plain = run_config({"--rng"});
    REQUIRE(plain.rng);
    CHECK(plain.rng->rate_limiter == virtio::RateLimiterConfig{});
    CHECK(run_error({"--rng-rate", "bw:1M/s,bw:2M/s"}).ends_with("rate limit 'bw:2M/s': bw given twice"));
    CHECK(run_error({"--rng-rate", "ops:1"}).find("rate limit 'ops:1': expected ops:COUNT/PERIOD") !=
          std::string::npos);
    CHECK(run_error({"--rng-rate", "fast"}).find("not a number of bytes per second nor a LIMIT") !=
          std::string::npos);
    CHECK(run_error({"--rng-rate", "0"}).ends_with("must be at least 1 byte per second"));
}
