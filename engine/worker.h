/*
 * worker.h — state of one netio worker thread (engine-internal).
 */
#ifndef PAYSWITCH_ENGINE_WORKER_H
#define PAYSWITCH_ENGINE_WORKER_H

#include <assert.h>

#include "engine.h"
#include "netio.h"

#define ENGINE_SLOT_NONE UINT32_MAX

_Static_assert(NETIO_REJECT_COUNT_KINDS <= ENGINE_REJECT_KINDS, "reject counters");

/* One received datagram waiting for its results. */
struct engine_slot {
	struct netio_peer peer;
	uint64_t client_id;
	uint64_t sequence;
	uint64_t received_us;     /* monotonic */
	uint16_t expected;        /* requests in the datagram; 0 = free */
	uint16_t answered;
	uint32_t next_free;
	struct ledger_result results[NETIO_BATCH_MAX];
};

/* Requests bound for one shard, moved into its ring in bursts. */
struct engine_stage {
	struct engine_message messages[ENGINE_BURST];
	uint32_t count;
};

struct engine_worker {
	struct engine *engine;
	uint32_t index;
	pthread_t thread;
	bool thread_started;
	struct netio_transport *transport;
	struct engine_slot *slots;
	uint32_t slot_capacity;
	uint32_t slot_free_head;
	uint32_t slots_used;
	struct engine_stage *stages;          /* one per shard */
	struct netio_datagram rx[NETIO_BURST_MAX];
	struct netio_datagram tx[NETIO_BURST_MAX];
	uint32_t tx_count;
	uint8_t *tx_buffers;                  /* NETIO_BURST_MAX * NETIO_REPLY_MAX */
	struct engine_worker_stats stats;
};

#endif
