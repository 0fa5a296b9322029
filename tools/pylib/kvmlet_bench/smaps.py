"""A VMM's memory overhead, from /proc/PID/smaps: its RSS without the guest RAM mapping.

Firecracker's measure of "VMM memory overhead" is the VMM process's RSS without the guest's
memory. Guest RAM is recognised by the name of the mapping that holds it: kvmlet maps one memfd
named `kvmlet-guest-ram`; QEMU, given `-object memory-backend-memfd`, one named after that type.
Every other mapping counts: the binary and its libraries (file pages shared with other processes
included), heap, stacks, thread stacks.

Private counts the pages only this process maps (Private_Clean + Private_Dirty): what one more VM
costs when the others already have the libraries in memory.
"""

import collections
from pathlib import Path

# Names (as smaps shows them on a mapping's first line) of the mappings that hold guest RAM.
GUEST_RAM_NAMES = ("kvmlet-guest-ram", "memfd:memory-backend-memfd")

Overhead = collections.namedtuple("Overhead", "rss_bytes private_bytes guest_rss_bytes")


def _is_mapping_header(line):
    """A mapping's first line starts with "start-end" (hex); field lines start with "Name:"."""
    head = line.split(maxsplit=1)[0] if line.strip() else ""
    return "-" in head and not head.endswith(":")


def overhead_from_smaps(lines, guest_ram_names=GUEST_RAM_NAMES):
    """Overhead(rss, private, guest_rss) in bytes from the lines of an smaps file: the first two
    without the guest RAM mappings, the third their RSS."""
    rss = private = guest_rss = 0
    in_guest = False
    for line in lines:
        if _is_mapping_header(line):
            in_guest = any(name in line for name in guest_ram_names)
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        if in_guest:
            if fields[0] == "Rss:":
                guest_rss += int(fields[1])
        elif fields[0] == "Rss:":
            rss += int(fields[1])
        elif fields[0] in ("Private_Clean:", "Private_Dirty:"):
            private += int(fields[1])
    return Overhead(rss << 10, private << 10, guest_rss << 10)


def overhead_bytes(pid, guest_ram_names=GUEST_RAM_NAMES):
    """Overhead of one process (raises OSError when it is gone)."""
    with open(f"/proc/{pid}/smaps") as f:
        return overhead_from_smaps(f, guest_ram_names)


def descendants(pid):
    """pid's children, grandchildren... (from /proc/PID/task/*/children), parents first."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop(0)
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += children
            todo += children
    return out


def tree_overhead_bytes(pid, guest_ram_names=GUEST_RAM_NAMES):
    """Overhead summed over pid and its descendants (a process that ends meanwhile is left out);
    None when pid itself is gone. RSS of pages that several of them map is counted in each."""
    total = None
    for p in [pid] + descendants(pid):
        try:
            o = overhead_bytes(p, guest_ram_names)
        except OSError:
            continue
        total = o if total is None else Overhead(*(a + b for a, b in zip(total, o)))
    return total
