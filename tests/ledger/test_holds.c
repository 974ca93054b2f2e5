/* HOLD, CAPTURE (full, partial), VOID, expiry at the exact tick. */
#include "ledger_test_util.h"

static struct lt t;
enum { BANK = 1, ALICE = 2, SHOP = 3, BOB = 4 };

static void setup(void)
{
	lt_init(&t, NULL);
	lt_open(&t, BANK, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&t, ALICE, 0, 0, 0, 0);
	lt_open(&t, SHOP, LEDGER_ACCOUNT_MERCHANT, 0, 0, 0);
	lt_open(&t, BOB, 0, 0, 0, 0);
	LT_CODE(lt_deposit(&t, BANK, ALICE, 1000), LEDGER_OK);
}
static void teardown(void) { lt_fini(&t); }
TestSuite(holds, .init = setup, .fini = teardown);

static uint8_t state_of(uint64_t id)
{
	struct ledger_transfer_info info;
	cr_assert(ledger_transfer_get(t.ledger, id, &info));
	return info.state;
}

Test(holds, hold_reserves_funds)
{
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 600, 0);
	LT_CODE(hold, LEDGER_OK);
	cr_assert_eq(hold.balance, 400);
	cr_assert_eq(lt_held(&t, ALICE), 600);
	cr_assert_eq(lt_balance(&t, ALICE), 1000);
	cr_assert_eq(ledger_hold_count(t.ledger), 1);
	cr_assert_eq(state_of(hold.id), LEDGER_TRANSFER_PENDING);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 401), LEDGER_INSUFFICIENT_FUNDS);
	LT_CODE(lt_hold(&t, ALICE, SHOP, 401, 0), LEDGER_INSUFFICIENT_FUNDS);
	LT_CODE(lt_hold(&t, ALICE, SHOP, 400, 0), LEDGER_OK);
	LT_CODE(lt_hold(&t, ALICE, 99, 1, 0), LEDGER_PAYEE_NOT_FOUND);
	LT_CODE(lt_hold(&t, ALICE, 0, 1, 0), LEDGER_PAYEE_NOT_FOUND);
	LT_CODE(lt_hold(&t, 99, SHOP, 1, 0), LEDGER_PAYER_NOT_FOUND);
	LT_CODE(lt_hold(&t, ALICE, SHOP, 0, 0), LEDGER_AMOUNT_ZERO);
}

Test(holds, capture_full_and_double_capture)
{
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 600, 0);
	struct ledger_result capture = lt_capture(&t, ALICE, hold.id, 0);
	LT_CODE(capture, LEDGER_OK);
	cr_assert_eq(capture.amount, 600, "amount 0 captures the whole hold");
	cr_assert_eq(capture.balance, 400);
	cr_assert_eq(lt_balance(&t, SHOP), 600);
	cr_assert_eq(lt_held(&t, ALICE), 0);
	cr_assert_eq(ledger_hold_count(t.ledger), 0);
	cr_assert_eq(state_of(hold.id), LEDGER_TRANSFER_CAPTURED);
	LT_CODE(lt_capture(&t, ALICE, hold.id, 0), LEDGER_HOLD_ALREADY_CAPTURED);
	LT_CODE(lt_void(&t, ALICE, hold.id), LEDGER_HOLD_ALREADY_CAPTURED);
}

Test(holds, partial_capture_releases_the_rest)
{
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 600, 0);
	LT_CODE(lt_capture(&t, ALICE, hold.id, 601), LEDGER_CAPTURE_EXCEEDS_HOLD);
	LT_CODE(lt_capture(&t, ALICE, hold.id, UINT64_MAX), LEDGER_CAPTURE_EXCEEDS_HOLD);
	struct ledger_result capture = lt_capture(&t, ALICE, hold.id, 250);
	LT_CODE(capture, LEDGER_OK);
	cr_assert_eq(capture.amount, 250);
	cr_assert_eq(lt_balance(&t, ALICE), 750);
	cr_assert_eq(lt_held(&t, ALICE), 0);
	cr_assert_eq(capture.balance, 750);
	cr_assert_eq(lt_balance(&t, SHOP), 250);
	struct ledger_transfer_info info;
	cr_assert(ledger_transfer_get(t.ledger, hold.id, &info));
	cr_assert_eq(info.amount_done, 250);
	LT_CODE(lt_capture(&t, ALICE, hold.id, 1), LEDGER_HOLD_ALREADY_CAPTURED);
}

Test(holds, void_and_after)
{
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 600, 0);
	LT_CODE(lt_void(&t, ALICE, hold.id), LEDGER_OK);
	cr_assert_eq(lt_held(&t, ALICE), 0);
	cr_assert_eq(state_of(hold.id), LEDGER_TRANSFER_VOIDED);
	LT_CODE(lt_void(&t, ALICE, hold.id), LEDGER_HOLD_ALREADY_VOIDED);
	LT_CODE(lt_capture(&t, ALICE, hold.id, 0), LEDGER_HOLD_ALREADY_VOIDED);
	LT_CODE(lt_void(&t, ALICE, 424242), LEDGER_HOLD_NOT_FOUND);
	LT_CODE(lt_capture(&t, ALICE, 424242, 0), LEDGER_HOLD_NOT_FOUND);
}

Test(holds, hold_of_another_account)
{
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 600, 0);
	LT_CODE(lt_capture(&t, BOB, hold.id, 0), LEDGER_HOLD_NOT_FOUND);
	LT_CODE(lt_void(&t, BOB, hold.id), LEDGER_HOLD_NOT_FOUND);
	LT_CODE(lt_void(&t, ALICE, hold.id), LEDGER_OK);
	LT_CODE(lt_void(&t, BOB, hold.id), LEDGER_HOLD_NOT_FOUND);
	/* A declined hold is not a hold. */
	struct ledger_result declined = lt_hold(&t, ALICE, SHOP, 5000, 0);
	LT_CODE(declined, LEDGER_INSUFFICIENT_FUNDS);
	LT_CODE(lt_capture(&t, ALICE, declined.id, 0), LEDGER_HOLD_NOT_FOUND);
	/* A payment is not a hold either. */
	struct ledger_result pay = lt_pay(&t, ALICE, SHOP, 1);
	LT_CODE(lt_void(&t, ALICE, pay.id), LEDGER_HOLD_NOT_FOUND);
}

Test(holds, expiry_at_the_exact_tick)
{
	uint64_t start = t.now;
	struct ledger_result first = lt_hold(&t, ALICE, SHOP, 100, 1000);
	struct ledger_result second = lt_hold(&t, ALICE, SHOP, 200, 1000);
	t.now = start + 999; /* expires_at - 1: still capturable */
	LT_CODE(lt_capture(&t, ALICE, first.id, 0), LEDGER_OK);
	t.now = start + 1000; /* expires_at: released before the request */
	LT_CODE(lt_capture(&t, ALICE, second.id, 0), LEDGER_HOLD_EXPIRED);
	LT_CODE(lt_void(&t, ALICE, second.id), LEDGER_HOLD_EXPIRED);
	cr_assert_eq(state_of(second.id), LEDGER_TRANSFER_EXPIRED);
	cr_assert_eq(lt_held(&t, ALICE), 0);
	cr_assert_eq(lt_balance(&t, ALICE), 900);
}

Test(holds, expire_holds_directly)
{
	uint64_t start = t.now;
	for (uint64_t i = 1; i <= 5; i++)
		LT_CODE(lt_hold(&t, ALICE, SHOP, 10, i * 100), LEDGER_OK);
	LT_CODE(lt_hold(&t, ALICE, SHOP, 10, 0), LEDGER_OK); /* config default: 900 s */
	cr_assert_eq(ledger_expire_holds(t.ledger, start + 99), 0);
	cr_assert_eq(ledger_expire_holds(t.ledger, start + 300), 3);
	cr_assert_eq(ledger_hold_count(t.ledger), 3);
	cr_assert_eq(lt_held(&t, ALICE), 30);
	cr_assert_eq(ledger_check_invariants(t.ledger, NULL), 0);
	cr_assert_eq(ledger_expire_holds(t.ledger, start + 900 * LT_SECOND - 1), 2);
	cr_assert_eq(ledger_expire_holds(t.ledger, start + 900 * LT_SECOND), 1);
	cr_assert_eq(lt_held(&t, ALICE), 0);
	cr_assert_eq(ledger_check_invariants(t.ledger, NULL), 0);
}

Test(holds, hold_capacity_full)
{
	struct ledger_result holds[64];
	for (int i = 0; i < 64; i++) {
		holds[i] = lt_hold(&t, ALICE, SHOP, 1, 0);
		LT_CODE(holds[i], LEDGER_OK);
	}
	LT_CODE(lt_hold(&t, ALICE, SHOP, 1, 0), LEDGER_CAPACITY_FULL);
	/* Removing from the middle keeps table and heap consistent. */
	for (int i = 0; i < 64; i += 3)
		LT_CODE(lt_void(&t, ALICE, holds[i].id), LEDGER_OK);
	for (int i = 1; i < 64; i += 3)
		LT_CODE(lt_capture(&t, ALICE, holds[i].id, 0), LEDGER_OK);
	LT_CODE(lt_hold(&t, ALICE, SHOP, 1, 0), LEDGER_OK);
	cr_assert_eq(ledger_hold_count(t.ledger), 64 - 22 - 21 + 1);
}

Test(holds, holds_count_toward_daily_limit_captures_do_not)
{
	struct ledger_request limits = lt_req(&t, LEDGER_KIND_SET_LIMITS, ALICE, 0, 0);
	limits.limit_daily = 500;
	LT_CODE(lt_do(&t, limits), LEDGER_OK);
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 400, 0);
	LT_CODE(hold, LEDGER_OK);
	LT_CODE(lt_capture(&t, ALICE, hold.id, 100), LEDGER_OK);
	cr_assert_eq(ledger_account_get(t.ledger, ALICE)->spent_today, 400);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 101), LEDGER_EXCEEDS_DAILY_LIMIT);
	LT_CODE(lt_pay(&t, ALICE, SHOP, 100), LEDGER_OK);
}

Test(holds, capture_checks_both_sides)
{
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 100, 0);
	struct ledger_request freeze = lt_req(&t, LEDGER_KIND_FREEZE, SHOP, 0, 0);
	freeze.flags = 1;
	LT_CODE(lt_do(&t, freeze), LEDGER_OK);
	LT_CODE(lt_capture(&t, ALICE, hold.id, 0), LEDGER_PAYEE_FROZEN);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_FREEZE, SHOP, 0, 0)), LEDGER_OK);
	freeze = lt_req(&t, LEDGER_KIND_FREEZE, ALICE, 0, 0);
	freeze.flags = 1;
	LT_CODE(lt_do(&t, freeze), LEDGER_OK);
	LT_CODE(lt_capture(&t, ALICE, hold.id, 0), LEDGER_PAYER_FROZEN);
	LT_CODE(lt_void(&t, ALICE, hold.id), LEDGER_OK); /* releasing is not a debit */
	cr_assert_eq(lt_held(&t, ALICE), 0);
}

Test(holds, invalid_capture_requests)
{
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 100, 0);
	struct ledger_request capture = lt_req(&t, LEDGER_KIND_CAPTURE, ALICE, 0, 0);
	capture.reference_id = hold.id;
	capture.flags = 3;
	LT_CODE(lt_do(&t, capture), LEDGER_INVALID_REQUEST);
	struct ledger_request request = lt_req(&t, LEDGER_KIND_HOLD, ALICE, SHOP, 1);
	request.currency = LT_USD;
	LT_CODE(lt_do(&t, request), LEDGER_CURRENCY_MISMATCH);
}
