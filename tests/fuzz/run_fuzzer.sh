#!/usr/bin/env bash
# Usage: run_fuzzer.sh FUZZER CORPUS_DIR SECONDS [libFuzzer args...]
# Fuzzes for SECONDS from a scratch copy of CORPUS_DIR (the committed corpus is never written);
# crash reproducers land in the current directory. Inputs worth keeping are copied back by hand
# (see README.md).
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: $0 FUZZER CORPUS_DIR SECONDS [libFuzzer args...]" >&2; exit 2; }
fuzzer=$1 corpus=$2 seconds=$3
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/kvmlet-fuzz-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -- "$corpus"/* "$work"/
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@" "$work"
