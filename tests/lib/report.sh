# shellcheck shell=bash
# Sourced by the test scripts that run a guest and collect failed checks in an array
# `failures`: what they print when a check failed.
#
# report_failures OUT ERR [TITLE FILE]...: the guest's stdout and stderr (cat -v, so \r shows
# as ^M), then each extra file under its title (a missing one is skipped), then one
# "FAIL: <check>" line per entry of `failures`.
report_failures() {
    local out=$1 err=$2 f
    shift 2
    echo "----- stdout -----"
    cat -v "$out"
    echo "----- stderr -----"
    cat -v "$err"
    while (($# >= 2)); do
        echo "----- $1 -----"
        cat "$2" 2>/dev/null
        shift 2
    done
    echo "------------------"
    for f in "${failures[@]}"; do echo "FAIL: $f"; done
}
