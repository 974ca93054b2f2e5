/*
 * test_reply_order.c — the real daemon with 2 and 4 shards: the results of
 * one REQUEST datagram that mixes malformed requests with requests for
 * accounts on every shard (some paying across shards) come back in request
 * order, one result per request (PROTOCOL.md, "Results follow request
 * order"; issue 14, defect 6). The switch sends them in one REPLY datagram.
 *
 * The answers are read off a raw socket, not through the client library,
 * which matches by id and would hide any order.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdalign.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define CLIENT_ID 0x0dde2
#define REPLIES_MAX 8

static struct harness harness;

static void stop_all(void)
{
	harness_fini(&harness);
}

/* The n-th account id (from 100) that shard `shard` of `shards` owns. */
static uint64_t owned(uint32_t shard, uint32_t shards, int n)
{
	for (uint64_t id = 100;; id++)
		if (ledger_shard_of(id, shards) == shard && n-- == 0)
			return id;
}

/* Every REPLY datagram the switch sent for one REQUEST datagram. */
struct answer {
	uint32_t datagrams;
	uint32_t results_total;
	uint32_t counts[REPLIES_MAX];
	struct ledger_result results[REPLIES_MAX][NETIO_BATCH_MAX];
};

static bool receive_one(int fd, int timeout_ms, uint64_t sequence, struct answer *answer)
{
	static alignas(64) uint8_t buffer[NETIO_RX_BUFFER_BYTES];
	struct pollfd descriptor = { .fd = fd, .events = POLLIN };
	if (poll(&descriptor, 1, timeout_ms) != 1)
		return false;
	ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
	cr_assert_gt(got, 0);
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, (size_t)got, &view), LEDGER_OK);
	cr_assert_eq(view.header.type, NETIO_TYPE_REPLY, "type %u", view.header.type);
	cr_assert_eq(view.header.client_id, CLIENT_ID);
	cr_assert_eq(view.header.sequence, sequence);
	cr_assert_lt(answer->datagrams, REPLIES_MAX);
	answer->counts[answer->datagrams] = view.count;
	memcpy(answer->results[answer->datagrams], view.results,
	       view.count * sizeof(struct ledger_result));
	answer->datagrams++;
	answer->results_total += view.count;
	return true;
}

/* Sends one REQUEST datagram from a fresh socket and collects REPLY
 * datagrams until one result per request came (5 s at most), then listens
 * 200 ms more for any extra one. */
static void exchange(const struct ledger_request *requests, uint32_t count, uint64_t sequence,
		     struct answer *answer)
{
	static alignas(64) uint8_t datagram[NETIO_DATAGRAM_MAX];
	size_t length = netio_encode_requests(datagram, sizeof(datagram), CLIENT_ID, sequence,
					      requests, count);
	/* Sealed with the acquirer key: a fresh sequence, which the reply echoes. */
	harness_seal(&harness, datagram, length, false);
	sequence = ((const struct netio_header *)datagram)->sequence;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert(fd >= 0);
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(harness.port),
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(connect(fd, (struct sockaddr *)&address, sizeof(address)), 0);
	cr_assert_eq(send(fd, datagram, length, 0), (ssize_t)length);
	memset(answer, 0, sizeof(*answer));
	int64_t deadline = (int64_t)(ledger_monotonic_ns() / 1000000u) + 5000;
	while (answer->results_total < count) {
		int64_t left = deadline - (int64_t)(ledger_monotonic_ns() / 1000000u);
		cr_assert(left > 0 && receive_one(fd, (int)left, sequence, answer),
			  "%u of %u results came", answer->results_total, count);
	}
	receive_one(fd, 200, sequence, answer);
	close(fd);
}

/* What PROTOCOL.md promises: one result per request in total, each REPLY
 * answering requests in the order they were sent; and what this switch
 * does: a single REPLY, so result i answers request i. */
static void expect_request_order(const struct ledger_request *requests, uint32_t count,
				 const struct answer *answer)
{
	cr_assert_eq(answer->results_total, count, "one result per request");
	bool used[NETIO_BATCH_MAX] = { false };
	for (uint32_t d = 0; d < answer->datagrams; d++) {
		uint32_t position = 0;
		for (uint32_t r = 0; r < answer->counts[d]; r++) {
			const struct ledger_result *result = &answer->results[d][r];
			while (position < count &&
			       (used[position] || requests[position].id != result->id))
				position++;
			cr_assert_lt(position, count,
				     "REPLY %u, result %u (id %llu) is out of request order", d, r,
				     (unsigned long long)result->id);
			used[position] = true;
		}
	}
	cr_assert_eq(answer->datagrams, 1, "this switch answers in one REPLY datagram");
	for (uint32_t i = 0; i < count; i++)
		cr_assert_eq(answer->results[0][i].id, requests[i].id,
			     "result %u answers request id %llu, not %llu", i,
			     (unsigned long long)answer->results[0][i].id,
			     (unsigned long long)requests[i].id);
}

struct cast {
	uint64_t funding;       /* shard 0 */
	uint64_t customer[2];   /* shard 0 and the last shard */
	uint64_t merchant[2];   /* shard 0 and the last shard */
	uint64_t unknown;       /* never opened, on the last shard */
};

static struct cast open_cast(uint32_t shards)
{
	uint32_t last = shards - 1;
	struct cast cast = {
		.funding = owned(0, shards, 0),
		.customer = { owned(0, shards, 1), owned(last, shards, 0) },
		.merchant = { owned(0, shards, 2), owned(last, shards, 1) },
		.unknown = owned(last, shards, 2),
	};
	harness_open(&harness, cast.funding, LEDGER_ACCOUNT_FUNDING);
	for (int i = 0; i < 2; i++) {
		harness_open(&harness, cast.customer[i], 0);
		harness_open(&harness, cast.merchant[i], LEDGER_ACCOUNT_MERCHANT);
		harness_deposit(&harness, cast.funding, cast.customer[i], 1000);
	}
	return cast;
}

static void expect_format_error(const struct ledger_result *result, uint64_t amount)
{
	cr_assert_eq(result->code, LEDGER_FORMAT_ERROR, "%s", ledger_result_name(result->code));
	cr_assert_eq(result->amount, amount, "a refused request's amount is echoed");
}

/* Nine requests (a pool buffer in the worker): the shard of the last shard
 * first, malformed ones between, cross-shard payments both ways. */
static void mixed_datagram(const struct cast *cast)
{
	struct ledger_request requests[9];
	requests[0] = harness_request(&harness, LEDGER_KIND_PAY, cast->customer[1],
				      cast->merchant[0], 100);
	requests[1] = harness_request(&harness, LEDGER_KIND_PAY, cast->customer[0],
				      cast->merchant[0], 5);
	requests[1].currency = 0;
	requests[2] = harness_request(&harness, LEDGER_KIND_PAY, cast->customer[0],
				      cast->merchant[1], 200);
	requests[3] = harness_request(&harness, LEDGER_KIND_BALANCE, cast->merchant[1], 0, 0);
	requests[4] = harness_request(&harness, LEDGER_KIND_CREDIT, cast->customer[0],
				      cast->merchant[1], 7);
	requests[5] = harness_request(&harness, LEDGER_KIND_DEPOSIT, cast->funding,
				      cast->customer[0], 50);
	requests[6] = harness_request(&harness, LEDGER_KIND_BALANCE, cast->unknown, 0, 0);
	requests[7] = harness_request(&harness, LEDGER_KIND_BALANCE, cast->customer[0], 0, 0);
	requests[7].id = 0;
	requests[7].amount = 9;
	requests[8] = harness_request(&harness, LEDGER_KIND_BALANCE, cast->customer[0], 0, 0);
	struct answer answer;
	exchange(requests, 9, 1, &answer);
	expect_request_order(requests, 9, &answer);
	const struct ledger_result *results = answer.results[0];
	cr_assert_eq(results[0].code, LEDGER_OK, "%s", ledger_result_name(results[0].code));
	cr_assert_eq(results[0].balance, 900);
	expect_format_error(&results[1], 5);
	cr_assert_eq(results[2].code, LEDGER_OK, "%s", ledger_result_name(results[2].code));
	cr_assert_eq(results[2].balance, 800);
	cr_assert_eq(results[3].code, LEDGER_OK);
	expect_format_error(&results[4], 7);
	/* A DEPOSIT is the admin's: refused in its place, the others go on. */
	cr_assert_eq(results[5].code, LEDGER_FORBIDDEN, "%s", ledger_result_name(results[5].code));
	cr_assert_eq(results[5].id, requests[5].id);
	cr_assert_neq(results[6].code, LEDGER_OK, "an unknown account");
	cr_assert_neq(results[6].code, LEDGER_FORMAT_ERROR);
	expect_format_error(&results[7], 9);
	cr_assert_eq(results[8].code, LEDGER_OK);
}

/* Three requests (the worker keeps them inline): last shard, malformed, shard 0. */
static void small_datagram(const struct cast *cast)
{
	struct ledger_request requests[3];
	requests[0] = harness_request(&harness, LEDGER_KIND_BALANCE, cast->customer[1], 0, 0);
	requests[1] = harness_request(&harness, LEDGER_KIND_BALANCE, cast->customer[0], 0, 3);
	requests[1].kind = 0;
	requests[2] = harness_request(&harness, LEDGER_KIND_BALANCE, cast->customer[0], 0, 0);
	struct answer answer;
	exchange(requests, 3, 2, &answer);
	expect_request_order(requests, 3, &answer);
	cr_assert_eq(answer.results[0][0].code, LEDGER_OK);
	expect_format_error(&answer.results[0][1], 3);
	cr_assert_eq(answer.results[0][2].code, LEDGER_OK);
}

/* A full datagram over every shard, every fifth request malformed. */
static void full_datagram(uint32_t shards)
{
	static struct ledger_request requests[NETIO_BATCH_MAX];
	for (uint32_t i = 0; i < NETIO_BATCH_MAX; i++) {
		uint64_t account = owned((i * 7 + i / 3) % shards, shards, (int)(i % 3));
		requests[i] = harness_request(&harness, LEDGER_KIND_BALANCE, account, 0, i);
		if (i % 5 == 3)
			requests[i].currency = 0;
	}
	struct answer answer;
	exchange(requests, NETIO_BATCH_MAX, 3, &answer);
	expect_request_order(requests, NETIO_BATCH_MAX, &answer);
	for (uint32_t i = 3; i < NETIO_BATCH_MAX; i += 5)
		expect_format_error(&answer.results[0][i], i);
}

static void results_follow_request_order(uint32_t shards)
{
	harness_init(&harness, shards, NULL);
	cr_assert(harness_start(&harness, NULL));
	struct cast cast = open_cast(shards);
	mixed_datagram(&cast);
	small_datagram(&cast);
	full_datagram(shards);
	/* The payments of the mixed datagram moved money exactly once. */
	cr_assert_eq(harness_balance(&harness, cast.customer[0]), 800, "the forbidden DEPOSIT moved nothing");
	cr_assert_eq(harness_balance(&harness, cast.customer[1]), 900);
	cr_assert_eq(harness_balance(&harness, cast.merchant[0]), 100);
	cr_assert_eq(harness_balance(&harness, cast.merchant[1]), 200);
	cr_assert_eq(harness_stop(&harness), 0);
	cr_assert_eq(harness_audit(&harness, NULL, NULL, 0), 0);
}

Test(reply_order, results_follow_request_order_2_shards, .fini = stop_all, .timeout = 120)
{
	results_follow_request_order(2);
}

Test(reply_order, results_follow_request_order_4_shards, .fini = stop_all, .timeout = 120)
{
	results_follow_request_order(4);
}
