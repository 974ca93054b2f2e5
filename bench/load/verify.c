/*
 * verify.c — account setup and the end-of-run balance check.
 */
#include "verify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS 1000
#define CALL_ROUNDS 30             /* rounds of BUSY / no-answer resends at most */
#define VERIFY_ROUNDS 25           /* balance reads, 200 ms apart */

struct setup_ids {
	uint64_t next;
};

/* Setup ids: a random 23-bit nonce with bit 39 set, so they never meet the
 * driver's ids (whose counters stay far below 2^39). */
static void setup_ids_init(struct setup_ids *ids)
{
	uint64_t nonce = 0;
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = ledger_realtime_us();
	ids->next = (((nonce & ((1ull << 23) - 1u)) | 1u) << 40) | (1ull << 39);
}

static struct ledger_request make_request(struct setup_ids *ids, uint16_t currency,
					  uint8_t kind, uint64_t account, uint64_t other,
					  uint64_t amount)
{
	struct ledger_request request = { 0 };
	request.id = ++ids->next;
	request.timestamp_us = ledger_realtime_us();
	request.currency = currency;
	request.kind = kind;
	request.account_id = account;
	request.other_id = other;
	request.amount = amount;
	return request;
}

/* Calls every request until each has an answer other than BUSY: resends the
 * same requests (same ids) in rounds. Returns 0 or -ETIMEDOUT / -errno. */
static int call_all(struct netio_client *client, const struct ledger_request *requests,
		    uint32_t count, struct ledger_result *results)
{
	uint32_t *pending = malloc((size_t)count * sizeof(uint32_t));
	struct ledger_request *batch = malloc(NETIO_CLIENT_REQUESTS_MAX * sizeof(*batch));
	struct ledger_result *answers = malloc(NETIO_CLIENT_REQUESTS_MAX * sizeof(*answers));
	int status = -ENOMEM;
	if (pending == NULL || batch == NULL || answers == NULL)
		goto out;
	uint32_t pending_count = count;
	for (uint32_t i = 0; i < count; i++)
		pending[i] = i;
	status = -ETIMEDOUT;
	for (int round = 0; round < CALL_ROUNDS && pending_count > 0; round++) {
		if (round > 0)
			usleep(10000u * (uint32_t)round);
		uint32_t left = 0, silent = 0;
		for (uint32_t done = 0; done < pending_count;) {
			uint32_t n = pending_count - done;
			if (n > NETIO_CLIENT_REQUESTS_MAX)
				n = NETIO_CLIENT_REQUESTS_MAX;
			for (uint32_t i = 0; i < n; i++)
				batch[i] = requests[pending[done + i]];
			int called = netio_client_call(client, batch, n, answers, CALL_TIMEOUT_MS, 2);
			if (called != 0 && called != -ETIMEDOUT) {
				status = called;
				goto out;
			}
			for (uint32_t i = 0; i < n; i++) {
				uint32_t index = pending[done + i];
				results[index] = answers[i];
				if (answers[i].code == LEDGER_BUSY || answers[i].code == NETIO_CODE_NO_ANSWER)
					pending[left++] = index;
				silent += answers[i].code == NETIO_CODE_NO_ANSWER;
			}
			done += n;
		}
		/* Not one answer in a whole round (its retries included): the
		 * switch is down, or refuses our key silently; more rounds would
		 * only wait longer. */
		if (silent == pending_count)
			break;
		pending_count = left;
	}
	status = pending_count == 0 ? 0 : -ETIMEDOUT;
out:
	free(pending);
	free(batch);
	free(answers);
	return status;
}

static int open_accounts(const struct load_config *config, const struct load_accounts *accounts,
			 struct netio_client *client, struct setup_ids *ids, bool *opened, FILE *err)
{
	uint32_t total = accounts->total;
	struct ledger_request *requests = calloc(total, sizeof(*requests));
	struct ledger_result *results = calloc(total, sizeof(*results));
	int status = -ENOMEM;
	if (requests == NULL || results == NULL)
		goto out;
	for (uint32_t i = 0; i < total; i++) {
		requests[i] = make_request(ids, config->currency, LEDGER_KIND_OPEN,
					   load_account_id(accounts, i), 0, 0);
		if (i == 0)
			requests[i].flags = LEDGER_ACCOUNT_FUNDING;
		else if (i >= accounts->first_merchant)
			requests[i].flags = LEDGER_ACCOUNT_MERCHANT;
	}
	status = call_all(client, requests, total, results);
	if (status != 0) {
		fprintf(stderr, "payswitch-load: opening accounts: %s%s\n", strerror(-status),
			status == -ETIMEDOUT
				? " (an authenticating switch does not answer a datagram without a "
				  "key it knows: pass --admin-key / --key, or run it --insecure-no-auth)"
				: "");
		goto out;
	}
	for (uint32_t i = 0; i < total; i++) {
		opened[i] = results[i].code == LEDGER_OK;
		if (results[i].code == LEDGER_OK)
			continue;
		if (results[i].code == LEDGER_ACCOUNT_EXISTS && config->use_existing)
			continue;
		fprintf(err, "payswitch-load: open account %llu: %s%s\n",
			(unsigned long long)requests[i].account_id, ledger_result_name(results[i].code),
			results[i].code == LEDGER_ACCOUNT_EXISTS
				? " (rerun with --use-existing, or pick another --account-base)"
			: results[i].code == LEDGER_FORBIDDEN
				? " (the setup key is not an admin key: pass --admin-key FILE)"
				: "");
		status = results[i].code == LEDGER_ACCOUNT_EXISTS ? -EEXIST : -EPROTO;
		goto out;
	}
out:
	free(requests);
	free(results);
	return status;
}

static int fund_payers(const struct load_config *config, const struct load_accounts *accounts,
		       struct netio_client *client, struct setup_ids *ids, const bool *opened,
		       FILE *err)
{
	struct ledger_request *requests = calloc(accounts->payers, sizeof(*requests));
	struct ledger_result *results = calloc(accounts->payers, sizeof(*results));
	int status = -ENOMEM;
	if (requests == NULL || results == NULL)
		goto out;
	uint32_t count = 0;
	for (uint32_t p = 0; p < accounts->payers; p++) {
		uint32_t index = accounts->first_payer + p;
		if (!opened[index])
			continue;   /* an existing wallet keeps what it has */
		uint64_t amount = p < accounts->broke ? config->broke_funds_cents
						      : config->payer_funds_cents;
		requests[count++] = make_request(ids, config->currency, LEDGER_KIND_DEPOSIT,
						 load_account_id(accounts, 0),
						 load_account_id(accounts, index), amount);
	}
	status = count ? call_all(client, requests, count, results) : 0;
	for (uint32_t i = 0; status == 0 && i < count; i++) {
		if (results[i].code != LEDGER_OK) {
			fprintf(err, "payswitch-load: deposit to %llu: %s%s\n",
				(unsigned long long)requests[i].other_id,
				ledger_result_name(results[i].code),
				results[i].code == LEDGER_FORBIDDEN
					? " (the setup key is not an admin key: pass --admin-key FILE)"
					: "");
			status = -EPROTO;
		}
	}
	if (status != 0 && status != -EPROTO)
		fprintf(err, "payswitch-load: funding payers: %s\n", strerror(-status));
out:
	free(requests);
	free(results);
	return status;
}

/* Reads the available balance of every account into balances[]. */
static int read_balances(const struct load_config *config, const struct load_accounts *accounts,
			 struct netio_client *client, int64_t *balances)
{
	struct setup_ids ids;
	setup_ids_init(&ids);
	uint32_t total = accounts->total;
	struct ledger_request *requests = calloc(total, sizeof(*requests));
	struct ledger_result *results = calloc(total, sizeof(*results));
	int status = -ENOMEM;
	if (requests == NULL || results == NULL)
		goto out;
	for (uint32_t i = 0; i < total; i++)
		requests[i] = make_request(&ids, config->currency, LEDGER_KIND_BALANCE,
					   load_account_id(accounts, i), 0, 0);
	status = call_all(client, requests, total, results);
	for (uint32_t i = 0; status == 0 && i < total; i++) {
		if (results[i].code != LEDGER_OK) {
			fprintf(stderr, "payswitch-load: balance of %llu: %s\n",
				(unsigned long long)requests[i].account_id,
				ledger_result_name(results[i].code));
			status = -EPROTO;
			break;
		}
		balances[i] = results[i].balance;
	}
out:
	free(requests);
	free(results);
	return status;
}

int load_setup(const struct load_config *config, const struct load_accounts *accounts,
	       struct netio_client *client, int64_t *expected, FILE *err)
{
	struct setup_ids ids;
	setup_ids_init(&ids);
	bool *opened = calloc(accounts->total, sizeof(bool));
	if (opened == NULL)
		return -ENOMEM;
	int status = open_accounts(config, accounts, client, &ids, opened, err);
	if (status == 0)
		status = fund_payers(config, accounts, client, &ids, opened, err);
	if (status == 0) {
		status = read_balances(config, accounts, client, expected);
		if (status != 0)
			fprintf(err, "payswitch-load: reading balances: %s\n", strerror(-status));
	}
	free(opened);
	return status;
}

int64_t load_verify(const struct load_config *config, const struct load_accounts *accounts,
		    struct netio_client *client, const int64_t *expected,
		    struct load_verification *verification)
{
	memset(verification, 0, sizeof(*verification));
	int64_t *actual = calloc(accounts->total, sizeof(int64_t));
	if (actual == NULL)
		return -ENOMEM;
	int64_t mismatches = 0;
	for (uint32_t round = 0; round < VERIFY_ROUNDS; round++) {
		if (round > 0)
			usleep(200000);
		int status = read_balances(config, accounts, client, actual);
		verification->rounds = round + 1;
		if (status != 0) {
			free(actual);
			return status;
		}
		mismatches = 0;
		for (uint32_t i = 0; i < accounts->total; i++)
			mismatches += expected[i] != actual[i];
		if (mismatches == 0)
			break;
	}
	verification->done = true;
	verification->accounts_checked = accounts->total;
	verification->mismatches = (uint64_t)mismatches;
	for (uint32_t i = 0; i < accounts->total; i++) {
		verification->expected_sum += expected[i];
		verification->actual_sum += actual[i];
		if (expected[i] != actual[i] && verification->kept_count < LOAD_MISMATCHES_KEPT)
			verification->kept[verification->kept_count++] = (struct load_mismatch){
				.account_id = load_account_id(accounts, i),
				.expected = expected[i],
				.actual = actual[i],
			};
	}
	free(actual);
	return mismatches;
}
