/*
 * ledger_accounts.c — the account table (open addressing, linear probing,
 * Lemire fast range over accounts_max * 5 / 4 slots; accounts are never
 * deleted) and the account operations: OPEN, FREEZE, CLOSE, SET_LIMITS,
 * BALANCE, LOOKUP; plus the currency table.
 */
#include "ledger_internal.h"

struct ledger_account *ledger_account_insert(struct ledger *ledger, uint64_t id, uint64_t hash)
{
	assert(id != 0);
	assert(ledger->account_count < ledger->config.accounts_max);
	uint64_t slot = ledger_account_home(ledger, hash);
	for (uint64_t probe = 0; probe < ledger->account_slots; probe++) {
		struct ledger_account *account = &ledger->accounts[slot];
		assert(account->id != id); /* never inserts an existing account */
		if (ledger->account_tags[slot] == 0) {
			assert(account->id == 0);
			memset(account, 0, sizeof(*account));
			account->id = id;
			ledger->account_tags[slot] = ledger_account_tag(hash);
			ledger->account_count++;
			assert(ledger->account_count <= ledger->config.accounts_max);
			return account;
		}
		slot = slot + 1 == ledger->account_slots ? 0 : slot + 1;
	}
	assert(!"account table has a free slot below accounts_max");
	return NULL;
}

int ledger_currency_register(struct ledger *ledger, uint16_t currency)
{
	assert(currency != 0);
	int slot = ledger_currency_slot(ledger, currency);
	if (slot >= 0)
		return slot;
	if (ledger->currency_count == LEDGER_CURRENCIES_MAX)
		return -1;
	assert(ledger->currency_count < LEDGER_CURRENCIES_MAX);
	slot = (int)ledger->currency_count++;
	ledger->currencies[slot].currency = currency;
	ledger->currencies[slot].transit = 0;
	ledger->currency_index[currency] = (uint8_t)(slot + 1);
	return slot;
}

void ledger_transit_add(struct ledger *ledger, uint16_t currency, int64_t delta)
{
	int slot = ledger_currency_slot(ledger, currency);
	assert(slot >= 0); /* transit only in currencies of existing accounts */
	struct ledger_currency *entry = &ledger->currencies[slot];
	/* |transit| <= accounts_max * 2^63 < 2^95: a 128-bit sum never wraps,
	 * however much money crosses shards (issue 14, defect 7). */
	entry->transit += delta;
	assert(entry->transit < ((__int128)1 << 96));
	assert(entry->transit > -((__int128)1 << 96));
}

uint16_t ledger_op_open(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	if (request->account_id == 0 || ledger_is_remote(ledger, request->account_id))
		return LEDGER_INVALID_REQUEST;
	if (ledger_op_account(ledger, op) != NULL)
		return LEDGER_ACCOUNT_EXISTS;
	if (ledger->account_count == ledger->config.accounts_max)
		return LEDGER_CAPACITY_FULL;
	if (ledger_currency_register(ledger, request->currency) < 0)
		return LEDGER_CAPACITY_FULL;
	struct ledger_account *account = ledger_account_insert(ledger, request->account_id,
							       op->account_hash);
	op->account = account;
	account->limit_overdraft = request->amount;
	account->limit_payment = request->limit_payment;
	account->limit_daily = request->limit_daily;
	account->spent_today = 0;
	account->spent_day = (uint32_t)ledger->today;
	account->currency = request->currency;
	account->flags = request->flags;
	/* A new account holds no money: opening moves none. */
	assert(account->balance == 0);
	assert(account->held == 0);
	assert(ledger_currency_slot(ledger, account->currency) >= 0);
	return LEDGER_OK;
}

/* The operated account for FREEZE, CLOSE and SET_LIMITS: must exist and be open. */
static uint16_t ledger_operated_account(struct ledger *ledger, struct ledger_op *op,
					struct ledger_account **account)
{
	*account = ledger_op_account(ledger, op);
	if (*account == NULL)
		return LEDGER_PAYER_NOT_FOUND;
	if ((*account)->flags & LEDGER_ACCOUNT_CLOSED)
		return LEDGER_PAYER_CLOSED;
	return LEDGER_OK;
}

uint16_t ledger_op_freeze(struct ledger *ledger, struct ledger_op *op)
{
	struct ledger_account *account;
	uint16_t code = ledger_operated_account(ledger, op, &account);
	if (code != LEDGER_OK)
		return code;
	if (op->request->flags)
		account->flags |= LEDGER_ACCOUNT_FROZEN;
	else
		account->flags &= (uint16_t)~LEDGER_ACCOUNT_FROZEN;
	return LEDGER_OK;
}

uint16_t ledger_op_close(struct ledger *ledger, struct ledger_op *op)
{
	struct ledger_account *account;
	uint16_t code = ledger_operated_account(ledger, op, &account);
	if (code != LEDGER_OK)
		return code;
	if (account->balance != 0 || account->held != 0)
		return LEDGER_ACCOUNT_NOT_EMPTY;
	account->flags |= LEDGER_ACCOUNT_CLOSED;
	return LEDGER_OK;
}

uint16_t ledger_op_set_limits(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	struct ledger_account *account;
	uint16_t code = ledger_operated_account(ledger, op, &account);
	if (code != LEDGER_OK)
		return code;
	/* The new floor must still be above what is already spent: a limit
	 * change never puts an account below its floor. */
	if (!(account->flags & LEDGER_ACCOUNT_FUNDING) &&
	    (__int128)account->balance - (__int128)account->held < -(__int128)request->amount)
		return LEDGER_INVALID_LIMITS;
	account->limit_overdraft = request->amount;
	account->limit_payment = request->limit_payment;
	account->limit_daily = request->limit_daily;
	/* A limit change never puts an account below its floor. */
	assert((account->flags & LEDGER_ACCOUNT_FUNDING) ||
	       (__int128)account->balance - (__int128)account->held >= -(__int128)account->limit_overdraft);
	return LEDGER_OK;
}

uint16_t ledger_op_balance(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_account *account = ledger_op_account(ledger, op);
	if (account == NULL)
		return LEDGER_PAYER_NOT_FOUND;
	op->result->balance = ledger_available(account);
	op->result->amount = account->held;
	return LEDGER_OK;
}

/* LOOKUP answers with the transfer's original code (OK when it was approved),
 * its amount, and TRANSFER_NOT_FOUND when the window does not hold a transfer
 * of reference_id debiting account_id. */
uint16_t ledger_op_lookup(struct ledger *ledger, struct ledger_op *op)
{
	const struct ledger_request *request = op->request;
	const struct ledger_account *account = ledger_op_account(ledger, op);
	op->result->balance = ledger_available_or_zero(account);
	const struct ledger_window_entry *entry =
		ledger_window_find(ledger, request->reference_id, ledger_hash_id(request->reference_id));
	if (entry == NULL || entry->account_id != request->account_id) {
		op->result->amount = 0;
		return LEDGER_TRANSFER_NOT_FOUND;
	}
	op->result->amount = entry->amount;
	if (entry->state == LEDGER_TRANSFER_CREDITING)
		op->result->flags |= LEDGER_RESULT_OUTCOME_REMOTE; /* the payee's shard decides */
	return entry->code;
}

