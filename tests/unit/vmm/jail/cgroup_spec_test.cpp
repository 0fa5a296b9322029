#include "vmm/jail/cgroup_spec.hpp"

#include <catch2/catch.hpp>

#include "vmm/base/error.hpp"

using namespace kvmlet;
using namespace kvmlet::jail;

TEST_CASE("a cgroup setting is FILE=VALUE, the value may hold spaces and '='") {
    auto s = parse_cgroup_setting("cpu.max=50000 100000");
    CHECK(s.file == "cpu.max");
    CHECK(s.value == "50000 100000");
    CHECK(parse_cgroup_setting("io.max=8:0 rbps=1048576").value == "8:0 rbps=1048576");
    CHECK(controller_of("cpu.max") == "cpu");
    CHECK(controller_of("memory.limit_in_bytes") == "memory");
    CHECK(controller_of("cgroup.max.descendants") == "cgroup");
}

TEST_CASE("a cgroup setting refuses paths, files without a controller and the jailer's own files") {
    for (char const* bad :
         {"cpu.max", "cpu.max=", "cpu.max=  ", "=1", "max=1", "../cpu.max=1", "cpu/x.max=1", ".max=1",
          "cpu.=1", "Cpu.max=1", "cgroup.procs=1", "tasks=1", "cgroup.subtree_control=+cpu", "cpu.max=1\n2"})
        CHECK_THROWS_AS(parse_cgroup_setting(bad), UsageError);
}

TEST_CASE("cgroup mounts come from mountinfo: v1 controllers from the super options, v2 alone") {
    auto mounts = parse_cgroup_mounts(
        "25 1 0:23 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "26 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
        "27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "28 25 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
        "29 25 0:27 / /sys/fs/cgroup/my\\040tree rw - cgroup2 cgroup2 rw,nsdelegate\n"
        "30 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "garbage line\n");
    REQUIRE(mounts.size() == 4);
    CHECK(mounts[0].path == "/sys/fs/cgroup/cpu,cpuacct");
    CHECK(mounts[0].version == 1);
    CHECK(mounts[0].controllers == std::vector<std::string>{"cpu", "cpuacct"});
    CHECK(mounts[1].controllers == std::vector<std::string>{"memory"});
    CHECK(mounts[2].controllers == std::vector<std::string>{"xattr"});
    CHECK(mounts[3].path == "/sys/fs/cgroup/my tree");
    CHECK(mounts[3].version == 2);
    CHECK(mounts[3].controllers.empty());
}

TEST_CASE("a cgroup value reads back as written, or as the kernel normalises it") {
    constexpr std::uint64_t page = 4096;
    CHECK(cgroup_value_matches("cpu.max", "50000 100000", "50000 100000\n", page));
    CHECK(cgroup_value_matches("cpu.max", "max", "max 100000", page));
    CHECK(cgroup_value_matches("memory.max", "512M", "536870912", page));
    CHECK(cgroup_value_matches("memory.max", "1g", "1073741824", page));
    CHECK(cgroup_value_matches("memory.max", "max", "max", page));
    CHECK(cgroup_value_matches("memory.limit_in_bytes", "1000000", "999424", page));  // whole pages
    CHECK(cgroup_value_matches("memory.limit_in_bytes", "-1", "9223372036854771712", page));
    CHECK(cgroup_value_matches("cpuset.cpus", "0,1,2,5", "0-2,5", page));
    CHECK(cgroup_value_matches("cpuset.mems", "0", "0", page));
    CHECK(cgroup_value_matches("cgroup.max.descendants", "5", "5", page));
}

TEST_CASE("a cgroup value that reads back otherwise is a mismatch") {
    constexpr std::uint64_t page = 4096;
    CHECK_FALSE(cgroup_value_matches("cpu.max", "50000 100000", "max 100000", page));
    CHECK_FALSE(cgroup_value_matches("cpu.max", "50000 100000", "50000", page));
    CHECK_FALSE(cgroup_value_matches("memory.max", "512M", "536866816", page));  // a page less
    CHECK_FALSE(cgroup_value_matches("memory.max", "512M", "max", page));
    CHECK_FALSE(cgroup_value_matches("memory.max", "99999999999999999999", "1", page));
    CHECK_FALSE(cgroup_value_matches("memory.max", "16777216T", "0", page));  // overflows
    CHECK_FALSE(cgroup_value_matches("memory.limit_in_bytes", "-1", "4096", page));
    CHECK_FALSE(cgroup_value_matches("cpuset.cpus", "0-3", "0-2", page));
    CHECK_FALSE(cgroup_value_matches("cpuset.cpus", "0-3", "", page));
    CHECK_FALSE(cgroup_value_matches("cpuset.cpus", "3-0", "", page));
    CHECK_FALSE(cgroup_value_matches("cpu.weight", "100", "", page));
}
