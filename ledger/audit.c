/*
 * audit.c — `payswitch audit`: replays every shard's journal from genesis
 * into a fresh ledger and checks it against itself, its snapshots and the
 * rules. Read-only: a torn tail is reported, never cut.
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

#define AUDIT_CHECK_EVERY_DEFAULT 1000000u
#define AUDIT_IO_ERROR 2
#define AUDIT_VIOLATION 1

/* Ids approved in one shard; class 0 client operations, 1 credits, 2 returns. */
struct id_entry {
	uint64_t id;
	uint64_t class_plus_one; /* 0 = empty */
};

struct id_set {
	struct id_entry *entries;
	uint64_t capacity;       /* power of two */
	uint64_t count;
};

struct audit {
	const char *dir;
	const struct journal_audit_options *options;
	struct journal_audit_report *report;
	struct journal_meta meta;
	FILE *out;
	FILE *statement;         /* the account statement; JSON: a memory stream */
	char *statement_text;
	size_t statement_bytes;
	uint64_t statement_lines;
	struct id_set approved;
	uint64_t check_every;
	uint32_t shard;
	struct ledger *ledger;
	struct ledger *snapshot;
	uint64_t snapshot_sequence;
	bool snapshot_pending;
	struct audit_cross *cross;   /* the rules between shards */
};

static int audit_violation(struct audit *audit, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
static int audit_violation(struct audit *audit, const char *format, ...)
{
	struct journal_audit_report *report = audit->report;
	if (report->violations++ == 0) {
		va_list args;
		va_start(args, format);
		vsnprintf(report->first_violation, sizeof(report->first_violation), format, args);
		va_end(args);
	}
	return AUDIT_VIOLATION;
}

static int id_set_grow(struct id_set *set)
{
	uint64_t capacity = set->capacity ? set->capacity * 2 : 1u << 16;
	struct id_entry *entries = calloc(capacity, sizeof(*entries));
	if (entries == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < set->capacity; i++) {
		struct id_entry entry = set->entries[i];
		if (entry.class_plus_one == 0)
			continue;
		uint64_t slot = journal_hash(&entry.id, sizeof(entry.id)) & (capacity - 1);
		while (entries[slot].class_plus_one != 0)
			slot = (slot + 1) & (capacity - 1);
		entries[slot] = entry;
	}
	free(set->entries);
	set->entries = entries;
	set->capacity = capacity;
	assert((capacity & (capacity - 1)) == 0); /* the mask works */
	assert(set->count * 10 <= capacity * 7);
	return 0;
}

/* Inserts; returns 1 if it was already there, 0 if new, -ENOMEM. */
static int id_set_insert(struct id_set *set, uint64_t id, uint64_t class_index)
{
	assert(class_index <= 2); /* client decision, CREDIT or RETURN */
	if ((set->count + 1) * 10 > set->capacity * 7 && id_set_grow(set) != 0)
		return -ENOMEM;
	assert(set->count < set->capacity); /* an empty slot ends every probe */
	uint64_t slot = journal_hash(&id, sizeof(id)) & (set->capacity - 1);
	while (set->entries[slot].class_plus_one != 0) {
		if (set->entries[slot].id == id && set->entries[slot].class_plus_one == class_index + 1)
			return 1;
		slot = (slot + 1) & (set->capacity - 1);
	}
	set->entries[slot] = (struct id_entry){.id = id, .class_plus_one = class_index + 1};
	set->count++;
	return 0;
}

static int compare_account(const struct ledger_account *account, void *context)
{
	const struct ledger *other = context;
	const struct ledger_account *twin = ledger_account_get(other, account->id);
	return twin == NULL || memcmp(twin, account, sizeof(*account)) != 0;
}

/* The replayed state at the snapshot's sequence must equal the snapshot. */
static int audit_compare_snapshot(struct audit *audit)
{
	audit->snapshot_pending = false;
	audit->report->snapshots_compared++;
	if (ledger_account_count(audit->ledger) != ledger_account_count(audit->snapshot) ||
	    ledger_hold_count(audit->ledger) != ledger_hold_count(audit->snapshot) ||
	    ledger_account_foreach(audit->ledger, compare_account, audit->snapshot) != 0)
		return audit_violation(audit, "shard %u: snapshot at sequence %" PRIu64 " differs"
				       " from the replayed state (accounts %" PRIu64 " vs %" PRIu64
				       ", holds %" PRIu64 " vs %" PRIu64 ")", audit->shard,
				       audit->snapshot_sequence, ledger_account_count(audit->snapshot),
				       ledger_account_count(audit->ledger),
				       ledger_hold_count(audit->snapshot), ledger_hold_count(audit->ledger));
	return 0;
}

static int audit_invariants(struct audit *audit, uint64_t sequence)
{
	struct ledger_violation violation;
	if (ledger_check_invariants(audit->ledger, &violation) != 0)
		return audit_violation(audit, "shard %u: at sequence %" PRIu64 ": %s", audit->shard,
				       sequence, violation.text);
	return 0;
}

static bool record_touches(const struct audit *audit, const struct journal_record *record)
{
	return audit->options->has_account &&
	       (record->request.account_id == audit->options->account_id ||
		record->request.other_id == audit->options->account_id);
}

static void audit_statement_line(struct audit *audit, const struct journal_record *record)
{
	const struct journal_audit_options *options = audit->options;
	bool owner = ledger_shard_of(options->account_id, audit->meta.shard_count) == audit->shard;
	const struct ledger_account *account = owner ? ledger_account_get(audit->ledger,
									    options->account_id) : NULL;
	const struct ledger_request *request = &record->request;
	char balance[32] = "-";
	if (account != NULL)
		snprintf(balance, sizeof(balance), "%" PRId64, account->balance);
	if (options->json)
		fprintf(audit->statement, "%s{\"shard\":%u,\"sequence\":%" PRIu64 ",\"now_us\":%"
			PRIu64 ",\"kind\":%u,\"id\":%" PRIu64 ",\"account_id\":%" PRIu64
			",\"other_id\":%" PRIu64 ",\"amount\":%" PRIu64 ",\"currency\":%u,"
			"\"code\":\"%s\",\"balance\":%s}", audit->statement_lines ? "," : "",
			audit->shard, record->sequence, record->now_us, request->kind, request->id,
			request->account_id, request->other_id, request->amount, request->currency,
			ledger_result_name(record->code), account ? balance : "null");
	else
		fprintf(audit->statement, "  shard %u seq %" PRIu64 " now_us %" PRIu64 " kind %u id %"
			PRIu64 " %" PRIu64 " -> %" PRIu64 " amount %" PRIu64 " %u %s balance %s\n",
			audit->shard, record->sequence, record->now_us, request->kind, request->id,
			request->account_id, request->other_id, request->amount, request->currency,
			ledger_result_name(record->code), balance);
	audit->statement_lines++;
}

/* Counts, duplicate approvals; before the replay of the record. */
static int audit_count(struct audit *audit, const struct journal_record *record)
{
	struct journal_audit_report *report = audit->report;
	report->records++;
	if (record->code < LEDGER_RESULT_CODE_COUNT)
		report->records_by_code[record->code]++;
	if (record->code != LEDGER_OK || (record->flags & LEDGER_RESULT_DUPLICATE))
		return 0;
	uint8_t kind = record->request.kind;
	uint64_t class_index = kind == LEDGER_KIND_CREDIT ? 1 : kind == LEDGER_KIND_RETURN ? 2 : 0;
	int seen = id_set_insert(&audit->approved, record->request.id, class_index);
	if (seen < 0)
		return -ENOMEM;
	if (seen > 0) {
		report->duplicate_approvals++;
		return audit_violation(audit, "shard %u: sequence %" PRIu64 ": id %" PRIu64
				       " approved twice", audit->shard, record->sequence,
				       record->request.id);
	}
	return 0;
}

/* Whether the replayed ledger remembers the record's id as this decision. */
static bool audit_in_window(const struct audit *audit, const struct journal_record *record)
{
	struct ledger_transfer_info info;
	const struct ledger_request *request = &record->request;
	return ledger_kind_remembered(request->kind) &&
	       ledger_transfer_get(audit->ledger, request->id, &info) &&
	       info.kind == request->kind && info.timestamp_us == request->timestamp_us;
}

static void audit_evicted(void *context, const struct ledger_transfer_info *evicted,
			  uint64_t now_us)
{
	struct audit *audit = context;
	audit_cross_evict(audit->cross, audit->shard, evicted, now_us,
			  ledger_sequence(audit->ledger));
}

/* Length of the next chunk: it ends at a record after which something is
 * checked (snapshot sequence, periodic invariants, a statement line). */
static uint32_t audit_chunk(const struct audit *audit, const struct journal_record *records,
			    uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		uint64_t number = audit->report->records + i + 1;
		if ((audit->snapshot_pending && records[i].sequence == audit->snapshot_sequence) ||
		    number % audit->check_every == 0 || record_touches(audit, &records[i]))
			return i + 1;
	}
	return count;
}

static int audit_block(struct audit *audit, const struct journal_record *records, uint32_t count,
		       const struct journal_position *position)
{
	char why[400];
	uint64_t applied = 0;
	while (count > 0) {
		uint32_t chunk = audit_chunk(audit, records, count);
		assert(chunk > 0);
		assert(chunk <= count);
		uint64_t applied_before = applied;
		uint32_t done = journal_replay(audit->ledger, records, chunk, 0, &applied, why,
					       sizeof(why));
		if (done < chunk)
			return audit_violation(audit, "%s: offset %" PRIu64 ": %s", position->path,
					       position->offset, why);
		/* Every record replayed, each matched its sequence: the ledger
		 * stands at the chunk's last. */
		assert(applied - applied_before == chunk);
		assert(ledger_sequence(audit->ledger) == records[chunk - 1].sequence);
		for (uint32_t i = 0; i < chunk; i++) {
			int result = audit_count(audit, &records[i]);
			if (result >= 0)
				result = audit_cross_note(audit->cross, audit->shard, &records[i],
							  audit_in_window(audit, &records[i]));
			if (result < 0)
				return result;
		}
		const struct journal_record *last = &records[chunk - 1];
		if (record_touches(audit, last))
			audit_statement_line(audit, last);
		if (audit->snapshot_pending && last->sequence == audit->snapshot_sequence)
			audit_compare_snapshot(audit);
		if (audit->report->records % audit->check_every == 0)
			audit_invariants(audit, last->sequence);
		records += chunk;
		count -= chunk;
	}
	return 0;
}

static void audit_add_totals(struct audit *audit)
{
	struct ledger_currency_total totals[JOURNAL_AUDIT_CURRENCIES_MAX];
	struct journal_audit_report *report = audit->report;
	uint32_t count = ledger_currency_totals(audit->ledger, totals, JOURNAL_AUDIT_CURRENCIES_MAX);
	/* Not a clamp: a ledger keeps at most 32 currencies, fewer than the report's. */
	assert(count <= JOURNAL_AUDIT_CURRENCIES_MAX);
	report->accounts += ledger_account_count(audit->ledger);
	for (uint32_t i = 0; i < count; i++) {
		uint32_t at = 0;
		while (at < report->currency_count && report->currencies[at].currency != totals[i].currency)
			at++;
		if (at == JOURNAL_AUDIT_CURRENCIES_MAX)
			break;
		if (at == report->currency_count)
			report->currencies[report->currency_count++].currency = totals[i].currency;
		report->currencies[at].balance_sum += totals[i].balance_sum;
		report->currencies[at].transit += totals[i].transit;
		report->currencies[at].accounts += totals[i].accounts;
	}
}

/* The newest snapshot, verified; a newest one that fails is a violation. */
static int audit_load_snapshot(struct audit *audit, const struct ledger_config *config)
{
	uint64_t *sequences;
	int listed = journal_snapshots_list(audit->dir, audit->shard, &sequences);
	if (listed <= 0)
		return listed;
	uint64_t newest = sequences[0];
	free(sequences);
	struct journal_error error = {0};
	int created;
	audit->snapshot = ledger_create(config, &created);
	if (audit->snapshot == NULL)
		return created;
	int result = journal_snapshot_load(audit->dir, audit->shard, audit->snapshot, UINT64_MAX,
					   &audit->snapshot_sequence, &error);
	if (result < 0 || (result == 1 && audit->snapshot_sequence != newest) || result == 0)
		audit_violation(audit, "shard %u: newest snapshot (sequence %" PRIu64 ") does not"
				" verify or load%s%s", audit->shard, newest, result < 0 ? ": " : "",
				result < 0 ? error.text : "");
	if (result != 1) {
		ledger_destroy(audit->snapshot);
		audit->snapshot = NULL;
		return 0;
	}
	audit->snapshot_pending = true;
	return 0;
}

static int audit_scan(struct audit *audit)
{
	struct journal_error error = {0};
	struct journal_reader *reader = journal_reader_open(audit->dir, audit->shard, 0, 0, &error);
	if (reader == NULL)
		return audit_violation(audit, "%s", error.text), AUDIT_IO_ERROR;
	const struct journal_record *records;
	struct journal_position position;
	int count, result = 0;
	while ((count = journal_reader_next(reader, &records, &position, &error)) > 0)
		if ((result = audit_block(audit, records, (uint32_t)count, &position)) != 0)
			break;
	char torn[JOURNAL_ERROR_TEXT_BYTES];
	if (count == 0 && journal_reader_torn(reader, torn, sizeof(torn))) {
		audit->report->torn_tails++;
		if (audit->out != NULL && !audit->options->json)
			fprintf(audit->out, "note: shard %u: %s\n", audit->shard, torn);
	}
	journal_reader_close(reader);
	if (count == -EBADMSG)
		return audit_violation(audit, "%s", error.text);
	if (count < 0)
		return audit_violation(audit, "%s", error.text), AUDIT_IO_ERROR;
	if (result < 0)
		return audit_violation(audit, "shard %u: out of memory", audit->shard), AUDIT_IO_ERROR;
	return result;
}

static int audit_shard(struct audit *audit, uint32_t shard)
{
	struct ledger_config config;
	journal_meta_shard_config(&audit->meta, shard, &config);
	audit->shard = shard;
	journal_audit_files(audit->dir, shard, audit->report, audit->options->json ? NULL : audit->out);
	audit->snapshot_pending = false;
	audit->approved.count = 0;
	if (audit->approved.entries != NULL)
		memset(audit->approved.entries, 0, audit->approved.capacity * sizeof(struct id_entry));
	int created;
	audit->ledger = ledger_create(&config, &created);
	if (audit->ledger == NULL)
		return audit_violation(audit, "shard %u: ledger_create: %s", shard,
				       strerror(-created)), AUDIT_IO_ERROR;
	ledger_set_evict_hook(audit->ledger, audit_evicted, audit);
	int result = audit_load_snapshot(audit, &config);
	if (result < 0) {
		audit_violation(audit, "shard %u: snapshot: %s", shard, strerror(-result));
		result = AUDIT_IO_ERROR;
	}
	if (result == 0 && audit->snapshot_pending && audit->snapshot_sequence == 0)
		audit_compare_snapshot(audit);
	if (result == 0)
		result = audit_scan(audit);
	if (result != AUDIT_IO_ERROR && audit->snapshot_pending)
		audit_violation(audit, "shard %u: snapshot at sequence %" PRIu64 " is beyond the"
				" journal's end %" PRIu64, shard, audit->snapshot_sequence,
				ledger_sequence(audit->ledger));
	if (result != AUDIT_IO_ERROR) {
		audit_invariants(audit, ledger_sequence(audit->ledger));
		audit_add_totals(audit);
	}
	audit->report->shards++;
	ledger_destroy(audit->snapshot);
	audit->snapshot = NULL;
	ledger_destroy(audit->ledger);
	audit->ledger = NULL;
	return result;
}

static void audit_cross_shard(struct audit *audit)
{
	for (uint32_t i = 0; i < audit->report->currency_count; i++) {
		const struct journal_audit_currency *total = &audit->report->currencies[i];
		char balances[48], transit[48];
		if (total->balance_sum + total->transit != 0)
			audit_violation(audit, "currency %u: balances %s + in transit %s != 0 over"
					" all shards", total->currency,
					ledger_format_i128(total->balance_sum, balances, sizeof(balances)),
					ledger_format_i128(total->transit, transit, sizeof(transit)));
	}
}

int journal_audit(const char *dir, const struct journal_audit_options *options,
		  struct journal_audit_report *report)
{
	assert(dir != NULL);
	assert(options != NULL);
	assert(report != NULL);
	uint64_t started_ns = journal_monotonic_ns();
	memset(report, 0, sizeof(*report));
	struct audit audit = {.dir = dir, .options = options, .report = report, .out = options->out};
	audit.check_every = options->check_every_records ? options->check_every_records
							  : AUDIT_CHECK_EVERY_DEFAULT;
	struct journal_error error = {0};
	if (journal_meta_read(dir, &audit.meta, &error) != 0) {
		snprintf(report->first_violation, sizeof(report->first_violation), "%s", error.text);
		return AUDIT_IO_ERROR;
	}
	audit.cross = audit_cross_create(&audit.meta.config, audit.meta.shard_count, report);
	if (audit.cross == NULL) {
		snprintf(report->first_violation, sizeof(report->first_violation), "out of memory");
		return AUDIT_IO_ERROR;
	}
	audit.statement = options->json ? open_memstream(&audit.statement_text, &audit.statement_bytes)
					: options->out;
	if (audit.statement == NULL)
		audit.statement = fopen("/dev/null", "w");
	if (options->has_account && audit.out != NULL && !options->json)
		fprintf(audit.out, "statement of account %" PRIu64 ":\n", options->account_id);
	int status = 0;
	for (uint32_t shard = 0; shard < audit.meta.shard_count; shard++) {
		int result = audit_shard(&audit, shard);
		if (result == AUDIT_IO_ERROR)
			status = AUDIT_IO_ERROR;
	}
	audit_cross_shard(&audit);
	if (audit_cross_finish(audit.cross) < 0) {
		audit_violation(&audit, "across shards: out of memory");
		status = AUDIT_IO_ERROR;
	}
	audit_cross_destroy(audit.cross);
	free(audit.approved.entries);
	if (audit.statement != options->out)
		fclose(audit.statement);
	report->elapsed_us = (journal_monotonic_ns() - started_ns) / 1000u;
	if (audit.out != NULL)
		journal_audit_print(audit.out, options, report, audit.statement_text);
	free(audit.statement_text);
	if (status == 0 && report->violations > 0)
		status = AUDIT_VIOLATION;
	return status;
}
