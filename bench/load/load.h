/*
 * load.h — payswitch-load: the load generator's shared types.
 *
 * One thread drives one client socket (netio client library). Requests live
 * in a slot table indexed by the low bits of their id; results are matched by
 * id, so a datagram split over shards, a retransmission or a deliberate retry
 * all land on the same slot. Units: times are nanoseconds (CLOCK_MONOTONIC)
 * unless named _us; money is cents (minor units), balances signed.
 */
#ifndef PAYSWITCH_BENCH_LOAD_H
#define PAYSWITCH_BENCH_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "ledger.h"
#include "netio.h"

/* What a request is, for the tally and the per-kind counters. */
enum load_op {
	LOAD_OP_COFFEE = 0,     /* PAY: small amounts, many merchants (Zipf) */
	LOAD_OP_BILLS = 1,      /* PAY: large amounts, a few hot utilities (Zipf) */
	LOAD_OP_NEWS = 2,       /* PAY: tiny recurring subscription to one publisher */
	LOAD_OP_REFUND = 3,     /* REFUND of an earlier approved payment */
	LOAD_OP_HOLD = 4,       /* HOLD (a coffee or a bill authorized first) */
	LOAD_OP_CAPTURE = 5,    /* CAPTURE of an approved hold (partial or full) */
	LOAD_OP_VOID = 6,       /* VOID of an approved hold */
	LOAD_OP_COUNT = 7,
};
#define LOAD_WORKLOADS 3u       /* coffee, bills, news: the --mix weights */
#define LOAD_SWEEP_STEPS_MAX 32u /* rates one --sweep tries at most */

enum load_profile {
	LOAD_PROFILE_FLAT = 0,
	LOAD_PROFILE_MORNING = 1, /* open loop: a bell-shaped rush over the run */
};

/* Code index for "no answer after every retransmission". */
#define LOAD_CODE_NO_ANSWER LEDGER_RESULT_CODE_COUNT
#define LOAD_CODES (LEDGER_RESULT_CODE_COUNT + 1u)

struct load_config {
	char host[128];
	uint16_t port;
	uint16_t currency;
	uint64_t account_base;       /* account ids are base + index; base is funding */
	uint32_t payers;
	uint32_t merchants;          /* coffee shops */
	uint32_t utilities;          /* bill payees: few, hot */
	uint32_t publishers;         /* newspapers */
	uint32_t mix[LOAD_WORKLOADS];/* weights of coffee, bills, news */
	double zipf_s;               /* payee skew exponent (0 = uniform) */
	double broke_share;          /* share of payers funded with little */
	double retry_share;          /* share of sends that repeat a done request */
	double refund_share;
	double hold_share;
	uint64_t payer_funds_cents;
	uint64_t broke_funds_cents;
	uint64_t rate;               /* open loop: requests/s; 0 = closed loop */
	enum load_profile profile;
	uint32_t window;             /* closed loop: requests in flight */
	uint32_t per_datagram;       /* requests per datagram, 1..128 */
	uint32_t inflight_max;       /* open loop: cap of requests in flight */
	double duration_s;           /* 0 with count: until count sent */
	uint64_t count;              /* 0: no count limit */
	uint32_t timeout_ms;         /* retransmit after this long without an answer */
	uint32_t retransmits_max;    /* then the request is NO_ANSWER */
	uint64_t seed;
	bool use_existing;
	bool echo;                   /* answer ourselves: measure the generator alone */
	bool quiet;                  /* no progress line */
	bool corrupt;                /* test hook: --corrupt-tally */
	uint64_t corrupt_account;
	const char *json_path;
	const char *plot_path;
	/* Client keys (PROTOCOL.md "Authentication"): key for the run's payments,
	 * holds and refunds (an acquirer key), admin_key for the setup (OPEN,
	 * DEPOSIT) and the balance reads. keyed/admin_keyed false: key id 0,
	 * answered only by a switch run --insecure-no-auth. */
	const char *key_path;        /* --key FILE, or NULL */
	const char *admin_key_path;  /* --admin-key FILE, or NULL */
	bool keyed, admin_keyed;
	struct netio_key key;
	struct netio_key admin_key;
	uint64_t id_nonce;           /* request id high bits; 0: random per driver */
	/* --sweep: open loop at each rate of sweep_rates, sweep_step_s each */
	uint64_t sweep_rates[LOAD_SWEEP_STEPS_MAX];
	uint32_t sweep_steps;        /* 0: no sweep */
	double sweep_step_s;
};

/* The accounts of a run: index 0 is the funding account, then payers (the
 * first `broke` of them poorly funded), merchants, utilities, publishers. */
struct load_accounts {
	uint64_t base;
	uint32_t total;
	uint32_t payers, broke;
	uint32_t first_payer, first_merchant, first_utility, first_publisher;
	uint32_t merchants, utilities, publishers;
};

static inline uint64_t load_account_id(const struct load_accounts *accounts, uint32_t index)
{
	return accounts->base + index;
}

/* One second of the run, for the progress line, the JSON and the plot. */
struct load_second {
	double t_s;                  /* end of the second, since the run began */
	double span_s;               /* its length: 1, less for the last one */
	uint64_t sent;               /* first transmissions */
	uint64_t completed;          /* final answers */
	uint64_t approved;
	uint64_t declined;
	uint64_t busy;
	uint64_t busy_retries;
	uint64_t retransmits;
	uint64_t p50_ns, p99_ns, p999_ns, max_ns;
};

/* Everything a run counts. */
struct load_totals {
	uint64_t created;            /* requests made (not counting deliberate retries) */
	uint64_t sent;               /* first transmissions */
	uint64_t completed;          /* final answers, including NO_ANSWER */
	uint64_t completed_loading;  /* ... while new requests were still being made */
	uint64_t codes[LOAD_CODES];  /* final answers by code */
	uint64_t ops[LOAD_OP_COUNT];
	uint64_t ops_approved[LOAD_OP_COUNT];
	uint64_t busy;               /* BUSY answers (each retried after its hint) */
	uint64_t busy_retries;       /* requests sent again after a BUSY answer and its wait */
	uint64_t error_datagrams;    /* whole datagrams refused (ERROR) */
	uint64_t retransmits;        /* requests sent again after a timeout */
	uint64_t late_answers;       /* answers for requests already answered (or a
	                              * BUSY for one already waiting to be resent) */
	uint64_t unexpected_duplicates; /* DUPLICATE on a first, unrepeated send */
	uint64_t retries_sent;       /* deliberate repeats of a done request */
	uint64_t retries_duplicate;  /* ...answered with the DUPLICATE flag */
	uint64_t retries_reapplied;  /* ...answered as new: exactly-once broken */
	uint64_t retries_mismatch;   /* ...answered with another code than the original */
	uint64_t retries_unanswered;
	uint64_t approved_cents;     /* money moved by approved PAY/CAPTURE */
	uint64_t datagrams;          /* request datagrams sent */
	uint64_t send_stalls;        /* sends cut short by a full socket buffer */
	uint64_t inflight_full;      /* open loop: sends skipped, in-flight cap reached */
	double elapsed_s;            /* from the first send to the last answer */
	double load_s;               /* from the first send to the last new request */
	double cpu_s;                /* CPU time of the generator thread */
};

#endif /* PAYSWITCH_BENCH_LOAD_H */
