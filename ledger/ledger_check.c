/*
 * ledger_check.c — invariant checks (O(accounts + holds log holds) scans,
 * for tests after every step and for the audit) and per-currency totals.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ledger_internal.h"

__attribute__((format(printf, 2, 3)))
static int ledger_violation(struct ledger_violation *report, const char *format, ...)
{
	if (report != NULL) {
		va_list arguments;
		va_start(arguments, format);
		vsnprintf(report->text, sizeof(report->text), format, arguments);
		va_end(arguments);
	}
	return -1;
}

int ledger_check_double_entry(const struct ledger *ledger, struct ledger_violation *report)
{
	__int128 sums[LEDGER_CURRENCIES_MAX] = { 0 };
	for (uint64_t slot = 0; slot < ledger->account_slots; slot++) {
		const struct ledger_account *account = &ledger->accounts[slot];
		if (account->id == 0)
			continue;
		int index = ledger_currency_slot(ledger, account->currency);
		if (index < 0)
			return ledger_violation(report, "account %" PRIu64 " has unregistered currency %u",
						account->id, account->currency);
		sums[index] += account->balance;
	}
	for (uint32_t index = 0; index < ledger->currency_count; index++) {
		__int128 total = sums[index] + ledger->currencies[index].transit;
		if (total != 0) {
			char balances[48], transit[48];
			return ledger_violation(report,
				"currency %u: balances %s + transit %s != 0 (double entry broken)",
				ledger->currencies[index].currency,
				ledger_format_i128(sums[index], balances, sizeof(balances)),
				ledger_format_i128(ledger->currencies[index].transit, transit,
						   sizeof(transit)));
		}
	}
	return 0;
}

int ledger_check_floors(const struct ledger *ledger, struct ledger_violation *report)
{
	for (uint64_t slot = 0; slot < ledger->account_slots; slot++) {
		const struct ledger_account *account = &ledger->accounts[slot];
		uint16_t tag = ledger->account_tags[slot];
		if (account->id == 0) {
			if (tag != 0)
				return ledger_violation(report, "empty account slot %" PRIu64 " has a tag", slot);
			continue;
		}
		if (tag != ledger_account_tag(ledger_hash_id(account->id)))
			return ledger_violation(report, "account %" PRIu64 " has a wrong tag", account->id);
		if (account->held > (uint64_t)INT64_MAX)
			return ledger_violation(report, "account %" PRIu64 " held %" PRIu64 " is negative",
						account->id, account->held);
		__int128 available = (__int128)account->balance - account->held;
		if (!(account->flags & LEDGER_ACCOUNT_FUNDING) &&
		    available < -(__int128)account->limit_overdraft)
			return ledger_violation(report,
				"account %" PRIu64 " below its floor: balance %" PRId64 " held %" PRIu64
				" overdraft %" PRIu64, account->id, account->balance, account->held,
				account->limit_overdraft);
		if ((account->flags & LEDGER_ACCOUNT_CLOSED) && (account->balance != 0 || account->held != 0))
			return ledger_violation(report, "closed account %" PRIu64 " has balance %" PRId64
						" held %" PRIu64, account->id, account->balance, account->held);
	}
	return 0;
}

struct ledger_hold_sum {
	uint64_t account_slot;
	uint64_t amount;
};

static int ledger_hold_sum_compare(const void *left, const void *right)
{
	const struct ledger_hold_sum *a = left, *b = right;
	return a->account_slot < b->account_slot ? -1 : a->account_slot > b->account_slot;
}

/* The table and the heap agree: count, back-pointers, heap order, accounts. */
static int ledger_check_hold_table(const struct ledger *ledger, struct ledger_hold_sum *sums,
				   struct ledger_violation *report)
{
	uint64_t found = 0;
	for (uint64_t slot = 0; slot <= ledger->hold_mask; slot++) {
		const struct ledger_hold *hold = &ledger->holds[slot];
		if (hold->id == 0)
			continue;
		if (found == ledger->hold_count)
			return ledger_violation(report, "more holds in the table than hold_count %" PRIu64,
						ledger->hold_count);
		if (hold->heap_index >= ledger->hold_count || ledger->heap[hold->heap_index].slot != slot ||
		    ledger->heap[hold->heap_index].expires_at_us != hold->expires_at_us)
			return ledger_violation(report, "hold %" PRIu64 " and the expiry heap disagree", hold->id);
		const struct ledger_account *account = ledger_account_get(ledger, hold->account_id);
		if (account == NULL || account->held < hold->amount)
			return ledger_violation(report, "hold %" PRIu64 " of %" PRIu64 " exceeds what account %"
						PRIu64 " holds", hold->id, hold->amount, hold->account_id);
		sums[found].account_slot = (uint64_t)(account - ledger->accounts);
		sums[found].amount = hold->amount;
		found++;
	}
	if (found != ledger->hold_count)
		return ledger_violation(report, "hold table has %" PRIu64 " holds, hold_count %" PRIu64,
					found, ledger->hold_count);
	for (uint64_t index = 1; index < ledger->hold_count; index++)
		if (ledger->heap[(index - 1) / 2].expires_at_us > ledger->heap[index].expires_at_us)
			return ledger_violation(report, "expiry heap out of order at %" PRIu64, index);
	return 0;
}

int ledger_check_holds(const struct ledger *ledger, struct ledger_violation *report)
{
	struct ledger_hold_sum *sums = calloc(ledger->hold_count + 1, sizeof(*sums));
	if (sums == NULL)
		return ledger_violation(report, "out of memory checking holds");
	int status = ledger_check_hold_table(ledger, sums, report);
	if (status == 0) {
		qsort(sums, ledger->hold_count, sizeof(*sums), ledger_hold_sum_compare);
		uint64_t cursor = 0;
		for (uint64_t slot = 0; slot < ledger->account_slots && status == 0; slot++) {
			const struct ledger_account *account = &ledger->accounts[slot];
			uint64_t total = 0;
			while (cursor < ledger->hold_count && sums[cursor].account_slot == slot)
				total += sums[cursor++].amount;
			if (account->id != 0 && total != account->held)
				status = ledger_violation(report, "account %" PRIu64 " held %" PRIu64
							  " != its pending holds %" PRIu64,
							  account->id, account->held, total);
		}
	}
	free(sums);
	return status;
}

int ledger_check_invariants(const struct ledger *ledger, struct ledger_violation *report)
{
	if (ledger_check_double_entry(ledger, report) != 0)
		return -1;
	if (ledger_check_floors(ledger, report) != 0)
		return -1;
	return ledger_check_holds(ledger, report);
}

uint32_t ledger_currency_totals(const struct ledger *ledger,
				struct ledger_currency_total *totals, uint32_t max)
{
	assert(max == 0 || totals != NULL);
	uint32_t count = ledger->currency_count < max ? ledger->currency_count : max;
	for (uint32_t index = 0; index < count; index++) {
		totals[index].currency = ledger->currencies[index].currency;
		totals[index].balance_sum = 0;
		totals[index].transit = ledger->currencies[index].transit;
		totals[index].accounts = 0;
	}
	for (uint64_t slot = 0; slot < ledger->account_slots && count > 0; slot++) {
		const struct ledger_account *account = &ledger->accounts[slot];
		if (account->id == 0)
			continue;
		int index = ledger_currency_slot(ledger, account->currency);
		if (index < 0 || (uint32_t)index >= count)
			continue;
		totals[index].balance_sum += account->balance; /* exact in 128 bits */
		totals[index].accounts++;
	}
	return ledger->currency_count;
}

/* The deduplication window: every index slot points at a live ring entry
 * whose id hashes to the slot's fingerprint and lives at or after its home
 * bucket, each bucket's overflow count equals the entries that passed it,
 * and the counts agree. */
int ledger_check_window(const struct ledger *ledger, struct ledger_violation *report)
{
	uint64_t indexed = 0;
	uint64_t capacity = ledger->config.transfers_max;
	uint64_t oldest = (ledger->ring_next + capacity - ledger->ring_count) % capacity;
	uint64_t buckets = ledger->window_mask + 1;
	uint32_t *passed = calloc(buckets, sizeof(uint32_t));
	if (passed == NULL)
		return ledger_violation(report, "no memory to check the window");
	int status = 0;
	for (uint64_t index = 0; index < buckets && status == 0; index++) {
		for (uint32_t i = 0; i < LEDGER_WINDOW_BUCKET_SLOTS && status == 0; i++) {
			uint64_t value = ledger->window_index[index].slot[i];
			if (value == 0)
				continue;
			indexed++;
			uint64_t position = (uint32_t)value - 1;
			uint64_t age = (position + capacity - oldest) % capacity;
			if (position >= capacity || age >= ledger->ring_count) {
				status = ledger_violation(report, "window bucket %" PRIu64 " points outside the ring", index);
				break;
			}
			uint64_t hash = ledger_hash_id(ledger->ring[position].id);
			if ((hash >> 32) != (value >> 32)) {
				status = ledger_violation(report, "window bucket %" PRIu64 " has a stale fingerprint", index);
				break;
			}
			for (uint64_t home = hash & ledger->window_mask; home != index;
			     home = (home + 1) & ledger->window_mask)
				passed[home]++;
		}
	}
	for (uint64_t index = 0; index < buckets && status == 0; index++)
		if (passed[index] != ledger->window_index[index].overflow)
			status = ledger_violation(report, "window bucket %" PRIu64 " overflow %u, expected %u",
						  index, ledger->window_index[index].overflow, passed[index]);
	free(passed);
	if (status == 0 && indexed != ledger->ring_count)
		status = ledger_violation(report, "window index holds %" PRIu64 " entries, ring %" PRIu64,
					  indexed, ledger->ring_count);
	return status;
}

#if LEDGER_DEBUG_ASSERTS
/* ---- the delta of one decision (debug builds) ----------------------------- */
static const struct ledger_account *ledger_delta_find(const struct ledger *ledger, uint64_t id)
{
	if (id == 0 || ledger_is_remote(ledger, id))
		return NULL;
	return ledger_account_find(ledger, id, ledger_hash_id(id));
}

void ledger_delta_before(const struct ledger *ledger, const struct ledger_op *op,
			 struct ledger_delta *delta)
{
	const struct ledger_request *request = op->request;
	memset(delta, 0, sizeof(*delta));
	delta->account = ledger_account_find(ledger, request->account_id, op->account_hash);
	uint64_t payee_id = request->other_id;
	if (request->kind == LEDGER_KIND_CAPTURE || request->kind == LEDGER_KIND_VOID) {
		const struct ledger_hold *hold = ledger_hold_find(ledger, request->reference_id);
		if (hold != NULL && hold->account_id == request->account_id)
			delta->hold = *hold;
		payee_id = delta->hold.other_id; /* 0 when there is no hold */
	}
	if (request->kind != LEDGER_KIND_RETURN)
		delta->payee = ledger_delta_find(ledger, payee_id);
	if (delta->payee != NULL && delta->payee == delta->account) {
		delta->payee = NULL;
		delta->payee_is_account = true;
	}
	if (delta->account != NULL) {
		delta->account_before = *delta->account;
		delta->spent_before = ledger_spent_today(ledger, delta->account);
	}
	if (delta->payee != NULL)
		delta->payee_before = *delta->payee;
	delta->sequence = ledger->sequence;
	delta->account_count = ledger->account_count;
	delta->hold_count = ledger->hold_count;
	delta->ring_count = ledger->ring_count;
	delta->currency_count = ledger->currency_count;
	for (uint32_t index = 0; index < ledger->currency_count; index++)
		delta->transit[index] = ledger->currencies[index].transit;
}

/* What the rules say the decision moved: to the account (balance, held),
 * to the payee and to transit in `currency`, and the change in holds. */
struct ledger_delta_expected {
	__int128 account;
	__int128 held;
	__int128 payee;
	__int128 transit;
	int64_t holds;
	uint64_t accounts;
	uint16_t currency;
};

static void ledger_delta_outflow(const struct ledger *ledger, uint64_t payee_id, uint64_t amount,
				 struct ledger_delta_expected *expected)
{
	expected->account -= amount;
	if (ledger_is_remote(ledger, payee_id))
		expected->transit += amount;
	else
		expected->payee += amount;
}

static void ledger_delta_expect(const struct ledger *ledger, const struct ledger_op *op,
				const struct ledger_delta *delta,
				struct ledger_delta_expected *expected)
{
	const struct ledger_request *request = op->request;
	uint64_t amount = request->amount;
	memset(expected, 0, sizeof(*expected));
	expected->currency = request->currency;
	bool journaled = request->kind != LEDGER_KIND_BALANCE && request->kind != LEDGER_KIND_LOOKUP;
	if (!journaled || op->result->code != LEDGER_OK ||
	    (op->result->flags & LEDGER_RESULT_DUPLICATE))
		return; /* a refusal, a repeat or a query changes no money */
	switch (request->kind) {
	case LEDGER_KIND_PAY:
	case LEDGER_KIND_DEPOSIT:
	case LEDGER_KIND_REFUND:
		ledger_delta_outflow(ledger, request->other_id, amount, expected);
		break;
	case LEDGER_KIND_HOLD:
		expected->held = amount;
		expected->holds = 1;
		break;
	case LEDGER_KIND_CAPTURE: {
		assert(delta->hold.id != 0);
		uint64_t captured = amount != 0 ? amount : delta->hold.amount;
		assert(op->result->amount == captured);
		expected->currency = delta->hold.currency;
		expected->held = -(__int128)delta->hold.amount;
		expected->holds = -1;
		ledger_delta_outflow(ledger, delta->hold.other_id, captured, expected);
		break;
	}
	case LEDGER_KIND_VOID:
		assert(delta->hold.id != 0);
		expected->held = -(__int128)delta->hold.amount;
		expected->holds = -1;
		break;
	case LEDGER_KIND_CREDIT:
		expected->payee = amount;
		expected->transit = -(__int128)amount;
		break;
	case LEDGER_KIND_RETURN:
		expected->account = amount;
		expected->transit = -(__int128)amount;
		break;
	case LEDGER_KIND_OPEN:
		expected->accounts = 1;
		break;
	default:
		break; /* FREEZE, CLOSE, SET_LIMITS move no money */
	}
	if (delta->payee_is_account) {
		expected->account += expected->payee;
		expected->payee = 0;
	}
}

/* The account after the decision as the rules leave it; returns the change
 * of its balance. */
static __int128 ledger_delta_account(const struct ledger *ledger, const struct ledger_op *op,
				     const struct ledger_delta *delta,
				     const struct ledger_delta_expected *expected)
{
	const struct ledger_request *request = op->request;
	const struct ledger_account *account = delta->account;
	if (account == NULL) {
		assert(expected->account == 0);
		assert(expected->held == 0);
		account = ledger_account_find(ledger, request->account_id, op->account_hash);
		assert(account == NULL || expected->accounts == 1); /* only OPEN creates one */
		if (account != NULL) {
			assert(account->balance == 0);
			assert(account->held == 0);
		}
		assert(op->result->balance == ledger_available_or_zero(account));
		return 0;
	}
	const struct ledger_account *before = &delta->account_before;
	__int128 moved = (__int128)account->balance - before->balance;
	assert(account->id == before->id);
	assert(account->currency == before->currency);
	assert(moved == expected->account);
	assert((__int128)account->held - before->held == expected->held);
	assert(account->held <= (uint64_t)INT64_MAX);
	assert((account->flags & LEDGER_ACCOUNT_FUNDING) ||
	       (__int128)account->balance - account->held >= -(__int128)account->limit_overdraft);
	assert(op->result->balance == ledger_available(account));
	bool spends = request->kind == LEDGER_KIND_PAY || request->kind == LEDGER_KIND_HOLD;
	if (spends && expected->held + expected->account != 0) {
		uint64_t spent;
		if (__builtin_add_overflow(delta->spent_before, request->amount, &spent))
			spent = UINT64_MAX;
		assert(account->spent_day == (uint32_t)ledger->today);
		assert(account->spent_today == spent);
	} else if (request->kind == LEDGER_KIND_RETURN) {
		assert(ledger_spent_today(ledger, account) <= delta->spent_before);
	} else {
		assert(account->spent_today == before->spent_today);
		assert(account->spent_day == before->spent_day);
	}
	return moved;
}

static __int128 ledger_delta_payee(const struct ledger_delta *delta,
				   const struct ledger_delta_expected *expected)
{
	if (delta->payee == NULL) {
		assert(expected->payee == 0); /* money reaches only a payee that exists */
		return 0;
	}
	const struct ledger_account *payee = delta->payee;
	__int128 moved = (__int128)payee->balance - delta->payee_before.balance;
	assert(payee->id == delta->payee_before.id);
	assert(payee->currency == delta->payee_before.currency);
	assert(moved == expected->payee);
	assert(payee->held == delta->payee_before.held); /* a credit never touches held */
	return moved;
}

static __int128 ledger_delta_transit(const struct ledger *ledger, const struct ledger_delta *delta,
				     const struct ledger_delta_expected *expected)
{
	assert(ledger->currency_count >= delta->currency_count);
	__int128 moved = 0;
	bool found = expected->transit == 0;
	for (uint32_t index = 0; index < ledger->currency_count; index++) {
		__int128 before = index < delta->currency_count ? delta->transit[index] : 0;
		__int128 change = ledger->currencies[index].transit - before;
		bool ours = ledger->currencies[index].currency == expected->currency;
		assert(change == (ours ? expected->transit : 0));
		found = found || (ours && index < delta->currency_count);
		moved += change;
	}
	assert(found); /* transit moves only in a currency registered before */
	return moved;
}

void ledger_delta_assert(const struct ledger *ledger, const struct ledger_op *op,
			 const struct ledger_delta *delta)
{
	const struct ledger_result *result = op->result;
	struct ledger_delta_expected expected;
	ledger_delta_expect(ledger, op, delta, &expected);
	__int128 account = ledger_delta_account(ledger, op, delta, &expected);
	__int128 payee = ledger_delta_payee(delta, &expected);
	__int128 transit = ledger_delta_transit(ledger, delta, &expected);
	/* Double entry (DESIGN.md rule 2): whatever moved, the money of the
	 * touched accounts plus transit is what it was. */
	assert(account + payee + transit == 0);
	assert((int64_t)(ledger->hold_count - delta->hold_count) == expected.holds);
	assert(ledger->account_count - delta->account_count == expected.accounts);
	assert(ledger->ring_count >= delta->ring_count); /* evicts only to insert */
	assert(ledger->ring_count <= ledger->config.transfers_max);
	/* CREDIT_REMOTE exactly when money went into transit. */
	assert(!(result->flags & LEDGER_RESULT_CREDIT_REMOTE) || expected.transit > 0);
	assert(expected.transit <= 0 || (result->flags & LEDGER_RESULT_CREDIT_REMOTE));
}
#endif
