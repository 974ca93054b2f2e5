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
	assert(ledger != NULL && write != NULL);
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
		if (ledger->accounts[slot].id != 0)
			status = write(context, &ledger->accounts[slot], sizeof(struct ledger_account));
	for (uint64_t slot = 0; slot <= ledger->hold_mask && status == 0; slot++) {
		if (ledger->holds[slot].id == 0)
			continue;
		struct ledger_hold hold = ledger->holds[slot];
		hold.heap_index = 0;
		status = write(context, &hold, sizeof(hold));
	}
	uint64_t capacity = ledger->config.transfers_max;
	uint64_t position = (ledger->ring_next + capacity - ledger->ring_count) % capacity;
	for (uint64_t i = 0; i < ledger->ring_count && status == 0; i++) {
		status = write(context, &ledger->ring[position], sizeof(struct ledger_window_entry));
		position = position + 1 == capacity ? 0 : position + 1;
	}
	assert(status <= 0);
	return status;
}

static int ledger_load_header(struct ledger *ledger, const struct ledger_state_header *header)
{
	if (header->magic != LEDGER_STATE_MAGIC || header->version != LEDGER_STATE_VERSION)
		return -EBADMSG;
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

static int ledger_load_accounts(struct ledger *ledger, uint64_t count, ledger_read_fn read, void *context)
{
	for (uint64_t i = 0; i < count; i++) {
		struct ledger_account account;
		int status = read(context, &account, sizeof(account));
		if (status != 0)
			return status;
		uint64_t hash = ledger_hash_id(account.id);
		if (account.id == 0 || ledger_account_find(ledger, account.id, hash) != NULL ||
		    ledger_currency_slot(ledger, account.currency) < 0)
			return -EBADMSG;
		*ledger_account_insert(ledger, account.id, hash) = account;
	}
	return ledger->account_count == count ? 0 : -EBADMSG;
}

static int ledger_load_holds(struct ledger *ledger, uint64_t count, ledger_read_fn read, void *context)
{
	for (uint64_t i = 0; i < count; i++) {
		struct ledger_hold hold;
		int status = read(context, &hold, sizeof(hold));
		if (status != 0)
			return status;
		if (hold.id == 0 || ledger_hold_find(ledger, hold.id) != NULL ||
		    ledger_account_get(ledger, hold.account_id) == NULL)
			return -EBADMSG;
		ledger_hold_insert(ledger, &hold);
	}
	return ledger->hold_count == count ? 0 : -EBADMSG;
}

static int ledger_load_window(struct ledger *ledger, uint64_t count, ledger_read_fn read, void *context)
{
	for (uint64_t i = 0; i < count; i++) {
		struct ledger_window_entry entry;
		int status = read(context, &entry, sizeof(entry));
		if (status != 0)
			return status;
		uint64_t hash = ledger_hash_id(entry.id);
		if (ledger_window_find(ledger, entry.id, hash) != NULL)
			return -EBADMSG;
		ledger_window_insert(ledger, &entry, hash);
	}
	return ledger->ring_count == count ? 0 : -EBADMSG;
}

int ledger_state_load(struct ledger *ledger, ledger_read_fn read, void *context)
{
	assert(ledger != NULL && read != NULL);
	if (ledger->account_count != 0 || ledger->hold_count != 0 || ledger->ring_count != 0 ||
	    ledger->sequence != 0 || ledger->currency_count != 0 || ledger->evicted_any)
		return -EINVAL; /* only into a fresh ledger */
	struct ledger_state_header header;
	int status = read(context, &header, sizeof(header));
	if (status == 0)
		status = ledger_load_header(ledger, &header);
	if (status == 0)
		status = ledger_load_accounts(ledger, header.account_count, read, context);
	if (status == 0)
		status = ledger_load_holds(ledger, header.hold_count, read, context);
	if (status == 0)
		status = ledger_load_window(ledger, header.ring_count, read, context);
	if (status == 0 && ledger_check_invariants(ledger, NULL) != 0)
		status = -EBADMSG; /* check data after it is read back */
	assert(status <= 0);
	return status;
}
