/* Two shards: CREDIT_REMOTE on the payer's shard, CREDIT and RETURN, transit. */
#include <string.h>

#include "ledger_test_util.h"

static struct lt s0, s1;
static uint64_t bank0, alice0, shop1, bob1, bank1;

/* The n-th id (from 1000) owned by `shard` of 2. */
static uint64_t owned(uint32_t shard, int n)
{
	for (uint64_t id = 1000;; id++)
		if (ledger_shard_of(id, 2) == shard && n-- == 0)
			return id;
}

static void setup(void)
{
	struct ledger_config config;
	lt_config(&config);
	config.shard_count = 2;
	config.shard_index = 0;
	lt_init(&s0, &config);
	config.shard_index = 1;
	lt_init(&s1, &config);
	s1.next_id = 500000;
	bank0 = owned(0, 0);
	alice0 = owned(0, 1);
	bank1 = owned(1, 0);
	shop1 = owned(1, 1);
	bob1 = owned(1, 2);
	lt_open(&s0, bank0, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&s0, alice0, 0, 0, 0, 0);
	lt_open(&s1, bank1, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&s1, shop1, LEDGER_ACCOUNT_MERCHANT, 0, 0, 0);
	lt_open(&s1, bob1, 0, 0, 0, 0);
	LT_CODE(lt_deposit(&s0, bank0, alice0, 1000), LEDGER_OK);
}
static void teardown(void) { lt_fini(&s0); lt_fini(&s1); }
TestSuite(shards, .init = setup, .fini = teardown);

static int64_t transit(struct lt *t)
{
	struct ledger_currency_total total;
	cr_assert_eq(ledger_currency_totals(t->ledger, &total, 1), 1);
	return (int64_t)total.transit;
}

static void assert_global_double_entry(void)
{
	struct ledger_currency_total a, b;
	ledger_currency_totals(s0.ledger, &a, 1);
	ledger_currency_totals(s1.ledger, &b, 1);
	cr_assert_eq(a.balance_sum + a.transit + b.balance_sum + b.transit, 0);
}

/* Delivers the CREDIT for a CREDIT_REMOTE result to the other ledger. */
static struct ledger_result deliver(struct lt *from, struct lt *to, struct ledger_request request,
				    struct ledger_result result)
{
	struct ledger_request credit;
	cr_assert_eq(ledger_remote_credit(from->ledger, &request, &result, &credit), 0);
	cr_assert_eq(credit.kind, LEDGER_KIND_CREDIT);
	return lt_do(to, credit);
}

Test(shards, open_must_be_owned)
{
	LT_CODE(lt_do(&s0, lt_req(&s0, LEDGER_KIND_OPEN, owned(1, 5), 0, 0)), LEDGER_INVALID_REQUEST);
	LT_CODE(lt_do(&s1, lt_req(&s1, LEDGER_KIND_OPEN, owned(0, 5), 0, 0)), LEDGER_INVALID_REQUEST);
}

Test(shards, pay_across_shards)
{
	struct ledger_request pay = lt_req(&s0, LEDGER_KIND_PAY, alice0, shop1, 300);
	struct ledger_result result = lt_do(&s0, pay);
	LT_CODE(result, LEDGER_OK);
	cr_assert_eq(result.flags, LEDGER_RESULT_JOURNAL | LEDGER_RESULT_CREDIT_REMOTE);
	cr_assert_eq(result.balance, 700);
	cr_assert_eq(transit(&s0), 300);
	struct ledger_result credit = deliver(&s0, &s1, pay, result);
	LT_CODE(credit, LEDGER_OK);
	cr_assert_eq(credit.flags, LEDGER_RESULT_JOURNAL);
	cr_assert_eq(lt_balance(&s1, shop1), 300);
	cr_assert_eq(transit(&s1), -300);
	assert_global_double_entry();
	/* A second delivery is a duplicate. */
	struct ledger_request again;
	ledger_remote_credit(s0.ledger, &pay, &result, &again);
	struct ledger_result duplicate = lt_do(&s1, again);
	LT_CODE(duplicate, LEDGER_OK);
	cr_assert(duplicate.flags & LEDGER_RESULT_DUPLICATE);
	cr_assert_eq(lt_balance(&s1, shop1), 300);
	/* The merchant refunds the credit back across the shards. */
	struct ledger_request refund = lt_req(&s1, LEDGER_KIND_REFUND, shop1, alice0, 100);
	refund.reference_id = pay.id;
	struct ledger_result refunded = lt_do(&s1, refund);
	LT_CODE(refunded, LEDGER_OK);
	cr_assert(refunded.flags & LEDGER_RESULT_CREDIT_REMOTE);
	cr_assert_eq(transit(&s1), -200);
	LT_CODE(deliver(&s1, &s0, refund, refunded), LEDGER_OK);
	cr_assert_eq(lt_balance(&s0, alice0), 800);
	cr_assert_eq(transit(&s0), 200);
	assert_global_double_entry();
	/* The refund's credit on the payer's shard is not refundable again. */
	struct ledger_request back = lt_req(&s0, LEDGER_KIND_REFUND, alice0, shop1, 10);
	back.reference_id = refund.id;
	LT_CODE(lt_do(&s0, back), LEDGER_NOT_REFUNDABLE);
}

Test(shards, refused_credit_returns)
{
	struct ledger_request freeze = lt_req(&s1, LEDGER_KIND_FREEZE, shop1, 0, 0);
	freeze.flags = 1;
	LT_CODE(lt_do(&s1, freeze), LEDGER_OK);
	struct ledger_request pay = lt_req(&s0, LEDGER_KIND_PAY, alice0, shop1, 300);
	struct ledger_result result = lt_do(&s0, pay);
	LT_CODE(result, LEDGER_OK);
	struct ledger_result credit = deliver(&s0, &s1, pay, result);
	LT_CODE(credit, LEDGER_PAYEE_FROZEN);
	cr_assert_eq(credit.flags, LEDGER_RESULT_JOURNAL | LEDGER_RESULT_RETURN_REMOTE);
	cr_assert_eq(transit(&s1), 0);
	struct ledger_request back = pay;
	back.kind = LEDGER_KIND_RETURN;
	back.flags = LEDGER_PAYEE_FROZEN;
	struct ledger_result returned = lt_do(&s0, back);
	LT_CODE(returned, LEDGER_OK);
	cr_assert_eq(returned.balance, 1000);
	cr_assert_eq(transit(&s0), 0);
	struct ledger_transfer_info info;
	cr_assert(ledger_transfer_get(s0.ledger, pay.id, &info));
	cr_assert_eq(info.state, LEDGER_TRANSFER_RETURNED);
	struct ledger_result twice = lt_do(&s0, back);
	cr_assert(twice.flags & LEDGER_RESULT_DUPLICATE);
	cr_assert_eq(lt_balance(&s0, alice0), 1000);
	/* A returned payment is not refundable (its credit never happened). */
	assert_global_double_entry();
}

Test(shards, credit_refusals)
{
	struct ledger_request credit = lt_req(&s1, LEDGER_KIND_CREDIT, alice0, owned(1, 9), 5);
	struct ledger_result result = lt_do(&s1, credit);
	LT_CODE(result, LEDGER_PAYEE_NOT_FOUND);
	cr_assert(result.flags & LEDGER_RESULT_RETURN_REMOTE);
	credit = lt_req(&s1, LEDGER_KIND_CREDIT, alice0, shop1, 5);
	credit.currency = LT_USD;
	LT_CODE(lt_do(&s1, credit), LEDGER_CURRENCY_MISMATCH);
	credit = lt_req(&s1, LEDGER_KIND_CREDIT, alice0, shop1, 0);
	LT_CODE(lt_do(&s1, credit), LEDGER_AMOUNT_ZERO);
	credit = lt_req(&s1, LEDGER_KIND_CREDIT, alice0, alice0, 5); /* not ours */
	LT_CODE(lt_do(&s1, credit), LEDGER_PAYEE_NOT_FOUND);
	credit = lt_req(&s1, LEDGER_KIND_CREDIT, alice0, shop1, 5);
	credit.flags = LEDGER_KIND_HOLD;
	LT_CODE(lt_do(&s1, credit), LEDGER_INVALID_REQUEST);
	/* CREDIT skips the client time checks: an old transfer still lands. */
	credit = lt_req(&s1, LEDGER_KIND_CREDIT, alice0, shop1, 5);
	credit.timestamp_us = 1;
	LT_CODE(lt_do(&s1, credit), LEDGER_OK);
	struct ledger_request back = lt_req(&s0, LEDGER_KIND_RETURN, 424242, 0, 5);
	back.flags = LEDGER_PAYEE_NOT_FOUND;
	LT_CODE(lt_do(&s0, back), LEDGER_PAYER_NOT_FOUND);
	/* A RETURN names the payee's refusal: none, or not a business code, is malformed. */
	back = lt_req(&s0, LEDGER_KIND_RETURN, alice0, shop1, 5);
	LT_CODE(lt_do(&s0, back), LEDGER_INVALID_REQUEST);
	back.id = s0.next_id++;
	back.flags = LEDGER_FORMAT_ERROR;
	LT_CODE(lt_do(&s0, back), LEDGER_INVALID_REQUEST);
}

Test(shards, capture_with_remote_payee)
{
	struct ledger_result hold = lt_hold(&s0, alice0, shop1, 400, 0);
	LT_CODE(hold, LEDGER_OK);
	struct ledger_request capture = lt_req(&s0, LEDGER_KIND_CAPTURE, alice0, 0, 150);
	capture.reference_id = hold.id;
	struct ledger_result captured = lt_do(&s0, capture);
	LT_CODE(captured, LEDGER_OK);
	cr_assert(captured.flags & LEDGER_RESULT_CREDIT_REMOTE);
	cr_assert_eq(transit(&s0), 150);
	struct ledger_request credit;
	cr_assert_eq(ledger_remote_credit(s0.ledger, &capture, &captured, &credit), 0);
	cr_assert_eq(credit.other_id, shop1);
	cr_assert_eq(credit.amount, 150);
	cr_assert_eq(credit.currency, LT_EUR);
	LT_CODE(lt_do(&s1, credit), LEDGER_OK);
	cr_assert_eq(lt_balance(&s1, shop1), 150);
	assert_global_double_entry();
	/* the captured credit is refundable by the merchant */
	struct ledger_request refund = lt_req(&s1, LEDGER_KIND_REFUND, shop1, alice0, 150);
	refund.reference_id = capture.id;
	LT_CODE(lt_do(&s1, refund), LEDGER_OK);
}

Test(shards, remote_credit_refuses_local_results)
{
	struct ledger_request pay = lt_req(&s1, LEDGER_KIND_PAY, bank1, bob1, 5);
	struct ledger_result result = lt_do(&s1, pay);
	LT_CODE(result, LEDGER_OK);
	cr_assert_eq(result.flags, LEDGER_RESULT_JOURNAL);
	struct ledger_request credit;
	cr_assert_eq(ledger_remote_credit(s1.ledger, &pay, &result, &credit), -22);
	cr_assert_eq(transit(&s1), 0);
}

/* Delivers a transfer's CREDIT; if refused, brings its RETURN back to the payer. */
static struct ledger_result settle(struct lt *from, struct lt *to, struct ledger_request request,
				   struct ledger_result result)
{
	struct ledger_request credit;
	cr_assert_eq(ledger_remote_credit(from->ledger, &request, &result, &credit), 0);
	struct ledger_result credited = lt_do(to, credit);
	if (credited.flags & LEDGER_RESULT_RETURN_REMOTE) {
		struct ledger_request back = credit;
		back.kind = LEDGER_KIND_RETURN;
		back.flags = (uint8_t)credited.code;
		LT_CODE(lt_do(from, back), LEDGER_OK);
	}
	return credited;
}

static void set_frozen(struct lt *t, uint64_t account, uint8_t frozen)
{
	struct ledger_request freeze = lt_req(t, LEDGER_KIND_FREEZE, account, 0, 0);
	freeze.flags = frozen;
	LT_CODE(lt_do(t, freeze), LEDGER_OK);
}

/* Issue 14, defect 1: a repeat of a returned transfer answers the refusal. */
Test(shards, repeat_of_returned_pay_answers_the_refusal)
{
	set_frozen(&s1, shop1, 1);
	struct ledger_request pay = lt_req(&s0, LEDGER_KIND_PAY, alice0, shop1, 300);
	struct ledger_result result = lt_do(&s0, pay);
	LT_CODE(result, LEDGER_OK);
	/* Before the outcome is known a repeat says so: the payee's shard decides. */
	struct ledger_result early = lt_do(&s0, pay);
	cr_assert_eq(early.flags & (LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_OUTCOME_REMOTE),
		     LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_OUTCOME_REMOTE);
	struct ledger_request lookup = lt_req(&s0, LEDGER_KIND_LOOKUP, alice0, 0, 0);
	lookup.reference_id = pay.id;
	cr_assert(lt_do(&s0, lookup).flags & LEDGER_RESULT_OUTCOME_REMOTE);
	LT_CODE(settle(&s0, &s1, pay, result), LEDGER_PAYEE_FROZEN);
	struct ledger_result repeat = lt_do(&s0, pay);
	LT_CODE(repeat, LEDGER_PAYEE_FROZEN);
	cr_assert_eq(repeat.flags, LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_JOURNAL);
	cr_assert_eq(repeat.balance, 1000);
	lookup.id = s0.next_id++;
	struct ledger_result looked = lt_do(&s0, lookup);
	LT_CODE(looked, LEDGER_PAYEE_FROZEN);
	cr_assert_eq(looked.flags, 0);
	assert_global_double_entry();
}

/* Issue 14, defect 1: a credited transfer stays OK for repeats. */
Test(shards, repeat_of_credited_pay_stays_ok)
{
	struct ledger_request pay = lt_req(&s0, LEDGER_KIND_PAY, alice0, shop1, 300);
	struct ledger_result result = lt_do(&s0, pay);
	LT_CODE(settle(&s0, &s1, pay, result), LEDGER_OK);
	struct ledger_result repeat = lt_do(&s0, pay);
	LT_CODE(repeat, LEDGER_OK);
	cr_assert(repeat.flags & LEDGER_RESULT_OUTCOME_REMOTE);
	cr_assert_eq(lt_balance(&s0, alice0), 700);
}

/* Issue 14, defect 2: a returned refund no longer counts as refunded. */
Test(shards, returned_refund_can_be_refunded_again)
{
	struct ledger_request pay = lt_req(&s0, LEDGER_KIND_PAY, alice0, shop1, 300);
	LT_CODE(settle(&s0, &s1, pay, lt_do(&s0, pay)), LEDGER_OK);
	set_frozen(&s0, alice0, 1);
	struct ledger_request refund = lt_req(&s1, LEDGER_KIND_REFUND, shop1, alice0, 300);
	refund.reference_id = pay.id;
	struct ledger_result refunded = lt_do(&s1, refund);
	LT_CODE(refunded, LEDGER_OK);
	LT_CODE(settle(&s1, &s0, refund, refunded), LEDGER_PAYEE_FROZEN);
	LT_CODE(lt_do(&s1, refund), LEDGER_PAYEE_FROZEN); /* the repeat */
	cr_assert_eq(lt_balance(&s1, shop1), 300);
	set_frozen(&s0, alice0, 0);
	refund.id = s1.next_id++;
	refunded = lt_do(&s1, refund);
	LT_CODE(refunded, LEDGER_OK);
	cr_assert_eq(refunded.amount, 300);
	LT_CODE(settle(&s1, &s0, refund, refunded), LEDGER_OK);
	cr_assert_eq(lt_balance(&s0, alice0), 1000);
	cr_assert_eq(lt_balance(&s1, shop1), 0);
	assert_global_double_entry();
}

/* Issue 14, defect 2: a returned capture leaves its hold released. */
Test(shards, returned_capture_releases_the_hold)
{
	struct ledger_result hold = lt_hold(&s0, alice0, shop1, 400, 0);
	LT_CODE(hold, LEDGER_OK);
	set_frozen(&s1, shop1, 1);
	struct ledger_request capture = lt_req(&s0, LEDGER_KIND_CAPTURE, alice0, 0, 150);
	capture.reference_id = hold.id;
	struct ledger_result captured = lt_do(&s0, capture);
	LT_CODE(captured, LEDGER_OK);
	LT_CODE(settle(&s0, &s1, capture, captured), LEDGER_PAYEE_FROZEN);
	cr_assert_eq(lt_balance(&s0, alice0), 1000);
	const struct ledger_account *account = ledger_account_get(s0.ledger, alice0);
	cr_assert_eq(account->held, 0);
	struct ledger_transfer_info info;
	cr_assert(ledger_transfer_get(s0.ledger, hold.id, &info));
	cr_assert_eq(info.state, LEDGER_TRANSFER_VOIDED);
	capture.id = s0.next_id++;
	LT_CODE(lt_do(&s0, capture), LEDGER_HOLD_ALREADY_VOIDED);
	capture.id = captured.id;
	LT_CODE(lt_do(&s0, capture), LEDGER_PAYEE_FROZEN); /* the repeat */
	assert_global_double_entry();
}

/* Issue 14, defect 5: the available balance of a funding account must fit. */
Test(shards, hold_beyond_int64_min_is_overflow)
{
	struct ledger_request pay = lt_req(&s1, LEDGER_KIND_DEPOSIT, bank1, bob1, (uint64_t)INT64_MAX);
	LT_CODE(lt_do(&s1, pay), LEDGER_OK);
	pay = lt_req(&s1, LEDGER_KIND_DEPOSIT, bank1, shop1, 1);
	LT_CODE(lt_do(&s1, pay), LEDGER_OK);
	cr_assert_eq(ledger_account_get(s1.ledger, bank1)->balance, INT64_MIN);
	struct ledger_result hold = lt_hold(&s1, bank1, bob1, 5, 0);
	LT_CODE(hold, LEDGER_AMOUNT_OVERFLOW);
	cr_assert_eq(hold.balance, INT64_MIN);
	cr_assert_eq(ledger_account_get(s1.ledger, bank1)->held, 0);
}

/* Issue 14, defect 7, as reported: DEPOSIT 1 -> 2 of INT64_MAX, then 1 -> 3
 * of 1 (2 and 3 on the other shard) put 2^63 in transit; it aborted. */
Test(shards, transit_beyond_int64_does_not_abort)
{
	uint64_t fund = owned(0, 2), carol1 = owned(1, 3);
	lt_open(&s0, fund, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&s1, carol1, 0, 0, 0, 0);
	struct ledger_request big = lt_req(&s0, LEDGER_KIND_DEPOSIT, fund, bob1, (uint64_t)INT64_MAX);
	struct ledger_result result = lt_do(&s0, big);
	LT_CODE(result, LEDGER_OK);
	struct ledger_request one = lt_req(&s0, LEDGER_KIND_DEPOSIT, fund, carol1, 1);
	struct ledger_result second = lt_do(&s0, one);
	LT_CODE(second, LEDGER_OK);
	cr_assert_eq(ledger_account_get(s0.ledger, fund)->balance, INT64_MIN);
	struct ledger_currency_total total;
	ledger_currency_totals(s0.ledger, &total, 1);
	cr_assert(total.transit == (__int128)INT64_MAX + 1);
	LT_CODE(settle(&s0, &s1, big, result), LEDGER_OK);
	LT_CODE(settle(&s0, &s1, one, second), LEDGER_OK);
	/* One more cent would take the funding account below int64. */
	one.id = s0.next_id++;
	LT_CODE(lt_do(&s0, one), LEDGER_AMOUNT_OVERFLOW);
	struct ledger_violation violation;
	cr_assert_eq(ledger_check_invariants(s0.ledger, &violation), 0, "%s", violation.text);
	cr_assert_eq(ledger_check_invariants(s1.ledger, &violation), 0, "%s", violation.text);
	assert_global_double_entry();
}

/* Issue 14, defect 7: several funding accounts push one shard's transit past
 * int64 (the sum, not any balance) without an abort. */
Test(shards, transit_sum_beyond_int64)
{
	uint64_t fund2 = owned(0, 2), fund3 = owned(0, 3);
	lt_open(&s0, fund2, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&s0, fund3, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	uint64_t to[2] = { bob1, owned(1, 4) };
	lt_open(&s1, to[1], 0, 0, 0, 0);
	uint64_t from[2] = { fund2, fund3 };
	for (int i = 0; i < 2; i++) {
		struct ledger_request deposit = lt_req(&s0, LEDGER_KIND_DEPOSIT, from[i], to[i],
						       (uint64_t)INT64_MAX);
		struct ledger_result result = lt_do(&s0, deposit);
		LT_CODE(result, LEDGER_OK);
		LT_CODE(settle(&s0, &s1, deposit, result), LEDGER_OK);
	}
	struct ledger_currency_total total;
	ledger_currency_totals(s0.ledger, &total, 1);
	cr_assert(total.transit > (__int128)INT64_MAX);
	struct ledger_violation violation;
	cr_assert_eq(ledger_check_invariants(s0.ledger, &violation), 0, "%s", violation.text);
	cr_assert_eq(ledger_check_invariants(s1.ledger, &violation), 0, "%s", violation.text);
	assert_global_double_entry();
}

/* A RETURN the payer's balance cannot take (it received nearly INT64_MAX
 * meanwhile) leaves the money in transit, but the transfer still answers the
 * payee's code: never "approved" for money that did not move. */
Test(shards, refused_return_still_answers_the_refusal)
{
	uint64_t rich = owned(0, 4);
	lt_open(&s0, rich, 0, 0, 0, 0);
	LT_CODE(lt_deposit(&s0, bank0, rich, (uint64_t)INT64_MAX - 5000), LEDGER_OK);
	set_frozen(&s1, shop1, 1);
	struct ledger_request pay = lt_req(&s0, LEDGER_KIND_PAY, rich, shop1, (uint64_t)INT64_MAX - 5000);
	struct ledger_result result = lt_do(&s0, pay);
	LT_CODE(result, LEDGER_OK);
	uint64_t bank = owned(0, 5);
	lt_open(&s0, bank, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	LT_CODE(lt_deposit(&s0, bank, rich, 10000), LEDGER_OK);
	struct ledger_request credit;
	cr_assert_eq(ledger_remote_credit(s0.ledger, &pay, &result, &credit), 0);
	struct ledger_result credited = lt_do(&s1, credit);
	LT_CODE(credited, LEDGER_PAYEE_FROZEN);
	struct ledger_request back = credit;
	back.kind = LEDGER_KIND_RETURN;
	back.flags = (uint8_t)credited.code;
	LT_CODE(lt_do(&s0, back), LEDGER_AMOUNT_OVERFLOW);
	struct ledger_result repeat = lt_do(&s0, pay);
	LT_CODE(repeat, LEDGER_PAYEE_FROZEN);
	cr_assert_eq(repeat.flags & LEDGER_RESULT_OUTCOME_REMOTE, 0);
	struct ledger_request lookup = lt_req(&s0, LEDGER_KIND_LOOKUP, rich, 0, 0);
	lookup.reference_id = pay.id;
	LT_CODE(lt_do(&s0, lookup), LEDGER_PAYEE_FROZEN);
	cr_assert_eq(transit(&s0), (int64_t)INT64_MAX - 5000, "the money is still in transit");
	assert_global_double_entry();
}
