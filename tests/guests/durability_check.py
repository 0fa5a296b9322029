#!/usr/bin/env python3
"""Checks a disk image the durability guest (durability.c) wrote before kvmlet was killed.

    durability_check.py IMAGE --flushed N --every K

N is the last complete "flushed N" line the guest printed (blocks 0..N were acknowledged by a
FLUSH), K its flush interval (the "flush_every=" of its first line). The guest prints that line
before it starts the next write and writes blocks strictly in order, so at most blocks N+1..N+K
can have been written after it. The image passes when:
  - every block 0..N is present and intact: byte for byte what the guest wrote there (a zero,
    torn, corrupt or misplaced block is a loss);
  - each block N+1..N+K holds, sector by sector, either zeros or its own data (it may be absent
    or torn: it was never flushed), and no other block's data;
  - every block past N+K is all zeros.
Exit status: 0 passed, 1 failed (one "FAIL: ..." line per finding, at most MAX_REPORTED), 2 usage
or unreadable image. The summary line on stdout starts with "checked:".

The block format is documented in durability.c; make_block() here builds the same bytes, for
the unit checks in test_durability_check.py.
"""

import argparse
import errno
import os
import struct
import sys

SECTOR = 512
BLOCK = 4096
SECTORS_PER_BLOCK = BLOCK // SECTOR
LINE = struct.Struct("<8sQQQ4Q")  # magic, sequence number, line index, check, filler
LINES = BLOCK // LINE.size
LINES_PER_SECTOR = SECTOR // LINE.size
MAGIC = b"kvmlDUR1"
CHECK_SEQ_FACTOR = 0x9E3779B97F4A7C15
CHECK_LINE_FACTOR = 0xC2B2AE3D27D4EB4F
FILLER_FACTOR = 0xD6E8FEB86659FD93
MASK = (1 << 64) - 1
FILLER = [tuple((line * 8 + w) * FILLER_FACTOR & MASK for w in range(4, 8)) for line in range(LINES)]
ZERO_SECTOR = bytes(SECTOR)
ZERO_BLOCK = bytes(BLOCK)
MAX_REPORTED = 20
CHUNK_BLOCKS = 256  # 1 MiB reads


def check(seq, line):
    """The guest's check word (durability.c: fill_block)."""
    return (seq * CHECK_SEQ_FACTOR ^ (line + 1) * CHECK_LINE_FACTOR) & MASK


def make_line(seq, line):
    return LINE.pack(MAGIC, seq, line, check(seq, line), *FILLER[line])


def make_sector(seq, index):
    first = index * LINES_PER_SECTOR
    return b"".join(make_line(seq, line) for line in range(first, first + LINES_PER_SECTOR))


def make_block(seq):
    return b"".join(make_line(seq, line) for line in range(LINES))


def sector_state(data, index):
    """'zero', the sequence number of the block whose sector `index` `data` is, or 'bad'."""
    if data == ZERO_SECTOR:
        return "zero"
    magic, seq, line, check_word = LINE.unpack_from(data)[:4]
    if magic != MAGIC or line != index * LINES_PER_SECTOR or check_word != check(seq, line):
        return "bad"
    return seq if data == make_sector(seq, index) else "bad"


def describe(states, own):
    """'sectors 0-3 zero, 4-7 block 9' from per-sector states, naming the block's own data 'written'."""
    def name(state):
        if state == own:
            return "written"
        return state if isinstance(state, str) else f"hold block {state}"
    runs = []
    for i, state in enumerate(states):
        if runs and runs[-1][2] == state:
            runs[-1][1] = i
        else:
            runs.append([i, i, state])
    parts = [(f"sector {a}" if a == b else f"sectors {a}-{b}") + f" {name(s)}" for a, b, s in runs]
    return ", ".join(parts)


class Report:
    def __init__(self, flushed, every):
        self.flushed = flushed
        self.every = every
        self.failures = []
        self.failure_count = 0
        self.intact = 0  # flushed blocks found intact
        self.unflushed_written = 0  # blocks N+1..N+K found whole
        self.unflushed_partial = 0  # blocks N+1..N+K found with some but not all sectors
        self.blocks = 0

    def fail(self, text):
        self.failure_count += 1
        if len(self.failures) < MAX_REPORTED:
            self.failures.append(text)

    def summary(self):
        verdict = "FAILED" if self.failure_count else "ok"
        return (f"checked: {verdict}: {self.blocks} blocks, flushed 0..{self.flushed}: {self.intact} intact; "
                f"unflushed {self.flushed + 1}..{self.flushed + self.every}: {self.unflushed_written} written, "
                f"{self.unflushed_partial} partly; {self.failure_count} failures")


def check_block(report, index, data):
    if index > report.flushed + report.every:
        if data != ZERO_BLOCK:
            states = [sector_state(data[s * SECTOR:(s + 1) * SECTOR], s) for s in range(SECTORS_PER_BLOCK)]
            report.fail(f"block {index} was written although the guest reported only up to "
                        f"{report.flushed} (at most {report.every} more can be in flight): {describe(states, index)}")
        return
    if data == make_block(index):
        if index <= report.flushed:
            report.intact += 1
        else:
            report.unflushed_written += 1
        return
    states = [sector_state(data[s * SECTOR:(s + 1) * SECTOR], s) for s in range(SECTORS_PER_BLOCK)]
    if index <= report.flushed:
        if all(state == "zero" for state in states):
            report.fail(f"flushed block {index} is lost: all zeros")
        else:
            report.fail(f"flushed block {index} is not intact: {describe(states, index)}")
        return
    if any(state not in ("zero", index) for state in states):
        report.fail(f"unflushed block {index} holds what the guest never wrote there: {describe(states, index)}")
    elif any(state == index for state in states):
        report.unflushed_partial += 1


def check_blocks(report, image, first, end):
    """Reads blocks [first, end) and checks each (a chunk of zeros past N+K at once)."""
    image.seek(first * BLOCK)
    index = first
    while index < end:
        chunk = image.read(min(CHUNK_BLOCKS, end - index) * BLOCK)
        whole = len(chunk) // BLOCK
        if whole == 0:
            break
        if index > report.flushed + report.every and chunk[:whole * BLOCK] == bytes(whole * BLOCK):
            index += whole
            continue
        for i in range(whole):
            check_block(report, index + i, chunk[i * BLOCK:(i + 1) * BLOCK])
        index += whole


def data_ranges(image, start, size):
    """The (offset, end) ranges of [start, size) that may hold data: holes read as zeros, so only
    these need reading (the whole range where the file system cannot say)."""
    fd = image.fileno()
    ranges = []
    pos = start
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
            hole = os.lseek(fd, data, os.SEEK_HOLE)
        except OSError as e:
            if e.errno == errno.ENXIO:  # no data after pos
                break
            return [(pos, size)]
        ranges.append((data, min(hole, size)))
        pos = hole
    return ranges


def check_image(path, flushed, every):
    report = Report(flushed, every)
    with open(path, "rb") as image:
        report.blocks = os.fstat(image.fileno()).st_size // BLOCK
        head = min(report.blocks, flushed + every + 1)
        check_blocks(report, image, 0, head)
        for start, end in data_ranges(image, head * BLOCK, report.blocks * BLOCK):
            check_blocks(report, image, start // BLOCK, (end + BLOCK - 1) // BLOCK)
    if flushed >= report.blocks:
        report.fail(f"the guest reported block {flushed} flushed, but the image has only {report.blocks} blocks")
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description="Checks an image written by the durability guest.")
    p.add_argument("image")
    p.add_argument("--flushed", type=int, required=True, help="the last 'flushed N' the guest printed")
    p.add_argument("--every", type=int, required=True, help="the guest's flush interval in blocks")
    args = p.parse_args(argv)
    if args.flushed < 0 or args.every < 1:
        p.error("--flushed must be >= 0 and --every >= 1")
    try:
        report = check_image(args.image, args.flushed, args.every)
    except OSError as e:
        print(f"durability_check.py: {e}", file=sys.stderr)
        return 2
    for failure in report.failures:
        print(f"FAIL: {failure}")
    if report.failure_count > len(report.failures):
        print(f"FAIL: ... and {report.failure_count - len(report.failures)} more")
    print(report.summary())
    return 1 if report.failure_count else 0


if __name__ == "__main__":
    sys.exit(main())
