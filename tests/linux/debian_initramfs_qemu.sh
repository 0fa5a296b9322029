#!/usr/bin/env bash
# The Debian images' initramfs with its user space running: Debian's unmodified kernel
# (guest-images/build debian or debian-generic) and our initrd.cpio under QEMU's TCG, with a
# virtio-blk root disk, a second virtio disk and a virtio-net NIC, all on the PCI bus:
#
#   debian_initramfs_qemu.sh [--image debian|debian-generic] [--timeout SECONDS] [--keep DIR]
#
# Why QEMU TCG and not kvmlet: on our development hosts the host's KVM emulates guest kernel
# code, and a user-mode SYSCALL needs a patch the Debian kernel does not carry
# (../shared/HOST.md), so its user space never runs under kvmlet and kvmlet's own Debian tests
# stop in the kernel log. TCG emulates everything and runs user space fine. This test checks
# the image, not the VMM: on a host where guest user space runs, the same initramfs must load
# virtio_pci, virtio_blk and virtio_net (/etc/modules.order), find /dev/vda and eth0, mount
# the root disk and hand over to it (guest-images/initramfs/init, root=).
#
# Builds an ext4 root file system with mkfs.ext4 -d: static busybox with a link per applet, a
# marker file with a random token, and an /sbin/init (written below) that prints
# `debian-root:` lines (it is PID 1, the mounts init moved over, the token, the root mount,
# the loaded modules, eth0) and powers off. The kernel command line is
# `console=ttyS0 root=/dev/vda rw panic=-1`: no kvmlet host-compat flags, QEMU emulates the
# whole CPU. The script checks the console for init's `kvmlet-init:` markers (no failed
# insmod, `net eth0`, `disks vda vdb`, `root /dev/vda mounted`), then the root's lines, and
# that QEMU exited 0 (the guest's ACPI power-off) within --timeout.
#
# Network safety: QEMU runs under `unshare --net`, in a fresh network namespace with only a
# loopback device that is down, and the NIC's back end is a hub port with nothing else on the
# hub, so a frame the guest sent would go nowhere; the guest sends none anyway.
#
# Exits 77 (CTest: skipped) without the built image, or without qemu-system-x86_64,
# mkfs.ext4, busybox-static or a working `unshare --net`. --keep DIR keeps the disk images
# and the output there. About 10 s on an idle host.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"
root=$(cd "$here/../.." && pwd)
SKIP=77
readonly cmdline="console=ttyS0 root=/dev/vda rw panic=-1"

die() { echo "debian_initramfs_qemu.sh: $*" >&2; exit 2; }
skip() { echo "SKIP: $*"; exit $SKIP; }

image=debian timeout_s=300 keep=''
while (($#)); do
    case $1 in
        --image) image=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        *) die "unknown argument '$1' (see the comment at the top of this script)" ;;
    esac
done
[[ $image == debian || $image == debian-generic ]] || die "--image $image: debian or debian-generic"

if ! dir=$("$root/guest-images/build" --print "$image" 2>/dev/null) ||
    [[ ! -f $dir/vmlinuz || ! -f $dir/initrd.cpio ]]; then
    skip "guest image '$image' is not built: run guest-images/build $image (tools/test does)"
fi
PATH=$PATH:/usr/sbin:/sbin
qemu='qemu-system-x86_64'
command -v "$qemu" >/dev/null || skip "$qemu not found: install qemu-system-x86"
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 not found: install e2fsprogs (tools/setup does)"
command -v unshare >/dev/null || skip "unshare not found: install util-linux"
unshare --net true 2>/dev/null || skip "unshare --net fails here (needs CAP_SYS_ADMIN)"
busybox=/bin/busybox
[[ -x $busybox ]] || skip "$busybox not found: install busybox-static (guest-images/build does)"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-debian-qemu.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$work"' EXIT
rootimg=$work/root.ext4 dataimg=$work/data.img out=$work/stdout err=$work/stderr

# Root file system: busybox with a link per applet (but `init`: /sbin/init is ours).
tree=$work/root-tree
stage_busybox_root "$tree" "$busybox"
token=kvmlet-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$token" >"$tree/marker"
# Builtins only, but for mount (if init left /proc or /sys behind) and poweroff. The mounts
# are listed before anything is mounted here: they are the ones init moved over.
cat >"$tree/sbin/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin
dev='' proc='' sys=''
if [ -r /proc/mounts ]; then
    while read -r _ mnt _; do
        case $mnt in
            /dev) dev=' /dev' ;;
            /proc) proc=' /proc' ;;
            /sys) sys=' /sys' ;;
        esac
    done </proc/mounts
fi
inherited=$dev$proc$sys
echo "debian-root: up"
echo "debian-root: pid $$"
echo "debian-root: inherited mounts:${inherited:- none}"
[ -r /proc/mounts ] || mount -t proc proc /proc
[ -d /sys/class ] || mount -t sysfs sysfs /sys
read -r marker </marker
echo "debian-root: vda=$marker"
root_mount=''
while read -r dev mnt fs opts _; do
    [ "$mnt" = / ] && root_mount="$dev $fs ${opts%%,*}"
done </proc/mounts
echo "debian-root: root $root_mount"
modules=''
while read -r name _; do
    case $name in virtio_pci | virtio_blk | virtio_net | ext4) modules="$modules $name" ;; esac
done </proc/modules
echo "debian-root: modules$modules"
if [ -e /sys/class/net/eth0 ]; then
    echo "debian-root: eth0 present"
else
    echo "debian-root: eth0 missing"
fi
echo "debian-root: powering off"
poweroff -f
while :; do sleep 60; done
EOF
chmod 0755 "$tree/sbin/init"
mkfs.ext4 -q -F -t ext4 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 -L debian-root \
    -d "$tree" "$rootimg" 16M >/dev/null || die "mkfs.ext4 of the root file system failed"
# The second disk only has to show up as vdb: 1 MiB of zeros, read-only.
truncate -s 1M "$dataimg"

# PCI slots fixed so that the root disk is probed first and becomes vda; no option ROM (iPXE)
# for the NIC. -no-reboot: a panic (panic=-1 reboots) ends QEMU too, and the checks below tell
# it from a power-off.
cmd=(unshare --net -- "$qemu" -accel tcg -M q35 -smp 1 -m 512M -nodefaults -no-user-config
     -nographic -serial stdio -no-reboot
     -kernel "$dir/vmlinuz" -initrd "$dir/initrd.cpio" -append "$cmdline"
     -drive "file=$rootimg,format=raw,if=none,id=root"
     -device "virtio-blk-pci,drive=root,addr=0x4"
     -drive "file=$dataimg,format=raw,if=none,id=data,readonly=on"
     -device "virtio-blk-pci,drive=data,addr=0x5"
     -netdev "hubport,id=n0,hubid=0" -device "virtio-net-pci,netdev=n0,addr=0x3,romfile=")
start_ms=$(($(date +%s%N) / 1000000))
timeout --kill-after=5 "$timeout_s" "${cmd[@]}" </dev/null >"$out" 2>"$err"
status=$?
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
sed -i 's/\r$//' "$out"

checked_stdout=$out

check_status "$status" "$timeout_s"

# The initramfs: every module loaded, the devices found, the root disk mounted and handed over
# to (so init's own ending, `done`, never comes).
expect_line 'Run /init as init process'
expect_line '^kvmlet-init: started$'
reject_line '^kvmlet-init: insmod .* failed$'
expect_line '^kvmlet-init: cpus=1$'
expect_line '^kvmlet-init: net eth0$'
expect_line '^kvmlet-init: disks vda vdb$'
expect_line '^kvmlet-init: root /dev/vda mounted$'
reject_line '^kvmlet-init: root .*: '
reject_line '^kvmlet-init: done$'
# The root disk's init, as PID 1, with the mounts init moved and its drivers.
expect_line '^debian-root: up$'
expect_line '^debian-root: pid 1$'
expect_line '^debian-root: inherited mounts: /dev /proc /sys$'
expect_line "^debian-root: vda=$token\$"
expect_line '^debian-root: root /dev/vda ext4 rw$'
for module in virtio_pci virtio_blk virtio_net; do
    expect_line "^debian-root: modules.* $module( |\$)"
done
expect_line '^debian-root: eth0 present$'
expect_line '^debian-root: powering off$'
expect_line 'reboot: Power down'
for re in 'Kernel panic' 'BUG:|Oops' 'EXT4-fs error' 'I/O error'; do reject_line "$re"; done

if [[ -n $keep ]]; then
    mkdir -p "$keep" && cp "$rootimg" "$dataimg" "$out" "$err" "$keep/"
fi

printf 'command: %s\n' "${cmd[*]}"
printf 'QEMU TCG boot of %s (%s) to the root disk'"'"'s power-off took %d.%01d s (status %d)\n' \
    "$image" "${dir##*/}" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$status"
grep -E '^(kvmlet-init|debian-root): ' "$out"
if ((${#failures[@]} == 0)); then
    echo "PASS"
    exit 0
fi
report_failures "$out" "$err"
exit 1
