"""Many instances at once: start N commands as fast as one process can, time each one's first
output, keep them all running while the caller looks at them, then stop them by PID.

Each instance is a child of the tool, spawned by Popen without a preexec_fn (so Python forks with
vfork: about a millisecond each), running a tiny static C helper, `join`, that sets
PR_SET_PDEATHSIG (SIGKILL: an instance cannot outlive a tool that is killed), writes its own PID
to a cgroup's cgroup.procs when one is given, and execs the command: every process the instance
starts is born inside that cgroup, and the instance's PID is the command's.

Times are CLOCK_MONOTONIC in the tool (time.monotonic): `spawned_at` just before the Popen,
`first_output_at` when the first byte of its stdout has been read. Reading is interleaved with
spawning (after each spawn the tool takes whatever output is ready, without waiting), so an early
output is seen at most one spawn late. stdout is a pipe; stderr goes to a file per instance.
"""

import os
import selectors
import signal
import subprocess
import time

from .spawn import compile_c

OUTPUT_KEPT = 4096   # bytes of each instance's stdout kept for the report

JOIN_C = r"""
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
/* join CGROUP_PROCS|- COMMAND [ARGS...] */
int main(int argc, char **argv) {
    if (argc < 3) return 126;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (strcmp(argv[1], "-") != 0) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
        int fd = open(argv[1], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, buf, (size_t)len) != len) { perror(argv[1]); return 126; }
        close(fd);
    }
    execvp(argv[2], argv + 2);
    perror(argv[2]);
    return 127;
}
"""


def build_joiner(tmp, prog):
    return compile_c(tmp, "join", JOIN_C, prog)


class Instance:
    """One running command: its process, when it was spawned, when its first output came."""

    def __init__(self, index, argv, joiner, cgroup_procs, stderr_path):
        self.index, self.argv, self.stderr_path = index, [str(a) for a in argv], stderr_path
        self.first_output_at = None
        self.output = bytearray()
        self.eof = False
        self.stop_status = None   # exit status after the tool stopped it (negative: that signal)
        with open(stderr_path, "wb") as err:
            self.spawned_at = time.monotonic()
            self.proc = subprocess.Popen([str(joiner), str(cgroup_procs or "-"), *self.argv],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        os.set_blocking(self.proc.stdout.fileno(), False)

    @property
    def pid(self):
        return self.proc.pid

    def waiting(self):
        """Still running and no output yet."""
        return self.first_output_at is None and not self.eof and self.proc.poll() is None

    def read(self, now):
        try:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.eof = True
            return
        if self.first_output_at is None:
            self.first_output_at = now
        self.output += chunk[:max(0, OUTPUT_KEPT - len(self.output))]

    def stderr_lines(self):
        try:
            return self.stderr_path.read_bytes().decode(errors="replace").splitlines()
        except OSError:
            return []

    def failure(self, stopped_statuses=(0,)):
        """Why this instance failed, or None: no output, ended before the tool stopped it, or ended
        with a status outside stopped_statuses when stopped (a SIGKILL after the grace included)."""
        rc = self.proc.returncode
        if self.first_output_at is None:
            why = f"no output, exited with status {rc}" if self.stop_status is None else "no output in time"
        elif self.stop_status is None:
            why = f"exited with status {rc} before it was stopped"
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


def launch(argvs, joiner, cgroup_procs, log_dir, timeout_s, prefix="i"):
    """Spawns one instance per argv (log_dir/PREFIX-K.stderr gets its stderr) and returns them once
    each has printed something, ended, or timeout_s has passed since the first spawn. On an
    exception (Ctrl-C) the ones started so far are stopped first."""
    selector = selectors.DefaultSelector()
    instances = []

    def harvest(wait_s):
        for key, _ in selector.select(wait_s):
            inst = key.data
            inst.read(time.monotonic())
            if inst.eof or inst.first_output_at is not None:
                selector.unregister(key.fileobj)

    try:
        for k, argv in enumerate(argvs):
            inst = Instance(k, argv, joiner, cgroup_procs, log_dir / f"{prefix}-{k}.stderr")
            instances.append(inst)
            selector.register(inst.proc.stdout, selectors.EVENT_READ, inst)
            harvest(0)
        deadline = instances[0].spawned_at + timeout_s if instances else 0
        while any(i.waiting() for i in instances):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            harvest(min(left, 0.05))
        return instances
    except BaseException:
        stop(instances, grace_s=2.0)
        raise
    finally:
        selector.close()


def stop(instances, grace_s):
    """SIGTERM to each instance still running (by PID), reaps them all; SIGKILL for those still
    there grace_s later. Returns the seconds from the first SIGTERM to the last reap."""
    start = time.monotonic()
    for inst in instances:
        if inst.proc.poll() is None:
            try:
                os.kill(inst.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            inst.stop_status = "pending"
    deadline = start + grace_s
    for inst in instances:
        try:
            inst.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(inst.pid, signal.SIGKILL)
            inst.proc.wait()
        if inst.stop_status == "pending":
            inst.stop_status = inst.proc.returncode
        inst.proc.stdout.close()
    return time.monotonic() - start
