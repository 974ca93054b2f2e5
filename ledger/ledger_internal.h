/*
 * ledger_internal.h — the layout of struct ledger and the helpers shared by
 * the ledger core's source files. Private to ledger/: nothing outside the
 * folder includes it.
 */
#ifndef PAYSWITCH_LEDGER_INTERNAL_H
#define PAYSWITCH_LEDGER_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "ledger.h"

/* Assertions (ledger/README.md, "Assertions"). assert() is on in every
 * build (b_ndebug=false): one condition per assert, so a failure names the
 * broken condition. LEDGER_DEBUG_ASSERT() is for the checks that cost more
 * than a compare of values already in registers (copies of accounts, loops,
 * scans): on in debug (-O0) and sanitizer builds, compiled out (but still
 * type-checked) in optimized builds; -DLEDGER_DEBUG_ASSERTS=0/1 forces it. */
#if defined(__SANITIZE_ADDRESS__)
#define LEDGER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang's spelling */
#define LEDGER_SANITIZED 1
#endif
#endif
#ifndef LEDGER_DEBUG_ASSERTS
#if !defined(__OPTIMIZE__) || defined(LEDGER_SANITIZED)
#define LEDGER_DEBUG_ASSERTS 1
#else
#define LEDGER_DEBUG_ASSERTS 0
#endif
#endif
#if LEDGER_DEBUG_ASSERTS
#define LEDGER_DEBUG_ASSERT(condition) assert(condition)
#else
#define LEDGER_DEBUG_ASSERT(condition) ((void)sizeof(condition))
#endif

/* Bounds that size every table; create() refuses configs beyond them. */
#define LEDGER_CURRENCIES_MAX 32u
#define LEDGER_ACCOUNTS_LIMIT (UINT64_C(1) << 32)   /* slot index fits in 64 bits anyway */
#define LEDGER_TRANSFERS_LIMIT (UINT64_C(1) << 30)  /* ring position + 1 fits in 31 bits */
#define LEDGER_HOLDS_LIMIT (UINT64_C(1) << 28)
#define LEDGER_US_PER_DAY UINT64_C(86400000000)
#define LEDGER_CHUNK 64u                            /* requests prefetched per pass */

/* One entry of the deduplication window: exactly one cache line. */
struct ledger_window_entry {
	uint64_t id;
	uint64_t timestamp_us;
	uint64_t account_id;
	uint64_t other_id;     /* CAPTURE: the hold's payee */
	uint64_t amount;       /* CAPTURE: the captured amount */
	uint64_t amount_done;  /* refunded (payments, credits) or captured (holds) */
	uint64_t request_hash; /* XXH3 of the whole 64-byte request */
	uint16_t currency;
	uint8_t kind;
	uint8_t code;
	uint8_t state;         /* enum ledger_transfer_state */
	uint8_t origin;        /* CREDIT: the kind that debited the payer remotely */
	uint16_t padding;
};
_Static_assert(sizeof(struct ledger_window_entry) == 64, "window entry is one cache line");

/* One bucket of the window index: one cache line, so a probe is one miss
 * and one vector compare. A slot is the ring position + 1 in the low half
 * (0 = empty) and the fingerprint (upper 32 bits of the id's hash) in the
 * high half; the home bucket comes from the low bits of the hash.
 * `overflow` counts the entries stored past this bucket whose probe passed
 * through it (F14-style): a search goes on to the next bucket only while it
 * is non-zero, so deletion needs no tombstones nor shifting. */
#define LEDGER_WINDOW_BUCKET_SLOTS 7u
struct __attribute__((aligned(64))) ledger_window_bucket {
	uint64_t slot[LEDGER_WINDOW_BUCKET_SLOTS];
	uint32_t overflow;
	uint32_t padding;
};
_Static_assert(sizeof(struct ledger_window_bucket) == 64, "window bucket is one cache line");

/* A pending hold: the key is the HOLD request id. */
struct ledger_hold {
	uint64_t id;           /* 0 = empty slot */
	uint64_t account_id;
	uint64_t other_id;
	uint64_t amount;
	uint64_t expires_at_us;
	uint32_t heap_index;   /* position of this hold in the expiry heap */
	uint16_t currency;
	uint16_t padding;
};
_Static_assert(sizeof(struct ledger_hold) == 48, "hold is 48 bytes");

/* Expiry heap node: the key is copied so sifting never touches the table. */
struct ledger_heap_node {
	uint64_t expires_at_us;
	uint64_t slot;         /* index in the hold table */
};

struct ledger_currency {
	uint16_t currency;     /* 0 = unused */
	/* Debited here for other shards less credited here from them: minus the
	 * sum of this shard's balances. Exact in 128 bits: a shard's balances
	 * (and so its transit) may sum beyond int64 while each balance fits. */
	__int128 transit;
};

struct ledger {
	struct ledger_config config;
	uint64_t now_us;
	uint64_t today;               /* now_us / LEDGER_US_PER_DAY, computed per batch */
	uint64_t sequence;

	struct ledger_account *accounts;
	uint16_t *account_tags;       /* per slot: (uint16_t)hash | 1, 0 = empty */
	uint64_t account_slots;       /* accounts_max * 5 / 4, not a power of two */
	uint64_t account_count;

	struct ledger_window_entry *ring;
	uint64_t ring_next;           /* position written next */
	uint64_t ring_count;          /* entries in use, <= transfers_max */
	struct ledger_window_bucket *window_index; /* one cache line per bucket */
	uint64_t window_mask;         /* window index buckets - 1 (power of two) */
	uint64_t evicted_watermark;   /* max timestamp evicted from the ring */
	bool evicted_any;

	struct ledger_hold *holds;
	uint64_t hold_mask;           /* hold slots - 1 (power of two) */
	uint64_t hold_count;
	struct ledger_heap_node *heap; /* min-heap of pending holds, hold_count nodes */

	uint32_t currency_count;
	struct ledger_currency currencies[LEDGER_CURRENCIES_MAX];
	uint8_t currency_index[65536]; /* currency -> index + 1; 0 = unknown */

	size_t memory_bytes;
	ledger_evict_fn evict;        /* observer of window evictions, or NULL */
	void *evict_context;
};

/* ---- hashing ------------------------------------------------------------ */
/* The hash every table of the ledger (accounts, window, holds) places ids
 * with: a bijective 64-bit mixer (murmur3's fmix64 constants, with a
 * rotate so both halves feed the top bits), ~6 instructions instead of an
 * XXH3 call. A bijection means distinct ids never collide on all 64 bits.
 * XXH3 (ledger_hash_shard) stays the routing hash: the engine shards by it. */
static inline uint64_t ledger_hash_id(uint64_t id)
{
	uint64_t x = id;
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

/* The routing hash: ledger_shard_of() is XXH3(id) % shard_count. */
static inline uint64_t ledger_hash_shard(uint64_t id)
{
	return XXH3_64bits(&id, sizeof(id));
}

/* Lemire's fast range: maps a hash onto [0, n) without a division. */
static inline uint64_t ledger_fast_range(uint64_t hash, uint64_t n)
{
	return (uint64_t)(((__uint128_t)hash * n) >> 64);
}

/* ---- accounts (ledger_accounts.c) ---------------------------------------- */
static inline uint64_t ledger_account_home(const struct ledger *ledger, uint64_t hash)
{
	return ledger_fast_range(hash, ledger->account_slots);
}

/* The low bits: the home slot comes from the high bits (fast range), so
 * the tag adds independent bits to tell keys of one cluster apart. */
static inline uint16_t ledger_account_tag(uint64_t hash)
{
	return (uint16_t)hash | 1; /* never 0: 0 marks an empty slot */
}

/* The first slot on the probe sequence whose tag matches (a candidate: its
 * id still has to be compared), or the account_slots if the sequence ends
 * first. Reads only the tag array: 32 slots per cache line, so a probe
 * (2 slots on average at load 0.8) stays in the line prefetched for it. */
static inline uint64_t ledger_account_candidate(const struct ledger *ledger, uint64_t hash,
						 uint64_t slot)
{
	uint16_t tag = ledger_account_tag(hash);
	for (uint64_t probe = 0; probe < ledger->account_slots; probe++) {
		uint16_t found = ledger->account_tags[slot];
		if (found == tag)
			return slot;
		if (found == 0)
			break;
		slot = slot + 1 == ledger->account_slots ? 0 : slot + 1;
	}
	return ledger->account_slots;
}

/* Finds an account given the hash of its id; NULL if absent. */
static inline struct ledger_account *ledger_account_find(const struct ledger *ledger,
							 uint64_t id, uint64_t hash)
{
	if (id == 0)
		return NULL; /* id 0 marks an empty slot: it is never an account */
	uint16_t tag = ledger_account_tag(hash);
	uint64_t slot = ledger_account_home(ledger, hash);
	for (uint64_t probe = 0; probe < ledger->account_slots; probe++) {
		uint16_t found = ledger->account_tags[slot];
		if (found == tag && ledger->accounts[slot].id == id)
			return &ledger->accounts[slot];
		if (found == 0)
			return NULL;
		slot = slot + 1 == ledger->account_slots ? 0 : slot + 1;
	}
	return NULL;
}

/* Available balance: balance - held. Every debit and hold checks that it
 * stays within int64 (ledger_debit_overflows, ledger_hold_overflows). */
static inline int64_t ledger_available(const struct ledger_account *account)
{
	__int128 available = (__int128)account->balance - (__int128)account->held;
	assert(available >= INT64_MIN);
	assert(available <= INT64_MAX);
	return (int64_t)available;
}

static inline int64_t ledger_available_or_zero(const struct ledger_account *account)
{
	return account == NULL ? 0 : ledger_available(account);
}

/* Whether a debit of amount keeps the account above its floor. */
static inline bool ledger_debit_allowed(const struct ledger_account *account, uint64_t amount)
{
	if (account->flags & LEDGER_ACCOUNT_FUNDING)
		return true;
	__int128 after = (__int128)account->balance - (__int128)account->held - (__int128)amount;
	return after >= -(__int128)account->limit_overdraft;
}

struct ledger_account *ledger_account_insert(struct ledger *ledger, uint64_t id, uint64_t hash);

/* ---- currencies ---------------------------------------------------------- */
/* Index of a known currency, or -1. */
static inline int ledger_currency_slot(const struct ledger *ledger, uint16_t currency)
{
	return (int)ledger->currency_index[currency] - 1;
}
int ledger_currency_register(struct ledger *ledger, uint16_t currency);
void ledger_transit_add(struct ledger *ledger, uint16_t currency, int64_t delta);

/* ---- deduplication window (ledger_window.c) ------------------------------ */
struct ledger_window_entry *ledger_window_find(const struct ledger *ledger, uint64_t id,
					       uint64_t hash);
void ledger_window_insert(struct ledger *ledger, const struct ledger_window_entry *entry,
			  uint64_t hash);
void ledger_window_prefetch_eviction(const struct ledger *ledger, uint32_t ahead);

/* The public view of a window entry. */
static inline void ledger_window_info(const struct ledger_window_entry *entry,
				      struct ledger_transfer_info *info)
{
	memset(info, 0, sizeof(*info));
	info->id = entry->id;
	info->timestamp_us = entry->timestamp_us;
	info->account_id = entry->account_id;
	info->other_id = entry->other_id;
	info->amount = entry->amount;
	info->amount_done = entry->amount_done;
	info->currency = entry->currency;
	info->kind = entry->kind;
	info->code = entry->code;
	info->state = entry->state;
}

static inline const struct ledger_window_bucket *ledger_window_home(const struct ledger *ledger,
								    uint64_t hash)
{
	return &ledger->window_index[hash & ledger->window_mask];
}


/* ---- holds (ledger_holds.c) ---------------------------------------------- */
struct ledger_hold *ledger_hold_find(const struct ledger *ledger, uint64_t id);
struct ledger_hold *ledger_hold_insert(struct ledger *ledger, const struct ledger_hold *hold);
void ledger_hold_remove(struct ledger *ledger, struct ledger_hold *hold);

/* ---- operations ---------------------------------------------------------- */
/* The context one decision runs with: the request, its precomputed hashes
 * and the result being filled. */
struct ledger_op {
	const struct ledger_request *request;
	struct ledger_result *result;
	uint64_t account_hash;
	uint64_t other_hash;
	uint64_t account_home;   /* home slots in the account table */
	uint64_t other_home;
	uint64_t id_hash;
	uint64_t request_hash;
	/* Candidate slots resolved from the tag array before the decisions of
	 * the batch, their lines prefetched. Accounts never move nor disappear,
	 * so a candidate whose id matches is the account for the whole batch;
	 * otherwise (NULL, tag collision, or opened by an earlier request of
	 * the batch) the account is looked up again. */
	struct ledger_account *account;
	struct ledger_account *other;
	struct ledger_window_entry remember; /* what the window will keep */
};

static inline struct ledger_account *ledger_op_account(const struct ledger *ledger,
							struct ledger_op *op)
{
	struct ledger_account *account = op->account;
	if (account != NULL && account->id == op->request->account_id && account->id != 0)
		return account;
	return op->account = ledger_account_find(ledger, op->request->account_id, op->account_hash);
}

static inline struct ledger_account *ledger_op_other(const struct ledger *ledger,
						      struct ledger_op *op)
{
	struct ledger_account *other = op->other;
	if (other != NULL && other->id == op->request->other_id && other->id != 0)
		return other;
	return op->other = ledger_account_find(ledger, op->request->other_id, op->other_hash);
}

#if LEDGER_DEBUG_ASSERTS
/* What one decision may change, copied before it (ledger_check.c): after it
 * ledger_delta_assert() checks the double-entry delta (the money of the
 * touched accounts plus transit is unchanged) and that each side moved by
 * exactly what the rules of the kind and the code say (nothing on a
 * refusal or a repeat). Debug and sanitizer builds only. */
struct ledger_delta {
	const struct ledger_account *account; /* account_id's, or NULL */
	const struct ledger_account *payee;   /* the local payee, if not `account`, or NULL */
	bool payee_is_account;
	struct ledger_account account_before;
	struct ledger_account payee_before;
	struct ledger_hold hold;              /* CAPTURE, VOID: the hold (id 0 if none) */
	uint64_t spent_before;                /* the account's spending today */
	uint64_t sequence;
	uint64_t account_count;
	uint64_t hold_count;
	uint64_t ring_count;
	uint32_t currency_count;
	__int128 transit[LEDGER_CURRENCIES_MAX];
};
void ledger_delta_before(const struct ledger *ledger, const struct ledger_op *op,
			 struct ledger_delta *delta);
void ledger_delta_assert(const struct ledger *ledger, const struct ledger_op *op,
			 const struct ledger_delta *delta);
#endif

/* Each returns the result code; the caller fills flags, sequence, window. */
uint16_t ledger_op_open(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_freeze(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_close(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_set_limits(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_balance(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_lookup(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_transfer(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_refund(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_credit(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_return(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_hold(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_capture(struct ledger *ledger, struct ledger_op *op);
uint16_t ledger_op_void(struct ledger *ledger, struct ledger_op *op);

/* Building blocks of the operations, inline: they run several times per
 * request on the hot path. */
/* Hashes only when sharded: the table hash is not the routing hash. */
static inline bool ledger_is_remote(const struct ledger *ledger, uint64_t id)
{
	if (ledger->config.shard_count == 1)
		return false;
	return ledger_hash_shard(id) % ledger->config.shard_count != ledger->config.shard_index;
}

/* Shared by PAY, HOLD and CAPTURE: the payee side of a transfer. Returns OK
 * when other_id is a valid local payee (*payee set) or lives on another
 * shard (*payee NULL); otherwise the payee's code. */
static inline uint16_t ledger_check_payee(const struct ledger *ledger, uint64_t other_id,
			    struct ledger_account *account, uint16_t currency,
			    struct ledger_account **payee)
{
	*payee = NULL;
	if (other_id == 0)
		return LEDGER_PAYEE_NOT_FOUND;
	if (ledger_is_remote(ledger, other_id))
		return LEDGER_OK; /* checked by the payee's shard when the CREDIT arrives */
	if (account == NULL)
		return LEDGER_PAYEE_NOT_FOUND;
	assert(account->id == other_id);
	if (account->flags & LEDGER_ACCOUNT_CLOSED)
		return LEDGER_PAYEE_CLOSED;
	if (account->flags & LEDGER_ACCOUNT_FROZEN)
		return LEDGER_PAYEE_FROZEN;
	if (account->currency != currency)
		return LEDGER_CURRENCY_MISMATCH;
	*payee = account;
	return LEDGER_OK;
}

static inline uint16_t ledger_check_amount(uint64_t amount)
{
	if (amount == 0)
		return LEDGER_AMOUNT_ZERO;
	if (amount > (uint64_t)INT64_MAX)
		return LEDGER_AMOUNT_OVERFLOW;
	return LEDGER_OK;
}

/* Payer side shared by PAY, DEPOSIT, HOLD and REFUND: exists, open, not
 * frozen, same currency as the request. */
static inline uint16_t ledger_check_payer(struct ledger_account *account, uint16_t currency)
{
	if (account == NULL)
		return LEDGER_PAYER_NOT_FOUND;
	if (account->flags & LEDGER_ACCOUNT_CLOSED)
		return LEDGER_PAYER_CLOSED;
	if (account->flags & LEDGER_ACCOUNT_FROZEN)
		return LEDGER_PAYER_FROZEN;
	if (account->currency != currency)
		return LEDGER_CURRENCY_MISMATCH;
	return LEDGER_OK;
}

static inline uint64_t ledger_spent_today(const struct ledger *ledger, const struct ledger_account *account)
{
	return account->spent_day == (uint32_t)ledger->today ? account->spent_today : 0;
}

/* Per-payment and daily limits (PAY, HOLD). limit 0 = none. */
static inline uint16_t ledger_check_limits(const struct ledger *ledger, const struct ledger_account *payer,
			     uint64_t amount)
{
	if (payer->limit_payment != 0 && amount > payer->limit_payment)
		return LEDGER_EXCEEDS_PAYMENT_LIMIT;
	if (payer->limit_daily != 0) {
		uint64_t spent;
		if (__builtin_add_overflow(ledger_spent_today(ledger, payer), amount, &spent) ||
		    spent > payer->limit_daily)
			return LEDGER_EXCEEDS_DAILY_LIMIT;
	}
	return LEDGER_OK;
}

static inline void ledger_spend(const struct ledger *ledger, struct ledger_account *payer, uint64_t amount)
{
	uint64_t spent = ledger_spent_today(ledger, payer);
	if (__builtin_add_overflow(spent, amount, &spent)) {
		/* Reachable (a FUNDING account pays without limit): saturate the
		 * statistic. With a daily limit ledger_check_limits refused it. */
		assert(payer->limit_daily == 0);
		spent = UINT64_MAX;
	}
	payer->spent_today = spent;
	payer->spent_day = (uint32_t)ledger->today;
	assert(payer->limit_daily == 0 || payer->spent_today <= payer->limit_daily);
}

/* Posts a credit to a local payee or to transit (remote payee). */
static inline void ledger_post_credit(struct ledger *ledger, struct ledger_op *op,
			       struct ledger_account *payee, uint16_t currency, uint64_t amount)
{
	if (payee != NULL) {
		payee->balance += (int64_t)amount; /* overflow checked by the caller */
	} else {
		ledger_transit_add(ledger, currency, (int64_t)amount);
		op->result->flags |= LEDGER_RESULT_CREDIT_REMOTE;
		/* Only the payee's shard knows whether the credit lands. */
		op->remember.state = LEDGER_TRANSFER_CREDITING;
	}
}

/* Every transfer's money moves here: amount leaves payer and reaches payee
 * (or transit, for a payee on another shard), exactly, and the sum of the
 * two sides is unchanged (double entry, DESIGN.md rule 2). The caller has
 * checked the amount and both overflows; these assertions say so again. */
static inline void ledger_move(struct ledger *ledger, struct ledger_op *op,
			       struct ledger_account *payer, struct ledger_account *payee,
			       uint16_t currency, uint64_t amount)
{
	assert(amount > 0);
	assert(amount <= (uint64_t)INT64_MAX);
	assert(payer != NULL);
	assert(payer != payee);
	assert(payer->currency == currency);
	assert(payee == NULL || payee->currency == currency);
	int slot = ledger_currency_slot(ledger, currency);
	assert(slot >= 0);
	__int128 before = (__int128)payer->balance +
			  (payee != NULL ? (__int128)payee->balance : ledger->currencies[slot].transit);
	int64_t payer_before = payer->balance;
	payer->balance -= (int64_t)amount; /* overflow checked by the caller */
	ledger_post_credit(ledger, op, payee, currency, amount);
	__int128 after = (__int128)payer->balance +
			 (payee != NULL ? (__int128)payee->balance : ledger->currencies[slot].transit);
	assert(payer_before - payer->balance == (int64_t)amount);
	assert(before == after); /* the double-entry delta of the move: zero */
	/* The debit rule held: above the floor unless FUNDING (no floor). */
	assert((payer->flags & LEDGER_ACCOUNT_FUNDING) ||
	       (__int128)payer->balance - (__int128)payer->held >= -(__int128)payer->limit_overdraft);
	(void)payer_before;
	(void)before;
	(void)after;
}

static inline bool ledger_credit_overflows(const struct ledger_account *payee, uint64_t amount)
{
	int64_t sum;
	return payee != NULL && __builtin_add_overflow(payee->balance, (int64_t)amount, &sum);
}

/* Whether debiting amount (with held changing by held_delta) would take the
 * balance or the available balance (balance - held) out of int64: only a
 * FUNDING account, which has no floor, can get there. */
static inline bool ledger_debit_overflows_held(const struct ledger_account *payer, uint64_t amount,
					       __int128 held_delta)
{
	__int128 balance = (__int128)payer->balance - (__int128)amount;
	__int128 available = balance - ((__int128)payer->held + held_delta);
	return balance < INT64_MIN || available < INT64_MIN || available > INT64_MAX;
}

static inline bool ledger_debit_overflows(const struct ledger_account *payer, uint64_t amount)
{
	return ledger_debit_overflows_held(payer, amount, 0);
}

#endif /* PAYSWITCH_LEDGER_INTERNAL_H */
