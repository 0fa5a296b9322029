#!/usr/bin/env bash
# The jailer end to end, as root (docs/jailer.md): jail.sh CASE KVMLET PROBE
#   inside    the probe (jail_probe.c) jailed once per cgroup flavour the host has (v1 with cpu
#             and memory, v2 with them, v2's core files) prints what it sees from inside; its
#             capabilities, cgroup and the cgroup values are read from outside while it waits;
#             then its status comes back and the jail and the cgroup are gone. --daemonize too.
#   failures  each bad flag or failed step is one error line naming it, a non-zero status, and
#             leaves no jail directory, cgroup or mount behind.
#   cgroup-v2 the probe jailed with --cgroup-version 2, cpu.max and memory.max: the values read
#             back from outside, the cgroup gone after. Needs cgroup2 with the cpu and memory
#             controllers (FAIL without them): a hybrid host's cgroup2 has none, the emulated KVM
#             host of tools/kvm-host has them (CTest label real-kvm routes it there, docs/hosts.md).
# Cannot run (not root, no cgroup hierarchy): FAIL, not skip.
set -uo pipefail
case_name=${1:-} kvmlet=${2:-} probe=${3:-}
source "$(dirname "${BASH_SOURCE[0]}")/../lib/report.sh"
[[ -n $case_name && -x $kvmlet && -x $probe ]] || die "usage: jail.sh inside|failures|cgroup-v2 KVMLET PROBE"
((EUID == 0)) || { echo "FAIL: the jailer tests need root"; exit 1; }

# ${TMPDIR}: in the emulated KVM host /tmp is the 9p share of the host, which has no device nodes
# (mknod fails there); TMPDIR is its scratch disk.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-jail.XXXXXX")
base=$tmp/base
parent=kvmlet-jail-test-$$
ns=kvmlet-jail-$$
jailers=()
cleanup() {
    local pid
    for pid in "${jailers[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for pid in "${jailers[@]}"; do wait "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "$tmp"
    # Cgroups this test's jails would have made: <mount>/<parent>/<id>, then <parent>.
    local d
    for d in /sys/fs/cgroup/*/"$parent"/* /sys/fs/cgroup/"$parent"/* /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
        [[ -d $d ]] && rmdir "$d" 2>/dev/null
    done
    return 0
}
trap cleanup EXIT
ip netns add "$ns" || { echo "FAIL: cannot make the network namespace $ns"; exit 1; }

uid=10001 gid=10002
name=${probe##*/}

# Where the host mounts its cgroup hierarchies.
v1_mount() { awk -v c="$1" '$0 ~ / - cgroup / { n = split($NF, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) { print $5; exit } }' /proc/self/mountinfo; }
v2_mount=$(awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
v2_has() { [[ -n $v2_mount ]] && grep -qw "$1" "$v2_mount/cgroup.controllers"; }

# expect_line FILE LINE: FILE holds LINE exactly.
expect_line() { grep -qxF -- "$2" "$1" || fail "expected the line '$2' in $(basename "$1"): $(tr '\n' '|' <"$1")"; }
expect_value() { [[ $1 == "$2" ]] || fail "$3: expected '$2', got '$1'"; }

# no_leftovers ID: neither the jail directory nor a cgroup of ID, nor a mount under $tmp.
no_leftovers() {
    [[ ! -e $base/$name/$1 ]] || fail "$1: the jail directory $base/$name/$1 is left"
    [[ ! -e $base ]] || fail "$1: the chroot base $base (made by the jailer) is left"
    local d
    for d in /sys/fs/cgroup/*/"$parent"/"$1" /sys/fs/cgroup/"$parent"/"$1" /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
        [[ ! -e $d ]] || fail "$1: the cgroup $d is left"
    done
    ! grep -qF "$tmp" /proc/self/mountinfo || fail "$1: a mount under $tmp is left"
}

# wait_ready FILE PID: until the probe printed "ready" (10 s) or its jailer ended.
wait_ready() {
    local i
    for ((i = 0; i < 1000; i++)); do
        grep -qx ready "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# run_probe ID CHECKS-FUNCTION JAIL-ARGS...: one jailed probe, checked inside and outside.
run_probe() {
    local id=$1 check=$2
    shift 2
    local out=$tmp/$id.out err=$tmp/$id.err
    mkdir -p "$base/$name/other/root" && echo secret >"$base/$name/other/root/secret"
    "$kvmlet" jail --id "$id" --exec-file "$probe" --uid $uid --gid $gid --chroot-base-dir "$base" \
        --parent-cgroup "$parent" --netns "/var/run/netns/$ns" "$@" -- \
        --escape "$base/$name/other/root/secret" --escape "../other/root/secret" \
        --escape "/../../other/root/secret" --exit 7 >"$out" 2>"$err" &
    local jailer=$!
    jailers+=("$jailer")
    if ! wait_ready "$out" "$jailer"; then
        fail "$id: the probe never got ready: $(cat "$err" "$out" | tr '\n' '|')"
        return
    fi
    local child
    child=$(cat "/proc/$jailer/task/$jailer/children" 2>/dev/null | awk '{ print $1 }')
    [[ -n $child ]] || fail "$id: the jailer has no child"
    check_inside "$id" "$out" "$@"
    [[ -z $child ]] || check_outside "$id" "$child"
    [[ -z $child ]] || "$check" "$id" "$child"
    touch "$base/$name/$id/root/go"
    wait "$jailer"
    local status=$?
    expect_value "$status" 7 "$id: the jailer's exit status (the probe's)"
    [[ ! -s $err ]] || fail "$id: the jailer wrote to stderr: $(tr '\n' '|' <"$err")"
    rm -rf "$base/$name/other"
    rmdir "$base/$name" "$base" 2>/dev/null  # made by the test for "other"; fails if the jail is left
    no_leftovers "$id"
}

check_inside() {
    local id=$1 out=$2
    shift 2
    local root="root: dev $name"
    [[ " $* " == *" --new-pid-ns "* ]] && root+=" $name.pid"
    expect_line "$out" "argv: --id $id --escape $base/$name/other/root/secret --escape ../other/root/secret --escape /../../other/root/secret --exit 7"
    expect_line "$out" "$root"
    expect_line "$out" "uid: $uid $uid $uid"
    expect_line "$out" "gid: $gid $gid $gid"
    expect_line "$out" "groups: 0"
    expect_line "$out" "caps: effective=000000000 permitted=000000000 inheritable=000000000"
    expect_line "$out" "bounding: 0"
    expect_line "$out" "ambient: 0"
    expect_line "$out" "no_new_privs: 1"
    expect_line "$out" "env: 0"
    expect_line "$out" "fds: 0 1 2"
    expect_line "$out" "proc: absent"
    expect_line "$out" "net: lo"
    expect_line "$out" "dev /dev/kvm: char 10:232 $uid:$gid 0600"
    expect_line "$out" "dev /dev/net/tun: char 10:200 $uid:$gid 0600"
    if [[ -c /dev/userfaultfd ]]; then
        local major minor
        read -r major minor < <(stat -c '%t %T' /dev/userfaultfd)
        expect_line "$out" "dev /dev/userfaultfd: char $((16#$major)):$((16#$minor)) $uid:$gid 0600"
    else
        expect_line "$out" "dev /dev/userfaultfd: absent"
    fi
    local p
    for p in "$base/$name/other/root/secret" ../other/root/secret /../../other/root/secret; do
        expect_line "$out" "escape $p: ENOENT"
    done
    [[ " $* " != *" --new-pid-ns "* ]] || expect_line "$out" "pid: 1"
}

check_outside() {
    local id=$1 pid=$2 field
    for field in CapInh CapPrm CapEff CapBnd CapAmb; do
        expect_value "$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status")" 0000000000000000 "$id: $field"
    done
    expect_value "$(awk '$1 == "NoNewPrivs:" { print $2 }' "/proc/$pid/status")" 1 "$id: NoNewPrivs"
    expect_value "$(stat -L -c %i "/proc/$pid/ns/net")" "$(stat -L -c %i "/var/run/netns/$ns")" "$id: network namespace"
    # Its mount namespace holds the jail root and nothing else.
    expect_value "$(awk '{ print $5 }' "/proc/$pid/mountinfo" | tr '\n' ' ')" "/ " "$id: the mounts it sees"
}

# cgroup_checks MOUNT ID PID FILE=VALUE...: the probe is in MOUNT/$parent/ID and each file reads VALUE.
cgroup_checks() {
    local mount=$1 id=$2 pid=$3 fv
    shift 3
    local dir=$mount/$parent/$id
    grep -qx "$pid" "$dir/cgroup.procs" 2>/dev/null || fail "$id: pid $pid is not in $dir/cgroup.procs"
    grep -q ":/$parent/$id\$" "/proc/$pid/cgroup" || fail "$id: /proc/$pid/cgroup: $(tr '\n' '|' <"/proc/$pid/cgroup")"
    for fv in "$@"; do
        expect_value "$(cat "$dir/${fv%%=*}" 2>&1)" "${fv#*=}" "$id: $dir/${fv%%=*}"
    done
}
v1_checks() {
    cgroup_checks "$(v1_mount cpu)" "$1" "$2" cpu.cfs_quota_us=50000
    cgroup_checks "$(v1_mount memory)" "$1" "$2" memory.limit_in_bytes=536870912
}
v2_checks() { cgroup_checks "$v2_mount" "$1" "$2" "cpu.max=50000 100000" memory.max=536870912; }
v2_limit_checks() { cgroup_checks "$v2_mount" "$1" "$2" "cpu.max=50000 100000" memory.max=268435456; }
v2_core_checks() { cgroup_checks "$v2_mount" "$1" "$2" cgroup.max.descendants=5 cgroup.max.depth=3; }

case_inside() {
    local flavours=0
    if [[ -n $(v1_mount cpu) && -n $(v1_mount memory) ]]; then
        run_probe probe-v1 v1_checks --cgroup cpu.cfs_quota_us=50000 --cgroup memory.limit_in_bytes=512M
        flavours=$((flavours + 1))
    fi
    if v2_has cpu && v2_has memory; then
        run_probe probe-v2 v2_checks --cgroup-version 2 --new-pid-ns --cgroup "cpu.max=50000 100000" \
            --cgroup memory.max=512M
        flavours=$((flavours + 1))
    fi
    if [[ -n $v2_mount ]]; then
        run_probe probe-v2-core v2_core_checks --cgroup-version 2 --new-pid-ns \
            --cgroup cgroup.max.descendants=5 --cgroup cgroup.max.depth=3
        flavours=$((flavours + 1))
    fi
    ((flavours > 0)) || fail "no cgroup hierarchy here: neither v1 cpu and memory nor cgroup2"
    case_daemonize
}

# --daemonize: the jailer and the VMM leave the caller's session, their standard I/O is /dev/null,
# and the jailer still ends with the VMM's status.
case_daemonize() {
    local id=probe-daemon
    # Started with & from a script (no job control): the jailer does not lead a process group.
    "$kvmlet" jail --id $id --exec-file "$probe" --uid $uid --gid $gid --chroot-base-dir "$base" --daemonize \
        -- --exit 7 >"$tmp/$id.out" 2>"$tmp/$id.err" &
    local jailer=$! i child=
    jailers+=("$jailer")
    for ((i = 0; i < 1000; i++)); do
        child=$(cat "/proc/$jailer/task/$jailer/children" 2>/dev/null | awk '{ print $1 }')
        [[ -n $child && $(readlink "/proc/$child/exe" 2>/dev/null) == */$name ]] && break
        sleep 0.01
    done
    if [[ -z $child ]]; then
        fail "$id: no jailed child: $(cat "$tmp/$id.err")"
    else
        sleep 0.2
        local fd
        for fd in 0 1 2; do
            expect_value "$(readlink "/proc/$child/fd/$fd")" /dev/null "$id: the VMM's fd $fd"
            expect_value "$(readlink "/proc/$jailer/fd/$fd")" /dev/null "$id: the jailer's fd $fd"
        done
        [[ $(ps -o sid= -p "$jailer" | tr -d ' ') != "$(ps -o sid= -p $$ | tr -d ' ')" ]] ||
            fail "$id: the jailer stayed in the caller's session"
        touch "$base/$name/$id/root/go"
    fi
    wait "$jailer"
    expect_value "$?" 7 "$id: the jailer's exit status"
    [[ ! -s $tmp/$id.out && ! -s $tmp/$id.err ]] || fail "$id: output reached the caller's files"
    no_leftovers $id
}

# expect_error STATUS STEP-TEXT JAIL-ARGS...: one line "kvmlet jail: STEP-TEXT...", that status (or,
# with STATUS 1, any failure but a usage error), nothing left.
expect_error() {
    local want=$1 text=$2
    shift 2
    local err=$tmp/failure.err status
    "$kvmlet" jail "$@" 2>"$err" >/dev/null
    status=$?
    expect_value "$status" "$want" "'$*': exit status"
    expect_value "$(wc -l <"$err")" 1 "'$*': error lines ($(tr '\n' '|' <"$err"))"
    [[ $(head -1 "$err") == "kvmlet jail: $text"* ]] || fail "'$*': expected 'kvmlet jail: $text...', got '$(head -1 "$err")'"
    no_leftovers fail
}

case_failures() {
    local common=(--exec-file "$probe" --chroot-base-dir "$base" --parent-cgroup "$parent")
    local ok=(--id fail "${common[@]}" --uid $uid --gid $gid)
    expect_error 2 "--uid alice: not a number" --id fail "${common[@]}" --uid alice --gid $gid
    expect_error 2 "--id bad_id: 1 to 64" --id bad_id "${common[@]}" --uid $uid --gid $gid
    expect_error 2 "--id $(printf 'a%.0s' {1..65}): 1 to 64" --id "$(printf 'a%.0s' {1..65})" "${common[@]}" --uid $uid --gid $gid
    expect_error 2 "missing --gid" --id fail "${common[@]}" --uid $uid
    expect_error 2 "--cgroup cgroup.procs=1: cgroup.procs is written by the jailer" "${ok[@]}" --cgroup cgroup.procs=1
    expect_error 1 "exec-file: $tmp/missing: No such file" --id fail --exec-file "$tmp/missing" \
        --chroot-base-dir "$base" --uid $uid --gid $gid
    expect_error 1 "netns: cannot open $tmp/no-netns: No such file" "${ok[@]}" --netns "$tmp/no-netns"
    touch "$tmp/not-a-netns"
    expect_error 1 "netns: $tmp/not-a-netns is not a network namespace" "${ok[@]}" --netns "$tmp/not-a-netns"
    if [[ -n $v2_mount ]]; then
        expect_error 1 "cgroup: cannot write cgroup.bogus=1: " "${ok[@]}" --cgroup-version 2 --cgroup cgroup.bogus=1
        expect_error 1 "cgroup: cannot write cgroup.stat=1: " "${ok[@]}" --cgroup-version 2 --cgroup cgroup.stat=1
        # A second setting fails after the first was written: the cgroup still goes.
        expect_error 1 "cgroup: cannot write cgroup.nope=1: " "${ok[@]}" --cgroup-version 2 \
            --cgroup cgroup.max.depth=3 --cgroup cgroup.nope=1
        v2_has nosuch || expect_error 1 "cgroup: the nosuch controller is not available" "${ok[@]}" \
            --cgroup-version 2 --cgroup nosuch.max=1
    fi
    if [[ -n $(v1_mount cpu) ]]; then
        expect_error 1 "cgroup: cannot write cpu.bogus=1: " "${ok[@]}" --cgroup cpu.bogus=1
        expect_error 1 "cgroup: cannot write cpu.stat=1: " "${ok[@]}" --cgroup cpu.stat=1
    fi
    expect_error 1 "cgroup: cannot write nosuch.max=1: no cgroup v1 hierarchy has the nosuch controller" \
        "${ok[@]}" --cgroup nosuch.max=1
    # Steps of the jailed child, after the jail and its cgroup exist.
    expect_error 1 "resource-limit: cannot set no-file=" "${ok[@]}" \
        --resource-limit "no-file=$(($(cat /proc/sys/fs/nr_open) + 1))"
    expect_error 1 "exec: /true: No such file or directory" --id fail --exec-file "$(type -P true)" \
        --chroot-base-dir "$base" --uid $uid --gid $gid
    # A second jail with the id of a running one.
    mkdir -p "$tmp/keep"
    "$kvmlet" jail --id busy --exec-file "$probe" --uid $uid --gid $gid --chroot-base-dir "$tmp/keep" \
        -- --exit 0 >"$tmp/busy.out" 2>&1 &
    local first=$!
    jailers+=("$first")
    wait_ready "$tmp/busy.out" "$first" || fail "busy: the first jail never got ready"
    local err=$tmp/busy.err
    "$kvmlet" jail --id busy --exec-file "$probe" --uid $uid --gid $gid --chroot-base-dir "$tmp/keep" 2>"$err"
    expect_value "$?" 1 "a second jail with a running one's id: status"
    [[ $(cat "$err") == "kvmlet jail: jail dir: $tmp/keep/$name/busy is in use by another jail with the id busy" ]] ||
        fail "a second jail with a running one's id: $(cat "$err")"
    [[ -x $tmp/keep/$name/busy/root/$name ]] || fail "the second jail touched the first one's"
    touch "$tmp/keep/$name/busy/root/go"
    wait "$first"
    expect_value "$?" 0 "the first jail's status"
    [[ ! -e $tmp/keep/$name ]] || fail "the first jail is left"
}

case_cgroup_v2() {
    if ! v2_has cpu || ! v2_has memory; then
        fail "cgroup2 here (${v2_mount:-not mounted}) lacks the cpu or memory controller: run this in the emulated KVM host (tools/kvm-host --emulated)"
        return
    fi
    run_probe probe-v2-limits v2_limit_checks --cgroup-version 2 --cgroup "cpu.max=50000 100000" \
        --cgroup memory.max=256M
}

case $case_name in
    inside) case_inside ;;
    cgroup-v2) case_cgroup_v2 ;;
    failures) case_failures ;;
    *) die "unknown case $case_name" ;;
esac
if ((${#failures[@]})); then
    printf 'FAIL: %s\n' "${failures[@]}"
    exit 1
fi
echo "PASS: jail $case_name"
