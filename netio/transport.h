/*
 * transport.h — how netio moves datagrams, whatever carries them.
 *
 * A transport is one backend behind one small table of function pointers, the
 * way Redis hides epoll and kqueue behind ae.c: the UDP socket backend
 * (transport_udp.c) is the embedded default; a DPDK backend
 * (transport_dpdk.c) implements the same table. The engine picks one at start.
 *
 * One transport handle is one RX/TX queue: the UDP backend opens one socket
 * per worker (SO_REUSEPORT spreads datagrams over the workers' sockets), the
 * DPDK backend one RX and one TX queue per worker.
 *
 * Thread-safety: a handle is owned by one thread (its netio worker); no
 * function may be called on one handle from two threads at once. Different
 * handles are independent. Statistics are written by the owner only, with
 * relaxed atomic stores, so any thread may read them through
 * netio_transport_stats_read() (values may be a few bursts stale).
 *
 * Memory: everything is allocated by open(); rx_burst and tx_burst never
 * allocate.
 */
#ifndef PAYSWITCH_NETIO_TRANSPORT_H
#define PAYSWITCH_NETIO_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

/* Datagrams moved per rx_burst / tx_burst call at most. */
#define NETIO_BURST_MAX 32u

/* An opaque peer address: enough to send a reply to whoever sent a datagram.
 * The UDP backend stores a struct sockaddr_in or sockaddr_in6 (28 bytes);
 * the DPDK backend MAC + IP + port. Copy it by value (into ring entries);
 * compare it only through the backend. */
struct netio_peer {
	union {
		uint8_t bytes[32];
		uint64_t align;
	};
};
_Static_assert(sizeof(struct netio_peer) == 32, "peer handle is 32 bytes");

/* One datagram (payload only: no IP or UDP header). */
struct netio_datagram {
	void *data;               /* rx: transport-owned buffer, 64-byte aligned,
	                           * valid until the next rx_burst on the same
	                           * handle; tx: caller-owned, read during tx_burst */
	uint32_t length;          /* bytes. rx: a datagram larger than the buffer
	                           * (NETIO_RX_BUFFER_BYTES) is cut to the buffer and
	                           * so is seen longer than NETIO_DATAGRAM_MAX */
	uint32_t reserved;
	struct netio_peer peer;   /* rx: the sender; tx: the destination */
};

/* Receive buffers hold this many bytes: more than NETIO_DATAGRAM_MAX
 * (8224), so that an oversized datagram is seen as oversized (and answered
 * FORMAT_ERROR) instead of silently truncated to a valid-looking length. */
#define NETIO_RX_BUFFER_BYTES 8320u

struct netio_transport_config {
	const char *bind_host;      /* numeric address or name to bind; NULL or
	                             * "" = any ("::", dual stack when possible) */
	uint16_t port;              /* UDP port; 0 = ephemeral (read it back with
	                             * netio_transport_port(); open the other workers
	                             * with that port) */
	uint32_t burst_max;         /* 1..NETIO_BURST_MAX; 0 = NETIO_BURST_MAX */
	uint32_t socket_buffer_bytes; /* SO_RCVBUF and SO_SNDBUF wish; 0 = 8 MiB.
	                             * The kernel may clamp it (net.core.rmem_max);
	                             * the granted size is in the stats */
	uint32_t worker_index;      /* this handle's worker (DPDK: queue id) */
	uint32_t worker_count;      /* workers sharing the port */
	const char *backend_args;   /* backend specific (DPDK: EAL args); UDP: unused */
	int wake_fd;                /* > 0: a descriptor (an eventfd) that ends an
	                             * rx_burst wait when readable, so another thread
	                             * can wake a sleeping worker; rx_burst drains it
	                             * (one 8-byte read). <= 0: none (0 is stdin, never
	                             * a wake descriptor, so a zeroed config means none).
	                             * Not owned: the caller closes it after close(). */
};

/* Counters of one handle. Units are datagrams unless named bytes. */
struct netio_transport_stats {
	uint64_t rx_datagrams;
	uint64_t rx_bytes;
	uint64_t rx_truncated;       /* larger than the receive buffer */
	uint64_t rx_errors;          /* receive calls that failed (not EAGAIN) */
	uint64_t rx_bursts;          /* rx_burst calls that returned datagrams */
	uint64_t rx_waits;           /* times rx_burst slept in poll() */
	uint64_t rx_wakeups;         /* waits ended by wake_fd */
	uint64_t tx_datagrams;
	uint64_t tx_bytes;
	uint64_t tx_errors;          /* datagrams the kernel refused (dropped) */
	uint64_t tx_full;            /* tx_burst calls stopped by a full socket */
	uint64_t rcvbuf_bytes;       /* socket buffers granted by the kernel */
	uint64_t sndbuf_bytes;
	/* DPDK backend only (0 for UDP). Frames, not datagrams: every frame
	 * the port delivered, then the ones dropped, by reason (in the order of
	 * enum dpdk_drop in dpdk_packet.h), and what was answered in netio. */
	uint64_t rx_frames;
	uint64_t drop_ether_type;    /* neither IPv4 nor ARP */
	uint64_t drop_ether_dst;     /* unicast to another MAC */
	uint64_t drop_truncated;     /* shorter than its headers / IPv4 length */
	uint64_t drop_ip_header;     /* IPv4 version or header length invalid */
	uint64_t drop_ip_checksum;
	uint64_t drop_ip_fragment;   /* fragments are not reassembled */
	uint64_t drop_ip_dst;        /* another IPv4 address */
	uint64_t drop_ip_protocol;   /* neither UDP nor ICMP */
	uint64_t drop_udp_length;    /* UDP length < 8 or beyond the IPv4 payload */
	uint64_t drop_udp_checksum;
	uint64_t drop_udp_port;      /* another UDP port */
	uint64_t drop_arp;           /* ARP not asking for our address */
	uint64_t drop_icmp;          /* ICMP but not a valid echo request */
	uint64_t arp_replies;        /* ARP requests answered */
	uint64_t icmp_replies;       /* ICMP echo requests answered */
	uint64_t tx_no_mbuf;         /* tx_burst calls stopped by an empty mbuf pool */
};

struct netio_transport;

struct netio_transport_ops {
	const char *name;            /* "udp", "dpdk" */

	/* Opens one handle. Returns 0 and sets *transport, or -errno
	 * (-EINVAL for a bad config, -EADDRINUSE, -ENOMEM, ...). */
	int (*open)(const struct netio_transport_config *config,
		    struct netio_transport **transport);

	/* Receives up to `max` datagrams (max <= the handle's burst_max, larger
	 * values are clamped) into datagrams[0..n). When none is ready, waits up
	 * to timeout_ms (0: do not wait; -1: wait forever; a busy-polling backend
	 * may return early) or until wake_fd is readable (then drained; the call
	 * may return 0). Returns n >= 0, or -errno for a fatal error.
	 * Ownership: data pointers stay valid until the next rx_burst. */
	int (*rx_burst)(struct netio_transport *transport,
			struct netio_datagram *datagrams, uint32_t max,
			int timeout_ms);

	/* Sends datagrams[0..count) (count <= NETIO_BURST_MAX), each to its
	 * peer. Never blocks. Returns n: datagrams [0, n) are gone (sent, or
	 * refused by the kernel and counted in tx_errors); [n, count) were not
	 * tried because the queue is full — the caller retries or counts them.
	 * The caller's buffers may be reused as soon as tx_burst returns. */
	uint32_t (*tx_burst)(struct netio_transport *transport,
			     const struct netio_datagram *datagrams,
			     uint32_t count);

	/* The local port (host order). */
	uint16_t (*port)(const struct netio_transport *transport);

	/* Writes a printable peer address ("192.0.2.1:4000", "[::1]:4000") into
	 * text (NUL-terminated, cut to size). Returns text. */
	const char *(*peer_format)(const struct netio_peer *peer, char *text,
				   size_t size);

	/* Closes the handle and frees everything open() allocated. */
	void (*close)(struct netio_transport *transport);
};

/* The part of every handle the interface can see; backends embed it first. */
struct netio_transport {
	const struct netio_transport_ops *ops;
	struct netio_transport_stats stats;  /* written by the owner thread */
};

/* Backends. */
extern const struct netio_transport_ops netio_transport_udp;
extern const struct netio_transport_ops netio_transport_dpdk;

/* Convenience wrappers: the engine calls these. */
static inline int netio_transport_open(const struct netio_transport_ops *ops,
				       const struct netio_transport_config *config,
				       struct netio_transport **transport)
{
	return ops->open(config, transport);
}

static inline int netio_transport_rx_burst(struct netio_transport *transport,
					   struct netio_datagram *datagrams,
					   uint32_t max, int timeout_ms)
{
	return transport->ops->rx_burst(transport, datagrams, max, timeout_ms);
}

static inline uint32_t netio_transport_tx_burst(struct netio_transport *transport,
						const struct netio_datagram *datagrams,
						uint32_t count)
{
	return transport->ops->tx_burst(transport, datagrams, count);
}

static inline uint16_t netio_transport_port(const struct netio_transport *transport)
{
	return transport->ops->port(transport);
}

static inline void netio_transport_close(struct netio_transport *transport)
{
	if (transport != NULL)
		transport->ops->close(transport);
}

/* Copies a handle's counters; safe from any thread while the owner runs. */
void netio_transport_stats_read(const struct netio_transport *transport,
				struct netio_transport_stats *stats);

/* Single-writer counter update (the owner thread only): a relaxed store, so
 * readers on other threads see whole values and never a torn one. */
#define NETIO_STAT_ADD(field, n) \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), \
			 __ATOMIC_RELAXED)

#endif /* PAYSWITCH_NETIO_TRANSPORT_H */
