#include "vmm/jail/jail_options.hpp"

#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/jail/jailed_child.hpp"

using namespace kvmlet;
using namespace kvmlet::jail;

namespace {

JailOptions parse(std::vector<char const*> args) {
    std::vector<char const*> all{"--id",  "vm-1",  "--exec-file", "/usr/bin/kvmlet",
                                 "--uid", "10001", "--gid",       "10002"};
    all.insert(all.end(), args.begin(), args.end());
    return parse_jail_options(all);
}

std::string usage_error(std::vector<char const*> const& args) {
    try {
        parse_jail_options(args);
    } catch (UsageError const& e) {
        return e.what();
    }
    FAIL("no UsageError");
    return {};
}

}  // namespace

TEST_CASE("jail options take Firecracker's jailer flags with their defaults") {
    JailOptions o = parse({});
    CHECK(o.id == "vm-1");
    CHECK(o.uid == 10001);
    CHECK(o.gid == 10002);
    CHECK(o.exec_name() == "kvmlet");
    CHECK(o.chroot_base_dir == "/srv/jailer");
    CHECK(o.cgroup_version == CgroupVersion::v1);
    CHECK(o.parent() == "kvmlet");
    CHECK_FALSE(o.daemonize);
    CHECK_FALSE(o.new_pid_ns);
    CHECK_FALSE(o.netns);
    REQUIRE(o.limits().size() == 1);
    CHECK(o.limits()[0].resource == RLIMIT_NOFILE);
    CHECK(o.limits()[0].value == default_no_file);
}

TEST_CASE("jail paths are <base>/<exec-name>/<id>/root, a trailing slash of the base ignored") {
    JailOptions o = parse({"--chroot-base-dir", "/srv/jail/"});
    CHECK(o.jail_dir() == "/srv/jail/kvmlet/vm-1");
    CHECK(o.root_dir() == "/srv/jail/kvmlet/vm-1/root");
    CHECK(parse({"--chroot-base-dir=/"}).root_dir() == "/kvmlet/vm-1/root");
}

TEST_CASE("jail options read repeatable cgroups and limits, and everything after -- for the VMM") {
    JailOptions o = parse({"--cgroup",
                           "cpu.max=50000 100000",
                           "--cgroup=memory.max=512M",
                           "--cgroup-version",
                           "2",
                           "--parent-cgroup",
                           "tenants/a",
                           "--resource-limit",
                           "no-file=1024",
                           "--resource-limit",
                           "fsize=250000000",
                           "--netns",
                           "/var/run/netns/t1",
                           "--daemonize",
                           "--new-pid-ns",
                           "--",
                           "--config-file",
                           "vm.json",
                           "--id",
                           "x"});
    REQUIRE(o.cgroups.size() == 2);
    CHECK(o.cgroups[0].file == "cpu.max");
    CHECK(o.cgroups[0].value == "50000 100000");
    CHECK(o.cgroups[1].file == "memory.max");
    CHECK(o.cgroups[1].value == "512M");
    CHECK(o.cgroup_version == CgroupVersion::v2);
    CHECK(o.parent() == "tenants/a");
    REQUIRE(o.limits().size() == 2);
    CHECK(o.limits()[1].resource == RLIMIT_FSIZE);
    CHECK(o.limits()[1].value == 250000000);
    CHECK(o.netns == "/var/run/netns/t1");
    CHECK(o.daemonize);
    CHECK(o.new_pid_ns);
    CHECK(o.vmm_args == std::vector<std::string>{"--config-file", "vm.json", "--id", "x"});
    CHECK(vmm_argv(o) ==
          std::vector<std::string>{"/kvmlet", "--id", "vm-1", "--config-file", "vm.json", "--id", "x"});
}

TEST_CASE("jail options refuse bad ids, uids, paths and values with one message naming the option") {
    CHECK(usage_error({"--id", "a_b"}).starts_with("--id a_b"));
    CHECK(usage_error({"--id", std::string(65, 'a').c_str()}).starts_with("--id"));
    CHECK_NOTHROW(check_id(std::string(64, 'a')));
    CHECK_THROWS_AS(check_id(""), UsageError);
    CHECK_THROWS_AS(check_id("a/b"), UsageError);
    CHECK(usage_error({"--uid", "alice"}).starts_with("--uid alice: not a number"));
    CHECK(usage_error({"--uid", "4294967295"}).starts_with("--uid"));
    CHECK(usage_error({"--uid", "-1"}).starts_with("--uid"));
    CHECK(usage_error({"--gid", "1x"}).starts_with("--gid"));
    CHECK(usage_error({"--chroot-base-dir", "srv"}).starts_with("--chroot-base-dir srv"));
    CHECK(usage_error({"--netns", "ns1"}).starts_with("--netns ns1"));
    CHECK(usage_error({"--cgroup-version", "3"}).starts_with("--cgroup-version 3"));
    CHECK(usage_error({"--resource-limit", "cpu=1"}).starts_with("--resource-limit cpu=1"));
    CHECK(usage_error({"--resource-limit", "no-file=x"}).starts_with("--resource-limit"));
    CHECK(usage_error({"--bogus"}).starts_with("unknown option --bogus"));
    CHECK(usage_error({"--id"}).starts_with("--id: missing value"));
    CHECK(usage_error({"--daemonize=yes"}) == "--daemonize takes no value");
    CHECK(usage_error({"--id", "a", "--id", "b"}) == "--id: given more than once");
    CHECK(usage_error({"--id", "a", "--uid", "1", "--gid", "1"}) ==
          "missing --exec-file (see kvmlet jail --help)");
    CHECK(usage_error({"--id", "a", "--exec-file", "/bin/", "--uid", "1", "--gid", "1"})
              .starts_with("--exec-file"));
}

TEST_CASE("a parent cgroup is a relative path without . or .. components") {
    CHECK_NOTHROW(check_parent_cgroup("kvmlet"));
    CHECK_NOTHROW(check_parent_cgroup("tenants/a.b_c-1"));
    for (char const* bad : {"", "/abs", "a//b", "a/../b", "..", ".", "a/", "a b", "a/./b"})
        CHECK_THROWS_AS(check_parent_cgroup(bad), UsageError);
}

TEST_CASE("jail help lists every flag") {
    std::string help = jail_help();
    for (char const* flag :
         {"--id", "--exec-file", "--uid", "--gid", "--chroot-base-dir", "--netns", "--daemonize",
          "--new-pid-ns", "--cgroup ", "--cgroup-version", "--parent-cgroup", "--resource-limit"})
        CHECK(help.find(flag) != std::string::npos);
    CHECK(parse_jail_options(std::vector<char const*>{"--help"}).help);
}
