#!/usr/bin/env bash
# make profile: a CPU profile of calsync's initial sync alone, inside `calsync-local bench`
# (the `profiling` build: release with symbols). perf attaches when the bench prints its
# start marker and stops at its end marker; the flat profile goes to target/profile/.
# Needs the local stack (run through with-stack.sh) and Debian's linux-perf.
# PERF_FREQ= samples a second (997); PERF_CALLGRAPH=1 records DWARF call graphs, for
# `perf report --children` (what each function costs with its callees).
# PROFILE_SCALE=1 profiles `bench-scale --sizes $EVENTS --peers-up-to 0` instead (calsync
# alone, no floor or vdirsyncer: the size at which CPU per event grows, e.g. EVENTS=10000).
set -euo pipefail
events=${EVENTS:-1000}
out=target/profile
mkdir -p "$out"
: >"$out/bench.log"
if [ -n "${PROFILE_SCALE:-}" ]; then
  args=(bench-scale --sizes "$events" --peers-up-to 0)
else
  args=(bench --events "$events" --no-google)
fi
./target/profiling/calsync-local "${args[@]}" >"$out/bench.log" 2>&1 &
bench=$!
grep -m1 -q "initial sync starts" < <(tail --pid="$bench" -n +1 -f "$out/bench.log") || {
  echo "the bench ended before its initial sync:"; cat "$out/bench.log"; exit 1; }
perf record -F "${PERF_FREQ:-997}" ${PERF_CALLGRAPH:+--call-graph dwarf,16384} -p "$bench" -o "$out/perf.data" 2>"$out/perf.log" &
perf=$!
grep -m1 -q "initial sync done" < <(tail --pid="$bench" -n +1 -f "$out/bench.log")
kill -INT "$perf"
wait "$perf" || true
wait "$bench"
# Flat (self) profiles; `sed -n` reads the whole report, where `head` would end the pipe early.
perf report -i "$out/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -n 1,8p >"$out/profile.txt"
perf report -i "$out/perf.data" --stdio --no-children -g none --sort sym 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -n 1,40p >>"$out/profile.txt"
if [ -n "${PERF_CALLGRAPH:-}" ]; then
  # With callees: the calsync and SDK frames (closures and inlined frames left out).
  { echo "--- with callees"; perf report -i "$out/perf.data" --stdio --children -g none --sort sym 2>/dev/null |
      grep -E 'calsync::|aws_smithy_runtime::client::orchestrator::try_op|url::ParseOptions::parse' | grep -v inlined | sed -n 1,40p; } >>"$out/profile.txt"
fi
grep -E "initial sync (starts|done)" "$out/bench.log"
cat "$out/profile.txt"
