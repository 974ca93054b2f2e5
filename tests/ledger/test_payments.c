/* PAY and DEPOSIT: funds, overdraft, limits, day rollover, overflow, sides. */
#include "ledger_test_util.h"

static struct lt t;
enum { BANK = 1, ALICE = 2, BOB = 3, SHOP = 4 };

static void setup(void)
{
	lt_init(&t, NULL);
	lt_open(&t, BANK, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&t, ALICE, 0, 0, 0, 0);
	lt_open(&t, BOB, 0, 0, 0, 0);
	lt_open(&t, SHOP, LEDGER_ACCOUNT_MERCHANT, 0, 0, 0);
}
static void teardown(void) { lt_fini(&t); }
TestSuite(payments, .init = setup, .fini = teardown);

Test(payments, exact_balance)
{
	LT_CODE(lt_deposit(&t, BANK, ALICE, 100), LEDGER_OK);
	struct ledger_result result = lt_pay(&t, ALICE, SHOP, 101);
	LT_CODE(result, LEDGER_INSUFFICIENT_FUNDS);
	cr_assert_eq(result.balance, 100);
	result = lt_pay(&t, ALICE, SHOP, 100);
	LT_CODE(result, LEDGER_OK);
	cr_assert_eq(result.balance, 0);
	cr_assert_eq(result.amount, 100);
	cr_assert_eq(lt_balance(&t, SHOP), 100);
	cr_assert_eq(lt_balance(&t, BANK), -100);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_INSUFFICIENT_FUNDS);
}

Test(payments, overdraft_edge)
{
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_SET_LIMITS, ALICE, 0, 50)), LEDGER_OK);
	LT_CODE(lt_deposit(&t, BANK, ALICE, 10), LEDGER_OK);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 61), LEDGER_INSUFFICIENT_FUNDS);
	struct ledger_result result = lt_pay(&t, ALICE, SHOP, 60);
	LT_CODE(result, LEDGER_OK);
	cr_assert_eq(result.balance, -50);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_INSUFFICIENT_FUNDS);
}

Test(payments, payment_limit_boundary)
{
	LT_CODE(lt_deposit(&t, BANK, ALICE, 1000), LEDGER_OK);
	struct ledger_request limits = lt_req(&t, LEDGER_KIND_SET_LIMITS, ALICE, 0, 0);
	limits.limit_payment = 100;
	LT_CODE(lt_do(&t, limits), LEDGER_OK);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 101), LEDGER_EXCEEDS_PAYMENT_LIMIT);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 100), LEDGER_OK);
	LT_CODE(lt_hold(&t, ALICE, SHOP, 101, 0), LEDGER_EXCEEDS_PAYMENT_LIMIT);
	/* The payment limit comes before funds. */
	LT_CODE(lt_pay(&t, ALICE, SHOP, 5000), LEDGER_EXCEEDS_PAYMENT_LIMIT);
}

Test(payments, daily_limit_and_rollover)
{
	LT_CODE(lt_deposit(&t, BANK, ALICE, 10000), LEDGER_OK);
	struct ledger_request limits = lt_req(&t, LEDGER_KIND_SET_LIMITS, ALICE, 0, 0);
	limits.limit_daily = 300;
	LT_CODE(lt_do(&t, limits), LEDGER_OK);
	uint64_t day_end = (t.now / LT_DAY + 1) * LT_DAY;
	LT_CODE(lt_pay(&t, ALICE, SHOP, 200), LEDGER_OK);
	LT_CODE(lt_hold(&t, ALICE, SHOP, 50, 0), LEDGER_OK);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 51), LEDGER_EXCEEDS_DAILY_LIMIT);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 50), LEDGER_OK);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_EXCEEDS_DAILY_LIMIT);
	cr_assert_eq(ledger_account_get(t.ledger, ALICE)->spent_today, 300);
	t.now = day_end - 1; /* the last microsecond of the day */
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_EXCEEDS_DAILY_LIMIT);
	t.now = day_end; /* a new UTC day */
	LT_CODE(lt_pay(&t, ALICE, SHOP, 301), LEDGER_EXCEEDS_DAILY_LIMIT);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 300), LEDGER_OK);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_EXCEEDS_DAILY_LIMIT);
	/* Deposits are not spending: no limit applies to the funding side. */
	LT_CODE(lt_deposit(&t, BANK, ALICE, 5), LEDGER_OK);
}

Test(payments, amount_zero_and_same_account)
{
	LT_CODE(lt_pay(&t, ALICE, SHOP, 0), LEDGER_AMOUNT_ZERO);
	LT_CODE(lt_deposit(&t, BANK, ALICE, 0), LEDGER_AMOUNT_ZERO);
	LT_CODE(lt_pay(&t, ALICE, ALICE, 1), LEDGER_SAME_ACCOUNT);
	LT_CODE(lt_hold(&t, ALICE, ALICE, 1, 0), LEDGER_SAME_ACCOUNT);
}

Test(payments, amounts_near_two_to_the_63)
{
	const uint64_t max = (uint64_t)INT64_MAX;
	LT_CODE(lt_deposit(&t, BANK, ALICE, max + 1), LEDGER_AMOUNT_OVERFLOW);
	LT_CODE(lt_deposit(&t, BANK, ALICE, UINT64_MAX), LEDGER_AMOUNT_OVERFLOW);
	LT_CODE(lt_pay(&t, ALICE, SHOP, max + 1), LEDGER_AMOUNT_OVERFLOW);
	LT_CODE(lt_deposit(&t, BANK, ALICE, max), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, ALICE), INT64_MAX);
	cr_assert_eq(lt_balance(&t, BANK), -INT64_MAX);
	/* credit overflow on the payee */
	struct ledger_result result = lt_deposit(&t, BANK, ALICE, 1);
	LT_CODE(result, LEDGER_AMOUNT_OVERFLOW);
	cr_assert_eq(lt_balance(&t, BANK), -INT64_MAX, "nothing changed");
	/* debit overflow on the funding account (no floor) */
	LT_CODE(lt_deposit(&t, BANK, BOB, 2), LEDGER_AMOUNT_OVERFLOW);
	LT_CODE(lt_deposit(&t, BANK, BOB, 1), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, BANK), INT64_MIN);
	LT_CODE(lt_pay(&t, ALICE, SHOP, max), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, SHOP), INT64_MAX);
	LT_CODE(lt_pay(&t, BOB, SHOP, 1), LEDGER_AMOUNT_OVERFLOW);
	cr_assert_eq(lt_balance(&t, BOB), 1);
}

Test(payments, huge_overdraft_does_not_wrap)
{
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_SET_LIMITS, ALICE, 0, UINT64_MAX)), LEDGER_OK);
	LT_CODE(lt_pay(&t, ALICE, SHOP, (uint64_t)INT64_MAX), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, ALICE), -INT64_MAX);
	LT_CODE(lt_pay(&t, ALICE, BOB, 1), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, ALICE), INT64_MIN);
	LT_CODE(lt_pay(&t, ALICE, BOB, 1), LEDGER_AMOUNT_OVERFLOW);
}

Test(payments, not_found_sides)
{
	LT_CODE(lt_pay(&t, 99, SHOP, 1), LEDGER_PAYER_NOT_FOUND);
	LT_CODE(lt_pay(&t, ALICE, 99, 1), LEDGER_PAYEE_NOT_FOUND);
	LT_CODE(lt_pay(&t, ALICE, 0, 1), LEDGER_PAYEE_NOT_FOUND);
	LT_CODE(lt_pay(&t, 0, ALICE, 1), LEDGER_PAYER_NOT_FOUND);
	struct ledger_result result = lt_pay(&t, 99, 98, 1);
	LT_CODE(result, LEDGER_PAYER_NOT_FOUND);
	cr_assert_eq(result.balance, 0);
}

Test(payments, frozen_and_closed_both_sides)
{
	LT_CODE(lt_deposit(&t, BANK, ALICE, 100), LEDGER_OK);
	struct ledger_request freeze = lt_req(&t, LEDGER_KIND_FREEZE, ALICE, 0, 0);
	freeze.flags = 1;
	LT_CODE(lt_do(&t, freeze), LEDGER_OK);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 1), LEDGER_PAYER_FROZEN);
	LT_CODE(lt_hold(&t, ALICE, SHOP, 1, 0), LEDGER_PAYER_FROZEN);
	LT_CODE(lt_pay(&t, BOB, ALICE, 1), LEDGER_PAYEE_FROZEN);
	freeze = lt_req(&t, LEDGER_KIND_FREEZE, BANK, 0, 0);
	freeze.flags = 1;
	LT_CODE(lt_do(&t, freeze), LEDGER_OK);
	LT_CODE(lt_deposit(&t, BANK, BOB, 1), LEDGER_PAYER_FROZEN);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_CLOSE, BOB, 0, 0)), LEDGER_OK);
	LT_CODE(lt_pay(&t, BOB, SHOP, 1), LEDGER_PAYER_CLOSED);
	LT_CODE(lt_pay(&t, SHOP, BOB, 1), LEDGER_PAYEE_CLOSED);
	/* Payer checks come first: a closed payer to a frozen payee. */
	LT_CODE(lt_pay(&t, BOB, ALICE, 1), LEDGER_PAYER_CLOSED);
}

Test(payments, currency_mismatch)
{
	struct ledger_request open = lt_req(&t, LEDGER_KIND_OPEN, 10, 0, 0);
	open.currency = LT_USD;
	LT_CODE(lt_do(&t, open), LEDGER_OK);
	LT_CODE(lt_deposit(&t, BANK, ALICE, 100), LEDGER_OK);
	LT_CODE(lt_pay(&t, ALICE, 10, 1), LEDGER_CURRENCY_MISMATCH);
	struct ledger_request pay = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
	pay.currency = LT_USD;
	LT_CODE(lt_do(&t, pay), LEDGER_CURRENCY_MISMATCH);
	pay = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
	pay.currency = 0;
	LT_CODE(lt_do(&t, pay), LEDGER_INVALID_REQUEST);
	pay = lt_req(&t, LEDGER_KIND_PAY, ALICE, SHOP, 1);
	pay.flags = 1;
	LT_CODE(lt_do(&t, pay), LEDGER_INVALID_REQUEST);
}

Test(payments, deposit_needs_funding)
{
	LT_CODE(lt_deposit(&t, BANK, ALICE, 100), LEDGER_OK);
	LT_CODE(lt_deposit(&t, ALICE, BOB, 10), LEDGER_NOT_FUNDING);
	LT_CODE(lt_deposit(&t, 99, BOB, 10), LEDGER_PAYER_NOT_FOUND);
	LT_CODE(lt_deposit(&t, BANK, 99, 10), LEDGER_PAYEE_NOT_FOUND);
	cr_assert_eq(lt_balance(&t, ALICE), 100);
	/* Funding accounts may also pay, with no floor. */
	LT_CODE(lt_pay(&t, BANK, BOB, 1000000), LEDGER_OK);
}

Test(payments, sequence_and_flags)
{
	struct ledger_result first = lt_deposit(&t, BANK, ALICE, 10);
	struct ledger_result second = lt_pay(&t, ALICE, SHOP, 1000);
	cr_assert_eq(second.sequence, first.sequence + 1);
	cr_assert_eq(first.flags, LEDGER_RESULT_JOURNAL);
	cr_assert_eq(second.flags, LEDGER_RESULT_JOURNAL);
	struct ledger_currency_total total;
	cr_assert_eq(ledger_currency_totals(t.ledger, &total, 1), 1);
	cr_assert_eq(total.balance_sum, 0);
	cr_assert_eq(total.transit, 0);
	cr_assert_eq(total.accounts, 4);
}
