#!/usr/bin/env bash
# What authentication costs (issue 11 target: < 10% of throughput at 128
# requests per datagram, < 5% at one per datagram, measured on and off in one
# run). The same closed-loop payswitch-load run, twice per shape:
#   on:  the switch as shipped (authentication on), the generator with an
#        admin key (setup, balance reads) and an acquirer key (payments):
#        every datagram and every reply carries a keyed BLAKE2b MAC, every
#        datagram passes the replay window and the role check;
#   off: the switch started --insecure-no-auth, the generator without keys.
# Each mode gets a fresh data dir (same shards and capacities), the same
# workload seed, 128 per datagram (window 16384) then 1 per datagram (window
# 2048). ROUNDS > 1 repeats the pair, alternating which mode goes first, and
# averages. Prints one table with the on/off ratio; asserts nothing about the
# figures (exit 1 only when a run fails its verification or the switch does
# not stop cleanly). Figures on a small shared machine are noisy.
#   bench/auth_cost.sh                       # ~1 minute
#   SECONDS_PER_RUN=20 ROUNDS=2 bench/auth_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
seconds="${SECONDS_PER_RUN:-10}"
rounds="${ROUNDS:-1}"
shards="${SHARDS:-2}"
port="${PORT:-7951}"
work=$(mktemp -d /tmp/payswitch-auth-cost-XXXXXX)
# shellcheck source=bench/common/switch.sh
source bench/common/switch.sh
cleanup() {
  switch_cleanup
  [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "${NO_BUILD:-}" ]]; then scripts/build.sh release >/dev/null; fi
P="$build/engine/payswitch"
L="$build/bench/payswitch-load"

# start_switch MODE: a fresh data dir; MODE on issues the two keys first.
start_switch() {
  local mode=$1 data="$work/data-$1" flags=()
  switch_format "$data" "$shards" --accounts 1000000 --transfers 4000000
  if [[ $mode == on ]]; then
    switch_keys "$data" "$work" auth-cost
    SWITCH_PROBE_KEY="$work/admin.key"
  else
    SWITCH_PROBE_KEY=""
    flags=(--insecure-no-auth)
  fi
  switch_start "$data" "127.0.0.1:$port" "$work/switch-$mode.log" "${flags[@]}"
}

stop_switch() { switch_stop; }

# measure MODE ROUND: both shapes on one switch; throughput into $work/MODE-PER-ROUND.json.
measure() {
  local mode=$1 round=$2 keys=() existing=""
  [[ $mode == on ]] && keys=(--key "$work/acquirer.key" --admin-key "$work/admin.key")
  start_switch "$mode"
  for spec in "128 16384" "1 2048"; do
    set -- $spec
    local name="$mode-$1-$round" status=0
    # shellcheck disable=SC2086
    "$L" --server "127.0.0.1:$port" "${keys[@]}" --quiet --duration "$seconds" \
      --window "$2" --per-datagram "$1" --seed 11 $existing --json "$work/$name.json" \
      >"$work/$name.out" 2>"$work/$name.err" || status=$?
    [[ $status -eq 0 ]] || { tail -n 5 "$work/$name.err" "$work/$name.out" >&2; echo "auth_cost: $name failed ($status)" >&2; exit 1; }
    existing=--use-existing
  done
  stop_switch
}

echo "== authentication cost: closed loop, $shards shard(s), ${seconds} s per run, $rounds round(s), same seed"
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order="on off"; else order="off on"; fi
  for mode in $order; do
    echo "auth_cost: round $round, authentication $mode" >&2
    measure "$mode" "$round"
  done
done

python3 - "$work" "$rounds" <<'PY'
import json, os, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def mean(mode, per):
    runs = [json.load(open(os.path.join(work, f"{mode}-{per}-{r}.json"))) for r in range(1, rounds + 1)]
    for run in runs:
        assert run["verdict"] == "PASS", run["verdict"]
    return (sum(r["totals"]["throughput_per_s"] for r in runs) / len(runs),
            sum(r["latency"]["p99_ms"] for r in runs) / len(runs))
print(f"{'per datagram':>12} {'auth on /s':>12} {'auth off /s':>12} {'on/off':>7} {'cost':>7} "
      f"{'p99 on ms':>10} {'p99 off ms':>11}  target")
for per, target in ((128, 10.0), (1, 5.0)):
    (on, p99_on), (off, p99_off) = mean("on", per), mean("off", per)
    ratio = on / off if off else float("nan")
    cost = (1 - ratio) * 100
    verdict = "met" if cost < target else "NOT met"
    print(f"{per:>12} {on:>12,.0f} {off:>12,.0f} {ratio:>7.3f} {cost:>6.1f}% {p99_on:>10.2f} "
          f"{p99_off:>11.2f}  < {target:.0f}%: {verdict}")
print("auth_cost: on = keys + MACs both ways + replay window + roles; off = --insecure-no-auth, "
      "no keys; figures are noisy on a small shared machine (compare within one run)")
PY
