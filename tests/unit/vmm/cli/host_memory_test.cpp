#include "vmm/cli/host_memory.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "vmm/base/error.hpp"
#include "vmm/base/guest_address.hpp"

using namespace kvmlet;
using namespace kvmlet::cli;

TEST_CASE("the host's memory is sysinfo's total in bytes") {
    CHECK(host_memory_bytes(16303424, 1024) == 16303424 * KiB);
    CHECK(host_memory_bytes(4, 4096) == 16 * KiB);
}

TEST_CASE("an unusable sysinfo total is an error") {
    CHECK_THROWS_AS(host_memory_bytes(0, 4096), Error);
    CHECK_THROWS_AS(host_memory_bytes(100, 0), Error);
    CHECK_THROWS_AS(host_memory_bytes(std::uint64_t{1} << 54, 1024), Error);  // 2^64 bytes
}

TEST_CASE("the host's memory is MemTotal of /proc/meminfo") {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    std::uint64_t kib = 0;
    while (meminfo >> key && key != "MemTotal:") meminfo.ignore(1024, '\n');
    REQUIRE(key == "MemTotal:");
    REQUIRE(meminfo >> kib);
    CHECK(host_memory_bytes() == kib * KiB);
}
