#!/usr/bin/env python3
"""Snapshot and restore of the minimal Linux guest (issue 17): booted with a raw disk and a
virtio-net on a TAP, snapshotted once its shell waits on the console, its kvmlet killed, and the
snapshot restored in a new process (PUT /snapshot/load, resume_vm true). The restored guest then
runs commands typed on its console: it computes a value, writes its disk (the host checks the
bytes in the image file, those written before the snapshot too), and pings the host through the
TAP; then it powers off and kvmlet exits 0. One boot.

    snapshot_linux.py KVMLET [--transport mmio|pci]

With pci the virtio devices are PCI functions whose MSI-X vectors Linux uses: their configuration
spaces, BARs, MSI-X tables and KVM MSI routes come back from the snapshot.

Network safety: everything happens in namespace kvmlet-api-snaplinux-<pid>, made here and removed
on every exit path (api_client.Scene): TAP tap0 with 10.0.2.1/24, the only address this test
gives, and only in there; the guest is 10.0.2.2. Processes end by their PID. No skips: no
/dev/kvm or no built image is a failure.

Prints "figure:" lines: the boot to the guest's shell, the restore to its first answer (from the
new process's start), kvmlet's own state-load time, the state file's size."""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import api_client  # noqa: E402  (tests/api/api_client.py)

HOST_IP, GUEST_IP = "10.0.2.1", "10.0.2.2"
BOOT_TIMEOUT = 400      # to the guest's shell: Linux to init takes ~28 s here, more under load
ANSWER_TIMEOUT = 120    # for each command after the restore
BEFORE = b"kvmlet-disk-before-snapshot"  # at sector 0, written by the booted guest
AFTER = b"kvmlet-disk-after-restore"     # at sector 8, written by the restored guest


def guest_script():
    """kvmlet.run=: the network, a disk write, the marker, then an interactive shell on the console."""
    script = (f"ip addr add {GUEST_IP}/24 dev eth0; ip link set eth0 up; "
              f"printf {BEFORE.decode()} | dd of=/dev/vda bs=512 seek=0 conv=notrunc,fsync 2>/dev/null; "
              "echo snap-ready; exec sh")
    return script.replace("%", "%25").replace(" ", "%20")


class Failure(Exception):
    pass


def wait_for(vm, pattern, timeout, after=0):
    """The first match of `pattern` in the guest's console output past offset `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, vm.stdout()[after:])
        if m:
            return m
        if not vm.running():
            break
        time.sleep(0.05)
    vm.report()
    raise Failure(f"no {pattern!r} on the guest's console within {timeout} s (kvmlet running: {vm.running()})")


def command(vm, line, pattern, timeout=ANSWER_TIMEOUT):
    """Types `line` on the guest's console and waits for `pattern` in what follows."""
    at = len(vm.stdout())
    vm.write_stdin(line + "\n")
    return wait_for(vm, pattern, timeout, after=at)


def disk_bytes(path, offset, size):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def boot_and_snapshot(scene, kvmlet, images, ns, transport, disk, snap, mem):
    config, sock = scene.path("vm.json"), scene.path("boot.sock")
    with open(config, "w") as f:
        json.dump({
            "boot-source": {"kernel_image_path": os.path.join(images, "vmlinux"),
                            "initrd_path": os.path.join(images, "initrd.cpio"),
                            "boot_args": "console=ttyS0 reboot=k panic=-1 kvmlet.run=" + guest_script()},
            "machine-config": {"vcpu_count": 1, "mem_size_mib": 256},
            "drives": [{"drive_id": "data", "path_on_host": disk, "is_root_device": False,
                        "is_read_only": False}],
            "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02"}],
            "kvmlet": {"transport": transport},
        }, f)
    start = time.monotonic()
    vm = scene.kvmlet(["ip", "netns", "exec", ns, kvmlet, "run", "--api-sock", sock, "--config", config], name="boot")
    wait_for(vm, r"(?m)^snap-ready\r?$", BOOT_TIMEOUT)  # not the command line's echo
    print(f"figure: boot to the guest's shell: {time.monotonic() - start:.1f} s (kvmlet start to 'snap-ready')")
    time.sleep(2)  # the shell's prompt, then the guest idles on the console
    if disk_bytes(disk, 0, len(BEFORE)) != BEFORE:
        vm.report()
        raise Failure("the booted guest's write is not at sector 0 of the disk image")
    for method, path, body in [("PATCH", "/vm", {"state": "Paused"}),
                               ("PUT", "/snapshot/create", {"snapshot_type": "Full", "snapshot_path": snap,
                                                            "mem_file_path": mem})]:
        r = api_client.request(sock, method, path, body)
        if r.status != 204:
            vm.report()
            raise Failure(f"{method} {path}: {r}")
    print(f"figure: state file {os.path.getsize(snap)} bytes; memory file {os.path.getsize(mem) >> 20} MiB, "
          f"{os.stat(mem).st_blocks * 512 >> 20} MiB allocated")
    vm.signal(signal.SIGKILL)
    if vm.wait(10) != -signal.SIGKILL:
        raise Failure("the booted kvmlet did not end on SIGKILL")


def restore_and_check(scene, kvmlet, ns, disk, snap, mem):
    sock = scene.path("restored.sock")
    start = time.monotonic()
    vm = scene.kvmlet(["ip", "netns", "exec", ns, kvmlet, "run", "--api-sock", sock], name="restored")
    if vm.wait_for_socket(sock) is None:
        vm.report()
        raise Failure("the new kvmlet's API socket never answered")
    r = api_client.request(sock, "PUT", "/snapshot/load",
                           {"snapshot_path": snap, "mem_backend": {"backend_type": "File", "backend_path": mem},
                            "resume_vm": True})
    if r.status != 204:
        vm.report()
        raise Failure(f"PUT /snapshot/load: {r}")
    loaded = time.monotonic()
    command(vm, "echo answer-$((6 * 7))", r"answer-42")
    answered = time.monotonic()
    print(f"figure: restore: load answered {(loaded - start) * 1000:.0f} ms and the guest's first answer "
          f"{(answered - start) * 1000:.0f} ms after the new process started")
    for line in vm.stderr().splitlines():
        if "snapshot:" in line:
            print(f"figure: {line}")
    command(vm, f"printf {AFTER.decode()} | dd of=/dev/vda bs=512 seek=8 conv=notrunc,fsync 2>/dev/null; "
                "echo disk-status-$?", r"disk-status-0")
    if disk_bytes(disk, 8 * 512, len(AFTER)) != AFTER:
        raise Failure("the restored guest's write is not at sector 8 of the disk image")
    if disk_bytes(disk, 0, len(BEFORE)) != BEFORE:
        raise Failure("the write from before the snapshot is gone from sector 0")
    m = command(vm, f"ping -c 3 -W 10 {HOST_IP}", r"(\d+) packets received")
    if m.group(1) != "3":
        vm.report()
        raise Failure(f"the restored guest's ping through the TAP: {m.group(0)}, not 3")
    vm.write_stdin("poweroff -f\n")
    status = vm.wait(120)
    if status != 0:
        vm.report()
        raise Failure(f"the restored guest's poweroff ended kvmlet with status {status}, not 0")
    if "error" in vm.stderr().lower():
        vm.report()
        raise Failure("kvmlet logged an error after the restore")


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and (args[1] != "--transport" or args[2] not in ("mmio", "pci"))):
        raise SystemExit(__doc__)
    kvmlet = os.path.abspath(args[0])
    transport = args[2] if len(args) == 3 else "mmio"
    api_client.require_kvm()
    images = api_client.minimal_image_dir()
    if images is None:
        raise SystemExit("FAIL: the minimal guest image is not built (guest-images/build minimal; tools/test does)")
    with api_client.Scene("snaplinux") as scene:
        ns = scene.netns("snaplinux")
        subprocess.run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{HOST_IP}/24", "dev", "tap0"], check=True)
        disk, snap, mem = scene.path("data.img"), scene.path("vm.snap"), scene.path("vm.mem")
        with open(disk, "wb") as f:
            f.truncate(1 << 20)
        try:
            boot_and_snapshot(scene, kvmlet, images, ns, transport, disk, snap, mem)
            restore_and_check(scene, kvmlet, ns, disk, snap, mem)
        except Failure as e:
            raise SystemExit(f"FAIL: {e}")
    print("PASS")


if __name__ == "__main__":
    main()
