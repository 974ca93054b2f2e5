/*
 * claims.h — one id space for the whole switch.
 *
 * Each shard deduplicates the ids it decided in its own window, so on its own
 * a switch of several shards would approve one id twice when two requests
 * carrying it name debit accounts on different shards (issue 14, defect 3).
 * The claims table says which shard holds an id: a shard claims a client
 * request's id before its ledger decides it, and releases the claim when its
 * window forgets the id (the ledger's eviction hook) or when the ledger did
 * not remember the request at all. A request whose id another shard holds is
 * refused ID_REUSED by the engine, before any ledger sees it; that refusal
 * changes nothing, so it is not journaled (like BUSY).
 *
 * With one shard there is nothing to coordinate and the table is not built.
 *
 * Layout: power-of-two buckets of one cache line, six ids each with their
 * owner, behind a spinlock per bucket; every id may live in either of two
 * buckets (two-choice hashing, locked in index order), so at the load the
 * table is sized for (at most half full) a full pair is practically
 * impossible — and still answered (ENGINE_CLAIM_FULL: the engine says BUSY).
 *
 * Thread-safety: every function may be called from any shard thread at once.
 * Memory: allocated once by engine_claims_create().
 */
#ifndef PAYSWITCH_ENGINE_CLAIMS_H
#define PAYSWITCH_ENGINE_CLAIMS_H

#include <stdint.h>

struct engine_claims;

enum engine_claim {
	ENGINE_CLAIM_NEW = 0,    /* nobody held it: now `shard` does */
	ENGINE_CLAIM_MINE = 1,   /* `shard` already held it */
	ENGINE_CLAIM_OTHER = 2,  /* another shard holds it (*owner says which) */
	ENGINE_CLAIM_FULL = 3,   /* no room in either bucket: refuse BUSY */
};

/* A table for `capacity` ids at most (the sum of the shards' windows plus a
 * batch each). Returns NULL with *error = -ENOMEM or -EINVAL. */
struct engine_claims *engine_claims_create(uint64_t capacity, int *error);
void engine_claims_destroy(struct engine_claims *claims);

/* Claims `id` (non-zero) for `shard` (< 255). */
enum engine_claim engine_claims_take(struct engine_claims *claims, uint64_t id, uint32_t shard,
				     uint32_t *owner);

/* Releases `id` if `shard` holds it; returns 1 when it did, 0 otherwise. */
int engine_claims_release(struct engine_claims *claims, uint64_t id, uint32_t shard);

/* Ids held now (relaxed: for metrics). */
uint64_t engine_claims_count(const struct engine_claims *claims);

/* The newest timestamp any shard's window evicted: a request at or before it
 * is TOO_OLD on every shard, not only the one that evicted (monotonic max). */
void engine_claims_note_evicted(struct engine_claims *claims, uint64_t timestamp_us);
uint64_t engine_claims_watermark(const struct engine_claims *claims);

#endif
