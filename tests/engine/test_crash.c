/*
 * test_crash.c — many shards against a sequential model; kill -9 under load,
 * restart, every acknowledged payment present, audit clean.
 */
#include <criterion/criterion.h>
#include <pthread.h>
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

struct killer {
	pid_t pid;
	useconds_t delay_us;
};

static void *kill_later(void *argument)
{
	struct killer *killer = argument;
	usleep(killer->delay_us);
	kill(killer->pid, SIGKILL);
	return NULL;
}

/* Every acknowledged approval, to look up after each restart. */
static struct ledger_request acknowledged[200000];
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
		for (uint32_t i = 0; i < chunk; i++)
			cr_assert_eq(results[i].code, LEDGER_OK,
				     "acknowledged payment %llu is %s after the crash",
				     (unsigned long long)acknowledged[done + i].id,
				     ledger_result_name(results[i].code));
		done += chunk;
	}
}

Test(crash, kill_9_under_load_keeps_every_acknowledged_payment, .fini = stop_all,
     .timeout = 400)
{
	harness_init(&harness, 2, NULL);
	cr_assert(harness_start(&harness, NULL));
	int64_t model[ACCOUNTS];
	open_and_fund(model, 1000000);
	srand(1234);
	enum { BATCH = 256 };
	static struct ledger_request requests[BATCH];
	static struct ledger_result results[BATCH];
	for (int round = 0; round < 6; round++) {
		struct killer killer = { .pid = harness.pid,
					 .delay_us = (useconds_t)(20000 + rand() % 300000) };
		pthread_t thread;
		pthread_create(&thread, NULL, kill_later, &killer);
		for (int call = 0; call < 100000; call++) {
			for (int i = 0; i < BATCH; i++) {
				int payer = rand() % ACCOUNTS;
				int payee = (payer + 1 + rand() % (ACCOUNTS - 1)) % ACCOUNTS;
				requests[i] = harness_request(&harness, LEDGER_KIND_PAY,
							      FIRST_ACCOUNT + payer,
							      FIRST_ACCOUNT + payee, 1 + rand() % 100);
			}
			int called = netio_client_call(harness.client, requests, BATCH, results, 300, 0);
			for (int i = 0; i < BATCH; i++)
				if (results[i].code == LEDGER_OK &&
				    acknowledged_count < sizeof(acknowledged) / sizeof(acknowledged[0]))
					acknowledged[acknowledged_count++] = requests[i];
			if (called != 0)
				break; /* the switch died under us */
		}
		pthread_join(thread, NULL);
		waitpid(harness.pid, NULL, 0);
		harness.pid = 0;
		cr_assert(harness_start(&harness, NULL), "restart %d after kill -9", round);
		verify_acknowledged();
	}
	cr_assert_gt(acknowledged_count, 0);
	cr_assert_eq(harness_stop(&harness), 0);
	char report[16384];
	cr_assert_eq(harness_audit(&harness, NULL, report, sizeof(report)), 0, "%s", report);
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
