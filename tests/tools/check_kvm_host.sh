#!/usr/bin/env bash
# tools/kvm-host end to end, through the emulated route whatever this host has (--emulated):
# one command inside checks what the emulated host promises (the same directory and
# environment, a usable /dev/kvm, /dev/fd, TMPDIR on ext4 with FIFOs and O_DIRECT, files
# written landing on this host), and the launcher must pass on its output and exit status;
# then a --timeout that runs out must end with 124 and leave no QEMU behind.
#   check_kvm_host.sh WORKDIR
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$1
rm -rf "$work"
mkdir -p "$work"
cd "$work" || exit 1
# shellcheck source=tests/lib/report.sh
source "$root/tests/lib/report.sh"

cat >inside.sh <<'EOF'
echo "cwd=$PWD"
echo "env=$KVMLET_CHECK_VALUE"
echo "route=$KVMLET_KVM_HOST_ROUTE"
[[ -c /dev/kvm ]] && python3 -c '
import fcntl, os
fd = os.open("/dev/kvm", os.O_RDWR)
print("kvm api", fcntl.ioctl(fd, 0xAE00))' || echo "no usable /dev/kvm"
[[ -e /dev/fd/0 ]] && echo "dev-fd ok"
echo "tmpdir-fs=$(stat -f -c %T "$TMPDIR")"
mkfifo "$TMPDIR/fifo" && echo "fifo ok"
dd if=/dev/zero of="$TMPDIR/direct" bs=4096 count=4 oflag=direct status=none && echo "o_direct ok"
echo written >"$PWD/from-inside"
echo "to stderr" >&2
exit 7
EOF

status=0
KVMLET_CHECK_VALUE="a b 'c' \$d" "$root/tools/kvm-host" --emulated -- bash inside.sh \
    >out 2>err || status=$?
checked_stdout=$work/out
((status == 7)) || fail "exit status $status, want the command's 7"
expect_line "^cwd=$work\$"
expect_line "^env=a b 'c' \\\$d\$"
expect_line "^route=emulated\$"
expect_line "^kvm api 12\$"
expect_line "^dev-fd ok\$"
expect_line "^tmpdir-fs=ext2/ext3\$"
expect_line "^fifo ok\$"
expect_line "^o_direct ok\$"
reject_line "to stderr"
grep -q "^to stderr\$" err || fail "stderr has no 'to stderr'"
grep -q "running in an emulated KVM host" err || fail "the route was not said on stderr"
[[ $(cat from-inside 2>/dev/null) == written ]] || fail "the file written inside is not here"

# A time limit that runs out, during the emulated host's boot; nothing of that run is left.
start=$SECONDS
status=0
"$root/tools/kvm-host" --emulated --timeout 3 -- sleep 600 >out-timeout 2>err-timeout &
launcher=$!
wait "$launcher" || status=$?
((status == 124)) || fail "--timeout: exit status $status, want 124"
((SECONDS - start < 60)) || fail "--timeout 3 took $((SECONDS - start)) s"
grep -q "time limit of 3 s" err-timeout || fail "--timeout: no error line on stderr"
pgrep -P "$launcher" >/dev/null && fail "--timeout: a child of the launcher (QEMU) still runs"
runs=${KVMLET_CACHE:-$HOME/.cache/kvmlet}/kvm-host-runs
grep -lx "$launcher" "$runs"/run.*/launcher.pid 2>/dev/null | grep -q . &&
    fail "--timeout: the run directory is left in $runs"

if ((${#failures[@]})); then
    report_failures out err "stderr of the --timeout run" err-timeout
    exit 1
fi
echo "ok: status, output, directory, environment, /dev/kvm, TMPDIR and --timeout as promised"
