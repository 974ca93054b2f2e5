/*
 * tcp_server.c — epoll (level-triggered) TCP listeners and connections with
 * bounded buffers. See tcp_server.h for the contract.
 */
#include "tcp_server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EVENTS_MAX 256
#define ACCEPTS_PER_TURN 64

/* epoll data: kind in the top byte, index or token below. */
#define KIND_LISTENER 1ull
#define KIND_CONNECTION 2ull
#define KIND_WATCH 3ull
#define KIND_SHIFT 56
#define KIND_MASK ((1ull << KIND_SHIFT) - 1)

enum pause_reason {
	PAUSE_OWNER = 1u << 0,   /* tcp_server_pause */
	PAUSE_OUTPUT = 1u << 1,  /* write buffer over half full */
};

struct connection {
	int fd;                  /* -1: free slot */
	uint32_t generation;
	uint32_t tag;
	uint32_t pause;          /* enum pause_reason bits */
	bool reading;            /* EPOLLIN registered */
	bool writing;            /* EPOLLOUT registered */
	bool blocked;            /* the last write() hit EAGAIN: wait for EPOLLOUT */
	bool dirty;              /* in the flush list */
	bool wanted;             /* in the resume list */
	bool in_callback;
	bool close_requested;
	bool handshaking;        /* TLS: the handshake is not done yet */
	SSL *ssl;                /* NULL: plain TCP */
	uint32_t read_used;
	uint32_t write_start;
	uint32_t write_used;     /* bytes [write_start, write_used) pending */
	uint8_t *read_buffer;
	uint8_t *write_buffer;
};

struct listener {
	int fd;
	uint32_t tag;
	SSL_CTX *tls;            /* NULL: plain TCP */
	struct tcp_allow *allow; /* NULL: everyone */
};

/* At most one log line a second per reason; the lines skipped are counted
 * into the next one, so a flood cannot fill the log. */
struct log_limit {
	uint64_t last_s;
	uint64_t skipped;
};

struct tcp_server {
	int epoll_fd;
	struct tcp_server_config config;
	struct tcp_server_callbacks callbacks;
	void *context;
	struct connection *connections;
	uint32_t *free_slots;
	uint32_t free_count;
	uint32_t *dirty;          /* connections with output to write */
	uint32_t dirty_count;
	uint32_t *wanted;         /* resumed connections with buffered input */
	uint32_t wanted_count;
	struct listener listeners[TCP_SERVER_LISTENERS_MAX];
	uint32_t listener_count;
	struct tcp_server_stats stats;
	struct log_limit refused_log;
	struct log_limit tls_log;
	uint8_t *memory;
};

static bool log_allowed(struct log_limit *limit, uint64_t *skipped)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t seconds = (uint64_t)now.tv_sec;
	if (limit->last_s != 0 && seconds == limit->last_s) {
		limit->skipped++;
		return false;
	}
	limit->last_s = seconds;
	*skipped = limit->skipped;
	limit->skipped = 0;
	return true;
}

static uint64_t handle_of(const struct tcp_server *server, uint32_t index)
{
	return (uint64_t)server->connections[index].generation << 32 | index;
}

static struct connection *lookup(const struct tcp_server *server, uint64_t handle)
{
	uint32_t index = (uint32_t)handle;
	if (index >= server->config.connections_max)
		return NULL;
	struct connection *c = &server->connections[index];
	if (c->fd < 0 || c->generation != (uint32_t)(handle >> 32))
		return NULL;
	return c;
}

struct tcp_server *tcp_server_create(const struct tcp_server_config *config,
				     const struct tcp_server_callbacks *callbacks, void *context,
				     int *error)
{
	*error = -EINVAL;
	if (config->connections_max == 0 || config->connections_max > (1u << 20) ||
	    config->read_buffer_bytes <= config->frame_max_bytes ||
	    config->write_buffer_bytes < 1024 || callbacks->on_data == NULL)
		return NULL;
	*error = -ENOMEM;
	struct tcp_server *server = calloc(1, sizeof(*server));
	if (server == NULL)
		return NULL;
	server->config = *config;
	server->callbacks = *callbacks;
	server->context = context;
	server->epoll_fd = -1;
	uint32_t count = config->connections_max;
	size_t per = (size_t)config->read_buffer_bytes + config->write_buffer_bytes;
	server->connections = calloc(count, sizeof(*server->connections));
	server->free_slots = calloc(count, sizeof(uint32_t));
	server->dirty = calloc(count, sizeof(uint32_t));
	server->wanted = calloc(count, sizeof(uint32_t));
	server->memory = malloc(per * count);
	if (!server->connections || !server->free_slots || !server->dirty || !server->wanted ||
	    !server->memory)
		goto fail;
	for (uint32_t i = 0; i < count; i++) {
		struct connection *c = &server->connections[i];
		c->fd = -1;
		c->generation = 1; /* so that no handle is 0 */
		c->read_buffer = server->memory + per * i;
		c->write_buffer = c->read_buffer + config->read_buffer_bytes;
		server->free_slots[i] = count - 1 - i;
	}
	server->free_count = count;
	server->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (server->epoll_fd < 0) {
		*error = -errno;
		goto fail;
	}
	*error = 0;
	return server;
fail:
	tcp_server_destroy(server);
	return NULL;
}

void tcp_server_destroy(struct tcp_server *server)
{
	if (server == NULL)
		return;
	for (uint32_t i = 0; server->connections && i < server->config.connections_max; i++) {
		if (server->connections[i].fd >= 0)
			close(server->connections[i].fd);
		SSL_free(server->connections[i].ssl);
	}
	for (uint32_t i = 0; i < server->listener_count; i++) {
		close(server->listeners[i].fd);
		SSL_CTX_free(server->listeners[i].tls);
		free(server->listeners[i].allow);
	}
	if (server->epoll_fd >= 0)
		close(server->epoll_fd);
	free(server->connections);
	free(server->free_slots);
	free(server->dirty);
	free(server->wanted);
	free(server->memory);
	free(server);
}

int tcp_server_listen(struct tcp_server *server, const char *host, uint16_t port, uint32_t tag,
		      uint16_t *bound_port)
{
	struct tcp_server_listen_options none = { 0 };
	return tcp_server_listen_options(server, host, port, tag, &none, bound_port);
}

int tcp_server_listen_options(struct tcp_server *server, const char *host, uint16_t port,
			      uint32_t tag, const struct tcp_server_listen_options *options,
			      uint16_t *bound_port)
{
	if (server->listener_count >= TCP_SERVER_LISTENERS_MAX)
		return -ENOSPC;
	struct tcp_allow *allow = NULL;
	if (options->allow != NULL && options->allow->count > 0) {
		allow = malloc(sizeof(*allow));
		if (allow == NULL)
			return -ENOMEM;
		*allow = *options->allow;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *found = NULL;
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	if (getaddrinfo(host, service, &hints, &found) != 0 || found == NULL) {
		free(allow);
		return -EHOSTUNREACH;
	}
	int error = 0;
	int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		error = -errno;
		goto out;
	}
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
		error = -errno;
		close(fd);
		goto out;
	}
	struct sockaddr_storage address;
	socklen_t length = sizeof(address);
	getsockname(fd, (struct sockaddr *)&address, &length);
	if (bound_port != NULL)
		*bound_port = ntohs(address.ss_family == AF_INET6
					    ? ((struct sockaddr_in6 *)&address)->sin6_port
					    : ((struct sockaddr_in *)&address)->sin_port);
	uint32_t index = server->listener_count;
	struct epoll_event event = { .events = EPOLLIN,
				     .data.u64 = KIND_LISTENER << KIND_SHIFT | index };
	if (epoll_ctl(server->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
		error = -errno;
		close(fd);
		goto out;
	}
	server->listeners[index] = (struct listener){ .fd = fd, .tag = tag, .tls = options->tls,
						      .allow = allow };
	server->listener_count++;
	allow = NULL;
out:
	free(allow);
	freeaddrinfo(found);
	return error;
}

int tcp_server_watch(struct tcp_server *server, int fd, uint64_t token)
{
	assert(token <= KIND_MASK);
	struct epoll_event event = { .events = EPOLLIN, .data.u64 = KIND_WATCH << KIND_SHIFT | token };
	return epoll_ctl(server->epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
}

/* Registers the events a connection needs now (reading unless paused,
 * writing while output is pending). */
static void update_events(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	bool reading = c->pause == 0;
	bool writing = c->blocked;
	if (reading == c->reading && writing == c->writing)
		return;
	struct epoll_event event = {
		.events = (reading ? EPOLLIN : 0u) | (writing ? EPOLLOUT : 0u),
		.data.u64 = KIND_CONNECTION << KIND_SHIFT | index,
	};
	(void)epoll_ctl(server->epoll_fd, EPOLL_CTL_MOD, c->fd, &event);
	c->reading = reading;
	c->writing = writing;
}

static void close_index(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	if (c->fd < 0)
		return;
	if (c->in_callback) {
		c->close_requested = true;
		return;
	}
	uint64_t handle = handle_of(server, index);
	epoll_ctl(server->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->handshaking = false;
	c->fd = -1;
	c->generation = c->generation == UINT32_MAX ? 1 : c->generation + 1;
	c->read_used = c->write_start = c->write_used = 0;
	c->pause = 0;
	c->blocked = false;
	c->close_requested = false;
	server->free_slots[server->free_count++] = index;
	server->stats.closed++;
	server->stats.open--;
	if (server->callbacks.on_close)
		server->callbacks.on_close(server->context, handle);
}

/* Closes a connection whose source is not allowed, before it costs a slot. */
static bool source_refused(struct tcp_server *server, const struct listener *listener, int fd,
			   const struct sockaddr_storage *source)
{
	if (tcp_allow_match(listener->allow, (const struct sockaddr *)source))
		return false;
	server->stats.refused_source++;
	uint64_t skipped = 0;
	if (log_allowed(&server->refused_log, &skipped)) {
		char text[INET6_ADDRSTRLEN] = "?";
		const void *address = source->ss_family == AF_INET6
			? (const void *)&((const struct sockaddr_in6 *)source)->sin6_addr
			: (const void *)&((const struct sockaddr_in *)source)->sin_addr;
		inet_ntop(source->ss_family, address, text, sizeof(text));
		fprintf(stderr, "level=warn msg=\"tcp: connection from %s refused: not in the "
			"allow-list (%llu refused in all, %llu not logged since the last line)\"\n",
			text, (unsigned long long)server->stats.refused_source,
			(unsigned long long)skipped);
	}
	close(fd);
	return true;
}

static void tls_failed(struct tcp_server *server, const char *what)
{
	server->stats.tls_failed++;
	unsigned long code = ERR_get_error();
	ERR_clear_error();
	uint64_t skipped = 0;
	if (!log_allowed(&server->tls_log, &skipped))
		return;
	char reason[256] = "closed by the peer";
	if (code != 0)
		ERR_error_string_n(code, reason, sizeof(reason));
	for (char *c = reason; *c; c++)
		if (*c == '"')
			*c = '\'';
	fprintf(stderr, "level=warn msg=\"tcp: closing a TLS connection: %s: %s (%llu in all, "
		"%llu not logged since the last line)\"\n", what, reason,
		(unsigned long long)server->stats.tls_failed, (unsigned long long)skipped);
}

static void accept_some(struct tcp_server *server, uint32_t listener)
{
	for (int turn = 0; turn < ACCEPTS_PER_TURN; turn++) {
		struct sockaddr_storage source;
		socklen_t source_length = sizeof(source);
		int fd = accept4(server->listeners[listener].fd, (struct sockaddr *)&source,
				 &source_length, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		server->stats.accepted++;
		if (source_refused(server, &server->listeners[listener], fd, &source))
			continue;
		if (server->free_count == 0) {
			server->stats.refused++;
			fprintf(stderr, "level=warn msg=\"tcp: connection refused, %u open is the "
				"maximum\"\n", server->config.connections_max);
			close(fd);
			continue;
		}
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		uint32_t index = server->free_slots[--server->free_count];
		struct connection *c = &server->connections[index];
		c->fd = fd;
		c->tag = server->listeners[listener].tag;
		c->reading = true;
		c->writing = false;
		if (server->listeners[listener].tls != NULL) {
			c->ssl = SSL_new(server->listeners[listener].tls);
			if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
				tls_failed(server, "SSL_new");
				SSL_free(c->ssl);
				c->ssl = NULL;
				close(fd);
				c->fd = -1;
				server->free_slots[server->free_count++] = index;
				continue;
			}
			SSL_set_accept_state(c->ssl);
			c->handshaking = true;
		}
		struct epoll_event event = { .events = EPOLLIN,
					     .data.u64 = KIND_CONNECTION << KIND_SHIFT | index };
		if (epoll_ctl(server->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
			SSL_free(c->ssl);
			c->ssl = NULL;
			close(fd);
			c->fd = -1;
			server->free_slots[server->free_count++] = index;
			continue;
		}
		server->stats.open++;
	}
}

/* Hands the buffered input to on_data and keeps what it did not consume. */
static void deliver(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	if (c->read_used == 0 || c->pause != 0)
		return;
	c->in_callback = true;
	long consumed = server->callbacks.on_data(server->context, handle_of(server, index), c->tag,
						  c->read_buffer, c->read_used);
	c->in_callback = false;
	if (consumed < 0 || c->close_requested) {
		close_index(server, index);
		return;
	}
	assert((size_t)consumed <= c->read_used);
	memmove(c->read_buffer, c->read_buffer + consumed, c->read_used - (size_t)consumed);
	c->read_used -= (uint32_t)consumed;
	/* The buffer is larger than a frame: a full buffer holds a whole frame,
	 * which on_data consumes unless it paused the connection. */
	assert(c->read_used < server->config.read_buffer_bytes || c->pause != 0);
}

/* One step of a TLS handshake. Returns 1 when done, 0 when it waits for
 * the socket, -1 when the connection was closed. */
static int handshake_step(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	int result = SSL_do_handshake(c->ssl);
	if (result == 1) {
		c->handshaking = false;
		c->blocked = false;
		update_events(server, index);
		return 1;
	}
	int reason = SSL_get_error(c->ssl, result);
	if (reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE) {
		/* Wait for EPOLLOUT only when the handshake has bytes to write. */
		c->blocked = reason == SSL_ERROR_WANT_WRITE;
		update_events(server, index);
		return 0;
	}
	tls_failed(server, "handshake");
	close_index(server, index);
	return -1;
}

/* Reads decrypted bytes until the buffer is full or OpenSSL has none
 * (records already decrypted sit in OpenSSL, not in the socket: they are
 * all taken now, or the connection is queued again by want()). */
static void read_tls(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	if (c->handshaking && handshake_step(server, index) != 1)
		return;
	for (int turn = 0; turn < 64; turn++) {
		uint32_t room = server->config.read_buffer_bytes - c->read_used;
		if (room == 0)
			break;
		int n = SSL_read(c->ssl, c->read_buffer + c->read_used, (int)room);
		if (n <= 0) {
			int reason = SSL_get_error(c->ssl, n);
			if (reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE)
				break;
			if (reason != SSL_ERROR_ZERO_RETURN)
				tls_failed(server, "read");
			close_index(server, index);
			return;
		}
		c->read_used += (uint32_t)n;
		server->stats.bytes_read += (uint64_t)n;
	}
	deliver(server, index);
}

static void want(struct tcp_server *server, uint32_t index);

static void read_some(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	if (c->pause != 0)
		return;
	if (c->ssl != NULL) {
		read_tls(server, index);
		if (c->fd >= 0 && c->ssl != NULL && SSL_pending(c->ssl) > 0)
			want(server, index);
		return;
	}
	uint32_t room = server->config.read_buffer_bytes - c->read_used;
	if (room == 0)
		return;
	ssize_t n = read(c->fd, c->read_buffer + c->read_used, room);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close_index(server, index);
		return;
	}
	if (n < 0)
		return;
	c->read_used += (uint32_t)n;
	server->stats.bytes_read += (uint64_t)n;
	deliver(server, index);
}

/* Queues a connection whose buffered input can be delivered again. */
static void want(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	bool buffered = c->read_used > 0 || (c->ssl != NULL && SSL_pending(c->ssl) > 0);
	if (c->pause != 0 || !buffered || c->wanted ||
	    server->wanted_count >= server->config.connections_max)
		return;
	c->wanted = true;
	server->wanted[server->wanted_count++] = index;
}

/* What write_some does once the output is written. */
static void output_drained(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	c->write_start = c->write_used = 0;
	if (c->pause & PAUSE_OUTPUT) {
		c->pause &= ~(uint32_t)PAUSE_OUTPUT;
		want(server, index);
	}
	c->blocked = false;
	update_events(server, index);
}

static bool write_tls(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	if (c->handshaking) {
		int step = handshake_step(server, index);
		if (step < 0)
			return false;
		if (step == 0)
			return true;
		want(server, index); /* application data may have come with it */
	}
	while (c->write_used > c->write_start) {
		int n = SSL_write(c->ssl, c->write_buffer + c->write_start,
				  (int)(c->write_used - c->write_start));
		server->stats.writes++;
		if (n <= 0) {
			int reason = SSL_get_error(c->ssl, n);
			if (reason == SSL_ERROR_WANT_WRITE || reason == SSL_ERROR_WANT_READ) {
				c->blocked = true;
				update_events(server, index);
				return true;
			}
			tls_failed(server, "write");
			close_index(server, index);
			return false;
		}
		c->write_start += (uint32_t)n;
		server->stats.bytes_written += (uint64_t)n;
	}
	output_drained(server, index);
	return true;
}

/* Writes pending output; returns false when the connection was closed. */
static bool write_some(struct tcp_server *server, uint32_t index)
{
	struct connection *c = &server->connections[index];
	if (c->ssl != NULL)
		return write_tls(server, index);
	while (c->write_used > c->write_start) {
		ssize_t n = write(c->fd, c->write_buffer + c->write_start,
				  c->write_used - c->write_start);
		server->stats.writes++;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			c->blocked = true;
			update_events(server, index);
			return true;
		}
		if (n <= 0) {
			close_index(server, index);
			return false;
		}
		c->write_start += (uint32_t)n;
		server->stats.bytes_written += (uint64_t)n;
	}
	output_drained(server, index);
	return true;
}

int tcp_server_send(struct tcp_server *server, uint64_t connection, const void *bytes,
		    size_t length)
{
	struct connection *c = lookup(server, connection);
	if (c == NULL)
		return -ENOTCONN;
	uint32_t index = (uint32_t)connection;
	uint32_t capacity = server->config.write_buffer_bytes;
	if (c->write_used + length > capacity && c->write_start > 0) {
		memmove(c->write_buffer, c->write_buffer + c->write_start,
			c->write_used - c->write_start);
		c->write_used -= c->write_start;
		c->write_start = 0;
	}
	if (c->write_used + length > capacity) {
		fprintf(stderr, "level=warn msg=\"tcp: closing a connection that does not read "
			"its answers\"\n");
		close_index(server, index);
		return -ENOBUFS;
	}
	memcpy(c->write_buffer + c->write_used, bytes, length);
	c->write_used += (uint32_t)length;
	if (c->write_used - c->write_start > capacity / 2 && !(c->pause & PAUSE_OUTPUT)) {
		c->pause |= PAUSE_OUTPUT;
		update_events(server, index);
	}
	if (!c->dirty) {
		c->dirty = true;
		server->dirty[server->dirty_count++] = index;
	}
	return 0;
}

void tcp_server_pause(struct tcp_server *server, uint64_t connection)
{
	struct connection *c = lookup(server, connection);
	if (c == NULL || (c->pause & PAUSE_OWNER))
		return;
	c->pause |= PAUSE_OWNER;
	update_events(server, (uint32_t)connection);
}

void tcp_server_resume(struct tcp_server *server, uint64_t connection)
{
	struct connection *c = lookup(server, connection);
	if (c == NULL || !(c->pause & PAUSE_OWNER))
		return;
	c->pause &= ~(uint32_t)PAUSE_OWNER;
	update_events(server, (uint32_t)connection);
	want(server, (uint32_t)connection);
}

void tcp_server_close(struct tcp_server *server, uint64_t connection)
{
	if (lookup(server, connection) != NULL)
		close_index(server, (uint32_t)connection);
}

size_t tcp_server_output_bytes(const struct tcp_server *server, uint64_t connection)
{
	const struct connection *c = lookup(server, connection);
	return c == NULL ? 0 : c->write_used - c->write_start;
}

int tcp_server_is_open(const struct tcp_server *server, uint64_t connection)
{
	return lookup(server, connection) != NULL;
}

void tcp_server_stats_read(const struct tcp_server *server, struct tcp_server_stats *stats)
{
	*stats = server->stats;
}

static void handle_event(struct tcp_server *server, const struct epoll_event *event)
{
	uint64_t kind = event->data.u64 >> KIND_SHIFT;
	uint64_t index = event->data.u64 & KIND_MASK;
	if (kind == KIND_LISTENER) {
		accept_some(server, (uint32_t)index);
	} else if (kind == KIND_WATCH) {
		server->callbacks.on_watch(server->context, index);
	} else {
		struct connection *c = &server->connections[index];
		if (c->fd < 0)
			return;
		if ((event->events & EPOLLOUT) && !write_some(server, (uint32_t)index))
			return;
		/* Reported even while paused: a dead peer gets no more answers. */
		if ((event->events & (EPOLLHUP | EPOLLERR)) && c->pause != 0) {
			close_index(server, (uint32_t)index);
			return;
		}
		if (event->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			read_some(server, (uint32_t)index);
	}
}

int tcp_server_run_once(struct tcp_server *server, int timeout_ms)
{
	struct epoll_event events[EVENTS_MAX];
	int n = epoll_wait(server->epoll_fd, events, EVENTS_MAX, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++)
		handle_event(server, &events[i]);
	/* Resumed connections: their buffered frames, bounded by the list. */
	for (uint32_t i = 0; i < server->wanted_count; i++) {
		uint32_t index = server->wanted[i];
		struct connection *c = &server->connections[index];
		c->wanted = false;
		if (c->fd >= 0 && c->ssl != NULL)
			read_some(server, index); /* records OpenSSL holds, then deliver */
		else if (c->fd >= 0)
			deliver(server, index);
	}
	server->wanted_count = 0;
	for (uint32_t i = 0; i < server->dirty_count; i++) {
		uint32_t index = server->dirty[i];
		struct connection *c = &server->connections[index];
		c->dirty = false;
		if (c->fd >= 0 && !c->blocked)
			write_some(server, index);
	}
	server->dirty_count = 0;
	return n;
}
