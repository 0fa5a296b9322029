#!/usr/bin/env python3
"""virtio-net's transmit rate limiter end to end (issue 16, rate limiters): the minimal Linux
guest streams zeros over TCP to a listener on the host while kvmlet limits its tx to a low
bandwidth, then PATCH /network-interfaces/eth0 raises the limit, then removes it. The listener
(on the host, in a network namespace this test makes) timestamps what it receives; the rate in
each phase, measured there, must be near the limit in force (loose bounds), higher after the
raise, and the limited one much lower than the unlimited one. One boot.

Network safety: everything happens in namespace kvmlet-api-netrate-<pid>, made here and removed
on every exit path (api_client.Scene): TAP tap0 with 10.0.2.1/24, the only address this test
gives, and only in there; the guest is 10.0.2.2 on the same link. Processes end by their PID.

In the guest (busybox): `ip`, `sysctl`, and `nc -e dd if=/dev/zero bs=1M`: dd writes 1 MiB at a
time into the socket (nc's own loop, 1 KiB per three system calls, runs at ~25 KiB/s here, which
would make the emulation the bottleneck). Every packet costs the emulated guest kernel much
time, so the guest sends whole 64 KiB TSO packets (tcp_min_tso_segs=44, as
tests/linux/virtio_net.sh does); the limits are chosen well below what
the guest reaches unlimited (measured by this test, phase 3) so that the limiter, not the
emulation, sets the rate. Usage: net_rate_limit_linux.py KVMLET"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import api_client  # noqa: E402  (tests/api/api_client.py)

HOST_IP, GUEST_IP, PORT = "10.0.2.1", "10.0.2.2", 5001
KIB = 1024
LOW = 64 * KIB    # bytes per second, phase 1
HIGH = 192 * KIB  # phase 2, after the PATCH
WARMUP_S = 4      # after each change, before measuring (the new bucket starts full)
WINDOW_S = 12     # each phase's measurement

# Accepts one connection and prints "<CLOCK_MONOTONIC seconds> <bytes received so far>" after each
# read (at most every 50 ms, and at the end): the test reads the rate off these lines.
LISTENER = f"""
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{HOST_IP}", {PORT}))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
total, last = 0, 0.0
while True:
    data = c.recv(1 << 20)
    now = time.monotonic()
    total += len(data)
    if not data or now - last >= 0.05:
        print(f"{{now:.3f}} {{total}}", flush=True)
        last = now
    if not data:
        break
"""


def guest_script():
    script = (f"ip addr add {GUEST_IP}/24 dev eth0; ip link set eth0 up; "
              "sysctl -qw net.ipv4.tcp_min_tso_segs=44; "
              f"nc {HOST_IP} {PORT} -e dd if=/dev/zero bs=1048576 count=1000")
    return script.replace("%", "%25").replace(" ", "%20")


def limiter(rate):
    """Firecracker's rate_limiter: `rate` bytes per second, a bucket of one second's worth; 0: none."""
    return {"bandwidth": {"size": rate, "refill_time": 1000 if rate else 0}}


def samples(listener):
    out = []
    for line in listener.stdout().split("\n")[:-1]:
        words = line.split()
        if len(words) == 2:
            out.append((float(words[0]), int(words[1])))
    return out


def received_at(points, t):
    """Bytes received by time `t` (the last sample at or before it)."""
    total = 0
    for when, count in points:
        if when > t:
            break
        total = count
    return total


def measure(listener, vm, what):
    """Waits WARMUP_S, then WINDOW_S; returns the bytes per second received in the window."""
    time.sleep(WARMUP_S)
    start = time.monotonic()
    time.sleep(WINDOW_S)
    end = time.monotonic()
    if not vm.running() or not listener.running():
        raise SystemExit(f"FAIL: {'kvmlet' if not vm.running() else 'the listener'} ended during {what}")
    points = samples(listener)
    rate = (received_at(points, end) - received_at(points, start)) / (end - start)
    print(f"{what}: {rate / KIB:.1f} KiB/s over {end - start:.1f} s")
    return rate


def patch_tx(sock, rate):
    r = api_client.request(sock, "PATCH", "/network-interfaces/eth0",
                           {"iface_id": "eth0", "tx_rate_limiter": limiter(rate)})
    if r.status != 204:
        raise SystemExit(f"FAIL: PATCH /network-interfaces/eth0: {r}")


def run(scene, kvmlet_path, images):
    ns = scene.netns("netrate")
    subprocess.run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{HOST_IP}/24", "dev", "tap0"], check=True)
    listener_py = scene.path("listener.py")
    with open(listener_py, "w") as f:
        f.write(LISTENER)
    listener = scene.kvmlet(["ip", "netns", "exec", ns, sys.executable, "-u", listener_py], name="listener")
    if not listener.wait_for_output("listening", timeout=30):
        listener.report()
        raise SystemExit("FAIL: the listener did not start")
    config, sock = scene.path("vm.json"), scene.path("api.sock")
    with open(config, "w") as f:
        json.dump({
            "boot-source": {"kernel_image_path": os.path.join(images, "vmlinux"),
                            "initrd_path": os.path.join(images, "initrd.cpio"),
                            "boot_args": "console=ttyS0 reboot=k panic=-1 kvmlet.run=" + guest_script()},
            "machine-config": {"vcpu_count": 1, "mem_size_mib": 256},
            "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0",
                                    "guest_mac": "06:00:ac:10:00:02", "tx_rate_limiter": limiter(LOW)}],
        }, f)
    vm = scene.kvmlet(["ip", "netns", "exec", ns, kvmlet_path, "firecracker", "--api-sock", sock,
                       "--config-file", config], name="kvmlet")
    deadline = time.monotonic() + 500  # the boot, and the guest's script up to its first packets
    while not samples(listener) and vm.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not samples(listener):
        vm.report()
        raise SystemExit("FAIL: the listener received nothing from the guest")

    low = measure(listener, vm, f"tx limited to {LOW // KIB} KiB/s")
    patch_tx(sock, HIGH)
    high = measure(listener, vm, f"tx limited to {HIGH // KIB} KiB/s (PATCH)")
    patch_tx(sock, 0)
    unlimited = measure(listener, vm, "tx unlimited (PATCH)")

    failures = []
    if not 0.5 * LOW <= low <= 1.25 * LOW:
        failures.append(f"under {LOW // KIB} KiB/s the guest sent {low / KIB:.1f} KiB/s")
    if not high <= 1.25 * HIGH:
        failures.append(f"under {HIGH // KIB} KiB/s the guest sent {high / KIB:.1f} KiB/s")
    if not high >= 2 * low:
        failures.append(f"raising the limit to {HIGH // KIB} KiB/s took the rate only from "
                        f"{low / KIB:.1f} to {high / KIB:.1f} KiB/s")
    if not unlimited >= 3 * low:
        failures.append(f"unlimited, the guest sent {unlimited / KIB:.1f} KiB/s, not much more than "
                        f"{low / KIB:.1f} KiB/s limited")
    vm.signal(signal.SIGTERM)
    status = vm.wait(60)
    if status != 0:
        failures.append(f"kvmlet's status after SIGTERM is {status}, not 0")
    if failures:
        vm.report()
        raise SystemExit("FAIL: " + "; ".join(failures))


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    kvmlet_path = os.path.abspath(sys.argv[1])
    api_client.require_kvm()
    images = api_client.minimal_image_dir()
    if images is None:
        raise SystemExit("FAIL: the minimal guest image is not built (guest-images/build minimal; tools/test does)")
    with api_client.Scene("netrate") as scene:
        run(scene, kvmlet_path, images)
    print("PASS")


if __name__ == "__main__":
    main()
