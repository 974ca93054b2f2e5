# bench/common/switch.sh — one way for the bench scripts to run a switch.
# Sourced (not run) by bench/sweep.sh, bench/auth_cost.sh, bench/headline.sh
# and bench/compare/run. Needs P (the payswitch binary) set by the caller.
#
#   switch_format DATA SHARDS [format flags...]
#                              a fresh data dir (removed first)
#   switch_keys DATA KEYDIR NAME
#                              issues NAME-admin and NAME-acquirer into DATA's
#                              client store; keys at KEYDIR/admin.key and
#                              KEYDIR/acquirer.key (mode 0600)
#   switch_start DATA LISTEN LOG [start flags...]
#                              starts `payswitch start` in the background
#                              (SWITCH_PID), then waits until it answers a
#                              balance read (signed with SWITCH_PROBE_KEY when
#                              set); exits 1 with the log's tail when it dies
#                              or does not answer within 20 s
#   switch_stop                SIGTERM, waits, exits 1 unless it stopped cleanly
#   switch_cleanup             for an EXIT trap: stops a switch still running
#                              (SIGTERM, then SIGKILL after 10 s)
#
# Messages are prefixed with SWITCH_WHO (default: the script's name).

SWITCH_PID=""
SWITCH_PROBE_KEY="${SWITCH_PROBE_KEY:-}"
SWITCH_WHO="${SWITCH_WHO:-$(basename "$0")}"

switch_format() {
  local data=$1 shards=$2
  shift 2
  rm -rf "$data"
  "$P" format "$data" --shards "$shards" "$@" >/dev/null
}

switch_keys() {
  local data=$1 keydir=$2 name=$3 role
  mkdir -p "$keydir"
  for role in admin acquirer; do
    rm -f "$keydir/$role.key"
    "$P" client add "$name-$role" --role "$role" --data-dir "$data" \
      --key-out "$keydir/$role.key" >/dev/null
    chmod 600 "$keydir/$role.key"
  done
}

switch_start() {
  local data=$1 listen=$2 log=$3 attempt status
  shift 3
  "$P" start --data-dir "$data" --listen "$listen" --metrics 127.0.0.1:0 "$@" >"$log" 2>&1 &
  SWITCH_PID=$!
  local probe=()
  [[ -n "$SWITCH_PROBE_KEY" ]] && probe=(--key "$SWITCH_PROBE_KEY")
  for attempt in $(seq 1 100); do
    if ! kill -0 "$SWITCH_PID" 2>/dev/null; then
      tail -n 20 "$log" >&2
      echo "$SWITCH_WHO: the switch exited at start" >&2
      SWITCH_PID=""
      exit 1
    fi
    status=0
    "$P" account balance 1 --server "$listen" --timeout-ms 200 --retries 0 \
      "${probe[@]}" >/dev/null 2>&1 || status=$?
    # 0: account 1 exists; 1: a clear answer (not found). Anything else: not up yet.
    if [[ $status -eq 0 || $status -eq 1 ]]; then return 0; fi
    sleep 0.2
  done
  echo "$SWITCH_WHO: the switch does not answer on $listen (attempts: $attempt)" >&2
  exit 1
}

switch_stop() {
  local status=0
  kill -TERM "$SWITCH_PID"
  wait "$SWITCH_PID" || status=$?
  SWITCH_PID=""
  if [[ $status -ne 0 ]]; then
    echo "$SWITCH_WHO: the switch exited $status after SIGTERM" >&2
    exit 1
  fi
}

switch_cleanup() {
  if [[ -n "$SWITCH_PID" ]] && kill -0 "$SWITCH_PID" 2>/dev/null; then
    kill -TERM "$SWITCH_PID" 2>/dev/null || true
    local _
    for _ in $(seq 1 100); do kill -0 "$SWITCH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SWITCH_PID" 2>/dev/null || true
    wait "$SWITCH_PID" 2>/dev/null || true
  fi
  SWITCH_PID=""
}
