"""kvmlet's seccomp filters bite, and every thread has one (issue 16, docs/security.md).

  seccomp.py kill KIND KVMLET GUEST_DIR   KVMLET_SECCOMP_TEST=KIND: a thread of that kind makes a
                                          forbidden call after loading its filter; kvmlet dies
                                          with status 148 and the line naming the call and KIND
  seccomp.py threads KVMLET GUEST_DIR     every thread of a running kvmlet (all kinds present) is
                                          in seccomp filter mode (Seccomp: 2) with no capabilities;
                                          then the guest ends and kvmlet exits 0 (default: kill)

The machine has every kind of thread: the config file's serial_echo guest with 2 vCPUs, a disk
(its worker), metrics (their periodic writer), the API socket, and the console's writer. No skips:
a test that cannot run fails.
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import time

KINDS = ("vmm", "vcpu", "worker", "api", "metrics", "sink")
SECCOMP_KILL_STATUS = 148
PERSONALITY = 135  # x86_64


def fail(why):
    print(f"FAIL: {why}")
    sys.exit(1)


def start(kvmlet, guest_dir, tmp, env_extra=None, args=()):
    guest = os.path.join(guest_dir, "serial_echo.elf")
    if not os.path.exists(guest):
        fail(f"guest {guest} missing")
    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    config = os.path.join(tmp, "vm.json")
    with open(config, "w") as f:
        json.dump({
            "boot-source": {"kernel_image_path": guest},
            "drives": [{"drive_id": "data", "path_on_host": disk, "is_root_device": False,
                        "is_read_only": False}],
            "machine-config": {"vcpu_count": 2, "mem_size_mib": 32},
            "metrics": {"metrics_path": os.path.join(tmp, "metrics.json")},
        }, f)
    env = dict(os.environ)
    env.pop("KVMLET_SECCOMP_TEST", None)
    env.update(env_extra or {})
    cmd = [kvmlet, "run", "--config", config, "--api-sock", os.path.join(tmp, "api.sock"), *args]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)


def case_kill(kind, kvmlet, guest_dir):
    with tempfile.TemporaryDirectory() as tmp:
        k = start(kvmlet, guest_dir, tmp, {"KVMLET_SECCOMP_TEST": kind})
        try:
            out, err = k.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            k.kill()
            k.communicate()
            fail(f"kvmlet with KVMLET_SECCOMP_TEST={kind} did not die within 30 s")
        err = err.decode(errors="replace")
        print(err, end="")
        want = f"kvmlet: seccomp: thread {kind} made a forbidden system call {PERSONALITY} (personality)"
        if want not in err.splitlines():
            fail(f"no line '{want}' on stderr")
        if k.returncode != SECCOMP_KILL_STATUS:
            fail(f"status {k.returncode}, expected {SECCOMP_KILL_STATUS}")
    print("PASS")


def thread_status(pid):
    """{tid: (comm, Seccomp, CapEff)} of every thread of pid."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            fields = {}
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
        except FileNotFoundError:
            continue
        threads[int(tid)] = (comm, fields.get("Seccomp"), fields.get("CapEff"))
    return threads


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


def read_until(stream, marker, timeout):
    """Reads stream until marker shows up (True), or EOF or the timeout (False)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            return False
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            return False
        seen += chunk
    return True


def case_threads(kvmlet, guest_dir):
    with tempfile.TemporaryDirectory() as tmp:
        k = start(kvmlet, guest_dir, tmp)
        try:
            # 7 threads of kvmlet's: vmm, api, metrics, vcpu 0, vcpu 1, disk worker, fd-sink; all confined once
            # the guest printed "ready" (its vCPU ran, so every thread had started before).
            ready = read_until(k.stdout, b"ready", 30)
            if k.poll() is not None:
                fail(f"kvmlet exited with status {k.returncode}: {k.stderr.read().decode(errors='replace')}")
            if not ready:
                fail("the guest did not print 'ready' within 30 s")
            threads = wait_for(lambda: (t := thread_status(k.pid)) and len(t) >= 7 and
                               all(s == "2" for _, s, _ in t.values()) and t, 10) or thread_status(k.pid)
            for tid, (comm, seccomp, capeff) in sorted(threads.items()):
                print(f"  thread {tid} {comm!r}: Seccomp {seccomp}, CapEff {capeff}")
            names = sorted(comm for comm, _, _ in threads.values())
            for want in ("api", "metrics", "vcpu 0", "vcpu 1", "disk worker", "fd-sink"):
                if want not in names:
                    fail(f"no thread named {want!r} (threads: {names})")
            # KVM's own worker (kvm-nx-lpage-recovery) is a task of the process too, made by the kernel.
            ours = [n for n in names if not n.startswith("kvm-")]
            if len(ours) != 7:
                fail(f"{len(ours)} threads of kvmlet's, expected 7: {ours}")
            for tid, (comm, seccomp, capeff) in threads.items():
                if seccomp != "2":
                    fail(f"thread {tid} ({comm}) has Seccomp: {seccomp}, not 2 (filter)")
                if capeff is None or int(capeff, 16) != 0:
                    fail(f"thread {tid} ({comm}) keeps capabilities: CapEff {capeff}")
            k.stdin.write(b"confined\n")
            k.stdin.flush()
            try:
                out, err = k.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                fail("kvmlet did not end within 30 s of the guest's line")
            err = err.decode(errors="replace")
            print(err, end="")
            if b"line: confined" not in out:
                fail("the guest did not echo its line")
            if k.returncode != 0:
                fail(f"kvmlet exited with status {k.returncode}, expected 0")
        finally:
            if k.poll() is None:
                k.kill()
                k.wait()
    print("PASS")


def main(argv):
    if len(argv) == 5 and argv[1] == "kill" and argv[2] in KINDS:
        case_kill(argv[2], argv[3], argv[4])
    elif len(argv) == 4 and argv[1] == "threads":
        case_threads(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
