/* test_crash.c — SIGKILL a process that applies a random workload through
 * the ledger and the real writer, many times at random moments, restarting
 * it on the same data dir (it recovers first, then continues). After every
 * kill: every acknowledged (durable) decision is in the recovered journal
 * with the same result, the recovered ledger is exactly the journal (no
 * invented decisions), invariants hold and the audit passes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal_test_util.h"

#define ROUNDS 30
#define ACKS_MAX (1u << 22)

static char dir[256];
static void setup(void) { jt_dir_make(dir); }
static void teardown(void) { jt_dir_remove(dir); }
TestSuite(journal_crash, .init = setup, .fini = teardown);

struct ack {
	uint64_t id;      /* 0 = not acknowledged */
	int64_t balance;
	uint16_t code;
};

struct pending {
	uint64_t sequence, id;
	int64_t balance;
	uint16_t code;
};

/* Tells the parent what became durable: one line per decision. */
static void child_report(int out, struct pending *pending, uint32_t *count, uint64_t durable)
{
	char text[1 << 16];
	size_t used = 0;
	uint32_t kept = 0;
	for (uint32_t i = 0; i < *count; i++) {
		if (pending[i].sequence > durable) {
			pending[kept++] = pending[i];
			continue;
		}
		if (used > sizeof(text) - 100) {
			if (write(out, text, used) < 0)
				_exit(9);
			used = 0;
		}
		used += (size_t)snprintf(text + used, sizeof(text) - used, "%" PRIu64 " %" PRIu64
					 " %u %" PRId64 "\n", pending[i].sequence, pending[i].id,
					 pending[i].code, pending[i].balance);
	}
	if (used > 0 && write(out, text, used) < 0)
		_exit(9);
	*count = kept;
}

static void child_batch(struct jt_workload *workload, struct ledger *ledger,
			struct journal_writer *writer, struct pending *pending, uint32_t *count)
{
	struct ledger_request requests[32];
	struct ledger_result results[32];
	uint32_t batch = 1 + (uint32_t)(rand() % 32);
	workload->now_us += (uint64_t)(rand() % 5000);
	for (uint32_t i = 0; i < batch; i++)
		jt_workload_next(workload, &requests[i]);
	ledger_apply(ledger, workload->now_us, requests, results, batch);
	for (uint32_t i = 0; i < batch; i++) {
		if (!(results[i].flags & LEDGER_RESULT_JOURNAL))
			continue;
		int result;
		while ((result = journal_append(writer, workload->now_us, &requests[i], &results[i])) ==
		       -ENOBUFS)
			while (journal_commit(writer) == -EBUSY)
				journal_poll(writer, true);
		if (result != 0)
			_exit(5);
		pending[(*count)++] = (struct pending){.sequence = results[i].sequence,
			.id = results[i].id, .balance = results[i].balance, .code = results[i].code};
	}
	if (journal_commit(writer) == -EBUSY)
		journal_poll(writer, true);
}

static void child_main(int round, int out)
{
	journal_set_log(NULL, NULL);
	srand((unsigned)round * 7919u + 1);
	struct ledger *ledger = jt_ledger(0, 1);
	struct journal_recovery_report report;
	struct journal_error error = {0};
	if (journal_recover(dir, 0, ledger, &report, &error) != 0) {
		fprintf(stderr, "child recovery: %s\n", error.text);
		_exit(3);
	}
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	options.segment_bytes_max = 256u << 10;     /* rotate often */
	options.group_bytes_max = (round % 3 + 1) * 8192u;
	options.sync = round % 4 == 3 ? JOURNAL_SYNC_DIRECT_DSYNC : JOURNAL_SYNC_FDATASYNC;
	struct journal_writer *writer = journal_writer_open(dir, 0, &options, &error);
	if (writer == NULL) {
		fprintf(stderr, "child writer: %s\n", error.text);
		_exit(4);
	}
	struct jt_workload workload;
	jt_workload_init(&workload, (uint64_t)round + 100, (uint64_t)(round + 1) << 40,
			 ledger_now(ledger) + 1);
	jt_workload_setup(&workload, ledger, writer);
	static struct pending pending[1 << 14];
	uint32_t count = 0;
	uint64_t reported = journal_durable_sequence(writer);
	for (uint64_t batch = 0;; batch++) {
		if (count > (1u << 14) - 64)
			journal_poll(writer, true);
		else
			child_batch(&workload, ledger, writer, pending, &count);
		int64_t durable = journal_poll(writer, false);
		if (durable < 0)
			_exit(6);
		if ((uint64_t)durable > reported) {
			child_report(out, pending, &count, (uint64_t)durable);
			reported = (uint64_t)durable;
		}
		if (batch % 500 == 499 && durable == (int64_t)ledger_sequence(ledger) &&
		    journal_snapshot_write(dir, 0, ledger, &error) != 0)
			_exit(7);
	}
}

/* Reads the child's lines for `delay_ms`, then kills it and reads the rest. */
static void parent_collect(pid_t child, int in, uint32_t delay_ms, struct ack *acks,
			   uint64_t *acked)
{
	static char text[1 << 20];
	size_t used = 0;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	bool killed = false;
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t elapsed_ms = (now.tv_sec - start.tv_sec) * 1000 +
				     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (!killed && elapsed_ms >= delay_ms) {
			kill(child, SIGKILL);
			killed = true;
		}
		struct pollfd wait_for = {.fd = in, .events = POLLIN};
		poll(&wait_for, 1, killed ? 1000 : 1);
		ssize_t got = read(in, text + used, sizeof(text) - used - 1);
		if (got == 0)
			break;
		if (got < 0)
			continue;
		used += (size_t)got;
		char *line = text, *end;
		while ((end = memchr(line, '\n', text + used - line)) != NULL) {
			uint64_t sequence, id;
			unsigned code;
			int64_t balance;
			*end = 0;
			cr_assert_eq(sscanf(line, "%" SCNu64 " %" SCNu64 " %u %" SCNd64, &sequence, &id,
					    &code, &balance), 4);
			cr_assert_lt(sequence, ACKS_MAX);
			acks[sequence] = (struct ack){.id = id, .code = (uint16_t)code, .balance = balance};
			if (sequence > *acked)
				*acked = sequence;
			line = end + 1;
		}
		used -= (size_t)(line - text);
		memmove(text, line, used);
	}
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		  "child ended by itself: status %d", status);
}

static void verify(const struct ack *acks, uint64_t acked, int round, uint32_t *torn_rounds)
{
	struct ledger *ledger = jt_ledger(0, 1);
	struct journal_recovery_report report;
	struct journal_error error = {0};
	cr_assert_eq(journal_recover(dir, 0, ledger, &report, &error), 0, "round %d: %s", round,
		     error.text);
	*torn_rounds += report.torn_tail;
	cr_assert_geq(report.last_sequence, acked, "round %d: acknowledged %" PRIu64
		      " but recovered only to %" PRIu64, round, acked, report.last_sequence);
	/* Every acknowledged decision, as the journal holds it. */
	struct journal_reader *reader = journal_reader_open(dir, 0, 0, 0, &error);
	cr_assert_not_null(reader);
	const struct journal_record *records;
	struct journal_position position;
	int count;
	uint64_t seen = 0;
	while ((count = journal_reader_next(reader, &records, &position, &error)) > 0) {
		for (int i = 0; i < count; i++) {
			const struct journal_record *record = &records[i];
			cr_assert_eq(record->sequence, ++seen);
			if (record->sequence >= ACKS_MAX || acks[record->sequence].id == 0)
				continue;
			const struct ack *ack = &acks[record->sequence];
			cr_assert(ack->id == record->request.id && ack->code == record->code &&
				  ack->balance == record->balance, "round %d: sequence %" PRIu64
				  " acknowledged as id %" PRIu64 " %s, journal holds id %" PRIu64 " %s",
				  round, record->sequence, ack->id, ledger_result_name(ack->code),
				  record->request.id, ledger_result_name(record->code));
			struct ledger_transfer_info info;
			if (ledger_transfer_get(ledger, record->request.id, &info) &&
			    info.kind == record->request.kind && !(record->flags & LEDGER_RESULT_DUPLICATE))
				cr_assert_eq(info.code, record->code, "round %d id %" PRIu64, round,
					     record->request.id);
		}
	}
	cr_assert_eq(count, 0, "round %d: %s", round, error.text);
	journal_reader_close(reader);
	cr_assert_eq(seen, ledger_sequence(ledger), "the ledger holds exactly the journal");
	struct ledger_violation violation;
	cr_assert_eq(ledger_check_invariants(ledger, &violation), 0, "%s", violation.text);
	ledger_destroy(ledger);
	struct journal_audit_options options = {0};
	struct journal_audit_report audit;
	cr_assert_eq(journal_audit(dir, &options, &audit), 0, "round %d: %s", round,
		     audit.first_violation);
}

Test(journal_crash, kill_and_recover, .timeout = 280)
{
	jt_format(dir, 1);
	struct ack *acks = calloc(ACKS_MAX, sizeof(*acks));
	uint64_t acked = 0;
	uint32_t torn_rounds = 0;
	srand(12345);
	for (int round = 0; round < ROUNDS; round++) {
		int pipe_fds[2];
		cr_assert_eq(pipe(pipe_fds), 0);
		fflush(NULL);
		pid_t child = fork();
		cr_assert_geq(child, 0);
		if (child == 0) {
			close(pipe_fds[0]);
			child_main(round, pipe_fds[1]);
			_exit(0);
		}
		close(pipe_fds[1]);
		uint32_t delay_ms = 1 + (uint32_t)(rand() % 50) + (round % 5 == 4 ? 150 : 0);
		parent_collect(child, pipe_fds[0], delay_ms, acks, &acked);
		close(pipe_fds[0]);
		verify(acks, acked, round, &torn_rounds);
	}
	cr_log_info("crash test: %d rounds, %" PRIu64 " acknowledged sequences, %u torn tails cut",
		    ROUNDS, acked, torn_rounds);
	cr_assert_gt(acked, 1000, "the workload ran");
	free(acks);
}
