#!/bin/bash
# The DPDK switch on net_memif (server) driven by the DPDK load generator
# (client): one payment per packet, then 16 per packet, every reply checked
# and every balance compared with the model by the load generator; then
# malformed frames of each kind, which the switch must count and drop while
# it keeps serving; then SIGTERM and `payswitch audit`. Authentication is on:
# the load generator seals its setup with an admin key and its payments with
# an acquirer key (payswitch client add), and checks every reply's MAC.
# Exit 77 (meson: SKIP) only when this host lacks what the test needs.
set -u
: "${PAYSWITCH:?set by tests/dpdk/meson.build}" "${DPDK_LOAD:?set by tests/dpdk/meson.build}"
PMDS=$(pkg-config --variable=pmdsdir libdpdk 2>/dev/null || true)
if [ -z "$PMDS" ]; then PMDS=$(ls -d /usr/lib/*/dpdk/pmds-* 2>/dev/null | head -1); fi
if ! ls "$PMDS"/librte_net_memif.so* >/dev/null 2>&1; then
	echo "SKIP: the net_memif PMD is not installed (looked in '$PMDS')"
	exit 77
fi
if [ ! -e /dev/shm ] && [ ! -d /dev/shm ]; then
	echo "SKIP: no /dev/shm: memif needs memfd shared memory"; exit 77
fi

DIR=$(mktemp -d /tmp/payswitch-dpdk-memif.XXXXXX)
SOCKET=$DIR/memif.sock
PREFIX=psmemif$$
SWITCH_PID=
cleanup() {
	if [ -n "$SWITCH_PID" ] && kill -0 "$SWITCH_PID" 2>/dev/null; then
		kill -KILL "$SWITCH_PID" 2>/dev/null; wait "$SWITCH_PID" 2>/dev/null
	fi
	rm -rf "$DIR" "/var/run/dpdk/${PREFIX}s" "/var/run/dpdk/${PREFIX}c"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- switch log:"; tail -30 "$DIR/switch.log"; exit 1; }
. "$(dirname "$0")/common.sh"

EAL="--no-huge -m 256 --no-pci --no-telemetry --log-level=warning"
"$PAYSWITCH" format "$DIR/data" --accounts 100000 --transfers 1000000 >"$DIR/format.log" 2>&1 \
	|| { cat "$DIR/format.log"; fail "payswitch format"; }
for role in admin acquirer; do
	"$PAYSWITCH" client add "memif-$role" --role "$role" --data-dir "$DIR/data" \
		--key-out "$DIR/$role.key" >>"$DIR/format.log" 2>&1 \
		|| { cat "$DIR/format.log"; fail "payswitch client add $role"; }
done
"$PAYSWITCH" start --data-dir "$DIR/data" --metrics 127.0.0.1:0 --transport dpdk \
	--dpdk-args "$EAL --file-prefix ${PREFIX}s --vdev=net_memif0,role=server,socket=$SOCKET,rsize=12 -- ip=10.77.0.1 port=7000" \
	>"$DIR/switch.log" 2>&1 &
SWITCH_PID=$!
for _ in $(seq 100); do
	grep -q "serving" "$DIR/switch.log" && break
	kill -0 "$SWITCH_PID" 2>/dev/null || fail "the switch exited at start"
	sleep 0.1
done
grep -q "serving" "$DIR/switch.log" || fail "the switch did not start in 10 s"

load() {
	timeout 60 "$DPDK_LOAD" --dpdk-args "$EAL --file-prefix ${PREFIX}c --vdev=net_memif0,role=client,socket=$SOCKET,rsize=12 -- ip=10.77.0.2 peer-ip=10.77.0.1" \
		--key "$DIR/acquirer.key" --admin-key "$DIR/admin.key" "$@"
}
echo "== one payment per packet"
load --accounts 2000 --first-account 1000000 --duration 2 --window 256 --per-packet 1 \
	|| fail "load generator, 1 per packet"
echo "== 16 payments per packet"
load --accounts 2000 --first-account 2000000 --duration 2 --window 64 --per-packet 16 --no-header \
	|| fail "load generator, 16 per packet"
echo "== malformed frames, then ARP, ping and a checked exchange"
N=10
load --accounts 100 --first-account 3000000 --malformed $N || fail "load generator, malformed"

stop_switch_and_check_drops
total=0
for name in $(echo "$STATS" | tr ' ' '\n' | sed -n 's/^\(drop_[a-z_]*\)=.*/\1/p'); do
	total=$((total + $(counter "$name")))
done
[ "$total" -ge $((7 * N)) ] || fail "drops total $total, expected >= $((7 * N))"
"$PAYSWITCH" audit "$DIR/data" >"$DIR/audit.log" 2>&1 || { cat "$DIR/audit.log"; fail "audit"; }
tail -3 "$DIR/audit.log"
echo "PASS"
