/* OPEN, FREEZE, CLOSE, SET_LIMITS, BALANCE, LOOKUP, structural validity. */
#include "ledger_test_util.h"

static struct lt t;
static void setup(void) { lt_init(&t, NULL); }
static void teardown(void) { lt_fini(&t); }
TestSuite(accounts, .init = setup, .fini = teardown);

Test(accounts, open_records_fields)
{
	struct ledger_request request = lt_req(&t, LEDGER_KIND_OPEN, 7, 0, 500);
	request.flags = LEDGER_ACCOUNT_MERCHANT;
	request.limit_payment = 100;
	request.limit_daily = 1000;
	struct ledger_result result = lt_do(&t, request);
	LT_CODE(result, LEDGER_OK);
	cr_assert(result.flags & LEDGER_RESULT_JOURNAL);
	cr_assert_eq(result.sequence, 1);
	cr_assert_eq(result.balance, 0);
	const struct ledger_account *account = ledger_account_get(t.ledger, 7);
	cr_assert_not_null(account);
	cr_assert_eq(account->limit_overdraft, 500);
	cr_assert_eq(account->limit_payment, 100);
	cr_assert_eq(account->limit_daily, 1000);
	cr_assert_eq(account->currency, LT_EUR);
	cr_assert_eq(account->flags, LEDGER_ACCOUNT_MERCHANT);
	cr_assert_eq(ledger_account_count(t.ledger), 1);
	cr_assert_eq(ledger_sequence(t.ledger), 1);
}

Test(accounts, open_refusals)
{
	lt_open(&t, 1, 0, 0, 0, 0);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_OPEN, 1, 0, 0)), LEDGER_ACCOUNT_EXISTS);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_OPEN, 0, 0, 0)), LEDGER_INVALID_REQUEST);
	struct ledger_request request = lt_req(&t, LEDGER_KIND_OPEN, 2, 0, 0);
	request.currency = 0;
	LT_CODE(lt_do(&t, request), LEDGER_INVALID_REQUEST);
	request = lt_req(&t, LEDGER_KIND_OPEN, 2, 0, 0);
	request.flags = LEDGER_ACCOUNT_FROZEN;
	LT_CODE(lt_do(&t, request), LEDGER_INVALID_REQUEST);
	request = lt_req(&t, LEDGER_KIND_OPEN, 2, 0, 0);
	request.reserved = 1;
	LT_CODE(lt_do(&t, request), LEDGER_INVALID_REQUEST);
	request = lt_req(&t, LEDGER_KIND_OPEN, 2, 0, 0);
	request.id = 0;
	LT_CODE(lt_do(&t, request), LEDGER_INVALID_REQUEST);
	cr_assert_eq(ledger_account_count(t.ledger), 1);
}

Test(accounts, closed_id_cannot_be_reopened)
{
	lt_open(&t, 1, 0, 0, 0, 0);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_CLOSE, 1, 0, 0)), LEDGER_OK);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_OPEN, 1, 0, 0)), LEDGER_ACCOUNT_EXISTS);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_CLOSE, 1, 0, 0)), LEDGER_PAYER_CLOSED);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_FREEZE, 1, 0, 0)), LEDGER_PAYER_CLOSED);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_SET_LIMITS, 1, 0, 0)), LEDGER_PAYER_CLOSED);
}

Test(accounts, unknown_kinds_and_account)
{
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_NONE, 1, 0, 0)), LEDGER_INVALID_REQUEST);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_COUNT, 1, 0, 0)), LEDGER_INVALID_REQUEST);
	LT_CODE(lt_do(&t, lt_req(&t, 200, 1, 0, 0)), LEDGER_INVALID_REQUEST);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_FREEZE, 99, 0, 0)), LEDGER_PAYER_NOT_FOUND);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_CLOSE, 99, 0, 0)), LEDGER_PAYER_NOT_FOUND);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_SET_LIMITS, 99, 0, 0)), LEDGER_PAYER_NOT_FOUND);
	struct ledger_result result = lt_do(&t, lt_req(&t, LEDGER_KIND_BALANCE, 99, 0, 0));
	LT_CODE(result, LEDGER_PAYER_NOT_FOUND);
	cr_assert_eq(result.flags, 0);
	cr_assert_eq(result.sequence, 0);
	cr_assert_eq(ledger_sequence(t.ledger), 6, "read-only requests take no sequence");
}

Test(accounts, capacity_full)
{
	struct ledger_config config;
	lt_config(&config);
	config.accounts_max = 4;
	lt_fini(&t);
	lt_init(&t, &config);
	for (uint64_t id = 1; id <= 4; id++)
		lt_open(&t, id, 0, 0, 0, 0);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_OPEN, 5, 0, 0)), LEDGER_CAPACITY_FULL);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_OPEN, 4, 0, 0)), LEDGER_ACCOUNT_EXISTS);
	for (uint64_t id = 1; id <= 4; id++)
		cr_assert_not_null(ledger_account_get(t.ledger, id));
	cr_assert_null(ledger_account_get(t.ledger, 5));
}

Test(accounts, fill_table_to_the_brim)
{
	for (uint64_t id = 1; id <= 1024; id++)
		lt_open(&t, id * 7919, 0, 0, 0, 0);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_OPEN, 3, 0, 0)), LEDGER_CAPACITY_FULL);
	for (uint64_t id = 1; id <= 1024; id++)
		cr_assert_not_null(ledger_account_get(t.ledger, id * 7919));
	cr_assert_null(ledger_account_get(t.ledger, 0));
	cr_assert_null(ledger_account_get(t.ledger, 3));
}

Test(accounts, currency_table_full)
{
	for (uint64_t i = 0; i < 32; i++) {
		struct ledger_request request = lt_req(&t, LEDGER_KIND_OPEN, 100 + i, 0, 0);
		request.currency = (uint16_t)(1 + i);
		LT_CODE(lt_do(&t, request), LEDGER_OK);
	}
	struct ledger_request request = lt_req(&t, LEDGER_KIND_OPEN, 200, 0, 0);
	request.currency = 999;
	LT_CODE(lt_do(&t, request), LEDGER_CAPACITY_FULL);
	request = lt_req(&t, LEDGER_KIND_OPEN, 201, 0, 0);
	request.currency = 5; /* a known currency still opens */
	LT_CODE(lt_do(&t, request), LEDGER_OK);
	struct ledger_currency_total totals[40];
	cr_assert_eq(ledger_currency_totals(t.ledger, totals, 40), 32);
	cr_assert_eq(totals[4].currency, 5);
	cr_assert_eq(totals[4].accounts, 2);
}

Test(accounts, freeze_and_unfreeze)
{
	lt_open(&t, 1, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&t, 2, 0, 0, 0, 0);
	struct ledger_request request = lt_req(&t, LEDGER_KIND_FREEZE, 2, 0, 0);
	request.flags = 1;
	LT_CODE(lt_do(&t, request), LEDGER_OK);
	cr_assert(ledger_account_get(t.ledger, 2)->flags & LEDGER_ACCOUNT_FROZEN);
	LT_CODE(lt_deposit(&t, 1, 2, 10), LEDGER_PAYEE_FROZEN);
	request = lt_req(&t, LEDGER_KIND_FREEZE, 2, 0, 0);
	request.flags = 2;
	LT_CODE(lt_do(&t, request), LEDGER_INVALID_REQUEST);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_FREEZE, 2, 0, 0)), LEDGER_OK);
	cr_assert_not(ledger_account_get(t.ledger, 2)->flags & LEDGER_ACCOUNT_FROZEN);
	LT_CODE(lt_deposit(&t, 1, 2, 10), LEDGER_OK);
}

Test(accounts, close_needs_empty_account)
{
	lt_open(&t, 1, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&t, 2, 0, 0, 0, 0);
	lt_open(&t, 3, 0, 0, 0, 0);
	LT_CODE(lt_deposit(&t, 1, 2, 10), LEDGER_OK);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_CLOSE, 2, 0, 0)), LEDGER_ACCOUNT_NOT_EMPTY);
	struct ledger_result hold = lt_hold(&t, 2, 3, 10, 0);
	LT_CODE(hold, LEDGER_OK);
	LT_CODE(lt_pay(&t, 2, 3, 1), LEDGER_INSUFFICIENT_FUNDS);
	LT_CODE(lt_capture(&t, 2, hold.id, 0), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, 2), 0);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_CLOSE, 2, 0, 0)), LEDGER_OK);
	LT_CODE(lt_pay(&t, 2, 3, 1), LEDGER_PAYER_CLOSED);
	LT_CODE(lt_pay(&t, 3, 2, 1), LEDGER_PAYEE_CLOSED);
	LT_CODE(lt_deposit(&t, 1, 2, 1), LEDGER_PAYEE_CLOSED);
	struct ledger_result balance = lt_do(&t, lt_req(&t, LEDGER_KIND_BALANCE, 2, 0, 0));
	LT_CODE(balance, LEDGER_OK);
}

Test(accounts, close_with_a_hold_only)
{
	lt_open(&t, 1, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&t, 2, 0, 50, 0, 0);
	LT_CODE(lt_hold(&t, 2, 1, 50, 0), LEDGER_OK); /* balance 0, held 50 via overdraft */
	cr_assert_eq(lt_balance(&t, 2), 0);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_CLOSE, 2, 0, 0)), LEDGER_ACCOUNT_NOT_EMPTY);
}

Test(accounts, set_limits_must_cover_usage)
{
	lt_open(&t, 1, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&t, 2, 0, 100, 0, 0);
	LT_CODE(lt_pay(&t, 2, 1, 60), LEDGER_OK); /* available -60 */
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_SET_LIMITS, 2, 0, 59)), LEDGER_INVALID_LIMITS);
	cr_assert_eq(ledger_account_get(t.ledger, 2)->limit_overdraft, 100);
	struct ledger_request request = lt_req(&t, LEDGER_KIND_SET_LIMITS, 2, 0, 60);
	request.limit_payment = 7;
	request.limit_daily = 1000;
	LT_CODE(lt_do(&t, request), LEDGER_OK);
	const struct ledger_account *account = ledger_account_get(t.ledger, 2);
	cr_assert_eq(account->limit_overdraft, 60);
	cr_assert_eq(account->limit_payment, 7);
	cr_assert_eq(account->limit_daily, 1000);
	LT_CODE(lt_pay(&t, 2, 1, 1), LEDGER_INSUFFICIENT_FUNDS);
	/* FUNDING accounts have no floor: any limit is fine. */
	LT_CODE(lt_deposit(&t, 1, 2, 1000), LEDGER_OK);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_SET_LIMITS, 1, 0, 0)), LEDGER_OK);
}

Test(accounts, balance_and_lookup_are_read_only)
{
	lt_open(&t, 1, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&t, 2, 0, 0, 0, 0);
	struct ledger_result deposit = lt_deposit(&t, 1, 2, 100);
	LT_CODE(lt_hold(&t, 2, 1, 30, 0), LEDGER_OK);
	uint64_t sequence = ledger_sequence(t.ledger);
	struct ledger_result result = lt_do(&t, lt_req(&t, LEDGER_KIND_BALANCE, 2, 0, 0));
	LT_CODE(result, LEDGER_OK);
	cr_assert_eq(result.balance, 70);
	cr_assert_eq(result.amount, 30, "BALANCE returns the held amount");
	cr_assert_eq(result.flags, 0);
	struct ledger_request lookup = lt_req(&t, LEDGER_KIND_LOOKUP, 1, 0, 0);
	lookup.reference_id = deposit.id;
	result = lt_do(&t, lookup);
	LT_CODE(result, LEDGER_OK);
	cr_assert_eq(result.amount, 100);
	cr_assert_eq(result.sequence, 0);
	lookup = lt_req(&t, LEDGER_KIND_LOOKUP, 2, 0, 0); /* not the debit account */
	lookup.reference_id = deposit.id;
	LT_CODE(lt_do(&t, lookup), LEDGER_TRANSFER_NOT_FOUND);
	lookup = lt_req(&t, LEDGER_KIND_LOOKUP, 1, 0, 0);
	lookup.reference_id = 424242;
	LT_CODE(lt_do(&t, lookup), LEDGER_TRANSFER_NOT_FOUND);
	cr_assert_eq(ledger_sequence(t.ledger), sequence);
	/* A declined transfer is found with its original code. */
	struct ledger_result declined = lt_pay(&t, 2, 1, 1000);
	LT_CODE(declined, LEDGER_INSUFFICIENT_FUNDS);
	lookup = lt_req(&t, LEDGER_KIND_LOOKUP, 2, 0, 0);
	lookup.reference_id = declined.id;
	LT_CODE(lt_do(&t, lookup), LEDGER_INSUFFICIENT_FUNDS);
	struct ledger_transfer_info info;
	cr_assert(ledger_transfer_get(t.ledger, declined.id, &info));
	cr_assert_eq(info.code, LEDGER_INSUFFICIENT_FUNDS);
	cr_assert_eq(info.kind, LEDGER_KIND_PAY);
}

static int count_visit(const struct ledger_account *account, void *context)
{
	(void)account;
	(*(int *)context)++;
	return *(int *)context == 3 ? 42 : 0;
}

Test(accounts, foreach_and_memory)
{
	for (uint64_t id = 1; id <= 5; id++)
		lt_open(&t, id, 0, 0, 0, 0);
	int visited = 0;
	cr_assert_eq(ledger_account_foreach(t.ledger, count_visit, &visited), 42);
	cr_assert_eq(visited, 3);
	cr_assert_gt(ledger_memory_bytes(t.ledger), 1024 * 64);
	cr_assert_eq(ledger_config_get(t.ledger)->accounts_max, 1024);
	cr_assert_eq(ledger_now(t.ledger), LT_T0);
}

Test(accounts, bad_configs)
{
	struct ledger_config config;
	int error = 0;
	lt_config(&config);
	config.accounts_max = 0;
	cr_assert_null(ledger_create(&config, &error));
	cr_assert_eq(error, -22);
	lt_config(&config);
	config.shard_index = 1;
	cr_assert_null(ledger_create(&config, &error));
	lt_config(&config);
	config.transfers_max = 0;
	cr_assert_null(ledger_create(&config, &error));
}
