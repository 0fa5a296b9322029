#!/usr/bin/env python3
"""The minimal Linux guest reads kvmlet's MMDS over its network interface, as flintlock's
cloud-init does (issue 15, scope 5): `firecracker --no-api --config-file F --metadata M` with a
network interface on a TAP in a network namespace this test creates, and mmds-config V2 on it.
The guest's init (kvmlet.run=) gives eth0 a link-local address, asks for a V2 token with a PUT
(busybox nc), reads a value with it (busybox wget), and tries a GET without a token, which MMDS V2
refuses (401). Nothing of it reaches the TAP's other end. Usage: mmds_linux.py KVMLET"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import api_client  # noqa: E402  (tests/api/api_client.py)

AMI = "ami-0kvmlet4mmds"


def image_dir():
    path = api_client.minimal_image_dir()
    if path is None:
        raise SystemExit("FAIL: the minimal guest image is not built (guest-images/build minimal; tools/test does)")
    return path


def guest_script():
    # Spaces as %20 (the kernel splits its command line at spaces); no double quotes (the kernel
    # treats them itself). printf turns \\r\\n into CRLF; tail -n 1 is the token, the body.
    put = ("printf 'PUT /latest/api/token HTTP/1.1\\r\\nX-metadata-token-ttl-seconds: 60\\r\\n"
           "Connection: close\\r\\n\\r\\n' | nc 169.254.169.254 80 | tail -n 1")
    script = ("ip addr add 169.254.0.2/16 dev eth0; ip link set eth0 up; "
              f"t=$({put}); echo token-length=${{#t}}; "
              "echo value=$(wget -q -O - --header=X-metadata-token:$t "
              "http://169.254.169.254/latest/meta-data/ami-id); "
              "wget -q -O - http://169.254.169.254/latest/meta-data/ami-id || echo no-token-refused")
    return script.replace("%", "%25").replace(" ", "%20")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    kvmlet_path = os.path.abspath(sys.argv[1])
    api_client.require_kvm()
    images = image_dir()
    with api_client.Scene("mmds-linux") as scene:
        ns = scene.netns("mmds")
        metadata = scene.path("metadata.json")
        with open(metadata, "w") as f:
            json.dump({"latest": {"meta-data": {"ami-id": AMI}}}, f)
        config = scene.path("vm.json")
        with open(config, "w") as f:
            json.dump({
                "boot-source": {"kernel_image_path": os.path.join(images, "vmlinux"),
                                "initrd_path": os.path.join(images, "initrd.cpio"),
                                "boot_args": "console=ttyS0 reboot=k panic=-1 kvmlet.run=" + guest_script()},
                "machine-config": {"vcpu_count": 1, "mem_size_mib": 256},
                "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0",
                                        "guest_mac": "06:00:ac:10:00:02"}],
                "mmds-config": {"version": "V2", "network_interfaces": ["eth0"]},
            }, f)
        vm = scene.kvmlet(["ip", "netns", "exec", ns, kvmlet_path, "firecracker", "--no-api",
                           "--config-file", config, "--metadata", metadata])
        status = vm.wait(600)
        out = vm.stdout()
        failures = []
        if status != 0:
            failures.append(f"kvmlet's status is {status}, not 0 (the guest powers off after its script)")
        if "token-length=64" not in out:
            failures.append("the guest got no 64-character V2 token from PUT /latest/api/token")
        if f"value={AMI}" not in out:
            failures.append(f"the guest did not read ami-id = {AMI} with its token")
        if "no-token-refused" not in out or out.count(AMI) != 1:
            failures.append("a GET without a token was not refused")
        if failures:
            vm.report()
            raise SystemExit("FAIL: " + "; ".join(failures))
        for line in out.splitlines():
            if line.startswith(("token-length=", "value=", "no-token-refused")):
                print(f"guest: {line}")
    print("PASS")


if __name__ == "__main__":
    main()
