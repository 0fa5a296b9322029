# shellcheck shell=bash
# Sourced by the test scripts that run a guest: their checks, collected in the array
# `failures`, and what they print when one failed.

failures=()
fail() { failures+=("$*"); }

# die WHY: a usage or set-up error of the script (not a test failure): exits 2.
die() { echo "${0##*/}: $*" >&2; exit 2; }

# parse_guest_args ARGS...: the command line `KVMLET GUEST_ELF [--timeout SECONDS]` of a script
# that runs one guest; sets `kvmlet`, `guest` and `timeout_s` (30 unless given), and dies unless
# kvmlet is executable and the guest exists.
# shellcheck disable=SC2034 # the caller uses them
parse_guest_args() {
    kvmlet=${1:-} guest=${2:-}
    [[ -n $kvmlet && -n $guest ]] || die "usage: ${0##*/} KVMLET GUEST_ELF [--timeout SECONDS]"
    shift 2
    timeout_s=30
    while (($#)); do
        case $1 in
            --timeout) timeout_s=$2; shift 2 ;;
            *) die "unknown argument '$1'" ;;
        esac
    done
    [[ -x $kvmlet ]] || die "kvmlet binary '$kvmlet' is missing or not executable"
    [[ -f $guest ]] || die "guest '$guest' is missing"
}

# skip WHY: the test cannot run here; CTest shows it as skipped (SKIP_RETURN_CODE 77), and
# tools/test fails the run unless KVMLET_ALLOW_SKIP=1.
skip() { echo "SKIP: $*"; exit 77; }

# require_kvm: skips unless /dev/kvm is a character device that opens read-write. -c first:
# `<>` opens with O_CREAT and would make a regular file where the node is missing.
require_kvm() {
    [[ -c /dev/kvm ]] || skip "/dev/kvm does not exist"
    { exec 3<>/dev/kvm; } 2>/dev/null || skip "cannot open /dev/kvm read-write"
    exec 3>&-
}

# Whether process $1 still runs (a zombie does not: a child is ours until `wait`).
running() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# terminate_within PID SECONDS: SIGTERM to our child PID, then at most SECONDS for it to exit, and
# SIGKILL after that. Sets stop_ms (how long it took) and stop_status (its exit status; empty when
# it had to be SIGKILLed, and then returns 1). Prints the time it took.
terminate_within() {
    local pid=$1 t0
    stop_status=''
    kill -TERM "$pid"
    t0=$(now_ms)
    while running "$pid" && (($(now_ms) - t0 < $2 * 1000)); do sleep 0.02; done
    stop_ms=$(($(now_ms) - t0))
    if running "$pid"; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null
        return 1
    fi
    wait "$pid" && stop_status=0 || stop_status=$?
    printf 'SIGTERM: kvmlet exited with status %d after %d.%03ds\n' "$stop_status" $((stop_ms / 1000)) \
        $((stop_ms % 1000))
}

# find_guest_image IMAGE FILE...: sets `dir` to guest image IMAGE's directory
# (guest-images/build --print); skips when the image is not built or lacks one of the FILEs.
# Not in $(...): a skip there would end only the subshell.
find_guest_image() {
    local image=$1 file root
    shift
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    dir=$("$root/guest-images/build" --print "$image" 2>/dev/null) || dir=
    for file in "$@"; do
        [[ -n $dir && -s $dir/$file ]] ||
            skip "guest image '$image' is not built: run guest-images/build $image (tools/test does)"
    done
}

# require_netns: skips unless this test can make a network namespace with a TAP in it (root,
# /dev/net/tun, ip). Adds the sbin directories to PATH.
require_netns() {
    [[ -c /dev/net/tun ]] || skip "/dev/net/tun does not exist"
    (($(id -u) == 0)) || skip "network namespaces and TAP devices need root"
    PATH=$PATH:/usr/sbin:/sbin
    command -v ip >/dev/null || skip "ip not found (iproute2)"
}

# check_status STATUS TIMEOUT_S: the guest's runner (timeout(1)) exited 0, not on its timeout.
check_status() {
    if (($1 == 124 || $1 == 137)); then
        fail "timed out after ${2}s (status $1)"
    elif (($1 != 0)); then
        fail "exit status $1, expected 0"
    fi
}

# expect_line RE / reject_line RE: some line / no line of the file $checked_stdout matches the
# Perl regex RE.
expect_line() {
    grep -qP -- "$1" "${checked_stdout:?}" || fail "stdout has no line matching /$1/"
}
reject_line() {
    if grep -qP -- "$1" "${checked_stdout:?}"; then fail "stdout matches /$1/, which it must not"; fi
}

# stage_busybox_root DIR BUSYBOX: a root file system tree with static busybox and a link per
# applet but init (the test writes its own /sbin/init) and linuxrc. The ~270 links are made by
# one process (perl-base is Essential): one `ln` each took 222 s in an emulated KVM host
# (tools/kvm-host), where every fork+exec costs ~0.8 s.
stage_busybox_root() {
    local tree=$1 busybox=$2
    mkdir -p "$tree"/{bin,sbin,dev,proc,sys,mnt,tmp}
    cp "$busybox" "$tree/bin/busybox"
    "$busybox" --list | perl -nle '
        BEGIN { $dir = shift }
        next if /^(busybox|init|linuxrc)$/;
        symlink("busybox", "$dir/$_") or die "$dir/$_: $!\n";' "$tree/bin"
}
#
# report_failures OUT ERR [TITLE FILE]...: the guest's stdout and stderr (cat -v, so \r shows
# as ^M), then each extra file under its title (a missing one is skipped), then one
# "FAIL: <check>" line per entry of `failures`.
report_failures() {
    local out=$1 err=$2 f
    shift 2
    echo "----- stdout -----"
    cat -v "$out"
    echo "----- stderr -----"
    cat -v "$err"
    while (($# >= 2)); do
        echo "----- $1 -----"
        cat "$2" 2>/dev/null
        shift 2
    done
    echo "------------------"
    for f in "${failures[@]}"; do echo "FAIL: $f"; done
}

# finish_guest_test OUT ERR [TITLE FILE]...: exits 0 after the guest's stdout OUT (without \r) and
# "PASS" when no check failed; else exits 1 after report_failures with the same arguments.
finish_guest_test() {
    if ((${#failures[@]} == 0)); then
        tr -d '\r' <"$1"
        echo "PASS"
        exit 0
    fi
    report_failures "$@"
    exit 1
}
