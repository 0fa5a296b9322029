#!/usr/bin/env bash
# kvmlet's virtio-mmio block, console and rng devices under the minimal Linux kernel, in one
# boot (each costs ~40-60 s on hosts that emulate guest kernel code, ../shared/HOST.md):
#
#   virtio_devices.sh --vmm KVMLET --mmap-writer HELPER [--image minimal] [--timeout SECONDS]
#                     [--keep DIR]
#
# Builds two ext4 images with mkfs.ext4 -d: a root file system (static busybox, rootfs/init as
# /sbin/init, HELPER as /bin/kvmlet-mmap-write, 4 MiB of random bytes as /host-file.bin) and a
# small data disk. Boots `kvmlet run` with no initrd, root=/dev/vda rw, the data disk
# read-only, --console virtio with console=hvc0 (so every kernel line on stdout came through
# virtio-console), and --rng. rootfs/init does the guest side and prints `kvmlet-rootfs:` lines;
# this script checks them, kvmlet's exit status and stderr, then the images from the host:
# the mount count went up, fsck finds the root file system clean, the file the guest wrote has
# the expected checksum, and the read-only image is unchanged.
#
# Exits 77 (CTest: skipped) without a usable /dev/kvm, without the built image, or without
# e2fsprogs or busybox-static. --keep DIR keeps the images and logs there for a look.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
SKIP=77
readonly file_bytes=$((4 * 1024 * 1024))
readonly cmdline="root=/dev/vda rw console=hvc0 reboot=k panic=-1"

die() { echo "virtio_devices.sh: $*" >&2; exit 2; }
skip() { echo "SKIP: $*"; exit $SKIP; }

vmm='' writer='' image=minimal timeout_s=450 keep=''
while (($#)); do
    case $1 in
        --vmm) vmm=$2; shift 2 ;;
        --mmap-writer) writer=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        *) die "unknown argument '$1' (see the comment at the top of this script)" ;;
    esac
done
[[ -n $vmm && -n $writer ]] || die "--vmm and --mmap-writer are required"
[[ -x $vmm ]] || die "kvmlet binary '$vmm' is missing or not executable"
[[ -x $writer ]] || die "helper '$writer' is missing or not executable"

if ! dir=$("$root/guest-images/build" --print "$image" 2>/dev/null) || [[ ! -f $dir/vmlinux ]]; then
    skip "guest image '$image' is not built: run guest-images/build $image (tools/test does)"
fi
[[ -c /dev/kvm ]] || skip "/dev/kvm does not exist"
{ exec 3<>/dev/kvm; } 2>/dev/null || skip "cannot open /dev/kvm read-write"
exec 3>&-
PATH=$PATH:/usr/sbin:/sbin
for tool in mkfs.ext4 dumpe2fs debugfs fsck.ext4; do
    command -v "$tool" >/dev/null || skip "$tool not found: install e2fsprogs (tools/setup does)"
done
busybox=/bin/busybox
[[ -x $busybox ]] || skip "$busybox not found: install busybox-static (guest-images/build does)"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-virtio.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$work"' EXIT
rootimg=$work/root.ext4 dataimg=$work/data.ext4 out=$work/stdout err=$work/stderr

sha256() { sha256sum | cut -d' ' -f1; }
guest_pattern() { seq 1 615061 | head -c "$file_bytes"; }  # rootfs/init writes the same

# Root file system: busybox with a link per applet (but `init`: /sbin/init is ours).
tree=$work/root-tree
mkdir -p "$tree"/{bin,sbin,dev,proc,sys,mnt,tmp}
cp "$busybox" "$tree/bin/busybox"
for applet in $("$busybox" --list); do
    [[ $applet == busybox || $applet == init || $applet == linuxrc ]] ||
        ln -s busybox "$tree/bin/$applet"
done
install -m 0755 "$here/rootfs/init" "$tree/sbin/init"
install -m 0755 "$writer" "$tree/bin/kvmlet-mmap-write"
head -c "$file_bytes" /dev/urandom >"$tree/host-file.bin"
host_sum=$(sha256 <"$tree/host-file.bin")
guest_sum=$(guest_pattern | sha256)
# Inode tables and journal initialised here, not by the guest kernel in the background.
mkfs.ext4 -q -F -t ext4 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 -L kvmlet-root \
    -d "$tree" "$rootimg" 32M ||
    die "mkfs.ext4 of the root file system failed"

data=$work/data-tree
mkdir -p "$data"
echo "kvmlet read-only disk" >"$data/hello.txt"
mkfs.ext4 -q -F -t ext4 -b 4096 -O ^has_journal -E lazy_itable_init=0 -L kvmlet-data \
    -d "$data" "$dataimg" 8M ||
    die "mkfs.ext4 of the data disk failed"
data_sum=$(sha256 <"$dataimg")

mount_count() { dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Mount count: *//p'; }
mounts_before=$(mount_count "$rootimg")

cmd=("$vmm" run --kernel "$dir/vmlinux" --cpus 2 --memory 256M
     --disk "$rootimg" --disk "$dataimg,readonly,id=data" --console virtio --rng
     --cmdline "$cmdline")
start_ms=$(($(date +%s%N) / 1000000))
timeout --kill-after=5 "$timeout_s" "${cmd[@]}" </dev/null >"$out" 2>"$err"
status=$?
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
# The console is a tty in the guest: lines end in \r\n. rootfs/init ends its lines with the
# guest's uptime, "[12.34 s]"; the checks match a copy without it.
sed -i 's/\r$//' "$out"
lines=$work/stdout.lines
sed -E 's/^(kvmlet-rootfs: .*) \[[0-9.]+ s\]$/\1/' "$out" >"$lines"

failures=()
fail() { failures+=("$*"); }
expect_line() {  # Perl regex that some line of stdout must match
    grep -qP -- "$1" "$lines" || fail "stdout has no line matching /$1/"
}

if ((status == 124 || status == 137)); then
    fail "timed out after ${timeout_s}s (status $status)"
elif ((status != 0)); then
    fail "exit status $status, expected 0"
fi

# Kernel log on hvc0, root file system from vda mounted read-write.
expect_line 'VFS: Mounted root \(ext4 filesystem\) on device'
expect_line '^kvmlet-rootfs: started$'
expect_line '^kvmlet-rootfs: root mount: \S+ / ext4 rw[, ]'
expect_line '^kvmlet-rootfs: console: hvc0$'
# Both directions of file data.
expect_line "^kvmlet-rootfs: host-file sha256 $host_sum\$"
expect_line '^kvmlet-rootfs: guest-file written 0 synced 0$'
# The read-only disk: flagged by the kernel, and refused by kvmlet when a write gets through.
expect_line '^kvmlet-rootfs: vdb ro=1$'
expect_line '^kvmlet-rootfs: vdb mount: \S+ /mnt ext4 ro[, ]'
expect_line '^kvmlet-rootfs: vdb file: kvmlet read-only disk$'
expect_line '^kvmlet-rootfs: vdb file write: [1-9]\d* .*Read-only file system'
expect_line '^kvmlet-rootfs: vdb raw write: [1-9]\d* .*Operation not permitted'
expect_line '^kvmlet-rootfs: vdb mmap write: 1 msync: Input/output error$'
# virtio-rng.
expect_line '^kvmlet-rootfs: rng_current: virtio_rng\.0$'
expect_line '^kvmlet-rootfs: hwrng: [0-9a-f]{64}$'
if grep -qP '^kvmlet-rootfs: hwrng: (00)+$' "$lines"; then fail "/dev/hwrng gave only zero bytes"; fi
expect_line '^kvmlet-rootfs: remount ro: 0$'
expect_line '^kvmlet-rootfs: done$'
for re in 'Kernel panic' 'EXT4-fs error' 'BUG:|Oops'; do
    grep -qP -- "$re" "$out" && fail "stdout matches /$re/, which it must not"
done

# kvmlet says that it refused the write to the read-only disk; no other errors.
readonly_lines=$(grep -ciP 'read-?only' "$err")
((readonly_lines >= 1)) || fail "stderr has no line about the refused write to the read-only disk (/read-?only/i)"
if grep -iP 'error' "$err" | grep -qviP 'read-?only'; then
    fail "stderr has error lines other than the read-only ones"
fi

# The images, from the host.
mounts_after=$(mount_count "$rootimg")
if [[ -z $mounts_before || -z $mounts_after ]] || ((mounts_after <= mounts_before)); then
    fail "mount count of the root image did not go up: '$mounts_before' before, '$mounts_after' after"
fi
fsck.ext4 -fn "$rootimg" >"$work/fsck.log" 2>&1 || fail "fsck.ext4 -fn of the root image: status $? ($(tr '\n' ' ' <"$work/fsck.log"))"
read_back=$(debugfs -R "cat /guest-file.bin" "$rootimg" 2>/dev/null | sha256)
[[ $read_back == "$guest_sum" ]] ||
    fail "/guest-file.bin read from the image on the host has sha256 $read_back, expected $guest_sum"
[[ $(sha256 <"$dataimg") == "$data_sum" ]] || fail "the read-only data image changed"

if [[ -n $keep ]]; then
    mkdir -p "$keep" && cp "$rootimg" "$dataimg" "$out" "$err" "$keep/"
fi

printf 'command: %s\n' "${cmd[*]}"
printf 'linux boot with virtio disks, console and rng took %d.%01d s (status %d); mount count %s -> %s\n' \
    $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$status" "$mounts_before" "$mounts_after"
echo "kvmlet lines about read-only ($readonly_lines):"
grep -iP 'read-?only' "$err" | sed 's/^/  /'
if ((${#failures[@]} == 0)); then
    echo "PASS"
    exit 0
fi
echo "----- stdout -----"
cat -v "$out"
echo "----- stderr -----"
cat -v "$err"
echo "------------------"
for f in "${failures[@]}"; do echo "FAIL: $f"; done
exit 1
