#!/usr/bin/env bash
# The real kvmlet jailed by `kvmlet jail` runs a tiny guest (docs/jailer.md), as a user of
# Firecracker's jailer runs Firecracker: jailed_kvmlet.sh KVMLET GUEST_ELF (the hello guest).
# The jail root is made beforehand with what the VMM needs inside (the jailer keeps a root that
# exists): the guest image and the config file, and, kvmlet being dynamically linked, its shared
# libraries and loader at their own paths. kvmlet runs as 10001:10002 with no capabilities, in
# its cgroup and mount namespace, the Firecracker way (--no-api --config-file); seccomp is on (its
# default, kill). Checks: the guest's greeting arrives, kvmlet's status 0 comes back through the
# jailer, and the jail and its cgroup are gone afterwards.
set -uo pipefail
kvmlet=${1:-} guest=${2:-}
source "$(dirname "${BASH_SOURCE[0]}")/../lib/report.sh"
[[ -x $kvmlet && -f $guest ]] || die "usage: jailed_kvmlet.sh KVMLET GUEST_ELF"
((EUID == 0)) || { echo "FAIL: the jailer tests need root"; exit 1; }
require_kvm

tmp=$(mktemp -d /tmp/kvmlet-jailed.XXXXXX)
base=$tmp/base id=jk$$ name=${kvmlet##*/} parent=kvmlet-jailed-test-$$
jail=$base/$name/$id
root=$jail/root
jailer=''
cleanup() {
    if [[ -n $jailer ]]; then kill -KILL "$jailer" 2>/dev/null && wait "$jailer" 2>/dev/null; fi
    rm -rf "$tmp"
    local d
    for d in /sys/fs/cgroup/*/"$parent"/"$id" /sys/fs/cgroup/"$parent"/"$id" /sys/fs/cgroup/*/"$parent" \
        /sys/fs/cgroup/"$parent"; do
        [[ -d $d ]] && rmdir "$d" 2>/dev/null
    done
    return 0
}
trap cleanup EXIT

mkdir -p "$root"
# The loader and every library ldd names, copied (not linked: the jail is another mount tree).
while read -r lib; do
    [[ -f $lib ]] || continue
    mkdir -p "$root${lib%/*}"
    cp -L "$lib" "$root$lib"
done < <(ldd "$kvmlet" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
cp "$guest" "$root/guest.elf"
cat >"$root/vm.json" <<'EOF'
{"boot-source": {"kernel_image_path": "/guest.elf"},
 "machine-config": {"vcpu_count": 1, "mem_size_mib": 32}}
EOF

# cgroup v1 where the host has a v1 hierarchy (this development host and CI's are hybrid), else v2
# (the emulated KVM host has only cgroup2).
version=2
grep -q ' - cgroup ' /proc/self/mountinfo && version=1

out=$tmp/stdout err=$tmp/stderr
timeout --kill-after=5 60 "$kvmlet" jail --id "$id" --exec-file "$kvmlet" --uid 10001 --gid 10002 \
    --chroot-base-dir "$base" --cgroup-version "$version" --parent-cgroup "$parent" \
    -- --no-api --config-file /vm.json \
    </dev/null >"$out" 2>"$err" &
jailer=$!
wait "$jailer"
status=$?
jailer=''

[[ $status == 0 ]] || fail "the jailed kvmlet's status came back as $status, not 0"
grep -q "^Hello from a kvmlet tiny guest" "$out" || fail "no greeting from the guest on stdout"
grep -q "guest reset" "$err" || fail "kvmlet did not report the guest's reset"
grep -q "seccomp: thread" "$err" && fail "seccomp killed the jailed kvmlet: $(grep 'seccomp: thread' "$err")"
[[ ! -e $jail ]] || fail "the jail $jail is left after the VMM exited"
for d in /sys/fs/cgroup/*/"$parent"/"$id" /sys/fs/cgroup/"$parent"/"$id"; do
    [[ ! -e $d ]] || fail "the cgroup $d is left after the VMM exited"
done
if ((${#failures[@]})); then
    echo "--- stdout"; cat "$out"; echo "--- stderr"; cat "$err"
    printf 'FAIL: %s\n' "${failures[@]}"
    exit 1
fi
echo "PASS: a jailed kvmlet ran the guest and exited 0; the jail and its cgroup are gone"
