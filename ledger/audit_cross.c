/*
 * audit_cross.c — the audit's rules between shards: see audit_cross.h.
 *
 * Online, per shard: a table keyed by id mirrors what the shard's window
 * remembers of cross-shard debits (for repeats and returns), payments (for
 * refunded sums) and holds (for captures), entries leaving with the window.
 * Over the data dir: one 32-byte "side" per cross-shard debit, CREDIT and
 * RETURN, and one 32-byte live interval per remembered client decision;
 * both are sorted by id in audit_cross_finish and judged there, because the
 * payer's shard may be replayed before or after the payee's.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_cross.h"
#include "journal_internal.h"

#define CROSS_TABLE_INITIAL 1024u
#define CROSS_QUEUE_MAX 64u          /* >= JOURNAL_BLOCK_RECORDS: one replay chunk */
#define CROSS_SHARD_BITS 10u         /* JOURNAL_SHARDS_MAX = 1024 */
#define CROSS_OPEN UINT64_MAX        /* an interval still live at the journal's end */

_Static_assert((1u << CROSS_SHARD_BITS) == JOURNAL_SHARDS_MAX, "shard fits its bits");
_Static_assert(CROSS_QUEUE_MAX >= JOURNAL_BLOCK_RECORDS, "a chunk's evictions fit the queue");

enum cross_role {
	CROSS_ROLE_OTHER = 0,   /* remembered only: its interval */
	CROSS_ROLE_PAYMENT = 1, /* refundable here: payer = customer, payee = merchant */
	CROSS_ROLE_HOLD = 2,    /* payer = holder */
	CROSS_ROLE_DEBIT = 3,   /* debited here, credited on another shard */
};

enum cross_entry_flags {
	CROSS_USED = 1u << 0,
	CROSS_RETURNED = 1u << 1,         /* DEBIT: its RETURN was journaled here */
	CROSS_CAPTURE_RETURNED = 1u << 2, /* HOLD: a capture of it was returned */
	CROSS_RELEASED = 1u << 3,         /* HOLD: captured or voided */
	CROSS_EVICTED = 1u << 4,          /* HOLD: out of the window, still pending */
};

struct cross_entry {
	uint64_t id;
	uint64_t payer;
	uint64_t payee;
	uint64_t amount;
	union {
		uint64_t refunded;      /* PAYMENT: approved refunds less returned ones */
		uint64_t reference;     /* DEBIT: the refunded payment, the captured hold */
		uint64_t expires_at_us; /* HOLD */
	};
	uint64_t interval_plus_one; /* 0: none open */
	uint16_t currency;
	uint16_t return_code;       /* DEBIT with CROSS_RETURNED: the payee's code */
	uint8_t role;
	uint8_t kind;               /* the kind of the decision it mirrors */
	uint8_t flags;
};

struct cross_table {
	struct cross_entry *slots;
	uint64_t capacity; /* power of two, load <= 1/2 */
	uint64_t count;
};

enum cross_side_kind { CROSS_DEBIT = 0, CROSS_CREDIT = 1, CROSS_RETURN = 2 };

struct cross_side {
	uint64_t id;
	uint64_t terms;      /* hash of payer, payee, amount, reference, currency */
	uint64_t sequence;
	uint16_t shard;      /* the journal it is in */
	uint16_t peer_shard; /* DEBIT: the payee's; CREDIT, RETURN: the payer's */
	uint8_t side;
	uint8_t origin;      /* DEBIT: its kind; CREDIT: flags (0 = unknown); RETURN: 0 */
	uint16_t code;       /* CREDIT: its code; RETURN: the payee's code (flags) */
};
_Static_assert(sizeof(struct cross_side) == 32, "32 bytes per side");

struct cross_interval {
	uint64_t id;
	uint64_t start_us;
	uint64_t end_us;         /* CROSS_OPEN: live at the end */
	uint64_t shard_sequence; /* sequence << CROSS_SHARD_BITS | shard */
};
_Static_assert(sizeof(struct cross_interval) == 32, "32 bytes per interval");

struct cross_eviction {
	uint64_t id;
	uint64_t timestamp_us;
	uint64_t now_us;
	uint64_t sequence;
	uint8_t kind;
};

struct cross_terms {
	uint64_t payer;
	uint64_t payee;
	uint64_t amount;
	uint64_t reference;
	uint16_t currency;
	uint8_t origin;
};

struct audit_cross {
	struct journal_audit_report *report;
	uint32_t shard_count;
	uint64_t holds_max;
	uint64_t hold_timeout_us;
	bool started;
	uint32_t shard;
	uint64_t now_us;             /* of the last record noted on this shard */
	struct cross_table table;
	uint64_t evicted_holds;      /* entries with CROSS_EVICTED */
	struct cross_eviction queue[CROSS_QUEUE_MAX];
	uint32_t queue_count;
	struct cross_side *sides;
	uint64_t side_count, side_capacity;
	struct cross_interval *intervals;
	uint64_t interval_count, interval_capacity;
};

static void cross_violation(struct audit_cross *cross, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
static void cross_violation(struct audit_cross *cross, const char *format, ...)
{
	struct journal_audit_report *report = cross->report;
	if (report->violations++ == 0) {
		va_list args;
		va_start(args, format);
		vsnprintf(report->first_violation, sizeof(report->first_violation), format, args);
		va_end(args);
	}
}

/* ---- the per-shard table: linear probing, backward-shift deletion ------- */

static uint64_t table_home(const struct cross_table *table, uint64_t id)
{
	return ledger_id_mix(id) & (table->capacity - 1);
}

static struct cross_entry *table_find(struct cross_table *table, uint64_t id)
{
	if (table->count == 0)
		return NULL;
	uint64_t mask = table->capacity - 1;
	for (uint64_t slot = table_home(table, id), probes = 0; probes <= mask;
	     slot = (slot + 1) & mask, probes++) {
		struct cross_entry *entry = &table->slots[slot];
		if (!(entry->flags & CROSS_USED))
			return NULL;
		if (entry->id == id)
			return entry;
	}
	return NULL;
}

static void table_place(struct cross_table *table, const struct cross_entry *entry)
{
	uint64_t mask = table->capacity - 1;
	uint64_t slot = table_home(table, entry->id);
	while (table->slots[slot].flags & CROSS_USED)
		slot = (slot + 1) & mask;
	table->slots[slot] = *entry;
	table->count++;
}

/* Rebuilds into `capacity` slots, dropping the evicted holds that expired
 * by now_us (0: drops none). Returns -ENOMEM with the table unchanged. */
static int table_rebuild(struct cross_table *table, uint64_t capacity, uint64_t now_us)
{
	struct cross_entry *slots = calloc(capacity, sizeof(*slots));
	if (slots == NULL)
		return -ENOMEM;
	struct cross_table fresh = {.slots = slots, .capacity = capacity};
	for (uint64_t i = 0; i < table->capacity; i++) {
		const struct cross_entry *entry = &table->slots[i];
		if (!(entry->flags & CROSS_USED))
			continue;
		if ((entry->flags & CROSS_EVICTED) && entry->expires_at_us <= now_us)
			continue; /* the ledger expired it: nothing can capture it any more */
		table_place(&fresh, entry);
	}
	free(table->slots);
	*table = fresh;
	return 0;
}

/* A zeroed entry for id (replacing any entry of that id). Pointers into
 * the table are invalid afterwards. NULL on -ENOMEM. */
static struct cross_entry *table_insert(struct cross_table *table, uint64_t id, uint8_t kind)
{
	struct cross_entry *entry = table_find(table, id);
	if (entry == NULL) {
		if ((table->count + 1) * 2 > table->capacity &&
		    table_rebuild(table, table->capacity ? table->capacity * 2 : CROSS_TABLE_INITIAL,
				  0) != 0)
			return NULL;
		struct cross_entry fresh = {.id = id, .flags = CROSS_USED};
		table_place(table, &fresh);
		entry = table_find(table, id);
		assert(entry != NULL);
	}
	*entry = (struct cross_entry){.id = id, .kind = kind, .flags = CROSS_USED};
	return entry;
}

static void table_remove(struct cross_table *table, struct cross_entry *entry)
{
	uint64_t mask = table->capacity - 1;
	uint64_t hole = (uint64_t)(entry - table->slots);
	assert(hole < table->capacity);
	assert(entry->flags & CROSS_USED);
	for (uint64_t next = (hole + 1) & mask; table->slots[next].flags & CROSS_USED;
	     next = (next + 1) & mask) {
		uint64_t home = table_home(table, table->slots[next].id);
		/* It may fill the hole iff its home is not after the hole. */
		if (((next - home) & mask) >= ((next - hole) & mask)) {
			table->slots[hole] = table->slots[next];
			hole = next;
		}
	}
	memset(&table->slots[hole], 0, sizeof(table->slots[hole]));
	table->count--;
}

/* ---- growing arrays ------------------------------------------------------ */

static int array_reserve(void **items, uint64_t *capacity, uint64_t count, size_t size)
{
	if (count < *capacity)
		return 0;
	uint64_t grown = *capacity ? *capacity * 2 : 1024;
	void *moved = realloc(*items, grown * size);
	if (moved == NULL)
		return -ENOMEM;
	*items = moved;
	*capacity = grown;
	return 0;
}

static uint64_t cross_terms_hash(const struct cross_terms *terms)
{
	uint64_t words[5] = {terms->payer, terms->payee, terms->amount, terms->reference,
			     terms->currency};
	return journal_hash(words, sizeof(words));
}

static int cross_push_side(struct audit_cross *cross, uint8_t side,
			   const struct journal_record *record, const struct cross_terms *terms,
			   uint32_t peer_shard, uint16_t code)
{
	if (array_reserve((void **)&cross->sides, &cross->side_capacity, cross->side_count,
			  sizeof(*cross->sides)) != 0)
		return -ENOMEM;
	cross->sides[cross->side_count++] = (struct cross_side){
		.id = record->request.id, .terms = cross_terms_hash(terms),
		.sequence = record->sequence, .shard = (uint16_t)cross->shard,
		.peer_shard = (uint16_t)peer_shard, .side = side, .origin = terms->origin,
		.code = code,
	};
	return 0;
}

static struct cross_terms cross_request_terms(const struct ledger_request *request, uint8_t origin)
{
	return (struct cross_terms){.payer = request->account_id, .payee = request->other_id,
		.amount = request->amount, .reference = 0, .currency = request->currency,
		.origin = origin};
}

/* ---- evictions ----------------------------------------------------------- */

static void cross_sweep_holds(struct audit_cross *cross)
{
	if (cross->evicted_holds <= 2 * cross->holds_max + 64)
		return;
	if (table_rebuild(&cross->table, cross->table.capacity, cross->now_us) != 0)
		return; /* keep them: only memory is at stake */
	/* What stays is pending in the ledger: at most holds_max of them. */
	cross->evicted_holds = 0;
	for (uint64_t i = 0; i < cross->table.capacity; i++)
		cross->evicted_holds += (cross->table.slots[i].flags & CROSS_EVICTED) != 0;
}

static void cross_apply_eviction(struct audit_cross *cross, const struct cross_eviction *eviction)
{
	struct cross_entry *entry = table_find(&cross->table, eviction->id);
	if (entry == NULL || entry->kind != eviction->kind)
		return;
	if (entry->interval_plus_one != 0) {
		struct cross_interval *interval = &cross->intervals[entry->interval_plus_one - 1];
		assert(interval->id == eviction->id);
		assert(interval->end_us == CROSS_OPEN);
		interval->end_us = eviction->now_us;
		entry->interval_plus_one = 0;
	}
	if (entry->role == CROSS_ROLE_HOLD && !(entry->flags & CROSS_RELEASED) &&
	    eviction->now_us < entry->expires_at_us) {
		/* Still capturable from the hold table: keep its terms. */
		entry->flags |= CROSS_EVICTED;
		cross->evicted_holds++;
		cross_sweep_holds(cross);
		return;
	}
	table_remove(&cross->table, entry);
}

/* Applies the queued evictions made while deciding records up to `sequence`. */
static void cross_drain(struct audit_cross *cross, uint64_t sequence)
{
	uint32_t done = 0;
	while (done < cross->queue_count && cross->queue[done].sequence <= sequence)
		cross_apply_eviction(cross, &cross->queue[done++]);
	memmove(cross->queue, cross->queue + done,
		(cross->queue_count - done) * sizeof(cross->queue[0]));
	cross->queue_count -= done;
}

static void cross_end_shard(struct audit_cross *cross)
{
	cross_drain(cross, UINT64_MAX);
	if (cross->table.slots != NULL)
		memset(cross->table.slots, 0, cross->table.capacity * sizeof(*cross->table.slots));
	cross->table.count = 0;
	cross->evicted_holds = 0;
	cross->now_us = 0;
}

static void cross_begin_shard(struct audit_cross *cross, uint32_t shard)
{
	assert(shard < cross->shard_count);
	if (cross->started && cross->shard == shard)
		return;
	assert(!cross->started || shard > cross->shard);
	if (cross->started)
		cross_end_shard(cross);
	cross->started = true;
	cross->shard = shard;
}

void audit_cross_evict(struct audit_cross *cross, uint32_t shard,
		       const struct ledger_transfer_info *evicted, uint64_t now_us,
		       uint64_t sequence)
{
	assert(cross != NULL);
	assert(evicted != NULL);
	cross_begin_shard(cross, shard);
	if (cross->queue_count == CROSS_QUEUE_MAX) {
		/* More than a chunk ahead of the notes: apply the oldest now. */
		cross_apply_eviction(cross, &cross->queue[0]);
		memmove(cross->queue, cross->queue + 1, (CROSS_QUEUE_MAX - 1) * sizeof(cross->queue[0]));
		cross->queue_count--;
	}
	assert(cross->queue_count == 0 || cross->queue[cross->queue_count - 1].sequence <= sequence);
	cross->queue[cross->queue_count++] = (struct cross_eviction){
		.id = evicted->id, .timestamp_us = evicted->timestamp_us, .now_us = now_us,
		.sequence = sequence, .kind = evicted->kind,
	};
}

/* ---- notes: what a record of this shard establishes and must obey -------- */

/* A fresh entry for a decision the window now remembers. One that still
 * held the id was evicted unseen: its interval ends now. */
static struct cross_entry *cross_insert(struct audit_cross *cross, uint64_t id, uint8_t kind)
{
	struct cross_entry *entry = table_find(&cross->table, id);
	if (entry != NULL && entry->interval_plus_one != 0)
		cross->intervals[entry->interval_plus_one - 1].end_us = cross->now_us;
	if (entry != NULL && (entry->flags & CROSS_EVICTED))
		cross->evicted_holds--;
	return table_insert(&cross->table, id, kind);
}

static bool cross_remembered(const struct audit_cross *cross, const struct journal_record *record,
			     bool in_window)
{
	const struct ledger_request *request = &record->request;
	if (!ledger_kind_remembered(request->kind) || (record->flags & LEDGER_RESULT_DUPLICATE))
		return false;
	if (record->code == LEDGER_TOO_OLD || record->code == LEDGER_TIMESTAMP_IN_FUTURE ||
	    record->code == LEDGER_ID_REUSED)
		return false; /* refused before the window: an entry of that id is another's */
	if (in_window)
		return true;
	/* Remembered and already evicted by a later record of the same chunk. */
	for (uint32_t i = 0; i < cross->queue_count; i++) {
		const struct cross_eviction *eviction = &cross->queue[i];
		if (eviction->sequence > record->sequence && eviction->id == request->id &&
		    eviction->kind == request->kind && eviction->timestamp_us == request->timestamp_us)
			return true;
	}
	return false;
}

static int cross_note_interval(struct audit_cross *cross, const struct journal_record *record)
{
	assert(record->sequence < (UINT64_C(1) << (64 - CROSS_SHARD_BITS)));
	if (array_reserve((void **)&cross->intervals, &cross->interval_capacity,
			  cross->interval_count, sizeof(*cross->intervals)) != 0)
		return -ENOMEM;
	struct cross_entry *entry = table_find(&cross->table, record->request.id);
	if (entry == NULL || entry->kind != record->request.kind || entry->interval_plus_one != 0)
		entry = cross_insert(cross, record->request.id, record->request.kind);
	if (entry == NULL)
		return -ENOMEM;
	cross->intervals[cross->interval_count] = (struct cross_interval){
		.id = record->request.id, .start_us = record->now_us, .end_us = CROSS_OPEN,
		.shard_sequence = record->sequence << CROSS_SHARD_BITS | cross->shard,
	};
	entry->interval_plus_one = ++cross->interval_count;
	return 0;
}

/* Rule 2: a repeat of a transfer debited here for another shard. */
static void cross_check_repeat(struct audit_cross *cross, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	const struct cross_entry *entry = table_find(&cross->table, request->id);
	if (entry == NULL || entry->role != CROSS_ROLE_DEBIT || entry->kind != request->kind)
		return;
	bool remote = (record->flags & LEDGER_RESULT_OUTCOME_REMOTE) != 0;
	const char *answered = ledger_result_name(record->code);
	if (entry->flags & CROSS_RETURNED) {
		if (record->code != entry->return_code || remote)
			cross_violation(cross, "shard %u: sequence %" PRIu64 ": repeat of id %" PRIu64
					" answered %s%s although its credit was returned with %s",
					cross->shard, record->sequence, request->id, answered,
					remote ? " (outcome remote)" : "",
					ledger_result_name(entry->return_code));
	} else if (record->code != LEDGER_OK || !remote) {
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": repeat of id %" PRIu64
				" answered %s%s before any RETURN of it (expected OK with outcome"
				" remote: only the payee's shard knows)", cross->shard,
				record->sequence, request->id, answered,
				remote ? " (outcome remote)" : " as final");
	}
}

/* An approved PAY, DEPOSIT, REFUND or CAPTURE: a debit for another shard,
 * or a local payment the merchant may refund. */
static int cross_note_transfer(struct audit_cross *cross, const struct journal_record *record,
			       const struct cross_terms *terms)
{
	const struct ledger_request *request = &record->request;
	if (record->flags & LEDGER_RESULT_CREDIT_REMOTE) {
		uint32_t payee_shard = ledger_shard_of(terms->payee, cross->shard_count);
		if (cross_push_side(cross, CROSS_DEBIT, record, terms, payee_shard, LEDGER_OK) != 0)
			return -ENOMEM;
	} else if (request->kind != LEDGER_KIND_PAY && request->kind != LEDGER_KIND_CAPTURE) {
		return 0;
	}
	struct cross_entry *entry = cross_insert(cross, request->id, request->kind);
	if (entry == NULL)
		return -ENOMEM;
	bool remote = (record->flags & LEDGER_RESULT_CREDIT_REMOTE) != 0;
	entry->role = remote ? CROSS_ROLE_DEBIT : CROSS_ROLE_PAYMENT;
	entry->payer = terms->payer;
	entry->payee = terms->payee;
	entry->amount = terms->amount;
	entry->currency = terms->currency;
	if (remote)
		entry->reference = terms->reference;
	return 0;
}

/* Rule 4, refunds: approved ones stay within the payment; a refusal for
 * exceeding it is right only if the unreturned refunds leave no room. */
static void cross_check_refund(struct audit_cross *cross, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	struct cross_entry *payment = table_find(&cross->table, request->reference_id);
	bool known = payment != NULL && payment->role == CROSS_ROLE_PAYMENT &&
		     payment->payee == request->account_id && payment->payer == request->other_id;
	unsigned __int128 total = (unsigned __int128)(known ? payment->refunded : 0) + request->amount;
	if (record->code == LEDGER_OK) {
		if (!known)
			cross_violation(cross, "shard %u: sequence %" PRIu64 ": refund %" PRIu64
					" approved of id %" PRIu64 ", which is no payment to merchant %"
					PRIu64 " from %" PRIu64 " on this shard", cross->shard,
					record->sequence, request->id, request->reference_id,
					request->account_id, request->other_id);
		else if (total > payment->amount)
			cross_violation(cross, "shard %u: sequence %" PRIu64 ": refund %" PRIu64
					" takes the refunds of payment %" PRIu64 " beyond its amount %"
					PRIu64, cross->shard, record->sequence, request->id,
					request->reference_id, payment->amount);
		if (known)
			payment->refunded = total > UINT64_MAX ? UINT64_MAX : (uint64_t)total;
	} else if (record->code == LEDGER_REFUND_EXCEEDS_PAYMENT && known && total <= payment->amount) {
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": refund %" PRIu64 " refused"
				" REFUND_EXCEEDS_PAYMENT although %" PRIu64 " of payment %" PRIu64
				" (%" PRIu64 ") is refunded and not returned", cross->shard,
				record->sequence, request->id, payment->refunded,
				request->reference_id, payment->amount);
	}
}

/* Rule 4, holds: once a capture of it came back, a hold is released. */
static struct cross_entry *cross_check_hold(struct audit_cross *cross,
					    const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	struct cross_entry *hold = table_find(&cross->table, request->reference_id);
	if (hold == NULL || hold->role != CROSS_ROLE_HOLD || hold->payer != request->account_id)
		return NULL;
	const char *what = request->kind == LEDGER_KIND_CAPTURE ? "capture" : "void";
	if ((hold->flags & CROSS_CAPTURE_RETURNED) &&
	    (record->code == LEDGER_HOLD_ALREADY_CAPTURED || record->code == LEDGER_OK))
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": %s %" PRIu64 " of hold %"
				PRIu64 " answered %s although its capture was returned (the hold"
				" is released, answered as voided)", cross->shard, record->sequence,
				what, request->id, request->reference_id,
				ledger_result_name(record->code));
	else if ((hold->flags & CROSS_RELEASED) && record->code == LEDGER_OK)
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": %s %" PRIu64 " of hold %"
				PRIu64 " approved although the hold was already released",
				cross->shard, record->sequence, what, request->id,
				request->reference_id);
	return hold;
}

static int cross_note_capture(struct audit_cross *cross, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	struct cross_entry *hold = cross_check_hold(cross, record);
	if (record->code != LEDGER_OK)
		return 0;
	struct cross_terms terms = cross_request_terms(request, request->kind);
	terms.reference = request->reference_id;
	if (hold != NULL) {
		terms.payee = hold->payee;
		terms.currency = hold->currency;
		terms.amount = request->amount ? request->amount : hold->amount;
		hold->flags |= CROSS_RELEASED;
		if (hold->flags & CROSS_EVICTED) {
			cross->evicted_holds--;
			table_remove(&cross->table, hold);
		}
	}
	if (request->kind == LEDGER_KIND_VOID)
		return 0;
	return cross_note_transfer(cross, record, &terms);
}

static int cross_note_hold(struct audit_cross *cross, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	if (record->code != LEDGER_OK)
		return 0;
	struct cross_entry *hold = cross_insert(cross, request->id, request->kind);
	if (hold == NULL)
		return -ENOMEM;
	uint64_t timeout = request->hold_timeout_us ? request->hold_timeout_us : cross->hold_timeout_us;
	hold->role = CROSS_ROLE_HOLD;
	hold->payer = request->account_id;
	hold->payee = request->other_id;
	hold->amount = request->amount;
	hold->currency = request->currency;
	hold->expires_at_us = record->now_us + timeout < record->now_us ? UINT64_MAX
									: record->now_us + timeout;
	return 0;
}

/* A client decision that is not a repeat. */
static int cross_note_decision(struct audit_cross *cross, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	struct cross_terms terms = cross_request_terms(request, request->kind);
	switch (request->kind) {
	case LEDGER_KIND_HOLD:
		return cross_note_hold(cross, record);
	case LEDGER_KIND_CAPTURE:
	case LEDGER_KIND_VOID:
		return cross_note_capture(cross, record);
	case LEDGER_KIND_REFUND:
		cross_check_refund(cross, record);
		terms.reference = request->reference_id;
		return record->code == LEDGER_OK ? cross_note_transfer(cross, record, &terms) : 0;
	case LEDGER_KIND_PAY:
	case LEDGER_KIND_DEPOSIT:
		return record->code == LEDGER_OK ? cross_note_transfer(cross, record, &terms) : 0;
	default:
		return 0;
	}
}

/* A CREDIT on the payee's shard: one side of rule 1; an approved one of a
 * payment is refundable here. */
static int cross_note_credit(struct audit_cross *cross, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	if (record->flags & LEDGER_RESULT_DUPLICATE)
		return 0;
	cross->report->cross_credits++;
	struct cross_terms terms = cross_request_terms(request, request->flags);
	terms.reference = request->reference_id;
	uint32_t payer_shard = ledger_shard_of(request->account_id, cross->shard_count);
	if (cross_push_side(cross, CROSS_CREDIT, record, &terms, payer_shard, record->code) != 0)
		return -ENOMEM;
	if (record->code != LEDGER_OK)
		return 0;
	if (ledger_shard_of(request->other_id, cross->shard_count) != cross->shard)
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": credit of id %" PRIu64
				" approved for payee %" PRIu64 ", which this shard does not own",
				cross->shard, record->sequence, request->id, request->other_id);
	bool payment = request->flags == 0 || request->flags == LEDGER_KIND_PAY ||
		       request->flags == LEDGER_KIND_CAPTURE;
	if (!payment || table_find(&cross->table, request->id) != NULL)
		return 0; /* an id taken here: the window keeps the other decision */
	struct cross_entry *entry = cross_insert(cross, request->id, LEDGER_KIND_CREDIT);
	if (entry == NULL)
		return -ENOMEM;
	entry->role = CROSS_ROLE_PAYMENT;
	entry->payer = request->account_id;
	entry->payee = request->other_id;
	entry->amount = request->amount;
	entry->currency = request->currency;
	return 0;
}

/* A RETURN on the payer's shard: one side of rule 1; it sets the code that
 * repeats must answer (rule 2) and undoes a refund or a capture (rule 4). */
static int cross_note_return(struct audit_cross *cross, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	if ((record->flags & LEDGER_RESULT_DUPLICATE) || record->code != LEDGER_OK)
		return 0;
	cross->report->cross_returns++;
	struct cross_terms terms = cross_request_terms(request, 0);
	terms.reference = request->reference_id;
	if (cross_push_side(cross, CROSS_RETURN, record, &terms, cross->shard, request->flags) != 0)
		return -ENOMEM;
	struct cross_entry *debit = table_find(&cross->table, request->id);
	if (debit == NULL || debit->role != CROSS_ROLE_DEBIT || debit->payer != request->account_id ||
	    debit->payee != request->other_id || (debit->flags & CROSS_RETURNED))
		return 0;
	debit->flags |= CROSS_RETURNED;
	debit->return_code = request->flags;
	struct cross_entry *origin = table_find(&cross->table, request->reference_id);
	if (origin == NULL)
		return 0;
	if (debit->kind == LEDGER_KIND_REFUND && origin->role == CROSS_ROLE_PAYMENT &&
	    origin->payee == request->account_id && origin->payer == request->other_id)
		origin->refunded -= origin->refunded < request->amount ? origin->refunded
								       : request->amount;
	else if (debit->kind == LEDGER_KIND_CAPTURE && origin->role == CROSS_ROLE_HOLD &&
		 origin->payer == request->account_id)
		origin->flags |= CROSS_CAPTURE_RETURNED;
	return 0;
}

int audit_cross_note(struct audit_cross *cross, uint32_t shard, const struct journal_record *record,
		     bool in_window)
{
	assert(cross != NULL);
	assert(record != NULL);
	cross_begin_shard(cross, shard);
	/* The window evicts while inserting a decision, after deciding it. */
	cross_drain(cross, record->sequence - 1);
	/* A precondition, not a clamp: the caller replayed the record first, and
	 * the replay refuses a clock going back within a shard. */
	assert(record->now_us >= cross->now_us);
	cross->now_us = record->now_us;
	bool remembered = cross_remembered(cross, record, in_window);
	uint8_t kind = record->request.kind;
	int result;
	if (kind == LEDGER_KIND_CREDIT)
		result = cross_note_credit(cross, record);
	else if (kind == LEDGER_KIND_RETURN)
		result = cross_note_return(cross, record);
	else if (record->flags & LEDGER_RESULT_DUPLICATE)
		cross_check_repeat(cross, record), result = 0;
	else
		result = cross_note_decision(cross, record);
	if (result == 0 && remembered && cross->shard_count > 1)
		result = cross_note_interval(cross, record);
	cross_drain(cross, record->sequence);
	return result;
}

/* ---- finish: rule 1 over the sides, rule 3 over the intervals ------------ */

static int cross_side_compare(const void *left, const void *right)
{
	const struct cross_side *a = left, *b = right;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	if (a->side != b->side)
		return a->side < b->side ? -1 : 1;
	if (a->shard != b->shard)
		return a->shard < b->shard ? -1 : 1;
	return a->sequence < b->sequence ? -1 : a->sequence > b->sequence;
}

static void cross_check_credit(struct audit_cross *cross, const struct cross_side *credit,
			       const struct cross_side *debits, uint64_t debit_count)
{
	for (uint64_t i = 0; i < debit_count; i++) {
		const struct cross_side *debit = &debits[i];
		if (debit->terms == credit->terms && debit->shard == credit->peer_shard &&
		    debit->peer_shard == credit->shard &&
		    (credit->origin == 0 || credit->origin == debit->origin))
			return;
	}
	cross_violation(cross, "shard %u: sequence %" PRIu64 ": credit of id %" PRIu64 " without a"
			" debit on shard %u%s (money minted)", credit->shard, credit->sequence,
			credit->id, credit->peer_shard,
			debit_count ? " of the same payer, payee, amount, currency and kind" : "");
}

static void cross_check_return(struct audit_cross *cross, const struct cross_side *returned,
			       const struct cross_side *credit)
{
	if (credit == NULL)
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": return of id %" PRIu64
				" without a refused credit (money minted)", returned->shard,
				returned->sequence, returned->id);
	else if (credit->code == LEDGER_OK)
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": id %" PRIu64 " returned"
				" although credited (shard %u, sequence %" PRIu64 ")", returned->shard,
				returned->sequence, returned->id, credit->shard, credit->sequence);
	else if (credit->code != returned->code)
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": return of id %" PRIu64
				" says %s, its credit (shard %u, sequence %" PRIu64 ") was refused"
				" %s: code differs", returned->shard, returned->sequence,
				returned->id, ledger_result_name(returned->code), credit->shard,
				credit->sequence, ledger_result_name(credit->code));
	else if (credit->terms != returned->terms || credit->peer_shard != returned->shard)
		cross_violation(cross, "shard %u: sequence %" PRIu64 ": return of id %" PRIu64
				" differs from its credit (shard %u, sequence %" PRIu64 ")",
				returned->shard, returned->sequence, returned->id, credit->shard,
				credit->sequence);
}

static void cross_twice(struct audit_cross *cross, const struct cross_side *sides, uint64_t count,
			const char *what)
{
	if (count > 1)
		cross_violation(cross, "id %" PRIu64 " %s twice: shard %u sequence %" PRIu64
				" and shard %u sequence %" PRIu64, sides[0].id, what, sides[0].shard,
				sides[0].sequence, sides[1].shard, sides[1].sequence);
}

/* The sides of one id, sorted: debits, credits, returns. */
static void cross_check_transfer(struct audit_cross *cross, const struct cross_side *sides,
				 uint64_t count)
{
	uint64_t by_side[3] = {0, 0, 0};
	for (uint64_t i = 0; i < count; i++)
		by_side[sides[i].side]++;
	const struct cross_side *debits = sides;
	const struct cross_side *credits = sides + by_side[CROSS_DEBIT];
	const struct cross_side *returns = credits + by_side[CROSS_CREDIT];
	const struct cross_side *credit = by_side[CROSS_CREDIT] ? credits : NULL;
	cross_twice(cross, debits, by_side[CROSS_DEBIT], "debited for another shard");
	cross_twice(cross, credits, by_side[CROSS_CREDIT], "credited (money minted)");
	cross_twice(cross, returns, by_side[CROSS_RETURN], "returned (money minted)");
	if (credit != NULL)
		cross_check_credit(cross, credit, debits, by_side[CROSS_DEBIT]);
	if (by_side[CROSS_RETURN] > 0)
		cross_check_return(cross, returns, credit);
	/* Interrupted by a crash; the next start re-sends them. */
	if (credit == NULL && by_side[CROSS_DEBIT] > 0)
		cross->report->owed_credits++;
	if (credit != NULL && credit->code != LEDGER_OK && by_side[CROSS_RETURN] == 0)
		cross->report->owed_returns++;
}

static void cross_check_sides(struct audit_cross *cross)
{
	if (cross->side_count > 1)
		qsort(cross->sides, cross->side_count, sizeof(*cross->sides), cross_side_compare);
	for (uint64_t start = 0, end; start < cross->side_count; start = end) {
		end = start + 1;
		while (end < cross->side_count && cross->sides[end].id == cross->sides[start].id)
			end++;
		cross_check_transfer(cross, cross->sides + start, end - start);
	}
}

static int cross_interval_compare(const void *left, const void *right)
{
	const struct cross_interval *a = left, *b = right;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return a->start_us < b->start_us ? -1 : a->start_us > b->start_us;
}

static uint32_t interval_shard(const struct cross_interval *interval)
{
	return (uint32_t)(interval->shard_sequence & ((1u << CROSS_SHARD_BITS) - 1));
}

static void cross_overlap(struct audit_cross *cross, const struct cross_interval *earlier,
			  const struct cross_interval *later)
{
	uint32_t first = interval_shard(earlier), second = interval_shard(later);
	cross->report->ids_on_two_shards++;
	cross_violation(cross, "id %" PRIu64 " decided on shards %u and %u: shard %u sequence %"
			PRIu64 " at now_us %" PRIu64 " while shard %u (sequence %" PRIu64 ")"
			" still remembered it", later->id, first < second ? first : second,
			first < second ? second : first, second,
			later->shard_sequence >> CROSS_SHARD_BITS, later->start_us, first,
			earlier->shard_sequence >> CROSS_SHARD_BITS);
}

/* The intervals of one id, by start: each is compared with the live one
 * ending last (`last`) and the one ending last on a shard other than
 * last's (`other`), so one pass finds an overlap of two shards if any. */
static void cross_check_id(struct audit_cross *cross, const struct cross_interval *intervals,
			   uint64_t count)
{
	const struct cross_interval *last = NULL, *other = NULL;
	for (uint64_t i = 0; i < count; i++) {
		const struct cross_interval *current = &intervals[i];
		if (current->start_us >= current->end_us)
			continue; /* evicted as it was decided: never live */
		const struct cross_interval *rival =
			last != NULL && interval_shard(last) != interval_shard(current) ? last : other;
		if (rival != NULL && rival->end_us > current->start_us) {
			cross_overlap(cross, rival, current);
			return;
		}
		if (last == NULL || current->end_us > last->end_us) {
			if (last != NULL && interval_shard(last) != interval_shard(current))
				other = last;
			last = current;
		} else if (interval_shard(current) != interval_shard(last) &&
			   (other == NULL || current->end_us > other->end_us)) {
			other = current;
		}
	}
}

static void cross_check_intervals(struct audit_cross *cross)
{
	if (cross->interval_count > 1)
		qsort(cross->intervals, cross->interval_count, sizeof(*cross->intervals),
		      cross_interval_compare);
	for (uint64_t start = 0, end; start < cross->interval_count; start = end) {
		end = start + 1;
		while (end < cross->interval_count &&
		       cross->intervals[end].id == cross->intervals[start].id)
			end++;
		if (end - start > 1)
			cross_check_id(cross, cross->intervals + start, end - start);
	}
}

int audit_cross_finish(struct audit_cross *cross)
{
	assert(cross != NULL);
	if (cross->started)
		cross_end_shard(cross);
	cross->started = false;
	cross_check_sides(cross);
	cross_check_intervals(cross);
	return 0;
}

struct audit_cross *audit_cross_create(const struct ledger_config *config, uint32_t shard_count,
				       struct journal_audit_report *report)
{
	assert(config != NULL);
	assert(report != NULL);
	assert(shard_count >= 1);
	assert(shard_count <= JOURNAL_SHARDS_MAX);
	struct audit_cross *cross = calloc(1, sizeof(*cross));
	if (cross == NULL)
		return NULL;
	cross->report = report;
	cross->shard_count = shard_count;
	cross->holds_max = config->holds_max;
	cross->hold_timeout_us = config->hold_timeout_us;
	return cross;
}

void audit_cross_destroy(struct audit_cross *cross)
{
	if (cross == NULL)
		return;
	free(cross->table.slots);
	free(cross->sides);
	free(cross->intervals);
	free(cross);
}
