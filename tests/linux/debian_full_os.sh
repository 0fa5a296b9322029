#!/usr/bin/env bash
# A full Debian 12 system under kvmlet (issue 18): Debian's cloud kernel (guest-images/build
# debian), our initramfs, and the systemd root file system of guest-images/build debian-rootfs,
# booted to multi-user.target, logged in to on the serial console, and powered off from there:
#
#   debian_full_os.sh --vmm KVMLET [--kernel vmlinux|bzImage] [--cpus N] [--timeout SECONDS]
#                     [--keep DIR]
#
# The initramfs loads the virtio modules, mounts root=/dev/vda (a copy of rootfs.ext4) and hands
# over to systemd. Once multi-user.target is reached, kvmlet-ready.service writes the boot-timer
# port (kvmlet logs Guest-boot-time) and prints `kvmlet-ready:` lines through the kernel log. The
# test then answers the serial getty's login prompt (`root`, no password), asks systemd for the
# system's state and its failed units, waits for the DHCP lease on the virtio-net interface, and
# types `poweroff`: systemd stops everything and the kernel powers off through ACPI, so kvmlet
# must exit 0.
#
# Checks: the ready lines (no failed unit at multi-user.target), the login, `systemctl
# is-system-running --wait` saying `running` (no failed unit once the boot finished), the lease
# 10.0.2.15 on the interface udev named, no [FAILED] status line, the kernel's power-off,
# kvmlet's status 0 and stderr (Guest-boot-time, an ACPI power-off, no error), and the root
# image from the host (fsck clean). It prints how long the boot took to the ready marker, to
# the shell and to the power-off.
#
# Network safety: kvmlet runs in network namespace kvmlet-fullos-<pid>, made here and removed on
# every exit path with what it holds: TAP t0 with 10.0.2.1/24 (the only address, and only in
# there) and dnsmasq (DHCP only, --port=0; no configuration file read; 10.0.2.15 for the guest's
# MAC). Every process started here is ended by its PID.
#
# Exits 77 (CTest: skipped) without a usable /dev/kvm or /dev/net/tun, without root, without the
# built images, or without ip, dnsmasq or e2fsprogs. --keep DIR keeps the root image and the
# output there.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"
readonly mac=06:00:ac:10:00:02 host_ip=10.0.2.1 guest_ip=10.0.2.15
readonly cmdline="console=ttyS0 root=/dev/vda rw panic=-1"

die() { echo "debian_full_os.sh: $*" >&2; exit 2; }

vmm='' kernel=vmlinux cpus=2 timeout_s=900 keep=''
while (($#)); do
    case $1 in
        --vmm) vmm=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --cpus) cpus=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        *) die "unknown argument '$1' (see the comment at the top of this script)" ;;
    esac
done
[[ -n $vmm ]] || die "--vmm is required"
[[ -x $vmm ]] || die "kvmlet binary '$vmm' is missing or not executable"
[[ $kernel == vmlinux || $kernel == bzImage ]] || die "--kernel $kernel: vmlinux or bzImage"
[[ $cpus =~ ^[1-9][0-9]*$ ]] || die "--cpus $cpus: a positive number"

find_guest_image debian "$kernel" initrd.cpio
kernel_dir=$dir
find_guest_image debian-rootfs rootfs.ext4
rootfs_dir=$dir
require_kvm
require_netns
command -v dnsmasq >/dev/null || skip "dnsmasq not found: install dnsmasq-base (tools/setup does)"
command -v fsck.ext4 >/dev/null || skip "fsck.ext4 not found: install e2fsprogs (tools/setup does)"

ns=kvmlet-fullos-$$ ns_made=0 vm_pid='' dnsmasq_pid=''
work=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-fullos.XXXXXX") || die "mktemp failed"
rootimg=$work/root.ext4 out=$work/stdout err=$work/stderr
# Ends kvmlet and dnsmasq if they still run (by their PIDs), removes the namespace with t0, then
# the files.
cleanup() {
    local pid
    for pid in "$vm_pid" "$dnsmasq_pid"; do
        if [[ -n $pid ]]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; fi
    done
    exec 3>&- 2>/dev/null
    if ((ns_made)); then
        ip netns exec "$ns" ip link del t0 2>/dev/null
        ip netns del "$ns" || echo "debian_full_os.sh: could not remove network namespace $ns" >&2
    fi
    if [[ -n $keep ]]; then
        mkdir -p "$keep" && cp --sparse=always "$rootimg" "$out" "$err" "$keep/" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
in_ns() { ip netns exec "$ns" "$@"; }

# The guest writes to its root disk: it boots a copy (sparse, ~190 MiB of data).
cp --sparse=always "$rootfs_dir/rootfs.ext4" "$rootimg" || die "cannot copy rootfs.ext4"

ip netns add "$ns" || skip "cannot create a network namespace here"
ns_made=1
in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
in_ns ip tuntap add dev t0 mode tap || die "cannot create TAP t0 in namespace $ns"
in_ns ip addr add "$host_ip/24" dev t0 || die "cannot address t0 in namespace $ns"
in_ns ip link set t0 up || die "cannot bring t0 up in namespace $ns"
# DHCP server, in the foreground (so its PID is $!), reading no configuration file.
in_ns dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port=0 \
    --bind-interfaces --interface=t0 --dhcp-authoritative \
    --dhcp-range=10.0.2.100,10.0.2.150,255.255.255.0,1h --dhcp-host="$mac,$guest_ip" \
    --dhcp-leasefile="$work/leases" --pid-file="$work/dnsmasq.pid" \
    >"$work/dnsmasq.log" 2>&1 &
dnsmasq_pid=$!

# The console's input: a FIFO this script holds open for writing (fd 3), so kvmlet never sees EOF.
mkfifo "$work/console-in" || die "mkfifo failed in $work"
exec 3<>"$work/console-in"
cmd=("$vmm" run --kernel "$kernel_dir/$kernel" --initrd "$kernel_dir/initrd.cpio" --cpus "$cpus"
     --memory 512M --disk "$rootimg" --net "tap=t0,mac=$mac" --cmdline "$cmdline")
start_ms=$(now_ms)
# At the timeout kvmlet gets SIGUSR2 first: each vCPU's registers, run state and code bytes go to
# stderr (the report shows them), then SIGKILL.
in_ns timeout --signal=USR2 --kill-after=10 "$timeout_s" "${cmd[@]}" <"$work/console-in" \
    >"$out" 2>"$err" &
vm_pid=$!

# console_text: the console output so far without carriage returns and terminal control
# sequences (colours, bash's bracketed-paste switches around each prompt).
console_text() { sed -E 's/\r//g; s/\x1b\[[0-9;?]*[a-zA-Z]//g' "$out"; }
# Every process started here competes with the guest for the emulated KVM host's CPUs, where a
# fork and exec costs most of a second: the wait below forks one grep per pattern every 2 s,
# sleeps on a FIFO nobody writes to (a builtin read, no `sleep`) and reads kvmlet's state from
# /proc with builtins.
mkfifo "$work/tick" || die "mkfifo failed in $work"
vm_alive() {
    local _pid _comm state
    read -r _pid _comm state _ <"/proc/$vm_pid/stat" 2>/dev/null && [[ $state != Z ]]
}
# wait_for RE...: until the console output (raw: RE must not span a control sequence) has a line
# matching each Perl regex RE, or kvmlet has exited (returns 1 then). Sets seen_ms to when it
# saw them.
wait_for() {
    local re
    while vm_alive; do
        for re in "$@"; do
            grep -qaP -- "$re" "$out" || { read -r -t 2 _ <>"$work/tick"; continue 2; }
        done
        seen_ms=$(now_ms)
        return 0
    done
    return 1
}
# type_line WORDS...: the words and a newline on the serial console, as typed at it.
type_line() { printf '%s\n' "$*" >&3; }

ready_ms='' login_ms=''
# The ready service's last line, and the serial getty's prompt (either may come first).
if wait_for 'kvmlet-ready: failed units: ' 'kvmlet-debian login: '; then
    ready_ms=$((seen_ms - start_ms))
    type_line root
    if wait_for 'root@kvmlet-debian:~# '; then
        login_ms=$((seen_ms - start_ms))
        # Each answer on a line of its own, which the echo of the typed line cannot match.
        # shellcheck disable=SC2016  # expanded by the guest's shell
        type_line 'echo "kvmlet-state: $(systemctl is-system-running --wait)";' \
            'echo "kvmlet-failed: $(systemctl list-units --state=failed --plain --no-legend | tr -s "\n" " ")end";' \
            '/lib/systemd/systemd-networkd-wait-online --timeout=300 -q;' \
            'echo "kvmlet-addr: $(ip -4 -br addr show scope global)"; poweroff'
    fi
fi
wait "$vm_pid"
status=$?
vm_pid=''
elapsed_ms=$(($(now_ms) - start_ms))

lines=$work/stdout.lines
console_text >"$lines"
checked_stdout=$lines
check_status "$status" "$timeout_s"
[[ -n $ready_ms ]] || fail "no ready marker and login prompt before kvmlet exited"
[[ -n $login_ms ]] || fail "no shell prompt after logging in as root"

# The initramfs's hand-off, then systemd. Its own status lines ("Reached target ...") go through
# the tty and the serial getty's start may discard some of them (agetty flushes the tty): the
# ready service, ordered after multi-user.target, is what shows the target was reached.
expect_line '^kvmlet-init: root /dev/vda mounted$'
expect_line 'systemd\[1\]: systemd 252\.'
reject_line '\[FAILED\]'
# The ready service, through the kernel log: "[  163.2] kvmlet-ready: ...".
expect_line '\] kvmlet-ready: uptime [0-9.]+ s$'
expect_line '\] kvmlet-ready: links en\w+/(UP|UNKNOWN|DOWN)$'
expect_line '\] kvmlet-ready: failed units: none$'
reject_line 'kvmlet-ready: no boot-timer write'
# The login and what systemd says once the boot has finished.
expect_line '^Debian GNU/Linux 12 kvmlet-debian ttyS0$'
expect_line '^kvmlet-state: running$'
expect_line '^kvmlet-failed: end$'
expect_line "^kvmlet-addr: en\\w+ +UP +$guest_ip/24 "
# The power-off.
expect_line 'reboot: Power down'
for re in 'Kernel panic' 'BUG:|Oops' 'INFO: rcu_|rcu: INFO:' 'EXT4-fs error' 'I/O error'; do
    reject_line "$re"
done
grep -q 'Guest-boot-time =' "$err" || fail "kvmlet logged no Guest-boot-time (the ready service's write)"
grep -q 'guest powered off' "$err" || fail "kvmlet did not report an ACPI power-off on stderr"
grep -qi 'error' "$err" && fail "stderr has an error line"
if ! fsck.ext4 -fn "$rootimg" >"$work/fsck.log" 2>&1; then
    fail "fsck.ext4 -fn finds the root image unclean: $(tr '\n' ' ' <"$work/fsck.log")"
fi

seconds() { printf '%d.%01d s' $(($1 / 1000)) $(($1 % 1000 / 100)); }
printf 'command (in namespace %s): %s\n' "$ns" "${cmd[*]}"
printf 'ready marker and login prompt seen after %s, shell after %s, power-off (status %d) after %s\n' \
    "$(seconds "${ready_ms:-0}")" "$(seconds "${login_ms:-0}")" "$status" "$(seconds "$elapsed_ms")"
grep -h 'Guest-boot-time' "$err"
grep -aE '(Run /init|kvmlet-init: |kvmlet-ready: |^kvmlet-(state|failed|addr): )' "$lines"
if ((${#failures[@]} == 0)); then
    echo "PASS"
    exit 0
fi
extra=()
if [[ ${KVMLET_KVM_HOST_ROUTE:-} == emulated ]]; then
    dmesg 2>/dev/null | tail -n 40 >"$work/host-dmesg"
    extra=("the emulated KVM host's kernel log (last 40 lines)" "$work/host-dmesg")
fi
report_failures "$out" "$err" "dnsmasq log" "$work/dnsmasq.log" "${extra[@]}"
exit 1
