#!/usr/bin/env python3
"""Contract tests of kvmlet's Firecracker API (issue 15): every request kvmlet claims, sent to a
running kvmlet, every response checked against Firecracker's OpenAPI file (status listed for the
path and method; 204 with no body and no Content-Type for a PUT/PATCH success; 200 with JSON valid
against the response schema for a GET; errors with a fault_message string), and each error case.

    contract.py CASE KVMLET GUESTS_DIR CONTRACT_YAML

Cases (one CTest test each):
  pre_boot     every pre-boot request with valid bodies, then each error case before start
  post_boot    InstanceStart, GET / through Running, Paused, Running; pre-boot-only requests
               refused after start; post-boot-only ones; a paused guest does not run (a line on
               COM1 is answered only after Resumed); kvmlet ends with the guest. Runs in a network
               namespace of its own with a TAP, for the network interface.
  start_then_pause
               PATCH /vm Paused or SendCtrlAltDel at once after InstanceStart's 204 (eight rounds),
               then SIGTERM while paused ends kvmlet with status 0
  ctrl_alt_del SendCtrlAltDel to a guest with a keyboard driver, sent while paused: it sees the
               keys after Resumed and resets; kvmlet exits 0
  socket       mode 0600; a stale socket replaced; a second kvmlet on a live socket refused with
               one error line and status 1; a regular file at the path refused
  concurrency  50 connections at once doing GETs while clients hold half-sent requests open;
               the guest keeps running meanwhile
"""
import fcntl
import json
import os
import re
import signal
import socket
import stat
import sys
import threading
import time

from api_client import (MAX_PAYLOAD, NOT_AFTER_START, NOT_BEFORE_START, Checks, Response, Scene,
                        UnixHTTPConnection, main, request)

UNKNOWN_FIELD = re.compile(r"unknown field")
MISSING_FIELD = re.compile(r"missing field")
ID_MISMATCH = "The id from the path does not match the id from the body!"
BAD_ID = re.compile(r"is not a valid id")
TOO_LARGE = re.compile(r"larger than the limit of 51200 bytes")


def sparse_file(path, size=1 << 20):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def start_api(scene, args, sock, extra=(), **kw):
    k = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock, *extra], **kw)
    if k.wait_for_socket(sock) is None:
        k.report()
        raise SystemExit(f"FAIL: kvmlet did not answer on {sock}")
    return k


def drive_swap(c, sock, drive_id, old_path, new_path):
    """PATCH /drives/{id} with a new path_on_host after start (docs/api.md; firecracker-containerd
    and Kata swap placeholder drives this way): 204, GET /vm/config has the new path, kvmlet holds
    the new image and has let go of the old one (flock(2), as it locks its images), and a swap to a
    missing file is a 400 that leaves the drive on the last good image."""
    r = c.call(sock, "PATCH", f"/drives/{drive_id}", {"drive_id": drive_id, "path_on_host": new_path}, status=204,
               what=f"PATCH /drives/{drive_id} with a new path_on_host after start")
    if r is None or r.status != 204:
        return
    c.check(drive_path(sock, drive_id) == new_path, "GET /vm/config has the drive's new path")
    c.check(not lockable(new_path), "kvmlet holds the new image (flock)")
    c.check(wait_until(lambda: lockable(old_path)), "kvmlet let go of the old image (flock)")
    c.call(sock, "PATCH", f"/drives/{drive_id}", {"drive_id": drive_id, "path_on_host": new_path + ".missing"},
           status=400, what=f"PATCH /drives/{drive_id} to a file that does not exist")
    c.check(drive_path(sock, drive_id) == new_path, "the refused swap left the drive on the last good image")


def drive_path(sock, drive_id):
    drives = request(sock, "GET", "/vm/config").json().get("drives", [])
    return next((d.get("path_on_host") for d in drives if d.get("drive_id") == drive_id), None)


def lockable(path):
    with open(path, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def wait_until(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def check_instance(c, sock, state, what=None):
    r = c.call(sock, "GET", "/", status=200, what=what or f"GET / says {state}")
    if r is not None and r.status == 200:
        info = r.json()
        c.check(info.get("state") == state, f"GET / state is {state!r}", f"got {info!r}")
    return r


# --- pre_boot -----------------------------------------------------------------------------------

def valid_pre_boot_requests(c, sock, scene, args):
    kernel = args.guest("serial_echo")
    root = sparse_file(scene.path("root.img"))
    data = sparse_file(scene.path("data.img"))
    check_instance(c, sock, "Not started")
    c.call(sock, "PUT", "/actions", {"action_type": "InstanceStart"}, status=400,
           what="PUT /actions InstanceStart with no boot source")
    r = c.call(sock, "GET", "/", status=200, what="GET / names the app and version")
    if r and r.status == 200:
        info = r.json()
        c.check(info.get("app_name") == "kvmlet" and info.get("vmm_version") and info.get("id"),
                "GET / has app_name kvmlet, a vmm_version and an id", repr(info))
    r = c.call(sock, "GET", "/version", status=200)
    if r and r.status == 200:
        c.check(re.fullmatch(r"\d+\.\d+\.\d+", r.json().get("firecracker_version", "")) is not None,
                "GET /version is x.y.z", r.body.decode())
    r = c.call(sock, "GET", "/machine-config", status=200, what="GET /machine-config before any PUT")
    if r and r.status == 200:
        m = r.json()
        c.check(m.get("vcpu_count") == 1 and m.get("mem_size_mib") == 128,
                "the default machine is 1 vCPU and 128 MiB (as in the contract)", repr(m))
    c.call(sock, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64, "smt": False,
                                           "track_dirty_pages": False, "cpu_template": "None"}, status=204)
    c.call(sock, "PATCH", "/machine-config", {"mem_size_mib": 32}, status=204)
    r = c.call(sock, "GET", "/machine-config", status=200, what="GET /machine-config after PUT and PATCH")
    if r and r.status == 200:
        m = r.json()
        c.check(m.get("vcpu_count") == 2 and m.get("mem_size_mib") == 32,
                "PATCH /machine-config changed only mem_size_mib", repr(m))
    c.call(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "boot_args": "console=ttyS0"}, status=204)
    c.call(sock, "PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": root, "is_root_device": True,
                                           "is_read_only": False}, status=204)
    c.call(sock, "PUT", "/drives/data_1", {"drive_id": "data_1", "path_on_host": data, "is_root_device": False,
                                           "is_read_only": True, "cache_type": "Writeback", "io_engine": "Sync",
                                           "rate_limiter": {"bandwidth": {"size": 1 << 20, "refill_time": 100}}},
           status=204)
    c.call(sock, "PUT", "/drives/data_1", {"drive_id": "data_1", "path_on_host": data, "is_root_device": False,
                                           "is_read_only": True}, status=204, what="PUT /drives/data_1 again (update)")
    c.call(sock, "PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0",
                                                     "guest_mac": "06:00:ac:10:00:02"}, status=204)
    c.call(sock, "PUT", "/vsock", {"guest_cid": 3, "uds_path": scene.path("v.sock")}, status=204)
    c.call(sock, "PUT", "/metrics", {"metrics_path": scene.path("metrics.json")}, status=204)
    c.call(sock, "PUT", "/entropy", {}, status=204)
    c.call(sock, "PUT", "/entropy", {"rate_limiter": {"ops": {"size": 10, "refill_time": 1000}}}, status=204,
           what="PUT /entropy with a rate limiter")
    c.call(sock, "PUT", "/mmds/config", {"version": "V2", "network_interfaces": ["eth0"]}, status=204)
    c.call(sock, "PUT", "/mmds", {"latest": {"meta-data": {"instance-id": "i-1"}}}, status=204)
    c.call(sock, "PATCH", "/mmds", {"latest": {"meta-data": {"local-hostname": "vm1"}}}, status=204)
    r = c.call(sock, "GET", "/mmds", status=200)
    if r and r.status == 200:
        c.check(r.json() == {"latest": {"meta-data": {"instance-id": "i-1", "local-hostname": "vm1"}}},
                "PATCH /mmds merged into what PUT /mmds stored", r.body.decode())
    r = c.call(sock, "GET", "/vm/config", status=200)
    if r and r.status == 200:
        cfg = r.json()
        c.check(cfg.get("boot-source", {}).get("kernel_image_path") == kernel, "GET /vm/config has the boot source")
        c.check([d.get("drive_id") for d in cfg.get("drives", [])] == ["rootfs", "data_1"],
                "GET /vm/config has both drives, root first", repr(cfg.get("drives")))
        c.check([n.get("iface_id") for n in cfg.get("network-interfaces", [])] == ["eth0"],
                "GET /vm/config has the network interface")
        c.check(cfg.get("vsock", {}).get("guest_cid") == 3, "GET /vm/config has the vsock")
        c.check(cfg.get("machine-config", {}).get("mem_size_mib") == 32, "GET /vm/config has the machine")
        c.check(cfg.get("mmds-config", {}).get("network_interfaces") == ["eth0"], "GET /vm/config has mmds-config")
    # Last: the logger moves kvmlet's log to the file.
    log = scene.path("kvmlet.log")
    c.call(sock, "PUT", "/logger", {"log_path": log, "level": "Info", "show_level": True,
                                    "show_log_origin": False}, status=204)
    c.check(os.path.exists(log), "PUT /logger created its log file")


def error_requests_before_start(c, sock, scene):
    kernel = "/nonexistent-kernel"
    img = scene.path("root.img")
    # Unknown fields, everywhere a body is taken.
    unknown = [
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64, "turbo": True}),
        ("PATCH", "/machine-config", {"turbo": True}),
        ("PUT", "/boot-source", {"kernel_image_path": kernel, "kernel_path": kernel}),
        ("PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": img, "is_root_device": False, "readonly": True}),
        ("PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": img, "is_root_device": False,
                               "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1, "burst": 1}}}),
        ("PUT", "/network-interfaces/n1", {"iface_id": "n1", "host_dev_name": "tap9", "mac": "06:00:00:00:00:01"}),
        ("PUT", "/vsock", {"guest_cid": 3, "uds_path": "/tmp/x", "port": 1}),
        ("PUT", "/logger", {"level": "Info", "colour": True}),
        ("PUT", "/metrics", {"metrics_path": "/tmp/m", "interval": 5}),
        ("PUT", "/entropy", {"rate": 5}),
        ("PUT", "/mmds/config", {"network_interfaces": [], "port": 80}),
        ("PUT", "/actions", {"action_type": "InstanceStart", "now": True}),
        ("PATCH", "/vm", {"state": "Paused", "force": True}),
    ]
    for method, path, body in unknown:
        c.call(sock, method, path, body, status=400, fault=UNKNOWN_FIELD, what=f"{method} {path} with an unknown field")
    # Missing required fields.
    missing = [
        ("PUT", "/machine-config", {"vcpu_count": 1}),
        ("PUT", "/machine-config", {"mem_size_mib": 64}),
        ("PUT", "/boot-source", {"boot_args": "console=ttyS0"}),
        ("PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": img}),
        ("PUT", "/drives/d1", {"path_on_host": img, "is_root_device": False}),
        ("PUT", "/network-interfaces/n1", {"iface_id": "n1"}),
        ("PUT", "/vsock", {"uds_path": "/tmp/x"}),
        ("PUT", "/vsock", {"guest_cid": 3}),
        ("PUT", "/metrics", {}),
        ("PUT", "/mmds/config", {"version": "V1"}),
        ("PUT", "/actions", {}),
        ("PATCH", "/vm", {}),
    ]
    for method, path, body in missing:
        c.call(sock, method, path, body, status=400, fault=MISSING_FIELD,
               what=f"{method} {path} without a required field: {json.dumps(body)}")
    # Wrong types and values.
    for method, path, body in [
        ("PUT", "/machine-config", {"vcpu_count": "2", "mem_size_mib": 64}),
        ("PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 64}),
        ("PUT", "/machine-config", {"vcpu_count": 33, "mem_size_mib": 64}),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": -1}),
        ("PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": img, "is_root_device": "yes"}),
        ("PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": img, "is_root_device": False,
                               "cache_type": "Fast"}),
        ("PUT", "/vsock", {"guest_cid": 2, "uds_path": "/tmp/x"}),
        ("PUT", "/logger", {"level": "Loud"}),
        ("PUT", "/actions", {"action_type": "Reboot"}),
        ("PUT", "/mmds", ["not", "an", "object"]),
        ("PUT", "/network-interfaces/n1", {"iface_id": "n1", "host_dev_name": "tap9", "guest_mac": "zz"}),
    ]:
        c.call(sock, method, path, body, status=400, what=f"{method} {path} with a bad value {json.dumps(body)}")
    c.call(sock, "PUT", "/boot-source", raw=b'{"kernel_image_path": ', status=400, what="PUT /boot-source, bad JSON")
    # The path's id differs from the body's.
    c.call(sock, "PUT", "/drives/one", {"drive_id": "two", "path_on_host": img, "is_root_device": False},
           status=400, fault=ID_MISMATCH, what="PUT /drives/one with drive_id two")
    c.call(sock, "PUT", "/network-interfaces/one", {"iface_id": "two", "host_dev_name": "tap9"},
           status=400, fault=ID_MISMATCH, what="PUT /network-interfaces/one with iface_id two")
    # Ids outside [A-Za-z0-9_], in the path and the body alike.
    for bad in ("bad-id", "bad.id", "b%C3%A9", "a" * 65):
        c.call(sock, "PUT", f"/drives/{bad}", {"drive_id": bad, "path_on_host": img, "is_root_device": False},
               status=400, fault=BAD_ID, what=f"PUT /drives/{bad[:20]} (id outside [A-Za-z0-9_] or too long)")
        c.call(sock, "PUT", f"/network-interfaces/{bad}", {"iface_id": bad, "host_dev_name": "tap9"},
               status=400, fault=BAD_ID, what=f"PUT /network-interfaces/{bad[:20]}")
    c.call(sock, "PUT", "/mmds/config", {"network_interfaces": ["bad-id"]}, status=400,
           what="PUT /mmds/config naming an id outside [A-Za-z0-9_]")
    c.call(sock, "PUT", "/mmds/config", {"network_interfaces": ["nosuch"]}, status=400,
           what="PUT /mmds/config naming an unknown interface")
    # Unknown methods and paths.
    for method, path in [("DELETE", "/machine-config"), ("POST", "/actions"), ("GET", "/boot-source"),
                         ("PUT", "/"), ("PATCH", "/version"), ("GET", "/drives/rootfs"), ("PUT", "/vm/config"),
                         ("PUT", "/vm"), ("GET", "/actions"), ("OPTIONS", "/"), ("BREW", "/machine-config"),
                         ("GET", "/nope"), ("PUT", "/drives"), ("PUT", "/drives/a/b"), ("GET", "/version/x"),
                         ("PUT", "/balloon"), ("PUT", "/snapshot/create"), ("PUT", "/cpu-config"),
                         ("PUT", "/serial"), ("GET", "/hotplug/memory"), ("PUT", "/pmem/p1"),
                         ("GET", "/machine-config/x")]:
        # (Not "//": Firecracker splits the path with split_terminator and serves it as "/"; so does kvmlet.)
        body = {} if method in ("PUT", "PATCH", "POST") else None
        c.call(sock, method, path, body, status=400, what=f"{method} {path} (not served)")
    # Bodies over 51,200 bytes: 400, and 413 for /mmds; exactly 51,200 is taken.
    big = {"kernel_image_path": kernel, "boot_args": "x" * (MAX_PAYLOAD + 100)}
    c.call(sock, "PUT", "/boot-source", big, status=400, fault=TOO_LARGE, what="PUT /boot-source over 51,200 bytes")
    c.call(sock, "PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": "p" * MAX_PAYLOAD, "is_root_device": False},
           status=400, fault=TOO_LARGE, what="PUT /drives/d1 over 51,200 bytes")
    c.call(sock, "PUT", "/mmds", {"k": "v" * MAX_PAYLOAD}, status=413, fault=TOO_LARGE, what="PUT /mmds over 51,200 bytes")
    c.call(sock, "PATCH", "/mmds", {"k": "v" * MAX_PAYLOAD}, status=413, fault=TOO_LARGE,
           what="PATCH /mmds over 51,200 bytes")
    exact = json.dumps({"k": ""}).encode()
    exact = json.dumps({"k": "v" * (MAX_PAYLOAD - len(exact))}).encode()
    c.check(len(exact) == MAX_PAYLOAD, "the exact-limit body is 51,200 bytes", str(len(exact)))
    c.call(sock, "PUT", "/mmds", raw=exact, status=204, what="PUT /mmds of exactly 51,200 bytes")
    # Empty bodies.
    for method, path in [("PUT", "/boot-source"), ("PUT", "/machine-config"), ("PATCH", "/machine-config"),
                         ("PUT", "/drives/d1"), ("PUT", "/network-interfaces/n1"), ("PUT", "/vsock"),
                         ("PUT", "/logger"), ("PUT", "/metrics"), ("PUT", "/entropy"), ("PUT", "/mmds/config"),
                         ("PUT", "/mmds"), ("PATCH", "/mmds"), ("PUT", "/actions"), ("PATCH", "/vm")]:
        c.call(sock, method, path, raw=b"", status=400, what=f"{method} {path} with an empty body")
    # Post-boot-only requests before InstanceStart.
    for method, path, body in [("PATCH", "/vm", {"state": "Paused"}), ("PATCH", "/vm", {"state": "Resumed"}),
                               ("PATCH", "/drives/rootfs", {"drive_id": "rootfs"}),
                               ("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": img}),
                               ("PATCH", "/network-interfaces/eth0", {"iface_id": "eth0"}),
                               ("PUT", "/actions", {"action_type": "SendCtrlAltDel"})]:
        c.call(sock, method, path, body, status=400, fault=NOT_BEFORE_START,
               what=f"{method} {path} {json.dumps(body)} before start")
    c.call(sock, "PATCH", "/drives/one", {"drive_id": "two"}, status=400, fault=ID_MISMATCH,
           what="PATCH /drives/one with drive_id two")
    c.call(sock, "PATCH", "/network-interfaces/one", {"iface_id": "two"}, status=400, fault=ID_MISMATCH,
           what="PATCH /network-interfaces/one with iface_id two")
    # Firecracker: FlushMetrics is post-boot only (OperationNotSupportedPreBoot), metrics or not.
    c.call(sock, "PUT", "/actions", {"action_type": "FlushMetrics"}, status=400, fault=NOT_BEFORE_START,
           what="PUT /actions FlushMetrics before start (metrics configured)")
    # Nothing above changed the configuration.
    check_instance(c, sock, "Not started", what="GET / after the errors")
    # A connection stays usable after an error (clients reuse theirs).
    conn = UnixHTTPConnection(sock)
    try:
        answers = []
        for method, path, data in (("PUT", "/drives/x-y", b"{}"), ("GET", "/machine-config", None),
                                   ("DELETE", "/", None), ("GET", "/", None)):
            conn.request(method, path, body=data)
            r = conn.getresponse()
            answers.append((r.status, r.read()))
        c.check([a[0] for a in answers] == [400, 200, 400, 200],
                "one keep-alive connection: 400, 200, 400, 200 in turn", repr(answers))
    except OSError as e:
        c.fail(f"one keep-alive connection across errors: {type(e).__name__}: {e}")
    finally:
        conn.close()


def failed_start(c, sock):
    """InstanceStart that cannot succeed (the TAP tap0 does not exist here): 400, and the microVM
    stays configurable (docs/api.md; Firecracker behaves alike)."""
    c.call(sock, "PUT", "/actions", {"action_type": "InstanceStart"}, status=400,
           what="PUT /actions InstanceStart with a TAP that does not exist")
    check_instance(c, sock, "Not started", what="GET / after the failed start")
    c.call(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32}, status=204,
           what="PUT /machine-config after the failed start")
    c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=400, fault=NOT_BEFORE_START,
           what="PATCH /vm after the failed start is still before start")


def case_pre_boot(args):
    c = Checks(args.contract)
    with Scene("api-pre-boot") as scene:
        sock = scene.path("api.sock")
        k = start_api(scene, args, sock)
        valid_pre_boot_requests(c, sock, scene, args)
        before = request(sock, "GET", "/vm/config").json()
        error_requests_before_start(c, sock, scene)
        after = request(sock, "GET", "/vm/config").json()
        c.check(before == after, "no refused request changed GET /vm/config",
                f"before {json.dumps(before)} after {json.dumps(after)}")
        failed_start(c, sock)
        c.check(k.running(), "kvmlet still runs after every request")
        k.signal(signal.SIGTERM)
        status = k.wait(30)
        c.check(status == 0, "SIGTERM after a failed start ends kvmlet with status 0", f"status {status}")
        if c.failures:
            k.report()
    return c.finish()


# --- post_boot ----------------------------------------------------------------------------------

def case_post_boot(args):
    c = Checks(args.contract)
    with Scene("api-post-boot") as scene:
        ns = scene.netns("post")
        sock = scene.path("api.sock")
        img = sparse_file(scene.path("root.img"))
        k = scene.kvmlet(["ip", "netns", "exec", ns, args.kvmlet, "firecracker", "--api-sock", sock,
                          "--id", "contract_vm1"])
        if k.wait_for_socket(sock) is None:
            k.report()
            raise SystemExit("FAIL: kvmlet did not answer")
        r = check_instance(c, sock, "Not started")
        if r and r.status == 200:
            c.check(r.json().get("id") == "contract_vm1", "GET / has the --id", r.body.decode())
        c.call(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32}, status=204)
        c.call(sock, "PUT", "/boot-source", {"kernel_image_path": args.guest("serial_echo")}, status=204)
        c.call(sock, "PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": img, "is_root_device": True,
                                               "is_read_only": False}, status=204)
        c.call(sock, "PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0"}, status=204)
        c.call(sock, "PUT", "/entropy", {}, status=204)
        c.call(sock, "PUT", "/mmds/config", {"network_interfaces": ["eth0"]}, status=204)
        r = c.call(sock, "PUT", "/actions", {"action_type": "InstanceStart"}, status=204)
        if r is None or r.status != 204:
            k.report()
            return c.finish()
        c.check(k.wait_for_output("ready"), "the guest runs (printed 'ready')")
        check_instance(c, sock, "Running")
        # Pre-boot-only requests after start.
        for method, path, body in [
            ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32}),
            ("PATCH", "/machine-config", {"mem_size_mib": 64}),
            ("PUT", "/boot-source", {"kernel_image_path": args.guest("hello")}),
            ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": img, "is_root_device": True,
                                       "is_read_only": False}),
            ("PUT", "/drives/late", {"drive_id": "late", "path_on_host": img, "is_root_device": False,
                                     "is_read_only": True}),
            ("PUT", "/network-interfaces/eth1", {"iface_id": "eth1", "host_dev_name": "tap1"}),
            ("PUT", "/vsock", {"guest_cid": 3, "uds_path": scene.path("v.sock")}),
            ("PUT", "/logger", {"level": "Info"}),
            ("PUT", "/metrics", {"metrics_path": scene.path("m.json")}),
            ("PUT", "/entropy", {}),
            ("PUT", "/mmds/config", {"network_interfaces": ["eth0"]}),
            ("PUT", "/actions", {"action_type": "InstanceStart"}),
        ]:
            c.call(sock, method, path, body, status=400, fault=NOT_AFTER_START, what=f"{method} {path} after start")
        # What stays allowed, and the post-boot-only requests.
        c.call(sock, "GET", "/machine-config", status=200, what="GET /machine-config after start")
        c.call(sock, "GET", "/vm/config", status=200, what="GET /vm/config after start")
        c.call(sock, "GET", "/version", status=200, what="GET /version after start")
        c.call(sock, "PUT", "/mmds", {"v": 1}, status=204, what="PUT /mmds after start")
        c.call(sock, "PATCH", "/mmds", {"w": 2}, status=204, what="PATCH /mmds after start")
        r = c.call(sock, "GET", "/mmds", status=200, what="GET /mmds after start")
        if r and r.status == 200:
            c.check(r.json() == {"v": 1, "w": 2}, "GET /mmds after start has both", r.body.decode())
        c.call(sock, "PATCH", "/drives/rootfs", {"drive_id": "rootfs"}, status=204, what="PATCH /drives/rootfs, no change")
        c.call(sock, "PATCH", "/drives/rootfs", {"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 100,
               "refill_time": 1000}}}, status=204, what="PATCH /drives/rootfs with a rate limiter")
        drive_swap(c, sock, "rootfs", img, sparse_file(scene.path("b.img")))
        c.call(sock, "PATCH", "/drives/nosuch", {"drive_id": "nosuch"}, status=400, what="PATCH /drives/nosuch")
        c.call(sock, "PATCH", "/drives/rootfs", {"drive_id": "rootfs", "is_read_only": True}, status=400,
               fault=UNKNOWN_FIELD, what="PATCH /drives/rootfs with a field PartialDrive does not have")
        c.call(sock, "PATCH", "/drives/rootfs", {"path_on_host": img}, status=400, fault=MISSING_FIELD,
               what="PATCH /drives/rootfs without drive_id")
        c.call(sock, "PATCH", "/drives/other", {"drive_id": "rootfs"}, status=400, fault=ID_MISMATCH,
               what="PATCH /drives/other with drive_id rootfs after start")
        c.call(sock, "PATCH", "/network-interfaces/eth0", {"iface_id": "eth0"}, status=204)
        c.call(sock, "PATCH", "/network-interfaces/eth0", {"iface_id": "eth0", "rx_rate_limiter": {"bandwidth": {
            "size": 1000, "refill_time": 10}}, "tx_rate_limiter": {}}, status=204,
            what="PATCH /network-interfaces/eth0 with rate limiters")
        c.call(sock, "PATCH", "/network-interfaces/eth9", {"iface_id": "eth9"}, status=400,
               what="PATCH /network-interfaces/eth9 (no such interface)")
        c.call(sock, "PATCH", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap1"},
               status=400, fault=UNKNOWN_FIELD, what="PATCH /network-interfaces/eth0 changing host_dev_name")
        c.call(sock, "PATCH", "/vm", {"state": "Stopped"}, status=400, what="PATCH /vm to Stopped")
        # State transitions.
        c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204)
        check_instance(c, sock, "Paused")
        c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204, what="PATCH /vm Paused while paused")
        check_instance(c, sock, "Paused", what="GET / still Paused")
        c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204)
        check_instance(c, sock, "Running", what="GET / Running again after Resumed")
        c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204, what="PATCH /vm Resumed while running")
        c.call(sock, "PUT", "/actions", {"action_type": "FlushMetrics"}, status=400,
               what="PUT /actions FlushMetrics without metrics configured")
        # Whether the guest took the keys or not, the answer must be in the contract's shape.
        c.call(sock, "PUT", "/actions", {"action_type": "SendCtrlAltDel"}, status=None,
               what="PUT /actions SendCtrlAltDel (guest without a keyboard driver)")
        c.check(k.running(), "kvmlet still runs after SendCtrlAltDel to a guest that ignores it")
        # Paused means stopped: a line written to COM1 meanwhile is answered only after Resumed
        # (the guest polls COM1 and echoes at once while it runs).
        c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204, what="PATCH /vm Paused before the line")
        k.write_stdin("while paused\n")
        time.sleep(1.0)
        c.check("line: while paused" not in k.stdout(), "a paused guest did not answer the line")
        check_instance(c, sock, "Paused", what="GET / Paused with input pending")
        c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204, what="PATCH /vm Resumed with input pending")
        c.check(k.wait_for_output("line: while paused"), "the resumed guest answered the line")
        status = k.wait(30)
        c.check(status == 0, "kvmlet ends with status 0 when the guest resets", f"status {status}")
        c.check(not os.path.exists(sock), "kvmlet removed its socket on exit")
        if c.failures:
            k.report()
    return c.finish()


# --- ctrl_alt_del -------------------------------------------------------------------------------

def case_ctrl_alt_del(args):
    """SendCtrlAltDel over the API to a guest with a keyboard driver (ctrl_alt_del.elf sets up the
    i8042 as Linux does and resets on the keys): 204, the guest sees the keys and resets, kvmlet
    exits 0. Sent while paused, the keys arrive after Resumed."""
    c = Checks(args.contract)
    with Scene("api-ctrl-alt-del") as scene:
        sock = scene.path("api.sock")
        k = start_api(scene, args, sock)
        c.call(sock, "PUT", "/boot-source", {"kernel_image_path": args.guest("ctrl_alt_del")}, status=204)
        c.call(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32}, status=204)
        c.call(sock, "PUT", "/actions", {"action_type": "InstanceStart"}, status=204)
        if c.check(k.wait_for_output("keyboard ready"), "the guest's keyboard driver is ready"):
            c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204)
            c.call(sock, "PUT", "/actions", {"action_type": "SendCtrlAltDel"}, status=204,
                   what="PUT /actions SendCtrlAltDel while paused")
            time.sleep(0.5)
            c.check("ctrl-alt-del" not in k.stdout(), "a paused guest has not seen the keys")
            c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204)
            c.check(k.wait_for_output("ctrl-alt-del"), "the resumed guest saw Ctrl-Alt-Del")
        status = k.wait(30)
        c.check(status == 0, "kvmlet exits 0 when the guest resets on Ctrl-Alt-Del", f"status {status}")
        c.check("FAIL" not in k.stdout(), "the guest reported no failure")
        if c.failures:
            k.report()
    return c.finish()


# --- sigterm ------------------------------------------------------------------------------------

def case_sigterm(args):
    """The Firecracker way, SIGTERM first asks the guest to shut down (docs/api.md, Stopping):
    a guest with a keyboard driver resets on the Ctrl-Alt-Del it gets, and kvmlet reports the
    reset; a guest that ignores the keys is stopped when kvmlet.stop_grace_ms runs out (and not
    before); a second SIGTERM stops it at once."""
    c = Checks(args.contract)
    grace_ms = 2000
    with Scene("api-sigterm") as scene:
        for name, guest, signals, outcome in (
                ("keyboard", "ctrl_alt_del", 1, "guest reset"),
                ("no keyboard", "serial_echo", 1, "did not shut down in time"),
                ("second signal", "serial_echo", 2, "received Terminated twice")):
            config = scene.path(f"{guest}-{signals}.json")
            with open(config, "w") as f:
                json.dump({"boot-source": {"kernel_image_path": args.guest(guest)},
                           "machine-config": {"vcpu_count": 1, "mem_size_mib": 32},
                           "kvmlet": {"stop_grace_ms": grace_ms}}, f)
            k = scene.kvmlet([args.kvmlet, "firecracker", "--no-api", "--config-file", config])
            ready = "keyboard ready" if guest == "ctrl_alt_del" else ""
            c.check(k.wait_for_output(ready) if ready else k.running(), f"{name}: the guest runs")
            time.sleep(0.2)
            started = time.monotonic()
            k.signal(signal.SIGTERM)
            if signals == 2:
                time.sleep(0.2)
                k.signal(signal.SIGTERM)
            status = k.wait(60)
            took = time.monotonic() - started
            c.check(status == 0, f"{name}: SIGTERM ends kvmlet with status 0", f"status {status}")
            c.check("asked the guest to shut down" in k.stderr(), f"{name}: kvmlet said it asked the guest first")
            c.check(outcome in k.stderr(), f"{name}: stderr says '{outcome}'")
            if name == "no keyboard":
                c.check(took >= grace_ms / 1000, f"{name}: kvmlet waited the whole grace", f"{took:.2f} s")
            if c.failures:
                k.report()
    return c.finish()


# --- socket -------------------------------------------------------------------------------------

def case_socket(args):
    c = Checks(args.contract)
    with Scene("api-socket") as scene:
        sock = scene.path("api.sock")
        # A stale socket: bound, never listened on, left behind.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(sock)
        stale.close()
        c.check(stat.S_ISSOCK(os.lstat(sock).st_mode), "a stale socket file is in place")
        os.chmod(sock, 0o777)
        old_umask = os.umask(0)  # kvmlet's own mask must not matter
        try:
            k = start_api(scene, args, sock, name="first")
        finally:
            os.umask(old_umask)
        c.check(k.running(), "kvmlet started over a stale socket")
        mode = stat.S_IMODE(os.lstat(sock).st_mode)
        c.check(mode == 0o600, "the API socket is mode 0600", oct(mode))
        check_instance(c, sock, "Not started", what="GET / on the replaced socket")
        # A second kvmlet on the live socket.
        second = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock], name="second")
        status = second.wait(30)
        errors = [line for line in second.stderr().splitlines() if line.strip()]
        c.check(status == 1, "a second kvmlet on a live socket exits 1", f"status {status}")
        c.check(len(errors) == 1 and errors[0].startswith("kvmlet: error:") and sock in errors[0],
                "... with one error line naming the socket", repr(errors))
        check_instance(c, sock, "Not started", what="the first kvmlet still answers")
        # Firecracker's flag spelling, on the same live socket.
        third = scene.kvmlet([args.kvmlet, "firecracker", "--api-sock", sock], name="third")
        status = third.wait(30)
        errors = [line for line in third.stderr().splitlines() if line.strip()]
        c.check(status == 1 and len(errors) == 1, "kvmlet firecracker --api-sock on a live socket: one line, status 1",
                f"status {status}, {errors!r}")
        # A regular file at the path is not taken for a socket.
        plain = scene.path("plain")
        with open(plain, "w") as f:
            f.write("keep me\n")
        fourth = scene.kvmlet([args.kvmlet, "run", "--api-sock", plain], name="fourth")
        status = fourth.wait(30)
        errors = [line for line in fourth.stderr().splitlines() if line.strip()]
        c.check(status == 1 and len(errors) == 1, "a regular file at the socket path: one error line, status 1",
                f"status {status}, {errors!r}")
        with open(plain) as f:
            c.check(f.read() == "keep me\n", "the regular file is left as it was")
        k.signal(signal.SIGTERM)
        status = k.wait(30)
        c.check(status == 0, "SIGTERM before start ends kvmlet with status 0", f"status {status}")
        c.check(not os.path.exists(sock), "kvmlet removed its socket on exit")
        if c.failures:
            for p in scene.processes:
                p.report()
    return c.finish()


# --- concurrency --------------------------------------------------------------------------------

def half_sent(sock, head):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock)
    s.sendall(head)
    return s


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"content-length:\s*(\d+)", head, re.I)
    length = int(m.group(1)) if m else 0
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None
    return status, body


def case_concurrency(args):
    c = Checks(args.contract)
    with Scene("api-concurrency") as scene:
        sock = scene.path("api.sock")
        config = scene.path("vm.json")
        with open(config, "w") as f:
            json.dump({"boot-source": {"kernel_image_path": args.guest("serial_echo")},
                       "machine-config": {"vcpu_count": 1, "mem_size_mib": 32}}, f)
        k = start_api(scene, args, sock, extra=("--config", config))
        c.check(k.wait_for_output("ready"), "the guest started from --config runs")
        check_instance(c, sock, "Running", what="GET / with --config and --api-sock")
        # Clients that stop halfway: in the headers, and in the body.
        slow_head = half_sent(sock, b"GET /machine-config HTTP/1.1\r\nHost: localhost\r\nAcc")
        body = b'{"state": "Paused"}'
        slow_body = half_sent(sock, b"PATCH /vm HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        results, lock = [], threading.Lock()
        barrier = threading.Barrier(50)

        def client(i):
            problems = []
            try:
                conn = UnixHTTPConnection(sock, timeout=60)
                conn.connect()
                barrier.wait(30)  # every connection open at once before the first request
                for path in ("/", "/machine-config", "/version", "/vm/config"):
                    conn.request("GET", path)
                    r = conn.getresponse()
                    payload = r.read()
                    resp = Response("GET", path, r.status, {h.lower(): v for h, v in r.getheaders()}, payload)
                    problems += [f"{resp}: {p}" for p in args.contract.problems(resp, 200)]
                conn.close()
            except Exception as e:  # noqa: BLE001 -- any failure of a client is a finding
                problems.append(f"client {i}: {type(e).__name__}: {e}")
            with lock:
                results.append(problems)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        c.check(not any(t.is_alive() for t in threads), "all 50 clients finished")
        bad = [p for ps in results for p in ps]
        c.check(len(results) == 50 and not bad, "50 concurrent connections got 4 valid answers each",
                "; ".join(bad[:5]))
        # The half-sent requests are still served once they are complete.
        slow_head.sendall(b"ept: application/json\r\n\r\n")
        status, payload = read_response(slow_head)
        c.check(status == 200 and "vcpu_count" in payload.decode(errors="replace"),
                "the client that stopped in its headers gets its answer after the rest", f"{status} {payload[:100]!r}")
        slow_body.sendall(body[5:])
        status, payload = read_response(slow_body)
        c.check(status == 204 and payload == b"", "the client that stopped in its body gets 204 after the rest",
                f"{status} {payload[:100]!r}")
        check_instance(c, sock, "Paused", what="GET / Paused by the slow client's PATCH")
        c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204)
        slow_head.close()
        slow_body.close()
        # The guest was not held up: it still reads COM1 and answers.
        k.write_stdin("hello api\n")
        c.check(k.wait_for_output("line: hello api"), "the guest still answers on COM1 after the clients")
        status = k.wait(30)
        c.check(status == 0, "kvmlet exits 0 when the guest resets", f"status {status}")
        if c.failures:
            k.report()
    return c.finish()


# --- start_then_pause ---------------------------------------------------------------------------

def case_start_then_pause(args):
    """A client may pause (or send Ctrl-Alt-Del) as soon as InstanceStart answered 204: the microVM
    is Running by then, so post-boot requests must be served. Eight fresh kvmlets, as the moment
    matters (a race shows in some rounds only); each then ends by SIGTERM while paused."""
    c = Checks(args.contract)
    with Scene("api-start-then-pause") as scene:
        for i in range(8):
            sock = scene.path(f"api{i}.sock")
            k = start_api(scene, args, sock, name=f"kvmlet{i}")
            c.call(sock, "PUT", "/boot-source", {"kernel_image_path": args.guest("serial_echo")}, status=204)
            c.call(sock, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 32}, status=204)
            c.call(sock, "PUT", "/actions", {"action_type": "InstanceStart"}, status=204)
            action = "SendCtrlAltDel" if i % 2 else "pause"
            if action == "pause":
                c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204,
                       what=f"round {i}: PATCH /vm Paused right after InstanceStart's 204")
            else:
                r = c.call(sock, "PUT", "/actions", {"action_type": "SendCtrlAltDel"}, status=None,
                           what=f"round {i}: SendCtrlAltDel right after InstanceStart's 204")
                c.check(r is None or "not running" not in (r.fault() or ""),
                        f"round {i}: SendCtrlAltDel finds the microVM running", str(r))
                c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204, what=f"round {i}: PATCH /vm Paused")
            r = request(sock, "GET", "/")
            c.check(r.status == 200 and r.json().get("state") == "Paused", f"round {i}: GET / says Paused", str(r))
            k.signal(signal.SIGTERM)
            status = k.wait(30)
            c.check(status == 0, f"round {i}: SIGTERM while paused ends kvmlet with status 0", f"status {status}")
            if status != 0 or c.failures:
                k.report()
    return c.finish()


CASES = {"pre_boot": case_pre_boot, "start_then_pause": case_start_then_pause, "ctrl_alt_del": case_ctrl_alt_del, "sigterm": case_sigterm, "post_boot": case_post_boot, "socket": case_socket,
         "concurrency": case_concurrency}

if __name__ == "__main__":
    sys.exit(main(CASES, sys.argv))
