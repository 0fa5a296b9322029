#!/usr/bin/env bash
# Runs the virtio_vsock tiny guest with a hybrid vsock and talks to it from the host:
#   virtio_vsock.sh KVMLET GUEST_ELF [--timeout SECONDS]
# Starts `kvmlet run --kernel GUEST_ELF --transport pci --console serial --vsock
# cid=3,uds=DIR/v.sock`; once the guest prints "listening on port 1234", a host process
# (python3) connects to DIR/v.sock, sends "CONNECT 1234", expects "OK <port>" with a port of
# 2^30 or more, sends 100 KiB in pieces, reads the echo back byte for byte, then shuts down its
# write side and waits for EOF. Passes when the echo matched, kvmlet exited 0 after the guest's
# reset, and the guest printed its lines and "virtio-vsock: ok". Exits 77 (CTest: skipped)
# without a usable /dev/kvm or python3.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"

parse_guest_args "$@"
require_kvm
command -v python3 >/dev/null || skip "python3 not found"

vm_pid=''
work=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-vsock.XXXXXX") || die "mktemp failed"
cleanup() {
    [[ -n $vm_pid ]] && kill "$vm_pid" 2>/dev/null && wait "$vm_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

out=$work/stdout err=$work/stderr
cmd=("$kvmlet" run --kernel "$guest" --transport pci --console serial --vsock "cid=3,uds=$work/v.sock")
timeout --kill-after=5 "$timeout_s" "${cmd[@]}" </dev/null >"$out" 2>"$err" &
vm_pid=$!
for ((i = 0; i < timeout_s * 20; i++)); do
    grep -q 'listening on port 1234' "$out" 2>/dev/null && break
    running "$vm_pid" || break
    sleep 0.05
done

python3 - "$work/v.sock" >"$work/host" 2>&1 <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"CONNECT 1234\n")
line = b""
while not line.endswith(b"\n"):
    chunk = s.recv(1)
    if not chunk:
        sys.exit("closed before OK")
    line += chunk
words = line.split()
if len(words) != 2 or words[0] != b"OK" or int(words[1]) < 1 << 30:
    sys.exit(f"bad answer {line!r}")
print(f"connected, host port {int(words[1])}")
data = bytes((7 * i + 3) & 0xff for i in range(100 * 1024))
echo = b""
for at in range(0, len(data), 10000):
    s.sendall(data[at:at + 10000])
    while len(echo) < min(at + 10000, len(data)):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(f"EOF after {len(echo)} echoed bytes")
        echo += chunk
if echo != data:
    sys.exit("the echo differs")
print(f"echo of {len(data)} bytes matches")
s.shutdown(socket.SHUT_WR)
if s.recv(1) != b"":
    sys.exit("bytes after the echo")
print("EOF after shutdown")
PY
host_status=$?
wait "$vm_pid"
status=$?
vm_pid=''

checked_stdout=$out
check_status "$status" "$timeout_s"
expect_line '^virtio-vsock: at 00:[0-9a-f]{2}\.0\r$'
expect_line '^config: guest cid 3, DRIVER_OK\r$'
expect_line '^listening on port 1234\r$'
expect_line '^request from host port \d+\r$'
expect_line '^host shut down\r$'
expect_line '^echoed 102400 bytes\r$'
expect_line '^virtio-vsock: ok\r$'
grep -q FAIL "$out" && fail "the guest reported a failure"
((host_status == 0)) || fail "the host process exited with $host_status"

echo "command: ${cmd[*]}"
cat "$work/host"
finish_guest_test "$out" "$err"
