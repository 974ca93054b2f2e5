/*
 * recovery.c — rebuild a shard's ledger from its newest good snapshot and the
 * journal after it; the replay loop the audit shares.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "journal_internal.h"

static bool result_matches(const struct journal_record *record, const struct ledger_result *result,
			   char *why, size_t why_bytes)
{
	if (result->code == record->code && result->flags == record->flags &&
	    result->balance == record->balance && result->sequence == record->sequence &&
	    result->id == record->request.id)
		return true;
	snprintf(why, why_bytes, "replay of sequence %" PRIu64 " (id %" PRIu64 ") differs:"
		 " expected code %s flags 0x%x balance %" PRId64 " sequence %" PRIu64
		 ", found code %s flags 0x%x balance %" PRId64 " sequence %" PRIu64,
		 record->sequence, record->request.id, ledger_result_name(record->code),
		 record->flags, record->balance, record->sequence, ledger_result_name(result->code),
		 result->flags, result->balance, result->sequence);
	return false;
}

uint32_t journal_replay(struct ledger *ledger, const struct journal_record *records,
			uint32_t count, uint64_t after, uint64_t *applied, char *why,
			size_t why_bytes)
{
	struct ledger_request requests[JOURNAL_BLOCK_RECORDS];
	struct ledger_result results[JOURNAL_BLOCK_RECORDS];
	assert(count <= JOURNAL_BLOCK_RECORDS);
	uint32_t at = 0;
	while (at < count && records[at].sequence <= after)
		at++;
	while (at < count) {
		uint64_t now_us = records[at].now_us;
		if (now_us < ledger_now(ledger)) {
			snprintf(why, why_bytes, "sequence %" PRIu64 ": now_us %" PRIu64 " goes back"
				 " before %" PRIu64, records[at].sequence, now_us, ledger_now(ledger));
			return at;
		}
		uint32_t run = 0;
		while (at + run < count && records[at + run].now_us == now_us) {
			requests[run] = records[at + run].request;
			run++;
		}
		ledger_apply(ledger, now_us, requests, results, run);
		for (uint32_t i = 0; i < run; i++)
			if (!result_matches(&records[at + i], &results[i], why, why_bytes))
				return at + i;
		*applied += run;
		at += run;
	}
	return count;
}

static int recover_replay(const char *dir, uint32_t shard, struct ledger *ledger,
			  struct journal_recovery_report *report, struct journal_error *error)
{
	char why[400];
	struct journal_reader *reader = journal_reader_open(dir, shard, JOURNAL_READER_REPAIR,
							    report->snapshot_sequence + 1, error);
	if (reader == NULL)
		return error != NULL ? error->code : -EIO;
	const struct journal_record *records;
	struct journal_position position;
	int count;
	while ((count = journal_reader_next(reader, &records, &position, error)) > 0) {
		report->records_read += (uint64_t)count;
		uint32_t done = journal_replay(ledger, records, (uint32_t)count,
					       report->snapshot_sequence, &report->records_replayed,
					       why, sizeof(why));
		if (done < (uint32_t)count) {
			count = journal_error_set(error, -EBADMSG, "%s: offset %" PRIu64 ": %s",
						  position.path, position.offset, why);
			break;
		}
		report->segments = position.segment_index + 1;
	}
	report->torn_tail = journal_reader_torn(reader, report->torn_text, sizeof(report->torn_text));
	uint64_t last = journal_reader_sequence(reader);
	journal_reader_close(reader);
	if (count < 0)
		return count;
	if (last < report->snapshot_sequence)
		return journal_error_set(error, -EBADMSG, "shard %u: snapshot at sequence %" PRIu64
					 " is ahead of the journal, which ends at %" PRIu64, shard,
					 report->snapshot_sequence, last);
	report->last_sequence = ledger_sequence(ledger);
	if (report->last_sequence != (last > report->snapshot_sequence ? last : report->snapshot_sequence))
		return journal_error_set(error, -EBADMSG, "shard %u: ledger at sequence %" PRIu64
					 " after replay, journal ends at %" PRIu64, shard,
					 report->last_sequence, last);
	return 0;
}

int journal_recover(const char *dir, uint32_t shard, struct ledger *ledger,
		    struct journal_recovery_report *report, struct journal_error *error)
{
	uint64_t started_ns = journal_monotonic_ns();
	memset(report, 0, sizeof(*report));
	assert(ledger_sequence(ledger) == 0);
	/* A snapshot beyond the journal's end was taken of undurable state. */
	uint64_t tail = journal_tail_sequence(dir, shard);
	int result = journal_snapshot_load(dir, shard, ledger, tail, &report->snapshot_sequence, error);
	if (result < 0)
		return result;
	result = recover_replay(dir, shard, ledger, report, error);
	if (result != 0)
		return result;
	struct ledger_violation violation;
	if (ledger_check_invariants(ledger, &violation) != 0)
		return journal_error_set(error, -EBADMSG, "shard %u: invariant broken after recovery"
					 " at sequence %" PRIu64 ": %s", shard,
					 report->last_sequence, violation.text);
	report->elapsed_us = (journal_monotonic_ns() - started_ns) / 1000u;
	return 0;
}
