#!/usr/bin/env python3
"""Writes the hand-made seed inputs of corpus/<target>/seed-*.bin (formats: fuzz_support.hpp,
fuzz_mmio_transport.cpp and fuzz_pci.cpp). Rerun after changing a format; inputs the fuzzers found
(other names) are kept as they are."""
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


def pci_seeds():
    """fuzz_pci.cpp: the virtio-pci rng is slot 1 (BAR 0 at 0xc0000000), the probe slot 2."""
    s = {}
    slot1 = 1 << 15

    def cf8(bus, devfn, reg):
        return struct.pack('<BBBB', 1, bus, devfn, reg)

    def port(n, width_log2, read, value=0):
        return struct.pack('<BBI', 0, n | width_log2 << 3 | (0x20 if read else 0), value)

    def ecam(offset, width_log2, read, value=0):
        return struct.pack('<BIQ', 2 | width_log2 << 3 | (0x20 if read else 0), offset, value)

    def ecam32(slot, reg, value):
        return struct.pack('<BBBI', 3, slot, reg // 4, value)

    def bar(mode, address, width_log2, read, value=0):
        a = struct.pack('<Q', address) if mode % 4 == 3 else struct.pack('<H', address & 0xffff)
        return struct.pack('<BB', 4 | width_log2 << 3 | (0x20 if read else 0), mode) + a + struct.pack('<Q', value)

    no_ram = struct.pack('<H', 0)
    # Enumerate slots 0-4 and bus 1 through 0xCF8/0xCFC, size BAR 0 of slot 1, poke 0xCF9.
    ops = b''
    for slot in range(5):
        ops += cf8(0, slot << 3, 0) + port(4, 2, True) + port(6, 1, True) + port(7, 0, True)
    ops += cf8(0, 1 << 3, 0x10) + port(4, 2, False, 0xffffffff) + port(4, 2, True) + port(4, 2, False, 0xc0000000)
    ops += cf8(1, 1 << 3, 0) + port(4, 2, True) + port(1, 0, False, 6) + port(0, 1, True) + port(0, 2, True)
    s['enumerate-and-size'] = no_ram + ops
    # A driver brings the rng up with MSI-X, then without; the ring asks for 64 random bytes.
    r = Ram()
    queue(r, 8, [(0, [(0x1000, 64, WRITE, 0)])])
    ram = struct.pack('<H', len(r.b)) + bytes(r.b)
    ops = struct.pack('<BBB', 6, 3, 0x04) + bar(0, 0x1000, 0, True) + bar(0, 0x6000, 3, True)
    ops += bar(0, 0x4000, 3, True) + bar(0, 0x10, 1, True) + struct.pack('<BB', 7, 0)
    ops += ecam(slot1 | 0x98 + 2, 1, False, 0)  # MSI-X off: INTx and the ISR
    ops += struct.pack('<BBB', 6, 3, 0x01) + bar(0, 0x1000, 0, True) + bar(0, 0x14, 0, True)
    s['bring-up-msix-then-intx'] = ram + ops
    # The guest moves BAR 0: elsewhere below 4 GiB, above it, outside the windows, decoding off
    # and on, and sizes the probe's 64-bit BARs; ECAM accesses that must be ignored.
    ops = ecam32(1, 0x10, 0xd0000000) + bar(0, 0x12, 1, True) + bar(3, 0xd0000012, 1, True)
    ops += ecam32(1, 0x14, 0x10) + bar(3, 0x10d0000012, 1, True) + ecam32(1, 0x04, 0) + bar(3, 0x10d0000012, 1, True)
    ops += ecam32(1, 0x04, 2) + ecam32(1, 0x10, 0xffffffff) + ecam32(1, 0x14, 0xffffffff) + ecam32(1, 0x14, 0)
    ops += ecam32(1, 0x10, 0xfec00000) + bar(2, 0, 2, True)
    ops += ecam32(2, 0x18, 0xffffffff) + ecam32(2, 0x1c, 0xffffffff) + ecam(2 << 15 | 0x18, 2, True)
    ops += ecam32(2, 0x18, 0) + ecam32(2, 0x1c, 0x10) + bar(1 | 1 << 2, 0xfff8, 3, False, 1)
    # Accesses across the probe's BAR 0 end; its 512 MiB BAR across the 32-bit window's end.
    ops += bar(1, 0xffc, 3, True) + bar(1, 0xffe, 2, False, 7) + ecam32(2, 0x1c, 0) + ecam32(2, 0x18, 0xe0000000)
    ops += bar(3, 0xfebffffc, 2, True) + ecam32(2, 0x18, 0xc0000000)
    ops += ecam(slot1 | 1, 1, True) + ecam(slot1 | 2, 2, True) + ecam(slot1 | 0x100, 2, True)
    ops += ecam(slot1 | 0x1000, 2, True) + ecam(1 << 20, 2, True) + ecam(slot1, 3, True)
    s['bar-moves'] = no_ram + ops
    # The VIRTIO_PCI_CAP_PCI_CFG window (capability at 0x84): read num_queues, write status.
    cap = 0x84
    ops = ecam(slot1 | cap + 4, 0, False, 0) + ecam(slot1 | cap + 8, 2, False, 0x12) + ecam(slot1 | cap + 12, 2, False, 2)
    ops += ecam(slot1 | cap + 16, 2, True) + ecam(slot1 | cap + 8, 2, False, 0x14) + ecam(slot1 | cap + 12, 2, False, 1)
    ops += ecam(slot1 | cap + 16, 0, False, 1) + bar(0, 0x14, 0, True) + ecam(slot1 | cap + 12, 2, False, 3)
    ops += ecam(slot1 | cap + 16, 2, True) + ecam(slot1 | 0x98 + 2, 1, False, 0xc000) + bar(0, 0x4000, 2, True)
    s['pci-cfg-window-and-msix-control'] = no_ram + ops
    return s


def net_seeds():
    """fuzz_virtio_net.cpp: the receive queue in the compact layout at 0, the transmit queue in the
    same layout right after it."""
    s = {}
    # Feature flags of the input's first byte, and the operations.
    EIDX, IND, MRG, HOST, GUEST, MTU, DGRAM = 1, 2, 4, 8, 16, 32, 64
    NOTIFY_RX, NOTIFY_TX, READABLE, WRITABLE, SEND, READ_ALL, PATCH, RESET = range(8)
    BIG = 8  # SEND: frame length times 8

    def tx_base(rx_size):
        _, _, used = compact(rx_size)
        return (used + 6 + 8 * rx_size + 15) & ~15

    def tx_queue(ram, rx_size, size, chains):
        base = tx_base(rx_size)
        d, a, _ = compact(size)
        for head, descs in chains:
            for i, (addr, length, flags, nxt) in enumerate(descs):
                ram.put(base + d + 16 * (head + i), desc(addr, length, flags, nxt))
        for i, (head, _) in enumerate(chains):
            ram.put(base + a + 4 + 2 * i, struct.pack('<H', head))
        ram.put(base + a + 2, struct.pack('<H', len(chains)))

    def net_input(flags, rx_log2, tx_log2, ram, ops):
        return struct.pack('<BBBH', flags, rx_log2, tx_log2, len(ram.b)) + bytes(ram.b) + ops

    def send(length, header=bytes(12), big=False, seed=0):
        return struct.pack('<B', SEND | (BIG if big else 0)) + header + struct.pack('<HB', length, seed)

    def net_header(flags=0, gso=0, hdr_len=0, gso_size=0, start=0, offset=0):
        return struct.pack('<BBHHHHH', flags, gso, hdr_len, gso_size, start, offset, 0)

    def ops(*codes):
        return bytes(codes)

    frame = b'\xff' * 6 + b'\x02\x00\x00\x00\x00\x01' + b'\x88\xb5' + bytes(range(46))
    # Transmit a chain split inside the header, receive a 1400-byte frame across three
    # mergeable buffers.
    r = Ram()
    queue(r, 8, [(0, [(0x5000, 512, WRITE, 0)]), (1, [(0x5200, 512, WRITE, 0)]), (2, [(0x5400, 512, WRITE, 0)])])
    tx_queue(r, 8, 8, [(0, [(0x400, 5, NEXT, 1), (0x405, 7, NEXT, 2), (0x420, 60, 0, 0)])])
    r.put(0x400, net_header())
    r.put(0x420, frame)
    s['tx-rx-mergeable'] = net_input(EIDX | MRG | HOST | GUEST | MTU, 3, 3, r,
                                     ops(NOTIFY_TX, READ_ALL) + send(1400) + ops(NOTIFY_RX, READABLE))
    # No receive buffers: packets wait in the socket until the driver patches one in.
    r = Ram()
    queue(r, 4, [], avail_idx=0)
    _, a, _ = compact(4)
    patch = (struct.pack('<BHB', PATCH, 0, 16) + desc(0x6000, 2048, WRITE, 0)
             + struct.pack('<BHB', PATCH, a + 4, 2) + struct.pack('<H', 0)
             + struct.pack('<BHB', PATCH, a + 2, 2) + struct.pack('<H', 1))
    s['no-buffers-then-patch'] = net_input(MRG, 2, 2, r, send(60) + send(100) + ops(NOTIFY_RX, READABLE) + patch
                                           + ops(NOTIFY_RX, READABLE, NOTIFY_RX))
    # Without MRG_RXBUF: a packet too big for the chain, then one that fits; transmit chains out
    # of RAM, too short, segmented, with an offload not negotiated; a reset and the rings again.
    r = Ram()
    queue(r, 4, [(0, [(0x5000, 256, WRITE, 0)])])
    tx_queue(r, 4, 8, [(0, [(0x400, 12, NEXT, 1), (0xfff0, 64, 0, 0)]), (2, [(0x400, 8, 0, 0)]),
                       (3, [(0x400, 12, NEXT, 4), (0x500, 2000, 0, 0)]), (5, [(0x400, 72, 0, 0)])])
    r.put(0x400, net_header(flags=1, gso=1, hdr_len=54, gso_size=1448, start=34, offset=16))
    s['too-big-and-bad'] = net_input(HOST, 2, 3, r, send(1000) + send(60) + ops(NOTIFY_RX, NOTIFY_TX, READ_ALL, RESET,
                                                                                  NOTIFY_TX, NOTIFY_RX, READABLE))
    # A 64000-byte TSO packet into 2 KiB mergeable buffers (overlapping: 64 KiB of RAM holds
    # no more), first more than the guest posted, then a packet the 40 buffers hold.
    r = Ram()
    queue(r, 64, [(i, [(0x8000 + 0x200 * i, 0x800, WRITE, 0)]) for i in range(40)], avail_idx=16)
    _, a, _ = compact(64)
    tso = net_header(flags=1, gso=1, hdr_len=66, gso_size=1448, start=34, offset=16)
    more = struct.pack('<BHB', PATCH, a + 2, 2) + struct.pack('<H', 40)
    s['big-gso-spill'] = net_input(MRG | GUEST | EIDX | IND, 6, 1, r, send(8000, tso, big=True)
                                   + ops(NOTIFY_RX, READABLE) + more + ops(NOTIFY_RX, READABLE)
                                   + send(8000, tso, big=True) + ops(READABLE, RESET, NOTIFY_RX))
    # A datagram socket filled by 60000-byte segmented frames: EAGAIN, then the network reads
    # and the device resumes when writable.
    r = Ram()
    queue(r, 1, [], avail_idx=0)
    tx_queue(r, 1, 16, [(i, [(0x400, 12, NEXT, i + 1), (0x1000, 60000, 0, 0)]) for i in range(0, 16, 2)])
    r.put(0x400, net_header(flags=1, gso=1, hdr_len=54, gso_size=1448, start=34, offset=16))
    s['full-endpoint'] = net_input(DGRAM | EIDX | HOST, 0, 4, r, ops(NOTIFY_TX, NOTIFY_TX, READ_ALL, WRITABLE, READ_ALL,
                                                                     WRITABLE, READ_ALL))
    return s

VSOCK_HDR = struct.Struct('<QQIIIHHIII')
(V_NOTIFY_RX, V_NOTIFY_TX, V_NOTIFY_EV, V_EPOLL, V_CONNECT, V_WRITE, V_CLOSE, V_LISTEN, V_PATCH, V_TIMER,
 V_RESET, V_EVENT, V_READ_ALL, V_KICKS) = range(14)


def vsock_header(src_port, dst_port, op, length=0, flags=0, buf_alloc=65536, fwd_cnt=0, src_cid=3, dst_cid=2,
                 vtype=1):
    return VSOCK_HDR.pack(src_cid, dst_cid, src_port, dst_port, length, vtype, op, flags, buf_alloc, fwd_cnt)


def vsock_layouts(sizes):
    """The three queues' (desc, avail, used) in the target's layout."""
    out, base = [], 0
    for size in sizes:
        d, a, u = compact(size)
        out.append((base + d, base + a, base + u))
        base = (base + u + 6 + 8 * size + 15) & ~15
    return out


def vsock_input(flags, size_logs, ram, ops):
    return struct.pack('<BBBB', flags, *size_logs) + struct.pack('<H', len(ram.b)) + bytes(ram.b) + ops


def vsock_seeds():
    REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
    s = {}
    sizes = (16, 16, 4)
    rx, tx, ev = vsock_layouts(sizes)

    def rx_buffers(r, count, at=0x400, size=0x80):
        queue(r, 16, [(i, [(at + size * i, size, WRITE, 0)]) for i in range(count)], layout=rx)

    def tx_packets(r, packets, at=0x600):
        chains, addr = [], at
        for i, p in enumerate(packets):
            r.put(addr, p)
            chains.append((i, [(addr, len(p), 0, 0)]))
            addr += (len(p) + 15) & ~15
        queue(r, 16, chains, layout=tx)

    # The guest connects to host port 5000 (a listener there), sends, shuts down; the host answers.
    r = Ram()
    rx_buffers(r, 4)
    tx_packets(r, [vsock_header(1025, 5000, REQUEST), vsock_header(1025, 5000, RW, 5) + b'hello',
                   vsock_header(1025, 5000, CREDIT_REQUEST), vsock_header(1025, 5000, SHUTDOWN, flags=3)])
    queue(r, 4, [(0, [(0x3f0, 4, WRITE, 0)])], layout=ev)
    ops = bytes([V_LISTEN, 0, V_NOTIFY_RX, V_NOTIFY_TX, V_LISTEN, 0, V_WRITE, 0]) + struct.pack('<H', 300)
    ops += bytes([V_EPOLL, V_READ_ALL, V_EVENT, V_TIMER, V_CLOSE, 0, V_EPOLL, V_KICKS])
    s['guest-connects'] = vsock_input(0, (4, 4, 2), r, ops)

    # A host process connects to guest port 80; the guest's RESPONSE (to host port 2^30), data both
    # ways with a tiny guest buffer (credit requests), then the host's EOF.
    r = Ram()
    rx_buffers(r, 4)
    tx_packets(r, [vsock_header(80, 1 << 30, RESPONSE, buf_alloc=64),
                   vsock_header(80, 1 << 30, RW, 4, buf_alloc=64) + b'ping',
                   vsock_header(80, 1 << 30, CREDIT_UPDATE, buf_alloc=64, fwd_cnt=64)])
    # The tx ring is published only after the REQUEST went out: avail.idx patched later.
    r.put(tx[1] + 2, struct.pack('<H', 0))
    ops = bytes([V_CONNECT, 0]) + struct.pack('<H', 80) + bytes([V_EPOLL, V_NOTIFY_RX])
    ops += bytes([V_PATCH]) + struct.pack('<HB', tx[1] + 2, 2) + struct.pack('<H', 3)
    ops += bytes([V_NOTIFY_TX, V_WRITE, 0]) + struct.pack('<H', 200) + bytes([V_EPOLL, V_NOTIFY_TX, V_EPOLL])
    ops += bytes([V_CLOSE | 16, 0, V_EPOLL, V_READ_ALL, V_TIMER, V_TIMER, V_RESET, V_EPOLL])
    s['host-connects'] = vsock_input(1, (4, 4, 2), r, ops)

    # Hostile: short header, huge len, unknown op, wrong CIDs, seqpacket, bad CONNECT lines.
    r = Ram()
    rx_buffers(r, 4, size=44)
    tx_packets(r, [b'\x01' * 20, vsock_header(1, 2, RW, 0xffffffff), vsock_header(1, 2, 9),
                   vsock_header(1, 2, REQUEST, src_cid=7), vsock_header(1, 2, REQUEST, dst_cid=9),
                   vsock_header(1, 2, RW, 1, vtype=2) + b'x', vsock_header(1, 2, RST)])
    ops = bytes([V_NOTIFY_TX, V_NOTIFY_RX, V_CONNECT, 1, 0, 0, 9]) + b'HELLO 1\n\n'
    ops += bytes([V_CONNECT, 2]) + struct.pack('<H', 7) + bytes([V_CONNECT, 3, 0, 0, V_EPOLL, V_TIMER, V_TIMER])
    s['hostile'] = vsock_input(3, (4, 4, 2), r, ops)
    return s


def mmds_seeds():
    """fuzz_mmds.cpp: built segments through a whole exchange, raw frames, ARP, V2 tokens."""
    SYN, ACK, PSH, FIN, RST = 2, 16, 8, 1, 4

    def seg(port, flags, request=None, raw=b'', window=0xffff, options=0, seq=0, ack=0):
        choice = bytes([request]) if request is not None else bytes([128, len(raw)]) + raw
        return bytes([1, port, flags]) + struct.pack('<bbHB', seq, ack, window, options) + choice

    def read(n=32):
        return bytes([2, n])

    def exchange(port, request, config_ops=b''):
        return (seg(port, SYN, options=0x51) + read() + seg(port, ACK) + seg(port, PSH | ACK, request) +
                read() + seg(port, ACK) + read() + seg(port, FIN | ACK) + read() + seg(port, ACK) + read())

    s = {}
    s['v1-get'] = bytes([0]) + exchange(0, 0) + exchange(1, 1) + exchange(2, 4)
    s['v2-token'] = bytes([1]) + exchange(0, 3) + exchange(1, 2) + exchange(2, 3) + bytes([3, 0x10, 0x0e]) + \
        exchange(3, 3)
    s['imds-compat'] = bytes([2]) + exchange(0, 1) + exchange(1, 5) + exchange(2, 6)
    arp = bytes([4, 0, 2, 1, 4, 4, 2, 1, 4, 16, 2, 1])
    eth = b'\xff' * 6 + b'\x06\x00\x00\x00\x00\x02' + b'\x08\x00'
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0x20, 0, 64, 6, 0, 0]) + bytes([169, 254, 1, 2, 169, 254, 169, 254])
    tcp = struct.pack('>HHIIBBHHH', 40000, 80, 1, 0, 0x50, SYN, 1000, 0, 0)
    raw = eth + ip + tcp
    s['raw-frames'] = bytes([0]) + arp + bytes([0 | 8]) + struct.pack('<H', len(raw)) + raw + \
        bytes([0]) + struct.pack('<H', len(raw)) + raw + bytes([0 | 8 | 16]) + struct.pack('<H', 20) + raw[:20] + read()
    storm = b''.join(seg(i, ACK, ack=5) for i in range(20)) + read(64)
    conns = b''.join(seg(i, SYN) for i in range(20)) + read(64) + bytes([3, 0x40, 0]) + seg(19, SYN) + read()
    s['limits'] = bytes([0]) + storm + conns + seg(3, RST) + seg(4, RST, seq=5) + bytes([5, 1, 5, 0x80]) + read()
    return s


if __name__ == '__main__':
    write_corpus('fuzz_virtqueue', virtqueue_seeds())
    write_corpus('fuzz_virtio_blk', blk_seeds())
    write_corpus('fuzz_mmio_transport', mmio_seeds())
    write_corpus('fuzz_pci', pci_seeds())
    write_corpus('fuzz_virtio_net', net_seeds())
    write_corpus('fuzz_virtio_vsock', vsock_seeds())
    write_corpus('fuzz_mmds', mmds_seeds())
