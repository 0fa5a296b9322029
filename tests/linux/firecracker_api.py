#!/usr/bin/env python3
"""The minimal Linux guest driven through kvmlet's Firecracker API, as an orchestrator drives
Firecracker (issue 15): configured over the socket (machine, boot source, a drive, metrics),
InstanceStart; then while the guest's init prints its disk's size every second:
  - PATCH /vm Paused and Resumed 100 times while the guest counts: the state shows in GET /,
    and the count the guest prints goes on without a gap or a repeat (nothing lost);
  - PATCH /drives/scratch with a 2 MiB image in place of the 1 MiB one: the guest sees the new
    capacity (4096 sectors instead of 2048), as firecracker-containerd's drive swap needs;
  - FlushMetrics: a metrics line with the drive's reads;
  - SIGTERM: kvmlet exits with status 0 and writes a last metrics line.
SendCtrlAltDel is not tried here: the minimal kernel has no keyboard driver (CONFIG_SERIO off),
and its ACPI power button is power_button.py's; tests/guests' ctrl_alt_del guest checks the keys.
Usage: firecracker_api.py KVMLET"""
import json
import signal
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import api_client  # noqa: E402  (tests/api/api_client.py)


def image_dir():
    path = api_client.minimal_image_dir()
    if path is None:
        raise SystemExit("FAIL: the minimal guest image is not built (guest-images/build minimal; tools/test does)")
    return path


def put(sock, method, path, body):
    r = api_client.request(sock, method, path, body)
    if r.status != 204:
        raise SystemExit(f"FAIL: {method} {path}: {r}")


def counts(vm):
    """The numbers the guest printed as n=N, in order, from whole lines only (the last one may be
    half written)."""
    lines = vm.stdout().split("\n")[:-1]
    return [int(word[2:]) for line in lines for word in line.split() if word.startswith("n=") and word[2:].isdigit()]


def state(sock):
    return api_client.request(sock, "GET", "/").json()["state"]


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    kvmlet_path = sys.argv[1]
    api_client.require_kvm()
    images = image_dir()
    with tempfile.TemporaryDirectory(prefix="kvmlet-fc-linux.") as tmp:
        small, big = os.path.join(tmp, "small.img"), os.path.join(tmp, "big.img")
        for path, size in ((small, 1 << 20), (big, 2 << 20)):
            with open(path, "wb") as f:
                f.truncate(size)
        metrics = os.path.join(tmp, "metrics.json")
        sock = os.path.join(tmp, "api.sock")
        with api_client.Kvmlet([kvmlet_path, "firecracker", "--api-sock", sock, "--id", "linux1"], tmp) as vm:
            run(vm, sock, images, small, big, metrics)
    print("PASS")


def run(vm, sock, images, small, big, metrics):
    if vm.wait_for_socket(sock) is None:
        raise SystemExit("FAIL: the API socket never answered")
    # The guest's init runs this (kvmlet.run=, spaces as %20): a count and the disk's size in
    # sectors, five times a second (builtins only, no fork: kernel code runs slowly here).
    script = "i=0; while true; do i=$((i+1)); read s </sys/block/vda/size; echo n=$i size=$s; sleep 0.2; done"
    boot_args = "console=ttyS0 reboot=k panic=-1 kvmlet.run=" + script.replace("%", "%25").replace(" ", "%20")
    put(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256})
    put(sock, "PUT", "/boot-source", {"kernel_image_path": os.path.join(images, "vmlinux"),
                                      "initrd_path": os.path.join(images, "initrd.cpio"), "boot_args": boot_args})
    put(sock, "PUT", "/drives/scratch", {"drive_id": "scratch", "path_on_host": small, "is_root_device": False})
    put(sock, "PUT", "/metrics", {"metrics_path": metrics, "emit_id": True})
    put(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    if state(sock) != "Running":
        raise SystemExit("FAIL: GET / does not say Running after InstanceStart")
    if not vm.wait_for_output("size=2048", timeout=400):
        raise SystemExit("FAIL: the guest never printed the 1 MiB disk's size (size=2048)")

    for cycle in range(100):
        put(sock, "PATCH", "/vm", {"state": "Paused"})
        if state(sock) != "Paused":
            raise SystemExit(f"FAIL: GET / does not say Paused (cycle {cycle})")
        time.sleep(0.01)
        put(sock, "PATCH", "/vm", {"state": "Resumed"})
        if state(sock) != "Running":
            raise SystemExit(f"FAIL: GET / does not say Running after Resumed (cycle {cycle})")
        time.sleep(0.02)
    printed = counts(vm)
    deadline = time.monotonic() + 120
    while len(counts(vm)) < len(printed) + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    seen = counts(vm)
    if len(seen) < len(printed) + 3:
        raise SystemExit("FAIL: the guest did not go on counting after the pauses")
    if seen != list(range(1, len(seen) + 1)):
        raise SystemExit(f"FAIL: the guest's count has gaps or repeats: {seen}")
    print(f"100 pause/resume cycles; the guest counted to {seen[-1]} without a gap")

    put(sock, "PATCH", "/drives/scratch", {"drive_id": "scratch", "path_on_host": big})
    if not vm.wait_for_output("size=4096", timeout=120):
        raise SystemExit("FAIL: the guest never saw the new 2 MiB disk (size=4096)")
    config = api_client.request(sock, "GET", "/vm/config").json()
    if config["drives"][0]["path_on_host"] != big:
        raise SystemExit(f"FAIL: GET /vm/config still names the old image: {config['drives']}")

    put(sock, "PUT", "/actions", {"action_type": "FlushMetrics"})
    with open(metrics) as f:
        lines = [json.loads(line) for line in f]
    if not lines or lines[-1].get("id") != "linux1" or "block_scratch" not in lines[-1]:
        raise SystemExit(f"FAIL: no metrics line with the drive: {lines[-1:] or 'none'}")
    boot = lines[-1].get("boot_timeline_us", {})
    if not boot.get("first_kvm_run") or not boot.get("boot_timer") or boot["boot_timer"] < boot["first_kvm_run"]:
        raise SystemExit(f"FAIL: the metrics' boot timeline lacks the guest's boot: {boot}")
    reads = sum(line["block_scratch"]["read_count"] for line in lines)
    if reads == 0:
        raise SystemExit("FAIL: metrics show no reads from the drive, though the guest's kernel read it")

    vm.signal(signal.SIGTERM)
    status = vm.wait(60)
    if status != 0:
        raise SystemExit(f"FAIL: kvmlet did not exit with status 0 on SIGTERM (status {status})")
    with open(metrics) as f:
        if len(f.readlines()) <= len(lines):
            raise SystemExit("FAIL: no metrics line at exit")


if __name__ == "__main__":
    main()
