/* test_audit.c — the audit: clean pass with counts, totals and snapshot
 * comparison; statement and JSON; a forged record whose checksums were
 * recomputed is caught by the replay; command line exit codes. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal_internal.h"
#include "journal_test_util.h"

static char dir[256];
static struct ledger *live;

static void build(void)
{
	jt_dir_make(dir);
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	live = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 51, 0, 0);
	jt_workload_setup(&workload, live, writer);
	cr_assert_eq(jt_run(&workload, live, writer, 2000), 0);
	while (journal_durable_sequence(writer) < ledger_sequence(live))
		journal_poll(writer, true);
	cr_assert_eq(journal_snapshot_write(dir, 0, live, &error), 0, "%s", error.text);
	cr_assert_eq(jt_run(&workload, live, writer, 2000), 0);
	cr_assert_eq(journal_writer_close(writer), 0);
}

static void teardown(void)
{
	ledger_destroy(live);
	jt_dir_remove(dir);
}

TestSuite(journal_audit, .init = build, .fini = teardown);

Test(journal_audit, clean)
{
	struct journal_audit_options options = {.check_every_records = 500};
	struct journal_audit_report report;
	cr_assert_eq(journal_audit(dir, &options, &report), 0, "%s", report.first_violation);
	cr_assert_eq(report.records, ledger_sequence(live));
	cr_assert_eq(report.snapshots_compared, 1);
	cr_assert_eq(report.accounts, ledger_account_count(live));
	cr_assert_eq(report.duplicate_approvals, 0);
	cr_assert_eq(report.currency_count, 1);
	cr_assert_eq(report.currencies[0].balance_sum + report.currencies[0].transit, 0);
	cr_assert_gt(report.records_by_code[LEDGER_OK], 0);
}

Test(journal_audit, statement_and_json)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);
	struct journal_audit_options options = {.has_account = true, .account_id = 1000,
		.json = true, .out = out};
	struct journal_audit_report report;
	cr_assert_eq(journal_audit(dir, &options, &report), 0);
	fclose(out);
	cr_assert(strstr(text, "\"ok\":true"), "%s", text);
	cr_assert(strstr(text, "\"statement\":[{"), "%s", text);
	char balance[64];
	snprintf(balance, sizeof(balance), "\"balance\":%ld}]",
		 (long)ledger_account_get(live, 1000)->balance);
	cr_assert(strstr(text, balance), "last statement line carries the final balance %s", balance);
	free(text);
}

Test(journal_audit, forged_record_with_valid_checksums)
{
	char path[300];
	jt_segment_path(path, dir, 0, 0);
	int fd = open(path, O_RDWR);
	off_t size = lseek(fd, 0, SEEK_END);
	uint8_t block[JOURNAL_BLOCK_BYTES];
	/* The last block of data, below the preallocated zero tail. */
	off_t at = size - JOURNAL_BLOCK_BYTES;
	for (;;) {
		cr_assert_eq(pread(fd, block, sizeof(block), at), (ssize_t)sizeof(block));
		if (((const struct journal_block_header *)block)->magic != 0)
			break;
		at -= JOURNAL_BLOCK_BYTES;
		cr_assert_gt(at, 0);
	}
	struct journal_record *record = (struct journal_record *)(block + JOURNAL_BLOCK_HEADER_BYTES);
	record->balance += 100; /* a forger who knows the format */
	record->checksum = (uint32_t)journal_hash(record, offsetof(struct journal_record, checksum));
	journal_block_seal(block);
	cr_assert_eq(pwrite(fd, block, sizeof(block), at), (ssize_t)sizeof(block));
	close(fd);
	struct journal_audit_options options = {0};
	struct journal_audit_report report;
	cr_assert_eq(journal_audit(dir, &options, &report), 1);
	cr_assert(strstr(report.first_violation, "differs") && strstr(report.first_violation, path),
		  "%s", report.first_violation);
}

Test(journal_audit, command_line)
{
	char *help[] = {"audit", "--help", NULL};
	char *none[] = {"audit", NULL};
	char *bad[] = {"audit", dir, "--account", "x", NULL};
	char *missing[] = {"audit", "/nonexistent-payswitch-dir", NULL};
	cr_assert_eq(journal_audit_main(2, help), 0);
	cr_assert_eq(journal_audit_main(1, none), 2);
	cr_assert_eq(journal_audit_main(4, bad), 2);
	cr_assert_eq(journal_audit_main(2, missing), 2);
}
