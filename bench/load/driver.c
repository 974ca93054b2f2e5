/*
 * driver.c — the send / receive loop of payswitch-load.
 *
 * Request ids are (nonce << 40) | counter: the nonce is random per run, the
 * counter counts from 1. A request lives in slots[counter & slot_mask] from
 * creation until its final answer, so matching a result is one array index
 * and an id comparison. A slot is reused only when its request is answered
 * and no deliberate retry of it is pending.
 */
#include "driver.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#define COUNTER_BITS 40u
#define COUNTER_MASK ((1ull << COUNTER_BITS) - 1u)
#define DATAGRAM_LOG 65536u          /* request datagrams remembered (ERROR answers) */
#define RETRY_RING 4096u             /* deliberate retries outstanding at most */
#define DONE_RING 4096u              /* recent answers a retry may repeat */
/* BUSY answers wait netio_client_busy_wait_us() (the hint + 0-50%); timeouts
 * netio_client_backoff_us() (timeout_ms * 2^k, capped, + 0-50%), drawn per
 * request, so neither a BUSY burst nor a stall comes back as one burst. */
#define DRAIN_NS 60000000000ull      /* the end of a run waits this long at most */
#define SWEEP_NS 10000000u           /* look for timeouts every 10 ms */
#define SERIES_MAX 86400u            /* one day of seconds */

enum slot_state { SLOT_FREE = 0, SLOT_INFLIGHT = 1, SLOT_BUSY = 2, SLOT_DONE = 3 };

struct load_slot {
	struct ledger_request request;
	uint64_t intended_ns;        /* latency origin: scheduled (open) or created (closed) */
	uint64_t sent_ns;            /* last transmission, or the BUSY answer */
	uint64_t due_ns;             /* INFLIGHT: retransmit then; BUSY: resend then */
	uint64_t hold_amount;
	uint32_t payee;
	uint16_t code;               /* final code once DONE */
	uint8_t op;
	uint8_t state;
	uint8_t transmissions;       /* sends after a timeout, beyond the first */
	uint8_t retry_pending;       /* a deliberate repeat is in flight */
	uint8_t busy_count;          /* BUSY answers so far: the resend backoff doubles */
	uint8_t padding[17];
};
_Static_assert(sizeof(struct load_slot) == 128, "two cache lines");

struct datagram_entry {
	uint64_t sequence;
	uint64_t log_start;          /* first id in id_log */
	uint32_t count;
};

/* A request answered BUSY, waiting in the min-heap until due_ns. */
struct busy_entry {
	uint64_t due_ns;
	uint64_t id;
};

struct retry_entry {
	uint64_t id;
	uint64_t sent_ns;
};

struct load_driver {
	const struct load_config *config;
	const struct load_accounts *accounts;
	struct load_workload *workload;
	struct netio_client *client;
	int64_t *expected;
	uint64_t rng;

	struct load_slot *slots;
	uint64_t slot_mask;
	uint64_t nonce;              /* id high bits */
	uint64_t counter_next;       /* next counter to give */
	uint64_t oldest;             /* no unanswered request below this counter */
	uint64_t inflight;           /* created and not finally answered */
	uint64_t inflight_max;

	struct ledger_request *staged;   /* waiting for netio_client_send */
	uint32_t staged_count;
	uint32_t staged_max;             /* NETIO_BURST_MAX * per_datagram */

	struct datagram_entry *datagrams;  /* DATAGRAM_LOG */
	uint64_t *id_log;
	uint64_t id_log_mask;
	uint64_t id_log_next;

	struct busy_entry *busy;     /* min-heap by due_ns: BUSY requests to resend */
	uint64_t busy_heap_count;    /* entries (<= slots: one per BUSY slot) */
	struct retry_entry retries[RETRY_RING];
	uint64_t retry_head, retry_tail;
	uint64_t done[DONE_RING];
	uint64_t done_tail;

	struct histogram histogram;
	struct histogram second;
	struct load_totals totals;
	struct load_totals tick_base;   /* totals at the start of this second */
	struct load_second *series;
	uint32_t series_count;

	uint64_t start_ns;
	uint64_t now_ns;
	uint64_t now_us;             /* realtime, for request timestamps */
	uint64_t next_tick_ns;
	uint64_t next_sweep_ns;
	uint64_t load_end_ns;        /* stop making new requests (0: count only) */
	double next_intended_ns;     /* open loop schedule */
	bool loading;                /* making new workload requests */
};

static void clock_update(struct load_driver *driver)
{
	driver->now_ns = ledger_clock_ns(CLOCK_MONOTONIC);
	driver->now_us = ledger_clock_ns(CLOCK_REALTIME) / 1000u;
}

static uint64_t power_of_two_at_least(uint64_t value)
{
	uint64_t size = 1;
	while (size < value)
		size <<= 1;
	return size;
}

static struct load_slot *slot_of_id(struct load_driver *driver, uint64_t id)
{
	if ((id >> COUNTER_BITS) != driver->nonce)
		return NULL;
	struct load_slot *slot = &driver->slots[(id & COUNTER_MASK) & driver->slot_mask];
	return slot->request.id == id ? slot : NULL;
}

struct load_driver *load_driver_create(const struct load_config *config,
				       const struct load_accounts *accounts,
				       struct load_workload *workload,
				       struct netio_client *client, int64_t *expected,
				       int *error)
{
	struct load_driver *driver = calloc(1, sizeof(*driver));
	if (driver == NULL) {
		*error = -ENOMEM;
		return NULL;
	}
	driver->config = config;
	driver->accounts = accounts;
	driver->workload = workload;
	driver->client = client;
	driver->expected = expected;
	driver->rng = (config->seed * 0x9e3779b97f4a7c15ull) | 1u;
	driver->inflight_max = config->rate ? config->inflight_max : config->window;
	uint64_t slots = power_of_two_at_least(2u * driver->inflight_max + 2u * RETRY_RING + 4096u);
	driver->slot_mask = slots - 1u;
	driver->staged_max = NETIO_BURST_MAX * config->per_datagram;
	driver->id_log_mask = power_of_two_at_least(4u * slots) - 1u;
	driver->slots = calloc(slots, sizeof(struct load_slot));
	driver->staged = calloc(driver->staged_max, sizeof(struct ledger_request));
	driver->datagrams = calloc(DATAGRAM_LOG, sizeof(struct datagram_entry));
	driver->id_log = calloc(driver->id_log_mask + 1u, sizeof(uint64_t));
	driver->busy = calloc(slots, sizeof(struct busy_entry));
	driver->series = calloc(SERIES_MAX, sizeof(struct load_second));
	if (!driver->slots || !driver->staged || !driver->datagrams || !driver->id_log ||
	    !driver->busy || !driver->series) {
		load_driver_destroy(driver);
		*error = -ENOMEM;
		return NULL;
	}
	uint64_t nonce = 0;
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = ledger_clock_ns(CLOCK_REALTIME);
	/* 23 bits: ids stay below 2^63 and never 0. */
	if (config->id_nonce != 0)
		nonce = config->id_nonce;   /* a sweep: each step its own, never reused */
	driver->nonce = (nonce & ((1ull << 23) - 1u)) | 1u;
	driver->counter_next = 1;
	driver->oldest = 1;
	histogram_reset(&driver->histogram);
	histogram_reset(&driver->second);
	return driver;
}

void load_driver_destroy(struct load_driver *driver)
{
	if (driver == NULL)
		return;
	free(driver->slots);
	free(driver->staged);
	free(driver->datagrams);
	free(driver->id_log);
	free(driver->busy);
	free(driver->series);
	free(driver);
}

/* When a request (re)sent now after `transmissions` timeouts is sent again
 * if still unanswered: the timeout backed off, with jitter drawn per
 * request (the first one too, so a window sent at once does not time out at
 * once). */
static uint64_t timeout_due_ns(struct load_driver *driver, uint32_t transmissions)
{
	uint64_t timeout_us = (uint64_t)driver->config->timeout_ms * 1000u;
	return driver->now_ns +
	       1000u * netio_client_backoff_us(timeout_us, transmissions, 0,
					       load_random(&driver->rng));
}

static void busy_heap_swap(struct busy_entry *heap, uint64_t a, uint64_t b)
{
	struct busy_entry entry = heap[a];
	heap[a] = heap[b];
	heap[b] = entry;
}

static void busy_push(struct load_driver *driver, uint64_t due_ns, uint64_t id)
{
	assert(driver->busy_heap_count <= driver->slot_mask);
	struct busy_entry *heap = driver->busy;
	uint64_t at = driver->busy_heap_count++;
	heap[at] = (struct busy_entry){ .due_ns = due_ns, .id = id };
	while (at > 0 && heap[(at - 1) / 2].due_ns > heap[at].due_ns) {
		busy_heap_swap(heap, at, (at - 1) / 2);
		at = (at - 1) / 2;
	}
}

static struct busy_entry busy_pop(struct load_driver *driver)
{
	assert(driver->busy_heap_count > 0);
	struct busy_entry *heap = driver->busy;
	struct busy_entry top = heap[0];
	heap[0] = heap[--driver->busy_heap_count];
	uint64_t at = 0, count = driver->busy_heap_count;
	/* Bounded: at least doubles each turn. */
	for (;;) {
		uint64_t left = 2 * at + 1, right = left + 1, least = at;
		if (left < count && heap[left].due_ns < heap[least].due_ns)
			least = left;
		if (right < count && heap[right].due_ns < heap[least].due_ns)
			least = right;
		if (least == at)
			break;
		busy_heap_swap(heap, at, least);
		at = least;
	}
	return top;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

/* Remembers which ids datagram `sequence` carried, for an ERROR answer. */
static void log_datagram(struct load_driver *driver, uint64_t sequence,
			 const struct ledger_request *requests, uint32_t count)
{
	struct datagram_entry *entry = &driver->datagrams[sequence % DATAGRAM_LOG];
	entry->sequence = sequence;
	entry->log_start = driver->id_log_next;
	entry->count = count;
	for (uint32_t i = 0; i < count; i++)
		driver->id_log[(driver->id_log_next++) & driver->id_log_mask] = requests[i].id;
}

/* Sends what is staged, in bursts of up to NETIO_BURST_MAX datagrams.
 * Returns 0 (a full socket buffer leaves the rest staged) or -errno. */
static int flush(struct load_driver *driver)
{
	uint32_t per = driver->config->per_datagram;
	uint32_t done = 0;
	while (done < driver->staged_count) {
		uint32_t count = driver->staged_count - done;
		if (count > driver->staged_max)
			count = driver->staged_max;
		uint64_t first_sequence = 0;
		int sent = netio_client_send(driver->client, driver->staged + done, count, per,
					     &first_sequence);
		if (sent < 0 && sent != -EAGAIN && sent != -ECONNREFUSED && sent != -ENOBUFS)
			return sent;
		if (sent < 0)
			sent = 0;
		uint32_t requests_sent = 0;
		for (int d = 0; d < sent; d++) {
			uint32_t first = (uint32_t)d * per;
			uint32_t n = count - first < per ? count - first : per;
			log_datagram(driver, first_sequence + (uint64_t)d, driver->staged + done + first, n);
			requests_sent += n;
		}
		driver->totals.datagrams += (uint64_t)sent;
		done += requests_sent;
		if (requests_sent < count) {
			driver->totals.send_stalls++;
			break;
		}
	}
	memmove(driver->staged, driver->staged + done,
		(size_t)(driver->staged_count - done) * sizeof(struct ledger_request));
	driver->staged_count -= done;
	return 0;
}

/* Queues a request for the next flush; flushes when the stage is full.
 * Returns false when the stage stays full (the socket buffer is full). */
static bool stage(struct load_driver *driver, const struct ledger_request *request)
{
	if (driver->staged_count == driver->staged_max) {
		if (flush(driver) != 0 || driver->staged_count == driver->staged_max)
			return false;
	}
	driver->staged[driver->staged_count++] = *request;
	return true;
}

/* Makes the next workload request (or a deliberate retry). Returns false
 * when nothing could be made now. */
static bool create_one(struct load_driver *driver, uint64_t intended_ns)
{
	const struct load_config *config = driver->config;
	if (driver->loading && config->retry_share > 0 && driver->done_tail > 0 &&
	    (double)(load_random(&driver->rng) >> 11) * (1.0 / 9007199254740992.0) <
		    config->retry_share &&
	    driver->retry_tail - driver->retry_head < RETRY_RING) {
		uint64_t span = driver->done_tail < DONE_RING ? driver->done_tail : DONE_RING;
		uint64_t id = driver->done[(driver->done_tail - 1u - load_random(&driver->rng) % span) %
					   DONE_RING];
		struct load_slot *slot = slot_of_id(driver, id);
		/* Only a request that never had two copies in flight: then any
		 * answer after its final one answers the repeat, not a late copy. */
		if (slot != NULL && slot->state == SLOT_DONE && !slot->retry_pending &&
		    slot->transmissions == 0 && stage(driver, &slot->request)) {
			slot->retry_pending = 1;
			driver->retries[driver->retry_tail++ % RETRY_RING] =
				(struct retry_entry){ .id = id, .sent_ns = driver->now_ns };
			driver->totals.retries_sent++;
		}
	}
	uint64_t counter = driver->counter_next;
	struct load_slot *slot = &driver->slots[counter & driver->slot_mask];
	if ((slot->state != SLOT_FREE && slot->state != SLOT_DONE) || slot->retry_pending)
		return false;
	if (driver->staged_count == driver->staged_max && flush(driver) != 0)
		return false;
	if (driver->staged_count == driver->staged_max)
		return false;
	struct ledger_request request;
	struct load_meta meta;
	if (!load_workload_next(driver->workload, driver->now_ns, &request, &meta))
		return false;
	request.id = (driver->nonce << COUNTER_BITS) | counter;
	request.timestamp_us = driver->now_us;
	memset(slot, 0, sizeof(*slot));
	slot->request = request;
	slot->intended_ns = intended_ns;
	slot->sent_ns = driver->now_ns;
	slot->due_ns = timeout_due_ns(driver, 0);
	slot->payee = meta.payee;
	slot->hold_amount = meta.hold_amount;
	slot->op = meta.op;
	slot->state = SLOT_INFLIGHT;
	driver->counter_next++;
	driver->inflight++;
	driver->totals.created++;
	driver->totals.sent++;
	driver->totals.ops[meta.op]++;
	bool staged = stage(driver, &request);
	assert(staged);
	(void)staged;
	return true;
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                   */
/* ------------------------------------------------------------------------ */

/* Adds an approved request's movements to expected[]. `remember`: offer it
 * to the workload for a later refund / capture / void. */
static void tally(struct load_driver *driver, const struct load_slot *slot, bool remember)
{
	const struct ledger_request *request = &slot->request;
	int64_t *expected = driver->expected;
	uint32_t account = (uint32_t)(request->account_id - driver->accounts->base);
	int64_t amount = (int64_t)request->amount;
	struct load_meta meta = { .op = slot->op, .payee = slot->payee };
	switch (slot->op) {
	case LOAD_OP_COFFEE:
	case LOAD_OP_BILLS:
	case LOAD_OP_NEWS:
		expected[account] -= amount;
		expected[slot->payee] += amount;
		driver->totals.approved_cents += request->amount;
		if (remember)
			load_workload_approved(driver->workload, request, &meta, request->amount,
					       driver->now_ns);
		break;
	case LOAD_OP_HOLD:
		expected[account] -= amount;   /* available = posted - held */
		if (remember)
			load_workload_approved(driver->workload, request, &meta, request->amount,
					       driver->now_ns);
		break;
	case LOAD_OP_CAPTURE:
		/* The hold is released and the captured part paid. */
		expected[account] += (int64_t)slot->hold_amount - amount;
		expected[slot->payee] += amount;
		driver->totals.approved_cents += request->amount;
		if (remember)
			load_workload_approved(driver->workload, request, &meta, request->amount,
					       driver->now_ns);
		break;
	case LOAD_OP_VOID:
		expected[account] += (int64_t)slot->hold_amount;
		break;
	case LOAD_OP_REFUND:
		expected[account] -= amount;
		expected[slot->payee] += amount;
		break;
	default:
		assert(!"unknown op");
	}
}

static void finish(struct load_driver *driver, struct load_slot *slot, uint16_t code)
{
	uint64_t latency = driver->now_ns - slot->intended_ns;
	histogram_record(&driver->histogram, latency);
	histogram_record(&driver->second, latency);
	uint32_t index = code < LEDGER_RESULT_CODE_COUNT ? code : LOAD_CODE_NO_ANSWER;
	driver->totals.codes[index]++;
	driver->totals.completed++;
	if (driver->loading)
		driver->totals.completed_loading++;
	if (code == LEDGER_OK)
		driver->totals.ops_approved[slot->op]++;
	slot->code = code;
	slot->state = SLOT_DONE;
	assert(driver->inflight > 0);
	driver->inflight--;
	if (code != NETIO_CODE_NO_ANSWER)
		driver->done[driver->done_tail++ % DONE_RING] = slot->request.id;
}

/* An answer to a deliberate repeat of an answered request. */
static void retry_answered(struct load_driver *driver, struct load_slot *slot,
			   const struct ledger_result *result)
{
	slot->retry_pending = 0;
	if (result->code == LEDGER_BUSY) {
		driver->totals.retries_unanswered++;
		return;
	}
	if (result->flags & LEDGER_RESULT_DUPLICATE)
		driver->totals.retries_duplicate++;
	else if (result->code == LEDGER_OK) {
		/* Applied twice: exactly-once is broken (or the id left the
		 * window). Tally it so that the balances still say what happened. */
		driver->totals.retries_reapplied++;
		tally(driver, slot, false);
	}
	if (result->code != slot->code)
		driver->totals.retries_mismatch++;
}

static void absorb(struct load_driver *driver, const struct ledger_result *result)
{
	struct load_slot *slot = slot_of_id(driver, result->id);
	if (slot == NULL) {
		driver->totals.late_answers++;
		return;
	}
	if (slot->state == SLOT_DONE) {
		if (slot->retry_pending)
			retry_answered(driver, slot, result);
		else
			driver->totals.late_answers++;
		return;
	}
	if (slot->state == SLOT_BUSY && result->code == LEDGER_BUSY) {
		driver->totals.late_answers++;   /* already waiting to be resent */
		return;
	}
	if (result->code == LEDGER_BUSY) {
		driver->totals.busy++;
		slot->state = SLOT_BUSY;
		slot->sent_ns = driver->now_ns;
		if (slot->busy_count < UINT8_MAX)
			slot->busy_count++;
		/* Honour the switch's hint (plus jitter): a resend at once would
		 * only add to the overload that made it answer BUSY. */
		slot->due_ns = driver->now_ns +
			       1000u * netio_client_busy_wait_us(result->retry_after_us,
								 slot->busy_count,
								 load_random(&driver->rng));
		busy_push(driver, slot->due_ns, result->id);
		return;
	}
	if (result->code == LEDGER_OK) {
		/* A DUPLICATE answers a retransmission whose first copy was
		 * applied but whose answer was lost: the money moved once. */
		if (!(result->flags & LEDGER_RESULT_DUPLICATE) || slot->transmissions > 0)
			tally(driver, slot, true);
		else
			driver->totals.unexpected_duplicates++;
	}
	finish(driver, slot, result->code);
}

/* A whole datagram refused: every unanswered request of it gets the code
 * (BUSY: resent later). */
static void absorb_error(struct load_driver *driver, uint64_t sequence,
			 const struct ledger_result *error)
{
	driver->totals.error_datagrams++;
	const struct datagram_entry *entry = &driver->datagrams[sequence % DATAGRAM_LOG];
	if (entry->sequence != sequence || driver->id_log_next - entry->log_start > driver->id_log_mask)
		return;   /* forgotten: the timeout will resend them */
	for (uint32_t i = 0; i < entry->count; i++) {
		struct ledger_result result = *error;
		result.id = driver->id_log[(entry->log_start + i) & driver->id_log_mask];
		struct load_slot *slot = slot_of_id(driver, result.id);
		if (slot != NULL && slot->state == SLOT_INFLIGHT)
			absorb(driver, &result);
	}
}

/* Receives what is there (waiting up to timeout_ns when nothing is: ppoll,
 * for a finer wait than netio_client_poll's milliseconds). */
static int receive(struct load_driver *driver, uint64_t timeout_ns)
{
	struct netio_reply replies[NETIO_BURST_MAX];
	if (timeout_ns > 0) {
		struct pollfd wait = { .fd = netio_client_fd(driver->client), .events = POLLIN };
		struct timespec timeout = { .tv_sec = (time_t)(timeout_ns / 1000000000u),
					    .tv_nsec = (long)(timeout_ns % 1000000000u) };
		(void)ppoll(&wait, 1, &timeout, NULL);
	}
	for (int round = 0; round < 64; round++) {
		int got = netio_client_poll(driver->client, replies, NETIO_BURST_MAX, 0);
		if (got == -ECONNREFUSED || got == -EAGAIN || got == -EINTR)
			return 0;
		if (got < 0)
			return got;
		if (got == 0)
			return 0;
		clock_update(driver);
		for (int r = 0; r < got; r++) {
			if (replies[r].type == NETIO_TYPE_ERROR) {
				absorb_error(driver, replies[r].sequence, &replies[r].results[0]);
				continue;
			}
			for (uint32_t i = 0; i < replies[r].count; i++)
				absorb(driver, &replies[r].results[i]);
		}
		if (got < (int)NETIO_BURST_MAX)
			return 0;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Resends: BUSY, timeouts, deliberate retries that got no answer            */
/* ------------------------------------------------------------------------ */

static void resend_busy(struct load_driver *driver)
{
	/* Bounded by the heap's entries: each turn pops one or returns. */
	while (driver->busy_heap_count > 0 && driver->busy[0].due_ns <= driver->now_ns) {
		struct busy_entry entry = busy_pop(driver);
		struct load_slot *slot = slot_of_id(driver, entry.id);
		if (slot == NULL || slot->state != SLOT_BUSY)
			continue;
		if (!stage(driver, &slot->request)) {
			busy_push(driver, entry.due_ns, entry.id);   /* the socket is full: later */
			return;
		}
		slot->state = SLOT_INFLIGHT;
		slot->sent_ns = driver->now_ns;
		slot->due_ns = timeout_due_ns(driver, slot->transmissions);
		driver->totals.busy_retries++;
	}
}

static void sweep_timeouts(struct load_driver *driver)
{
	const struct load_config *config = driver->config;
	uint64_t timeout_ns = (uint64_t)config->timeout_ms * 1000000u;
	while (driver->oldest < driver->counter_next) {
		const struct load_slot *slot = &driver->slots[driver->oldest & driver->slot_mask];
		/* A slot holding a later counter means this one was answered. */
		bool answered = (slot->request.id & COUNTER_MASK) != driver->oldest ||
				slot->state == SLOT_DONE || slot->state == SLOT_FREE;
		if (!answered)
			break;
		driver->oldest++;
	}
	for (uint64_t counter = driver->oldest; counter < driver->counter_next; counter++) {
		struct load_slot *slot = &driver->slots[counter & driver->slot_mask];
		if ((slot->request.id & COUNTER_MASK) != counter)
			continue;
		if (slot->intended_ns + timeout_ns > driver->now_ns)
			break;   /* younger requests cannot have timed out either */
		/* due_ns backs off with each retransmission, jittered per
		 * request: an overloaded switch is not made busier by a storm
		 * of copies, and a stall does not come back as one burst. */
		if (slot->state != SLOT_INFLIGHT || driver->now_ns < slot->due_ns)
			continue;
		if (slot->transmissions >= config->retransmits_max) {
			finish(driver, slot, NETIO_CODE_NO_ANSWER);
			continue;
		}
		if (!stage(driver, &slot->request))
			break;
		slot->transmissions++;
		slot->sent_ns = driver->now_ns;
		slot->due_ns = timeout_due_ns(driver, slot->transmissions);
		driver->totals.retransmits++;
	}
	while (driver->retry_head != driver->retry_tail) {
		const struct retry_entry *entry = &driver->retries[driver->retry_head % RETRY_RING];
		struct load_slot *slot = slot_of_id(driver, entry->id);
		if (slot == NULL || !slot->retry_pending) {
			driver->retry_head++;   /* answered: the end of a run need not wait */
			continue;
		}
		if (driver->now_ns - entry->sent_ns < timeout_ns)
			break;
		if (slot != NULL && slot->retry_pending) {
			slot->retry_pending = 0;
			driver->totals.retries_unanswered++;
		}
		driver->retry_head++;
	}
}

/* ------------------------------------------------------------------------ */
/* The run                                                                   */
/* ------------------------------------------------------------------------ */

static void tick(struct load_driver *driver)
{
	const struct load_totals *now = &driver->totals, *base = &driver->tick_base;
	uint64_t approved = now->codes[LEDGER_OK] - base->codes[LEDGER_OK];
	uint64_t completed = now->completed - base->completed;
	uint64_t busy_codes = now->codes[LEDGER_BUSY] - base->codes[LEDGER_BUSY];
	uint64_t missing = now->codes[LOAD_CODE_NO_ANSWER] - base->codes[LOAD_CODE_NO_ANSWER];
	double t_s = (double)(driver->next_tick_ns - driver->start_ns) / 1e9;
	double previous_s = driver->series_count ? driver->series[driver->series_count - 1].t_s : 0;
	struct load_second second = {
		.t_s = t_s,
		.span_s = t_s - previous_s > 0 ? t_s - previous_s : 1.0,
		.sent = now->sent - base->sent,
		.completed = completed,
		.approved = approved,
		.declined = completed - approved - busy_codes - missing,
		.busy = now->busy - base->busy,
		.busy_retries = now->busy_retries - base->busy_retries,
		.retransmits = now->retransmits - base->retransmits,
		.p50_ns = histogram_percentile(&driver->second, 50),
		.p99_ns = histogram_percentile(&driver->second, 99),
		.p999_ns = histogram_percentile(&driver->second, 99.9),
		.max_ns = driver->second.max_ns,
	};
	if (driver->series_count < SERIES_MAX)
		driver->series[driver->series_count++] = second;
	if (!driver->config->quiet)
		fprintf(stderr,
			"t=%.*fs rate=%.0fk/s sent=%.0fk/s approved=%llu declined=%llu busy=%llu "
			"retransmits=%llu inflight=%llu p50=%.2fms p99=%.2fms\n",
			second.span_s < 0.999 ? 1 : 0, second.t_s,
			(double)completed / 1e3 / second.span_s, (double)second.sent / 1e3 / second.span_s,
			(unsigned long long)approved, (unsigned long long)second.declined,
			(unsigned long long)second.busy, (unsigned long long)second.retransmits,
			(unsigned long long)driver->inflight, (double)second.p50_ns / 1e6,
			(double)second.p99_ns / 1e6);
	driver->tick_base = driver->totals;
	histogram_reset(&driver->second);
	driver->next_tick_ns += 1000000000u;
}

/* The open-loop rate at this moment (requests/s), shaped by the profile. */
static double rate_now(const struct load_driver *driver)
{
	const struct load_config *config = driver->config;
	double rate = (double)config->rate;
	if (config->profile == LOAD_PROFILE_MORNING && config->duration_s > 0) {
		/* A morning rush: quiet, a peak 40% into the run, easing off. */
		double x = (driver->next_intended_ns - (double)driver->start_ns) / 1e9 /
			   config->duration_s;
		double bell = (x - 0.4) / 0.18;
		rate *= 0.3 + 0.7 * exp(-bell * bell);
	}
	return rate;
}

static bool load_budget_left(const struct load_driver *driver)
{
	const struct load_config *config = driver->config;
	if (config->count && driver->totals.created >= config->count)
		return false;
	if (driver->load_end_ns && driver->now_ns >= driver->load_end_ns)
		return false;
	return true;
}

/* Makes the requests that are due. Returns how many were made. */
static uint64_t create_due(struct load_driver *driver)
{
	const struct load_config *config = driver->config;
	uint64_t made = 0;
	if (config->rate == 0 || !driver->loading) {
		/* Closed loop (and the settling phase): fill the window in whole
		 * datagrams when the window allows. */
		uint64_t unit = config->per_datagram <= driver->inflight_max ? config->per_datagram : 1;
		while (driver->inflight + unit <= driver->inflight_max && made < driver->staged_max) {
			uint64_t i = 0;
			for (; i < unit; i++)
				if ((driver->loading && !load_budget_left(driver)) ||
				    !create_one(driver, driver->now_ns))
					break;
			made += i;
			if (i < unit)
				break;
		}
		return made;
	}
	while (driver->next_intended_ns <= (double)driver->now_ns && made < driver->staged_max &&
	       load_budget_left(driver)) {
		if (driver->inflight >= driver->inflight_max) {
			driver->totals.inflight_full++;
			break;
		}
		if (!create_one(driver, (uint64_t)driver->next_intended_ns))
			break;
		driver->next_intended_ns += 1e9 / rate_now(driver);
		made++;
	}
	return made;
}

/* How long the loop may sleep waiting for answers (ns). Open loop: until
 * the next datagram is due — per_datagram requests, or 200 us at most (a
 * gateway's flush interval; the wait is inside the measured latency, which
 * counts from each request's scheduled time). Never a busy spin: on two
 * cores the generator must not steal the switch's CPU. */
static uint64_t wait_ns(const struct load_driver *driver, uint64_t made)
{
	if (made > 0 || driver->staged_count > 0)
		return 0;
	uint64_t wait = 1000000u;
	if (driver->busy_heap_count > 0) {
		uint64_t due = driver->busy[0].due_ns;
		if (due <= driver->now_ns)
			return 0;
		if (due - driver->now_ns < wait)
			wait = due - driver->now_ns;
	}
	if (driver->config->rate && driver->loading) {
		double batch_ns = (double)(driver->config->per_datagram - 1u) * 1e9 /
				  (double)driver->config->rate;
		double due = driver->next_intended_ns + (batch_ns < 200e3 ? batch_ns : 200e3) -
			     (double)driver->now_ns;
		if (due <= 0)
			return 0;
		if (due < (double)wait)
			wait = (uint64_t)due;
	}
	return wait;
}

static int run_loop(struct load_driver *driver)
{
	uint64_t drain_limit_ns = DRAIN_NS;
	uint64_t drain_start_ns = 0;
	for (;;) {
		clock_update(driver);
		while (driver->now_ns >= driver->next_tick_ns)
			tick(driver);
		if (driver->loading && !load_budget_left(driver)) {
			driver->loading = false;
			driver->workload->settling = true;
			driver->totals.load_s = (double)(driver->now_ns - driver->start_ns) / 1e9;
			drain_start_ns = driver->now_ns;
		}
		uint64_t made = create_due(driver);
		resend_busy(driver);
		if (driver->now_ns >= driver->next_sweep_ns) {
			sweep_timeouts(driver);
			driver->next_sweep_ns = driver->now_ns + SWEEP_NS;
		}
		int error = flush(driver);
		if (error != 0)
			return error;
		if (!driver->loading && driver->inflight == 0 && driver->staged_count == 0 &&
		    made == 0 && driver->retry_head == driver->retry_tail)
			return 0;
		if (!driver->loading && driver->now_ns - drain_start_ns > drain_limit_ns)
			return -ETIMEDOUT;
		error = receive(driver, wait_ns(driver, made));
		if (error != 0)
			return error;
	}
}

int load_driver_run(struct load_driver *driver)
{
	const struct load_config *config = driver->config;
	struct rusage usage_start, usage_end;
	getrusage(RUSAGE_THREAD, &usage_start);
	clock_update(driver);
	driver->start_ns = driver->now_ns;
	driver->next_tick_ns = driver->start_ns + 1000000000u;
	driver->next_sweep_ns = driver->start_ns + SWEEP_NS;
	driver->next_intended_ns = (double)driver->start_ns;
	driver->load_end_ns = config->duration_s > 0
				      ? driver->start_ns + (uint64_t)(config->duration_s * 1e9)
				      : 0;
	driver->loading = true;
	int status = run_loop(driver);
	clock_update(driver);
	if (driver->now_ns > driver->next_tick_ns - 1000000000u + 50000000u) {
		driver->next_tick_ns = driver->now_ns;
		tick(driver);   /* the last, partial second */
	}
	/* Whatever is still unanswered after the drain limit has no answer. */
	for (uint64_t counter = driver->oldest; counter < driver->counter_next; counter++) {
		struct load_slot *slot = &driver->slots[counter & driver->slot_mask];
		if ((slot->request.id & COUNTER_MASK) != counter)
			continue;
		if (slot->state == SLOT_INFLIGHT || slot->state == SLOT_BUSY)
			finish(driver, slot, NETIO_CODE_NO_ANSWER);
	}
	getrusage(RUSAGE_THREAD, &usage_end);
	driver->totals.elapsed_s = (double)(driver->now_ns - driver->start_ns) / 1e9;
	if (driver->totals.load_s == 0)
		driver->totals.load_s = driver->totals.elapsed_s;
	driver->totals.cpu_s =
		(double)(usage_end.ru_utime.tv_sec - usage_start.ru_utime.tv_sec) +
		(double)(usage_end.ru_stime.tv_sec - usage_start.ru_stime.tv_sec) +
		(double)(usage_end.ru_utime.tv_usec - usage_start.ru_utime.tv_usec) / 1e6 +
		(double)(usage_end.ru_stime.tv_usec - usage_start.ru_stime.tv_usec) / 1e6;
	if (status == 0 && driver->totals.codes[LOAD_CODE_NO_ANSWER] > 0)
		status = -ETIMEDOUT;
	return status;
}

const struct load_totals *load_driver_totals(const struct load_driver *driver)
{
	return &driver->totals;
}

const struct histogram *load_driver_histogram(const struct load_driver *driver)
{
	return &driver->histogram;
}

const struct load_second *load_driver_series(const struct load_driver *driver, uint32_t *count)
{
	*count = driver->series_count;
	return driver->series;
}
