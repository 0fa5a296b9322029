#!/usr/bin/env bash
# Runs the boot_timer guest with --timeline and checks the JSON: the boot-timer write is recorded
# once, between the first KVM_RUN and process exit; phases are in time order where the boot
# protocol fixes it; the exits per phase add up to the totals.
#   timeline.sh KVMLET BOOT_TIMER_ELF
set -uo pipefail
kvmlet=$1 guest=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/run_guest.sh" --vmm "$kvmlet" --guest "$guest" --status 0 --stderr "Guest-boot-time =" \
    -- --timeline "$tmp/timeline.json" || exit $?
python3 - "$tmp/timeline.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["schema"] == "kvmlet-timeline/1", doc["schema"]
names = [p["name"] for p in doc["phases"]]
at = {p["name"]: p["wall_us"] for p in doc["phases"]}
assert len(names) == len(set(names)), f"a phase recorded twice: {names}"
for need in ["process_start", "args_parsed", "vm_created", "memory_ready", "devices_ready",
             "kernel_loaded", "first_kvm_run", "boot_timer", "shutdown_request", "process_exit"]:
    assert need in at, f"phase {need} missing: {names}"
order = ["process_start", "args_parsed", "vm_created", "memory_ready", "devices_ready",
         "kernel_loaded", "first_kvm_run", "shutdown_request", "process_exit"]
for a, b in zip(order, order[1:]):
    assert at[a] <= at[b], f"{a} at {at[a]} us after {b} at {at[b]} us"
assert at["first_kvm_run"] <= at["boot_timer"] <= at["process_exit"], at
exits = doc["exits"]
for reason, total in exits["total"].items():
    summed = sum(counts[reason] for phase, counts in exits.items() if phase != "total")
    assert summed == total, f"{reason}: phases add up to {summed}, total says {total}"
assert exits["total"]["pio"] > 0, "the guest's port writes were not counted"
assert doc["stop"]["kind"] == "reset", doc["stop"]
print(f"timeline ok: boot_timer at {at['boot_timer']} us, {sum(exits['total'].values())} exits")
PY
