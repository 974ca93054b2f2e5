/* test_failure.c — a write that hits the file size limit (short write, or
 * EFBIG) fails the writer for good: nothing beyond the last synced sequence
 * is reported durable, every later call returns the error, the message
 * names the file; recovery afterwards keeps at least what was durable. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include "journal_test_util.h"

static char dir[256];
static void setup(void) { jt_dir_make(dir); }
static void teardown(void) { jt_dir_remove(dir); }
TestSuite(journal_failure, .init = setup, .fini = teardown);

static void fail_at(rlim_t limit_bytes, uint32_t group_bytes)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	options.group_bytes_max = group_bytes;
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 41, 0, 0);
	jt_workload_setup(&workload, ledger, writer);

	/* Criterion runs each test in its own process: the limit stays here. */
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit limit = {.rlim_cur = limit_bytes, .rlim_max = RLIM_INFINITY};
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
	int result = jt_run_until_failure(&workload, ledger, writer, 10000);
	uint64_t durable = journal_durable_sequence(writer);
	cr_assert_lt(durable, journal_appended_sequence(writer));
	cr_assert_eq(journal_writer_failed(writer, &error), result);
	cr_assert(strstr(error.text, "journal-00000000.seg"), "'%s'", error.text);

	/* Every later call: the same error, and durable does not move. */
	struct ledger_request request = {0};
	struct ledger_result next = {.flags = LEDGER_RESULT_JOURNAL,
		.sequence = journal_appended_sequence(writer) + 1};
	cr_assert_eq(journal_append(writer, workload.now_us, &request, &next), result);
	cr_assert_eq(journal_commit(writer), result);
	cr_assert_eq(journal_poll(writer, true), result);
	cr_assert_eq(journal_durable_sequence(writer), durable);
	cr_assert_eq(journal_writer_close(writer), result);

	limit.rlim_cur = RLIM_INFINITY;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
	struct ledger *recovered = jt_ledger(0, 1);
	struct journal_recovery_report report;
	cr_assert_eq(journal_recover(dir, 0, recovered, &report, &error), 0, "%s", error.text);
	cr_assert_geq(report.last_sequence, durable);
	ledger_destroy(recovered);
	ledger_destroy(ledger);
}

Test(journal_failure, short_write) { fail_at(40 * 4096 + 1000, 64u << 10); }
Test(journal_failure, efbig_at_a_block_boundary) { fail_at(30 * 4096, 4096); }
