/*
 * ledger_holds.c — pending holds: an open-addressing table keyed by hold id
 * (linear probing, power-of-two slots >= 2x holds_max, backward-shift
 * deletion) and a binary min-heap on expires_at_us. Each hold knows its heap
 * index and each heap node its table slot, so a capture or void removes the
 * hold from both in O(log n) and the heap never holds stale nodes.
 */
#include "ledger_internal.h"

static inline uint64_t ledger_hold_home(const struct ledger *ledger, uint64_t id)
{
	return ledger_hash_id(id) & ledger->hold_mask;
}

struct ledger_hold *ledger_hold_find(const struct ledger *ledger, uint64_t id)
{
	if (id == 0)
		return NULL;
	uint64_t slot = ledger_hold_home(ledger, id);
	for (uint64_t probe = 0; probe <= ledger->hold_mask; probe++) {
		struct ledger_hold *hold = &ledger->holds[slot];
		if (hold->id == id)
			return hold;
		if (hold->id == 0)
			return NULL;
		slot = (slot + 1) & ledger->hold_mask;
	}
	return NULL;
}

/* ---- the expiry heap ------------------------------------------------------ */
static void ledger_heap_set(struct ledger *ledger, uint64_t index, struct ledger_heap_node node)
{
	ledger->heap[index] = node;
	ledger->holds[node.slot].heap_index = (uint32_t)index;
}

static void ledger_heap_sift_up(struct ledger *ledger, uint64_t index)
{
	struct ledger_heap_node node = ledger->heap[index];
	while (index > 0) {
		uint64_t parent = (index - 1) / 2;
		if (ledger->heap[parent].expires_at_us <= node.expires_at_us)
			break;
		ledger_heap_set(ledger, index, ledger->heap[parent]);
		index = parent;
	}
	ledger_heap_set(ledger, index, node);
}

static void ledger_heap_sift_down(struct ledger *ledger, uint64_t index, uint64_t size)
{
	struct ledger_heap_node node = ledger->heap[index];
	for (;;) {
		uint64_t child = index * 2 + 1;
		if (child >= size)
			break;
		if (child + 1 < size && ledger->heap[child + 1].expires_at_us < ledger->heap[child].expires_at_us)
			child++;
		if (node.expires_at_us <= ledger->heap[child].expires_at_us)
			break;
		ledger_heap_set(ledger, index, ledger->heap[child]);
		index = child;
	}
	ledger_heap_set(ledger, index, node);
}

/* Removes heap node `index` from a heap of `size` nodes. */
static void ledger_heap_remove(struct ledger *ledger, uint64_t index, uint64_t size)
{
	assert(index < size);
	uint64_t last = size - 1;
	if (index == last)
		return;
	ledger_heap_set(ledger, index, ledger->heap[last]);
	ledger_heap_sift_down(ledger, index, last);
	ledger_heap_sift_up(ledger, index);
}

/* ---- the table ------------------------------------------------------------ */
struct ledger_hold *ledger_hold_insert(struct ledger *ledger, const struct ledger_hold *hold)
{
	assert(hold->id != 0);
	assert(ledger->hold_count < ledger->config.holds_max);
	assert(ledger_hold_find(ledger, hold->id) == NULL);
	uint64_t slot = ledger_hold_home(ledger, hold->id);
	while (ledger->holds[slot].id != 0)
		slot = (slot + 1) & ledger->hold_mask;
	ledger->holds[slot] = *hold;
	uint64_t index = ledger->hold_count;
	ledger_heap_set(ledger, index, (struct ledger_heap_node){ hold->expires_at_us, slot });
	ledger->hold_count++;
	ledger_heap_sift_up(ledger, index);
	assert(ledger->hold_count <= ledger->config.holds_max);
	assert(ledger->holds[slot].id == hold->id);
	assert(ledger->holds[slot].heap_index < ledger->hold_count);
	assert(ledger->heap[ledger->holds[slot].heap_index].slot == slot);
	return &ledger->holds[slot];
}

void ledger_hold_remove(struct ledger *ledger, struct ledger_hold *hold)
{
	uint64_t mask = ledger->hold_mask;
	uint64_t hole = (uint64_t)(hold - ledger->holds);
	assert(hole <= mask);
	assert(hold->id != 0);
	assert(ledger->hold_count > 0);
	assert(hold->heap_index < ledger->hold_count);
	ledger_heap_remove(ledger, hold->heap_index, ledger->hold_count);
	ledger->hold_count--;
	uint64_t next = hole;
	for (;;) {
		next = (next + 1) & mask;
		if (ledger->holds[next].id == 0)
			break;
		uint64_t home = ledger_hold_home(ledger, ledger->holds[next].id);
		if (((next - home) & mask) >= ((next - hole) & mask)) {
			ledger->holds[hole] = ledger->holds[next];
			ledger->heap[ledger->holds[hole].heap_index].slot = hole;
			hole = next;
		}
	}
	memset(&ledger->holds[hole], 0, sizeof(ledger->holds[hole]));
}

/* Marks the window entry of a hold (if still remembered). */
static void ledger_hold_mark(struct ledger *ledger, uint64_t id, uint8_t state, uint64_t done)
{
	struct ledger_window_entry *entry = ledger_window_find(ledger, id, ledger_hash_id(id));
	if (entry != NULL && entry->kind == LEDGER_KIND_HOLD && entry->state == LEDGER_TRANSFER_PENDING) {
		entry->state = state;
		entry->amount_done = done;
	}
}

static void ledger_hold_release(struct ledger *ledger, struct ledger_hold *hold)
{
	struct ledger_account *account =
		ledger_account_find(ledger, hold->account_id, ledger_hash_id(hold->account_id));
	assert(account != NULL);
	assert(account->currency == hold->currency);
	assert(account->held >= hold->amount);
	uint64_t held_before = account->held;
	account->held -= hold->amount;
	assert(held_before - account->held == hold->amount); /* balances untouched */
	(void)held_before;
}

uint32_t ledger_expire_holds(struct ledger *ledger, uint64_t now_us)
{
	assert(ledger != NULL);
	uint32_t released = 0;
	while (ledger->hold_count > 0 && ledger->heap[0].expires_at_us <= now_us) {
		struct ledger_hold *hold = &ledger->holds[ledger->heap[0].slot];
		assert(hold->heap_index == 0);
		ledger_hold_release(ledger, hold);
		ledger_hold_mark(ledger, hold->id, LEDGER_TRANSFER_EXPIRED, 0);
		ledger_hold_remove(ledger, hold);
		released++;
	}
	/* Postcondition: no pending hold has reached its expiry. */
	assert(ledger->hold_count == 0 || ledger->heap[0].expires_at_us > now_us);
	return released;
}

/* ---- operations ----------------------------------------------------------- */
uint16_t ledger_op_hold(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	struct ledger_account *payer, *payee;
	uint16_t code = ledger_check_amount(request->amount);
	if (code != LEDGER_OK)
		return code;
	if (request->account_id == request->other_id)
		return LEDGER_SAME_ACCOUNT;
	payer = ledger_op_account(ledger, op);
	code = ledger_check_payer(payer, request->currency);
	if (code != LEDGER_OK)
		return code;
	code = ledger_check_payee(ledger, request->other_id, ledger_op_other(ledger, op),
				  request->currency, &payee);
	if (code != LEDGER_OK)
		return code;
	code = ledger_check_limits(ledger, payer, request->amount);
	if (code != LEDGER_OK)
		return code;
	if (!ledger_debit_allowed(payer, request->amount))
		return LEDGER_INSUFFICIENT_FUNDS;
	uint64_t held;
	if (__builtin_add_overflow(payer->held, request->amount, &held) || held > (uint64_t)INT64_MAX)
		return LEDGER_AMOUNT_OVERFLOW;
	/* A FUNDING account has no floor: its available balance must still fit
	 * in int64 (issue 14, defect 5). */
	if (ledger_debit_overflows_held(payer, 0, request->amount))
		return LEDGER_AMOUNT_OVERFLOW;
	if (ledger->hold_count == ledger->config.holds_max)
		return LEDGER_CAPACITY_FULL;

	uint64_t timeout = request->hold_timeout_us ? request->hold_timeout_us : ledger->config.hold_timeout_us;
	uint64_t expires;
	if (__builtin_add_overflow(ledger->now_us, timeout, &expires))
		expires = UINT64_MAX;
	struct ledger_hold hold = {
		.id = request->id, .account_id = request->account_id, .other_id = request->other_id,
		.amount = request->amount, .expires_at_us = expires, .currency = request->currency,
	};
	assert(timeout > 0);
	assert(expires > ledger->now_us || expires == UINT64_MAX); /* not expired at birth */
	uint64_t held_before = payer->held;
	int64_t balance_before = payer->balance;
	ledger_hold_insert(ledger, &hold);
	payer->held = held;
	ledger_spend(ledger, payer, request->amount);
	op->remember.state = LEDGER_TRANSFER_PENDING;
	/* A hold moves no money: balance unchanged, held up by the amount,
	 * still within int64 and above the floor unless FUNDING. */
	assert(payer->balance == balance_before);
	assert(payer->held - held_before == request->amount);
	assert(payer->held <= (uint64_t)INT64_MAX);
	assert((payer->flags & LEDGER_ACCOUNT_FUNDING) ||
	       (__int128)payer->balance - (__int128)payer->held >= -(__int128)payer->limit_overdraft);
	(void)held_before;
	(void)balance_before;
	return LEDGER_OK;
}

/* A CAPTURE or VOID of a hold that is not pending: say why, from the window. */
static uint16_t ledger_hold_gone(const struct ledger *ledger, const struct ledger_request *request)
{
	const struct ledger_window_entry *entry =
		ledger_window_find(ledger, request->reference_id, ledger_hash_id(request->reference_id));
	if (entry == NULL || entry->kind != LEDGER_KIND_HOLD || entry->code != LEDGER_OK ||
	    entry->account_id != request->account_id)
		return LEDGER_HOLD_NOT_FOUND;
	switch (entry->state) {
	case LEDGER_TRANSFER_CAPTURED: return LEDGER_HOLD_ALREADY_CAPTURED;
	case LEDGER_TRANSFER_VOIDED: return LEDGER_HOLD_ALREADY_VOIDED;
	case LEDGER_TRANSFER_EXPIRED: return LEDGER_HOLD_EXPIRED;
	default: return LEDGER_HOLD_NOT_FOUND;
	}
}

uint16_t ledger_op_capture(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	struct ledger_hold *hold = ledger_hold_find(ledger, request->reference_id);
	if (hold == NULL || hold->account_id != request->account_id)
		return ledger_hold_gone(ledger, request);
	struct ledger_account *payer = ledger_op_account(ledger, op);
	/* A pending hold keeps its account open (CLOSE needs held == 0). */
	assert(payer != NULL);
	assert(!(payer->flags & LEDGER_ACCOUNT_CLOSED));
	assert(payer->currency == hold->currency);
	assert(payer->held >= hold->amount);
	if (payer->flags & LEDGER_ACCOUNT_FROZEN)
		return LEDGER_PAYER_FROZEN;
	uint64_t captured = request->amount == 0 ? hold->amount : request->amount;
	if (captured > hold->amount)
		return LEDGER_CAPTURE_EXCEEDS_HOLD;
	struct ledger_account *payee;
	uint64_t payee_hash = ledger_hash_id(hold->other_id);
	uint16_t code = ledger_check_payee(ledger, hold->other_id,
					   ledger_account_find(ledger, hold->other_id, payee_hash),
					   hold->currency, &payee);
	if (code != LEDGER_OK)
		return code;
	if (ledger_debit_overflows_held(payer, captured, -(__int128)hold->amount) ||
	    ledger_credit_overflows(payee, captured))
		return LEDGER_AMOUNT_OVERFLOW;

	assert(payer->held >= hold->amount);
	assert(captured > 0);
	assert(captured <= hold->amount);
	uint64_t held_before = payer->held;
	payer->held -= hold->amount;
	ledger_move(ledger, op, payer, payee, hold->currency, captured);
	assert(held_before - payer->held == hold->amount); /* the whole hold is released */
	(void)held_before;
	ledger_hold_mark(ledger, hold->id, LEDGER_TRANSFER_CAPTURED, captured);
	op->remember.other_id = hold->other_id;
	op->remember.amount = captured;
	op->remember.currency = hold->currency;
	op->result->amount = captured;
	ledger_hold_remove(ledger, hold);
	return LEDGER_OK;
}

uint16_t ledger_op_void(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	struct ledger_hold *hold = ledger_hold_find(ledger, request->reference_id);
	if (hold == NULL || hold->account_id != request->account_id)
		return ledger_hold_gone(ledger, request);
	uint64_t holds_before = ledger->hold_count;
	ledger_hold_release(ledger, hold);
	ledger_hold_mark(ledger, hold->id, LEDGER_TRANSFER_VOIDED, 0);
	ledger_hold_remove(ledger, hold);
	assert(ledger->hold_count + 1 == holds_before);
	(void)holds_before;
	return LEDGER_OK;
}
