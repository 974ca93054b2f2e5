/* journal_test_util.c — see journal_test_util.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_test_util.h"

void jt_dir_make(char *path)
{
	strcpy(path, "/tmp/journal-test-XXXXXX");
	cr_assert_not_null(mkdtemp(path));
}

static int remove_entry(const char *path, const struct stat *status, int flag, struct FTW *ftw)
{
	(void)status, (void)flag, (void)ftw;
	return remove(path);
}

void jt_dir_remove(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

uint64_t jt_transfers_max = 1u << 16;

void jt_config(struct ledger_config *config)
{
	ledger_config_default(config);
	config->accounts_max = 1024;
	config->transfers_max = jt_transfers_max;
	config->holds_max = 1024;
	config->hold_timeout_us = 2 * 1000000ull;
}

void jt_format(const char *dir, uint32_t shards)
{
	struct ledger_config config;
	jt_config(&config);
	struct journal_error error = {0};
	int result = journal_format_dir(dir, shards, &config, &error);
	cr_assert_eq(result, 0, "format: %s", error.text);
}

struct ledger *jt_ledger(uint32_t shard, uint32_t shards)
{
	struct ledger_config config;
	jt_config(&config);
	config.shard_index = shard;
	config.shard_count = shards;
	int error;
	struct ledger *ledger = ledger_create(&config, &error);
	cr_assert_not_null(ledger, "ledger_create: %d", error);
	return ledger;
}

static uint64_t rng_next(uint64_t *state)
{
	/* splitmix64: deterministic per seed. */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void jt_workload_init(struct jt_workload *workload, uint64_t seed, uint64_t id_base,
		      uint64_t start_us)
{
	memset(workload, 0, sizeof(*workload));
	workload->rng = seed;
	workload->next_id = id_base;
	workload->now_us = start_us > JT_T0 ? start_us : JT_T0;
	workload->shard_count = 1;
}

static struct ledger_request make(struct jt_workload *workload, uint8_t kind, uint64_t account,
				  uint64_t other, uint64_t amount)
{
	struct ledger_request request = {.id = ++workload->next_id,
		.timestamp_us = workload->now_us, .account_id = account, .other_id = other,
		.amount = amount, .currency = JT_EUR, .kind = kind};
	return request;
}

static uint64_t customer(struct jt_workload *workload)
{
	return 1000 + rng_next(&workload->rng) % JT_CUSTOMERS;
}

static uint64_t merchant(struct jt_workload *workload)
{
	return 100 + rng_next(&workload->rng) % JT_MERCHANTS;
}

void jt_workload_setup(struct jt_workload *workload, struct ledger *ledger,
		       struct journal_writer *writer)
{
	if (ledger_account_count(ledger) > 0)
		return;
	struct ledger_request requests[JT_CUSTOMERS * 2 + JT_MERCHANTS + 1];
	struct ledger_result results[JT_CUSTOMERS * 2 + JT_MERCHANTS + 1];
	uint32_t count = 0;
	requests[count] = make(workload, LEDGER_KIND_OPEN, JT_FUNDING, 0, 0);
	requests[count++].flags = LEDGER_ACCOUNT_FUNDING;
	for (uint32_t i = 0; i < JT_MERCHANTS; i++) {
		requests[count] = make(workload, LEDGER_KIND_OPEN, 100 + i, 0, 0);
		requests[count++].flags = LEDGER_ACCOUNT_MERCHANT;
	}
	for (uint32_t i = 0; i < JT_CUSTOMERS; i++)
		requests[count++] = make(workload, LEDGER_KIND_OPEN, 1000 + i, 0, 500);
	for (uint32_t i = 0; i < JT_CUSTOMERS; i++)
		requests[count++] = make(workload, LEDGER_KIND_DEPOSIT, JT_FUNDING, 1000 + i, 100000);
	cr_assert_eq(jt_apply(ledger, writer, workload->now_us, requests, results, count), 0);
	for (uint32_t i = 0; i < count; i++)
		cr_assert_eq(results[i].code, LEDGER_OK, "setup %u: %s", i,
			     ledger_result_name(results[i].code));
}

static const struct ledger_request *recent_pick(struct jt_workload *workload, uint8_t kind)
{
	if (workload->recent_count == 0)
		return NULL;
	uint32_t limit = workload->recent_count < JT_RECENT ? workload->recent_count : JT_RECENT;
	for (int tries = 0; tries < 8; tries++) {
		const struct ledger_request *request =
			&workload->recent[rng_next(&workload->rng) % limit];
		if (kind == 0 || request->kind == kind)
			return request;
	}
	return NULL;
}

void jt_workload_next(struct jt_workload *workload, struct ledger_request *request)
{
	uint64_t dice = rng_next(&workload->rng) % 100;
	uint64_t amount = 1 + rng_next(&workload->rng) % 3000;
	const struct ledger_request *earlier;
	if (dice < 40) {
		*request = make(workload, LEDGER_KIND_PAY, customer(workload),
				dice < 30 ? merchant(workload) : customer(workload), amount);
	} else if (dice < 50) {
		*request = make(workload, LEDGER_KIND_DEPOSIT, JT_FUNDING, customer(workload), amount);
	} else if (dice < 62) {
		*request = make(workload, LEDGER_KIND_HOLD, customer(workload), merchant(workload),
				amount);
	} else if (dice < 72 && (earlier = recent_pick(workload, LEDGER_KIND_HOLD)) != NULL) {
		*request = make(workload, LEDGER_KIND_CAPTURE, earlier->account_id, 0,
				dice < 67 ? 0 : amount % (earlier->amount + 1));
		request->reference_id = earlier->id;
	} else if (dice < 77 && (earlier = recent_pick(workload, LEDGER_KIND_HOLD)) != NULL) {
		*request = make(workload, LEDGER_KIND_VOID, earlier->account_id, 0, 0);
		request->reference_id = earlier->id;
	} else if (dice < 87 && (earlier = recent_pick(workload, LEDGER_KIND_PAY)) != NULL) {
		*request = make(workload, LEDGER_KIND_REFUND, earlier->other_id, earlier->account_id,
				1 + amount % earlier->amount);
		request->reference_id = earlier->id;
	} else if ((earlier = recent_pick(workload, 0)) != NULL) {
		*request = *earlier; /* a duplicate: same id, same fields */
		return;
	} else {
		*request = make(workload, LEDGER_KIND_BALANCE, customer(workload), 0, 0);
	}
	workload->recent[workload->recent_count++ % JT_RECENT] = *request;
}

int jt_apply(struct ledger *ledger, struct journal_writer *writer, uint64_t now_us,
	     const struct ledger_request *requests, struct ledger_result *results,
	     uint32_t count)
{
	ledger_apply(ledger, now_us, requests, results, count);
	for (uint32_t i = 0; i < count; i++) {
		if (!(results[i].flags & LEDGER_RESULT_JOURNAL))
			continue;
		int result;
		while ((result = journal_append(writer, now_us, &requests[i], &results[i])) == -ENOBUFS) {
			while ((result = journal_commit(writer)) == -EBUSY)
				if (journal_poll(writer, true) < 0)
					break;
			if (result != 0)
				return result;
		}
		if (result != 0)
			return result;
	}
	while (journal_commit(writer) == -EBUSY)
		if (journal_poll(writer, true) < 0)
			break;
	int64_t durable = journal_poll(writer, false);
	return durable < 0 ? (int)durable : 0;
}

int jt_run(struct jt_workload *workload, struct ledger *ledger, struct journal_writer *writer,
	   uint32_t count)
{
	struct ledger_request requests[32];
	struct ledger_result results[32];
	while (count > 0) {
		uint32_t batch = 1 + (uint32_t)(rng_next(&workload->rng) % 32);
		if (batch > count)
			batch = count;
		workload->now_us += rng_next(&workload->rng) % 20000;
		for (uint32_t i = 0; i < batch; i++)
			jt_workload_next(workload, &requests[i]);
		int result = jt_apply(ledger, writer, workload->now_us, requests, results, batch);
		if (result != 0)
			return result;
		count -= batch;
	}
	return 0;
}

static int visit_equal(const struct ledger_account *account, void *context)
{
	const struct ledger *other = context;
	const struct ledger_account *twin = ledger_account_get(other, account->id);
	if (twin == NULL || memcmp(twin, account, sizeof(*account)) != 0)
		return 1;
	return 0;
}

void jt_assert_ledgers_equal(const struct ledger *a, const struct ledger *b)
{
	cr_assert_eq(ledger_sequence(a), ledger_sequence(b), "sequence %" PRIu64 " vs %" PRIu64,
		     ledger_sequence(a), ledger_sequence(b));
	cr_assert_eq(ledger_account_count(a), ledger_account_count(b));
	cr_assert_eq(ledger_hold_count(a), ledger_hold_count(b));
	cr_assert_eq(ledger_account_foreach(a, visit_equal, (void *)b), 0, "accounts differ");
}

int64_t jt_file_size(const char *path)
{
	struct stat status;
	return stat(path, &status) == 0 ? (int64_t)status.st_size : -1;
}

void jt_segment_path(char *path, const char *dir, uint32_t shard, uint32_t segment)
{
	sprintf(path, "%s/shard-%03u/journal-%08u.seg", dir, shard, segment);
}

int jt_run_until_failure(struct jt_workload *workload, struct ledger *ledger,
			 struct journal_writer *writer, uint32_t rounds)
{
	int result = 0;
	for (uint32_t i = 0; i < rounds && result == 0; i++)
		result = jt_run(workload, ledger, writer, 50);
	while (result == 0) {
		int64_t polled = journal_poll(writer, true);
		result = polled < 0 ? (int)polled : 0;
		cr_assert(result != 0 || journal_in_flight(writer) > 0, "never failed");
	}
	cr_assert(result == -EIO || result == -EFBIG, "result %d", result);
	return result;
}
