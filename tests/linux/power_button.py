#!/usr/bin/env python3
"""The ACPI power button under Linux (issue 15, lifecycle): the minimal guest, configured over
kvmlet's Firecracker API, runs /bin/power-key (guest-images/initramfs/power_key.c), which waits
for KEY_POWER on the input device Linux's ACPI button driver makes for the DSDT's PNP0C0C. Then
PUT /actions SendCtrlAltDel: the minimal kernel has no keyboard driver (CONFIG_SERIO off), so only
the power button can reach it, through the GED's interrupt and its _EVT's Notify. Checks: the
action answers 204, the guest sees the press ("power-key: pressed"), its init powers off (ACPI S5),
and kvmlet exits with status 0 saying the guest powered off.
Usage: power_button.py KVMLET"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import api_client  # noqa: E402  (tests/api/api_client.py)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    kvmlet_path = sys.argv[1]
    api_client.require_kvm()
    images = api_client.minimal_image_dir()
    if images is None:
        raise SystemExit("FAIL: the minimal guest image is not built (guest-images/build minimal; tools/test does)")
    with tempfile.TemporaryDirectory(prefix="kvmlet-power-button.") as tmp:
        sock = os.path.join(tmp, "api.sock")
        with api_client.Kvmlet([kvmlet_path, "firecracker", "--api-sock", sock, "--level", "Info"], tmp) as vm:
            run(vm, sock, images)
    print("PASS")


def call(sock, method, path, body):
    r = api_client.request(sock, method, path, body)
    if r.status != 204:
        raise SystemExit(f"FAIL: {method} {path}: {r}")


def run(vm, sock, images):
    if vm.wait_for_socket(sock) is None:
        raise SystemExit("FAIL: the API socket never answered")
    call(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256})
    call(sock, "PUT", "/boot-source", {"kernel_image_path": os.path.join(images, "vmlinux"),
                                       "initrd_path": os.path.join(images, "initrd.cpio"),
                                       "boot_args": "console=ttyS0 panic=-1 kvmlet.run=power-key"})
    call(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    if not vm.wait_for_output("power-key: waiting on /dev/input/event", timeout=400):
        raise SystemExit("FAIL: the guest never found its power button (no 'power-key: waiting on')")
    if "power-key: pressed" in vm.stdout():
        raise SystemExit("FAIL: the guest saw a power-button press before any was sent")

    call(sock, "PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    if not vm.wait_for_output("power-key: pressed", timeout=60):
        raise SystemExit("FAIL: the guest never saw the power button pressed")
    status = vm.wait(120)
    if status != 0:
        raise SystemExit(f"FAIL: kvmlet did not exit with status 0 after the guest's power-off (status {status})")
    out, err = vm.stdout(), vm.stderr()
    for line in ("kvmlet-init: run exit=0", "reboot: Power down"):
        if line not in out:
            raise SystemExit(f"FAIL: no '{line}' on the console")
    if "guest powered off" not in err:
        raise SystemExit("FAIL: kvmlet did not say the guest powered off")
    print("SendCtrlAltDel pressed the ACPI power button; the guest saw KEY_POWER and powered off")


if __name__ == "__main__":
    main()
