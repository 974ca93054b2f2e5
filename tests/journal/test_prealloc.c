/* test_prealloc.c — segments preallocated with zeros ahead of the appends
 * (writer option preallocate_bytes). The zero tail after the last block is
 * the end of the journal, not a torn tail; a group torn before the zeros is
 * still a torn tail; a self-consistent block out in the zeros is corruption;
 * rollover preallocates the new segment and respects the size cap; after
 * recovery a writer continues over the preallocated zeros; a zero fill
 * refused for space stops preallocation, not the writer. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "journal_internal.h"
#include "journal_test_util.h"

static char dir[256];
static char path[300];
static void setup(void)
{
	jt_dir_make(dir);
	jt_segment_path(path, dir, 0, 0);
}
static void teardown(void) { jt_dir_remove(dir); }
TestSuite(journal_prealloc, .init = setup, .fini = teardown);

/* End of the last block holding a non-zero byte (4096: header only). */
static uint64_t data_end(const char *file)
{
	int fd = open(file, O_RDONLY);
	cr_assert_geq(fd, 0);
	int64_t size = jt_file_size(file);
	uint8_t block[JOURNAL_BLOCK_BYTES];
	uint64_t end = JOURNAL_SEGMENT_HEADER_BYTES;
	for (uint64_t at = (uint64_t)size / JOURNAL_BLOCK_BYTES; at-- > 1;) {
		cr_assert_eq(pread(fd, block, sizeof(block), (off_t)(at * JOURNAL_BLOCK_BYTES)),
			     (ssize_t)sizeof(block));
		bool zero = true;
		for (size_t i = 0; i < sizeof(block) && zero; i++)
			zero = block[i] == 0;
		if (!zero) {
			end = (at + 1) * JOURNAL_BLOCK_BYTES;
			break;
		}
	}
	close(fd);
	return end;
}

static void patch(const char *file, uint64_t offset, const void *data, size_t size)
{
	int fd = open(file, O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, data, size, (off_t)offset), (ssize_t)size);
	close(fd);
}

static void options_make(struct journal_writer_options *options)
{
	journal_writer_options_default(options);
	options->group_bytes_max = 4 * JOURNAL_BLOCK_BYTES;
	options->preallocate_bytes = 1u << 20;
}

/* Writes a journal whose last group is three full blocks; returns the live
 * ledger and the sequence before that last group. */
static struct ledger *write_journal(uint64_t *before)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	options_make(&options);
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 61, 0, 0);
	jt_workload_setup(&workload, ledger, writer);
	cr_assert_eq(jt_run(&workload, ledger, writer, 500), 0);
	enum { LAST = 3 * JOURNAL_BLOCK_RECORDS };
	struct ledger_request requests[LAST];
	struct ledger_result results[LAST];
	for (uint32_t i = 0; i < LAST; i++)
		requests[i] = (struct ledger_request){.id = 1u << 30 | i, .kind = LEDGER_KIND_DEPOSIT,
			.timestamp_us = workload.now_us, .account_id = JT_FUNDING,
			.other_id = 1000 + i % JT_CUSTOMERS, .amount = 1 + i, .currency = JT_EUR};
	*before = ledger_sequence(ledger);
	cr_assert_eq(jt_apply(ledger, writer, workload.now_us, requests, results, LAST), 0);
	cr_assert_eq(ledger_sequence(ledger), *before + LAST);
	struct journal_writer_stats stats;
	journal_writer_stats(writer, &stats);
	cr_assert_eq(journal_writer_close(writer), 0);
	cr_assert_gt(stats.bytes_preallocated, 0);
	cr_assert_not(stats.preallocate_stopped);
	/* Zeros ahead of the data, sized in whole blocks. */
	cr_assert_gt((uint64_t)jt_file_size(path), data_end(path));
	cr_assert_eq(jt_file_size(path) % JOURNAL_BLOCK_BYTES, 0);
	return ledger;
}

/* Reads the whole shard: 0 or the first error; sequence and torn out. */
static int read_all(uint64_t *sequence, bool *torn, struct journal_error *error)
{
	struct journal_reader *reader = journal_reader_open(dir, 0, 0, 0, error);
	cr_assert_not_null(reader, "%s", error->text);
	const struct journal_record *records;
	int count;
	while ((count = journal_reader_next(reader, &records, NULL, error)) > 0)
		;
	*sequence = journal_reader_sequence(reader);
	*torn = journal_reader_torn(reader, NULL, 0);
	journal_reader_close(reader);
	return count;
}

static struct ledger *recover(struct journal_recovery_report *report)
{
	struct journal_error error = {0};
	struct ledger *ledger = jt_ledger(0, 1);
	cr_assert_eq(journal_recover(dir, 0, ledger, report, &error), 0, "%s", error.text);
	return ledger;
}

/* Continues with a fresh writer over whatever recovery left, then checks
 * that a second recovery agrees with the ledger that wrote. */
static void continue_and_check(struct ledger *ledger, uint64_t seed)
{
	struct journal_writer_options options;
	options_make(&options);
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct jt_workload workload;
	jt_workload_init(&workload, seed, 1ull << 40, ledger_now(ledger));
	cr_assert_eq(jt_run(&workload, ledger, writer, 300), 0);
	cr_assert_eq(journal_writer_close(writer), 0);
	struct journal_recovery_report report;
	struct ledger *again = recover(&report);
	cr_assert_not(report.torn_tail, "%s", report.torn_text);
	jt_assert_ledgers_equal(ledger, again);
	ledger_destroy(again);
	struct journal_audit_options audit_options = {0};
	struct journal_audit_report audit;
	cr_assert_eq(journal_audit(dir, &audit_options, &audit), 0, "%s", audit.first_violation);
	cr_assert_eq(audit.torn_tails, 0);
}

Test(journal_prealloc, zero_tail_is_the_end)
{
	uint64_t before;
	struct ledger *live = write_journal(&before);
	int64_t size = jt_file_size(path);
	uint64_t sequence;
	bool torn;
	struct journal_error error = {0};
	cr_assert_eq(read_all(&sequence, &torn, &error), 0, "%s", error.text);
	cr_assert_eq(sequence, ledger_sequence(live));
	cr_assert_not(torn, "a zero tail is not a torn tail");
	struct journal_recovery_report report;
	struct ledger *recovered = recover(&report);
	cr_assert_not(report.torn_tail, "%s", report.torn_text);
	jt_assert_ledgers_equal(live, recovered);
	cr_assert_eq(jt_file_size(path), size, "recovery leaves the zero tail alone");
	struct journal_audit_options audit_options = {0};
	struct journal_audit_report audit;
	cr_assert_eq(journal_audit(dir, &audit_options, &audit), 0, "%s", audit.first_violation);
	cr_assert_eq(audit.torn_tails, 0);
	ledger_destroy(recovered);
	ledger_destroy(live);
}

Test(journal_prealloc, torn_group_hole_before_zeros)
{
	uint64_t before;
	struct ledger *live = write_journal(&before);
	uint64_t first = data_end(path) - 3 * JOURNAL_BLOCK_BYTES; /* the last group */
	uint8_t zeros[JOURNAL_BLOCK_BYTES] = {0};
	/* The middle block of the last group never reached the disk; the third
	 * (same group, own index) did. */
	patch(path, first + JOURNAL_BLOCK_BYTES, zeros, sizeof(zeros));
	uint64_t sequence;
	bool torn;
	struct journal_error error = {0};
	cr_assert_eq(read_all(&sequence, &torn, &error), 0, "%s", error.text);
	cr_assert(torn, "a hole in the last group is a torn tail");
	cr_assert_eq(sequence, before + JOURNAL_BLOCK_RECORDS);
	struct journal_recovery_report report;
	struct ledger *recovered = recover(&report);
	cr_assert(report.torn_tail);
	cr_assert_eq(report.last_sequence, before + JOURNAL_BLOCK_RECORDS);
	cr_assert_eq((uint64_t)jt_file_size(path), first + JOURNAL_BLOCK_BYTES, "cut at the hole");
	continue_and_check(recovered, 62);
	ledger_destroy(recovered);
	ledger_destroy(live);
}

Test(journal_prealloc, torn_block_before_zeros)
{
	uint64_t before;
	struct ledger *live = write_journal(&before);
	uint64_t first = data_end(path) - 3 * JOURNAL_BLOCK_BYTES;
	uint8_t zeros[JOURNAL_BLOCK_BYTES] = {0};
	/* The last block half written (its tail still the preallocated zeros):
	 * its first ten records survive. */
	uint64_t half = JOURNAL_BLOCK_HEADER_BYTES + 10 * JOURNAL_RECORD_BYTES + 5;
	patch(path, first + 2 * JOURNAL_BLOCK_BYTES + half, zeros, JOURNAL_BLOCK_BYTES - half);
	uint64_t sequence;
	bool torn;
	struct journal_error error = {0};
	cr_assert_eq(read_all(&sequence, &torn, &error), 0, "%s", error.text);
	cr_assert(torn);
	cr_assert_eq(sequence, before + 2 * JOURNAL_BLOCK_RECORDS + 10);
	struct journal_recovery_report report;
	struct ledger *recovered = recover(&report);
	cr_assert(report.torn_tail);
	cr_assert_eq(report.last_sequence, before + 2 * JOURNAL_BLOCK_RECORDS + 10);
	continue_and_check(recovered, 67);
	ledger_destroy(recovered);
	ledger_destroy(live);
}

Test(journal_prealloc, block_after_zeros_is_corruption)
{
	uint64_t before;
	struct ledger *live = write_journal(&before);
	uint64_t end = data_end(path);
	uint8_t block[JOURNAL_BLOCK_BYTES];
	int fd = open(path, O_RDONLY);
	cr_assert_eq(pread(fd, block, sizeof(block), (off_t)(end - JOURNAL_BLOCK_BYTES)),
		     (ssize_t)sizeof(block));
	close(fd);
	/* A self-consistent block out in the zeros, two blocks past the end. */
	patch(path, end + 2 * JOURNAL_BLOCK_BYTES, block, sizeof(block));
	uint64_t sequence;
	bool torn;
	struct journal_error error = {0};
	cr_assert_eq(read_all(&sequence, &torn, &error), -EBADMSG);
	cr_assert(strstr(error.text, path) && strstr(error.text, "corruption"), "%s", error.text);
	struct ledger *recovered = jt_ledger(0, 1);
	struct journal_recovery_report report;
	cr_assert_eq(journal_recover(dir, 0, recovered, &report, &error), -EBADMSG);
	struct journal_audit_options audit_options = {0};
	struct journal_audit_report audit;
	cr_assert_eq(journal_audit(dir, &audit_options, &audit), 1);
	ledger_destroy(recovered);
	ledger_destroy(live);
}

Test(journal_prealloc, rollover_with_preallocation)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	options.segment_bytes_max = (256u << 10) + 1000; /* not whole blocks: rounded down */
	options.group_bytes_max = 2 * JOURNAL_BLOCK_BYTES;
	options.preallocate_bytes = 64u << 10;
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *live = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 63, 0, 0);
	jt_workload_setup(&workload, live, writer);
	cr_assert_eq(jt_run(&workload, live, writer, 12000), 0);
	struct journal_writer_stats stats;
	journal_writer_stats(writer, &stats);
	cr_assert_eq(journal_writer_close(writer), 0);
	cr_assert_geq(stats.segments_created, 3, "%" PRIu64, stats.segments_created);
	cr_assert_gt(stats.bytes_preallocated, (stats.segments_created - 1) * (128u << 10));
	char segment[300];
	uint32_t count = 0;
	for (;; count++) {
		jt_segment_path(segment, dir, 0, count);
		int64_t size = jt_file_size(segment);
		if (size < 0)
			break;
		cr_assert_leq(size, 256 << 10, "segment %u: %" PRId64 " bytes", count, size);
		cr_assert_eq(size % JOURNAL_BLOCK_BYTES, 0);
	}
	cr_assert_eq(count, stats.segments_created);
	/* The new last segment was preallocated too. */
	jt_segment_path(segment, dir, 0, count - 1);
	cr_assert_gt((uint64_t)jt_file_size(segment), data_end(segment));
	struct journal_recovery_report report;
	struct ledger *recovered = recover(&report);
	cr_assert_not(report.torn_tail, "%s", report.torn_text);
	cr_assert_eq(report.segments, count);
	jt_assert_ledgers_equal(live, recovered);
	continue_and_check(recovered, 64);
	ledger_destroy(recovered);
	ledger_destroy(live);
}

Test(journal_prealloc, recovery_then_append_over_zeros)
{
	uint64_t before;
	struct ledger *live = write_journal(&before);
	int64_t size = jt_file_size(path);
	uint64_t end = data_end(path);
	struct journal_recovery_report report;
	struct ledger *recovered = recover(&report);
	cr_assert_not(report.torn_tail);
	jt_assert_ledgers_equal(live, recovered);
	continue_and_check(recovered, 65);
	/* The new groups went into the zeros: more data, no growth needed
	 * (300 records are far less than the 1 MiB preallocated). */
	cr_assert_gt(data_end(path), end);
	cr_assert_eq(jt_file_size(path), size, "%" PRId64 " vs %" PRId64, jt_file_size(path), size);
	ledger_destroy(recovered);
	ledger_destroy(live);
}

Test(journal_prealloc, zero_fill_refused_for_space_stops_preallocation)
{
	jt_format(dir, 1);
	/* Criterion runs each test in its own process: the limit stays here. */
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit limit = {.rlim_cur = 256u << 10, .rlim_max = RLIM_INFINITY};
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
	struct journal_writer_options options;
	options_make(&options);
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *live = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 66, 0, 0);
	jt_workload_setup(&workload, live, writer);
	while (journal_durable_sequence(writer) < ledger_sequence(live))
		cr_assert_geq(journal_poll(writer, true), 0);
	struct journal_writer_stats stats;
	journal_writer_stats(writer, &stats);
	cr_assert(stats.preallocate_stopped, "the 1 MiB zero fill met the 256 KiB limit");
	cr_assert_eq(journal_writer_failed(writer, NULL), 0, "the writer goes on");
	/* Data past the limit fails the writer the loud way. */
	int result = jt_run_until_failure(&workload, live, writer, 1000);
	uint64_t durable = journal_durable_sequence(writer);
	cr_assert_eq(journal_writer_close(writer), result);
	limit.rlim_cur = RLIM_INFINITY;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
	struct journal_recovery_report report;
	struct ledger *recovered = recover(&report);
	cr_assert_geq(report.last_sequence, durable);
	ledger_destroy(recovered);
	ledger_destroy(live);
}

Test(journal_prealloc, partial_zero_block_is_part_of_the_zero_tail)
{
	uint64_t before;
	struct ledger *live = write_journal(&before);
	/* A zero fill cut short mid-block by a full disk. */
	int64_t size = jt_file_size(path);
	cr_assert_eq(truncate(path, size + 1000), 0);
	uint64_t sequence;
	bool torn;
	struct journal_error error = {0};
	cr_assert_eq(read_all(&sequence, &torn, &error), 0, "%s", error.text);
	cr_assert_eq(sequence, ledger_sequence(live));
	cr_assert_not(torn);
	struct journal_recovery_report report;
	struct ledger *recovered = recover(&report);
	cr_assert_not(report.torn_tail, "%s", report.torn_text);
	jt_assert_ledgers_equal(live, recovered);
	continue_and_check(recovered, 68);
	ledger_destroy(recovered);
	ledger_destroy(live);
}
