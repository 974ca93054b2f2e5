/*
 * ledger.c — life cycle, counters and ledger_apply(): the two-pass batch
 * loop that prefetches every request's cache lines and then decides the
 * requests in order. The operations themselves live in ledger_accounts.c,
 * ledger_transfers.c and ledger_holds.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "ledger_internal.h"

void ledger_config_default(struct ledger_config *config)
{
	assert(config != NULL);
	memset(config, 0, sizeof(*config));
	config->accounts_max = 1u << 20;
	config->transfers_max = 1u << 20;
	config->holds_max = 1u << 16;
	config->dedup_window_us = UINT64_C(600) * 1000000;
	config->future_tolerance_us = UINT64_C(5) * 1000000;
	config->hold_timeout_us = UINT64_C(900) * 1000000;
	config->shard_index = 0;
	config->shard_count = 1;
}

uint32_t ledger_shard_of(uint64_t account_id, uint32_t shard_count)
{
	assert(shard_count > 0);
	return (uint32_t)(ledger_hash_shard(account_id) % shard_count);
}

static uint64_t ledger_power_of_two_at_least(uint64_t n)
{
	uint64_t power = 16;
	while (power < n)
		power <<= 1;
	return power;
}

static bool ledger_config_valid(const struct ledger_config *config)
{
	return config->accounts_max > 0 && config->accounts_max <= LEDGER_ACCOUNTS_LIMIT &&
	       config->transfers_max > 0 && config->transfers_max <= LEDGER_TRANSFERS_LIMIT &&
	       config->holds_max > 0 && config->holds_max <= LEDGER_HOLDS_LIMIT &&
	       config->shard_count > 0 && config->shard_index < config->shard_count &&
	       config->hold_timeout_us > 0;
}

/* Cache-line aligned, zeroed allocation; counts the bytes. Large tables are
 * 2 MiB aligned and advised onto transparent huge pages: their accesses are
 * random, and a TLB miss per access (a two-level walk in a VM) costs more
 * than the cache miss it accompanies. Advice only: failure is harmless. */
static void *ledger_allocate(struct ledger *ledger, size_t size)
{
	const size_t huge = (size_t)2 << 20;
	size_t alignment = size >= 2 * huge ? huge : 64;
	size_t rounded = (size + alignment - 1) & ~(alignment - 1);
	void *memory = aligned_alloc(alignment, rounded);
	if (memory == NULL)
		return NULL;
	if (alignment == huge)
		(void)madvise(memory, rounded, MADV_HUGEPAGE);
	memset(memory, 0, rounded);
	ledger->memory_bytes += rounded;
	return memory;
}

struct ledger *ledger_create(const struct ledger_config *config, int *error)
{
	assert(config != NULL);
	assert(error != NULL);
	*error = 0;
	if (!ledger_config_valid(config)) {
		*error = -EINVAL;
		return NULL;
	}
	struct ledger *ledger = aligned_alloc(64, (sizeof(*ledger) + 63) & ~(size_t)63);
	if (ledger == NULL)
		goto fail_nomem;
	memset(ledger, 0, sizeof(*ledger));
	ledger->config = *config;
	ledger->memory_bytes = sizeof(*ledger);

	ledger->account_slots = config->accounts_max + config->accounts_max / 4;
	if (ledger->account_slots <= config->accounts_max)
		ledger->account_slots = config->accounts_max + 1; /* one empty slot ends every probe */
	uint64_t window_slots = ledger_power_of_two_at_least(config->transfers_max * 2);
	uint64_t hold_slots = ledger_power_of_two_at_least(config->holds_max * 2);
	/* The same memory as 2 * transfers_max 8-byte slots, in buckets of
	 * 7 slots + a count: load <= 4/7. */
	uint64_t window_buckets = window_slots / 8;
	ledger->window_mask = window_buckets - 1;
	ledger->hold_mask = hold_slots - 1;

	ledger->accounts = ledger_allocate(ledger, ledger->account_slots * sizeof(struct ledger_account));
	ledger->account_tags = ledger_allocate(ledger, ledger->account_slots * sizeof(uint16_t));
	ledger->ring = ledger_allocate(ledger, config->transfers_max * sizeof(struct ledger_window_entry));
	ledger->window_index = ledger_allocate(ledger, window_buckets * sizeof(struct ledger_window_bucket));
	ledger->holds = ledger_allocate(ledger, hold_slots * sizeof(struct ledger_hold));
	ledger->heap = ledger_allocate(ledger, config->holds_max * sizeof(struct ledger_heap_node));
	if (!ledger->accounts || !ledger->account_tags || !ledger->ring || !ledger->window_index || !ledger->holds ||
	    !ledger->heap)
		goto fail_nomem;
	/* Relationships between the sizes the tables rely on. */
	assert(ledger->account_slots > config->accounts_max); /* an empty slot ends every probe */
	assert(hold_slots >= 2 * config->holds_max);
	assert((hold_slots & (hold_slots - 1)) == 0);
	assert((window_buckets & (window_buckets - 1)) == 0);
	assert(window_buckets * LEDGER_WINDOW_BUCKET_SLOTS * 4 >= config->transfers_max * 7); /* load <= 4/7 */
	assert(config->transfers_max < (UINT64_C(1) << 32)); /* ring position + 1 fits the slot's low half */
	return ledger;

fail_nomem:
	ledger_destroy(ledger);
	*error = -ENOMEM;
	return NULL;
}

void ledger_destroy(struct ledger *ledger)
{
	if (ledger == NULL)
		return;
	free(ledger->accounts);
	free(ledger->account_tags);
	free(ledger->ring);
	free(ledger->window_index);
	free(ledger->holds);
	free(ledger->heap);
	free(ledger);
}

/* ---- counters and look-ups ------------------------------------------------ */
uint64_t ledger_account_count(const struct ledger *ledger) { return ledger->account_count; }
uint64_t ledger_hold_count(const struct ledger *ledger) { return ledger->hold_count; }
uint64_t ledger_sequence(const struct ledger *ledger) { return ledger->sequence; }
uint64_t ledger_now(const struct ledger *ledger) { return ledger->now_us; }
size_t ledger_memory_bytes(const struct ledger *ledger) { return ledger->memory_bytes; }
const struct ledger_config *ledger_config_get(const struct ledger *ledger) { return &ledger->config; }

const struct ledger_account *ledger_account_get(const struct ledger *ledger, uint64_t id)
{
	assert(ledger != NULL);
	if (id == 0)
		return NULL;
	return ledger_account_find(ledger, id, ledger_hash_id(id));
}

bool ledger_transfer_get(const struct ledger *ledger, uint64_t id,
			 struct ledger_transfer_info *info)
{
	assert(ledger != NULL);
	const struct ledger_window_entry *entry = ledger_window_find(ledger, id, ledger_hash_id(id));
	if (entry == NULL)
		return false;
	if (info != NULL)
		ledger_window_info(entry, info);
	return true;
}

uint64_t ledger_id_mix(uint64_t id)
{
	return ledger_hash_id(id);
}

uint64_t ledger_evicted_watermark(const struct ledger *ledger)
{
	assert(ledger != NULL);
	return ledger->evicted_any ? ledger->evicted_watermark : 0;
}

void ledger_set_evict_hook(struct ledger *ledger, ledger_evict_fn evict, void *context)
{
	assert(ledger != NULL);
	ledger->evict = evict;
	ledger->evict_context = context;
}

int ledger_transfer_foreach(const struct ledger *ledger,
			    int (*visit)(const struct ledger_transfer_info *info, void *context),
			    void *context)
{
	assert(ledger != NULL);
	assert(visit != NULL);
	assert(ledger->ring_count <= ledger->config.transfers_max);
	uint64_t capacity = ledger->config.transfers_max;
	uint64_t position = (ledger->ring_next + capacity - ledger->ring_count) % capacity;
	for (uint64_t i = 0; i < ledger->ring_count; i++) {
		struct ledger_transfer_info info;
		ledger_window_info(&ledger->ring[position], &info);
		int status = visit(&info, context);
		if (status != 0)
			return status;
		position = position + 1 == capacity ? 0 : position + 1;
	}
	return 0;
}

char *ledger_format_i128(__int128 value, char *buf, size_t size)
{
	assert(size >= 41);
	assert(buf != NULL);
	char digits[41]; /* 2^127 has 39 digits */
	size_t count = 0;
	unsigned __int128 magnitude = value < 0 ? -(unsigned __int128)value : (unsigned __int128)value;
	do {
		digits[count++] = (char)('0' + (int)(magnitude % 10));
		magnitude /= 10;
	} while (magnitude != 0 && count < sizeof(digits));
	size_t at = 0;
	if (value < 0)
		buf[at++] = '-';
	assert(magnitude == 0); /* every digit fitted */
	while (count > 0 && at + 1 < size)
		buf[at++] = digits[--count];
	assert(count == 0); /* size >= 41: never truncated */
	buf[at] = '\0';
	return buf;
}

int ledger_account_foreach(const struct ledger *ledger,
			   int (*visit)(const struct ledger_account *account, void *context),
			   void *context)
{
	assert(ledger != NULL);
	assert(visit != NULL);
	for (uint64_t slot = 0; slot < ledger->account_slots; slot++) {
		if (ledger->accounts[slot].id == 0)
			continue;
		int status = visit(&ledger->accounts[slot], context);
		if (status != 0)
			return status;
	}
	return 0;
}

int ledger_remote_credit(const struct ledger *ledger, const struct ledger_request *request,
			 const struct ledger_result *result, struct ledger_request *credit)
{
	assert(ledger != NULL);
	assert(request != NULL);
	assert(result != NULL);
	assert(credit != NULL);
	if (!(result->flags & LEDGER_RESULT_CREDIT_REMOTE) || (result->flags & LEDGER_RESULT_DUPLICATE))
		return -EINVAL;
	const struct ledger_window_entry *entry =
		ledger_window_find(ledger, request->id, ledger_hash_id(request->id));
	memset(credit, 0, sizeof(*credit));
	credit->id = request->id;
	credit->timestamp_us = request->timestamp_us;
	credit->kind = LEDGER_KIND_CREDIT;
	credit->flags = request->kind;
	/* A RETURN copies it: it names the refunded payment or the captured hold
	 * whose state the return must undo on the payer's shard. */
	if (request->kind == LEDGER_KIND_REFUND || request->kind == LEDGER_KIND_CAPTURE)
		credit->reference_id = request->reference_id;
	if (entry != NULL && entry->kind == request->kind && entry->code == LEDGER_OK) {
		credit->account_id = entry->account_id;
		credit->other_id = entry->other_id;
		credit->amount = entry->amount;
		credit->currency = entry->currency;
		assert(credit->amount > 0); /* an approved transfer moved money */
		assert(credit->amount <= (uint64_t)INT64_MAX);
		assert(credit->account_id != credit->other_id);
		return 0;
	}
	if (request->kind == LEDGER_KIND_CAPTURE)
		return -ENOENT; /* the payee and currency live only in the evicted entry */
	credit->account_id = request->account_id;
	credit->other_id = request->other_id;
	credit->amount = request->amount;
	credit->currency = request->currency;
	return 0;
}
