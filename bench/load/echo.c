/*
 * echo.c — a stand-in switch for measuring the generator alone (--echo).
 *
 * One thread on a loopback UDP socket answers every request with LEDGER_OK
 * (amount echoed, balance 0) at once: no ledger, no journal. The generator's
 * own CPU time per request is then what the run measures. Given a key it
 * does the switch's share of authentication too: it drops datagrams whose
 * MAC is not the key's (no reply, as the switch) and seals its replies.
 */
#include "echo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct load_echo {
	int fd;
	pthread_t thread;
	atomic_bool stop;
	bool keyed;
	struct netio_key key;
	uint8_t *rx;                      /* NETIO_BURST_MAX * NETIO_RX_BUFFER_BYTES */
	uint8_t *tx;                      /* NETIO_BURST_MAX * NETIO_REPLY_MAX */
	struct sockaddr_storage peers[NETIO_BURST_MAX];
	struct mmsghdr rx_messages[NETIO_BURST_MAX];
	struct iovec rx_iovecs[NETIO_BURST_MAX];
	struct mmsghdr tx_messages[NETIO_BURST_MAX];
	struct iovec tx_iovecs[NETIO_BURST_MAX];
	struct ledger_result results[NETIO_BATCH_MAX];
};

/* Builds the reply to one datagram into tx slot `slot`. Returns its size, 0 for none. */
static size_t answer(struct load_echo *echo, uint32_t index, uint32_t slot)
{
	struct netio_view view;
	uint8_t *out = echo->tx + (size_t)slot * NETIO_REPLY_MAX;
	const uint8_t *in = echo->rx + (size_t)index * NETIO_RX_BUFFER_BYTES;
	size_t in_length = echo->rx_messages[index].msg_len;
	uint16_t code = netio_decode(in, in_length, &view);
	if (echo->keyed && (in_length < NETIO_HEADER_SIZE || view.header.key_id != echo->key.id ||
			    !netio_mac_ok(echo->key.secret, in, in_length)))
		return 0;   /* unauthenticated: no reply, as the switch */
	if (code != LEDGER_OK) {
		size_t size = netio_encode_refusal(&view, code, out, NETIO_REPLY_MAX);
		if (size > 0)
			netio_seal(echo->keyed ? &echo->key : NULL, out, size);
		return size;
	}
	if (view.header.type != NETIO_TYPE_REQUEST)
		return 0;
	for (uint32_t i = 0; i < view.count; i++) {
		memset(&echo->results[i], 0, sizeof(echo->results[i]));
		echo->results[i].id = view.requests[i].id;
		echo->results[i].amount = view.requests[i].amount;
		echo->results[i].code = LEDGER_OK;
	}
	size_t size = netio_encode_results(out, NETIO_REPLY_MAX, view.header.client_id,
					   view.header.sequence, echo->results, view.count);
	if (size > 0)
		netio_seal(echo->keyed ? &echo->key : NULL, out, size);
	return size;
}

static void *echo_main(void *context)
{
	struct load_echo *echo = context;
	while (!atomic_load_explicit(&echo->stop, memory_order_relaxed)) {
		struct pollfd wait = { .fd = echo->fd, .events = POLLIN };
		if (poll(&wait, 1, 50) <= 0)
			continue;
		for (uint32_t i = 0; i < NETIO_BURST_MAX; i++) {
			echo->rx_messages[i].msg_hdr.msg_name = &echo->peers[i];
			echo->rx_messages[i].msg_hdr.msg_namelen = sizeof(echo->peers[i]);
		}
		int got = recvmmsg(echo->fd, echo->rx_messages, NETIO_BURST_MAX, MSG_DONTWAIT, NULL);
		if (got <= 0)
			continue;
		uint32_t replies = 0;
		for (uint32_t i = 0; i < (uint32_t)got; i++) {
			size_t size = answer(echo, i, replies);
			if (size == 0)
				continue;
			echo->tx_iovecs[replies].iov_base = echo->tx + (size_t)replies * NETIO_REPLY_MAX;
			echo->tx_iovecs[replies].iov_len = size;
			echo->tx_messages[replies].msg_hdr = (struct msghdr){
				.msg_name = &echo->peers[i],
				.msg_namelen = echo->rx_messages[i].msg_hdr.msg_namelen,
				.msg_iov = &echo->tx_iovecs[replies],
				.msg_iovlen = 1,
			};
			replies++;
		}
		/* Loopback: a full client buffer drops the reply, and the
		 * generator's timeout resends the request. */
		if (replies > 0)
			(void)sendmmsg(echo->fd, echo->tx_messages, replies, MSG_DONTWAIT);
	}
	return NULL;
}

struct load_echo *load_echo_start(uint16_t *port, const struct netio_key *key, int *error)
{
	struct load_echo *echo = calloc(1, sizeof(*echo));
	if (echo == NULL) {
		*error = -ENOMEM;
		return NULL;
	}
	if (key != NULL) {
		echo->keyed = true;
		echo->key = *key;
	}
	echo->rx = aligned_alloc(64, (size_t)NETIO_BURST_MAX * NETIO_RX_BUFFER_BYTES);
	echo->tx = aligned_alloc(64, (size_t)NETIO_BURST_MAX * NETIO_REPLY_MAX);
	echo->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (echo->rx == NULL || echo->tx == NULL || echo->fd < 0) {
		*error = echo->fd < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	int buffer = 8 << 20;
	(void)setsockopt(echo->fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
	(void)setsockopt(echo->fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
	struct sockaddr_in address = { .sin_family = AF_INET,
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t length = sizeof(address);
	if (bind(echo->fd, (struct sockaddr *)&address, sizeof(address)) != 0 ||
	    getsockname(echo->fd, (struct sockaddr *)&address, &length) != 0) {
		*error = -errno;
		goto fail;
	}
	*port = ntohs(address.sin_port);
	for (uint32_t i = 0; i < NETIO_BURST_MAX; i++) {
		echo->rx_iovecs[i].iov_base = echo->rx + (size_t)i * NETIO_RX_BUFFER_BYTES;
		echo->rx_iovecs[i].iov_len = NETIO_RX_BUFFER_BYTES;
		echo->rx_messages[i].msg_hdr.msg_iov = &echo->rx_iovecs[i];
		echo->rx_messages[i].msg_hdr.msg_iovlen = 1;
	}
	int created = pthread_create(&echo->thread, NULL, echo_main, echo);
	if (created != 0) {
		*error = -created;
		goto fail;
	}
	return echo;
fail:
	if (echo->fd >= 0)
		close(echo->fd);
	free(echo->rx);
	free(echo->tx);
	free(echo);
	return NULL;
}

void load_echo_stop(struct load_echo *echo)
{
	if (echo == NULL)
		return;
	atomic_store(&echo->stop, true);
	pthread_join(echo->thread, NULL);
	close(echo->fd);
	free(echo->rx);
	free(echo->tx);
	free(echo);
}
