#include "vmm/jail/jailer.hpp"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>

#include "vmm/base/error.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/jail/fs_util.hpp"
#include "vmm/jail/jail_cgroup.hpp"
#include "vmm/jail/jail_dir.hpp"
#include "vmm/jail/jailed_child.hpp"

namespace kvmlet::jail {
namespace {

// Signals the supervisor passes on to the VMM; everything else keeps its default.
constexpr std::array<int, 7> forwarded{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};

// What the host must offer before anything is made: the files exist and are what they claim.
struct HostFacts {
    UniqueFd netns;
    UniqueFd dev_null;
    std::optional<dev_t> userfaultfd;
};

// Nothing of the caller's reaches the VMM: no open file but standard I/O, no environment.
void scrub_inheritance() {
    if (close_range(3, ~0u, 0) != 0) throw system_error("fds: close_range");
    if (clearenv() != 0) throw Error("environment: clearenv failed");
}

UniqueFd open_netns(std::string const& path) {
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw system_error(fmt::format("netns: cannot open {}", path));
    int type = ioctl(fd.get(), NS_GET_NSTYPE);
    if (type != CLONE_NEWNET) throw Error(fmt::format("netns: {} is not a network namespace", path));
    return fd;
}

HostFacts check_host(JailOptions const& o) {
    HostFacts facts;
    struct stat st {};
    if (stat(o.exec_file.c_str(), &st) != 0) throw system_error(fmt::format("exec-file: {}", o.exec_file));
    if (!S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0)
        throw Error(fmt::format("exec-file: {} is not an executable file", o.exec_file));
    if (o.netns) facts.netns = open_netns(*o.netns);
    if (o.daemonize) {
        facts.dev_null.reset(open("/dev/null", O_RDWR | O_CLOEXEC));
        if (!facts.dev_null.valid()) throw system_error("daemonize: cannot open /dev/null");
    }
    if (stat("/dev/userfaultfd", &st) == 0 && S_ISCHR(st.st_mode)) facts.userfaultfd = st.st_rdev;
    return facts;
}

sigset_t block_forwarded(sigset_t& old) {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : forwarded) sigaddset(&set, sig);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    return set;
}

// The child's message, or empty once it exec'd (its end closes on exec).
std::string wait_for_exec(int error_fd) {
    std::string message;
    char buffer[512];
    for (;;) {
        ssize_t n = read(error_fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || message.size() > 4096) break;
        message.append(buffer, static_cast<std::size_t>(n));
    }
    return message;
}

std::pair<UniqueFd, UniqueFd> make_pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw system_error("fork: pipe");
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Lets the child go on once `before` is done; a failure of `before` ends the child first.
template <class F>
void release(pid_t child, UniqueFd& release_write, F before) {
    try {
        before();
    } catch (...) {
        kill(child, SIGKILL);
        waitpid(child, nullptr, 0);
        throw;
    }
    release_write.reset();
}

int exit_status_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

// Forwards signals to the VMM until it ends. A terminal's ^C or ^\ already reached it (the
// whole foreground process group gets those): only signals sent to the jailer are passed on.
int supervise(pid_t child, sigset_t const& set) {
    for (;;) {
        siginfo_t info{};
        int sig = sigwaitinfo(&set, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            if (info.si_code != SI_KERNEL) kill(child, sig);
            continue;
        }
        int status = 0;
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child) return exit_status_of(status);
    }
}

void detach_standard_io(int dev_null) {
    for (int fd = 0; fd <= 2; ++fd) dup2(dev_null, fd);
}

int jail(JailOptions const& options) {
    scrub_inheritance();
    HostFacts facts = check_host(options);
    if (options.daemonize && setsid() < 0)
        throw system_error("daemonize: setsid (the jailer leads its process group; start it with setsid(1))");
    sigset_t old_mask;
    sigset_t set = block_forwarded(old_mask);
    JailDir dir(options);
    JailCgroup cgroup(options);
    if (options.new_pid_ns && unshare(CLONE_NEWPID) != 0) throw system_error("pid-ns: unshare(CLONE_NEWPID)");
    auto [error_read, error_write] = make_pipe();
    auto [release_read, release_write] = make_pipe();
    ChildPlan plan{options,
                   dir.root(),
                   cgroup.join_files(),
                   facts.netns.get(),
                   facts.dev_null.get(),
                   facts.userfaultfd,
                   error_write.get(),
                   {error_read.get(), release_write.get()},
                   release_read.get(),
                   old_mask};
    pid_t child = fork();
    if (child < 0) throw system_error("fork");
    if (child == 0) run_jailed_child(plan);
    error_write.reset();
    release_read.reset();
    release(child, release_write, [&] {
        if (options.new_pid_ns) dir.write_pid_file(options.exec_name(), child);
    });
    if (std::string message = wait_for_exec(error_read.get()); !message.empty()) {
        int status = 0;
        waitpid(child, &status, 0);
        throw Error(message);
    }
    if (options.daemonize) detach_standard_io(facts.dev_null.get());
    return supervise(child, set);
}

}  // namespace

int run_jail(std::span<char const* const> args) noexcept {
    try {
        JailOptions options = parse_jail_options(args);
        if (options.help) {
            std::fputs(jail_help().c_str(), stdout);
            return 0;
        }
        return jail(options);
    } catch (UsageError const& e) {
        report(e.what());
        return static_cast<int>(ExitStatus::usage_error);
    } catch (std::exception const& e) {
        report(e.what());
        return static_cast<int>(ExitStatus::setup_error);
    }
}

}  // namespace kvmlet::jail
