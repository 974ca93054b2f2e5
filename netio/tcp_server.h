/*
 * tcp_server.h — an epoll TCP server for stream protocols (the ISO 8583
 * gateway): listeners, many nonblocking connections, bounded per-connection
 * read and write buffers, and an event loop that also watches other fds.
 *
 * The server knows nothing of framing: it hands each connection's buffered
 * bytes to on_data, which consumes whole frames and says how many bytes it
 * took. Replies are appended with tcp_server_send() and written at the end of
 * the event-loop turn (tcp_server_run_once), many replies per write().
 *
 * Backpressure, so that every buffer stays bounded: a connection is not read
 * while its write buffer is more than half full (a client that does not read
 * its answers stops being read), nor while the owner paused it
 * (tcp_server_pause, e.g. too many of its requests in flight). A connection
 * whose frames overflow the read buffer is impossible by construction: the
 * read buffer is larger than the largest frame (asserted at create).
 *
 * Connections are named by a 64-bit handle (generation << 32 | index); a
 * handle of a closed connection is stale and refused, so a late answer never
 * reaches the next client of the same slot.
 *
 * Thread-safety: none; one thread owns a server. Memory: everything is
 * allocated at create from the config; the loop never allocates.
 */
#ifndef PAYSWITCH_NETIO_TCP_SERVER_H
#define PAYSWITCH_NETIO_TCP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;
typedef struct ssl_ctx_st SSL_CTX;    /* OpenSSL's, repeated: C11 allows it */

#define TCP_SERVER_LISTENERS_MAX 8u
#define TCP_ALLOW_NETWORKS_MAX 64u

struct tcp_server;

struct tcp_server_callbacks {
	/* Bytes buffered for a connection (tag: its listener's tag). Returns the
	 * bytes consumed (0..length), or -1 to close the connection. */
	long (*on_data)(void *context, uint64_t connection, uint32_t tag, const uint8_t *data,
			size_t length);
	/* A connection closed (by the peer, an error, or the owner). */
	void (*on_close)(void *context, uint64_t connection);
	/* A watched fd (tcp_server_watch) is readable. */
	void (*on_watch)(void *context, uint64_t token);
};

struct tcp_server_config {
	uint32_t connections_max;     /* open connections at once */
	uint32_t read_buffer_bytes;   /* per connection, > the largest frame */
	uint32_t write_buffer_bytes;  /* per connection */
	size_t frame_max_bytes;       /* largest frame on_data may need whole */
};

struct tcp_server_stats {
	uint64_t accepted;
	uint64_t refused;             /* accepted then closed: no free slot */
	uint64_t closed;
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t writes;              /* write() calls */
	uint64_t refused_source;      /* closed at accept: source not in the allow-list */
	uint64_t tls_failed;          /* closed: TLS handshake or record error */
	uint32_t open;
};

/* ------------------------------------------------------------------------ */
/* Source allow-lists (tcp_allow.c, pure)                                    */
/* ------------------------------------------------------------------------ */
struct tcp_allow_network {
	uint8_t family;               /* AF_INET or AF_INET6 */
	uint8_t prefix_bits;          /* 0..32 or 0..128 */
	uint8_t address[16];          /* network byte order; 4 bytes for IPv4 */
};

struct tcp_allow {
	uint32_t count;               /* 0: everyone is allowed */
	struct tcp_allow_network networks[TCP_ALLOW_NETWORKS_MAX];
};

/* Parses "10.0.0.0/8,192.168.1.7,2001:db8::/32" (comma or space separated;
 * an address without /N is one host). Returns 0, or -EINVAL / -E2BIG with a
 * sentence in error. */
int tcp_allow_parse(const char *list, struct tcp_allow *allow, char *error, size_t error_size);

/* True when address (AF_INET or AF_INET6; IPv4-mapped IPv6 counts as IPv4)
 * lies in one of the networks, or the list is NULL or empty. */
bool tcp_allow_match(const struct tcp_allow *allow, const struct sockaddr *address);

/* ------------------------------------------------------------------------ */
/* TLS (tcp_tls.c, OpenSSL)                                                  */
/* ------------------------------------------------------------------------ */
/* A server context: certificate chain and key (PEM files), TLS >= 1.2;
 * client_ca non-empty: clients must present a certificate that verifies
 * against it (the handshake fails otherwise). NULL with a sentence in error. */
SSL_CTX *tcp_tls_context_create(const char *certificate, const char *key, const char *client_ca,
				char *error, size_t error_size);
void tcp_tls_context_destroy(SSL_CTX *context);

/* What a listener adds to plain TCP. Both may be NULL. The server takes
 * tls (freed at destroy) and copies allow. */
struct tcp_server_listen_options {
	SSL_CTX *tls;
	const struct tcp_allow *allow;
};

/* Creates a server and its epoll instance. Returns NULL with *error = -errno
 * (-EINVAL for a bad config). */
struct tcp_server *tcp_server_create(const struct tcp_server_config *config,
				     const struct tcp_server_callbacks *callbacks, void *context,
				     int *error);
void tcp_server_destroy(struct tcp_server *server);

/* Listens on host:port (port 0: any free port) for connections tagged `tag`.
 * Returns 0 or -errno; *bound_port (if not NULL) gets the port. */
int tcp_server_listen(struct tcp_server *server, const char *host, uint16_t port, uint32_t tag,
		      uint16_t *bound_port);

/* The same with TLS and/or an allow-list. A connection from a source outside
 * the list is closed at accept (counted, logged at most once a second). */
int tcp_server_listen_options(struct tcp_server *server, const char *host, uint16_t port,
			      uint32_t tag, const struct tcp_server_listen_options *options,
			      uint16_t *bound_port);

/* Watches a readable fd owned by the caller; on_watch(token) when readable. */
int tcp_server_watch(struct tcp_server *server, int fd, uint64_t token);

/* One turn: waits up to timeout_ms (0: no wait) for events, handles them,
 * resumes paused connections whose data is now wanted, and writes every
 * connection's pending output. Returns events handled, or -errno. */
int tcp_server_run_once(struct tcp_server *server, int timeout_ms);

/* Appends bytes to a connection's output. Returns 0, -ENOTCONN for a stale
 * handle, or -ENOBUFS when the write buffer cannot take them (the connection
 * is then closed: its client stopped reading beyond every bound). */
int tcp_server_send(struct tcp_server *server, uint64_t connection, const void *bytes,
		    size_t length);

/* Stops / restarts reading a connection (e.g. too many requests in flight).
 * Resumed connections get on_data for their buffered bytes in this turn. */
void tcp_server_pause(struct tcp_server *server, uint64_t connection);
void tcp_server_resume(struct tcp_server *server, uint64_t connection);

/* Closes a connection now (on_close is called). Ignores stale handles. */
void tcp_server_close(struct tcp_server *server, uint64_t connection);

/* Bytes of output not yet written (0 for a stale handle). */
size_t tcp_server_output_bytes(const struct tcp_server *server, uint64_t connection);

/* True when the handle names an open connection. */
int tcp_server_is_open(const struct tcp_server *server, uint64_t connection);

void tcp_server_stats_read(const struct tcp_server *server, struct tcp_server_stats *stats);

#endif /* PAYSWITCH_NETIO_TCP_SERVER_H */
