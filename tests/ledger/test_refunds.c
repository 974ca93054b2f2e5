/* REFUND: partial, cumulative, exceeding, of a refund, of a capture. */
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
TestSuite(refunds, .init = setup, .fini = teardown);

Test(refunds, partial_cumulative_exceeding)
{
	struct ledger_result pay = lt_pay(&t, ALICE, SHOP, 300);
	LT_CODE(pay, LEDGER_OK);
	struct ledger_result refund = lt_refund(&t, SHOP, ALICE, pay.id, 100);
	LT_CODE(refund, LEDGER_OK);
	cr_assert_eq(refund.amount, 100, "refunded so far");
	cr_assert_eq(refund.balance, 200, "the merchant's balance");
	refund = lt_refund(&t, SHOP, ALICE, pay.id, 150);
	LT_CODE(refund, LEDGER_OK);
	cr_assert_eq(refund.amount, 250);
	LT_CODE(lt_refund(&t, SHOP, ALICE, pay.id, 51), LEDGER_REFUND_EXCEEDS_PAYMENT);
	LT_CODE(lt_refund(&t, SHOP, ALICE, pay.id, (uint64_t)INT64_MAX), LEDGER_REFUND_EXCEEDS_PAYMENT);
	refund = lt_refund(&t, SHOP, ALICE, pay.id, 50);
	LT_CODE(refund, LEDGER_OK);
	cr_assert_eq(refund.amount, 300);
	LT_CODE(lt_refund(&t, SHOP, ALICE, pay.id, 1), LEDGER_REFUND_EXCEEDS_PAYMENT);
	cr_assert_eq(lt_balance(&t, ALICE), 1000);
	cr_assert_eq(lt_balance(&t, SHOP), 0);
	struct ledger_transfer_info info;
	cr_assert(ledger_transfer_get(t.ledger, pay.id, &info));
	cr_assert_eq(info.amount_done, 300);
}

Test(refunds, not_refundable_and_not_found)
{
	struct ledger_result pay = lt_pay(&t, ALICE, SHOP, 300);
	struct ledger_result refund = lt_refund(&t, SHOP, ALICE, pay.id, 100);
	LT_CODE(lt_refund(&t, ALICE, SHOP, refund.id, 10), LEDGER_NOT_REFUNDABLE);
	LT_CODE(lt_refund(&t, SHOP, ALICE, refund.id, 10), LEDGER_NOT_REFUNDABLE);
	LT_CODE(lt_refund(&t, SHOP, ALICE, 424242, 10), LEDGER_TRANSFER_NOT_FOUND);
	LT_CODE(lt_refund(&t, BOB, ALICE, pay.id, 10), LEDGER_NOT_REFUNDABLE); /* not the payee */
	LT_CODE(lt_refund(&t, SHOP, BOB, pay.id, 10), LEDGER_NOT_REFUNDABLE);  /* not the payer */
	struct ledger_result deposit = lt_deposit(&t, BANK, SHOP, 10);
	LT_CODE(lt_refund(&t, SHOP, BANK, deposit.id, 10), LEDGER_NOT_REFUNDABLE);
	struct ledger_result declined = lt_pay(&t, ALICE, SHOP, 100000);
	LT_CODE(declined, LEDGER_INSUFFICIENT_FUNDS);
	LT_CODE(lt_refund(&t, SHOP, ALICE, declined.id, 10), LEDGER_NOT_REFUNDABLE);
	LT_CODE(lt_refund(&t, SHOP, ALICE, pay.id, 0), LEDGER_AMOUNT_ZERO);
	LT_CODE(lt_refund(&t, SHOP, SHOP, pay.id, 1), LEDGER_SAME_ACCOUNT);
	LT_CODE(lt_refund(&t, 99, ALICE, pay.id, 1), LEDGER_PAYER_NOT_FOUND);
}

Test(refunds, merchant_funds_and_sides)
{
	struct ledger_result pay = lt_pay(&t, ALICE, SHOP, 300);
	LT_CODE(lt_pay(&t, SHOP, BOB, 250), LEDGER_OK);
	LT_CODE(lt_refund(&t, SHOP, ALICE, pay.id, 51), LEDGER_INSUFFICIENT_FUNDS);
	struct ledger_request freeze = lt_req(&t, LEDGER_KIND_FREEZE, ALICE, 0, 0);
	freeze.flags = 1;
	LT_CODE(lt_do(&t, freeze), LEDGER_OK);
	LT_CODE(lt_refund(&t, SHOP, ALICE, pay.id, 50), LEDGER_PAYEE_FROZEN);
	LT_CODE(lt_do(&t, lt_req(&t, LEDGER_KIND_FREEZE, ALICE, 0, 0)), LEDGER_OK);
	struct ledger_request refund = lt_req(&t, LEDGER_KIND_REFUND, SHOP, ALICE, 50);
	refund.reference_id = pay.id;
	refund.currency = LT_USD;
	LT_CODE(lt_do(&t, refund), LEDGER_CURRENCY_MISMATCH);
	LT_CODE(lt_refund(&t, SHOP, ALICE, pay.id, 50), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, SHOP), 0);
}

Test(refunds, refund_of_a_capture)
{
	struct ledger_result hold = lt_hold(&t, ALICE, SHOP, 500, 0);
	struct ledger_result capture = lt_capture(&t, ALICE, hold.id, 200);
	LT_CODE(capture, LEDGER_OK);
	LT_CODE(lt_refund(&t, SHOP, ALICE, hold.id, 10), LEDGER_NOT_REFUNDABLE); /* the hold itself */
	LT_CODE(lt_refund(&t, SHOP, ALICE, capture.id, 201), LEDGER_REFUND_EXCEEDS_PAYMENT);
	LT_CODE(lt_refund(&t, SHOP, ALICE, capture.id, 200), LEDGER_OK);
	cr_assert_eq(lt_balance(&t, ALICE), 1000);
}
