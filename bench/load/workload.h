/*
 * workload.h — what people pay: coffee, bills, newspapers, refunds, holds.
 *
 * Pure and single-threaded: a seeded generator turns (config, accounts) into
 * a stream of requests. It remembers approved payments (to refund some) and
 * approved holds (to capture or void them later); the driver tells it what
 * the switch approved through load_workload_approved().
 * Memory: allocated by load_workload_init(); load_workload_next() never allocates.
 */
#ifndef PAYSWITCH_BENCH_LOAD_WORKLOAD_H
#define PAYSWITCH_BENCH_LOAD_WORKLOAD_H

#include "load.h"

/* The default micro-payment mix, accounts and funding (payswitch-load's
 * defaults, and what bench/compare gives every peer): leaves transport,
 * retry, refund and hold fields as they are. */
void load_workload_defaults(struct load_config *config);

/* An approved payment or hold remembered for a later refund / capture / void. */
struct load_memo {
	uint64_t id;
	uint64_t amount;
	uint64_t time_ns;            /* when it was approved */
	uint32_t payer;              /* account indexes */
	uint32_t payee;
};

/* Memo rings: bounded; the oldest payment is forgotten when full, and no new
 * hold is made while the hold ring is full. */
#define LOAD_MEMO_CAPACITY 65536u

struct load_memo_ring {
	struct load_memo *entries;   /* LOAD_MEMO_CAPACITY */
	uint64_t head;               /* next to take */
	uint64_t tail;               /* next to fill */
};

/* A request's companions the tally needs (indexes into the accounts). */
struct load_meta {
	uint8_t op;                  /* enum load_op */
	uint32_t payee;              /* credit account: payee, refunded payer, hold payee */
	uint64_t hold_amount;        /* CAPTURE / VOID: the hold's amount */
};

struct load_workload {
	const struct load_config *config;
	const struct load_accounts *accounts;
	uint64_t rng;
	double *merchant_cdf;        /* Zipf over merchants */
	double *utility_cdf;         /* Zipf over utilities */
	uint32_t mix_total;
	struct load_memo_ring payments;
	struct load_memo_ring holds;
	uint64_t hold_delay_ns;      /* a hold is settled at least this long after approval */
	bool settling;               /* end of run: only settle the remaining holds */
};

void load_accounts_layout(const struct load_config *config, struct load_accounts *accounts);

/* Returns 0 or -ENOMEM. */
int load_workload_init(struct load_workload *workload, const struct load_config *config,
		       const struct load_accounts *accounts);
void load_workload_fini(struct load_workload *workload);

/* Fills *request (all but id and timestamp) and *meta with the next operation.
 * Returns false when there is nothing to do (settling with no hold left). */
bool load_workload_next(struct load_workload *workload, uint64_t now_ns,
			struct ledger_request *request, struct load_meta *meta);

/* The switch approved a PAY (or CAPTURE) or a HOLD: remember it. */
void load_workload_approved(struct load_workload *workload, const struct ledger_request *request,
			    const struct load_meta *meta, uint64_t amount, uint64_t now_ns);

/* Pending holds not yet settled (nor being settled). */
uint64_t load_workload_holds_pending(const struct load_workload *workload);

/* Uniform 64-bit random numbers (xorshift64*), exposed for the driver's retries. */
uint64_t load_random(uint64_t *state);

/* Index (0..n-1) drawn from a cumulative distribution of n entries. Pure. */
uint32_t load_zipf_pick(const double *cdf, uint32_t n, double uniform);

#endif
