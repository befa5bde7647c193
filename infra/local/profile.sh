#!/usr/bin/env bash
# make profile: a CPU profile of calsync's initial sync alone, inside `calsync-local bench`
# (the `profiling` build: release with symbols). perf attaches when the bench prints its
# start marker and stops at its end marker; the flat profile goes to target/profile/.
# Needs the local stack (run through with-stack.sh) and Debian's linux-perf.
# PERF_FREQ= samples a second (997); PERF_CALLGRAPH=1 records DWARF call graphs, for
# `perf report --children` (what each function costs with its callees).
set -euo pipefail
events=${EVENTS:-1000}
out=target/profile
mkdir -p "$out"
: >"$out/bench.log"
./target/profiling/calsync-local bench --events "$events" --no-google >"$out/bench.log" 2>&1 &
bench=$!
grep -m1 -q "initial sync starts" < <(tail --pid="$bench" -n +1 -f "$out/bench.log") || {
  echo "the bench ended before its initial sync:"; cat "$out/bench.log"; exit 1; }
perf record -F "${PERF_FREQ:-997}" ${PERF_CALLGRAPH:+--call-graph dwarf,16384} -p "$bench" -o "$out/perf.data" 2>"$out/perf.log" &
perf=$!
grep -m1 -q "initial sync done" < <(tail --pid="$bench" -n +1 -f "$out/bench.log")
kill -INT "$perf"
wait "$perf" || true
wait "$bench"
perf report -i "$out/perf.data" --stdio --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8 >"$out/profile.txt"
perf report -i "$out/perf.data" --stdio --sort sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 >>"$out/profile.txt"
grep -E "initial sync (starts|done)" "$out/bench.log"
cat "$out/profile.txt"
