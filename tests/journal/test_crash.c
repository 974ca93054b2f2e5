/* test_crash.c — SIGKILL a process that applies a random workload through
 * the ledger and the real writer, many times, restarting it on the same data
 * dir (it recovers first, then continues). Each round's kill point is set by
 * progress, not by the clock: the parent kills the child as soon as it has
 * read K acknowledged (durable) decisions of that round, K drawn from a
 * seeded PRNG, while the child keeps writing. After every kill: every
 * decision ever acknowledged is in the recovered journal with the same
 * result (each one checked), the recovered ledger is exactly the journal (no
 * invented decisions), invariants hold and the audit passes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal_test_util.h"

#define ROUNDS 30
/* Acknowledgements read before the kill: 1 + rand() % KILL_AFTER_SPREAD, and
 * KILL_AFTER_LONG more every fifth round (long runs rotate segments and
 * write snapshots). */
#define KILL_AFTER_SPREAD 1500u
#define KILL_AFTER_LONG 3000u
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

/* Acknowledgements received from the children, all rounds. */
struct acked {
	uint64_t sequence_max;   /* highest acknowledged sequence */
	uint64_t count;          /* distinct acknowledged sequences */
};

/* Records one line "sequence id code balance" of the child's. */
static void parent_line(const char *line, struct ack *acks, struct acked *acked)
{
	uint64_t sequence, id;
	unsigned code;
	int64_t balance;
	cr_assert_eq(sscanf(line, "%" SCNu64 " %" SCNu64 " %u %" SCNd64, &sequence, &id, &code,
			    &balance), 4, "line '%s'", line);
	cr_assert_gt(sequence, 0);
	cr_assert_lt(sequence, ACKS_MAX);
	cr_assert_neq(id, 0);
	cr_assert_eq(acks[sequence].id, 0, "sequence %" PRIu64 " acknowledged twice", sequence);
	acks[sequence] = (struct ack){.id = id, .code = (uint16_t)code, .balance = balance};
	acked->count++;
	if (sequence > acked->sequence_max)
		acked->sequence_max = sequence;
}

/* Reads the child's lines, kills it as soon as `kill_after` acknowledgements
 * of this round have been read, then reads the rest (what it reported before
 * it died). Returns the acknowledgements of the round. */
static uint64_t parent_collect(pid_t child, int in, uint64_t kill_after, struct ack *acks,
			       struct acked *acked)
{
	static char text[1 << 20];
	size_t used = 0;
	uint64_t round_acks = 0;
	bool killed = false;
	for (;;) {
		ssize_t got = read(in, text + used, sizeof(text) - used - 1);
		if (got == 0)
			break;
		if (got < 0) {
			cr_assert_eq(errno, EINTR, "read: %s", strerror(errno));
			continue;
		}
		used += (size_t)got;
		char *line = text, *end;
		while ((end = memchr(line, '\n', (size_t)(text + used - line))) != NULL) {
			*end = 0;
			parent_line(line, acks, acked);
			round_acks++;
			line = end + 1;
		}
		used -= (size_t)(line - text);
		memmove(text, line, used);
		if (!killed && round_acks >= kill_after) {
			cr_assert_eq(kill(child, SIGKILL), 0);
			killed = true;
		}
	}
	/* A line cut by the kill was never fully reported: not acknowledged. */
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(killed, "child ended after %" PRIu64 " of %" PRIu64 " acknowledgements: "
		  "status %d", round_acks, kill_after, status);
	cr_assert(WIFSIGNALED(status), "child ended by itself: status %d", status);
	cr_assert_eq(WTERMSIG(status), SIGKILL, "child ended by itself: status %d", status);
	return round_acks;
}

/* Checks one journal record against what was acknowledged for its sequence;
 * returns 1 when it was acknowledged. */
static uint64_t verify_record(const struct journal_record *record, const struct ack *acks,
			      struct ledger *ledger, int round)
{
	if (record->sequence >= ACKS_MAX || acks[record->sequence].id == 0)
		return 0;
	const struct ack *ack = &acks[record->sequence];
	cr_assert_eq(ack->id, record->request.id, "round %d: sequence %" PRIu64 " acknowledged "
		     "as id %" PRIu64 ", journal holds id %" PRIu64, round, record->sequence,
		     ack->id, record->request.id);
	cr_assert_eq(ack->code, record->code, "round %d: sequence %" PRIu64 " acknowledged %s, "
		     "journal holds %s", round, record->sequence, ledger_result_name(ack->code),
		     ledger_result_name(record->code));
	cr_assert_eq(ack->balance, record->balance, "round %d: sequence %" PRIu64, round,
		     record->sequence);
	struct ledger_transfer_info info;
	if (ledger_transfer_get(ledger, record->request.id, &info) &&
	    info.kind == record->request.kind && !(record->flags & LEDGER_RESULT_DUPLICATE))
		cr_assert_eq(info.code, record->code, "round %d id %" PRIu64, round,
			     record->request.id);
	return 1;
}

/* Recovers, then checks every acknowledged decision against the journal.
 * Returns how many acknowledged records were checked (all of them). */
static uint64_t verify(const struct ack *acks, const struct acked *acked, int round,
		       uint32_t *torn_rounds)
{
	struct ledger *ledger = jt_ledger(0, 1);
	struct journal_recovery_report report;
	struct journal_error error = {0};
	cr_assert_eq(journal_recover(dir, 0, ledger, &report, &error), 0, "round %d: %s", round,
		     error.text);
	*torn_rounds += report.torn_tail;
	cr_assert_geq(report.last_sequence, acked->sequence_max, "round %d: acknowledged %" PRIu64
		      " but recovered only to %" PRIu64, round, acked->sequence_max,
		      report.last_sequence);
	/* Every acknowledged decision, as the journal holds it. */
	struct journal_reader *reader = journal_reader_open(dir, 0, 0, 0, &error);
	cr_assert_not_null(reader);
	const struct journal_record *records;
	struct journal_position position;
	int count;
	uint64_t seen = 0;
	uint64_t checked = 0;
	while ((count = journal_reader_next(reader, &records, &position, &error)) > 0) {
		for (int i = 0; i < count; i++) {
			cr_assert_eq(records[i].sequence, ++seen);
			checked += verify_record(&records[i], acks, ledger, round);
		}
	}
	cr_assert_eq(count, 0, "round %d: %s", round, error.text);
	journal_reader_close(reader);
	cr_assert_eq(checked, acked->count, "round %d: %" PRIu64 " acknowledged, %" PRIu64
		     " found in the journal", round, acked->count, checked);
	cr_assert_eq(seen, ledger_sequence(ledger), "the ledger holds exactly the journal");
	struct ledger_violation violation;
	cr_assert_eq(ledger_check_invariants(ledger, &violation), 0, "%s", violation.text);
	ledger_destroy(ledger);
	struct journal_audit_options options = {0};
	struct journal_audit_report audit;
	cr_assert_eq(journal_audit(dir, &options, &audit), 0, "round %d: %s", round,
		     audit.first_violation);
	return checked;
}

Test(journal_crash, kill_and_recover, .timeout = 280)
{
	jt_format(dir, 1);
	struct ack *acks = calloc(ACKS_MAX, sizeof(*acks));
	cr_assert_not_null(acks);
	struct acked acked = {0};
	uint32_t torn_rounds = 0;
	uint64_t kill_after_min = UINT64_MAX, kill_after_max = 0, kill_after_sum = 0;
	uint64_t checks = 0;
	srand(12345);
	for (int round = 0; round < ROUNDS; round++) {
		uint64_t kill_after = 1 + (uint64_t)(rand() % KILL_AFTER_SPREAD) +
				      (round % 5 == 4 ? KILL_AFTER_LONG : 0);
		kill_after_min = kill_after < kill_after_min ? kill_after : kill_after_min;
		kill_after_max = kill_after > kill_after_max ? kill_after : kill_after_max;
		kill_after_sum += kill_after;
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
		uint64_t round_acks = parent_collect(child, pipe_fds[0], kill_after, acks, &acked);
		cr_assert_geq(round_acks, kill_after);
		close(pipe_fds[0]);
		checks += verify(acks, &acked, round, &torn_rounds);
	}
	cr_assert_geq(acked.count, kill_after_sum);
	fprintf(stderr, "journal crash: %d rounds, each killed after K acknowledgements read "
		"(K %" PRIu64 "..%" PRIu64 ", sum %" PRIu64 "), %" PRIu64 " acknowledged in all "
		"(up to sequence %" PRIu64 "), every one checked after every round: %" PRIu64
		" checks, %u torn tails cut\n", ROUNDS, kill_after_min, kill_after_max,
		kill_after_sum, acked.count, acked.sequence_max, checks, torn_rounds);
	free(acks);
}
