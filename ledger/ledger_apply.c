/*
 * ledger_apply.c — the batch loop. Pass one hashes every request of a chunk
 * and prefetches the cache lines its decision will touch (payer, payee,
 * window index slot, the index slot of the window entry it will evict); pass
 * two decides the requests strictly in order, so the outcome is exactly that
 * of a one-by-one loop: prefetching changes timing, never results.
 */
#include "ledger_internal.h"

static bool ledger_kind_is_internal(uint8_t kind)
{
	return kind == LEDGER_KIND_CREDIT || kind == LEDGER_KIND_RETURN;
}

bool ledger_kind_remembered(uint8_t kind)
{
	return kind >= LEDGER_KIND_OPEN && kind <= LEDGER_KIND_SET_LIMITS;
}

/* Structural validity: kind known, flags allowed for the kind, reserved zero,
 * a currency where money moves. Checked before the window. */
static bool ledger_request_valid(const struct ledger_request *request)
{
	if (request->reserved != 0 || request->id == 0)
		return false; /* id 0 is nobody's transfer (and an empty hold slot) */
	switch (request->kind) {
	case LEDGER_KIND_OPEN:
		return request->currency != 0 &&
		       (request->flags & ~LEDGER_ACCOUNT_FLAGS_OPENABLE) == 0;
	case LEDGER_KIND_DEPOSIT:
	case LEDGER_KIND_PAY:
	case LEDGER_KIND_HOLD:
	case LEDGER_KIND_REFUND:
		return request->currency != 0 && request->flags == 0;
	case LEDGER_KIND_RETURN:
		/* flags: the payee shard's refusal, a business code */
		return request->currency != 0 && request->flags != LEDGER_OK &&
		       request->flags <= LEDGER_INVALID_LIMITS;
	case LEDGER_KIND_CREDIT:
		return request->currency != 0 &&
		       (request->flags == 0 || request->flags == LEDGER_KIND_PAY ||
			request->flags == LEDGER_KIND_DEPOSIT || request->flags == LEDGER_KIND_CAPTURE ||
			request->flags == LEDGER_KIND_REFUND);
	case LEDGER_KIND_CAPTURE:
	case LEDGER_KIND_VOID:
	case LEDGER_KIND_CLOSE:
	case LEDGER_KIND_SET_LIMITS:
		return request->flags == 0;
	case LEDGER_KIND_FREEZE:
		return request->flags <= 1;
	default:
		return false;
	}
}

/* The window checks of a client request, in the documented order. Returns
 * OK, a code, or OK with *duplicate set to the original entry. */
static uint16_t ledger_window_check(const struct ledger *ledger, const struct ledger_op *op,
				    const struct ledger_window_entry **duplicate)
{
	const struct ledger_request *request = op->request;
	uint64_t timestamp = request->timestamp_us;
	uint64_t now = ledger->now_us;
	*duplicate = NULL;
	if (timestamp < now && now - timestamp > ledger->config.dedup_window_us)
		return LEDGER_TOO_OLD;
	if (ledger->evicted_any && timestamp <= ledger->evicted_watermark)
		return LEDGER_TOO_OLD;
	if (timestamp > now && timestamp - now > ledger->config.future_tolerance_us)
		return LEDGER_TIMESTAMP_IN_FUTURE;
	const struct ledger_window_entry *entry = ledger_window_find(ledger, request->id, op->id_hash);
	if (entry == NULL)
		return LEDGER_OK;
	if (entry->request_hash != op->request_hash || entry->kind != request->kind)
		return LEDGER_ID_REUSED;
	*duplicate = entry;
	return LEDGER_OK;
}

static uint16_t ledger_dispatch(struct ledger *ledger, struct ledger_op *op)
{
	switch (op->request->kind) {
	case LEDGER_KIND_OPEN: return ledger_op_open(ledger, op);
	case LEDGER_KIND_DEPOSIT: return ledger_op_transfer(ledger, op);
	case LEDGER_KIND_PAY: return ledger_op_transfer(ledger, op);
	case LEDGER_KIND_HOLD: return ledger_op_hold(ledger, op);
	case LEDGER_KIND_CAPTURE: return ledger_op_capture(ledger, op);
	case LEDGER_KIND_VOID: return ledger_op_void(ledger, op);
	case LEDGER_KIND_REFUND: return ledger_op_refund(ledger, op);
	case LEDGER_KIND_FREEZE: return ledger_op_freeze(ledger, op);
	case LEDGER_KIND_CLOSE: return ledger_op_close(ledger, op);
	case LEDGER_KIND_SET_LIMITS: return ledger_op_set_limits(ledger, op);
	case LEDGER_KIND_CREDIT: return ledger_op_credit(ledger, op);
	case LEDGER_KIND_RETURN: return ledger_op_return(ledger, op);
	default: assert(!"kind validated before dispatch"); return LEDGER_INVALID_REQUEST;
	}
}

static void ledger_finish(const struct ledger *ledger, struct ledger_op *op, uint16_t code)
{
	op->result->code = code;
	op->result->balance = ledger_available_or_zero(ledger_op_account(ledger, op));
}

static void ledger_decide_request(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	struct ledger_result *result = op->result;
	*result = (struct ledger_result){ .id = request->id, .amount = request->amount };
	if (request->kind == LEDGER_KIND_BALANCE) {
		result->code = ledger_op_balance(ledger, op);
		return;
	}
	if (request->kind == LEDGER_KIND_LOOKUP) {
		result->code = ledger_op_lookup(ledger, op);
		return;
	}
	result->flags = LEDGER_RESULT_JOURNAL;
	result->sequence = ++ledger->sequence;
	if (!ledger_request_valid(request)) {
		ledger_finish(ledger, op, LEDGER_INVALID_REQUEST);
		return;
	}
	if (!ledger_kind_is_internal(request->kind)) {
		const struct ledger_window_entry *duplicate;
		uint16_t code = ledger_window_check(ledger, op, &duplicate);
		if (code != LEDGER_OK) {
			ledger_finish(ledger, op, code);
			return;
		}
		if (duplicate != NULL) {
			result->flags |= LEDGER_RESULT_DUPLICATE;
			if (duplicate->state == LEDGER_TRANSFER_CREDITING)
				result->flags |= LEDGER_RESULT_OUTCOME_REMOTE;
			result->amount = duplicate->amount;
			ledger_finish(ledger, op, duplicate->code);
			return;
		}
	}
	struct ledger_window_entry *remember = &op->remember;
	*remember = (struct ledger_window_entry){
		.id = request->id, .timestamp_us = request->timestamp_us,
		.account_id = request->account_id, .other_id = request->other_id,
		.amount = request->amount, .request_hash = op->request_hash,
		.currency = request->currency, .kind = request->kind,
		.state = LEDGER_TRANSFER_DONE,
	};
	uint16_t code = ledger_dispatch(ledger, op);
	assert(code < LEDGER_FORMAT_ERROR); /* a business outcome, never a wire error */
	if (!ledger_kind_is_internal(request->kind)) {
		remember->code = (uint8_t)code;
		ledger_window_insert(ledger, remember, op->id_hash);
	}
	ledger_finish(ledger, op, code);
}

/* Decides one request; debug builds check what it changed against the
 * rules (ledger_delta_assert), release builds only the cheap assertions
 * inside the operations. */
static inline void ledger_decide(struct ledger *ledger, struct ledger_op *op)
{
	uint64_t sequence_before = ledger->sequence;
#if LEDGER_DEBUG_ASSERTS
	struct ledger_delta delta;
	ledger_delta_before(ledger, op, &delta);
#endif
	ledger_decide_request(ledger, op);
	assert(op->result->id == op->request->id);
	/* Sequence numbers strictly increase, one per journaled decision. */
	assert(ledger->sequence >= sequence_before);
	assert(ledger->sequence - sequence_before <= 1);
	assert(ledger->sequence == sequence_before || op->result->sequence == ledger->sequence);
	(void)sequence_before;
#if LEDGER_DEBUG_ASSERTS
	ledger_delta_assert(ledger, op, &delta);
#endif
}

/* Stage one: hash, and prefetch the home tags of both accounts and the home
 * slot of the id in the window index. */
static void ledger_prepare(const struct ledger *ledger, struct ledger_op *op,
			   const struct ledger_request *request, struct ledger_result *result)
{
	op->request = request;
	op->result = result;
	op->account_hash = ledger_hash_id(request->account_id);
	op->other_hash = ledger_hash_id(request->other_id);
	op->id_hash = ledger_hash_id(request->id);
	op->request_hash = XXH3_64bits(request, sizeof(*request));
	op->account_home = ledger_account_home(ledger, op->account_hash);
	op->other_home = ledger_account_home(ledger, op->other_hash);
	__builtin_prefetch(&ledger->account_tags[op->account_home], 0, 3);
	__builtin_prefetch(&ledger->account_tags[op->other_home], 0, 3);
	__builtin_prefetch(ledger_window_home(ledger, op->id_hash), 1, 3);
}

/* Stage two: walk the tag probes (their lines are cached now) to the
 * candidate slots, and prefetch those accounts' lines for stage three. */
static void ledger_resolve(const struct ledger *ledger, struct ledger_op *op)
{
	uint64_t slots = ledger->account_slots;
	uint64_t account = ledger_account_candidate(ledger, op->account_hash, op->account_home);
	uint64_t other = ledger_account_candidate(ledger, op->other_hash, op->other_home);
	op->account = account < slots ? &ledger->accounts[account] : NULL;
	op->other = other < slots ? &ledger->accounts[other] : NULL;
	if (op->account != NULL)
		__builtin_prefetch(op->account, 1, 3);
	if (op->other != NULL)
		__builtin_prefetch(op->other, 1, 3);
}

uint32_t ledger_apply(struct ledger *ledger, uint64_t now_us,
		      const struct ledger_request *requests,
		      struct ledger_result *results, uint32_t count)
{
	assert(ledger != NULL);
	assert(count == 0 || requests != NULL);
	assert(count == 0 || results != NULL);
	assert(now_us >= ledger->now_us); /* now_us must not go backwards */
	uint64_t sequence_before = ledger->sequence;
	ledger->now_us = now_us;
	ledger->today = now_us / LEDGER_US_PER_DAY;
	ledger_expire_holds(ledger, now_us);

	struct ledger_op ops[LEDGER_CHUNK];
	for (uint32_t base = 0; base < count; base += LEDGER_CHUNK) {
		uint32_t chunk = count - base < LEDGER_CHUNK ? count - base : LEDGER_CHUNK;
		for (uint32_t i = 0; i < chunk; i++)
			ledger_prepare(ledger, &ops[i], &requests[base + i], &results[base + i]);
		ledger_window_prefetch_eviction(ledger, chunk);
		for (uint32_t i = 0; i < chunk; i++)
			ledger_resolve(ledger, &ops[i]);
		for (uint32_t i = 0; i < chunk; i++)
			ledger_decide(ledger, &ops[i]);
	}
	/* At most one sequence number per request, and no wrap. */
	assert(ledger->sequence >= sequence_before);
	assert(ledger->sequence - sequence_before <= count);
	(void)sequence_before;
	return count;
}
