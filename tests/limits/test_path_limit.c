/*
 * test_path_limit.c — the one path limit (JOURNAL_PATH_MAX, ledger/journal.h)
 * and the audit's check of a shard dir's names (issue 16, defect 1), through
 * the ledger library. The binary is tested by test_paths.sh.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "journal_internal.h"

static char root[64];

static void make_root(void)
{
	snprintf(root, sizeof(root), "/tmp/payswitch-path-limit-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
}

static void remove_root(void)
{
	char command[128];
	snprintf(command, sizeof(command), "rm -rf '%s'", root);
	cr_assert_eq(system(command), 0);
}

TestSuite(path_limit, .init = make_root, .fini = remove_root);

/* A path of exactly `length` bytes under root, in components of at most 200
 * bytes; its parents are created, the last component is not. */
static void path_of_length(char *path, size_t length)
{
	cr_assert_lt(length, JOURNAL_PATH_MAX + 64);
	size_t at = (size_t)snprintf(path, JOURNAL_PATH_MAX + 64, "%s", root);
	while (at < length) {
		size_t room = length - at - 1, part = room > 200 ? 200 : room;
		if (room - part == 1)
			part--;
		if (at > strlen(root))
			cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
		path[at++] = '/';
		memset(path + at, 'p', part);
		at += part;
		path[at] = '\0';
	}
	cr_assert_eq(strlen(path), length);
}

static void format(const char *dir, int expected)
{
	struct ledger_config config;
	ledger_config_default(&config);
	config.accounts_max = 64;
	config.transfers_max = 256;
	config.holds_max = 16;
	struct journal_error error = { 0 };
	cr_assert_eq(journal_format_dir(dir, 2, &config, &error), expected, "%s", error.text);
}

Test(path_limit, the_limit_and_the_longest_name_fill_a_path_exactly)
{
	cr_assert_eq(JOURNAL_DATA_DIR_BYTES_MAX, 461);
	char dir[JOURNAL_PATH_MAX + 64], path[JOURNAL_PATH_MAX];
	memset(dir, 'd', JOURNAL_DATA_DIR_BYTES_MAX);
	dir[JOURNAL_DATA_DIR_BYTES_MAX] = '\0';
	cr_assert_eq(journal_data_dir_check(dir, NULL), 0);
	cr_assert_eq(journal_path_format(path, sizeof(path), "%s/shard-%03u/snapshot-%" PRIu64
					 ".snap.tmp", dir, JOURNAL_SHARDS_MAX - 1, UINT64_MAX), 0);
	cr_assert_eq(strlen(path), JOURNAL_PATH_MAX - 1);
	cr_assert_eq(journal_segment_path(path, sizeof(path), dir, JOURNAL_SHARDS_MAX - 1,
					  UINT32_MAX), 0);
	/* One byte more: every builder says so instead of truncating. */
	dir[JOURNAL_DATA_DIR_BYTES_MAX] = 'd';
	dir[JOURNAL_DATA_DIR_BYTES_MAX + 1] = '\0';
	struct journal_error error = { 0 };
	cr_assert_eq(journal_data_dir_check(dir, &error), -ENAMETOOLONG);
	cr_assert_not_null(strstr(error.text, "is 462 bytes long; the limit is 461 bytes"), "%s",
			   error.text);
	cr_assert_eq(journal_path_format(path, sizeof(path), "%s/shard-%03u/snapshot-%" PRIu64
					 ".snap.tmp", dir, JOURNAL_SHARDS_MAX - 1, UINT64_MAX),
		     -ENAMETOOLONG);
	memset(dir, 'd', JOURNAL_PATH_MAX);
	dir[JOURNAL_PATH_MAX - 5] = '\0';
	cr_assert_eq(journal_shard_dir(path, sizeof(path), dir, 0), -ENAMETOOLONG);
	cr_assert_eq(journal_segment_path(path, sizeof(path), dir, 0, 0), -ENAMETOOLONG);
	cr_assert_eq(journal_data_dir_check("", NULL), -EINVAL);
}

Test(path_limit, format_and_meta_read_refuse_a_data_dir_over_the_limit)
{
	char dir[JOURNAL_PATH_MAX + 64];
	path_of_length(dir, JOURNAL_DATA_DIR_BYTES_MAX + 1);
	format(dir, -ENAMETOOLONG);
	struct stat status;
	cr_assert_neq(stat(dir, &status), 0, "format created the dir it refused");
	struct journal_meta meta;
	struct journal_error error = { 0 };
	cr_assert_eq(journal_meta_read(dir, &meta, &error), -ENAMETOOLONG);
	cr_assert_not_null(strstr(error.text, "the limit is 461 bytes"), "%s", error.text);
	struct journal_audit_options options = { .out = NULL };
	struct journal_audit_report report;
	cr_assert_eq(journal_audit(dir, &options, &report), 2);
	cr_assert_not_null(strstr(report.first_violation, "the limit is 461 bytes"));
}

/* Format, write and read a journal, snapshot and audit at exactly the limit. */
Test(path_limit, a_data_dir_of_the_limit_holds_every_file)
{
	char dir[JOURNAL_PATH_MAX + 64];
	path_of_length(dir, JOURNAL_DATA_DIR_BYTES_MAX);
	format(dir, 0);
	struct journal_meta meta;
	struct journal_error error = { 0 };
	cr_assert_eq(journal_meta_read(dir, &meta, &error), 0, "%s", error.text);
	struct ledger_config config;
	journal_meta_shard_config(&meta, 1, &config);
	int created;
	struct ledger *ledger = ledger_create(&config, &created);
	cr_assert_not_null(ledger);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	options.preallocate_bytes = 0;
	struct journal_writer *writer = journal_writer_open(dir, 1, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	cr_assert_eq(journal_writer_close(writer), 0);
	cr_assert_eq(journal_snapshot_write(dir, 1, ledger, &error), 0, "%s", error.text);
	ledger_destroy(ledger);
	struct journal_audit_options audit_options = { .out = NULL };
	struct journal_audit_report report;
	cr_assert_eq(journal_audit(dir, &audit_options, &report), 0, "%s", report.first_violation);
	cr_assert_eq(report.snapshots_compared, 1);
}

static int audit_with(const char *dir, const char *name, struct journal_audit_report *report)
{
	char path[JOURNAL_PATH_MAX];
	cr_assert_eq(journal_path_format(path, sizeof(path), "%s/shard-001/%s", dir, name), 0);
	FILE *file = fopen(path, "w");
	cr_assert_not_null(file);
	fclose(file);
	struct journal_audit_options options = { .out = NULL };
	int status = journal_audit(dir, &options, report);
	cr_assert_eq(remove(path), 0);
	return status;
}

Test(path_limit, the_audit_fails_on_a_name_the_writers_never_write)
{
	static const char *const unknown[] = { "journal-000000", "journal-1.seg",
		"journal-00000001.seg.bak", "journal-+0000001.seg", "snapshot-007.snap",
		"snapshot-.snap", "snapshot-5.snap.tmp.1", "payswitch.meta", "core", ".hidden" };
	char dir[128], expected[JOURNAL_ERROR_TEXT_BYTES];
	snprintf(dir, sizeof(dir), "%s/data", root);
	format(dir, 0);
	struct journal_audit_report report;
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		/* 1, or 2 where the scan also trips on the name: the segment list
		 * reads journal-1.seg as segment 1 and finds segment 0 missing. */
		int status = audit_with(dir, unknown[i], &report);
		cr_assert(status == 1 || status == 2, "%s: status %d", unknown[i], status);
		cr_assert_geq(report.violations, 1);
		snprintf(expected, sizeof(expected), "%s/shard-001/%s: not a file the switch writes",
			 dir, unknown[i]);
		cr_assert_eq(strncmp(report.first_violation, expected, strlen(expected)), 0,
			     "%s", report.first_violation);
	}
	/* Names the writers write; an empty segment is then the scan's to judge. */
	cr_assert_eq(audit_with(dir, "snapshot-12.snap.tmp", &report), 0, "%s",
		     report.first_violation);
	cr_assert_eq(audit_with(dir, "snapshot-0.snap.tmp", &report), 0);
	cr_assert_eq(journal_audit_files(dir, 0, &report, NULL), 0);
}
