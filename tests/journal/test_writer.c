/* test_writer.c — format, writer, reader: round trip, segment rotation,
 * reopen continuing the chain, group bounds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "journal_test_util.h"

static char dir[256];

static void setup(void) { jt_dir_make(dir); }
static void teardown(void) { jt_dir_remove(dir); }

TestSuite(journal_writer, .init = setup, .fini = teardown);

static void small_options(struct journal_writer_options *options)
{
	journal_writer_options_default(options);
	options->segment_bytes_max = 128u << 10; /* rotate every ~31 blocks */
	options->group_bytes_max = 16u << 10;
}

/* Reads the whole shard; returns records and checks sequences are 1..n. */
static uint64_t read_all(uint32_t shard)
{
	struct journal_error error = {0};
	struct journal_reader *reader = journal_reader_open(dir, shard, 0, 0, &error);
	cr_assert_not_null(reader, "%s", error.text);
	const struct journal_record *records;
	struct journal_position position;
	uint64_t total = 0;
	int count;
	while ((count = journal_reader_next(reader, &records, &position, &error)) > 0)
		for (int i = 0; i < count; i++)
			cr_assert_eq(records[i].sequence, ++total);
	cr_assert_eq(count, 0, "%s", error.text);
	cr_assert_not(journal_reader_torn(reader, NULL, 0));
	journal_reader_close(reader);
	return total;
}

Test(journal_writer, record_checksum)
{
	struct ledger_request request = {.id = 7, .kind = LEDGER_KIND_PAY, .currency = JT_EUR};
	struct ledger_result result = {.id = 7, .sequence = 3, .flags = LEDGER_RESULT_JOURNAL};
	struct journal_record record;
	journal_record_make(&record, 42, &request, &result);
	cr_assert(journal_record_valid(&record));
	record.request.amount ^= 1;
	cr_assert_not(journal_record_valid(&record));
}

Test(journal_writer, format_twice_refused)
{
	jt_format(dir, 2);
	struct ledger_config config;
	jt_config(&config);
	struct journal_error error = {0};
	cr_assert_eq(journal_format_dir(dir, 2, &config, &error), -EEXIST);
	struct journal_meta meta;
	cr_assert_eq(journal_meta_read(dir, &meta, &error), 0, "%s", error.text);
	cr_assert_eq(meta.shard_count, 2);
	cr_assert_eq(meta.config.accounts_max, config.accounts_max);
}

Test(journal_writer, round_trip_rotation_reopen)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	small_options(&options);
	struct journal_error error = {0};
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 1, 0, 0);
	for (int session = 0; session < 3; session++) {
		struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
		cr_assert_not_null(writer, "%s", error.text);
		cr_assert_eq(journal_durable_sequence(writer), ledger_sequence(ledger));
		jt_workload_setup(&workload, ledger, writer);
		cr_assert_eq(jt_run(&workload, ledger, writer, 3000), 0);
		cr_assert_eq(journal_writer_close(writer), 0);
		cr_assert_eq(read_all(0), ledger_sequence(ledger));
	}
	char path[300];
	jt_segment_path(path, dir, 0, 2);
	cr_assert_gt(jt_file_size(path), 0, "segments rotated");

	/* Recovery from the journal alone gives the same ledger. */
	struct ledger *recovered = jt_ledger(0, 1);
	struct journal_recovery_report report;
	cr_assert_eq(journal_recover(dir, 0, recovered, &report, &error), 0, "%s", error.text);
	jt_assert_ledgers_equal(ledger, recovered);
	cr_assert_eq(report.records_replayed, ledger_sequence(ledger));
	ledger_destroy(recovered);
	ledger_destroy(ledger);
}

Test(journal_writer, group_full_and_in_flight_bounds)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	options.group_bytes_max = 8192; /* 84 records */
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger_request request = {.kind = LEDGER_KIND_BALANCE, .currency = JT_EUR};
	struct ledger_result result = {.flags = LEDGER_RESULT_JOURNAL};
	uint32_t appended = 0;
	for (;;) {
		request.id = result.id = appended + 1;
		result.sequence = appended + 1;
		int code = journal_append(writer, JT_T0, &request, &result);
		if (code == -ENOBUFS)
			break;
		cr_assert_eq(code, 0);
		appended++;
	}
	cr_assert_eq(appended, 2 * JOURNAL_BLOCK_RECORDS);
	cr_assert_eq(journal_commit(writer), 0);
	cr_assert_eq(journal_appended_sequence(writer), appended);
	int64_t durable;
	while ((durable = journal_poll(writer, true)) < (int64_t)appended)
		cr_assert_geq(durable, 0);
	struct journal_writer_stats stats;
	journal_writer_stats(writer, &stats);
	cr_assert_eq(stats.commits_completed, 1);
	cr_assert_eq(stats.commit_latency.count, 1);
	cr_assert_eq(stats.bytes_written, 8192);
	cr_assert_eq(journal_writer_close(writer), 0);
	cr_assert_eq(read_all(0), appended);
}

Test(journal_writer, direct_and_unsafe_modes)
{
	struct journal_error error = {0};
	for (uint32_t mode = 0; mode < 2; mode++) {
		char sub[300];
		snprintf(sub, sizeof(sub), "%s/mode-%u", dir, mode);
		jt_format(sub, 1);
		struct journal_writer_options options;
		small_options(&options);
		options.sync = mode == 0 ? JOURNAL_SYNC_DIRECT_DSYNC : JOURNAL_SYNC_FDATASYNC;
		options.mode = mode == 0 ? JOURNAL_MODE_DURABLE : JOURNAL_MODE_UNSAFE_ACK_BEFORE_SYNC;
		struct ledger *ledger = jt_ledger(0, 1);
		struct jt_workload workload;
		jt_workload_init(&workload, 5 + mode, 0, 0);
		struct journal_writer *writer = journal_writer_open(sub, 0, &options, &error);
		cr_assert_not_null(writer, "%s", error.text);
		jt_workload_setup(&workload, ledger, writer);
		cr_assert_eq(jt_run(&workload, ledger, writer, 2000), 0);
		cr_assert_eq(journal_writer_close(writer), 0);
		struct ledger *recovered = jt_ledger(0, 1);
		struct journal_recovery_report report;
		cr_assert_eq(journal_recover(sub, 0, recovered, &report, &error), 0, "%s", error.text);
		jt_assert_ledgers_equal(ledger, recovered);
		ledger_destroy(recovered);
		ledger_destroy(ledger);
	}
}
