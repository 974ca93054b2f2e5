/*
 * worker.c — a netio worker: one thread, one transport handle.
 *
 * Receives bursts of datagrams, validates them with the codec, routes each
 * request to the ring of the shard that owns its debit account, and keeps one
 * reply slot per datagram. Shards answer into the worker's reply rings; each
 * result goes to its request's position in the slot (the ticket a request
 * carries names both), and when every request of a datagram has its result
 * the worker sends one reply datagram, in request order (PROTOCOL.md). A full
 * ring or slot table is answered BUSY on the spot: nothing is dropped
 * silently.
 */
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void tx_flush(struct engine_worker *worker)
{
	uint32_t attempts = 0;
	while (worker->tx_count > 0) {
		uint32_t sent = netio_transport_tx_burst(worker->transport, worker->tx,
							  worker->tx_count);
		metrics_add(&worker->stats.datagrams_sent, sent);
		if (sent < worker->tx_count)
			memmove(worker->tx, worker->tx + sent,
				(worker->tx_count - sent) * sizeof(worker->tx[0]));
		worker->tx_count -= sent;
		if (sent == 0 && ++attempts > 64) {
			/* The socket stayed full: the client will retransmit and the
			 * deduplication window answers with the original outcome. */
			metrics_add(&worker->stats.replies_dropped, worker->tx_count);
			worker->tx_count = 0;
		}
	}
}

/* Returns a buffer for one outgoing datagram to `peer`, flushing when the
 * burst is full. */
static void *tx_buffer(struct engine_worker *worker, const struct netio_peer *peer)
{
	if (worker->tx_count == NETIO_BURST_MAX)
		tx_flush(worker);
	struct netio_datagram *datagram = &worker->tx[worker->tx_count];
	datagram->data = worker->tx_buffers + (size_t)worker->tx_count * NETIO_REPLY_MAX;
	datagram->peer = *peer;
	datagram->reserved = 0;
	return datagram->data;
}

/* Seals the datagram in the current tx buffer with the key of the client it
 * answers (id 0: unsealed, for a switch run --insecure-no-auth) and queues it. */
static void tx_commit(struct engine_worker *worker, size_t length, const struct netio_key *key)
{
	struct netio_datagram *datagram = &worker->tx[worker->tx_count];
	netio_seal(key->id == NETIO_KEY_ID_NONE ? NULL : key, datagram->data, length);
	datagram->length = (uint32_t)length;
	worker->tx_count++;
}

static void slot_free(struct engine_worker *worker, uint32_t index)
{
	struct engine_slot *slot = &worker->slots[index];
	if (slot->buffer != ENGINE_SLOT_NONE) {
		assert(worker->buffer_free_count < worker->buffer_capacity);
		worker->buffer_free[worker->buffer_free_count++] = slot->buffer;
		slot->buffer = ENGINE_SLOT_NONE;
	}
	slot->expected = 0;
	slot->next_free = worker->slot_free_head;
	worker->slot_free_head = index;
	worker->slots_used--;
}

/* Sends the reply of a slot whose every request is answered. */
static void slot_reply(struct engine_worker *worker, uint32_t index)
{
	struct engine_slot *slot = &worker->slots[index];
	assert(slot->answered == slot->expected);
	void *buffer = tx_buffer(worker, &slot->peer);
	size_t length = netio_encode_results(buffer, NETIO_REPLY_MAX, slot->client_id,
					     slot->sequence, slot->results, slot->answered);
	tx_commit(worker, length, &slot->key);
	metrics_histogram_observe(&worker->stats.request_latency_us,
				  engine_monotonic_us() - slot->received_us);
	for (uint32_t i = 0; i < slot->answered; i++) {
		uint16_t code = slot->results[i].code;
		metrics_add(&worker->stats.results[code < LEDGER_RESULT_CODE_COUNT
							   ? code : LEDGER_INVALID_REQUEST], 1);
	}
	metrics_add(&worker->stats.replies, slot->answered);
	slot_free(worker, index);
}

/* Stores the result of the request a ticket names at its position, and
 * replies once the slot has all of them. */
static void slot_answer(struct engine_worker *worker, uint32_t ticket,
			const struct ledger_result *result)
{
	uint32_t index = engine_ticket_slot(ticket);
	uint32_t position = engine_ticket_position(ticket);
	assert(index < worker->slot_capacity);
	struct engine_slot *slot = &worker->slots[index];
	assert(slot->expected > 0 && slot->answered < slot->expected);
	assert(position < slot->expected);
	uint64_t bit = 1ull << (position % 64);
	assert((slot->answered_mask[position / 64] & bit) == 0 && "one result per request");
	slot->answered_mask[position / 64] |= bit;
	slot->results[position] = *result;
	slot->answered++;
	if (slot->answered == slot->expected)
		slot_reply(worker, index);
}

/* Moves staged requests of one shard into its ring; what does not fit is
 * answered BUSY. */
static void stage_flush(struct engine_worker *worker, uint32_t shard)
{
	struct engine *engine = worker->engine;
	struct engine_stage *stage = &worker->stages[shard];
	if (stage->count == 0)
		return;
	struct engine_ring *ring = &engine->rings_in[worker->index * engine->shard_count + shard];
	uint32_t sent = engine_ring_enqueue(ring, stage->messages, stage->count);
	if (sent > 0)
		engine_wake(&engine->shards_waker[shard]);
	for (uint32_t i = sent; i < stage->count; i++) {
		struct ledger_result busy;
		netio_result_refuse(&stage->messages[i].request, LEDGER_BUSY, &busy);
		metrics_add(&worker->stats.busy, 1);
		slot_answer(worker, stage->messages[i].slot, &busy);
	}
	stage->count = 0;
}

static void stage_request(struct engine_worker *worker, uint32_t ticket,
			  const struct ledger_request *request)
{
	struct engine *engine = worker->engine;
	uint32_t shard = ledger_shard_of(request->account_id, engine->shard_count);
	struct engine_stage *stage = &worker->stages[shard];
	if (stage->count == ENGINE_BURST)
		stage_flush(worker, shard);
	struct engine_message *message = &stage->messages[stage->count++];
	message->request = *request;
	message->received_us = worker->slots[engine_ticket_slot(ticket)].received_us;
	message->worker = (uint16_t)worker->index;
	message->type = ENGINE_MESSAGE_REQUEST;
	message->slot = ticket;
}

/* Answers a datagram whose framing the codec refused. */
static void refuse_datagram(struct engine_worker *worker, const struct netio_datagram *datagram,
			    const struct netio_view *view, uint16_t code,
			    const struct netio_key *key)
{
	void *buffer = tx_buffer(worker, &datagram->peer);
	size_t length = netio_encode_refusal(view, code, buffer, NETIO_REPLY_MAX);
	if (length > 0)
		tx_commit(worker, length, key);
}

/* Answers every request of a well-formed datagram with `code` (BUSY when no
 * reply slot is free, UNAVAILABLE after a journal failure). */
static void refuse_requests(struct engine_worker *worker, const struct netio_datagram *datagram,
			    const struct netio_view *view, uint16_t code,
			    const struct netio_key *key)
{
	void *buffer = tx_buffer(worker, &datagram->peer);
	struct ledger_result *results =
		(struct ledger_result *)((uint8_t *)buffer + NETIO_HEADER_SIZE);
	for (uint32_t i = 0; i < view->count; i++)
		netio_result_refuse(&view->requests[i], code, &results[i]);
	size_t length = netio_encode_results(buffer, NETIO_REPLY_MAX, view->header.client_id,
					     view->header.sequence, results, view->count);
	tx_commit(worker, length, key);
}

/* A datagram not let in: counted by reason, logged at most once a second
 * per worker (with how many were not logged), never answered (an answer to
 * an unauthenticated source is a reflection vector: PROTOCOL.md). */
static void refuse_unauthentic(struct engine_worker *worker, const struct netio_datagram *datagram,
			       enum netio_auth_refusal why)
{
	assert(why != NETIO_AUTH_OK);
	assert(why < NETIO_AUTH_REFUSAL_COUNT);
	metrics_add(&worker->stats.auth_refused[why], 1);
	uint64_t now = engine_monotonic_us();
	if (worker->auth_log_us != 0 && now - worker->auth_log_us < 1000000u) {
		worker->auth_log_suppressed++;
		return;
	}
	char peer[96];
	worker->transport->ops->peer_format(&datagram->peer, peer, sizeof(peer));
	engine_log("warn", "worker %u: datagram refused, not answered: reason=%s from=%s "
		   "(%llu more refused since the last line)", worker->index,
		   netio_auth_refusal_name(why), peer,
		   (unsigned long long)worker->auth_log_suppressed);
	worker->auth_log_us = now;
	worker->auth_log_suppressed = 0;
}

/* Who sent the datagram. With authentication (the default): the principal
 * whose MAC it carries and whose replay window lets it in, or a refusal.
 * Without (--insecure-no-auth): nobody is refused, and a datagram whose MAC
 * is good under a known key still has its replies sealed with that key. */
static enum netio_auth_refusal authenticate(struct engine_worker *worker,
					    const struct netio_datagram *datagram,
					    const struct netio_principal **principal,
					    struct netio_key *key)
{
	struct engine *engine = worker->engine;
	const struct netio_keyring *ring =
		atomic_load_explicit(&engine->keyring, memory_order_acquire);
	memset(key, 0, sizeof(*key));
	enum netio_auth_refusal why =
		netio_authenticate(ring, datagram->data, datagram->length, principal);
	if (why == NETIO_AUTH_OK && engine->authenticate) {
		const struct netio_header *header = (const struct netio_header *)datagram->data;
		why = netio_replay_check(engine->replay, (*principal)->key_id, header->client_id,
					 header->sequence, engine_now_us());
	}
	if (why == NETIO_AUTH_OK) {
		key->id = (*principal)->key_id;
		memcpy(key->secret, (*principal)->secret, NETIO_KEY_SIZE);
	}
	if (!engine->authenticate) {
		*principal = NULL;
		return NETIO_AUTH_OK;
	}
	return why;
}

static void handle_datagram(struct engine_worker *worker, const struct netio_datagram *datagram)
{
	const struct netio_principal *principal = NULL;
	struct netio_key key;
	enum netio_auth_refusal why = authenticate(worker, datagram, &principal, &key);
	if (why != NETIO_AUTH_OK) {
		refuse_unauthentic(worker, datagram, why);
		return;
	}
	assert(principal != NULL || !worker->engine->authenticate);
	struct netio_view view;
	uint16_t code = netio_decode(datagram->data, datagram->length, &view);
	if (code == LEDGER_OK && view.header.type != NETIO_TYPE_REQUEST) {
		/* A reply or error sent to the switch: never answered (no ping-pong). */
		metrics_add(&worker->stats.malformed_datagrams, 1);
		return;
	}
	if (code != LEDGER_OK) {
		metrics_add(&worker->stats.malformed_datagrams, 1);
		metrics_add(&worker->stats.rejects[view.reject < NETIO_REJECT_COUNT_KINDS
							   ? view.reject : 0], 1);
		refuse_datagram(worker, datagram, &view, code, &key);
		return;
	}
	if (atomic_load(&worker->engine->failed)) {
		refuse_requests(worker, datagram, &view, LEDGER_UNAVAILABLE, &key);
		return;
	}
	bool large = view.count > ENGINE_SLOT_INLINE;
	if (worker->slot_free_head == ENGINE_SLOT_NONE ||
	    (large && worker->buffer_free_count == 0)) {
		metrics_add(&worker->stats.busy, view.count);
		refuse_requests(worker, datagram, &view, LEDGER_BUSY, &key);
		return;
	}
	uint32_t index = worker->slot_free_head;
	struct engine_slot *slot = &worker->slots[index];
	worker->slot_free_head = slot->next_free;
	worker->slots_used++;
	slot->buffer = ENGINE_SLOT_NONE;
	slot->results = slot->inline_results;
	if (large) {
		slot->buffer = worker->buffer_free[--worker->buffer_free_count];
		slot->results = worker->buffers + (size_t)slot->buffer * NETIO_BATCH_MAX;
	}
	slot->peer = datagram->peer;
	slot->key = key;
	slot->client_id = view.header.client_id;
	slot->sequence = view.header.sequence;
	assert(view.count <= NETIO_BATCH_MAX);
	slot->expected = (uint16_t)view.count;
	slot->answered = 0;
	memset(slot->answered_mask, 0, sizeof(slot->answered_mask));
	slot->received_us = engine_monotonic_us();
	metrics_add(&worker->stats.requests, view.count);
	for (uint32_t i = 0; i < view.count; i++) {
		const struct ledger_request *request = &view.requests[i];
		if (netio_request_check(request) != LEDGER_OK) {
			struct ledger_result refused;
			netio_result_refuse(request, LEDGER_FORMAT_ERROR, &refused);
			metrics_add(&worker->stats.format_errors, 1);
			slot_answer(worker, engine_ticket(index, i), &refused);
			continue;
		}
		/* Roles, before anything reaches a shard. */
		if (principal != NULL && netio_principal_allows(principal, request) != LEDGER_OK) {
			struct ledger_result refused;
			netio_result_refuse(request, LEDGER_FORBIDDEN, &refused);
			metrics_add(&worker->stats.forbidden, 1);
			slot_answer(worker, engine_ticket(index, i), &refused);
			continue;
		}
		stage_request(worker, engine_ticket(index, i), request);
	}
}

static uint32_t drain_replies(struct engine_worker *worker)
{
	struct engine *engine = worker->engine;
	uint32_t total = 0;
	for (uint32_t shard = 0; shard < engine->shard_count; shard++) {
		struct engine_ring *ring = &engine->rings_reply[shard * engine->worker_count +
								worker->index];
		for (;;) {
			struct engine_reply replies[ENGINE_BURST];
			uint32_t count = engine_ring_dequeue(ring, replies, ENGINE_BURST);
			for (uint32_t i = 0; i < count; i++)
				slot_answer(worker, replies[i].slot, &replies[i].result);
			total += count;
			if (count < ENGINE_BURST)
				break;
		}
	}
	return total;
}

static bool replies_waiting(const struct engine_worker *worker)
{
	const struct engine *engine = worker->engine;
	for (uint32_t shard = 0; shard < engine->shard_count; shard++)
		if (engine_ring_count(&engine->rings_reply[shard * engine->worker_count +
							   worker->index]) != 0)
			return true;
	return false;
}

/* Receives one burst; waits up to 1 ms when the previous loop found nothing.
 * The wait also ends when a shard writes this worker's eventfd. */
static uint32_t receive(struct engine_worker *worker, bool idle)
{
	int timeout_ms = 0;
	if (idle) {
		atomic_store(&worker->engine->workers_waker[worker->index].sleeping, 1);
		if (!replies_waiting(worker))
			timeout_ms = 1;
	}
	int count = netio_transport_rx_burst(worker->transport, worker->rx, NETIO_BURST_MAX,
					     timeout_ms);
	atomic_store(&worker->engine->workers_waker[worker->index].sleeping, 0);
	if (count < 0) {
		engine_log("error", "worker %u: receive failed: %s", worker->index, strerror(-count));
		return 0;
	}
	metrics_add(&worker->stats.datagrams_received, (uint64_t)count);
	for (int i = 0; i < count; i++)
		handle_datagram(worker, &worker->rx[i]);
	for (uint32_t shard = 0; shard < worker->engine->shard_count; shard++)
		stage_flush(worker, shard);
	return (uint32_t)count;
}

void *engine_worker_main(void *argument)
{
	struct engine_worker *worker = argument;
	struct engine *engine = worker->engine;
	bool idle = false;
	for (;;) {
		atomic_fetch_add_explicit(&worker->loops, 1, memory_order_release);
		uint32_t progress = 0;
		if (!atomic_load(&engine->stop_intake))
			progress += receive(worker, idle);
		else if (idle)
			usleep(200);
		progress += drain_replies(worker);
		tx_flush(worker);
		if (atomic_load(&engine->stop) && !replies_waiting(worker))
			break;
		idle = progress == 0;
	}
	drain_replies(worker);
	tx_flush(worker);
	return NULL;
}
