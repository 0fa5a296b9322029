"""Run a VMM until its console prints a given line, time that, then stop the VMM.

run_until() spawns the command with stdin from /dev/null and stdout on a pipe, copies stdout to a
log file as it arrives and takes the time (CLOCK_MONOTONIC, from just before the spawn) at which
the marker has arrived, and the process's CPU time so far (user + system of all its threads, from
/proc/PID/stat, in clock ticks). Then it sends SIGTERM to that process (by PID), keeps copying its
output, and sends SIGKILL if it has not exited after a grace period. The child also gets SIGKILL if
the Python process dies first (PR_SET_PDEATHSIG), so an interrupted benchmark leaves no VM behind.

The wall time includes the exec and Python's reading of the pipe (well under a millisecond), which
does not matter for boots that take seconds or more; use spawn.run_once for fork-to-reap times of
short runs.
"""

import collections
import ctypes
import os
import selectors
import signal
import subprocess
import time

from .spawn import RunFailed

ConsoleRun = collections.namedtuple("ConsoleRun", "wall_s cpu_s status stop")

PR_SET_PDEATHSIG = 1
TAIL_LINES = 8


class NotReached(RunFailed):
    """The command exited, or timed out, before its console printed the marker."""


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def process_cpu_s(pid):
    """User + system CPU time of the process and all its threads so far, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()   # fields[0] is field 3 (state) of proc(5)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tail(path, lines=TAIL_LINES):
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError:
        return []
    return [ln.rstrip("\r") for ln in text.strip().splitlines()[-lines:]]


def _details(console_log, stderr_log):
    out = ""
    for what, path in (("console", console_log), ("stderr", stderr_log)):
        tail = _tail(path)
        if tail:
            out += f"\n  last lines of its {what} ({path}):" + "".join(f"\n    {ln}" for ln in tail)
    return out


class _Reader:
    """Copies a child's stdout to a log and watches it for a marker that may span reads."""

    def __init__(self, proc, log, marker):
        self.proc, self.log, self.marker = proc, log, marker
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.eof = False
        self.carry = b""

    def read(self, deadline):
        """Waits until deadline for output; returns True once the marker has arrived."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0 or not self.selector.select(left):
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            self.eof = True
            return False
        self.log.write(chunk)
        self.log.flush()
        window = self.carry + chunk
        self.carry = window[-(len(self.marker) - 1):] if len(self.marker) > 1 else b""
        return self.marker in window

    def close(self):
        self.selector.close()
        self.proc.stdout.close()


def _stop(proc, reader, grace_s):
    """SIGTERM, then SIGKILL after grace_s; returns how the process was stopped."""
    if reader.eof:   # it closed its output: usually because it is exiting
        try:
            proc.wait(timeout=min(1.0, grace_s))
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is not None:
        return "exited by itself"
    os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and not reader.eof:
        reader.read(deadline)
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        return "SIGTERM"
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return f"SIGKILL ({grace_s:g} s after SIGTERM)"


def run_until(argv, marker, console_log, stderr_log, timeout_s, grace_s=10.0, env=None):
    """Runs argv until its stdout contains marker (a str), then stops it.

    Returns ConsoleRun(wall_s: spawn to the marker, cpu_s: the process's CPU time at that moment,
    status: its exit status (negative: killed by that signal), stop: how it was stopped). Raises
    NotReached, with the last lines of its console and stderr, when it exits or timeout_s passes
    before the marker; it is stopped the same way then. stdout goes to console_log, stderr to
    stderr_log (both Paths, overwritten)."""
    needle = marker.encode()
    command = " ".join(map(str, argv))
    with open(console_log, "wb") as log, open(stderr_log, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, env=env, preexec_fn=_die_with_parent)
        reader = _Reader(proc, log, needle)
        try:
            deadline = start + timeout_s
            wall_s = cpu_s = None
            while not reader.eof and time.monotonic() < deadline:
                if reader.read(deadline):
                    wall_s = time.monotonic() - start
                    cpu_s = process_cpu_s(proc.pid)
                    break
            closed = reader.eof   # else: found, or timed out
            stop = _stop(proc, reader, grace_s)
        finally:
            if proc.poll() is None:   # an exception (e.g. KeyboardInterrupt) on the way
                proc.kill()
                proc.wait()
            reader.close()
    if wall_s is None:
        if stop == "exited by itself":
            why = f"exited with status {proc.returncode} before its console printed {marker!r}"
        elif closed:
            why = f"closed its console output without printing {marker!r} (stopped: {stop})"
        else:
            why = f"did not print {marker!r} within {timeout_s:g} s (stopped: {stop})"
        raise NotReached(f"`{command}` {why}{_details(console_log, stderr_log)}")
    return ConsoleRun(wall_s, cpu_s, proc.returncode, stop)
