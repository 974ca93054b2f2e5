/*
 * verify.h — before the run: open and fund the accounts and read their
 * balances; after it: compare every balance with the tally.
 *
 * Both talk to the switch through netio_client_call() (synchronous), so they
 * must not run while the driver has datagrams outstanding.
 */
#ifndef PAYSWITCH_BENCH_LOAD_VERIFY_H
#define PAYSWITCH_BENCH_LOAD_VERIFY_H

#include <stdio.h>

#include "load.h"

#define LOAD_MISMATCHES_KEPT 20u

struct load_mismatch {
	uint64_t account_id;
	int64_t expected;
	int64_t actual;
};

struct load_verification {
	bool done;
	uint64_t accounts_checked;
	uint64_t mismatches;
	uint32_t rounds;             /* balance reads until they agreed (or gave up) */
	struct load_mismatch kept[LOAD_MISMATCHES_KEPT];
	uint32_t kept_count;
	int64_t expected_sum;        /* sum of expected balances (the run's accounts) */
	int64_t actual_sum;
};

/* Opens every account (ACCOUNT_EXISTS is fine with use_existing), funds the
 * payers it opened, then reads every balance into expected[]. Returns 0, or
 * -EEXIST (accounts exist and use_existing is off), -ETIMEDOUT, -errno;
 * prints why on err. */
int load_setup(const struct load_config *config, const struct load_accounts *accounts,
	       struct netio_client *client, int64_t *expected, FILE *err);

/* Reads every balance and compares it with expected[]; re-reads for up to
 * ~5 s while they differ (cross-shard credits may still be on their way).
 * Fills *verification. Returns the number of accounts that differ (0: the
 * switch agrees with what the generator saw), or -errno. */
int64_t load_verify(const struct load_config *config, const struct load_accounts *accounts,
		    struct netio_client *client, const int64_t *expected,
		    struct load_verification *verification);

#endif
