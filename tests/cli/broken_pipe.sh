#!/usr/bin/env bash
# kvmlet's stdout (and then its stderr too) piped into a reader that leaves after one byte:
# the guest's later output goes to a pipe nobody reads. kvmlet must not die of SIGPIPE (status
# 141, with the terminal left raw): it drops that output, counts it, and ends when the guest does.
#   broken_pipe.sh KVMLET SMP_GUEST_ELF
# The smp guest with one vCPU prints "cpu 0 up (bsp)", is quiet for 250 ms (long after the
# reader left), prints "cpus up: 1" and resets (status 0). COM1's output is written on the vCPU
# thread, which blocks SIGPIPE, so with stdout alone the check is that the lost output is counted
# (a "guest output dropped" line); with stderr in the pipe too the VMM thread's log lines meet the
# closed pipe, and before SIGPIPE was ignored they killed kvmlet (virtio-console output, written
# on that thread, did the same with stdout alone).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"
kvmlet=$1 guest=$2
require_kvm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run=(timeout --kill-after=5 20 "$kvmlet" run --kernel "$guest" --cpus 1 --memory 16M)

# check_statuses WHAT KVMLET_STATUS HEAD_STATUS
check_statuses() {
    if (($2 == 141)); then
        fail "$1: kvmlet was killed by SIGPIPE (status 141)"
    elif (($2 == 124 || $2 == 137)); then
        fail "$1: kvmlet timed out (status $2)"
    elif (($2 != 0)); then
        fail "$1: kvmlet exited with status $2, expected 0"
    fi
    (($3 == 0)) || fail "$1: head exited with status $3"
}

"${run[@]}" </dev/null 2>"$tmp/err" | head -c 1 >"$tmp/head"
statuses=("${PIPESTATUS[@]}")
echo "stdout into head -c 1: kvmlet ${statuses[0]}, head ${statuses[1]}"
check_statuses "stdout into head" "${statuses[@]}"
[[ $(cat "$tmp/head") == c ]] ||
    fail "stdout into head: head read '$(cat "$tmp/head")', not the guest's first byte"
# Proves the guest wrote after the reader had gone, so the case tested what it is about.
grep -qE '^kvmlet: console: [0-9]+ bytes of guest output dropped \(Broken pipe\)$' "$tmp/err" ||
    fail "stdout into head: no 'guest output dropped (Broken pipe)' line on stderr"
grep -q 'reset' "$tmp/err" || fail "stdout into head: the guest did not reset"
sed 's/^/  stderr | /' "$tmp/err"

"${run[@]}" </dev/null 2>&1 | head -c 1 >"$tmp/head"
statuses=("${PIPESTATUS[@]}")
echo "stdout and stderr into head -c 1: kvmlet ${statuses[0]}, head ${statuses[1]}"
check_statuses "stdout and stderr into head" "${statuses[@]}"
[[ -s $tmp/head ]] || fail "stdout and stderr into head: head read nothing"

if ((${#failures[@]} == 0)); then
    echo "PASS"
    exit 0
fi
printf 'FAIL: %s\n' "${failures[@]}"
exit 1
