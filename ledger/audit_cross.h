/*
 * audit_cross.h — the audit's rules between shards (private to ledger/).
 *
 * The audit replays shard after shard; this checker is fed every journaled
 * record of each shard in order (audit_cross_note), told when the replayed
 * ledger's deduplication window evicts an entry (audit_cross_evict), and
 * finished after the last shard (audit_cross_finish). It decides from the
 * records alone, never from the ledger's code, so a regression of the
 * ledger's cross-shard handling fails the audit; tests feed it synthetic
 * record streams directly. The rules (ledger/README.md, "Audit"):
 *   1. a transfer's final state agrees in the payer's and the payee's
 *      journals (every CREDIT has its debit, a RETURN its refused CREDIT);
 *   2. a repeat of a cross-shard transfer answers OUTCOME_REMOTE until its
 *      RETURN, the payee's code after it;
 *   3. an id is remembered by one shard's window at a time;
 *   4. refunded and captured amounts exclude returned refunds and captures.
 * Violations go to report->violations / report->first_violation (the first
 * sentence is kept, as audit.c does); counters to report->cross_*,
 * owed_*, ids_on_two_shards.
 *
 * Memory (allocated as records arrive, freed by audit_cross_destroy):
 * - per shard, one table of 56-byte entries at load <= 1/2 mirroring that
 *   shard's window plus the holds still pending after their window entry
 *   left (at most transfers_max + 2 * holds_max + 64 entries), reset
 *   between shards;
 * - over the data dir, 32 bytes per cross-shard debit, CREDIT and RETURN,
 *   and (with more than one shard) 32 bytes per remembered client decision,
 *   sorted once at the end.
 * Thread-safety: none; one checker per audit.
 */
#ifndef PAYSWITCH_AUDIT_CROSS_H
#define PAYSWITCH_AUDIT_CROSS_H

#include <stdbool.h>
#include <stdint.h>

#include "journal.h"

struct audit_cross;

/* config: a shard's capacities (holds_max, hold_timeout_us); report
 * receives counters and violations and must outlive the checker. NULL on
 * -ENOMEM. */
struct audit_cross *audit_cross_create(const struct ledger_config *config, uint32_t shard_count,
				       struct journal_audit_report *report);
void audit_cross_destroy(struct audit_cross *cross);

/* One journaled record of `shard`, after it was replayed. Shards come in
 * increasing order, records of a shard in sequence order. in_window: the
 * replayed ledger remembers the record's id with the record's kind and
 * timestamp (ledger_transfer_get) — the checker adds its own conditions
 * (not a duplicate, not TOO_OLD / TIMESTAMP_IN_FUTURE / ID_REUSED). Returns
 * 0 or -ENOMEM. */
int audit_cross_note(struct audit_cross *cross, uint32_t shard, const struct journal_record *record,
		     bool in_window);

/* The window of `shard` evicted `evicted` at now_us, while inserting the
 * decision of `sequence` (ledger_sequence() inside the eviction hook): the
 * eviction takes effect right after that record's note (the record was
 * decided with the evicted entry still there). Never fails. */
void audit_cross_evict(struct audit_cross *cross, uint32_t shard,
		       const struct ledger_transfer_info *evicted, uint64_t now_us,
		       uint64_t sequence);

/* After the last shard: matches debits, CREDITs and RETURNs across shards
 * and checks that no id was live on two shards at once. 0 or -ENOMEM. */
int audit_cross_finish(struct audit_cross *cross);

#endif /* PAYSWITCH_AUDIT_CROSS_H */
