#include "vmm/jail/jail_options.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "vmm/base/error.hpp"
#include "vmm/base/long_flag.hpp"

namespace kvmlet::jail {
namespace {

struct FlagSpec {
    std::string_view name;
    std::string_view value_name;  // empty: a flag without value
    std::string_view help;
    bool repeatable;
    void (*apply)(JailOptions&, std::string_view value);
};

std::uint32_t parse_id_number(std::string_view flag, std::string_view text) {
    std::uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    // (uid_t)-1 means "unchanged" to setresuid: it is no uid.
    if (ec != std::errc{} || end != text.data() + text.size() || value == UINT32_MAX)
        throw UsageError(
            fmt::format("{} {}: not a number from 0 to 4294967294 (give the numeric id)", flag, text));
    return value;
}

ResourceLimit parse_resource_limit(std::string_view text) {
    auto equals = text.find('=');
    std::string_view name = text.substr(0, equals);
    int resource = name == "no-file" ? RLIMIT_NOFILE : name == "fsize" ? RLIMIT_FSIZE : -1;
    if (equals == std::string_view::npos || resource < 0)
        throw UsageError(fmt::format("--resource-limit {}: expected no-file=N or fsize=N", text));
    std::string_view digits = text.substr(equals + 1);
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc{} || end != digits.data() + digits.size() || digits.empty())
        throw UsageError(fmt::format("--resource-limit {}: {} is not a number", text, digits));
    return ResourceLimit{resource, name == "no-file" ? "no-file" : "fsize", value};
}

void check_absolute(std::string_view flag, std::string_view path) {
    if (!path.starts_with('/')) throw UsageError(fmt::format("{} {}: an absolute path", flag, path));
}

constexpr std::array<FlagSpec, 13> flags{{
    {"--id", "ID", "the jail's and the microVM's id: 1 to 64 of A-Z, a-z, 0-9 and -", false,
     [](JailOptions& o, std::string_view v) {
         check_id(v);
         o.id = std::string(v);
     }},
    {"--exec-file", "PATH",
     "the VMM binary, copied into the jail (statically linked, or its libraries\n"
     "put in the jail root beforehand)",
     false, [](JailOptions& o, std::string_view v) { o.exec_file = std::string(v); }},
    {"--uid", "UID", "the numeric user id the VMM runs as", false,
     [](JailOptions& o, std::string_view v) { o.uid = parse_id_number("--uid", v); }},
    {"--gid", "GID", "the numeric group id the VMM runs as", false,
     [](JailOptions& o, std::string_view v) { o.gid = parse_id_number("--gid", v); }},
    {"--chroot-base-dir", "DIR", "where jails are made: DIR/<exec-name>/<id>/root (default /srv/jailer)",
     false,
     [](JailOptions& o, std::string_view v) {
         check_absolute("--chroot-base-dir", v);
         o.chroot_base_dir = std::string(v);
     }},
    {"--netns", "PATH", "a network namespace to join (/var/run/netns/NAME)", false,
     [](JailOptions& o, std::string_view v) {
         check_absolute("--netns", v);
         o.netns = std::string(v);
     }},
    {"--daemonize", "", "new session, standard I/O to /dev/null (the jailer still waits for the VMM)", false,
     [](JailOptions& o, std::string_view) { o.daemonize = true; }},
    {"--new-pid-ns", "", "the VMM is PID 1 of a new PID namespace", false,
     [](JailOptions& o, std::string_view) { o.new_pid_ns = true; }},
    {"--cgroup", "FILE=VALUE", "a cgroup file's value, read back after the write (repeatable)", true,
     [](JailOptions& o, std::string_view v) { o.cgroups.push_back(parse_cgroup_setting(v)); }},
    {"--cgroup-version", "1|2", "the cgroup hierarchy to use (default 1)", false,
     [](JailOptions& o, std::string_view v) {
         if (v != "1" && v != "2") throw UsageError(fmt::format("--cgroup-version {}: 1 or 2", v));
         o.cgroup_version = v == "1" ? CgroupVersion::v1 : CgroupVersion::v2;
     }},
    {"--parent-cgroup", "PATH", "the cgroup the jail's goes under (default the exec name)", false,
     [](JailOptions& o, std::string_view v) {
         check_parent_cgroup(v);
         o.parent_cgroup = std::string(v);
     }},
    {"--resource-limit", "no-file=N|fsize=N", "an rlimit of the VMM (repeatable; default no-file=2048)", true,
     [](JailOptions& o, std::string_view v) { o.resource_limits.push_back(parse_resource_limit(v)); }},
    {"--help", "", "print this help and exit", false,
     [](JailOptions& o, std::string_view) { o.help = true; }},
}};

void check_required(JailOptions const& o, std::vector<std::string_view> const& seen) {
    for (std::string_view name : {"--id", "--exec-file", "--uid", "--gid"}) {
        if (std::find(seen.begin(), seen.end(), name) == seen.end())
            throw UsageError(fmt::format("missing {} (see kvmlet jail --help)", name));
    }
    if (o.exec_name().empty() || o.exec_name() == "." || o.exec_name() == "..")
        throw UsageError(fmt::format("--exec-file {}: no file name", o.exec_file));
}

}  // namespace

std::string JailOptions::exec_name() const {
    auto slash = exec_file.rfind('/');
    return slash == std::string::npos ? exec_file : exec_file.substr(slash + 1);
}

std::string JailOptions::parent() const {
    return parent_cgroup.value_or(exec_name());
}

std::string JailOptions::jail_dir() const {
    std::string base = chroot_base_dir;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    return fmt::format("{}/{}/{}", base == "/" ? "" : base, exec_name(), id);
}

std::string JailOptions::root_dir() const {
    return jail_dir() + "/root";
}

std::vector<ResourceLimit> JailOptions::limits() const {
    if (!resource_limits.empty()) return resource_limits;
    return {ResourceLimit{RLIMIT_NOFILE, "no-file", default_no_file}};
}

void check_id(std::string_view id) {
    bool ok = !id.empty() && id.size() <= max_id_length && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    });
    if (!ok) throw UsageError(fmt::format("--id {}: 1 to 64 characters of A-Z, a-z, 0-9 and -", id));
}

void check_parent_cgroup(std::string_view path) {
    bool ok = !path.starts_with('/');
    for (std::size_t start = 0; ok;) {
        auto slash = path.find('/', start);
        std::string_view name = path.substr(start, slash == std::string_view::npos ? slash : slash - start);
        ok =
            !name.empty() && name != "." && name != ".." && std::all_of(name.begin(), name.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
            });
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    if (!ok)
        throw UsageError(
            "--parent-cgroup: a relative path of names of A-Z, a-z, 0-9, _, - and . (no '.' or '..')");
}

JailOptions parse_jail_options(std::span<char const* const> args) {
    JailOptions options;
    std::vector<std::string_view> seen;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (argument(args, i) == "--") {
            for (++i; i < args.size(); ++i) options.vmm_args.emplace_back(argument(args, i));
            break;
        }
        auto [spec, value] = take_long_flag(args, i, flags, seen, "kvmlet jail --help");
        spec->apply(options, value);
        if (options.help) return options;
    }
    check_required(options, seen);
    return options;
}

std::string jail_help() {
    std::string out =
        "Usage: kvmlet jail --id ID --exec-file PATH --uid UID --gid GID [OPTIONS] [-- VMM ARGS...]\n"
        "       (also when kvmlet is called 'jailer': Firecracker's jailer flags)\n\n"
        "Builds a jail (DIR/<exec-name>/<id>/root: a copy of the VMM, /dev/kvm, /dev/net/tun), a cgroup,\n"
        "namespaces, drops to UID:GID with no capabilities and runs '/<exec-name> --id ID VMM ARGS...'\n"
        "in it; waits for the VMM, removes the jail and the cgroup, and exits with the VMM's status.\n"
        "See docs/jailer.md.\n\nOptions:\n";
    return out + long_flag_help(flags, 31);
}

}  // namespace kvmlet::jail
