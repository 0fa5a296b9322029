"""What the tools need to know about KVM, the tiny guests' ELF images and the Linux guest images."""

import os
import struct
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PAGE = 4096
# Guest RAM kvmlet itself writes below the kernel: GDT, zero page, stack, page tables
# ([0, firmware_end) in firmware/x86_64/layout.hpp). Counted whole, as an upper bound.
FIRMWARE_AREA = 0x10000


def kvm_unusable():
    """Why /dev/kvm cannot be used, or None."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        return None
    except OSError as e:
        return f"/dev/kvm: {e.strerror}"


def pvm_host():
    """Whether /dev/kvm is kvm-pvm's (../shared/HOST.md), as kvmlet's --host-compat auto decides."""
    return os.path.isdir("/sys/module/kvm_pvm")


def host_kind():
    """Which KVM the tools measure on: "emulated KVM host" inside tools/kvm-host's emulated host
    (it sets KVMLET_KVM_HOST_ROUTE=emulated), "kvm-pvm" where /dev/kvm is kvm_pvm's, otherwise
    "native KVM"."""
    if os.environ.get("KVMLET_KVM_HOST_ROUTE") == "emulated":
        return "emulated KVM host"
    return "kvm-pvm" if pvm_host() else "native KVM"


HOST_KIND_NOTES = {
    "emulated KVM host": "tools/kvm-host --emulated: QEMU TCG emulating an AMD CPU with SVM, Debian's "
                         "kvm-amd inside; every peer and the host kernel run translated, so compare "
                         "ratios between peers, not absolute times",
    "kvm-pvm": "nested KVM through kvm_pvm (../shared/HOST.md): guest CPL0 code is instruction-emulated",
    "native KVM": "the host's own KVM",
}


def host_line():
    """One line for a report: the host kind and what it means for the figures."""
    kind = host_kind()
    return f"{kind} ({HOST_KIND_NOTES[kind]})"


def linux_image_dir(name):
    """The directory of guest image `name` (minimal, debian) from `guest-images/build --print`;
    raises LookupError with the command that builds it when it is not built."""
    r = subprocess.run([str(ROOT / "guest-images/build"), "--print", name], capture_output=True, text=True)
    path = Path(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else None
    if path is None or not path.is_dir():
        raise LookupError(f"guest image {name!r} is not built: run guest-images/build {name}")
    return path


def elf_load_bytes(path):
    """Bytes of guest memory the ELF's PT_LOAD segments span, in whole pages. Raises ValueError
    (or struct.error) when path is not an ELF file."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF file")
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 54)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 28)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 42)
    pages = set()
    for i in range(phnum):
        off = phoff + i * phentsize
        if is64:
            p_type, _, _, _, paddr, _, memsz = struct.unpack_from(endian + "IIQQQQQ", data, off)
        else:
            p_type, _, _, paddr, _, memsz = struct.unpack_from(endian + "IIIIII", data, off)
        if p_type == 1 and memsz:  # PT_LOAD
            pages.update(range(paddr // PAGE, (paddr + memsz + PAGE - 1) // PAGE))
    return len(pages) * PAGE


def guest_pages_touched_upper_bound(path):
    """Guest RAM a tiny guest can have touched: its ELF's pages plus kvmlet's firmware area."""
    return elf_load_bytes(path) + FIRMWARE_AREA


def is_static_elf(path):
    """True for an ELF executable without a PT_INTERP (dynamic loader) program header."""
    try:
        data = Path(path).read_bytes()[:65536]
        if data[:4] != b"\x7fELF" or data[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))
    except (OSError, struct.error):
        return False
