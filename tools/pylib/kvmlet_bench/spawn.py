"""Run a command and measure it from fork to reap: wall time, CPU time, peak RSS.

The fork happens in a tiny static C helper compiled on the fly: Linux carries the pre-exec RSS
of the forking process into the child's ru_maxrss, so spawning straight from Python would
report at least Python's own RSS (~15 MiB) for every child.

The helper reports, from wait4(2) on the child:
- wall: CLOCK_MONOTONIC from just before fork() to just after wait4() returned;
- cpu: ru_utime + ru_stime, i.e. the child and every descendant it (or a descendant) reaped;
- maxrss: ru_maxrss, the largest peak RSS of any one of those processes (not their sum).
Optionally the child first joins cgroups (writes its PID to each given cgroup.procs file) so the
caller can read the memory charged to all processes together (see cgroup.py).
"""

import collections
import subprocess
import tempfile
from pathlib import Path

Sample = collections.namedtuple("Sample", "status wall_s cpu_s maxrss_bytes")


class RunFailed(Exception):
    pass


# spawn [-t SECONDS] [-g CGROUP_PROCS]... COMMAND [ARGS...]
# Prints "status wall_ns cpu_ns maxrss_kib timed_out". The child's stdout goes to /dev/null, its
# stdin and stderr are the helper's. After SECONDS the child gets SIGKILL (status 137,
# timed_out 1); it also gets SIGKILL if the helper dies first (PR_SET_PDEATHSIG).
HELPER_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t timed_out;
static pid_t child;
static void on_alarm(int sig) { (void)sig; timed_out = 1; kill(child, SIGKILL); }
static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }
static long long tv_ns(struct timeval t) { return t.tv_sec * 1000000000LL + t.tv_usec * 1000LL; }
static int join(const char *procs) {
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    int ok = write(fd, buf, (size_t)len) == len;
    close(fd);
    return ok ? 0 : -1;
}
int main(int argc, char **argv) {
    unsigned timeout = 0;
    const char *groups[16];
    int ngroups = 0, opt;
    while ((opt = getopt(argc, argv, "+t:g:")) != -1) {
        if (opt == 't') timeout = (unsigned)atoi(optarg);
        else if (opt == 'g' && ngroups < 16) groups[ngroups++] = optarg;
        else return 2;
    }
    if (optind >= argc) return 2;
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t parent = getpid();
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    child = fork();
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(126);
        for (int i = 0; i < ngroups; i++)
            if (join(groups[i]) != 0) { perror(groups[i]); _exit(126); }
        dup2(null, 1);
        execvp(argv[optind], argv + optind);
        perror(argv[optind]);
        _exit(127);
    }
    if (child < 0) { perror("fork"); return 2; }
    if (timeout) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        alarm(timeout);
    }
    int status;
    struct rusage ru;
    pid_t got;
    do got = wait4(child, &status, 0, &ru); while (got < 0 && errno == EINTR);
    if (got != child) { perror("wait4"); return 2; }
    clock_gettime(CLOCK_MONOTONIC, &end);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("%d %lld %lld %ld %d\n", code, ns(end) - ns(start), tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime),
           ru.ru_maxrss, (int)timed_out);
    return 0;
}
"""


def compile_c(tmp, name, source, prog):
    """Compile a one-file C helper into the directory tmp as `name`; exit with a message naming
    prog on failure."""
    src, exe = Path(tmp) / f"{name}.c", Path(tmp) / name
    src.write_text(source)
    for extra in (["-static"], []):   # static when libc.a is there: a smaller RSS floor
        r = subprocess.run(["cc", "-O2", "-Wall", *extra, "-o", str(exe), str(src)], capture_output=True,
                           text=True)
        if r.returncode == 0:
            return exe
    raise SystemExit(f"{prog}: error: cannot compile the {name} helper (cc from build-essential: "
                     f"tools/setup):\n{r.stderr}")


def build_helper(tmp, prog):
    """Compile the helper into the directory tmp; exit with a message naming prog on failure."""
    return compile_c(tmp, "spawn", HELPER_C, prog)


def run_once(helper, argv, expect_status, cgroup_procs=(), timeout_s=0):
    """Run argv under the helper; return a Sample, or raise RunFailed (with stderr's last lines)
    when the command exits with another status than expect_status or times out."""
    options = []
    if timeout_s:
        options += ["-t", str(max(1, round(timeout_s)))]
    for procs in cgroup_procs:
        options += ["-g", str(procs)]
    command = " ".join(map(str, argv))
    with tempfile.TemporaryFile() as err:
        r = subprocess.run([str(helper), *options, *map(str, argv)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=err, text=True)
        fields = r.stdout.split()
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-5:]
        details = "".join(f"\n    {line}" for line in tail)
        if r.returncode != 0 or len(fields) != 5:
            raise RunFailed(f"spawn helper failed (status {r.returncode}) for `{command}`{details}")
        status, wall_ns, cpu_ns, maxrss_kib, timed_out = map(int, fields)
        if timed_out:
            raise RunFailed(f"`{command}` timed out after {timeout_s} s{details}")
        if status != expect_status:
            raise RunFailed(f"`{command}` exited with {status}, expected {expect_status}{details}")
    return Sample(status, wall_ns / 1e9, cpu_ns / 1e9, maxrss_kib * 1024)
