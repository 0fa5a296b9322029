"""The rows of `tools/compare --workload full-os`: one Debian 12 system with systemd
(guest-images/build debian-rootfs) booted as a kvmlet VM, as a QEMU VM (`-M microvm` and
`-M q35`) and run as a runc container, each instance in a memory cgroup of its own.

Ready is the ready service's first console line (`kvmlet-ready: uptime ...`), which
kvmlet-ready.service prints once systemd has reached multi-user.target. The VMs boot Debian's
cloud kernel (guest-images/build debian: bzImage, the same file for all three) with our
initramfs and a copy of rootfs.ext4 each, no network device. The container runs systemd as PID
1 on the bundle's rootfs, read-only and shared, with tmpfs for what it writes, with a config.json made
here at start from the bundle's: what systemd needs in a container (CONTAINER_NEEDS below).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import cgroup, footprint, guest

READY = re.compile(rb"kvmlet-ready: uptime")
FAILED_UNITS = re.compile(rb"kvmlet-ready: failed units: ([^\r\n]*)")
CMDLINE = "console=ttyS0 root=/dev/vda rw panic=-1"
VM_ROWS = ("kvmlet", "qemu-microvm", "qemu-q35")
ROW_NAMES = (*VM_ROWS, "runc")
# Units masked in the container (/dev/null bound over their unit files), and why.
CONTAINER_MASKED = {
    "serial-getty@.service": {"file": "/lib/systemd/system/serial-getty@.service",
                              "why": "no serial port in a container: dev-ttyS0.device never appears"},
    "console-getty.service": {"file": "/lib/systemd/system/console-getty.service",
                              "why": "the container's console is a file: no terminal to log in on"},
}
READY_DIR = "/run/kvmlet-compare"
# The root is the bundle's rootfs, read-only and shared by every instance; these are each
# instance's own, writable (tmpfs: charged to its memory cgroup).
CONTAINER_TMPFS = (("/run", "755"), ("/run/lock", "1777"), ("/tmp", "1777"), ("/var/tmp", "1777"),
                   ("/var/log", "755"), ("/var/lib/systemd", "755"), ("/var/cache", "755"))
# What systemd needs as PID 1 of a runc container, beyond runc spec's defaults.
CONTAINER_NEEDS = ("a cgroup namespace with /sys/fs/cgroup writable; a read-only root with tmpfs on /run, /run/lock, "
                   "/tmp, /var/tmp, /var/log, /var/lib/systemd and /var/cache; "
                   "container=oci in the environment; the capabilities systemd-nspawn gives; no "
                   "no_new_privs; no terminal: the ready service's output goes to a file bound in (a drop-in in "
                   "/run/systemd/system)")
CONTAINER_CAPS = ["CAP_AUDIT_CONTROL", "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
                  "CAP_FOWNER", "CAP_FSETID", "CAP_IPC_OWNER", "CAP_KILL", "CAP_LEASE", "CAP_LINUX_IMMUTABLE",
                  "CAP_MKNOD", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_RAW",
                  "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
                  "CAP_SYS_CHROOT", "CAP_SYS_NICE", "CAP_SYS_PTRACE", "CAP_SYS_RESOURCE", "CAP_SYS_TTY_CONFIG"]
# Two Linux guests at once inside tools/kvm-host's emulated host crashed its kernel (docs/hosts.md).
EMULATED_ONE_VM = ("more than one Linux guest at once crashes the emulated KVM host's kernel "
                   "(QEMU TCG's SVM, docs/hosts.md)")


class FullOsRow:
    """One way to run the system: how to start an instance, why it is skipped, what was measured."""

    def __init__(self, name, what, kind):
        self.name, self.what, self.kind = name, what, kind
        self.skip = self.error = None
        self.runtime_binary, self.extra_runtime = None, []   # extra: firmware files
        self.disk_files = {}                                 # part -> path
        self.disk_bytes, self.runtime_bytes = {}, None
        self.runs = []            # Instance results of the one-at-a-time runs
        self.groups = {}          # N -> list of Instance results, or a str: why not measured
        self.start = None         # (instance dir, k) -> Instance, started
        self.command = None


class Instance:
    """One started VM or container: its process, cgroup, console file and what was seen. stop
    ends it (default: SIGTERM to its process), cleanup runs after its process has ended."""

    def __init__(self, row, popen, group, console, cleanup, stop=None):
        self.row, self.popen, self.group, self.console = row, popen, group, console
        self.cleanup_steps, self.stop = cleanup, stop
        self.t0 = time.monotonic()
        self.offset, self.buffer = 0, b""
        self.ready_s = self.cpu_s = self.peak_bytes = self.current_bytes = None
        self.failed_units = None
        self.steady_bytes = self.idle_cpu_share = None
        self.exit_status = None

    def poll(self, cgroups):
        """Reads new console output; notes ready (with the cgroup's CPU and memory then)."""
        try:
            with open(self.console, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            chunk = b""
        self.offset += len(chunk)
        self.buffer += chunk
        if self.ready_s is None and READY.search(self.buffer):
            self.ready_s = time.monotonic() - self.t0
            self.cpu_s = cpu_seconds(self.group)
            self.peak_bytes = cgroups.peak_bytes(self.group)
            self.current_bytes = cgroups.current_bytes(self.group)
        m = FAILED_UNITS.search(self.buffer)
        if m and self.failed_units is None:
            self.failed_units = m.group(1).decode(errors="replace").strip()
        if self.exit_status is None:
            self.exit_status = self.popen.poll()

    def done(self):
        return (self.ready_s is not None and self.failed_units is not None) or self.exit_status is not None

    def tail(self, lines=6):
        text = self.buffer.decode(errors="replace").replace("\r", "")
        return " / ".join(ln for ln in text.splitlines()[-lines:] if ln.strip())

    def result(self):
        return {"ready_s": self.ready_s, "cpu_s_at_ready": self.cpu_s, "peak_bytes_at_ready": self.peak_bytes,
                "current_bytes_at_ready": self.current_bytes, "steady_bytes": self.steady_bytes,
                "idle_cpu_share": self.idle_cpu_share, "failed_units": self.failed_units}


def cpu_seconds(group):
    """CPU time of every process in the cgroup and below (cgroup v2 cpu.stat), or None."""
    try:
        for line in (Path(group) / "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        pass
    return None


def _join(group):
    """For preexec_fn: the child joins its cgroup before exec, so all it starts is born there."""
    def join():
        with open(Path(group) / "cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    return join


def spawn(argv, join, out_path):
    """Starts argv in cgroup `join`, its output to out_path, its stdin a pipe held open."""
    with open(out_path, "wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_join(join), start_new_session=True)


# ---- the rows ----------------------------------------------------------------------------

def vm_row(name, what, binary, kernel_dir, rootfs_dir, argv_for, not_here):
    r = FullOsRow(name, what, "vm")
    r.runtime_binary = binary
    r.skip = not_here
    if kernel_dir and rootfs_dir:
        r.disk_files = {"image": rootfs_dir / "rootfs.ext4", "kernel": kernel_dir / "bzImage",
                        "initramfs": kernel_dir / "initrd.cpio"}

    def start(d, k, group, cgroups):
        disk = d / "root.ext4"
        subprocess.run(["cp", "--sparse=always", str(r.disk_files["image"]), str(disk)], check=True)
        argv = argv_for(disk)
        r.command = r.command or argv
        return Instance(r, spawn(argv, group, d / "console"), group, d / "console",
                        [lambda: disk.unlink(missing_ok=True)])
    r.start = start
    return r


def kvmlet_argv(args, kernel_dir):
    def argv(disk):
        return [str(args.kvmlet), "run", "--kernel", str(kernel_dir / "bzImage"), "--initrd",
                str(kernel_dir / "initrd.cpio"), "--cpus", str(args.vm_cpus), "--memory", args.memory,
                "--disk", str(disk), "--cmdline", CMDLINE, *args.kvmlet_arg]
    return argv


def qemu_argv(qemu, machine, args, kernel_dir):
    def argv(disk):
        out = [str(qemu), "-M", machine, "-accel", "kvm", "-cpu", "host", "-smp", str(args.vm_cpus),
               "-m", args.memory, "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
               "-kernel", str(kernel_dir / "bzImage"), "-initrd", str(kernel_dir / "initrd.cpio"),
               "-append", CMDLINE, "-drive", f"id=root,file={disk},format=raw,if=none"]
        device = "virtio-blk-device" if machine.startswith("microvm") else "virtio-blk-pci"
        return out + ["-device", f"{device},drive=root"]
    return argv


QEMU_FIRMWARE = {"qemu-microvm": "qboot.rom", "qemu-q35": "bios-256k.bin"}


def qemu_firmware(name):
    for d in ("/usr/share/qemu", "/usr/share/seabios"):
        p = Path(d) / QEMU_FIRMWARE[name]
        if p.exists():
            return [p.resolve()]
    return []


def container_row(args, rootfs_dir, not_root, tmp):
    r = FullOsRow("runc", "`runc run` of the bundle: systemd as PID 1 (" + ", ".join(CONTAINER_MASKED)
                  + " masked), the ready service's line in a file", "container")
    runc = shutil.which(args.runc)
    r.runtime_binary = runc and Path(runc)
    r.skip = (None if runc else f"{args.runc} not found (Debian package runc: tools/setup)") or not_root
    if rootfs_dir:
        r.disk_files = {"bundle": rootfs_dir / "bundle"}
    state = tmp / "runc-state"

    def start(d, k, group, cgroups):
        state.mkdir(exist_ok=True)
        root = (rootfs_dir / "bundle/rootfs").resolve()
        console = ready_output(d)
        cid = f"kvmlet-compare-{os.getpid()}-fullos-{k}"
        # The instance's cgroup holds runc (runtime/) and the container (container/), no process
        # itself, so runc can turn controllers on for the container's cgroup and systemd's below.
        runtime = group / "runtime"
        runtime.mkdir()
        write_container_config(rootfs_dir / "bundle/config.json", d / "config.json", root, console,
                               "/" + str((group / "container").relative_to(cgroup_root(group))))
        argv = [str(runc), "--root", str(state), "run", "--bundle", str(d), cid]
        r.command = r.command or argv
        stop = lambda: stop_container(runc, state, cid)  # noqa: E731
        return Instance(r, spawn(argv, runtime, d / "stdout"), group, console, [stop], stop)
    r.start = start
    return r


def ready_output(d):
    """The ready service's output in a container: a drop-in (in /run/systemd/system, bound from
    d/units) sends it to READY_DIR/console, bound from d/out. Returns that file's host path."""
    dropin = d / "units/kvmlet-ready.service.d"
    dropin.mkdir(parents=True)
    (dropin / "output.conf").write_text(f"[Service]\nStandardOutput=append:{READY_DIR}/console\n"
                                        "StandardError=inherit\n")
    (d / "out").mkdir()
    console = d / "out/console"
    console.touch()
    return console


def cgroup_root(group):
    """Where the cgroup hierarchy holding group is mounted (the longest mount point above it)."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] in ("cgroup", "cgroup2")]
    return Path(max((m for m in mounts if str(group).startswith(m + "/")), key=len))


def write_container_config(base, path, root, console, cgroups_path):
    config = json.loads(Path(base).read_text())
    config["root"] = {"path": str(root), "readonly": True}
    proc = config["process"]
    proc["terminal"] = False
    proc["args"] = ["/sbin/init"]
    proc["noNewPrivileges"] = False
    if "container=oci" not in proc["env"]:
        proc["env"].append("container=oci")
    proc["capabilities"] = {k: list(CONTAINER_CAPS) for k in ("bounding", "effective", "permitted")}
    mounts = [m for m in config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    mounts.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                   "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]})
    for dest, mode in CONTAINER_TMPFS:
        mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", f"mode={mode}"]})
    for unit in CONTAINER_MASKED.values():
        mounts.append({"destination": unit["file"], "type": "bind", "source": "/dev/null", "options": ["bind", "ro"]})
    for dest, src in (("/run/systemd/system", console.parent.parent / "units"), (READY_DIR, console.parent)):
        mounts.append({"destination": dest, "type": "bind", "source": str(src), "options": ["rbind", "rw"]})
    config["mounts"] = mounts
    linux = config["linux"]
    if not any(ns["type"] == "cgroup" for ns in linux["namespaces"]):
        linux["namespaces"].append({"type": "cgroup"})
    linux["cgroupsPath"] = cgroups_path
    Path(path).write_text(json.dumps(config, indent=2))


def stop_container(runc, state, cid):
    subprocess.run([runc, "--root", str(state), "kill", cid, "KILL"], capture_output=True)
    subprocess.run([runc, "--root", str(state), "delete", "--force", cid], capture_output=True)


def make_rows(args, tmp):
    """The four rows, each with its skip reason (None when it can run here)."""
    kind = guest.host_kind()
    no_kvm = guest.kvm_unusable()
    if not no_kvm and kind == "kvm-pvm":
        no_kvm = ("Debian's user space cannot run on a kvm-pvm host (docs/hosts.md): run through "
                  "tools/kvm-host --real-kvm")
    not_root = None if os.geteuid() == 0 else "needs root (cgroups, runc)"
    kernel_dir = rootfs_dir = None
    no_image = None
    try:
        kernel_dir = guest.linux_image_dir("debian")
        rootfs_dir = guest.linux_image_dir("debian-rootfs")
    except LookupError as e:
        no_image = str(e)
    rows = [vm_row("kvmlet", "`kvmlet run`: Debian's kernel (bzImage), our initramfs, a copy of rootfs.ext4",
                   args.kvmlet, kernel_dir, rootfs_dir, kernel_dir and kvmlet_argv(args, kernel_dir),
                   (None if os.access(args.kvmlet, os.X_OK) else f"{args.kvmlet} is missing (tools/build)")
                   or no_image or no_kvm or not_root)]
    qemu = shutil.which(args.qemu)
    for name, machine in (("qemu-microvm", "microvm,x-option-roms=off,rtc=off,acpi=on"), ("qemu-q35", "q35")):
        r = vm_row(name, f"`qemu -M {machine.split(',')[0]} -accel kvm`: the same kernel, initramfs and image",
                   qemu and Path(qemu), kernel_dir, rootfs_dir,
                   kernel_dir and qemu_argv(qemu, machine, args, kernel_dir),
                   (None if qemu else f"{args.qemu} not found (Debian package qemu-system-x86: tools/setup)")
                   or no_image or no_kvm or not_root)
        r.extra_runtime = qemu_firmware(name)
        rows.append(r)
    r = container_row(args, rootfs_dir, not_root, tmp)
    r.skip = r.skip or no_image
    rows.append(r)
    return rows


# ---- measuring ---------------------------------------------------------------------------

def start_group(row, n, tmp, cgroups, serial):
    """n instances of row, started one right after the other, each in its own cgroup."""
    started = []
    for i in range(n):
        serial[0] += 1
        d = tmp / f"{row.name}-{serial[0]}"
        d.mkdir()
        group = cgroups.create()
        try:
            inst = row.start(d, serial[0], group, cgroups)
        except (OSError, subprocess.CalledProcessError) as e:
            cgroup.remove_tree(group)
            stop_all(started)
            raise RuntimeError(f"cannot start instance {i + 1}: {getattr(e, 'stderr', None) or e}") from e
        inst.dir = d
        started.append(inst)
    return started


def wait_ready(instances, cgroups, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for inst in instances:
            inst.poll(cgroups)
        if all(inst.done() for inst in instances):
            return
        time.sleep(0.25)


def idle(instances, seconds):
    """Per instance: CPU share (CPU seconds per second) over an idle window after all are ready,
    and the memory charged at its end (steady)."""
    before = [cpu_seconds(i.group) for i in instances]
    t0 = time.monotonic()
    time.sleep(seconds)
    window = time.monotonic() - t0
    for inst, b in zip(instances, before):
        after = cpu_seconds(inst.group)
        inst.idle_cpu_share = (after - b) / window if after is not None and b is not None else None
        try:
            inst.steady_bytes = int((inst.group / "memory.current").read_text())
        except OSError:
            inst.steady_bytes = None


def stop_all(instances):
    """Ends each instance's process by its PID, then runs its cleanup and removes its cgroup."""
    for inst in instances:
        if inst.stop:
            inst.stop()
        elif inst.popen.poll() is None:
            inst.popen.send_signal(signal.SIGTERM)
    for inst in instances:
        try:
            inst.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            inst.popen.kill()
            inst.popen.wait()
        for step in inst.cleanup_steps:
            step()
        cgroup.remove_tree(inst.group)
        shutil.rmtree(getattr(inst, "dir", ""), ignore_errors=True)


def measure_group(row, n, args, tmp, cgroups, serial, log):
    """Starts n instances, waits for their ready lines, measures the idle window, stops them.
    Returns the results; raises RuntimeError when an instance did not become ready."""
    log(f"{row.name}: starting {n} instance(s) (the copies of the image or rootfs first)")
    instances = start_group(row, n, tmp, cgroups, serial)
    log(f"{row.name}: {n} started, waiting for the ready line(s)")
    try:
        wait_ready(instances, cgroups, args.timeout)
        for inst in instances:
            inst.poll(cgroups)
        bad = [i for i in instances if i.ready_s is None]
        if bad:
            i = bad[0]
            why = f"exited with status {i.exit_status}" if i.exit_status is not None else \
                f"no ready line within {args.timeout:g} s"
            out = i.dir / "stdout"
            runtime = out.read_text(errors="replace").strip().splitlines()[-3:] if out.exists() else []
            raise RuntimeError(f"{len(bad)} of {n} instance(s) not ready: {why}; console: {i.tail()}"
                               + (f"; runc: {' / '.join(runtime)}" if runtime else ""))
        idle(instances, args.idle_seconds)
        return [i.result() for i in instances]
    finally:
        stop_all(instances)


def measure(rows, args, tmp, cgroups, log):
    serial = [0]
    active = [r for r in rows if not r.skip]
    for run in range(args.runs):
        for r in active:
            if r.skip or r.error:
                continue
            try:
                r.runs += measure_group(r, 1, args, tmp, cgroups, serial, log)
            except RuntimeError as e:
                if run == 0 and r.name.startswith("qemu") and "exited with status" in str(e):
                    r.skip = f"does not run here: {e}"
                else:
                    r.error = str(e)
            log(f"{r.name}: run {run + 1}/{args.runs} " + (f"ready after {r.runs[-1]['ready_s']:.1f} s"
                                                           if r.runs and not r.error else "failed"))
    for n in args.instances:
        for r in active:
            if r.skip or r.error:
                continue
            if n == 1:
                r.groups[1] = r.runs   # the one-at-a-time runs
                continue
            if r.kind == "vm" and guest.host_kind() == "emulated KVM host":
                r.groups[n] = EMULATED_ONE_VM
                continue
            try:
                r.groups[n] = measure_group(r, n, args, tmp, cgroups, serial, log)
                log(f"{r.name}: {n} at once ready, the last after {max(x['ready_s'] for x in r.groups[n]):.1f} s")
            except RuntimeError as e:
                r.groups[n] = f"failed: {e}"
                r.error = r.error or f"{n} at once: {e}"


def measure_disk(rows):
    for r in rows:
        r.disk_bytes = {part: footprint.du([p]) for part, p in r.disk_files.items() if Path(p).exists()}
        if r.runtime_binary and Path(r.runtime_binary).exists():
            libs = footprint.shared_libraries(r.runtime_binary)
            r.runtime_bytes = footprint.du([r.runtime_binary, *libs, *r.extra_runtime])
