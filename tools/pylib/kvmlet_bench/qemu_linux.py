"""QEMU `-M microvm` booting a Linux kernel under KVM, as guest-images/README.md documents it.

On a kvm-pvm host (../shared/HOST.md) the kernel needs the command-line flags kvmlet adds by
itself in its host-compat mode (vmm/vcpu/host_compat.cpp), with `kvmlet.pvm_quirks=full` in
place of `kvmlet.pvm_quirks`: QEMU cannot recover the kernel's `int3` self-test or its `fwait`,
so the patched minimal kernel skips them. `-cpu host,-cx16,-arch-capabilities`: SLUB's
`cmpxchg16b` is not emulated there, and QEMU cannot set that MSR.
"""

import shutil
from pathlib import Path

PVM_CMDLINE = "noxsave nofsgsbase clearcpuid=popcnt,smap,erms,fsrm kvmlet.pvm_quirks=full"
PVM_CPU = "host,-cx16,-arch-capabilities"


def find(name):
    """(path, None) for the QEMU binary `name` (a path or a name on PATH), or (None, why not)."""
    found = shutil.which(str(name))
    if found:
        return Path(found), None
    return None, f"{name} not found (Debian package qemu-system-x86: tools/setup)"


def cmdline(base, pvm):
    """The kernel command line QEMU passes: base, plus the host-compat flags on a kvm-pvm host."""
    return f"{base} {PVM_CMDLINE}" if pvm else base


def argv(qemu, kernel, cmdline, cpus, memory, initrd=None, disks=(), rng=False, pvm=True, acpi=True,
         console="serial"):
    """Command line: microvm under KVM, its console on stdout (the serial port, or with console
    "virtio" a virtconsole on a virtio-serial-device, the kernel's hvc0), no other device than the
    virtio-mmio ones asked for (one virtio-blk-device per raw disk image, virtio-rng-device)."""
    if console not in ("serial", "virtio"):
        raise ValueError(f"console: serial or virtio, not {console!r}")
    machine = "microvm,x-option-roms=off,rtc=off" + (",acpi=on" if acpi else ",acpi=off")
    out = [str(qemu), "-M", machine, "-accel", "kvm", "-cpu", PVM_CPU if pvm else "host",
           "-smp", str(cpus), "-m", str(memory), "-nodefaults", "-no-user-config", "-nographic",
           *(["-serial", "stdio"] if console == "serial" else
             ["-chardev", "stdio,id=console0", "-device", "virtio-serial-device",
              "-device", "virtconsole,chardev=console0"]),
           "-kernel", str(kernel)]
    if initrd:
        out += ["-initrd", str(initrd)]
    out += ["-append", cmdline]
    for i, disk in enumerate(disks):
        out += ["-drive", f"id=disk{i},file={disk},format=raw,if=none", "-device", f"virtio-blk-device,drive=disk{i}"]
    if rng:
        out += ["-device", "virtio-rng-device"]
    return out
