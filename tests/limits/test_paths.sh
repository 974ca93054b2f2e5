#!/usr/bin/env bash
# tests/limits: the one path limit (JOURNAL_PATH_MAX, ledger/journal.h) and the
# audit's check of a shard dir's names, against the real binary.
#   test_paths.sh too-long      format, start and audit refuse a data dir one byte
#                               longer than the limit, naming the limit
#   test_paths.sh unknown-file  the audit fails (exit 1) on a file a shard dir
#                               should not hold, naming it; a snapshot's temp file
#                               is noted and passes
#   test_paths.sh max-length    a data dir of exactly the limit works end to end:
#                               format, start, payments, kill -9, start again (the
#                               balances survived), stop, audit passes
# PAYSWITCH is the binary's path (tests/limits/meson.build).
set -euo pipefail
case_name="${1:?usage: test_paths.sh too-long|unknown-file|max-length}"
: "${PAYSWITCH:?PAYSWITCH is not set}"
LIMIT=461   # JOURNAL_DATA_DIR_BYTES_MAX: JOURNAL_PATH_MAX 512 - 1 - 50

root=$(mktemp -d /tmp/payswitch-paths-XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [[ -z "${PAYSWITCH_KEEP:-}" ]]; then rm -rf "$root"; fi
}
trap cleanup EXIT

fail() { echo "FAIL ($case_name): $*" >&2; tail -n 30 "$root/switch.log" >&2 2>/dev/null || true; exit 1; }

# A path of exactly $1 bytes under $root, in components of at most 200 bytes
# (NAME_MAX is 255); its parent is created, the last component is not.
path_of_length() {
  local want=$1 path=$root
  while (( ${#path} < want )); do
    local room=$(( want - ${#path} - 1 ))
    local part=$(( room > 200 ? 200 : room ))
    # Never leave a remainder of 1 byte: it could not hold "/" and a name.
    if (( room - part == 1 )); then part=$(( part - 1 )); fi
    path="$path/$(printf 'd%.0s' $(seq 1 "$part"))"
  done
  (( ${#path} == want )) || { echo "path of ${#path} bytes, not $want" >&2; exit 1; }
  mkdir -p "$(dirname "$path")"
  printf '%s' "$path"
}

format_small() {
  "$PAYSWITCH" format "$1" --shards 2 --accounts 1000 --transfers 10000 --holds 100 || return
  # Client keys: the switch answers nobody else (netio/PROTOCOL.md).
  rm -f "$root/admin.key" "$root/acquirer.key"
  "$PAYSWITCH" client add admin --role admin --data-dir "$1" --key-out "$root/admin.key" \
    && "$PAYSWITCH" client add acquirer --role acquirer --data-dir "$1" \
      --key-out "$root/acquirer.key"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_switch() {
  port=$(free_port)
  "$PAYSWITCH" start --data-dir "$1" --listen "127.0.0.1:$port" --metrics 127.0.0.1:0 \
    >>"$root/switch.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || fail "the switch exited at start"
    local status=0
    "$PAYSWITCH" account balance 1 --server "127.0.0.1:$port" --timeout-ms 200 --retries 0 \
      --key "$root/admin.key" >/dev/null 2>&1 || status=$?
    if [[ $status -le 1 ]]; then return 0; fi
    sleep 0.2
  done
  fail "the switch did not answer within 20 s"
}

account() {
  local key="$root/acquirer.key"
  case "$1" in open|deposit|limits|freeze|unfreeze|close|balance) key="$root/admin.key" ;; esac
  "$PAYSWITCH" account "$@" --server "127.0.0.1:$port" --timeout-ms 2000 --retries 5 --key "$key"
}

# Expect a refusal: exit status $1, and stderr naming the limit.
expect_refusal() {
  local want=$1 what=$2
  shift 2
  local status=0
  "$@" >"$root/out.log" 2>&1 || status=$?
  cat "$root/out.log"
  [[ $status -eq $want ]] || fail "$what: exit $status, expected $want"
  grep -q "is $((LIMIT + 1)) bytes long; the limit is $LIMIT bytes" "$root/out.log" \
    || fail "$what: the error does not name the limit"
}

case "$case_name" in
  too-long)
    long=$(path_of_length $((LIMIT + 1)))
    expect_refusal 1 format format_small "$long"
    [[ ! -e "$long" ]] || fail "format created the data dir it refused"
    expect_refusal 2 start "$PAYSWITCH" start --data-dir "$long" --listen 127.0.0.1:1 \
      --metrics 127.0.0.1:0
    printf 'data-dir = %s\n' "$long" >"$root/switch.conf"
    expect_refusal 2 "start --config" "$PAYSWITCH" start --config "$root/switch.conf"
    expect_refusal 2 audit "$PAYSWITCH" audit "$long"
    echo "format, start (flag and config file) and audit refuse a $((LIMIT + 1))-byte data dir"
    ;;
  unknown-file)
    data="$root/data"
    format_small "$data" >/dev/null
    "$PAYSWITCH" audit "$data" >"$root/audit.log" 2>&1 || fail "a fresh dir fails the audit"
    # A snapshot cut short by a crash: noted, not a violation.
    : >"$data/shard-000/snapshot-7.snap.tmp"
    "$PAYSWITCH" audit "$data" >"$root/audit.log" 2>&1 \
      || fail "a snapshot temp file fails the audit: $(cat "$root/audit.log")"
    grep -q "note: $data/shard-000/snapshot-7.snap.tmp: temp file" "$root/audit.log" \
      || fail "the snapshot temp file is not reported"
    # What a truncated path wrote (journal-000000), names the writers never
    # spell (journal-1.seg), and any stray file: each fails, named.
    for name in journal-000000 journal-1.seg snapshot-01.snap notes.txt; do
      : >"$data/shard-001/$name"
      status=0
      "$PAYSWITCH" audit "$data" >"$root/audit.log" 2>&1 || status=$?
      cat "$root/audit.log"
      # 1 (a violation); 2 where the scan also trips on the name: the segment
      # list reads journal-1.seg as segment 1 and finds segment 0 missing.
      want=1; [[ $name == journal-1.seg ]] && want=2
      [[ $status -eq $want ]] || fail "$name: audit exit $status, expected $want"
      grep -q "AUDIT FAILED: [0-9]* violation(s); first: $data/shard-001/$name: not a file" \
        "$root/audit.log" || fail "$name: the audit does not name the file first"
      rm "$data/shard-001/$name"
    done
    status=0
    : >"$data/shard-000/stray"
    "$PAYSWITCH" audit "$data" --json >"$root/audit.json" 2>&1 || status=$?
    [[ $status -eq 1 ]] || fail "--json: audit exit $status, expected 1"
    grep -q "\"first_violation\":\"$data/shard-000/stray: not a file" "$root/audit.json" \
      || fail "--json: the file is not named"
    echo "the audit fails on 5 unrecognised names and passes a snapshot temp file"
    ;;
  max-length)
    data=$(path_of_length $LIMIT)
    format_small "$data" >"$root/format.log" 2>&1 || fail "format: $(cat "$root/format.log")"
    start_switch "$data"
    account open 1 --funding >/dev/null || fail "open 1"
    account open 42 >/dev/null || fail "open 42"
    account open 7 --merchant >/dev/null || fail "open 7"
    account deposit 1 42 10000 >/dev/null || fail "deposit"
    account pay 42 7 350 >/dev/null || fail "pay"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    # Every acknowledged payment is in a journal segment named as it should be.
    ls "$data"/shard-00[01]/journal-00000000.seg >/dev/null || fail "no journal-00000000.seg"
    start_switch "$data"
    account balance 42 --json >"$root/balance.json" || fail "balance 42"
    grep -q '"balance":9650' "$root/balance.json" \
      || fail "balance of 42 after kill -9: $(cat "$root/balance.json")"
    kill -TERM "$pid"
    status=0
    wait "$pid" || status=$?
    pid=""
    [[ $status -eq 0 ]] || fail "the switch exited with $status after SIGTERM"
    "$PAYSWITCH" audit "$data" >"$root/audit.log" 2>&1 \
      || fail "audit: $(cat "$root/audit.log")"
    grep -q "AUDIT PASSED" "$root/audit.log" || fail "no AUDIT PASSED"
    grep -Eq "records [1-9]" "$root/audit.log" || fail "the audit saw no records"
    cat "$root/audit.log"
    echo "a $LIMIT-byte data dir: 5 acknowledged operations survived kill -9; audit passed"
    ;;
  *) echo "unknown case $case_name" >&2; exit 2 ;;
esac
