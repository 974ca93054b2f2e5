/* test_torn.c — a journal cut at every byte offset of its last block
 * recovers to the last whole record, names the file and offset in a log
 * line, and is clean afterwards (the writer continues the chain). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal_test_util.h"

static char dir[256];
static char log_text[4096];

static void capture_log(void *context, const char *line)
{
	(void)context;
	snprintf(log_text, sizeof(log_text), "%s", line);
}

static void setup(void)
{
	jt_dir_make(dir);
	jt_transfers_max = 4096;
	journal_set_log(capture_log, NULL);
}

static void teardown(void)
{
	journal_set_log(NULL, NULL);
	jt_dir_remove(dir);
}

TestSuite(journal_torn, .init = setup, .fini = teardown);

static uint8_t *read_file(const char *path, size_t *size)
{
	FILE *file = fopen(path, "rb");
	cr_assert_not_null(file);
	fseek(file, 0, SEEK_END);
	*size = (size_t)ftell(file);
	fseek(file, 0, SEEK_SET);
	uint8_t *data = malloc(*size);
	cr_assert_eq(fread(data, 1, *size, file), *size);
	fclose(file);
	return data;
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, size), (ssize_t)size);
	close(fd);
}

Test(journal_torn, every_byte_of_the_last_block)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	/* The byte-exact end of the file is the end of the journal here;
	 * test_prealloc.c covers torn groups before a zero tail. */
	options.preallocate_bytes = 0;
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 11, 0, 0);
	jt_workload_setup(&workload, ledger, writer);
	cr_assert_eq(jt_run(&workload, ledger, writer, 300), 0);
	/* A last group of one full block: 42 records in one commit. */
	struct ledger_request requests[JOURNAL_BLOCK_RECORDS];
	struct ledger_result results[JOURNAL_BLOCK_RECORDS];
	for (uint32_t i = 0; i < JOURNAL_BLOCK_RECORDS; i++) {
		requests[i] = (struct ledger_request){.id = 1u << 30 | i, .kind = LEDGER_KIND_DEPOSIT,
			.timestamp_us = workload.now_us, .account_id = JT_FUNDING,
			.other_id = 1000 + i, .amount = 1 + i, .currency = JT_EUR};
	}
	uint64_t before = ledger_sequence(ledger);
	cr_assert_eq(jt_apply(ledger, writer, workload.now_us, requests, results,
			      JOURNAL_BLOCK_RECORDS), 0);
	cr_assert_eq(ledger_sequence(ledger), before + JOURNAL_BLOCK_RECORDS);
	cr_assert_eq(journal_writer_close(writer), 0);
	ledger_destroy(ledger);

	char path[300];
	jt_segment_path(path, dir, 0, 0);
	size_t size;
	uint8_t *original = read_file(path, &size);
	size_t last_block = size - JOURNAL_BLOCK_BYTES;
	for (size_t cut = 0; cut < JOURNAL_BLOCK_BYTES; cut++) {
		uint64_t whole = cut < JOURNAL_BLOCK_HEADER_BYTES ? 0
				 : (cut - JOURNAL_BLOCK_HEADER_BYTES) / JOURNAL_RECORD_BYTES;
		write_file(path, original, last_block + cut);
		log_text[0] = 0;
		/* Every byte: the verified scan recovery uses, read-only (fast). */
		struct journal_reader *reader = journal_reader_open(dir, 0, 0, 0, &error);
		cr_assert_not_null(reader, "%s", error.text);
		const struct journal_record *records;
		int count;
		while ((count = journal_reader_next(reader, &records, NULL, &error)) > 0)
			;
		cr_assert_eq(count, 0, "cut %zu: %s", cut, error.text);
		cr_assert_eq(journal_reader_sequence(reader), before + whole, "cut %zu", cut);
		cr_assert_eq(journal_reader_torn(reader, NULL, 0), cut != 0, "cut %zu", cut);
		journal_reader_close(reader);
		if (cut != 0) {
			char offset[64];
			snprintf(offset, sizeof(offset), "offset %zu", last_block);
			cr_assert(strstr(log_text, "torn tail") && strstr(log_text, path) &&
				  strstr(log_text, offset), "cut %zu: log '%s'", cut, log_text);
		}
		/* Around every record boundary and on a stride: the full recovery,
		 * which cuts and rewrites, and a writer that continues after it. */
		size_t into_record = (cut + JOURNAL_RECORD_BYTES - JOURNAL_BLOCK_HEADER_BYTES) %
				     JOURNAL_RECORD_BYTES;
		if (cut % 61 != 0 && into_record > 1 && into_record < JOURNAL_RECORD_BYTES - 1)
			continue;
		struct ledger *recovered = jt_ledger(0, 1);
		struct journal_recovery_report report;
		int result = journal_recover(dir, 0, recovered, &report, &error);
		cr_assert_eq(result, 0, "cut %zu: %s", cut, error.text);
		cr_assert_eq(report.last_sequence, before + whole, "cut %zu", cut);
		cr_assert_eq(report.torn_tail, cut != 0, "cut %zu", cut);
		cr_assert_eq(jt_file_size(path) % JOURNAL_BLOCK_BYTES, 0);
		if (cut % 61 == 1 || cut == JOURNAL_BLOCK_BYTES - 1) {
			struct ledger *again = jt_ledger(0, 1);
			struct journal_recovery_report report_again;
			cr_assert_eq(journal_recover(dir, 0, again, &report_again, &error), 0, "%s",
				     error.text);
			cr_assert_not(report_again.torn_tail);
			jt_assert_ledgers_equal(recovered, again);
			struct journal_writer *more = journal_writer_open(dir, 0, &options, &error);
			cr_assert_not_null(more, "%s", error.text);
			struct jt_workload next;
			jt_workload_init(&next, 12, 1ull << 40, ledger_now(again));
			cr_assert_eq(jt_run(&next, again, more, 50), 0);
			cr_assert_eq(journal_writer_close(more), 0);
			struct ledger *third = jt_ledger(0, 1);
			cr_assert_eq(journal_recover(dir, 0, third, &report_again, &error), 0, "%s",
				     error.text);
			jt_assert_ledgers_equal(again, third);
			ledger_destroy(third);
			ledger_destroy(again);
		}
		ledger_destroy(recovered);
	}
	free(original);
}
