#!/usr/bin/env bash
# The latency sweep: the rate the switch sustains inside its latency promise
# (DESIGN.md rule 10). For 1 shard, then 2 shards, it formats a temp data
# dir, issues an admin and an acquirer key into it (authentication on, as in
# production), starts the switch, runs `payswitch-load --sweep` (open loop at rising
# offered rates, a few seconds each, latency from the scheduled send time)
# for 1 and for 128 payments per datagram, stops the switch (SIGTERM) and
# audits the data dir; then prints the four "highest rate at p99 <= 5 ms"
# figures. Each sweep's table, JSON and PNG (p50/p99/p99.9 against offered
# rate) are kept in OUT (default: a temp dir, named at the end).
#   bench/sweep.sh                         # ~2-3 minutes
#   STEP_SECONDS=1 SHARDS=1 bench/sweep.sh # quicker, noisier
#   RATES_1=... RATES_128=...              # the rate ladders (payswitch-load --sweep)
#   SWITCH_FLAGS="--journal-in-flight 1"   # extra payswitch start flags
#   DATA_ROOT=/dev/shm                     # data dir on tmpfs: the software without the disk
# Prints figures; asserts nothing about them. Exit status 1 only when a run
# fails (verification, an unclean stop, the audit).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
step="${STEP_SECONDS:-2}"
shards_list="${SHARDS:-1 2}"
rates_1="${RATES_1:-25k,50k,75k,100k,150k,200k,250k,300k,400k}"
rates_128="${RATES_128:-100k,250k,500k,750k,1M,1.25M,1.5M,2M}"
port="${PORT:-7945}"
out="${OUT:-$(mktemp -d /tmp/payswitch-sweep-XXXXXX)}"
mkdir -p "$out"
# DATA_ROOT: where the data dir goes (e.g. /dev/shm to take the disk out of the figures)
work=$(mktemp -d "${DATA_ROOT:-/tmp}/payswitch-sweep-data-XXXXXX")
# shellcheck source=bench/common/switch.sh
source bench/common/switch.sh
cleanup() {
  switch_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "${NO_BUILD:-}" ]]; then scripts/build.sh release >/dev/null; fi
P="$build/engine/payswitch"
L="$build/bench/payswitch-load"

start_switch() {
  local shards=$1
  switch_format "$work/data" "$shards" --accounts 1000000 --transfers 4000000
  switch_keys "$work/data" "$work" sweep
  SWITCH_PROBE_KEY="$work/admin.key"
  # SWITCH_FLAGS: extra `payswitch start` flags, e.g. "--journal-in-flight 1".
  # shellcheck disable=SC2086
  switch_start "$work/data" "127.0.0.1:$port" "$out/switch-$shards.log" ${SWITCH_FLAGS:-}
}

stop_switch() {
  local shards=$1
  switch_stop
  "$P" audit "$work/data" >"$out/audit-$shards.log" 2>&1 ||
    { tail -n 20 "$out/audit-$shards.log" >&2; echo "sweep: audit failed" >&2; exit 1; }
}

declare -A best
for shards in $shards_list; do
  start_switch "$shards"
  existing=""
  for per in 1 128; do
    rates=$rates_1
    [[ $per -eq 128 ]] && rates=$rates_128
    name="s${shards}-d${per}"
    echo "== sweep: $shards shard(s), $per payment(s) per datagram, $step s per rate"
    status=0
    # shellcheck disable=SC2086
    "$L" --server "127.0.0.1:$port" --key "$work/acquirer.key" --admin-key "$work/admin.key" \
      --quiet --sweep "$rates" --step-seconds "$step" \
      --per-datagram "$per" $existing --json "$out/$name.json" --plot "$out/$name.png" \
      >"$out/$name.txt" 2>"$out/$name.err" || status=$?
    sed -n '/^== payswitch-load sweep/,$p' "$out/$name.txt"
    [[ $status -eq 0 ]] || { tail -n 5 "$out/$name.err" >&2; echo "sweep: $name failed ($status)" >&2; exit 1; }
    best[$name]=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["best"]["p99_5ms_per_s"])' "$out/$name.json")
    existing=--use-existing
  done
  stop_switch "$shards"
done

echo
echo "== payments/s at p99 <= 5 ms (open loop, latency from the scheduled send)"
for shards in $shards_list; do
  for per in 1 128; do
    printf 'sweep: %s shard(s), %3s per datagram: %s payments/s at p99 <= 5 ms\n' \
      "$shards" "$per" "${best[s${shards}-d${per}]}"
  done
done
echo "sweep: tables, JSON and PNGs in $out"
