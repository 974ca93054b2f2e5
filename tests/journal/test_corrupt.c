/* test_corrupt.c — a flipped bit in an earlier block (header or record), a
 * removed block and two swapped blocks are named (file + offset) and
 * recovery refuses; the audit fails too. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal_test_util.h"

static char dir[256];
static char path[300];
static uint8_t *original;
static size_t original_size;

static void build(void)
{
	jt_dir_make(dir);
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 21, 0, 0);
	jt_workload_setup(&workload, ledger, writer);
	cr_assert_eq(jt_run(&workload, ledger, writer, 3000), 0);
	cr_assert_eq(journal_writer_close(writer), 0);
	ledger_destroy(ledger);
	jt_segment_path(path, dir, 0, 0);
	FILE *file = fopen(path, "rb");
	fseek(file, 0, SEEK_END);
	original_size = (size_t)ftell(file);
	fseek(file, 0, SEEK_SET);
	original = malloc(original_size);
	cr_assert_eq(fread(original, 1, original_size, file), original_size);
	fclose(file);
	cr_assert_gt(original_size, 40 * JOURNAL_BLOCK_BYTES);
}

static void teardown(void)
{
	free(original);
	jt_dir_remove(dir);
}

TestSuite(journal_corrupt, .init = build, .fini = teardown);

static void store(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_eq(write(fd, data, size), (ssize_t)size);
	close(fd);
}

/* Recovery and audit must refuse, naming the file and `offset`. */
static void expect_refused(size_t offset, const char *what)
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
	ledger_destroy(ledger);
	struct journal_audit_options options = {0};
	struct journal_audit_report audit;
	cr_assert_eq(journal_audit(dir, &options, &audit), 1, "%s", what);
	cr_assert(strstr(audit.first_violation, needle), "%s: '%s'", what, audit.first_violation);
}

static size_t block_offset(size_t block) { return JOURNAL_SEGMENT_HEADER_BYTES + block * JOURNAL_BLOCK_BYTES; }

Test(journal_corrupt, flipped_bit_in_a_header)
{
	uint8_t *copy = malloc(original_size);
	for (size_t byte = 0; byte < JOURNAL_BLOCK_HEADER_BYTES; byte += 7) {
		memcpy(copy, original, original_size);
		copy[block_offset(5) + byte] ^= 0x10;
		store(copy, original_size);
		expect_refused(block_offset(5), "header bit");
	}
	free(copy);
}

Test(journal_corrupt, flipped_bit_in_a_record)
{
	uint8_t *copy = malloc(original_size);
	memcpy(copy, original, original_size);
	copy[block_offset(7) + JOURNAL_BLOCK_HEADER_BYTES + 3 * JOURNAL_RECORD_BYTES + 17] ^= 1;
	store(copy, original_size);
	expect_refused(block_offset(7), "record bit");
	free(copy);
}

Test(journal_corrupt, removed_block)
{
	uint8_t *copy = malloc(original_size);
	size_t at = block_offset(9);
	memcpy(copy, original, at);
	memcpy(copy + at, original + at + JOURNAL_BLOCK_BYTES, original_size - at - JOURNAL_BLOCK_BYTES);
	store(copy, original_size - JOURNAL_BLOCK_BYTES);
	expect_refused(at, "removed block");
	free(copy);
}

Test(journal_corrupt, swapped_blocks)
{
	uint8_t *copy = malloc(original_size);
	memcpy(copy, original, original_size);
	memcpy(copy + block_offset(12), original + block_offset(13), JOURNAL_BLOCK_BYTES);
	memcpy(copy + block_offset(13), original + block_offset(12), JOURNAL_BLOCK_BYTES);
	store(copy, original_size);
	expect_refused(block_offset(12), "swapped blocks");
	free(copy);
}

Test(journal_corrupt, zeroed_block_in_the_middle)
{
	uint8_t *copy = malloc(original_size);
	memcpy(copy, original, original_size);
	memset(copy + block_offset(15), 0, JOURNAL_BLOCK_BYTES);
	store(copy, original_size);
	expect_refused(block_offset(15), "zeroed block");
	free(copy);
}

Test(journal_corrupt, segment_header)
{
	uint8_t *copy = malloc(original_size);
	memcpy(copy, original, original_size);
	copy[9] ^= 4;
	store(copy, original_size);
	expect_refused(0, "segment header");
	free(copy);
}
