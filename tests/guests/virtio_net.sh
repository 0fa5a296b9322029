#!/usr/bin/env bash
# Runs the virtio_net tiny guest on a TAP inside a network namespace of its own:
#   virtio_net.sh KVMLET GUEST_ELF [--timeout SECONDS]
# Creates namespace kvmlet-test-<pid> with IPv6 off (so the host stack stays quiet on the TAP)
# and TAP t0 in it, up and without addresses; starts virtio_net.py there (the TAP's host side:
# it checks the guest's frame byte for byte, then sends one back once the guest prints "ready
# for rx"), then `kvmlet run --kernel GUEST_ELF --transport pci --console serial --net
# tap=t0,mac=...` in the namespace. Passes when kvmlet exits 0 after the guest's reset, the
# guest printed each step's line and "virtio-net: ok", kvmlet logged no virtio-net warning, and
# the peer exited 0. The namespace (with the TAP), the peer and the temporary directory go on
# every exit path. Exits 77 (CTest: skipped) without a usable /dev/kvm, /dev/net/tun, root
# (network namespaces), ip or python3.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"
readonly mac=06:00:ac:10:00:02

parse_guest_args "$@"
require_kvm
require_netns
command -v python3 >/dev/null || skip "python3 not found"

ns=kvmlet-test-$$ ns_made=0 peer_pid='' vm_pid=''
work=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-virtio-net.XXXXXX") || die "mktemp failed"
cleanup() {
    [[ -n $vm_pid ]] && kill "$vm_pid" 2>/dev/null
    [[ -n $peer_pid ]] && kill "$peer_pid" 2>/dev/null
    [[ -n $vm_pid ]] && wait "$vm_pid" 2>/dev/null
    [[ -n $peer_pid ]] && wait "$peer_pid" 2>/dev/null
    if ((ns_made)); then
        ip netns exec "$ns" ip link del t0 2>/dev/null
        ip netns del "$ns" || echo "virtio_net.sh: could not remove network namespace $ns" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
in_ns() { ip netns exec "$ns" "$@"; }  # foreground only: with &, $! would be a subshell

ip netns add "$ns" || skip "cannot create a network namespace here"
ns_made=1
in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
in_ns ip tuntap add dev t0 mode tap || die "cannot create TAP t0 in namespace $ns"
in_ns ip link set t0 up || die "cannot bring t0 up in namespace $ns"

out=$work/stdout err=$work/stderr
ip netns exec "$ns" python3 "$here/virtio_net.py" --iface t0 --mac "$mac" --serial "$out" \
    --ready "$work/peer-ready" --timeout "$timeout_s" >"$work/peer" 2>&1 &
peer_pid=$!
for ((i = 0; i < 200; i++)); do
    [[ -e $work/peer-ready ]] && break
    kill -0 "$peer_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ ! -e $work/peer-ready ]]; then
    cat "$work/peer"
    echo "FAIL: the peer (virtio_net.py) did not bind its socket to t0"
    exit 1
fi

cmd=("$kvmlet" run --kernel "$guest" --transport pci --console serial --net "tap=t0,mac=$mac")
start_ns=$(date +%s%N)
ip netns exec "$ns" timeout --kill-after=5 "$timeout_s" "${cmd[@]}" </dev/null >"$out" 2>"$err" &
vm_pid=$!
wait "$vm_pid"
status=$?
vm_pid=''
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
# The guest resets only after the peer's frame came, so the peer is done or about to be; if the
# guest failed early, the peer would wait for its timeout: give it a moment, then end it.
for ((i = 0; i < 50; i++)); do
    kill -0 "$peer_pid" 2>/dev/null || break
    sleep 0.1
done
kill "$peer_pid" 2>/dev/null
wait "$peer_pid"
peer_status=$?
peer_pid=''

checked_stdout=$out
check_status "$status" "$timeout_s"
expect_line '^virtio-net: at 00:[0-9a-f]{2}\.0, BAR 0 at 0x[0-9a-f]{8}\r$'
expect_line '^features: device offers 0x[0-9a-f]{16}\r$'
expect_line '^queues: receive size \d+, transmit size \d+, DRIVER_OK\r$'
expect_line "^config: mac $mac, link up, mtu 1500\\r\$"
expect_line '^tx: 259-byte frame to ff:ff:ff:ff:ff:ff type 0x88b5 sent, used len 0\r$'
expect_line '^ready for rx\r$'
expect_line '^rx: 155-byte frame from [0-9a-f:]{17}, num_buffers 1, other frames ignored: \d+\r$'
expect_line "^rx: payload 'kvmlet host says hello to the tiny guest', pattern of 100 bytes intact\\r\$"
expect_line '^virtio-net: ok\r$'
grep -q FAIL "$out" && fail "the guest reported a failure"
grep -q reset "$err" || fail "kvmlet did not report the guest's reset"
grep -q halted "$err" && fail "the guest halted instead of resetting"
grep -qi 'virtio-net' "$err" && fail "kvmlet logged a virtio-net warning"
((peer_status == 0)) || fail "the peer (virtio_net.py) exited with $peer_status"

echo "command (in namespace $ns): ${cmd[*]}"
echo "exit status $status after ${elapsed_ms} ms"
cat "$work/peer"
finish_guest_test "$out" "$err"
