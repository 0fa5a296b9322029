#!/usr/bin/env python3
"""Snapshot and restore (issue 17): a tiny guest paused, snapshotted (PUT /snapshot/create), its
kvmlet killed, and the snapshot restored in a new process, by the command line (kvmlet run
--restore S --mem M) and by the API (PUT /snapshot/load): what the guest prints on COM1 goes on
exactly where it stopped, nothing printed twice and nothing lost. The first process's output and
the restored one's, joined, must read as one run of the guest.

    snapshot.py CASE KVMLET GUESTS_DIR CONTRACT_YAML

Cases (one CTest test each):
  count   the count guest (1 vCPU, "count N" for ever): restored by the command line, by the API
          with resume_vm true, clock_realtime and the legacy mem_file_path, by the API with
          resume_vm false then
          PATCH /vm Resumed; and a restored guest snapshotted and restored again
  ticks   the snapshot_ticks guest: 4 vCPUs, each taking its LAPIC timer's interrupts and printing
          "cpu C tick N"; after the restore every CPU goes on with its next N
  rng     the snapshot_virtio guest: a virtio-rng on mmio behind a rate limiter (200 requests/s),
          one request at a time, "rng N" for the N-th completed, which must be used entry N:
          restored by the command line it goes on with N + 1 (the queue's indices saved), still
          limited; by the API; restored twice; hostile virtio sections (a ring outside RAM, a
          queue size not a power of two, requests in flight) are one error line; a microVM with a
          device kind not saved yet (vsock) is refused
  devices the same guest with a virtio-blk disk and a virtio-console too (kvmlet run --config,
          "console": "virtio"): each round also writes sector N of the disk and reads it back, and
          sends "hvc N" through the console's transmit queue; after the restore every device goes
          on (the console's lines on stdout with COM1's), and the disk holds every round's sector,
          those written before the snapshot and those after the restore
  net     the same guest with a virtio-net (iface_id net0 on TAP tap0 in a network namespace of the
          test's own, a transmit rate limiter of 1000 packets/s, and a virtio-rng): each round
          also sends one frame "round N" on the TAP, which a listener in the namespace records;
          restored by the command line the TAP is attached again by name and the frames go on
          with the next N, none repeated or lost (the limiter's held chain given back); restored
          by the API with network_overrides on tap1, the frames go on there; an override naming an
          interface the snapshot does not have, or a TAP that does not exist, is a 400 with
          fault_message, and ends the process
  errors  requests refused with Firecracker's 400 and a fault_message (before start, while
          running, Diff, an unknown mem_backend, a load after boot-specific resources); snapshot files with a bad
          CRC, cut short, of an unknown format version, or a memory file of the wrong size: the
          command line says one error line and exits 1 with no guest output; a failed API load
          answers 400 and ends the process with status 1
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

from api_client import NOT_BEFORE_START, Checks, Scene, main, request

COUNT_LINE = re.compile(r"^count (\d+)$")
TICK_LINE = re.compile(r"^cpu (\d+) tick (\d+)$")
RNG_LINE = re.compile(r"^rng (\d+)$")
HVC_LINE = re.compile(r"^hvc (\d+)$")


def wait_until(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def complete_lines(text):
    """The lines of `text` that ended ("\r\n"); the last, unfinished one left out."""
    return text.split("\r\n")[:-1]


def count_run_problems(text, banner="counting", pattern=COUNT_LINE):
    """What is wrong with `text` as one run of the count guest: "counting", then count 1, 2, 3...
    (or another guest's banner and numbered lines)"""
    lines = complete_lines(text)
    if not lines or lines[0] != banner:
        return [f"does not start with {banner!r}"]
    expected = 1
    for line in lines[1:]:
        m = pattern.match(line)
        if not m:
            return [f"line {line!r} after count {expected - 1}"]
        if int(m.group(1)) != expected:
            return [f"count {m.group(1)} where {expected} was due"]
        expected += 1
    return []


def counts_in(text):
    return sum(1 for line in complete_lines(text) if COUNT_LINE.match(line))


def last_count(text):
    counts = [int(m.group(1)) for m in map(COUNT_LINE.match, complete_lines(text)) if m]
    return counts[-1] if counts else 0


def tick_runs(text):
    """{cpu: [n, ...]} of the ticks guest's lines, and the lines that are neither ticks nor its
    banner."""
    runs, strays = {}, []
    for line in complete_lines(text):
        m = TICK_LINE.match(line)
        if m:
            runs.setdefault(int(m.group(1)), []).append(int(m.group(2)))
        elif line != "ticking":
            strays.append(line)
    return runs, strays


def boot(c, scene, args, guest, cpus=1, name=None, devices=()):
    """A kvmlet with the API, the guest booted through it (after `devices`' (path, body) PUTs);
    returns (process, socket path)."""
    sock = scene.path(f"{name or 'boot'}.sock")
    vm = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock], name=name or "boot")
    if vm.wait_for_socket(sock) is None:
        vm.report()
        raise SystemExit("FAIL: kvmlet's API socket never answered")
    c.call(sock, "PUT", "/boot-source", {"kernel_image_path": args.guest(guest)}, status=204)
    c.call(sock, "PUT", "/machine-config", {"vcpu_count": cpus, "mem_size_mib": 64}, status=204)
    for path, body in devices:
        c.call(sock, "PUT", path, body, status=204)
    c.call(sock, "PUT", "/actions", {"action_type": "InstanceStart"}, status=204)
    return vm, sock


def snapshot(c, vm, sock, snap, mem, settle=0.0):
    """Pauses the guest, checks it prints nothing more, writes the snapshot; returns the output so
    far (what the restored guest must go on from). `settle`: seconds for the event loop to finish
    output the guest asked for before it was paused (a virtio-console's transmit queue)."""
    c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204)
    time.sleep(settle)
    before = vm.stdout()
    start = time.monotonic()
    r = c.call(sock, "PUT", "/snapshot/create",
               {"snapshot_type": "Full", "snapshot_path": snap, "mem_file_path": mem}, status=204)
    took = time.monotonic() - start
    if r is not None and r.status == 204:
        st_snap, st_mem = os.stat(snap), os.stat(mem)
        print(f"figure: PUT /snapshot/create took {took * 1000:.0f} ms; state file {st_snap.st_size} "
              f"bytes; memory file {st_mem.st_size >> 20} MiB, {st_mem.st_blocks * 512 >> 10} KiB allocated")
    time.sleep(0.5)
    c.check(vm.stdout() == before, "nothing printed while paused and snapshotted")
    return before


def kill(c, vm):
    vm.signal(signal.SIGKILL)
    c.check(vm.wait(10) == -signal.SIGKILL, f"{vm.name} killed with SIGKILL")


def restore_by_command_line(c, scene, args, snap, mem, name):
    start = time.monotonic()
    vm = scene.kvmlet([args.kvmlet, "run", "--restore", snap, "--mem", mem], name=name)
    if wait_until(lambda: os.path.getsize(vm.stdout_path) > 0 or not vm.running(), 30, step=0.002):
        print(f"figure: {name}: first guest output {(time.monotonic() - start) * 1000:.0f} ms after the "
              f"process started (launch, restore, and the guest's next byte)")
    return vm


def check_count_continues(c, first, vm, what, more=100, timeout=60):
    """`vm` (restored) prints at least `more` counts, and `first` + its output is one run."""
    if not c.check(wait_until(lambda: counts_in(vm.stdout()) >= more or not vm.running(), timeout) and
                   vm.running(), f"{what}: the restored guest runs and counts {more} more",
                   f"{counts_in(vm.stdout())} counts; stderr: {vm.stderr()[-500:]!r}"):
        vm.report()
        return
    problems = count_run_problems(first + vm.stdout())
    c.check(not problems, f"{what}: the count goes on from {last_count(first)}, nothing repeated or lost",
            "; ".join(problems))
    c.check("snapshot: " in vm.stderr() and "restored" in vm.stderr(), f"{what}: kvmlet says it restored")


def case_count(args):
    c = Checks(args.contract)
    with Scene("snapshot-count") as scene:
        snap, mem = scene.path("vm.snap"), scene.path("vm.mem")
        vm, sock = boot(c, scene, args, "count")
        c.check(vm.wait_for_output("count 300\r\n", 60), "the count guest counts to 300")
        first = snapshot(c, vm, sock, snap, mem)
        kill(c, vm)
        c.check(not count_run_problems(first), "the first process's output is one run of the guest")

        # The command line.
        cli = restore_by_command_line(c, scene, args, snap, mem, "cli")
        check_count_continues(c, first, cli, "kvmlet run --restore")
        for line in cli.stderr().splitlines():
            if "snapshot:" in line:
                print(f"figure: {line}")
        cli.signal(signal.SIGTERM)
        c.check(cli.wait(10) == 0, "the restored kvmlet stops with status 0 at SIGTERM")

        # The API, resume_vm true, the legacy mem_file_path, the KVM clock advanced by the time since.
        sock2 = scene.path("api.sock")
        api = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock2], name="api")
        api.wait_for_socket(sock2)
        c.call(sock2, "PUT", "/snapshot/load", {"snapshot_path": snap, "mem_file_path": mem, "resume_vm": True,
                                                "clock_realtime": True}, status=204)
        r = request(sock2, "GET", "/")
        c.check(r.json().get("state") == "Running", "GET / says Running after a load with resume_vm", str(r))
        check_count_continues(c, first, api, "PUT /snapshot/load resume_vm true")
        c.call(sock2, "PUT", "/snapshot/load", {"snapshot_path": snap, "mem_file_path": mem}, status=400,
               fault="not supported after starting")

        # The API, mem_backend File, resume_vm false: paused until PATCH /vm Resumed. Then this
        # restored guest is snapshotted and restored again (its RAM a private file mapping now).
        sock3 = scene.path("paused.sock")
        paused = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock3], name="paused")
        paused.wait_for_socket(sock3)
        c.call(sock3, "PUT", "/snapshot/load",
               {"snapshot_path": snap, "mem_backend": {"backend_type": "File", "backend_path": mem},
                "resume_vm": False}, status=204)
        r = request(sock3, "GET", "/")
        c.check(r.json().get("state") == "Paused", "GET / says Paused after a load without resume_vm", str(r))
        time.sleep(1)
        c.check(paused.stdout() == "", "a snapshot loaded without resume_vm runs nothing")
        c.call(sock3, "PATCH", "/vm", {"state": "Resumed"}, status=204)
        check_count_continues(c, first, paused, "PUT /snapshot/load, then PATCH /vm Resumed")
        snap2, mem2 = scene.path("again.snap"), scene.path("again.mem")
        second = first + snapshot(c, paused, sock3, snap2, mem2)
        kill(c, paused)
        again = restore_by_command_line(c, scene, args, snap2, mem2, "again")
        check_count_continues(c, second, again, "a restored guest snapshotted and restored again")
        again.stop()
        api.stop()
    return c.finish()


def case_ticks(args):
    c = Checks(args.contract)
    with Scene("snapshot-ticks") as scene:
        snap, mem = scene.path("vm.snap"), scene.path("vm.mem")
        vm, sock = boot(c, scene, args, "snapshot_ticks", cpus=4)

        def every_cpu_ticked(text, at_least):
            runs, _ = tick_runs(text)
            return len(runs) == 4 and all(len(v) >= at_least for v in runs.values())

        if not c.check(wait_until(lambda: every_cpu_ticked(vm.stdout(), 10), 90), "all 4 vCPUs tick 10 times"):
            vm.report()
            return c.finish()
        time.sleep(0.37)  # off the ticks' 50 ms beat: catch them at different points
        first = snapshot(c, vm, sock, snap, mem)
        kill(c, vm)
        before, _ = tick_runs(first)
        restored = restore_by_command_line(c, scene, args, snap, mem, "restored")
        c.check(wait_until(lambda: every_cpu_ticked(restored.stdout(), 10) or not restored.running(), 90),
                "after the restore all 4 vCPUs take 10 more timer interrupts", restored.stderr()[-500:])
        runs, strays = tick_runs(first + restored.stdout())
        c.check(not strays, "every line is a tick line", repr(strays[:3]))
        for cpu in range(4):
            got = runs.get(cpu, [])
            c.check(got == list(range(1, len(got) + 1)),
                    f"cpu {cpu}: ticks 1..{len(got)} once each, across the restore (it stopped at "
                    f"{before.get(cpu, [0])[-1]})", repr(got[:5]) + "...")
        restored.stop()
    return c.finish()


def crc64_xz(data):
    """CRC-64/XZ (docs/snapshot.md): reflected ECMA-182, all-ones initial value and final xor."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xC96C5795D7870F42 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def with_section_changed(data, name, change):
    """The state file `data` with section `name`'s payload passed through `change` (same length),
    and its CRC made right."""
    count = int.from_bytes(data[12:16], "little")
    out, at = bytearray(data[:-8]), 24
    for _ in range(count):
        length = int.from_bytes(out[at:at + 4], "little")
        section = bytes(out[at + 4:at + 4 + length])
        at += 4 + length
        size = int.from_bytes(out[at:at + 8], "little")
        at += 8
        if section == name.encode():
            payload = change(bytes(out[at:at + size]))
            assert len(payload) == size
            out[at:at + size] = payload
        at += size
    return bytes(out) + crc64_xz(bytes(out)).to_bytes(8, "little")


def rng_counts(text):
    return [int(m.group(1)) for m in map(RNG_LINE.match, complete_lines(text)) if m]


def check_rng_continues(c, first, vm, what, more=100, timeout=60):
    """`vm` (restored) completes `more` requests, and `first` + its output is one run: no request
    repeated or lost, none failed (the guest prints FAIL when used.idx is not its count)."""
    ok = wait_until(lambda: len(rng_counts(vm.stdout())) >= more or "FAIL" in vm.stdout() or not vm.running(),
                    timeout)
    if not c.check(ok and vm.running() and "FAIL" not in vm.stdout(),
                   f"{what}: the restored guest's virtio-rng completes {more} more requests",
                   f"{vm.stdout()[-300:]!r}; stderr: {vm.stderr()[-500:]!r}"):
        vm.report()
        return
    problems = count_run_problems(first + vm.stdout(), "ready: rng", RNG_LINE)
    c.check(not problems, f"{what}: the requests go on from {rng_counts(first)[-1]}, as used entries in order",
            "; ".join(problems))


def case_rng(args):
    c = Checks(args.contract)
    with Scene("snapshot-rng") as scene:
        snap, mem = scene.path("vm.snap"), scene.path("vm.mem")
        # 200 requests per second: the guest waits for the limiter nearly all the time, so the
        # snapshot catches a request the device holds back (given back, and taken again).
        limiter = {"ops": {"size": 50, "refill_time": 250}}
        vm, sock = boot(c, scene, args, "snapshot_virtio", devices=[("/entropy", {"rate_limiter": limiter})])
        if not c.check(vm.wait_for_output("rng 300\r\n", 60), "the guest completes 300 rng requests",
                       vm.stdout()[-300:]):
            vm.report()
            return c.finish()
        first = snapshot(c, vm, sock, snap, mem)
        kill(c, vm)
        c.check(not count_run_problems(first, "ready: rng", RNG_LINE), "the first process's output is one run")

        restored = restore_by_command_line(c, scene, args, snap, mem, "cli")
        check_rng_continues(c, first, restored, "kvmlet run --restore")
        start = len(rng_counts(restored.stdout()))
        time.sleep(1.0)
        rate = len(rng_counts(restored.stdout())) - start
        print(f"figure: restored virtio-rng: {rate} requests in 1 s under ops 50/250ms")
        c.check(0 < rate <= 300, "the restored rate limiter still limits (200 per second, 50 burst)", str(rate))
        for line in restored.stderr().splitlines():
            if "snapshot:" in line:
                print(f"figure: {line}")

        # By the API, then that guest snapshotted and restored again: its indices go on once more.
        restored.stop()
        sock2 = scene.path("restored.sock")
        api = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock2], name="api")
        api.wait_for_socket(sock2)
        c.call(sock2, "PUT", "/snapshot/load", {"snapshot_path": snap, "mem_file_path": mem, "resume_vm": True},
               status=204)
        check_rng_continues(c, first, api, "PUT /snapshot/load")
        snap2, mem2 = scene.path("again.snap"), scene.path("again.mem")
        second = first + snapshot(c, api, sock2, snap2, mem2)
        kill(c, api)
        again = restore_by_command_line(c, scene, args, snap2, mem2, "again")
        check_rng_continues(c, second, again, "a restored guest snapshotted and restored again")
        again.stop()

        # Hostile virtio sections (the CRC made right again): refused with one error line, before
        # any guest code runs.
        for name, change, words in [
                ("desc-outside-ram", lambda b: b[:18] + (1 << 40).to_bytes(8, "little") + b[26:], "outside RAM"),
                ("queue-size-12", lambda b: b[:16] + (12).to_bytes(2, "little") + b[18:], "not a power of two"),
                ("in-flight", lambda b: b[:44] + (7).to_bytes(2, "little") + b[46:], "in flight")]:
            path = scene.path(f"{name}.snap")
            with open(path, "wb") as f:
                f.write(with_section_changed(open(snap, "rb").read(), "virtio.0", change))
            k = scene.kvmlet([args.kvmlet, "run", "--restore", path, "--mem", mem], name=name)
            status, lines = k.wait(30), error_lines(k)
            c.check(status == 1 and len(lines) == 1 and words in lines[0] and "virtio.0" in lines[0] and
                    k.stdout() == "", f"a virtio section with {name}: exit 1, one error line saying {words!r}",
                    f"status {status}, stderr {k.stderr()!r}, stdout {k.stdout()[:80]!r}")

        # A device kind whose state is not saved yet: refused, the microVM goes on.
        vsock, sock3 = boot(c, scene, args, "count", name="vsock",
                            devices=[("/vsock", {"guest_cid": 3, "uds_path": scene.path("v.sock")})])
        c.check(vsock.wait_for_output("count 10\r\n", 60), "a count guest with a vsock device runs")
        c.call(sock3, "PATCH", "/vm", {"state": "Paused"}, status=204)
        c.call(sock3, "PUT", "/snapshot/create",
               {"snapshot_type": "Full", "snapshot_path": scene.path("v.snap"), "mem_file_path": scene.path("v.mem")},
               status=400, fault="not supported yet")
        c.check(not os.path.exists(scene.path("v.snap")), "and writes no state file")
        vsock.stop()
    return c.finish()


def devices_run_problems(text):
    """What is wrong with `text` as one run of snapshot_virtio with all three devices: its banner,
    then "hvc N" (virtio-console) and "rng N" (COM1) for N = 1, 2, 3..."""
    lines = complete_lines(text)
    if not lines or lines[0] != "ready: rng, console, disk":
        return ["does not start with 'ready: rng, console, disk'"]
    for i, line in enumerate(lines[1:]):
        n, pattern = i // 2 + 1, (HVC_LINE, RNG_LINE)[i % 2]
        m = pattern.match(line)
        if not m or int(m.group(1)) != n:
            return [f"line {line!r} where {pattern.pattern[1:4]} {n} was due"]
    return []


SECTOR_MAGIC = 0x6e6f6974  # snapshot_virtio.c


def disk_problems(path, rounds):
    """Whether sectors 1..rounds of the disk image hold what snapshot_virtio writes there."""
    with open(path, "rb") as f:
        data = f.read()
    for n in range(1, rounds + 1):
        sector = bytearray((n + i) & 0xff for i in range(512))
        sector[0:4] = SECTOR_MAGIC.to_bytes(4, "little")
        sector[4:12] = n.to_bytes(8, "little")
        if data[n * 512:(n + 1) * 512] != bytes(sector):
            return [f"sector {n} is not round {n}'s"]
    return []


def case_devices(args):
    c = Checks(args.contract)
    with Scene("snapshot-devices") as scene:
        snap, mem, sock = scene.path("vm.snap"), scene.path("vm.mem"), scene.path("vm.sock")
        disk, config = scene.path("disk.img"), scene.path("vm.json")
        with open(disk, "wb") as f:
            f.truncate(8 << 20)
        with open(config, "w") as f:
            json.dump({"boot-source": {"kernel_image_path": args.guest("snapshot_virtio")},
                       "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
                       "drives": [{"drive_id": "data", "path_on_host": disk, "is_root_device": False,
                                   "is_read_only": False}],
                       "entropy": {}, "kvmlet": {"transport": "mmio", "console": "virtio"}}, f)
        vm = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock, "--config", config], name="boot")
        vm.wait_for_socket(sock)
        if not c.check(vm.wait_for_output("rng 300\r\n", 60), "the guest completes 300 rounds of disk, rng, console",
                       vm.stdout()[-300:] + vm.stderr()[-300:]):
            vm.report()
            return c.finish()
        first = snapshot(c, vm, sock, snap, mem, settle=0.3)
        kill(c, vm)
        c.check(not devices_run_problems(first), "the first process's output is one run",
                "; ".join(devices_run_problems(first)))
        before = rng_counts(first)[-1]
        c.check(not disk_problems(disk, before), f"the disk holds the {before} rounds' sectors before the restore")
        restored = restore_by_command_line(c, scene, args, snap, mem, "cli")
        ok = wait_until(lambda: len(rng_counts(restored.stdout())) >= 100 or "FAIL" in restored.stdout() or
                        not restored.running(), 60)
        if c.check(ok and restored.running() and "FAIL" not in restored.stdout(),
                   "the restored guest's disk, rng and console complete 100 more rounds",
                   f"{restored.stdout()[-300:]!r}; stderr: {restored.stderr()[-500:]!r}"):
            problems = devices_run_problems(first + restored.stdout())
            c.check(not problems, f"every device goes on from round {before}: hvc and rng lines in order, "
                    "nothing repeated or lost", "; ".join(problems))
        else:
            restored.report()
        restored.stop()
        rounds = rng_counts(first + restored.stdout())[-1]
        problems = disk_problems(disk, rounds)
        c.check(rounds > before and not problems,
                f"the disk holds all {rounds} rounds' sectors: written before the snapshot and after the restore",
                "; ".join(problems))
        for line in restored.stderr().splitlines():
            if "snapshot:" in line:
                print(f"figure: {line}")
    return c.finish()


# Records the guest's "round N" frames (EtherType 0x88b5) that reach a TAP, one N a line; stops
# by itself after 300 s.
FRAME_LISTENER = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
s.bind((sys.argv[1], 0))
print("bound", flush=True)
s.settimeout(300)
while True:
    data, address = s.recvfrom(4096)
    if address[2] != 4 and data[14:19] == b"round":  # 4: PACKET_OUTGOING
        print(int.from_bytes(data[19:27], "little"), flush=True)
"""


def listen(c, scene, ns, tap):
    listener = scene.kvmlet(["ip", "netns", "exec", ns, sys.executable, "-c", FRAME_LISTENER, tap],
                            name=f"listener-{tap}")
    c.check(wait_until(lambda: "bound" in listener.stdout() or not listener.running(), 10) and listener.running(),
            f"a listener is bound to {tap}", listener.stderr()[-300:])
    return listener


def frames(listener):
    return [int(line) for line in listener.stdout().split("\n")[1:-1] if line.isdigit()]


def consecutive_problems(numbers, first):
    """What is wrong with `numbers` as first, first + 1, ...: the first one repeated or missing."""
    for i, n in enumerate(numbers):
        if n != first + i:
            return [f"frame {n} where {first + i} was due (after {numbers[max(0, i - 3):i]})"]
    return []


def check_net_continues(c, first, vm, what, more=100, timeout=60):
    """As check_rng_continues, for the guest with a virtio-net too (its banner says so)."""
    ok = wait_until(lambda: len(rng_counts(vm.stdout())) >= more or "FAIL" in vm.stdout() or not vm.running(),
                    timeout)
    if not c.check(ok and vm.running() and "FAIL" not in vm.stdout(),
                   f"{what}: the restored guest completes {more} more rounds of net and rng",
                   f"{vm.stdout()[-300:]!r}; stderr: {vm.stderr()[-500:]!r}"):
        vm.report()
        return
    problems = count_run_problems(first + vm.stdout(), "ready: rng, net", RNG_LINE)
    c.check(not problems, f"{what}: the rounds go on from {rng_counts(first)[-1]}, nothing repeated or lost",
            "; ".join(problems))


def case_net(args):
    c = Checks(args.contract)
    with Scene("snapshot-net") as scene:
        ns = scene.netns("snapnet")
        try:
            for command in (["ip", "tuntap", "add", "dev", "tap1", "mode", "tap"], ["ip", "link", "set", "tap1", "up"]):
                subprocess.run(["ip", "netns", "exec", ns] + command, check=True)
            case_net_in(c, args, scene, ns)
        finally:
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "del", "tap1"], stderr=subprocess.DEVNULL,
                           check=False)
    return c.finish()


def case_net_in(c, args, scene, ns):
    in_ns = ["ip", "netns", "exec", ns]
    snap, mem, sock, config = scene.path("vm.snap"), scene.path("vm.mem"), scene.path("vm.sock"), scene.path("vm.json")
    # 1000 packets per second: the guest waits for the limiter much of the time, so the snapshot
    # may catch a transmit chain the device holds (given back, and sent once after the restore).
    limiter = {"ops": {"size": 50, "refill_time": 50}}
    with open(config, "w") as f:
        json.dump({"boot-source": {"kernel_image_path": args.guest("snapshot_virtio")},
                   "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
                   "network-interfaces": [{"iface_id": "net0", "host_dev_name": "tap0",
                                           "guest_mac": "06:00:ac:10:00:02", "tx_rate_limiter": limiter}],
                   "entropy": {}, "kvmlet": {"transport": "mmio"}}, f)
    tap0 = listen(c, scene, ns, "tap0")
    vm = scene.kvmlet(in_ns + [args.kvmlet, "run", "--api-sock", sock, "--config", config], name="boot")
    vm.wait_for_socket(sock)
    if not c.check(vm.wait_for_output("rng 300\r\n", 60), "the guest completes 300 rounds of net and rng",
                   vm.stdout()[-300:] + vm.stderr()[-300:]):
        vm.report()
        return
    first = snapshot(c, vm, sock, snap, mem, settle=0.2)
    kill(c, vm)
    c.check(complete_lines(first)[:1] == ["ready: rng, net"], "the guest found its virtio-rng and virtio-net")
    c.check(not count_run_problems(first, "ready: rng, net", RNG_LINE), "the first process's output is one run")
    time.sleep(0.3)
    before = frames(tap0)
    rounds = rng_counts(first)[-1]
    c.check(not consecutive_problems(before, 1) and len(before) in (rounds, rounds + 1),
            f"tap0 got rounds 1 to {len(before)} before the snapshot, one frame each (the guest printed {rounds})",
            "; ".join(consecutive_problems(before, 1)) + f" {before[-5:]}")

    restored = scene.kvmlet(in_ns + [args.kvmlet, "run", "--restore", snap, "--mem", mem], name="cli")
    check_net_continues(c, first, restored, "kvmlet run --restore, the TAP attached again by name")
    restored.stop()
    time.sleep(0.3)
    after = frames(tap0)
    problems = consecutive_problems(after, 1)
    c.check(len(after) >= len(before) + 100 and not problems,
            f"tap0's frames go on from round {len(before) + 1} after the restore, none repeated or lost",
            "; ".join(problems) + f" ({len(before)} then {len(after)} frames)")
    for line in restored.stderr().splitlines():
        if "snapshot:" in line:
            print(f"figure: {line}")

    tap1 = listen(c, scene, ns, "tap1")
    sock2 = scene.path("api.sock")
    api = scene.kvmlet(in_ns + [args.kvmlet, "run", "--api-sock", sock2], name="api")
    api.wait_for_socket(sock2)
    c.call(sock2, "PUT", "/snapshot/load",
           {"snapshot_path": snap, "mem_backend": {"backend_type": "File", "backend_path": mem}, "resume_vm": True,
            "network_overrides": [{"iface_id": "net0", "host_dev_name": "tap1"}]}, status=204)
    check_net_continues(c, first, api, "PUT /snapshot/load with network_overrides")
    api.stop()
    time.sleep(0.3)
    moved = frames(tap1)
    problems = consecutive_problems(moved, len(before) + 1)
    c.check(len(moved) >= 100 and not problems,
            f"with network_overrides the frames go on tap1 from round {len(before) + 1}",
            "; ".join(problems) + f" ({len(moved)} frames)")

    sock3 = scene.path("bad.sock")
    bad = scene.kvmlet(in_ns + [args.kvmlet, "run", "--api-sock", sock3], name="bad-override")
    bad.wait_for_socket(sock3)
    c.call(sock3, "PUT", "/snapshot/load",
           {"snapshot_path": snap, "mem_file_path": mem,
            "network_overrides": [{"iface_id": "eth9", "host_dev_name": "tap1"}]},
           status=400, fault="no network interface eth9")
    c.check(bad.wait(10) == 1, "a load with an unknown iface_id ends kvmlet with status 1", bad.stderr()[-300:])

    sock4 = scene.path("missing.sock")
    missing = scene.kvmlet(in_ns + [args.kvmlet, "run", "--api-sock", sock4], name="missing-tap")
    missing.wait_for_socket(sock4)
    c.call(sock4, "PUT", "/snapshot/load",
           {"snapshot_path": snap, "mem_file_path": mem,
            "network_overrides": [{"iface_id": "net0", "host_dev_name": "tap9"}]},
           status=400, fault="tap9: no such interface")
    c.check(missing.wait(10) == 1 and missing.stdout() == "",
            "a load onto a TAP that does not exist ends kvmlet with status 1, the guest never ran", missing.stderr()[-300:])


def error_lines(vm):
    """kvmlet's error lines on stderr (info lines, such as the host-compat notice, are not errors)."""
    return [line for line in vm.stderr().splitlines() if "error" in line]


def corrupt_copies(scene, snap):
    """(name, path, words the error line must have) for broken copies of `snap`."""
    data = open(snap, "rb").read()
    out = []

    def write(name, content, words):
        path = scene.path(name)
        with open(path, "wb") as f:
            f.write(content)
        out.append((name, path, words))

    mid = len(data) // 2
    write("bad-crc.snap", data[:mid] + bytes([data[mid] ^ 0x40]) + data[mid + 1:], ["CRC mismatch"])
    write("truncated.snap", data[:-10], ["truncated", f"{len(data) - 10} of its {len(data)} bytes"])
    write("version.snap", data[:8] + (99).to_bytes(4, "little") + data[12:], ["format version 99 is unknown"])
    write("old-version.snap", data[:8] + (1).to_bytes(4, "little") + data[12:],
          ["format version 1 is an older kvmlet's", "take the snapshot again"])
    write("empty.snap", b"", ["not a kvmlet snapshot"])
    return out


def case_errors(args):
    c = Checks(args.contract)
    with Scene("snapshot-errors") as scene:
        snap, mem = scene.path("vm.snap"), scene.path("vm.mem")
        sock = scene.path("pre.sock")
        pre = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock], name="pre")
        pre.wait_for_socket(sock)
        create = {"snapshot_type": "Full", "snapshot_path": snap, "mem_file_path": mem}
        c.call(sock, "PUT", "/snapshot/create", create, status=400, fault=NOT_BEFORE_START)
        c.call(sock, "PUT", "/snapshot/load", {"snapshot_path": snap}, status=400, fault="mem_backend")
        c.call(sock, "PUT", "/snapshot/load", {"snapshot_path": snap, "mem_file_path": mem,
                                               "mem_backend": {"backend_type": "File", "backend_path": mem}},
               status=400, fault="Only one")
        c.call(sock, "PUT", "/snapshot/load",
               {"snapshot_path": snap, "mem_backend": {"backend_type": "Shm", "backend_path": mem}},
               status=400, fault="backend_type")
        c.call(sock, "PUT", "/snapshot/load", {"snapshot_path": snap, "mem_file_path": mem, "bogus": 1},
               status=400, fault="unknown field")
        c.call(sock, "PUT", "/boot-source", {"kernel_image_path": args.guest("count")}, status=204)
        c.call(sock, "PUT", "/snapshot/load", {"snapshot_path": snap, "mem_file_path": mem}, status=400,
               fault="not allowed after configuring boot-specific resources")
        c.check(pre.running(), "a load refused by the rules leaves kvmlet running")
        pre.stop()

        vm, sock = boot(c, scene, args, "count", name="vm")
        c.check(vm.wait_for_output("count 50\r\n", 60), "the count guest runs")
        c.call(sock, "PUT", "/snapshot/create", create, status=400, fault="not paused")
        c.call(sock, "PUT", "/snapshot/create", dict(create, snapshot_type="Diff"), status=400, fault="Diff")
        c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204)
        c.call(sock, "PUT", "/snapshot/create", dict(create, snapshot_path=scene.path("no/such/dir/vm.snap")),
               status=400, fault="cannot create it")
        c.call(sock, "PUT", "/snapshot/create", create, status=204)
        c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204)
        n = last_count(vm.stdout())
        c.check(vm.wait_for_output(f"count {n + 20}\r\n", 30), "the guest goes on after its snapshot, resumed")
        kill(c, vm)

        for name, path, words in corrupt_copies(scene, snap):
            k = scene.kvmlet([args.kvmlet, "run", "--restore", path, "--mem", mem], name=name)
            status = k.wait(30)
            lines = error_lines(k)
            c.check(status == 1 and len(lines) == 1 and all(w in lines[0] for w in words) and k.stdout() == "",
                    f"{name}: exit 1, one error line saying {words}, no guest output",
                    f"status {status}, stderr {k.stderr()!r}, stdout {k.stdout()[:80]!r}")
        short_mem = scene.path("short.mem")
        with open(mem, "rb") as src, open(short_mem, "wb") as dst:
            dst.write(src.read(1 << 20))
        k = scene.kvmlet([args.kvmlet, "run", "--restore", snap, "--mem", short_mem], name="short-mem")
        status, lines = k.wait(30), error_lines(k)
        c.check(status == 1 and len(lines) == 1 and "the snapshot's guest has" in lines[0],
                "a memory file of the wrong size: exit 1, one error line", f"{status} {lines!r}")

        sock = scene.path("load.sock")
        bad = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock], name="bad-load")
        bad.wait_for_socket(sock)
        c.call(sock, "PUT", "/snapshot/load", {"snapshot_path": scene.path("bad-crc.snap"), "mem_file_path": mem},
               status=400, fault="CRC mismatch")
        c.check(bad.wait(10) == 1, "a failed API load ends kvmlet with status 1", bad.stderr()[-300:])
        c.check(bad.stdout() == "", "and the guest never ran")
    return c.finish()


if __name__ == "__main__":
    sys.exit(main({"count": case_count, "ticks": case_ticks, "rng": case_rng, "devices": case_devices,
                  "net": case_net, "errors": case_errors}, sys.argv))
