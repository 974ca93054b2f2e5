/*
 * udp_bench.c — datagrams/s and requests/s of the netio client library and
 * the UDP transport over loopback, against an in-process echo server thread
 * (decode + per-request check + encode reply; no ledger, no journal).
 *
 * It measures the netio layer alone: what the kernel UDP path and the codec
 * allow before the engine adds anything. Rows: 1 request per datagram (a
 * terminal) and 128 (a gateway or load generator batching), asynchronous with
 * a window of datagrams in flight, plus synchronous one-request calls
 * (round trips). Each row runs twice: without a key (key id 0) and with one
 * (protocol version 2: the client seals every datagram with keyed BLAKE2b,
 * the server checks the MAC and seals its reply, the client checks that),
 * so the cost of authentication in the netio layer reads off one run. The
 * key is random, made here: no switch and no key file are involved.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "netio.h"

struct options {
	double seconds;           /* per row */
	uint32_t window;          /* datagrams in flight */
	bool auth_off, auth_on;   /* --auth off|on|both */
};

struct server {
	struct netio_transport *transport;
	pthread_t thread;
	atomic_bool stop;
	struct netio_key key;     /* datagrams with key id != 0 must carry its MAC */
	uint64_t refused;         /* bad MAC or unknown key: no reply (server thread) */
};

/* Answers a burst with one tx_burst of replies built in preallocated buffers. */
static void *server_main(void *argument)
{
	struct server *server = argument;
	static alignas(64) uint8_t out[NETIO_BURST_MAX][NETIO_REPLY_MAX];
	struct netio_datagram in[NETIO_BURST_MAX], replies[NETIO_BURST_MAX];
	while (!atomic_load_explicit(&server->stop, memory_order_relaxed)) {
		int n = netio_transport_rx_burst(server->transport, in, NETIO_BURST_MAX, 10);
		uint32_t count = 0;
		for (int i = 0; i < n; i++) {
			struct netio_view view;
			uint16_t code = netio_decode(in[i].data, in[i].length, &view);
			size_t size;
			/* As the switch: a keyed datagram is checked, an unauthentic one
			 * gets no reply; key id 0 stands for --insecure-no-auth. */
			bool keyed = in[i].length >= NETIO_HEADER_SIZE &&
				     view.header.key_id != NETIO_KEY_ID_NONE;
			if (keyed && (view.header.key_id != server->key.id ||
				      !netio_mac_ok(server->key.secret, in[i].data, in[i].length))) {
				server->refused++;
				continue;
			}
			if (code != LEDGER_OK) {
				size = netio_encode_refusal(&view, code, out[count], NETIO_REPLY_MAX);
			} else if (view.header.type != NETIO_TYPE_REQUEST) {
				continue;
			} else {
				/* Results are built in place behind the header. */
				struct ledger_result *results =
					(struct ledger_result *)(void *)(out[count] + NETIO_HEADER_SIZE);
				for (uint32_t r = 0; r < view.count; r++) {
					const struct ledger_request *request = &view.requests[r];
					memset(&results[r], 0, sizeof(results[r]));
					results[r].id = request->id;
					results[r].amount = request->amount;
					results[r].code = netio_request_check(request);
				}
				size = netio_encode_results(out[count], NETIO_REPLY_MAX,
							    view.header.client_id,
							    view.header.sequence, results, view.count);
			}
			if (size == 0)
				continue;
			netio_seal(keyed ? &server->key : NULL, out[count], size);
			replies[count] = (struct netio_datagram){.data = out[count],
								 .length = (uint32_t)size,
								 .peer = in[i].peer};
			count++;
		}
		uint32_t sent = 0;
		/* Bounded: the client's window keeps the socket from filling. */
		for (int turn = 0; sent < count && turn < 1000; turn++)
			sent += netio_transport_tx_burst(server->transport, replies + sent,
							 count - sent);
	}
	return NULL;
}

struct row {
	const char *name;
	uint32_t per_datagram;
	double seconds;
	uint64_t datagrams;
	uint64_t requests;
	uint64_t lost;
};

static void fill(struct ledger_request *requests, uint32_t count, uint64_t *next_id)
{
	for (uint32_t i = 0; i < count; i++) {
		requests[i].id = (*next_id)++;
		requests[i].amount = 100;
	}
}

/* Keeps `window` datagrams in flight for `seconds`. */
static int run_async(struct netio_client *client, const struct options *options,
		     uint32_t per_datagram, struct row *row)
{
	static struct ledger_request requests[NETIO_CLIENT_REQUESTS_MAX];
	for (uint32_t i = 0; i < NETIO_CLIENT_REQUESTS_MAX; i++)
		requests[i] = (struct ledger_request){.account_id = 1 + i, .other_id = 2 + i,
						      .currency = LEDGER_CURRENCY_DEFAULT, .kind = LEDGER_KIND_PAY};
	uint64_t next_id = 1, in_flight = 0;
	double start = ((double)ledger_monotonic_ns() * 1e-9), end = start + options->seconds;
	while (((double)ledger_monotonic_ns() * 1e-9) < end) {
		uint32_t room = options->window - (uint32_t)in_flight;
		if (room > NETIO_BURST_MAX)
			room = NETIO_BURST_MAX;
		if (room > 0) {
			fill(requests, room * per_datagram, &next_id);
			uint64_t first;
			int sent = netio_client_send(client, requests, room * per_datagram,
						     per_datagram, &first);
			if (sent < 0)
				return sent;
			in_flight += (uint64_t)sent;
		}
		struct netio_reply replies[NETIO_BURST_MAX];
		int n = netio_client_poll(client, replies, NETIO_BURST_MAX, 100);
		if (n < 0)
			return n;
		if (n == 0 && in_flight > 0) {
			/* Nothing for 100 ms: count the window as lost and refill. */
			row->lost += in_flight;
			in_flight = 0;
		}
		for (int r = 0; r < n; r++) {
			row->requests += replies[r].count;
			row->datagrams++;
			/* One reply per datagram here: the echo server never splits. */
			if (in_flight > 0)
				in_flight--;
		}
	}
	row->seconds = ((double)ledger_monotonic_ns() * 1e-9) - start;
	return 0;
}

static int run_sync(struct netio_client *client, const struct options *options, struct row *row)
{
	struct ledger_request request = {.account_id = 1, .other_id = 2, .amount = 100,
					 .currency = LEDGER_CURRENCY_DEFAULT, .kind = LEDGER_KIND_PAY};
	struct ledger_result result;
	double start = ((double)ledger_monotonic_ns() * 1e-9), end = start + options->seconds;
	for (uint64_t id = 1; ((double)ledger_monotonic_ns() * 1e-9) < end; id++) {
		request.id = id;
		int error = netio_client_call(client, &request, 1, &result, 200, 5);
		if (error == -ETIMEDOUT) {
			row->lost++;
			continue;
		}
		if (error != 0)
			return error;
		row->datagrams++;
		row->requests++;
	}
	row->seconds = ((double)ledger_monotonic_ns() * 1e-9) - start;
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: udp_bench [--seconds S] [--window N] [--auth off|on|both] [--help]\n"
		"  Client library + UDP transport over 127.0.0.1 against an in-process\n"
		"  echo server thread (no ledger). Rows: async with 1 and 128 requests\n"
		"  per datagram, and synchronous 1-request calls (round trips).\n"
		"  --seconds S  duration of each row (default 2)\n"
		"  --window N   datagrams in flight for async rows, 1..4096 (default 256)\n"
		"  --auth M     rows without a key (off), with a random key (on: MAC on\n"
		"               every datagram both ways), or both (default)\n");
}

static int parse(int argc, char **argv, struct options *options)
{
	options->seconds = 2.0;
	options->window = 256;
	options->auth_off = options->auth_on = true;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			options->seconds = atof(argv[++i]);
		} else if (strcmp(argv[i], "--auth") == 0 && i + 1 < argc) {
			const char *mode = argv[++i];
			options->auth_off = !strcmp(mode, "off") || !strcmp(mode, "both");
			options->auth_on = !strcmp(mode, "on") || !strcmp(mode, "both");
			if (!options->auth_off && !options->auth_on) {
				usage(stderr);
				return -1;
			}
		} else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) {
			options->window = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else {
			usage(stderr);
			return -1;
		}
	}
	if (options->seconds <= 0 || options->window < 1 || options->window > 4096) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static void print_row(const struct row *row, const char *auth)
{
	printf("%-26s %-5s %8u %14.0f %14.0f %10.1f %8llu\n", row->name, auth, row->per_datagram,
	       (double)row->datagrams / row->seconds, (double)row->requests / row->seconds,
	       (double)row->datagrams / row->seconds * 2 * NETIO_HEADER_SIZE / 1e6 +
		       (double)row->requests / row->seconds *
			       (NETIO_REQUEST_SIZE + NETIO_RESULT_SIZE) / 1e6,
	       (unsigned long long)row->lost);
}

/* The three rows over one client: without a key (key NULL) or sealed with it. */
static int run_rows(const struct server *server, const struct options *options,
		    const struct netio_key *key)
{
	int error = 0;
	struct netio_client *client = netio_client_open_key(
		"127.0.0.1", netio_transport_port(server->transport), key, &error);
	if (client == NULL) {
		fprintf(stderr, "udp_bench: client open: %s\n", strerror(-error));
		return error;
	}
	const char *auth = key ? "MAC" : "none";
	struct row rows[] = {
		{.name = "async, 1 per datagram", .per_datagram = 1},
		{.name = "async, 128 per datagram", .per_datagram = NETIO_BATCH_MAX},
		{.name = "sync call, round trips", .per_datagram = 1},
	};
	for (size_t i = 0; i < 2 && error == 0; i++) {
		error = run_async(client, options, rows[i].per_datagram, &rows[i]);
		if (error == 0)
			print_row(&rows[i], auth);
		/* Let the previous row's stragglers drain before the next one. */
		struct netio_reply drain[NETIO_BURST_MAX];
		while (error == 0 && netio_client_poll(client, drain, NETIO_BURST_MAX, 50) > 0)
			;
	}
	if (error == 0)
		error = run_sync(client, options, &rows[2]);
	if (error == 0)
		print_row(&rows[2], auth);
	struct netio_client_stats stats;
	netio_client_stats_read(client, &stats);
	if (stats.replies_invalid > 0)
		printf("client (%s): %llu replies failed authentication\n", auth,
		       (unsigned long long)stats.replies_invalid);
	netio_client_close(client);
	return error;
}

int main(int argc, char **argv)
{
	struct options options;
	if (parse(argc, argv, &options) != 0)
		return 2;
	struct server server = {0};
	struct netio_transport_config config = {.bind_host = "127.0.0.1", .port = 0};
	int error = netio_transport_open(&netio_transport_udp, &config, &server.transport);
	if (error != 0) {
		fprintf(stderr, "udp_bench: transport open: %s\n", strerror(-error));
		return 1;
	}
	server.key.id = 1;
	if (getrandom(server.key.secret, sizeof(server.key.secret), 0) !=
	    (ssize_t)sizeof(server.key.secret)) {
		fprintf(stderr, "udp_bench: getrandom failed\n");
		return 1;
	}
	pthread_create(&server.thread, NULL, server_main, &server);
	printf("netio UDP loopback, echo server thread, %.1f s per row, window %u datagrams\n",
	       options.seconds, options.window);
	printf("%-26s %-5s %8s %14s %14s %10s %8s\n", "mode", "auth", "req/dgram", "datagrams/s",
	       "requests/s", "MB/s", "lost");
	if (options.auth_off)
		error = run_rows(&server, &options, NULL);
	if (error == 0 && options.auth_on)
		error = run_rows(&server, &options, &server.key);
	struct netio_transport_stats stats;
	netio_transport_stats_read(server.transport, &stats);
	printf("server: rx %llu datagrams in %llu bursts (%.1f per burst), %llu waits, "
	       "tx_full %llu, socket buffers %llu/%llu bytes\n",
	       (unsigned long long)stats.rx_datagrams, (unsigned long long)stats.rx_bursts,
	       stats.rx_bursts ? (double)stats.rx_datagrams / (double)stats.rx_bursts : 0.0,
	       (unsigned long long)stats.rx_waits, (unsigned long long)stats.tx_full,
	       (unsigned long long)stats.rcvbuf_bytes, (unsigned long long)stats.sndbuf_bytes);
	atomic_store(&server.stop, true);
	pthread_join(server.thread, NULL);
	printf("server: %llu datagrams refused (bad MAC)\n", (unsigned long long)server.refused);
	netio_transport_close(server.transport);
	if (error != 0) {
		fprintf(stderr, "udp_bench: %s\n", strerror(-error));
		return 1;
	}
	return 0;
}
