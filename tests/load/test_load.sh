#!/usr/bin/env bash
# tests/load: payswitch-load against the real daemon.
#   test_load.sh short     a short mixed run passes verification, the switch stops
#                          cleanly and the audit passes
#   test_load.sh corrupt   a deliberately wrong expected balance fails the run
#                          loudly, naming the account
#   test_load.sh json      --json writes well-formed JSON with every section
#   test_load.sh sweep     --sweep over 3 small rates x 1 s prints its table and
#                          writes valid JSON (the shape, never the figures)
#   test_load.sh keys      key handling: a key file readable by others is refused
#                          naming the path, an admin key used for payments gets
#                          FORBIDDEN answers (counted, the run fails), no key
#                          gets no answer from an authenticating switch
# Authentication is on: an admin key (setup, balance reads) and an acquirer key
# (payments) are issued with `payswitch client add` next to the data dir.
# PAYSWITCH and PAYSWITCH_LOAD are the binaries' paths (tests/load/meson.build).
set -euo pipefail
case_name="${1:?usage: test_load.sh short|corrupt|json|sweep|keys}"
: "${PAYSWITCH:?PAYSWITCH is not set}" "${PAYSWITCH_LOAD:?PAYSWITCH_LOAD is not set}"

dir=$(mktemp -d /tmp/payswitch-load-test-XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [[ -z "${PAYSWITCH_KEEP:-}" ]]; then rm -rf "$dir"; fi
}
trap cleanup EXIT

fail() { echo "FAIL ($case_name): $*" >&2; echo "--- switch log:" >&2; tail -n 30 "$dir/switch.log" >&2 || true; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

"$PAYSWITCH" format "$dir/data" --shards 2 --accounts 100000 --transfers 1000000 >"$dir/format.log" 2>&1 \
  || fail "format: $(cat "$dir/format.log")"
for role in admin acquirer; do
  "$PAYSWITCH" client add "load-test-$role" --role "$role" --data-dir "$dir/data" \
    --key-out "$dir/$role.key" >>"$dir/format.log" 2>&1 || fail "client add $role: $(cat "$dir/format.log")"
done
keys=(--key "$dir/acquirer.key" --admin-key "$dir/admin.key")
port=$(free_port)
"$PAYSWITCH" start --data-dir "$dir/data" --listen "127.0.0.1:$port" --metrics 127.0.0.1:0 \
  >"$dir/switch.log" 2>&1 &
pid=$!

# Ready when a balance request is answered (at most ~20 s).
ready=0
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || fail "the switch exited at start"
  if "$PAYSWITCH" account balance 1 --server "127.0.0.1:$port" --timeout-ms 200 --retries 0 \
       --key "$dir/admin.key" >/dev/null 2>&1 \
     || [[ $? -eq 1 ]]; then ready=1; break; fi
  sleep 0.2
done
[[ $ready -eq 1 ]] || fail "the switch did not answer within 20 s"

# Small and short: the sanitizer build runs the same test.
load=("$PAYSWITCH_LOAD" --server "127.0.0.1:$port" "${keys[@]}" --duration 3 --window 512 --per-datagram 32
      --payers 2000 --merchants 200 --utilities 4 --publishers 10 --quiet
      --mix coffee=60,bills=10,news=30 --broke-share 0.1 --retry-share 0.02
      --refund-share 0.02 --hold-share 0.1 --seed 7)

stop_and_audit() {
  kill -TERM "$pid"
  local status=0
  wait "$pid" || status=$?
  pid=""
  [[ $status -eq 0 ]] || fail "the switch exited with $status after SIGTERM"
  "$PAYSWITCH" audit "$dir/data" >"$dir/audit.log" 2>&1 || fail "audit failed: $(tail -n 20 "$dir/audit.log")"
}

case "$case_name" in
  short)
    status=0
    "${load[@]}" >"$dir/load.out" 2>"$dir/load.err" || status=$?
    cat "$dir/load.out"
    [[ $status -eq 0 ]] || fail "payswitch-load exited $status: $(tail -n 20 "$dir/load.err")"
    grep -q "verdict            PASS" "$dir/load.out" || fail "no PASS verdict"
    grep -Eq "verification       [0-9]+ accounts, 0 differ" "$dir/load.out" || fail "no verification line"
    grep -q "INSUFFICIENT_FUNDS=" "$dir/load.out" || fail "broke payers were never declined"
    grep -Eq "deliberate retries [1-9][0-9]*: duplicate [1-9]" "$dir/load.out" || fail "no duplicate answered"
    grep -Eq "^authentication     payments key id [1-9][0-9]*, admin key id [1-9][0-9]*; FORBIDDEN answers 0; replies failing authentication 0" \
      "$dir/load.out" || fail "no authentication line, or FORBIDDEN / failed replies"
    # A second run on the same accounts (--use-existing) also verifies.
    status=0
    "${load[@]}" --duration 1 --use-existing >"$dir/load2.out" 2>"$dir/load2.err" || status=$?
    [[ $status -eq 0 ]] || fail "rerun with --use-existing exited $status: $(tail -n 20 "$dir/load2.err")"
    stop_and_audit
    ;;
  corrupt)
    # Account base + 5 is a payer: its expected balance is made one cent off.
    status=0
    "${load[@]}" --duration 1 --corrupt-tally 1000005 >"$dir/load.out" 2>"$dir/load.err" || status=$?
    cat "$dir/load.err"
    [[ $status -eq 1 ]] || fail "payswitch-load exited $status, expected 1"
    grep -Eq "VERIFICATION FAILED: account 1000005: expected balance -?[0-9]+, switch reports -?[0-9]+ \(difference -1 cents\)" \
      "$dir/load.err" || fail "the failure does not name account 1000005 with expected vs actual"
    grep -q "verdict            FAIL: 1 of" "$dir/load.out" || fail "the verdict is not FAIL"
    stop_and_audit
    ;;
  json)
    status=0
    "${load[@]}" --duration 2 --json "$dir/load.json" >"$dir/load.out" 2>"$dir/load.err" || status=$?
    [[ $status -eq 0 ]] || fail "payswitch-load exited $status: $(tail -n 20 "$dir/load.err")"
    python3 -m json.tool "$dir/load.json" >/dev/null || fail "load.json is not valid JSON"
    python3 - "$dir/load.json" <<'PY' || fail "load.json lacks a section"
import json, sys
doc = json.load(open(sys.argv[1]))
for key in ("config", "totals", "codes", "kinds", "latency", "verification", "verdict", "series"):
    assert key in doc, key
assert doc["verdict"] == "PASS", doc["verdict"]
assert doc["totals"]["completed"] > 0
assert doc["codes"]["OK"] > 0
for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
    assert doc["latency"][key] >= 0, key
assert doc["latency"]["p50_ms"] <= doc["latency"]["p99_ms"] <= doc["latency"]["max_ms"]
assert len(doc["series"]) >= 2 and all("completed" in s for s in doc["series"])
assert doc["verification"]["done"] and doc["verification"]["mismatches"] == 0
assert doc["auth"]["key_id"] > 0 and doc["auth"]["admin_key_id"] > 0, doc["auth"]
assert doc["auth"]["key_id"] != doc["auth"]["admin_key_id"], doc["auth"]
assert doc["auth"]["forbidden"] == 0 and doc["auth"]["replies_invalid"] == 0, doc["auth"]
print("json ok:", doc["totals"]["completed"], "requests,", len(doc["series"]), "seconds")
PY
    stop_and_audit
    ;;
  sweep)
    status=0
    "$PAYSWITCH_LOAD" --server "127.0.0.1:$port" "${keys[@]}" --quiet --sweep 1k,2k,4k --step-seconds 1 \
      --per-datagram 8 --payers 2000 --merchants 200 --utilities 4 --publishers 10 --seed 7 \
      --json "$dir/sweep.json" >"$dir/sweep.out" 2>"$dir/sweep.err" || status=$?
    cat "$dir/sweep.out"
    [[ $status -eq 0 ]] || fail "payswitch-load --sweep exited $status: $(tail -n 20 "$dir/sweep.err")"
    grep -q "== payswitch-load sweep" "$dir/sweep.out" || fail "no sweep table"
    grep -Eq "^ +offered/s +sent/s +delivered/s +BUSY% +p50 ms +p99 ms +p99.9 ms" "$dir/sweep.out" \
      || fail "no table header"
    # At least one row (a slow machine may stop the sweep early; the figures are not checked).
    grep -Eq "^ +1000 +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+" "$dir/sweep.out" \
      || fail "no row for 1000/s"
    grep -Eq "^highest rate at p99 <= 5 ms: [0-9]+ payments/s" "$dir/sweep.out" || fail "no 5 ms line"
    grep -Eq "^highest rate at p99 <= 1 ms: [0-9]+ payments/s" "$dir/sweep.out" || fail "no 1 ms line"
    grep -q "verdict            PASS" "$dir/sweep.out" || fail "no PASS verdict"
    python3 - "$dir/sweep.json" <<'PY' || fail "sweep.json is not a valid sweep document"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["mode"] == "sweep", doc.get("mode")
assert doc["verdict"] == "PASS", doc["verdict"]
steps = doc["steps"]
assert 1 <= len(steps) <= 3, len(steps)
assert [s["offered_per_s"] for s in steps] == [1000, 2000, 4000][:len(steps)]
for s in steps:
    for key in ("delivered_per_s", "busy_share", "p50_ms", "p99_ms", "p999_ms", "busy",
                "busy_retries", "retransmits", "late_answers", "sustained"):
        assert key in s, key
    assert 0 <= s["busy_share"] <= 1
    assert s["p50_ms"] <= s["p99_ms"] <= s["p999_ms"]
    assert s["completed"] > 0 and s["no_answer"] == 0
for key in ("p99_5ms_per_s", "p99_1ms_per_s"):
    assert doc["best"][key] in (0, 1000, 2000, 4000), doc["best"]
print("sweep json ok:", len(steps), "steps")
PY
    stop_and_audit
    ;;
  keys)
    small=("$PAYSWITCH_LOAD" --server "127.0.0.1:$port" --duration 1 --window 64 --per-datagram 8
           --payers 200 --merchants 20 --utilities 2 --publishers 2 --quiet --seed 7)
    # A key file readable by others is refused before anything is sent.
    cp "$dir/acquirer.key" "$dir/open.key"
    chmod 644 "$dir/open.key"
    status=0
    "${small[@]}" --key "$dir/open.key" --admin-key "$dir/admin.key" >"$dir/k1.out" 2>"$dir/k1.err" || status=$?
    [[ $status -eq 2 ]] || fail "a mode 0644 key: exit $status, expected 2"
    grep -q -- "--key $dir/open.key: readable by group or others" "$dir/k1.err" \
      || fail "no clear error naming the key file: $(cat "$dir/k1.err")"
    status=0
    "${small[@]}" --key "$dir/missing.key" >"$dir/k2.out" 2>"$dir/k2.err" || status=$?
    [[ $status -eq 2 ]] && grep -q "missing.key: No such file" "$dir/k2.err" \
      || fail "a missing key file: exit $status: $(cat "$dir/k2.err")"
    # The admin key alone signs everything: payments are FORBIDDEN, counted, the run fails.
    status=0
    "${small[@]}" --admin-key "$dir/admin.key" --account-base 2000000 >"$dir/k3.out" 2>"$dir/k3.err" || status=$?
    [[ $status -eq 1 ]] || fail "admin key for payments: exit $status, expected 1: $(tail -n 5 "$dir/k3.err")"
    grep -Eq "FORBIDDEN answers [1-9]" "$dir/k3.out" || fail "FORBIDDEN answers not counted: $(cat "$dir/k3.out")"
    grep -q "verdict            FAIL: .* FORBIDDEN" "$dir/k3.out" || fail "the verdict does not name FORBIDDEN"
    # No key at all: a warning, then no answer (the switch stays silent), exit 3.
    status=0
    "${small[@]}" --account-base 3000000 --timeout-ms 100 >"$dir/k4.out" 2>"$dir/k4.err" || status=$?
    [[ $status -eq 3 ]] || fail "no key: exit $status, expected 3"
    grep -q "WARNING: no --key" "$dir/k4.err" || fail "no warning without a key"
    cat "$dir/k1.err" "$dir/k4.err"
    stop_and_audit
    ;;
  *) echo "unknown case $case_name" >&2; exit 2 ;;
esac
echo "PASS ($case_name)"
