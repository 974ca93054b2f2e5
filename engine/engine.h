/*
 * engine.h — threads, rings, routing and group commit of the switch.
 *
 *   netio worker w ──ring[w][s]──► shard s ──reply ring[s][w]──► netio worker w
 *                                   │  ▲
 *                      credit ring[s][t] (cross-shard CREDIT / RETURN, sent
 *                                   ▼  │  only when the deciding record is durable)
 *                                  shard t
 *
 * A netio worker decodes datagrams, routes each request by
 * ledger_shard_of(account_id) and keeps a reply slot per datagram. A shard
 * worker owns one ledger and one journal: it applies bursts, appends the
 * decisions to the journal's open group, commits groups (write + fdatasync
 * through io_uring) and releases replies and credits only up to the durable
 * sequence.
 *
 * Thread-safety: struct engine is built by the main thread before the workers
 * start; after that each field is either read-only, owned by one thread, or a
 * counter with one writer (see metrics.h).
 */
#ifndef PAYSWITCH_ENGINE_H
#define PAYSWITCH_ENGINE_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ledger.h"
#include "metrics.h"
#include "ring.h"

#define ENGINE_BURST 32            /* elements moved per ring operation */
#define ENGINE_APPLY_MAX 256       /* requests per ledger_apply() call */
#define ENGINE_NO_REPLY 0xffffu    /* engine_message.worker: nobody waits (recovery) */
#define ENGINE_REJECT_KINDS 16     /* >= NETIO_REJECT_COUNT_KINDS */
#define ENGINE_AUTH_KINDS 8        /* >= NETIO_AUTH_REFUSAL_COUNT */
#define ENGINE_PENDING_MAX (1u << 18) /* decisions a shard keeps waiting for durability */

/* What a message asks of the shard that takes it. */
enum engine_message_type {
	ENGINE_MESSAGE_REQUEST = 0,    /* decide request (from a worker, or CREDIT / RETURN) */
	/* Payer's shard -> payee's shard: a repeat (or LOOKUP) of a transfer whose
	 * outcome is the payee's (LEDGER_RESULT_OUTCOME_REMOTE). The payee's shard
	 * decides nothing: it sends the message back once everything it decided
	 * before it is released, so any RETURN of the transfer travels ahead of it
	 * on the same FIFO ring. */
	ENGINE_MESSAGE_PROBE = 1,
	/* Payee's shard -> payer's shard: the probe came back; the payer's window
	 * now holds the final outcome, which answers the client. */
	ENGINE_MESSAGE_PROBE_BACK = 2,
};

/* Worker -> shard and shard -> shard: 96 bytes. */
struct engine_message {
	struct ledger_request request;
	/* CREDIT, RETURN, PROBE: the payer's decision, for the client's reply,
	 * which the payee's shard (or the return) sends on its behalf. */
	union {
		int64_t balance;      /* the payer's available balance */
		uint64_t received_us; /* a client request: when its datagram arrived
		                       * (monotonic), for admission control */
	};
	uint64_t sequence;  /* the payer's decision sequence */
	uint64_t amount;    /* the payer's result amount (REFUND: refunded so far) */
	uint16_t worker;    /* netio worker that owes the client a reply, or ENGINE_NO_REPLY */
	uint16_t type;      /* enum engine_message_type */
	uint32_t slot;      /* the worker's ticket: reply slot << 8 | the request's index
	                     * in its datagram (worker.h); shards hand it back untouched */
};
_Static_assert(sizeof(struct engine_message) == 96, "ring element size");

/* Shard -> worker: 48 bytes. */
struct engine_reply {
	struct ledger_result result;
	uint32_t slot;
	uint32_t reserved;
};
_Static_assert(sizeof(struct engine_reply) == 48, "ring element size");

/* A decision waiting for its journal record to become durable. */
struct engine_pending {
	struct ledger_request request;
	struct ledger_result result;
	uint64_t wait_sequence;  /* release once durable >= this */
	int64_t balance;         /* CREDIT, RETURN, PROBE: the payer's, for the reply */
	uint64_t sequence;
	uint64_t amount;
	struct ledger_request credit; /* CREDIT_REMOTE: what the payee's shard is sent */
	uint16_t worker;
	uint16_t type;           /* enum engine_message_type of what was taken */
	uint16_t probe_shard;    /* OUTCOME_REMOTE: the payee's shard to probe */
	uint16_t reserved;
	uint32_t slot;
};

struct engine_shard_stats {
	uint64_t requests;              /* requests applied */
	uint64_t results[LEDGER_RESULT_CODE_COUNT];
	uint64_t duplicates;
	uint64_t records;               /* journal records appended */
	uint64_t groups;                /* group commits completed */
	uint64_t credits_sent;
	uint64_t credits_received;
	uint64_t returns_sent;
	uint64_t probes_sent;           /* repeats / LOOKUPs whose outcome the payee's shard holds */
	uint64_t claims_refused;        /* ID_REUSED: another shard decided the id */
	uint64_t claims_full;           /* BUSY: the claims table had no room */
	uint64_t too_old_elsewhere;     /* TOO_OLD by another shard's eviction watermark */
	uint64_t admission_busy;        /* BUSY: the expected wait passed the latency bound */
	uint64_t commit_estimate_us;    /* moving average of a group commit's latency */
	uint64_t sequence_applied;      /* last ledger sequence decided */
	uint64_t sequence_durable;      /* last ledger sequence on disk */
	uint64_t pending;               /* decisions waiting for durability */
	uint64_t journal_failed;        /* 1 once the journal has failed */
	struct metrics_histogram group_records;
	struct metrics_histogram commit_latency_us;
};

struct engine_worker_stats {
	uint64_t datagrams_received;
	uint64_t datagrams_sent;
	uint64_t requests;
	uint64_t malformed_datagrams;
	uint64_t format_errors;         /* requests refused by the codec */
	uint64_t busy;                  /* requests answered BUSY: a ring or the slot table was full */
	uint64_t replies;
	uint64_t replies_dropped;       /* reply datagrams the socket never took */
	uint64_t results[LEDGER_RESULT_CODE_COUNT];
	uint64_t rejects[ENGINE_REJECT_KINDS];        /* malformed datagrams by reason */
	uint64_t auth_refused[ENGINE_AUTH_KINDS];     /* datagrams not let in, by
	                                               * enum netio_auth_refusal; never answered */
	uint64_t forbidden;                           /* requests answered FORBIDDEN (roles) */
	struct metrics_histogram request_latency_us;  /* receive to reply sent */
};

struct engine;
struct engine_shard;
struct engine_worker;
struct netio_keyring;
struct netio_replay;

/* The RETURN a payer's shard is owed for a CREDIT its payee's shard refused:
 * the same transfer with kind RETURN and the payee's refusal code in flags
 * (the payer's transfer answers it from then on). Used live by the shard and
 * by crash recovery. */
static inline struct ledger_request engine_return_of(const struct ledger_request *credit,
						     uint16_t refusal)
{
	assert(refusal != LEDGER_OK && refusal <= LEDGER_INVALID_LIMITS);
	struct ledger_request giving_back = *credit;
	giving_back.kind = LEDGER_KIND_RETURN;
	giving_back.flags = (uint8_t)refusal; /* the payer's transfer answers it from now on */
	return giving_back;
}

/* Whether a message is between shards (counted in credits_in_flight). */
static inline bool engine_message_between_shards(const struct engine_message *message)
{
	return message->type != ENGINE_MESSAGE_REQUEST ||
	       message->request.kind == LEDGER_KIND_CREDIT ||
	       message->request.kind == LEDGER_KIND_RETURN;
}

/* Wakes a thread that sleeps when idle. The sleeper announces itself with
 * `sleeping`, re-checks its queues, then waits on the eventfd; a producer that
 * sees `sleeping` writes the eventfd. Seq-cst on both sides so that either the
 * producer sees the flag or the sleeper sees the new element. */
struct engine_waker {
	atomic_int sleeping;
	int eventfd;
};
void engine_wake(struct engine_waker *waker);

struct engine {
	struct engine_config config;
	uint32_t shard_count;
	uint32_t worker_count;
	struct engine_shard *shards;
	struct engine_worker *workers;
	struct engine_waker *workers_waker;   /* one per netio worker */
	struct engine_waker *shards_waker;    /* one per shard */
	/* rings_in[w * shards + s]: worker w -> shard s. */
	struct engine_ring *rings_in;
	/* rings_reply[s * workers + w]: shard s -> worker w. */
	struct engine_ring *rings_reply;
	/* rings_credit[s * shards + t]: shard s -> shard t (s != t). */
	struct engine_ring *rings_credit;
	atomic_bool stop_intake;          /* workers stop receiving */
	atomic_bool stop;                 /* everything drained: threads exit */
	atomic_int_fast64_t credits_in_flight; /* CREDIT/RETURN messages not yet decided */
	atomic_int failed;                /* a journal failed: answer UNAVAILABLE */
	uint64_t started_us;
	struct metrics_server *metrics;
	struct engine_claims *claims;     /* one id space across shards; NULL with one shard */
	/* Authentication (PROTOCOL.md): the client keys, swapped whole on
	 * SIGHUP (engine_reload_clients), and every sender's replay window. */
	bool authenticate;                /* false only with --insecure-no-auth */
	_Atomic(struct netio_keyring *) keyring;
	struct netio_replay *replay;
	pthread_mutex_t reload_lock;
};

/* Reads DATA_DIR/clients again and swaps the key ring in without stopping
 * traffic; the old ring is freed once every worker has passed a quiescent
 * point. Returns 0, or -errno with a sentence in `error` (the old keys stay). */
int engine_reload_clients(struct engine *engine, char *error, size_t error_size);

/* Builds the engine: formats nothing, recovers every shard from data_dir,
 * creates rings and transports. Returns NULL with a sentence in `error`. */
struct engine *engine_create(const struct engine_config *config, char *error,
			     size_t error_size);
/* Starts the threads and the metrics server. Returns 0 or -errno. */
int engine_start(struct engine *engine, char *error, size_t error_size);
/* Asks for a graceful stop: intake stops, queues drain, journals sync. */
void engine_request_stop(struct engine *engine);
/* Waits for every thread; writes snapshots when configured. Returns 0 or -errno. */
int engine_join(struct engine *engine);
void engine_destroy(struct engine *engine);

/* Renders Prometheus metrics of the whole engine. */
void engine_metrics_render(void *engine, struct metrics_text *text);

/* Threads. */
void *engine_shard_main(void *shard);
void *engine_worker_main(void *worker);

/* Time in microseconds. */
uint64_t engine_now_us(void);       /* CLOCK_REALTIME */
uint64_t engine_monotonic_us(void); /* CLOCK_MONOTONIC */

/* Structured log line to stderr: `ts=... level=... msg="..." key=value...`. */
void engine_log(const char *level, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

#endif
