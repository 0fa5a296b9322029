#include "vmm/cli/host_memory.hpp"

#include <catch2/catch.hpp>

#include "vmm/base/guest_address.hpp"

using namespace kvmlet;
using namespace kvmlet::cli;

TEST_CASE("MemTotal is read from meminfo text as KiB") {
    CHECK(parse_meminfo_total("MemTotal:       16303424 kB\nMemFree:  100 kB\n") == 16303424 * KiB);
    CHECK(parse_meminfo_total("MemFree:  100 kB\nMemTotal: 2048 kB") == 2 * MiB);
}

TEST_CASE("meminfo text without a usable MemTotal line gives nothing") {
    CHECK_FALSE(parse_meminfo_total(""));
    CHECK_FALSE(parse_meminfo_total("MemFree:  100 kB\n"));
    CHECK_FALSE(parse_meminfo_total("MemTotal: lots\n"));
    CHECK_FALSE(parse_meminfo_total("MemTotal: 100\n"));
    CHECK_FALSE(parse_meminfo_total("MemTotal: 100 MB\n"));
    CHECK_FALSE(parse_meminfo_total("MemTotal: 0 kB\n"));
    CHECK_FALSE(parse_meminfo_total("MemTotal: 18014398509481984 kB\n"));  // 2^54 KiB = 2^64 bytes
    CHECK_FALSE(parse_meminfo_total("SwapMemTotal: 100 kB\n"));
}

TEST_CASE("the host has some memory, per /proc/meminfo") {
    CHECK(host_memory_bytes() >= 4 * MiB);
}
