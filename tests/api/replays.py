#!/usr/bin/env python3
"""Replays of the call sequences Firecracker's clients make, against kvmlet called by the name
`firecracker` (a symlink), every response checked against the OpenAPI file as in contract.py.

    replays.py CASE KVMLET GUESTS_DIR CONTRACT_YAML

Cases (one CTest test each):
  go_sdk       firecracker-go-sdk's default start: poll GET /machine-config until the socket
               answers, PUT /logger, PUT /machine-config (and GET it back), /boot-source, /drives,
               /network-interfaces (a TAP in a network namespace of the test's own), /vsock,
               InstanceStart; then SIGTERM and a clean exit
  kata         Kata Containers: `firecracker --version` parsed, a config file with vsock and a
               placeholder drive, `GET /` polled until Running; the vsock socket listens; SIGTERM
  containerd   firecracker-containerd: start with stub drives, PATCH /drives with the real image
               after start, PATCH /vm Paused and Resumed, then the
               agent over vsock (CONNECT 1234, an echo), and kvmlet ends with the guest
  flintlock    flintlock: `--no-api --config-file --metadata` with a network interface and
               mmds-config; kvmlet runs the guest and ends, status 0, when the guest resets
  flintlock_setup_error
               a missing --metadata file: one error line on stderr and status 1, with and
               without a log_path in the config file
"""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time

from api_client import Checks, Scene, main, request
from contract import drive_swap


def firecracker(scene, args):
    """kvmlet by Firecracker's name: a symlink called `firecracker`, as orchestrators install it."""
    link = scene.path("firecracker")
    if not os.path.lexists(link):
        os.symlink(args.kvmlet, link)
    return link


def sparse_file(path, size=1 << 20):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def poll_state(c, sock, want, timeout=30):
    """Kata's waitVMMRunning: GET / until its state is `want`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = request(sock, "GET", "/", timeout=5)
            last = r
            if r.status == 200 and r.json().get("state") == want:
                problems = c.contract.problems(r, 200)
                return c.check(not problems, f"GET / polled until {want}", "; ".join(problems))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    c.fail(f"GET / never said {want} within {timeout}s (last: {last})")
    return False


def listening(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def sigterm_exits_cleanly(c, k, sock=None):
    k.signal(signal.SIGTERM)
    status = k.wait(30)
    c.check(status == 0, "SIGTERM ends kvmlet with status 0", f"status {status}")
    errors = [line for line in k.stderr().splitlines() if line.startswith("kvmlet: error:")]
    c.check(not errors, "no error line on stderr", repr(errors))
    if sock is not None:
        c.check(not os.path.exists(sock), "the API socket is gone after exit")


def flush_metrics(c, sock, metrics_path):
    """FlushMetrics after start with metrics configured: 204, and the metrics file holds JSON
    objects, one per line (docs/api.md, Metrics)."""
    r = c.call(sock, "PUT", "/actions", {"action_type": "FlushMetrics"}, status=204,
               what="PUT /actions FlushMetrics after start")
    if r is None or r.status != 204:
        return
    try:
        with open(metrics_path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        c.check(lines and all(isinstance(x, dict) for x in lines),
                "FlushMetrics wrote JSON objects, one per line, to metrics_path", f"{len(lines)} lines")
    except (OSError, ValueError) as e:
        c.fail(f"FlushMetrics answered 204 but the metrics file is not JSON lines: {e}")


def case_go_sdk(args):
    c = Checks(args.contract)
    with Scene("replay-go-sdk") as scene:
        ns = scene.netns("gosdk")
        sock = scene.path("firecracker.sock")
        fc = firecracker(scene, args)
        k = scene.kvmlet(["ip", "netns", "exec", ns, fc, "--api-sock", sock, "--id", "go_sdk_vm"])
        # waitForSocket: stat the socket, then GET /machine-config every 10 ms until it answers.
        deadline = time.monotonic() + 30
        answered = None
        while time.monotonic() < deadline and k.running() and answered is None:
            if os.path.exists(sock):
                try:
                    answered = request(sock, "GET", "/machine-config", timeout=5)
                except OSError:
                    pass
            time.sleep(0.01)
        if not c.check(answered is not None and answered.status == 200, "the socket answers GET /machine-config",
                       str(answered)):
            k.report()
            return c.finish()
        c.check(not c.contract.problems(answered, 200), "the first GET /machine-config is in the contract's shape")
        c.call(sock, "PUT", "/logger", {"log_path": scene.path("fc.log"), "level": "Debug", "show_level": True,
                                        "show_log_origin": False}, status=204)
        c.call(sock, "PUT", "/metrics", {"metrics_path": scene.path("fc.metrics")}, status=204)
        c.call(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32, "smt": False,
                                               "track_dirty_pages": False}, status=204)
        r = c.call(sock, "GET", "/machine-config", status=200, what="GET /machine-config (refreshMachineConfiguration)")
        if r and r.status == 200:
            c.check(r.json().get("mem_size_mib") == 32, "the machine-config read back is what was put", r.body.decode())
        c.call(sock, "PUT", "/boot-source", {"kernel_image_path": args.guest("serial_echo"),
                                             "boot_args": "console=ttyS0 reboot=k panic=1 pci=off"}, status=204)
        root = sparse_file(scene.path("root.ext4"))
        c.call(sock, "PUT", "/drives/root_drive", {"drive_id": "root_drive", "path_on_host": root,
                                                   "is_root_device": True, "is_read_only": False}, status=204)
        c.call(sock, "PUT", "/drives/1", {"drive_id": "1", "path_on_host": sparse_file(scene.path("data.img")),
                                          "is_root_device": False, "is_read_only": True}, status=204)
        c.call(sock, "PUT", "/network-interfaces/1", {"iface_id": "1", "host_dev_name": "tap0",
                                                      "guest_mac": "06:00:c0:a8:00:02"}, status=204)
        vsock = scene.path("v.sock")
        c.call(sock, "PUT", "/vsock", {"vsock_id": "vsock0", "guest_cid": 3, "uds_path": vsock}, status=204)
        r = c.call(sock, "PUT", "/actions", {"action_type": "InstanceStart"}, status=204)
        if r is not None and r.status == 204:
            c.check(k.wait_for_output("ready"), "the guest runs (printed 'ready')")
            r = c.call(sock, "GET", "/", status=200, what="GET / after InstanceStart")
            if r and r.status == 200:
                c.check(r.json().get("state") == "Running" and r.json().get("id") == "go_sdk_vm",
                        "GET / says Running, with the --id", r.body.decode())
            c.check(os.path.exists(vsock) and stat.S_ISSOCK(os.stat(vsock).st_mode) and listening(vsock),
                    "kvmlet listens on the vsock's uds_path")
            flush_metrics(c, sock, scene.path("fc.metrics"))
        sigterm_exits_cleanly(c, k, sock)
        if c.failures:
            k.report()
    return c.finish()


def case_kata(args):
    c = Checks(args.contract)
    with Scene("replay-kata") as scene:
        fc = firecracker(scene, args)
        out = subprocess.run([fc, "--version"], capture_output=True, text=True, timeout=30)
        first = out.stdout.splitlines()[0] if out.stdout else ""
        m = re.match(r"Firecracker v(\d+\.\d+\.\d+)", first)
        c.check(out.returncode == 0 and m is not None, "firecracker --version: first line parsed by Kata's regex",
                f"status {out.returncode}, first line {first!r}")
        if m:
            version = tuple(int(x) for x in m.group(1).split("."))
            c.check(version >= (1, 0, 0), f"the version {m.group(1)} is at least Kata's minimum 1.0.0")
        sock = scene.path("firecracker.socket")
        vsock = scene.path("kata.hvsock")
        config = scene.path("fcConfig.json")
        with open(config, "w") as f:
            json.dump({
                "boot-source": {"kernel_image_path": args.guest("serial_echo"),
                                "boot_args": "console=ttyS0 reboot=k panic=1 agent.use_vsock=true"},
                "drives": [
                    {"drive_id": "rootfs", "path_on_host": sparse_file(scene.path("kata-containers.img")),
                     "is_root_device": False, "is_read_only": True},
                    {"drive_id": "drive_0", "path_on_host": sparse_file(scene.path("drive_0"), 4096),
                     "is_root_device": False, "is_read_only": False},
                ],
                "machine-config": {"vcpu_count": 1, "mem_size_mib": 32},
                "vsock": {"guest_cid": 3, "uds_path": vsock},
                "logger": {"log_path": scene.path("fc.log"), "level": "Debug", "show_level": True},
            }, f)
        k = scene.kvmlet([fc, "--id", "kata_sandbox", "--api-sock", sock, "--config-file", config])
        poll_state(c, sock, "Running")
        c.check(k.wait_for_output("ready"), "the guest runs (printed 'ready')")
        c.call(sock, "GET", "/vm/config", status=200, what="GET /vm/config of the config file's microVM")
        c.call(sock, "PUT", "/vsock", {"guest_cid": 4, "uds_path": vsock}, status=400,
               what="PUT /vsock after a config-file start is post-boot")
        c.check(listening(vsock), "kvmlet listens on the vsock's uds_path")
        sigterm_exits_cleanly(c, k, sock)
        if c.failures:
            k.report()
    return c.finish()


def agent_echo(c, uds_path, port, size=64 * 1024):
    """The runtime's way to its in-guest agent: Firecracker's hybrid vsock. CONNECT <port> on the
    uds_path, `OK <host port>`, then a byte stream both ways (the virtio_vsock guest echoes it);
    the host shuts down its side and the guest closes too."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(uds_path)
        s.sendall(b"CONNECT %d\n" % port)
        line = b""
        while not line.endswith(b"\n"):
            chunk = s.recv(1)
            if not chunk:
                break
            line += chunk
        words = line.split()
        if not c.check(len(words) == 2 and words[0] == b"OK" and words[1].isdigit(),
                       f"CONNECT {port} on the vsock socket: OK <host port>", repr(line)):
            return
        data = bytes((5 * i + 1) & 0xff for i in range(size))
        echo = b""
        for at in range(0, size, 8192):
            s.sendall(data[at:at + 8192])
            while len(echo) < min(at + 8192, size):
                chunk = s.recv(65536)
                if not chunk:
                    break
                echo += chunk
        c.check(echo == data, f"the agent echoed {size} bytes intact", f"{len(echo)} bytes came back")
        s.shutdown(socket.SHUT_WR)
        c.check(s.recv(1) == b"", "EOF from the guest after the host shut down its side")
    except OSError as e:
        c.fail(f"vsock CONNECT {port}: {type(e).__name__}: {e}")
    finally:
        s.close()


def case_containerd(args):
    """The guest is virtio_vsock.elf (virtio-pci: --enable-pci), standing in for the agent: it
    listens on vsock port 1234, echoes, and resets when the host's connection shuts down."""
    c = Checks(args.contract)
    with Scene("replay-containerd") as scene:
        fc = firecracker(scene, args)
        sock = scene.path("firecracker.sock")
        k = scene.kvmlet([fc, "--api-sock", sock, "--id", "fc_containerd_vm", "--enable-pci"])
        if k.wait_for_socket(sock, path="/machine-config") is None:
            k.report()
            raise SystemExit("FAIL: kvmlet did not answer")
        c.call(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32}, status=204)
        c.call(sock, "PUT", "/boot-source", {"kernel_image_path": args.guest("virtio_vsock"),
                                             "boot_args": "console=ttyS0 noapic reboot=k panic=1"}, status=204)
        c.call(sock, "PUT", "/drives/root_drive", {"drive_id": "root_drive", "is_root_device": True,
                                                   "is_read_only": True,
                                                   "path_on_host": sparse_file(scene.path("rootfs.img"))}, status=204)
        # Stub drives: placeholders the runtime patches with container images once they are known.
        for i in range(2):
            c.call(sock, "PUT", f"/drives/stub{i}", {"drive_id": f"stub{i}", "is_root_device": False,
                                                    "is_read_only": False,
                                                    "path_on_host": sparse_file(scene.path(f"stub{i}"), 512)},
                   status=204)
        vsock = scene.path("fc.vsock")
        c.call(sock, "PUT", "/vsock", {"guest_cid": 3, "uds_path": vsock}, status=204)
        r = c.call(sock, "PUT", "/actions", {"action_type": "InstanceStart"}, status=204)
        if r is None or r.status != 204:
            k.report()
            return c.finish()
        c.check(k.wait_for_output("listening on port 1234"), "the agent (guest) listens on vsock port 1234")
        image = sparse_file(scene.path("container.img"), 8 << 20)
        # The runtime's stub drive becomes the container's image.
        drive_swap(c, sock, "stub0", scene.path("stub0"), image)
        c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204, what="PauseVM: PATCH /vm Paused")
        poll_state(c, sock, "Paused", timeout=5)
        c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204, what="ResumeVM: PATCH /vm Resumed")
        poll_state(c, sock, "Running", timeout=5)
        agent_echo(c, vsock, 1234)
        # The agent's end: the guest resets, and kvmlet with it.
        status = k.wait(30)
        c.check(status == 0, "kvmlet exits 0 when the guest resets", f"status {status}")
        c.check("virtio-vsock: ok" in k.stdout() and "FAIL" not in k.stdout(), "the guest says virtio-vsock: ok")
        c.check(not os.path.exists(sock), "the API socket is gone after exit")
        if c.failures:
            k.report()
    return c.finish()


def flintlock_config(scene, args):
    """flintlock's config file: a root drive, a TAP named tap0 with MMDS on it, log and metrics."""
    return {
        "boot-source": {"kernel_image_path": args.guest("serial_echo"),
                        "boot_args": "console=ttyS0 reboot=k panic=1 i8042.noaux ds=nocloud-net"},
        "drives": [{"drive_id": "root", "path_on_host": sparse_file(scene.path("root.img")),
                    "is_root_device": True, "is_read_only": False, "cache_type": "Unsafe"}],
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 32, "smt": False},
        "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0",
                                "guest_mac": "06:00:00:00:00:01"}],
        "mmds-config": {"version": "V1", "network_interfaces": ["eth0"]},
        "logger": {"log_path": scene.path("fc.log"), "level": "Debug"},
        "metrics": {"metrics_path": scene.path("fc.metrics")},
    }


def case_flintlock(args):
    c = Checks(args.contract)
    with Scene("replay-flintlock") as scene:
        ns = scene.netns("flint")
        fc = firecracker(scene, args)
        config = scene.path("firecracker.cfg")
        metadata = scene.path("metadata.json")
        with open(metadata, "w") as f:
            json.dump({"latest": {"meta-data": {"instance-id": "ns/vm1", "local-hostname": "vm1"},
                                  "user-data": "#cloud-config\n"}}, f)
        with open(config, "w") as f:
            json.dump(flintlock_config(scene, args), f)
        before = set(os.listdir(scene.dir))
        k = scene.kvmlet(["ip", "netns", "exec", ns, fc, "--id", "vm1", "--no-api", "--config-file", config,
                          "--metadata", metadata])
        c.check(k.wait_for_output("ready"), "the guest runs from the config file (printed 'ready')")
        c.check(k.running(), "kvmlet runs while the guest does")
        made = set(os.listdir(scene.dir)) - before
        sockets = [n for n in made if stat.S_ISSOCK(os.lstat(scene.path(n)).st_mode)]
        c.check(not sockets, "--no-api: no socket made", repr(sockets))
        k.write_stdin("stop\n")
        c.check(k.wait_for_output("line: stop"), "the guest read its line and resets")
        status = k.wait(30)
        c.check(status == 0, "kvmlet ends with status 0 when the guest stops", f"status {status}")
        if c.failures:
            k.report()
    return c.finish()


def case_flintlock_setup_error(args):
    """A set-up error (here a missing --metadata file) is one line on stderr and status 1, also when
    the config file sends the log to a file: the orchestrator reads stderr. Firecracker logs it and
    also writes it to stderr (`eprintln!("Error: ...")` in its main)."""
    c = Checks(args.contract)
    with Scene("replay-flintlock-error") as scene:
        fc = firecracker(scene, args)
        for with_log in (False, True):
            config = scene.path(f"firecracker-{with_log}.cfg")
            cfg = flintlock_config(scene, args)
            del cfg["network-interfaces"], cfg["mmds-config"]
            if not with_log:
                del cfg["logger"]
            with open(config, "w") as f:
                json.dump(cfg, f)
            k = scene.kvmlet([fc, "--no-api", "--config-file", config, "--metadata", scene.path("missing.json")],
                             name=f"bad_metadata_log_{with_log}")
            status = k.wait(30)
            lines = [line for line in k.stderr().splitlines() if line.strip()]
            c.check(status == 1 and len(lines) == 1 and lines[0].startswith("kvmlet: error:")
                    and "--metadata" in lines[0],
                    f"a missing --metadata file {'with' if with_log else 'without'} logger.log_path: one error line "
                    "on stderr naming it, status 1", f"status {status}, stderr {lines!r}")
    return c.finish()


CASES = {"go_sdk": case_go_sdk, "kata": case_kata, "containerd": case_containerd, "flintlock": case_flintlock,
         "flintlock_setup_error": case_flintlock_setup_error}

if __name__ == "__main__":
    sys.exit(main(CASES, sys.argv))
