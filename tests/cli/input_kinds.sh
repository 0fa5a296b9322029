#!/usr/bin/env bash
# A FIFO, a directory, a character device (/dev/zero) and a Unix socket given as --kernel,
# --initrd or --disk: each must end kvmlet within a second with status 1 and exactly one error
# line naming the option, the path and what it is. open(2) on a FIFO used to wait for a writer,
# forever. kvmlet checks these before it opens /dev/kvm, so this needs no KVM.
#   input_kinds.sh KVMLET GOOD_GUEST_ELF
set -uo pipefail
kvmlet=$1 good=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

mkfifo "$tmp/fifo"
mkdir "$tmp/dir"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$tmp/socket" ||
    { echo "FAIL: cannot bind a Unix socket for the test"; exit 1; }

# check NAME LINE -- ARGS...: `kvmlet ARGS` exits 1 within a second, its only error line is LINE.
check() {
    local name=$1 want=$2
    shift 3
    local status=0 start elapsed_ms
    start=$(date +%s%N)
    # timeout: a regression that blocks fails here instead of hanging the test.
    timeout --kill-after=1 5 "$kvmlet" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" || status=$?
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    local errors
    errors=$(grep -c '^kvmlet: error: ' "$tmp/err" || true)
    if ((status != 1 || errors != 1 || elapsed_ms > 1000)) || ! grep -qFx -- "$want" "$tmp/err"; then
        echo "FAIL: $name: status $status (want 1) after $elapsed_ms ms, $errors error lines, want: $want"
        sed 's/^/  | /' "$tmp/err"
        failures=$((failures + 1))
    else
        echo "ok: $name ($elapsed_ms ms): $want"
    fi
}

declare -A kind=([fifo]="a FIFO" [dir]="a directory" [socket]="a socket")
for name in fifo dir socket /dev/zero; do
    path=$tmp/$name what=${kind[$name]:-}
    [[ $name == /dev/zero ]] && path=/dev/zero what="a character device"
    check "kernel $name" "kvmlet: error: kernel: $path: not a regular file ($what)" -- \
        run --kernel "$path"
    check "initrd $name" "kvmlet: error: initrd: $path: not a regular file ($what)" -- \
        run --kernel "$good" --initrd "$path"
    check "disk $name" "kvmlet: error: disk $path: not a regular file or block device ($what)" -- \
        run --kernel "$good" --disk "$path"
    check "read-only disk $name" "kvmlet: error: disk $path: not a regular file or block device ($what)" -- \
        run --kernel "$good" --disk "$path,readonly"
done

((failures == 0)) || { echo "$failures case(s) failed"; exit 1; }
