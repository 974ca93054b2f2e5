/*
 * sweep.h — payswitch-load --sweep: the latency–throughput curve.
 *
 * Open loop at rising offered rates against one switch, a fresh driver (and
 * histogram) per step over the same client, accounts and tally, so the
 * balances are verified once at the end, after every step. A step's latency
 * counts from each request's scheduled send time (BUSY waits included); the
 * sweep stops at the first step whose delivered rate falls short of the
 * offered one or whose p99 explodes. It reports the highest sustained rate
 * with p99 within 5 ms and within 1 ms (DESIGN.md rule 10: capacity is the
 * rate sustained inside the latency promise).
 */
#ifndef PAYSWITCH_BENCH_LOAD_SWEEP_H
#define PAYSWITCH_BENCH_LOAD_SWEEP_H

#include <stdio.h>

#include "load.h"
#include "workload.h"

#define LOAD_SWEEP_SUSTAINED 0.95       /* delivered / offered for a step to count */
#define LOAD_SWEEP_EXPLODED_NS 50000000u /* p99 past 50 ms (10x the bound): stop */

struct load_sweep_step {
	uint64_t offered;            /* requests/s scheduled */
	double sent_per_s;           /* first transmissions / load time */
	double delivered_per_s;      /* final answers / the step's time, drain included */
	double busy_share;           /* BUSY answers / (BUSY answers + final answers) */
	uint64_t completed, busy, busy_retries, retransmits, late_answers, no_answer;
	uint64_t inflight_full;
	uint64_t p50_ns, p90_ns, p99_ns, p999_ns, max_ns;
	bool sustained;              /* delivered >= LOAD_SWEEP_SUSTAINED * offered, all answered */
};

struct load_sweep {
	struct load_sweep_step steps[LOAD_SWEEP_STEPS_MAX];
	uint32_t step_count;
	const char *stop_reason;     /* why the sweep stopped before its last rate, or NULL */
	uint64_t best_5ms;           /* highest sustained offered rate with p99 <= 5 ms; 0: none */
	uint64_t best_1ms;           /* ... p99 <= 1 ms */
	struct load_totals totals;   /* every step's totals added */
};

/* Runs the steps. Returns 0, or -errno on a socket failure (the steps so
 * far are in *sweep). */
int load_sweep_run(const struct load_config *config, const struct load_accounts *accounts,
		   struct load_workload *workload, struct netio_client *client,
		   int64_t *expected, struct load_sweep *sweep);

void load_sweep_table(const struct load_config *config, const struct load_sweep *sweep,
		      const char *verdict, FILE *out);
/* Returns 0 or -errno. */
int load_sweep_json(const struct load_config *config, const struct load_sweep *sweep,
		    const char *verdict, const char *path);
/* p50 / p99 / p99.9 against offered rate: PATH.dat, PATH.gp, gnuplot.
 * Returns 0, or -errno / -ENOENT when gnuplot is missing or failed. */
int load_sweep_plot(const struct load_config *config, const struct load_sweep *sweep,
		    const char *path);

#endif
