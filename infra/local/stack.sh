#!/usr/bin/env bash
# Local stack for calsync: moto (AWS), Radicale and Xandikos (CalDAV), all on loopback.
#   stack.sh start   fresh state: wipes .local/, starts the servers, creates the
#                    CloudFormation stack from infra/template.yaml in moto
#   stack.sh stop    stops what start started
#   stack.sh status  prints what runs
# Addresses: moto 127.0.0.1:4566, Radicale 127.0.0.1:5232, Xandikos 127.0.0.1:8080
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
STATE="${CALSYNC_LOCAL_DIR:-$ROOT/.local}"
VENV="$ROOT/.venv"
: "${MOTO_PORT:=4566}" "${RADICALE_PORT:=5232}" "${XANDIKOS_PORT:=8080}"

stop_one() {
  local name=$1 pidfile="$STATE/$1.pid"
  if [[ -f $pidfile ]]; then
    local pid; pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    echo "stopped $name"
  fi
}

# Readiness probe: any HTTP answer (even 401/404) means the server is up.
is_up() {
  "$VENV/bin/python" - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

wait_port() {
  local name=$1 url=$2
  for _ in $(seq 1 300); do
    if is_up "$url"; then return 0; fi
    sleep 0.1
  done
  echo "ERROR: $name did not answer at $url; log: $STATE/$name.log" >&2
  tail -20 "$STATE/$name.log" >&2 || true
  exit 1
}

start() {
  stop
  rm -rf "$STATE"
  mkdir -p "$STATE/radicale/collections" "$STATE/xandikos"
  # Radicale: htpasswd (plain) users for the demo and the tests; see README.
  printf 'alice:alice-demo-pw\nbob:bob-demo-pw\n' > "$STATE/radicale/users"
  cat > "$STATE/radicale/config" <<CONF
[server]
hosts = 127.0.0.1:$RADICALE_PORT
max_content_length = 100000000
[auth]
type = htpasswd
htpasswd_filename = $STATE/radicale/users
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = $STATE/radicale/collections
[logging]
level = warning
CONF
  # The recorder (used by tests/tests/e2e/policies.rs) writes under the state folder.
  # moto_server.py is moto's server with transactions rolled back by index (see the file).
  (MOTO_RECORDER_FILEPATH="$STATE/moto-recording.jsonl" nohup "$VENV/bin/python" "$ROOT/infra/local/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" > "$STATE/moto.log" 2>&1 & echo $! > "$STATE/moto.pid")
  (nohup "$VENV/bin/radicale" --config "$STATE/radicale/config" > "$STATE/radicale.log" 2>&1 & echo $! > "$STATE/radicale.pid")
  (nohup "$VENV/bin/xandikos" serve -d "$STATE/xandikos" --defaults -l 127.0.0.1 -p "$XANDIKOS_PORT" \
      --current-user-principal /alice/ > "$STATE/xandikos.log" 2>&1 & echo $! > "$STATE/xandikos.pid")
  wait_port moto "http://127.0.0.1:$MOTO_PORT/moto-api/"
  wait_port radicale "http://127.0.0.1:$RADICALE_PORT/"
  wait_port xandikos "http://127.0.0.1:$XANDIKOS_PORT/"
  "$VENV/bin/python" "$ROOT/infra/local/create_stack.py" "http://127.0.0.1:$MOTO_PORT" "$ROOT/infra/template.yaml"
  echo "local stack up: moto :$MOTO_PORT, radicale :$RADICALE_PORT, xandikos :$XANDIKOS_PORT"
}

stop() {
  for s in xandikos radicale moto; do stop_one "$s"; done
}

status() {
  for s in moto radicale xandikos; do
    if [[ -f $STATE/$s.pid ]] && kill -0 "$(cat "$STATE/$s.pid")" 2>/dev/null; then
      echo "$s: running (pid $(cat "$STATE/$s.pid"))"
    else
      echo "$s: stopped"
    fi
  done
}

"${1:-status}"
