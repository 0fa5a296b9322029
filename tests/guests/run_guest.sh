#!/usr/bin/env bash
# Runs one tiny guest under kvmlet and checks its exit status and output.
#
#   run_guest.sh --vmm KVMLET --guest ELF [--status N] [--stdout RE]... [--no-stdout RE]...
#                [--stderr RE]... [--no-stderr RE]... [--stdin TEXT] [--stdin-from file|pipe]
#                [--timeout SECONDS] [--require-path PATH] [--stop-at RE]
#                [-- KVMLET_RUN_OPTIONS...]
#
# Runs `KVMLET run --kernel ELF KVMLET_RUN_OPTIONS...` with TEXT on stdin (printf %b escapes
# such as \n are expanded; without --stdin, stdin is empty) read from a regular file (the
# default) or a pipe, stops it after SECONDS (default 20: first SIGUSR2, on which kvmlet writes
# every vCPU's registers and run state to stderr and the report shows where a hung guest was, then
# SIGKILL 5 s later), and fails unless it exited with N
# (default 0), every --stdout/--stderr regex matches a line of that stream and no
# --no-stdout/--no-stderr regex does. Regexes are Perl-style
# (grep -P), so \r and \( work. With --stop-at, kvmlet gets SIGTERM (so exits 0) once a stdout
# line matches RE: for guests that would go on long after the point the test is about. Exits 77 (CTest: skipped) when /dev/kvm is missing or cannot be
# opened read-write.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"

die() { echo "run_guest.sh: $*" >&2; exit 2; }

vmm='' guest='' want_status=0 stdin_text='' stdin_from=file timeout_s=20 stop_at=''
stdout_re=() no_stdout_re=() stderr_re=() no_stderr_re=() vmm_args=() required_paths=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --vmm) vmm=$2; shift 2 ;;
        --guest) guest=$2; shift 2 ;;
        --status) want_status=$2; shift 2 ;;
        --stdout) stdout_re+=("$2"); shift 2 ;;
        --no-stdout) no_stdout_re+=("$2"); shift 2 ;;
        --stderr) stderr_re+=("$2"); shift 2 ;;
        --no-stderr) no_stderr_re+=("$2"); shift 2 ;;
        --stdin) stdin_text=$2; shift 2 ;;
        --stdin-from) stdin_from=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --stop-at) stop_at=$2; shift 2 ;;
        --require-path) required_paths+=("$2"); shift 2 ;;
        --) shift; vmm_args=("$@"); break ;;
        *) die "unknown argument '$1' (see the comment at the top of this script)" ;;
    esac
done
[[ -n $vmm && -n $guest ]] || die "--vmm and --guest are required"
[[ -x $vmm ]] || die "kvmlet binary '$vmm' is missing or not executable"
[[ -f $guest ]] || die "guest '$guest' is missing"
[[ $stdin_from == file || $stdin_from == pipe ]] || die "--stdin-from takes file or pipe"

require_kvm
for path in "${required_paths[@]}"; do
    [[ -e $path ]] || skip "this test needs $path (a host-specific behaviour)"
done

workdir=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-guest.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$workdir"' EXIT
out=$workdir/stdout err=$workdir/stderr

cmd=("$vmm" run --kernel "$guest" "${vmm_args[@]}")
printf '%b' "$stdin_text" >"$workdir/stdin"
start_ns=$(date +%s%N)
if [[ $stdin_from == file ]]; then
    timeout --signal=USR2 --kill-after=5 "$timeout_s" "${cmd[@]}" <"$workdir/stdin" >"$out" 2>"$err" &
else
    timeout --signal=USR2 --kill-after=5 "$timeout_s" "${cmd[@]}" < <(cat "$workdir/stdin") >"$out" 2>"$err" &
fi
pid=$!
if [[ -n $stop_at ]]; then
    # `timeout` passes SIGTERM on to kvmlet.
    while kill -0 "$pid" 2>/dev/null; do
        if grep -qP -- "$stop_at" "$out"; then kill -TERM "$pid"; break; fi
        sleep 1
    done
fi
wait "$pid"
status=$?
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))

failures=()
if [[ $status -eq 124 || $status -eq 137 ]]; then
    failures+=("timed out after ${timeout_s}s (status $status)")
elif [[ $status -ne $want_status ]]; then
    failures+=("exit status $status, expected $want_status")
fi
for re in "${stdout_re[@]}"; do
    grep -qP -- "$re" "$out" || failures+=("stdout does not match /$re/")
done
for re in "${no_stdout_re[@]}"; do
    grep -qP -- "$re" "$out" && failures+=("stdout matches /$re/, which it must not")
done
for re in "${stderr_re[@]}"; do
    grep -qP -- "$re" "$err" || failures+=("stderr does not match /$re/")
done
for re in "${no_stderr_re[@]}"; do
    grep -qP -- "$re" "$err" && failures+=("stderr matches /$re/, which it must not")
done

echo "command: ${cmd[*]} (stdin from a $stdin_from)"
echo "exit status $status after ${elapsed_ms} ms"
if [[ ${#failures[@]} -eq 0 ]]; then
    echo "PASS"
    exit 0
fi
report_failures "$out" "$err"
exit 1
