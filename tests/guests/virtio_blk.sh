#!/usr/bin/env bash
# Runs a virtio-blk tiny guest under kvmlet with two 1 MiB disk images made here (sector 0 of
# disk N starting with "kvmlet-disk-000<N+1>", the rest zeros), then checks the image files on
# the host:
#   virtio_blk.sh basic|loop KVMLET GUEST_ELF [writeback|none]
# basic (virtio_blk.c): disk 0 writable with id=testdisk0, disk 1 readonly. Afterwards disk 0
#   holds the guest's pattern in sectors 1-8 and 2047 and nothing else changed (nor its size);
#   disk 1 is unchanged.
# loop (virtio_blk_loop.c): both writable. Afterwards disk 0 is unchanged (the malformed chains
#   wrote nothing) and disk 1 holds the pattern in sectors 1-4.
# The last argument, if given, becomes both disks' cache= option. The guests' pattern: byte i of
# sector s is (13 * s + i) mod 256. Exits 77 (CTest: skipped) when run_guest.sh does (without a
# usable /dev/kvm), and for cache=none where the temporary directory has no O_DIRECT (tmpfs).
set -uo pipefail

mode=${1:-} kvmlet=${2:-} guest=${3:-} cache=${4:-}
if [[ ! ($mode == basic || $mode == loop) || -z $kvmlet || -z $guest ]]; then
    echo "usage: virtio_blk.sh basic|loop KVMLET GUEST_ELF [writeback|none]" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECTOR=512 SECTORS=2048

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-virtio-blk.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
if [[ $cache == none ]] &&
    ! dd if=/dev/zero of="$tmp/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
    echo "SKIP: ${TMPDIR:-/tmp} does not support O_DIRECT (cache=none)"
    exit 77
fi
opts=${cache:+,cache=$cache}

# make_image NAME MARKER: $tmp/NAME.img and an untouched copy, $tmp/NAME.orig.
make_image() {
    truncate -s $((SECTOR * SECTORS)) "$tmp/$1.img"
    printf '%s' "$2" | dd of="$tmp/$1.img" conv=notrunc status=none
    cp "$tmp/$1.img" "$tmp/$1.orig"
}
make_image disk0 kvmlet-disk-0001
make_image disk1 kvmlet-disk-0002

run() {  # run_guest.sh with the checks common to both guests, then the given ones
    "$here/run_guest.sh" --vmm "$kvmlet" --guest "$guest" --status 0 --no-stdout FAIL \
        --stderr reset --no-stderr halted "$@"
}
if [[ $mode == basic ]]; then
    run --stdout '^virtio-blk: capacity=2048\r$' --stdout '^virtio-blk: id=testdisk0\r$' \
        --stdout '^virtio-blk: read-only disk: write refused' --stdout '^virtio-blk: ok\r$' \
        -- --transport mmio --disk "$tmp/disk0.img,id=testdisk0$opts" --disk "$tmp/disk1.img,readonly$opts"
    status=$?
    written=disk0 sectors=(1 2 3 4 5 6 7 8 2047) untouched=disk1
else
    run --stdout '^loop: returned len=0\r$' --stdout '^loop of two: returned len=0\r$' \
        --stdout '^second disk: ok\r$' --stdout '^disk 0: device needs reset\r$' \
        --stdout '^disk 0 after reset: ok\r$' --stdout '^virtio-blk-loop: ok\r$' \
        -- --transport mmio --disk "$tmp/disk0.img$opts" --disk "$tmp/disk1.img$opts"
    status=$?
    written=disk1 sectors=(1 2 3 4) untouched=disk0
fi
((status == 0)) || exit $status

# One decimal byte per line: sector $2 of file $1, and the guests' pattern for sector $1.
sector_bytes() { od -An -v -tu1 -j $(($2 * SECTOR)) -N $SECTOR "$1" | tr -s ' ' '\n' | sed '/^$/d'; }
pattern_bytes() { awk -v s="$1" -v n=$SECTOR 'BEGIN { for (i = 0; i < n; i++) print (13 * s + i) % 256 }'; }

failures=()
# The expected image: the original with the written sectors copied in from the result.
cp "$tmp/$written.orig" "$tmp/$written.expected"
for s in "${sectors[@]}"; do
    if ! cmp -s <(sector_bytes "$tmp/$written.img" "$s") <(pattern_bytes "$s"); then
        failures+=("sector $s of $written does not hold the guest's pattern")
    fi
    dd if="$tmp/$written.img" of="$tmp/$written.expected" bs=$SECTOR skip="$s" seek="$s" count=1 \
        conv=notrunc status=none
done
if ! difference=$(cmp "$tmp/$written.expected" "$tmp/$written.img" 2>&1); then
    failures+=("$written changed outside sectors ${sectors[*]}: $difference")
fi
if ! difference=$(cmp "$tmp/$untouched.orig" "$tmp/$untouched.img" 2>&1); then
    failures+=("$untouched changed: $difference")
fi

if ((${#failures[@]} > 0)); then
    for f in "${failures[@]}"; do echo "FAIL: $f"; done
    exit 1
fi
echo "PASS: image files checked on the host ($written: sectors ${sectors[*]}; $untouched unchanged)"
