/*
 * ledger_transfers.c — PAY, DEPOSIT, REFUND and the engine-internal CREDIT
 * and RETURN. Every function checks everything first and mutates last, so a
 * declined request changes nothing.
 */
#include "ledger_internal.h"

/* PAY and DEPOSIT, in the documented check order. */
uint16_t ledger_op_transfer(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	bool deposit = request->kind == LEDGER_KIND_DEPOSIT;
	uint64_t amount = request->amount;
	struct ledger_account *payer, *payee;
	uint16_t code = ledger_check_amount(amount);
	if (code != LEDGER_OK)
		return code;
	if (request->account_id == request->other_id)
		return LEDGER_SAME_ACCOUNT;
	payer = ledger_op_account(ledger, op);
	code = ledger_check_payer(payer, request->currency);
	if (code != LEDGER_OK)
		return code;
	if (deposit && !(payer->flags & LEDGER_ACCOUNT_FUNDING))
		return LEDGER_NOT_FUNDING;
	code = ledger_check_payee(ledger, request->other_id, ledger_op_other(ledger, op),
				  request->currency, &payee);
	if (code != LEDGER_OK)
		return code;
	if (!deposit) {
		code = ledger_check_limits(ledger, payer, amount);
		if (code != LEDGER_OK)
			return code;
		if (!ledger_debit_allowed(payer, amount))
			return LEDGER_INSUFFICIENT_FUNDS;
	}
	if (ledger_debit_overflows(payer, amount) || ledger_credit_overflows(payee, amount))
		return LEDGER_AMOUNT_OVERFLOW;

	uint64_t spent_before = ledger_spent_today(ledger, payer);
	ledger_move(ledger, op, payer, payee, request->currency, amount);
	if (!deposit)
		ledger_spend(ledger, payer, amount);
	/* A DEPOSIT is not spending; a PAY counts (saturated) toward today's. */
	assert(payer->spent_day == (uint32_t)ledger->today || deposit);
	assert(deposit || payer->spent_today >= spent_before);
	(void)spent_before;
	return LEDGER_OK;
}

/* Whether `original` is a payment to `merchant` from `customer` that may be
 * refunded: an approved PAY, CAPTURE, or CREDIT of one of those. */
static uint16_t ledger_check_refundable(const struct ledger_window_entry *original,
					uint64_t merchant, uint64_t customer)
{
	bool kind_ok = original->kind == LEDGER_KIND_PAY || original->kind == LEDGER_KIND_CAPTURE ||
		       (original->kind == LEDGER_KIND_CREDIT &&
			(original->origin == 0 || original->origin == LEDGER_KIND_PAY ||
			 original->origin == LEDGER_KIND_CAPTURE));
	if (!kind_ok || original->code != LEDGER_OK || original->state == LEDGER_TRANSFER_RETURNED)
		return LEDGER_NOT_REFUNDABLE;
	if (original->other_id != merchant || original->account_id != customer)
		return LEDGER_NOT_REFUNDABLE;
	return LEDGER_OK;
}

/* REFUND: merchant account_id gives amount of payment reference_id back to
 * its payer other_id. Order: amount, same account, merchant, reference,
 * cumulative amount, currency, customer, funds, overflows. */
uint16_t ledger_op_refund(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	uint64_t amount = request->amount;
	struct ledger_account *merchant, *customer;
	uint16_t code = ledger_check_amount(amount);
	if (code != LEDGER_OK)
		return code;
	if (request->account_id == request->other_id)
		return LEDGER_SAME_ACCOUNT;
	merchant = ledger_op_account(ledger, op);
	code = ledger_check_payer(merchant, request->currency);
	if (code != LEDGER_OK)
		return code;
	struct ledger_window_entry *original = ledger_window_find(
		ledger, request->reference_id, ledger_hash_id(request->reference_id));
	if (original == NULL)
		return LEDGER_TRANSFER_NOT_FOUND;
	code = ledger_check_refundable(original, request->account_id, request->other_id);
	if (code != LEDGER_OK)
		return code;
	if (original->amount_done + amount > original->amount) /* both <= INT64_MAX: no wrap */
		return LEDGER_REFUND_EXCEEDS_PAYMENT;
	if (original->currency != request->currency)
		return LEDGER_CURRENCY_MISMATCH;
	code = ledger_check_payee(ledger, request->other_id, ledger_op_other(ledger, op),
				  request->currency, &customer);
	if (code != LEDGER_OK)
		return code;
	if (!ledger_debit_allowed(merchant, amount))
		return LEDGER_INSUFFICIENT_FUNDS;
	if (ledger_debit_overflows(merchant, amount) || ledger_credit_overflows(customer, amount))
		return LEDGER_AMOUNT_OVERFLOW;

	assert(original->amount_done <= original->amount - amount); /* checked above */
	uint64_t done_before = original->amount_done;
	ledger_move(ledger, op, merchant, customer, request->currency, amount);
	original->amount_done += amount;
	assert(original->amount_done - done_before == amount);
	assert(original->amount_done <= original->amount); /* cumulative refunds <= payment */
	(void)done_before;
	op->result->amount = original->amount_done;
	return LEDGER_OK;
}

static uint16_t ledger_credit_decide(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	struct ledger_account *payee;
	uint16_t code = ledger_check_amount(request->amount);
	if (code != LEDGER_OK)
		return code;
	if (ledger_is_remote(ledger, request->other_id))
		return LEDGER_PAYEE_NOT_FOUND; /* misrouted: not an account of this shard */
	code = ledger_check_payee(ledger, request->other_id, ledger_op_other(ledger, op),
				  request->currency, &payee);
	if (code != LEDGER_OK)
		return code;
	assert(payee != NULL);
	assert(payee->currency == request->currency);
	if (ledger_credit_overflows(payee, request->amount))
		return LEDGER_AMOUNT_OVERFLOW;
	int slot = ledger_currency_slot(ledger, request->currency);
	assert(slot >= 0); /* the payee's currency is registered */
	__int128 before = (__int128)payee->balance + ledger->currencies[slot].transit;
	int64_t balance_before = payee->balance;
	payee->balance += (int64_t)request->amount;
	ledger_transit_add(ledger, request->currency, -(int64_t)request->amount);
	/* Out of transit into the payee, exactly: the double-entry delta is zero. */
	assert(payee->balance - balance_before == (int64_t)request->amount);
	assert((__int128)payee->balance + ledger->currencies[slot].transit == before);
	(void)before;
	(void)balance_before;
	return LEDGER_OK;
}

/* CREDIT: the payee side of a transfer decided on another shard. Remembered
 * under the transfer id (kind CREDIT) so that repeats are recognised and the
 * merchant can refund it. A refusal asks the engine to RETURN the money. */
uint16_t ledger_op_credit(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	const struct ledger_window_entry *existing = ledger_window_find(ledger, request->id, op->id_hash);
	if (existing != NULL && existing->kind == LEDGER_KIND_CREDIT) {
		op->result->flags |= LEDGER_RESULT_DUPLICATE;
		op->result->amount = existing->amount;
		return existing->code;
	}
	uint16_t code = ledger_credit_decide(ledger, op);
	if (code != LEDGER_OK)
		op->result->flags |= LEDGER_RESULT_RETURN_REMOTE;
	/* An id already taken here by a client request cannot be indexed twice;
	 * the credit is applied all the same (money never waits on an id). */
	if (existing == NULL) {
		op->remember.code = (uint8_t)code;
		op->remember.origin = request->flags;
		ledger_window_insert(ledger, &op->remember, op->id_hash);
	}
	return code;
}

/* Undoes on the payer's shard what a returned transfer did to the entry it
 * referenced: a returned REFUND no longer counts against its payment, so
 * the customer can still be refunded; a returned CAPTURE leaves its hold
 * released (its money is available again), answered as voided. An entry
 * already evicted has nothing left to undo. */
static void ledger_return_undo(struct ledger *ledger, const struct ledger_window_entry *original,
			       const struct ledger_request *request)
{
	uint64_t reference = request->reference_id;
	if (reference == 0)
		return;
	struct ledger_window_entry *referenced =
		ledger_window_find(ledger, reference, ledger_hash_id(reference));
	if (referenced == NULL)
		return;
	if (original->kind == LEDGER_KIND_REFUND &&
	    referenced->account_id == original->other_id &&
	    referenced->other_id == original->account_id && referenced->code == LEDGER_OK) {
		/* The refund added its amount when approved; only returns take it back. */
		assert(referenced->amount_done >= request->amount);
		referenced->amount_done -= request->amount;
	} else if (original->kind == LEDGER_KIND_CAPTURE && referenced->kind == LEDGER_KIND_HOLD &&
		   referenced->account_id == original->account_id &&
		   referenced->state == LEDGER_TRANSFER_CAPTURED) {
		referenced->state = LEDGER_TRANSFER_VOIDED;
		referenced->amount_done = 0;
	}
}

/* A returned PAY no longer counts against today's spending. The day is the
 * payment's own (its timestamp): a return after midnight leaves the new
 * day's spending alone. */
static void ledger_return_unspend(const struct ledger *ledger, struct ledger_account *payer,
				  const struct ledger_window_entry *original)
{
	if (original->kind != LEDGER_KIND_PAY)
		return;
	uint64_t day = original->timestamp_us / LEDGER_US_PER_DAY;
	if (day != ledger->today || payer->spent_day != (uint32_t)ledger->today)
		return;
	/* Not an assertion: `day` is the client's timestamp, which may fall on
	 * the day after the one the PAY was counted on (future tolerance), so
	 * today's spending may be less than the amount. */
	payer->spent_today = payer->spent_today > original->amount
				     ? payer->spent_today - original->amount : 0;
}

/* Whether a window entry is the payer's side of the transfer a RETURN gives back. */
static bool ledger_return_matches(const struct ledger_window_entry *original,
				  const struct ledger_request *request)
{
	return original != NULL && original->account_id == request->account_id &&
	       original->other_id == request->other_id && original->code == LEDGER_OK &&
	       original->state == LEDGER_TRANSFER_CREDITING &&
	       (original->kind == LEDGER_KIND_PAY || original->kind == LEDGER_KIND_DEPOSIT ||
		original->kind == LEDGER_KIND_REFUND || original->kind == LEDGER_KIND_CAPTURE);
}

/* RETURN: a CREDIT was refused on the payee's shard; the payer gets the
 * money back out of transit, and the transfer now answers the payee's code
 * (request flags) to repeats and LOOKUP. A second RETURN of the same
 * transfer (while it is in the window) is a duplicate. */
uint16_t ledger_op_return(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	uint16_t code = ledger_check_amount(request->amount);
	if (code != LEDGER_OK)
		return code;
	struct ledger_account *payer = ledger_op_account(ledger, op);
	if (payer == NULL)
		return LEDGER_PAYER_NOT_FOUND;
	if (payer->currency != request->currency)
		return LEDGER_CURRENCY_MISMATCH;
	struct ledger_window_entry *original = ledger_window_find(ledger, request->id, op->id_hash);
	if (original != NULL && original->account_id == request->account_id &&
	    original->state == LEDGER_TRANSFER_RETURNED) {
		op->result->flags |= LEDGER_RESULT_DUPLICATE;
		return LEDGER_OK;
	}
	if (ledger_credit_overflows(payer, request->amount)) {
		/* The payer received so much meanwhile that the money cannot come
		 * back: it stays in transit (the engine logs it; the audit shows
		 * it). The transfer still did not happen: repeats and LOOKUP must
		 * say the payee's code, never OK. */
		if (ledger_return_matches(original, request)) {
			original->state = LEDGER_TRANSFER_RETURNED;
			original->code = request->flags;
		}
		return LEDGER_AMOUNT_OVERFLOW;
	}
	int slot = ledger_currency_slot(ledger, request->currency);
	assert(slot >= 0); /* the payer's currency is registered */
	__int128 before = (__int128)payer->balance + ledger->currencies[slot].transit;
	int64_t balance_before = payer->balance;
	payer->balance += (int64_t)request->amount;
	ledger_transit_add(ledger, request->currency, -(int64_t)request->amount);
	/* Out of transit back to the payer: the double-entry delta is zero. */
	assert(payer->balance - balance_before == (int64_t)request->amount);
	assert((__int128)payer->balance + ledger->currencies[slot].transit == before);
	(void)before;
	(void)balance_before;
	if (ledger_return_matches(original, request)) {
		ledger_return_undo(ledger, original, request);
		ledger_return_unspend(ledger, payer, original);
		original->state = LEDGER_TRANSFER_RETURNED;
		original->code = request->flags; /* validated: a business refusal */
		assert(original->code != LEDGER_OK);
	}
	return LEDGER_OK;
}
