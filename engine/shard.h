/*
 * shard.h — state of one shard worker thread (engine-internal).
 */
#ifndef PAYSWITCH_ENGINE_SHARD_H
#define PAYSWITCH_ENGINE_SHARD_H

#include <assert.h>

#include "engine.h"
#include "journal.h"

struct journal_writer;

struct engine_shard_outbox {
	struct engine_reply replies[ENGINE_BURST];
	uint32_t count;
};

/* A group commit in flight, for the commit-latency histogram. */
struct engine_commit {
	uint64_t sequence;    /* last sequence of the group */
	uint64_t started_us;  /* monotonic */
};
#define ENGINE_COMMITS_MAX 8
/* What a group commit is assumed to take until one is measured: about this
 * disk's 4 KiB write + fdatasync p90 (bench/journal_bench). */
#define ENGINE_COMMIT_PRIOR_US 1000u
/* Bounds of the retry-after hint of an admission BUSY. */
#define ENGINE_RETRY_AFTER_MIN_US 500u
#define ENGINE_RETRY_AFTER_MAX_US 1000000u

/* Online snapshots of one shard (snapshotter.c): the shard's thread captures
 * its ledger into `image` (a memory copy) and hands it over; the writer
 * thread stores it, waits until the journal is durable up to its sequence,
 * then publishes it. `busy` is true from the hand-over until published. */
struct engine_snapshotter {
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool busy;                        /* under lock: the writer owns the image */
	bool stop;                        /* under lock */
	struct journal_snapshot_image image;
	uint64_t last_sequence;           /* shard thread: sequence of the last capture */
	uint64_t last_us;                 /* shard thread: monotonic time of it */
	uint64_t last_wait_us;            /* shard thread: last attempt refused (quiet point) */
	/* Read by metrics and tests (relaxed atomics). */
	uint64_t captures;
	uint64_t published;
	uint64_t failures;
	uint64_t published_sequence;
	uint64_t pause_us_last;
	uint64_t pause_us_max;
};

struct engine_shard {
	struct engine *engine;
	uint32_t index;
	pthread_t thread;
	bool thread_started;
	struct ledger *ledger;
	struct journal_writer *journal;
	/* Decisions waiting for durability, in decision order (a ring buffer). */
	struct engine_pending *pending;
	uint32_t pending_capacity;
	uint32_t pending_head;
	uint32_t pending_count;
	uint64_t now_us;                      /* last time given to the ledger */
	uint64_t committed_sequence;          /* last sequence handed to journal_commit() */
	uint64_t group_started_us;            /* monotonic: first record of the open group */
	uint32_t in_flight_max;               /* groups in flight at once (config, writer) */
	bool completions_wake;                /* the journal's completions write our eventfd */
	struct engine_commit commits[ENGINE_COMMITS_MAX];
	uint32_t commits_head;
	uint32_t commits_count;
	uint32_t next_ring;                   /* round-robin start among worker rings */
	uint64_t commit_estimate_us;          /* moving average of a group commit's latency */
	bool failed;                          /* the journal failed: no more acks */
	struct engine_shard_outbox *outboxes; /* one per netio worker */
	uint64_t snapshot_sequence;           /* where recovery started replaying */
	/* Cross-shard messages recovery found missing; sent before anything else. */
	struct engine_message *backlog;
	uint32_t backlog_count;
	uint32_t backlog_capacity;
	uint32_t backlog_sent;
	struct engine_message messages[ENGINE_APPLY_MAX];
	struct ledger_request requests[ENGINE_APPLY_MAX];
	struct ledger_result results[ENGINE_APPLY_MAX];
	struct engine_shard_stats stats;
	struct engine_snapshotter snapshotter;
};

/* snapshotter.c. Start: the writer thread (after recovery). Maybe: the
 * shard's thread, once per loop: captures when a snapshot is due. Stop:
 * after the shard's thread and its journal closed; `durable` says whether
 * everything appended is durable (a pending capture is then published). */
int engine_snapshotter_start(struct engine_shard *shard);
void engine_snapshotter_maybe(struct engine_shard *shard);
void engine_snapshotter_stop(struct engine_shard *shard, bool durable);
/* A capture and publish on the calling thread (clean stop): 0 or -errno. */
int engine_snapshotter_write_now(struct engine_shard *shard, struct journal_error *error);

/* Pushes a worker's buffered replies into its ring. Returns true when all went. */
bool shard_flush_outbox(struct engine_shard *shard, uint16_t worker);

#endif
