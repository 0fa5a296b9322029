#!/usr/bin/env bash
# The 8250's batched THR writes (KVM's coalesced port I/O), end to end with the serial_batch guest:
# its polled line arrives whole and in order, its blind line (THR writes with no exit after them,
# then `sti; hlt`) arrives too, drained at the halt watchdog's kick, and the polled line cost about
# one port I/O exit per byte (the LSR read), not two: fewer than 1.5 per byte in the timeline.
#   serial_batch.sh KVMLET SERIAL_BATCH_GUEST_ELF
set -uo pipefail
kvmlet=$1 guest=$2
polled=512   # SERIAL_BATCH_POLLED in serial_batch.c
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "FAIL: /dev/kvm is not usable"; exit 1; }
tmp=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

"$kvmlet" run --kernel "$guest" --timeline "$tmp/timeline.json" </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
fail=0
for _ in $(seq 200); do   # at most 20 s
    grep -q 'serial-batch: blind end' "$tmp/out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
grep -q 'serial-batch: blind end' "$tmp/out" || { echo "FAIL: the blind line never reached the console"; fail=1; }
kill -TERM "$pid" 2>/dev/null
wait "$pid"
status=$? pid=
[[ $status -eq 0 ]] || { echo "FAIL: kvmlet exited with $status after SIGTERM"; fail=1; }

letters=$(python3 -c "print(''.join(chr(97 + i % 26) for i in range($polled)))")
expected=$'serial-batch: polled '"$letters"$' end\r\nserial-batch: blind end\r'
got=$(grep -a 'serial-batch:' "$tmp/out")
[[ $got == "$expected" ]] || { echo "FAIL: the console lines differ from what the guest wrote:"; cat -A "$tmp/out" | head -5; fail=1; }

pio=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['exits']['total'].get('pio', 0))" \
      "$tmp/timeline.json") || { echo "FAIL: no timeline"; pio=0; fail=1; }
bytes=$((polled + 60))   # both lines and the guest's other port writes, generously
echo "port I/O exits: $pio for $polled polled bytes and a blind line"
((pio >= polled)) || { echo "FAIL: fewer port I/O exits ($pio) than LSR reads ($polled)"; fail=1; }
((pio * 2 < bytes * 3)) || { echo "FAIL: $pio port I/O exits: the THR writes were not batched"; fail=1; }
if ((fail)); then
    echo "--- stderr:"; tail -20 "$tmp/err"
    exit 1
fi
echo "PASS"
