/*
 * Randomized test against an independent reference model: long random
 * sequences of every kind (bad ones included), with the invariants checked
 * after every batch and, for every request, the result code, the DUPLICATE
 * flag, the reported balance and the posted balance and held amount of both
 * touched accounts compared with a plain array-based model of the rules.
 */
#include <stdlib.h>
#include <string.h>

#include "ledger_test_util.h"

enum {
	ACCOUNT_IDS = 48,     /* ids 1..48 may be opened; 0 and 49..50 never exist */
	ACCOUNTS_MAX = 40,    /* so OPEN meets CAPACITY_FULL */
	HOLDS_MAX = 16,
	OPS = 200000,
	RECENT = 64,
	TRANSFER_IDS = OPS + 4096,
};
#define WINDOW_US (UINT64_C(600) * LT_SECOND)
#define FUTURE_US (UINT64_C(5) * LT_SECOND)

struct model_account {
	bool exists;
	int64_t balance;
	uint64_t held, overdraft, limit_payment, limit_daily, spent;
	uint64_t spent_day;
	uint16_t currency, flags;
};

struct model_transfer {
	bool remembered;
	struct ledger_request request;
	uint8_t code, state;
	uint64_t other, amount, amount_done;
	uint16_t currency;
};

struct model_hold {
	bool pending;
	uint64_t id, account, other, amount, expires;
	uint16_t currency;
};

static struct model_account accounts[ACCOUNT_IDS + 3];
static struct model_transfer *transfers; /* indexed by request id */
static struct model_hold holds[OPS];
static uint64_t hold_total, pending_holds, account_count, now;
static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct model_account *account_of(uint64_t id)
{
	return id >= 1 && id <= ACCOUNT_IDS && accounts[id].exists ? &accounts[id] : NULL;
}

static int64_t available(const struct model_account *a)
{
	__int128 value = (__int128)a->balance - a->held;
	return value < INT64_MIN ? INT64_MIN : (int64_t)value;
}

static void model_expire(void)
{
	for (uint64_t i = 0; i < hold_total; i++) {
		struct model_hold *h = &holds[i];
		if (!h->pending || h->expires > now)
			continue;
		h->pending = false;
		pending_holds--;
		accounts[h->account].held -= h->amount;
		if (transfers[h->id].state == LEDGER_TRANSFER_PENDING)
			transfers[h->id].state = LEDGER_TRANSFER_EXPIRED;
	}
}

static bool model_valid(const struct ledger_request *r)
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

static int payer_code(const struct model_account *a, uint16_t currency)
{
	if (!a) return LEDGER_PAYER_NOT_FOUND;
	if (a->flags & LEDGER_ACCOUNT_CLOSED) return LEDGER_PAYER_CLOSED;
	if (a->flags & LEDGER_ACCOUNT_FROZEN) return LEDGER_PAYER_FROZEN;
	if (a->currency != currency) return LEDGER_CURRENCY_MISMATCH;
	return LEDGER_OK;
}

static int payee_code(const struct model_account *a, uint16_t currency)
{
	if (!a) return LEDGER_PAYEE_NOT_FOUND;
	if (a->flags & LEDGER_ACCOUNT_CLOSED) return LEDGER_PAYEE_CLOSED;
	if (a->flags & LEDGER_ACCOUNT_FROZEN) return LEDGER_PAYEE_FROZEN;
	if (a->currency != currency) return LEDGER_CURRENCY_MISMATCH;
	return LEDGER_OK;
}

static bool floor_ok(const struct model_account *a, uint64_t amount)
{
	return (a->flags & LEDGER_ACCOUNT_FUNDING) ||
	       (__int128)a->balance - a->held - amount >= -(__int128)a->overdraft;
}

static bool sum_fits(__int128 value) { return value >= INT64_MIN && value <= INT64_MAX; }

/* A debit keeps the balance and the available balance (balance - held) in int64. */
static bool debit_fits(const struct model_account *a, uint64_t amount, __int128 held_after)
{
	__int128 balance = (__int128)a->balance - amount;
	return sum_fits(balance) && sum_fits(balance - held_after);
}

static int limits_code(const struct model_account *a, uint64_t amount)
{
	if (a->limit_payment && amount > a->limit_payment) return LEDGER_EXCEEDS_PAYMENT_LIMIT;
	uint64_t spent = a->spent_day == now / LT_DAY ? a->spent : 0;
	if (a->limit_daily && ((__int128)spent + amount > a->limit_daily)) return LEDGER_EXCEEDS_DAILY_LIMIT;
	return LEDGER_OK;
}

static void spend(struct model_account *a, uint64_t amount)
{
	uint64_t spent = a->spent_day == now / LT_DAY ? a->spent : 0;
	a->spent = spent + amount < spent ? UINT64_MAX : spent + amount;
	a->spent_day = now / LT_DAY;
}

static int amount_code(uint64_t amount)
{
	return amount == 0 ? LEDGER_AMOUNT_ZERO : amount > (uint64_t)INT64_MAX ? LEDGER_AMOUNT_OVERFLOW : LEDGER_OK;
}

#define CHECK(expression) do { int code_ = (expression); if (code_ != LEDGER_OK) return code_; } while (0)

static int model_transfer(const struct ledger_request *r, struct model_transfer *t)
{
	bool deposit = r->kind == LEDGER_KIND_DEPOSIT;
	CHECK(amount_code(r->amount));
	if (r->account_id == r->other_id) return LEDGER_SAME_ACCOUNT;
	struct model_account *payer = account_of(r->account_id), *payee = account_of(r->other_id);
	CHECK(payer_code(payer, r->currency));
	if (deposit && !(payer->flags & LEDGER_ACCOUNT_FUNDING)) return LEDGER_NOT_FUNDING;
	CHECK(payee_code(payee, r->currency));
	if (!deposit) {
		CHECK(limits_code(payer, r->amount));
		if (!floor_ok(payer, r->amount)) return LEDGER_INSUFFICIENT_FUNDS;
	}
	if (!debit_fits(payer, r->amount, payer->held) || !sum_fits((__int128)payee->balance + r->amount))
		return LEDGER_AMOUNT_OVERFLOW;
	payer->balance -= (int64_t)r->amount;
	payee->balance += (int64_t)r->amount;
	if (!deposit) spend(payer, r->amount);
	(void)t;
	return LEDGER_OK;
}

static int model_hold(const struct ledger_request *r, struct model_transfer *t)
{
	CHECK(amount_code(r->amount));
	if (r->account_id == r->other_id) return LEDGER_SAME_ACCOUNT;
	struct model_account *payer = account_of(r->account_id), *payee = account_of(r->other_id);
	CHECK(payer_code(payer, r->currency));
	CHECK(payee_code(payee, r->currency));
	CHECK(limits_code(payer, r->amount));
	if (!floor_ok(payer, r->amount)) return LEDGER_INSUFFICIENT_FUNDS;
	if ((__int128)payer->held + r->amount > INT64_MAX) return LEDGER_AMOUNT_OVERFLOW;
	if (!debit_fits(payer, 0, (__int128)payer->held + r->amount)) return LEDGER_AMOUNT_OVERFLOW;
	if (pending_holds == HOLDS_MAX) return LEDGER_CAPACITY_FULL;
	uint64_t timeout = r->hold_timeout_us ? r->hold_timeout_us : UINT64_C(900) * LT_SECOND;
	holds[hold_total++] = (struct model_hold){ true, r->id, r->account_id, r->other_id, r->amount,
						   now + timeout, r->currency };
	pending_holds++;
	payer->held += r->amount;
	spend(payer, r->amount);
	t->state = LEDGER_TRANSFER_PENDING;
	return LEDGER_OK;
}

static struct model_hold *pending_hold(uint64_t id, uint64_t account)
{
	for (uint64_t i = 0; i < hold_total; i++)
		if (holds[i].pending && holds[i].id == id)
			return holds[i].account == account ? &holds[i] : NULL;
	return NULL;
}

static int hold_gone(const struct ledger_request *r)
{
	uint64_t ref = r->reference_id;
	if (ref >= TRANSFER_IDS || !transfers[ref].remembered) return LEDGER_HOLD_NOT_FOUND;
	const struct model_transfer *h = &transfers[ref];
	if (h->request.kind != LEDGER_KIND_HOLD || h->code != LEDGER_OK || h->request.account_id != r->account_id)
		return LEDGER_HOLD_NOT_FOUND;
	if (h->state == LEDGER_TRANSFER_CAPTURED) return LEDGER_HOLD_ALREADY_CAPTURED;
	if (h->state == LEDGER_TRANSFER_VOIDED) return LEDGER_HOLD_ALREADY_VOIDED;
	if (h->state == LEDGER_TRANSFER_EXPIRED) return LEDGER_HOLD_EXPIRED;
	return LEDGER_HOLD_NOT_FOUND;
}

static int model_capture(const struct ledger_request *r, struct model_transfer *t, uint64_t *result_amount)
{
	struct model_hold *h = pending_hold(r->reference_id, r->account_id);
	if (!h) return hold_gone(r);
	struct model_account *payer = &accounts[h->account], *payee = account_of(h->other);
	if (payer->flags & LEDGER_ACCOUNT_FROZEN) return LEDGER_PAYER_FROZEN;
	uint64_t captured = r->amount ? r->amount : h->amount;
	if (captured > h->amount) return LEDGER_CAPTURE_EXCEEDS_HOLD;
	CHECK(payee_code(payee, h->currency));
	if (!debit_fits(payer, captured, (__int128)payer->held - h->amount) ||
	    !sum_fits((__int128)payee->balance + captured))
		return LEDGER_AMOUNT_OVERFLOW;
	payer->held -= h->amount;
	payer->balance -= (int64_t)captured;
	payee->balance += (int64_t)captured;
	h->pending = false;
	pending_holds--;
	transfers[h->id].state = LEDGER_TRANSFER_CAPTURED;
	transfers[h->id].amount_done = captured;
	t->other = h->other;
	t->amount = captured;
	t->currency = h->currency;
	*result_amount = captured;
	return LEDGER_OK;
}

static int model_void(const struct ledger_request *r)
{
	struct model_hold *h = pending_hold(r->reference_id, r->account_id);
	if (!h) return hold_gone(r);
	accounts[h->account].held -= h->amount;
	h->pending = false;
	pending_holds--;
	transfers[h->id].state = LEDGER_TRANSFER_VOIDED;
	return LEDGER_OK;
}

static int model_refund(const struct ledger_request *r, uint64_t *result_amount)
{
	CHECK(amount_code(r->amount));
	if (r->account_id == r->other_id) return LEDGER_SAME_ACCOUNT;
	struct model_account *merchant = account_of(r->account_id), *customer = account_of(r->other_id);
	CHECK(payer_code(merchant, r->currency));
	uint64_t ref = r->reference_id;
	if (ref >= TRANSFER_IDS || !transfers[ref].remembered) return LEDGER_TRANSFER_NOT_FOUND;
	struct model_transfer *o = &transfers[ref];
	if ((o->request.kind != LEDGER_KIND_PAY && o->request.kind != LEDGER_KIND_CAPTURE) || o->code != LEDGER_OK ||
	    o->other != r->account_id || o->request.account_id != r->other_id)
		return LEDGER_NOT_REFUNDABLE;
	if (o->amount_done + r->amount > o->amount) return LEDGER_REFUND_EXCEEDS_PAYMENT;
	if (o->currency != r->currency) return LEDGER_CURRENCY_MISMATCH;
	CHECK(payee_code(customer, r->currency));
	if (!floor_ok(merchant, r->amount)) return LEDGER_INSUFFICIENT_FUNDS;
	if (!debit_fits(merchant, r->amount, merchant->held) || !sum_fits((__int128)customer->balance + r->amount))
		return LEDGER_AMOUNT_OVERFLOW;
	merchant->balance -= (int64_t)r->amount;
	customer->balance += (int64_t)r->amount;
	o->amount_done += r->amount;
	*result_amount = o->amount_done;
	return LEDGER_OK;
}

static int model_admin(const struct ledger_request *r)
{
	struct model_account *a = account_of(r->account_id);
	if (r->kind == LEDGER_KIND_OPEN) {
		if (r->account_id == 0) return LEDGER_INVALID_REQUEST;
		if (a) return LEDGER_ACCOUNT_EXISTS;
		cr_assert_leq(r->account_id, ACCOUNT_IDS, "OPEN ids stay in the model");
		if (account_count == ACCOUNTS_MAX) return LEDGER_CAPACITY_FULL;
		a = &accounts[r->account_id];
		*a = (struct model_account){ true, 0, 0, r->amount, r->limit_payment, r->limit_daily, 0,
					     now / LT_DAY, r->currency, r->flags };
		account_count++;
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

/* The model's decision: code, whether it is a duplicate, the result amount. */
static int model_decide(const struct ledger_request *r, bool *duplicate, uint64_t *result_amount)
{
	*duplicate = false;
	*result_amount = r->amount;
	if (r->kind == LEDGER_KIND_BALANCE) {
		struct model_account *a = account_of(r->account_id);
		if (a) *result_amount = a->held;
		return a ? LEDGER_OK : LEDGER_PAYER_NOT_FOUND;
	}
	if (r->kind == LEDGER_KIND_LOOKUP) {
		uint64_t ref = r->reference_id;
		bool found = ref < TRANSFER_IDS && transfers[ref].remembered && transfers[ref].request.account_id == r->account_id;
		*result_amount = found ? transfers[ref].amount : 0;
		return found ? transfers[ref].code : LEDGER_TRANSFER_NOT_FOUND;
	}
	if (!model_valid(r)) return LEDGER_INVALID_REQUEST;
	if (r->timestamp_us < now && now - r->timestamp_us > WINDOW_US) return LEDGER_TOO_OLD;
	if (r->timestamp_us > now && r->timestamp_us - now > FUTURE_US) return LEDGER_TIMESTAMP_IN_FUTURE;
	struct model_transfer *t = &transfers[r->id];
	if (t->remembered) {
		if (memcmp(&t->request, r, sizeof(*r)) != 0) return LEDGER_ID_REUSED;
		*duplicate = true;
		*result_amount = t->amount;
		return t->code;
	}
	memset(t, 0, sizeof(*t));
	t->request = *r;
	t->other = r->other_id;
	t->amount = r->amount;
	t->currency = r->currency;
	int code;
	switch (r->kind) {
	case LEDGER_KIND_PAY: case LEDGER_KIND_DEPOSIT: code = model_transfer(r, t); break;
	case LEDGER_KIND_HOLD: code = model_hold(r, t); break;
	case LEDGER_KIND_CAPTURE: code = model_capture(r, t, result_amount); break;
	case LEDGER_KIND_VOID: code = model_void(r); break;
	case LEDGER_KIND_REFUND: code = model_refund(r, result_amount); break;
	default: code = model_admin(r); break;
	}
	t->code = (uint8_t)code;
	t->remembered = true;
	return code;
}

/* ---- the generator -------------------------------------------------------- */
static struct ledger_request recent[RECENT];
static uint64_t recent_count, next_id, hold_ids[RECENT], hold_accounts[RECENT], hold_seen;

static uint64_t random_amount(void)
{
	static const uint64_t big[] = { (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1, UINT64_MAX,
					(uint64_t)INT64_MAX - 1 };
	uint64_t r = next() % 100;
	if (r < 3) return 0;
	if (r < 5) return big[next() % 4];
	if (r < 12) return next() % 100000;
	return 1 + next() % 400;
}

static uint64_t random_account(void) { return next() % (ACCOUNT_IDS + 3); }

static uint64_t random_reference(void)
{
	uint64_t span = next_id - 1 < 300 ? next_id - 1 : 300;
	return next_id - 1 - next() % span;
}

static void shape_refund(struct ledger_request *r)
{
	r->reference_id = random_reference();
	const struct model_transfer *o = &transfers[r->reference_id];
	if (o->remembered && next() % 4 != 0) {
		r->account_id = o->other;
		r->other_id = o->request.account_id;
		r->amount = next() % 3 == 0 ? o->amount : 1 + next() % 200;
		r->currency = o->currency ? o->currency : LT_EUR;
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
	if (pick < 72) {
		r->kind = LEDGER_KIND_OPEN;
		r->account_id = next() % (ACCOUNT_IDS + 1);
		r->flags = (uint8_t)(next() % 10 == 0 ? LEDGER_ACCOUNT_FUNDING : next() % 5 == 0 ? LEDGER_ACCOUNT_MERCHANT : 0);
		r->amount = next() % 3 == 0 ? next() % 500 : 0;
		r->limit_payment = next() % 4 == 0 ? 1 + next() % 300 : 0;
		r->limit_daily = next() % 4 == 0 ? 1 + next() % 2000 : 0;
		r->currency = next() % 8 == 0 ? LT_USD : LT_EUR;
	} else if (pick < 75) {
		r->kind = LEDGER_KIND_FREEZE;
		r->flags = (uint8_t)(next() % 20 == 0 ? 2 : next() % 4 == 0);
	} else if (pick < 77) {
		r->kind = LEDGER_KIND_CLOSE;
	} else if (pick < 81) {
		r->kind = LEDGER_KIND_SET_LIMITS;
		r->amount = next() % 2 ? next() % 1000 : 0;
		r->limit_payment = next() % 3 == 0 ? 1 + next() % 300 : 0;
		r->limit_daily = next() % 3 == 0 ? 1 + next() % 3000 : 0;
	} else if (pick < 85) {
		r->kind = LEDGER_KIND_BALANCE;
	} else {
		r->kind = LEDGER_KIND_LOOKUP;
		r->reference_id = random_reference();
	}
}

static void spoil(struct ledger_request *r)
{
	switch (next() % 7) {
	case 0: r->kind = (uint8_t)(next() % 20); break;
	case 1: r->reserved = 1; break;
	case 2: r->currency = 0; break;
	case 3: r->currency = LT_USD; break;
	case 4: r->timestamp_us = now - WINDOW_US - 1 - next() % 10; break;
	case 5: r->timestamp_us = now + FUTURE_US + next() % 3; break;
	default: r->timestamp_us = now - WINDOW_US + next() % 3; break;
	}
	if (r->kind == LEDGER_KIND_OPEN && (r->account_id > ACCOUNT_IDS))
		r->account_id = 0;
	if (r->kind == LEDGER_KIND_CREDIT || r->kind == LEDGER_KIND_RETURN)
		r->kind = LEDGER_KIND_NONE; /* engine-internal kinds are covered in test_shards */
}

static struct ledger_request generate(void)
{
	struct ledger_request r;
	uint64_t pick = next() % 100;
	if (pick < 4 && recent_count > 0) {
		r = recent[next() % (recent_count < RECENT ? recent_count : RECENT)];
		if (next() % 3 == 0)
			r.amount ^= 1; /* same id, other fields */
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
			r.account_id = 1 + next() % 2;
	} else if (pick < 48) {
		r.kind = LEDGER_KIND_HOLD;
		r.hold_timeout_us = next() % 6 == 0 ? 0 : 1 + next() % 3000;
		hold_ids[hold_seen % RECENT] = r.id;
		hold_accounts[hold_seen % RECENT] = r.account_id;
		hold_seen++;
	} else if (pick < 56) {
		r.kind = LEDGER_KIND_CAPTURE;
		shape_hold_use(&r);
	} else if (pick < 60) {
		r.kind = LEDGER_KIND_VOID;
		shape_hold_use(&r);
	} else if (pick < 68) {
		r.kind = LEDGER_KIND_REFUND;
		shape_refund(&r);
	} else if (pick < 87) {
		shape_admin(&r, pick);
	} else if (pick < 89) {
		r.kind = LEDGER_KIND_PAY;
		spoil(&r);
	} else {
		r.kind = LEDGER_KIND_PAY;
		r.amount = 1 + next() % 50;
	}
	recent[recent_count++ % RECENT] = r;
	return r;
}

/* ---- the driver ------------------------------------------------------------ */
static void compare_accounts(const struct ledger *ledger)
{
	for (uint64_t id = 0; id <= ACCOUNT_IDS + 2; id++) {
		const struct ledger_account *real = ledger_account_get(ledger, id);
		const struct model_account *model = account_of(id);
		cr_assert_eq(real == NULL, model == NULL, "account %lu existence", (unsigned long)id);
		if (real == NULL)
			continue;
		cr_assert_eq(real->balance, model->balance, "account %lu balance", (unsigned long)id);
		cr_assert_eq(real->held, model->held, "account %lu held", (unsigned long)id);
		cr_assert_eq(real->flags, model->flags, "account %lu flags", (unsigned long)id);
		cr_assert_eq(real->limit_overdraft, model->overdraft);
	}
	cr_assert_eq(ledger_hold_count(ledger), pending_holds);
}

static void seed_accounts(struct ledger_request *batch, uint32_t *count)
{
	for (uint64_t id = 1; id <= 30; id++) {
		struct ledger_request *r = &batch[(*count)++];
		memset(r, 0, sizeof(*r));
		r->id = next_id++;
		r->timestamp_us = now;
		r->kind = LEDGER_KIND_OPEN;
		r->account_id = id;
		r->currency = id >= 28 ? LT_USD : LT_EUR;
		r->flags = (uint8_t)(id <= 2 ? LEDGER_ACCOUNT_FUNDING : id % 4 == 0 ? LEDGER_ACCOUNT_MERCHANT : 0);
		r->amount = id % 3 == 0 ? 200 : 0;
		r->limit_payment = id % 5 == 0 ? 250 : 0;
		r->limit_daily = id % 7 == 0 ? 1500 : 0;
	}
	for (uint64_t id = 3; id <= 27; id++) {
		struct ledger_request *r = &batch[(*count)++];
		memset(r, 0, sizeof(*r));
		r->id = next_id++;
		r->timestamp_us = now;
		r->kind = LEDGER_KIND_DEPOSIT;
		r->account_id = 1;
		r->other_id = id;
		r->amount = 5000;
		r->currency = LT_EUR;
	}
}

static void run(uint64_t seed)
{
	memset(accounts, 0, sizeof(accounts));
	memset(holds, 0, sizeof(holds));
	transfers = calloc(TRANSFER_IDS, sizeof(*transfers));
	cr_assert_not_null(transfers);
	hold_total = pending_holds = account_count = recent_count = hold_seen = 0;
	rng = seed;
	next_id = 1;
	now = LT_T0;
	struct ledger_config config;
	lt_config(&config);
	config.accounts_max = ACCOUNTS_MAX;
	config.holds_max = HOLDS_MAX;
	config.transfers_max = TRANSFER_IDS;
	struct lt t;
	lt_init(&t, &config);
	static struct ledger_request batch[64];
	static struct ledger_result results[64];
	uint64_t sequence = 0, ops = 0, seen[LEDGER_RESULT_CODE_COUNT] = { 0 }, duplicates = 0;
	uint32_t count = 0;
	seed_accounts(batch, &count);
	while (ops < OPS) {
		uint64_t jump = next() % 1000;
		now += jump < 900 ? next() % 20 : jump < 995 ? next() % (10 * LT_SECOND) : LT_DAY / 3;
		if (count == 0) {
			count = 1 + (uint32_t)(next() % 4);
			for (uint32_t i = 0; i < count; i++)
				batch[i] = generate();
		}
		cr_assert_eq(ledger_apply(t.ledger, now, batch, results, count), count);
		model_expire();
		for (uint32_t i = 0; i < count; i++) {
			bool duplicate;
			uint64_t amount;
			int code = model_decide(&batch[i], &duplicate, &amount);
			const struct ledger_result *res = &results[i];
			bool read_only = batch[i].kind == LEDGER_KIND_BALANCE || batch[i].kind == LEDGER_KIND_LOOKUP;
			cr_assert_eq(res->code, code, "seed %lu op %lu kind %u: ledger %s, model %s",
				     (unsigned long)seed, (unsigned long)ops, batch[i].kind,
				     ledger_result_name(res->code), ledger_result_name((unsigned)code));
			cr_assert_eq(!!(res->flags & LEDGER_RESULT_DUPLICATE), duplicate, "op %lu duplicate", (unsigned long)ops);
			cr_assert_eq(res->flags & ~LEDGER_RESULT_DUPLICATE, read_only ? 0 : LEDGER_RESULT_JOURNAL);
			cr_assert_eq(res->sequence, read_only ? 0 : ++sequence);
			cr_assert_eq(res->amount, amount, "op %lu amount", (unsigned long)ops);
			const struct model_account *a = account_of(batch[i].account_id);
			cr_assert_eq(res->balance, a ? available(a) : 0, "op %lu balance", (unsigned long)ops);
			seen[res->code]++;
			duplicates += duplicate;
			ops++;
		}
		struct ledger_violation violation;
		cr_assert_eq(ledger_check_invariants(t.ledger, &violation), 0, "op %lu: %s", (unsigned long)ops, violation.text);
		compare_accounts(t.ledger);
		if (ops % 20000 < 4)
			cr_assert_eq(ledger_check_window(t.ledger, &violation), 0, "%s", violation.text);
		count = 0;
	}
	/* The generator must reach every code a single-shard ledger can give. */
	for (unsigned code = 0; code <= LEDGER_INVALID_LIMITS; code++) {
		cr_log_info("seed %lu %-22s %lu", (unsigned long)seed, ledger_result_name(code),
			    (unsigned long)seen[code]);
		cr_expect_gt(seen[code], 0, "seed %lu never produced %s", (unsigned long)seed,
			     ledger_result_name(code));
	}
	cr_expect_gt(duplicates, 100);
	lt_fini(&t);
	free(transfers);
}

Test(random, seed_1, .timeout = 120) { run(0x9E3779B97F4A7C15u); }
Test(random, seed_2, .timeout = 120) { run(0xD1B54A32D192ED03u); }
Test(random, seed_3, .timeout = 120) { run(0x8CB92BA72F3D8DD7u); }
Test(random, seed_4, .timeout = 120) { run(12345); }
