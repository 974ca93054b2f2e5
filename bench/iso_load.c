/*
 * iso_load.c — payswitch-iso-load: an ISO 8583 load generator for
 * `payswitch gateway`. Many TCP connections (one terminal each), each with a
 * window of pipelined requests; latency from write to the matching response
 * (matched by STAN, field 11) into the shared histogram.
 *
 *   payswitch-iso-load setup --switch HOST:PORT --directory FILE [--cards N] [--key FILE]
 *       opens a funding account, N card accounts (funded) and a merchant on
 *       the switch, and writes the gateway's directory file.
 *   payswitch-iso-load run --gateway HOST:PORT [--framing binary|ascii]
 *       [--connections 64] [--pipeline 32] [--seconds 10] [--cards N]
 *       [--type auth|purchase]
 *       prints messages/s, p50/p99/p99.9 and the response codes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "histogram.h"
#include "iso8583.h"
#include "netio.h"

#define FUNDING_ACCOUNT 1000000001ull
#define MERCHANT_ACCOUNT 1000000002ull
#define CARD_ACCOUNT_FIRST 2000000000ull
#define SLOTS 4096u                 /* per connection: STAN % SLOTS -> send time */
#define CONNECTIONS_MAX 1024u

struct options {
	char host[128];
	uint16_t port;
	int framing;
	uint32_t connections;
	uint32_t pipeline;
	double seconds;
	uint32_t cards;
	bool purchase;
	char directory[1024];
	char key_path[1024];            /* setup: the admin key (empty: key id 0) */
};

struct connection {
	int fd;
	uint32_t stan;                  /* last used, 1..999999 */
	uint32_t outstanding;
	uint32_t in_used;
	uint64_t sent_ns[SLOTS];
	uint8_t in[65536];
	uint8_t out[65536];
	uint32_t out_used;
	char terminal[16];
};

static uint64_t now_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static int split_address(const char *text, char *host, size_t size, uint16_t *port)
{
	const char *colon = strrchr(text, ':');
	if (colon == NULL || (size_t)(colon - text) >= size)
		return -1;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	*port = (uint16_t)atoi(colon + 1);
	return *port == 0 ? -1 : 0;
}

static void pan_of(uint32_t card, char out[17])
{
	snprintf(out, 17, "4%015u", card);
}

/* ------------------------------------------------------------------------ */
/* setup                                                                     */
/* ------------------------------------------------------------------------ */
static int call_batch(struct netio_client *client, struct ledger_request *requests,
		      uint32_t count)
{
	static struct ledger_result results[NETIO_CLIENT_REQUESTS_MAX];
	int error = netio_client_call(client, requests, count, results, 2000, 5);
	if (error != 0)
		return error;
	for (uint32_t i = 0; i < count; i++)
		if (results[i].code != LEDGER_OK && results[i].code != LEDGER_ACCOUNT_EXISTS) {
			fprintf(stderr, "setup: request kind %u refused: %s\n", requests[i].kind,
				ledger_result_name(results[i].code));
			return -EINVAL;
		}
	return 0;
}

static int setup(const struct options *o)
{
	int error = 0;
	struct netio_key key;
	if (o->key_path[0] != '\0' && (error = netio_key_load(o->key_path, &key)) != 0) {
		fprintf(stderr, "setup: --key %s: %s\n", o->key_path, strerror(-error));
		return 1;
	}
	/* Opening and funding accounts needs the admin role; without --key only a
	 * switch run --insecure-no-auth accepts the requests. */
	struct netio_client *client = netio_client_open_key(o->host, o->port,
							    o->key_path[0] ? &key : NULL, &error);
	if (client == NULL) {
		fprintf(stderr, "setup: switch: %s\n", strerror(-error));
		return 1;
	}
	static struct ledger_request batch[NETIO_CLIENT_REQUESTS_MAX];
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	uint64_t now_us = (uint64_t)wall.tv_sec * 1000000u + (uint64_t)wall.tv_nsec / 1000u;
	uint64_t id = now_us << 8;
	uint32_t n = 0;
	batch[n++] = (struct ledger_request){ .id = ++id, .timestamp_us = now_us, .kind = LEDGER_KIND_OPEN,
		.account_id = FUNDING_ACCOUNT, .currency = 978, .flags = LEDGER_ACCOUNT_FUNDING };
	batch[n++] = (struct ledger_request){ .id = ++id, .timestamp_us = now_us, .kind = LEDGER_KIND_OPEN,
		.account_id = MERCHANT_ACCOUNT, .currency = 978, .flags = LEDGER_ACCOUNT_MERCHANT };
	error = call_batch(client, batch, n);
	for (uint32_t phase = 0; phase < 2 && error == 0; phase++) {
		for (uint32_t first = 0; first < o->cards && error == 0; first += n) {
			n = o->cards - first < 2048 ? o->cards - first : 2048;
			for (uint32_t i = 0; i < n; i++)
				batch[i] = (struct ledger_request){ .id = ++id, .timestamp_us = now_us,
					.kind = phase == 0 ? LEDGER_KIND_OPEN : LEDGER_KIND_DEPOSIT,
					.account_id = phase == 0 ? CARD_ACCOUNT_FIRST + first + i : FUNDING_ACCOUNT,
					.other_id = phase == 0 ? 0 : CARD_ACCOUNT_FIRST + first + i,
					.amount = phase == 0 ? 0 : 1000000000000ull, .currency = 978 };
			error = call_batch(client, batch, n);
		}
	}
	netio_client_close(client);
	if (error != 0) {
		fprintf(stderr, "setup: %s\n", strerror(-error));
		return 1;
	}
	FILE *file = fopen(o->directory, "w");
	if (file == NULL) {
		perror(o->directory);
		return 1;
	}
	fprintf(file, "# written by payswitch-iso-load setup\nmerchant M00000000000001 %llu\n",
		(unsigned long long)MERCHANT_ACCOUNT);
	for (uint32_t t = 0; t < CONNECTIONS_MAX; t++)
		fprintf(file, "terminal T%07u %llu\n", t, (unsigned long long)MERCHANT_ACCOUNT);
	for (uint32_t c = 0; c < o->cards; c++) {
		char pan[17];
		pan_of(c, pan);
		fprintf(file, "pan %s %llu\n", pan, (unsigned long long)(CARD_ACCOUNT_FIRST + c));
	}
	fclose(file);
	printf("setup: %u cards funded, directory %s written\n", o->cards, o->directory);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* run                                                                       */
/* ------------------------------------------------------------------------ */
static int connect_to(const struct options *o)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(o->port) };
	if (inet_pton(AF_INET, o->host, &address.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static uint64_t random_next(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* Appends one request to the connection's output. */
static void append_request(const struct options *o, struct connection *c, uint64_t *random)
{
	c->stan = c->stan >= 999999 ? 1 : c->stan + 1;
	char stan[7], f7[11], pan[17];
	snprintf(stan, sizeof(stan), "%06u", c->stan);
	time_t now = time(NULL);
	struct tm utc;
	gmtime_r(&now, &utc);
	strftime(f7, sizeof(f7), "%m%d%H%M%S", &utc);
	pan_of((uint32_t)(random_next(random) % o->cards), pan);
	struct iso8583_message m;
	iso8583_message_init(&m, o->purchase ? "0200" : "0100");
	iso8583_set_string(&m, 2, pan);
	iso8583_set_string(&m, 3, "000000");
	iso8583_set_string(&m, 4, "000000000100");
	iso8583_set_string(&m, 7, f7);
	iso8583_set_string(&m, 11, stan);
	iso8583_set_string(&m, 41, c->terminal);
	iso8583_set_string(&m, 42, "M00000000000001");
	iso8583_set_string(&m, 49, "978");
	int size = iso8583_pack((enum iso8583_framing)o->framing, &m, c->out + c->out_used,
				sizeof(c->out) - c->out_used, NULL);
	if (size <= 0) {
		fprintf(stderr, "pack failed\n");
		exit(1);
	}
	c->out_used += (uint32_t)size;
	c->sent_ns[c->stan % SLOTS] = now_ns();
	c->outstanding++;
}

struct totals {
	struct histogram histogram;
	uint64_t responses;
	uint64_t codes[100];
	uint64_t bad;
};

/* Consumes whole responses from the connection's input. */
static void consume(const struct options *o, struct connection *c, struct totals *t,
		    bool measure)
{
	uint32_t at = 0;
	for (;;) {
		size_t offset = 0, length = 0;
		int frame = iso8583_frame_next((enum iso8583_framing)o->framing, c->in + at,
					       c->in_used - at, &offset, &length);
		if (frame <= 0)
			break;
		struct iso8583_message m;
		if (iso8583_unpack((enum iso8583_framing)o->framing, c->in + at + offset, length, &m,
				   NULL) != ISO8583_OK || !iso8583_has(&m, 11) || !iso8583_has(&m, 39)) {
			t->bad++;
		} else {
			uint64_t stan = 0;
			iso8583_parse_u64(m.value[11], 6, &stan);
			unsigned code = (unsigned)(m.value[39][0] - '0') * 10u + (unsigned)(m.value[39][1] - '0');
			if (measure) {
				histogram_record(&t->histogram, now_ns() - c->sent_ns[stan % SLOTS]);
				t->responses++;
				t->codes[code < 100 ? code : 99]++;
			}
		}
		c->outstanding--;
		at += (uint32_t)frame;
	}
	memmove(c->in, c->in + at, c->in_used - at);
	c->in_used -= at;
}

static void flush_out(struct connection *c)
{
	uint32_t done = 0;
	while (done < c->out_used) {
		ssize_t n = write(c->fd, c->out + done, c->out_used - done);
		if (n <= 0) {
			if (n < 0 && errno == EAGAIN) {
				struct pollfd wait = { .fd = c->fd, .events = POLLOUT };
				poll(&wait, 1, 100);
				continue;
			}
			perror("write");
			exit(1);
		}
		done += (uint32_t)n;
	}
	c->out_used = 0;
}

static void refill(const struct options *o, struct connection *c, uint64_t *random)
{
	while (c->outstanding < o->pipeline)
		append_request(o, c, random);
	flush_out(c);
}

static int run(const struct options *o)
{
	struct connection *connections = calloc(o->connections, sizeof(*connections));
	int epoll_fd = epoll_create1(0);
	uint64_t random = 0x9e3779b97f4a7c15ull ^ (uint64_t)now_ns();
	for (uint32_t i = 0; i < o->connections; i++) {
		struct connection *c = &connections[i];
		c->fd = connect_to(o);
		if (c->fd < 0) {
			fprintf(stderr, "connect %s:%u failed\n", o->host, o->port);
			return 1;
		}
		snprintf(c->terminal, sizeof(c->terminal), "T%07u", i % 10000000u);
		c->stan = (uint32_t)(random_next(&random) % 900000);
		struct epoll_event event = { .events = EPOLLIN, .data.u32 = i };
		epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &event);
	}
	struct totals *t = calloc(1, sizeof(*t));
	histogram_reset(&t->histogram);
	for (uint32_t i = 0; i < o->connections; i++)
		refill(o, &connections[i], &random);
	uint64_t start = now_ns();
	uint64_t warmup_end = start + 1000000000ull;
	uint64_t end = warmup_end + (uint64_t)(o->seconds * 1e9);
	uint64_t measured_start = 0;
	for (;;) {
		uint64_t now = now_ns();
		if (now >= end)
			break;
		bool measure = now >= warmup_end;
		if (measure && measured_start == 0)
			measured_start = now;
		struct epoll_event events[256];
		int n = epoll_wait(epoll_fd, events, 256, 100);
		for (int e = 0; e < n; e++) {
			struct connection *c = &connections[events[e].data.u32];
			ssize_t got = read(c->fd, c->in + c->in_used, sizeof(c->in) - c->in_used);
			if (got <= 0) {
				fprintf(stderr, "connection %u closed by the gateway\n", events[e].data.u32);
				return 1;
			}
			c->in_used += (uint32_t)got;
			consume(o, c, t, measure);
			refill(o, c, &random);
		}
	}
	double seconds = (double)(now_ns() - measured_start) / 1e9;
	printf("iso8583 %s %s: %u connections x %u pipelined, %u cards, %.1f s\n",
	       o->framing == ISO8583_FRAMING_BINARY ? "binary" : "ascii",
	       o->purchase ? "0200 purchases" : "0100 authorizations", o->connections,
	       o->pipeline, o->cards, seconds);
	printf("  %.0f messages/s (%llu answered, %llu unparsable)\n",
	       (double)t->responses / seconds, (unsigned long long)t->responses,
	       (unsigned long long)t->bad);
	printf("  latency p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms\n",
	       (double)histogram_percentile(&t->histogram, 50) / 1e6,
	       (double)histogram_percentile(&t->histogram, 99) / 1e6,
	       (double)histogram_percentile(&t->histogram, 99.9) / 1e6,
	       (double)t->histogram.max_ns / 1e6);
	printf("  response codes:");
	for (int code = 0; code < 100; code++)
		if (t->codes[code])
			printf(" %02d=%llu", code, (unsigned long long)t->codes[code]);
	printf("\n");
	for (uint32_t i = 0; i < o->connections; i++)
		close(connections[i].fd);
	free(connections);
	free(t);
	return 0;
}

static const char usage[] =
	"usage: payswitch-iso-load setup --switch HOST:PORT --directory FILE [--cards N]\n"
	"              [--key FILE]   (an admin key: payswitch client add NAME --role admin)\n"
	"       payswitch-iso-load run --gateway HOST:PORT [--framing binary|ascii]\n"
	"              [--connections N] [--pipeline N] [--seconds S] [--cards N]\n"
	"              [--type auth|purchase]\n";

int main(int argc, char **argv)
{
	struct options o = { .framing = ISO8583_FRAMING_BINARY, .connections = 64, .pipeline = 32,
			     .seconds = 10, .cards = 100000 };
	if (argc < 2 || (strcmp(argv[1], "setup") && strcmp(argv[1], "run"))) {
		fputs(usage, stderr);
		return 2;
	}
	bool is_setup = !strcmp(argv[1], "setup");
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *key = argv[i], *value = argv[i + 1];
		if (!strcmp(key, "--switch") || !strcmp(key, "--gateway")) {
			if (split_address(value, o.host, sizeof(o.host), &o.port) != 0) {
				fputs(usage, stderr);
				return 2;
			}
		} else if (!strcmp(key, "--key"))
			snprintf(o.key_path, sizeof(o.key_path), "%s", value);
		else if (!strcmp(key, "--directory"))
			snprintf(o.directory, sizeof(o.directory), "%s", value);
		else if (!strcmp(key, "--framing"))
			o.framing = !strcmp(value, "ascii") ? ISO8583_FRAMING_ASCII : ISO8583_FRAMING_BINARY;
		else if (!strcmp(key, "--connections"))
			o.connections = (uint32_t)atoi(value);
		else if (!strcmp(key, "--pipeline"))
			o.pipeline = (uint32_t)atoi(value);
		else if (!strcmp(key, "--seconds"))
			o.seconds = atof(value);
		else if (!strcmp(key, "--cards"))
			o.cards = (uint32_t)atoi(value);
		else if (!strcmp(key, "--type"))
			o.purchase = !strcmp(value, "purchase");
		else {
			fprintf(stderr, "unknown option %s\n%s", key, usage);
			return 2;
		}
	}
	if (o.port == 0 || o.cards == 0 || o.connections == 0 || o.connections > CONNECTIONS_MAX ||
	    o.pipeline == 0 || o.pipeline >= SLOTS || (is_setup && o.directory[0] == '\0')) {
		fputs(usage, stderr);
		return 2;
	}
	return is_setup ? setup(&o) : run(&o);
}
