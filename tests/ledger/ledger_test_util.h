/* ledger_test_util.h — small helpers shared by the ledger core tests. */
#ifndef PAYSWITCH_LEDGER_TEST_UTIL_H
#define PAYSWITCH_LEDGER_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdint.h>

#include "ledger.h"

#define LT_EUR 978
#define LT_USD 840
#define LT_T0 (UINT64_C(1700000000) * 1000000) /* 2023-11-14T22:13:20Z */
#define LT_SECOND UINT64_C(1000000)
#define LT_DAY (UINT64_C(86400) * LT_SECOND)

struct lt {
	struct ledger *ledger;
	uint64_t now;
	uint64_t next_id;
};

/* Small config used by most tests; the fields can be changed before lt_init. */
void lt_config(struct ledger_config *config);
void lt_init(struct lt *t, const struct ledger_config *config); /* NULL: lt_config() */
void lt_fini(struct lt *t);

/* A request with a fresh id, timestamp now, currency EUR. */
struct ledger_request lt_req(struct lt *t, uint8_t kind, uint64_t account, uint64_t other,
			     uint64_t amount);
/* Applies one request at t->now and asserts every invariant afterwards. */
struct ledger_result lt_do(struct lt *t, struct ledger_request request);

void lt_open(struct lt *t, uint64_t account, uint8_t flags, uint64_t overdraft,
	     uint64_t limit_payment, uint64_t limit_daily);
struct ledger_result lt_pay(struct lt *t, uint64_t from, uint64_t to, uint64_t amount);
struct ledger_result lt_deposit(struct lt *t, uint64_t funding, uint64_t to, uint64_t amount);
struct ledger_result lt_hold(struct lt *t, uint64_t from, uint64_t to, uint64_t amount,
			     uint64_t timeout_us);
struct ledger_result lt_capture(struct lt *t, uint64_t account, uint64_t hold, uint64_t amount);
struct ledger_result lt_void(struct lt *t, uint64_t account, uint64_t hold);
struct ledger_result lt_refund(struct lt *t, uint64_t merchant, uint64_t customer,
			       uint64_t payment, uint64_t amount);
int64_t lt_balance(struct lt *t, uint64_t account);
uint64_t lt_held(struct lt *t, uint64_t account);

#define LT_CODE(result, expected)                                                         \
	cr_assert_eq((result).code, (expected), "code %s, expected %s",                 \
		     ledger_result_name((result).code), ledger_result_name(expected))

#endif
