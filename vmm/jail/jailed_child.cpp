#include "vmm/jail/jailed_child.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vmm/base/error.hpp"
#include "vmm/jail/fs_util.hpp"

namespace kvmlet::jail {
namespace {

// The character devices of the jail (Documentation/admin-guide/devices.txt: misc, major 10).
constexpr unsigned misc_major = 10;
constexpr unsigned kvm_minor = 232;
constexpr unsigned tun_minor = 200;
constexpr char const* old_root = "old-root";

Error step_error(std::string_view step, std::string const& what, int err = errno) {
    return Error(fmt::format("{}: {}: {}", step, what, std::strerror(err)));
}

void reset_signals(sigset_t const& mask) {
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
    }
    sigprocmask(SIG_SETMASK, &mask, nullptr);
}

// Waits until the supervisor has written what must exist before the VMM runs (its pid file).
void wait_for_release(int fd) {
    char byte = 0;
    while (read(fd, &byte, 1) < 0 && errno == EINTR) {
    }
    close(fd);
}

void join_cgroups(std::vector<std::string> const& files) {
    for (auto const& file : files) write_file("cgroup", file, "0", fmt::format("the jail's pid to {}", file));
}

void set_limits(JailOptions const& options) {
    for (auto const& limit : options.limits()) {
        rlimit value{limit.value, limit.value};
        if (setrlimit(limit.resource, &value) != 0)
            throw step_error("resource-limit", fmt::format("cannot set {}={}", limit.name, limit.value));
    }
}

// A mount namespace of its own whose "/" is the jail root; the host's tree is detached.
void enter_root(std::string const& root) {
    constexpr std::string_view step = "mount";
    if (unshare(CLONE_NEWNS) != 0) throw step_error(step, "unshare(CLONE_NEWNS)");
    if (mount(nullptr, "/", nullptr, MS_PRIVATE | MS_REC, nullptr) != 0)
        throw step_error(step, "cannot make / private");
    if (mount(root.c_str(), root.c_str(), nullptr, MS_BIND, nullptr) != 0)
        throw step_error(step, fmt::format("cannot bind {} on itself", root));
    if (chdir(root.c_str()) != 0) throw step_error(step, fmt::format("cannot enter {}", root));
    if (mkdir(old_root, 0700) != 0 && errno != EEXIST) throw step_error(step, "cannot make old-root");
    if (syscall(SYS_pivot_root, ".", old_root) != 0) throw step_error(step, "pivot_root");
    if (umount2(old_root, MNT_DETACH) != 0) throw step_error(step, "cannot detach the old root");
    if (rmdir(old_root) != 0) throw step_error(step, "cannot remove old-root");
    if (chroot(".") != 0 || chdir("/") != 0) throw step_error(step, "chroot");
}

void make_node(char const* path, dev_t device, JailOptions const& o) {
    if (unlink(path) != 0 && errno != ENOENT)
        throw step_error("devices", fmt::format("cannot replace {}", path));
    if (mknod(path, S_IFCHR | 0600, device) != 0) throw step_error("devices", fmt::format("mknod {}", path));
    if (chown(path, o.uid, o.gid) != 0 || chmod(path, 0600) != 0)
        throw step_error("devices", fmt::format("cannot give {} to {}:{}", path, o.uid, o.gid));
}

// Inside the jail only: these paths are relative to the new root.
void make_devices(ChildPlan const& plan) {
    for (char const* dir : {"/dev", "/dev/net"}) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            throw step_error("devices", fmt::format("mkdir {}", dir));
    }
    make_node("/dev/kvm", makedev(misc_major, kvm_minor), plan.options);
    make_node("/dev/net/tun", makedev(misc_major, tun_minor), plan.options);
    if (plan.userfaultfd) make_node("/dev/userfaultfd", *plan.userfaultfd, plan.options);
    // The VMM makes its API socket in its root (Firecracker chowns the root too).
    if (chown("/", plan.options.uid, plan.options.gid) != 0)
        throw step_error("devices", "cannot chown the root");
}

void join_netns(int fd) {
    if (fd >= 0 && setns(fd, CLONE_NEWNET) != 0) throw step_error("netns", "setns");
    if (fd >= 0) close(fd);
}

void daemonize(int dev_null) {
    if (dev_null < 0) return;
    if (setsid() < 0) throw step_error("daemonize", "setsid");
    for (int fd = 0; fd <= 2; ++fd) {
        if (dup2(dev_null, fd) < 0) throw step_error("daemonize", "cannot point standard I/O at /dev/null");
    }
    close(dev_null);
}

void clear_capabilities() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    if (syscall(SYS_capset, &header, data) != 0) throw step_error("privileges", "capset");
    if (syscall(SYS_capget, &header, data) != 0) throw step_error("privileges", "capget");
    for (auto const& d : data) {
        if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0)
            throw Error("privileges: capabilities are left after the drop");
    }
}

// uid:gid with no supplementary groups and no capabilities (effective, permitted, inheritable,
// ambient, bounding), and no way back through exec (no_new_privs).
void drop_privileges(JailOptions const& o) {
    constexpr std::string_view step = "privileges";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw step_error(step, "PR_SET_NO_NEW_PRIVS");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        throw step_error(step, "clear ambient");
    for (unsigned long cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) throw step_error(step, "PR_CAPBSET_DROP");
    }
    if (setgroups(0, nullptr) != 0) throw step_error(step, "setgroups");
    if (setresgid(o.gid, o.gid, o.gid) != 0) throw step_error(step, fmt::format("setresgid {}", o.gid));
    if (setresuid(o.uid, o.uid, o.uid) != 0) throw step_error(step, fmt::format("setresuid {}", o.uid));
    clear_capabilities();
}

// The VMM dies with its supervisor (a SIGKILL to the jailer reaches the VM, as it does with
// Firecracker's jailer, which is the VMM). Set after the uid change, which clears it.
void die_with_supervisor(pid_t supervisor) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) throw step_error("privileges", "PR_SET_PDEATHSIG");
    if (supervisor != 0 && getppid() != supervisor) _exit(1);
}

[[noreturn]] void exec_vmm(JailOptions const& options) {
    auto args = vmm_argv(options);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    char* envp[] = {nullptr};
    execve(argv[0], argv.data(), envp);
    int err = errno;
    throw Error(
        fmt::format("exec: {}: {}{}", args[0], std::strerror(err),
                    err == ENOENT ? " (a dynamically linked VMM needs its libraries in the jail root)" : ""));
}

void tell(int fd, std::string_view message) noexcept {
    while (!message.empty()) {
        ssize_t n = write(fd, message.data(), message.size());
        if (n <= 0) return;
        message.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace

std::vector<std::string> vmm_argv(JailOptions const& options) {
    std::vector<std::string> argv{"/" + options.exec_name(), "--id", options.id};
    argv.insert(argv.end(), options.vmm_args.begin(), options.vmm_args.end());
    return argv;
}

void run_jailed_child(ChildPlan const& plan) noexcept {
    try {
        // In a new PID namespace the parent is outside it and getppid() says 0.
        pid_t supervisor = plan.options.new_pid_ns ? 0 : getppid();
        for (int fd : plan.supervisor_fds) close(fd);
        reset_signals(plan.signal_mask);
        wait_for_release(plan.release_fd);
        join_cgroups(plan.cgroup_join);
        set_limits(plan.options);
        enter_root(plan.root);
        make_devices(plan);
        join_netns(plan.netns_fd);
        daemonize(plan.dev_null_fd);
        drop_privileges(plan.options);
        die_with_supervisor(supervisor);
        exec_vmm(plan.options);
    } catch (std::exception const& e) {
        tell(plan.error_fd, e.what());
    } catch (...) {
        tell(plan.error_fd, "unknown error");
    }
    _exit(1);
}

}  // namespace kvmlet::jail
