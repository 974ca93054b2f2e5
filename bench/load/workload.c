/*
 * workload.c — the micro-payment workload models.
 *
 * coffee: 2.50 to 6.50 in steps of 10 cents, to many merchants, Zipf-skewed
 *         (a few chains take most cups).
 * bills:  20.00 to 250.00 to a handful of utilities: Zipf over few payees
 *         makes them hot accounts, credited by every shard.
 * news:   0.50 to 3.00, recurring: a payer always pays the same publisher the
 *         same price (its subscription).
 * Refunds give back an approved payment (whole or half), holds authorize a
 * coffee or a bill first and are captured (partly or fully) or voided later.
 */
#include "workload.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t load_random(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static double uniform01(uint64_t *state)
{
	return (double)(load_random(state) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t uniform_range(uint64_t *state, uint64_t low, uint64_t high)
{
	assert(high >= low);
	return low + load_random(state) % (high - low + 1u);
}

void load_accounts_layout(const struct load_config *config, struct load_accounts *accounts)
{
	memset(accounts, 0, sizeof(*accounts));
	accounts->base = config->account_base;
	accounts->payers = config->payers;
	accounts->broke = (uint32_t)((double)config->payers * config->broke_share);
	accounts->merchants = config->merchants;
	accounts->utilities = config->utilities;
	accounts->publishers = config->publishers;
	accounts->first_payer = 1;
	accounts->first_merchant = accounts->first_payer + config->payers;
	accounts->first_utility = accounts->first_merchant + config->merchants;
	accounts->first_publisher = accounts->first_utility + config->utilities;
	accounts->total = accounts->first_publisher + config->publishers;
}

/* cdf[i] = P(rank <= i) for P(rank = k) proportional to 1 / (k + 1)^s. */
static double *zipf_cdf(uint32_t n, double s)
{
	double *cdf = malloc((size_t)n * sizeof(double));
	if (cdf == NULL)
		return NULL;
	double sum = 0;
	for (uint32_t i = 0; i < n; i++) {
		sum += 1.0 / pow((double)i + 1.0, s);
		cdf[i] = sum;
	}
	for (uint32_t i = 0; i < n; i++)
		cdf[i] /= sum;
	cdf[n - 1] = 1.0;
	return cdf;
}

uint32_t load_zipf_pick(const double *cdf, uint32_t n, double uniform)
{
	uint32_t low = 0, high = n - 1;
	while (low < high) {
		uint32_t middle = low + (high - low) / 2;
		if (cdf[middle] < uniform)
			low = middle + 1;
		else
			high = middle;
	}
	return low;
}

int load_workload_init(struct load_workload *workload, const struct load_config *config,
		       const struct load_accounts *accounts)
{
	memset(workload, 0, sizeof(*workload));
	assert(accounts->payers >= 1 && accounts->merchants >= 1 && accounts->utilities >= 1 &&
	       accounts->publishers >= 1);
	workload->config = config;
	workload->accounts = accounts;
	workload->rng = config->seed | 1u;
	workload->hold_delay_ns = 20u * 1000u * 1000u;
	for (uint32_t i = 0; i < LOAD_WORKLOADS; i++)
		workload->mix_total += config->mix[i];
	assert(workload->mix_total > 0);
	workload->merchant_cdf = zipf_cdf(accounts->merchants, config->zipf_s);
	workload->utility_cdf = zipf_cdf(accounts->utilities, config->zipf_s);
	workload->payments.entries = calloc(LOAD_MEMO_CAPACITY, sizeof(struct load_memo));
	workload->holds.entries = calloc(LOAD_MEMO_CAPACITY, sizeof(struct load_memo));
	if (!workload->merchant_cdf || !workload->utility_cdf || !workload->payments.entries ||
	    !workload->holds.entries) {
		load_workload_fini(workload);
		return -ENOMEM;
	}
	return 0;
}

void load_workload_fini(struct load_workload *workload)
{
	free(workload->merchant_cdf);
	free(workload->utility_cdf);
	free(workload->payments.entries);
	free(workload->holds.entries);
	memset(workload, 0, sizeof(*workload));
}

static uint32_t pick_payer(struct load_workload *workload)
{
	const struct load_accounts *accounts = workload->accounts;
	return accounts->first_payer + (uint32_t)(load_random(&workload->rng) % accounts->payers);
}

/* A PAY (or the HOLD of one) of workload `model`. */
static void make_payment(struct load_workload *workload, enum load_op model,
			 struct ledger_request *request, struct load_meta *meta)
{
	const struct load_accounts *accounts = workload->accounts;
	uint32_t payer = pick_payer(workload);
	uint32_t payee;
	uint64_t amount;
	if (model == LOAD_OP_COFFEE) {
		payee = accounts->first_merchant +
			load_zipf_pick(workload->merchant_cdf, accounts->merchants,
				       uniform01(&workload->rng));
		amount = 10u * uniform_range(&workload->rng, 25, 65);
	} else if (model == LOAD_OP_BILLS) {
		payee = accounts->first_utility +
			load_zipf_pick(workload->utility_cdf, accounts->utilities,
				       uniform01(&workload->rng));
		amount = uniform_range(&workload->rng, 2000, 25000);
	} else {
		/* A subscription: the payer's publisher and its price never change. */
		uint32_t publisher = (uint32_t)(((uint64_t)payer * 2654435761u) % accounts->publishers);
		payee = accounts->first_publisher + publisher;
		amount = 50u + (uint64_t)publisher * 37u % 251u;
	}
	request->kind = LEDGER_KIND_PAY;
	request->account_id = load_account_id(accounts, payer);
	request->other_id = load_account_id(accounts, payee);
	request->amount = amount;
	meta->op = (uint8_t)model;
	meta->payee = payee;
}

static bool make_refund(struct load_workload *workload, struct ledger_request *request,
			struct load_meta *meta)
{
	struct load_memo_ring *ring = &workload->payments;
	if (ring->head == ring->tail)
		return false;
	const struct load_memo *memo = &ring->entries[ring->head % LOAD_MEMO_CAPACITY];
	ring->head++;
	request->kind = LEDGER_KIND_REFUND;
	request->account_id = load_account_id(workload->accounts, memo->payee);
	request->other_id = load_account_id(workload->accounts, memo->payer);
	request->amount = (load_random(&workload->rng) & 1u) && memo->amount >= 2 ? memo->amount / 2
										    : memo->amount;
	request->reference_id = memo->id;
	meta->op = LOAD_OP_REFUND;
	meta->payee = memo->payer;
	return true;
}

/* Settles the oldest hold when it is old enough (or when settling). */
static bool make_settlement(struct load_workload *workload, uint64_t now_ns,
			    struct ledger_request *request, struct load_meta *meta)
{
	struct load_memo_ring *ring = &workload->holds;
	if (ring->head == ring->tail)
		return false;
	const struct load_memo *memo = &ring->entries[ring->head % LOAD_MEMO_CAPACITY];
	if (!workload->settling && now_ns - memo->time_ns < workload->hold_delay_ns)
		return false;
	ring->head++;
	request->account_id = load_account_id(workload->accounts, memo->payer);
	request->reference_id = memo->id;
	meta->payee = memo->payee;
	meta->hold_amount = memo->amount;
	/* Four in five holds are captured, of those half for less than held
	 * (a tip left out, a metered bill lower than authorized). */
	uint64_t draw = load_random(&workload->rng) % 10u;
	if (draw < 2) {
		request->kind = LEDGER_KIND_VOID;
		meta->op = LOAD_OP_VOID;
	} else {
		request->kind = LEDGER_KIND_CAPTURE;
		request->amount = draw < 6 ? memo->amount : memo->amount - memo->amount / 4;
		meta->op = LOAD_OP_CAPTURE;
	}
	return true;
}

bool load_workload_next(struct load_workload *workload, uint64_t now_ns,
			struct ledger_request *request, struct load_meta *meta)
{
	const struct load_config *config = workload->config;
	memset(request, 0, sizeof(*request));
	memset(meta, 0, sizeof(*meta));
	request->currency = config->currency;
	if (make_settlement(workload, now_ns, request, meta))
		return true;
	if (workload->settling)
		return false;
	double draw = uniform01(&workload->rng);
	if (draw < config->refund_share && make_refund(workload, request, meta))
		return true;
	uint32_t pick = (uint32_t)(load_random(&workload->rng) % workload->mix_total);
	enum load_op model = LOAD_OP_COFFEE;
	if (pick >= config->mix[0])
		model = pick < config->mix[0] + config->mix[1] ? LOAD_OP_BILLS : LOAD_OP_NEWS;
	make_payment(workload, model, request, meta);
	bool room = workload->holds.tail - workload->holds.head < LOAD_MEMO_CAPACITY / 2;
	if (model != LOAD_OP_NEWS && room && uniform01(&workload->rng) < config->hold_share) {
		request->kind = LEDGER_KIND_HOLD;
		meta->op = LOAD_OP_HOLD;
	}
	return true;
}

void load_workload_approved(struct load_workload *workload, const struct ledger_request *request,
			    const struct load_meta *meta, uint64_t amount, uint64_t now_ns)
{
	struct load_memo memo = {
		.id = request->id, .amount = amount, .time_ns = now_ns,
		.payer = (uint32_t)(request->account_id - workload->accounts->base),
		.payee = meta->payee,
	};
	struct load_memo_ring *ring;
	if (request->kind == LEDGER_KIND_HOLD) {
		ring = &workload->holds;
		/* Holds are only made while the ring is at most half full, but a
		 * deep window can have more in flight: a hold that finds the ring
		 * full stays pending (its amount is already tallied as held). */
		if (ring->tail - ring->head == LOAD_MEMO_CAPACITY)
			return;
	} else {
		if (workload->config->refund_share <= 0)
			return;
		ring = &workload->payments;
		if (ring->tail - ring->head == LOAD_MEMO_CAPACITY)
			ring->head++;   /* forget the oldest payment */
	}
	ring->entries[ring->tail % LOAD_MEMO_CAPACITY] = memo;
	ring->tail++;
}

uint64_t load_workload_holds_pending(const struct load_workload *workload)
{
	return workload->holds.tail - workload->holds.head;
}

void load_workload_defaults(struct load_config *config)
{
	config->currency = LEDGER_CURRENCY_DEFAULT;
	config->account_base = 1000000;
	config->payers = 20000;
	config->merchants = 2000;
	config->utilities = 8;
	config->publishers = 40;
	config->mix[0] = 60;
	config->mix[1] = 10;
	config->mix[2] = 30;
	config->zipf_s = 1.0;
	config->broke_share = 0.05;
	config->payer_funds_cents = 10000000;
	config->broke_funds_cents = 2000;
}
