/*
 * shard.c — a shard worker: one thread, one ledger, one journal.
 *
 * Loop: reap journal completions and release what became durable (replies to
 * netio workers, credits to other shards); take a burst from the inbound rings
 * (credits from other shards first: they never wait behind clients); apply it
 * to the ledger; append the decisions to the journal's open group; commit the
 * group when none is in flight. While one group syncs, the next one fills: that
 * is the whole group-commit scheme, and the durable sequence is the only thing
 * that lets a reply or a credit out.
 */
#include "shard.h"

#include <errno.h>
#include <poll.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claims.h"
#include "journal.h"
#include "recovery.h"

static struct engine_pending *pending_push(struct engine_shard *shard)
{
	assert(shard->pending_count < shard->pending_capacity);
	uint32_t index = (shard->pending_head + shard->pending_count) % shard->pending_capacity;
	shard->pending_count++;
	return &shard->pending[index];
}

/* Sends one message to another shard. Returns false when its ring is full. */
static bool send_to_shard(struct engine_shard *shard, uint32_t target,
			  const struct engine_message *message)
{
	struct engine *engine = shard->engine;
	assert(target != shard->index);
	struct engine_ring *ring = &engine->rings_credit[shard->index * engine->shard_count + target];
	atomic_fetch_add(&engine->credits_in_flight, 1);
	if (engine_ring_enqueue(ring, message, 1) != 1) {
		atomic_fetch_sub(&engine->credits_in_flight, 1);
		return false;
	}
	engine_wake(&engine->shards_waker[target]);
	return true;
}

/* Queues one reply for a netio worker; flushed in bursts by flush_replies(). */
static bool send_reply(struct engine_shard *shard, uint16_t worker, uint32_t slot,
		       const struct ledger_result *result)
{
	if (worker == ENGINE_NO_REPLY)
		return true;
	assert(worker < shard->engine->worker_count);
	struct engine_shard_outbox *outbox = &shard->outboxes[worker];
	if (outbox->count == ENGINE_BURST && !shard_flush_outbox(shard, worker))
		return false;
	outbox->replies[outbox->count].result = *result;
	outbox->replies[outbox->count].slot = slot;
	outbox->replies[outbox->count].reserved = 0;
	outbox->count++;
	return true;
}

bool shard_flush_outbox(struct engine_shard *shard, uint16_t worker)
{
	struct engine *engine = shard->engine;
	struct engine_shard_outbox *outbox = &shard->outboxes[worker];
	if (outbox->count == 0)
		return true;
	struct engine_ring *ring = &engine->rings_reply[shard->index * engine->worker_count + worker];
	uint32_t sent = engine_ring_enqueue(ring, outbox->replies, outbox->count);
	if (sent > 0)
		engine_wake(&engine->workers_waker[worker]);
	if (sent < outbox->count)
		memmove(outbox->replies, outbox->replies + sent,
			(outbox->count - sent) * sizeof(outbox->replies[0]));
	outbox->count -= sent;
	return outbox->count == 0;
}

static void flush_replies(struct engine_shard *shard)
{
	for (uint16_t worker = 0; worker < shard->engine->worker_count; worker++)
		shard_flush_outbox(shard, worker);
}

/* The reply a client gets for a transfer another shard finished on the
 * payer's behalf: the payer's decision (its sequence, balance and amount),
 * with the final code. */
static struct ledger_result payer_reply(const struct engine_pending *pending, uint16_t code)
{
	return (struct ledger_result){
		.id = pending->request.id, .balance = pending->balance, .amount = pending->amount,
		.sequence = pending->sequence, .code = code, .flags = LEDGER_RESULT_JOURNAL,
	};
}

/* We are the payee's shard of a CREDIT; the payer's shard is waiting on us. */
static bool release_credit(struct engine_shard *shard, const struct engine_pending *pending)
{
	struct engine *engine = shard->engine;
	if (pending->result.flags & LEDGER_RESULT_RETURN_REMOTE) {
		struct engine_message message = {
			.request = engine_return_of(&pending->request, pending->result.code),
			.balance = pending->balance, .sequence = pending->sequence,
			.amount = pending->amount, .worker = pending->worker, .slot = pending->slot,
		};
		if (!send_to_shard(shard, ledger_shard_of(pending->request.account_id,
							   engine->shard_count), &message))
			return false;
		metrics_add(&shard->stats.returns_sent, 1);
	} else {
		struct ledger_result reply = payer_reply(pending, pending->result.code);
		if (!send_reply(shard, pending->worker, pending->slot, &reply))
			return false;
	}
	atomic_fetch_sub(&engine->credits_in_flight, 1);
	return true;
}

/* We are the payer's shard of a RETURN: the client learns the payee's reason. */
static bool release_return(struct engine_shard *shard, const struct engine_pending *pending)
{
	if (pending->result.code != LEDGER_OK && !(pending->result.flags & LEDGER_RESULT_DUPLICATE))
		engine_log("error", "shard %u: RETURN of transfer %llu refused (%s): its amount "
			   "stays in transit; the audit will show it", shard->index,
			   (unsigned long long)pending->request.id,
			   ledger_result_name(pending->result.code));
	struct ledger_result reply = payer_reply(pending, pending->request.flags);
	reply.balance = pending->result.balance; /* the payer's balance with the money back */
	if (!send_reply(shard, pending->worker, pending->slot, &reply))
		return false;
	atomic_fetch_sub(&shard->engine->credits_in_flight, 1);
	return true;
}

/* A repeat or LOOKUP whose outcome the payee's shard holds goes there first
 * (ENGINE_MESSAGE_PROBE). Credits recovery re-sends must be ahead of it on
 * the ring, so it waits while any are unsent. */
static bool release_probe(struct engine_shard *shard, const struct engine_pending *pending)
{
	if (shard->backlog_sent < shard->backlog_count)
		return false;
	struct engine_message message = {
		.request = pending->request, .balance = pending->result.balance,
		.sequence = pending->result.sequence, .amount = pending->result.amount,
		.worker = pending->worker, .type = ENGINE_MESSAGE_PROBE, .slot = pending->slot,
	};
	if (!send_to_shard(shard, pending->probe_shard, &message))
		return false;
	metrics_add(&shard->stats.probes_sent, 1);
	return true;
}

/* We are the payee's shard of a probe: everything decided before it has been
 * released (any RETURN is on the ring ahead), so it goes back. */
static bool release_probe_back(struct engine_shard *shard, const struct engine_pending *pending)
{
	struct engine *engine = shard->engine;
	struct engine_message message = {
		.request = pending->request, .balance = pending->balance,
		.sequence = pending->sequence, .amount = pending->amount,
		.worker = pending->worker, .type = ENGINE_MESSAGE_PROBE_BACK, .slot = pending->slot,
	};
	if (!send_to_shard(shard, ledger_shard_of(pending->request.account_id, engine->shard_count),
			   &message))
		return false;
	atomic_fetch_sub(&engine->credits_in_flight, 1);
	return true;
}

/* Releases one durable decision. Returns false when its destination ring is
 * full: the caller stops and retries on the next loop, keeping the order. */
static bool release_one(struct engine_shard *shard, struct engine_pending *pending)
{
	struct engine *engine = shard->engine;
	if (pending->type == ENGINE_MESSAGE_PROBE)
		return release_probe_back(shard, pending);
	if (pending->type == ENGINE_MESSAGE_PROBE_BACK) {
		if (!send_reply(shard, pending->worker, pending->slot, &pending->result))
			return false;
		atomic_fetch_sub(&engine->credits_in_flight, 1);
		return true;
	}
	if (pending->request.kind == LEDGER_KIND_CREDIT)
		return release_credit(shard, pending);
	if (pending->request.kind == LEDGER_KIND_RETURN)
		return release_return(shard, pending);
	if (pending->result.flags & LEDGER_RESULT_OUTCOME_REMOTE)
		return release_probe(shard, pending);
	if ((pending->result.flags & LEDGER_RESULT_CREDIT_REMOTE) &&
	    pending->result.code == LEDGER_OK &&
	    !(pending->result.flags & LEDGER_RESULT_DUPLICATE)) {
		struct engine_message message = {
			.request = pending->credit, .balance = pending->result.balance,
			.sequence = pending->result.sequence, .amount = pending->result.amount,
			.worker = pending->worker, .type = ENGINE_MESSAGE_REQUEST, .slot = pending->slot,
		};
		if (!send_to_shard(shard, ledger_shard_of(pending->credit.other_id,
							   engine->shard_count), &message))
			return false;
		metrics_add(&shard->stats.credits_sent, 1);
		return true;
	}
	return send_reply(shard, pending->worker, pending->slot, &pending->result);
}

/* Releases, in order, every pending decision that is durable. */
static uint32_t release_durable(struct engine_shard *shard, uint64_t durable)
{
	uint32_t released = 0;
	while (shard->pending_count > 0) {
		struct engine_pending *pending = &shard->pending[shard->pending_head];
		if (pending->wait_sequence > durable)
			break;
		if (!release_one(shard, pending))
			break;
		shard->pending_head = (shard->pending_head + 1) % shard->pending_capacity;
		shard->pending_count--;
		released++;
	}
	flush_replies(shard);
	__atomic_store_n(&shard->stats.pending, shard->pending_count, __ATOMIC_RELAXED);
	return released;
}

/* After a journal failure nothing more is acknowledged: everything pending is
 * answered UNAVAILABLE (the outcome is unknown until recovery) and every new
 * request too. */
static void fail_pending(struct engine_shard *shard)
{
	while (shard->pending_count > 0) {
		struct engine_pending *pending = &shard->pending[shard->pending_head];
		struct ledger_result reply = pending->result;
		reply.code = LEDGER_UNAVAILABLE;
		reply.flags = 0;
		if (!send_reply(shard, pending->worker, pending->slot, &reply))
			break;
		if (pending->type != ENGINE_MESSAGE_REQUEST ||
		    pending->request.kind == LEDGER_KIND_CREDIT ||
		    pending->request.kind == LEDGER_KIND_RETURN)
			atomic_fetch_sub(&shard->engine->credits_in_flight, 1);
		shard->pending_head = (shard->pending_head + 1) % shard->pending_capacity;
		shard->pending_count--;
	}
	flush_replies(shard);
}

/* Takes up to `room` messages: credits from other shards first, then the
 * netio workers' rings round-robin so no worker starves. */
static uint32_t gather(struct engine_shard *shard, uint32_t room)
{
	struct engine *engine = shard->engine;
	uint32_t count = 0;
	for (uint32_t source = 0; source < engine->shard_count && count < room; source++) {
		if (source == shard->index)
			continue;
		struct engine_ring *ring = &engine->rings_credit[source * engine->shard_count +
								 shard->index];
		uint32_t want = room - count < ENGINE_BURST ? room - count : ENGINE_BURST;
		count += engine_ring_dequeue(ring, &shard->messages[count], want);
	}
	for (uint32_t step = 0; step < engine->worker_count && count < room; step++) {
		uint32_t worker = (shard->next_ring + step) % engine->worker_count;
		struct engine_ring *ring = &engine->rings_in[worker * engine->shard_count +
							     shard->index];
		uint32_t want = room - count < ENGINE_BURST ? room - count : ENGINE_BURST;
		count += engine_ring_dequeue(ring, &shard->messages[count], want);
	}
	shard->next_ring = (shard->next_ring + 1) % engine->worker_count;
	return count;
}

/* How many more requests may be decided now: bounded by one apply call and by
 * the pending table. (The journal never refuses for room: append_record()
 * commits and waits for a buffer when the open group is full.) */
static uint32_t intake_room(struct engine_shard *shard)
{
	uint32_t room = ENGINE_APPLY_MAX;
	uint32_t pending_room = shard->pending_capacity - shard->pending_count;
	return pending_room < room ? pending_room : room;
}

static void journal_failed(struct engine_shard *shard, int error);
static void commit(struct engine_shard *shard);

/* Appends one decision. When the open group is full, it is committed, waiting
 * for an in-flight group to complete if every buffer is busy: the decision is
 * already applied to the ledger, so its record must find a place. */
static void append_record(struct engine_shard *shard, uint64_t now,
			  const struct ledger_request *request, const struct ledger_result *result)
{
	/* The first record of an open group starts its wait (group-wait-us). */
	if (journal_appended_sequence(shard->journal) == shard->committed_sequence)
		shard->group_started_us = engine_monotonic_us();
	for (uint32_t attempt = 0; attempt < 1000 && !shard->failed; attempt++) {
		int appended = journal_append(shard->journal, now, request, result);
		if (appended == 0)
			return;
		if (appended != -ENOBUFS) {
			journal_failed(shard, appended);
			return;
		}
		commit(shard);
		if (journal_appended_sequence(shard->journal) != shard->committed_sequence) {
			int64_t durable = journal_poll(shard->journal, true);
			if (durable < 0)
				journal_failed(shard, (int)durable);
		}
	}
	assert(shard->failed);
}

static uint64_t next_now(struct engine_shard *shard)
{
	/* The ledger's clock must not go backwards even if the wall clock does. */
	uint64_t now = engine_now_us();
	if (now < shard->now_us)
		now = shard->now_us;
	shard->now_us = now;
	return now;
}

/* The payee's shard of a transfer whose outcome is remote, read from the
 * window right after ledger_apply() (a repeat: its own id; LOOKUP: the
 * transfer it names). Returns false when later requests of the same batch
 * already evicted it (a window far smaller than the traffic). */
static bool probe_target(const struct engine_shard *shard, const struct ledger_request *request,
			 uint16_t *target)
{
	uint64_t transfer = request->kind == LEDGER_KIND_LOOKUP ? request->reference_id : request->id;
	struct ledger_transfer_info info;
	if (!ledger_transfer_get(shard->ledger, transfer, &info) ||
	    info.account_id != request->account_id || info.state != LEDGER_TRANSFER_CREDITING)
		return false;
	uint32_t payee_shard = ledger_shard_of(info.other_id, shard->engine->shard_count);
	assert(payee_shard != shard->index);
	*target = (uint16_t)payee_shard;
	return true;
}

/* What a repeat or LOOKUP answers once its transfer has left the window: a
 * repeat is older than the window now (its retry would be TOO_OLD), a LOOKUP
 * finds nothing. */
static uint16_t forgotten_code(const struct ledger_request *request)
{
	return request->kind == LEDGER_KIND_LOOKUP ? LEDGER_TRANSFER_NOT_FOUND : LEDGER_TOO_OLD;
}

static struct engine_pending *note_pending(struct engine_shard *shard,
					   const struct engine_message *message,
					   const struct ledger_result *result)
{
	struct engine_pending *pending = pending_push(shard);
	pending->request = message->request;
	pending->result = *result;
	pending->wait_sequence = result->sequence ? result->sequence
						  : ledger_sequence(shard->ledger);
	pending->balance = message->balance;
	pending->sequence = message->sequence;
	pending->amount = message->amount;
	pending->worker = message->worker;
	pending->type = message->type;
	pending->probe_shard = 0;
	pending->slot = message->slot;
	if ((result->flags & LEDGER_RESULT_OUTCOME_REMOTE) &&
	    !probe_target(shard, &message->request, &pending->probe_shard)) {
		pending->result.flags &= (uint16_t)~LEDGER_RESULT_OUTCOME_REMOTE;
		pending->result.code = forgotten_code(&message->request);
	}
	if ((result->flags & LEDGER_RESULT_CREDIT_REMOTE) && result->code == LEDGER_OK &&
	    !(result->flags & LEDGER_RESULT_DUPLICATE)) {
		/* The ledger builds the credit: for a capture the hold's payee,
		 * currency and captured amount come from its deduplication window,
		 * which is why this runs right after ledger_apply(). */
		int built = ledger_remote_credit(shard->ledger, &message->request, result,
						 &pending->credit);
		assert(built == 0);
		(void)built;
	}
	return pending;
}

/* A result the engine gives without the ledger: nothing changed, nothing is
 * journaled; it leaves with the decisions before it. */
static void note_refusal(struct engine_shard *shard, const struct engine_message *message,
			 uint16_t code, uint32_t retry_after_us)
{
	assert(retry_after_us == 0 || code == LEDGER_BUSY);
	const struct ledger_account *account = ledger_account_get(shard->ledger,
								  message->request.account_id);
	struct ledger_result result = {
		.id = message->request.id, .amount = message->request.amount, .code = code,
		.balance = account != NULL ? account->balance - (int64_t)account->held : 0,
		.retry_after_us = retry_after_us,
	};
	note_pending(shard, message, &result);
	metrics_add(&shard->stats.results[code], 1);
}

/* The probe came back: the payer's window holds the final outcome now (any
 * RETURN came ahead of the probe on the same ring and has been applied). */
static void answer_probe_back(struct engine_shard *shard, const struct engine_message *message)
{
	const struct ledger_request *request = &message->request;
	bool lookup = request->kind == LEDGER_KIND_LOOKUP;
	uint64_t transfer = lookup ? request->reference_id : request->id;
	struct ledger_transfer_info info;
	bool found = ledger_transfer_get(shard->ledger, transfer, &info) &&
		     info.account_id == request->account_id;
	const struct ledger_account *account = ledger_account_get(shard->ledger, request->account_id);
	struct ledger_result result = {
		.id = request->id,
		.balance = account != NULL ? account->balance - (int64_t)account->held : 0,
		.amount = found ? info.amount : 0,
		.sequence = lookup ? 0 : message->sequence,
		/* Evicted meanwhile (a window far smaller than the traffic). */
		.code = found ? info.code : forgotten_code(request),
		.flags = lookup ? 0 : LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_JOURNAL,
	};
	assert(!found || info.state != LEDGER_TRANSFER_CREDITING || info.code == LEDGER_OK);
	struct engine_pending *pending = note_pending(shard, message, &result);
	pending->wait_sequence = ledger_sequence(shard->ledger); /* the RETURN is durable first */
}

/* The engine's checks of a client request before its ledger sees it: one id
 * space across shards (claims.h). Returns LEDGER_OK, or the refusal. *claimed
 * says whether this request made a new claim. */
static uint16_t claim_request(struct engine_shard *shard, const struct ledger_request *request,
			      bool *claimed)
{
	struct engine_claims *claims = shard->engine->claims;
	*claimed = false;
	if (claims == NULL || !ledger_kind_remembered(request->kind) || request->id == 0)
		return LEDGER_OK;
	uint64_t watermark = engine_claims_watermark(claims);
	if (watermark != 0 && request->timestamp_us <= watermark) {
		metrics_add(&shard->stats.too_old_elsewhere, 1);
		return LEDGER_TOO_OLD;
	}
	uint32_t owner;
	switch (engine_claims_take(claims, request->id, shard->index, &owner)) {
	case ENGINE_CLAIM_NEW:
		*claimed = true;
		return LEDGER_OK;
	case ENGINE_CLAIM_MINE:
		return LEDGER_OK;
	case ENGINE_CLAIM_OTHER:
		metrics_add(&shard->stats.claims_refused, 1);
		return LEDGER_ID_REUSED;
	case ENGINE_CLAIM_FULL:
	default:
		metrics_add(&shard->stats.claims_full, 1);
		return LEDGER_BUSY;
	}
}

/* A new claim is released unless the window now remembers a client request
 * under the id — this one, or a later one of the same batch that found the
 * claim already ours (the first was TOO_OLD, invalid or in the future): only
 * window entries hold claims, and the eviction hook releases them. */
static void settle_claim(struct engine_shard *shard, const struct ledger_request *request)
{
	struct ledger_transfer_info info;
	if (ledger_transfer_get(shard->ledger, request->id, &info) &&
	    ledger_kind_remembered(info.kind))
		return;
	engine_claims_release(shard->engine->claims, request->id, shard->index);
}

/* Admission control (DESIGN.md rule 10): a client request whose wait so far
 * plus the group commit still ahead of it passes the latency bound is
 * answered BUSY at once, with that wait as the retry-after hint, instead of
 * being decided late. The refusal costs no ledger work and no journal bytes,
 * so a backlog drains at once; it hits the head of the queue, where requests
 * are stalest (as CoDel drops). Returns the hint, or 0 to admit. */
static uint32_t admission_refusal(const struct engine_shard *shard,
				  const struct engine_message *message, uint64_t now_us)
{
	uint32_t bound = shard->engine->config.latency_bound_us;
	if (bound == 0)
		return 0;
	uint64_t waited = now_us > message->received_us ? now_us - message->received_us : 0;
	/* The commit ahead takes at most half the budget in this test: a disk
	 * slower than the bound must still serve the freshest requests, and only
	 * commits of admitted requests keep the estimate current. */
	uint64_t commit = shard->commit_estimate_us < bound / 2 ? shard->commit_estimate_us
								 : bound / 2;
	if (waited + commit <= bound)
		return 0;
	uint64_t expected = waited + shard->commit_estimate_us;
	if (expected < ENGINE_RETRY_AFTER_MIN_US)
		expected = ENGINE_RETRY_AFTER_MIN_US;
	if (expected > ENGINE_RETRY_AFTER_MAX_US)
		expected = ENGINE_RETRY_AFTER_MAX_US;
	return (uint32_t)expected;
}

/* Splits a gathered burst: what the ledger decides goes to shard->requests
 * (index in shard->messages kept in `taken`); engine refusals are noted at
 * once; probes are left for after the ledger. Returns the requests taken. */
static uint32_t sort_burst(struct engine_shard *shard, uint32_t count, uint16_t *taken,
			   bool *claimed)
{
	uint32_t applied = 0;
	uint64_t now_us = engine_monotonic_us();
	for (uint32_t i = 0; i < count; i++) {
		const struct engine_message *message = &shard->messages[i];
		if (message->type != ENGINE_MESSAGE_REQUEST)
			continue;
		bool new_claim = false;
		bool from_client = !engine_message_between_shards(message) &&
				   message->worker != ENGINE_NO_REPLY;
		uint32_t retry_after_us = from_client ? admission_refusal(shard, message, now_us) : 0;
		if (retry_after_us != 0) {
			metrics_add(&shard->stats.admission_busy, 1);
			note_refusal(shard, message, LEDGER_BUSY, retry_after_us);
			continue;
		}
		uint16_t code = from_client ? claim_request(shard, &message->request, &new_claim)
					    : LEDGER_OK;
		if (code != LEDGER_OK) {
			note_refusal(shard, message, code, 0);
			continue;
		}
		shard->requests[applied] = message->request;
		claimed[applied] = new_claim;
		taken[applied++] = (uint16_t)i;
	}
	return applied;
}

static void count_decisions(struct engine_shard *shard, const uint16_t *taken, uint32_t applied)
{
	metrics_add(&shard->stats.requests, applied);
	for (uint32_t j = 0; j < applied; j++) {
		const struct ledger_result *result = &shard->results[j];
		metrics_add(&shard->stats.results[result->code < LEDGER_RESULT_CODE_COUNT
							  ? result->code : LEDGER_INVALID_REQUEST], 1);
		if (result->flags & LEDGER_RESULT_DUPLICATE)
			metrics_add(&shard->stats.duplicates, 1);
		if (shard->messages[taken[j]].request.kind == LEDGER_KIND_CREDIT)
			metrics_add(&shard->stats.credits_received, 1);
	}
	__atomic_store_n(&shard->stats.sequence_applied, ledger_sequence(shard->ledger),
			 __ATOMIC_RELAXED);
}

/* Applies a gathered burst, journals it and queues its replies. Refusals by
 * the engine are queued first: they wait for nothing that follows them. */
static void decide(struct engine_shard *shard, uint32_t count)
{
	uint16_t taken[ENGINE_APPLY_MAX];
	bool claimed[ENGINE_APPLY_MAX];
	assert(count <= ENGINE_APPLY_MAX);
	uint32_t applied = sort_burst(shard, count, taken, claimed);
	/* After the claims: an id another shard released is decided at a time
	 * no earlier than its eviction there (the audit's id rule relies on it). */
	uint64_t now = next_now(shard);
	ledger_apply(shard->ledger, now, shard->requests, shard->results, applied);
	for (uint32_t j = 0; j < applied; j++) {
		const struct ledger_result *result = &shard->results[j];
		if (claimed[j])
			settle_claim(shard, &shard->requests[j]);
		if (result->flags & LEDGER_RESULT_JOURNAL)
			append_record(shard, now, &shard->requests[j], result);
		note_pending(shard, &shard->messages[taken[j]], result);
	}
	for (uint32_t i = 0; i < count; i++) {
		const struct engine_message *message = &shard->messages[i];
		if (message->type == ENGINE_MESSAGE_PROBE)
			note_pending(shard, message, &(struct ledger_result){ .id = message->request.id });
		else if (message->type == ENGINE_MESSAGE_PROBE_BACK)
			answer_probe_back(shard, message);
	}
	count_decisions(shard, taken, applied);
}

/* Answers UNAVAILABLE to everything that arrives after a journal failure. */
static uint32_t refuse_intake(struct engine_shard *shard)
{
	uint32_t count = gather(shard, ENGINE_BURST);
	for (uint32_t i = 0; i < count; i++) {
		struct engine_message *message = &shard->messages[i];
		struct ledger_result reply = { .id = message->request.id, .code = LEDGER_UNAVAILABLE };
		if (engine_message_between_shards(message))
			atomic_fetch_sub(&shard->engine->credits_in_flight, 1);
		while (!send_reply(shard, message->worker, message->slot, &reply))
			flush_replies(shard);
	}
	flush_replies(shard);
	return count;
}

static void journal_failed(struct engine_shard *shard, int error)
{
	if (!shard->failed)
		engine_log("error", "shard %u: journal failed (%s): nothing more is acknowledged",
			   shard->index, strerror(-error));
	shard->failed = true;
	atomic_store(&shard->engine->failed, 1);
	__atomic_store_n(&shard->stats.journal_failed, 1, __ATOMIC_RELAXED);
}

/* Records the commit latency of every group that became durable. */
static void observe_commits(struct engine_shard *shard, uint64_t durable)
{
	uint64_t now = engine_monotonic_us();
	while (shard->commits_count > 0) {
		struct engine_commit *oldest = &shard->commits[shard->commits_head];
		if (oldest->sequence > durable)
			break;
		uint64_t latency = now - oldest->started_us;
		metrics_histogram_observe(&shard->stats.commit_latency_us, latency);
		/* 1/8 weight per group: follows a disk stall within a few groups. */
		shard->commit_estimate_us = (shard->commit_estimate_us * 7 + latency) / 8;
		__atomic_store_n(&shard->stats.commit_estimate_us, shard->commit_estimate_us,
				 __ATOMIC_RELAXED);
		shard->commits_head = (shard->commits_head + 1) % ENGINE_COMMITS_MAX;
		shard->commits_count--;
	}
}

/* Reaps completions (waiting for one when `wait`); returns how many decisions
 * were released. */
static uint32_t reap(struct engine_shard *shard, bool wait)
{
	int64_t durable = journal_poll(shard->journal, wait);
	if (durable < 0) {
		journal_failed(shard, (int)durable);
		fail_pending(shard);
		return 0;
	}
	uint64_t before = __atomic_load_n(&shard->stats.sequence_durable, __ATOMIC_RELAXED);
	if ((uint64_t)durable > before) {
		__atomic_store_n(&shard->stats.sequence_durable, (uint64_t)durable, __ATOMIC_RELAXED);
		observe_commits(shard, (uint64_t)durable);
	}
	return release_durable(shard, (uint64_t)durable);
}

/* Submits the open group unless it is empty or in_flight_max groups are in
 * flight already. */
static void commit(struct engine_shard *shard)
{
	uint64_t appended = journal_appended_sequence(shard->journal);
	if (appended == shard->committed_sequence || shard->failed)
		return;
	if (journal_in_flight(shard->journal) >= shard->in_flight_max)
		return;
	int result = journal_commit(shard->journal);
	if (result == -EBUSY)
		return;
	if (result < 0) {
		journal_failed(shard, result);
		fail_pending(shard);
		return;
	}
	uint64_t records = appended - shard->committed_sequence;
	shard->committed_sequence = appended;
	if (shard->commits_count < ENGINE_COMMITS_MAX) {
		uint32_t index = (shard->commits_head + shard->commits_count) % ENGINE_COMMITS_MAX;
		shard->commits[index].sequence = appended;
		shard->commits[index].started_us = engine_monotonic_us();
		shard->commits_count++;
	}
	metrics_add(&shard->stats.groups, 1);
	metrics_add(&shard->stats.records, records);
	metrics_histogram_observe(&shard->stats.group_records, records);
}

/* Microseconds until the open group is due (0: due now, or nothing open):
 * a group goes as soon as the disk is idle, or, beside groups in flight,
 * once its oldest record waited group-wait-us; never beyond in_flight_max. */
static uint64_t group_due_in_us(const struct engine_shard *shard, uint64_t now_us)
{
	uint32_t in_flight = journal_in_flight(shard->journal);
	if (in_flight == 0)
		return 0;
	uint64_t waited = now_us > shard->group_started_us ? now_us - shard->group_started_us : 0;
	uint32_t bound = shard->engine->config.group_wait_us;
	return waited >= bound ? 0 : bound - waited;
}

/* Commits the open group when it is due (group_due_in_us). */
static void commit_when_due(struct engine_shard *shard)
{
	if (journal_appended_sequence(shard->journal) == shard->committed_sequence)
		return;
	if (group_due_in_us(shard, engine_monotonic_us()) == 0)
		commit(shard);
}

static bool inbound_empty(const struct engine_shard *shard)
{
	const struct engine *engine = shard->engine;
	for (uint32_t source = 0; source < engine->shard_count; source++)
		if (source != shard->index &&
		    engine_ring_count(&engine->rings_credit[source * engine->shard_count +
							    shard->index]) != 0)
			return false;
	for (uint32_t worker = 0; worker < engine->worker_count; worker++)
		if (engine_ring_count(&engine->rings_in[worker * engine->shard_count +
							shard->index]) != 0)
			return false;
	return true;
}

/* Sleeps until woken (new work, or a journal completion when they write our
 * eventfd) or `timeout_us` passes, unless work arrived meanwhile. */
static void idle(struct engine_shard *shard, uint64_t timeout_us)
{
	assert(timeout_us > 0);
	assert(timeout_us <= 1000);
	struct engine_waker *waker = &shard->engine->shards_waker[shard->index];
	atomic_store(&waker->sleeping, 1);
	if (inbound_empty(shard)) {
		struct pollfd descriptor = { .fd = waker->eventfd, .events = POLLIN };
		struct timespec timeout = { .tv_sec = 0, .tv_nsec = (long)timeout_us * 1000 };
		if (ppoll(&descriptor, 1, &timeout, NULL) == 1) {
			uint64_t value;
			ssize_t got = read(waker->eventfd, &value, sizeof(value));
			(void)got;
		}
	}
	atomic_store(&waker->sleeping, 0);
}

static bool drained(const struct engine_shard *shard)
{
	return shard->pending_count == 0 && inbound_empty(shard) &&
	       shard->backlog_sent == shard->backlog_count &&
	       journal_appended_sequence(shard->journal) == shard->committed_sequence &&
	       journal_in_flight(shard->journal) == 0;
}

/* Lets the journal's completions wake the shard through its eventfd, so it
 * sleeps in one place for new work and for syncs alike; and bounds the
 * groups in flight by the config and by the writer's buffers. */
static void shard_journal_setup(struct engine_shard *shard)
{
	uint32_t configured = shard->engine->config.journal_in_flight;
	uint32_t buffers = journal_in_flight_max(shard->journal);
	shard->in_flight_max = configured < buffers ? configured : buffers;
	if (shard->in_flight_max == 0)
		shard->in_flight_max = 1;
	int fd = shard->engine->shards_waker[shard->index].eventfd;
	int result = journal_writer_eventfd(shard->journal, fd);
	shard->completions_wake = result == 0;
	if (result != 0)
		engine_log("warn", "shard %u: journal completions cannot wake the shard (%s):"
			   " it waits on syncs instead", shard->index, strerror(-result));
	assert(shard->in_flight_max >= 1);
}

/* Nothing to do now. With completions on the eventfd: sleep until new work,
 * a completion, or the open group's due time (at most 1 ms). Without: sleep
 * on the sync in flight, or on the eventfd. */
static void idle_or_reap(struct engine_shard *shard)
{
	bool open_group = journal_appended_sequence(shard->journal) != shard->committed_sequence;
	if (shard->completions_wake) {
		uint64_t timeout_us = 1000;
		if (open_group && !shard->failed &&
		    journal_in_flight(shard->journal) < shard->in_flight_max) {
			uint64_t due = group_due_in_us(shard, engine_monotonic_us());
			timeout_us = due == 0 ? 1 : due < timeout_us ? due : timeout_us;
		}
		idle(shard, timeout_us);
		return;
	}
	if (journal_in_flight(shard->journal) > 0 && inbound_empty(shard))
		reap(shard, true);   /* nothing to build: sleep on the sync itself */
	else
		idle(shard, 1000);
}

void *engine_shard_main(void *argument)
{
	struct engine_shard *shard = argument;
	struct engine *engine = shard->engine;
	shard_journal_setup(shard);
	for (;;) {
		uint32_t progress = reap(shard, false);
		if (shard->backlog_sent < shard->backlog_count)
			progress += engine_shard_send_backlog(shard);
		if (shard->failed) {
			progress += refuse_intake(shard);
		} else {
			uint32_t room = intake_room(shard);
			uint32_t count = room > 0 ? gather(shard, room) : 0;
			if (count > 0)
				decide(shard, count);
			progress += count;
			commit_when_due(shard);
			engine_snapshotter_maybe(shard);
		}
		if (progress > 0)
			continue;
		if (atomic_load(&engine->stop_intake) && drained(shard) &&
		    atomic_load(&engine->credits_in_flight) == 0)
			break;
		idle_or_reap(shard);
	}
	return NULL;
}
