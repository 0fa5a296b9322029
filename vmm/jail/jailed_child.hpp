#pragma once
// What the jailer's child does between fork and exec: it joins the cgroup, sets the rlimits,
// moves into the jail (mount namespace, pivot_root), makes the device nodes, joins the network
// namespace, leaves the session, drops to uid:gid with no capabilities and execs the VMM. It
// never returns: a failed step writes "<step>: <what>" to `error_fd` and exits 1.
#include <signal.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "vmm/jail/jail_options.hpp"

namespace kvmlet::jail {

struct ChildPlan {
    JailOptions const& options;
    std::string root;                      // the jail root, a host path
    std::vector<std::string> cgroup_join;  // cgroup.procs files
    int netns_fd = -1;                     // open --netns, or -1
    int dev_null_fd = -1;                  // open /dev/null with --daemonize, or -1
    std::optional<dev_t> userfaultfd{};    // the host's /dev/userfaultfd, if it has one
    int error_fd = -1;                     // close-on-exec: EOF without a message means exec'd
    std::vector<int> supervisor_fds{};     // the supervisor's ends, closed first
    int release_fd = -1;                   // EOF here: the supervisor is ready (pid file written)
    sigset_t signal_mask{};                // the mask to give the VMM
};

[[noreturn]] void run_jailed_child(ChildPlan const& plan) noexcept;

// The VMM's argv: /<exec-name> --id <id> <VMM args...> (Firecracker's jailer passes --id too).
std::vector<std::string> vmm_argv(JailOptions const& options);

}  // namespace kvmlet::jail
