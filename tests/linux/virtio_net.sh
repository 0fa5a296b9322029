#!/usr/bin/env bash
# kvmlet's virtio-net under the minimal Linux kernel, in one boot (a boot costs a minute or more
# on hosts that emulate guest kernel code, ../shared/HOST.md), inside a network namespace of its
# own:
#
#   virtio_net.sh --vmm KVMLET [--transport pci|mmio] [--offloads on|off] [--size-mib N]
#                 [--image minimal] [--timeout SECONDS] [--keep DIR]
#
# Network safety: everything happens in namespace kvmlet-test-<pid>, made here and removed on
# every exit path with all it holds: TAP t0 with 10.0.2.1/24 (the only address, and only in
# there), dnsmasq (DHCP only, --port=0: no DNS; leases, pid and log files in the temporary
# directory; no configuration file read; 10.0.2.15 reserved for the guest's MAC, the dynamic
# range 10.0.2.100-150 so a missed reservation shows), and a python3 TCP peer on 10.0.2.1. Every
# process started here is ended by its PID.
#
# The guest: kvmlet with `--net tap=t0,mac=06:00:ac:10:00:02`, a root file system on vda (an ext4
# image built here: static busybox, rootfs-net/init as /sbin/init, N MiB of random bytes as
# /net-payload.bin) and `ip=dhcp` on the command line. The kernel's IP autoconfiguration must
# print "IP-Config: Complete" with 10.0.2.15; then rootfs-net/init pings 10.0.2.1, sends
# /net-payload.bin to the peer's port 5001 (the peer checks its sha256) and reads N MiB of other
# random bytes from port 5002 (the guest prints their sha256), and powers off through ACPI.
# Prints the time of each transfer as the peer measured it, and the throughput.
#
# Speed: every packet costs the guest's emulated kernel tens of ms here, so the transfers are
# made of few, large packets: the guest writes 1 MiB at a time (dd behind `nc -e`), and both
# sides send whole 64 KiB TSO packets (tcp_min_tso_segs=44 in the guest and in this namespace;
# the peer's stream uses Cubic, since BBR ignores that setting), which the checksum and
# segmentation offloads carry through the TAP as they are. Measured here on a loaded host: 10 MiB
# in 20-25 s each way; the whole test 2.5-3.5 min. With --offloads off every packet is a single
# segment and the transfers take far longer: use a small N.
#
# N (--size-mib) defaults to 10. Exits 77 (CTest: skipped) without a usable /dev/kvm or
# /dev/net/tun, without root (namespaces, TAP), without the built image, or without ip, dnsmasq,
# python3, e2fsprogs or busybox-static. --keep DIR keeps the image, the outputs and the logs.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"
readonly mac=06:00:ac:10:00:02 guest_ip=10.0.2.15 host_ip=10.0.2.1
readonly cmdline="root=/dev/vda rw console=ttyS0 reboot=k panic=-1 ip=dhcp"

die() { echo "virtio_net.sh: $*" >&2; exit 2; }

vmm='' image=minimal timeout_s=800 keep='' transport=pci offloads=on size_mib=10
while (($#)); do
    case $1 in
        --vmm) vmm=$2; shift 2 ;;
        --transport) transport=$2; shift 2 ;;
        --offloads) offloads=$2; shift 2 ;;
        --size-mib) size_mib=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        *) die "unknown argument '$1' (see the comment at the top of this script)" ;;
    esac
done
[[ -n $vmm ]] || die "--vmm is required"
[[ -x $vmm ]] || die "kvmlet binary '$vmm' is missing or not executable"
[[ $transport == pci || $transport == mmio ]] || die "--transport $transport: pci or mmio"
[[ $offloads == on || $offloads == off ]] || die "--offloads $offloads: on or off"
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || die "--size-mib $size_mib: a positive number of MiB"

find_guest_image "$image" vmlinux
require_kvm
require_netns
command -v dnsmasq >/dev/null || skip "dnsmasq not found: install dnsmasq-base (tools/setup does)"
command -v python3 >/dev/null || skip "python3 not found"
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 not found: install e2fsprogs (tools/setup does)"
busybox=/bin/busybox
[[ -x $busybox ]] || skip "$busybox not found: install busybox-static (guest-images/build does)"

ns=kvmlet-test-$$ ns_made=0 dnsmasq_pid='' peer_pid='' vm_pid=''
work=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-virtio-net.XXXXXX") || die "mktemp failed"
# Ends what this script started, by PID, then removes the namespace (with t0) and the files.
cleanup() {
    local pid
    for pid in "$vm_pid" "$peer_pid" "$dnsmasq_pid"; do
        [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if ((ns_made)); then
        ip netns exec "$ns" ip link del t0 2>/dev/null
        ip netns del "$ns" || echo "virtio_net.sh: could not remove network namespace $ns" >&2
    fi
    if [[ -n $keep ]]; then
        mkdir -p "$keep" && cp "$work"/{root.ext4,stdout,stderr,dnsmasq.log,leases,peer.log} "$keep/" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
in_ns() { ip netns exec "$ns" "$@"; }  # foreground only: with &, $! would be a subshell

sha256() { sha256sum | cut -d' ' -f1; }
bytes=$((size_mib * 1024 * 1024))

# Root file system: busybox with a link per applet (but `init`: /sbin/init is ours), and the
# payload the guest sends. Inode tables and journal are initialised here, not by the guest.
rootimg=$work/root.ext4 out=$work/stdout err=$work/stderr
tree=$work/root-tree
stage_busybox_root "$tree" "$busybox"
install -m 0755 "$here/rootfs-net/init" "$tree/sbin/init"
head -c "$bytes" /dev/urandom >"$tree/net-payload.bin"
to_host_sum=$(sha256 <"$tree/net-payload.bin")
head -c "$bytes" /dev/urandom >"$work/to-guest.bin"
to_guest_sum=$(sha256 <"$work/to-guest.bin")
mkfs.ext4 -q -F -t ext4 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 -L kvmlet-net-root \
    -d "$tree" "$rootimg" $((size_mib + 24))M || die "mkfs.ext4 of the root file system failed"
rm -rf "$tree"

# The namespace, its TAP and address.
ip netns add "$ns" || skip "cannot create a network namespace here"
ns_made=1
in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
in_ns ip tuntap add dev t0 mode tap || die "cannot create TAP t0 in namespace $ns"
in_ns ip addr add "$host_ip/24" dev t0 || die "cannot address t0 in namespace $ns"
in_ns ip link set t0 up || die "cannot bring t0 up in namespace $ns"
# Whole 64 KiB TSO packets from the peer's TCP. By default Linux sizes them to ~1 ms at the
# connection's rate, which for a guest whose kernel code is emulated (tens of ms per packet) is
# the 2-segment minimum: the guest would then pay its per-packet cost 20 times as often.
# rootfs-net/init does the same in the guest. A per-namespace setting: this namespace only.
in_ns sysctl -qw net.ipv4.tcp_min_tso_segs=44 || die "cannot set tcp_min_tso_segs in namespace $ns"

# DHCP server, in the foreground (so its PID is $!), reading no configuration file.
ip netns exec "$ns" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
    --bind-interfaces --interface=t0 --dhcp-authoritative \
    --dhcp-range=10.0.2.100,10.0.2.150,255.255.255.0,1h --dhcp-host="$mac,$guest_ip" \
    --dhcp-leasefile="$work/leases" --pid-file="$work/dnsmasq.pid" \
    --log-facility="$work/dnsmasq.log" --log-dhcp 2>"$work/dnsmasq.err" &
dnsmasq_pid=$!

# The TCP peer: port 5001 takes the guest's stream and hashes it; port 5002 sends to-guest.bin
# and waits until the guest has acknowledged all of it (TIOCOUTQ 0). Each result is one line.
cat >"$work/peer.py" <<'PEER'
import fcntl, hashlib, socket, sys, termios, threading, time
address, to_guest, ready, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
lock = threading.Lock()

def report(line):
    with lock:
        print(line, flush=True)

def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    s.listen(1)
    s.settimeout(timeout)
    return s

def from_guest(server):
    conn, _ = server.accept()
    conn.settimeout(timeout)
    start, digest, n = time.monotonic(), hashlib.sha256(), 0
    while chunk := conn.recv(1 << 20):
        digest.update(chunk)
        n += len(chunk)
    report(f"peer: from guest {n} bytes sha256 {digest.hexdigest()} in {time.monotonic() - start:.2f} s")
    conn.close()

def to_guest_stream(server):
    data = open(to_guest, "rb").read()
    conn, _ = server.accept()
    conn.settimeout(timeout)
    # BBR (a common host default) would size the TSO packets from its pacing rate, ignoring
    # tcp_min_tso_segs: 1-2 segments each for a guest this slow. Cubic or Reno honour it.
    for algorithm in (b"cubic", b"reno"):
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, algorithm)
            break
        except OSError:
            pass
    start = time.monotonic()
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    while True:  # until the guest's kernel has acknowledged every byte
        unacked = int.from_bytes(fcntl.ioctl(conn, termios.TIOCOUTQ, b"\0" * 4), "little")
        if unacked == 0 or time.monotonic() - start > timeout:
            break
        time.sleep(0.01)
    algorithm = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
    seconds = time.monotonic() - start
    report(f"peer: to guest {len(data)} bytes, {unacked} unacknowledged, in {seconds:.2f} s ({algorithm})")
    conn.close()

def run(work, server):
    try:
        work(server)
    except Exception as e:
        report(f"peer: FAIL {work.__name__}: {e!r}")

servers = [(from_guest, listen(5001)), (to_guest_stream, listen(5002))]
open(ready, "w").close()
threads = [threading.Thread(target=run, args=s) for s in servers]
for t in threads:
    t.start()
for t in threads:
    t.join()
PEER
ip netns exec "$ns" python3 "$work/peer.py" "$host_ip" "$work/to-guest.bin" "$work/peer-ready" "$timeout_s" \
    >"$work/peer.log" 2>&1 &
peer_pid=$!

# Both listening before the guest starts.
for ((i = 0; i < 200; i++)); do
    [[ -s $work/dnsmasq.pid && -e $work/peer-ready ]] && break
    { kill -0 "$dnsmasq_pid" && kill -0 "$peer_pid"; } 2>/dev/null || break
    sleep 0.05
done
if [[ ! -s $work/dnsmasq.pid ]] || ! kill -0 "$dnsmasq_pid" 2>/dev/null; then
    cat "$work/dnsmasq.err" "$work/dnsmasq.log" 2>/dev/null
    echo "FAIL: dnsmasq did not start in namespace $ns"
    exit 1
fi
if [[ ! -e $work/peer-ready ]]; then
    cat "$work/peer.log"
    echo "FAIL: the TCP peer did not start listening on $host_ip in namespace $ns"
    exit 1
fi

# One vCPU: the test is about the network device, and a second vCPU competing for a loaded host's
# cores makes every emulated spin-wait longer.
net="tap=t0,mac=$mac,offloads=$offloads"
cmd=("$vmm" run --kernel "$dir/vmlinux" --cpus 1 --memory 256M --transport "$transport"
     --disk "$rootimg" --net "$net" --console serial --cmdline "$cmdline")
start_ms=$(($(date +%s%N) / 1000000))
ip netns exec "$ns" timeout --kill-after=5 "$timeout_s" "${cmd[@]}" </dev/null >"$out" 2>"$err" &
vm_pid=$!
wait "$vm_pid"
status=$?
vm_pid=''
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
# The guest powers off after both transfers, so the peer is done; give it a moment if not.
for ((i = 0; i < 20; i++)); do
    kill -0 "$peer_pid" 2>/dev/null || break
    sleep 0.1
done

t0_stats() { in_ns cat "/sys/class/net/t0/statistics/$1" 2>/dev/null || echo '?'; }
t0_counters="t0 (host side): rx $(t0_stats rx_packets) packets, tx $(t0_stats tx_packets) packets"
host_tcp=$(in_ns cat /proc/net/snmp | awk '/^Tcp:/ { if (!seen++) { for (i = 2; i <= NF; i++) name[i] = $i } else {
    for (i = 2; i <= NF; i++) if (name[i] ~ /^(InSegs|OutSegs|RetransSegs)$/) printf " %s %s", name[i], $i } }')

# The console is a tty in the guest: lines end in \r\n. rootfs-net/init ends its lines with the
# guest's uptime, "[12.34 s]"; the checks match a copy without it.
sed -i 's/\r$//' "$out"
lines=$work/stdout.lines
sed -E 's/^(kvmlet-net: .*) \[[0-9.]+ s\]$/\1/' "$out" >"$lines"

checked_stdout=$lines
check_status "$status" "$timeout_s"

# DHCP: the kernel's IP autoconfiguration, and dnsmasq's side of it.
ip_re=${guest_ip//./\\.}
expect_line 'IP-Config: Complete:$'
expect_line " device=eth0, hwaddr=$mac, ipaddr=$ip_re, mask=255\\.255\\.255\\.0,"
grep -q "DHCPACK(t0) $guest_ip $mac" "$work/dnsmasq.log" 2>/dev/null ||
    fail "dnsmasq's log has no 'DHCPACK(t0) $guest_ip $mac'"
# User space on the network.
expect_line '^kvmlet-net: started$'
case $transport in
    pci) device_re='/sys/devices/pci0000:00/0000:00:[0-9a-f]{2}\.0/virtio\d+' ;;
    mmio) device_re='/sys/devices/platform/LNRO0005:\d+/virtio\d+' ;;
esac
expect_line "^kvmlet-net: eth0 device: $device_re\$"
expect_line "^kvmlet-net: eth0 mac: $mac\$"
expect_line "^kvmlet-net: eth0 address: $ip_re/24\$"
expect_line '^kvmlet-net: ping: 3 3 '
# TCP, guest to host: all bytes, the right ones.
expect_line "^kvmlet-net: tcp send: 0 bytes $bytes in "
grep -qP "^peer: from guest $bytes bytes sha256 $to_host_sum in " "$work/peer.log" ||
    fail "the peer did not receive the guest's $bytes bytes with sha256 $to_host_sum"
# TCP, host to guest.
expect_line "^kvmlet-net: tcp receive: 0 sha256 $to_guest_sum in "
grep -qP "^peer: to guest $bytes bytes, 0 unacknowledged, in " "$work/peer.log" ||
    fail "the peer did not see all $bytes bytes it sent acknowledged"
expect_line '^kvmlet-net: done$'
for re in 'Kernel panic' 'BUG:|Oops' 'virtio_net.*(error|fail)' 'NETDEV WATCHDOG'; do
    if grep -qP -- "$re" "$out"; then fail "stdout matches /$re/, which it must not"; fi
done
grep -qiP 'error|virtio-net' "$err" && fail "kvmlet logged an error or a virtio-net warning"
grep -q 'guest powered off' "$err" || fail "kvmlet did not report an ACPI power-off on stderr"
grep -q 'FAIL' "$work/peer.log" && fail "the peer failed"

# Throughput as the peer measured it (from accept to the last byte in, or to the last byte
# acknowledged).
throughput() {  # direction label, seconds
    awk -v b="$bytes" -v s="$2" -v d="$1" \
        'BEGIN { if (s > 0) printf "%s: %.1f MiB in %.2f s, %.2f MiB/s\n", d, b / 1048576, s, b / 1048576 / s }'
}
from_s=$(sed -nE 's/^peer: from guest .* in ([0-9.]+) s$/\1/p' "$work/peer.log")
to_s=$(sed -nE 's/^peer: to guest .* in ([0-9.]+) s .*$/\1/p' "$work/peer.log")

printf 'command (in namespace %s): %s\n' "$ns" "${cmd[*]}"
printf 'boot, DHCP, ping and TCP both ways took %d.%01d s (status %d)\n' \
    $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$status"
grep -A1 'IP-Config: Complete:$' "$out"
grep '^kvmlet-net: ' "$out"
cat "$work/peer.log"
echo "$t0_counters"
echo "tcp counters (host side):$host_tcp"
[[ -n $from_s ]] && throughput "TCP guest -> host" "$from_s"
[[ -n $to_s ]] && throughput "TCP host -> guest" "$to_s"
if ((${#failures[@]} == 0)); then
    echo "PASS"
    exit 0
fi
report_failures "$out" "$err" "dnsmasq stderr" "$work/dnsmasq.err" "dnsmasq log" "$work/dnsmasq.log"
exit 1
