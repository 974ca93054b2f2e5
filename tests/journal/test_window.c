/* test_window.c — recovery with several groups in flight (JOURNAL.md,
 * "Writing and what a crash can leave"): a torn group followed by complete
 * groups within the tail window is a torn tail, cut back to the prefix
 * before it; the same with more complete groups behind it than could have
 * been in flight with it, or a flipped bit in an older group, is corruption.
 *
 * Layout: a writer with 4 groups in flight writes a workload, then 8 groups
 * of exactly one block (one deposit each, committed and made durable one by
 * one), so the last 8 blocks of the segment are the last 8 groups. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "journal_test_util.h"

#define WINDOW_GROUPS 4u
#define LAST_GROUPS 8u

static char dir[256];
static char path[300];
static uint8_t *original;
static size_t original_size;
static struct journal_writer_options options;

static void build(void)
{
	jt_dir_make(dir);
	jt_format(dir, 1);
	journal_writer_options_default(&options);
	options.groups_in_flight_max = WINDOW_GROUPS + 1;
	options.group_bytes_max = 64u << 10;
	options.preallocate_bytes = 0; /* the file ends at the last block */
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 31, 0, 0);
	jt_workload_setup(&workload, ledger, writer);
	cr_assert_eq(jt_run(&workload, ledger, writer, 500), 0);
	for (uint32_t i = 0; i < LAST_GROUPS; i++) {
		struct ledger_request request = {.id = 1u << 30 | i, .kind = LEDGER_KIND_DEPOSIT,
			.timestamp_us = workload.now_us, .account_id = JT_FUNDING,
			.other_id = 1000 + i, .amount = 1 + i, .currency = JT_EUR};
		struct ledger_result result;
		cr_assert_eq(jt_apply(ledger, writer, workload.now_us, &request, &result, 1), 0);
		while (journal_in_flight(writer) > 0)
			cr_assert_geq(journal_poll(writer, true), 0);
	}
	cr_assert_eq(journal_writer_close(writer), 0);
	ledger_destroy(ledger);
	jt_segment_path(path, dir, 0, 0);
	FILE *file = fopen(path, "rb");
	cr_assert_not_null(file);
	fseek(file, 0, SEEK_END);
	original_size = (size_t)ftell(file);
	fseek(file, 0, SEEK_SET);
	original = malloc(original_size);
	cr_assert_eq(fread(original, 1, original_size, file), original_size);
	fclose(file);
	cr_assert_eq(original_size % JOURNAL_BLOCK_BYTES, 0);
	cr_assert_gt(original_size, (LAST_GROUPS + 8) * JOURNAL_BLOCK_BYTES);
}

static void teardown(void)
{
	free(original);
	jt_dir_remove(dir);
}

TestSuite(journal_window, .init = build, .fini = teardown);

static void store(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, size), (ssize_t)size);
	close(fd);
}

/* Offset of the block `back` blocks before the end (1 = the last). */
static size_t from_end(size_t back) { return original_size - back * JOURNAL_BLOCK_BYTES; }

/* First sequence of the block at `offset` (block header bytes 32..39). */
static uint64_t first_sequence_at(size_t offset)
{
	uint64_t sequence;
	memcpy(&sequence, original + offset + 32, sizeof(sequence));
	return sequence;
}

/* The group `back` blocks from the end is wholly missing (zeros, as a write
 * that never reached the disk), with `back - 1` complete groups behind it. */
static void tear(size_t back)
{
	uint8_t *copy = malloc(original_size);
	memcpy(copy, original, original_size);
	memset(copy + from_end(back), 0, JOURNAL_BLOCK_BYTES);
	store(copy, original_size);
	free(copy);
}

static void expect_torn_tail(size_t back)
{
	size_t offset = from_end(back);
	uint64_t prefix = first_sequence_at(offset) - 1;
	struct ledger *ledger = jt_ledger(0, 1);
	struct journal_recovery_report report;
	struct journal_error error = {0};
	cr_assert_eq(journal_recover(dir, 0, ledger, &report, &error), 0,
		     "torn group %zu from the end (%zu complete groups behind it, window %u"
		     " groups): %s", back, back - 1, WINDOW_GROUPS, error.text);
	cr_assert(report.torn_tail);
	cr_assert_eq(report.last_sequence, prefix, "recovered to the prefix before the torn group");
	cr_assert_eq(jt_file_size(path), (int64_t)offset, "cut at the torn group, groups behind it too");
	printf("window: torn group %zu from the end, %zu complete behind it, %u in flight:"
	       " torn tail, recovered to sequence %llu\n", back, back - 1, WINDOW_GROUPS,
	       (unsigned long long)prefix);
	/* Clean afterwards: a writer continues, recovery and audit pass. */
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct jt_workload next;
	jt_workload_init(&next, 32, 1ull << 40, ledger_now(ledger));
	cr_assert_eq(jt_run(&next, ledger, writer, 100), 0);
	cr_assert_eq(journal_writer_close(writer), 0);
	struct ledger *again = jt_ledger(0, 1);
	cr_assert_eq(journal_recover(dir, 0, again, &report, &error), 0, "%s", error.text);
	cr_assert_not(report.torn_tail);
	jt_assert_ledgers_equal(ledger, again);
	struct journal_audit_options audit_options = {0};
	struct journal_audit_report audit;
	cr_assert_eq(journal_audit(dir, &audit_options, &audit), 0, "%s", audit.first_violation);
	ledger_destroy(again);
	ledger_destroy(ledger);
}

static void expect_corruption(size_t offset, const char *what)
{
	struct ledger *ledger = jt_ledger(0, 1);
	struct journal_recovery_report report;
	struct journal_error error = {0};
	cr_assert_eq(journal_recover(dir, 0, ledger, &report, &error), -EBADMSG, "%s: %s", what,
		     error.text);
	char needle[64];
	snprintf(needle, sizeof(needle), "offset %zu", offset);
	cr_assert(strstr(error.text, path) && strstr(error.text, needle), "%s: '%s'", what,
		  error.text);
	cr_assert_eq(jt_file_size(path), (int64_t)original_size, "%s: nothing cut", what);
	ledger_destroy(ledger);
	struct journal_audit_options audit_options = {0};
	struct journal_audit_report audit;
	cr_assert_eq(journal_audit(dir, &audit_options, &audit), 1, "%s", what);
	printf("window: %s: corruption: %s\n", what, error.text);
}

Test(journal_window, torn_last_group)
{
	/* A zeroed last group would be the zero tail (a clean end): cut the
	 * file inside the last block instead, as a crash mid-write can. */
	store(original, from_end(1) + 40); /* inside the block header: nothing salvaged */
	expect_torn_tail(1);
}

Test(journal_window, torn_group_with_complete_groups_behind_it)
{
	tear(3);
	expect_torn_tail(3);
}

Test(journal_window, torn_group_with_the_most_complete_groups_behind_it)
{
	tear(WINDOW_GROUPS); /* it and the 3 behind it: 4 in flight at once */
	expect_torn_tail(WINDOW_GROUPS);
}

Test(journal_window, torn_group_beyond_the_window)
{
	tear(WINDOW_GROUPS + 1); /* 4 complete groups behind it: 5 in flight, impossible */
	expect_corruption(from_end(WINDOW_GROUPS + 1), "torn group beyond the window");
}

Test(journal_window, flipped_bit_in_a_middle_group)
{
	uint8_t *copy = malloc(original_size);
	memcpy(copy, original, original_size);
	size_t offset = from_end(LAST_GROUPS - 1);
	copy[offset + JOURNAL_BLOCK_HEADER_BYTES + 17] ^= 4;
	store(copy, original_size);
	free(copy);
	expect_corruption(offset, "bit flip in a middle group");
}

Test(journal_window, segment_without_a_window_allows_only_the_last_group)
{
	/* An older writer's segment (window fields at 48..55 zero, header hash
	 * at 56 redone): a torn group with a complete group behind it is
	 * corruption, as it always was. */
	uint8_t *copy = malloc(original_size);
	memcpy(copy, original, original_size);
	memset(copy + 48, 0, 8);
	uint64_t hash = XXH3_64bits(copy, 56);
	memcpy(copy + 56, &hash, sizeof(hash));
	memset(copy + from_end(2), 0, JOURNAL_BLOCK_BYTES);
	store(copy, original_size);
	free(copy);
	expect_corruption(from_end(2), "old segment, torn group with one behind it");
}
