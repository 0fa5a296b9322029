#!/usr/bin/env bash
# kvmlet hands the VM's teardown to a closer process (vmm/kvm/background_close.hpp): the closers
# of a machine restarted again and again (--on-reboot restart) are reaped, none is left as a
# zombie, kvmlet still ends with status 0, and after a plain run no process of that kvmlet binary
# (a copy only this test runs) is left within 2 s.
# Usage: background_close.sh KVMLET HELLO_GUEST_ELF
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/report.sh"
parse_guest_args "$@"
require_kvm

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-closer.XXXXXX") || exit 2
pid=''
cleanup() {
    if [[ -n $pid ]]; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
cp "$kvmlet" "$tmp/kvmlet-closer-test"
vmm=$tmp/kvmlet-closer-test

# 1. Restarts: each machine's closer is reaped by the kernel (SA_NOCLDWAIT).
"$vmm" run --kernel "$guest" --on-reboot restart </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
sleep 2
zombies=$(ps -eo ppid=,stat= | awk -v p="$pid" '$1 == p && $2 ~ /Z/' | wc -l)
restarts=$(grep -c "^Hello from a kvmlet tiny guest" "$tmp/out")
kill -TERM "$pid"
wait "$pid"
status=$?
pid=''
((restarts >= 3)) || fail "only $restarts boots in 2 s of --on-reboot restart"
((zombies == 0)) || fail "$zombies zombie closers under kvmlet after $restarts restarts"
[[ $status == 0 ]] || fail "kvmlet ended with $status after SIGTERM, not 0: $(tail -3 "$tmp/err")"

# 2. A plain run: status 0, and its closer is gone soon after.
"$vmm" run --kernel "$guest" </dev/null >"$tmp/out" 2>"$tmp/err"
status=$?
[[ $status == 0 ]] || fail "kvmlet ended with $status, not 0: $(tail -3 "$tmp/err")"
left=1
for _ in $(seq 20); do
    left=0
    for exe in /proc/[0-9]*/exe; do
        [[ $(readlink "$exe" 2>/dev/null) == "$vmm" ]] && left=$((left + 1))
    done
    ((left == 0)) && break
    sleep 0.1
done
((left == 0)) || fail "$left process(es) of $vmm still there 2 s after it exited"

if ((${#failures[@]})); then
    printf 'FAIL: %s\n' "${failures[@]}"
    exit 1
fi
echo "PASS: $restarts restarts and no zombie closer; the closer of a plain run is gone at once"
