/*
 * ledger_window.c — the deduplication window: a FIFO ring of transfers_max
 * entries plus a bucketized open-addressing index (power-of-two buckets of
 * 7 slots, one cache line each, at least 2x transfers_max slots' worth of
 * memory so the load stays <= 4/7).
 *
 * An index slot is 64 bits: the ring position + 1 in the low half (0 = empty)
 * and the upper 32 bits of the id's hash in the high half; the home bucket is
 * the low bits of the hash. A search compares the fingerprints of a whole
 * bucket at once (the compiler vectorizes the loop) and reads the ring only
 * on a fingerprint match. An entry goes to the first bucket from its home
 * with a free slot; every full bucket it passes counts it in `overflow`, and
 * a search stops at the first bucket whose `overflow` is zero. Removing an
 * entry clears its slot and decrements those counts: nothing moves, so the
 * eviction touches exactly the buckets its insertion touched (almost always
 * one).
 */
#include <immintrin.h>

#include "ledger_internal.h"

static inline uint64_t ledger_window_fingerprint(uint64_t hash)
{
	return hash >> 32;
}

/* Bit i set when slot i of the bucket carries the fingerprint (one vector
 * compare where the target has one); an empty slot (0) matches fingerprint
 * 0, so the caller also checks the position half. */
static inline uint32_t ledger_window_matches(const struct ledger_window_bucket *bucket,
					     uint64_t fingerprint)
{
	const uint32_t slots_mask = (1u << LEDGER_WINDOW_BUCKET_SLOTS) - 1;
#if defined(__AVX512F__)
	__m512i line = _mm512_load_si512((const void *)bucket);
	__mmask8 mask = _mm512_cmpeq_epi64_mask(_mm512_srli_epi64(line, 32),
						_mm512_set1_epi64((long long)fingerprint));
	return (uint32_t)mask & slots_mask;
#elif defined(__AVX2__)
	__m256i wanted = _mm256_set1_epi64x((long long)fingerprint);
	__m256i low = _mm256_load_si256((const __m256i *)(const void *)&bucket->slot[0]);
	__m256i high = _mm256_load_si256((const __m256i *)(const void *)&bucket->slot[4]);
	uint32_t mask_low = (uint32_t)_mm256_movemask_pd(
		_mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_srli_epi64(low, 32), wanted)));
	uint32_t mask_high = (uint32_t)_mm256_movemask_pd(
		_mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_srli_epi64(high, 32), wanted)));
	return (mask_low | mask_high << 4) & slots_mask;
#else
	uint32_t mask = 0;
	for (uint32_t i = 0; i < LEDGER_WINDOW_BUCKET_SLOTS; i++)
		mask |= (uint32_t)((bucket->slot[i] >> 32) == fingerprint) << i;
	return mask & slots_mask;
#endif
}

/* Bit i set when slot i of the bucket equals `value` (0: the empty slots). */
static inline uint32_t ledger_window_equal(const struct ledger_window_bucket *bucket, uint64_t value)
{
	const uint32_t slots_mask = (1u << LEDGER_WINDOW_BUCKET_SLOTS) - 1;
#if defined(__AVX512F__)
	__m512i line = _mm512_load_si512((const void *)bucket);
	__mmask8 mask = _mm512_cmpeq_epi64_mask(line, _mm512_set1_epi64((long long)value));
	return (uint32_t)mask & slots_mask;
#elif defined(__AVX2__)
	__m256i wanted = _mm256_set1_epi64x((long long)value);
	__m256i low = _mm256_load_si256((const __m256i *)(const void *)&bucket->slot[0]);
	__m256i high = _mm256_load_si256((const __m256i *)(const void *)&bucket->slot[4]);
	uint32_t mask_low = (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(low, wanted)));
	uint32_t mask_high = (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(high, wanted)));
	return (mask_low | mask_high << 4) & slots_mask;
#else
	uint32_t mask = 0;
	for (uint32_t i = 0; i < LEDGER_WINDOW_BUCKET_SLOTS; i++)
		mask |= (uint32_t)(bucket->slot[i] == value) << i;
	return mask & slots_mask;
#endif
}

struct ledger_window_entry *ledger_window_find(const struct ledger *ledger, uint64_t id,
					       uint64_t hash)
{
	uint64_t fingerprint = ledger_window_fingerprint(hash);
	uint64_t index = hash & ledger->window_mask;
	for (uint64_t probe = 0; probe <= ledger->window_mask; probe++) {
		const struct ledger_window_bucket *bucket = &ledger->window_index[index];
		for (uint32_t mask = ledger_window_matches(bucket, fingerprint); mask != 0;
		     mask &= mask - 1) {
			uint32_t position = (uint32_t)bucket->slot[__builtin_ctz(mask)];
			if (position == 0)
				continue;
			struct ledger_window_entry *entry = &ledger->ring[position - 1];
			if (entry->id == id)
				return entry;
		}
		if (bucket->overflow == 0)
			return NULL;
		index = (index + 1) & ledger->window_mask;
	}
	assert(!"window index never fills: load <= 4/7");
	return NULL;
}

/* Removes the slot that points at ring position `position` (an entry whose
 * id hashes to `hash`), and the overflow counts its insertion added. */
static void ledger_window_unindex(struct ledger *ledger, uint64_t position, uint64_t hash)
{
	uint64_t want = (ledger_window_fingerprint(hash) << 32) | (position + 1);
	uint64_t home = hash & ledger->window_mask;
	uint64_t index = home;
	for (uint64_t probe = 0; probe <= ledger->window_mask; probe++) {
		struct ledger_window_bucket *bucket = &ledger->window_index[index];
		uint32_t found = ledger_window_equal(bucket, want);
		if (found != 0) {
			bucket->slot[__builtin_ctz(found)] = 0;
			for (uint64_t passed = home; passed != index;
			     passed = (passed + 1) & ledger->window_mask) {
				assert(ledger->window_index[passed].overflow > 0);
				ledger->window_index[passed].overflow--;
			}
			return;
		}
		assert(bucket->overflow > 0); /* an evicted entry is always indexed */
		index = (index + 1) & ledger->window_mask;
	}
	assert(!"an evicted entry is always indexed");
}

static void ledger_window_evict_oldest(struct ledger *ledger)
{
	assert(ledger->ring_count == ledger->config.transfers_max);
	uint64_t position = ledger->ring_next; /* full ring: the next slot is the oldest */
	const struct ledger_window_entry *oldest = &ledger->ring[position];
	assert(oldest->id != 0); /* every remembered request has an id (validated) */
	uint64_t watermark_before = ledger->evicted_any ? ledger->evicted_watermark : 0;
	if (!ledger->evicted_any || oldest->timestamp_us > ledger->evicted_watermark)
		ledger->evicted_watermark = oldest->timestamp_us;
	ledger->evicted_any = true;
	/* The watermark only rises, and covers what it forgets. */
	assert(ledger->evicted_watermark >= watermark_before);
	assert(ledger->evicted_watermark >= oldest->timestamp_us);
	(void)watermark_before;
	ledger_window_unindex(ledger, position, ledger_hash_id(oldest->id));
	ledger->ring_count--;
	if (ledger->evict != NULL) {
		struct ledger_transfer_info info;
		ledger_window_info(oldest, &info);
		ledger->evict(ledger->evict_context, &info, ledger->now_us);
	}
}

void ledger_window_insert(struct ledger *ledger, const struct ledger_window_entry *entry,
			  uint64_t hash)
{
	/* Callers looked the id up just before: it is not indexed (the
	 * invariant checks verify the index against the ring). */
	assert(entry->id != 0);
	LEDGER_DEBUG_ASSERT(ledger_window_find(ledger, entry->id, hash) == NULL);
	if (ledger->ring_count == ledger->config.transfers_max)
		ledger_window_evict_oldest(ledger);
	uint64_t position = ledger->ring_next;
	ledger->ring[position] = *entry;
	uint64_t value = (ledger_window_fingerprint(hash) << 32) | (position + 1);
	uint64_t index = hash & ledger->window_mask;
	uint64_t probe = 0;
	for (; probe <= ledger->window_mask; probe++) {
		struct ledger_window_bucket *bucket = &ledger->window_index[index];
		uint32_t empties = ledger_window_equal(bucket, 0);
		if (empties != 0) {
			bucket->slot[__builtin_ctz(empties)] = value;
			break;
		}
		bucket->overflow++;
		assert(bucket->overflow != 0);
		index = (index + 1) & ledger->window_mask;
	}
	assert(probe <= ledger->window_mask); /* the index never fills: load <= 4/7 */
	ledger->ring_count++;
	ledger->ring_next = position + 1 == ledger->config.transfers_max ? 0 : position + 1;
	assert(ledger->ring_count <= ledger->config.transfers_max);
}

/* Prefetches the home buckets of the entries the next `ahead` inserts will
 * evict: the ring is read sequentially (cheap), the bucket is random. */
void ledger_window_prefetch_eviction(const struct ledger *ledger, uint32_t ahead)
{
	uint64_t capacity = ledger->config.transfers_max;
	if (ledger->ring_count + ahead <= capacity)
		return;
	uint64_t position = ledger->ring_next;
	for (uint32_t i = 0; i < ahead && i < capacity; i++) {
		uint64_t hash = ledger_hash_id(ledger->ring[position].id);
		__builtin_prefetch(ledger_window_home(ledger, hash), 1, 3);
		position = position + 1 == capacity ? 0 : position + 1;
	}
}
