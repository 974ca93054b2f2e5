/*
 * journal_bench.c — figures of the durable journal.
 *
 *  1. Durable append: records/s and MB/s against the group size (4 KiB ..
 *     1 MiB) and the groups in flight (1, 2, 4, 8; each its own write and
 *     sync) for write+fdatasync (linked) and O_DIRECT+RWF_DSYNC, with the
 *     commit latency (commit to durable as seen by journal_poll) p50/p99/p999.
 *  2. Replay: a journal of real decisions (N accounts, deposits, payments)
 *     recovered from genesis (warm page cache): records/s verified+applied;
 *     the audit of the same data: records/s.
 *  3. Recovery of N accounts from a snapshot + a tail.
 * Data goes under --dir (default build-journal/bench-data) and is removed.
 * Figures drift between machines: compare ratios within one run.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "ledger.h"

#define BENCH_T0 (UINT64_C(1700000000) * 1000000)
#define BENCH_EUR 978
#define LATENCY_RING 4096u

struct bench_options {
	char dir[200];
	double seconds;          /* per append configuration */
	uint64_t accounts;
	uint64_t records;        /* payments in the replay journal */
	uint32_t preallocate_bytes; /* writer option: zeros kept ahead, 0 = off */
	uint32_t only_group_bytes;  /* 0: every group size of the table */
	int only_sync;              /* -1: both sync methods */
	uint32_t only_in_flight;    /* 0: 1, 2, 4 and 8 groups in flight */
	bool no_replay;             /* only the append table */
	bool json;
};

static double now_seconds(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int remove_entry(const char *path, const struct stat *status, int flag, struct FTW *ftw)
{
	(void)status, (void)flag, (void)ftw;
	return remove(path);
}

static void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void die(const char *what, const char *text)
{
	fprintf(stderr, "journal_bench: %s: %s\n", what, text);
	exit(1);
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct append_figures {
	double records_per_second, mb_per_second, p50_us, p99_us, p999_us;
	uint64_t commits;
};

/* Appends synthetic records for `seconds`, one commit per full group. */
static void bench_append(const struct bench_options *options, enum journal_sync sync,
			 uint32_t group_bytes, uint32_t in_flight, struct append_figures *figures)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/append", options->dir);
	remove_tree(dir);
	struct ledger_config config;
	ledger_config_default(&config);
	struct journal_error error = {0};
	if (journal_format_dir(dir, 1, &config, &error) != 0)
		die("format", error.text);
	struct journal_writer_options writer_options;
	journal_writer_options_default(&writer_options);
	writer_options.sync = sync;
	writer_options.group_bytes_max = group_bytes;
	writer_options.segment_bytes_max = 4ull << 30;
	writer_options.preallocate_bytes = options->preallocate_bytes;
	writer_options.groups_in_flight_max = in_flight + 1;
	struct journal_writer *writer = journal_writer_open(dir, 0, &writer_options, &error);
	if (writer == NULL)
		die("writer", error.text);
	struct ledger_request request = {.kind = LEDGER_KIND_PAY, .currency = BENCH_EUR,
		.account_id = 1, .other_id = 2, .amount = 100};
	struct ledger_result result = {.flags = LEDGER_RESULT_JOURNAL};
	static double latencies[1u << 20];
	static struct { uint64_t sequence; double at; } ring[LATENCY_RING];
	uint32_t ring_head = 0, ring_tail = 0, samples = 0;
	double start = now_seconds(), end = start + options->seconds;
	uint64_t sequence = 0;
	while (now_seconds() < end) {
		request.id = result.id = result.sequence = sequence + 1;
		int code = journal_append(writer, BENCH_T0, &request, &result);
		if (code == 0) {
			sequence++;
			continue;
		}
		if (code != -ENOBUFS)
			die("append", strerror(-code));
		while ((code = journal_commit(writer)) == -EBUSY)
			journal_poll(writer, true);
		if (code != 0)
			die("commit", strerror(-code));
		ring[ring_head++ % LATENCY_RING].sequence = sequence;
		ring[(ring_head - 1) % LATENCY_RING].at = now_seconds();
		int64_t durable = journal_poll(writer, false);
		if (durable < 0)
			die("poll", strerror((int)-durable));
		while (ring_tail != ring_head && ring[ring_tail % LATENCY_RING].sequence <= (uint64_t)durable) {
			if (samples < sizeof(latencies) / sizeof(latencies[0]))
				latencies[samples++] = (now_seconds() - ring[ring_tail % LATENCY_RING].at) * 1e6;
			ring_tail++;
		}
	}
	if (journal_writer_close(writer) != 0)
		die("close", "failed");
	double elapsed = now_seconds() - start;
	struct journal_writer_stats stats;
	(void)stats;
	qsort(latencies, samples, sizeof(double), compare_double);
	figures->records_per_second = (double)sequence / elapsed;
	figures->mb_per_second = (double)sequence * JOURNAL_RECORD_BYTES * JOURNAL_BLOCK_BYTES /
				 (JOURNAL_BLOCK_BYTES - JOURNAL_BLOCK_HEADER_BYTES) / elapsed / 1e6;
	figures->commits = ring_head;
	figures->p50_us = samples ? latencies[samples / 2] : 0;
	figures->p99_us = samples ? latencies[(uint64_t)(samples * 0.99)] : 0;
	figures->p999_us = samples ? latencies[(uint64_t)(samples * 0.999)] : 0;
	remove_tree(dir);
}

/* Applies and journals `count` payments (after opening/funding accounts). */
static void drive(struct ledger *ledger, struct journal_writer *writer, uint64_t accounts,
		  uint64_t count, uint64_t *next_id, uint64_t *now_us, uint64_t *rng)
{
	enum { BATCH = 256 };
	struct ledger_request requests[BATCH];
	struct ledger_result results[BATCH];
	for (uint64_t done = 0; done < count;) {
		uint32_t batch = count - done < BATCH ? (uint32_t)(count - done) : BATCH;
		*now_us += 50;
		for (uint32_t i = 0; i < batch; i++) {
			*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
			uint64_t payer = 2 + (*rng >> 20) % accounts, payee = 2 + (*rng >> 40) % accounts;
			if (payee == payer)
				payee = 2 + (payee - 1) % accounts;
			requests[i] = (struct ledger_request){.id = ++*next_id, .timestamp_us = *now_us,
				.account_id = payer, .other_id = payee, .amount = 1 + (*rng >> 58),
				.currency = BENCH_EUR, .kind = LEDGER_KIND_PAY};
		}
		ledger_apply(ledger, *now_us, requests, results, batch);
		for (uint32_t i = 0; i < batch; i++) {
			if (!(results[i].flags & LEDGER_RESULT_JOURNAL))
				continue;
			int code;
			while ((code = journal_append(writer, *now_us, &requests[i], &results[i])) == -ENOBUFS)
				while (journal_commit(writer) == -EBUSY)
					journal_poll(writer, true);
			if (code != 0)
				die("append", strerror(-code));
		}
		journal_poll(writer, false);
		done += batch;
	}
}

/* Opens accounts 1 (funding) and 2..N+1 with an overdraft, in the journal too. */
static void open_accounts(struct ledger *ledger, struct journal_writer *writer, uint64_t accounts,
			  uint64_t *next_id, uint64_t *now_pointer)
{
	enum { BATCH = 256 };
	struct ledger_request requests[BATCH];
	struct ledger_result results[BATCH];
	for (uint64_t first = 1; first <= accounts + 1; first += BATCH) {
		/* One timestamp per batch: the window evicts by age, never a batch's peers. */
		uint64_t now_us = ++*now_pointer;
		uint32_t batch = 0;
		for (uint64_t id = first; id < first + BATCH && id <= accounts + 1; id++)
			requests[batch++] = (struct ledger_request){.id = ++*next_id,
				.timestamp_us = now_us, .account_id = id, .amount = 1000000,
				.currency = BENCH_EUR, .kind = LEDGER_KIND_OPEN,
				.flags = id == 1 ? LEDGER_ACCOUNT_FUNDING : 0};
		ledger_apply(ledger, now_us, requests, results, batch);
		for (uint32_t i = 0; i < batch; i++) {
			if (results[i].code != LEDGER_OK)
				die("open", ledger_result_name(results[i].code));
			int code;
			while ((code = journal_append(writer, now_us, &requests[i], &results[i])) == -ENOBUFS)
				while (journal_commit(writer) == -EBUSY)
					journal_poll(writer, true);
			if (code != 0)
				die("append", strerror(-code));
		}
	}
}

struct replay_figures {
	uint64_t accounts, records, tail_records;
	double generate_seconds, replay_seconds, audit_seconds, snapshot_seconds;
	double recovery_seconds, snapshot_mb;
};

static struct ledger *bench_ledger(const struct ledger_config *config)
{
	int error;
	struct ledger *ledger = ledger_create(config, &error);
	if (ledger == NULL)
		die("ledger_create", strerror(-error));
	return ledger;
}

static void bench_replay(const struct bench_options *options, struct replay_figures *figures)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/replay", options->dir);
	remove_tree(dir);
	struct ledger_config config;
	ledger_config_default(&config);
	config.accounts_max = options->accounts + options->accounts / 4 + 16;
	config.transfers_max = 1u << 20;
	struct journal_error error = {0};
	if (journal_format_dir(dir, 1, &config, &error) != 0)
		die("format", error.text);
	struct journal_writer_options writer_options;
	journal_writer_options_default(&writer_options);
	struct journal_writer *writer = journal_writer_open(dir, 0, &writer_options, &error);
	if (writer == NULL)
		die("writer", error.text);
	struct ledger *ledger = bench_ledger(&config);
	uint64_t next_id = 0, now_us = BENCH_T0, rng = 42;
	double start = now_seconds();
	open_accounts(ledger, writer, options->accounts, &next_id, &now_us);
	drive(ledger, writer, options->accounts, options->records, &next_id, &now_us, &rng);
	while (journal_commit(writer) == -EBUSY || journal_in_flight(writer) > 0)
		journal_poll(writer, true);
	figures->generate_seconds = now_seconds() - start;
	figures->accounts = options->accounts;
	figures->records = ledger_sequence(ledger);

	/* Full replay from genesis (no snapshot yet): the page cache is warm. */
	struct journal_recovery_report report;
	start = now_seconds(); /* a fresh ledger's first-touch page faults count too */
	struct ledger *replayed = bench_ledger(&config);
	if (journal_recover(dir, 0, replayed, &report, &error) != 0)
		die("recover", error.text);
	figures->replay_seconds = now_seconds() - start;
	ledger_destroy(replayed);

	struct journal_audit_options audit_options = {0};
	struct journal_audit_report audit;
	start = now_seconds();
	if (journal_audit(dir, &audit_options, &audit) != 0)
		die("audit", audit.first_violation);
	figures->audit_seconds = now_seconds() - start;

	/* Snapshot, then a tail of 10% more payments, then recovery. */
	start = now_seconds();
	if (journal_snapshot_write(dir, 0, ledger, &error) != 0)
		die("snapshot", error.text);
	figures->snapshot_seconds = now_seconds() - start;
	char path[300];
	snprintf(path, sizeof(path), "%s/shard-000/snapshot-%" PRIu64 ".snap", dir,
		 ledger_sequence(ledger));
	struct stat status;
	figures->snapshot_mb = stat(path, &status) == 0 ? (double)status.st_size / 1e6 : 0;
	uint64_t before = ledger_sequence(ledger);
	drive(ledger, writer, options->accounts, options->records / 10, &next_id, &now_us, &rng);
	if (journal_writer_close(writer) != 0)
		die("close", "failed");
	figures->tail_records = ledger_sequence(ledger) - before;
	ledger_destroy(ledger);
	start = now_seconds();
	struct ledger *recovered = bench_ledger(&config);
	if (journal_recover(dir, 0, recovered, &report, &error) != 0)
		die("recover", error.text);
	figures->recovery_seconds = now_seconds() - start;
	ledger_destroy(recovered);
	remove_tree(dir);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: journal_bench [--dir DIR] [--seconds S] [--accounts N] [--records N]"
		     " [--preallocate BYTES]\n"
		     "       [--group-bytes N] [--sync fdatasync|direct] [--json]\n"
		     "  --dir       data under DIR (default build-journal/bench-data), removed after\n"
		     "  --seconds   per append configuration (default 2)\n"
		     "  --accounts  accounts of the replay/recovery run (default 1000000)\n"
		     "  --records   payments in the replay journal (default 5000000)\n"
		     "  --preallocate  zeros the writer keeps written ahead of appends, multiple\n"
		     "              of 4096 (default 8388608, the writer's default); 0 = off\n"
		     "  --group-bytes  only this group size (default: 4 KiB .. 1 MiB)\n"
		     "  --sync      only this sync method (default: both)\n"
		     "  --in-flight N  only N groups in flight (default: 1, 2, 4, 8)\n"
		     "  --no-replay  only the append table\n"
		     "  --json      one JSON object instead of tables\n");
}

static int parse(int argc, char **argv, struct bench_options *options)
{
	static const struct option long_options[] = {{"dir", 1, 0, 'd'}, {"seconds", 1, 0, 's'},
		{"accounts", 1, 0, 'a'}, {"records", 1, 0, 'r'}, {"json", 0, 0, 'j'}, {"preallocate", 1, 0, 'p'},
		{"group-bytes", 1, 0, 'g'}, {"sync", 1, 0, 'y'}, {"in-flight", 1, 0, 'i'},
		{"no-replay", 0, 0, 'n'},
		{"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	memset(options, 0, sizeof(*options));
	snprintf(options->dir, sizeof(options->dir), "build-journal/bench-data");
	options->seconds = 2;
	options->accounts = 1000000;
	options->records = 5000000;
	options->preallocate_bytes = JOURNAL_PREALLOCATE_BYTES_DEFAULT;
	options->only_sync = -1;
	int option;
	while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (option) {
		case 'd': snprintf(options->dir, sizeof(options->dir), "%s", optarg); break;
		case 's': options->seconds = atof(optarg); break;
		case 'a': options->accounts = strtoull(optarg, NULL, 10); break;
		case 'r': options->records = strtoull(optarg, NULL, 10); break;
		case 'j': options->json = true; break;
		case 'p': options->preallocate_bytes = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'g': options->only_group_bytes = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'y': options->only_sync = strcmp(optarg, "direct") == 0 ? 1 : 0; break;
		case 'i': options->only_in_flight = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'n': options->no_replay = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (options->seconds <= 0 || options->accounts == 0 ||
	    options->preallocate_bytes % JOURNAL_BLOCK_BYTES != 0 ||
	    options->preallocate_bytes > JOURNAL_PREALLOCATE_BYTES_MAX ||
	    options->only_in_flight >= JOURNAL_GROUPS_IN_FLIGHT_MAX) {
		usage(stderr);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_options options;
	if (parse(argc, argv, &options) != 0)
		return 2;
	mkdir(options.dir, 0755);
	static const uint32_t groups[] = {4096, 16384, 65536, 262144, 1048576};
	static const char *const sync_names[] = {"write+fdatasync", "O_DIRECT+RWF_DSYNC"};
	if (options.json)
		printf("{\"preallocate_bytes\":%u,\"append\":[", options.preallocate_bytes);
	else
		printf("preallocate_bytes %u\n%-20s %8s %9s %12s %9s %8s %9s %9s %9s\n",
		       options.preallocate_bytes, "durable append", "group", "in flight", "records/s", "MB/s",
		       "commits", "p50 us", "p99 us", "p999 us");
	unsigned printed = 0;
	static const uint32_t in_flights[] = {1, 2, 4, 8};
	for (int sync = 0; sync < 2; sync++) {
		for (unsigned g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
			for (unsigned f = 0; f < sizeof(in_flights) / sizeof(in_flights[0]); f++) {
				if ((options.only_sync >= 0 && options.only_sync != sync) ||
				    (options.only_group_bytes != 0 && options.only_group_bytes != groups[g]) ||
				    (options.only_in_flight != 0 && options.only_in_flight != in_flights[f]))
					continue;
				struct append_figures figures;
				bench_append(&options, (enum journal_sync)sync, groups[g], in_flights[f],
					     &figures);
				if (options.json)
					printf("%s{\"sync\":\"%s\",\"group_bytes\":%u,\"in_flight\":%u,"
					       "\"records_per_s\":%.0f,\"mb_per_s\":%.1f,\"commits\":%" PRIu64
					       ",\"p50_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f}",
					       printed++ ? "," : "", sync_names[sync], groups[g],
					       in_flights[f], figures.records_per_second,
					       figures.mb_per_second, figures.commits, figures.p50_us,
					       figures.p99_us, figures.p999_us);
				else
					printf("%-20s %8u %9u %12.0f %9.1f %8" PRIu64 " %9.0f %9.0f %9.0f\n",
					       sync_names[sync], groups[g], in_flights[f],
					       figures.records_per_second, figures.mb_per_second,
					       figures.commits, figures.p50_us, figures.p99_us,
					       figures.p999_us);
				fflush(stdout);
			}
		}
	}
	if (options.no_replay) {
		if (options.json)
			printf("]}\n");
		rmdir(options.dir);
		return 0;
	}
	struct replay_figures replay;
	bench_replay(&options, &replay);
	double replay_rate = (double)replay.records / replay.replay_seconds;
	double audit_rate = (double)replay.records / replay.audit_seconds;
	if (options.json) {
		printf("],\"replay\":{\"accounts\":%" PRIu64 ",\"records\":%" PRIu64
		       ",\"generate_s\":%.2f,\"replay_s\":%.3f,\"replay_records_per_s\":%.0f,"
		       "\"audit_s\":%.3f,\"audit_records_per_s\":%.0f,\"snapshot_s\":%.3f,"
		       "\"snapshot_mb\":%.1f,\"tail_records\":%" PRIu64 ",\"recovery_s\":%.3f}}\n",
		       replay.accounts, replay.records, replay.generate_seconds, replay.replay_seconds,
		       replay_rate, replay.audit_seconds, audit_rate, replay.snapshot_seconds,
		       replay.snapshot_mb, replay.tail_records, replay.recovery_seconds);
	} else {
		printf("\nreplay journal: %" PRIu64 " accounts, %" PRIu64 " records (generated in"
		       " %.2f s, durable)\n", replay.accounts, replay.records, replay.generate_seconds);
		printf("  recovery from genesis (create + verify + apply, warm): %.3f s = %.0f records/s\n",
		       replay.replay_seconds, replay_rate);
		printf("  audit (create + verify + apply + checks, warm):        %.3f s = %.0f records/s\n",
		       replay.audit_seconds, audit_rate);
		printf("  snapshot write: %.3f s, %.1f MB\n", replay.snapshot_seconds, replay.snapshot_mb);
		printf("  recovery from snapshot + %" PRIu64 " tail records: %.3f s\n",
		       replay.tail_records, replay.recovery_seconds);
	}
	rmdir(options.dir);
	return 0;
}
