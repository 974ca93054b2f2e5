/* test_snapshot.c — recovery from snapshot + tail equals full replay; a
 * corrupt newest snapshot falls back to the older one; two are kept. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_test_util.h"

static char dir[256];
static void setup(void) { jt_dir_make(dir); }
static void teardown(void) { jt_dir_remove(dir); }
TestSuite(journal_snapshot, .init = setup, .fini = teardown);

static void wait_durable(struct journal_writer *writer, const struct ledger *ledger)
{
	while (journal_durable_sequence(writer) < ledger_sequence(ledger))
		cr_assert_geq(journal_poll(writer, true), 0);
}

static void snapshot_path(char *path, uint64_t sequence)
{
	sprintf(path, "%s/shard-000/snapshot-%" PRIu64 ".snap", dir, sequence);
}

Test(journal_snapshot, snapshot_plus_tail_equals_full_replay)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 31, 0, 0);
	jt_workload_setup(&workload, ledger, writer);
	uint64_t snapshots[3];
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(jt_run(&workload, ledger, writer, 1500), 0);
		wait_durable(writer, ledger);
		cr_assert_eq(journal_snapshot_write(dir, 0, ledger, &error), 0, "%s", error.text);
		snapshots[i] = ledger_sequence(ledger);
	}
	cr_assert_eq(jt_run(&workload, ledger, writer, 1500), 0);
	cr_assert_eq(journal_writer_close(writer), 0);
	char path[300];
	snapshot_path(path, snapshots[0]);
	cr_assert_eq(access(path, F_OK), -1, "only the newest two are kept");

	struct journal_recovery_report report;
	struct ledger *from_snapshot = jt_ledger(0, 1);
	cr_assert_eq(journal_recover(dir, 0, from_snapshot, &report, &error), 0, "%s", error.text);
	cr_assert_eq(report.snapshot_sequence, snapshots[2]);
	cr_assert_eq(report.records_replayed, ledger_sequence(ledger) - snapshots[2]);
	jt_assert_ledgers_equal(ledger, from_snapshot);

	/* The newest snapshot corrupted: the older one and a longer tail. */
	snapshot_path(path, snapshots[2]);
	int fd = open(path, O_RDWR);
	uint8_t byte;
	cr_assert_eq(pread(fd, &byte, 1, 200), 1);
	byte ^= 0x40;
	cr_assert_eq(pwrite(fd, &byte, 1, 200), 1);
	close(fd);
	struct ledger *fallback = jt_ledger(0, 1);
	cr_assert_eq(journal_recover(dir, 0, fallback, &report, &error), 0, "%s", error.text);
	cr_assert_eq(report.snapshot_sequence, snapshots[1]);
	jt_assert_ledgers_equal(ledger, fallback);

	/* Both gone bad: full replay from genesis, same state. */
	snapshot_path(path, snapshots[1]);
	cr_assert_eq(truncate(path, 100), 0);
	struct ledger *full = jt_ledger(0, 1);
	cr_assert_eq(journal_recover(dir, 0, full, &report, &error), 0, "%s", error.text);
	cr_assert_eq(report.snapshot_sequence, 0);
	cr_assert_eq(report.records_replayed, ledger_sequence(ledger));
	jt_assert_ledgers_equal(ledger, full);
	ledger_destroy(full);
	ledger_destroy(fallback);
	ledger_destroy(from_snapshot);
	ledger_destroy(ledger);
}

Test(journal_snapshot, snapshot_ahead_of_the_journal_is_skipped)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 32, 0, 0);
	jt_workload_setup(&workload, ledger, writer);
	cr_assert_eq(jt_run(&workload, ledger, writer, 500), 0);
	cr_assert_eq(journal_writer_close(writer), 0);
	/* Decisions applied but never journaled, then snapshotted: a broken
	 * promise of the caller that recovery must not believe. */
	struct ledger_request requests[8];
	struct ledger_result results[8];
	for (int i = 0; i < 8; i++)
		jt_workload_next(&workload, &requests[i]);
	ledger_apply(ledger, workload.now_us + 1, requests, results, 8);
	cr_assert_eq(journal_snapshot_write(dir, 0, ledger, &error), 0, "%s", error.text);
	struct ledger *recovered = jt_ledger(0, 1);
	struct journal_recovery_report report;
	cr_assert_eq(journal_recover(dir, 0, recovered, &report, &error), 0, "%s", error.text);
	cr_assert_eq(report.snapshot_sequence, 0);
	cr_assert_lt(ledger_sequence(recovered), ledger_sequence(ledger));
	ledger_destroy(recovered);
	ledger_destroy(ledger);
}

/* Online snapshots: capture, store (a .tmp only, which recovery ignores),
 * publish with retention; a torn newest falls back; temp files are cleaned. */
Test(journal_snapshot, online_capture_store_publish_retain_and_clean)
{
	jt_format(dir, 1);
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	struct journal_error error = {0};
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	cr_assert_not_null(writer, "%s", error.text);
	struct ledger *ledger = jt_ledger(0, 1);
	struct jt_workload workload;
	jt_workload_init(&workload, 33, 0, 0);
	jt_workload_setup(&workload, ledger, writer);
	struct journal_snapshot_image image = {0};
	uint64_t sequences[4];
	char path[300], temporary[320];
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(jt_run(&workload, ledger, writer, 700), 0);
		cr_assert_eq(journal_snapshot_capture(ledger, &image), 0);
		sequences[i] = image.sequence;
		cr_assert_eq(image.sequence, ledger_sequence(ledger));
		cr_assert_eq(journal_snapshot_store(dir, &image, &error), 0, "%s", error.text);
		snapshot_path(path, image.sequence);
		snprintf(temporary, sizeof(temporary), "%s.tmp", path);
		cr_assert_eq(access(temporary, F_OK), 0, "stored as a temp file");
		cr_assert_eq(access(path, F_OK), -1, "not published before it is durable");
		wait_durable(writer, ledger);
		cr_assert_eq(journal_snapshot_publish(dir, &image, 3, &error), 0, "%s", error.text);
		cr_assert_eq(access(path, F_OK), 0);
		cr_assert_eq(access(temporary, F_OK), -1);
	}
	snapshot_path(path, sequences[0]);
	cr_assert_eq(access(path, F_OK), -1, "retain 3: the oldest of 4 is pruned");
	for (int i = 1; i < 4; i++) {
		snapshot_path(path, sequences[i]);
		cr_assert_eq(access(path, F_OK), 0, "retain 3 keeps snapshot %d", i);
	}
	/* A capture stored but never published (a crash before durability). */
	cr_assert_eq(jt_run(&workload, ledger, writer, 300), 0);
	cr_assert_eq(journal_snapshot_capture(ledger, &image), 0);
	cr_assert_eq(journal_snapshot_store(dir, &image, &error), 0, "%s", error.text);
	cr_assert_eq(journal_writer_close(writer), 0);

	/* The newest published snapshot torn (cut in its body): the one before. */
	snapshot_path(path, sequences[3]);
	struct stat status;
	cr_assert_eq(stat(path, &status), 0);
	cr_assert_eq(truncate(path, status.st_size / 2), 0);
	struct journal_recovery_report report;
	struct ledger *recovered = jt_ledger(0, 1);
	cr_assert_eq(journal_recover(dir, 0, recovered, &report, &error), 0, "%s", error.text);
	cr_assert_eq(report.snapshot_sequence, sequences[2], "fell back to the older snapshot");
	jt_assert_ledgers_equal(ledger, recovered);

	/* Start-up removes the temp file and nothing else. */
	cr_assert_eq(journal_snapshot_clean_temp(dir, 0), 1);
	snapshot_path(path, image.sequence);
	snprintf(temporary, sizeof(temporary), "%s.tmp", path);
	cr_assert_eq(access(temporary, F_OK), -1);
	snapshot_path(path, sequences[2]);
	cr_assert_eq(access(path, F_OK), 0);
	cr_assert_eq(journal_snapshot_clean_temp(dir, 0), 0);

	/* Pruning to one keeps only the newest. */
	cr_assert_eq(journal_snapshot_prune(dir, 0, 1), 0);
	snapshot_path(path, sequences[2]);
	cr_assert_eq(access(path, F_OK), -1);
	snapshot_path(path, sequences[3]);
	cr_assert_eq(access(path, F_OK), 0);
	journal_snapshot_image_free(&image);
	ledger_destroy(recovered);
	ledger_destroy(ledger);
}
