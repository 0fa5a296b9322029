#!/usr/bin/env python3
"""Writes the hand-made seed inputs of corpus/<target>/seed-*.bin (formats: fuzz_support.hpp and
fuzz_mmio_transport.cpp). Rerun after changing a format; inputs the fuzzers found (other names) are
kept as they are."""
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
NEXT, WRITE, INDIRECT = 1, 2, 4
EVENT_IDX, INDIRECT_F, READ_ONLY_PASS, EXPLICIT = 1, 2, 4, 0x80
FLUSH_F, DISCARD_F, WZ_F = 4, 8, 16
DISK_RO, DISK_DIRECT = 1 << 5, 2 << 5


def compact(size):
    avail = 16 * size
    used = (avail + 6 + 2 * size + 3) & ~3
    return 0, avail, used


class Ram:
    def __init__(self):
        self.b = bytearray()

    def put(self, addr, data):
        if len(self.b) < addr + len(data):
            self.b.extend(bytes(addr + len(data) - len(self.b)))
        self.b[addr:addr + len(data)] = data


def desc(addr, length, flags=0, nxt=0):
    return struct.pack('<QIHH', addr, length, flags, nxt)


def queue(ram, size, chains, avail_idx=None, used_event=None, layout=None):
    """chains: list of lists of (addr, len, flags, next) placed from descriptor `head`."""
    d, a, _ = layout or compact(size)
    heads = []
    for head, descs in chains:
        for i, (addr, length, flags, nxt) in enumerate(descs):
            ram.put(d + 16 * (head + i), desc(addr, length, flags, nxt))
        heads.append(head)
    for i, h in enumerate(heads):
        ram.put(a + 4 + 2 * i, struct.pack('<H', h))
    ram.put(a + 2, struct.pack('<H', len(heads) if avail_idx is None else avail_idx))
    if used_event is not None:
        ram.put(a + 4 + 2 * size, struct.pack('<H', used_event))


def queue_input(size_log2, flags, ram, patches=(), layout=(0, 0, 0)):
    out = struct.pack('<BBHHH', size_log2, flags, *layout) + struct.pack('<H', len(ram.b)) + bytes(ram.b)
    for addr, data in patches:
        out += struct.pack('<HB', addr, len(data)) + data
    return out


def blk_header(rtype, sector=0):
    return struct.pack('<IIQ', rtype, 0, sector)


def write_corpus(target, seeds):
    d = HERE / 'corpus' / target
    d.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        assert len(data) < 4096, (target, name, len(data))
        (d / f'seed-{name}.bin').write_bytes(data)


def virtqueue_seeds():
    s = {}
    r = Ram()  # header, data in, status out: a block-like chain
    queue(r, 4, [(0, [(0x100, 16, NEXT, 1), (0x200, 512, NEXT | WRITE, 2), (0x400, 1, WRITE, 0)])])
    r.put(0x100, bytes(range(16)))
    s['direct-chain'] = queue_input(2, 0, r)
    r = Ram()  # an indirect table of three, with EVENT_IDX
    queue(r, 8, [(0, [(0x300, 48, INDIRECT, 0)])], used_event=0)
    r.put(0x300, desc(0x400, 100, NEXT, 1) + desc(0x500, 7, NEXT | WRITE, 2) + desc(0x600, 9, WRITE, 0))
    s['indirect-event-idx'] = queue_input(3, EVENT_IDX | INDIRECT_F, r)
    r = Ram()  # a loop, then a good chain
    queue(r, 4, [(0, [(0x100, 8, NEXT, 0)]), (1, [(0x100, 8, 0, 0)])])
    s['loop-then-good'] = queue_input(2, 0, r)
    r = Ram()  # one chain, then the driver adds a second one in a later round
    queue(r, 4, [(0, [(0x100, 8, 0, 0)])])
    _, a, _ = compact(4)
    s['two-rounds'] = queue_input(2, 0, r, patches=[
        (16 * 1, desc(0x180, 24, WRITE, 0)), (a + 4 + 2, struct.pack('<H', 1)), (a + 2, struct.pack('<H', 2))])
    r = Ram()  # avail index far ahead: the queue breaks
    queue(r, 4, [(0, [(0x100, 8, 0, 0)])], avail_idx=100)
    s['avail-jump'] = queue_input(2, 0, r)
    r = Ram()  # explicit, spread-out layout; a buffer that ends past RAM
    layout = (0x800, 0x100, 0x200)
    queue(r, 2, [(0, [(0x400, 16, NEXT, 1), (0xfff8, 16, WRITE, 0)])], layout=layout)
    s['explicit-layout-outside-ram'] = queue_input(1, EXPLICIT, r, layout=layout)
    r = Ram()  # read-only pass (strict invariants), readable after writable (bad), head out of range
    queue(r, 4, [(0, [(0x100, 8, WRITE | NEXT, 1), (0x180, 8, 0, 0)]), (7, [])])
    s['bad-order-bad-head'] = queue_input(2, READ_ONLY_PASS, r)
    return s


def blk_request(ram, head, header_addr, header, data=None, status_addr=0x7000):
    """Places a request as header / optional (addr, len, writable) data / status descriptors."""
    ram.put(header_addr, header)
    descs = [(header_addr, 16, NEXT, head + 1)]
    if data:
        addr, length, writable = data
        descs.append((addr, length, NEXT | (WRITE if writable else 0), head + 2))
    descs.append((status_addr + head, 1, WRITE, 0))
    return (head, descs)


def blk_seeds():
    s = {}
    r = Ram()
    chains = [
        blk_request(r, 0, 0x200, blk_header(1, 2), (0x1000, 1024, False)),  # write sectors 2-3
        blk_request(r, 3, 0x210, blk_header(0, 2), (0x2000, 1024, True)),  # read them back
        blk_request(r, 6, 0x220, blk_header(4)),  # flush
        blk_request(r, 8, 0x230, blk_header(8), (0x3000, 20, True)),  # GET_ID
    ]
    queue(r, 16, chains)
    s['write-read-flush-id'] = queue_input(4, FLUSH_F, r)
    r = Ram()
    r.put(0x300, struct.pack('<QII', 4, 8, 0) + struct.pack('<QII', 20, 4, 0))
    r.put(0x340, struct.pack('<QII', 40, 8, 1))
    chains = [
        (0, [(0x200, 16, NEXT, 1), (0x300, 32, NEXT, 2), (0x7000, 1, WRITE, 0)]),  # discard, 2 segments
        (3, [(0x210, 16, NEXT, 4), (0x340, 16, NEXT, 5), (0x7001, 1, WRITE, 0)]),  # write zeroes, unmap
    ]
    r.put(0x200, blk_header(11))
    r.put(0x210, blk_header(13))
    queue(r, 8, chains)
    s['discard-write-zeroes'] = queue_input(3, DISCARD_F | WZ_F, r)
    r = Ram()  # misaligned and split buffers on the O_DIRECT disk (bounce buffer), indirect
    r.put(0x200, blk_header(1, 0))
    r.put(0x600, desc(0x200, 16, NEXT, 1) + desc(0x1001, 300, NEXT, 2) + desc(0x2003, 212, NEXT, 3)
          + desc(0x7000, 1, WRITE, 0))
    r.put(0x210, blk_header(0, 0))
    r.put(0x640, desc(0x210, 16, NEXT, 1) + desc(0x3001, 512, NEXT | WRITE, 2) + desc(0x7001, 1, WRITE, 0))
    queue(r, 4, [(0, [(0x600, 64, INDIRECT, 0)]), (1, [(0x640, 48, INDIRECT, 0)])])
    s['direct-misaligned-indirect'] = queue_input(2, INDIRECT_F | EVENT_IDX | DISK_DIRECT, r)
    r = Ram()  # read-only disk: a write fails, a read past the end, an unknown type, no status
    chains = [
        blk_request(r, 0, 0x200, blk_header(1, 0), (0x1000, 512, False)),
        blk_request(r, 3, 0x210, blk_header(0, 127), (0x2000, 1024, True)),
        blk_request(r, 6, 0x220, blk_header(99)),
        (8, [(0x230, 16, 0, 0)]),
    ]
    queue(r, 16, chains)
    s['read-only-errors'] = queue_input(4, DISK_RO, r)
    return s


def mmio_seeds():
    s = {}

    def w32(offset, value):
        assert offset % 4 == 0
        return struct.pack('<BBI', 0, offset // 4, value)

    def raw(kind, offset, width_log2, value=0):
        return struct.pack('<BH', kind | (width_log2 << 3), offset) + struct.pack('<Q', value)[:1 << width_log2]

    r = Ram()
    queue(r, 8, [blk_request(r, 0, 0x200, blk_header(0, 0), (0x1000, 512, True))])
    ram = struct.pack('<H', len(r.b)) + bytes(r.b)
    ops = struct.pack('<BBB', 6, 3, 0x04) + w32(0x50, 0)  # bring-up, size 8, FLUSH; notify queue 0
    ops += struct.pack('<BB', 1, 0x60 // 4) + w32(0x64, 1)  # read and ack the interrupt
    ops += raw(3, 0x100, 3) + raw(3, 0x13e, 1)  # config space reads (8 and 2 bytes)
    ops += struct.pack('<BB', 5, 0)  # ioeventfd-style notify
    s['bring-up-read'] = ram + ops
    # By hand, step by step, with mistakes: bad widths, a status that clears bits, DRIVER_OK
    # without FEATURES_OK, then a reset and feature words out of range.
    ops = w32(0x70, 1) + w32(0x70, 3) + raw(2, 0x70, 0, 7) + raw(2, 0x30, 3, 0) + w32(0x70, 1)
    ops += w32(0x24, 1) + w32(0x20, 1) + w32(0x24, 0) + w32(0x20, 0x30000246) + w32(0x70, 0xb)
    ops += w32(0x30, 0) + w32(0x38, 8) + w32(0x80, 0) + w32(0x90, 128) + w32(0x94, 0) + w32(0xa0, 152)
    ops += w32(0x44, 1) + w32(0x38, 4) + w32(0x70, 0xf) + w32(0x50, 0) + w32(0x50, 7)
    ops += w32(0x70, 0) + w32(0x70, 4) + struct.pack('<BB', 7, 0) + w32(0x14, 5) + struct.pack('<BB', 1, 4)
    s['by-hand-with-mistakes'] = ram + ops
    # The driver patches in a second request between notifies; queue 1 does not exist.
    r2 = Ram()
    queue(r2, 4, [blk_request(r2, 0, 0x200, blk_header(8), (0x1000, 20, True))])
    ram2 = struct.pack('<H', len(r2.b)) + bytes(r2.b)
    _, a, _ = compact(4)
    patch = struct.pack('<BHB', 4, a + 2, 2) + struct.pack('<H', 2)
    ops = struct.pack('<BBB', 6, 2, 0x01) + w32(0x50, 0) + patch + w32(0x50, 0) + w32(0x50, 1) + w32(0x30, 1)
    ops += struct.pack('<BB', 1, 0x34 // 4) + struct.pack('<BB', 1, 0x44 // 4)
    s['patch-between-notifies'] = ram2 + ops
    return s


if __name__ == '__main__':
    write_corpus('fuzz_virtqueue', virtqueue_seeds())
    write_corpus('fuzz_virtio_blk', blk_seeds())
    write_corpus('fuzz_mmio_transport', mmio_seeds())
