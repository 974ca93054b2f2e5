/*
 * worker.h — state of one netio worker thread (engine-internal).
 */
#ifndef PAYSWITCH_ENGINE_WORKER_H
#define PAYSWITCH_ENGINE_WORKER_H

#include <assert.h>

#include "auth.h"
#include "engine.h"
#include "netio.h"

#define ENGINE_SLOT_NONE UINT32_MAX

_Static_assert(NETIO_REJECT_COUNT_KINDS <= ENGINE_REJECT_KINDS, "reject counters");
_Static_assert(NETIO_AUTH_REFUSAL_COUNT <= ENGINE_AUTH_KINDS, "auth refusal counters");

/* Results a slot holds inline: a terminal's datagram carries one request. */
#define ENGINE_SLOT_INLINE 4u

/* A request's ticket: which reply slot owes its result and where in the
 * slot's results it goes (its index in the datagram). The worker puts it in
 * engine_message.slot; shards hand it back untouched in engine_reply.slot, so
 * results land in request order at no cost beyond a shift and a mask. */
#define ENGINE_TICKET_POSITION_BITS 8u
#define ENGINE_TICKET_SLOTS_MAX (1u << (32u - ENGINE_TICKET_POSITION_BITS))
_Static_assert(NETIO_BATCH_MAX <= (1u << ENGINE_TICKET_POSITION_BITS), "position fits a ticket");
_Static_assert(NETIO_BATCH_MAX % 64 == 0, "answered_mask covers every position");

static inline uint32_t engine_ticket(uint32_t slot, uint32_t position)
{
	assert(slot < ENGINE_TICKET_SLOTS_MAX && position < NETIO_BATCH_MAX);
	return slot << ENGINE_TICKET_POSITION_BITS | position;
}

static inline uint32_t engine_ticket_slot(uint32_t ticket)
{
	return ticket >> ENGINE_TICKET_POSITION_BITS;
}

static inline uint32_t engine_ticket_position(uint32_t ticket)
{
	return ticket & ((1u << ENGINE_TICKET_POSITION_BITS) - 1u);
}

/* One received datagram waiting for its results. Datagrams of up to
 * ENGINE_SLOT_INLINE requests keep their results inline; bigger ones borrow a
 * NETIO_BATCH_MAX buffer from the worker's pool, so many small datagrams can be
 * in flight (a disk stall at one request per datagram needs tens of thousands
 * of slots) without reserving 5 KiB for each. */
struct engine_slot {
	struct netio_peer peer;
	struct netio_key key;     /* the sender's key: the reply is sealed with it
	                           * (id 0: unsealed), even if the key is removed
	                           * while its requests are in flight */
	uint64_t client_id;
	uint64_t sequence;
	uint64_t received_us;     /* monotonic */
	struct ledger_result *results; /* inline or a pool buffer; results[i]
	                               * answers request i of the datagram */
	uint64_t answered_mask[NETIO_BATCH_MAX / 64]; /* positions answered, so
	                               * that a second answer to one request
	                               * crashes instead of hiding a missing one */
	uint16_t expected;        /* requests in the datagram; 0 = free */
	uint16_t answered;
	uint32_t next_free;
	uint32_t buffer;          /* pool buffer index, ENGINE_SLOT_NONE if inline */
	struct ledger_result inline_results[ENGINE_SLOT_INLINE];
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
	struct ledger_result *buffers;        /* buffer_capacity * NETIO_BATCH_MAX results */
	uint32_t *buffer_free;                /* stack of free buffer indices */
	uint32_t buffer_capacity;
	uint32_t buffer_free_count;
	uint32_t slot_free_head;
	uint32_t slots_used;
	struct engine_stage *stages;          /* one per shard */
	struct netio_datagram rx[NETIO_BURST_MAX];
	struct netio_datagram tx[NETIO_BURST_MAX];
	uint32_t tx_count;
	uint8_t *tx_buffers;                  /* NETIO_BURST_MAX * NETIO_REPLY_MAX */
	/* Quiescent points: a key ring swapped out is freed once every worker's
	 * count has moved (engine_reload_clients). */
	atomic_uint_fast64_t loops;
	uint64_t auth_log_us;                 /* last refusal log line (monotonic) */
	uint64_t auth_log_suppressed;         /* refusals since it */
	struct engine_worker_stats stats;
};

#endif
