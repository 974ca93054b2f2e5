/*
 * test_switch.c — the real daemon over loopback UDP: payments, exactly-once,
 * malformed datagrams, backpressure, metrics, clean stop, audit.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>

#include "harness.h"

#define FUNDING 1
#define EUR LEDGER_CURRENCY_DEFAULT

static struct harness harness;

static void stop_all(void)
{
	harness_fini(&harness);
}

Test(switch, pays_durably_and_audits_clean, .fini = stop_all, .timeout = 120)
{
	harness_init(&harness, 1, NULL);
	harness.metrics_port = harness_free_port();
	cr_assert(harness_start(&harness, NULL), "switch did not start");
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, 10, 0);
	harness_open(&harness, 20, LEDGER_ACCOUNT_MERCHANT);
	harness_deposit(&harness, FUNDING, 10, 1000);
	cr_assert_eq(harness_balance(&harness, 10), 1000);

	struct ledger_request coffee = harness_request(&harness, LEDGER_KIND_PAY, 10, 20, 350);
	struct ledger_result result = harness_call(&harness, &coffee);
	cr_assert_eq(result.code, LEDGER_OK);
	cr_assert_eq(result.balance, 650, "the receipt shows the payer's balance after");
	cr_assert_gt(result.sequence, 0, "an approved payment has a journal sequence");

	struct ledger_request too_much = harness_request(&harness, LEDGER_KIND_PAY, 10, 20, 651);
	cr_assert_eq(harness_call(&harness, &too_much).code, LEDGER_INSUFFICIENT_FUNDS);
	struct ledger_request unknown = harness_request(&harness, LEDGER_KIND_PAY, 999, 20, 1);
	cr_assert_eq(harness_call(&harness, &unknown).code, LEDGER_PAYER_NOT_FOUND);
	cr_assert_eq(harness_balance(&harness, 20), 350);

	char metrics[65536];
	cr_assert_gt(harness_metrics(&harness, metrics, sizeof(metrics)), 0, "metrics answer");
	cr_assert(strstr(metrics, "payswitch_requests_total{worker=\"0\"}") != NULL);
	cr_assert(strstr(metrics, "payswitch_journal_commit_latency_us_bucket") != NULL);
	cr_assert(strstr(metrics, "payswitch_transport_rx_datagrams_total{worker=\"0\"}") != NULL);
	cr_assert(strstr(metrics, "payswitch_ring_occupancy{kind=\"in\",worker=\"0\",shard=\"0\"}") !=
		  NULL);
	cr_assert(strstr(metrics, "payswitch_results_total{code=\"INSUFFICIENT_FUNDS\"} 1") != NULL,
		  "results by code are counted");

	cr_assert_eq(harness_stop(&harness), 0, "a clean stop exits 0");
	char report[16384];
	cr_assert_eq(harness_audit(&harness, NULL, report, sizeof(report)), 0, "audit: %s", report);

	/* A restart recovers from the snapshot the clean stop wrote. */
	cr_assert(harness_start(&harness, NULL));
	cr_assert_eq(harness_balance(&harness, 10), 650);
	cr_assert_eq(harness_balance(&harness, 20), 350);
}

Test(switch, repeats_answer_the_original_outcome, .fini = stop_all, .timeout = 120)
{
	harness_init(&harness, 2, NULL);
	cr_assert(harness_start(&harness, NULL));
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, 10, 0);
	harness_open(&harness, 20, 0);
	harness_deposit(&harness, FUNDING, 10, 500);

	struct ledger_request pay = harness_request(&harness, LEDGER_KIND_PAY, 10, 20, 100);
	struct ledger_result first = harness_call(&harness, &pay);
	cr_assert_eq(first.code, LEDGER_OK);
	for (int retry = 0; retry < 5; retry++) {
		struct ledger_result again = harness_call(&harness, &pay);
		cr_assert_eq(again.code, LEDGER_OK, "a retry answers the original outcome");
		cr_assert(again.flags & LEDGER_RESULT_DUPLICATE, "and says it is a repeat");
	}
	cr_assert_eq(harness_balance(&harness, 10), 400, "the payer paid once");
	cr_assert_eq(harness_balance(&harness, 20), 100, "the payee was credited once");

	struct ledger_request changed = pay;
	changed.amount = 101;
	cr_assert_eq(harness_call(&harness, &changed).code, LEDGER_ID_REUSED);

	/* The same datagram delivered three times (a duplicating network, or an
	 * attacker replaying it): the first is answered, the copies are refused
	 * by the replay window without an answer, and the money moves once. */
	struct ledger_request second = harness_request(&harness, LEDGER_KIND_PAY, 10, 20, 50);
	uint8_t datagram[NETIO_DATAGRAM_MAX] __attribute__((aligned(8)));
	size_t length = netio_encode_requests(datagram, sizeof(datagram), 77, 1, &second, 1);
	harness_seal(&harness, datagram, length, false);
	for (int copy = 0; copy < 3; copy++) {
		uint8_t reply[NETIO_REPLY_MAX] __attribute__((aligned(8)));
		size_t got = harness_raw(&harness, datagram, length, reply, sizeof(reply),
					 copy == 0 ? 3000 : 500);
		if (copy > 0) {
			cr_assert_eq(got, 0, "copy %d of a datagram is a replay: not answered", copy);
			continue;
		}
		struct netio_view view;
		cr_assert_eq(netio_decode(reply, got, &view), LEDGER_OK);
		cr_assert_eq(view.count, 1);
		cr_assert_eq(view.results[0].code, LEDGER_OK);
		cr_assert_eq(view.header.client_id, 77);
		cr_assert(netio_mac_ok(harness.key.secret, reply, got), "the reply is sealed");
	}
	/* The same request in a new datagram is a retransmission: deduplicated. */
	cr_assert(harness_call(&harness, &second).flags & LEDGER_RESULT_DUPLICATE);
	cr_assert_eq(harness_balance(&harness, 10), 350);
	cr_assert_eq(harness_balance(&harness, 20), 150);

	/* Older than the deduplication window: refused, so the window is a promise. */
	struct ledger_request stale = harness_request(&harness, LEDGER_KIND_PAY, 10, 20, 1);
	stale.timestamp_us -= 3600ull * 1000000u;
	cr_assert_eq(harness_call(&harness, &stale).code, LEDGER_TOO_OLD);
	cr_assert_eq(harness_stop(&harness), 0);
	cr_assert_eq(harness_audit(&harness, NULL, NULL, 0), 0);
}

/* Sends raw bytes and returns the single result code answered, or -1 if none. */
static int raw_code(const void *bytes, size_t length)
{
	uint8_t reply[NETIO_REPLY_MAX] __attribute__((aligned(8)));
	size_t got = harness_raw(&harness, bytes, length, reply, sizeof(reply), 1000);
	if (got == 0)
		return -1;
	struct netio_view view;
	cr_assert_eq(netio_decode(reply, got, &view), LEDGER_OK, "the answer itself is well formed");
	cr_assert_geq(view.count, 1);
	cr_assert(netio_mac_ok(harness.admin_key.secret, reply, got), "answers are sealed");
	return view.results[0].code;
}

/* The same, sealed with the admin key first (as an authenticated sender). */
static int sealed_code(void *bytes, size_t length)
{
	harness_seal(&harness, bytes, length, true);
	return raw_code(bytes, length);
}

static uint64_t metric(const char *metrics, const char *name)
{
	const char *found = strstr(metrics, name);
	cr_assert(found != NULL, "%s in /metrics", name);
	return strtoull(found + strlen(name), NULL, 10);
}

Test(switch, malformed_datagrams_get_clear_answers, .fini = stop_all, .timeout = 120)
{
	harness_init(&harness, 1, NULL);
	harness.metrics_port = harness_free_port();
	cr_assert(harness_start(&harness, NULL));
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, 10, 0);

	struct ledger_request pay = harness_request(&harness, LEDGER_KIND_DEPOSIT, FUNDING, 10, 5);
	uint8_t good[NETIO_DATAGRAM_MAX + 128] __attribute__((aligned(8)));
	size_t length = netio_encode_requests(good, sizeof(good), 9, 1, &pay, 1);

	/* Not authenticated: never answered (a reflection vector), counted by
	 * reason. Short, wrong magic, version 1, oversized, unsealed, sealed
	 * with a key the switch does not know, and a bad MAC. */
	uint8_t bad[sizeof(good)] __attribute__((aligned(8)));
	memcpy(bad, good, length);
	harness_seal(&harness, bad, length, true);
	cr_assert_eq(raw_code(bad, 7), -1);
	bad[0] ^= 0xff;
	cr_assert_eq(raw_code(bad, length), -1);
	memcpy(bad, good, length);
	((struct netio_header *)bad)->version = 1;
	harness_seal(&harness, bad, length, true);
	cr_assert_eq(raw_code(bad, length), -1);
	memset(bad, 0, sizeof(bad));
	memcpy(bad, good, length);
	harness_seal(&harness, bad, NETIO_DATAGRAM_MAX + 64, true);
	cr_assert_eq(raw_code(bad, NETIO_DATAGRAM_MAX + 64), -1);
	memcpy(bad, good, length);
	cr_assert_eq(raw_code(bad, length), -1, "unsealed (key id 0)");
	struct netio_key stranger = harness.admin_key;
	stranger.id += 1000;
	netio_seal(&stranger, bad, length);
	cr_assert_eq(raw_code(bad, length), -1, "unknown key id");
	harness_seal(&harness, bad, length, true);
	bad[length - 1] ^= 1;
	cr_assert_eq(raw_code(bad, length), -1, "bad MAC");
	/* Authenticated but malformed: answered, sealed. Count beyond the
	 * datagram, wrong kind count, and an amount over INT64_MAX (that
	 * request is refused). */
	memcpy(bad, good, length);
	((struct netio_header *)bad)->count = 5;
	cr_assert_eq(sealed_code(bad, length), LEDGER_FORMAT_ERROR);
	memcpy(bad, good, length);
	((struct netio_header *)bad)->reserved1 = 1;
	cr_assert_eq(sealed_code(bad, length), LEDGER_FORMAT_ERROR);
	memcpy(bad, good, length);
	((struct ledger_request *)(bad + NETIO_HEADER_SIZE))->amount = UINT64_MAX;
	cr_assert_eq(sealed_code(bad, length), LEDGER_FORMAT_ERROR);
	/* The admin may deposit; an acquirer's key may not (FORBIDDEN, answered). */
	memcpy(bad, good, length);
	harness_seal(&harness, bad, length, false);
	{
		uint8_t reply[NETIO_REPLY_MAX] __attribute__((aligned(8)));
		size_t got = harness_raw(&harness, bad, length, reply, sizeof(reply), 1000);
		struct netio_view view;
		cr_assert_eq(netio_decode(reply, got, &view), LEDGER_OK);
		cr_assert_eq(view.results[0].code, LEDGER_FORBIDDEN);
		cr_assert(netio_mac_ok(harness.key.secret, reply, got));
	}
	/* Random bytes: never a crash. */
	srand(7);
	for (int i = 0; i < 500; i++) {
		size_t size = 1 + (size_t)rand() % 600;
		for (size_t b = 0; b < size; b++)
			bad[b] = (uint8_t)rand();
		if (i % 2 == 0)
			memcpy(bad, good, 4); /* right magic, random rest */
		uint8_t reply[NETIO_REPLY_MAX];
		harness_raw(&harness, bad, size, reply, sizeof(reply), 0);
	}
	/* Still serving everyone else, and nothing reached the ledger. */
	cr_assert_eq(harness_balance(&harness, 10), 0);
	cr_assert_eq(sealed_code(good, length), LEDGER_OK);
	cr_assert_eq(harness_balance(&harness, 10), 5);

	char metrics[65536];
	cr_assert_gt(harness_metrics(&harness, metrics, sizeof(metrics)), 0);
	cr_assert_geq(metric(metrics, "payswitch_malformed_datagrams_total{worker=\"0\"} "), 2,
		      "authenticated malformed datagrams are counted");
	cr_assert_geq(metric(metrics, "payswitch_auth_refused_total{reason=\"unauthenticated\"} "),
		      4 + 250, "short, magic, version, oversized and random bytes");
	cr_assert_geq(metric(metrics, "payswitch_auth_refused_total{reason=\"unknown_key\"} "), 2);
	cr_assert_geq(metric(metrics, "payswitch_auth_refused_total{reason=\"bad_mac\"} "), 1);
	cr_assert_eq(metric(metrics, "payswitch_forbidden_total{worker=\"0\"} "), 1);
	cr_assert_eq(harness_stop(&harness), 0);
	cr_assert_eq(harness_audit(&harness, NULL, NULL, 0), 0);
}

Test(switch, full_rings_answer_busy_and_lose_nothing, .fini = stop_all, .timeout = 180)
{
	harness_init(&harness, 1, NULL);
	/* Rings of 16: a burst of 32 requests for one shard can never all fit. */
	static const char *const small_rings[] = { "--ring-size", "16", NULL };
	cr_assert(harness_start(&harness, small_rings));
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, 10, 0);

	enum { ROUNDS = 20, COUNT = NETIO_BATCH_MAX, TOTAL = ROUNDS * COUNT,
	       RETRY_ROUNDS_MAX = 200 };
	_Static_assert(TOTAL <= NETIO_CLIENT_REQUESTS_MAX, "one harness call looks all up");
	static struct ledger_request requests[TOTAL];
	static struct ledger_result results[TOTAL];
	uint64_t approved = 0;
	uint64_t busy = 0;
	for (int round = 0; round < ROUNDS; round++) {
		struct ledger_request *sent = requests + round * COUNT;
		struct ledger_result *answered = results + round * COUNT;
		for (int i = 0; i < COUNT; i++)
			sent[i] = harness_request(&harness, LEDGER_KIND_DEPOSIT, FUNDING, 10, 1);
		cr_assert_eq(netio_client_call(harness.admin, sent, COUNT, answered, 3000, 0), 0,
			     "every request of a full ring is answered");
		for (int i = 0; i < COUNT; i++) {
			cr_assert(answered[i].code == LEDGER_OK || answered[i].code == LEDGER_BUSY,
				  "code %u", answered[i].code);
			approved += answered[i].code == LEDGER_OK;
			busy += answered[i].code == LEDGER_BUSY;
		}
	}
	cr_assert_gt(busy, 0, "a ring of 16 cannot take a burst of 32");
	cr_assert_eq((uint64_t)harness_balance(&harness, 10), approved,
		     "exactly the approved deposits landed");

	/* BUSY requests retried with the same ids go through exactly once: the
	 * same 64 bytes again, until none is BUSY (bounded rounds). A BUSY
	 * request was never applied, so its approval is no repeat. */
	static struct ledger_request again[TOTAL];
	static struct ledger_result answers[TOTAL];
	static uint32_t where[TOTAL];
	uint64_t resent = 0;
	int retry_rounds = 0;
	for (;; retry_rounds++) {
		uint32_t count = 0;
		uint32_t wait_us = 1000;
		for (uint32_t i = 0; i < TOTAL; i++) {
			if (results[i].code != LEDGER_BUSY)
				continue;
			if (results[i].retry_after_us > wait_us)
				wait_us = results[i].retry_after_us;
			where[count] = i;
			again[count++] = requests[i];
		}
		if (count == 0)
			break;
		cr_assert_lt(retry_rounds, RETRY_ROUNDS_MAX, "%u requests still BUSY", count);
		usleep(wait_us > 100000 ? 100000 : wait_us);
		resent += count;
		/* One datagram at a time, as a client with one request in flight. */
		for (uint32_t done = 0; done < count; done += COUNT) {
			uint32_t chunk = count - done < COUNT ? count - done : COUNT;
			cr_assert_eq(netio_client_call(harness.admin, again + done, chunk,
						       answers + done, 3000, 0), 0);
		}
		for (uint32_t i = 0; i < count; i++) {
			cr_assert(answers[i].code == LEDGER_OK || answers[i].code == LEDGER_BUSY,
				  "retry of %llu: %s", (unsigned long long)again[i].id,
				  ledger_result_name(answers[i].code));
			cr_assert_eq(answers[i].flags & LEDGER_RESULT_DUPLICATE, 0,
				     "deposit %llu was applied although answered BUSY",
				     (unsigned long long)again[i].id);
			results[where[i]] = answers[i];
		}
	}
	/* Each deposit of 1 is there (LOOKUP), and the balance counts each once. */
	for (uint32_t i = 0; i < TOTAL; i++) {
		again[i] = harness_request(&harness, LEDGER_KIND_LOOKUP, FUNDING, 0, 0);
		again[i].reference_id = requests[i].id;
	}
	cr_assert_eq(harness_call_many(&harness, again, TOTAL, answers), 0);
	for (uint32_t i = 0; i < TOTAL; i++) {
		cr_assert_eq(answers[i].code, LEDGER_OK, "deposit %llu: %s",
			     (unsigned long long)requests[i].id, ledger_result_name(answers[i].code));
		cr_assert_eq(answers[i].amount, 1);
	}
	cr_assert_eq(harness_balance(&harness, 10), TOTAL, "every deposit landed exactly once");
	fprintf(stderr, "full rings: %d rounds of %d deposits, %llu BUSY at first, %llu resent in "
		"%d retry rounds (at most %d), all %d approved and looked up, balance %d\n", ROUNDS,
		COUNT, (unsigned long long)busy, (unsigned long long)resent, retry_rounds,
		RETRY_ROUNDS_MAX, TOTAL, TOTAL);
	cr_assert_eq(harness_stop(&harness), 0);
	cr_assert_eq(harness_audit(&harness, NULL, NULL, 0), 0);
}

Test(cli, commands_explain_themselves, .timeout = 30)
{
	const char *binary = getenv("PAYSWITCH");
	cr_assert(binary != NULL);
	char command[512];
	static const char *const helps[] = { "--help", "start --help", "format --help",
					     "account --help", "audit --help", "config" };
	for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
		snprintf(command, sizeof(command), "'%s' %s >/dev/null 2>&1", binary, helps[i]);
		cr_assert_eq(system(command), 0, "payswitch %s", helps[i]);
	}
	snprintf(command, sizeof(command), "'%s' frobnicate >/dev/null 2>&1", binary);
	cr_assert_eq(WEXITSTATUS(system(command)), 2, "unknown command: usage error");
	snprintf(command, sizeof(command),
		 "'%s' start --data-dir /nonexistent/payswitch --listen 127.0.0.1:%u --metrics "
		 "127.0.0.1:0 >/dev/null 2>&1", binary, harness_free_port());
	cr_assert_eq(WEXITSTATUS(system(command)), 1, "an unformatted data dir is refused");
	snprintf(command, sizeof(command), "'%s' start --shards nine >/dev/null 2>&1", binary);
	cr_assert_eq(WEXITSTATUS(system(command)), 2, "a bad flag value is a usage error");
}

Test(switch, a_failed_journal_stops_every_acknowledgement, .fini = stop_all, .timeout = 180)
{
	harness_init(&harness, 1, NULL);
	/* Journal segments may not grow past 192 KiB: like a disk that fills up. */
	harness.file_size_limit = 192 * 1024;
	static const char *const small_groups[] = { "--group-bytes", "16384", NULL };
	cr_assert(harness_start(&harness, small_groups));
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&harness, 10, 0);
	enum { ROUNDS = 400, COUNT = 256 };
	static struct ledger_request requests[COUNT];
	static struct ledger_result results[COUNT];
	/* Room for every request the test sends: each acknowledged one is kept. */
	static struct ledger_request acknowledged[ROUNDS * COUNT];
	uint32_t acknowledged_count = 0;
	bool failed = false;
	int rounds = 0;
	for (; rounds < ROUNDS && !failed; rounds++) {
		for (int i = 0; i < COUNT; i++)
			requests[i] = harness_request(&harness, LEDGER_KIND_DEPOSIT, FUNDING, 10, 1);
		cr_assert_eq(netio_client_call(harness.admin, requests, COUNT, results, 3000, 2), 0);
		for (int i = 0; i < COUNT; i++) {
			if (results[i].code == LEDGER_OK) {
				cr_assert(!failed, "an approval after the journal failed");
				acknowledged[acknowledged_count++] = requests[i];
			} else {
				cr_assert_eq(results[i].code, LEDGER_UNAVAILABLE, "%s",
					     ledger_result_name(results[i].code));
				failed = true;
			}
		}
	}
	cr_assert(failed, "the journal never hit its size limit");
	/* New requests keep getting a clear answer. */
	struct ledger_request after = harness_request(&harness, LEDGER_KIND_DEPOSIT, FUNDING, 10, 1);
	struct ledger_result refused = harness_call(&harness, &after);
	cr_assert_eq(refused.code, LEDGER_UNAVAILABLE, "after the failure: %u", refused.code);
	harness_kill(&harness);

	/* Without the limit, recovery keeps exactly what was durable: every
	 * acknowledged deposit is there, each one looked up. */
	harness.file_size_limit = 0;
	cr_assert(harness_start(&harness, NULL));
	int64_t balance = harness_balance(&harness, 10);
	cr_assert_geq(balance, (int64_t)acknowledged_count);
	static struct ledger_request lookups[NETIO_CLIENT_REQUESTS_MAX];
	static struct ledger_result found[NETIO_CLIENT_REQUESTS_MAX];
	uint32_t checked = 0;
	while (checked < acknowledged_count) {
		uint32_t chunk = acknowledged_count - checked;
		if (chunk > NETIO_CLIENT_REQUESTS_MAX)
			chunk = NETIO_CLIENT_REQUESTS_MAX;
		for (uint32_t i = 0; i < chunk; i++) {
			lookups[i] = harness_request(&harness, LEDGER_KIND_LOOKUP, FUNDING, 0, 0);
			lookups[i].reference_id = acknowledged[checked + i].id;
		}
		cr_assert_eq(harness_call_many(&harness, lookups, chunk, found), 0);
		for (uint32_t i = 0; i < chunk; i++) {
			cr_assert_eq(found[i].code, LEDGER_OK, "acknowledged deposit %llu: %s",
				     (unsigned long long)acknowledged[checked + i].id,
				     ledger_result_name(found[i].code));
			cr_assert_eq(found[i].amount, 1);
		}
		checked += chunk;
	}
	fprintf(stderr, "failed journal: the journal failed in round %d of at most %d (%d deposits "
		"each), %u acknowledged before, all %u looked up after recovery, balance %lld\n",
		rounds, ROUNDS, COUNT, acknowledged_count, checked, (long long)balance);
	cr_assert_eq(harness_stop(&harness), 0);
	cr_assert_eq(harness_audit(&harness, NULL, NULL, 0), 0);
}

Test(cli, config_file_and_flags_combine, .timeout = 30)
{
	const char *binary = getenv("PAYSWITCH");
	char path[] = "/tmp/payswitch-config-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	static const char text[] = "# test\nlisten = 127.0.0.1:7555\nworkers = 2\n"
				   "durability = unsafe-ack-before-sync\n";
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	char command[600];
	snprintf(command, sizeof(command),
		 "'%s' start --config %s --workers 3 --print-config > %s.out 2>&1", binary, path, path);
	cr_assert_eq(system(command), 0);
	char out_path[64];
	snprintf(out_path, sizeof(out_path), "%s.out", path);
	FILE *out = fopen(out_path, "r");
	char printed[4096] = { 0 };
	size_t got = fread(printed, 1, sizeof(printed) - 1, out);
	printed[got] = '\0';
	fclose(out);
	cr_assert(strstr(printed, "listen = 127.0.0.1:7555") != NULL, "%s", printed);
	cr_assert(strstr(printed, "workers = 3") != NULL, "flags override the file");
	cr_assert(strstr(printed, "durability = unsafe-ack-before-sync") != NULL);
	/* A bad line names the file and the line. */
	FILE *bad = fopen(path, "w");
	fputs("listen = 127.0.0.1:7555\nbogus = 1\n", bad);
	fclose(bad);
	snprintf(command, sizeof(command), "'%s' start --config %s --print-config > %s.out 2>&1",
		 binary, path, path);
	cr_assert_eq(WEXITSTATUS(system(command)), 2);
	out = fopen(out_path, "r");
	got = fread(printed, 1, sizeof(printed) - 1, out);
	printed[got] = '\0';
	fclose(out);
	cr_assert(strstr(printed, ":2: unknown setting 'bogus'") != NULL, "%s", printed);
	unlink(path);
	unlink(out_path);
}
