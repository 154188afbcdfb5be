#!/bin/sh
# Runs one cargo-fuzz target for a while: fuzz/run.sh TARGET SECONDS
# (called by `make fuzz`, see mk/fuzz.mk).
#
# Toolchain: rustup's stable (first on PATH) with RUSTC_BOOTSTRAP=1, which lets
# cargo-fuzz pass -Zsanitizer=address and friends; no nightly needed.
# Corpus: libFuzzer grows fuzz/work/corpus/TARGET (ignored by git) and reads the
# committed seeds in fuzz/corpus/TARGET and the saved crash inputs in
# fuzz/regressions/TARGET (replayed first, so a regression fails the run at once).
# Output: the full log in fuzz/work/TARGET.log, one summary line on stdout and in
# fuzz/work/summary.txt. Exit status non-zero on a crash (its input is kept in
# fuzz/artifacts/TARGET/).
set -eu

t=$1
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
mkdir -p "work/corpus/$t" "artifacts/$t"
dirs="work/corpus/$t corpus/$t"
[ -d "regressions/$t" ] && dirs="$dirs regressions/$t"
log="work/$t.log"
echo "fuzz: $t for ${secs}s (log: fuzz/$log)"
status=0
# shellcheck disable=SC2086
RUSTC_BOOTSTRAP=1 nice -n 10 cargo fuzz run "$t" $dirs -- \
    -max_total_time="$secs" -print_final_stats=1 -timeout=10 >"$log" 2>&1 || status=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
line="$t: ${secs}s, ${execs:-?} execs (${rate:-?}/s), cov ${cov:-?}, exit $status"
echo "$line"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $line" >>work/summary.txt
if [ "$status" -ne 0 ]; then
    echo "fuzz: $t FAILED; last lines of fuzz/$log:" >&2
    tail -n 40 "$log" >&2
fi
exit "$status"
