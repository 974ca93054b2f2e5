#!/usr/bin/env bash
# The README's main command: install what is missing, build (release), start
# the switch on its embedded default (UDP sockets) over a fresh data dir,
# with authentication on (two client keys issued into the data dir: an admin
# key for setting up accounts, an acquirer key for the payments), drive it
# with a mixed micro-payment workload for ~20 s (progress line each
# second), print the summary, stop it with SIGTERM and audit its data dir.
# Exits non-zero on any failure; always stops what it started.
#   scripts/main.sh                 # 20 s, closed loop, 128 requests per datagram
#   DURATION=5 scripts/main.sh      # shorter
#   LOAD_ARGS="--rate 300k" scripts/main.sh   # open loop instead
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh release

duration="${DURATION:-20}"
port="${PORT:-7000}"
metrics_port="${METRICS_PORT:-9100}"
work=$(mktemp -d /tmp/payswitch-main-XXXXXX)
data="$work/data"
pid=""

cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    echo "main: stopping the switch (pid $pid)" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== format $data (2 shards)"
build/engine/payswitch format "$data" --shards 2

# Authentication is on (never --insecure-no-auth here): the operator issues
# one key per client. The keys live next to the data dir, mode 0600.
admin_key="$work/admin.key"
acquirer_key="$work/acquirer.key"
echo "== client keys: admin (accounts, deposits) and acquirer (payments)"
for role in admin acquirer; do
  build/engine/payswitch client add "main-$role" --role "$role" --data-dir "$data" \
    --key-out "$work/$role.key"
  chmod 600 "$work/$role.key"
done

echo "== start the switch on 127.0.0.1:$port (UDP sockets, durable mode), metrics :$metrics_port"
build/engine/payswitch start --data-dir "$data" --listen "127.0.0.1:$port" \
  --metrics "127.0.0.1:$metrics_port" >"$work/switch.log" 2>&1 &
pid=$!
for attempt in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$work/switch.log" >&2
    echo "main: the switch exited at start" >&2
    pid=""
    exit 1
  fi
  status=0
  build/engine/payswitch account balance 1 --server "127.0.0.1:$port" --timeout-ms 200 \
    --retries 0 --key "$admin_key" >/dev/null 2>&1 || status=$?
  # 0 or 1 (declined: no such account) both mean it answers; 3 is no answer.
  if [[ $status -eq 0 || $status -eq 1 ]]; then break; fi
  if [[ $attempt -eq 100 ]]; then echo "main: the switch does not answer" >&2; exit 1; fi
  sleep 0.2
done

echo "== drive it: coffee=60,bills=10,news=30 for ${duration} s (payswitch-load)"
load_status=0
# shellcheck disable=SC2086
build/bench/payswitch-load --server "127.0.0.1:$port" --duration "$duration" \
  --key "$acquirer_key" --admin-key "$admin_key" \
  --window 8192 --per-datagram 128 --mix coffee=60,bills=10,news=30 --zipf 1.0 \
  --broke-share 0.05 --retry-share 0.01 --refund-share 0.01 --hold-share 0.05 \
  --json "$work/load.json" --plot "$work/load.png" ${LOAD_ARGS:-} || load_status=$?

echo "== stop the switch (SIGTERM: drain, sync, snapshot)"
kill -TERM "$pid"
stop_status=0
wait "$pid" || stop_status=$?
pid=""
tail -n 3 "$work/switch.log"

echo "== audit $data"
audit_status=0
build/engine/payswitch audit "$data" || audit_status=$?

# Keep the figures, not the journals (KEEP_DATA=1 keeps those too).
if [[ -z "${KEEP_DATA:-}" && $audit_status -eq 0 ]]; then rm -rf "$data" "$admin_key" "$acquirer_key"; fi

echo
echo "main: load generator exit $load_status, switch exit $stop_status, audit exit $audit_status"
echo "main: results in $work (load.json, load.png, switch.log)"
if [[ $load_status -ne 0 || $stop_status -ne 0 || $audit_status -ne 0 ]]; then
  echo "main: FAILED" >&2
  exit 1
fi
echo "main: PASS"
