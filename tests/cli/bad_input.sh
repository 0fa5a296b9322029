#!/usr/bin/env bash
# End-to-end bad-input cases for the kvmlet binary: each must end with the documented exit status
# and exactly one "kvmlet: error:" line naming the problem (README, "Exit status"), never a crash.
#   bad_input.sh KVMLET GOOD_GUEST_ELF
# Cases that get as far as opening /dev/kvm are skipped (77) where it is not usable.
set -uo pipefail
kvmlet=$1 good=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# check NAME STATUS REGEX -- ARGS...: runs kvmlet ARGS, checks the status and the error line.
check() {
    local name=$1 want=$2 regex=$3
    shift 4
    local status=0
    "$kvmlet" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" || status=$?
    local errors
    errors=$(grep -c '^kvmlet: error: ' "$tmp/err" || true)
    if [[ $status -ne $want ]] || [[ $errors -ne 1 ]] || ! grep -qE "^kvmlet: error: .*$regex" "$tmp/err"; then
        echo "FAIL: $name: status $status (want $want), $errors error lines, stderr:"
        sed 's/^/  | /' "$tmp/err"
        failures=$((failures + 1))
    else
        echo "ok: $name: $(grep '^kvmlet: error: ' "$tmp/err")"
    fi
}

# Usage errors: status 2, before any KVM access.
check "no command" 2 "missing command" -- 
check "unknown option" 2 "unknown option --frobnicate" -- run --kernel "$good" --frobnicate
check "zero cpus" 2 "--cpus 0: must be 1 to 64" -- run --kernel "$good" --cpus 0
check "memory beyond the host" 2 "--memory 100T: exceeds host memory" -- run --kernel "$good" --memory 100T
check "missing kernel option" 2 "missing --kernel" -- run --cpus 2
check "disk without a path" 2 "--disk ,readonly: empty path" -- run --kernel "$good" --disk ,readonly
check "disk with an unknown property" 2 "unknown property 'fast'" -- run --kernel "$good" --disk x.img,fast
check "disk id too long" 2 "id longer than 20 bytes" -- run --kernel "$good" --disk x.img,id=abcdefghijklmnopqrstu
check "disk cache mode" 2 "cache maybe: must be writeback or none" -- run --kernel "$good" --disk x.img,cache=maybe
check "seventeen disks" 2 "at most 16 disks" -- run --kernel "$good" $(printf -- '--disk d%s.img ' {1..17})
check "console kind" 2 "--console tty: must be serial, virtio or none" -- run --kernel "$good" --console tty
check "rng rate zero" 2 "--rng-rate 0: must be at least 1 byte per second" -- run --kernel "$good" --rng-rate 0
check "transport kind" 2 "--transport usb: must be pci or mmio" -- run --kernel "$good" --transport usb
check "acpi value" 2 "--acpi maybe: must be on or off" -- run --kernel "$good" --acpi maybe
check "pit value" 2 "--pit 1: must be on or off" -- run --kernel "$good" --pit 1
check "net without a tap" 2 "must start with tap=NAME or tap=auto" -- run --kernel "$good" --net mac=06:00:00:00:00:01
check "net with an unknown property" 2 "unknown property 'speed=10'" -- run --kernel "$good" --net tap=auto,speed=10
check "net tap name too long" 2 "tap name must be 1 to 15 characters" -- run --kernel "$good" --net tap=abcdefghijklmnop
check "nine network interfaces" 2 "at most 8 network interfaces" -- run --kernel "$good" $(printf -- '--net tap=t%s ' {1..9})

# -c first: `<>` opens with O_CREAT and would make /dev/kvm a regular file where it is missing.
if [[ ! -c /dev/kvm ]] || ! { exec 3<>/dev/kvm; } 2>/dev/null; then
    echo "SKIP: /dev/kvm is not usable; the set-up error cases need it"
    exit $((failures ? 1 : 77))
fi
exec 3>&-

# Set-up errors: status 1.
printf 'not a kernel\n' >"$tmp/text"
head -c 40 "$good" >"$tmp/truncated.elf"
: >"$tmp/empty"
check "kernel missing" 1 "kernel: .*/nonexistent: No such file" -- run --kernel "$tmp/nonexistent"
check "kernel is text" 1 "kernel: not an ELF or bzImage" -- run --kernel "$tmp/text"
check "kernel truncated" 1 "kernel: .*truncated" -- run --kernel "$tmp/truncated.elf"
check "kernel empty" 1 "kernel: .* is empty" -- run --kernel "$tmp/empty"
check "kernel is a directory" 1 "kernel: .*: not a regular file \\(a directory\\)" -- run --kernel "$tmp"
check "initrd missing" 1 "initrd: .*No such file" -- run --kernel "$good" --initrd "$tmp/nonexistent"
truncate -s 8M "$tmp/big.initrd"
check "initrd larger than RAM" 1 "initrd: .*does not fit" -- run --kernel "$good" --memory 4M --initrd "$tmp/big.initrd"
check "disk missing" 1 "disk .*/nonexistent.img: .*No such file" -- run --kernel "$good" --disk "$tmp/nonexistent.img"
truncate -s 1M "$tmp/locked.img"
exec 4<"$tmp/locked.img"
flock -x 4  # as another VM holding the image would
check "disk in use" 1 "disk .*/locked.img: in use by another process" -- run --kernel "$good" --disk "$tmp/locked.img"
exec 4<&-
# Checked before any TAP is opened or created.
check "net MAC multicast" 1 "net: MAC '01:00:5e:00:00:01': expected six hex bytes" -- run --kernel "$good" --net tap=auto,mac=01:00:5e:00:00:01
check "net MAC malformed" 1 "net: MAC '06:00:00:00:00': expected six hex bytes" -- run --kernel "$good" --net tap=auto,mac=06:00:00:00:00
check "cmdline longer than the kernel takes" 1 "cmdline: .*at most" -- run --kernel "$good" \
    --cmdline "$(printf 'x%.0s' {1..3000})"

((failures == 0)) || { echo "$failures case(s) failed"; exit 1; }
