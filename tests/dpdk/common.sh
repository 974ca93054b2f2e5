# common.sh — sourced by the DPDK tests. Expects DIR, SWITCH_PID, N (malformed
# frames injected per reason) and fail() from the sourcing script.

# SIGTERM the switch, require a clean exit, read its per-queue DPDK counters
# (the log line each worker writes on close) into STATS, and check that every
# malformed-frame reason counted at least N drops and that ARP and ping were
# answered. counter NAME prints one counter afterwards.
stop_switch_and_check_drops() {
	kill -TERM "$SWITCH_PID"
	STATUS=0
	for _ in $(seq 300); do kill -0 "$SWITCH_PID" 2>/dev/null || break; sleep 0.1; done
	wait "$SWITCH_PID" || STATUS=$?
	SWITCH_PID=
	[ "$STATUS" -eq 0 ] || fail "the switch exited with $STATUS after SIGTERM"
	STATS=$(grep "payswitch dpdk: queue" "$DIR/switch.log")
	echo "$STATS"
	for name in drop_ether_type drop_ip_checksum drop_truncated drop_udp_length drop_udp_checksum \
		    drop_udp_port; do
		value=$(counter "$name")
		[ "${value:-0}" -ge "$N" ] || fail "$name is ${value:-missing}, expected >= $N"
	done
	for name in arp_replies icmp_replies; do
		value=$(counter "$name")
		[ "${value:-0}" -ge 1 ] || fail "$name is ${value:-missing}, expected >= 1"
	done
}

counter() { echo "$STATS" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
