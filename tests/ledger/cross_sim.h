/*
 * cross_sim.h — a simulated multi-shard switch for tests and the fuzzer.
 *
 * One `struct ledger` per shard, requests routed by ledger_shard_of(), the
 * engine's id claims (engine/claims.c) and FIFO queues between shards that
 * carry what engine/shard.c sends there: CREDIT (ledger_remote_credit), RETURN
 * (the CREDIT with kind RETURN and flags = the payee's refusal) and probes
 * (a result with LEDGER_RESULT_OUTCOME_REMOTE goes to the payee's shard and
 * back, then is answered from the payer's window as answer_probe_back() does).
 *
 * A client batch is decided shard by shard (0, 1, ...: each shard's part of
 * the batch is one ledger_apply(), with the claims taken before and settled
 * after, as decide() does), then messages are delivered in rounds until the
 * queues are quiet: in a round every shard takes what its queues held when
 * the round began, from source shard 0 up, as gather() does. Every client
 * request has its final answer when cross_sim_batch() returns.
 *
 * Nothing here uses Criterion: it aborts (assert) on a broken protocol rule,
 * so the fuzzer can use it as is. Single-threaded.
 */
#ifndef PAYSWITCH_TESTS_CROSS_SIM_H
#define PAYSWITCH_TESTS_CROSS_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "ledger.h"

#define CROSS_SIM_SHARDS_MAX 4u
#define CROSS_SIM_BATCH_MAX 64u

/* Called for every journaled decision, in each shard's decision order. */
typedef void (*cross_sim_record_fn)(void *context, uint32_t shard, uint64_t now_us,
				    const struct ledger_request *request,
				    const struct ledger_result *result);

struct cross_sim_stats {
	uint64_t credits;          /* CREDIT messages sent */
	uint64_t returns;          /* RETURN messages sent */
	uint64_t returns_refused;  /* RETURNs the payer's ledger refused (money stays in transit) */
	uint64_t probes;           /* repeats / LOOKUPs answered through the payee's shard */
	uint64_t claims_refused;   /* ID_REUSED by the claims (another shard holds the id) */
	uint64_t too_old_elsewhere;/* TOO_OLD by the switch-wide eviction watermark */
	uint64_t busy;             /* claims table full */
};

struct cross_sim;

/* `config` gives the capacities; its shard fields are set per shard.
 * Returns NULL on a bad config or no memory. */
struct cross_sim *cross_sim_create(const struct ledger_config *config, uint32_t shard_count);
void cross_sim_destroy(struct cross_sim *sim);
void cross_sim_set_record(struct cross_sim *sim, cross_sim_record_fn record, void *context);

/* Decides `count` (<= CROSS_SIM_BATCH_MAX) client requests at now_us (not
 * going backwards) and delivers every message they cause. replies[i] is the
 * final answer the client of requests[i] gets. */
void cross_sim_batch(struct cross_sim *sim, uint64_t now_us, const struct ledger_request *requests,
		     struct ledger_result *replies, uint32_t count);

uint32_t cross_sim_shard_count(const struct cross_sim *sim);
struct ledger *cross_sim_ledger(const struct cross_sim *sim, uint32_t shard);
/* The account wherever it lives (its owner shard), or NULL. */
const struct ledger_account *cross_sim_account(const struct cross_sim *sim, uint64_t id);
const struct cross_sim_stats *cross_sim_stats(const struct cross_sim *sim);

/* ledger_check_invariants() on every shard (a closed account credited by a
 * RETURN is the documented exception, ledger/README.md "Known limits": the
 * other rules are then checked account by account) and the double entry over
 * all shards: per currency, the sum of balances + transit == 0. Returns 0, or
 * -1 with a sentence in text (>= 256 bytes). */
int cross_sim_check(const struct cross_sim *sim, char *text, uint32_t text_bytes);

#endif
