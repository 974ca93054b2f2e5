/*
 * test_crash.c — many shards against a sequential model; kill -9 under load
 * at a point set by progress (after N acknowledgements, N from a seeded
 * PRNG), restart, every acknowledged payment present, audit clean.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define FUNDING 1
#define ACCOUNTS 64
#define FIRST_ACCOUNT 100

static struct harness harness;

static void stop_all(void)
{
	harness_fini(&harness);
}

static void open_and_fund(int64_t *model, uint64_t amount)
{
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	static struct ledger_request requests[ACCOUNTS];
	static struct ledger_result results[ACCOUNTS];
	for (int i = 0; i < ACCOUNTS; i++)
		requests[i] = harness_request(&harness, LEDGER_KIND_OPEN, FIRST_ACCOUNT + i, 0, 0);
	cr_assert_eq(harness_call_many(&harness, requests, ACCOUNTS, results), 0);
	for (int i = 0; i < ACCOUNTS; i++) {
		cr_assert_eq(results[i].code, LEDGER_OK);
		requests[i] = harness_request(&harness, LEDGER_KIND_DEPOSIT, FUNDING, FIRST_ACCOUNT + i,
					      amount);
	}
	cr_assert_eq(harness_call_many(&harness, requests, ACCOUNTS, results), 0);
	for (int i = 0; i < ACCOUNTS; i++) {
		cr_assert_eq(results[i].code, LEDGER_OK, "deposit %d: %s", i,
			     ledger_result_name(results[i].code));
		model[i] = (int64_t)amount;
	}
}

static void check_balances(const int64_t *model)
{
	static struct ledger_request requests[ACCOUNTS];
	static struct ledger_result results[ACCOUNTS];
	for (int i = 0; i < ACCOUNTS; i++)
		requests[i] = harness_request(&harness, LEDGER_KIND_BALANCE, FIRST_ACCOUNT + i, 0, 0);
	cr_assert_eq(harness_call_many(&harness, requests, ACCOUNTS, results), 0);
	for (int i = 0; i < ACCOUNTS; i++)
		cr_assert_eq(results[i].balance, model[i], "account %d: switch %lld, model %lld",
			     FIRST_ACCOUNT + i, (long long)results[i].balance, (long long)model[i]);
}

Test(shards, cross_shard_payments_match_a_sequential_model, .fini = stop_all, .timeout = 300)
{
	harness_init(&harness, 4, NULL);
	cr_assert(harness_start(&harness, NULL));
	int64_t model[ACCOUNTS];
	open_and_fund(model, 1000);
	srand(42);
	/* One payment at a time: the model predicts every code exactly. */
	for (int step = 0; step < 600; step++) {
		int payer = rand() % ACCOUNTS;
		int payee = (payer + 1 + rand() % (ACCOUNTS - 1)) % ACCOUNTS;
		uint64_t amount = 1 + (uint64_t)(rand() % 400);
		struct ledger_request pay = harness_request(&harness, LEDGER_KIND_PAY,
							    FIRST_ACCOUNT + payer,
							    FIRST_ACCOUNT + payee, amount);
		struct ledger_result result = harness_call(&harness, &pay);
		uint16_t expected = model[payer] >= (int64_t)amount ? LEDGER_OK
								    : LEDGER_INSUFFICIENT_FUNDS;
		cr_assert_eq(result.code, expected, "step %d: %s, model says %s", step,
			     ledger_result_name(result.code), ledger_result_name(expected));
		if (expected == LEDGER_OK) {
			model[payer] -= (int64_t)amount;
			model[payee] += (int64_t)amount;
			cr_assert_eq(result.balance, model[payer], "the receipt balance");
		}
	}
	/* A payee that exists on no shard: the credit is refused and returned. */
	struct ledger_request lost = harness_request(&harness, LEDGER_KIND_PAY, FIRST_ACCOUNT,
						     777777, 1);
	cr_assert_eq(harness_call(&harness, &lost).code, LEDGER_PAYEE_NOT_FOUND);
	check_balances(model);

	/* Batches across every shard at once: approved results move the model. */
	static struct ledger_request requests[512];
	static struct ledger_result results[512];
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < 512; i++) {
			int payer = rand() % ACCOUNTS;
			int payee = (payer + 1 + rand() % (ACCOUNTS - 1)) % ACCOUNTS;
			requests[i] = harness_request(&harness, LEDGER_KIND_PAY, FIRST_ACCOUNT + payer,
						      FIRST_ACCOUNT + payee, 1 + (uint64_t)(rand() % 50));
		}
		cr_assert_eq(harness_call_many(&harness, requests, 512, results), 0);
		for (int i = 0; i < 512; i++) {
			cr_assert(results[i].code == LEDGER_OK ||
				  results[i].code == LEDGER_INSUFFICIENT_FUNDS,
				  "%s", ledger_result_name(results[i].code));
			if (results[i].code != LEDGER_OK)
				continue;
			model[requests[i].account_id - FIRST_ACCOUNT] -= (int64_t)requests[i].amount;
			model[requests[i].other_id - FIRST_ACCOUNT] += (int64_t)requests[i].amount;
		}
	}
	check_balances(model);
	cr_assert_eq(harness_stop(&harness), 0);
	char report[16384];
	cr_assert_eq(harness_audit(&harness, NULL, report, sizeof(report)), 0, "%s", report);
	cr_assert(harness_start(&harness, NULL));
	check_balances(model);
}

/*
 * The crash test's load: two windows of WINDOW requests each (32 datagrams
 * sent at once, no retransmission) kept in flight, replies read as they
 * come; a window is sent again with new requests once answered. The switch
 * is killed -9 the moment the round's kill_after-th acknowledgement is read,
 * with whatever of both windows is unanswered still in flight; the replies it
 * sent before it died are read too. Every approval read is an
 * acknowledgement, kept and looked up after the restart.
 */
#define CRASH_ROUNDS 6
#define WINDOW NETIO_CLIENT_REQUESTS_MAX
#define WINDOWS 2
#define KILL_AFTER_MIN 1000u
#define KILL_AFTER_SPREAD 8000u
/* A round reads at most kill_after - 1 acknowledgements before the kill and
 * the rest of its windows after it. */
#define ACKNOWLEDGED_MAX \
	(CRASH_ROUNDS * (KILL_AFTER_MIN + KILL_AFTER_SPREAD + WINDOWS * WINDOW))
/* Windows a round sends at most (each acknowledges something unless the
 * switch refuses everything, which fails the round). */
#define WINDOWS_PER_ROUND_MAX 1000u
/* When no reply comes for this long the windows in flight are given up (their
 * datagrams were lost): a bound against a hang, never an assertion. */
#define WINDOW_SILENCE_MS 2000

/* Every acknowledged approval, to look up after each restart. */
static struct ledger_request acknowledged[ACKNOWLEDGED_MAX];
static uint32_t acknowledged_count;

static void verify_acknowledged(void)
{
	static struct ledger_request lookups[NETIO_CLIENT_REQUESTS_MAX];
	static struct ledger_result results[NETIO_CLIENT_REQUESTS_MAX];
	for (uint32_t done = 0; done < acknowledged_count;) {
		uint32_t chunk = acknowledged_count - done;
		if (chunk > NETIO_CLIENT_REQUESTS_MAX)
			chunk = NETIO_CLIENT_REQUESTS_MAX;
		for (uint32_t i = 0; i < chunk; i++) {
			const struct ledger_request *paid = &acknowledged[done + i];
			lookups[i] = harness_request(&harness, LEDGER_KIND_LOOKUP, paid->account_id, 0, 0);
			lookups[i].reference_id = paid->id;
		}
		cr_assert_eq(harness_call_many(&harness, lookups, chunk, results), 0);
		for (uint32_t i = 0; i < chunk; i++) {
			const struct ledger_request *paid = &acknowledged[done + i];
			cr_assert_eq(results[i].code, LEDGER_OK,
				     "acknowledged payment %llu is %s after the crash",
				     (unsigned long long)paid->id, ledger_result_name(results[i].code));
			cr_assert_eq(results[i].amount, paid->amount, "payment %llu",
				     (unsigned long long)paid->id);
		}
		done += chunk;
	}
}

/* One window of requests. */
struct window {
	struct ledger_request requests[WINDOW];
	uint8_t answered[WINDOW];
	uint32_t pending;          /* requests in flight and not answered yet */
	uint64_t sequence_first;   /* of its first datagram */
};

/* What a round counts besides acknowledgements. */
struct crash_counts {
	uint64_t unanswered;       /* requests never answered (in flight at a kill, or lost) */
	uint64_t replies_stray;    /* replies to a window given up after silence */
};

static void window_send(struct window *window)
{
	for (uint32_t i = 0; i < WINDOW; i++) {
		int payer = rand() % ACCOUNTS;
		int payee = (payer + 1 + rand() % (ACCOUNTS - 1)) % ACCOUNTS;
		window->requests[i] = harness_request(&harness, LEDGER_KIND_PAY, FIRST_ACCOUNT + payer,
						      FIRST_ACCOUNT + payee, 1 + rand() % 100);
		window->answered[i] = 0;
	}
	window->pending = WINDOW;
	int sent = netio_client_send(harness.client, window->requests, WINDOW, NETIO_BATCH_MAX,
				     &window->sequence_first);
	cr_assert_eq(sent, (int)(WINDOW / NETIO_BATCH_MAX), "sent %d datagrams", sent);
}

/* Marks request `index` answered with `code`; an approval is acknowledged.
 * Returns 1 for an acknowledgement. */
static uint32_t window_answer(struct window *window, uint32_t index, uint16_t code)
{
	cr_assert_lt(index, WINDOW);
	cr_assert_eq(window->answered[index], 0, "request %u answered twice", index);
	window->answered[index] = 1;
	window->pending--;
	if (code != LEDGER_OK)
		return 0;
	cr_assert_lt(acknowledged_count, ACKNOWLEDGED_MAX);
	acknowledged[acknowledged_count++] = window->requests[index];
	return 1;
}

/* Absorbs one reply datagram into its window; returns the acknowledgements. */
static uint32_t window_absorb(struct window *window, const struct netio_reply *reply)
{
	uint64_t datagram = reply->sequence - window->sequence_first;
	if (reply->type == NETIO_TYPE_ERROR) {
		/* The whole datagram refused: nothing of it acknowledged. */
		for (uint32_t i = 0; i < NETIO_BATCH_MAX; i++)
			window_answer(window, (uint32_t)datagram * NETIO_BATCH_MAX + i,
				      reply->results[0].code);
		return 0;
	}
	uint32_t acks = 0;
	for (uint32_t i = 0; i < reply->count; i++) {
		cr_assert_geq(reply->results[i].id, window->requests[0].id);
		uint64_t index = reply->results[i].id - window->requests[0].id;
		cr_assert_eq(index / NETIO_BATCH_MAX, datagram, "a result in the wrong reply");
		acks += window_answer(window, (uint32_t)index, reply->results[i].code);
	}
	return acks;
}

/* Absorbs polled replies into the windows in flight; returns the acknowledgements. */
static uint32_t windows_absorb(struct window *windows, const struct netio_reply *replies,
			       int count, struct crash_counts *counts)
{
	uint32_t acks = 0;
	for (int r = 0; r < count; r++) {
		struct window *owner = NULL;
		for (uint32_t w = 0; w < WINDOWS; w++)
			if (windows[w].pending > 0 && replies[r].sequence >= windows[w].sequence_first &&
			    replies[r].sequence - windows[w].sequence_first < WINDOW / NETIO_BATCH_MAX)
				owner = &windows[w];
		if (owner == NULL)
			counts->replies_stray++;
		else
			acks += window_absorb(owner, &replies[r]);
	}
	return acks;
}

/* Runs load until kill_after acknowledgements are read, kills the switch
 * at once, reads what it answered before dying. Returns the round's
 * acknowledgements. */
static uint64_t crash_round(uint64_t kill_after, struct crash_counts *counts)
{
	static struct window windows[WINDOWS];
	struct netio_reply replies[NETIO_BURST_MAX];
	uint64_t acks = 0;
	uint32_t sent = 0;
	for (uint32_t w = 0; w < WINDOWS; w++)
		windows[w].pending = 0;
	while (acks < kill_after) {
		for (uint32_t w = 0; w < WINDOWS; w++) {
			if (windows[w].pending > 0)
				continue;
			cr_assert_lt(sent, WINDOWS_PER_ROUND_MAX, "%llu acknowledgements in %u "
				     "windows", (unsigned long long)acks, sent);
			window_send(&windows[w]);
			sent++;
		}
		int n = netio_client_poll(harness.client, replies, NETIO_BURST_MAX, WINDOW_SILENCE_MS);
		cr_assert_geq(n, 0, "poll: %s", strerror(-n));
		if (n == 0) {
			for (uint32_t w = 0; w < WINDOWS; w++) {
				counts->unanswered += windows[w].pending;
				windows[w].pending = 0;
			}
			continue;
		}
		acks += windows_absorb(windows, replies, n, counts);
	}
	cr_assert_eq(kill(harness.pid, SIGKILL), 0);
	cr_assert_eq(waitpid(harness.pid, NULL, 0), harness.pid);
	harness.pid = 0;
	/* The switch is gone: whatever it sent is in the socket already. */
	for (int n; (n = netio_client_poll(harness.client, replies, NETIO_BURST_MAX, 0)) > 0;)
		acks += windows_absorb(windows, replies, n, counts);
	for (uint32_t w = 0; w < WINDOWS; w++)
		counts->unanswered += windows[w].pending;
	return acks;
}

Test(crash, kill_9_under_load_keeps_every_acknowledged_payment, .fini = stop_all,
     .timeout = 400)
{
	harness_init(&harness, 2, NULL);
	/* Several groups in flight per shard, each its own write and sync, and
	 * a short group wait so that groups go beside those in flight: a kill
	 * can leave any of the last 4 groups torn (ledger/JOURNAL.md). */
	static const char *const in_flight[] = { "--journal-in-flight", "4",
						 "--group-wait-us", "50", NULL };
	printf("crash: 2 shards, up to 4 groups in flight per shard, group wait 50 us\n");
	cr_assert(harness_start(&harness, in_flight));
	int64_t model[ACCOUNTS];
	open_and_fund(model, 1000000);
	/* Kill points from their own seeded generator: how many requests the
	 * load draws from rand() before a kill depends on timing, they do not. */
	unsigned kill_seed = 1234;
	srand(1234);
	struct crash_counts counts = {0};
	uint64_t lookups = 0;
	char kill_points[CRASH_ROUNDS * 24] = "";
	for (int round = 0; round < CRASH_ROUNDS; round++) {
		uint64_t kill_after = KILL_AFTER_MIN + (uint64_t)rand_r(&kill_seed) % KILL_AFTER_SPREAD;
		uint64_t acks = crash_round(kill_after, &counts);
		cr_assert_geq(acks, kill_after);
		size_t used = strlen(kill_points);
		snprintf(kill_points + used, sizeof(kill_points) - used, "%s%llu/%llu",
			 round == 0 ? "" : " ", (unsigned long long)kill_after,
			 (unsigned long long)acks);
		cr_assert(harness_start(&harness, in_flight), "restart %d after kill -9", round);
		verify_acknowledged();
		lookups += acknowledged_count;
	}
	cr_assert_eq(harness_stop(&harness), 0);
	char report[16384];
	cr_assert_eq(harness_audit(&harness, NULL, report, sizeof(report)), 0, "%s", report);
	fprintf(stderr, "engine crash: %d rounds, %d windows of %u requests in flight, kill -9 "
		"after N acknowledgements (N/acknowledged per round: %s), %u acknowledged (store "
		"holds %u), every one looked up after every restart: %llu lookups; %llu requests "
		"unanswered at the kills, %llu stray replies\n", CRASH_ROUNDS, WINDOWS, WINDOW,
		kill_points, acknowledged_count, ACKNOWLEDGED_MAX, (unsigned long long)lookups,
		(unsigned long long)counts.unanswered, (unsigned long long)counts.replies_stray);
}

/* An account id owned by `shard` of `count`, searching upward from `from`. */
static uint64_t account_on(uint32_t shard, uint32_t count, uint64_t from)
{
	while (ledger_shard_of(from, count) != shard)
		from++;
	return from;
}

Test(shards, holds_captures_and_refunds_cross_shards, .fini = stop_all, .timeout = 120)
{
	harness_init(&harness, 2, NULL);
	cr_assert(harness_start(&harness, NULL));
	uint64_t customer = account_on(0, 2, 5000);
	uint64_t merchant = account_on(1, 2, 6000);
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, customer, 0);
	harness_open(&harness, merchant, LEDGER_ACCOUNT_MERCHANT);
	harness_deposit(&harness, FUNDING, customer, 10000);

	/* Authorize 3000, capture 2500: the rest is released. */
	struct ledger_request hold = harness_request(&harness, LEDGER_KIND_HOLD, customer, merchant,
						     3000);
	struct ledger_result held = harness_call(&harness, &hold);
	cr_assert_eq(held.code, LEDGER_OK);
	cr_assert_eq(held.balance, 7000, "available shrinks by the hold");
	struct ledger_request capture = harness_request(&harness, LEDGER_KIND_CAPTURE, customer, 0,
							2500);
	capture.reference_id = hold.id;
	cr_assert_eq(harness_call(&harness, &capture).code, LEDGER_OK);
	cr_assert_eq(harness_balance(&harness, customer), 7500);
	cr_assert_eq(harness_balance(&harness, merchant), 2500, "the capture credit crossed shards");
	cr_assert_eq(harness_call(&harness, &capture).flags & LEDGER_RESULT_DUPLICATE,
		     LEDGER_RESULT_DUPLICATE);
	struct ledger_request again = capture;
	again.id = ++harness.next_id;
	cr_assert_eq(harness_call(&harness, &again).code, LEDGER_HOLD_ALREADY_CAPTURED);

	/* A payment, refunded in two parts by the merchant across shards. */
	struct ledger_request pay = harness_request(&harness, LEDGER_KIND_PAY, customer, merchant, 1000);
	cr_assert_eq(harness_call(&harness, &pay).code, LEDGER_OK);
	struct ledger_request refund = harness_request(&harness, LEDGER_KIND_REFUND, merchant,
						       customer, 600);
	refund.reference_id = pay.id;
	cr_assert_eq(harness_call(&harness, &refund).code, LEDGER_OK);
	struct ledger_request more = harness_request(&harness, LEDGER_KIND_REFUND, merchant, customer,
						     401);
	more.reference_id = pay.id;
	cr_assert_eq(harness_call(&harness, &more).code, LEDGER_REFUND_EXCEEDS_PAYMENT);
	more.amount = 400;
	more.id = ++harness.next_id;
	cr_assert_eq(harness_call(&harness, &more).code, LEDGER_OK);
	/* A refund of a refund is not a refund. */
	struct ledger_request back = harness_request(&harness, LEDGER_KIND_REFUND, customer, merchant,
						     100);
	back.reference_id = refund.id;
	uint16_t code = harness_call(&harness, &back).code;
	cr_assert(code == LEDGER_NOT_REFUNDABLE || code == LEDGER_TRANSFER_NOT_FOUND,
		  "refund of a refund: %s", ledger_result_name(code));
	cr_assert_eq(harness_balance(&harness, customer), 7500);
	cr_assert_eq(harness_balance(&harness, merchant), 2500);

	/* A hold voided releases everything. */
	struct ledger_request second = harness_request(&harness, LEDGER_KIND_HOLD, customer, merchant,
						       500);
	cr_assert_eq(harness_call(&harness, &second).code, LEDGER_OK);
	struct ledger_request release = harness_request(&harness, LEDGER_KIND_VOID, customer, 0, 0);
	release.reference_id = second.id;
	cr_assert_eq(harness_call(&harness, &release).code, LEDGER_OK);
	cr_assert_eq(harness_balance(&harness, customer), 7500);
	cr_assert_eq(harness_stop(&harness), 0);
	char report[16384];
	cr_assert_eq(harness_audit(&harness, NULL, report, sizeof(report)), 0, "%s", report);
}
