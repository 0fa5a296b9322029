#!/usr/bin/env bash
# Checks a tiny guest's ELF without running it:
#   check_guest_elf.sh READELF OBJDUMP GUEST.elf
# - an ELF64 x86-64 executable (ET_EXEC) whose PT_LOAD segments all lie in [0x10000, 128 MiB)
#   (kvmlet's default RAM) and whose entry point is inside one of them;
# - no instruction the development host cannot emulate at CPL0 (/work/shared/HOST.md): no int3
#   or int n, no x87/SSE/AVX register use, no xsave family, popcnt, BMI, ADX, crc32, rdtscp,
#   monitor/mwait, lar/lsl/verr/verw, stac/clac, vmcall.
# Real-mode code in .trampoline is disassembled as 16-bit code up to `trampoline_code_end`
# when the guest defines it (the rest of that section is data).
set -uo pipefail
readelf=$1 objdump=$2 elf=$3
fail() { echo "FAIL: $elf: $*"; exit 1; }

header=$("$readelf" -hW "$elf") || fail "not an ELF file"
grep -q 'Class:[[:space:]]*ELF64' <<<"$header" || fail "not ELF64"
grep -q 'Type:[[:space:]]*EXEC' <<<"$header" || fail "not ET_EXEC"
grep -q 'Machine:[[:space:]]*Advanced Micro Devices X86-64' <<<"$header" || fail "not x86-64"
entry=$(sed -n 's/.*Entry point address:[[:space:]]*\(0x[0-9a-f]*\).*/\1/p' <<<"$header")

ram_end=$((128 << 20)) loads=0 entry_ok=0
while read -r type offset vaddr paddr filesz memsz rest; do
    [[ $type == LOAD ]] || continue
    loads=$((loads + 1))
    ((paddr >= 0x10000)) || fail "PT_LOAD at paddr $paddr is below 0x10000"
    ((paddr + memsz <= ram_end)) || fail "PT_LOAD at paddr $paddr size $memsz ends beyond 128 MiB"
    ((filesz <= memsz)) || fail "PT_LOAD at paddr $paddr has filesz > memsz"
    ((entry >= paddr && entry < paddr + memsz)) && entry_ok=1
done < <("$readelf" -lW "$elf")
((loads > 0)) || fail "no PT_LOAD segment"
((entry_ok)) || fail "entry point $entry is outside every PT_LOAD segment"

forbidden='^(int3|int|into|fwait|wait|f[a-z0-9]*|cmpxchg16b|xsave[a-z0-9]*|xrstor[a-z0-9]*|xgetbv|[lf]dmxcsr|[ls]tmxcsr|popcnt|lzcnt|tzcnt|andn|bextr|blsi|blsmsk|blsr|bzhi|pdep|pext|[sr][ah][lr]x|rorx|mulx|adcx|adox|crc32[a-z]*|rdtscp|monitor[a-z]*|mwait[a-z]*|lar|lsl|verr|verw|stac|clac|invpcid|clwb|rdpkru|vmcall|vmmcall)[bwlq]?$'
check_code() {  # objdump output on stdin, the section name as $1
    local bad
    bad=$(awk -F'\t' 'NF >= 3 { split($3, w, " "); m = w[1];
                         if (m ~ /^(rep|repz|repnz|lock|data16|addr32|cs|ds|es|ss|fs|gs)$/) m = w[2];
                         print m "\t" $0 }' |
          awk -F'\t' -v re="$forbidden" '$1 ~ re || $0 ~ /%[xyz]mm|%st/ { $1 = ""; print }')
    [[ -z $bad ]] || fail "instructions that cannot be emulated in $1:"$'\n'"$bad"
}
"$objdump" -d -j .text "$elf" | check_code .text || exit 1
if "$readelf" -SW "$elf" | grep -q '\.trampoline'; then
    stop=$("$readelf" -sW "$elf" | awk '$8 == "trampoline_code_end" { print "0x" $2 }')
    [[ -n $stop ]] || fail ".trampoline without a trampoline_code_end symbol"
    "$objdump" -d -m i8086 -j .trampoline --stop-address="$stop" "$elf" |
        check_code .trampoline || exit 1
fi
echo "OK: $elf"
