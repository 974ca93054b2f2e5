/*
 * claims.c — the switch-wide id table (see claims.h for why).
 */
#include "claims.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"

#define CLAIMS_BUCKET_SLOTS 6u
#define CLAIMS_SHARDS_MAX 255u

/* One cache line: a spinlock, the count, each slot's owner, six ids. */
struct __attribute__((aligned(64))) claims_bucket {
	atomic_uint lock;
	uint8_t count;
	uint8_t owner[CLAIMS_BUCKET_SLOTS];
	uint8_t padding[5];
	uint64_t id[CLAIMS_BUCKET_SLOTS];
};
_Static_assert(sizeof(struct claims_bucket) == 64, "a bucket is one cache line");

struct engine_claims {
	struct claims_bucket *buckets;
	uint64_t mask;              /* buckets - 1 */
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t watermark_us;
};

struct engine_claims *engine_claims_create(uint64_t capacity, int *error)
{
	assert(error != NULL);
	*error = 0;
	if (capacity == 0 || capacity > (UINT64_C(1) << 36)) {
		*error = -EINVAL;
		return NULL;
	}
	/* Sized for half the slots at most. */
	uint64_t buckets = 2;
	while (buckets * CLAIMS_BUCKET_SLOTS < capacity * 2)
		buckets *= 2;
	struct engine_claims *claims = calloc(1, sizeof(*claims));
	if (claims == NULL)
		goto fail;
	claims->buckets = aligned_alloc(64, buckets * sizeof(struct claims_bucket));
	if (claims->buckets == NULL)
		goto fail;
	memset(claims->buckets, 0, buckets * sizeof(struct claims_bucket));
	claims->mask = buckets - 1;
	/* Load <= 1/2, and the mask works: a power of two of buckets. */
	assert((buckets & (buckets - 1)) == 0);
	assert(buckets * CLAIMS_BUCKET_SLOTS >= capacity * 2);
	return claims;
fail:
	engine_claims_destroy(claims);
	*error = -ENOMEM;
	return NULL;
}

void engine_claims_destroy(struct engine_claims *claims)
{
	if (claims == NULL)
		return;
	free(claims->buckets);
	free(claims);
}

static void bucket_lock(struct claims_bucket *bucket)
{
	/* Acquire: the slots read under the lock are the last holder's. */
	while (atomic_exchange_explicit(&bucket->lock, 1, memory_order_acquire) != 0)
		while (atomic_load_explicit(&bucket->lock, memory_order_relaxed) != 0)
			__builtin_ia32_pause();
}

static void bucket_unlock(struct claims_bucket *bucket)
{
	/* Release: the next holder sees every slot written under the lock. */
	atomic_store_explicit(&bucket->lock, 0, memory_order_release);
}

/* The two candidate buckets of an id, lower index first; equal when they coincide. */
static void claims_pair(const struct engine_claims *claims, uint64_t id,
			struct claims_bucket **first, struct claims_bucket **second)
{
	uint64_t hash = ledger_id_mix(id);
	uint64_t a = hash & claims->mask;
	uint64_t b = (hash >> 32) & claims->mask;
	*first = &claims->buckets[a < b ? a : b];
	*second = &claims->buckets[a < b ? b : a];
}

static void pair_lock(struct claims_bucket *first, struct claims_bucket *second)
{
	bucket_lock(first);
	if (second != first)
		bucket_lock(second);
}

static void pair_unlock(struct claims_bucket *first, struct claims_bucket *second)
{
	if (second != first)
		bucket_unlock(second);
	bucket_unlock(first);
}

/* Slot of id in bucket, or -1. */
static int bucket_find(const struct claims_bucket *bucket, uint64_t id)
{
	for (uint32_t i = 0; i < bucket->count; i++)
		if (bucket->id[i] == id)
			return (int)i;
	return -1;
}

enum engine_claim engine_claims_take(struct engine_claims *claims, uint64_t id, uint32_t shard,
				     uint32_t *owner)
{
	assert(claims != NULL);
	assert(owner != NULL);
	assert(id != 0);
	assert(shard < CLAIMS_SHARDS_MAX);
	struct claims_bucket *first, *second;
	claims_pair(claims, id, &first, &second);
	pair_lock(first, second);
	enum engine_claim outcome;
	struct claims_bucket *holder = first;
	int slot = bucket_find(first, id);
	if (slot < 0 && second != first) {
		holder = second;
		slot = bucket_find(second, id);
	}
	if (slot >= 0) {
		assert(holder->count <= CLAIMS_BUCKET_SLOTS);
		*owner = holder->owner[slot];
		outcome = *owner == shard ? ENGINE_CLAIM_MINE : ENGINE_CLAIM_OTHER;
	} else {
		struct claims_bucket *emptier = second->count < first->count ? second : first;
		*owner = shard;
		if (emptier->count == CLAIMS_BUCKET_SLOTS) {
			outcome = ENGINE_CLAIM_FULL;
		} else {
			emptier->id[emptier->count] = id;
			emptier->owner[emptier->count] = (uint8_t)shard;
			emptier->count++;
			assert(emptier->count <= CLAIMS_BUCKET_SLOTS);
			atomic_fetch_add_explicit(&claims->count, 1, memory_order_relaxed);
			outcome = ENGINE_CLAIM_NEW;
		}
	}
	pair_unlock(first, second);
	return outcome;
}

static int bucket_remove(struct claims_bucket *bucket, uint64_t id, uint32_t shard)
{
	int slot = bucket_find(bucket, id);
	if (slot < 0 || bucket->owner[slot] != shard)
		return 0;
	assert(bucket->count > 0); /* a slot was found */
	assert((uint32_t)slot < bucket->count);
	uint32_t last = bucket->count - 1u;
	bucket->id[slot] = bucket->id[last];
	bucket->owner[slot] = bucket->owner[last];
	bucket->id[last] = 0;
	bucket->owner[last] = 0;
	bucket->count--;
	return 1;
}

int engine_claims_release(struct engine_claims *claims, uint64_t id, uint32_t shard)
{
	assert(claims != NULL);
	struct claims_bucket *first, *second;
	claims_pair(claims, id, &first, &second);
	pair_lock(first, second);
	int released = bucket_remove(first, id, shard);
	if (!released && second != first)
		released = bucket_remove(second, id, shard);
	pair_unlock(first, second);
	if (released) {
		uint_fast64_t before = atomic_fetch_sub_explicit(&claims->count, 1, memory_order_relaxed);
		assert(before > 0); /* a released claim was counted when taken */
		(void)before;
	}
	return released;
}

uint64_t engine_claims_count(const struct engine_claims *claims)
{
	return atomic_load_explicit(&claims->count, memory_order_relaxed);
}

void engine_claims_note_evicted(struct engine_claims *claims, uint64_t timestamp_us)
{
	assert(claims != NULL);
	uint_fast64_t seen = atomic_load_explicit(&claims->watermark_us, memory_order_relaxed);
	while (timestamp_us > seen &&
	       !atomic_compare_exchange_weak_explicit(&claims->watermark_us, &seen, timestamp_us,
						      memory_order_relaxed, memory_order_relaxed))
		;
}

uint64_t engine_claims_watermark(const struct engine_claims *claims)
{
	return atomic_load_explicit(&claims->watermark_us, memory_order_relaxed);
}
