/*
 * dpdk_port.h — EAL start-up and one Ethernet port, for the DPDK transport
 * and the DPDK load generator.
 *
 * Backend arguments are one string, split like a shell would (quotes and
 * backslashes): EAL arguments, then `--`, then payswitch's own key=value words:
 *
 *   --no-huge -m 512 --no-pci --file-prefix ps1 \
 *   --vdev=net_memif0,role=server,socket=/tmp/ps.sock -- ip=10.0.0.1 port=7000
 *
 *   ip=A.B.C.D        our IPv4 address (the switch: required unless --listen
 *                     names a non-loopback IPv4 address)
 *   port=N            our UDP port (the switch: default the --listen port)
 *   mac=XX:..:XX      our MAC (default: the port's)
 *   port-id=N         the DPDK port (default 0: the first vdev or NIC)
 *   rxd=N txd=N       descriptors per queue (default 1024 each)
 *   mtu=N             set the port MTU (default: leave the device's)
 *   mbufs=N           mbufs in the pool (default: sized from queues and rings)
 *   peer-ip=A.B.C.D   load generator: the switch's address
 *   peer-port=N       load generator: the switch's UDP port (default 7000)
 *   peer-mac=XX:..    load generator: skip ARP and send to this MAC
 *
 * When the EAL arguments name no lcores (-l, -c, --lcores), `-l C` is added
 * with C the first CPU the process may run on: netio workers are ordinary
 * pthreads, not EAL lcores, so the EAL needs only its main lcore. The EAL
 * pins the calling thread to that lcore; dpdk_eal_start restores the
 * thread's former CPU set, so threads created later are not all pinned.
 *
 * Thread-safety: dpdk_eal_start, dpdk_port_start and dpdk_port_stop from one
 * thread (the main thread) only; dpdk_thread_attach from any thread.
 */
#ifndef PAYSWITCH_NETIO_DPDK_PORT_H
#define PAYSWITCH_NETIO_DPDK_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_mempool.h>

/* The words after `--`. */
struct dpdk_options {
	uint32_t ip_be;                 /* 0: not given */
	uint16_t udp_port;              /* host order; 0: not given */
	bool mac_set;
	struct rte_ether_addr mac;
	uint16_t port_id;
	uint16_t rx_descriptors;
	uint16_t tx_descriptors;
	uint32_t mtu;                   /* 0: device default */
	uint32_t mbufs;                 /* 0: computed */
	uint32_t peer_ip_be;            /* 0: not given */
	uint16_t peer_udp_port;         /* host order */
	bool peer_mac_set;
	struct rte_ether_addr peer_mac;
};

/* One started port. */
struct dpdk_port {
	uint16_t port_id;
	uint16_t queues;                /* RX/TX queue pairs */
	bool rss;                       /* RX spread over queues by the device */
	bool started;
	struct rte_mempool *pool;
	struct rte_ether_addr mac;      /* the port's (or mac=) */
	uint32_t mtu;
	char driver[64];
};

/*
 * Splits `args` and starts the EAL once per process. Fills *options from the
 * words after `--`. A second call returns -EALREADY (options still parsed).
 * Returns 0 or -errno with a sentence in error (-EINVAL: bad arguments).
 */
int dpdk_eal_start(const char *args, struct dpdk_options *options, char *error,
		   size_t error_size);

/* Parses only the words after `--` (no EAL). Returns 0 or -EINVAL. */
int dpdk_options_parse(const char *args, struct dpdk_options *options, char *error,
		       size_t error_size);

/*
 * Configures options->port_id with `queues` RX/TX queue pairs (RSS on IP and
 * UDP when queues > 1 and the device offers it), one mbuf pool sized for
 * every ring plus per-thread caches, and starts it.
 * Returns 0 or -errno with a sentence in error.
 */
int dpdk_port_start(const struct dpdk_options *options, uint16_t queues,
		    struct dpdk_port *port, char *error, size_t error_size);

/* Stops and closes the port, frees the pool. */
void dpdk_port_stop(struct dpdk_port *port);

/* Gives the calling non-EAL thread an lcore id (rte_thread_register) so the
 * mempool's per-lcore cache works, and lowers its timer slack so short
 * sleeps stay short. Idempotent. Returns 0 or -errno. */
int dpdk_thread_attach(void);

/* Monotonic nanoseconds. */
uint64_t dpdk_now_ns(void);

#endif
