/* ledger_test_util.c — helpers shared by the ledger core tests. */
#include <string.h>

#include "ledger_test_util.h"

void lt_config(struct ledger_config *config)
{
	ledger_config_default(config);
	config->accounts_max = 1024;
	config->transfers_max = 4096;
	config->holds_max = 64;
}

void lt_init(struct lt *t, const struct ledger_config *config)
{
	struct ledger_config local;
	if (config == NULL) {
		lt_config(&local);
		config = &local;
	}
	int error = 0;
	t->ledger = ledger_create(config, &error);
	cr_assert_not_null(t->ledger, "ledger_create: %d", error);
	t->now = LT_T0;
	t->next_id = 1000;
}

void lt_fini(struct lt *t)
{
	ledger_destroy(t->ledger);
	t->ledger = NULL;
}

struct ledger_request lt_req(struct lt *t, uint8_t kind, uint64_t account, uint64_t other,
			     uint64_t amount)
{
	struct ledger_request request;
	memset(&request, 0, sizeof(request));
	request.id = t->next_id++;
	request.timestamp_us = t->now;
	request.account_id = account;
	request.other_id = other;
	request.amount = amount;
	request.currency = LT_EUR;
	request.kind = kind;
	return request;
}

struct ledger_result lt_do(struct lt *t, struct ledger_request request)
{
	struct ledger_result result;
	cr_assert_eq(ledger_apply(t->ledger, t->now, &request, &result, 1), 1);
	cr_assert_eq(result.id, request.id);
	struct ledger_violation violation;
	cr_assert_eq(ledger_check_invariants(t->ledger, &violation), 0, "%s", violation.text);
	cr_assert_eq(ledger_check_window(t->ledger, &violation), 0, "%s", violation.text);
	return result;
}

void lt_open(struct lt *t, uint64_t account, uint8_t flags, uint64_t overdraft,
	     uint64_t limit_payment, uint64_t limit_daily)
{
	struct ledger_request request = lt_req(t, LEDGER_KIND_OPEN, account, 0, overdraft);
	request.flags = flags;
	request.limit_payment = limit_payment;
	request.limit_daily = limit_daily;
	struct ledger_result result = lt_do(t, request);
	LT_CODE(result, LEDGER_OK);
}

struct ledger_result lt_pay(struct lt *t, uint64_t from, uint64_t to, uint64_t amount)
{
	return lt_do(t, lt_req(t, LEDGER_KIND_PAY, from, to, amount));
}

struct ledger_result lt_deposit(struct lt *t, uint64_t funding, uint64_t to, uint64_t amount)
{
	return lt_do(t, lt_req(t, LEDGER_KIND_DEPOSIT, funding, to, amount));
}

struct ledger_result lt_hold(struct lt *t, uint64_t from, uint64_t to, uint64_t amount,
			     uint64_t timeout_us)
{
	struct ledger_request request = lt_req(t, LEDGER_KIND_HOLD, from, to, amount);
	request.hold_timeout_us = timeout_us;
	return lt_do(t, request);
}

struct ledger_result lt_capture(struct lt *t, uint64_t account, uint64_t hold, uint64_t amount)
{
	struct ledger_request request = lt_req(t, LEDGER_KIND_CAPTURE, account, 0, amount);
	request.reference_id = hold;
	return lt_do(t, request);
}

struct ledger_result lt_void(struct lt *t, uint64_t account, uint64_t hold)
{
	struct ledger_request request = lt_req(t, LEDGER_KIND_VOID, account, 0, 0);
	request.reference_id = hold;
	return lt_do(t, request);
}

struct ledger_result lt_refund(struct lt *t, uint64_t merchant, uint64_t customer,
			       uint64_t payment, uint64_t amount)
{
	struct ledger_request request = lt_req(t, LEDGER_KIND_REFUND, merchant, customer, amount);
	request.reference_id = payment;
	return lt_do(t, request);
}

int64_t lt_balance(struct lt *t, uint64_t account)
{
	const struct ledger_account *record = ledger_account_get(t->ledger, account);
	cr_assert_not_null(record, "account %lu", (unsigned long)account);
	return record->balance;
}

uint64_t lt_held(struct lt *t, uint64_t account)
{
	const struct ledger_account *record = ledger_account_get(t->ledger, account);
	cr_assert_not_null(record);
	return record->held;
}
