"""The QEMU side of the trivial-workload comparison: `-M microvm` with a 5-byte -bios.

The BIOS's reset vector writes to the isa-debug-exit port, which makes QEMU exit at once: the
equivalent of the tiny kvmlet guest that writes the boot-timer port and resets.
"""

# isa-debug-exit makes QEMU exit with (value << 1) | 1; a value other than 0 keeps that
# status apart from QEMU's own failure status 1.
DEBUG_EXIT_PORT = 0xF4
DEBUG_EXIT_VALUE = 0x2A
EXIT_STATUS = (DEBUG_EXIT_VALUE << 1) | 1
BIOS_SIZE = 0x10000              # QEMU wants a -bios that is a multiple of 64 KiB
RESET_VECTOR = BIOS_SIZE - 16    # 0xFFFFFFF0 maps to the last 16 bytes of the image
# Real mode at the reset vector: mov al, VALUE; out PORT, al; then hlt forever.
CODE = bytes([0xB0, DEBUG_EXIT_VALUE, 0xE6, DEBUG_EXIT_PORT, 0xF4, 0xEB, 0xFD])


def write_bios(path):
    image = bytearray(b"\xf4" * BIOS_SIZE)
    image[RESET_VECTOR:RESET_VECTOR + len(CODE)] = CODE
    path.write_bytes(image)


def argv(qemu, bios, memory):
    """QEMU command line that runs the stub BIOS under KVM with no devices but the exit port."""
    return [str(qemu), "-M", "microvm", "-accel", "kvm", "-nodefaults", "-no-user-config",
            "-nographic", "-display", "none", "-serial", "none", "-monitor", "none",
            "-m", str(memory), "-bios", str(bios),
            "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"]


# tools/bench/density's QEMU peer: a -bios whose reset vector prints a line on COM1 and then idles
# in hlt (interrupts off since reset, so nothing wakes it), until QEMU is stopped; the first byte
# on QEMU's serial console is its first output, as the idle guest's is kvmlet's. Real mode:
# mov dx, COM1; mov al, 'u'; out dx, al; mov al, '\n'; out dx, al; hlt; jmp back to the hlt.
COM1 = 0x3F8
CONSOLE_LINE = b"u\n"
CONSOLE_CODE = bytes([0xBA, COM1 & 0xFF, COM1 >> 8, 0xB0, CONSOLE_LINE[0], 0xEE, 0xB0, CONSOLE_LINE[1], 0xEE,
                      0xF4, 0xEB, 0xFD])
assert len(CONSOLE_CODE) <= BIOS_SIZE - RESET_VECTOR


def write_console_bios(path):
    image = bytearray(b"\xf4" * BIOS_SIZE)
    image[RESET_VECTOR:RESET_VECTOR + len(CONSOLE_CODE)] = CONSOLE_CODE
    path.write_bytes(image)


def console_argv(qemu, bios, memory):
    """QEMU command line that runs the console stub BIOS under KVM with COM1 on stdout. Guest RAM
    is a memfd (memory-backend-memfd), so that smaps.py can tell it from QEMU's own memory."""
    return [str(qemu), "-M", "microvm,memory-backend=ram", "-accel", "kvm", "-nodefaults", "-no-user-config",
            "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-object", f"memory-backend-memfd,id=ram,size={memory}", "-m", str(memory), "-bios", str(bios)]
