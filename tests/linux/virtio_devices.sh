#!/usr/bin/env bash
# kvmlet's virtio block, console and rng devices under the minimal Linux kernel, on one
# transport, in one boot (a boot costs a minute or more on hosts that emulate guest kernel code,
# ../shared/HOST.md):
#
#   virtio_devices.sh --vmm KVMLET [--transport pci|mmio] [--cpus N] [--image minimal]
#                     [--timeout SECONDS] [--keep DIR]
#
# The kernel finds the devices by itself: on the PCI bus, or (mmio) from the ACPI DSDT, with no
# virtio_mmio.device= on its command line. It powers off through ACPI at the end.
#
# Builds two ext4 images with mkfs.ext4 -d: a root file system (static busybox, rootfs/init as
# /sbin/init, 4 MiB of random bytes as /host-file.bin) and a small data disk. Boots
# `kvmlet run` with no initrd, root=/dev/vda rw, the data disk read-only, --console virtio with
# console=hvc0 only (so every kernel line on stdout came through virtio-console), and --rng.
# rootfs/init does the guest side and prints `kvmlet-rootfs:` lines; this script checks them,
# kvmlet's exit status and stderr, then the images from the host: the mount count went up, fsck
# finds the root file system clean, the file the guest wrote holds the expected bytes, and the
# read-only image is unchanged.
#
# Exits 77 (CTest: skipped) without a usable /dev/kvm, without the built image, or without
# e2fsprogs or busybox-static. --keep DIR keeps the images and the output there.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"
readonly file_bytes=$((4 * 1024 * 1024))
readonly cmdline="root=/dev/vda rw console=hvc0 reboot=k panic=-1"
readonly console_input="kvmlet-input-$RANDOM"

die() { echo "virtio_devices.sh: $*" >&2; exit 2; }

vmm='' image=minimal timeout_s=800 keep='' transport=pci cpus=1
while (($#)); do
    case $1 in
        --vmm) vmm=$2; shift 2 ;;
        --transport) transport=$2; shift 2 ;;
        --cpus) cpus=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        *) die "unknown argument '$1' (see the comment at the top of this script)" ;;
    esac
done
[[ -n $vmm ]] || die "--vmm is required"
[[ -x $vmm ]] || die "kvmlet binary '$vmm' is missing or not executable"

find_guest_image "$image" vmlinux
require_kvm
PATH=$PATH:/usr/sbin:/sbin
for tool in mkfs.ext4 dumpe2fs debugfs fsck.ext4; do
    command -v "$tool" >/dev/null || skip "$tool not found: install e2fsprogs (tools/setup does)"
done
busybox=/bin/busybox
[[ -x $busybox ]] || skip "$busybox not found: install busybox-static (guest-images/build does)"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-virtio.XXXXXX") || die "mktemp failed"
feeder=''
trap '[[ -n $feeder ]] && kill "$feeder" 2>/dev/null; rm -rf "$work"' EXIT
rootimg=$work/root.ext4 dataimg=$work/data.ext4 out=$work/stdout err=$work/stderr

sha256() { sha256sum | cut -d' ' -f1; }

# Root file system: busybox with a link per applet (but `init`: /sbin/init is ours). Inode
# tables and journal are initialised here, not by the guest kernel in the background.
tree=$work/root-tree
stage_busybox_root "$tree" "$busybox"
install -m 0755 "$here/rootfs/init" "$tree/sbin/init"
head -c "$file_bytes" /dev/urandom >"$tree/host-file.bin"
file_sum=$(sha256 <"$tree/host-file.bin")
mkfs.ext4 -q -F -t ext4 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 -L kvmlet-root \
    -d "$tree" "$rootimg" 32M || die "mkfs.ext4 of the root file system failed"

data=$work/data-tree
mkdir -p "$data"
echo "kvmlet read-only disk" >"$data/hello.txt"
mkfs.ext4 -q -F -t ext4 -b 4096 -O ^has_journal -E lazy_itable_init=0 -L kvmlet-data \
    -d "$data" "$dataimg" 8M || die "mkfs.ext4 of the data disk failed"
data_sum=$(sha256 <"$dataimg")

mount_count() { dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Mount count: *//p'; }
mounts_before=$(mount_count "$rootimg")

# One vCPU by default: the test is about devices, and a second vCPU competing for a loaded
# host's cores makes every emulated spin-wait longer.
cmd=("$vmm" run --kernel "$dir/vmlinux" --cpus "$cpus" --memory 256M --transport "$transport"
     --disk "$rootimg" --disk "$dataimg,readonly,id=data" --console virtio --rng
     --cmdline "$cmdline")
start_ms=$(($(date +%s%N) / 1000000))
# stdin: a FIFO; once the guest's init says it reads its console, one line for it (kvmlet's
# console input to virtio-console, hvc0).
mkfifo "$work/stdin" || die "mkfifo failed"
(
    exec 4>"$work/stdin"
    for ((i = 0; i < timeout_s * 10; i++)); do
        grep -q 'kvmlet-rootfs: reading console input' "$out" 2>/dev/null && break
        sleep 0.1
    done
    echo "$console_input" >&4
) &
feeder=$!
timeout --kill-after=5 "$timeout_s" "${cmd[@]}" <"$work/stdin" >"$out" 2>"$err"
status=$?
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
# The console is a tty in the guest: lines end in \r\n. rootfs/init ends its lines with the
# guest's uptime, "[12.34 s]"; the checks match a copy without it.
sed -i 's/\r$//' "$out"
lines=$work/stdout.lines
sed -E 's/^(kvmlet-rootfs: .*) \[[0-9.]+ s\]$/\1/' "$out" >"$lines"

checked_stdout=$lines

check_status "$status" "$timeout_s"

# The kernel log on hvc0; the root file system from vda mounted read-write.
expect_line 'VFS: Mounted root \(ext4 filesystem\) on device'
expect_line '^kvmlet-rootfs: started$'
expect_line '^kvmlet-rootfs: root mount: \S+ / ext4 rw[, ]'
expect_line '^kvmlet-rootfs: console: hvc0$'
expect_line "^kvmlet-rootfs: cpus: $cpus\$"
expect_line "^kvmlet-rootfs: console input: $console_input\$"
expect_line '^kvmlet-rootfs: cmdline: '
if grep -qP '^kvmlet-rootfs: cmdline: .*virtio_mmio' "$lines"; then
    fail "the kernel command line names virtio-mmio devices: ACPI should"
fi
case $transport in
    pci) device_re='/sys/devices/pci0000:00/0000:00:[0-9a-f]{2}\.0/virtio\d+' ;;
    mmio) device_re='/sys/devices/platform/LNRO0005:\d+/virtio\d+' ;;
    *) die "--transport $transport: pci or mmio" ;;
esac
expect_line "^kvmlet-rootfs: vda device: $device_re\$"
expect_line "^kvmlet-rootfs: vdb device: $device_re\$"
# File data both ways.
expect_line "^kvmlet-rootfs: host-file sha256 $file_sum\$"
expect_line '^kvmlet-rootfs: guest-file written 0 synced 0$'
# The read-only disk: flagged read-only, readable, and every write refused.
expect_line '^kvmlet-rootfs: vdb ro=1$'
expect_line '^kvmlet-rootfs: vdb mount: \S+ /mnt ext4 ro[, ]'
expect_line '^kvmlet-rootfs: vdb file: kvmlet read-only disk$'
expect_line '^kvmlet-rootfs: vdb file write: [1-9]\d* .*Read-only file system'
expect_line '^kvmlet-rootfs: vdb raw write: [1-9]\d* .*Operation not permitted'
# virtio-rng.
expect_line '^kvmlet-rootfs: rng_current: virtio_rng\.0$'
expect_line '^kvmlet-rootfs: hwrng: [0-9a-f]{64}$'
if grep -qP '^kvmlet-rootfs: hwrng: (00)+$' "$lines"; then fail "/dev/hwrng gave only zero bytes"; fi
expect_line '^kvmlet-rootfs: remount ro: 0$'
expect_line '^kvmlet-rootfs: done$'
for re in 'Kernel panic' 'EXT4-fs error' 'I/O error' 'BUG:|Oops'; do
    if grep -qP -- "$re" "$out"; then fail "stdout matches /$re/, which it must not"; fi
done
if grep -qiP 'error' "$err"; then fail "stderr has an error line"; fi
grep -q 'guest powered off' "$err" || fail "kvmlet did not report an ACPI power-off on stderr"

# The images, from the host.
mounts_after=$(mount_count "$rootimg")
if [[ -z $mounts_before || -z $mounts_after ]] || ((mounts_after <= mounts_before)); then
    fail "mount count of the root image did not go up: '$mounts_before' before, '$mounts_after' after"
fi
if ! fsck.ext4 -fn "$rootimg" >"$work/fsck.log" 2>&1; then
    fail "fsck.ext4 -fn finds the root image unclean: $(tr '\n' ' ' <"$work/fsck.log")"
fi
read_back=$(debugfs -R "cat /guest-file.bin" "$rootimg" 2>/dev/null | sha256)
if [[ $read_back != "$file_sum" ]]; then
    fail "/guest-file.bin read from the image on the host has sha256 $read_back, expected $file_sum"
fi
if [[ $(sha256 <"$dataimg") != "$data_sum" ]]; then fail "the read-only data image changed"; fi

if [[ -n $keep ]]; then
    mkdir -p "$keep" && cp "$rootimg" "$dataimg" "$out" "$err" "$keep/"
fi

printf 'command: %s\n' "${cmd[*]}"
printf 'boot with virtio disks, console and rng took %d.%01d s (status %d); mount count %s -> %s\n' \
    $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$status" "$mounts_before" "$mounts_after"
grep '^kvmlet-rootfs: ' "$out"
if ((${#failures[@]} == 0)); then
    echo "PASS"
    exit 0
fi
report_failures "$out" "$err"
exit 1
