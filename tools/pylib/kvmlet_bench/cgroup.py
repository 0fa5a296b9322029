"""Peak memory of a whole process tree, from a memory cgroup made for one run.

Each run gets a fresh cgroup, a child of the tool's own memory cgroup (so it stays inside
whatever limits the tool runs under), which the spawned command joins before exec; every
process it starts (threads, runc and its container, unshare's child) is born inside it, and
cgroups that runc makes for its container sit below it. Afterwards the cgroup's peak charge is
read and the cgroup removed.

What the peak counts: memory charged to the cgroup while it existed: anonymous memory, shared
memory (a VM's guest RAM, where touched), page cache first read by these processes, and kernel
memory (page tables, KVM's structures, slab). It does not count file pages already cached by
someone else, e.g. the text of shared libraries every process maps: RSS counts those, so the
two figures differ and both are reported.

cgroup v1 (memory.max_usage_in_bytes) and v2 (memory.peak, Linux >= 5.19, with the memory
controller delegated to the tool's cgroup) are supported. When the tool runs as root in the root
of a v2 hierarchy whose memory controller is not on for the children (tools/kvm-host's emulated
host mounts a bare cgroup2 and runs the command there), it turns it on: the root cgroup may have
processes and controllers for its children at once, and that is what a systemd host has anyway.
"""

import errno
import os
import signal
import time
from pathlib import Path


def _mounts():
    with open("/proc/self/mounts") as f:
        for line in f:
            _, mnt, fstype, opts, *_ = line.split()
            yield mnt, fstype, opts.split(",")


def _own_path(hierarchy_matches):
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if hierarchy_matches(controllers.split(",") if controllers else []):
                return path
    return None


def own_cgroup_dirs():
    """The directory of this process's own cgroup in every mounted hierarchy (v1 and v2)."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            own[controllers] = path
    dirs = []
    for mnt, fstype, opts in _mounts():
        if fstype == "cgroup2" and "" in own:
            dirs.append(Path(mnt + own[""]))
        elif fstype == "cgroup":
            for controllers, path in own.items():
                if controllers and all(c in opts for c in controllers.split(",")):
                    dirs.append(Path(mnt + path))
                    break
    return dirs


def sweep(prefix):
    """Removes cgroups named prefix* next to this process's own, in every hierarchy: what a
    container runtime killed half-way can leave behind."""
    for d in own_cgroup_dirs():
        for leftover in d.glob(prefix + "*"):
            try:
                remove_tree(leftover)
            except OSError:
                pass


class MemoryCgroups:
    """Makes per-run memory cgroups; `unusable` says why it cannot (or is None)."""

    def __init__(self, prefix):
        self.prefix = f"{prefix}-{os.getpid()}"
        self.parent, self.peak_file, self.unusable = None, None, None
        self.current_file = None   # the charge now: memory.usage_in_bytes (v1), memory.current (v2)
        self.enabled = None   # what this class changed to make the cgroups usable, or None
        self._count = 0
        v1 = next((mnt for mnt, fstype, opts in _mounts() if fstype == "cgroup" and "memory" in opts), None)
        v2 = next((mnt for mnt, fstype, _ in _mounts() if fstype == "cgroup2"), None)
        if v1:
            own = _own_path(lambda controllers: "memory" in controllers)
            self.parent, self.peak_file = Path(v1 + own), "memory.max_usage_in_bytes"
            self.current_file = "memory.usage_in_bytes"
        elif v2:
            own = _own_path(lambda controllers: not controllers)
            self.parent, self.peak_file = Path(v2 + own), "memory.peak"
            self.current_file = "memory.current"
            self.unusable = self._delegated_v2(own == "/")
        else:
            self.unusable = "no memory cgroup hierarchy mounted"
        if not self.unusable and not os.access(self.parent, os.W_OK):
            self.unusable = f"cannot create cgroups in {self.parent} (needs root)"

    def _delegated_v2(self, at_root):
        """None when the v2 memory controller is on for the children of self.parent (turned on
        here when self.parent is the hierarchy's root), else why not."""
        control = self.parent / "cgroup.subtree_control"
        try:
            if "memory" in control.read_text().split():
                return None
            if not at_root or "memory" not in (self.parent / "cgroup.controllers").read_text().split():
                return f"memory controller not delegated to {self.parent}"
            control.write_text("+memory")
            self.enabled = f"the tool turned on the memory controller in {control}"
            return None
        except OSError as e:
            return f"{control}: {e.strerror}"

    def create(self):
        """A new, empty cgroup; returns its directory (join by writing a PID to cgroup.procs)."""
        self._count += 1
        path = self.parent / f"{self.prefix}-{self._count}"
        path.mkdir()
        if not (path / self.peak_file).exists():
            remove_tree(path)
            raise OSError(errno.ENOTSUP, f"{path / self.peak_file} does not exist (kernel too old)")
        return path

    def peak_bytes(self, path):
        return int((path / self.peak_file).read_text())

    def current_bytes(self, path):
        return int((path / self.current_file).read_text())


def procs(path):
    """The PIDs in a cgroup and the cgroups below it ([] once it is gone)."""
    pids = []
    for d in [Path(path)] + [p for p in Path(path).rglob("*") if p.is_dir()]:
        try:
            pids += [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            pass
    return pids


def wait_empty(path, timeout_s):
    """Waits until no process is left in the cgroup (or below it); returns whether it emptied."""
    deadline = time.monotonic() + timeout_s
    while procs(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def remove_tree(path, wait_s=2.0):
    """rmdir a cgroup and its children, deepest first. Processes still inside (only ones the
    tool started can be there) get SIGKILL first."""
    path = Path(path)
    if not path.is_dir():
        return
    deadline = time.monotonic() + wait_s
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        _remove_one(sub, deadline)
    _remove_one(path, deadline)


def _remove_one(path, deadline):
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
