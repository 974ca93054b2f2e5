/*
 * test_admission.c — admission control against the real daemon: a request
 * whose expected wait passes the latency bound is answered BUSY with a
 * retry-after hint, changes nothing, and goes through exactly once when sent
 * again with the same bytes to a switch that has room.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define FUNDING 1

static struct harness harness;

static void stop_all(void)
{
	harness_fini(&harness);
}

Test(admission, busy_with_a_hint_then_exactly_once, .fini = stop_all, .timeout = 120)
{
	harness_init(&harness, 2, NULL);
	harness.metrics_port = harness_free_port();
	cr_assert(harness_start(&harness, NULL));
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, 10, 0);
	harness_open(&harness, 11, 0);
	cr_assert_eq(harness_stop(&harness), 0);

	/* A bound of 1 µs: every request's expected wait passes it (a group
	 * commit is assumed to take 1 ms until measured). */
	static const char *const strict[] = { "--latency-bound-us", "1", NULL };
	cr_assert(harness_start(&harness, strict));
	enum { COUNT = 40 };
	struct ledger_request deposits[COUNT];
	struct ledger_result results[COUNT];
	for (int i = 0; i < COUNT; i++)
		deposits[i] = harness_request(&harness, LEDGER_KIND_DEPOSIT, FUNDING, 10 + i % 2, 5);
	cr_assert_eq(harness_call_many_once(&harness, deposits, COUNT, results), 0);
	for (int i = 0; i < COUNT; i++) {
		cr_assert_eq(results[i].code, LEDGER_BUSY, "request %d: code %u", i, results[i].code);
		cr_assert_geq(results[i].retry_after_us, 500, "a hint comes with it");
		cr_assert_leq(results[i].retry_after_us, 1000000);
		cr_assert_eq(results[i].sequence, 0, "nothing was decided");
	}
	char metrics[65536];
	cr_assert_gt(harness_metrics(&harness, metrics, sizeof(metrics)), 0);
	cr_assert(strstr(metrics, "payswitch_admission_busy_total{shard=") != NULL);
	cr_assert_eq(harness_stop(&harness), 0);

	/* With room, the same bytes go through, once. */
	cr_assert(harness_start(&harness, NULL));
	cr_assert_eq(harness_call_many(&harness, deposits, COUNT, results), 0);
	for (int i = 0; i < COUNT; i++) {
		cr_assert_eq(results[i].code, LEDGER_OK, "request %d: code %u", i, results[i].code);
		cr_assert_eq(results[i].retry_after_us, 0);
	}
	cr_assert_eq(harness_call_many(&harness, deposits, COUNT, results), 0);
	for (int i = 0; i < COUNT; i++)
		cr_assert(results[i].flags & LEDGER_RESULT_DUPLICATE, "request %d repeats", i);
	cr_assert_eq(harness_balance(&harness, 10), COUNT / 2 * 5);
	cr_assert_eq(harness_balance(&harness, 11), COUNT / 2 * 5);
	cr_assert_eq(harness_stop(&harness), 0);
	char report[16384];
	cr_assert_eq(harness_audit(&harness, NULL, report, sizeof(report)), 0, "audit: %s", report);
	fprintf(stderr, "admission: %d requests refused BUSY with a hint, then applied once\n", COUNT);
}
