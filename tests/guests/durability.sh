#!/usr/bin/env bash
# "No flushed write is lost": runs the durability guest (durability.c) on a fresh sparse image,
# kills kvmlet with SIGKILL at a random moment after its first "flushed N" line, and checks the
# image with durability_check.py: blocks 0..N (N from the last complete "flushed" line) present
# and intact, at most the next flush interval's blocks written after them, nothing else. Repeats
# for ROUNDS rounds, each with a new image, and ends with a summary line.
#   durability.sh KVMLET GUEST_ELF [--rounds R] [--cache writeback|none] [--max-delay-ms MS]
#                 [--size-mib MIB] [--keep-failed DIR]
# R defaults to 5 (the CTest test; tools/bench/durability runs 50). The kill comes 0..MS ms
# (default 1500) after the first "flushed" line. A guest that fills the disk (MIB, default 256)
# before the kill halts and kvmlet exits 0: that round is checked too, and counted as not killed.
# --keep-failed copies a failed round's image, stdout and stderr to DIR. A round fails on a loss,
# on any kvmlet warning about the disk, a guest FAIL line, a gap in the "flushed" sequence or an
# image whose size changed. Exits 0 if every round passed, 1 if one failed, 2 on usage errors, 77
# (CTest: skipped) without a usable /dev/kvm or, for cache=none, without O_DIRECT in TMPDIR.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/report.sh
source "$here/../lib/report.sh"

usage() {
    echo "usage: durability.sh KVMLET GUEST_ELF [--rounds R] [--cache writeback|none] [--max-delay-ms MS]" \
        "[--size-mib MIB] [--keep-failed DIR]" >&2
    exit 2
}
(($# >= 2)) || usage
kvmlet=$1 guest=$2
shift 2
rounds=5 cache='' max_delay_ms=1500 size_mib=256 keep_failed=''
while (($# > 0)); do
    (($# >= 2)) || usage
    case $1 in
        --rounds) rounds=$2 ;;
        --cache) cache=$2 ;;
        --max-delay-ms) max_delay_ms=$2 ;;
        --size-mib) size_mib=$2 ;;
        --keep-failed) keep_failed=$2 ;;
        *) usage ;;
    esac
    shift 2
done
[[ $rounds =~ ^[1-9][0-9]*$ && $max_delay_ms =~ ^[0-9]+$ && $size_mib =~ ^[1-9][0-9]*$ ]] || usage
[[ -z $cache || $cache == writeback || $cache == none ]] || usage
[[ -x $kvmlet && -f $guest ]] || { echo "durability.sh: $kvmlet or $guest is missing" >&2; exit 2; }
require_kvm

# Seconds: waiting for the first "flushed" line (kvmlet start-up, device set-up, 8 writes and an
# fdatasync), and for kvmlet to go after SIGKILL. Bounds that tell a hang, not a timing.
FIRST_FLUSH_TIMEOUT=60 EXIT_TIMEOUT=30

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-durability.XXXXXX") || exit 2
pid=
cleanup() {
    if [[ -n $pid ]]; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
if [[ $cache == none ]] &&
    ! dd if=/dev/zero of="$tmp/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
    skip "${TMPDIR:-/tmp} does not support O_DIRECT (cache=none)"
fi
image=$tmp/disk.img out=$tmp/out err=$tmp/err checked=$tmp/checked
image_bytes=$((size_mib * 1024 * 1024))

alive() { kill -0 "$pid" 2>/dev/null; }
flushed_lines() { grep -aoP '^flushed \K[0-9]+(?=\r$)' "$out"; }

# wait_for_first_flush: 0 once stdout has a complete "flushed" line, 1 if kvmlet exited first or
# the timeout passed.
wait_for_first_flush() {
    local deadline=$((SECONDS + FIRST_FLUSH_TIMEOUT))
    while ((SECONDS < deadline)); do
        grep -qaP '^flushed [0-9]+\r$' "$out" && return 0
        alive || return 1
        sleep 0.01
    done
    return 1
}

# stop_kvmlet: SIGKILL (if still running) and reap; sets `killed` and `status`.
stop_kvmlet() {
    killed=0 status=0
    if alive; then
        kill -KILL "$pid" && killed=1
    fi
    local deadline=$((SECONDS + EXIT_TIMEOUT))
    while alive && ((SECONDS < deadline)); do sleep 0.05; done
    if alive; then  # no sane next round: say so on stdout (stderr is discarded) and stop
        echo "FAIL: round $round: kvmlet (pid $pid) still runs ${EXIT_TIMEOUT}s after SIGKILL"
        pid=
        exit 1
    fi
    wait "$pid" || status=$?
    pid=
}

# check_run: kvmlet's end, the guest's lines, and the image; sets `flushed` (-1 if none).
check_run() {
    local every size full
    flushed=$(flushed_lines | tail -n 1)
    flushed=${flushed:--1}
    every=$(grep -aoP '^durability: blocks=[0-9]+ block_bytes=4096 flush_every=\K[0-9]+(?=\r$)' "$out")
    if ((killed)); then
        ((status == 137)) || fail "kvmlet exited with $status after SIGKILL, want 137"
    elif ! grep -qaP '^durability: disk full after [0-9]+ blocks\r$' "$out"; then
        fail "kvmlet exited with $status before the kill, and the guest did not report a full disk"
    elif ((status != 0)); then
        fail "kvmlet exited with $status after the guest filled the disk, want 0"
    fi
    grep -qa 'FAIL' "$out" && fail "the guest reported a failure"
    grep -qa 'kvmlet: \(warning\|error\)\|virtio-blk' "$err" && fail "kvmlet logged a warning or error"
    [[ -n $every ]] || { fail "no 'durability: blocks=... flush_every=K' line"; return; }
    ((flushed >= 0)) || { fail "no complete 'flushed N' line"; return; }
    # Each flush covers the next `every` blocks (the last one, at a full disk, may cover fewer).
    full=$(grep -caP '^durability: disk full after [0-9]+ blocks\r$' "$out")
    if ! flushed_lines | awk -v k="$every" -v full="$full" '
        { v[NR] = $1 }
        END { for (i = 1; i <= NR; i++) if (v[i] != i * k - 1 && !(full && i == NR)) exit 1 }'; then
        fail "the 'flushed' lines are not $((every - 1)), $((2 * every - 1)), ...: the guest or its serial output skipped one"
    fi
    size=$(stat -c %s "$image")
    ((size == image_bytes)) || fail "the image is $size bytes, was $image_bytes"
    python3 -B "$here/durability_check.py" "$image" --flushed "$flushed" --every "$every" >"$checked" 2>&1 ||
        fail "the image check failed (durability_check.py above)"
}

report_round() {
    echo "----- stdout (last 5 of $(wc -l <"$out") lines) -----"
    tail -n 5 "$out" | cat -v
    echo "----- stderr -----"
    cat -v "$err"
    echo "----- durability_check.py -----"
    cat "$checked" 2>/dev/null
    echo "------------------"
    for f in "${failures[@]}"; do echo "FAIL: $f"; done
    if [[ -n $keep_failed ]]; then
        local dir=$keep_failed/round-$round
        mkdir -p "$dir" && cp --sparse=always "$image" "$out" "$err" "$dir/" && echo "kept in $dir"
    fi
}

opts=${cache:+,cache=$cache}
kills=0 failed_rounds=0 all_flushed=()
for ((round = 1; round <= rounds; round++)); do
    failures=()
    rm -f "$image" "$checked"
    truncate -s "$image_bytes" "$image"
    : >"$out"  # before the background job opens it: the wait below reads it at once
    "$kvmlet" run --kernel "$guest" --transport mmio --disk "$image$opts" </dev/null >"$out" 2>"$err" &
    pid=$!
    delay_ms=$((RANDOM * (max_delay_ms + 1) / 32768))
    if wait_for_first_flush; then
        sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))" &
        wait $!  # not sleep in the foreground: bash runs the INT/TERM trap only after it ends
    else
        alive && fail "no complete 'flushed' line within ${FIRST_FLUSH_TIMEOUT}s"
    fi
    stop_kvmlet 2>/dev/null  # bash reports the killed job on stderr when it reaps it; status says it
    check_run
    ((killed)) && ((kills++))
    all_flushed+=("$flushed")
    outcome=$( ((killed)) && echo "killed ${delay_ms} ms after the first flush" || echo "not killed: exited $status")
    present=$(grep -oP 'unflushed [0-9]+\.\.[0-9]+: \K[0-9]+ written, [0-9]+ partly' "$checked" 2>/dev/null)
    if ((${#failures[@]} == 0)); then
        echo "round $round: $outcome; flushed $flushed; blocks 0..$flushed intact; after them ${present:-?}: ok"
    else
        ((failed_rounds++))
        echo "round $round: $outcome; flushed $flushed: FAILED"
        report_round
    fi
done

sorted=$(printf '%s\n' "${all_flushed[@]}" | sort -n)
median=$(sed -n "$(((rounds + 1) / 2))p" <<<"$sorted")
echo "durability${cache:+ (cache=$cache)}: rounds $rounds, kills $kills, flushed min $(head -n 1 <<<"$sorted")" \
    "median $median max $(tail -n 1 <<<"$sorted"), rounds with a loss or failure $failed_rounds"
((failed_rounds == 0))
