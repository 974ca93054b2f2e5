/*
 * recovery.c — finishes cross-shard transfers a crash interrupted.
 *
 * A payer's shard debits and journals first; the credit travels to the
 * payee's shard only once that record is durable (rule 4). A crash between the
 * two leaves the money in transit: durable on the payer's side, absent on the
 * payee's. At start-up every shard's journal (after its snapshot: snapshots are
 * written on a clean stop, when nothing is in flight) is scanned and each
 * transfer is matched with its CREDIT and, where the payee refused it, with its
 * RETURN. What is missing is sent again before the switch takes traffic. The
 * payee's deduplication of CREDIT ids makes a repeat harmless.
 */
#include "recovery.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "shard.h"

enum {
	SEEN_DEBIT = 1u << 0,     /* payer's shard: approved, CREDIT_REMOTE */
	SEEN_CREDIT = 1u << 1,    /* payee's shard: CREDIT decided */
	SEEN_REFUSED = 1u << 2,   /* payee's shard: CREDIT refused, RETURN owed */
	SEEN_RETURN = 1u << 3,    /* payer's shard: RETURN applied */
};

/* One cross-shard transfer not yet seen whole. */
struct transit_entry {
	uint64_t id;                  /* 0 = empty */
	struct ledger_request debit;  /* SEEN_DEBIT: the deciding request */
	struct ledger_request credit; /* SEEN_REFUSED: the CREDIT the payee refused */
	int64_t balance;              /* SEEN_DEBIT: the payer's balance after it */
	uint16_t code;                /* SEEN_REFUSED: the payee's reason */
	uint8_t seen;
};

/* Open addressing with backward-shift deletion, sized once: the journals are
 * read in decision-time order (a merge of the shards), so a transfer leaves
 * the table as soon as its debit, credit and (if refused) return are seen,
 * and the table holds only what was in flight at one moment — bounded by the
 * pending decisions and the rings between the shards. */
struct transit_map {
	struct transit_entry *entries;
	uint64_t capacity;        /* power of two */
	uint64_t count;
	uint64_t count_max;       /* half the capacity: beyond it the bound was wrong */
	uint64_t peak;
};

static int map_create(struct transit_map *map, uint64_t bound)
{
	map->capacity = 1024;
	while (map->capacity < bound * 2)
		map->capacity *= 2;
	map->count_max = map->capacity / 2;
	assert((map->capacity & (map->capacity - 1)) == 0); /* the mask works */
	assert(map->count_max >= bound); /* load <= 1/2 at the bound */
	/* calloc: pages of a large table stay untouched until used. */
	map->entries = calloc(map->capacity, sizeof(struct transit_entry));
	return map->entries != NULL ? 0 : -ENOMEM;
}

static uint64_t map_home(const struct transit_map *map, uint64_t id)
{
	return ledger_id_mix(id) & (map->capacity - 1);
}

static struct transit_entry *map_slot(struct transit_map *map, uint64_t id)
{
	uint64_t mask = map->capacity - 1;
	assert(id != 0);
	assert(map->count < map->capacity); /* an empty slot ends every probe */
	for (uint64_t i = map_home(map, id);; i = (i + 1) & mask)
		if (map->entries[i].id == id || map->entries[i].id == 0)
			return &map->entries[i];
}

/* Returns the entry of id (new ones zeroed), or NULL when the bound is passed. */
static struct transit_entry *map_get(struct transit_map *map, uint64_t id)
{
	struct transit_entry *entry = map_slot(map, id);
	if (entry->id != 0)
		return entry;
	if (map->count == map->count_max)
		return NULL;
	memset(entry, 0, sizeof(*entry));
	entry->id = id;
	map->count++;
	map->peak = map->count > map->peak ? map->count : map->peak;
	assert(map->count <= map->count_max);
	return entry;
}

static void map_remove(struct transit_map *map, struct transit_entry *entry)
{
	uint64_t mask = map->capacity - 1;
	uint64_t hole = (uint64_t)(entry - map->entries);
	assert(entry->id != 0);
	assert(map->count > 0);
	for (uint64_t next = (hole + 1) & mask; map->entries[next].id != 0; next = (next + 1) & mask) {
		uint64_t home = map_home(map, map->entries[next].id);
		if (((next - home) & mask) >= ((next - hole) & mask)) {
			map->entries[hole] = map->entries[next];
			hole = next;
		}
	}
	memset(&map->entries[hole], 0, sizeof(map->entries[hole]));
	map->count--;
}

static bool moves_money_out(uint8_t kind)
{
	return kind == LEDGER_KIND_PAY || kind == LEDGER_KIND_DEPOSIT ||
	       kind == LEDGER_KIND_CAPTURE || kind == LEDGER_KIND_REFUND;
}

/* Whether everything the transfer owes has been seen. */
static bool resolved(const struct transit_entry *entry)
{
	if (!(entry->seen & SEEN_DEBIT) || !(entry->seen & SEEN_CREDIT))
		return false;
	return !(entry->seen & SEEN_REFUSED) || (entry->seen & SEEN_RETURN);
}

static int note_record(struct transit_map *map, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	uint8_t kind = request->kind;
	bool duplicate = (record->flags & LEDGER_RESULT_DUPLICATE) != 0;
	bool debit = moves_money_out(kind) && record->code == LEDGER_OK &&
		     (record->flags & LEDGER_RESULT_CREDIT_REMOTE) && !duplicate;
	/* A repeated CREDIT or RETURN (re-sent by an earlier recovery) was
	 * already decided once: it settles nothing new. */
	if (!debit && ((kind != LEDGER_KIND_CREDIT && kind != LEDGER_KIND_RETURN) || duplicate))
		return 0;
	struct transit_entry *entry = map_get(map, request->id);
	if (entry == NULL)
		return -ENOSPC;
	if (debit) {
		entry->seen |= SEEN_DEBIT;
		entry->debit = *request;
		entry->balance = record->balance;
	} else if (kind == LEDGER_KIND_CREDIT) {
		entry->seen |= SEEN_CREDIT;
		if (record->flags & LEDGER_RESULT_RETURN_REMOTE) {
			entry->seen |= SEEN_REFUSED;
			entry->code = record->code;
			entry->credit = *request;
		}
	} else {
		entry->seen |= SEEN_RETURN;
	}
	if (resolved(entry))
		map_remove(map, entry);
	return 0;
}

/* One shard's journal after its snapshot, a block at a time. */
struct scan_cursor {
	struct journal_reader *reader;
	const struct journal_record *records;
	int count;
	int at;
	uint64_t after;
	uint64_t last_sequence;   /* of the last record noted: strictly increasing */
	uint64_t last_now_us;     /* and its time: never back (replay refused that) */
};

static int cursor_fill(struct scan_cursor *cursor, uint32_t index, char *error, size_t error_size)
{
	struct journal_error journal_error = { 0 };
	while (cursor->reader != NULL && cursor->at >= cursor->count) {
		struct journal_position position;
		cursor->count = journal_reader_next(cursor->reader, &cursor->records, &position,
						    &journal_error);
		cursor->at = 0;
		if (cursor->count < 0) {
			snprintf(error, error_size, "shard %u: %s", index, journal_error.text);
			return cursor->count;
		}
		if (cursor->count == 0) {
			journal_reader_close(cursor->reader);
			cursor->reader = NULL;
		}
		while (cursor->at < cursor->count && cursor->records[cursor->at].sequence <= cursor->after)
			cursor->at++;
	}
	return 0;
}

/* The cursor whose next record was decided first, or -1 when all are done. */
static int cursor_earliest(const struct scan_cursor *cursors, uint32_t count)
{
	int best = -1;
	for (uint32_t s = 0; s < count; s++) {
		if (cursors[s].reader == NULL)
			continue;
		if (best < 0 || cursors[s].records[cursors[s].at].now_us <
				       cursors[best].records[cursors[best].at].now_us)
			best = (int)s;
	}
	return best;
}

static int scan_open(struct engine *engine, struct scan_cursor *cursors, char *error,
		     size_t error_size)
{
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		struct journal_error journal_error = { 0 };
		cursors[s].after = engine->shards[s].snapshot_sequence;
		cursors[s].reader = journal_reader_open(engine->config.data_dir, s, 0,
							cursors[s].after + 1, &journal_error);
		if (cursors[s].reader == NULL) {
			snprintf(error, error_size, "shard %u: %s", s, journal_error.text);
			return journal_error.code ? journal_error.code : -EIO;
		}
		int result = cursor_fill(&cursors[s], s, error, error_size);
		if (result != 0)
			return result;
	}
	return 0;
}

/* Reads every shard's journal tail in decision-time order into the map. */
static int scan_shards(struct engine *engine, struct transit_map *map, char *error,
		       size_t error_size)
{
	struct scan_cursor *cursors = calloc(engine->shard_count, sizeof(*cursors));
	if (cursors == NULL)
		return -ENOMEM;
	int result = scan_open(engine, cursors, error, error_size);
	int s;
	while (result == 0 && (s = cursor_earliest(cursors, engine->shard_count)) >= 0) {
		struct scan_cursor *cursor = &cursors[s];
		const struct journal_record *record = &cursor->records[cursor->at++];
		/* Recovery replayed this journal already: its order is proven. */
		assert(record->sequence > cursor->after);
		assert(record->sequence > cursor->last_sequence);
		assert(record->now_us >= cursor->last_now_us);
		cursor->last_sequence = record->sequence;
		cursor->last_now_us = record->now_us;
		result = note_record(map, record);
		if (result == -ENOSPC)
			snprintf(error, error_size, "recovery: more than %llu cross-shard transfers "
				 "open at one moment in the journals; the bound (pending decisions "
				 "and rings) does not hold", (unsigned long long)map->count_max);
		else if (result == 0)
			result = cursor_fill(cursor, (uint32_t)s, error, error_size);
	}
	for (uint32_t i = 0; i < engine->shard_count; i++)
		if (cursors[i].reader != NULL)
			journal_reader_close(cursors[i].reader);
	free(cursors);
	return result;
}

static int backlog_push(struct engine_shard *shard, const struct engine_message *message)
{
	if (shard->backlog_count == shard->backlog_capacity) {
		uint32_t capacity = shard->backlog_capacity ? shard->backlog_capacity * 2 : 256;
		struct engine_message *grown = realloc(shard->backlog, capacity * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		shard->backlog = grown;
		shard->backlog_capacity = capacity;
	}
	shard->backlog[shard->backlog_count++] = *message;
	assert(shard->backlog_count <= shard->backlog_capacity);
	return 0;
}

/* What a transfer still owes after the crash. */
enum owed { OWED_NOTHING, OWED_CREDIT, OWED_RETURN };

static enum owed owed_of(const struct transit_entry *entry)
{
	if ((entry->seen & SEEN_DEBIT) && !(entry->seen & SEEN_CREDIT))
		return OWED_CREDIT;
	if ((entry->seen & SEEN_REFUSED) && !(entry->seen & SEEN_RETURN))
		return OWED_RETURN;
	return OWED_NOTHING;
}

/* Queues the owed message on the shard that sends it. The CREDIT a durable
 * debit owes is built by the payer's recovered ledger (for a capture it reads
 * the payee, currency and amount from its deduplication window); the RETURN
 * from the refused CREDIT, with the payee's code. */
static int resend(struct engine *engine, const struct transit_entry *entry, enum owed owed)
{
	struct engine_message message = { .worker = ENGINE_NO_REPLY };
	uint32_t from;
	assert(owed != OWED_NOTHING);
	struct ledger_transfer_info info;
	/* Online snapshots are taken at different moments on different shards
	 * (snapshotter.c), so a scan can see one half of a transfer whose other
	 * half lies before the other shard's snapshot. The recovered ledgers
	 * settle it: a payee that remembers the CREDIT was credited, a payer
	 * whose transfer is RETURNED got its money back. */
	if (owed == OWED_RETURN &&
	    ledger_transfer_get(engine->shards[ledger_shard_of(entry->credit.account_id,
							       engine->shard_count)].ledger,
				entry->id, &info) && info.state == LEDGER_TRANSFER_RETURNED)
		return 0;
	if (owed == OWED_CREDIT) {
		assert(entry->seen & SEEN_DEBIT);
		assert(entry->debit.id == entry->id);
		from = ledger_shard_of(entry->debit.account_id, engine->shard_count);
		struct ledger_result decided = { .id = entry->id, .code = LEDGER_OK,
						 .flags = LEDGER_RESULT_CREDIT_REMOTE |
							  LEDGER_RESULT_JOURNAL };
		if (ledger_remote_credit(engine->shards[from].ledger, &entry->debit, &decided,
					 &message.request) != 0) {
			engine_log("error", "capture %llu of hold %llu is no longer in the "
				   "deduplication window; its credit cannot be re-sent",
				   (unsigned long long)entry->id,
				   (unsigned long long)entry->debit.reference_id);
			return 0;
		}
		message.balance = entry->balance;
		/* The CREDIT's payee (a capture's comes from its hold). */
		uint32_t to = ledger_shard_of(message.request.other_id, engine->shard_count);
		if (ledger_transfer_get(engine->shards[to].ledger, entry->id, &info) &&
		    info.kind == LEDGER_KIND_CREDIT)
			return 0;
	} else {
		from = ledger_shard_of(entry->credit.other_id, engine->shard_count);
		assert(entry->seen & SEEN_REFUSED);
		assert(entry->code != LEDGER_OK); /* a refused CREDIT has a reason */
		message.request = engine_return_of(&entry->credit, entry->code);
	}
	assert(from < engine->shard_count);
	return backlog_push(&engine->shards[from], &message);
}

/* The most cross-shard transfers open at one moment: every shard's pending
 * decisions plus what its rings to the other shards hold, both ways. */
static uint64_t open_bound(const struct engine *engine)
{
	uint64_t shards = engine->shard_count;
	return shards * ((uint64_t)ENGINE_PENDING_MAX +
			 2 * (shards - 1) * (uint64_t)engine->config.ring_size);
}

int engine_recover_credits(struct engine *engine, char *error, size_t error_size)
{
	assert(engine != NULL);
	assert(error != NULL);
	if (engine->shard_count < 2)
		return 0;
	struct transit_map map = { 0 };
	int result = map_create(&map, open_bound(engine));
	if (result != 0) {
		snprintf(error, error_size, "recovery: out of memory for %llu open transfers",
			 (unsigned long long)open_bound(engine));
		return result;
	}
	result = scan_shards(engine, &map, error, error_size);
	uint64_t credits = 0;
	uint64_t returns = 0;
	for (uint64_t i = 0; i < map.capacity && result == 0; i++) {
		const struct transit_entry *entry = &map.entries[i];
		enum owed owed = entry->id != 0 ? owed_of(entry) : OWED_NOTHING;
		if (owed == OWED_NOTHING)
			continue;
		credits += owed == OWED_CREDIT;
		returns += owed == OWED_RETURN;
		result = resend(engine, entry, owed);
		if (result != 0)
			snprintf(error, error_size, "out of memory re-sending credits");
	}
	/* Postconditions: within the bound, and at most one message per open transfer. */
	assert(map.peak <= map.count_max);
	assert(result != 0 || credits + returns <= map.count);
	if (result == 0 && engine->config.verbose)
		engine_log("info", "recovery: at most %llu cross-shard transfers were open at one "
			   "moment (room for %llu)", (unsigned long long)map.peak,
			   (unsigned long long)map.count_max);
	free(map.entries);
	if (result == 0 && credits + returns > 0)
		engine_log("info", "recovery: re-sending %llu cross-shard credits and %llu returns "
			   "interrupted by the last stop", (unsigned long long)credits,
			   (unsigned long long)returns);
	return result;
}

/* Sends what recovery queued on this shard; called by the shard's thread. */
uint32_t engine_shard_send_backlog(struct engine_shard *shard)
{
	struct engine *engine = shard->engine;
	uint32_t sent = 0;
	assert(shard->backlog_sent <= shard->backlog_count);
	while (shard->backlog_sent < shard->backlog_count) {
		const struct engine_message *message = &shard->backlog[shard->backlog_sent];
		uint64_t target_account = message->request.kind == LEDGER_KIND_CREDIT
						  ? message->request.other_id
						  : message->request.account_id;
		uint32_t target = ledger_shard_of(target_account, engine->shard_count);
		assert(target != shard->index); /* only credits and returns between shards */
		struct engine_ring *ring =
			&engine->rings_credit[shard->index * engine->shard_count + target];
		atomic_fetch_add(&engine->credits_in_flight, 1);
		if (engine_ring_enqueue(ring, message, 1) != 1) {
			atomic_fetch_sub(&engine->credits_in_flight, 1);
			break;
		}
		engine_wake(&engine->shards_waker[target]);
		shard->backlog_sent++;
		sent++;
	}
	return sent;
}
