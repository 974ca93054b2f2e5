/*
 * ledger_state.c — streaming the whole state for snapshots.
 *
 * Layout (host byte order; the snapshot file wraps it with its own header
 * and checksums): struct ledger_state_header, then account_count accounts
 * (struct ledger_account, used slots only), hold_count holds (struct
 * ledger_hold with heap_index 0), ring_count window entries oldest first.
 * Loading re-inserts everything into a fresh ledger of the same config, so
 * slot positions may differ but every decision afterwards is identical.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "ledger_internal.h"

#define LEDGER_STATE_MAGIC UINT64_C(0x3152454744454C50) /* "PLEDGER1" */
#define LEDGER_STATE_VERSION 2u /* 2: transit in 128 bits */

struct ledger_state_header {
	uint64_t magic;
	uint32_t version;
	uint32_t currency_count;
	struct ledger_config config;
	uint64_t account_count;
	uint64_t hold_count;
	uint64_t ring_count;
	uint64_t sequence;
	uint64_t now_us;
	uint64_t evicted_watermark;
	uint64_t evicted_any;
	struct ledger_currency currencies[LEDGER_CURRENCIES_MAX];
};

int ledger_state_save(const struct ledger *ledger, ledger_write_fn write, void *context)
{
	assert(ledger != NULL);
	assert(write != NULL);
	/* Check data before it is written to disk (an O(n) scan: debug builds). */
	LEDGER_DEBUG_ASSERT(ledger_check_double_entry(ledger, NULL) == 0);
	LEDGER_DEBUG_ASSERT(ledger_check_holds(ledger, NULL) == 0);
	uint64_t accounts_written = 0;
	uint64_t holds_written = 0;
	struct ledger_state_header header;
	memset(&header, 0, sizeof(header)); /* padding is written too: keep it zero */
	header.magic = LEDGER_STATE_MAGIC;
	header.version = LEDGER_STATE_VERSION;
	header.currency_count = ledger->currency_count;
	header.config = ledger->config;
	header.account_count = ledger->account_count;
	header.hold_count = ledger->hold_count;
	header.ring_count = ledger->ring_count;
	header.sequence = ledger->sequence;
	header.now_us = ledger->now_us;
	header.evicted_watermark = ledger->evicted_watermark;
	header.evicted_any = ledger->evicted_any;
	for (uint32_t index = 0; index < ledger->currency_count; index++) {
		header.currencies[index].currency = ledger->currencies[index].currency;
		header.currencies[index].transit = ledger->currencies[index].transit;
	}
	int status = write(context, &header, sizeof(header));
	for (uint64_t slot = 0; slot < ledger->account_slots && status == 0; slot++)
		if (ledger->accounts[slot].id != 0) {
			status = write(context, &ledger->accounts[slot], sizeof(struct ledger_account));
			accounts_written++;
		}
	for (uint64_t slot = 0; slot <= ledger->hold_mask && status == 0; slot++) {
		if (ledger->holds[slot].id == 0)
			continue;
		struct ledger_hold hold = ledger->holds[slot];
		hold.heap_index = 0;
		status = write(context, &hold, sizeof(hold));
		holds_written++;
	}
	uint64_t capacity = ledger->config.transfers_max;
	uint64_t position = (ledger->ring_next + capacity - ledger->ring_count) % capacity;
	for (uint64_t i = 0; i < ledger->ring_count && status == 0; i++) {
		status = write(context, &ledger->ring[position], sizeof(struct ledger_window_entry));
		position = position + 1 == capacity ? 0 : position + 1;
	}
	assert(status <= 0);
	/* The record counts match the header's (a loader reads exactly them). */
	assert(status != 0 || accounts_written == header.account_count);
	assert(status != 0 || holds_written == header.hold_count);
	(void)accounts_written;
	(void)holds_written;
	return status;
}

static int ledger_load_header(struct ledger *ledger, const struct ledger_state_header *header)
{
	if (header->magic != LEDGER_STATE_MAGIC)
		return -EBADMSG;
	if (header->version != LEDGER_STATE_VERSION)
		return -EPROTONOSUPPORT; /* another layout: nothing read into the ledger yet */
	if (memcmp(&header->config, &ledger->config, sizeof(header->config)) != 0)
		return -EBADMSG;
	if (header->account_count > ledger->config.accounts_max ||
	    header->hold_count > ledger->config.holds_max ||
	    header->ring_count > ledger->config.transfers_max ||
	    header->currency_count > LEDGER_CURRENCIES_MAX || header->evicted_any > 1)
		return -EBADMSG;
	for (uint32_t index = 0; index < header->currency_count; index++) {
		uint16_t currency = header->currencies[index].currency;
		if (currency == 0 || ledger_currency_register(ledger, currency) != (int)index)
			return -EBADMSG; /* zero or repeated currency */
		ledger->currencies[index].transit = header->currencies[index].transit;
	}
	ledger->sequence = header->sequence;
	ledger->now_us = header->now_us;
	ledger->today = header->now_us / LEDGER_US_PER_DAY;
	ledger->evicted_watermark = header->evicted_watermark;
	ledger->evicted_any = header->evicted_any != 0;
	return 0;
}

__attribute__((format(printf, 2, 3)))
static int ledger_state_refuse(struct ledger_violation *report, const char *format, ...)
{
	if (report != NULL) {
		va_list arguments;
		va_start(arguments, format);
		vsnprintf(report->text, sizeof(report->text), format, arguments);
		va_end(arguments);
	}
	return -EBADMSG;
}

/* An account as the ledger keeps it live: owned here, known flags and
 * currency, held within int64, available within int64, above its floor
 * unless FUNDING, empty when closed. */
static int ledger_state_account_check(const struct ledger *ledger, const struct ledger_account *account,
				      uint64_t index, struct ledger_violation *report)
{
	const uint16_t known = LEDGER_ACCOUNT_FUNDING | LEDGER_ACCOUNT_MERCHANT |
			       LEDGER_ACCOUNT_FROZEN | LEDGER_ACCOUNT_CLOSED;
	__int128 available = (__int128)account->balance - (__int128)account->held;
	if (account->id == 0 || ledger_is_remote(ledger, account->id))
		return ledger_state_refuse(report, "account record %" PRIu64 ": id %" PRIu64
					   " is not an account of this shard", index, account->id);
	if (ledger_account_find(ledger, account->id, ledger_hash_id(account->id)) != NULL)
		return ledger_state_refuse(report, "account %" PRIu64 " appears twice", account->id);
	if (ledger_currency_slot(ledger, account->currency) < 0 || (account->flags & ~known) != 0)
		return ledger_state_refuse(report, "account %" PRIu64 ": currency %u or flags 0x%x"
					   " unknown", account->id, account->currency, account->flags);
	if (account->held > (uint64_t)INT64_MAX || available < INT64_MIN || available > INT64_MAX)
		return ledger_state_refuse(report, "account %" PRIu64 ": balance %" PRId64 " held %"
					   PRIu64 " leave int64", account->id, account->balance, account->held);
	if (!(account->flags & LEDGER_ACCOUNT_FUNDING) && available < -(__int128)account->limit_overdraft)
		return ledger_state_refuse(report, "account %" PRIu64 " is below its floor",
					   account->id);
	if ((account->flags & LEDGER_ACCOUNT_CLOSED) && (account->balance != 0 || account->held != 0))
		return ledger_state_refuse(report, "closed account %" PRIu64 " holds money", account->id);
	return 0;
}

static int ledger_load_accounts(struct ledger *ledger, uint64_t count, ledger_read_fn read,
				void *context, struct ledger_violation *report)
{
	for (uint64_t i = 0; i < count; i++) {
		struct ledger_account account;
		int status = read(context, &account, sizeof(account));
		if (status != 0)
			return status;
		status = ledger_state_account_check(ledger, &account, i, report);
		if (status != 0)
			return status;
		*ledger_account_insert(ledger, account.id, ledger_hash_id(account.id)) = account;
	}
	assert(ledger->account_count == count);
	return 0;
}

/* A pending hold as HOLD creates it: of an account here, in its currency,
 * for another payee, of an amount the account's held covers. */
static int ledger_state_hold_check(const struct ledger *ledger, const struct ledger_hold *hold,
				   struct ledger_violation *report)
{
	if (hold->id == 0 || ledger_hold_find(ledger, hold->id) != NULL)
		return ledger_state_refuse(report, "hold %" PRIu64 " is 0 or appears twice", hold->id);
	const struct ledger_account *account = ledger_account_get(ledger, hold->account_id);
	if (account == NULL)
		return ledger_state_refuse(report, "hold %" PRIu64 ": account %" PRIu64 " unknown",
					   hold->id, hold->account_id);
	if (hold->currency != account->currency)
		return ledger_state_refuse(report, "hold %" PRIu64 " in currency %u, its account %"
					   PRIu64 "'s is %u", hold->id, hold->currency,
					   hold->account_id, account->currency);
	if (hold->amount == 0 || hold->amount > account->held || hold->other_id == 0 ||
	    hold->other_id == hold->account_id)
		return ledger_state_refuse(report, "hold %" PRIu64 ": amount %" PRIu64 " (account"
					   " holds %" PRIu64 ") or payee %" PRIu64 " impossible",
					   hold->id, hold->amount, account->held, hold->other_id);
	return 0;
}

static int ledger_load_holds(struct ledger *ledger, uint64_t count, ledger_read_fn read,
			     void *context, struct ledger_violation *report)
{
	for (uint64_t i = 0; i < count; i++) {
		struct ledger_hold hold;
		int status = read(context, &hold, sizeof(hold));
		if (status != 0)
			return status;
		status = ledger_state_hold_check(ledger, &hold, report);
		if (status != 0)
			return status;
		ledger_hold_insert(ledger, &hold);
	}
	assert(ledger->hold_count == count);
	return 0;
}

/* A window entry as a decision leaves it: a kind that is remembered, a
 * business code, a known state, no more done than the amount. */
static int ledger_state_entry_check(const struct ledger *ledger, const struct ledger_window_entry *entry,
				    struct ledger_violation *report)
{
	if (entry->id == 0 || ledger_window_find(ledger, entry->id, ledger_hash_id(entry->id)) != NULL)
		return ledger_state_refuse(report, "window entry %" PRIu64 " is 0 or appears twice",
					   entry->id);
	bool kind_ok = ledger_kind_remembered(entry->kind) || entry->kind == LEDGER_KIND_CREDIT;
	if (!kind_ok || entry->code >= LEDGER_FORMAT_ERROR || entry->state > LEDGER_TRANSFER_CREDITING)
		return ledger_state_refuse(report, "window entry %" PRIu64 ": kind %u, code %u or"
					   " state %u impossible", entry->id, entry->kind,
					   entry->code, entry->state);
	if (entry->amount_done > entry->amount)
		return ledger_state_refuse(report, "window entry %" PRIu64 ": %" PRIu64 " done of %"
					   PRIu64, entry->id, entry->amount_done, entry->amount);
	if (entry->state == LEDGER_TRANSFER_PENDING && ledger_hold_find(ledger, entry->id) == NULL)
		return ledger_state_refuse(report, "window entry %" PRIu64 ": a pending hold that is"
					   " not in the hold table", entry->id);
	return 0;
}

static int ledger_load_window(struct ledger *ledger, uint64_t count, ledger_read_fn read,
			      void *context, struct ledger_violation *report)
{
	for (uint64_t i = 0; i < count; i++) {
		struct ledger_window_entry entry;
		int status = read(context, &entry, sizeof(entry));
		if (status != 0)
			return status;
		status = ledger_state_entry_check(ledger, &entry, report);
		if (status != 0)
			return status;
		ledger_window_insert(ledger, &entry, ledger_hash_id(entry.id));
	}
	assert(ledger->ring_count == count);
	return 0;
}

int ledger_state_load(struct ledger *ledger, ledger_read_fn read, void *context,
		      struct ledger_violation *report)
{
	assert(ledger != NULL);
	assert(read != NULL);
	if (report != NULL)
		report->text[0] = '\0';
	if (ledger->account_count != 0 || ledger->hold_count != 0 || ledger->ring_count != 0 ||
	    ledger->sequence != 0 || ledger->currency_count != 0 || ledger->evicted_any)
		return -EINVAL; /* only into a fresh ledger */
	struct ledger_state_header header;
	int status = read(context, &header, sizeof(header));
	if (status == 0) {
		status = ledger_load_header(ledger, &header);
		if (status == -EPROTONOSUPPORT && report != NULL)
			snprintf(report->text, sizeof(report->text), "state version %u, this"
				 " build reads %u", header.version, LEDGER_STATE_VERSION);
		else if (status != 0)
			status = ledger_state_refuse(report, "header: magic, config or counts do"
						     " not fit this ledger");
	}
	if (status == 0)
		status = ledger_load_accounts(ledger, header.account_count, read, context, report);
	if (status == 0)
		status = ledger_load_holds(ledger, header.hold_count, read, context, report);
	if (status == 0)
		status = ledger_load_window(ledger, header.ring_count, read, context, report);
	/* Check data after it is read back: the sums the records imply. */
	if (status == 0 && ledger_check_invariants(ledger, report) != 0)
		status = -EBADMSG;
	assert(status <= 0);
	/* Postconditions: exactly the header's records, at the header's place. */
	assert(status != 0 || ledger->account_count == header.account_count);
	assert(status != 0 || ledger->hold_count == header.hold_count);
	assert(status != 0 || ledger->ring_count == header.ring_count);
	assert(status != 0 || ledger->sequence == header.sequence);
	assert(status != 0 || ledger->now_us == header.now_us);
	return status;
}
