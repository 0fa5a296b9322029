"""Many instances at once: start N commands as fast as possible, time each one's first output,
keep them all running while the caller looks at them, then stop them by PID.

The instances are started by a small static C helper, `launch`, compiled on the fly: a Python
spawner (Popen, ~1 ms of CPU each) is starved by the very instances it has started once they
compete with it for the CPUs (measured: 0.94 s to spawn 100 kvmlets on 2 loaded cores, nearly all
of their creation time), while fork + exec from a small C program costs ~0.1 ms. For instance k
the helper makes a pipe for its stdout and a file for its stderr (PREFIX-k.stderr), takes
CLOCK_MONOTONIC, forks; the child sets PR_SET_PDEATHSIG (SIGKILL: no instance outlives the
helper, and the helper none of its tool), writes its PID to the cgroup's cgroup.procs when one is
given (so everything it starts is born inside), and execs the command ("{}" in an argument
becomes k). After each fork the helper takes whatever output is ready without waiting (epoll),
so a first output is timed at most one fork late; then it waits until every instance has printed,
ended, or the timeout has passed, reports, and waits for "stop" on its stdin (or EOF, SIGTERM,
SIGINT): it sends SIGTERM to each instance by PID, reaps them all, SIGKILL after the grace.

Protocol (the helper's stdout), times in ns of CLOCK_MONOTONIC, the clock of time.monotonic():
  inst K PID SPAWNED_NS FIRST_OUTPUT_NS|-1 ENDED(0/1) STATUS     one per instance, then "ready"
  stopped K STATUS                                                  after "stop", then "done NS"
A STATUS is the exit code, or minus the signal that killed it (as Popen.returncode).
"""

import os
import signal
import subprocess
from pathlib import Path

from .smaps import descendants
from .spawn import compile_c

LAUNCH_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct inst { pid_t pid; int fd, done, ended, status; long long spawned, first; };
static struct inst *in;
static int n, ep, waiting;
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) { (void)sig; stop_requested = 1; }
static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}
static int decode(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st); }

static void harvest(int wait_ms) {
    struct epoll_event evs[64];
    int got = epoll_wait(ep, evs, 64, wait_ms);
    long long t = now_ns();
    for (int i = 0; i < got; i++) {
        struct inst *x = &in[evs[i].data.u32];
        char buf[4096];
        ssize_t r = read(x->fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r > 0 && x->first < 0) x->first = t;
        if (!x->done) { x->done = 1; waiting--; }
        epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
    }
}

static char **instance_argv(char **cmd, int k) {
    int len = 0;
    while (cmd[len]) len++;
    char **out = calloc((size_t)len + 1, sizeof *out);
    for (int i = 0; i < len; i++) {
        char *mark = strstr(cmd[i], "{}");
        if (!mark) { out[i] = cmd[i]; continue; }
        size_t size = strlen(cmd[i]) + 16;
        out[i] = malloc(size);
        snprintf(out[i], size, "%.*s%d%s", (int)(mark - cmd[i]), cmd[i], k, mark + 2);
    }
    return out;
}

static void child(int k, const char *procs, int out, int err, int null, char **cmd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (strcmp(procs, "-") != 0) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, buf, (size_t)len) != len) { dup2(err, 2); perror(procs); _exit(126); }
        close(fd);
    }
    dup2(null, 0);
    dup2(out, 1);
    dup2(err, 2);
    char **argv = instance_argv(cmd, k);
    execvp(argv[0], argv);
    perror(argv[0]);
    _exit(127);
}

static void launch(long long timeout_ns, const char *procs, const char *prefix, char **cmd) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int k = 0; k < n && !stop_requested; k++) {
        int p[2];
        char path[4096];
        snprintf(path, sizeof path, "%s-%d.stderr", prefix, k);
        int err = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (err < 0 || pipe2(p, O_CLOEXEC) != 0) { perror(path); break; }
        in[k].spawned = now_ns();
        pid_t pid = fork();
        if (pid == 0) child(k, procs, p[1], err, null, cmd);
        close(p[1]);
        close(err);
        if (pid < 0) { perror("fork"); close(p[0]); break; }
        in[k].pid = pid;
        in[k].fd = p[0];
        waiting++;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)k};
        epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
        harvest(0);
    }
    long long deadline = in[0].spawned + timeout_ns;
    while (waiting > 0 && !stop_requested) {
        long long left = deadline - now_ns();
        if (left <= 0) break;
        harvest(left > 100000000LL ? 100 : (int)(left / 1000000) + 1);
    }
}

static int index_of(pid_t pid) {
    for (int k = 0; k < n; k++)
        if (in[k].pid == pid) return k;
    return -1;
}

static void stop_all(long long grace_ns) {
    long long start = now_ns();
    int left = 0;
    for (int k = 0; k < n; k++)
        if (in[k].pid > 0 && !in[k].ended) { kill(in[k].pid, SIGTERM); left++; }
    int killed = 0;
    while (left > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid > 0) {
            int k = index_of(pid);
            if (k >= 0 && !in[k].ended) {
                in[k].ended = 1;
                in[k].status = decode(st);
                printf("stopped %d %d\n", k, in[k].status);
                left--;
            }
            continue;
        }
        if (pid < 0 && errno == ECHILD) break;
        if (!killed && now_ns() - start > grace_ns) {
            for (int k = 0; k < n; k++)
                if (in[k].pid > 0 && !in[k].ended) kill(in[k].pid, SIGKILL);
            killed = 1;
        }
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
    printf("done %lld\n", now_ns() - start);
}

/* launch N TIMEOUT_MS GRACE_MS CGROUP_PROCS|- STDERR_PREFIX COMMAND [ARGS...] */
int main(int argc, char **argv) {
    if (argc < 7) return 2;
    n = atoi(argv[1]);
    if (n < 1) return 2;
    long long timeout_ns = atoll(argv[2]) * 1000000LL, grace_ns = atoll(argv[3]) * 1000000LL;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    in = calloc((size_t)n, sizeof *in);
    for (int k = 0; k < n; k++) in[k].first = -1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    launch(timeout_ns, argv[4], argv[5], argv + 6);
    for (int k = 0; k < n; k++) {
        int st;
        if (in[k].pid > 0 && waitpid(in[k].pid, &st, WNOHANG) == in[k].pid) {
            in[k].ended = 1;
            in[k].status = decode(st);
        }
        printf("inst %d %d %lld %lld %d %d\n", k, (int)in[k].pid, in[k].spawned, in[k].first, in[k].ended,
               in[k].status);
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (!stop_requested && read(0, line, sizeof line) < 0 && errno == EINTR) {}
    stop_all(grace_ns);
    fflush(stdout);
    return 0;
}
"""


def build_launcher(tmp, prog):
    return compile_c(tmp, "launch", LAUNCH_C, prog)


class Instance:
    """One instance as the launcher reported it: PID, when it was spawned, when its first output
    came (None: never), whether it ended before it was stopped, how it ended."""

    def __init__(self, index, pid, spawned_at, first_output_at, ended_status, stderr_path):
        self.index, self.pid, self.stderr_path = index, pid, stderr_path
        self.spawned_at, self.first_output_at = spawned_at, first_output_at
        self.ended_status = ended_status   # exit status when it ended by itself before the stop
        self.stop_status = None            # exit status after the stop (negative: that signal)

    def running(self):
        return self.pid > 0 and self.ended_status is None

    def stderr_lines(self):
        try:
            return self.stderr_path.read_bytes().decode(errors="replace").splitlines()
        except OSError:
            return []

    def failure(self, stopped_statuses=(0,)):
        """Why this instance failed, or None: no output, ended before the tool stopped it, or ended
        with a status outside stopped_statuses when stopped (a SIGKILL after the grace included)."""
        if self.pid <= 0:
            why = "not started"
        elif self.first_output_at is None:
            why = (f"no output, exited with status {self.ended_status}" if self.ended_status is not None
                   else "no output in time")
        elif self.ended_status is not None:
            why = f"exited with status {self.ended_status} before it was stopped"
        elif self.stop_status not in stopped_statuses:
            why = f"exited with status {self.stop_status} when stopped"
        else:
            return None
        return f"{why}: {first_error_line(self.stderr_lines())}"


def first_error_line(lines):
    """The line of a failed command's stderr that most likely says why: the first naming an error
    or failure, else the last one."""
    lines = [ln.strip() for ln in lines if ln.strip()]
    if not lines:
        return "nothing on stderr"
    for ln in lines:
        low = ln.lower()
        if any(word in low for word in ("error", "fail", "cannot", "denied", "fatal")):
            return ln
    return lines[-1]


class Fleet:
    """N instances of argv started by the launcher; stop() ends them (also on an exception while
    they start)."""

    def __init__(self, launcher, argv, n, cgroup_procs, log_dir, prefix, timeout_s, grace_s):
        self.grace_s = grace_s
        self.instances = []
        stderr_prefix = Path(log_dir) / prefix
        self.proc = subprocess.Popen(
            [str(launcher), str(n), str(max(1, round(timeout_s * 1000))), str(max(1, round(grace_s * 1000))),
             str(cgroup_procs or "-"), str(stderr_prefix), *map(str, argv)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            for line in self.proc.stdout:
                fields = line.split()
                if fields == ["ready"]:
                    break
                if fields and fields[0] == "inst":
                    k, pid, spawned, first, ended, status = map(int, fields[1:])
                    self.instances.append(Instance(
                        k, pid, spawned / 1e9, first / 1e9 if first >= 0 else None, status if ended else None,
                        Path(f"{stderr_prefix}-{k}.stderr")))
            if len(self.instances) != n:
                raise RuntimeError(f"the launcher reported {len(self.instances)} of {n} instances "
                                   f"(status {self.proc.poll()})")
        except BaseException:
            self.proc.send_signal(signal.SIGTERM)   # it stops the ones it started, then exits
            self.stop()
            raise

    def stop(self):
        """Has the launcher SIGTERM every running instance and reap them all (SIGKILL after the
        grace); returns the seconds from the first SIGTERM to the last reap (None if unknown)."""
        if self.proc.returncode is not None:
            return None
        elapsed = None
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        by_index = {i.index: i for i in self.instances}
        for line in self.proc.stdout:
            fields = line.split()
            if len(fields) == 3 and fields[0] == "stopped" and int(fields[1]) in by_index:
                by_index[int(fields[1])].stop_status = int(fields[2])
            elif len(fields) == 2 and fields[0] == "done":
                elapsed = int(fields[1]) / 1e9
        self.proc.wait()
        self.proc.stdout.close()
        return elapsed


def process_cpu_s(pid):
    """CPU time of one process so far, or None when it is gone: its live threads' run time in ns
    (/proc/PID/task/*/schedstat), plus its reaped children's user and system time (cutime and
    cstime of /proc/PID/stat, in clock ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rfind(")") + 2:].split()   # fields[0] is field 3 (state) of proc(5)
        children = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        tasks = os.listdir(f"/proc/{pid}/task")
    except (OSError, IndexError, ValueError):
        return None
    run_ns = 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            pass   # a thread that ended meanwhile
    return run_ns / 1e9 + children


def tree_cpu_s(pid):
    """CPU time of pid and its descendants so far (None when pid is gone)."""
    own = process_cpu_s(pid)
    if own is None:
        return None
    return own + sum(c for c in map(process_cpu_s, descendants(pid)) if c is not None)

