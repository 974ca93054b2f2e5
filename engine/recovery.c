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

#include <errno.h>
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

struct transit_entry {
	uint64_t id;                  /* 0 = empty */
	struct ledger_request debit;  /* SEEN_DEBIT: the deciding request */
	struct ledger_request credit; /* SEEN_REFUSED: the CREDIT the payee refused */
	int64_t balance;              /* SEEN_DEBIT: the payer's balance after it */
	uint16_t code;                /* SEEN_REFUSED: the payee's reason */
	uint8_t seen;
};

struct transit_map {
	struct transit_entry *entries;
	uint64_t capacity;        /* power of two */
	uint64_t count;
};

static uint64_t mix(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return id;
}

static struct transit_entry *map_slot(struct transit_map *map, uint64_t id)
{
	uint64_t mask = map->capacity - 1;
	for (uint64_t i = mix(id) & mask;; i = (i + 1) & mask)
		if (map->entries[i].id == id || map->entries[i].id == 0)
			return &map->entries[i];
}

static int map_grow(struct transit_map *map)
{
	struct transit_map bigger = { .capacity = map->capacity ? map->capacity * 2 : 1024 };
	bigger.entries = calloc(bigger.capacity, sizeof(struct transit_entry));
	if (bigger.entries == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < map->capacity; i++) {
		if (map->entries[i].id != 0) {
			*map_slot(&bigger, map->entries[i].id) = map->entries[i];
			bigger.count++;
		}
	}
	free(map->entries);
	*map = bigger;
	return 0;
}

static struct transit_entry *map_get(struct transit_map *map, uint64_t id)
{
	if ((map->count + 1) * 2 > map->capacity && map_grow(map) != 0)
		return NULL;
	struct transit_entry *entry = map_slot(map, id);
	if (entry->id == 0) {
		memset(entry, 0, sizeof(*entry));
		entry->id = id;
		map->count++;
	}
	return entry;
}

static bool moves_money_out(uint8_t kind)
{
	return kind == LEDGER_KIND_PAY || kind == LEDGER_KIND_DEPOSIT ||
	       kind == LEDGER_KIND_CAPTURE || kind == LEDGER_KIND_REFUND;
}

static int note_record(struct transit_map *map, const struct journal_record *record)
{
	const struct ledger_request *request = &record->request;
	uint8_t kind = request->kind;
	bool debit = moves_money_out(kind) && record->code == LEDGER_OK &&
		     (record->flags & LEDGER_RESULT_CREDIT_REMOTE) &&
		     !(record->flags & LEDGER_RESULT_DUPLICATE);
	if (!debit && kind != LEDGER_KIND_CREDIT && kind != LEDGER_KIND_RETURN)
		return 0;
	struct transit_entry *entry = map_get(map, request->id);
	if (entry == NULL)
		return -ENOMEM;
	if (debit) {
		entry->seen |= SEEN_DEBIT;
		entry->debit = *request;
		entry->balance = record->balance;
	} else if (kind == LEDGER_KIND_CREDIT) {
		entry->seen |= SEEN_CREDIT;
		if (record->flags & LEDGER_RESULT_RETURN_REMOTE) {
			entry->seen |= SEEN_REFUSED;
			entry->credit = *request;
			entry->code = record->code;
		}
	} else {
		entry->seen |= SEEN_RETURN;
	}
	return 0;
}

static int scan_shard(struct engine *engine, uint32_t index, struct transit_map *map,
		      char *error, size_t error_size)
{
	struct journal_error journal_error = { 0 };
	uint64_t after = engine->shards[index].snapshot_sequence;
	struct journal_reader *reader = journal_reader_open(engine->config.data_dir, index, 0,
							    after + 1, &journal_error);
	if (reader == NULL) {
		snprintf(error, error_size, "shard %u: %s", index, journal_error.text);
		return journal_error.code ? journal_error.code : -EIO;
	}
	int result = 0;
	for (;;) {
		const struct journal_record *records = NULL;
		struct journal_position position;
		int count = journal_reader_next(reader, &records, &position, &journal_error);
		if (count < 0) {
			snprintf(error, error_size, "shard %u: %s", index, journal_error.text);
			result = count;
			break;
		}
		if (count == 0)
			break;
		for (int i = 0; i < count && result == 0; i++)
			if (records[i].sequence > after)
				result = note_record(map, &records[i]);
		if (result != 0) {
			snprintf(error, error_size, "shard %u: out of memory scanning transfers", index);
			break;
		}
	}
	journal_reader_close(reader);
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
 * the payee, currency and amount from its deduplication window). */
static int resend(struct engine *engine, const struct transit_entry *entry, enum owed owed)
{
	struct engine_message message = { .worker = ENGINE_NO_REPLY };
	uint32_t from;
	if (owed == OWED_CREDIT) {
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
	} else {
		from = ledger_shard_of(entry->credit.other_id, engine->shard_count);
		message.request = engine_return_of(&entry->credit, entry->code);
	}
	return backlog_push(&engine->shards[from], &message);
}

int engine_recover_credits(struct engine *engine, char *error, size_t error_size)
{
	if (engine->shard_count < 2)
		return 0;
	struct transit_map map = { 0 };
	int result = 0;
	for (uint32_t s = 0; s < engine->shard_count && result == 0; s++)
		result = scan_shard(engine, s, &map, error, error_size);
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
	while (shard->backlog_sent < shard->backlog_count) {
		const struct engine_message *message = &shard->backlog[shard->backlog_sent];
		uint64_t target_account = message->request.kind == LEDGER_KIND_CREDIT
						  ? message->request.other_id
						  : message->request.account_id;
		uint32_t target = ledger_shard_of(target_account, engine->shard_count);
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
