#!/usr/bin/env bash
# `make fuzz SECONDS=N` (TARGETS="ical …" to pick targets, MAX_LEN=N to cap input size):
# seed each cargo-fuzz target from ../shared/corpus (and the
# regression inputs under fuzz/regressions/<target>/), run it for N seconds, and print the
# executions. A crash leaves its input under fuzz/artifacts/<target>/: copy it to
# fuzz/regressions/<target>/, where `cargo test -p calsync --test fuzz_regressions` replays
# it in `make test`.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
CORPUS_ROOT="../../shared/corpus"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked
fi
seed() { # target, find arguments...
  local t="$1"; shift
  mkdir -p "corpus/$t"
  if [ -d "$CORPUS_ROOT" ]; then
    find "$CORPUS_ROOT" "$@" -type f -size -64k -print0 2>/dev/null | xargs -0 -I{} cp -n {} "corpus/$t/" 2>/dev/null || true
  fi
  if [ -d "regressions/$t" ]; then cp -n regressions/"$t"/* "corpus/$t/" 2>/dev/null || true; fi
}
seed ical -name '*.ics'
seed multistatus -name '*.xml'
seed google_event -path '*google*' -name '*.json'
seed batch -path '*batch*'
seed jscalendar -path '*jscalendar*' -name '*.json'
total=0
failed=""
for t in ${TARGETS:-ical multistatus google_event batch jscalendar}; do
  log="$(mktemp)"
  # MAX_LEN=N caps input size (libFuzzer -max_len): more executions a second on 2 cores.
  if cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 ${MAX_LEN:+-max_len=$MAX_LEN} >"$log" 2>&1; then
    runs="$(grep -aoE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1 || echo 0)"
    echo "fuzz target $t: ${runs:-0} executions in ${SECONDS_EACH} s, no crash"
    total=$((total + ${runs:-0}))
  else
    grep -a -E "panicked at|SUMMARY" -A3 "$log" | head -20
    echo "fuzz target $t: CRASH (input under fuzz/artifacts/$t/)"
    failed="$failed $t"
  fi
  rm -f "$log"
done
echo "fuzz: $total executions in total; crashed:${failed:- none}"
[ -z "$failed" ]
