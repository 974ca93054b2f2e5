/*
 * test_auth.c — authentication on the real switch (issue 11): each role's
 * allowed and refused kinds, terminals bound to accounts and merchants, key
 * removal and rotation picked up on SIGHUP (also under load, with nothing
 * lost), and an unauthenticated flood while authenticated clients keep
 * being served. The switch runs as a child process over loopback UDP.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define FUNDING 1u
static struct harness harness;

static void stop_all(void)
{
	harness_fini(&harness);
}

static uint64_t metric(const char *name)
{
	static char text[131072];
	cr_assert_gt(harness_metrics(&harness, text, sizeof(text)), 0);
	/* A sample line, not the # HELP line that names the metric too. */
	char line[256];
	snprintf(line, sizeof(line), "\n%s", name);
	const char *found = strstr(text, line);
	cr_assert(found != NULL, "%s in /metrics", name);
	return strtoull(found + strlen(line), NULL, 10);
}

/* Adds a client with `payswitch client add` and opens a client with its key. */
static struct netio_client *add_client(const char *name, const char *const *binding,
				       struct netio_key *key)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s.key", harness.dir, name);
	const char *argv[16] = {"add", name, "--key-out", path};
	int argc = 4;
	for (int i = 0; binding[i] != NULL; i++)
		argv[argc++] = binding[i];
	argv[argc] = NULL;
	cr_assert_eq(harness_client_command(&harness, argv), 0, "client add %s", name);
	cr_assert_eq(netio_key_load(path, key), 0);
	int error = 0;
	struct netio_client *client = netio_client_open_key("127.0.0.1", harness.port, key, &error);
	cr_assert_not_null(client);
	return client;
}

/* SIGHUP, then wait (bounded) until /metrics shows `keys` client keys. */
static void reload(uint64_t keys)
{
	cr_assert_eq(kill(harness.pid, SIGHUP), 0);
	for (int i = 0; i < 500; i++) {
		if (metric("payswitch_client_keys ") == keys)
			return;
		usleep(10000);
	}
	cr_assert_fail("the switch did not reload %llu keys within 5 s", (unsigned long long)keys);
}

static uint16_t call(struct netio_client *client, uint8_t kind, uint64_t account, uint64_t other,
		     uint64_t amount)
{
	struct ledger_request request = harness_request(&harness, kind, account, other, amount);
	struct ledger_result result;
	netio_client_call(client, &request, 1, &result, 300, 1);
	return result.code;
}

static void fund(void)
{
	harness_open(&harness, FUNDING, LEDGER_ACCOUNT_FUNDING);
	for (uint64_t id = 10; id <= 40; id += 10)
		harness_open(&harness, id, 0);
	harness_deposit(&harness, FUNDING, 10, 1000);
	harness_deposit(&harness, FUNDING, 30, 1000);
}

Test(auth, roles_on_the_real_switch, .fini = stop_all, .timeout = 180)
{
	harness_init(&harness, 2, NULL);
	harness.metrics_port = harness_free_port();
	cr_assert(harness_start(&harness, NULL));
	fund();
	struct netio_key till_key, wallet_key;
	const char *till_binding[] = {"--role", "terminal", "--merchant", "20", NULL};
	const char *wallet_binding[] = {"--role", "terminal", "--accounts", "10,11", NULL};
	struct netio_client *till = add_client("till", till_binding, &till_key);
	struct netio_client *wallet = add_client("wallet", wallet_binding, &wallet_key);
	reload(4);

	/* The acquirer pays from anyone, but opens and deposits nothing. */
	cr_assert_eq(call(harness.client, LEDGER_KIND_PAY, 10, 20, 5), LEDGER_OK);
	cr_assert_eq(call(harness.client, LEDGER_KIND_OPEN, 50, 0, 0), LEDGER_FORBIDDEN);
	cr_assert_eq(call(harness.client, LEDGER_KIND_DEPOSIT, FUNDING, 10, 5), LEDGER_FORBIDDEN);
	cr_assert_eq(call(harness.client, LEDGER_KIND_FREEZE, 10, 0, 0), LEDGER_FORBIDDEN);
	cr_assert_eq(call(harness.client, LEDGER_KIND_CLOSE, 40, 0, 0), LEDGER_FORBIDDEN);
	cr_assert_eq(call(harness.client, LEDGER_KIND_SET_LIMITS, 10, 0, 0), LEDGER_FORBIDDEN);
	/* The admin administers and reads, but moves no payment. */
	cr_assert_eq(call(harness.admin, LEDGER_KIND_PAY, 10, 20, 5), LEDGER_FORBIDDEN);
	cr_assert_eq(call(harness.admin, LEDGER_KIND_HOLD, 10, 20, 5), LEDGER_FORBIDDEN);
	cr_assert_eq(call(harness.admin, LEDGER_KIND_REFUND, 20, 10, 5), LEDGER_FORBIDDEN);
	cr_assert_eq(call(harness.admin, LEDGER_KIND_BALANCE, 10, 0, 0), LEDGER_OK);
	/* A merchant's till: payments to its merchant only. */
	cr_assert_eq(call(till, LEDGER_KIND_PAY, 30, 20, 7), LEDGER_OK);
	cr_assert_eq(call(till, LEDGER_KIND_PAY, 30, 40, 7), LEDGER_FORBIDDEN);
	cr_assert_eq(call(till, LEDGER_KIND_PAY, 20, 30, 1), LEDGER_FORBIDDEN);
	cr_assert_eq(call(till, LEDGER_KIND_BALANCE, 20, 0, 0), LEDGER_OK);
	cr_assert_eq(call(till, LEDGER_KIND_BALANCE, 30, 0, 0), LEDGER_FORBIDDEN);
	cr_assert_eq(call(till, LEDGER_KIND_OPEN, 60, 0, 0), LEDGER_FORBIDDEN);
	/* A wallet: payments from its own accounts only, to anyone. */
	cr_assert_eq(call(wallet, LEDGER_KIND_PAY, 10, 40, 3), LEDGER_OK);
	cr_assert_eq(call(wallet, LEDGER_KIND_PAY, 30, 40, 3), LEDGER_FORBIDDEN);
	cr_assert_eq(call(wallet, LEDGER_KIND_DEPOSIT, FUNDING, 10, 3), LEDGER_FORBIDDEN);

	/* Nothing forbidden moved money: 10 paid 5 + 3, 30 paid 7. */
	cr_assert_eq(harness_balance(&harness, 10), 1000 - 5 - 3);
	cr_assert_eq(harness_balance(&harness, 20), 5 + 7);
	cr_assert_eq(harness_balance(&harness, 30), 1000 - 7);
	cr_assert_eq(harness_balance(&harness, 40), 3);
	uint64_t forbidden = metric("payswitch_forbidden_total{worker=\"0\"} ");
	cr_assert_eq(forbidden, 14, "every refusal counted (%llu)", (unsigned long long)forbidden);
	netio_client_close(till);
	netio_client_close(wallet);
	cr_assert_eq(harness_stop(&harness), 0);
	cr_assert_eq(harness_audit(&harness, NULL, NULL, 0), 0);
}

Test(auth, removed_and_rotated_keys_refused_after_sighup, .fini = stop_all, .timeout = 180)
{
	harness_init(&harness, 1, NULL);
	harness.metrics_port = harness_free_port();
	cr_assert(harness_start(&harness, NULL));
	fund();
	struct netio_key gateway_key, till_key;
	const char *acquirer[] = {"--role", "acquirer", NULL};
	const char *till_binding[] = {"--role", "terminal", "--merchant", "20", NULL};
	struct netio_client *gateway = add_client("gateway", acquirer, &gateway_key);
	struct netio_client *till = add_client("till", till_binding, &till_key);
	/* Added but not reloaded: not known yet. */
	cr_assert_eq(call(gateway, LEDGER_KIND_PAY, 10, 20, 1), NETIO_CODE_NO_ANSWER);
	reload(4);
	cr_assert_eq(call(gateway, LEDGER_KIND_PAY, 10, 20, 1), LEDGER_OK);
	cr_assert_eq(call(till, LEDGER_KIND_PAY, 10, 20, 1), LEDGER_OK);

	/* Removed: refused (no answer) from the first datagram after the reload. */
	const char *remove[] = {"remove", "till", NULL};
	cr_assert_eq(harness_client_command(&harness, remove), 0);
	reload(3);
	cr_assert_eq(call(till, LEDGER_KIND_PAY, 10, 20, 1), NETIO_CODE_NO_ANSWER);
	cr_assert_eq(call(gateway, LEDGER_KIND_PAY, 10, 20, 1), LEDGER_OK, "others unaffected");

	/* Rotated: the old key is refused, the new one served. */
	char path[400];
	snprintf(path, sizeof(path), "%s/gateway-2.key", harness.dir);
	const char *rotate[] = {"rotate", "gateway", "--key-out", path, NULL};
	cr_assert_eq(harness_client_command(&harness, rotate), 0);
	struct netio_key rotated;
	cr_assert_eq(netio_key_load(path, &rotated), 0);
	cr_assert_neq(rotated.id, gateway_key.id, "a new key id");
	reload(3);
	cr_assert_eq(call(gateway, LEDGER_KIND_PAY, 10, 20, 1), NETIO_CODE_NO_ANSWER);
	int error = 0;
	struct netio_client *renewed = netio_client_open_key("127.0.0.1", harness.port, &rotated,
							     &error);
	cr_assert_eq(call(renewed, LEDGER_KIND_PAY, 10, 20, 1), LEDGER_OK);
	cr_assert_eq(harness_balance(&harness, 20), 4, "four payments went through, no more");
	cr_assert_geq(metric("payswitch_auth_refused_total{reason=\"unknown_key\"} "), 3);
	netio_client_close(gateway);
	netio_client_close(till);
	netio_client_close(renewed);
	cr_assert_eq(harness_stop(&harness), 0);
	cr_assert_eq(harness_audit(&harness, NULL, NULL, 0), 0);
}

/* ------------------------------------------------------------------------ */
/* Under load: SIGHUP reloads, and an unauthenticated flood                  */
/* ------------------------------------------------------------------------ */
struct flood {
	atomic_bool stop;
	uint16_t port;
	struct netio_key stranger;   /* a key the switch does not hold */
	struct netio_key known;      /* the acquirer's id, the wrong secret */
	uint64_t sent;
};

/* Unsealed, unknown-key, bad-MAC and random datagrams as fast as a socket
 * takes them, from one source, until told to stop. */
static void *flood_main(void *argument)
{
	struct flood *flood = argument;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(flood->port),
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	connect(fd, (struct sockaddr *)&address, sizeof(address));
	static __attribute__((aligned(8))) uint8_t datagram[NETIO_DATAGRAM_MAX];
	struct ledger_request deposit = { .id = 1, .timestamp_us = 1, .account_id = FUNDING,
					  .other_id = 40, .amount = 1000000, .currency = 978,
					  .kind = LEDGER_KIND_DEPOSIT };
	size_t length = netio_encode_requests(datagram, sizeof(datagram), 5, 1, &deposit, 1);
	uint64_t seed = 12345;
	for (uint64_t i = 0; !atomic_load(&flood->stop); i++) {
		deposit.id = 1000000 + i;
		memcpy(datagram + NETIO_HEADER_SIZE, &deposit, sizeof(deposit));
		switch (i % 4) {
		case 0: netio_seal(NULL, datagram, length); break;
		case 1: netio_seal(&flood->stranger, datagram, length); break;
		case 2: netio_seal(&flood->known, datagram, length); break;
		default:
			for (size_t b = 4; b < length; b++) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				datagram[b] = (uint8_t)(seed >> 56);
			}
			break;
		}
		if (send(fd, datagram, length, 0) > 0)
			flood->sent++;
		else
			usleep(50);
	}
	close(fd);
	return NULL;
}

Test(auth, flood_and_reloads_while_serving, .fini = stop_all, .timeout = 300)
{
	harness_init(&harness, 2, NULL);
	harness.metrics_port = harness_free_port();
	cr_assert(harness_start(&harness, NULL));
	fund();
	harness_deposit(&harness, FUNDING, 10, 100000);
	struct flood flood = { .port = harness.port, .stranger = harness.key, .known = harness.key };
	flood.stranger.id += 1000;
	flood.known.secret[0] ^= 0x5a;
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, flood_main, &flood), 0);

	/* Authenticated payments keep being served, with SIGHUP reloads among
	 * them; every one is answered and applied exactly once. */
	enum { ROUNDS = 40, PER_ROUND = 64 };
	uint64_t approved = 0;
	for (int round = 0; round < ROUNDS; round++) {
		struct ledger_request requests[PER_ROUND];
		struct ledger_result results[PER_ROUND];
		for (int i = 0; i < PER_ROUND; i++)
			requests[i] = harness_request(&harness, LEDGER_KIND_PAY, 10, 20, 1);
		if (round % 4 == 0)
			cr_assert_eq(kill(harness.pid, SIGHUP), 0);
		cr_assert_eq(harness_call_many(&harness, requests, PER_ROUND, results), 0,
			     "round %d answered", round);
		for (int i = 0; i < PER_ROUND; i++) {
			cr_assert_eq(results[i].code, LEDGER_OK, "round %d request %d: %s", round, i,
				     ledger_result_name(results[i].code));
			approved++;
		}
	}
	atomic_store(&flood.stop, true);
	pthread_join(thread, NULL);
	cr_assert_eq(approved, (uint64_t)ROUNDS * PER_ROUND);
	cr_assert_eq(harness_balance(&harness, 10), 101000 - (int64_t)approved);
	cr_assert_eq(harness_balance(&harness, 20), (int64_t)approved);
	cr_assert_eq(harness_balance(&harness, 40), 0, "no flooded deposit reached a shard");
	uint64_t refused = metric("payswitch_auth_refused_total{reason=\"unauthenticated\"} ") +
			   metric("payswitch_auth_refused_total{reason=\"unknown_key\"} ") +
			   metric("payswitch_auth_refused_total{reason=\"bad_mac\"} ");
	cr_assert_gt(refused, 0);
	cr_assert_leq(refused, flood.sent, "the switch refused no more than was sent");
	cr_log_info("auth flood: %llu datagrams sent, %llu refused (the rest dropped by "
		    "sockets), %llu payments served among %d reloads",
		    (unsigned long long)flood.sent, (unsigned long long)refused,
		    (unsigned long long)approved, ROUNDS / 4);
	cr_assert_eq(harness_stop(&harness), 0);
	cr_assert_eq(harness_audit(&harness, NULL, NULL, 0), 0);
}
