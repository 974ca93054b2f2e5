/*
 * cross_model.h — an independent sequential reference model of a whole
 * multi-shard switch, for test_cross_random.c. It never calls the ledger:
 * plain arrays, one account table and one transfer table for the switch,
 * the rules of ledger/RESULTS.md written out again, including "Across
 * shards" (the payee of another shard is checked when the credit arrives;
 * a refusal there sends the money back and becomes the transfer's code;
 * what a returned refund, capture or payment undoes) and "One id space for
 * the switch" (an id another shard remembers is ID_REUSED, not journaled).
 *
 * Timing follows the switch's: a batch is decided shard by shard (0, 1, ...,
 * each shard's requests in batch order), then credits reach their payees
 * (in decision order), then returns reach their payers (by payee shard, then
 * decision order), then repeats and LOOKUPs of transfers whose outcome was
 * remote are answered with the final outcome and balance.
 *
 * Ids: account ids < accounts_ids, request ids < transfer_ids (asserted).
 */
#ifndef PAYSWITCH_TESTS_CROSS_MODEL_H
#define PAYSWITCH_TESTS_CROSS_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "ledger.h"

struct cross_model_config {
	uint32_t shard_count;
	uint64_t account_ids;        /* ids 0 .. account_ids - 1 */
	uint64_t transfer_ids;       /* request ids 0 .. transfer_ids - 1 */
	uint64_t accounts_max;       /* per shard */
	uint64_t holds_max;          /* per shard */
	uint64_t dedup_window_us;
	uint64_t future_tolerance_us;
	uint64_t hold_timeout_us;
};

struct cross_model_account {
	bool exists;
	uint32_t shard;
	int64_t balance;
	uint64_t held, overdraft, limit_payment, limit_daily, spent, spent_day;
	uint16_t currency, flags;
};

struct cross_model_stats {
	uint64_t credits, returns, probes, claims_refused;
	uint64_t returns_refused;      /* a RETURN that would overflow the payer */
	uint64_t returns_to_closed;    /* the documented known limit */
	uint64_t refund_not_found_elsewhere; /* see cross_model.c, model_window_view() */
};

struct cross_model;

struct cross_model *cross_model_create(const struct cross_model_config *config);
void cross_model_destroy(struct cross_model *model);

/* The replies the switch must give to a batch decided at now_us: code,
 * balance, amount and flags (DUPLICATE, JOURNAL) of each; sequence is not
 * modelled (it is per shard) and left 0. */
void cross_model_batch(struct cross_model *model, uint64_t now_us,
		       const struct ledger_request *requests, struct ledger_result *expected,
		       uint32_t count);

/* NULL if the id was never opened. */
const struct cross_model_account *cross_model_account(const struct cross_model *model, uint64_t id);
uint64_t cross_model_pending_holds(const struct cross_model *model, uint32_t shard);
const struct cross_model_stats *cross_model_stats(const struct cross_model *model);

/* Whether `id` is remembered (for the generator: which account decided it). */
bool cross_model_transfer(const struct cross_model *model, uint64_t id,
			  struct ledger_request *request, uint8_t *code);

#endif
