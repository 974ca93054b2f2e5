/* The deduplication window: duplicates, ID_REUSED, TOO_OLD (age and
 * watermark), TIMESTAMP_IN_FUTURE, batches equal one-by-one. */
#include <string.h>

#include "ledger_test_util.h"

static struct lt t;
enum { BANK = 1, ALICE = 2, SHOP = 3 };

static void open_all(void)
{
	lt_open(&t, BANK, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&t, ALICE, 0, 0, 0, 0);
	lt_open(&t, SHOP, LEDGER_ACCOUNT_MERCHANT, 0, 0, 0);
	LT_CODE(lt_deposit(&t, BANK, ALICE, 1000), LEDGER_OK);
}
static void setup(void) { lt_init(&t, NULL); open_all(); }
static void teardown(void) { lt_fini(&t); }
TestSuite(window, .init = setup, .fini = teardown);

Test(window, duplicate_returns_original_and_changes_nothing)
{
	struct ledger_request pay = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 100);
	struct ledger_result first = lt_do(&t, pay);
	LT_CODE(first, LEDGER_OK);
	t.now += 10;
	struct ledger_result again = lt_do(&t, pay);
	LT_CODE(again, LEDGER_OK);
	cr_assert_eq(again.flags, LEDGER_RESULT_JOURNAL | LEDGER_RESULT_DUPLICATE);
	cr_assert_eq(again.sequence, first.sequence + 1);
	cr_assert_eq(again.amount, 100);
	cr_assert_eq(again.balance, 900);
	cr_assert_eq(lt_balance(&t, ALICE), 900);
	cr_assert_eq(lt_balance(&t, SHOP), 100);
	/* A declined request repeats its decline even when it would now pass. */
	struct ledger_request big = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 2000);
	LT_CODE(lt_do(&t, big), LEDGER_INSUFFICIENT_FUNDS);
	LT_CODE(lt_deposit(&t, BANK, ALICE, 5000), LEDGER_OK);
	struct ledger_result repeat = lt_do(&t, big);
	LT_CODE(repeat, LEDGER_INSUFFICIENT_FUNDS);
	cr_assert(repeat.flags & LEDGER_RESULT_DUPLICATE);
	cr_assert_eq(repeat.balance, 5900);
}

Test(window, id_reused_with_other_fields)
{
	struct ledger_request pay = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 100);
	LT_CODE(lt_do(&t, pay), LEDGER_OK);
	struct ledger_request other = pay;
	other.amount = 101;
	struct ledger_result result = lt_do(&t, other);
	LT_CODE(result, LEDGER_ID_REUSED);
	cr_assert_eq(result.flags, LEDGER_RESULT_JOURNAL);
	other = pay;
	other.timestamp_us += 1;
	LT_CODE(lt_do(&t, other), LEDGER_ID_REUSED);
	other = pay;
	other.kind = LEDGER_KIND_HOLD;
	LT_CODE(lt_do(&t, other), LEDGER_ID_REUSED);
	cr_assert_eq(lt_balance(&t, ALICE), 900);
	/* ID_REUSED is not remembered: the original stays. */
	struct ledger_result again = lt_do(&t, pay);
	LT_CODE(again, LEDGER_OK);
	cr_assert(again.flags & LEDGER_RESULT_DUPLICATE);
}

Test(window, too_old_and_in_future_boundaries)
{
	uint64_t window = ledger_config_get(t.ledger)->dedup_window_us;
	uint64_t tolerance = ledger_config_get(t.ledger)->future_tolerance_us;
	t.now = LT_T0 + 2 * window;
	struct ledger_request pay = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
	pay.timestamp_us = t.now - window - 1;
	struct ledger_result result = lt_do(&t, pay);
	LT_CODE(result, LEDGER_TOO_OLD);
	cr_assert(result.flags & LEDGER_RESULT_JOURNAL);
	cr_assert_neq(result.sequence, 0);
	cr_assert_not(ledger_transfer_get(t.ledger, pay.id, NULL), "TOO_OLD is not remembered");
	pay.timestamp_us = t.now - window;
	LT_CODE(lt_do(&t, pay), LEDGER_OK);
	pay = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
	pay.timestamp_us = t.now + tolerance + 1;
	LT_CODE(lt_do(&t, pay), LEDGER_TIMESTAMP_IN_FUTURE);
	cr_assert_not(ledger_transfer_get(t.ledger, pay.id, NULL));
	pay.timestamp_us = t.now + tolerance;
	LT_CODE(lt_do(&t, pay), LEDGER_OK);
	pay = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
	pay.timestamp_us = UINT64_MAX;
	LT_CODE(lt_do(&t, pay), LEDGER_TIMESTAMP_IN_FUTURE);
	cr_assert_eq(lt_balance(&t, ALICE), 998);
}

Test(window, watermark_after_eviction)
{
	struct ledger_config config;
	lt_config(&config);
	config.transfers_max = 8;
	lt_fini(&t);
	lt_init(&t, &config);
	open_all(); /* 4 entries */
	struct ledger_request old = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
	LT_CODE(lt_do(&t, old), LEDGER_OK);
	for (int i = 0; i < 3; i++) {
		t.now += 1;
		LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_OK);
	}
	cr_assert(ledger_transfer_get(t.ledger, old.id, NULL), "8 entries: all remembered");
	t.now += 1;
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_OK); /* evicts an entry of time LT_T0 */
	t.now += 1;
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_OK);
	t.now += 1;
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_OK);
	t.now += 1;
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_OK);
	t.now += 1;
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_OK); /* evicts `old` */
	cr_assert_not(ledger_transfer_get(t.ledger, old.id, NULL));
	/* Within the time window but at or before the watermark: a repeat could
	 * no longer be recognised, so it is refused. */
	struct ledger_result result = lt_do(&t, old);
	LT_CODE(result, LEDGER_TOO_OLD);
	struct ledger_request fresh = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
	fresh.timestamp_us = LT_T0; /* == the watermark now */
	LT_CODE(lt_do(&t, fresh), LEDGER_TOO_OLD);
	fresh.timestamp_us = LT_T0 + 1;
	LT_CODE(lt_do(&t, fresh), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, ALICE), 1000 - 10);
}

Test(window, many_evictions_keep_index_consistent)
{
	struct ledger_config config;
	lt_config(&config);
	config.transfers_max = 37;
	lt_fini(&t);
	lt_init(&t, &config);
	open_all();
	LT_CODE(lt_deposit(&t, BANK, ALICE, 100000), LEDGER_OK);
	struct ledger_request recent[37];
	for (int i = 0; i < 5000; i++) {
		t.now += 1;
		recent[i % 37] = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
		LT_CODE(lt_do(&t, recent[i % 37]), LEDGER_OK);
	}
	for (int i = 0; i < 37; i++) {
		cr_assert(ledger_transfer_get(t.ledger, recent[i].id, NULL));
		struct ledger_result again = lt_do(&t, recent[i]);
		cr_assert(again.flags & LEDGER_RESULT_DUPLICATE);
	}
	cr_assert_eq(lt_balance(&t, SHOP), 5000);
	struct ledger_violation violation;
	cr_assert_eq(ledger_check_window(t.ledger, &violation), 0, "%s", violation.text);
}

/* The batch path (prefetching, chunks of 64) decides exactly as one-by-one. */
Test(window, batch_equals_one_by_one)
{
	struct lt other;
	lt_init(&other, NULL);
	struct lt *both[2] = { &t, &other };
	lt_fini(&t);
	lt_init(&t, NULL);
	enum { COUNT = 1000 };
	static struct ledger_request requests[COUNT];
	static struct ledger_result batch[COUNT], single[COUNT];
	uint64_t seed = 12345;
	for (int i = 0; i < COUNT; i++) {
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		uint64_t r = seed >> 33;
		struct ledger_request *request = &requests[i];
		*request = lt_req(&t, (uint8_t)(r % 3 == 0 ? LEDGER_KIND_OPEN :
					       r % 3 == 1 ? LEDGER_KIND_DEPOSIT : LEDGER_KIND_PAY),
				  1 + (r >> 4) % 20, 1 + (r >> 12) % 20, (r >> 20) % 500);
		if (request->kind == LEDGER_KIND_OPEN)
			request->flags = (r >> 8) % 4 == 0 ? LEDGER_ACCOUNT_FUNDING : 0;
		if (i > 10 && r % 17 == 0)
			*request = requests[i - 1 - (r >> 5) % 10]; /* duplicates in the same batch */
	}
	cr_assert_eq(ledger_apply(both[0]->ledger, LT_T0, requests, batch, COUNT), COUNT);
	for (int i = 0; i < COUNT; i++)
		ledger_apply(both[1]->ledger, LT_T0, &requests[i], &single[i], 1);
	cr_assert_eq(memcmp(batch, single, sizeof(batch)), 0);
	for (uint64_t id = 1; id <= 20; id++) {
		const struct ledger_account *a = ledger_account_get(t.ledger, id);
		const struct ledger_account *b = ledger_account_get(other.ledger, id);
		cr_assert_eq(a == NULL, b == NULL);
		if (a != NULL)
			cr_assert_eq(memcmp(a, b, sizeof(*a)), 0);
	}
	cr_assert_eq(ledger_check_invariants(t.ledger, NULL), 0);
	lt_fini(&other);
}
