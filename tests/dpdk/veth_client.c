/*
 * veth_client.c — a kernel-socket client for the DPDK switch across a veth
 * pair: the netio client library (UDP sockets) from a network namespace.
 *
 * usage: dpdk_veth_client HOST PORT FIRST_ACCOUNT ACCOUNTS PAYMENTS [ADMIN_KEY PAY_KEY]
 *
 * With the two key files (payswitch client add), OPEN, DEPOSIT and BALANCE
 * are signed with the admin key and PAY with the acquirer key; without them
 * no key is sent (a switch run --insecure-no-auth).
 * Opens ACCOUNTS accounts and a funding account, deposits 100000 cents into
 * each, makes PAYMENTS random payments (half in batches of 20 per datagram,
 * half one per datagram), checks every result (id, an expected code) and
 * finally compares every BALANCE with a model. Exit 0 when all held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "netio.h"

#define INITIAL 100000
#define BATCH 20
#define CURRENCY 978

static struct netio_client *client;         /* the phase's: admin or payments */
static struct netio_client *admin_client, *pay_client;
static uint64_t next_id;
static uint64_t errors;

static struct ledger_request make(uint8_t kind, uint64_t account, uint64_t other,
				  uint64_t amount)
{
	struct ledger_request request;
	memset(&request, 0, sizeof(request));
	request.id = next_id++;
	request.timestamp_us = ledger_realtime_us();
	request.account_id = account;
	request.other_id = other;
	request.amount = amount;
	request.currency = CURRENCY;
	request.kind = kind;
	return request;
}

/* Calls count requests; every answer must carry its request's id. */
static int call(const struct ledger_request *requests, uint32_t count,
		struct ledger_result *results)
{
	int result = netio_client_call(client, requests, count, results, 1000, 10);
	if (result != 0) {
		fprintf(stderr, "call of %u requests failed: %d\n", count, result);
		return result;
	}
	for (uint32_t i = 0; i < count; i++)
		if (results[i].id != requests[i].id) {
			fprintf(stderr, "result %u answers id %" PRIu64 ", asked %" PRIu64 "\n", i,
				results[i].id, requests[i].id);
			errors++;
		}
	return 0;
}

static void expect_ok(const struct ledger_result *result, const char *what)
{
	if (result->code != LEDGER_OK) {
		fprintf(stderr, "%s: code %u\n", what, result->code);
		errors++;
	}
}

static int setup(uint64_t first, uint64_t accounts, int64_t *model)
{
	struct ledger_request requests[BATCH];
	struct ledger_result results[BATCH];
	for (uint64_t a = 0; a <= accounts; a += BATCH) {
		uint32_t n = 0;
		for (uint64_t i = a; i <= accounts && n < BATCH; i++, n++) {
			requests[n] = make(LEDGER_KIND_OPEN, first + i, 0, 0);
			requests[n].flags = i == accounts ? LEDGER_ACCOUNT_FUNDING : 0;
		}
		if (call(requests, n, results) != 0)
			return -1;
		for (uint32_t i = 0; i < n; i++)
			expect_ok(&results[i], "open");
	}
	for (uint64_t a = 0; a < accounts; a += BATCH) {
		uint32_t n = 0;
		for (uint64_t i = a; i < accounts && n < BATCH; i++, n++)
			requests[n] = make(LEDGER_KIND_DEPOSIT, first + accounts, first + i, INITIAL);
		if (call(requests, n, results) != 0)
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			expect_ok(&results[i], "deposit");
			if (results[i].code == LEDGER_OK)
				model[requests[i].other_id - first] += INITIAL;
		}
	}
	return 0;
}

static int pay(uint64_t first, uint64_t accounts, uint64_t payments, int64_t *model)
{
	struct ledger_request requests[BATCH];
	struct ledger_result results[BATCH];
	uint64_t done = 0;
	while (done < payments) {
		uint32_t n = done < payments / 2 ? BATCH : 1;
		if (n > payments - done)
			n = (uint32_t)(payments - done);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t payer = (uint64_t)rand() % accounts;
			uint64_t payee = (payer + 1 + (uint64_t)rand() % (accounts - 1)) % accounts;
			requests[i] = make(LEDGER_KIND_PAY, first + payer, first + payee,
					   1 + (uint64_t)rand() % 500);
		}
		if (call(requests, n, results) != 0)
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			if (results[i].code == LEDGER_OK) {
				model[requests[i].account_id - first] -= (int64_t)requests[i].amount;
				model[requests[i].other_id - first] += (int64_t)requests[i].amount;
			} else if (results[i].code != LEDGER_INSUFFICIENT_FUNDS) {
				fprintf(stderr, "pay: code %u\n", results[i].code);
				errors++;
			}
		}
		done += n;
	}
	return 0;
}

static int check_balances(uint64_t first, uint64_t accounts, const int64_t *model)
{
	struct ledger_request requests[BATCH];
	struct ledger_result results[BATCH];
	uint64_t wrong = 0;
	for (uint64_t a = 0; a < accounts; a += BATCH) {
		uint32_t n = 0;
		for (uint64_t i = a; i < accounts && n < BATCH; i++, n++)
			requests[n] = make(LEDGER_KIND_BALANCE, first + i, 0, 0);
		if (call(requests, n, results) != 0)
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			expect_ok(&results[i], "balance");
			wrong += results[i].balance != model[requests[i].account_id - first];
		}
	}
	if (wrong != 0) {
		fprintf(stderr, "%" PRIu64 " balances differ from the model\n", wrong);
		errors++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 6 && argc != 8) {
		fprintf(stderr, "usage: %s HOST PORT FIRST_ACCOUNT ACCOUNTS PAYMENTS "
				"[ADMIN_KEY PAY_KEY]\n", argv[0]);
		return 2;
	}
	uint64_t first = strtoull(argv[3], NULL, 0), accounts = strtoull(argv[4], NULL, 0);
	uint64_t payments = strtoull(argv[5], NULL, 0);
	if (accounts < 2 || first == 0)
		return 2;
	int error = 0;
	struct netio_key keys[2];
	for (int k = 0; argc == 8 && k < 2; k++) {
		error = netio_key_load(argv[6 + k], &keys[k]);
		if (error != 0) {
			fprintf(stderr, "key %s: %s\n", argv[6 + k], strerror(-error));
			return 2;
		}
	}
	uint16_t port = (uint16_t)atoi(argv[2]);
	admin_client = netio_client_open_key(argv[1], port, argc == 8 ? &keys[0] : NULL, &error);
	if (admin_client != NULL)
		pay_client = netio_client_open_key(argv[1], port, argc == 8 ? &keys[1] : NULL, &error);
	if (admin_client == NULL || pay_client == NULL) {
		fprintf(stderr, "netio_client_open_key: %d\n", error);
		return 1;
	}
	client = admin_client;
	next_id = (ledger_realtime_us() << 8) | 1; /* unique across runs against one switch */
	srand((unsigned)ledger_realtime_us());
	int64_t *model = calloc(accounts, sizeof(int64_t));
	if (model == NULL)
		return 1;
	int result = setup(first, accounts, model);
	client = pay_client;
	if (result == 0)
		result = pay(first, accounts, payments, model);
	client = admin_client;
	if (result == 0)
		result = check_balances(first, accounts, model);
	struct netio_client_stats stats, pay_stats;
	netio_client_stats_read(admin_client, &stats);
	netio_client_stats_read(pay_client, &pay_stats);
	printf("veth client: %" PRIu64 " accounts, %" PRIu64 " payments, datagrams %" PRIu64
	       ", retransmits %" PRIu64 ", replies failing authentication %" PRIu64
	       ", errors %" PRIu64 "\n", accounts, payments,
	       stats.datagrams_sent + pay_stats.datagrams_sent,
	       stats.retransmits + pay_stats.retransmits,
	       stats.replies_invalid + pay_stats.replies_invalid, errors);
	netio_client_close(admin_client);
	netio_client_close(pay_client);
	free(model);
	return result == 0 && errors == 0 ? 0 : 1;
}
