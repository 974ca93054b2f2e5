/*
 * client.c — the netio client library: terminals, gateways, load generators.
 *
 * One connected UDP socket per client (the kernel then filters out datagrams
 * from anyone but the switch). Everything is allocated at open; calls never
 * allocate. Exactly-once is the switch's job, through request ids: the client
 * only promises that a retransmission carries the same requests, byte for
 * byte. Since protocol version 2 a retransmission is a new datagram (a new
 * sequence, a new MAC): the switch refuses a datagram it has seen (replay
 * protection), and deduplicates the requests inside.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "netio.h"

/* Transmit buffers are spaced by a multiple of 64 bytes above the maximum. */
#define TX_STRIDE_BYTES 8256u
_Static_assert(TX_STRIDE_BYTES >= NETIO_DATAGRAM_MAX && TX_STRIDE_BYTES % 64 == 0, "stride");
/* The id -> index table of a call: a power of two >= 2x the requests, so
 * linear probing stays short. */
#define CALL_SLOTS (2u * NETIO_CLIENT_REQUESTS_MAX)
_Static_assert((CALL_SLOTS & (CALL_SLOTS - 1)) == 0, "power of two");
#define CLIENT_SOCKET_BUFFER_BYTES (4u << 20)
/* Transmission rounds of one call whose replies are still matched: a late
 * answer to any of the last CALL_ROUNDS_MAX rounds counts. */
#define CALL_ROUNDS_MAX 16u

struct netio_client {
	int fd;
	bool keyed;                           /* seal datagrams and check replies */
	struct netio_key key;
	uint64_t client_id;
	uint64_t sequence_next;
	struct netio_client_stats stats;
	uint8_t *tx_buffers;                  /* NETIO_BURST_MAX * TX_STRIDE_BYTES */
	uint8_t *rx_buffers;                  /* NETIO_BURST_MAX * NETIO_RX_BUFFER_BYTES */
	uint32_t *slots;                      /* CALL_SLOTS: request index + 1, 0 = empty */
	uint8_t *answered;                    /* NETIO_CLIENT_REQUESTS_MAX flags */
	uint64_t jitter_state;                /* splitmix64: backoff jitter, not secrets */
	struct ledger_request *busy_requests; /* NETIO_CLIENT_REQUESTS_MAX: a BUSY round */
	struct ledger_result *busy_results;   /* NETIO_CLIENT_REQUESTS_MAX */
	uint32_t *busy_where;                 /* NETIO_CLIENT_REQUESTS_MAX: index in the call */
	uint32_t tx_lengths[NETIO_BURST_MAX];
	struct mmsghdr tx_messages[NETIO_BURST_MAX];
	struct iovec tx_iovecs[NETIO_BURST_MAX];
	struct mmsghdr rx_messages[NETIO_BURST_MAX];
	struct iovec rx_iovecs[NETIO_BURST_MAX];
};

/* State of one netio_client_call(). */
struct call {
	const struct ledger_request *requests;
	struct ledger_result *results;
	uint32_t count;
	uint32_t datagrams;
	uint32_t slot_mask;
	uint32_t remaining;                   /* requests without a result */
	uint32_t pending[NETIO_BURST_MAX];    /* per datagram: requests without a result */
	uint32_t rounds;                      /* transmission rounds so far */
	uint64_t round_first[CALL_ROUNDS_MAX];   /* first sequence of each round */
	uint8_t round_count[CALL_ROUNDS_MAX];    /* datagrams of each round */
	uint8_t round_datagram[CALL_ROUNDS_MAX][NETIO_BURST_MAX]; /* which datagram each carried */
};
_Static_assert(NETIO_BURST_MAX <= UINT8_MAX, "datagram indexes fit a byte");

/* Splitmix64 (Steele, Lea, Flood): jitter for backoff, not a secret. */
static uint64_t jitter_next(struct netio_client *client)
{
	uint64_t z = (client->jitter_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t netio_client_backoff_us(uint64_t base_us, uint32_t attempt, uint64_t cap_us,
				 uint64_t random)
{
	uint32_t shift = attempt < NETIO_CLIENT_BACKOFF_SHIFT_MAX ? attempt
								  : NETIO_CLIENT_BACKOFF_SHIFT_MAX;
	/* Bounded below 2^40 before the shift: no overflow in any product. */
	uint64_t base = base_us < (1ull << 40) ? base_us : (1ull << 40);
	uint64_t wait = base << shift;
	if (cap_us > 0 && wait > cap_us)
		wait = cap_us;
	/* + wait * u / 2 with u = the high 32 bits / 2^32 in [0, 1): 0-50%. */
	return wait + ((wait * (random >> 32)) >> 33);
}

uint64_t netio_client_busy_wait_us(uint32_t retry_after_us, uint32_t busy_answers,
				   uint64_t random)
{
	uint32_t doublings = busy_answers > 0 ? busy_answers - 1u : 0u;
	if (doublings > 11)
		doublings = 11;   /* 0.5 ms * 2^11 passes the 1 s cap already */
	uint64_t base = (uint64_t)NETIO_CLIENT_BUSY_FALLBACK_US << doublings;
	if (retry_after_us > base)
		base = retry_after_us;
	if (base > NETIO_CLIENT_BUSY_WAIT_MAX_US)
		base = NETIO_CLIENT_BUSY_WAIT_MAX_US;
	return netio_client_backoff_us(base, 0, 0, random);
}

/* Reserves count consecutive datagram sequences: the realtime clock in µs,
 * or just past the last one used, so that sequences only grow (the switch
 * refuses one it has seen, or one far from its clock: PROTOCOL.md). */
static uint64_t sequences_take(struct netio_client *client, uint32_t count)
{
	uint64_t now = ledger_realtime_us();
	uint64_t first = client->sequence_next > now ? client->sequence_next : now;
	client->sequence_next = first + count;
	return first;
}

/* Seals a datagram built in a tx buffer with the client's key (or none). */
static void seal(const struct netio_client *client, void *datagram, size_t length)
{
	netio_seal(client->keyed ? &client->key : NULL, datagram, length);
}

static uint8_t *tx_buffer(struct netio_client *client, uint32_t index)
{
	assert(index < NETIO_BURST_MAX);
	return client->tx_buffers + (size_t)index * TX_STRIDE_BYTES;
}

static int connect_socket(struct netio_client *client, const char *host, uint16_t port)
{
	if (host == NULL || host[0] == '\0' || port == 0)
		return -EINVAL;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
	struct addrinfo *found = NULL;
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	if (getaddrinfo(host, service, &hints, &found) != 0 || found == NULL)
		return -EHOSTUNREACH;
	int error = 0;
	client->fd = socket(found->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (client->fd < 0) {
		error = -errno;
		goto out;
	}
	/* Replies to a deep window arrive in bursts: ask for big buffers, past
	 * net.core.rmem_max when allowed (root), as the server transport does. */
	int wish = (int)CLIENT_SOCKET_BUFFER_BYTES;
	if (setsockopt(client->fd, SOL_SOCKET, SO_RCVBUFFORCE, &wish, sizeof(wish)) != 0)
		(void)setsockopt(client->fd, SOL_SOCKET, SO_RCVBUF, &wish, sizeof(wish));
	if (setsockopt(client->fd, SOL_SOCKET, SO_SNDBUFFORCE, &wish, sizeof(wish)) != 0)
		(void)setsockopt(client->fd, SOL_SOCKET, SO_SNDBUF, &wish, sizeof(wish));
	if (connect(client->fd, found->ai_addr, found->ai_addrlen) != 0)
		error = -errno;
out:
	freeaddrinfo(found);
	return error;
}

static int random_client_id(uint64_t *id)
{
	/* Bounded: a zero id from a good generator has probability 2^-64. */
	for (int attempt = 0; attempt < 8; attempt++) {
		if (getrandom(id, sizeof(*id), 0) != (ssize_t)sizeof(*id))
			return -errno ? -errno : -EIO;
		if (*id != 0)
			return 0;
	}
	return -EIO;
}

struct netio_client *netio_client_open(const char *host, uint16_t port, int *error)
{
	return netio_client_open_key(host, port, NULL, error);
}

struct netio_client *netio_client_open_key(const char *host, uint16_t port,
					   const struct netio_key *key, int *error)
{
	int unused;
	if (error == NULL)
		error = &unused;
	struct netio_client *client = calloc(1, sizeof(*client));
	if (client == NULL) {
		*error = -ENOMEM;
		return NULL;
	}
	client->fd = -1;
	client->sequence_next = 1;
	if (key != NULL) {
		assert(key->id != NETIO_KEY_ID_NONE);
		client->keyed = true;
		client->key = *key;
	}
	*error = -ENOMEM;
	client->tx_buffers = aligned_alloc(64, (size_t)NETIO_BURST_MAX * TX_STRIDE_BYTES);
	client->rx_buffers = aligned_alloc(64, (size_t)NETIO_BURST_MAX * NETIO_RX_BUFFER_BYTES);
	client->slots = calloc(CALL_SLOTS, sizeof(uint32_t));
	client->answered = calloc(NETIO_CLIENT_REQUESTS_MAX, 1);
	client->busy_requests = calloc(NETIO_CLIENT_REQUESTS_MAX, sizeof(struct ledger_request));
	client->busy_results = calloc(NETIO_CLIENT_REQUESTS_MAX, sizeof(struct ledger_result));
	client->busy_where = calloc(NETIO_CLIENT_REQUESTS_MAX, sizeof(uint32_t));
	if (!client->tx_buffers || !client->rx_buffers || !client->slots || !client->answered ||
	    !client->busy_requests || !client->busy_results || !client->busy_where)
		goto fail;
	for (uint32_t i = 0; i < NETIO_BURST_MAX; i++) {
		client->rx_iovecs[i].iov_base = client->rx_buffers + (size_t)i * NETIO_RX_BUFFER_BYTES;
		client->rx_iovecs[i].iov_len = NETIO_RX_BUFFER_BYTES;
	}
	*error = random_client_id(&client->client_id);
	if (*error != 0)
		goto fail;
	client->jitter_state = client->client_id;
	*error = connect_socket(client, host, port);
	if (*error != 0)
		goto fail;
	return client;
fail:
	netio_client_close(client);
	return NULL;
}

void netio_client_close(struct netio_client *client)
{
	if (client == NULL)
		return;
	if (client->fd >= 0)
		close(client->fd);
	sodium_memzero(&client->key, sizeof(client->key));
	free(client->tx_buffers);
	free(client->rx_buffers);
	free(client->slots);
	free(client->answered);
	free(client->busy_requests);
	free(client->busy_results);
	free(client->busy_where);
	free(client);
}

uint64_t netio_client_id(const struct netio_client *client)
{
	return client->client_id;
}

int netio_client_fd(const struct netio_client *client)
{
	return client->fd;
}

void netio_client_stats_read(const struct netio_client *client, struct netio_client_stats *stats)
{
	*stats = client->stats;
}

/* Sends the datagrams named by indexes[0..count) from the tx buffers. Never
 * blocks. Returns how many went (in order), or -errno. */
static int transmit(struct netio_client *client, const uint32_t *indexes, uint32_t count)
{
	assert(count <= NETIO_BURST_MAX);
	for (uint32_t i = 0; i < count; i++) {
		client->tx_iovecs[i].iov_base = tx_buffer(client, indexes[i]);
		client->tx_iovecs[i].iov_len = client->tx_lengths[indexes[i]];
		memset(&client->tx_messages[i], 0, sizeof(client->tx_messages[i]));
		client->tx_messages[i].msg_hdr.msg_iov = &client->tx_iovecs[i];
		client->tx_messages[i].msg_hdr.msg_iovlen = 1;
	}
	uint32_t done = 0;
	/* Bounded: each turn sends >= 1, stops, or consumes one pending ICMP
	 * error (at most a few: retried at most count + 1 times). */
	for (uint32_t turn = 0; done < count && turn <= count + 1; turn++) {
		int n = sendmmsg(client->fd, client->tx_messages + done, count - done, MSG_DONTWAIT);
		if (n > 0) {
			done += (uint32_t)n;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			break;
		if (errno == ECONNREFUSED || errno == EINTR) {
			client->stats.receive_errors += errno == ECONNREFUSED;
			continue;
		}
		return -errno;
	}
	return (int)done;
}

/* Sends every datagram in indexes, waiting for socket space up to timeout_ms. */
static int transmit_all(struct netio_client *client, const uint32_t *indexes, uint32_t count,
			int timeout_ms)
{
	uint64_t deadline = (ledger_monotonic_ns() / 1000000u) + (uint64_t)timeout_ms;
	uint32_t done = 0;
	while (done < count) {
		int n = transmit(client, indexes + done, count - done);
		if (n < 0)
			return n;
		done += (uint32_t)n;
		if (done == count)
			break;
		uint64_t now = (ledger_monotonic_ns() / 1000000u);
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd wait = {.fd = client->fd, .events = POLLOUT};
		if (poll(&wait, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Waits up to timeout_ms for datagrams and receives a burst into the rx
 * buffers. Returns how many, 0 on timeout, or -errno. */
static int receive(struct netio_client *client, uint32_t max, int timeout_ms)
{
	assert(max >= 1 && max <= NETIO_BURST_MAX);
	for (int turn = 0; turn < 2; turn++) {
		for (uint32_t i = 0; i < max; i++) {
			memset(&client->rx_messages[i], 0, sizeof(client->rx_messages[i]));
			client->rx_messages[i].msg_hdr.msg_iov = &client->rx_iovecs[i];
			client->rx_messages[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(client->fd, client->rx_messages, max, MSG_DONTWAIT, NULL);
		if (n > 0)
			return n;
		if (n < 0 && errno == ECONNREFUSED)
			client->stats.receive_errors++;
		else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (turn == 1 || timeout_ms == 0)
			break;
		struct pollfd wait = {.fd = client->fd, .events = POLLIN};
		int ready = poll(&wait, 1, timeout_ms);
		if (ready < 0 && errno != EINTR)
			return -errno;
		if (ready <= 0)
			break;
	}
	return 0;
}

/* Decodes received datagram i; returns true for a valid reply to us. */
static bool decode_reply(struct netio_client *client, uint32_t i, struct netio_view *view)
{
	const void *data = client->rx_iovecs[i].iov_base;
	size_t length = client->rx_messages[i].msg_len;
	if (netio_decode(data, length, view) != LEDGER_OK ||
	    view->header.type == NETIO_TYPE_REQUEST) {
		client->stats.replies_invalid++;
		return false;
	}
	/* A keyed client believes only replies sealed with its key: anyone can
	 * send a datagram that claims to come from the switch. */
	if (client->keyed && (view->header.key_id != client->key.id ||
			      !netio_mac_ok(client->key.secret, data, length))) {
		client->stats.replies_invalid++;
		return false;
	}
	if (view->header.client_id != client->client_id) {
		client->stats.replies_ignored++;
		return false;
	}
	client->stats.replies++;
	return true;
}

static uint32_t slot_of(uint64_t id, uint32_t mask)
{
	return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

static void call_index(struct call *call, uint32_t *slots)
{
	uint32_t size = 16;
	while (size < 2 * call->count)
		size *= 2;
	assert(size <= CALL_SLOTS);
	call->slot_mask = size - 1;
	memset(slots, 0, size * sizeof(uint32_t));
	for (uint32_t i = 0; i < call->count; i++) {
		uint32_t slot = slot_of(call->requests[i].id, call->slot_mask);
		while (slots[slot] != 0)
			slot = (slot + 1) & call->slot_mask;
		slots[slot] = i + 1;
	}
}

/* The unanswered request of datagram `datagram` with this id, or -1.
 * Duplicate ids in one datagram are answered in request order. */
static int call_find(const struct call *call, const uint32_t *slots, const uint8_t *answered,
		     uint32_t datagram, uint64_t id)
{
	uint32_t first = datagram * NETIO_BATCH_MAX;
	uint32_t last = first + NETIO_BATCH_MAX;
	uint32_t slot = slot_of(id, call->slot_mask);
	for (uint32_t probe = 0; probe <= call->slot_mask && slots[slot] != 0; probe++) {
		uint32_t index = slots[slot] - 1;
		if (call->requests[index].id == id && !answered[index] && index >= first &&
		    index < last)
			return (int)index;
		slot = (slot + 1) & call->slot_mask;
	}
	return -1;
}

static void call_answer(struct call *call, uint8_t *answered, uint32_t index,
			const struct ledger_result *result)
{
	assert(!answered[index]);
	call->results[index] = *result;
	answered[index] = 1;
	call->remaining--;
	call->pending[index / NETIO_BATCH_MAX]--;
}

static void call_absorb(struct netio_client *client, struct call *call,
			const struct netio_view *view)
{
	/* Which datagram of the call this answers: any round still remembered
	 * (a late answer to a round before the retransmission counts). */
	uint32_t datagram = UINT32_MAX;
	uint32_t oldest = call->rounds > CALL_ROUNDS_MAX ? call->rounds - CALL_ROUNDS_MAX : 0;
	for (uint32_t r = oldest; r < call->rounds && datagram == UINT32_MAX; r++) {
		uint32_t k = r % CALL_ROUNDS_MAX;
		uint64_t first = call->round_first[k];
		if (view->header.sequence >= first && view->header.sequence - first < call->round_count[k])
			datagram = call->round_datagram[k][view->header.sequence - first];
	}
	if (datagram == UINT32_MAX) {
		client->stats.replies_ignored++;
		return;
	}
	if (view->header.type == NETIO_TYPE_ERROR) {
		/* The whole datagram was refused: every open request gets the code. */
		uint32_t last = datagram * NETIO_BATCH_MAX + NETIO_BATCH_MAX;
		for (uint32_t i = datagram * NETIO_BATCH_MAX; i < last && i < call->count; i++) {
			if (client->answered[i])
				continue;
			struct ledger_result result = {.id = call->requests[i].id,
						       .code = view->results[0].code};
			call_answer(call, client->answered, i, &result);
		}
		return;
	}
	for (uint32_t r = 0; r < view->count; r++) {
		int index = call_find(call, client->slots, client->answered, datagram,
				      view->results[r].id);
		if (index < 0) {
			client->stats.replies_ignored++;
			continue;
		}
		call_answer(call, client->answered, (uint32_t)index, &view->results[r]);
	}
}

/* Encodes and seals datagrams indexes[0..count) of the call as one new
 * round: new consecutive sequences, the same requests. */
static void call_round(struct netio_client *client, struct call *call, const uint32_t *indexes,
		       uint32_t count)
{
	assert(count >= 1 && count <= NETIO_BURST_MAX);
	uint32_t k = call->rounds % CALL_ROUNDS_MAX;
	uint64_t sequence = sequences_take(client, count);
	call->round_first[k] = sequence;
	call->round_count[k] = (uint8_t)count;
	call->rounds++;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t d = indexes[i];
		uint32_t first = d * NETIO_BATCH_MAX;
		uint32_t n = call->count - first < NETIO_BATCH_MAX ? call->count - first
								   : NETIO_BATCH_MAX;
		call->round_datagram[k][i] = (uint8_t)d;
		uint8_t *buffer = tx_buffer(client, d);
		size_t length = netio_encode_requests(buffer, TX_STRIDE_BYTES, client->client_id,
						      sequence + i, call->requests + first, n);
		seal(client, buffer, length);
		client->tx_lengths[d] = (uint32_t)length;
	}
}

static void call_prepare(struct netio_client *client, struct call *call)
{
	call->datagrams = (call->count + NETIO_BATCH_MAX - 1) / NETIO_BATCH_MAX;
	call->remaining = call->count;
	call->rounds = 0;
	for (uint32_t d = 0; d < call->datagrams; d++) {
		uint32_t first = d * NETIO_BATCH_MAX;
		call->pending[d] = call->count - first < NETIO_BATCH_MAX ? call->count - first
									 : NETIO_BATCH_MAX;
	}
	for (uint32_t i = 0; i < call->count; i++) {
		memset(&call->results[i], 0, sizeof(call->results[i]));
		call->results[i].id = call->requests[i].id;
		call->results[i].code = NETIO_CODE_NO_ANSWER;
		client->answered[i] = 0;
	}
	call_index(call, client->slots);
}

/* Receives until every request is answered or timeout_ms passes. */
static int call_wait(struct netio_client *client, struct call *call, int timeout_ms)
{
	uint64_t deadline = (ledger_monotonic_ns() / 1000000u) + (uint64_t)timeout_ms;
	while (call->remaining > 0) {
		uint64_t now = (ledger_monotonic_ns() / 1000000u);
		if (now >= deadline)
			break;
		int n = receive(client, NETIO_BURST_MAX, (int)(deadline - now));
		if (n < 0)
			return n;
		for (uint32_t i = 0; i < (uint32_t)n; i++) {
			struct netio_view view;
			if (decode_reply(client, i, &view))
				call_absorb(client, call, &view);
		}
	}
	return 0;
}

/* The wait after transmission `attempt` of a call (0: the first), in ms:
 * timeout_ms first, then backed off with jitter (netio.h). */
static int call_timeout_ms(struct netio_client *client, int timeout_ms, uint32_t attempt)
{
	if (attempt == 0)
		return timeout_ms;
	uint64_t wait_us = netio_client_backoff_us((uint64_t)timeout_ms * 1000u, attempt, 0,
						   jitter_next(client));
	uint64_t wait_ms = (wait_us + 999u) / 1000u;
	return wait_ms < (uint64_t)INT_MAX ? (int)wait_ms : INT_MAX;
}

/* Sends count requests and waits for their answers, retransmitting after
 * backed-off timeouts while *retries_left allows (each round takes one). */
static int call_run(struct netio_client *client, const struct ledger_request *requests,
		    uint32_t count, struct ledger_result *results, int timeout_ms,
		    int *retries_left)
{
	struct call call = {.requests = requests, .results = results, .count = count};
	call_prepare(client, &call);

	uint32_t indexes[NETIO_BURST_MAX];
	for (uint32_t d = 0; d < call.datagrams; d++)
		indexes[d] = d;
	call_round(client, &call, indexes, call.datagrams);
	int error = transmit_all(client, indexes, call.datagrams, timeout_ms);
	if (error != 0 && error != -ETIMEDOUT)
		return error;
	client->stats.datagrams_sent += call.datagrams;
	/* Bounded: each turn takes one of *retries_left or returns. */
	for (uint32_t attempt = 0;; attempt++) {
		error = call_wait(client, &call, call_timeout_ms(client, timeout_ms, attempt));
		if (error != 0)
			return error;
		if (call.remaining == 0)
			return 0;
		if (*retries_left <= 0)
			return -ETIMEDOUT;
		(*retries_left)--;
		/* Resend only the datagrams still owed answers: the same requests
		 * in new datagrams (new sequences: the switch refuses a datagram
		 * it has seen, and answers repeated requests from its window). */
		uint32_t resend = 0;
		for (uint32_t d = 0; d < call.datagrams; d++)
			if (call.pending[d] > 0)
				indexes[resend++] = d;
		assert(resend > 0);
		call_round(client, &call, indexes, resend);
		error = transmit_all(client, indexes, resend, timeout_ms);
		if (error != 0 && error != -ETIMEDOUT)
			return error;
		client->stats.retransmits += resend;
	}
}

/* Collects the requests answered BUSY into the client's BUSY round arrays.
 * Returns how many, and the largest hint among them in *hint_us. */
static uint32_t call_collect_busy(struct netio_client *client,
				  const struct ledger_request *requests,
				  const struct ledger_result *results, uint32_t count,
				  uint32_t *hint_us)
{
	uint32_t busy = 0;
	*hint_us = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (results[i].code != LEDGER_BUSY)
			continue;
		client->busy_where[busy] = i;
		client->busy_requests[busy++] = requests[i];
		if (results[i].retry_after_us > *hint_us)
			*hint_us = results[i].retry_after_us;
	}
	return busy;
}

static void sleep_us(uint64_t wait_us)
{
	struct timespec wait = {.tv_sec = (time_t)(wait_us / 1000000u),
				.tv_nsec = (long)(wait_us % 1000000u) * 1000};
	while (nanosleep(&wait, &wait) != 0 && errno == EINTR)
		continue;
}

int netio_client_call(struct netio_client *client, const struct ledger_request *requests,
		      uint32_t count, struct ledger_result *results, int timeout_ms,
		      int retries)
{
	assert(client != NULL && requests != NULL && results != NULL);
	assert(count >= 1 && count <= NETIO_CLIENT_REQUESTS_MAX);
	assert(timeout_ms > 0 && retries >= 0);
	int retries_left = retries;
	int error = call_run(client, requests, count, results, timeout_ms, &retries_left);
	/* BUSY rounds: bounded, each takes one of the retries. */
	for (uint32_t round = 1; (error == 0 || error == -ETIMEDOUT) && retries_left > 0; round++) {
		uint32_t hint_us = 0;
		uint32_t busy = call_collect_busy(client, requests, results, count, &hint_us);
		if (busy == 0)
			break;
		retries_left--;
		sleep_us(netio_client_busy_wait_us(hint_us, round, jitter_next(client)));
		client->stats.busy_retries += busy;
		int again = call_run(client, client->busy_requests, busy, client->busy_results,
				     timeout_ms, &retries_left);
		if (again != 0 && again != -ETIMEDOUT)
			return again;
		error = 0;
		for (uint32_t i = 0; i < busy; i++)
			results[client->busy_where[i]] = client->busy_results[i];
		for (uint32_t i = 0; i < count && error == 0; i++)
			if (results[i].code == NETIO_CODE_NO_ANSWER)
				error = -ETIMEDOUT;
	}
	return error;
}

int netio_client_send(struct netio_client *client, const struct ledger_request *requests,
		      uint32_t count, uint32_t per_datagram, uint64_t *first_sequence)
{
	assert(client != NULL && requests != NULL);
	assert(count >= 1 && per_datagram >= 1 && per_datagram <= NETIO_BATCH_MAX);
	uint32_t datagrams = (count + per_datagram - 1) / per_datagram;
	assert(datagrams <= NETIO_BURST_MAX);
	uint64_t sequence = sequences_take(client, datagrams);
	uint32_t indexes[NETIO_BURST_MAX];
	for (uint32_t d = 0; d < datagrams; d++) {
		uint32_t first = d * per_datagram;
		uint32_t n = count - first < per_datagram ? count - first : per_datagram;
		uint8_t *buffer = tx_buffer(client, d);
		size_t length = netio_encode_requests(buffer, TX_STRIDE_BYTES, client->client_id,
						      sequence + d, requests + first, n);
		seal(client, buffer, length);
		client->tx_lengths[d] = (uint32_t)length;
		indexes[d] = d;
	}
	int sent = transmit(client, indexes, datagrams);
	if (sent < 0)
		return sent;
	/* Unsent datagrams' sequences are never used: the next send starts
	 * after the last one that went. */
	client->sequence_next = sequence + (uint64_t)sent;
	client->stats.datagrams_sent += (uint64_t)sent;
	if (first_sequence != NULL)
		*first_sequence = sequence;
	return sent;
}

int netio_client_poll(struct netio_client *client, struct netio_reply *replies, uint32_t max,
		      int timeout_ms)
{
	assert(client != NULL && replies != NULL);
	assert(max >= 1);
	if (max > NETIO_BURST_MAX)
		max = NETIO_BURST_MAX;
	int n = receive(client, max, timeout_ms);
	if (n <= 0)
		return n;
	uint32_t found = 0;
	for (uint32_t i = 0; i < (uint32_t)n; i++) {
		struct netio_view view;
		if (!decode_reply(client, i, &view))
			continue;
		replies[found].sequence = view.header.sequence;
		replies[found].results = view.results;
		replies[found].count = view.count;
		replies[found].type = view.header.type;
		found++;
	}
	return (int)found;
}
