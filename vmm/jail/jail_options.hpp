#pragma once
// The command line of `kvmlet jail` (and of kvmlet called `jailer`): Firecracker's jailer flags,
// read and checked without touching the host (docs/jailer.md).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/jail/cgroup_spec.hpp"

namespace kvmlet::jail {

enum class CgroupVersion { v1 = 1, v2 = 2 };

struct ResourceLimit {
    int resource = 0;         // RLIMIT_NOFILE or RLIMIT_FSIZE
    std::string_view name{};  // "no-file" or "fsize", as given
    std::uint64_t value = 0;  // soft and hard limit
};

// Firecracker bounds no-file to this when no --resource-limit is given.
inline constexpr std::uint64_t default_no_file = 2048;
inline constexpr std::size_t max_id_length = 64;

struct JailOptions {
    std::string id{};
    std::string exec_file{};
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::string chroot_base_dir = "/srv/jailer";
    std::optional<std::string> netns{};
    bool daemonize = false;
    bool new_pid_ns = false;
    std::vector<CgroupSetting> cgroups{};
    CgroupVersion cgroup_version = CgroupVersion::v1;
    std::optional<std::string> parent_cgroup{};
    std::vector<ResourceLimit> resource_limits{};
    std::vector<std::string> vmm_args{};  // after "--"
    bool help = false;

    // The exec file's last path component: the VMM's name inside the jail.
    std::string exec_name() const;
    // --parent-cgroup, or the exec name.
    std::string parent() const;
    // <base>/<exec-name>/<id>: what the jailer makes and removes.
    std::string jail_dir() const;
    // <jail_dir>/root: the VMM's "/".
    std::string root_dir() const;
    // The limits to set: the given ones, or no-file = default_no_file.
    std::vector<ResourceLimit> limits() const;
};

// `args` excludes argv[0] and the word "jail". Throws UsageError naming the option at fault.
JailOptions parse_jail_options(std::span<char const* const> args);
std::string jail_help();

// The id: 1 to 64 of A-Z, a-z, 0-9 and '-'. Throws UsageError.
void check_id(std::string_view id);
// A relative cgroup path of names made of A-Z, a-z, 0-9, '_', '-' and '.', no "." or "..".
void check_parent_cgroup(std::string_view path);

}  // namespace kvmlet::jail
