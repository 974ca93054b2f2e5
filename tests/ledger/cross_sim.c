/*
 * cross_sim.c — the simulated switch (see cross_sim.h). The release rules
 * follow engine/shard.c function by function: claim_request(),
 * settle_claim(), sort_burst() + decide(), release_one() with
 * release_credit() / release_return() / release_probe() /
 * release_probe_back(), answer_probe_back(), and engine.c's eviction hook.
 */
#include "cross_sim.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/claims.h"

enum sim_message_type {
	SIM_REQUEST = 0,     /* a client request, a CREDIT or a RETURN */
	SIM_PROBE = 1,       /* payer's shard -> payee's shard */
	SIM_PROBE_BACK = 2,  /* payee's shard -> payer's shard */
};

struct sim_message {
	struct ledger_request request;
	int64_t balance;     /* the payer's decision, carried for its final reply */
	uint64_t sequence;
	uint64_t amount;
	uint32_t slot;       /* the client request of the batch this answers */
	uint8_t type;
};

/* An unbounded FIFO (tests only): a growable array read from `head`. */
struct sim_queue {
	struct sim_message *messages;
	uint32_t head, count, capacity;
};

struct sim_evict_context {
	struct cross_sim *sim;
	uint32_t shard;
};

struct cross_sim {
	uint32_t shard_count;
	struct ledger *ledgers[CROSS_SIM_SHARDS_MAX];
	struct sim_evict_context evict[CROSS_SIM_SHARDS_MAX];
	struct engine_claims *claims;
	struct sim_queue queues[CROSS_SIM_SHARDS_MAX][CROSS_SIM_SHARDS_MAX]; /* [from][to] */
	uint64_t now_us;
	cross_sim_record_fn record;
	void *record_context;
	struct cross_sim_stats stats;
	/* The batch being delivered. */
	struct ledger_result *replies;
	bool answered[CROSS_SIM_BATCH_MAX];
	uint32_t batch_count;
	/* Scratch for one shard's burst. */
	struct sim_message *burst;
	struct ledger_request *requests;
	struct ledger_result *results;
	uint32_t *taken;
	bool *claimed;
	uint32_t burst_capacity;
};

static void sim_evicted(void *context, const struct ledger_transfer_info *evicted, uint64_t now_us)
{
	struct sim_evict_context *evict = context;
	(void)now_us;
	if (!ledger_kind_remembered(evicted->kind))
		return; /* a CREDIT: the payer's shard holds the id */
	engine_claims_note_evicted(evict->sim->claims, evicted->timestamp_us);
	engine_claims_release(evict->sim->claims, evicted->id, evict->shard);
}

static bool burst_reserve(struct cross_sim *sim, uint32_t capacity)
{
	if (capacity <= sim->burst_capacity)
		return true;
	sim->burst = realloc(sim->burst, capacity * sizeof(*sim->burst));
	sim->requests = realloc(sim->requests, capacity * sizeof(*sim->requests));
	sim->results = realloc(sim->results, capacity * sizeof(*sim->results));
	sim->taken = realloc(sim->taken, capacity * sizeof(*sim->taken));
	sim->claimed = realloc(sim->claimed, capacity * sizeof(*sim->claimed));
	if (!sim->burst || !sim->requests || !sim->results || !sim->taken || !sim->claimed)
		abort();
	sim->burst_capacity = capacity;
	return true;
}

struct cross_sim *cross_sim_create(const struct ledger_config *config, uint32_t shard_count)
{
	if (shard_count < 1 || shard_count > CROSS_SIM_SHARDS_MAX)
		return NULL;
	struct cross_sim *sim = calloc(1, sizeof(*sim));
	if (sim == NULL)
		return NULL;
	sim->shard_count = shard_count;
	int error;
	sim->claims = engine_claims_create(config->transfers_max * shard_count + 4096, &error);
	if (sim->claims == NULL)
		goto fail;
	for (uint32_t shard = 0; shard < shard_count; shard++) {
		struct ledger_config own = *config;
		own.shard_index = shard;
		own.shard_count = shard_count;
		sim->ledgers[shard] = ledger_create(&own, &error);
		if (sim->ledgers[shard] == NULL)
			goto fail;
		sim->evict[shard] = (struct sim_evict_context){ sim, shard };
		ledger_set_evict_hook(sim->ledgers[shard], sim_evicted, &sim->evict[shard]);
	}
	burst_reserve(sim, 256);
	return sim;
fail:
	cross_sim_destroy(sim);
	return NULL;
}

void cross_sim_destroy(struct cross_sim *sim)
{
	if (sim == NULL)
		return;
	for (uint32_t shard = 0; shard < CROSS_SIM_SHARDS_MAX; shard++) {
		ledger_destroy(sim->ledgers[shard]);
		for (uint32_t to = 0; to < CROSS_SIM_SHARDS_MAX; to++)
			free(sim->queues[shard][to].messages);
	}
	engine_claims_destroy(sim->claims);
	free(sim->burst);
	free(sim->requests);
	free(sim->results);
	free(sim->taken);
	free(sim->claimed);
	free(sim);
}

void cross_sim_set_record(struct cross_sim *sim, cross_sim_record_fn record, void *context)
{
	sim->record = record;
	sim->record_context = context;
}

uint32_t cross_sim_shard_count(const struct cross_sim *sim) { return sim->shard_count; }
struct ledger *cross_sim_ledger(const struct cross_sim *sim, uint32_t shard) { return sim->ledgers[shard]; }
const struct cross_sim_stats *cross_sim_stats(const struct cross_sim *sim) { return &sim->stats; }

const struct ledger_account *cross_sim_account(const struct cross_sim *sim, uint64_t id)
{
	return ledger_account_get(sim->ledgers[ledger_shard_of(id, sim->shard_count)], id);
}

/* ---- queues ------------------------------------------------------------- */
static void send_to(struct cross_sim *sim, uint32_t from, uint32_t to,
		    const struct sim_message *message)
{
	assert(from != to && to < sim->shard_count);
	struct sim_queue *queue = &sim->queues[from][to];
	if (queue->head + queue->count == queue->capacity) {
		if (queue->head > 0) {
			memmove(queue->messages, queue->messages + queue->head,
				queue->count * sizeof(*queue->messages));
			queue->head = 0;
		} else {
			queue->capacity = queue->capacity ? queue->capacity * 2 : 64;
			queue->messages = realloc(queue->messages,
						  queue->capacity * sizeof(*queue->messages));
			if (queue->messages == NULL)
				abort();
		}
	}
	queue->messages[queue->head + queue->count++] = *message;
}

static struct sim_message take_from(struct sim_queue *queue)
{
	assert(queue->count > 0);
	struct sim_message message = queue->messages[queue->head++];
	if (--queue->count == 0)
		queue->head = 0;
	return message;
}

/* ---- replies ------------------------------------------------------------ */
static void reply(struct cross_sim *sim, uint32_t slot, const struct ledger_result *result)
{
	assert(slot < sim->batch_count);
	assert(!sim->answered[slot] && "one final answer per client request");
	sim->answered[slot] = true;
	sim->replies[slot] = *result;
}

/* payer_reply(): the payer's decision with the final code. */
static struct ledger_result payer_reply(const struct sim_message *message, uint16_t code)
{
	return (struct ledger_result){
		.id = message->request.id, .balance = message->balance, .amount = message->amount,
		.sequence = message->sequence, .code = code, .flags = LEDGER_RESULT_JOURNAL,
	};
}

static void refusal(struct cross_sim *sim, uint32_t shard, const struct sim_message *message,
		    uint16_t code)
{
	const struct ledger_account *account = ledger_account_get(sim->ledgers[shard],
								  message->request.account_id);
	struct ledger_result result = {
		.id = message->request.id, .amount = message->request.amount, .code = code,
		.balance = account != NULL ? account->balance - (int64_t)account->held : 0,
	};
	reply(sim, message->slot, &result);
}

/* ---- claims (claim_request, settle_claim) ------------------------------- */
static uint16_t claim_request(struct cross_sim *sim, uint32_t shard,
			      const struct ledger_request *request, bool *claimed)
{
	*claimed = false;
	if (sim->shard_count == 1 || !ledger_kind_remembered(request->kind) || request->id == 0)
		return LEDGER_OK;
	uint64_t watermark = engine_claims_watermark(sim->claims);
	if (watermark != 0 && request->timestamp_us <= watermark) {
		sim->stats.too_old_elsewhere++;
		return LEDGER_TOO_OLD;
	}
	uint32_t owner;
	switch (engine_claims_take(sim->claims, request->id, shard, &owner)) {
	case ENGINE_CLAIM_NEW:
		*claimed = true;
		return LEDGER_OK;
	case ENGINE_CLAIM_MINE:
		return LEDGER_OK;
	case ENGINE_CLAIM_OTHER:
		sim->stats.claims_refused++;
		return LEDGER_ID_REUSED;
	case ENGINE_CLAIM_FULL:
	default:
		sim->stats.busy++;
		return LEDGER_BUSY;
	}
}

static void settle_claim(struct cross_sim *sim, uint32_t shard, const struct ledger_request *request)
{
	struct ledger_transfer_info info;
	if (ledger_transfer_get(sim->ledgers[shard], request->id, &info) &&
	    ledger_kind_remembered(info.kind))
		return;
	engine_claims_release(sim->claims, request->id, shard);
}

/* ---- release_one() ------------------------------------------------------ */
static uint32_t probe_target(const struct cross_sim *sim, uint32_t shard,
			     const struct ledger_request *request)
{
	uint64_t transfer = request->kind == LEDGER_KIND_LOOKUP ? request->reference_id : request->id;
	struct ledger_transfer_info info;
	bool found = ledger_transfer_get(sim->ledgers[shard], transfer, &info);
	assert(found);
	(void)found;
	uint32_t target = ledger_shard_of(info.other_id, sim->shard_count);
	assert(target != shard);
	return target;
}

static struct ledger_request return_of(const struct ledger_request *credit, uint16_t refusal_code)
{
	assert(refusal_code != LEDGER_OK && refusal_code <= LEDGER_INVALID_LIMITS);
	struct ledger_request giving_back = *credit;
	giving_back.kind = LEDGER_KIND_RETURN;
	giving_back.flags = (uint8_t)refusal_code;
	return giving_back;
}

static void release(struct cross_sim *sim, uint32_t shard, const struct sim_message *message,
		    const struct ledger_request *request, const struct ledger_result *result)
{
	if (request->kind == LEDGER_KIND_CREDIT) {
		if (result->flags & LEDGER_RESULT_RETURN_REMOTE) {
			struct sim_message back = *message;
			back.request = return_of(request, result->code);
			back.type = SIM_REQUEST;
			send_to(sim, shard, ledger_shard_of(request->account_id, sim->shard_count), &back);
			sim->stats.returns++;
		} else {
			struct ledger_result final = payer_reply(message, result->code);
			reply(sim, message->slot, &final);
		}
		return;
	}
	if (request->kind == LEDGER_KIND_RETURN) {
		if (result->code != LEDGER_OK && !(result->flags & LEDGER_RESULT_DUPLICATE))
			sim->stats.returns_refused++;
		struct ledger_result final = payer_reply(message, request->flags);
		final.balance = result->balance;
		reply(sim, message->slot, &final);
		return;
	}
	struct sim_message onward = {
		.request = *request, .balance = result->balance, .sequence = result->sequence,
		.amount = result->amount, .slot = message->slot,
	};
	if (result->flags & LEDGER_RESULT_OUTCOME_REMOTE) {
		assert(!(result->flags & LEDGER_RESULT_RETURN_REMOTE));
		onward.type = SIM_PROBE;
		send_to(sim, shard, probe_target(sim, shard, request), &onward);
		sim->stats.probes++;
		return;
	}
	if ((result->flags & LEDGER_RESULT_CREDIT_REMOTE) && result->code == LEDGER_OK &&
	    !(result->flags & LEDGER_RESULT_DUPLICATE)) {
		int built = ledger_remote_credit(sim->ledgers[shard], request, result, &onward.request);
		assert(built == 0);
		(void)built;
		onward.type = SIM_REQUEST;
		send_to(sim, shard, ledger_shard_of(onward.request.other_id, sim->shard_count), &onward);
		sim->stats.credits++;
		return;
	}
	reply(sim, message->slot, result);
}

/* answer_probe_back(): the payer's window holds the final outcome now. */
static void answer_probe_back(struct cross_sim *sim, uint32_t shard, const struct sim_message *message)
{
	const struct ledger_request *request = &message->request;
	bool lookup = request->kind == LEDGER_KIND_LOOKUP;
	uint64_t transfer = lookup ? request->reference_id : request->id;
	struct ledger_transfer_info info;
	bool found = ledger_transfer_get(sim->ledgers[shard], transfer, &info) &&
		     info.account_id == request->account_id;
	const struct ledger_account *account = ledger_account_get(sim->ledgers[shard],
								  request->account_id);
	struct ledger_result result = {
		.id = request->id,
		.balance = account != NULL ? account->balance - (int64_t)account->held : 0,
		.amount = found ? info.amount : 0,
		.sequence = lookup ? 0 : message->sequence,
		.code = found ? info.code : lookup ? LEDGER_TRANSFER_NOT_FOUND : LEDGER_BUSY,
		.flags = lookup ? 0 : LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_JOURNAL,
	};
	assert(!found || info.state != LEDGER_TRANSFER_CREDITING || info.code == LEDGER_OK);
	reply(sim, message->slot, &result);
}

/* ---- decide() ----------------------------------------------------------- */
static void shard_decide(struct cross_sim *sim, uint32_t shard, uint32_t count)
{
	const struct sim_message *burst = sim->burst;
	uint32_t applied = 0;
	for (uint32_t i = 0; i < count; i++) {
		const struct sim_message *message = &burst[i];
		if (message->type != SIM_REQUEST)
			continue;
		bool internal = message->request.kind == LEDGER_KIND_CREDIT ||
				message->request.kind == LEDGER_KIND_RETURN;
		bool new_claim = false;
		uint16_t code = internal ? LEDGER_OK
					 : claim_request(sim, shard, &message->request, &new_claim);
		if (code != LEDGER_OK) {
			refusal(sim, shard, message, code);
			continue;
		}
		sim->requests[applied] = message->request;
		sim->claimed[applied] = new_claim;
		sim->taken[applied++] = i;
	}
	struct ledger *ledger = sim->ledgers[shard];
	ledger_apply(ledger, sim->now_us, sim->requests, sim->results, applied);
	for (uint32_t j = 0; j < applied; j++) {
		const struct ledger_result *result = &sim->results[j];
		if (sim->claimed[j])
			settle_claim(sim, shard, &sim->requests[j]);
		if ((result->flags & LEDGER_RESULT_JOURNAL) && sim->record != NULL)
			sim->record(sim->record_context, shard, sim->now_us, &sim->requests[j], result);
		release(sim, shard, &burst[sim->taken[j]], &sim->requests[j], result);
	}
	for (uint32_t i = 0; i < count; i++) {
		const struct sim_message *message = &burst[i];
		if (message->type == SIM_PROBE) {
			/* release_probe_back(): everything decided before it went first. */
			struct sim_message back = *message;
			back.type = SIM_PROBE_BACK;
			send_to(sim, shard, ledger_shard_of(message->request.account_id,
							    sim->shard_count), &back);
		} else if (message->type == SIM_PROBE_BACK) {
			answer_probe_back(sim, shard, message);
		}
	}
}

/* One round: each shard takes what its queues held when the round began. */
static bool deliver_round(struct cross_sim *sim)
{
	uint32_t waiting[CROSS_SIM_SHARDS_MAX][CROSS_SIM_SHARDS_MAX];
	bool any = false;
	for (uint32_t from = 0; from < sim->shard_count; from++)
		for (uint32_t to = 0; to < sim->shard_count; to++) {
			waiting[from][to] = sim->queues[from][to].count;
			any |= waiting[from][to] > 0;
		}
	if (!any)
		return false;
	for (uint32_t to = 0; to < sim->shard_count; to++) {
		uint32_t total = 0;
		for (uint32_t from = 0; from < sim->shard_count; from++)
			total += waiting[from][to];
		if (total == 0)
			continue;
		burst_reserve(sim, total);
		uint32_t count = 0;
		for (uint32_t from = 0; from < sim->shard_count; from++)
			for (uint32_t k = 0; k < waiting[from][to]; k++)
				sim->burst[count++] = take_from(&sim->queues[from][to]);
		shard_decide(sim, to, count);
	}
	return true;
}

void cross_sim_batch(struct cross_sim *sim, uint64_t now_us, const struct ledger_request *requests,
		     struct ledger_result *replies, uint32_t count)
{
	assert(count <= CROSS_SIM_BATCH_MAX);
	assert(now_us >= sim->now_us);
	sim->now_us = now_us;
	sim->replies = replies;
	sim->batch_count = count;
	memset(sim->answered, 0, sizeof(sim->answered));
	/* Holds expire on every shard at the batch's time, as they would at the
	 * next apply; without it a shard that decides nothing keeps them held. */
	for (uint32_t shard = 0; shard < sim->shard_count; shard++)
		ledger_apply(sim->ledgers[shard], now_us, NULL, NULL, 0);
	burst_reserve(sim, CROSS_SIM_BATCH_MAX);
	for (uint32_t shard = 0; shard < sim->shard_count; shard++) {
		uint32_t taken = 0;
		for (uint32_t i = 0; i < count; i++)
			if (ledger_shard_of(requests[i].account_id, sim->shard_count) == shard)
				sim->burst[taken++] = (struct sim_message){
					.request = requests[i], .slot = i, .type = SIM_REQUEST };
		if (taken > 0)
			shard_decide(sim, shard, taken);
	}
	uint32_t rounds = 0;
	while (deliver_round(sim))
		assert(++rounds <= 4 && "credit, return, probe back: three rounds at most");
	for (uint32_t i = 0; i < count; i++)
		assert(sim->answered[i] && "every client request is answered once quiet");
}

/* ---- invariants --------------------------------------------------------- */
struct floor_check {
	char *text;
	uint32_t text_bytes;
};

static int floor_visit(const struct ledger_account *account, void *context)
{
	struct floor_check *check = context;
	if (account->flags & LEDGER_ACCOUNT_CLOSED) {
		if (account->held != 0) {
			snprintf(check->text, check->text_bytes, "closed account %lu holds %lu",
				 (unsigned long)account->id, (unsigned long)account->held);
			return -1;
		}
		return 0; /* a balance here is the documented RETURN-to-closed case */
	}
	__int128 available = (__int128)account->balance - account->held;
	if (account->held > (uint64_t)INT64_MAX ||
	    (!(account->flags & LEDGER_ACCOUNT_FUNDING) &&
	     available < -(__int128)account->limit_overdraft)) {
		snprintf(check->text, check->text_bytes, "account %lu below its floor",
			 (unsigned long)account->id);
		return -1;
	}
	return 0;
}

int cross_sim_check(const struct cross_sim *sim, char *text, uint32_t text_bytes)
{
	struct ledger_currency_total sums[64];
	uint32_t currencies = 0;
	for (uint32_t shard = 0; shard < sim->shard_count; shard++) {
		const struct ledger *ledger = sim->ledgers[shard];
		struct ledger_violation violation;
		if (ledger_check_invariants(ledger, &violation) != 0) {
			struct floor_check check = { text, text_bytes };
			bool closed = strstr(violation.text, "closed account") != NULL;
			if (!closed || ledger_check_double_entry(ledger, &violation) != 0 ||
			    ledger_check_holds(ledger, &violation) != 0) {
				snprintf(text, text_bytes, "shard %u: %s", shard, violation.text);
				return -1;
			}
			if (ledger_account_foreach(ledger, floor_visit, &check) != 0)
				return -1;
		}
		struct ledger_currency_total totals[32];
		uint32_t count = ledger_currency_totals(ledger, totals, 32);
		assert(count <= 32);
		for (uint32_t i = 0; i < count; i++) {
			uint32_t at = 0;
			while (at < currencies && sums[at].currency != totals[i].currency)
				at++;
			if (at == currencies) {
				assert(currencies < 64);
				sums[currencies++] = (struct ledger_currency_total){
					.currency = totals[i].currency };
			}
			sums[at].balance_sum += totals[i].balance_sum;
			sums[at].transit += totals[i].transit;
		}
	}
	for (uint32_t at = 0; at < currencies; at++)
		if (sums[at].balance_sum + sums[at].transit != 0) {
			char balances[48], transit[48];
			snprintf(text, text_bytes, "currency %u: balances %s + transit %s != 0 over %u shards",
				 sums[at].currency,
				 ledger_format_i128(sums[at].balance_sum, balances, sizeof(balances)),
				 ledger_format_i128(sums[at].transit, transit, sizeof(transit)),
				 sim->shard_count);
			return -1;
		}
	return 0;
}
