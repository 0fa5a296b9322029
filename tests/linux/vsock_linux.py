#!/usr/bin/env python3
"""virtio-vsock under the minimal Linux guest, in Firecracker's hybrid form, driven through kvmlet's
Firecracker API (issue 15): a host process talks to the guest's vsock echo program both ways,
10 MiB each way, checksums equal.

The guest (1 vCPU, 256 MiB; PUT /vsock with guest_cid 3 and <tmp>/v.sock) runs, from its init
(kvmlet.run=), guest-images/initramfs/vsock_echo.c:
    vsock-echo listen 1234 1 && vsock-echo send 2 5000 10485760
  - host to guest: once the guest prints "listening on port 1234", the test connects to v.sock,
    writes "CONNECT 1234\\n", expects "OK <host port>\\n", streams 10 MiB of random bytes while
    reading the echo back on another thread, and compares SHA-256; it then closes its socket, and
    the guest must print "echoed 10485760 bytes sha256 <the same>";
  - guest to host: the test listens on v.sock_5000 from before the boot; the guest's
    `vsock-echo send` connects to host CID 2 port 5000, and the test echoes what it sends until
    its EOF (SHUTDOWN(SEND) from the guest), then closes. The SHA-256 the test saw, the pattern's
    as the test computes it, and the guest's sent and received ones must all be equal.
Then the guest powers off (kvmlet exits 0), the metrics kvmlet wrote show the bytes in the
vsock section and no vsock errors, and kvmlet logged no vsock warning.

No skips: no /dev/kvm or no built image is a failure. Guest kernel code runs ~1000x slower on
kvm-pvm hosts (../../shared/HOST.md): the host side reads and writes 1 MiB at a time, and the
limits are generous (400 s to the guest's listener, 300 s per direction).
Usage: vsock_linux.py KVMLET"""
import hashlib
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import api_client  # noqa: E402  (tests/api/api_client.py)

GUEST_CID = 3
GUEST_PORT = 1234  # the guest's listener
HOST_PORT = 5000  # the test's listener, <uds_path>_5000
SIZE = 10 << 20
IO = 1 << 20  # bytes per host-side recv/send
BOOT_TIMEOUT = 400
DIRECTION_TIMEOUT = 300


class Failure(Exception):
    pass


def image_dir():
    path = api_client.minimal_image_dir()
    if path is None:
        raise Failure("the minimal guest image is not built (guest-images/build minimal; tools/test does)")
    return path


def pattern_sha256(size):
    """SHA-256 of vsock-echo's send pattern: little-endian words k * 2654435761 mod 2^32."""
    words = (size + 3) // 4
    data = struct.pack(f"<{words}I", *((k * 2654435761) & 0xFFFFFFFF for k in range(words)))
    return hashlib.sha256(data[:size]).hexdigest()


def put(sock, method, path, body):
    r = api_client.request(sock, method, path, body)
    if r.status != 204:
        raise Failure(f"{method} {path}: {r}")


def guest_line(vm, prefix, timeout):
    """The first whole line of the guest's console that starts with `prefix` (waits for it)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in vm.stdout().split("\n")[:-1]:
            line = line.rstrip("\r")
            if line.startswith(prefix):
                return line
        if not vm.running():
            raise Failure(f"kvmlet exited (status {vm.proc.returncode}) before the guest printed {prefix!r}")
        if time.monotonic() > deadline:
            raise Failure(f"the guest did not print {prefix!r} within {timeout} s")
        time.sleep(0.05)


class Worker(threading.Thread):
    """A thread whose exception the test sees (in .error) rather than loses."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.error, self.result = target, None, None

    def run(self):
        try:
            self.result = self.target()
        except BaseException as e:  # noqa: B036 (reported by the main thread)
            self.error = e

    def outcome(self, timeout, what):
        self.join(timeout)
        if self.is_alive():
            raise Failure(f"{what}: not done within {timeout} s")
        if self.error is not None:
            raise Failure(f"{what}: {self.error!r}")
        return self.result


def echo_guest_connection(listener):
    """Guest to host: accepts the guest's one connection on <uds_path>_5000 and echoes it to EOF;
    (bytes, sha256, seconds from the first byte to EOF)."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(DIRECTION_TIMEOUT)
        digest, total, start = hashlib.sha256(), 0, None
        while True:
            data = conn.recv(IO)
            if not data:
                break
            start = start or time.monotonic()
            digest.update(data)
            total += len(data)
            conn.sendall(data)
        return total, digest.hexdigest(), time.monotonic() - (start or time.monotonic())


def connect_to_guest(uds_path, port):
    """Host to guest: a connection through uds_path to the guest's port, past its OK line."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(30)
        sock.connect(uds_path)
        sock.sendall(f"CONNECT {port}\n".encode())
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            byte = sock.recv(1)  # byte by byte: nothing of the stream may be read with the line
            if not byte:
                raise Failure(f"the CONNECT {port} socket closed after {line!r}, without OK")
            line += byte
        words = line.decode(errors="replace").split()
        if len(words) != 2 or words[0] != "OK" or not words[1].isdigit():
            raise Failure(f"CONNECT {port} answered {line!r}, not 'OK <host port>'")
        print(f"CONNECT {port}: {line.decode().strip()}")
        return sock
    except BaseException:
        sock.close()
        raise


def host_to_guest(uds_path):
    """Streams SIZE random bytes to the guest's echo while reading the echo; (sha256, seconds)."""
    payload = os.urandom(SIZE)
    want = hashlib.sha256(payload).hexdigest()
    sock = connect_to_guest(uds_path, GUEST_PORT)
    with sock:
        sock.settimeout(DIRECTION_TIMEOUT)
        start = time.monotonic()

        def send():
            view = memoryview(payload)
            for at in range(0, SIZE, IO):
                sock.sendall(view[at:at + IO])

        sender = Worker(send)
        sender.start()
        digest, got = hashlib.sha256(), 0
        while got < SIZE:
            data = sock.recv(IO)
            if not data:
                raise Failure(f"host to guest: the echo ended after {got} of {SIZE} bytes")
            digest.update(data)
            got += len(data)
        seconds = time.monotonic() - start
        sender.outcome(10, "host to guest: sending")
    if digest.hexdigest() != want:
        raise Failure("host to guest: the echo's SHA-256 differs from what was sent")
    return want, seconds


def vsock_metrics(path):
    """The vsock counters summed over the metrics lines (each line holds deltas)."""
    totals = {}
    with open(path) as f:
        for line in f:
            for name, value in json.loads(line).get("vsock", {}).items():
                if isinstance(value, int):
                    totals[name] = totals.get(name, 0) + value
    return totals


def run(kvmlet, tmp, images):
    api_sock, uds_path, metrics = (os.path.join(tmp, n) for n in ("api.sock", "v.sock", "metrics.json"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        listener.bind(f"{uds_path}_{HOST_PORT}")
        listener.listen(1)
        listener.settimeout(BOOT_TIMEOUT + 2 * DIRECTION_TIMEOUT)
        with api_client.Kvmlet([kvmlet, "firecracker", "--api-sock", api_sock, "--id", "vsock1"], tmp) as vm:
            exercise(vm, api_sock, uds_path, metrics, listener, images)


def exercise(vm, api_sock, uds_path, metrics, listener, images):
    started = time.monotonic()
    if vm.wait_for_socket(api_sock) is None:
        raise Failure("the API socket never answered")
    script = f"vsock-echo listen {GUEST_PORT} 1 && vsock-echo send 2 {HOST_PORT} {SIZE}"
    boot_args = "console=ttyS0 reboot=k panic=-1 kvmlet.run=" + script.replace("%", "%25").replace(" ", "%20")
    put(api_sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256})
    put(api_sock, "PUT", "/boot-source", {"kernel_image_path": os.path.join(images, "vmlinux"),
                                          "initrd_path": os.path.join(images, "initrd.cpio"),
                                          "boot_args": boot_args})
    put(api_sock, "PUT", "/vsock", {"guest_cid": GUEST_CID, "uds_path": uds_path})
    put(api_sock, "PUT", "/metrics", {"metrics_path": metrics})
    guest_side = Worker(lambda: echo_guest_connection(listener))
    guest_side.start()
    put(api_sock, "PUT", "/actions", {"action_type": "InstanceStart"})

    guest_line(vm, f"vsock-echo: listening on port {GUEST_PORT}", BOOT_TIMEOUT)
    print(f"the guest listens on vsock port {GUEST_PORT} {time.monotonic() - started:.1f} s after kvmlet started")
    sent_sha, seconds = host_to_guest(uds_path)
    print(f"host to guest: {SIZE} bytes echoed in {seconds:.1f} s ({SIZE / seconds / 1e6:.2f} MB/s each way), "
          f"sha256 {sent_sha}")
    echoed = guest_line(vm, "vsock-echo: echoed", 60).split()
    if echoed[2:] != [str(SIZE), "bytes", "sha256", sent_sha]:
        raise Failure(f"host to guest: the guest says {' '.join(echoed)!r}")

    total, host_sha, seconds = guest_side.outcome(DIRECTION_TIMEOUT, "guest to host")
    report = guest_line(vm, "vsock-echo: sent", 60)
    print(f"guest to host: {total} bytes echoed in {seconds:.1f} s; the guest says: {report}")
    want = pattern_sha256(SIZE)
    expected = f"vsock-echo: sent {SIZE} bytes sha256 {want} received {SIZE} bytes sha256 {want}"
    if total != SIZE or host_sha != want or report != expected:
        raise Failure(f"guest to host: the test got {total} bytes with sha256 {host_sha}; "
                      f"the pattern's is {want}; the guest says {report!r}")

    guest_line(vm, "kvmlet-init: run exit=0", 60)
    status = vm.wait(120)
    if status != 0:
        raise Failure(f"kvmlet did not exit with status 0 after the guest powered off (status {status})")
    counters = vsock_metrics(metrics)
    errors = {k: counters.get(k, 0) for k in ("tx_malformed", "tx_wrong_cid", "protocol_errors", "host_errors")}
    if counters.get("rx_bytes_count", 0) < 2 * SIZE or counters.get("tx_bytes_count", 0) < 2 * SIZE \
            or counters.get("conns_added", 0) != 2 or any(errors.values()):
        raise Failure(f"vsock metrics: {counters}")
    print(f"vsock metrics: {counters}")
    warnings = [line for line in vm.stderr().splitlines() if "virtio-vsock" in line]
    if warnings:
        raise Failure(f"kvmlet warned about vsock: {warnings[:5]}")
    print(f"whole run: {time.monotonic() - started:.1f} s")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    try:
        api_client.require_kvm()
        images = image_dir()
        with tempfile.TemporaryDirectory(prefix="kvmlet-vsock-linux.") as tmp:
            run(os.path.abspath(sys.argv[1]), tmp, images)
    except Failure as e:
        raise SystemExit(f"FAIL: {e}")
    print("PASS")


if __name__ == "__main__":
    main()
