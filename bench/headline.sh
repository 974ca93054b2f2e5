#!/usr/bin/env bash
# Prints every headline figure the project's targets name, in one run on this
# machine: ledger ops/s and bytes per account, journal append/commit latency and
# replay, the switch over UDP (batched peak, one-per-datagram peak, p99 at 70% of
# peak, open loop), the latency sweep (payments/s at p99 <= 5 ms, the headline
# figure, printed beside the closed-loop peak: bench/sweep.sh), DPDK net_memif
# beside UDP sockets, ISO 8583 through the gateway, and what authentication
# costs (auth on vs --insecure-no-auth, 128 and 1 per datagram:
# bench/auth_cost.sh). Every switch runs with authentication on, as shipped:
# start_switch issues an admin and an acquirer key into each data dir (payswitch
# client add) and every client signs with them. Figures drift between
# machines: compare ratios within one run.
#   bench/headline.sh                 # everything (~9 minutes)
#   ONLY="engine sweep" bench/headline.sh
# The peer comparison (PostgreSQL, Redis) is bench/compare/run.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
only="${ONLY:-ledger journal engine sweep dpdk iso auth}"
seconds="${SECONDS_PER_RUN:-10}"
work=$(mktemp -d /tmp/payswitch-headline-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

scripts/setup.sh >/dev/null
scripts/build.sh release >/dev/null
P="$build/engine/payswitch"
wants() { [[ " $only " == *" $1 "* ]]; }

# Starts the switch on a fresh data dir: start_switch NAME SHARDS [start flags...]
# (HOLDS: hold table size; authorizations are holds that the ISO run never captures).
# Issues its keys first: $work/NAME-admin.key (setup) and $work/NAME-acquirer.key
# (payments), mode 0600; keys_of NAME prints the load generators' flags for them.
start_switch() {
  local name=$1 shards=$2
  shift 2
  "$P" format "$work/$name" --shards "$shards" --accounts 1000000 --transfers 4000000 \
    --holds "${HOLDS:-1000000}" >/dev/null
  for role in admin acquirer; do
    "$P" client add "headline-$name-$role" --role "$role" --data-dir "$work/$name" \
      --key-out "$work/$name-$role.key" >/dev/null
    chmod 600 "$work/$name-$role.key"
  done
  "$P" start --data-dir "$work/$name" --metrics 127.0.0.1:0 "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  sleep 2
}

keys_of() { echo "--key $work/$1-acquirer.key --admin-key $work/$1-admin.key"; }

stop_switch() {
  local pid=${pids[-1]}
  kill -TERM "$pid"
  wait "$pid" || { echo "headline: the switch did not stop cleanly" >&2; exit 1; }
  unset 'pids[-1]'
}

if wants ledger; then
  echo "== ledger: PAY ops/s on one core (target >= 20M at 1M accounts, >= 8M at 10M; <= 96 B/account)"
  "$build/bench/ledger_bench" --accounts 1000000 --ops 20000000
  "$build/bench/ledger_bench" --accounts 10000000 --ops 20000000
  # 100M accounts need ~9 GB: run only when the machine has the memory.
  if (( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) > 12 * 1024 * 1024 )); then
    "$build/bench/ledger_bench" --accounts 100000000 --ops 2000000
  else
    echo "ledger: 100M accounts skipped (less than 12 GiB available)"
  fi
fi

if wants journal; then
  echo "== journal: durable append, commit latency, replay (targets >= 250 MB/s, replay >= 20M records/s)"
  "$build/bench/journal_bench" --dir "$work/journal" --seconds 2 --sync fdatasync
fi

declare -A peaks
if wants engine; then
  for shards in 1 2; do
    echo "== switch over UDP, $shards shard(s): targets >= 1M/s batched, >= 150k/s one per datagram, p99 <= 5 ms at 70%"
    start_switch "udp$shards" "$shards" --listen 127.0.0.1:7931
    L="$build/bench/payswitch-load --server 127.0.0.1:7931 --quiet $(keys_of "udp$shards")"
    $L --duration "$seconds" --window 16384 --per-datagram 128 --json "$work/batched.json" |
      grep -E "^(throughput|latency|verdict)" | sed 's/^/batched 128\/datagram: /'
    $L --use-existing --duration "$seconds" --window 2048 --per-datagram 1 \
      --json "$work/single.json" | grep -E "^(throughput|latency|verdict)" |
      sed 's/^/one per datagram:      /'
    peak=$(python3 -c 'import json,sys;print(int(json.load(open(sys.argv[1]))["totals"]["throughput_per_s"]))' "$work/batched.json")
    peaks[$shards]=$peak
    $L --use-existing --duration "$seconds" --rate $((peak * 7 / 10)) --per-datagram 128 |
      grep -E "^(throughput|latency|verdict)" | sed "s/^/open loop at 70% ($((peak * 7 / 10))\/s): /"
    single=$(python3 -c 'import json,sys;print(int(json.load(open(sys.argv[1]))["totals"]["throughput_per_s"]))' "$work/single.json")
    $L --use-existing --duration "$seconds" --rate $((single * 7 / 10)) --per-datagram 1 |
      grep -E "^(throughput|latency|verdict)" | sed "s/^/one per datagram, open loop at 70% ($((single * 7 / 10))\/s): /"
    stop_switch
  done
fi

if wants sweep; then
  echo "== latency sweep, open loop (headline: payments/s at p99 <= 5 ms; targets >= 1M/s at 128 per datagram, >= 150k/s at 1)"
  NO_BUILD=1 BUILD="$build" OUT="$work/sweep" bench/sweep.sh >"$work/sweep.out" 2>&1 ||
    { tail -n 20 "$work/sweep.out"; echo "headline: the sweep failed" >&2; exit 1; }
  grep -E "^(== sweep|== payswitch-load sweep| +offered/s| +[0-9]+ +[0-9]+ +[0-9]+ |highest rate|stopped)" "$work/sweep.out"
  for shards in 1 2; do
    for per in 128 1; do
      rate=$(grep -E "^sweep: $shards shard\(s\), +$per per datagram: " "$work/sweep.out" | grep -Eo '[0-9]+ payments/s' || true)
      closed=""
      if [[ $per -eq 128 && -n "${peaks[$shards]:-}" ]]; then closed="; closed-loop peak ${peaks[$shards]} payments/s"; fi
      echo "headline: $shards shard(s), $per per datagram: payments/s at p99 <= 5 ms: ${rate:-none}$closed"
    done
  done
fi

if wants dpdk; then
  echo "== DPDK net_memif beside UDP sockets, same switch binary (target >= 2M/s one per packet)"
  eal="--no-huge -m 512 --no-pci --no-telemetry --log-level=warning"
  header=""
  # UDP rows use a smaller window: this generator's UDP mode does not retransmit,
  # and a window of 4096 single-request datagrams can overflow loopback buffers.
  for spec in "1 4096 1024" "22 512 512"; do
    set -- $spec
    start_switch "memif$1" 1 --transport dpdk --dpdk-args \
      "$eal --file-prefix hl$$s$1 --vdev=net_memif0,role=server,socket=$work/memif$1.sock,rsize=12 -- ip=10.88.0.1 port=7000"
    "$build/bench/payswitch-dpdk-load" --dpdk-args \
      "$eal --file-prefix hl$$c$1 --vdev=net_memif0,role=client,socket=$work/memif$1.sock,rsize=12 -- ip=10.88.0.2 peer-ip=10.88.0.1" \
      --label dpdk-memif --per-packet "$1" --window "$2" --duration "$seconds" --accounts 10000 \
      $(keys_of "memif$1") $header 2>"$work/dpdk-load.err" | grep -v verified ||
      echo "dpdk-memif row failed: $(tail -n 1 "$work/dpdk-load.err")"
    header=--no-header
    stop_switch
    start_switch "sock$1" 1 --listen 127.0.0.1:7932
    "$build/bench/payswitch-dpdk-load" --udp 127.0.0.1:7932 --label udp-socket --per-packet "$1" \
      --window "$3" --duration "$seconds" --accounts 10000 $(keys_of "sock$1") $header \
      2>"$work/udp-load.err" |
      grep -v verified || echo "udp-socket row failed: $(tail -n 1 "$work/udp-load.err")"
    stop_switch
  done
fi

if wants iso && ! "$build/bench/payswitch-iso-load" --help 2>&1 | grep -q -- "--key"; then
  echo "== ISO 8583: skipped (this payswitch-iso-load takes no --key, so its setup cannot reach an authenticating switch)"
elif wants iso; then
  echo "== ISO 8583 authorizations through payswitch gateway, 64 connections (target >= 200k/s, p99 <= 5 ms)"
  HOLDS=4000000 start_switch iso 1 --listen 127.0.0.1:7933
  # The setup opens and funds accounts (the admin key); the gateway pays (the acquirer key).
  "$build/bench/payswitch-iso-load" setup --switch 127.0.0.1:7933 --directory "$work/cards.txt" \
    --cards 100000 --key "$work/iso-admin.key" >/dev/null
  "$P" gateway --directory "$work/cards.txt" --switch 127.0.0.1:7933 \
    --key "$work/iso-acquirer.key" --listen-binary 127.0.0.1:8933 >"$work/gateway.log" 2>&1 &
  pids+=($!)
  sleep 1
  "$build/bench/payswitch-iso-load" run --gateway 127.0.0.1:8933 --connections 64 --pipeline 32 \
    --seconds "$seconds" --cards 100000
  stop_switch
  stop_switch
fi

if wants auth; then
  echo "== authentication cost, auth on (keys, MACs both ways) vs --insecure-no-auth, one run (targets < 10% at 128 per datagram, < 5% at 1)"
  NO_BUILD=1 BUILD="$build" SECONDS_PER_RUN="$seconds" bench/auth_cost.sh
fi
