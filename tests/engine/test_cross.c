/*
 * test_cross.c — the real daemon with 2 and 4 shards: what issue 14 found
 * wrong across shards. A refused cross-shard transfer repeats as refused
 * (before and after a crash), a returned refund can be refunded again, one id
 * is decided once in the whole switch, a cross-shard reply carries the
 * payer's decision, money in transit beyond int64 does not abort, and the
 * audit passes over all of it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define EUR LEDGER_CURRENCY_DEFAULT

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

static void set_frozen(uint64_t account, uint8_t frozen)
{
	struct ledger_request freeze = harness_request(&harness, LEDGER_KIND_FREEZE, account, 0, 0);
	freeze.flags = frozen;
	cr_assert_eq(harness_call(&harness, &freeze).code, LEDGER_OK);
}

static struct ledger_result lookup(uint64_t account, uint64_t transfer)
{
	struct ledger_request request = harness_request(&harness, LEDGER_KIND_LOOKUP, account, 0, 0);
	request.reference_id = transfer;
	return harness_call(&harness, &request);
}

static void audit_clean(void)
{
	char report[16384];
	int status = harness_audit(&harness, NULL, report, sizeof(report));
	cr_assert_eq(status, 0, "audit: %s", report);
}

/* Funding on shard 0, customer on shard 0, merchant on the last shard. */
struct cast {
	uint64_t funding, customer, merchant;
};

static struct cast open_cast(uint32_t shards)
{
	struct cast cast = { owned(0, shards, 0), owned(0, shards, 1),
			     owned(shards - 1, shards, 0) };
	harness_open(&harness, cast.funding, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, cast.customer, 0);
	harness_open(&harness, cast.merchant, LEDGER_ACCOUNT_MERCHANT);
	harness_deposit(&harness, cast.funding, cast.customer, 1000);
	return cast;
}

static void refused_pay_repeats_as_refused(uint32_t shards)
{
	harness_init(&harness, shards, NULL);
	cr_assert(harness_start(&harness, NULL));
	struct cast cast = open_cast(shards);
	set_frozen(cast.merchant, 1);
	struct ledger_request pay = harness_request(&harness, LEDGER_KIND_PAY, cast.customer,
						    cast.merchant, 300);
	struct ledger_result first = harness_call(&harness, &pay);
	cr_assert_eq(first.code, LEDGER_PAYEE_FROZEN, "code %u", first.code);
	cr_assert_eq(first.balance, 1000, "the money came back");
	cr_assert(first.flags & LEDGER_RESULT_JOURNAL, "a decision: flags 0x%x", first.flags);
	cr_assert_gt(first.sequence, 0);
	struct ledger_result repeat = harness_call(&harness, &pay);
	cr_assert_eq(repeat.code, LEDGER_PAYEE_FROZEN, "a repeat: code %u", repeat.code);
	cr_assert(repeat.flags & LEDGER_RESULT_DUPLICATE);
	cr_assert_eq(lookup(cast.customer, pay.id).code, LEDGER_PAYEE_FROZEN);
	/* An approved one repeats as approved, through the payee's shard. */
	set_frozen(cast.merchant, 0);
	struct ledger_request coffee = harness_request(&harness, LEDGER_KIND_PAY, cast.customer,
						       cast.merchant, 250);
	struct ledger_result paid = harness_call(&harness, &coffee);
	cr_assert_eq(paid.code, LEDGER_OK);
	cr_assert_eq(paid.balance, 750, "the payer's balance on the receipt");
	cr_assert(paid.flags & LEDGER_RESULT_JOURNAL);
	struct ledger_result again = harness_call(&harness, &coffee);
	cr_assert_eq(again.code, LEDGER_OK);
	cr_assert_eq(again.flags, LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_JOURNAL);
	cr_assert_eq(lookup(cast.customer, coffee.id).code, LEDGER_OK);
	/* After a crash the journal says the same. */
	harness_kill(&harness);
	cr_assert(harness_start(&harness, NULL));
	cr_assert_eq(harness_call(&harness, &pay).code, LEDGER_PAYEE_FROZEN);
	cr_assert_eq(harness_call(&harness, &coffee).code, LEDGER_OK);
	cr_assert_eq(harness_balance(&harness, cast.customer), 750);
	cr_assert_eq(harness_balance(&harness, cast.merchant), 250);
	cr_assert_eq(harness_stop(&harness), 0);
	audit_clean();
}

Test(cross, refused_pay_repeats_as_refused_2_shards, .fini = stop_all, .timeout = 120)
{
	refused_pay_repeats_as_refused(2);
}

Test(cross, refused_pay_repeats_as_refused_4_shards, .fini = stop_all, .timeout = 120)
{
	refused_pay_repeats_as_refused(4);
}

Test(cross, returned_refund_can_be_refunded, .fini = stop_all, .timeout = 120)
{
	harness_init(&harness, 2, NULL);
	cr_assert(harness_start(&harness, NULL));
	/* The merchant on shard 1 refunds a customer on shard 0. */
	struct cast cast = open_cast(2);
	struct ledger_request pay = harness_request(&harness, LEDGER_KIND_PAY, cast.customer,
						    cast.merchant, 400);
	cr_assert_eq(harness_call(&harness, &pay).code, LEDGER_OK);
	set_frozen(cast.customer, 1);
	struct ledger_request refund = harness_request(&harness, LEDGER_KIND_REFUND, cast.merchant,
						       cast.customer, 400);
	refund.reference_id = pay.id;
	cr_assert_eq(harness_call(&harness, &refund).code, LEDGER_PAYEE_FROZEN);
	set_frozen(cast.customer, 0);
	struct ledger_request second = refund;
	second.id = ++harness.next_id;
	struct ledger_result refunded = harness_call(&harness, &second);
	cr_assert_eq(refunded.code, LEDGER_OK, "code %u", refunded.code);
	cr_assert_eq(harness_balance(&harness, cast.customer), 1000);
	cr_assert_eq(harness_balance(&harness, cast.merchant), 0);
	cr_assert_eq(harness_stop(&harness), 0);
	audit_clean();
}

Test(cross, one_id_space_for_the_switch, .fini = stop_all, .timeout = 120)
{
	harness_init(&harness, 2, NULL);
	cr_assert(harness_start(&harness, NULL));
	uint64_t a = owned(0, 2, 1), b = owned(0, 2, 2), c = owned(1, 2, 1), d = owned(1, 2, 2);
	uint64_t bank0 = owned(0, 2, 0), bank1 = owned(1, 2, 0);
	harness_open(&harness, bank0, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, bank1, LEDGER_ACCOUNT_FUNDING);
	uint64_t ids[] = { a, b, c, d };
	for (int i = 0; i < 4; i++)
		harness_open(&harness, ids[i], 0);
	harness_deposit(&harness, bank0, a, 100);
	harness_deposit(&harness, bank1, c, 100);
	struct ledger_request first = harness_request(&harness, LEDGER_KIND_PAY, a, b, 10);
	cr_assert_eq(harness_call(&harness, &first).code, LEDGER_OK);
	/* The same id and timestamp from an account of the other shard. */
	struct ledger_request other = first;
	other.account_id = c;
	other.other_id = d;
	struct ledger_result reused = harness_call(&harness, &other);
	cr_assert_eq(reused.code, LEDGER_ID_REUSED, "code %u", reused.code);
	cr_assert_eq(reused.balance, 100);
	cr_assert_eq(harness_balance(&harness, c), 100, "nothing moved");
	/* A cross-shard payment reusing an id the payee's shard knows is refused too. */
	struct ledger_request on_one = harness_request(&harness, LEDGER_KIND_PAY, c, d, 5);
	cr_assert_eq(harness_call(&harness, &on_one).code, LEDGER_OK);
	struct ledger_request across = on_one;
	across.account_id = a;
	across.other_id = d;
	cr_assert_eq(harness_call(&harness, &across).code, LEDGER_ID_REUSED);
	/* In one datagram: a request the ledger does not remember (in the
	 * future) and then the same id, valid, from the same account. The
	 * second keeps the claim the first took, so the id stays the shard's. */
	struct ledger_request pair[2];
	pair[0] = harness_request(&harness, LEDGER_KIND_PAY, a, b, 1);
	pair[0].timestamp_us += 60ull * 1000000;
	pair[1] = pair[0];
	pair[1].timestamp_us -= 60ull * 1000000;
	struct ledger_result answers[2];
	cr_assert_eq(harness_call_many(&harness, pair, 2, answers), 0);
	cr_assert_eq(answers[0].code, LEDGER_TIMESTAMP_IN_FUTURE);
	cr_assert_eq(answers[1].code, LEDGER_OK, "code %u", answers[1].code);
	struct ledger_request twin = pair[1];
	twin.account_id = c;
	twin.other_id = d;
	cr_assert_eq(harness_call(&harness, &twin).code, LEDGER_ID_REUSED,
		     "an id shard 0 has seen is refused on shard 1");
	/* After a restart the claims are rebuilt from the journals. */
	harness_kill(&harness);
	cr_assert(harness_start(&harness, NULL));
	cr_assert_eq(harness_call(&harness, &other).code, LEDGER_ID_REUSED);
	cr_assert_eq(harness_call(&harness, &first).code, LEDGER_OK);
	cr_assert_eq(harness_balance(&harness, a), 89);
	cr_assert_eq(harness_balance(&harness, c), 95);
	cr_assert_eq(harness_stop(&harness), 0);
	audit_clean();
}

Test(cross, transit_beyond_int64_keeps_the_switch_up, .fini = stop_all, .timeout = 120)
{
	harness_init(&harness, 2, NULL);
	cr_assert(harness_start(&harness, NULL));
	uint64_t funding = owned(0, 2, 0), two = owned(1, 2, 0), three = owned(1, 2, 1);
	harness_open(&harness, funding, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, two, 0);
	harness_open(&harness, three, 0);
	struct ledger_request big = harness_request(&harness, LEDGER_KIND_DEPOSIT, funding, two,
						    (uint64_t)INT64_MAX);
	cr_assert_eq(harness_call(&harness, &big).code, LEDGER_OK);
	struct ledger_request one = harness_request(&harness, LEDGER_KIND_DEPOSIT, funding, three, 1);
	cr_assert_eq(harness_call(&harness, &one).code, LEDGER_OK);
	struct ledger_request more = harness_request(&harness, LEDGER_KIND_DEPOSIT, funding, three, 1);
	cr_assert_eq(harness_call(&harness, &more).code, LEDGER_AMOUNT_OVERFLOW);
	cr_assert_eq(harness_balance(&harness, two), INT64_MAX);
	cr_assert_eq(harness_balance(&harness, three), 1);
	harness_kill(&harness);
	cr_assert(harness_start(&harness, NULL), "recovery replays it");
	cr_assert_eq(harness_balance(&harness, three), 1);
	cr_assert_eq(harness_stop(&harness), 0);
	audit_clean();
}
