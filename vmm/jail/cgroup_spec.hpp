#pragma once
// The pure side of the jail's cgroups: `--cgroup file=value`, which controller a file belongs
// to, where the hierarchies are mounted (from /proc/self/mountinfo), and whether the value a
// cgroup file reads back is the one written (the kernel normalises some: sizes, CPU lists).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvmlet::jail {

struct CgroupSetting {
    std::string file{};   // "cpu.max"
    std::string value{};  // "50000 100000"
};

// "cpu.max=50000 100000". Throws UsageError for a missing '=', an empty value, a file name that
// is not "<controller>.<name>" of [a-z0-9_.], or a file the jailer writes itself (cgroup.procs).
CgroupSetting parse_cgroup_setting(std::string_view text);

// "cpu.max" -> "cpu", "cgroup.max.descendants" -> "cgroup" (the v2 core, no controller).
std::string_view controller_of(std::string_view file) noexcept;

struct CgroupMount {
    std::string path{};                      // mount point
    int version = 1;                         // 1: "cgroup", 2: "cgroup2"
    std::vector<std::string> controllers{};  // v1: from the super options; v2: empty
};

// The cgroup mounts listed in a mountinfo text (proc(5)), in order; other mounts are left out.
std::vector<CgroupMount> parse_cgroup_mounts(std::string_view mountinfo);

// Whether `read` (what the file says after the write) holds `written`: equal tokens, sizes with
// K/M/G/T suffixes in bytes (rounded down to pages, as memory limits are), CPU and node lists
// as sets, v1's -1 as any value from 2^62 on, and a written prefix of the read tokens ("max"
// reads "max 100000" from cpu.max).
bool cgroup_value_matches(std::string_view file, std::string_view written, std::string_view read,
                          std::uint64_t page_size);

}  // namespace kvmlet::jail
