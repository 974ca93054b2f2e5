/*
 * transport_dpdk.c — the DPDK kernel-bypass backend of transport.h.
 *
 * One Ethernet port per process (a vdev such as net_memif or net_af_packet,
 * or a NIC bound to vfio-pci), one RX/TX queue pair per netio worker. The
 * first open() starts the EAL with the backend arguments (dpdk_port.h) and
 * configures the port with worker_count queue pairs; each open() takes the
 * queue pair worker_index. The last close() stops the port and the EAL.
 *
 * RX: a burst of up to 32 frames is parsed (Ethernet / IPv4 / UDP with both
 * checksums), frames for other addresses or ports and malformed ones are
 * counted by reason and freed, ARP requests for our address and ICMP echo
 * requests are answered on the spot (so ordinary kernel hosts can reach the
 * switch), and each UDP payload is copied into a 64-byte aligned buffer of
 * the handle. The copy is what the interface asks for: the codec reads
 * requests in place as arrays of 8-byte fields, and a payload inside an mbuf
 * starts at 128 + 42 bytes, which is not 8-byte aligned; it also returns
 * every mbuf to the pool at once. At 96 bytes a payment it is a few ns.
 *
 * TX: one mbuf per datagram (chained for jumbo payloads), headers built from
 * the peer (the sender's MAC, IPv4 and port, swapped), one rte_eth_tx_burst.
 *
 * Waiting: a poll that finds nothing spins briefly (rte_pause between polls,
 * about 10 us), then sleeps in 50 us steps in ppoll() on wake_fd until the
 * timeout. Pure busy-polling would take a whole core from the shard threads
 * and the load generator on a small machine; 50 us steps bound the added
 * latency when idle, and under load the spin phase keeps the worker awake.
 *
 * Threads: netio workers are plain pthreads. The first rx_burst or tx_burst
 * registers the thread with the EAL (rte_thread_register) so that the
 * mempool's per-lcore cache is used instead of the shared ring on every
 * mbuf. Distinct queues of one port may be used from distinct threads.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "dpdk_packet.h"
#include "dpdk_port.h"
#include "netio.h"

#define SPIN_POLLS 128u                 /* empty polls before sleeping */
#define SLEEP_STEP_NS 50000             /* one sleep while idle */

/* The drop counters of transport.h follow enum dpdk_drop. */
_Static_assert(offsetof(struct netio_transport_stats, drop_icmp) -
			       offsetof(struct netio_transport_stats, drop_ether_type) ==
		       (DPDK_DROP_ICMP - DPDK_DROP_ETHER_TYPE) * sizeof(uint64_t),
	       "one counter per drop reason, in order");

/* The process's one port, shared by every handle. */
static struct {
	pthread_mutex_t lock;
	uint32_t handles;           /* open handles */
	bool eal;                   /* EAL started by this backend */
	bool port_ready;
	bool finished;              /* port and EAL released: no more opens */
	struct dpdk_options options;
	struct dpdk_port port;
	struct dpdk_endpoint local; /* our MAC, IPv4, UDP port */
} shared = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct dpdk_transport {
	struct netio_transport base;   /* first: the interface casts to it */
	uint16_t port_id;
	uint16_t queue;
	uint32_t burst_max;
	int wake_fd;                   /* > 0: ends waits; not owned */
	struct rte_mempool *pool;
	struct dpdk_endpoint local;
	uint8_t *buffers;              /* burst_max * NETIO_RX_BUFFER_BYTES, 64-aligned */
};

static struct dpdk_transport *dpdk_of(struct netio_transport *transport)
{
	assert(transport != NULL && transport->ops == &netio_transport_dpdk);
	return (struct dpdk_transport *)transport;
}

/* Our IPv4 address: ip= wins; else --listen when it names a usable IPv4. */
static int local_address(const struct netio_transport_config *config, uint32_t *ip_be)
{
	if (shared.options.ip_be != 0) {
		*ip_be = shared.options.ip_be;
		return 0;
	}
	struct in_addr address;
	if (config->bind_host != NULL && inet_pton(AF_INET, config->bind_host, &address) == 1 &&
	    address.s_addr != 0 && (ntohl(address.s_addr) >> 24) != 127) {
		*ip_be = address.s_addr;
		return 0;
	}
	fprintf(stderr, "payswitch dpdk: no address for the switch: add ip=A.B.C.D after '--' "
		"in --dpdk-args, or --listen A.B.C.D:PORT (not loopback)\n");
	return -EINVAL;
}

/* Starts the EAL and the port on the first open. Called with the lock held. */
static int shared_start(const struct netio_transport_config *config)
{
	char error[512] = "";
	int result = 0;
	if (!shared.eal) {
		result = dpdk_eal_start(config->backend_args, &shared.options, error, sizeof(error));
		if (result != 0)
			goto failed;
		shared.eal = true;
	}
	uint32_t ip_be = 0;
	result = local_address(config, &ip_be);
	if (result != 0)
		return result;
	uint16_t udp_port = shared.options.udp_port ? shared.options.udp_port : config->port;
	if (udp_port == 0) {
		fprintf(stderr, "payswitch dpdk: UDP port 0: give --listen HOST:PORT or port=N\n");
		return -EINVAL;
	}
	uint16_t queues = (uint16_t)(config->worker_count ? config->worker_count : 1);
	result = dpdk_port_start(&shared.options, queues, &shared.port, error, sizeof(error));
	if (result != 0)
		goto failed;
	shared.local.mac = shared.port.mac;
	shared.local.ip_be = ip_be;
	shared.local.port_be = htons(udp_port);
	shared.port_ready = true;
	char mac[RTE_ETHER_ADDR_FMT_SIZE], ip[INET_ADDRSTRLEN];
	rte_ether_format_addr(mac, sizeof(mac), &shared.local.mac);
	inet_ntop(AF_INET, &ip_be, ip, sizeof(ip));
	fprintf(stderr, "payswitch dpdk: port %u (%s) %s %s:%u, %u queue pair(s)%s, mtu %u\n",
		shared.port.port_id, shared.port.driver, mac, ip, udp_port, queues,
		shared.port.rss ? " with RSS" : "", shared.port.mtu);
	return 0;
failed:
	fprintf(stderr, "payswitch dpdk: %s\n", error);
	return result;
}

static int dpdk_open(const struct netio_transport_config *config,
		     struct netio_transport **transport)
{
	assert(config != NULL && transport != NULL);
	*transport = NULL;
	if (config->burst_max > NETIO_BURST_MAX)
		return -EINVAL;
	pthread_mutex_lock(&shared.lock);
	int result = 0;
	if (shared.finished)
		result = -EALREADY; /* the EAL cannot start twice in one process */
	else if (!shared.port_ready)
		result = shared_start(config);
	if (result == 0 && config->worker_index >= shared.port.queues)
		result = -EINVAL;
	struct dpdk_transport *dpdk = NULL;
	if (result == 0) {
		dpdk = calloc(1, sizeof(*dpdk));
		result = -ENOMEM;
		if (dpdk != NULL) {
			dpdk->burst_max = config->burst_max ? config->burst_max : NETIO_BURST_MAX;
			dpdk->buffers = aligned_alloc(64, (size_t)dpdk->burst_max *
								NETIO_RX_BUFFER_BYTES);
		}
		if (dpdk != NULL && dpdk->buffers != NULL)
			result = 0;
	}
	if (result != 0) {
		if (dpdk != NULL)
			free(dpdk->buffers);
		free(dpdk);
		pthread_mutex_unlock(&shared.lock);
		return result;
	}
	dpdk->base.ops = &netio_transport_dpdk;
	dpdk->port_id = shared.port.port_id;
	dpdk->queue = (uint16_t)config->worker_index;
	dpdk->wake_fd = config->wake_fd > 0 ? config->wake_fd : -1;
	dpdk->pool = shared.port.pool;
	dpdk->local = shared.local;
	shared.handles++;
	pthread_mutex_unlock(&shared.lock);
	*transport = &dpdk->base;
	return 0;
}

static void count_drop(struct dpdk_transport *dpdk, enum dpdk_drop drop)
{
	assert(drop > DPDK_DROP_NONE && drop < DPDK_DROP_KINDS);
	uint64_t *counter = &dpdk->base.stats.drop_ether_type + (drop - DPDK_DROP_ETHER_TYPE);
	NETIO_STAT_ADD(*counter, 1);
}

/* Copies one UDP payload into the handle's buffer `index`. */
static void take_datagram(struct dpdk_transport *dpdk, const struct rte_mbuf *frame,
			  const struct dpdk_parsed *parsed, uint32_t index,
			  struct netio_datagram *datagram)
{
	uint8_t *buffer = dpdk->buffers + (size_t)index * NETIO_RX_BUFFER_BYTES;
	uint32_t length = parsed->payload_length;
	if (length > NETIO_RX_BUFFER_BYTES) {
		/* Seen as oversized by the codec, as the UDP backend does. */
		length = NETIO_RX_BUFFER_BYTES;
		NETIO_STAT_ADD(dpdk->base.stats.rx_truncated, 1);
	}
	const void *bytes = rte_pktmbuf_read(frame, parsed->payload_offset, length, buffer);
	assert(bytes != NULL);
	if (bytes != buffer)
		memcpy(buffer, bytes, length);
	datagram->data = buffer;
	datagram->length = length;
	datagram->reserved = 0;
	dpdk_peer_store(&datagram->peer, &parsed->source);
}

/* Sends ARP / ICMP answers built in place; what the queue refuses is freed. */
static void send_answers(struct dpdk_transport *dpdk, struct rte_mbuf **answers, uint16_t count)
{
	if (count == 0)
		return;
	uint16_t sent = rte_eth_tx_burst(dpdk->port_id, dpdk->queue, answers, count);
	if (sent < count) {
		rte_pktmbuf_free_bulk(answers + sent, count - sent);
		NETIO_STAT_ADD(dpdk->base.stats.tx_errors, (uint64_t)(count - sent));
	}
}

/* One rte_eth_rx_burst: returns the UDP datagrams for us (maybe 0 even when
 * frames came: they were dropped or answered). */
static uint32_t poll_port(struct dpdk_transport *dpdk, struct netio_datagram *datagrams,
			  uint32_t max)
{
	struct rte_mbuf *frames[NETIO_BURST_MAX], *answers[NETIO_BURST_MAX],
		*done[NETIO_BURST_MAX];
	uint16_t received = rte_eth_rx_burst(dpdk->port_id, dpdk->queue, frames, (uint16_t)max);
	if (received == 0)
		return 0;
	uint32_t count = 0, answer_count = 0, done_count = 0, arp = 0, icmp = 0;
	uint64_t bytes = 0;
	for (uint16_t i = 0; i < received; i++) {
		struct dpdk_parsed parsed;
		dpdk_parse(frames[i], &dpdk->local, &parsed);
		if (parsed.kind == DPDK_FRAME_UDP) {
			take_datagram(dpdk, frames[i], &parsed, count, &datagrams[count]);
			bytes += datagrams[count++].length;
		} else if (parsed.kind == DPDK_FRAME_ARP_REQUEST) {
			dpdk_arp_reply_in_place(frames[i], &dpdk->local);
			answers[answer_count++] = frames[i], arp++;
			continue;
		} else if (parsed.kind == DPDK_FRAME_ICMP_ECHO) {
			dpdk_icmp_reply_in_place(frames[i], &dpdk->local);
			answers[answer_count++] = frames[i], icmp++;
			continue;
		} else {
			count_drop(dpdk, parsed.kind == DPDK_FRAME_ARP_REPLY ? DPDK_DROP_ARP
									     : parsed.drop);
		}
		done[done_count++] = frames[i];
	}
	rte_pktmbuf_free_bulk(done, done_count);
	send_answers(dpdk, answers, (uint16_t)answer_count);
	struct netio_transport_stats *stats = &dpdk->base.stats;
	NETIO_STAT_ADD(stats->rx_frames, received);
	if (arp)
		NETIO_STAT_ADD(stats->arp_replies, arp);
	if (icmp)
		NETIO_STAT_ADD(stats->icmp_replies, icmp);
	if (count > 0) {
		NETIO_STAT_ADD(stats->rx_datagrams, count);
		NETIO_STAT_ADD(stats->rx_bytes, bytes);
		NETIO_STAT_ADD(stats->rx_bursts, 1);
	}
	return count;
}

/* Sleeps one step or until wake_fd is readable. Returns true when woken. */
static bool sleep_step(struct dpdk_transport *dpdk)
{
	struct pollfd wake = { .fd = dpdk->wake_fd, .events = POLLIN };
	struct timespec step = { .tv_sec = 0, .tv_nsec = SLEEP_STEP_NS };
	int ready = ppoll(&wake, dpdk->wake_fd > 0 ? 1 : 0, &step, NULL);
	if (ready <= 0 || !(wake.revents & POLLIN))
		return false;
	/* Drain so the next wait sleeps again; EAGAIN (drained elsewhere) is harmless. */
	uint64_t value;
	ssize_t drained = read(dpdk->wake_fd, &value, sizeof(value));
	(void)drained;
	NETIO_STAT_ADD(dpdk->base.stats.rx_wakeups, 1);
	return true;
}

static int dpdk_rx_burst(struct netio_transport *transport, struct netio_datagram *datagrams,
			 uint32_t max, int timeout_ms)
{
	struct dpdk_transport *dpdk = dpdk_of(transport);
	assert(datagrams != NULL);
	if (dpdk_thread_attach() != 0)
		return -ENOSPC; /* no free lcore id: RTE_MAX_LCORE threads attached */
	if (max > dpdk->burst_max)
		max = dpdk->burst_max;
	if (max == 0)
		return 0;
	uint32_t count = poll_port(dpdk, datagrams, max);
	if (count != 0 || timeout_ms == 0)
		return (int)count;
	for (uint32_t spin = 0; spin < SPIN_POLLS; spin++) {
		rte_pause();
		count = poll_port(dpdk, datagrams, max);
		if (count != 0)
			return (int)count;
	}
	NETIO_STAT_ADD(dpdk->base.stats.rx_waits, 1);
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : dpdk_now_ns() + (uint64_t)timeout_ms * 1000000u;
	/* Bounded by the deadline (timeout_ms >= 0) or by wake_fd / traffic. */
	for (;;) {
		bool woken = sleep_step(dpdk);
		count = poll_port(dpdk, datagrams, max);
		if (count != 0 || woken || dpdk_now_ns() >= deadline)
			return (int)count;
	}
}

/* Builds the frame of one datagram. Returns 0 or -errno (counted by caller). */
static int build_frame(struct dpdk_transport *dpdk, struct rte_mbuf *frame,
		       const struct netio_datagram *datagram)
{
	struct dpdk_endpoint to;
	if (!dpdk_peer_load(&datagram->peer, &to))
		return -EAFNOSUPPORT;
	return dpdk_udp_build(frame, dpdk->pool, &dpdk->local, &to, datagram->data,
			      datagram->length);
}

static uint32_t dpdk_tx_burst(struct netio_transport *transport,
			      const struct netio_datagram *datagrams, uint32_t count)
{
	struct dpdk_transport *dpdk = dpdk_of(transport);
	assert(count <= NETIO_BURST_MAX);
	if (count == 0)
		return 0;
	if (dpdk_thread_attach() != 0)
		return 0;
	struct rte_mbuf *frames[NETIO_BURST_MAX];
	uint32_t owner[NETIO_BURST_MAX];  /* frames[j] carries datagrams[owner[j]] */
	if (rte_pktmbuf_alloc_bulk(dpdk->pool, frames, count) != 0) {
		NETIO_STAT_ADD(dpdk->base.stats.tx_no_mbuf, 1);
		return 0;
	}
	uint32_t built = 0, refused = 0;
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (build_frame(dpdk, frames[built], &datagrams[i]) != 0) {
			refused++;  /* a foreign peer, or too big: dropped and counted */
			continue;
		}
		bytes += datagrams[i].length;
		owner[built++] = i;
	}
	/* Frames not built go back; built ones go out in one burst. */
	rte_pktmbuf_free_bulk(frames + built, count - built);
	uint16_t sent = rte_eth_tx_burst(dpdk->port_id, dpdk->queue, frames, (uint16_t)built);
	uint32_t done = count;
	if (sent < built) {
		/* Datagrams from the first refused frame on were not tried. */
		done = owner[sent];
		for (uint32_t j = sent; j < built; j++)
			bytes -= datagrams[owner[j]].length;
		rte_pktmbuf_free_bulk(frames + sent, built - sent);
		NETIO_STAT_ADD(dpdk->base.stats.tx_full, 1);
	}
	if (refused)
		NETIO_STAT_ADD(dpdk->base.stats.tx_errors, refused);
	NETIO_STAT_ADD(dpdk->base.stats.tx_datagrams, sent);
	NETIO_STAT_ADD(dpdk->base.stats.tx_bytes, bytes);
	return done;
}

static uint16_t dpdk_port_number(const struct netio_transport *transport)
{
	return ntohs(dpdk_of((struct netio_transport *)transport)->local.port_be);
}

static const char *dpdk_peer_format(const struct netio_peer *peer, char *text, size_t size)
{
	assert(peer != NULL && text != NULL && size > 0);
	struct dpdk_endpoint endpoint;
	if (!dpdk_peer_load(peer, &endpoint)) {
		snprintf(text, size, "not-a-dpdk-peer");
		return text;
	}
	char ip[INET_ADDRSTRLEN] = "?", mac[RTE_ETHER_ADDR_FMT_SIZE];
	inet_ntop(AF_INET, &endpoint.ip_be, ip, sizeof(ip));
	rte_ether_format_addr(mac, sizeof(mac), &endpoint.mac);
	snprintf(text, size, "%s:%u (%s)", ip, (unsigned)ntohs(endpoint.port_be), mac);
	return text;
}

/* One line with every counter, for the log (tests read the drop counters here). */
static void log_stats(const struct dpdk_transport *dpdk)
{
	const struct netio_transport_stats *s = &dpdk->base.stats;
	fprintf(stderr, "payswitch dpdk: queue %u: rx_frames=%" PRIu64 " rx_datagrams=%" PRIu64
		" tx_datagrams=%" PRIu64 " tx_full=%" PRIu64 " tx_errors=%" PRIu64
		" tx_no_mbuf=%" PRIu64 " arp_replies=%" PRIu64 " icmp_replies=%" PRIu64,
		dpdk->queue, s->rx_frames, s->rx_datagrams, s->tx_datagrams, s->tx_full,
		s->tx_errors, s->tx_no_mbuf, s->arp_replies, s->icmp_replies);
	const uint64_t *drops = &s->drop_ether_type;
	for (unsigned d = DPDK_DROP_ETHER_TYPE; d < DPDK_DROP_KINDS; d++)
		fprintf(stderr, " drop_%s=%" PRIu64, dpdk_drop_name(d),
			drops[d - DPDK_DROP_ETHER_TYPE]);
	fputc('\n', stderr);
}

static void dpdk_close(struct netio_transport *transport)
{
	struct dpdk_transport *dpdk = dpdk_of(transport);
	log_stats(dpdk);
	pthread_mutex_lock(&shared.lock);
	assert(shared.handles > 0);
	if (--shared.handles == 0 && shared.port_ready) {
		/* The last handle: the switch is stopping. Release the port (a memif
		 * server removes its socket) and the EAL's memory and threads. */
		dpdk_port_stop(&shared.port);
		shared.port_ready = false;
		shared.finished = true;
		(void)rte_eal_cleanup();
	}
	pthread_mutex_unlock(&shared.lock);
	free(dpdk->buffers);
	free(dpdk);
}

const struct netio_transport_ops netio_transport_dpdk = {
	.name = "dpdk",
	.open = dpdk_open,
	.rx_burst = dpdk_rx_burst,
	.tx_burst = dpdk_tx_burst,
	.port = dpdk_port_number,
	.peer_format = dpdk_peer_format,
	.close = dpdk_close,
};
