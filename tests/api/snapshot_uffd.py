#!/usr/bin/env python3
"""The Uffd memory backend (issue 17): PUT /snapshot/load with mem_backend {"backend_type": "Uffd",
"backend_path": SOCKET} hands the restored microVM's userfaultfd and its regions to a page-fault
handler listening on SOCKET (Firecracker's handshake: one JSON array of regions, the userfaultfd as
SCM_RIGHTS). The handler here is the test's own, a thread: it copies each faulting page from the
snapshot's memory file (UFFDIO_COPY). The restored count guest goes on where it stopped, nothing
repeated or lost, with only the pages it touched ever copied; a snapshot of it is refused; a load
with no handler listening is a 400 and ends kvmlet.

    snapshot_uffd.py CASE KVMLET GUESTS_DIR CONTRACT_YAML      (CASE: count)
"""
import array
import ctypes
import errno
import fcntl
import json
import mmap
import os
import select
import socket
import struct
import sys
import threading

from api_client import Checks, Scene, main
from snapshot import boot, check_count_continues, kill, snapshot

PAGE = 4096
UFFD_EVENT_PAGEFAULT = 0x12
UFFD_MSG_BYTES = 32
UFFDIO_COPY = 0xC028AA03  # _IOWR(0xAA, 0x03, struct uffdio_copy): 40 bytes


class Handler(threading.Thread):
    """Accepts one connection on `sock_path`, takes the regions and the userfaultfd, and serves
    every page fault from `memory_file` until stopped."""

    def __init__(self, sock_path, memory_file):
        super().__init__(daemon=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(sock_path)
        self.listener.listen(1)
        self.memory_file = memory_file
        self.regions, self.served, self.errors = None, set(), []
        self.stopping = threading.Event()

    def run(self):
        try:
            self.serve()
        except Exception as e:  # reported by the test, never swallowed
            self.errors.append(repr(e))

    def serve(self):
        conn, _ = self.listener.accept()
        fds = array.array("i")
        msg, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:fds.itemsize])
        if len(fds) != 1:
            raise RuntimeError(f"expected one fd with the regions, got {len(fds)}")
        uffd, self.regions = fds[0], json.loads(msg)
        with open(self.memory_file, "rb") as f:
            source = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(source))
        while not self.stopping.is_set():
            if not select.select([uffd], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(uffd, UFFD_MSG_BYTES)
            except BlockingIOError:
                continue
            if data[0] != UFFD_EVENT_PAGEFAULT:
                continue
            address = struct.unpack_from("<Q", data, 16)[0] & ~(PAGE - 1)
            region = next(r for r in self.regions
                          if r["base_host_virt_addr"] <= address < r["base_host_virt_addr"] + r["size"])
            offset = region["offset"] + address - region["base_host_virt_addr"]
            copy = bytearray(struct.pack("<QQQQq", address, base + offset, PAGE, 0, 0))
            try:
                fcntl.ioctl(uffd, UFFDIO_COPY, copy)
            except OSError as e:
                if e.errno != errno.EEXIST:  # another fault on the page was served first
                    raise
            self.served.add(address)
        conn.close()

    def stop(self):
        self.stopping.set()
        self.join(5)


def case_count(args):
    c = Checks(args.contract)
    with Scene("snapshot-uffd") as scene:
        snap, mem = scene.path("vm.snap"), scene.path("vm.mem")
        vm, sock = boot(c, scene, args, "count")
        c.check(vm.wait_for_output("count 300\r\n", 60), "the count guest counts to 300")
        first = snapshot(c, vm, sock, snap, mem)
        kill(c, vm)

        handler = Handler(scene.path("uffd.sock"), mem)
        handler.start()
        api_sock = scene.path("api.sock")
        restored = scene.kvmlet([args.kvmlet, "run", "--api-sock", api_sock], name="uffd")
        restored.wait_for_socket(api_sock)
        c.call(api_sock, "PUT", "/snapshot/load",
               {"snapshot_path": snap, "mem_backend": {"backend_type": "Uffd", "backend_path": scene.path("uffd.sock")},
                "resume_vm": True}, status=204)
        check_count_continues(c, first, restored, "restored with the Uffd backend")
        regions = handler.regions or []
        c.check(len(regions) == 1 and regions[0]["size"] == 64 << 20 and regions[0]["offset"] == 0 and
                regions[0]["page_size"] == PAGE and regions[0]["page_size_kib"] == 4,
                "the handler got one region of 64 MiB at offset 0, in 4 KiB pages", json.dumps(regions))
        served = len(handler.served)
        print(f"figure: Uffd restore: {served} pages copied by the handler for the guest's first counts")
        c.check(0 < served < (64 << 20) // PAGE // 4, "the handler copied the pages touched, not all of RAM",
                str(served))
        c.check(not handler.errors, "the handler saw nothing unexpected", "; ".join(handler.errors))
        c.call(api_sock, "PATCH", "/vm", {"state": "Paused"}, status=204)
        c.call(api_sock, "PUT", "/snapshot/create",
               {"snapshot_type": "Full", "snapshot_path": scene.path("again.snap"),
                "mem_file_path": scene.path("again.mem")}, status=400, fault="Uffd")
        restored.stop()
        handler.stop()

        # No handler listening: a 400, and kvmlet ends with status 1 (a failed load).
        api_sock2 = scene.path("none.sock")
        lonely = scene.kvmlet([args.kvmlet, "run", "--api-sock", api_sock2], name="nohandler")
        lonely.wait_for_socket(api_sock2)
        c.call(api_sock2, "PUT", "/snapshot/load",
               {"snapshot_path": snap, "mem_backend": {"backend_type": "Uffd", "backend_path": scene.path("no.sock")}},
               status=400, fault="no page-fault handler listening")
        c.check(lonely.wait(30) == 1, "and kvmlet ends with status 1")
    return c.finish()


if __name__ == "__main__":
    sys.exit(main({"count": case_count}, sys.argv))
