/*
 * iso_gateway.c — the ISO 8583 gateway's event loop (iso_gateway.h; moved
 * from engine/gateway.c): messages in over TCP (tcp_server.c), translated by
 * iso_translate.c, requests out to the switch with the netio client library,
 * results matched back to (connection, message) by request id.
 */
#include "iso_gateway.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "netio.h"

/* ------------------------------------------------------------------------ */
/* The gateway's state                                                       */
/* ------------------------------------------------------------------------ */
/* One ISO message waiting for a ledger result. */
struct waiter {
	uint64_t connection;
	uint32_t next;                   /* next waiter of the same request; 0 = none */
	struct iso_gateway_echo echo;
};

/* One ledger request in flight (several waiters when a retransmitted message
 * arrives while its original is still in flight). */
struct pending {
	struct ledger_request request;
	uint64_t sent_ms;
	uint32_t waiters;                /* first waiter index + 1; 0 = slot free */
	uint32_t attempts;
	bool queued;                     /* in the outbox */
};

#define READ_BUFFER_BYTES (16u << 10)
#define WRITE_BUFFER_BYTES (64u << 10)
#define DATAGRAM_RING 2048u          /* sent datagrams remembered for ERROR replies */
#define SCAN_INTERVAL_MS 20u

struct sent_datagram {
	uint64_t sequence;
	uint32_t count;
	uint64_t ids[NETIO_BATCH_MAX];
};

struct connection_state {
	uint64_t handle;
	uint32_t in_flight;
	bool paused;
};

struct iso_gateway_stats {
	uint64_t messages;
	uint64_t keepalives;
	uint64_t format_errors;
	uint64_t closed_malformed;
	uint64_t answered;
	uint64_t answered_local;         /* without the switch */
	uint64_t no_answer;              /* 91 after every retry */
	uint64_t retransmits;
	uint64_t joined;                 /* a repeat joined its in-flight original */
};

struct iso_gateway {
	struct iso_gateway_config config;
	struct tcp_server *server;
	struct netio_client *client;
	int signal_fd;
	bool stopping;
	uint32_t pending_max;
	struct pending *pending;         /* pending_max slots */
	uint32_t *free_pending;
	uint32_t free_pending_count;
	uint32_t *index;                 /* id -> pending index + 1, open addressing */
	uint32_t index_mask;
	struct waiter *waiters;          /* pending_max + 1, [0] unused */
	uint32_t *free_waiters;
	uint32_t free_waiter_count;
	uint32_t *outbox;                /* pending indexes to send */
	uint32_t outbox_count;
	struct ledger_request *send_buffer; /* NETIO_CLIENT_REQUESTS_MAX */
	struct sent_datagram *sent;      /* DATAGRAM_RING */
	struct connection_state *connections;
	uint64_t last_scan_ms;
	struct iso_gateway_stats stats;
};

static uint64_t monotonic_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static uint64_t realtime_us(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

static void gateway_log(const struct iso_gateway *g, const char *level, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

static void gateway_log(const struct iso_gateway *g, const char *level, const char *format, ...)
{
	char line[1024];
	va_list arguments;
	va_start(arguments, format);
	vsnprintf(line, sizeof(line), format, arguments);
	va_end(arguments);
	g->config.log(g->config.context, level, line);
}

/* ------------------------------------------------------------------------ */
/* id -> pending index (linear probing, backward-shift deletion)             */
/* ------------------------------------------------------------------------ */
static uint32_t index_home(const struct iso_gateway *g, uint64_t id)
{
	return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & g->index_mask;
}

static uint32_t index_find(const struct iso_gateway *g, uint64_t id)
{
	uint32_t slot = index_home(g, id);
	for (uint32_t probe = 0; probe <= g->index_mask; probe++) {
		uint32_t value = g->index[slot];
		if (value == 0)
			return 0;
		if (g->pending[value - 1].request.id == id)
			return value;
		slot = (slot + 1) & g->index_mask;
	}
	return 0;
}

static void index_insert(struct iso_gateway *g, uint64_t id, uint32_t pending)
{
	uint32_t slot = index_home(g, id);
	while (g->index[slot] != 0)
		slot = (slot + 1) & g->index_mask;
	g->index[slot] = pending + 1;
}

static void index_remove(struct iso_gateway *g, uint64_t id)
{
	uint32_t slot = index_home(g, id);
	while (g->index[slot] != 0 && g->pending[g->index[slot] - 1].request.id != id)
		slot = (slot + 1) & g->index_mask;
	assert(g->index[slot] != 0);
	g->index[slot] = 0;
	/* Backward shift: move later entries of the run into the hole when their
	 * home slot does not lie cyclically between the hole and themselves. */
	uint32_t hole = slot;
	for (uint32_t next = (slot + 1) & g->index_mask; g->index[next] != 0;
	     next = (next + 1) & g->index_mask) {
		uint32_t home = index_home(g, g->pending[g->index[next] - 1].request.id);
		bool stays = hole <= next ? (home > hole && home <= next)
					  : (home > hole || home <= next);
		if (stays)
			continue;
		g->index[hole] = g->index[next];
		g->index[next] = 0;
		hole = next;
	}
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                   */
/* ------------------------------------------------------------------------ */
static struct connection_state *connection_of(struct iso_gateway *g, uint64_t handle)
{
	struct connection_state *state = &g->connections[(uint32_t)handle];
	return state->handle == handle ? state : NULL;
}

static void send_response(struct iso_gateway *g, uint64_t connection,
			  const struct iso_gateway_echo *echo, const char *code, const struct ledger_result *result,
			  uint16_t currency, uint64_t id)
{
	uint8_t frame[ISO_GATEWAY_RESPONSE_BYTES_MAX];
	int size = iso_gateway_response_pack(echo, code, result, currency, id, frame,
					     sizeof(frame));
	assert(size > 0);
	g->stats.answered++;
	(void)tcp_server_send(g->server, connection, frame, (size_t)size);
}

/* Answers a message at once, without the switch. */
static void answer_local(struct iso_gateway *g, uint64_t connection,
			 const struct iso8583_message *m,
			 const char response_mti[4], uint8_t framing, uint8_t operation,
			 const char *code, uint64_t id)
{
	struct iso_gateway_echo echo;
	iso_gateway_echo_capture(m, response_mti, framing, operation, &echo);
	g->stats.answered_local++;
	send_response(g, connection, &echo, code, NULL, 0, id);
}

/* Answers every message waiting for pending request `index` and frees it.
 * result NULL: no answer from the switch (91). */
static void complete(struct iso_gateway *g, uint32_t index, const struct ledger_result *result)
{
	struct pending *p = &g->pending[index];
	assert(p->waiters != 0);
	/* A repeat (DUPLICATE) carries the original code: a retransmitted message
	 * is answered with its original outcome (netio/ISO8583.md). */
	const char *code = result != NULL ? iso_gateway_response_code(result->code) : "91";
	for (uint32_t w = p->waiters; w != 0;) {
		struct waiter *waiter = &g->waiters[w];
		uint32_t next = waiter->next;
		struct connection_state *state = connection_of(g, waiter->connection);
		if (state != NULL) {
			send_response(g, waiter->connection, &waiter->echo, code, result,
				      p->request.currency, p->request.id);
			assert(state->in_flight > 0);
			state->in_flight--;
			if (state->paused && state->in_flight <= g->config.pipeline_max / 2) {
				state->paused = false;
				tcp_server_resume(g->server, waiter->connection);
			}
		}
		g->free_waiters[g->free_waiter_count++] = w;
		w = next;
	}
	index_remove(g, p->request.id);
	p->waiters = 0;
	p->queued = false;
	g->free_pending[g->free_pending_count++] = index;
}

static void queue(struct iso_gateway *g, uint32_t index)
{
	struct pending *p = &g->pending[index];
	if (p->queued)
		return;
	assert(g->outbox_count < 2 * g->pending_max);
	p->queued = true;
	g->outbox[g->outbox_count++] = index;
}

/* Takes a translated message in flight, or joins it to its in-flight twin. */
static void submit(struct iso_gateway *g, uint64_t connection, const struct iso8583_message *m,
		   const char response_mti[4], uint8_t framing,
		   const struct iso_gateway_translation *t)
{
	uint32_t found = index_find(g, t->request.id);
	if (found != 0 && memcmp(&g->pending[found - 1].request, &t->request,
				 sizeof(t->request)) != 0) {
		/* The key of an in-flight message reused with other fields. */
		answer_local(g, connection, m, response_mti, framing, t->operation, "94",
			     t->request.id);
		return;
	}
	if (g->free_waiter_count == 0 || (found == 0 && g->free_pending_count == 0)) {
		answer_local(g, connection, m, response_mti, framing, t->operation, "91",
			     t->request.id);
		return;
	}
	uint32_t w = g->free_waiters[--g->free_waiter_count];
	struct waiter *waiter = &g->waiters[w];
	waiter->connection = connection;
	iso_gateway_echo_capture(m, response_mti, framing, t->operation, &waiter->echo);
	if (found != 0) {
		/* Appended: the messages of one request are answered in arrival
		 * order. The chain is at most the waiters in flight. */
		struct pending *p = &g->pending[found - 1];
		uint32_t last = p->waiters;
		while (g->waiters[last].next != 0)
			last = g->waiters[last].next;
		g->waiters[last].next = w;
		waiter->next = 0;
		g->stats.joined++;
	} else {
		uint32_t index = g->free_pending[--g->free_pending_count];
		struct pending *p = &g->pending[index];
		p->request = t->request;
		p->waiters = w;
		p->attempts = 0;
		p->queued = false;
		waiter->next = 0;
		index_insert(g, t->request.id, index);
		queue(g, index);
	}
	connection_of(g, connection)->in_flight++;
}

/* One message of a connection. Returns 0, or -1 to close the connection. */
static int handle_message(struct iso_gateway *g, uint64_t connection, uint8_t framing,
			  const uint8_t *data, size_t length)
{
	struct iso8583_message m;
	unsigned field = 0;
	enum iso8583_error error = iso8583_unpack(framing, data, length, &m, &field);
	g->stats.messages++;
	char response_mti[4];
	if (error == ISO8583_ERROR_MTI || !iso8583_response_mti(m.mti, response_mti)) {
		gateway_log(g, "warn", "iso8583: closing a connection: %s (%.4s), %zu bytes",
			   error == ISO8583_ERROR_MTI ? "no MTI" : "not a request MTI",
			   error == ISO8583_ERROR_MTI ? "" : m.mti, length);
		g->stats.closed_malformed++;
		return -1;
	}
	if (error != ISO8583_OK) {
		g->stats.format_errors++;
		if (g->config.verbose)
			gateway_log(g, "info", "iso8583: format error %s in field %u of a %.4s",
				   iso8583_error_name(error), field, m.mti);
		answer_local(g, connection, &m, response_mti, framing, ISO_GATEWAY_OP_NONE, "30", 0);
		return 0;
	}
	struct iso_gateway_translation t;
	iso_gateway_translate(&m, &g->config.directory, g->config.default_currency,
			      realtime_us(), &t);
	if (t.code != NULL)
		answer_local(g, connection, &m, response_mti, framing, t.operation, t.code,
			     t.request.id);
	else
		submit(g, connection, &m, response_mti, framing, &t);
	return 0;
}

/* tcp_server on_data: every whole frame, until the connection must pause. */
static long on_data(void *context, uint64_t connection, uint32_t tag, const uint8_t *data,
		    size_t length)
{
	struct iso_gateway *g = context;
	struct connection_state *state = &g->connections[(uint32_t)connection];
	if (state->handle != connection)
		*state = (struct connection_state){ .handle = connection };
	size_t consumed = 0;
	uint8_t framing = (uint8_t)tag;
	while (consumed < length) {
		if (state->in_flight >= g->config.pipeline_max) {
			state->paused = true;
			tcp_server_pause(g->server, connection);
			break;
		}
		/* Over half full, the server stops reading the connection and
		 * hands the rest back once its output drained (tcp_server.h). */
		if (tcp_server_output_bytes(g->server, connection) > WRITE_BUFFER_BYTES / 2)
			break;
		size_t offset = 0, size = 0;
		int frame = iso8583_frame_next(framing, data + consumed, length - consumed, &offset,
					       &size);
		if (frame == 0)
			break;
		if (frame < 0) {
			gateway_log(g, "warn", "iso8583: closing a connection: bad length prefix (%s)",
				   iso8583_error_name((unsigned)-frame));
			g->stats.closed_malformed++;
			return -1;
		}
		if (size == 0)
			g->stats.keepalives++;
		else if (handle_message(g, connection, framing, data + consumed + offset, size) != 0)
			return -1;
		consumed += (size_t)frame;
	}
	return (long)consumed;
}

static void on_close(void *context, uint64_t connection)
{
	struct iso_gateway *g = context;
	struct connection_state *state = &g->connections[(uint32_t)connection];
	if (state->handle == connection)
		*state = (struct connection_state){ 0 };
}

/* ------------------------------------------------------------------------ */
/* The switch side                                                           */
/* ------------------------------------------------------------------------ */
static void absorb_result(struct iso_gateway *g, const struct ledger_result *result)
{
	uint32_t found = index_find(g, result->id);
	if (found == 0)
		return; /* a late answer to something already answered (91) */
	/* BUSY: the switch had no room; the request stays in flight and the
	 * timeout sends it again. */
	if (result->code == LEDGER_BUSY)
		return;
	complete(g, found - 1, result);
}

/* An ERROR datagram answers every request of the datagram it refuses. */
static void absorb_error(struct iso_gateway *g, const struct netio_reply *reply)
{
	const struct sent_datagram *sent = &g->sent[reply->sequence % DATAGRAM_RING];
	if (sent->sequence != reply->sequence || reply->count != 1)
		return;
	for (uint32_t i = 0; i < sent->count; i++) {
		struct ledger_result result = reply->results[0];
		result.id = sent->ids[i];
		absorb_result(g, &result);
	}
}

static void receive_results(struct iso_gateway *g)
{
	struct netio_reply replies[NETIO_BURST_MAX];
	/* Bounded: the socket buffer is drained in at most 64 bursts per turn so
	 * that TCP connections get their turn too. */
	for (int turn = 0; turn < 64; turn++) {
		int n = netio_client_poll(g->client, replies, NETIO_BURST_MAX, 0);
		if (n <= 0)
			return;
		for (int r = 0; r < n; r++) {
			if (replies[r].type == NETIO_TYPE_ERROR) {
				absorb_error(g, &replies[r]);
				continue;
			}
			for (uint32_t i = 0; i < replies[r].count; i++)
				absorb_result(g, &replies[r].results[i]);
		}
	}
}

/* Sends the outbox: many requests per datagram, up to 4096 per system call.
 * What the socket cannot take stays queued for the next turn. */
static void flush_outbox(struct iso_gateway *g)
{
	uint64_t now = monotonic_ms();
	uint32_t kept = 0;
	uint32_t at = 0;
	bool socket_full = false;
	while (at < g->outbox_count) {
		uint32_t chosen[NETIO_CLIENT_REQUESTS_MAX];
		uint32_t count = 0;
		for (; at < g->outbox_count && count < NETIO_CLIENT_REQUESTS_MAX; at++) {
			uint32_t index = g->outbox[at];
			if (!g->pending[index].queued || g->pending[index].waiters == 0)
				continue;
			if (socket_full) {
				g->outbox[kept++] = index;
				continue;
			}
			chosen[count] = index;
			g->send_buffer[count++] = g->pending[index].request;
		}
		if (count == 0)
			continue;
		uint64_t sequence = 0;
		int datagrams = netio_client_send(g->client, g->send_buffer, count, NETIO_BATCH_MAX,
						  &sequence);
		uint32_t sent = datagrams <= 0 ? 0 : (uint32_t)datagrams * NETIO_BATCH_MAX;
		sent = sent > count ? count : sent;
		for (uint32_t i = 0; i < sent; i++) {
			struct pending *p = &g->pending[chosen[i]];
			p->queued = false;
			p->sent_ms = now;
			p->attempts++;
			struct sent_datagram *d =
				&g->sent[(sequence + i / NETIO_BATCH_MAX) % DATAGRAM_RING];
			if (i % NETIO_BATCH_MAX == 0) {
				d->sequence = sequence + i / NETIO_BATCH_MAX;
				d->count = 0;
			}
			d->ids[d->count++] = p->request.id;
		}
		for (uint32_t i = sent; i < count; i++)
			g->outbox[kept++] = chosen[i];
		socket_full |= sent < count;
	}
	g->outbox_count = kept;
}

/* Every request without an answer after the timeout is sent again (the same
 * request: the switch answers a repeat with the original outcome); after
 * the last retry its messages are answered 91. */
static void scan_timeouts(struct iso_gateway *g)
{
	uint64_t now = monotonic_ms();
	if (now - g->last_scan_ms < SCAN_INTERVAL_MS)
		return;
	g->last_scan_ms = now;
	for (uint32_t i = 0; i < g->pending_max; i++) {
		struct pending *p = &g->pending[i];
		if (p->waiters == 0 || p->queued ||
		    now - p->sent_ms < (uint64_t)g->config.timeout_ms)
			continue;
		if (p->attempts > (uint32_t)g->config.retries) {
			g->stats.no_answer++;
			complete(g, i, NULL);
			continue;
		}
		g->stats.retransmits++;
		queue(g, i);
	}
}

enum { WATCH_CLIENT = 1, WATCH_SIGNAL = 2 };

static void on_watch(void *context, uint64_t token)
{
	struct iso_gateway *g = context;
	if (token == WATCH_CLIENT) {
		receive_results(g);
		return;
	}
	struct signalfd_siginfo info;
	while (read(g->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
		if (info.ssi_signo == SIGHUP) {
			if (g->config.reload != NULL)
				g->config.reload(g->config.context);
		} else if (!g->stopping) {
			gateway_log(g, "info", "signal %s: answering what is in flight, then stopping",
				   info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			g->stopping = true;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */
void iso_gateway_destroy(struct iso_gateway *g)
{
	if (g == NULL)
		return;
	tcp_server_destroy(g->server);
	netio_client_close(g->client);
	if (g->signal_fd >= 0)
		close(g->signal_fd);
	free(g->pending);
	free(g->free_pending);
	free(g->index);
	free(g->waiters);
	free(g->free_waiters);
	free(g->outbox);
	free(g->send_buffer);
	free(g->sent);
	free(g->connections);
	free(g);
}

static int gateway_allocate(struct iso_gateway *g)
{
	uint32_t max = g->config.connections_max * g->config.pipeline_max;
	g->pending_max = max;
	uint32_t slots = 16;
	while (slots < 2 * max)
		slots *= 2;
	g->index_mask = slots - 1;
	g->pending = calloc(max, sizeof(*g->pending));
	g->free_pending = calloc(max, sizeof(uint32_t));
	g->index = calloc(slots, sizeof(uint32_t));
	g->waiters = calloc((size_t)max + 1, sizeof(*g->waiters));
	g->free_waiters = calloc(max, sizeof(uint32_t));
	g->outbox = calloc(2 * (size_t)max, sizeof(uint32_t));
	g->send_buffer = calloc(NETIO_CLIENT_REQUESTS_MAX, sizeof(struct ledger_request));
	g->sent = calloc(DATAGRAM_RING, sizeof(struct sent_datagram));
	g->connections = calloc(g->config.connections_max, sizeof(*g->connections));
	if (!g->pending || !g->free_pending || !g->index || !g->waiters || !g->free_waiters ||
	    !g->outbox || !g->send_buffer || !g->sent || !g->connections)
		return -ENOMEM;
	for (uint32_t i = 0; i < max; i++) {
		g->free_pending[i] = max - 1 - i;
		g->free_waiters[i] = max - i; /* waiter indexes start at 1 */
	}
	g->free_pending_count = g->free_waiter_count = max;
	return 0;
}

static const char *const framing_names[2] = { "binary", "ascii" };

static int gateway_signals(struct iso_gateway *g)
{
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGHUP);
	sigprocmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	g->signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
	if (g->signal_fd < 0)
		return -errno;
	int error = tcp_server_watch(g->server, g->signal_fd, WATCH_SIGNAL);
	if (error == 0)
		error = tcp_server_watch(g->server, netio_client_fd(g->client), WATCH_CLIENT);
	return error;
}

static int open_listeners(struct iso_gateway *g, char *error, size_t error_size)
{
	for (unsigned f = 0; f < 2; f++) {
		struct iso_gateway_listener *listener = &g->config.listeners[f];
		if (!listener->enabled)
			continue;
		struct tcp_allow allow = { 0 };
		char reason[512];
		if (listener->allow[0] != '\0' &&
		    tcp_allow_parse(listener->allow, &allow, reason, sizeof(reason)) != 0) {
			snprintf(error, error_size, "%s allow-list: %s", framing_names[f], reason);
			return -EINVAL;
		}
		struct tcp_server_listen_options options = { .allow = &allow };
		if (listener->tls_certificate[0] != '\0') {
			options.tls = tcp_tls_context_create(listener->tls_certificate,
							     listener->tls_key,
							     listener->tls_client_ca, reason,
							     sizeof(reason));
			if (options.tls == NULL) {
				snprintf(error, error_size, "%s listener: %s", framing_names[f],
					 reason);
				return -EINVAL;
			}
		}
		uint16_t port = 0;
		int code = tcp_server_listen_options(g->server, listener->host, listener->port, f,
						     &options, &port);
		if (code != 0) {
			tcp_tls_context_destroy(options.tls);
			snprintf(error, error_size, "listen %s %s:%u: %s", framing_names[f],
				 listener->host, listener->port, strerror(-code));
			return code;
		}
		listener->port = port;
	}
	return 0;
}

static struct netio_client *open_client(const struct iso_gateway_config *config, int *code)
{
	if (config->key == NULL)
		return netio_client_open(config->switch_host, config->switch_port, code);
	return netio_client_open_key(config->switch_host, config->switch_port, config->key, code);
}

struct iso_gateway *iso_gateway_create(const struct iso_gateway_config *config, char *error,
				       size_t error_size)
{
	assert(config->directory.find != NULL);
	assert(config->log != NULL);
	struct iso_gateway *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		snprintf(error, error_size, "out of memory");
		return NULL;
	}
	g->config = *config;
	g->signal_fd = -1;
	if (gateway_allocate(g) != 0) {
		snprintf(error, error_size, "out of memory for %u requests in flight",
			 g->pending_max);
		goto fail;
	}
	int code = 0;
	g->client = open_client(config, &code);
	if (g->client == NULL) {
		snprintf(error, error_size, "switch %s:%u: %s", config->switch_host,
			 config->switch_port, strerror(-code));
		goto fail;
	}
	struct tcp_server_config server_config = { .connections_max = config->connections_max,
						   .read_buffer_bytes = READ_BUFFER_BYTES,
						   .write_buffer_bytes = WRITE_BUFFER_BYTES,
						   .frame_max_bytes = ISO8583_FRAME_MAX };
	struct tcp_server_callbacks callbacks = { .on_data = on_data, .on_close = on_close,
						  .on_watch = on_watch };
	g->server = tcp_server_create(&server_config, &callbacks, g, &code);
	if (g->server == NULL) {
		snprintf(error, error_size, "tcp server: %s", strerror(-code));
		goto fail;
	}
	if (open_listeners(g, error, error_size) != 0)
		goto fail;
	code = gateway_signals(g);
	if (code != 0) {
		snprintf(error, error_size, "signals: %s", strerror(-code));
		goto fail;
	}
	return g;
fail:
	iso_gateway_destroy(g);
	return NULL;
}

uint16_t iso_gateway_port(const struct iso_gateway *g, unsigned framing)
{
	assert(framing < 2);
	return g->config.listeners[framing].enabled ? g->config.listeners[framing].port : 0;
}

int iso_gateway_run(struct iso_gateway *g)
{
	uint64_t stop_deadline = 0;
	for (;;) {
		int timeout = g->outbox_count > 0 ? 0 : 5;
		int n = tcp_server_run_once(g->server, timeout);
		if (n < 0) {
			gateway_log(g, "error", "event loop: %s", strerror(-n));
			return 1;
		}
		flush_outbox(g);
		scan_timeouts(g);
		if (g->stopping) {
			uint64_t now = monotonic_ms();
			if (stop_deadline == 0)
				stop_deadline = now + (uint64_t)g->config.timeout_ms *
							      (uint64_t)(g->config.retries + 2);
			if (g->free_pending_count == g->pending_max || now >= stop_deadline)
				break;
		}
	}
	/* The last answers go out with this turn's writes. */
	tcp_server_run_once(g->server, 0);
	struct tcp_server_stats tcp;
	tcp_server_stats_read(g->server, &tcp);
	gateway_log(g, "info", "stopped: %llu messages, %llu answered (%llu by the gateway), "
		   "%llu format errors, %llu connections closed for malformed frames, "
		   "%llu retransmits, %llu without an answer (91), %llu connections accepted, "
		   "%llu refused by the allow-list, %llu closed for TLS errors",
		   (unsigned long long)g->stats.messages, (unsigned long long)g->stats.answered,
		   (unsigned long long)g->stats.answered_local,
		   (unsigned long long)g->stats.format_errors,
		   (unsigned long long)g->stats.closed_malformed,
		   (unsigned long long)g->stats.retransmits,
		   (unsigned long long)g->stats.no_answer, (unsigned long long)tcp.accepted,
		   (unsigned long long)tcp.refused_source, (unsigned long long)tcp.tls_failed);
	return 0;
}

