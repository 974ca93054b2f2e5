/*
 * fuzz_cross.c — libFuzzer target (issue 14): the input bytes become a
 * sequence of client request batches for a simulated switch of 2..4 shards
 * (tests/ledger/cross_sim.c: the ledgers, the engine's id claims, CREDIT /
 * RETURN / probe queues). After every batch, once every message has been
 * delivered, each shard's ledger_check_invariants() and window check and the
 * double entry over all shards must hold; any ledger assert, ASan or UBSan
 * report is a crash too. Built and run by scripts/fuzz.sh.
 *
 * Input layout (every byte is consumed as it comes; a short input just ends):
 *   [0] shard count 2 + b % 3      [1] window size and hold capacity
 *   then batches: [count] then count requests of 8 bytes each, see decode().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cross_sim.h"

#define T0 (UINT64_C(1700000000) * 1000000)
#define SECOND UINT64_C(1000000)
#define ACCOUNTS 24u        /* ids 1..24 (some never opened), 0 too */
#define RECENT 32u
#define BATCH 16u

struct input {
	const uint8_t *data;
	size_t size, at;
};

static uint8_t byte(struct input *in) { return in->at < in->size ? in->data[in->at++] : 0; }
static bool more(const struct input *in) { return in->at < in->size; }

static uint64_t amount_of(struct input *in, uint8_t selector)
{
	static const uint64_t special[] = { 0, 1, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1,
					    UINT64_MAX, (uint64_t)INT64_MAX - 1,
					    (uint64_t)INT64_MAX / 2 + 1, 1000000 };
	switch (selector % 4) {
	case 0: return special[(selector >> 2) % 8];
	case 1: return 1 + (selector >> 2);
	case 2: return (uint64_t)byte(in) * 100 + (selector >> 2);
	default: {
		uint64_t value = 0;
		for (int i = 0; i < 8; i++)
			value = value << 8 | byte(in);
		return value;
	}
	}
}

struct state {
	uint64_t now, next_id;
	uint64_t recent[RECENT];
	struct ledger_request recent_request[RECENT];
	uint32_t recent_count;
};

static uint64_t recent_id(const struct state *s, uint8_t pick)
{
	return s->recent_count ? s->recent[pick % (s->recent_count < RECENT ? s->recent_count : RECENT)]
			       : 1;
}

/* Eight bytes: kind, account, other, amount selector, id selector,
 * timestamp selector, flags / currency, reference / limits. */
static struct ledger_request decode(struct input *in, struct state *s)
{
	uint8_t kind = byte(in), account = byte(in), other = byte(in), amount = byte(in);
	uint8_t id = byte(in), stamp = byte(in), extra = byte(in), reference = byte(in);
	if ((id & 7) == 0 && s->recent_count > 0) {
		/* A retry: same bytes, or with one field changed. */
		struct ledger_request r = s->recent_request[(id >> 3) % (s->recent_count < RECENT ? s->recent_count : RECENT)];
		if (kind & 0x80)
			r.account_id = account % (ACCOUNTS + 1);
		if (kind & 0x40)
			r.amount ^= 1;
		return r;
	}
	struct ledger_request r;
	memset(&r, 0, sizeof(r));
	r.kind = (uint8_t)(1 + kind % 12);
	r.account_id = account % (ACCOUNTS + 1);
	r.other_id = other % (ACCOUNTS + 1);
	r.amount = amount_of(in, amount);
	r.id = (id & 7) == 1 ? recent_id(s, id >> 3) : (id & 7) == 2 ? 0 : s->next_id++;
	switch (stamp % 8) {
	case 0: r.timestamp_us = s->now - (uint64_t)(stamp >> 3) * 50 * SECOND; break;
	case 1: r.timestamp_us = s->now + (uint64_t)(stamp >> 3) * SECOND; break;
	default: r.timestamp_us = s->now - (stamp >> 3); break;
	}
	r.currency = (extra & 3) == 3 ? 840 : (extra & 3) == 2 && (extra & 4) ? 0 : 978;
	r.flags = (uint8_t)((extra & 0x18) == 0x18 ? (extra >> 5) : 0);
	if ((extra & 0xe0) == 0xe0)
		r.reserved = 1;
	switch (r.kind) {
	case LEDGER_KIND_OPEN:
		r.flags = (uint8_t)((extra >> 3) & 3);
		r.limit_payment = reference & 1 ? (uint64_t)reference * 10 : 0;
		r.limit_daily = reference & 2 ? (uint64_t)reference * 40 : 0;
		break;
	case LEDGER_KIND_SET_LIMITS:
		r.limit_payment = reference & 1 ? (uint64_t)reference * 10 : 0;
		r.limit_daily = reference & 2 ? (uint64_t)reference * 40 : 0;
		break;
	case LEDGER_KIND_FREEZE:
		r.flags = extra & 1;
		break;
	case LEDGER_KIND_HOLD:
		r.hold_timeout_us = (uint64_t)reference * (reference & 1 ? SECOND : 100);
		break;
	case LEDGER_KIND_CAPTURE: case LEDGER_KIND_VOID: case LEDGER_KIND_REFUND: case LEDGER_KIND_LOOKUP:
		r.reference_id = recent_id(s, reference);
		break;
	default:
		break;
	}
	return r;
}

static void check(const struct cross_sim *sim, uint32_t batch)
{
	char text[256];
	if (cross_sim_check(sim, text, sizeof(text)) != 0) {
		fprintf(stderr, "fuzz_cross: batch %u: %s\n", batch, text);
		abort();
	}
	for (uint32_t shard = 0; shard < cross_sim_shard_count(sim); shard++) {
		struct ledger_violation violation;
		if (ledger_check_window(cross_sim_ledger(sim, shard), &violation) != 0) {
			fprintf(stderr, "fuzz_cross: batch %u: shard %u window: %s\n", batch, shard,
				violation.text);
			abort();
		}
	}
}

/* Accounts 1..20 open (1, 2 and 11 funding; 19, 20 in USD; 21..24 never),
 * funded from the funding accounts, so the input starts where money moves. */
static void preamble(struct cross_sim *sim, struct state *s)
{
	struct ledger_request batch[CROSS_SIM_BATCH_MAX];
	struct ledger_result results[CROSS_SIM_BATCH_MAX];
	uint32_t count = 0;
	for (uint64_t id = 1; id <= 20; id++) {
		struct ledger_request *r = &batch[count++];
		memset(r, 0, sizeof(*r));
		*r = (struct ledger_request){ .id = s->next_id++, .timestamp_us = s->now,
			.account_id = id, .kind = LEDGER_KIND_OPEN, .currency = id >= 19 ? 840 : 978,
			.flags = (uint8_t)(id == 1 || id == 2 || id == 11 ? LEDGER_ACCOUNT_FUNDING
					   : id % 4 == 0 ? LEDGER_ACCOUNT_MERCHANT : 0),
			.amount = id % 3 == 0 ? 500 : 0 };
	}
	for (uint64_t id = 3; id <= 18; id++)
		batch[count++] = (struct ledger_request){ .id = s->next_id++, .timestamp_us = s->now,
			.account_id = id % 2 ? 1 : 11, .other_id = id, .amount = 10000,
			.kind = LEDGER_KIND_DEPOSIT, .currency = 978 };
	cross_sim_batch(sim, s->now, batch, results, count);
	check(sim, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	uint32_t shards = 2 + byte(&in) % 3;
	uint8_t shape = byte(&in);
	struct ledger_config config;
	ledger_config_default(&config);
	config.accounts_max = 16;
	config.transfers_max = UINT64_C(64) << (shape % 4);     /* 64..512: evictions happen */
	config.holds_max = 2 + (shape >> 2) % 8;
	config.dedup_window_us = 600 * SECOND;
	config.future_tolerance_us = 5 * SECOND;
	config.hold_timeout_us = 30 * SECOND;
	struct cross_sim *sim = cross_sim_create(&config, shards);
	if (sim == NULL)
		abort();
	struct state s = { .now = T0, .next_id = 1 };
	preamble(sim, &s);
	struct ledger_request batch[BATCH];
	struct ledger_result results[BATCH];
	for (uint32_t number = 1; more(&in) && number < 4096; number++) {
		uint8_t head = byte(&in);
		uint32_t count = 1 + head % BATCH;
		static const uint64_t steps[] = { 0, 1, 1000, SECOND, 10 * SECOND, 400 * SECOND,
						  UINT64_C(86400) * SECOND / 3, UINT64_C(86400) * SECOND };
		s.now += steps[(head >> 4) % 8];
		for (uint32_t i = 0; i < count; i++) {
			batch[i] = decode(&in, &s);
			if (batch[i].id != 0) {
				s.recent[s.recent_count % RECENT] = batch[i].id;
				s.recent_request[s.recent_count % RECENT] = batch[i];
				s.recent_count++;
			}
		}
		cross_sim_batch(sim, s.now, batch, results, count);
		check(sim, number);
	}
	cross_sim_destroy(sim);
	return 0;
}
