/*
 * transport_udp.c — the kernel UDP socket backend of transport.h.
 *
 * One nonblocking socket per worker, all bound to the same port with
 * SO_REUSEPORT so that the kernel spreads clients over the workers (by a hash
 * of the 4-tuple: one client's datagrams always reach the same worker).
 * Datagrams move in bursts through recvmmsg / sendmmsg: one system call per
 * burst of up to 32 instead of one per datagram, which is most of what the
 * kernel path costs (~0.6M datagrams/s over loopback on this VM).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netio.h"

#define SOCKET_BUFFER_DEFAULT_BYTES (8u << 20)

_Static_assert(sizeof(struct sockaddr_in6) <= sizeof(struct netio_peer), "peer holds IPv6");
_Static_assert(sizeof(struct sockaddr_in) <= sizeof(struct netio_peer), "peer holds IPv4");
_Static_assert(NETIO_RX_BUFFER_BYTES % 64 == 0, "buffers stay cache-line aligned");

struct udp_transport {
	struct netio_transport base;   /* first: the interface casts to it */
	int fd;
	int wake_fd;                   /* > 0: ends waits; not owned */
	uint32_t burst_max;
	uint16_t port;
	uint8_t *buffers;              /* burst_max * NETIO_RX_BUFFER_BYTES, 64-aligned */
	struct mmsghdr rx_messages[NETIO_BURST_MAX];
	struct iovec rx_iovecs[NETIO_BURST_MAX];
	struct mmsghdr tx_messages[NETIO_BURST_MAX];
	struct iovec tx_iovecs[NETIO_BURST_MAX];
};

static struct udp_transport *udp_of(struct netio_transport *transport)
{
	assert(transport != NULL && transport->ops == &netio_transport_udp);
	return (struct udp_transport *)transport;
}

static socklen_t peer_length(const struct netio_peer *peer)
{
	sa_family_t family;
	memcpy(&family, peer->bytes, sizeof(family));
	return family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Resolves the bind address; NULL or "" is the IPv6 wildcard (dual stack). */
static int resolve_bind(const char *host, uint16_t port, struct sockaddr_storage *address,
			socklen_t *length)
{
	memset(address, 0, sizeof(*address));
	if (host == NULL || host[0] == '\0') {
		struct sockaddr_in6 *any = (struct sockaddr_in6 *)address;
		any->sin6_family = AF_INET6;
		any->sin6_addr = in6addr_any;
		any->sin6_port = htons(port);
		*length = sizeof(*any);
		return 0;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM,
				 .ai_flags = AI_PASSIVE};
	struct addrinfo *found = NULL;
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	if (getaddrinfo(host, service, &hints, &found) != 0 || found == NULL)
		return -EHOSTUNREACH;
	assert(found->ai_addrlen <= sizeof(*address));
	memcpy(address, found->ai_addr, found->ai_addrlen);
	*length = found->ai_addrlen;
	freeaddrinfo(found);
	return 0;
}

/* Asks for big socket buffers: a burst of 128-request datagrams is 263 KiB,
 * and the default 208 KiB would drop bursts while a worker is busy. FORCE
 * works with CAP_NET_ADMIN beyond rmem_max; otherwise the plain option is
 * clamped by the kernel, which is fine: the granted size goes in the stats. */
static void size_buffers(struct udp_transport *udp, uint32_t wish_bytes)
{
	int wish = (int)wish_bytes;
	if (setsockopt(udp->fd, SOL_SOCKET, SO_RCVBUFFORCE, &wish, sizeof(wish)) != 0)
		(void)setsockopt(udp->fd, SOL_SOCKET, SO_RCVBUF, &wish, sizeof(wish));
	if (setsockopt(udp->fd, SOL_SOCKET, SO_SNDBUFFORCE, &wish, sizeof(wish)) != 0)
		(void)setsockopt(udp->fd, SOL_SOCKET, SO_SNDBUF, &wish, sizeof(wish));
	int granted = 0;
	socklen_t size = sizeof(granted);
	if (getsockopt(udp->fd, SOL_SOCKET, SO_RCVBUF, &granted, &size) == 0)
		udp->base.stats.rcvbuf_bytes = (uint64_t)granted;
	size = sizeof(granted);
	if (getsockopt(udp->fd, SOL_SOCKET, SO_SNDBUF, &granted, &size) == 0)
		udp->base.stats.sndbuf_bytes = (uint64_t)granted;
}

static int open_socket(struct udp_transport *udp, const struct netio_transport_config *config)
{
	struct sockaddr_storage address;
	socklen_t length = 0;
	int error = resolve_bind(config->bind_host, config->port, &address, &length);
	if (error != 0)
		return error;
	udp->fd = socket(address.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (udp->fd < 0 && errno == EAFNOSUPPORT && address.ss_family == AF_INET6 &&
	    (config->bind_host == NULL || config->bind_host[0] == '\0')) {
		/* A kernel without IPv6: the IPv4 wildcard serves the same port. */
		struct sockaddr_in *any = (struct sockaddr_in *)&address;
		memset(&address, 0, sizeof(address));
		any->sin_family = AF_INET;
		any->sin_addr.s_addr = htonl(INADDR_ANY);
		any->sin_port = htons(config->port);
		length = sizeof(*any);
		udp->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (udp->fd < 0)
		return -errno;
	int one = 1, zero = 0;
	if (setsockopt(udp->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		return -errno;
	if (address.ss_family == AF_INET6)
		(void)setsockopt(udp->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	size_buffers(udp, config->socket_buffer_bytes ? config->socket_buffer_bytes
						      : SOCKET_BUFFER_DEFAULT_BYTES);
	if (bind(udp->fd, (const struct sockaddr *)&address, length) != 0)
		return -errno;
	struct sockaddr_storage bound;
	socklen_t bound_length = sizeof(bound);
	if (getsockname(udp->fd, (struct sockaddr *)&bound, &bound_length) != 0)
		return -errno;
	udp->port = ntohs(bound.ss_family == AF_INET6
				  ? ((struct sockaddr_in6 *)&bound)->sin6_port
				  : ((struct sockaddr_in *)&bound)->sin_port);
	return 0;
}

static int udp_open(const struct netio_transport_config *config,
		    struct netio_transport **transport)
{
	assert(config != NULL && transport != NULL);
	*transport = NULL;
	if (config->burst_max > NETIO_BURST_MAX)
		return -EINVAL;
	struct udp_transport *udp = calloc(1, sizeof(*udp));
	if (udp == NULL)
		return -ENOMEM;
	udp->base.ops = &netio_transport_udp;
	udp->fd = -1;
	udp->wake_fd = config->wake_fd > 0 ? config->wake_fd : -1;
	udp->burst_max = config->burst_max ? config->burst_max : NETIO_BURST_MAX;
	int error = -ENOMEM;
	udp->buffers = aligned_alloc(64, (size_t)udp->burst_max * NETIO_RX_BUFFER_BYTES);
	if (udp->buffers == NULL)
		goto fail;
	for (uint32_t i = 0; i < udp->burst_max; i++) {
		udp->rx_iovecs[i].iov_base = udp->buffers + (size_t)i * NETIO_RX_BUFFER_BYTES;
		udp->rx_iovecs[i].iov_len = NETIO_RX_BUFFER_BYTES;
	}
	error = open_socket(udp, config);
	if (error != 0)
		goto fail;
	*transport = &udp->base;
	return 0;
fail:
	if (udp->fd >= 0)
		close(udp->fd);
	free(udp->buffers);
	free(udp);
	return error;
}

static int receive(struct udp_transport *udp, struct netio_datagram *datagrams, uint32_t max)
{
	for (uint32_t i = 0; i < max; i++) {
		struct msghdr *header = &udp->rx_messages[i].msg_hdr;
		memset(header, 0, sizeof(*header));
		/* The kernel writes the sender straight into the caller's peer. */
		header->msg_name = datagrams[i].peer.bytes;
		header->msg_namelen = sizeof(struct sockaddr_in6);
		header->msg_iov = &udp->rx_iovecs[i];
		header->msg_iovlen = 1;
	}
	int received = recvmmsg(udp->fd, udp->rx_messages, max, MSG_DONTWAIT, NULL);
	if (received < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
	uint64_t bytes = 0, truncated = 0;
	for (int i = 0; i < received; i++) {
		datagrams[i].data = udp->rx_iovecs[i].iov_base;
		datagrams[i].length = udp->rx_messages[i].msg_len;
		datagrams[i].reserved = 0;
		bytes += udp->rx_messages[i].msg_len;
		truncated += (udp->rx_messages[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
	}
	if (received > 0) {
		NETIO_STAT_ADD(udp->base.stats.rx_datagrams, (uint64_t)received);
		NETIO_STAT_ADD(udp->base.stats.rx_bytes, bytes);
		NETIO_STAT_ADD(udp->base.stats.rx_bursts, 1);
		if (truncated)
			NETIO_STAT_ADD(udp->base.stats.rx_truncated, truncated);
	}
	return received;
}

static int udp_rx_burst(struct netio_transport *transport, struct netio_datagram *datagrams,
			uint32_t max, int timeout_ms)
{
	struct udp_transport *udp = udp_of(transport);
	assert(datagrams != NULL);
	if (max > udp->burst_max)
		max = udp->burst_max;
	if (max == 0)
		return 0;
	int received = receive(udp, datagrams, max);
	if (received != 0 || timeout_ms == 0)
		goto done;
	/* poll() ignores a negative fd: without wake_fd the second entry is inert. */
	struct pollfd wait[2] = {{.fd = udp->fd, .events = POLLIN},
				 {.fd = udp->wake_fd, .events = POLLIN}};
	NETIO_STAT_ADD(udp->base.stats.rx_waits, 1);
	int ready = poll(wait, 2, timeout_ms);
	if (ready < 0)
		return errno == EINTR ? 0 : -errno;
	if (ready == 0)
		return 0;
	if (wait[1].revents & POLLIN) {
		/* Drain so the next wait sleeps again; the waker's write is what
		 * counted. A failed read (EAGAIN: drained elsewhere) is harmless. */
		uint64_t value;
		ssize_t drained = read(udp->wake_fd, &value, sizeof(value));
		(void)drained;
		NETIO_STAT_ADD(udp->base.stats.rx_wakeups, 1);
	}
	received = receive(udp, datagrams, max);
done:
	if (received < 0)
		NETIO_STAT_ADD(udp->base.stats.rx_errors, 1);
	return received;
}

static uint32_t udp_tx_burst(struct netio_transport *transport,
			     const struct netio_datagram *datagrams, uint32_t count)
{
	struct udp_transport *udp = udp_of(transport);
	assert(count <= NETIO_BURST_MAX);
	for (uint32_t i = 0; i < count; i++) {
		udp->tx_iovecs[i].iov_base = datagrams[i].data;
		udp->tx_iovecs[i].iov_len = datagrams[i].length;
		struct msghdr *header = &udp->tx_messages[i].msg_hdr;
		memset(header, 0, sizeof(*header));
		header->msg_name = (void *)datagrams[i].peer.bytes;
		header->msg_namelen = peer_length(&datagrams[i].peer);
		header->msg_iov = &udp->tx_iovecs[i];
		header->msg_iovlen = 1;
	}
	uint32_t done = 0;
	uint64_t bytes = 0, sent = 0;
	/* Bounded: each turn either sends >= 1 datagram, skips one refused
	 * datagram, or stops. */
	while (done < count) {
		int n = sendmmsg(udp->fd, udp->tx_messages + done, count - done, MSG_DONTWAIT);
		if (n > 0) {
			for (int i = 0; i < n; i++)
				bytes += udp->tx_messages[done + (uint32_t)i].msg_len;
			sent += (uint64_t)n;
			done += (uint32_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			NETIO_STAT_ADD(udp->base.stats.tx_full, 1);
			break;
		}
		/* The first datagram is refused (bad address, unreachable...):
		 * drop it, count it, and go on with the others. */
		NETIO_STAT_ADD(udp->base.stats.tx_errors, 1);
		done++;
	}
	NETIO_STAT_ADD(udp->base.stats.tx_datagrams, sent);
	NETIO_STAT_ADD(udp->base.stats.tx_bytes, bytes);
	return done;
}

static uint16_t udp_port(const struct netio_transport *transport)
{
	return udp_of((struct netio_transport *)transport)->port;
}

static const char *udp_peer_format(const struct netio_peer *peer, char *text, size_t size)
{
	assert(peer != NULL && text != NULL && size > 0);
	char address[INET6_ADDRSTRLEN] = "?";
	sa_family_t family;
	memcpy(&family, peer->bytes, sizeof(family));
	if (family == AF_INET6) {
		struct sockaddr_in6 in6;
		memcpy(&in6, peer->bytes, sizeof(in6));
		inet_ntop(AF_INET6, &in6.sin6_addr, address, sizeof(address));
		snprintf(text, size, "[%s]:%u", address, (unsigned)ntohs(in6.sin6_port));
	} else if (family == AF_INET) {
		struct sockaddr_in in4;
		memcpy(&in4, peer->bytes, sizeof(in4));
		inet_ntop(AF_INET, &in4.sin_addr, address, sizeof(address));
		snprintf(text, size, "%s:%u", address, (unsigned)ntohs(in4.sin_port));
	} else {
		snprintf(text, size, "unknown-family-%u", (unsigned)family);
	}
	return text;
}

static void udp_close(struct netio_transport *transport)
{
	struct udp_transport *udp = udp_of(transport);
	if (udp->fd >= 0)
		close(udp->fd);
	free(udp->buffers);
	free(udp);
}

const struct netio_transport_ops netio_transport_udp = {
	.name = "udp",
	.open = udp_open,
	.rx_burst = udp_rx_burst,
	.tx_burst = udp_tx_burst,
	.port = udp_port,
	.peer_format = udp_peer_format,
	.close = udp_close,
};
