#!/usr/bin/env bash
# A hostile guest (hostile_*.c) gives one virtio device endless work; kvmlet must still stop
# promptly on SIGTERM, with status 0, and keep its log short.
#   hostile.sh console-tx|rng|rng-limited|console-rx|reset-loop KVMLET GUEST_ELF
# console-tx (hostile_console_tx): ~1 TiB of virtio-console output per notification, chains
#   re-posted forever. Stdout goes through a filter that drops the flood (the buffer is zeros) and
#   keeps the guest's COM1 text, so the disk is not filled.
# rng (hostile_rng_flood): virtio-rng requests of ~4 GiB each, re-posted and notified forever.
# rng-limited: the same under --rng-rate ops:100/s: the guest's rounds per second during the flood
#   must stay near 100 (30 to 200: the limiter's timers, on kvmlet's event loop, both hold the
#   device back and let it go on), where unlimited it makes over a thousand.
# console-rx (hostile_console_rx): empty virtio-console receive buffers, re-posted forever, while
#   `yes` fills stdin.
# reset-loop (hostile_reset_loop): reset, queue outside RAM, DRIVER_OK, forever; FLOOD_S is longer
#   here, to see that the log stays short over several seconds.
# Once the guest prints "flooding" on COM1 (and after FLOOD_S more), the test sends SIGTERM and
# fails unless kvmlet exits within STOP_DEADLINE_S (it is SIGKILLed then) with status 0 and "stopped
# by a signal", with at most MAX_LOG_LINES lines on stderr, and unless vCPU 1's heartbeat on COM1
# ("alive <n> rounds <r>") went on during the flood. Prints the time SIGTERM took, the guest's rounds
# (chains the device returned, or resets) per second during the flood and, for console-tx, the bytes kvmlet
# wrote to stdout, as figures.
# Exits 77 (CTest: skipped) without a usable /dev/kvm.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"

scenario=${1:-} kvmlet=${2:-} guest=${3:-}
usage() { echo "usage: hostile.sh console-tx|rng|rng-limited|console-rx|reset-loop KVMLET GUEST_ELF" >&2; exit 2; }
[[ -n $kvmlet && -n $guest ]] || usage
[[ -x $kvmlet ]] || { echo "hostile.sh: kvmlet '$kvmlet' is missing or not executable" >&2; exit 2; }
[[ -f $guest ]] || { echo "hostile.sh: guest '$guest' is missing" >&2; exit 2; }

MARKER_TIMEOUT_S=30  # kvmlet start-up and the guest's set-up: ~0.1 s natively
FLOOD_S=1
STOP_DEADLINE_S=5    # the goal is 2 s; the rest is slack for emulated and loaded hosts
MAX_LOG_LINES=20
MIN_RATE='' MAX_RATE=''  # bounds of the guest's rounds per second during the flood, when set
common=(--cpus 2 --transport mmio)
case $scenario in
    console-tx) vmm_args=("${common[@]}" --console virtio) ;;
    rng) vmm_args=("${common[@]}" --rng --console serial) ;;
    rng-limited) vmm_args=("${common[@]}" --rng-rate ops:100/s --console serial) FLOOD_S=2 MIN_RATE=30 MAX_RATE=200 ;;
    console-rx) vmm_args=("${common[@]}" --console virtio) ;;
    reset-loop) vmm_args=("${common[@]}" --rng --console serial) FLOOD_S=4 ;;
    *) usage ;;
esac

require_kvm

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-hostile.XXXXXX") || exit 2
pid='' helpers=()
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    for p in "${helpers[@]}"; do kill -TERM "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
out=$tmp/stdout err=$tmp/stderr
: >"$out"

heartbeats() { grep -c '^alive ' "$out"; }
# The first and last lines of file $1, all of it when short.
ends() {
    local n
    n=$(wc -l <"$1")
    if ((n <= 20)); then cat "$1"; else head -n 8 "$1"; echo "... ($n lines in all) ..."; tail -n 8 "$1"; fi
}
# The round count of the last heartbeat, 0 before the first.
rounds() { grep '^alive ' "$out" | tail -n 1 | sed -n 's/.* rounds \([0-9]*\).*/\1/p' | grep . || echo 0; }

stdin=/dev/null stdout=$out
if [[ $scenario == console-rx ]]; then
    mkfifo "$tmp/in"
    yes hostile-input >"$tmp/in" 2>/dev/null &
    helpers+=($!)
    stdin=$tmp/in
fi
if [[ $scenario == console-tx ]]; then
    mkfifo "$tmp/out.fifo"
    # The flood is NUL bytes: drop them, keep COM1's text, unbuffered; count what went through.
    perl -e 'my $n = 0;
             while (my $r = sysread(STDIN, my $b, 1 << 16)) {
                 $n += $r;
                 $b =~ tr/\0//d;
                 syswrite(STDOUT, $b) if length $b;
             }
             open(my $f, ">", $ARGV[0]) or die "$ARGV[0]: $!\n";
             print $f "$n\n"' "$tmp/stdout.bytes" <"$tmp/out.fifo" >"$out" &
    helpers+=($!)
    stdout=$tmp/out.fifo
fi
"$kvmlet" run --kernel "$guest" "${vmm_args[@]}" <"$stdin" >"$stdout" 2>"$err" &
pid=$!
echo "kvmlet (pid $pid): run --kernel $guest ${vmm_args[*]}"

# 1. The guest says it is flooding (or fails, or kvmlet ends first).
deadline=$(($(now_ms) + MARKER_TIMEOUT_S * 1000))
while ! grep -q -e '^flooding' -e '^FAIL' "$out" && running "$pid" && (($(now_ms) < deadline)); do
    sleep 0.05
done
started=0
if grep -q '^FAIL' "$out"; then
    fail "the guest failed before flooding: $(grep -m1 '^FAIL' "$out" | sed 's/^FAIL //' | tr -d '\r')"
elif ! running "$pid"; then
    wait "$pid"
    fail "kvmlet exited (status $?) before the guest started flooding"
    pid=''
elif ! grep -q '^flooding' "$out"; then
    fail "the guest did not print 'flooding' within ${MARKER_TIMEOUT_S}s"
else
    started=1
fi

# 2. The flood runs for FLOOD_S while we watch vCPU 1's heartbeat and the guest's rounds.
if ((started)); then
    sleep 0.3  # vCPU 1's start-up and first heartbeat
    beats0=$(heartbeats) rounds0=$(rounds) t0=$(now_ms)
    sleep "$FLOOD_S"
    beats1=$(heartbeats) rounds1=$(rounds) t1=$(now_ms)
    rate=$(((rounds1 - rounds0) * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1)))
    echo "flood: heartbeats $beats0 -> $beats1 in $((t1 - t0)) ms, guest rounds $rounds0 -> $rounds1" \
        "($rate/s), stderr lines so far $(wc -l <"$err")"
    if ! running "$pid"; then
        wait "$pid"
        fail "kvmlet exited (status $?) during the flood, before SIGTERM"
        pid=''
    fi
    ((beats1 > beats0)) || fail "vCPU 1's heartbeat on COM1 stopped during the flood ($beats0 -> $beats1)"
    [[ -z $MIN_RATE ]] || ((rate >= MIN_RATE && rate <= MAX_RATE)) ||
        fail "the guest made $rate rounds/s during the flood, want $MIN_RATE to $MAX_RATE"
fi

# 3. SIGTERM, then at most STOP_DEADLINE_S for kvmlet to exit.
status=''
if [[ -n $pid ]] && running "$pid"; then
    terminate_within "$pid" "$STOP_DEADLINE_S" ||
        fail "kvmlet still ran $((stop_ms / 1000)).$((stop_ms % 1000 / 100))s after SIGTERM (then SIGKILLed)"
    status=$stop_status
elif [[ -n $pid ]]; then
    wait "$pid"  # it ended by itself (the guest failed and reset): already reported
fi
pid=''
for p in "${helpers[@]}"; do  # the stdout filter ends at EOF, `yes` at EPIPE: 2 s, then SIGTERM
    t0=$(now_ms)
    while running "$p" && (($(now_ms) - t0 < 2000)); do sleep 0.02; done
    kill -TERM "$p" 2>/dev/null
    wait "$p" 2>/dev/null
done
helpers=()
[[ -s $tmp/stdout.bytes ]] && echo "stdout: kvmlet wrote $(($(<"$tmp/stdout.bytes") >> 20)) MiB in all"

# 4. Status and log (status is set only when SIGTERM ended kvmlet).
if [[ -n $status ]]; then
    ((status == 0)) || fail "kvmlet exited with status $status after SIGTERM, want 0"
    grep -q 'stopped by a signal' "$err" || fail "stderr does not say 'stopped by a signal'"
fi
log_lines=$(wc -l <"$err")
if ((log_lines > MAX_LOG_LINES)); then
    top=$(sort "$err" | uniq -c | sort -rn | head -1 | sed 's/^ *//')
    fail "stderr has $log_lines lines, want at most $MAX_LOG_LINES; the most repeated (count, line): $top"
fi

if ((${#failures[@]})); then
    # Both streams can be long (heartbeats, a flooded log): their ends, and a summary of stderr.
    ends "$out" >"$tmp/out.ends"
    ends "$err" >"$tmp/err.ends"
    sort "$err" | uniq -c | sort -rn | head -n 5 >"$tmp/err.top"
    report_failures "$tmp/out.ends" "$tmp/err.ends" "stderr, most repeated lines" "$tmp/err.top"
    exit 1
fi
echo "ok: $scenario: kvmlet stopped on SIGTERM with status 0 and $log_lines lines on stderr"
