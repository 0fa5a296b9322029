#!/usr/bin/env python3
"""The TAP's host side for the virtio_net tiny guest (virtio_net.sh runs it inside the test's
network namespace, before kvmlet):

    virtio_net.py --iface t0 --mac GUEST_MAC --serial GUEST_STDOUT --ready FILE [--timeout S]

Binds an AF_PACKET socket for EtherType 0x88b5 to the interface, then creates FILE (the runner
starts kvmlet once it exists). Waits for the guest's frame and checks it byte for byte: to the
broadcast address, from GUEST_MAC, type 0x88b5, the text and pattern virtio_net.c sends. Then
waits until the guest's serial output (the file kvmlet's stdout goes to) says "ready for rx", and
sends the guest a frame: to GUEST_MAC from the interface's own address, type 0x88b5, a text, its
NUL and a pattern (virtio_net.c checks them). Prints "peer: ..." lines; exits 0 when all went
as expected, 1 otherwise."""
import argparse
import pathlib
import socket
import sys
import time

ETH_TYPE_TEST = 0x88B5  # IEEE 802 Local Experimental EtherType 1
PACKET_OUTGOING = 4  # linux/if_packet.h: a frame this host sent, looped back to the socket
TX_TEXT = b"kvmlet tiny guest says hello over virtio-net"
RX_TEXT = b"kvmlet host says hello to the tiny guest"


def mac_bytes(text):
    return bytes(int(part, 16) for part in text.split(":"))


def expected_guest_frame(mac):
    pattern = bytes((7 * i + 3) & 0xFF for i in range(200))
    return b"\xff" * 6 + mac + ETH_TYPE_TEST.to_bytes(2, "big") + TX_TEXT + b"\0" + pattern


def frame_for_guest(mac, own_mac):
    pattern = bytes((11 * i + 5) & 0xFF for i in range(100))
    return mac + own_mac + ETH_TYPE_TEST.to_bytes(2, "big") + RX_TEXT + b"\0" + pattern


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def receive_guest_frame(sock, deadline):
    """The first frame of our EtherType that the interface received (not one this host sent)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data, address = sock.recvfrom(65536)
        except socket.timeout:
            return None
        if address[2] != PACKET_OUTGOING:
            return data


def wait_for_line(path, text, deadline):
    while time.monotonic() < deadline:
        try:
            if text in path.read_bytes():
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iface", required=True)
    parser.add_argument("--mac", required=True)
    parser.add_argument("--serial", required=True, type=pathlib.Path)
    parser.add_argument("--ready", required=True, type=pathlib.Path)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    guest_mac = mac_bytes(args.mac)
    own_mac = mac_bytes(pathlib.Path(f"/sys/class/net/{args.iface}/address").read_text().strip())

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_TYPE_TEST))
    sock.bind((args.iface, ETH_TYPE_TEST))
    args.ready.touch()
    deadline = time.monotonic() + args.timeout

    frame = receive_guest_frame(sock, deadline)
    if frame is None:
        print(f"peer: FAIL no frame of type 0x88b5 from the guest on {args.iface} within {args.timeout:.0f} s")
        return 1
    want = expected_guest_frame(guest_mac)
    if frame != want:
        at = first_difference(frame, want)
        print(f"peer: FAIL the guest's frame differs at byte {at}: {len(frame)} bytes, expected {len(want)}")
        print(f"peer: got      {frame.hex()}")
        print(f"peer: expected {want.hex()}")
        return 1
    print(f"peer: received the guest's {len(frame)}-byte frame from {args.mac}, every byte as expected")

    if not wait_for_line(args.serial, b"ready for rx", deadline):
        print("peer: FAIL the guest never printed 'ready for rx'")
        return 1
    reply = frame_for_guest(guest_mac, own_mac)
    sent = sock.send(reply)
    if sent != len(reply):
        print(f"peer: FAIL sent {sent} of {len(reply)} bytes")
        return 1
    print(f"peer: sent the guest a {len(reply)}-byte frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
