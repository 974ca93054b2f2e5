/*
 * cross_model.c — see cross_model.h. Written from ledger/RESULTS.md and
 * ledger/README.md, not from the ledger's code: the switch is one account
 * table and one transfer table; shards only say where a payee is checked,
 * which window a request sees, and when money arrives.
 */
#include "cross_model.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define US_PER_DAY UINT64_C(86400000000)

enum { CM_SHARDS_MAX = 4 };

/* The states of a transfer, as RESULTS.md names them. */
enum cm_state { CM_DONE, CM_PENDING, CM_CAPTURED, CM_VOIDED, CM_EXPIRED, CM_RETURNED, CM_CREDITING };

struct cm_transfer {
	bool remembered;
	uint32_t shard;            /* the shard that decided and remembers it */
	struct ledger_request request;
	uint8_t code, state;
	uint64_t other, amount;    /* CAPTURE: the hold's payee and the captured amount */
	uint16_t currency;         /* CAPTURE: the hold's */
	uint64_t captured;         /* holds */
	uint64_t refunded;         /* payments: refunded so far */
	bool credited;             /* a CREDIT reached the payee's shard (remembered there) */
	uint32_t credit_shard;
	uint8_t credit_code;
};

struct cm_hold {
	bool pending;
	uint64_t id, account, other, amount, expires;
	uint16_t currency;
	uint32_t shard;
};

/* A credit on its way: decided on the payer's shard, checked on the payee's. */
struct cm_credit {
	uint32_t slot;
	uint64_t id, payee, amount;
	uint16_t currency;
	uint8_t refusal;           /* set in round one */
	int64_t reply_balance;     /* the payer's decision, for its reply */
	uint64_t reply_amount;
};

struct cm_probe {
	uint32_t slot;
	uint64_t account, transfer;
	bool lookup;
};

struct cross_model {
	struct cross_model_config config;
	struct cross_model_account *accounts;
	struct cm_transfer *transfers;
	struct cm_hold *holds;
	uint64_t hold_total, hold_capacity;
	uint64_t pending_holds[CM_SHARDS_MAX], account_count[CM_SHARDS_MAX];
	uint64_t now;
	struct cross_model_stats stats;
	/* The batch. */
	struct cm_credit credits[LEDGER_KIND_COUNT * 64];
	uint32_t credit_count;
	struct cm_probe probes[64];
	uint32_t probe_count;
	struct ledger_result *expected;
	int64_t before[64];        /* available balance of each slot's account before its shard's part */
	/* Set by an approved transfer whose payee is on another shard. */
	bool remote;
	uint64_t remote_payee, remote_amount;
	uint16_t remote_currency;
};

static uint32_t shard_of(const struct cross_model *model, uint64_t id)
{
	return (uint32_t)(XXH3_64bits(&id, sizeof(id)) % model->config.shard_count);
}

struct cross_model *cross_model_create(const struct cross_model_config *config)
{
	assert(config->shard_count >= 1 && config->shard_count <= CM_SHARDS_MAX);
	struct cross_model *model = calloc(1, sizeof(*model));
	assert(model != NULL);
	model->config = *config;
	model->accounts = calloc(config->account_ids, sizeof(*model->accounts));
	model->transfers = calloc(config->transfer_ids, sizeof(*model->transfers));
	model->hold_capacity = 1024;
	model->holds = calloc(model->hold_capacity, sizeof(*model->holds));
	assert(model->accounts && model->transfers && model->holds);
	for (uint64_t id = 0; id < config->account_ids; id++)
		model->accounts[id].shard = shard_of(model, id);
	return model;
}

void cross_model_destroy(struct cross_model *model)
{
	if (model == NULL)
		return;
	free(model->accounts);
	free(model->transfers);
	free(model->holds);
	free(model);
}

const struct cross_model_account *cross_model_account(const struct cross_model *model, uint64_t id)
{
	return id < model->config.account_ids && model->accounts[id].exists ? &model->accounts[id] : NULL;
}

uint64_t cross_model_pending_holds(const struct cross_model *model, uint32_t shard)
{
	return model->pending_holds[shard];
}

const struct cross_model_stats *cross_model_stats(const struct cross_model *model) { return &model->stats; }

bool cross_model_transfer(const struct cross_model *model, uint64_t id,
			  struct ledger_request *request, uint8_t *code)
{
	if (id >= model->config.transfer_ids || !model->transfers[id].remembered)
		return false;
	*request = model->transfers[id].request;
	*code = model->transfers[id].code;
	return true;
}

static struct cross_model_account *account_of(struct cross_model *model, uint64_t id)
{
	return id < model->config.account_ids && model->accounts[id].exists ? &model->accounts[id] : NULL;
}

static int64_t available(const struct cross_model_account *a)
{
	return a == NULL ? 0 : (int64_t)((__int128)a->balance - a->held);
}

/* ---- rules -------------------------------------------------------------- */
static bool valid(const struct ledger_request *r)
{
	if (r->reserved || r->id == 0)
		return false;
	switch (r->kind) {
	case LEDGER_KIND_OPEN: return r->currency && !(r->flags & ~3u);
	case LEDGER_KIND_PAY: case LEDGER_KIND_DEPOSIT: case LEDGER_KIND_HOLD: case LEDGER_KIND_REFUND:
		return r->currency && !r->flags;
	case LEDGER_KIND_CAPTURE: case LEDGER_KIND_VOID: case LEDGER_KIND_CLOSE: case LEDGER_KIND_SET_LIMITS:
		return !r->flags;
	case LEDGER_KIND_FREEZE: return r->flags <= 1;
	default: return false;
	}
}

static int payer_code(const struct cross_model_account *a, uint16_t currency)
{
	if (!a) return LEDGER_PAYER_NOT_FOUND;
	if (a->flags & LEDGER_ACCOUNT_CLOSED) return LEDGER_PAYER_CLOSED;
	if (a->flags & LEDGER_ACCOUNT_FROZEN) return LEDGER_PAYER_FROZEN;
	if (a->currency != currency) return LEDGER_CURRENCY_MISMATCH;
	return LEDGER_OK;
}

static int payee_code(const struct cross_model_account *a, uint16_t currency)
{
	if (!a) return LEDGER_PAYEE_NOT_FOUND;
	if (a->flags & LEDGER_ACCOUNT_CLOSED) return LEDGER_PAYEE_CLOSED;
	if (a->flags & LEDGER_ACCOUNT_FROZEN) return LEDGER_PAYEE_FROZEN;
	if (a->currency != currency) return LEDGER_CURRENCY_MISMATCH;
	return LEDGER_OK;
}

/* The payee as the payer's shard sees it: id 0 is nobody; a payee of
 * another shard is checked when the credit arrives (RESULTS.md "Across
 * shards"), so here it passes and *payee stays NULL. */
static int payee_here(struct cross_model *model, uint32_t shard, uint64_t other, uint16_t currency,
		      struct cross_model_account **payee)
{
	*payee = NULL;
	if (other == 0) return LEDGER_PAYEE_NOT_FOUND;
	if (shard_of(model, other) != shard) return LEDGER_OK;
	*payee = account_of(model, other);
	return payee_code(*payee, currency);
}

static bool fits(__int128 value) { return value >= INT64_MIN && value <= INT64_MAX; }

static bool floor_ok(const struct cross_model_account *a, uint64_t amount)
{
	return (a->flags & LEDGER_ACCOUNT_FUNDING) ||
	       (__int128)a->balance - a->held - amount >= -(__int128)a->overdraft;
}

/* Balance and available balance stay in int64 after a debit. */
static bool debit_fits(const struct cross_model_account *a, uint64_t amount, __int128 held_after)
{
	__int128 balance = (__int128)a->balance - amount;
	return fits(balance) && fits(balance - held_after);
}

static bool credit_fits(const struct cross_model_account *payee, uint64_t amount)
{
	return payee == NULL || fits((__int128)payee->balance + amount);
}

static uint64_t spent_today(const struct cross_model *model, const struct cross_model_account *a)
{
	return a->spent_day == model->now / US_PER_DAY ? a->spent : 0;
}

static int limits_code(const struct cross_model *model, const struct cross_model_account *a, uint64_t amount)
{
	if (a->limit_payment && amount > a->limit_payment) return LEDGER_EXCEEDS_PAYMENT_LIMIT;
	if (a->limit_daily && (__int128)spent_today(model, a) + amount > a->limit_daily)
		return LEDGER_EXCEEDS_DAILY_LIMIT;
	return LEDGER_OK;
}

static void spend(const struct cross_model *model, struct cross_model_account *a, uint64_t amount)
{
	uint64_t spent = spent_today(model, a);
	a->spent = spent + amount < spent ? UINT64_MAX : spent + amount;
	a->spent_day = model->now / US_PER_DAY;
}

static int amount_code(uint64_t amount)
{
	return amount == 0 ? LEDGER_AMOUNT_ZERO : amount > (uint64_t)INT64_MAX ? LEDGER_AMOUNT_OVERFLOW : LEDGER_OK;
}

/* Posts a credit: to a local payee now, or on its way to another shard. */
static void post_credit(struct cross_model *model, struct cm_transfer *t,
			struct cross_model_account *payee, uint64_t other, uint64_t amount,
			uint16_t currency)
{
	if (payee != NULL) {
		payee->balance += (int64_t)amount;
		return;
	}
	model->remote = true;
	model->remote_payee = other;
	model->remote_amount = amount;
	model->remote_currency = currency;
	t->state = CM_CREDITING;
}

#define CHECK(expression) do { int code_ = (expression); if (code_ != LEDGER_OK) return code_; } while (0)

static int model_pay(struct cross_model *model, uint32_t shard, const struct ledger_request *r,
		     struct cm_transfer *t)
{
	bool deposit = r->kind == LEDGER_KIND_DEPOSIT;
	CHECK(amount_code(r->amount));
	if (r->account_id == r->other_id) return LEDGER_SAME_ACCOUNT;
	struct cross_model_account *payer = account_of(model, r->account_id), *payee;
	CHECK(payer_code(payer, r->currency));
	if (deposit && !(payer->flags & LEDGER_ACCOUNT_FUNDING)) return LEDGER_NOT_FUNDING;
	CHECK(payee_here(model, shard, r->other_id, r->currency, &payee));
	if (!deposit) {
		CHECK(limits_code(model, payer, r->amount));
		if (!floor_ok(payer, r->amount)) return LEDGER_INSUFFICIENT_FUNDS;
	}
	if (!debit_fits(payer, r->amount, payer->held) || !credit_fits(payee, r->amount))
		return LEDGER_AMOUNT_OVERFLOW;
	payer->balance -= (int64_t)r->amount;
	if (!deposit) spend(model, payer, r->amount);
	post_credit(model, t, payee, r->other_id, r->amount, r->currency);
	return LEDGER_OK;
}

static int model_hold(struct cross_model *model, uint32_t shard, const struct ledger_request *r,
		      struct cm_transfer *t)
{
	CHECK(amount_code(r->amount));
	if (r->account_id == r->other_id) return LEDGER_SAME_ACCOUNT;
	struct cross_model_account *payer = account_of(model, r->account_id), *payee;
	CHECK(payer_code(payer, r->currency));
	CHECK(payee_here(model, shard, r->other_id, r->currency, &payee));
	CHECK(limits_code(model, payer, r->amount));
	if (!floor_ok(payer, r->amount)) return LEDGER_INSUFFICIENT_FUNDS;
	if ((__int128)payer->held + r->amount > INT64_MAX) return LEDGER_AMOUNT_OVERFLOW;
	if (!debit_fits(payer, 0, (__int128)payer->held + r->amount)) return LEDGER_AMOUNT_OVERFLOW;
	if (model->pending_holds[shard] == model->config.holds_max) return LEDGER_CAPACITY_FULL;
	uint64_t timeout = r->hold_timeout_us ? r->hold_timeout_us : model->config.hold_timeout_us;
	uint64_t expires = model->now + timeout < model->now ? UINT64_MAX : model->now + timeout;
	if (model->hold_total == model->hold_capacity) {
		model->hold_capacity *= 2;
		model->holds = realloc(model->holds, model->hold_capacity * sizeof(*model->holds));
		assert(model->holds != NULL);
	}
	model->holds[model->hold_total++] = (struct cm_hold){ true, r->id, r->account_id, r->other_id,
							      r->amount, expires, r->currency, shard };
	model->pending_holds[shard]++;
	payer->held += r->amount;
	spend(model, payer, r->amount);
	t->state = CM_PENDING;
	return LEDGER_OK;
}

static struct cm_hold *pending_hold(struct cross_model *model, uint64_t id, uint64_t account)
{
	for (uint64_t i = 0; i < model->hold_total; i++)
		if (model->holds[i].pending && model->holds[i].id == id)
			return model->holds[i].account == account ? &model->holds[i] : NULL;
	return NULL;
}

static int hold_gone(struct cross_model *model, const struct ledger_request *r)
{
	uint64_t ref = r->reference_id;
	if (ref >= model->config.transfer_ids || !model->transfers[ref].remembered) return LEDGER_HOLD_NOT_FOUND;
	const struct cm_transfer *h = &model->transfers[ref];
	if (h->request.kind != LEDGER_KIND_HOLD || h->code != LEDGER_OK || h->request.account_id != r->account_id)
		return LEDGER_HOLD_NOT_FOUND;
	if (h->state == CM_CAPTURED) return LEDGER_HOLD_ALREADY_CAPTURED;
	if (h->state == CM_VOIDED) return LEDGER_HOLD_ALREADY_VOIDED;
	if (h->state == CM_EXPIRED) return LEDGER_HOLD_EXPIRED;
	return LEDGER_HOLD_NOT_FOUND;
}

static void hold_release(struct cross_model *model, struct cm_hold *h, uint8_t state)
{
	model->accounts[h->account].held -= h->amount;
	h->pending = false;
	model->pending_holds[h->shard]--;
	struct cm_transfer *t = &model->transfers[h->id];
	if (t->state == CM_PENDING) t->state = state;
}

static int model_capture(struct cross_model *model, uint32_t shard, const struct ledger_request *r,
			 struct cm_transfer *t, uint64_t *reply_amount)
{
	struct cm_hold *h = pending_hold(model, r->reference_id, r->account_id);
	if (!h) return hold_gone(model, r);
	struct cross_model_account *payer = &model->accounts[h->account], *payee;
	if (payer->flags & LEDGER_ACCOUNT_FROZEN) return LEDGER_PAYER_FROZEN;
	uint64_t captured = r->amount ? r->amount : h->amount;
	if (captured > h->amount) return LEDGER_CAPTURE_EXCEEDS_HOLD;
	CHECK(payee_here(model, shard, h->other, h->currency, &payee));
	if (!debit_fits(payer, captured, (__int128)payer->held - h->amount) || !credit_fits(payee, captured))
		return LEDGER_AMOUNT_OVERFLOW;
	hold_release(model, h, CM_CAPTURED);
	payer->balance -= (int64_t)captured;
	model->transfers[h->id].captured = captured;
	t->other = h->other;
	t->amount = captured;
	t->currency = h->currency;
	*reply_amount = captured;
	post_credit(model, t, payee, h->other, captured, h->currency);
	return LEDGER_OK;
}

static int model_void(struct cross_model *model, const struct ledger_request *r)
{
	struct cm_hold *h = pending_hold(model, r->reference_id, r->account_id);
	if (!h) return hold_gone(model, r);
	hold_release(model, h, CM_VOIDED);
	return LEDGER_OK;
}

/* What the window of `shard` holds under `id`: the transfer itself if that
 * shard decided it, or the CREDIT of it if the credit arrived there. A
 * refund is decided by the merchant's shard, which knows only these: a
 * payment another shard decided without crediting this one is "not in the
 * window" (TRANSFER_NOT_FOUND), where one ledger would say NOT_REFUNDABLE.
 * RESULTS.md does not list this difference; the model counts it. */
struct cm_view {
	uint8_t kind, origin, code, state;
	uint64_t account, other, amount;
	uint16_t currency;
};

static bool window_view(const struct cross_model *model, uint32_t shard, uint64_t id, struct cm_view *view)
{
	if (id >= model->config.transfer_ids)
		return false;
	const struct cm_transfer *t = &model->transfers[id];
	if (t->remembered && t->shard == shard) {
		*view = (struct cm_view){ t->request.kind, 0, t->code, t->state, t->request.account_id,
					  t->other, t->amount, t->currency };
		return true;
	}
	if (t->credited && t->credit_shard == shard) {
		*view = (struct cm_view){ LEDGER_KIND_CREDIT, t->request.kind, t->credit_code, CM_DONE,
					  t->request.account_id, t->other, t->amount, t->currency };
		return true;
	}
	return false;
}

static int model_refund(struct cross_model *model, uint32_t shard, const struct ledger_request *r,
			struct cm_transfer *t, uint64_t *reply_amount)
{
	CHECK(amount_code(r->amount));
	if (r->account_id == r->other_id) return LEDGER_SAME_ACCOUNT;
	struct cross_model_account *merchant = account_of(model, r->account_id), *customer;
	CHECK(payer_code(merchant, r->currency));
	struct cm_view o;
	if (!window_view(model, shard, r->reference_id, &o)) {
		if (r->reference_id < model->config.transfer_ids && model->transfers[r->reference_id].remembered)
			model->stats.refund_not_found_elsewhere++;
		return LEDGER_TRANSFER_NOT_FOUND;
	}
	bool payment = o.kind == LEDGER_KIND_PAY || o.kind == LEDGER_KIND_CAPTURE ||
		       (o.kind == LEDGER_KIND_CREDIT &&
			(o.origin == LEDGER_KIND_PAY || o.origin == LEDGER_KIND_CAPTURE));
	if (!payment || o.code != LEDGER_OK || o.state == CM_RETURNED ||
	    o.other != r->account_id || o.account != r->other_id)
		return LEDGER_NOT_REFUNDABLE;
	struct cm_transfer *paid = &model->transfers[r->reference_id];
	if (paid->refunded + r->amount > o.amount) return LEDGER_REFUND_EXCEEDS_PAYMENT;
	if (o.currency != r->currency) return LEDGER_CURRENCY_MISMATCH;
	CHECK(payee_here(model, shard, r->other_id, r->currency, &customer));
	if (!floor_ok(merchant, r->amount)) return LEDGER_INSUFFICIENT_FUNDS;
	if (!debit_fits(merchant, r->amount, merchant->held) || !credit_fits(customer, r->amount))
		return LEDGER_AMOUNT_OVERFLOW;
	merchant->balance -= (int64_t)r->amount;
	paid->refunded += r->amount;
	*reply_amount = paid->refunded;
	post_credit(model, t, customer, r->other_id, r->amount, r->currency);
	return LEDGER_OK;
}

static int model_admin(struct cross_model *model, uint32_t shard, const struct ledger_request *r)
{
	struct cross_model_account *a = account_of(model, r->account_id);
	if (r->kind == LEDGER_KIND_OPEN) {
		if (r->account_id == 0) return LEDGER_INVALID_REQUEST;
		if (a) return LEDGER_ACCOUNT_EXISTS;
		assert(r->account_id < model->config.account_ids);
		if (model->account_count[shard] == model->config.accounts_max) return LEDGER_CAPACITY_FULL;
		a = &model->accounts[r->account_id];
		*a = (struct cross_model_account){ .exists = true, .shard = shard, .overdraft = r->amount,
			.limit_payment = r->limit_payment, .limit_daily = r->limit_daily,
			.spent_day = model->now / US_PER_DAY, .currency = r->currency, .flags = r->flags };
		model->account_count[shard]++;
		return LEDGER_OK;
	}
	if (!a) return LEDGER_PAYER_NOT_FOUND;
	if (a->flags & LEDGER_ACCOUNT_CLOSED) return LEDGER_PAYER_CLOSED;
	if (r->kind == LEDGER_KIND_FREEZE) {
		a->flags = r->flags ? (a->flags | LEDGER_ACCOUNT_FROZEN) : (a->flags & ~LEDGER_ACCOUNT_FROZEN);
	} else if (r->kind == LEDGER_KIND_CLOSE) {
		if (a->balance || a->held) return LEDGER_ACCOUNT_NOT_EMPTY;
		a->flags |= LEDGER_ACCOUNT_CLOSED;
	} else {
		if (!(a->flags & LEDGER_ACCOUNT_FUNDING) && (__int128)a->balance - a->held < -(__int128)r->amount)
			return LEDGER_INVALID_LIMITS;
		a->overdraft = r->amount;
		a->limit_payment = r->limit_payment;
		a->limit_daily = r->limit_daily;
	}
	return LEDGER_OK;
}

/* ---- one request on its shard ------------------------------------------- */
static void probe(struct cross_model *model, uint32_t slot, uint64_t account, uint64_t transfer,
		  bool lookup)
{
	assert(model->probe_count < 64);
	model->probes[model->probe_count++] = (struct cm_probe){ slot, account, transfer, lookup };
	model->stats.probes++;
}

static void read_only(struct cross_model *model, uint32_t slot, const struct ledger_request *r)
{
	struct ledger_result *e = &model->expected[slot];
	struct cross_model_account *a = account_of(model, r->account_id);
	if (r->kind == LEDGER_KIND_BALANCE) {
		e->code = a ? LEDGER_OK : LEDGER_PAYER_NOT_FOUND;
		e->balance = available(a);
		e->amount = a ? a->held : r->amount;
		return;
	}
	uint64_t ref = r->reference_id;
	bool found = ref < model->config.transfer_ids && model->transfers[ref].remembered &&
		     model->transfers[ref].request.account_id == r->account_id;
	if (found && model->transfers[ref].state == CM_CREDITING) {
		probe(model, slot, r->account_id, ref, true);
		return;
	}
	e->code = found ? model->transfers[ref].code : LEDGER_TRANSFER_NOT_FOUND;
	e->amount = found ? model->transfers[ref].amount : 0;
	e->balance = available(a);
}

static int dispatch(struct cross_model *model, uint32_t shard, const struct ledger_request *r,
		    struct cm_transfer *t, uint64_t *reply_amount)
{
	switch (r->kind) {
	case LEDGER_KIND_PAY: case LEDGER_KIND_DEPOSIT: return model_pay(model, shard, r, t);
	case LEDGER_KIND_HOLD: return model_hold(model, shard, r, t);
	case LEDGER_KIND_CAPTURE: return model_capture(model, shard, r, t, reply_amount);
	case LEDGER_KIND_VOID: return model_void(model, r);
	case LEDGER_KIND_REFUND: return model_refund(model, shard, r, t, reply_amount);
	default: return model_admin(model, shard, r);
	}
}

static void decide(struct cross_model *model, uint32_t shard, uint32_t slot, const struct ledger_request *r)
{
	struct ledger_result *e = &model->expected[slot];
	*e = (struct ledger_result){ .id = r->id, .amount = r->amount };
	if (r->kind == LEDGER_KIND_BALANCE || r->kind == LEDGER_KIND_LOOKUP) {
		read_only(model, slot, r);
		return;
	}
	assert(r->id < model->config.transfer_ids);
	struct cm_transfer *t = &model->transfers[r->id];
	struct cross_model_account *a = account_of(model, r->account_id);
	bool remembered_kind = r->kind >= LEDGER_KIND_OPEN && r->kind <= LEDGER_KIND_SET_LIMITS;
	/* One id space: another shard's id is refused before any ledger. */
	if (model->config.shard_count > 1 && remembered_kind && r->id != 0 && t->remembered &&
	    t->shard != shard) {
		/* The engine refuses while it sorts the shard's part of the
		 * batch, before the ledger decides any of it: the balance is
		 * the one before that part. */
		e->code = LEDGER_ID_REUSED;
		e->balance = model->before[slot];
		model->stats.claims_refused++;
		return;
	}
	e->flags = LEDGER_RESULT_JOURNAL;
	uint64_t now = model->now, ts = r->timestamp_us;
	int code = LEDGER_OK;
	if (!valid(r)) code = LEDGER_INVALID_REQUEST;
	else if (ts < now && now - ts > model->config.dedup_window_us) code = LEDGER_TOO_OLD;
	else if (ts > now && ts - now > model->config.future_tolerance_us) code = LEDGER_TIMESTAMP_IN_FUTURE;
	else if (t->remembered && memcmp(&t->request, r, sizeof(*r)) != 0) code = LEDGER_ID_REUSED;
	if (code != LEDGER_OK) {
		e->code = (uint16_t)code;
		e->balance = available(a);
		return;
	}
	if (t->remembered) {
		e->flags |= LEDGER_RESULT_DUPLICATE;
		if (t->state == CM_CREDITING) {
			probe(model, slot, r->account_id, r->id, false);
			return;
		}
		e->code = t->code;
		e->amount = t->amount;
		e->balance = available(a);
		return;
	}
	memset(t, 0, sizeof(*t));
	t->request = *r;
	t->shard = shard;
	t->other = r->other_id;
	t->amount = r->amount;
	t->currency = r->currency;
	model->remote = false;
	uint64_t reply_amount = r->amount;
	code = dispatch(model, shard, r, t, &reply_amount);
	t->code = (uint8_t)code;
	t->remembered = true;
	a = account_of(model, r->account_id);
	e->code = (uint16_t)code;
	e->amount = reply_amount;
	e->balance = available(a);
	if (model->remote) {
		assert(code == LEDGER_OK);
		assert(model->credit_count < sizeof(model->credits) / sizeof(model->credits[0]));
		model->credits[model->credit_count++] = (struct cm_credit){
			.slot = slot, .id = r->id, .payee = model->remote_payee,
			.amount = model->remote_amount, .currency = model->remote_currency,
			.reply_balance = e->balance, .reply_amount = reply_amount };
		model->stats.credits++;
	}
}

/* ---- delivery ----------------------------------------------------------- */
/* Round one: the payee's shard checks the payee (RESULTS.md check order of CREDIT). */
static void credit_arrives(struct cross_model *model, struct cm_credit *c)
{
	struct cm_transfer *t = &model->transfers[c->id];
	struct cross_model_account *payee = account_of(model, c->payee);
	int code = payee_code(payee, c->currency);
	if (code == LEDGER_OK && !credit_fits(payee, c->amount))
		code = LEDGER_AMOUNT_OVERFLOW;
	t->credited = true;
	t->credit_shard = shard_of(model, c->payee);
	t->credit_code = (uint8_t)code;
	c->refusal = (uint8_t)code;
	if (code != LEDGER_OK) {
		model->stats.returns++;
		return;
	}
	payee->balance += (int64_t)c->amount;
	struct ledger_result *e = &model->expected[c->slot];
	e->code = LEDGER_OK;
	e->balance = c->reply_balance;
	e->amount = c->reply_amount;
	e->flags = LEDGER_RESULT_JOURNAL;
}

/* What a returned transfer undoes (RESULTS.md "Across shards"). */
static void return_undo(struct cross_model *model, struct cm_transfer *t, struct cross_model_account *payer)
{
	const struct ledger_request *r = &t->request;
	if (r->kind == LEDGER_KIND_REFUND) {
		struct cm_transfer *paid = &model->transfers[r->reference_id];
		assert(paid->refunded >= t->amount);
		paid->refunded -= t->amount;
	} else if (r->kind == LEDGER_KIND_CAPTURE) {
		struct cm_transfer *hold = &model->transfers[r->reference_id];
		if (hold->state == CM_CAPTURED) {
			hold->state = CM_VOIDED;
			hold->captured = 0;
		}
	} else if (r->kind == LEDGER_KIND_PAY) {
		uint64_t today = model->now / US_PER_DAY;
		if (r->timestamp_us / US_PER_DAY == today && payer->spent_day == today)
			payer->spent = payer->spent > t->amount ? payer->spent - t->amount : 0;
	}
}

/* Round two: the money goes back to the payer, and the transfer answers the
 * payee's code from now on. */
static void return_arrives(struct cross_model *model, const struct cm_credit *c)
{
	struct cm_transfer *t = &model->transfers[c->id];
	struct cross_model_account *payer = account_of(model, t->request.account_id);
	assert(payer != NULL && payer->currency == c->currency);
	struct ledger_result *e = &model->expected[c->slot];
	e->code = c->refusal;
	e->amount = c->reply_amount;
	e->flags = LEDGER_RESULT_JOURNAL;
	if (!credit_fits(payer, c->amount)) {
		/* RETURN: AMOUNT_OVERFLOW — the money stays in transit, and the
		 * transfer still did not happen: it answers the payee's code. */
		model->stats.returns_refused++;
		t->state = CM_RETURNED;
		t->code = c->refusal;
		e->balance = available(payer);
		return;
	}
	if (payer->flags & LEDGER_ACCOUNT_CLOSED)
		model->stats.returns_to_closed++;
	payer->balance += (int64_t)c->amount;
	return_undo(model, t, payer);
	t->state = CM_RETURNED;
	t->code = c->refusal;
	e->balance = available(payer);
}

static void answer_probes(struct cross_model *model)
{
	for (uint32_t i = 0; i < model->probe_count; i++) {
		const struct cm_probe *p = &model->probes[i];
		const struct cm_transfer *t = &model->transfers[p->transfer];
		struct ledger_result *e = &model->expected[p->slot];
		e->code = t->code;
		e->amount = t->amount;
		e->balance = available(account_of(model, p->account));
		e->flags = p->lookup ? 0 : LEDGER_RESULT_DUPLICATE | LEDGER_RESULT_JOURNAL;
	}
}

static void expire(struct cross_model *model)
{
	for (uint64_t i = 0; i < model->hold_total; i++)
		if (model->holds[i].pending && model->holds[i].expires <= model->now)
			hold_release(model, &model->holds[i], CM_EXPIRED);
	/* Forget released holds now and then: the scans stay short. */
	uint64_t kept = 0;
	for (uint64_t i = 0; i < model->hold_total; i++)
		if (model->holds[i].pending)
			model->holds[kept++] = model->holds[i];
	model->hold_total = kept;
}

void cross_model_batch(struct cross_model *model, uint64_t now_us,
		       const struct ledger_request *requests, struct ledger_result *expected,
		       uint32_t count)
{
	assert(now_us >= model->now && count <= 64);
	model->now = now_us;
	model->expected = expected;
	model->credit_count = 0;
	model->probe_count = 0;
	expire(model);
	for (uint32_t i = 0; i < count; i++)
		model->before[i] = available(account_of(model, requests[i].account_id));
	for (uint32_t shard = 0; shard < model->config.shard_count; shard++)
		for (uint32_t i = 0; i < count; i++)
			if (shard_of(model, requests[i].account_id) == shard)
				decide(model, shard, i, &requests[i]);
	for (uint32_t i = 0; i < model->credit_count; i++)
		credit_arrives(model, &model->credits[i]);
	for (uint32_t payee_shard = 0; payee_shard < model->config.shard_count; payee_shard++)
		for (uint32_t i = 0; i < model->credit_count; i++)
			if (model->credits[i].refusal != LEDGER_OK &&
			    shard_of(model, model->credits[i].payee) == payee_shard)
				return_arrives(model, &model->credits[i]);
	answer_probes(model);
}
