/* test_audit_cross.c — the audit's rules between shards (ledger/audit_cross.c).
 * Synthetic record streams, as the code before issue 14's fixes journaled
 * them, are fed to the checker directly: one test per rule and per defect
 * 1–3 of issue 14, and a clean stream. Then end to end: two ledgers (shards
 * 0 and 1 of 2) driven through cross-shard transfers into a data dir pass
 * journal_audit; a data dir whose shard 1 holds a CREDIT without its debit
 * fails it. */
#include <criterion/criterion.h>
#include <string.h>

#include "audit_cross.h"
#include "journal_internal.h"
#include "journal_test_util.h"

#define NOW0 (JT_T0 + 1000000u)

struct stream {
	struct audit_cross *cross;
	struct journal_audit_report report;
	uint64_t sequence[2];
	uint64_t now_us;
};

static struct stream stream;

/* The n-th account id (from 1000) owned by `shard` of 2. */
static uint64_t account_on(uint32_t shard, uint32_t n)
{
	for (uint64_t id = 1000;; id++)
		if (ledger_shard_of(id, 2) == shard && n-- == 0)
			return id;
}

static void stream_init(void)
{
	memset(&stream, 0, sizeof(stream));
	struct ledger_config config;
	jt_config(&config);
	stream.cross = audit_cross_create(&config, 2, &stream.report);
	cr_assert_not_null(stream.cross);
	stream.now_us = NOW0;
}

static void stream_fini(void)
{
	audit_cross_destroy(stream.cross);
}

static struct ledger_request request(uint8_t kind, uint64_t id, uint64_t account, uint64_t other,
				     uint64_t amount)
{
	return (struct ledger_request){.id = id, .timestamp_us = NOW0, .account_id = account,
		.other_id = other, .amount = amount, .currency = JT_EUR, .kind = kind};
}

/* Journals one decision of `shard` (1 ms after the previous one). */
static void note(uint32_t shard, struct ledger_request request, uint16_t code, uint16_t flags)
{
	struct journal_record record = {.request = request, .now_us = stream.now_us += 1000,
		.sequence = ++stream.sequence[shard], .code = code,
		.flags = (uint16_t)(flags | LEDGER_RESULT_JOURNAL)};
	bool in_window = ledger_kind_remembered(request.kind) && !(flags & LEDGER_RESULT_DUPLICATE);
	cr_assert_eq(audit_cross_note(stream.cross, shard, &record, in_window), 0);
}

static void evict(uint32_t shard, uint64_t id, uint8_t kind)
{
	struct ledger_transfer_info info = {.id = id, .timestamp_us = NOW0, .kind = kind};
	audit_cross_evict(stream.cross, shard, &info, stream.now_us += 1000,
			  stream.sequence[shard]);
}

/* The CREDIT the payee's shard journals for a debit. */
static struct ledger_request credit_of(struct ledger_request debit, uint64_t payee,
				       uint64_t amount)
{
	struct ledger_request credit = request(LEDGER_KIND_CREDIT, debit.id, debit.account_id, payee,
					       amount);
	credit.flags = debit.kind;
	if (debit.kind == LEDGER_KIND_REFUND || debit.kind == LEDGER_KIND_CAPTURE)
		credit.reference_id = debit.reference_id;
	return credit;
}

static struct ledger_request return_of(struct ledger_request credit, uint16_t code)
{
	credit.kind = LEDGER_KIND_RETURN;
	credit.flags = (uint8_t)code;
	return credit;
}

static void finish(void)
{
	cr_assert_eq(audit_cross_finish(stream.cross), 0);
}

static void assert_violation(const char *text)
{
	cr_assert_gt(stream.report.violations, 0, "expected a violation saying \"%s\"", text);
	cr_assert(strstr(stream.report.first_violation, text), "\"%s\" lacks \"%s\"",
		  stream.report.first_violation, text);
}

static void assert_clean(void)
{
	cr_assert_eq(stream.report.violations, 0, "%s", stream.report.first_violation);
}

#define REMOTE (LEDGER_RESULT_CREDIT_REMOTE)
#define REPEAT_OPEN (LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_OUTCOME_REMOTE)

TestSuite(audit_cross, .init = stream_init, .fini = stream_fini);

Test(audit_cross, clean_stream_passes)
{
	uint64_t a = account_on(0, 0), b = account_on(0, 1), m = account_on(1, 0), z = account_on(1, 1);
	struct ledger_request paid = request(LEDGER_KIND_PAY, 10, a, m, 500);
	struct ledger_request refused = request(LEDGER_KIND_PAY, 11, a, z, 300);
	struct ledger_request local = request(LEDGER_KIND_PAY, 12, a, b, 100);
	note(0, paid, LEDGER_OK, REMOTE);
	note(0, refused, LEDGER_OK, REMOTE);
	note(0, local, LEDGER_OK, 0);
	note(0, paid, LEDGER_OK, REPEAT_OPEN);
	note(0, refused, LEDGER_OK, REPEAT_OPEN);
	note(0, return_of(credit_of(refused, z, 300), LEDGER_PAYEE_FROZEN), LEDGER_OK, 0);
	note(0, refused, LEDGER_PAYEE_FROZEN, LEDGER_RESULT_DUPLICATE);
	note(1, credit_of(paid, m, 500), LEDGER_OK, 0);
	note(1, credit_of(paid, m, 500), LEDGER_OK, LEDGER_RESULT_DUPLICATE); /* re-sent */
	note(1, credit_of(refused, z, 300), LEDGER_PAYEE_FROZEN, LEDGER_RESULT_RETURN_REMOTE);
	finish();
	assert_clean();
	cr_assert_eq(stream.report.cross_credits, 2);
	cr_assert_eq(stream.report.cross_returns, 1);
	cr_assert_eq(stream.report.owed_credits, 0);
	cr_assert_eq(stream.report.owed_returns, 0);
	cr_assert_eq(stream.report.ids_on_two_shards, 0);
}

Test(audit_cross, money_still_owed_is_counted_not_a_violation)
{
	uint64_t a = account_on(0, 0), m = account_on(1, 0);
	struct ledger_request uncredited = request(LEDGER_KIND_PAY, 20, a, m, 500);
	struct ledger_request unreturned = request(LEDGER_KIND_PAY, 21, a, m, 700);
	note(0, uncredited, LEDGER_OK, REMOTE);
	note(0, unreturned, LEDGER_OK, REMOTE);
	note(1, credit_of(unreturned, m, 700), LEDGER_PAYEE_CLOSED, LEDGER_RESULT_RETURN_REMOTE);
	finish();
	assert_clean();
	cr_assert_eq(stream.report.owed_credits, 1);
	cr_assert_eq(stream.report.owed_returns, 1);
}

Test(audit_cross, rule1_credit_without_a_debit)
{
	uint64_t a = account_on(0, 0), m = account_on(1, 0);
	note(1, credit_of(request(LEDGER_KIND_PAY, 30, a, m, 500), m, 500), LEDGER_OK, 0);
	finish();
	assert_violation("credit of id 30 without a debit on shard 0");
	cr_assert(strstr(stream.report.first_violation, "shard 1: sequence 1"));
}

Test(audit_cross, rule1_credit_of_other_amount_than_its_debit)
{
	uint64_t a = account_on(0, 0), m = account_on(1, 0);
	struct ledger_request paid = request(LEDGER_KIND_PAY, 31, a, m, 500);
	note(0, paid, LEDGER_OK, REMOTE);
	note(1, credit_of(paid, m, 5000), LEDGER_OK, 0);
	finish();
	assert_violation("credit of id 31 without a debit");
}

Test(audit_cross, rule1_credited_twice)
{
	uint64_t a = account_on(0, 0), m = account_on(1, 0);
	struct ledger_request paid = request(LEDGER_KIND_PAY, 32, a, m, 500);
	note(0, paid, LEDGER_OK, REMOTE);
	note(1, credit_of(paid, m, 500), LEDGER_OK, 0);
	note(1, credit_of(paid, m, 500), LEDGER_OK, 0); /* a re-send not recognised */
	finish();
	assert_violation("id 32 credited (money minted) twice");
}

Test(audit_cross, rule1_returned_although_credited)
{
	uint64_t a = account_on(0, 0), m = account_on(1, 0);
	struct ledger_request paid = request(LEDGER_KIND_PAY, 33, a, m, 500);
	note(0, paid, LEDGER_OK, REMOTE);
	note(0, return_of(credit_of(paid, m, 500), LEDGER_PAYEE_FROZEN), LEDGER_OK, 0);
	note(1, credit_of(paid, m, 500), LEDGER_OK, 0);
	finish();
	assert_violation("id 33 returned although credited");
}

Test(audit_cross, rule1_return_code_differs)
{
	uint64_t a = account_on(0, 0), m = account_on(1, 0);
	struct ledger_request paid = request(LEDGER_KIND_PAY, 34, a, m, 500);
	note(0, paid, LEDGER_OK, REMOTE);
	note(0, return_of(credit_of(paid, m, 500), LEDGER_PAYEE_CLOSED), LEDGER_OK, 0);
	note(1, credit_of(paid, m, 500), LEDGER_PAYEE_FROZEN, LEDGER_RESULT_RETURN_REMOTE);
	finish();
	assert_violation("code differs");
}

/* Issue 14 defect 1: after the RETURN, a repeat answered OK (DUPLICATE, no
 * OUTCOME_REMOTE). */
Test(audit_cross, defect1_repeat_answers_ok_after_the_return)
{
	uint64_t a = account_on(0, 0), z = account_on(1, 1);
	struct ledger_request refused = request(LEDGER_KIND_PAY, 40, a, z, 300);
	note(0, refused, LEDGER_OK, REMOTE);
	note(0, return_of(credit_of(refused, z, 300), LEDGER_PAYEE_FROZEN), LEDGER_OK, 0);
	note(0, refused, LEDGER_OK, LEDGER_RESULT_DUPLICATE);
	note(1, credit_of(refused, z, 300), LEDGER_PAYEE_FROZEN, LEDGER_RESULT_RETURN_REMOTE);
	finish();
	assert_violation("repeat of id 40 answered OK although its credit was returned with"
			 " PAYEE_FROZEN");
}

Test(audit_cross, rule2_repeat_final_before_the_outcome_is_known)
{
	uint64_t a = account_on(0, 0), m = account_on(1, 0);
	struct ledger_request paid = request(LEDGER_KIND_PAY, 41, a, m, 300);
	note(0, paid, LEDGER_OK, REMOTE);
	note(0, paid, LEDGER_OK, LEDGER_RESULT_DUPLICATE);
	note(1, credit_of(paid, m, 300), LEDGER_OK, 0);
	finish();
	assert_violation("repeat of id 41 answered OK as final before any RETURN");
}

/* Issue 14 defect 2: a returned refund still counted as refunded. */
Test(audit_cross, defect2_returned_refund_blocks_the_real_one)
{
	uint64_t customer = account_on(0, 0), merchant = account_on(1, 0);
	struct ledger_request paid = request(LEDGER_KIND_PAY, 50, customer, merchant, 1000);
	struct ledger_request refund = request(LEDGER_KIND_REFUND, 51, merchant, customer, 1000);
	refund.reference_id = 50;
	struct ledger_request again = refund;
	again.id = 52;
	struct ledger_request refund_credit = credit_of(refund, customer, 1000);
	note(0, paid, LEDGER_OK, REMOTE);
	note(0, refund_credit, LEDGER_PAYEE_FROZEN, LEDGER_RESULT_RETURN_REMOTE);
	note(1, credit_of(paid, merchant, 1000), LEDGER_OK, 0);
	note(1, refund, LEDGER_OK, REMOTE);
	note(1, return_of(refund_credit, LEDGER_PAYEE_FROZEN), LEDGER_OK, 0);
	note(1, again, LEDGER_REFUND_EXCEEDS_PAYMENT, 0);
	finish();
	assert_violation("refund 52 refused REFUND_EXCEEDS_PAYMENT although 0 of payment 50");
}

Test(audit_cross, rule4_refunds_beyond_the_payment)
{
	uint64_t customer = account_on(1, 1), merchant = account_on(1, 0);
	struct ledger_request paid = request(LEDGER_KIND_PAY, 53, customer, merchant, 1000);
	struct ledger_request refund = request(LEDGER_KIND_REFUND, 54, merchant, customer, 600);
	refund.reference_id = 53;
	struct ledger_request again = refund;
	again.id = 55;
	note(1, paid, LEDGER_OK, 0);
	note(1, refund, LEDGER_OK, 0);
	note(1, again, LEDGER_OK, 0);
	finish();
	assert_violation("refund 55 takes the refunds of payment 53 beyond its amount 1000");
}

/* Issue 14 defect 2, holds: a returned CAPTURE left its hold captured. */
static void capture_returned(uint16_t second_code)
{
	uint64_t holder = account_on(0, 0), merchant = account_on(1, 0);
	struct ledger_request hold = request(LEDGER_KIND_HOLD, 60, holder, merchant, 500);
	struct ledger_request capture = request(LEDGER_KIND_CAPTURE, 61, holder, 0, 0);
	capture.reference_id = 60;
	struct ledger_request again = capture;
	again.id = 62;
	struct ledger_request credit = credit_of(capture, merchant, 500);
	note(0, hold, LEDGER_OK, 0);
	note(0, capture, LEDGER_OK, REMOTE);
	note(0, return_of(credit, LEDGER_PAYEE_FROZEN), LEDGER_OK, 0);
	note(0, again, second_code, 0);
	note(1, credit, LEDGER_PAYEE_FROZEN, LEDGER_RESULT_RETURN_REMOTE);
	finish();
}

Test(audit_cross, defect2_returned_capture_leaves_the_hold_captured)
{
	capture_returned(LEDGER_HOLD_ALREADY_CAPTURED);
	assert_violation("capture 62 of hold 60 answered HOLD_ALREADY_CAPTURED although its"
			 " capture was returned");
}

Test(audit_cross, returned_capture_answered_as_voided_passes)
{
	capture_returned(LEDGER_HOLD_ALREADY_VOIDED);
	assert_clean();
	cr_assert_eq(stream.report.cross_returns, 1);
}

/* Issue 14 defect 3: one id approved as PAY a -> b on shard 0 and PAY c -> d
 * on shard 1, both in their windows. */
Test(audit_cross, defect3_one_id_decided_on_two_shards)
{
	uint64_t a = account_on(0, 0), b = account_on(0, 1), c = account_on(1, 0), d = account_on(1, 1);
	note(0, request(LEDGER_KIND_PAY, 70, a, b, 100), LEDGER_OK, 0);
	note(1, request(LEDGER_KIND_PAY, 70, c, d, 100), LEDGER_OK, 0);
	finish();
	assert_violation("id 70 decided on shards 0 and 1");
	cr_assert_eq(stream.report.ids_on_two_shards, 1);
}

Test(audit_cross, rule3_id_again_after_the_other_shard_evicted_it)
{
	uint64_t a = account_on(0, 0), b = account_on(0, 1), c = account_on(1, 0), d = account_on(1, 1);
	note(0, request(LEDGER_KIND_PAY, 71, a, b, 100), LEDGER_OK, 0);
	evict(0, 71, LEDGER_KIND_PAY);
	note(0, request(LEDGER_KIND_PAY, 72, a, b, 100), LEDGER_OK, 0);
	note(1, request(LEDGER_KIND_PAY, 71, c, d, 100), LEDGER_OK, 0);
	/* Refused before the window: not remembered, so no interval. */
	note(1, request(LEDGER_KIND_PAY, 72, c, d, 100), LEDGER_ID_REUSED, 0);
	finish();
	assert_clean();
}

/* ---- end to end: two ledgers, the journal writer, journal_audit ---------- */

struct switch2 {
	char dir[256];
	struct ledger *ledgers[2];
	struct journal_writer *writers[2];
	uint64_t now_us;
	uint64_t next_id;
};

static void switch_open(struct switch2 *sw)
{
	jt_dir_make(sw->dir);
	jt_format(sw->dir, 2);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	for (uint32_t shard = 0; shard < 2; shard++) {
		struct journal_error error = {0};
		sw->writers[shard] = journal_writer_open(sw->dir, shard, &options, &error);
		cr_assert_not_null(sw->writers[shard], "%s", error.text);
		sw->ledgers[shard] = jt_ledger(shard, 2);
	}
	sw->now_us = NOW0;
	sw->next_id = 5000;
}

static void switch_close(struct switch2 *sw)
{
	for (uint32_t shard = 0; shard < 2; shard++) {
		cr_assert_eq(journal_writer_close(sw->writers[shard]), 0);
		ledger_destroy(sw->ledgers[shard]);
	}
}

static struct ledger_result switch_apply(struct switch2 *sw, uint32_t shard,
					 const struct ledger_request *request)
{
	struct ledger_result result;
	cr_assert_eq(jt_apply(sw->ledgers[shard], sw->writers[shard], sw->now_us += 1000, request,
			      &result, 1), 0);
	return result;
}

/* What the engine does: decide on the payer's shard, CREDIT on the payee's,
 * RETURN a refusal. Returns the payer's final code. */
static uint16_t switch_send(struct switch2 *sw, struct ledger_request request)
{
	uint32_t payer_shard = ledger_shard_of(request.account_id, 2);
	struct ledger_result result = switch_apply(sw, payer_shard, &request);
	if (!(result.flags & LEDGER_RESULT_CREDIT_REMOTE) || (result.flags & LEDGER_RESULT_DUPLICATE))
		return result.code;
	struct ledger_request credit;
	cr_assert_eq(ledger_remote_credit(sw->ledgers[payer_shard], &request, &result, &credit), 0);
	struct ledger_result credited = switch_apply(sw, 1 - payer_shard, &credit);
	if (!(credited.flags & LEDGER_RESULT_RETURN_REMOTE))
		return credited.code;
	struct ledger_request returned = credit;
	returned.kind = LEDGER_KIND_RETURN;
	returned.flags = (uint8_t)credited.code;
	cr_assert_eq(switch_apply(sw, payer_shard, &returned).code, LEDGER_OK);
	return credited.code;
}

static struct ledger_request make(struct switch2 *sw, uint8_t kind, uint64_t account,
				  uint64_t other, uint64_t amount)
{
	struct ledger_request made = request(kind, ++sw->next_id, account, other, amount);
	made.timestamp_us = sw->now_us;
	return made;
}

static void open_account(struct switch2 *sw, uint64_t id, uint8_t flags)
{
	struct ledger_request open = make(sw, LEDGER_KIND_OPEN, id, 0, 0);
	open.flags = flags;
	cr_assert_eq(switch_send(sw, open), LEDGER_OK);
}

Test(audit_cross_end_to_end, cross_shard_transfers_pass_a_forged_credit_fails)
{
	struct switch2 sw;
	switch_open(&sw);
	uint64_t funding = account_on(0, 0), customer = account_on(0, 1);
	uint64_t merchant = account_on(1, 0), frozen = account_on(1, 1);
	open_account(&sw, funding, LEDGER_ACCOUNT_FUNDING);
	open_account(&sw, customer, 0);
	open_account(&sw, merchant, LEDGER_ACCOUNT_MERCHANT);
	open_account(&sw, frozen, LEDGER_ACCOUNT_MERCHANT);
	struct ledger_request freeze = make(&sw, LEDGER_KIND_FREEZE, frozen, 0, 0);
	freeze.flags = 1;
	cr_assert_eq(switch_send(&sw, freeze), LEDGER_OK);
	cr_assert_eq(switch_send(&sw, make(&sw, LEDGER_KIND_DEPOSIT, funding, customer, 10000)), 0);
	cr_assert_eq(switch_send(&sw, make(&sw, LEDGER_KIND_DEPOSIT, funding, merchant, 1000)), 0);
	struct ledger_request paid = make(&sw, LEDGER_KIND_PAY, customer, merchant, 500);
	cr_assert_eq(switch_send(&sw, paid), LEDGER_OK);
	struct ledger_request refused = make(&sw, LEDGER_KIND_PAY, customer, frozen, 300);
	cr_assert_eq(switch_send(&sw, refused), LEDGER_PAYEE_FROZEN);
	cr_assert_eq(switch_send(&sw, refused), LEDGER_PAYEE_FROZEN); /* a repeat */
	cr_assert_eq(switch_send(&sw, paid), LEDGER_OK);              /* outcome remote */
	struct ledger_request refund = make(&sw, LEDGER_KIND_REFUND, merchant, customer, 200);
	refund.reference_id = paid.id;
	cr_assert_eq(switch_send(&sw, refund), LEDGER_OK);
	struct ledger_request hold = make(&sw, LEDGER_KIND_HOLD, customer, merchant, 400);
	cr_assert_eq(switch_send(&sw, hold), LEDGER_OK);
	struct ledger_request capture = make(&sw, LEDGER_KIND_CAPTURE, customer, 0, 0);
	capture.reference_id = hold.id;
	cr_assert_eq(switch_send(&sw, capture), LEDGER_OK);
	switch_close(&sw);

	struct journal_audit_options options = {0};
	struct journal_audit_report report;
	cr_assert_eq(journal_audit(sw.dir, &options, &report), 0, "%s", report.first_violation);
	cr_assert_eq(report.cross_credits, 5); /* deposit, pay, refused pay, refund, capture */
	cr_assert_eq(report.cross_returns, 1);
	cr_assert_eq(report.owed_credits, 0);
	cr_assert_eq(report.owed_returns, 0);
	cr_assert_eq(report.ids_on_two_shards, 0);
	jt_dir_remove(sw.dir);

	/* Shard 1 credits the merchant with money shard 0 never debited. */
	switch_open(&sw);
	open_account(&sw, customer, 0);
	open_account(&sw, merchant, LEDGER_ACCOUNT_MERCHANT);
	struct ledger_request forged = make(&sw, LEDGER_KIND_CREDIT, customer, merchant, 700);
	forged.flags = LEDGER_KIND_PAY;
	cr_assert_eq(switch_apply(&sw, 1, &forged).code, LEDGER_OK);
	switch_close(&sw);
	cr_assert_eq(journal_audit(sw.dir, &options, &report), 1);
	cr_assert(strstr(report.first_violation, "without a debit on shard 0"), "%s",
		  report.first_violation);
	jt_dir_remove(sw.dir);
}

/* A window of 16 entries: evictions land inside the audit's replay chunks
 * and holds leave the window while still pending; random cross-shard
 * traffic with repeats, refunds, captures and refusals still audits clean. */
Test(audit_cross_end_to_end, random_traffic_through_a_tiny_window)
{
	uint64_t saved = jt_transfers_max;
	jt_transfers_max = 16;
	struct switch2 sw;
	switch_open(&sw);
	uint64_t funding = account_on(0, 0), customers[8], merchants[4];
	open_account(&sw, funding, LEDGER_ACCOUNT_FUNDING);
	for (uint32_t i = 0; i < 8; i++) {
		customers[i] = account_on(i % 2, 1 + i / 2);
		open_account(&sw, customers[i], 0);
		switch_send(&sw, make(&sw, LEDGER_KIND_DEPOSIT, funding, customers[i], 100000));
	}
	for (uint32_t i = 0; i < 4; i++) {
		merchants[i] = account_on(i % 2, 10 + i / 2);
		open_account(&sw, merchants[i], LEDGER_ACCOUNT_MERCHANT);
	}
	struct ledger_request freeze = make(&sw, LEDGER_KIND_FREEZE, merchants[3], 0, 0);
	freeze.flags = 1;
	switch_send(&sw, freeze);
	struct ledger_request recent[8] = {0};
	uint64_t rng = 7;
	for (uint32_t step = 0; step < 600; step++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t pick = (uint32_t)(rng >> 33);
		uint64_t customer = customers[pick % 8], merchant = merchants[(pick >> 3) % 4];
		struct ledger_request *old = &recent[(pick >> 5) % 8];
		struct ledger_request next;
		switch ((pick >> 8) % 5) {
		case 0:
			next = make(&sw, LEDGER_KIND_HOLD, customer, merchant, 50 + pick % 100);
			break;
		case 1:
			next = make(&sw, LEDGER_KIND_CAPTURE, old->account_id, 0, 0);
			next.reference_id = old->id;
			break;
		case 2:
			next = make(&sw, LEDGER_KIND_REFUND, old->other_id, old->account_id, 10);
			next.reference_id = old->id;
			break;
		case 3:
			next = *old; /* a repeat, maybe of an evicted transfer */
			break;
		default:
			next = make(&sw, LEDGER_KIND_PAY, customer, merchant, 10 + pick % 90);
		}
		if (next.id == 0)
			continue;
		switch_send(&sw, next);
		if (next.kind == LEDGER_KIND_PAY || next.kind == LEDGER_KIND_HOLD)
			*old = next;
	}
	switch_close(&sw);
	jt_transfers_max = saved;
	struct journal_audit_options options = {0};
	struct journal_audit_report report;
	cr_assert_eq(journal_audit(sw.dir, &options, &report), 0, "%s", report.first_violation);
	cr_assert_gt(report.cross_credits, 100);
	cr_assert_gt(report.cross_returns, 10);
	cr_assert_eq(report.owed_credits + report.owed_returns, 0);
	jt_dir_remove(sw.dir);
}
