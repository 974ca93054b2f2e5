/*
 * Randomized cross-shard model test (issue 14): long random sequences of
 * every client kind over a simulated 4-shard switch (cross_sim.c: four
 * ledgers, the engine's id claims, CREDIT / RETURN / probe queues), checked
 * after every batch against one sequential reference model of the whole
 * switch (cross_model.c, independent of the ledger): every reply's code,
 * balance, amount and DUPLICATE / JOURNAL flags, every account, the pending
 * holds per shard, each shard's invariants and the double entry over all
 * shards. At the end of each seed the shards' decisions are written to a
 * journal (4-shard data dir) and `journal_audit` must pass on it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cross_model.h"
#include "cross_sim.h"
#include "journal.h"
#include "ledger_test_util.h"

enum {
	SHARDS = 4,
	ACCOUNT_IDS = 64,      /* 1..60 may be opened; 0 and 61..63 never exist */
	OPENABLE = 60,
	ACCOUNTS_MAX = 16,     /* per shard: ~15 ids each, so OPEN meets CAPACITY_FULL */
	HOLDS_MAX = 12,        /* per shard */
	OPS = 40000,
	RECENT = 128,
	BATCH_MAX = 8,
	TRANSFER_IDS = OPS + 1024,
	TRANSFERS_MAX = 1 << 16, /* > every decision of a seed: nothing is evicted */
};
/* 1: also send, in one batch, a request the ledger does not remember (in
 * the future, too old) and then the same id, valid, for the same shard.
 * engine/shard.c settle_claim() once released the id's claim although the
 * shard remembered the id, and another shard later decided the same id again
 * (the model answers ID_REUSED). Fixed; the scenario stays on. */
#ifndef EXPOSE_SETTLE_CLAIM_BUG
#define EXPOSE_SETTLE_CLAIM_BUG 1
#endif
#define WINDOW_US (UINT64_C(600) * LT_SECOND)
#define FUTURE_US (UINT64_C(5) * LT_SECOND)
#define HOLD_US (UINT64_C(900) * LT_SECOND)

/* ---- the journal of each shard's decisions ------------------------------- */
struct decision {
	uint64_t now_us;
	struct ledger_request request;
	struct ledger_result result;
};

struct journal_log {
	struct decision *decisions[SHARDS];
	uint64_t count[SHARDS], capacity[SHARDS];
};

static void log_decision(void *context, uint32_t shard, uint64_t now_us,
			 const struct ledger_request *request, const struct ledger_result *result)
{
	struct journal_log *log = context;
	if (log->count[shard] == log->capacity[shard]) {
		log->capacity[shard] = log->capacity[shard] ? log->capacity[shard] * 2 : 4096;
		log->decisions[shard] = realloc(log->decisions[shard],
						log->capacity[shard] * sizeof(struct decision));
		cr_assert_not_null(log->decisions[shard]);
	}
	log->decisions[shard][log->count[shard]++] = (struct decision){ now_us, *request, *result };
}

static void write_and_audit(const struct journal_log *log, const struct ledger_config *config)
{
	char dir[64] = "/tmp/cross-random-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	struct journal_error error = { 0 };
	cr_assert_eq(journal_format_dir(dir, SHARDS, config, &error), 0, "%s", error.text);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	options.preallocate_bytes = 0;
	for (uint32_t shard = 0; shard < SHARDS; shard++) {
		struct journal_writer *writer = journal_writer_open(dir, shard, &options, &error);
		cr_assert_not_null(writer, "%s", error.text);
		for (uint64_t i = 0; i < log->count[shard]; i++) {
			const struct decision *d = &log->decisions[shard][i];
			int appended;
			while ((appended = journal_append(writer, d->now_us, &d->request, &d->result)) == -ENOBUFS) {
				if (journal_commit(writer) == -EBUSY)
					cr_assert_geq(journal_poll(writer, true), 0);
			}
			cr_assert_eq(appended, 0, "append: %d", appended);
		}
		cr_assert_eq(journal_writer_close(writer), 0);
	}
	struct journal_audit_options audit_options = { .check_every_records = 2000 };
	struct journal_audit_report report;
	int status = journal_audit(dir, &audit_options, &report);
	cr_assert_eq(status, 0, "audit of the 4-shard journal: %s", report.first_violation);
	uint64_t records = 0;
	for (uint32_t shard = 0; shard < SHARDS; shard++)
		records += log->count[shard];
	cr_assert_eq(report.records, records);
	cr_assert_eq(report.shards, SHARDS);
	char command[128];
	snprintf(command, sizeof(command), "rm -rf %s", dir);
	cr_assert_eq(system(command), 0);
}

/* ---- the generator -------------------------------------------------------- */
static uint64_t rng, now, next_id;
static struct ledger_request recent[RECENT];
static uint64_t recent_count, hold_ids[RECENT], hold_accounts[RECENT], hold_seen;
static struct cross_model *model;
static struct ledger_request twin;  /* EXPOSE_SETTLE_CLAIM_BUG: the valid twin of a spoiled request */
static bool twin_pending;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t random_amount(void)
{
	static const uint64_t big[] = { (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1, UINT64_MAX,
					(uint64_t)INT64_MAX - 1, (uint64_t)INT64_MAX / 2 + 1 };
	uint64_t r = next() % 100;
	if (r < 2) return 0;
	if (r < 5) return big[next() % 5];
	if (r < 12) return next() % 100000;
	return 1 + next() % 400;
}

static uint64_t random_account(void)
{
	/* Mostly opened ids; sometimes 0 or ids that never exist. */
	uint64_t r = next() % 50;
	if (r == 0) return 0;
	if (r == 1) return OPENABLE + 1 + next() % (ACCOUNT_IDS - OPENABLE - 1);
	return 1 + next() % 44;
}

static uint64_t random_reference(void)
{
	uint64_t span = next_id - 1 < 300 ? next_id - 1 : 300;
	return next_id - 1 - next() % span;
}

/* An account of another shard than `account` (the same id from elsewhere). */
static uint64_t elsewhere(uint64_t account)
{
	uint32_t shard = ledger_shard_of(account, SHARDS);
	for (int tries = 0; tries < 64; tries++) {
		uint64_t other = 1 + next() % 44;
		if (ledger_shard_of(other, SHARDS) != shard)
			return other;
	}
	return account;
}

static void shape_refund(struct ledger_request *r)
{
	r->reference_id = random_reference();
	struct ledger_request original;
	uint8_t code;
	if (cross_model_transfer(model, r->reference_id, &original, &code) && next() % 4 != 0) {
		r->account_id = original.other_id;
		r->other_id = original.account_id;
		r->amount = next() % 3 == 0 ? original.amount : 1 + next() % 200;
		r->currency = original.currency ? original.currency : LT_EUR;
	}
}

static void shape_hold_use(struct ledger_request *r)
{
	if (hold_seen > 0 && next() % 8 != 0) {
		uint64_t pick = next() % (hold_seen < RECENT ? hold_seen : RECENT);
		r->reference_id = hold_ids[pick];
		r->account_id = next() % 10 == 0 ? random_account() : hold_accounts[pick];
	} else {
		r->reference_id = random_reference();
	}
	r->amount = next() % 2 ? 0 : 1 + next() % 300;
	r->other_id = 0;
}

static void shape_admin(struct ledger_request *r, uint64_t pick)
{
	if (pick < 70) {
		r->kind = LEDGER_KIND_OPEN;
		r->account_id = next() % (OPENABLE + 1);
		r->flags = (uint8_t)(next() % 10 == 0 ? LEDGER_ACCOUNT_FUNDING : next() % 5 == 0 ? LEDGER_ACCOUNT_MERCHANT : 0);
		r->amount = next() % 3 == 0 ? next() % 500 : 0;
		r->limit_payment = next() % 4 == 0 ? 1 + next() % 300 : 0;
		r->limit_daily = next() % 4 == 0 ? 1 + next() % 2000 : 0;
		r->currency = next() % 8 == 0 ? LT_USD : LT_EUR;
	} else if (pick < 75) {
		r->kind = LEDGER_KIND_FREEZE; /* payee-side refusals: frozen merchants */
		r->flags = (uint8_t)(next() % 20 == 0 ? 2 : next() % 4 == 0);
	} else if (pick < 76) {
		r->kind = LEDGER_KIND_CLOSE;
		if (next() % 2)
			r->account_id = OPENABLE - next() % 16; /* mostly accounts opened later */
	} else if (pick < 80) {
		r->kind = LEDGER_KIND_SET_LIMITS;
		r->amount = next() % 2 ? next() % 100 : 0;
		for (uint64_t id = 1 + next() % OPENABLE, tries = 0; tries < OPENABLE; tries++, id = id % OPENABLE + 1) {
			const struct cross_model_account *a = cross_model_account(model, id);
			if (a && !(a->flags & LEDGER_ACCOUNT_FUNDING) && a->balance - (int64_t)a->held < 0) {
				r->account_id = id; /* in its overdraft: a lower limit is INVALID_LIMITS */
				break;
			}
		}
		r->limit_payment = next() % 3 == 0 ? 1 + next() % 300 : 0;
		r->limit_daily = next() % 3 == 0 ? 1 + next() % 3000 : 0;
	} else if (pick < 83) {
		r->kind = LEDGER_KIND_BALANCE;
	} else {
		r->kind = LEDGER_KIND_LOOKUP;
		r->reference_id = random_reference();
		struct ledger_request original;
		uint8_t code;
		if (next() % 2 && cross_model_transfer(model, r->reference_id, &original, &code))
			r->account_id = original.account_id;
	}
}

static void spoil(struct ledger_request *r)
{
	switch (next() % 7) {
	case 0: r->flags = (uint8_t)(1 + next() % 4); break;
	case 1: r->reserved = 1; break;
	case 2: r->currency = 0; break;
	case 3: r->currency = LT_USD; break;
	case 4: r->timestamp_us = now - WINDOW_US - 1 - next() % 10; break;
	case 5: r->timestamp_us = now + FUTURE_US + 1 + next() % 3; break;
	default: r->id = 0; break;
	}
	if (EXPOSE_SETTLE_CLAIM_BUG && r->timestamp_us != now && r->id != 0 && !r->reserved) {
		twin = *r;
		twin.timestamp_us = now;
		twin_pending = true;
	}
}

static struct ledger_request generate(const struct ledger_request *batch, uint32_t count)
{
	struct ledger_request r;
	uint64_t pick = next() % 100;
	if (twin_pending) {
		/* Right behind its spoiled twin, same shard; and the same id
		 * from another shard later (a retry of the recent list). */
		twin_pending = false;
		r = twin;
		r.account_id = elsewhere(r.account_id);
		r.timestamp_us = now + 1;
		recent[recent_count++ % RECENT] = r;
		return twin;
	}
	if (pick < 6 && recent_count > 0) {
		/* A retry of a random earlier request: same bytes, or altered
		 * bytes (ID_REUSED), or the same id from another shard's account. */
		r = recent[next() % (recent_count < RECENT ? recent_count : RECENT)];
		uint64_t how = next() % 6;
		if (how == 0)
			r.amount ^= 1;
		else if (how == 1)
			r.account_id = elsewhere(r.account_id);
		return r;
	}
	if (pick < 8 && count > 0) {
		/* The id of a request of this very batch, other fields, from an
		 * account of another shard. (From the same shard, after a request
		 * the ledger did not remember, this meets the engine bug
		 * EXPOSE_SETTLE_CLAIM_BUG describes.) */
		r = batch[next() % count];
		if (EXPOSE_SETTLE_CLAIM_BUG && next() % 2)
			r.timestamp_us = now;
		else
			r.account_id = elsewhere(r.account_id);
		r.amount = 1 + next() % 50;
		return r;
	}
	memset(&r, 0, sizeof(r));
	r.id = next_id++;
	r.timestamp_us = now - (next() % 4 == 0 ? next() % 1000 : 0);
	r.currency = LT_EUR;
	r.account_id = random_account();
	r.other_id = random_account();
	r.amount = random_amount();
	if (pick < 30) {
		r.kind = LEDGER_KIND_PAY;
	} else if (pick < 38) {
		r.kind = LEDGER_KIND_DEPOSIT;
		if (next() % 5 != 0)
			r.account_id = 1 + next() % 4;
	} else if (pick < 47) {
		r.kind = LEDGER_KIND_HOLD;
		r.hold_timeout_us = next() % 6 == 0 ? 0 : 1 + next() % 3000;
		hold_ids[hold_seen % RECENT] = r.id;
		hold_accounts[hold_seen % RECENT] = r.account_id;
		hold_seen++;
	} else if (pick < 55) {
		r.kind = LEDGER_KIND_CAPTURE;
		shape_hold_use(&r);
	} else if (pick < 59) {
		r.kind = LEDGER_KIND_VOID;
		shape_hold_use(&r);
	} else if (pick < 67) {
		r.kind = LEDGER_KIND_REFUND;
		shape_refund(&r);
	} else if (pick < 87) {
		shape_admin(&r, pick);
	} else if (pick < 91) {
		r.kind = (uint8_t)(LEDGER_KIND_OPEN + next() % 10);
		spoil(&r);
	} else {
		r.kind = LEDGER_KIND_PAY;
		r.amount = 1 + next() % 50;
	}
	recent[recent_count++ % RECENT] = r;
	return r;
}

static uint32_t seed_accounts(struct ledger_request *batch, uint64_t first, uint64_t last)
{
	uint32_t count = 0;
	for (uint64_t id = first; id <= last; id++) {
		struct ledger_request *r = &batch[count++];
		memset(r, 0, sizeof(*r));
		r->id = next_id++;
		r->timestamp_us = now;
		r->kind = LEDGER_KIND_OPEN;
		r->account_id = id;
		r->currency = id >= 41 ? LT_USD : LT_EUR;
		r->flags = (uint8_t)(id <= 4 ? LEDGER_ACCOUNT_FUNDING : id % 4 == 0 ? LEDGER_ACCOUNT_MERCHANT : 0);
		r->amount = id % 3 == 0 ? 200 : 0;
		r->limit_payment = id % 5 == 0 ? 250 : 0;
		r->limit_daily = id % 7 == 0 ? 1500 : 0;
	}
	return count;
}

static uint32_t seed_deposits(struct ledger_request *batch)
{
	uint32_t count = 0;
	for (uint64_t id = 5; id <= 30; id++) {
		struct ledger_request *r = &batch[count++];
		memset(r, 0, sizeof(*r));
		r->id = next_id++;
		r->timestamp_us = now;
		r->kind = LEDGER_KIND_DEPOSIT;
		r->account_id = 1 + id % 4;
		r->other_id = id;
		r->amount = 5000;
		r->currency = LT_EUR;
	}
	return count;
}

/* ---- the checks ------------------------------------------------------------ */
static void compare_replies(uint64_t seed, uint64_t ops, const struct ledger_request *batch,
			    const struct ledger_result *got, const struct ledger_result *want,
			    uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		const struct ledger_request *r = &batch[i];
		const struct ledger_result *g = &got[i], *w = &want[i];
#define WHAT "seed %lu op %lu (batch slot %u) kind %u id %lu %lu -> %lu amount %lu:" \
	" switch %s balance %ld amount %lu flags %#x, model %s balance %ld amount %lu flags %#x"
#define ARGS (unsigned long)seed, (unsigned long)(ops + i), i, r->kind, (unsigned long)r->id,    \
	     (unsigned long)r->account_id, (unsigned long)r->other_id, (unsigned long)r->amount, \
	     ledger_result_name(g->code), (long)g->balance, (unsigned long)g->amount, g->flags,  \
	     ledger_result_name(w->code), (long)w->balance, (unsigned long)w->amount, w->flags
		unsigned mask = LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_JOURNAL;
		cr_assert_eq(g->id, r->id, WHAT, ARGS);
		cr_assert_eq(g->code, w->code, WHAT, ARGS);
		cr_assert_eq(g->balance, w->balance, WHAT, ARGS);
		cr_assert_eq(g->amount, w->amount, WHAT, ARGS);
		cr_assert_eq(g->flags & mask, w->flags & mask, WHAT, ARGS);
#undef ARGS
#undef WHAT
	}
}

static void compare_state(uint64_t seed, uint64_t ops, const struct cross_sim *sim)
{
	for (uint64_t id = 0; id < ACCOUNT_IDS; id++) {
		const struct ledger_account *real = cross_sim_account(sim, id);
		const struct cross_model_account *want = cross_model_account(model, id);
		cr_assert_eq(real == NULL, want == NULL, "seed %lu op %lu: account %lu existence",
			     (unsigned long)seed, (unsigned long)ops, (unsigned long)id);
		if (real == NULL)
			continue;
		cr_assert_eq(real->balance, want->balance, "seed %lu op %lu: account %lu balance %ld, model %ld",
			     (unsigned long)seed, (unsigned long)ops, (unsigned long)id,
			     (long)real->balance, (long)want->balance);
		cr_assert_eq(real->held, want->held, "seed %lu op %lu: account %lu held",
			     (unsigned long)seed, (unsigned long)ops, (unsigned long)id);
		cr_assert_eq(real->flags, want->flags, "account %lu flags", (unsigned long)id);
		cr_assert_eq(real->limit_overdraft, want->overdraft, "account %lu overdraft", (unsigned long)id);
	}
	for (uint32_t shard = 0; shard < SHARDS; shard++)
		cr_assert_eq(ledger_hold_count(cross_sim_ledger(sim, shard)),
			     cross_model_pending_holds(model, shard), "seed %lu op %lu: holds of shard %u",
			     (unsigned long)seed, (unsigned long)ops, shard);
	char text[256];
	cr_assert_eq(cross_sim_check(sim, text, sizeof(text)), 0, "seed %lu op %lu: %s",
		     (unsigned long)seed, (unsigned long)ops, text);
}

static void run(uint64_t seed)
{
	rng = seed;
	now = LT_T0;
	next_id = 1;
	recent_count = hold_seen = 0;
	struct ledger_config config;
	ledger_config_default(&config);
	config.accounts_max = ACCOUNTS_MAX;
	config.holds_max = HOLDS_MAX;
	config.transfers_max = TRANSFERS_MAX;
	config.dedup_window_us = WINDOW_US;
	config.future_tolerance_us = FUTURE_US;
	config.hold_timeout_us = HOLD_US;
	struct cross_sim *sim = cross_sim_create(&config, SHARDS);
	cr_assert_not_null(sim);
	struct journal_log log = { 0 };
	cross_sim_set_record(sim, log_decision, &log);
	struct cross_model_config model_config = {
		.shard_count = SHARDS, .account_ids = ACCOUNT_IDS, .transfer_ids = TRANSFER_IDS,
		.accounts_max = ACCOUNTS_MAX, .holds_max = HOLDS_MAX, .dedup_window_us = WINDOW_US,
		.future_tolerance_us = FUTURE_US, .hold_timeout_us = HOLD_US,
	};
	model = cross_model_create(&model_config);
	struct ledger_request batch[64];
	struct ledger_result got[64], want[64];
	uint64_t ops = 0, seen[LEDGER_RESULT_CODE_COUNT] = { 0 }, duplicates = 0;
	uint32_t count = seed_accounts(batch, 1, 44);
	uint32_t setup = 2;
	while (ops < OPS) {
		if (count == 0) {
			if (setup == 1) {
				count = seed_deposits(batch);
			} else {
				uint64_t jump = next() % 1000;
				now += jump < 900 ? next() % 20 : jump < 995 ? next() % (10 * LT_SECOND) : LT_DAY / 3;
				count = 1 + (uint32_t)(next() % BATCH_MAX);
				for (uint32_t i = 0; i < count; i++)
					batch[i] = generate(batch, i);
			}
		}
		if (setup > 0)
			setup--;
		cross_sim_batch(sim, now, batch, got, count);
		cross_model_batch(model, now, batch, want, count);
		compare_replies(seed, ops, batch, got, want, count);
		for (uint32_t i = 0; i < count; i++) {
			seen[got[i].code]++;
			duplicates += !!(got[i].flags & LEDGER_RESULT_DUPLICATE);
		}
		ops += count;
		compare_state(seed, ops, sim);
		count = 0;
	}
	const struct cross_sim_stats *s = cross_sim_stats(sim);
	const struct cross_model_stats *m = cross_model_stats(model);
	cr_log_info("seed %lu: credits %lu returns %lu probes %lu claims refused %lu,"
		    " returns refused %lu (model %lu), returns to closed %lu, refunds of payments"
		    " another shard knows %lu, duplicates %lu", (unsigned long)seed,
		    (unsigned long)s->credits, (unsigned long)s->returns, (unsigned long)s->probes,
		    (unsigned long)s->claims_refused, (unsigned long)s->returns_refused,
		    (unsigned long)m->returns_refused, (unsigned long)m->returns_to_closed,
		    (unsigned long)m->refund_not_found_elsewhere, (unsigned long)duplicates);
	for (unsigned code = 0; code <= LEDGER_INVALID_LIMITS; code++)
		cr_log_info("seed %lu %-22s %lu", (unsigned long)seed, ledger_result_name(code),
			    (unsigned long)seen[code]);
	/* The workload must reach the cross-shard paths it is here for. */
	cr_expect_gt(s->credits, 500);
	cr_expect_gt(s->returns, 50);
	cr_expect_gt(s->probes, 20);
	cr_expect_gt(s->claims_refused, 10);
	cr_expect_gt(duplicates, 100);
	for (unsigned code = 0; code <= LEDGER_INVALID_LIMITS; code++)
		cr_expect_gt(seen[code], 0, "seed %lu never produced %s", (unsigned long)seed,
			     ledger_result_name(code));
	write_and_audit(&log, &config);
	for (uint32_t shard = 0; shard < SHARDS; shard++)
		free(log.decisions[shard]);
	cross_model_destroy(model);
	cross_sim_destroy(sim);
}

Test(cross_random, seed_1, .timeout = 120) { run(0x9E3779B97F4A7C15u); }
Test(cross_random, seed_2, .timeout = 120) { run(0xD1B54A32D192ED03u); }
Test(cross_random, seed_3, .timeout = 120) { run(0x8CB92BA72F3D8DD7u); }
Test(cross_random, seed_4, .timeout = 120) { run(12345); }
