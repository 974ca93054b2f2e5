/*
 * ledger_window.c — the deduplication window: a FIFO ring of transfers_max
 * entries plus an open-addressing index (linear probing, power-of-two slots,
 * at least 2x transfers_max so the load stays <= 0.5).
 *
 * An index slot is 64 bits: the ring position + 1 in the low half (0 = empty)
 * and the upper 32 bits of the id's hash in the high half. The home slot is
 * derived from those stored bits, so a probe and a backward-shift deletion
 * never have to read the ring; the ring is read only on a fingerprint match.
 */
#include "ledger_internal.h"

static inline uint64_t ledger_window_home(const struct ledger *ledger, uint64_t hash_high)
{
	return hash_high & ledger->window_mask;
}

struct ledger_window_entry *ledger_window_find(const struct ledger *ledger, uint64_t id,
					       uint64_t hash)
{
	uint64_t high = hash >> 32;
	uint64_t slot = ledger_window_home(ledger, high);
	for (uint64_t probe = 0; probe <= ledger->window_mask; probe++) {
		uint64_t value = ledger->window_index[slot];
		if (value == 0)
			return NULL;
		if ((value >> 32) == high) {
			struct ledger_window_entry *entry = &ledger->ring[(uint32_t)value - 1];
			if (entry->id == id)
				return entry;
		}
		slot = (slot + 1) & ledger->window_mask;
	}
	assert(!"window index never fills: load <= 0.5");
	return NULL;
}

/* Removes the index slot that points at ring position `position`, closing
 * the gap by shifting later members of the cluster back (no tombstones). */
static void ledger_window_unindex(struct ledger *ledger, uint64_t position, uint64_t hash)
{
	uint64_t mask = ledger->window_mask;
	uint64_t slot = ledger_window_home(ledger, hash >> 32);
	uint64_t want = position + 1;
	while ((uint32_t)ledger->window_index[slot] != want) {
		assert(ledger->window_index[slot] != 0 && "an evicted entry is always indexed");
		slot = (slot + 1) & mask;
	}
	uint64_t hole = slot;
	uint64_t next = slot;
	for (;;) {
		next = (next + 1) & mask;
		uint64_t value = ledger->window_index[next];
		if (value == 0)
			break;
		uint64_t home = ledger_window_home(ledger, value >> 32);
		/* The member at `next` may move into the hole unless its home lies
		 * cyclically in (hole, next]. */
		if (((next - home) & mask) >= ((next - hole) & mask)) {
			ledger->window_index[hole] = value;
			hole = next;
		}
	}
	ledger->window_index[hole] = 0;
}

static void ledger_window_evict_oldest(struct ledger *ledger)
{
	assert(ledger->ring_count == ledger->config.transfers_max);
	uint64_t position = ledger->ring_next; /* full ring: the next slot is the oldest */
	const struct ledger_window_entry *oldest = &ledger->ring[position];
	assert(oldest->id != 0 || oldest->request_hash != 0 || oldest->kind != 0);
	if (!ledger->evicted_any || oldest->timestamp_us > ledger->evicted_watermark)
		ledger->evicted_watermark = oldest->timestamp_us;
	ledger->evicted_any = true;
	uint64_t cached = position % LEDGER_CHUNK;
	uint64_t hash = ledger->evict_tag[cached] == position + 1 ? ledger->evict_hash[cached]
								 : ledger_hash_id(oldest->id);
	ledger_window_unindex(ledger, position, hash);
	ledger->ring_count--;
}

void ledger_window_insert(struct ledger *ledger, const struct ledger_window_entry *entry,
			  uint64_t hash)
{
	/* Callers looked the id up just before: it is not indexed (the
	 * invariant checks verify the index against the ring). */
	if (ledger->ring_count == ledger->config.transfers_max)
		ledger_window_evict_oldest(ledger);
	uint64_t position = ledger->ring_next;
	ledger->ring[position] = *entry;
	ledger->evict_tag[position % LEDGER_CHUNK] = 0; /* the cached hash was the evicted entry's */
	uint64_t high = hash >> 32;
	uint64_t slot = ledger_window_home(ledger, high);
	while (ledger->window_index[slot] != 0)
		slot = (slot + 1) & ledger->window_mask;
	ledger->window_index[slot] = (high << 32) | (position + 1);
	ledger->ring_count++;
	ledger->ring_next = position + 1 == ledger->config.transfers_max ? 0 : position + 1;
	assert(ledger->ring_count <= ledger->config.transfers_max);
}

/* Prefetches the index slots of the entries the next `ahead` inserts will
 * evict: the ring is read sequentially (cheap), the index slot is random. */
void ledger_window_prefetch_eviction(struct ledger *ledger, uint32_t ahead)
{
	uint64_t capacity = ledger->config.transfers_max;
	if (ledger->ring_count + ahead <= capacity)
		return;
	uint64_t position = ledger->ring_next;
	for (uint32_t i = 0; i < ahead && i < capacity; i++) {
		uint64_t hash = ledger_hash_id(ledger->ring[position].id);
		__builtin_prefetch(&ledger->window_index[(hash >> 32) & ledger->window_mask], 1, 3);
		ledger->evict_tag[position % LEDGER_CHUNK] = position + 1;
		ledger->evict_hash[position % LEDGER_CHUNK] = hash;
		position = position + 1 == capacity ? 0 : position + 1;
	}
}
