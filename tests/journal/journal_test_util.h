/* journal_test_util.h — helpers shared by the journal tests: temporary data
 * dirs, a small ledger config, a random workload driven through the ledger
 * and the real writer. */
#ifndef PAYSWITCH_JOURNAL_TEST_UTIL_H
#define PAYSWITCH_JOURNAL_TEST_UTIL_H

#include <stdint.h>

#include "journal.h"
#include "ledger.h"

#define JT_EUR LEDGER_CURRENCY_DEFAULT
#define JT_T0 (UINT64_C(1700000000) * 1000000)
#define JT_FUNDING 1u
#define JT_MERCHANTS 8u
#define JT_CUSTOMERS 200u
#define JT_RECENT 256u

/* A fresh dir under /tmp (path has room for 256 bytes); removed by jt_dir_remove. */
void jt_dir_make(char *path);
void jt_dir_remove(const char *path);
/* Deduplication window of jt_config(): tests that create thousands of
 * ledgers (torn) shrink it to stay fast under ASan. */
extern uint64_t jt_transfers_max;
void jt_config(struct ledger_config *config);
/* Formats `dir` with `shards` shards of jt_config(). */
void jt_format(const char *dir, uint32_t shards);
struct ledger *jt_ledger(uint32_t shard, uint32_t shards);

struct jt_workload {
	uint64_t rng;
	uint64_t next_id;
	uint64_t now_us;
	struct ledger_request recent[JT_RECENT]; /* for duplicates, captures, refunds */
	uint32_t recent_count;
	uint32_t shard_count;
};

/* id_base keeps ids of different runs apart. now_us starts at max(JT_T0, start). */
void jt_workload_init(struct jt_workload *workload, uint64_t seed, uint64_t id_base,
		      uint64_t start_us);
/* Opens the accounts and funds them (if `ledger` has none yet). */
void jt_workload_setup(struct jt_workload *workload, struct ledger *ledger,
		       struct journal_writer *writer);
/* One random request at workload->now_us. */
void jt_workload_next(struct jt_workload *workload, struct ledger_request *request);

/* Applies `count` requests in order at now_us and appends every journaled
 * result (committing and polling when the group is full). Returns 0 or the
 * writer's -errno. */
int jt_apply(struct ledger *ledger, struct journal_writer *writer, uint64_t now_us,
	     const struct ledger_request *requests, struct ledger_result *results,
	     uint32_t count);
/* Runs `count` random requests in batches of up to 32, one commit per batch. */
int jt_run(struct jt_workload *workload, struct ledger *ledger, struct journal_writer *writer,
	   uint32_t count);

/* Runs batches of 50 requests, at most `rounds` of them, until the writer
 * fails (a file size limit is set), then polls until the failure surfaces.
 * Asserts that it did, with EIO or EFBIG, and returns that -errno. */
int jt_run_until_failure(struct jt_workload *workload, struct ledger *ledger,
			 struct journal_writer *writer, uint32_t rounds);

/* Asserts that two ledgers hold the same accounts, counts and sequence. */
void jt_assert_ledgers_equal(const struct ledger *a, const struct ledger *b);
/* Size of a file, or -1. */
int64_t jt_file_size(const char *path);
void jt_segment_path(char *path, const char *dir, uint32_t shard, uint32_t segment);

#endif
