#!/usr/bin/env bash
# SIGUSR2 makes kvmlet write every vCPU's registers to stderr and go on running: the guest
# (serial_echo, waiting for a line on COM1) is dumped twice, then gets its line and resets.
#   dump_on_signal.sh KVMLET SERIAL_ECHO_GUEST_ELF
set -uo pipefail
kvmlet=$1 guest=$2
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "SKIP: /dev/kvm is not usable"; exit 77; }
tmp=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    exec 3>&- 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

mkfifo "$tmp/in"
"$kvmlet" run --kernel "$guest" --cpus 2 <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &
pid=$!
exec 3>"$tmp/in"
wait_for() {  # wait_for FILE PATTERN [COUNT]: at most 20 s
    for _ in $(seq 200); do
        (($(grep -c -- "$2" "$1") >= ${3:-1})) && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
fail=0
wait_for "$tmp/out" '^ready' || { echo "FAIL: the guest did not start"; fail=1; }
for n in 1 2; do
    kill -USR2 "$pid"
    wait_for "$tmp/err" 'vCPU 0 (runnable, on request)' "$n" ||
        { echo "FAIL: no register dump of vCPU 0 after SIGUSR2 number $n"; fail=1; }
done
# vCPU 1 was never started by the guest: it waits for INIT/SIPI.
wait_for "$tmp/err" 'vCPU 1 (waiting, on request)' 2 || { echo "FAIL: vCPU 1 was not dumped twice"; fail=1; }
echo hello >&3
exec 3>&-
status=0
wait "$pid" || status=$?
pid=
[[ $status -eq 0 ]] || { echo "FAIL: kvmlet exited with $status, want 0 (the guest resets)"; fail=1; }
grep -q '^line: hello' "$tmp/out" || { echo "FAIL: the guest did not go on after the dumps"; fail=1; }
(($(grep -c '^RIP=' "$tmp/err") == 4)) || { echo "FAIL: want 4 RIP lines (2 dumps x 2 vCPUs)"; fail=1; }
if ((fail)); then
    echo "--- stderr (last lines)"; tail -20 "$tmp/err"
    exit 1
fi
echo "ok: two SIGUSR2 dumps of both vCPUs, then the guest went on and reset"
