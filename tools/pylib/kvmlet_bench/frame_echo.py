"""Sends Ethernet frames of one EtherType that arrive on one interface back to their sender: the
peer of tools/tenants' net-rtt victim, run in the tool's own network namespace on the victim's TAP.

Usage: python3 frame_echo.py IFACE ETHERTYPE   (prints "ready" once listening; runs until killed)
"""

import socket
import sys

PACKET_OUTGOING = 4          # linux/if_packet.h: a frame this host sent (our own echoes)
SOURCE = bytes.fromhex("02000000fffe")   # a locally administered address of the echo's own


def main():
    iface, ethertype = sys.argv[1], int(sys.argv[2], 0)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    s.bind((iface, ethertype))
    print("ready", flush=True)
    want = ethertype.to_bytes(2, "big")
    while True:
        frame, address = s.recvfrom(2048)
        if address[2] == PACKET_OUTGOING or len(frame) < 14 or frame[12:14] != want:
            continue
        s.send(frame[6:12] + SOURCE + frame[12:])


if __name__ == "__main__":
    main()
