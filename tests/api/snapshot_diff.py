#!/usr/bin/env python3
"""Diff snapshots (issue 17): with machine-config track_dirty_pages, PUT /snapshot/create with
snapshot_type Diff writes only the pages dirtied since the last snapshot (the memory file's layout,
every other page a hole); `kvmlet snapshot-merge BASE DIFF` writes them over the base Full file,
and the merged file restores the guest exactly: it is byte for byte the Full file of the same
moment, and the restored guest goes on where the Diff was taken, nothing repeated or lost.

    snapshot_diff.py CASE KVMLET GUESTS_DIR CONTRACT_YAML

Cases (one CTest test each):
  count   the count guest: Full, run, Diff (and a Full of the same moment), merge, restore; a
          second Diff at once holds nothing; a guest restored from the Full with track_dirty_pages
          takes a Diff of what changed since the load; without tracking a Diff is a 400;
          snapshot-merge refuses files of different sizes
  rng     the snapshot_virtio guest with a virtio-rng: its rings and buffers, written by the
          device (the VMM's own marks) and by the guest (KVM's dirty log), come back merged and
          the requests go on, as used entries in order
"""
import os
import subprocess
import sys
import time

from api_client import Checks, Scene, main
from snapshot import (boot, check_count_continues, check_rng_continues, count_run_problems, counts_in,
                      kill, restore_by_command_line, rng_counts, wait_until)

PAGE = 4096


def create(c, sock, kind, snap, mem, status=204, fault=None):
    return c.call(sock, "PUT", "/snapshot/create",
                  {"snapshot_type": kind, "snapshot_path": snap, "mem_file_path": mem}, status=status, fault=fault)


def pause(c, vm, sock):
    """Pauses the guest; returns its output so far, once it has stopped printing."""
    c.call(sock, "PATCH", "/vm", {"state": "Paused"}, status=204)
    time.sleep(0.3)
    return vm.stdout()


def data_bytes(path):
    """The bytes of `path` that are data, not holes (SEEK_DATA / SEEK_HOLE)."""
    total = 0
    with open(path, "rb") as f:
        fd, size, at = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while at < size:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            total, at = total + end - start, end
    return total


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def merge(c, args, scene, base, diff, name):
    """A sparse copy of `base` with `diff` merged into it by kvmlet snapshot-merge; its path."""
    merged = scene.path(name)
    subprocess.run(["cp", "--sparse=always", base, merged], check=True)
    r = subprocess.run([args.kvmlet, "snapshot-merge", merged, diff], capture_output=True, text=True, timeout=60)
    c.check(r.returncode == 0, f"kvmlet snapshot-merge {os.path.basename(merged)} {os.path.basename(diff)}",
            r.stderr)
    return merged


def check_diff_file(c, scene, base_mem, diff_mem, full_mem, what):
    """The Diff is as long as RAM, holds fewer pages than the Full, and changes the base."""
    c.check(os.path.getsize(diff_mem) == os.path.getsize(base_mem), f"{what}: the Diff file is as long as RAM")
    diff_data, full_data = data_bytes(diff_mem), data_bytes(full_mem)
    print(f"figure: {what}: Diff {diff_data >> 10} KiB of data, a Full of the same moment {full_data >> 10} KiB")
    c.check(0 < diff_data < full_data and diff_data % PAGE == 0,
            f"{what}: the Diff holds whole pages, fewer than the Full", f"{diff_data} against {full_data}")
    c.check(not same_bytes(base_mem, full_mem), f"{what}: the guest changed RAM since the base (the test means "
            "something)")


def case_count(args):
    c = Checks(args.contract)
    with Scene("snapshot-diff") as scene:
        p = scene.path
        tracked = {"vcpu_count": 1, "mem_size_mib": 64, "track_dirty_pages": True}
        vm, sock = boot(c, scene, args, "count", devices=[("/machine-config", tracked)])
        c.check(vm.wait_for_output("count 300\r\n", 60), "the count guest counts to 300")
        at_base = pause(c, vm, sock)
        create(c, sock, "Full", p("base.snap"), p("base.mem"))
        c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204)
        c.check(wait_until(lambda: counts_in(vm.stdout()) >= 600, 60), "the guest goes on after its Full snapshot")
        first = pause(c, vm, sock)
        create(c, sock, "Diff", p("diff.snap"), p("diff.mem"))
        # A Full of the same moment: what the merged file must be, byte for byte.
        create(c, sock, "Full", p("same.snap"), p("same.mem"))
        create(c, sock, "Diff", p("empty.snap"), p("empty.mem"))
        c.check(data_bytes(p("empty.mem")) == 0, "a Diff right after a snapshot of the paused guest holds no page",
                str(data_bytes(p("empty.mem"))))
        c.check(vm.stdout() == first, "nothing printed while paused and snapshotted")
        kill(c, vm)
        c.check(not count_run_problems(first), "the first process's output is one run of the guest")
        check_diff_file(c, scene, p("base.mem"), p("diff.mem"), p("same.mem"), "count guest")

        merged = merge(c, args, scene, p("base.mem"), p("diff.mem"), "merged.mem")
        c.check(same_bytes(merged, p("same.mem")), "Full + Diff merged is the Full of the Diff's moment")
        restored = restore_by_command_line(c, scene, args, p("diff.snap"), merged, "merged")
        check_count_continues(c, first, restored, "restored from Full + Diff")
        restored.stop()

        # A guest restored from the Full with tracking: its Diff holds what changed since the load.
        sock2 = p("again.sock")
        again = scene.kvmlet([args.kvmlet, "run", "--api-sock", sock2], name="again")
        again.wait_for_socket(sock2)
        c.call(sock2, "PUT", "/snapshot/load", {"snapshot_path": p("base.snap"), "mem_file_path": p("base.mem"),
                                                "track_dirty_pages": True, "resume_vm": True}, status=204)
        c.check(wait_until(lambda: counts_in(again.stdout()) >= 200, 60), "the guest restored with tracking counts")
        second = at_base + pause(c, again, sock2)
        create(c, sock2, "Diff", p("diff2.snap"), p("diff2.mem"))
        create(c, sock2, "Full", p("same2.snap"), p("same2.mem"))
        kill(c, again)
        check_diff_file(c, scene, p("base.mem"), p("diff2.mem"), p("same2.mem"), "restored count guest")
        merged2 = merge(c, args, scene, p("base.mem"), p("diff2.mem"), "merged2.mem")
        c.check(same_bytes(merged2, p("same2.mem")), "a restored guest's Diff merged onto its Full is its RAM")
        again2 = restore_by_command_line(c, scene, args, p("diff2.snap"), merged2, "merged2")
        check_count_continues(c, second, again2, "restored from the Full + the restored guest's Diff")
        again2.stop()

        # Without tracking: a Diff is refused with Firecracker's words, the microVM goes on.
        plain, sock3 = boot(c, scene, args, "count", name="plain")
        c.check(plain.wait_for_output("count 10\r\n", 60), "a count guest without tracking runs")
        pause(c, plain, sock3)
        create(c, sock3, "Diff", p("no.snap"), p("no.mem"), status=400, fault="dirty page tracking disabled")
        c.check(not os.path.exists(p("no.snap")), "and writes no state file")
        create(c, sock3, "Full", p("plain.snap"), p("plain.mem"))
        plain.stop()

        # snapshot-merge refuses a Diff of another guest (another size): one error line, status 1.
        with open(p("short.mem"), "wb") as f:
            f.truncate(32 << 20)
        r = subprocess.run([args.kvmlet, "snapshot-merge", p("base.mem"), p("short.mem")], capture_output=True,
                           text=True, timeout=30)
        errors = [line for line in r.stderr.splitlines() if "error" in line]
        c.check(r.returncode == 1 and len(errors) == 1 and "not a Diff of this guest" in errors[0],
                "snapshot-merge of files of different sizes: exit 1, one error line", f"{r.returncode} {r.stderr!r}")
        r = subprocess.run([args.kvmlet, "snapshot-merge", p("base.mem")], capture_output=True, text=True, timeout=30)
        c.check(r.returncode == 2, "snapshot-merge with one file is a usage error (status 2)", str(r.returncode))
    return c.finish()


def case_rng(args):
    c = Checks(args.contract)
    with Scene("snapshot-diff-rng") as scene:
        p = scene.path
        tracked = {"vcpu_count": 1, "mem_size_mib": 64, "track_dirty_pages": True}
        vm, sock = boot(c, scene, args, "snapshot_virtio", devices=[("/machine-config", tracked), ("/entropy", {})])
        if not c.check(vm.wait_for_output("rng 100\r\n", 60), "the guest completes 100 rng requests",
                       vm.stdout()[-300:]):
            vm.report()
            return c.finish()
        pause(c, vm, sock)
        create(c, sock, "Full", p("base.snap"), p("base.mem"))
        c.call(sock, "PATCH", "/vm", {"state": "Resumed"}, status=204)
        c.check(wait_until(lambda: len(rng_counts(vm.stdout())) >= 300, 60), "the guest goes on after its Full")
        first = pause(c, vm, sock)
        create(c, sock, "Diff", p("diff.snap"), p("diff.mem"))
        create(c, sock, "Full", p("same.snap"), p("same.mem"))
        kill(c, vm)
        check_diff_file(c, scene, p("base.mem"), p("diff.mem"), p("same.mem"), "virtio-rng guest")
        merged = merge(c, args, scene, p("base.mem"), p("diff.mem"), "merged.mem")
        c.check(same_bytes(merged, p("same.mem")), "Full + Diff merged is the Full of the Diff's moment")
        restored = restore_by_command_line(c, scene, args, p("diff.snap"), merged, "merged")
        check_rng_continues(c, first, restored, "restored from Full + Diff")
        restored.stop()
    return c.finish()


if __name__ == "__main__":
    sys.exit(main({"count": case_count, "rng": case_rng}, sys.argv))
