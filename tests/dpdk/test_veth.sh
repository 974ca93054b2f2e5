#!/bin/bash
# The DPDK switch on net_af_packet, on one end of a veth pair, reached across
# that real L2 link by the kernel: the UDP client library runs in another
# network namespace, ARPs for the switch's address (answered by the DPDK
# transport), pays, and checks every reply and every balance against a model.
# Malformed frames of each kind are then injected from the client namespace
# with a raw AF_PACKET socket; the switch must count and drop them and go on
# serving. SIGTERM, then `payswitch audit`. Authentication is on: the client
# signs its setup with an admin key and its payments with an acquirer key.
#
# Both ends live in namespaces created here (the host's network stack never
# sees the traffic); both are deleted on exit. Exit 77 (meson: SKIP) only
# when the host cannot create namespaces or veth pairs, or lacks the PMD.
# usage: test_veth.sh VETH_CLIENT INJECT_PY
set -u
: "${PAYSWITCH:?set by tests/dpdk/meson.build}"
CLIENT=$1
INJECT=$2
PMDS=$(ls -d /usr/lib/*/dpdk/pmds-* 2>/dev/null | head -1)
if ! ls "$PMDS"/librte_net_af_packet.so* >/dev/null 2>&1; then
	echo "SKIP: the net_af_packet PMD is not installed"; exit 77
fi
command -v ip >/dev/null || { echo "SKIP: no 'ip' command (iproute2)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: no python3 for the raw frame injector"; exit 77; }

TAG=$(( $$ % 250 + 1 ))
NS_SWITCH=ps-sw-$$
NS_CLIENT=ps-cl-$$
VETH_SWITCH=pss$$
VETH_CLIENT=psc$$
SWITCH_IP=10.199.$TAG.1
CLIENT_IP=10.199.$TAG.2
DIR=$(mktemp -d /tmp/payswitch-dpdk-veth.XXXXXX)
PREFIX=psveth$$
SWITCH_PID=
cleanup() {
	if [ -n "$SWITCH_PID" ] && kill -0 "$SWITCH_PID" 2>/dev/null; then
		kill -KILL "$SWITCH_PID" 2>/dev/null; wait "$SWITCH_PID" 2>/dev/null
	fi
	ip netns del "$NS_SWITCH" 2>/dev/null
	ip netns del "$NS_CLIENT" 2>/dev/null
	ip link del "$VETH_SWITCH" 2>/dev/null
	rm -rf "$DIR" "/var/run/dpdk/$PREFIX"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- switch log:"; tail -30 "$DIR/switch.log"; exit 1; }
. "$(dirname "$0")/common.sh"

if ! ip netns add "$NS_SWITCH" 2>"$DIR/netns.err" || ! ip netns add "$NS_CLIENT" 2>>"$DIR/netns.err"; then
	echo "SKIP: cannot create network namespaces: $(cat "$DIR/netns.err")"; exit 77
fi
if ! ip link add "$VETH_SWITCH" type veth peer name "$VETH_CLIENT" 2>"$DIR/veth.err"; then
	echo "SKIP: cannot create a veth pair: $(cat "$DIR/veth.err")"; exit 77
fi
ip link set "$VETH_SWITCH" netns "$NS_SWITCH" || fail "move veth"
ip link set "$VETH_CLIENT" netns "$NS_CLIENT" || fail "move veth"
ip -n "$NS_SWITCH" link set "$VETH_SWITCH" up || fail "veth up"
ip -n "$NS_CLIENT" addr add "$CLIENT_IP/24" dev "$VETH_CLIENT" || fail "client address"
ip -n "$NS_CLIENT" link set "$VETH_CLIENT" up || fail "veth up"
ip -n "$NS_CLIENT" link set lo up
# Complete UDP checksums in the client's kernel (see inject.py): a veth
# otherwise leaves them to a NIC that does not exist.
ip netns exec "$NS_CLIENT" python3 "$INJECT" --tx-checksum-off "$VETH_CLIENT" || fail "tx checksum off"
SWITCH_MAC=$(ip -n "$NS_SWITCH" -o link show dev "$VETH_SWITCH" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
[ -n "$SWITCH_MAC" ] || fail "no MAC on $VETH_SWITCH"

"$PAYSWITCH" format "$DIR/data" --accounts 100000 --transfers 1000000 >"$DIR/format.log" 2>&1 \
	|| { cat "$DIR/format.log"; fail "payswitch format"; }
for role in admin acquirer; do
	"$PAYSWITCH" client add "veth-$role" --role "$role" --data-dir "$DIR/data" \
		--key-out "$DIR/$role.key" >>"$DIR/format.log" 2>&1 \
		|| { cat "$DIR/format.log"; fail "payswitch client add $role"; }
done
KEYS="$DIR/admin.key $DIR/acquirer.key"
ip netns exec "$NS_SWITCH" "$PAYSWITCH" start --data-dir "$DIR/data" --metrics 127.0.0.1:0 \
	--transport dpdk --dpdk-args "--no-huge -m 256 --no-pci --no-telemetry --log-level=warning --file-prefix $PREFIX --vdev=net_af_packet0,iface=$VETH_SWITCH,qpairs=1 -- ip=$SWITCH_IP port=7000" \
	>"$DIR/switch.log" 2>&1 &
SWITCH_PID=$!
for _ in $(seq 100); do
	grep -q "serving" "$DIR/switch.log" && break
	kill -0 "$SWITCH_PID" 2>/dev/null || fail "the switch exited at start"
	sleep 0.1
done
grep -q "serving" "$DIR/switch.log" || fail "the switch did not start in 10 s"

echo "== kernel UDP client from $NS_CLIENT to $SWITCH_IP:7000 (ARP answered by the switch)"
timeout 60 ip netns exec "$NS_CLIENT" "$CLIENT" "$SWITCH_IP" 7000 1000000 500 2000 $KEYS \
	|| fail "veth client, first run"
ip -n "$NS_CLIENT" neigh show "$SWITCH_IP"
timeout 10 ip netns exec "$NS_CLIENT" python3 "$INJECT" --ping "$SWITCH_IP" \
	|| fail "ICMP echo not answered"
N=10
echo "== $N malformed frames of each kind from $NS_CLIENT"
timeout 30 ip netns exec "$NS_CLIENT" python3 "$INJECT" "$VETH_CLIENT" "$CLIENT_IP" "$SWITCH_IP" \
	"$SWITCH_MAC" 7000 $N || fail "inject"
echo "== the switch still serves"
timeout 60 ip netns exec "$NS_CLIENT" "$CLIENT" "$SWITCH_IP" 7000 2000000 200 500 $KEYS \
	|| fail "veth client after malformed frames"

stop_switch_and_check_drops
"$PAYSWITCH" audit "$DIR/data" >"$DIR/audit.log" 2>&1 || { cat "$DIR/audit.log"; fail "audit"; }
tail -3 "$DIR/audit.log"
echo "PASS"
