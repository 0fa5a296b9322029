#!/usr/bin/env bash
# Boots a Linux guest image from guest-images/ under kvmlet and checks what it prints:
#   run_linux.sh --vmm KVMLET --image minimal|debian --kernel vmlinux|bzImage
#                [run_guest.sh options...] [-- kvmlet run options...]
# The image directory comes from `guest-images/build --print IMAGE`; when the image has not been
# built (tools/test builds it), the test is skipped (exit 77) with the command to build it. The
# initrd of the image is always passed. Prints how long the boot took: these runs are slow on
# hosts that emulate guest kernel code (../shared/HOST.md), and the time is worth recording.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/report.sh
source "$here/../lib/report.sh"

vmm='' image='' kernel='' pass=()
while (($#)); do
    case $1 in
        --vmm) vmm=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        *) pass+=("$1"); shift ;;
    esac
done
[[ -n $vmm && -n $image && -n $kernel ]] || { echo "usage: run_linux.sh --vmm K --image I --kernel F ..."; exit 2; }

find_guest_image "$image" "$kernel"

# run_guest.sh's own options come first; kvmlet's options follow its `--`.
guest_opts=() vmm_opts=()
for ((i = 0; i < ${#pass[@]}; i++)); do
    if [[ ${pass[i]} == -- ]]; then
        vmm_opts=("${pass[@]:i+1}")
        break
    fi
    guest_opts+=("${pass[i]}")
done

start_ms=$(($(date +%s%N) / 1000000))
"$here/../guests/run_guest.sh" --vmm "$vmm" --guest "$dir/$kernel" "${guest_opts[@]}" \
    -- --initrd "$dir/initrd.cpio" "${vmm_opts[@]}"
status=$?
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
printf 'linux boot of %s/%s took %d.%01d s (test status %d)\n' "$image" "$kernel" \
    $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$status"
exit $status
