/*
 * cli_account.c — `payswitch account ACTION ...`: account administration and
 * single payments over the native protocol, through the client library.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "config.h"
#include "ledger.h"
#include "netio.h"

static const char account_help[] =
	"usage: payswitch account ACTION ARGUMENTS [OPTIONS]\n"
	"\n"
	"actions:\n"
	"  open ID [--funding] [--merchant] [--overdraft N] [--max-payment N] [--daily-limit N]\n"
	"  deposit FUNDING_ID TO_ID AMOUNT      top up from a funding account\n"
	"  pay FROM_ID TO_ID AMOUNT\n"
	"  hold FROM_ID TO_ID AMOUNT [--timeout S]   prints the hold id (the request id)\n"
	"  capture FROM_ID HOLD_ID [AMOUNT]     AMOUNT omitted or 0: the whole hold\n"
	"  void FROM_ID HOLD_ID\n"
	"  refund MERCHANT_ID PAYER_ID AMOUNT PAYMENT_ID\n"
	"  limits ID [--overdraft N] [--max-payment N] [--daily-limit N]   (unset = none)\n"
	"  freeze ID | unfreeze ID | close ID | balance ID\n"
	"  lookup ID TRANSFER_ID                a transfer whose debit account is ID\n"
	"\n"
	"options:\n"
	"  --server HOST:PORT   the switch (default 127.0.0.1:7000)\n"
	"  --key FILE           the client key to sign with (from 'payswitch client add';\n"
	"                       default: $PAYSWITCH_KEY). open, deposit, limits, freeze,\n"
	"                       unfreeze and close need an admin key; pay, hold, capture,\n"
	"                       void and refund an acquirer or terminal key. Without a\n"
	"                       key only a switch run --insecure-no-auth answers\n"
	"  --currency N         ISO 4217 numeric (default 978, EUR)\n"
	"  --id N               request id (default: random); repeat it to retry safely\n"
	"  --timestamp US       request timestamp in microseconds (default: now)\n"
	"  --timeout-ms N       wait per attempt (default 1000), --retries N (default 3)\n"
	"  --json               print the result as JSON\n"
	"Amounts are minor units (cents). Exit status: 0 approved, 1 declined, 2 usage,\n"
	"3 no answer (also when the switch refuses the key: it does not answer those).\n";

struct account_options {
	char host[128];
	uint16_t port;
	uint64_t id;
	uint64_t timestamp_us;
	uint16_t currency;
	uint8_t account_flags;
	uint64_t overdraft;
	uint64_t max_payment;
	uint64_t daily_limit;
	uint64_t timeout_s;
	int timeout_ms;
	int retries;
	bool json;
	const char *key_path;
};

static const struct option long_options[] = {
	{ "server", required_argument, NULL, 's' },
	{ "currency", required_argument, NULL, 'c' },
	{ "id", required_argument, NULL, 'i' },
	{ "timestamp", required_argument, NULL, 'T' },
	{ "funding", no_argument, NULL, 'f' },
	{ "merchant", no_argument, NULL, 'm' },
	{ "overdraft", required_argument, NULL, 'o' },
	{ "max-payment", required_argument, NULL, 'x' },
	{ "daily-limit", required_argument, NULL, 'd' },
	{ "timeout", required_argument, NULL, 't' },
	{ "timeout-ms", required_argument, NULL, 'w' },
	{ "retries", required_argument, NULL, 'r' },
	{ "json", no_argument, NULL, 'j' },
	{ "key", required_argument, NULL, 'k' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int number(const char *text, const char *what, uint64_t *value)
{
	if (engine_parse_u64(text, value) != 0) {
		fprintf(stderr, "payswitch account: %s '%s' is not a whole number\n", what, text);
		return -1;
	}
	return 0;
}

static int parse_option(int option, struct account_options *options)
{
	uint64_t value = 0;
	switch (option) {
	case 's':
		if (engine_parse_address(optarg, options->host, sizeof(options->host),
					 &options->port) != 0) {
			fprintf(stderr, "payswitch account: --server '%s' is not HOST:PORT\n", optarg);
			return -1;
		}
		return 0;
	case 'c':
		if (number(optarg, "--currency", &value) != 0 || value == 0 || value > 999)
			return -1;
		options->currency = (uint16_t)value;
		return 0;
	case 'i': return number(optarg, "--id", &options->id);
	case 'T': return number(optarg, "--timestamp", &options->timestamp_us);
	case 'f': options->account_flags |= LEDGER_ACCOUNT_FUNDING; return 0;
	case 'm': options->account_flags |= LEDGER_ACCOUNT_MERCHANT; return 0;
	case 'o': return number(optarg, "--overdraft", &options->overdraft);
	case 'x': return number(optarg, "--max-payment", &options->max_payment);
	case 'd': return number(optarg, "--daily-limit", &options->daily_limit);
	case 't': return number(optarg, "--timeout", &options->timeout_s);
	case 'w':
		if (number(optarg, "--timeout-ms", &value) != 0 || value == 0 || value > 60000)
			return -1;
		options->timeout_ms = (int)value;
		return 0;
	case 'r':
		if (number(optarg, "--retries", &value) != 0 || value > 100)
			return -1;
		options->retries = (int)value;
		return 0;
	case 'j': options->json = true; return 0;
	case 'k': options->key_path = optarg; return 0;
	default: return -1;
	}
}

struct action {
	const char *name;
	uint8_t kind;
	uint8_t arguments_min;  /* positional arguments after the action */
	uint8_t arguments_max;
};

static const struct action actions[] = {
	{ "open", LEDGER_KIND_OPEN, 1, 1 },
	{ "deposit", LEDGER_KIND_DEPOSIT, 3, 3 },
	{ "pay", LEDGER_KIND_PAY, 3, 3 },
	{ "hold", LEDGER_KIND_HOLD, 3, 3 },
	{ "capture", LEDGER_KIND_CAPTURE, 2, 3 },
	{ "void", LEDGER_KIND_VOID, 2, 2 },
	{ "refund", LEDGER_KIND_REFUND, 4, 4 },
	{ "limits", LEDGER_KIND_SET_LIMITS, 1, 1 },
	{ "freeze", LEDGER_KIND_FREEZE, 1, 1 },
	{ "unfreeze", LEDGER_KIND_FREEZE, 1, 1 },
	{ "close", LEDGER_KIND_CLOSE, 1, 1 },
	{ "balance", LEDGER_KIND_BALANCE, 1, 1 },
	{ "lookup", LEDGER_KIND_LOOKUP, 2, 2 },
};

/* Fills the request from the positional arguments of an action. */
static int build_request(const struct action *action, char **arguments,
			 const struct account_options *options, struct ledger_request *request)
{
	uint64_t values[4] = { 0 };
	static const char *names[] = { "first id", "second id", "amount", "payment id" };
	for (uint8_t i = 0; i < action->arguments_max && arguments[i] != NULL; i++)
		if (number(arguments[i], names[i], &values[i]) != 0)
			return -1;
	request->kind = action->kind;
	request->account_id = values[0];
	request->currency = options->currency;
	switch (action->kind) {
	case LEDGER_KIND_OPEN:
	case LEDGER_KIND_SET_LIMITS:
		request->flags = action->kind == LEDGER_KIND_OPEN ? options->account_flags : 0;
		request->amount = options->overdraft;
		request->limit_payment = options->max_payment;
		request->limit_daily = options->daily_limit;
		break;
	case LEDGER_KIND_DEPOSIT:
	case LEDGER_KIND_PAY:
	case LEDGER_KIND_HOLD:
		request->other_id = values[1];
		request->amount = values[2];
		if (action->kind == LEDGER_KIND_HOLD)
			request->hold_timeout_us = options->timeout_s * 1000000u;
		break;
	case LEDGER_KIND_CAPTURE:
	case LEDGER_KIND_VOID:
	case LEDGER_KIND_LOOKUP:
		request->reference_id = values[1];
		request->amount = values[2];
		break;
	case LEDGER_KIND_REFUND:
		request->other_id = values[1];
		request->amount = values[2];
		request->reference_id = values[3];
		break;
	case LEDGER_KIND_FREEZE:
		request->flags = strcmp(action->name, "freeze") == 0 ? 1 : 0;
		break;
	default:
		break;
	}
	return 0;
}

static void print_result(const struct action *action, const struct ledger_request *request,
			 const struct ledger_result *result, bool json)
{
	const char *name = result->code == NETIO_CODE_NO_ANSWER ? "NO_ANSWER"
								 : ledger_result_name(result->code);
	if (json) {
		printf("{\"action\":\"%s\",\"id\":%llu,\"code\":%u,\"result\":\"%s\",\"duplicate\":%s,"
		       "\"balance\":%lld,\"amount\":%llu,\"sequence\":%llu}\n",
		       action->name, (unsigned long long)request->id, result->code, name,
		       (result->flags & LEDGER_RESULT_DUPLICATE) ? "true" : "false",
		       (long long)result->balance, (unsigned long long)result->amount,
		       (unsigned long long)result->sequence);
		return;
	}
	printf("%s %s: id %llu, account %llu, available balance %lld, amount %llu%s\n",
	       action->name, name, (unsigned long long)request->id,
	       (unsigned long long)request->account_id, (long long)result->balance,
	       (unsigned long long)result->amount,
	       (result->flags & LEDGER_RESULT_DUPLICATE) ? " (repeat: original outcome)" : "");
}

static uint64_t random_id(void)
{
	uint64_t id = 0;
	while (id == 0)
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint64_t)time(NULL) ^ (uint64_t)clock();
	return id >> 1;
}

int cli_account_main(int argc, char **argv)
{
	struct account_options options = { .port = 7000, .currency = LEDGER_CURRENCY_DEFAULT, .timeout_ms = 1000,
					   .retries = 3 };
	snprintf(options.host, sizeof(options.host), "127.0.0.1");
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(account_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const struct action *action = NULL;
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (!strcmp(argv[1], actions[i].name))
			action = &actions[i];
	if (action == NULL) {
		fprintf(stderr, "payswitch account: unknown action '%s'\n\n%s", argv[1], account_help);
		return 2;
	}
	optind = 1;
	int option;
	while ((option = getopt_long(argc - 1, argv + 1, "h", long_options, NULL)) != -1) {
		if (option == 'h') {
			fputs(account_help, stdout);
			return 0;
		}
		if (option == '?' || parse_option(option, &options) != 0)
			return 2;
	}
	int positional = argc - 1 - optind;
	if (positional < action->arguments_min || positional > action->arguments_max) {
		fprintf(stderr, "payswitch account %s: expected %u to %u arguments, got %d\n\n%s",
			action->name, action->arguments_min, action->arguments_max, positional,
			account_help);
		return 2;
	}
	struct ledger_request request = { 0 };
	char *arguments[5] = { 0 };
	for (int i = 0; i < positional; i++)
		arguments[i] = argv[1 + optind + i];
	if (build_request(action, arguments, &options, &request) != 0)
		return 2;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	request.id = options.id ? options.id : random_id();
	request.timestamp_us = options.timestamp_us
				       ? options.timestamp_us
				       : (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
	int error = 0;
	struct netio_key key;
	if (options.key_path == NULL)
		options.key_path = getenv("PAYSWITCH_KEY");
	if (options.key_path != NULL && options.key_path[0] != '\0') {
		error = netio_key_load(options.key_path, &key);
		if (error != 0) {
			fprintf(stderr, "payswitch account: key %s: %s\n", options.key_path,
				error == -EACCES ? "readable by others: chmod 600 it"
				: error == -EINVAL ? "not a payswitch key file"
						   : strerror(-error));
			return 2;
		}
	}
	struct netio_client *client = netio_client_open_key(
		options.host, options.port, options.key_path != NULL && options.key_path[0] != '\0'
						    ? &key : NULL, &error);
	if (client == NULL) {
		fprintf(stderr, "payswitch account: cannot reach %s:%u: %s\n", options.host,
			options.port, strerror(-error));
		return 3;
	}
	struct ledger_result result = { 0 };
	int called = netio_client_call(client, &request, 1, &result, options.timeout_ms,
				       options.retries);
	netio_client_close(client);
	if (called != 0 && called != -ETIMEDOUT) {
		fprintf(stderr, "payswitch account: %s\n", strerror(-called));
		return 3;
	}
	print_result(action, &request, &result, options.json);
	if (result.code == NETIO_CODE_NO_ANSWER) {
		fprintf(stderr, "payswitch account: no answer from %s:%u after %d retries\n",
			options.host, options.port, options.retries);
		return 3;
	}
	return result.code == LEDGER_OK ? 0 : 1;
}
