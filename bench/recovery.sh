#!/usr/bin/env bash
# bench/recovery.sh — recovery time after kill -9 stays flat as uptime grows.
#
# One shard with 1M accounts (payswitch-load --payers 1000000), online
# snapshots at their defaults. Runs the load until the journal holds each of
# the record counts in RECORDS (default "10M 50M"; add 200M if the disk has
# ~20 GB), kills the switch with SIGKILL there, restarts it and times the
# restart until the first approved payment (`payswitch account pay`). Prints
# one line per kill beside the target (<= 5 s at 1M accounts) and removes the
# data dir it wrote. Figures are one run on a shared 2-core machine.
#
#   BUILD=/work/build-h13 RECORDS="10M 50M" bench/recovery.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
P="$build/engine/payswitch"
L="$build/bench/payswitch-load"
work=${WORK:-$(mktemp -d /tmp/payswitch-recovery.XXXXXX)}
records=${RECORDS:-"10M 50M"}
listen=127.0.0.1:7941
SWITCH_WHO=recovery
source bench/common/switch.sh
trap 'switch_cleanup; rm -rf "$work"' EXIT

number() { # 10M -> 10000000
  local n=${1%[kKMG]} s=${1: -1}
  case $s in k|K) echo $((n * 1000));; M) echo $((n * 1000000));; G) echo $((n * 1000000000));; *) echo "$1";; esac
}

mkdir -p "$work"
data="$work/data"
switch_format "$data" 1 --accounts 1100000 --transfers 1000000
switch_keys "$data" "$work/keys" bench
export SWITCH_PROBE_KEY="$work/keys/admin.key"
admin=(--key "$work/keys/admin.key" --server "$listen")
acquirer=(--key "$work/keys/acquirer.key" --server "$listen" --timeout-ms 100 --retries 0)
switch_start "$data" "$listen" "$work/switch.log" "$@"
"$P" account open 4000000000000 --funding "${admin[@]}" >/dev/null
"$P" account open 4000000000001 "${admin[@]}" >/dev/null
load=("$L" --server "$listen" --quiet --key "$work/keys/acquirer.key"
      --admin-key "$work/keys/admin.key" --payers 1000000 --window 16384 --per-datagram 128
      --retry-share 0 --refund-share 0 --hold-share 0)
first=1
done_records=0
echo "== recovery after kill -9, 1 shard, 1M accounts (target <= 5 s whatever the uptime)"
for target in $records; do
  want=$(number "$target")
  count=$((want - done_records))
  extra=()
  [[ $first -eq 0 ]] && extra=(--use-existing)
  "${load[@]}" "${extra[@]}" --count "$count" --duration 100000 >"$work/load.out" 2>&1 || true
  first=0
  done_records=$want
  kill -KILL "$SWITCH_PID"; wait "$SWITCH_PID" 2>/dev/null || true; SWITCH_PID=""
  journal_bytes=$(du -sb "$data/shard-000" | cut -f1)
  snaps=$(ls "$data/shard-000" | grep -c '\.snap$' || true)
  started=$(date +%s.%N)
  "$P" start --data-dir "$data" --listen "$listen" --metrics 127.0.0.1:0 "$@" \
    >"$work/restart.log" 2>&1 &
  SWITCH_PID=$!
  for _ in $(seq 1 3000); do
    if "$P" account pay 4000000000000 4000000000001 1 "${acquirer[@]}" >/dev/null 2>&1; then break; fi
    kill -0 "$SWITCH_PID" || { tail "$work/restart.log"; exit 1; }
    sleep 0.01
  done
  ended=$(date +%s.%N)
  line=$(grep -o 'recovered: snapshot sequence [0-9]*, [0-9]* records replayed, last sequence [0-9]*, [0-9]* accounts, [0-9.]* ms' "$work/restart.log" | head -1)
  printf 'kill -9 after %s records (journal %.1f GB, %s snapshots): first approved payment %.2f s after restart (target <= 5 s); %s\n' \
    "$target" "$(echo "$journal_bytes / 1000000000" | bc -l)" "$snaps" \
    "$(echo "$ended - $started" | bc -l)" "$line"
  grep -o 'intake paused [0-9.]* ms' "$work/switch.log" "$work/restart.log" 2>/dev/null | tail -1 | sed 's/^.*:/last online snapshot capture: /' || true
  cp "$work/restart.log" "$work/switch.log"
done
switch_stop
