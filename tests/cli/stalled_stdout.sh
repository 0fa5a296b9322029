#!/usr/bin/env bash
# kvmlet's stdout is a pipe whose reader stops reading (`kvmlet run ... | less` left alone, a
# stalled ssh): a guest that prints a lot must not stall kvmlet. SIGTERM must still end it within
# STOP_DEADLINE_S with status 0, and the output it could not write is counted, with why.
#   stalled_stdout.sh KVMLET HOSTILE_CONSOLE_TX_GUEST_ELF
# The guest (tests/guests/hostile_console_tx.c) floods the virtio console (served on the VMM thread)
# and prints a heartbeat on COM1 from vCPU 1; both go to stdout. The reader takes the first bytes
# (so the flood has begun) and then holds the pipe open without reading. Before the console output
# had a buffer and a writer thread of its own, the VMM thread blocked in write(2) on the full pipe,
# never saw SIGTERM, and only SIGKILL ended kvmlet.
# Exits 77 (CTest: skipped) without a usable /dev/kvm.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"
kvmlet=${1:-} guest=${2:-}
[[ -x $kvmlet && -f $guest ]] || { echo "usage: stalled_stdout.sh KVMLET HOSTILE_CONSOLE_TX_GUEST_ELF" >&2; exit 2; }
require_kvm

START_TIMEOUT_S=30  # kvmlet start-up and the guest's first output: ~0.1 s natively
STALL_S=1           # time for the flood to fill the pipe and the buffer, many times over
STOP_DEADLINE_S=5   # the flush at exit gives up after 1 s; the rest is slack for loaded hosts

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-stalled.XXXXXX") || exit 2
pid='' reader=''
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    [[ -n $reader ]] && kill -TERM "$reader" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

mkfifo "$tmp/out"
# The reader: takes a first read's worth, then keeps the pipe open and reads no more.
{ head -c 1 >"$tmp/first"; exec sleep 600; } <"$tmp/out" &
reader=$!
"$kvmlet" run --kernel "$guest" --cpus 2 --transport mmio --console virtio </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
echo "kvmlet (pid $pid) writes to a pipe whose reader (pid $reader) stops after its first read"

deadline=$(($(now_ms) + START_TIMEOUT_S * 1000))
while [[ ! -s $tmp/first ]] && running "$pid" && (($(now_ms) < deadline)); do sleep 0.05; done
status=''
if ! running "$pid"; then
    wait "$pid"
    fail "kvmlet exited (status $?) before SIGTERM"
    pid=''
elif [[ ! -s $tmp/first ]]; then
    fail "the guest printed nothing within ${START_TIMEOUT_S}s"
else
    sleep "$STALL_S"
    if ! running "$pid"; then
        wait "$pid"
        fail "kvmlet exited (status $?) while its stdout was not read, before SIGTERM"
        pid=''
    else
        terminate_within "$pid" "$STOP_DEADLINE_S" ||
            fail "kvmlet still ran ${STOP_DEADLINE_S}s after SIGTERM with its stdout not read (then SIGKILLed)"
        status=$stop_status
        pid=''
    fi
fi

if [[ -n $status ]]; then
    ((status == 0)) || fail "kvmlet exited with status $status after SIGTERM, want 0"
    grep -q 'stopped by a signal' "$tmp/err" || fail "stderr does not say 'stopped by a signal'"
    grep -qE '^kvmlet: console: [0-9]+ bytes of guest output dropped \(the reader stopped reading or fell behind\)$' \
        "$tmp/err" || fail "stderr does not say that guest output was dropped because nobody read it"
fi
sed 's/^/  stderr | /' "$tmp/err"

if ((${#failures[@]} == 0)); then
    echo "PASS"
    exit 0
fi
printf 'FAIL: %s\n' "${failures[@]}"
exit 1
