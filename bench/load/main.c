/*
 * main.c — payswitch-load: drives the switch with micro-payment workloads
 * and checks that the balances it reports are what the generator saw.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver.h"
#include "echo.h"
#include "load.h"
#include "report.h"
#include "sweep.h"
#include "verify.h"
#include "workload.h"

static const char usage_text[] =
	"usage: payswitch-load [OPTIONS]\n"
	"\n"
	"Drives a payswitch over the native protocol with micro-payment workloads,\n"
	"prints a progress line each second and a summary, and verifies that every\n"
	"balance the switch reports equals the generator's own tally.\n"
	"\n"
	"target:\n"
	"  --server HOST:PORT     the switch (default 127.0.0.1:7000)\n"
	"  --echo                 no switch: an in-process stand-in approves everything,\n"
	"                         to measure the generator alone (no verification);\n"
	"                         with --key it checks and seals MACs like the switch\n"
	"authentication (key files from 'payswitch client add', mode 0600):\n"
	"  --key FILE             the acquirer key that signs the run's payments, holds,\n"
	"                         captures, voids and refunds\n"
	"  --admin-key FILE       the admin key for the setup (OPEN, DEPOSIT) and the\n"
	"                         balance reads of the verification; one of the two\n"
	"                         alone signs everything; neither: no key (answered only\n"
	"                         by a switch started --insecure-no-auth)\n"
	"load shape:\n"
	"  --window N             closed loop: requests in flight (default 4096)\n"
	"  --rate R               open loop: requests/s (k, M suffixes); latency counts\n"
	"                         from the scheduled send time\n"
	"  --profile flat|morning open-loop rate over the run (morning: a rush peaking\n"
	"                         at 40%% of the run, 30%% of the rate at the edges)\n"
	"  --per-datagram K       requests per datagram, 1..128 (default 128)\n"
	"  --inflight-max N       open loop: requests in flight at most (default 131072)\n"
	"  --duration S           seconds of load (default 10)\n"
	"  --count N              stop after N requests (with --duration: whichever first)\n"
	"latency sweep:\n"
	"  --sweep RATES|auto     open loop at each rate in turn (comma list, k/M suffixes;\n"
	"                         auto: 25k,50k,100k,150k,200k,300k,400k,600k,800k,1M,1.2M,\n"
	"                         1.5M,2M), a fresh histogram per step; stops when delivered\n"
	"                         falls below 95%% of offered or p99 passes 50 ms; prints a\n"
	"                         table and the highest rate with p99 <= 5 ms and <= 1 ms;\n"
	"                         --json / --plot then describe the sweep (latency against\n"
	"                         offered rate); balances are verified once at the end\n"
	"  --step-seconds S       seconds per sweep step (default 3)\n"
	"workload:\n"
	"  --mix coffee=60,bills=10,news=30   weights of the models (default as shown)\n"
	"  --zipf S               payee skew exponent (default 1.0; 0 = uniform)\n"
	"  --payers N             wallets (default 20000)\n"
	"  --merchants N          coffee shops (default 2000)\n"
	"  --utilities N          bill payees, few and hot (default 8)\n"
	"  --publishers N         newspapers (default 40)\n"
	"  --broke-share F        share of payers funded with little (default 0.05)\n"
	"  --retry-share F        share of requests repeated with the same id (default 0.01)\n"
	"  --refund-share F       share of requests that refund a payment (default 0.01)\n"
	"  --hold-share F         share of coffees and bills held first, then captured or\n"
	"                         voided (default 0.05)\n"
	"  --payer-funds CENTS    deposit per payer (default 10000000)\n"
	"  --broke-funds CENTS    deposit per broke payer (default 2000)\n"
	"  --account-base N       account ids are N (funding), N+1, ... (default 1000000)\n"
	"  --use-existing         accounts may exist already (a rerun on the same data)\n"
	"  --currency N           ISO 4217 numeric (default 978)\n"
	"  --seed N               workload random seed (default: from the clock)\n"
	"robustness:\n"
	"  --timeout-ms N         resend the same request after N ms unanswered (default 500),\n"
	"                         then after 2N, 4N, 8N, 8N ... each plus a random 0-50%%;\n"
	"                         BUSY answers are resent after their retry_after_us + 0-50%%\n"
	"  --retransmits N        then give up: NO_ANSWER, the run fails (default 20)\n"
	"output:\n"
	"  --json FILE            config, totals, codes, latency, verification, per-second series\n"
	"  --plot FILE.png        throughput and latency over time (gnuplot)\n"
	"  --quiet                no progress line\n"
	"  --no-verify            skip the balance check\n"
	"test hook:\n"
	"  --corrupt-tally ID     add one cent to the expected balance of account ID before\n"
	"                         verifying: the run must then fail naming that account\n"
	"\n"
	"Exit status: 0 pass, 1 verification failed or requests unanswered, 2 usage,\n"
	"3 the switch cannot be reached or set up.\n";

enum option_key {
	OPT_SERVER = 256, OPT_ECHO, OPT_WINDOW, OPT_RATE, OPT_PROFILE, OPT_PER_DATAGRAM,
	OPT_INFLIGHT, OPT_DURATION, OPT_COUNT, OPT_MIX, OPT_ZIPF, OPT_PAYERS, OPT_MERCHANTS,
	OPT_UTILITIES, OPT_PUBLISHERS, OPT_BROKE, OPT_RETRY, OPT_REFUND, OPT_HOLD,
	OPT_PAYER_FUNDS, OPT_BROKE_FUNDS, OPT_BASE, OPT_EXISTING, OPT_CURRENCY, OPT_SEED,
	OPT_TIMEOUT, OPT_RETRANSMITS, OPT_JSON, OPT_PLOT, OPT_QUIET, OPT_NO_VERIFY, OPT_CORRUPT,
	OPT_SWEEP, OPT_STEP_SECONDS, OPT_KEY, OPT_ADMIN_KEY,
};

static const struct option long_options[] = {
	{ "server", required_argument, NULL, OPT_SERVER },
	{ "echo", no_argument, NULL, OPT_ECHO },
	{ "window", required_argument, NULL, OPT_WINDOW },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "per-datagram", required_argument, NULL, OPT_PER_DATAGRAM },
	{ "inflight-max", required_argument, NULL, OPT_INFLIGHT },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "mix", required_argument, NULL, OPT_MIX },
	{ "zipf", required_argument, NULL, OPT_ZIPF },
	{ "payers", required_argument, NULL, OPT_PAYERS },
	{ "merchants", required_argument, NULL, OPT_MERCHANTS },
	{ "utilities", required_argument, NULL, OPT_UTILITIES },
	{ "publishers", required_argument, NULL, OPT_PUBLISHERS },
	{ "broke-share", required_argument, NULL, OPT_BROKE },
	{ "retry-share", required_argument, NULL, OPT_RETRY },
	{ "refund-share", required_argument, NULL, OPT_REFUND },
	{ "hold-share", required_argument, NULL, OPT_HOLD },
	{ "payer-funds", required_argument, NULL, OPT_PAYER_FUNDS },
	{ "broke-funds", required_argument, NULL, OPT_BROKE_FUNDS },
	{ "account-base", required_argument, NULL, OPT_BASE },
	{ "use-existing", no_argument, NULL, OPT_EXISTING },
	{ "currency", required_argument, NULL, OPT_CURRENCY },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
	{ "retransmits", required_argument, NULL, OPT_RETRANSMITS },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "plot", required_argument, NULL, OPT_PLOT },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
	{ "corrupt-tally", required_argument, NULL, OPT_CORRUPT },
	{ "sweep", required_argument, NULL, OPT_SWEEP },
	{ "step-seconds", required_argument, NULL, OPT_STEP_SECONDS },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "admin-key", required_argument, NULL, OPT_ADMIN_KEY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void config_default(struct load_config *config)
{
	memset(config, 0, sizeof(*config));
	snprintf(config->host, sizeof(config->host), "127.0.0.1");
	config->port = 7000;
	load_workload_defaults(config);
	config->retry_share = 0.01;
	config->refund_share = 0.01;
	config->hold_share = 0.05;
	config->window = 4096;
	config->per_datagram = NETIO_BATCH_MAX;
	config->inflight_max = 131072;
	config->duration_s = 10;
	config->timeout_ms = 500;
	config->retransmits_max = 20;
	config->seed = (uint64_t)time(NULL) * 2654435761u;
	config->sweep_step_s = 3;
}

/* A whole number with an optional k / M / G suffix (powers of 1000). */
static int parse_count(const char *text, uint64_t *value)
{
	char *end = NULL;
	errno = 0;
	unsigned long long number = strtoull(text, &end, 10);
	if (errno != 0 || end == text || text[0] == '-')
		return -1;
	uint64_t scale = 1;
	if (*end == 'k' || *end == 'K')
		scale = 1000;
	else if (*end == 'M' || *end == 'm')
		scale = 1000000;
	else if (*end == 'G' || *end == 'g')
		scale = 1000000000;
	if (scale != 1)
		end++;
	if (*end != '\0' || number > UINT64_MAX / scale)
		return -1;
	*value = number * scale;
	return 0;
}

static int parse_share(const char *text, double *value)
{
	char *end = NULL;
	double number = strtod(text, &end);
	if (end == text || *end != '\0' || !(number >= 0.0) || number > 1.0)
		return -1;
	*value = number;
	return 0;
}

static int parse_u32(const char *text, uint32_t low, uint32_t high, uint32_t *value)
{
	uint64_t number = 0;
	if (parse_count(text, &number) != 0 || number < low || number > high)
		return -1;
	*value = (uint32_t)number;
	return 0;
}

static int parse_mix(const char *text, uint32_t mix[LOAD_WORKLOADS])
{
	static const char *const names[LOAD_WORKLOADS] = { "coffee", "bills", "news" };
	uint32_t parsed[LOAD_WORKLOADS] = { 0 };
	char copy[256];
	snprintf(copy, sizeof(copy), "%s", text);
	char *save = NULL;
	for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		char *equals = strchr(part, '=');
		if (equals == NULL)
			return -1;
		*equals = '\0';
		uint32_t index = LOAD_WORKLOADS;
		for (uint32_t i = 0; i < LOAD_WORKLOADS; i++)
			if (!strcmp(part, names[i]) || (i == 2 && !strcmp(part, "newspapers")))
				index = i;
		if (index == LOAD_WORKLOADS || parse_u32(equals + 1, 0, 1000000, &parsed[index]) != 0)
			return -1;
	}
	if (parsed[0] + parsed[1] + parsed[2] == 0)
		return -1;
	memcpy(mix, parsed, sizeof(parsed));
	return 0;
}

/* A rate with an optional k / M suffix and decimals ("1.5M"). */
static int parse_rate(const char *text, uint64_t *value)
{
	char *end = NULL;
	double number = strtod(text, &end);
	if (end == text || !(number > 0))
		return -1;
	if (*end == 'k' || *end == 'K')
		number *= 1e3, end++;
	else if (*end == 'M' || *end == 'm')
		number *= 1e6, end++;
	if (*end != '\0' || number < 1 || number > 1e9)
		return -1;
	*value = (uint64_t)(number + 0.5);
	return 0;
}

static int parse_sweep(const char *text, struct load_config *config)
{
	if (!strcmp(text, "auto"))
		text = "25k,50k,100k,150k,200k,300k,400k,600k,800k,1M,1.2M,1.5M,2M";
	char copy[1024];
	if (snprintf(copy, sizeof(copy), "%s", text) >= (int)sizeof(copy))
		return -1;
	uint32_t steps = 0;
	char *save = NULL;
	for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		if (steps == LOAD_SWEEP_STEPS_MAX || parse_rate(part, &config->sweep_rates[steps]) != 0)
			return -1;
		steps++;
	}
	if (steps == 0)
		return -1;
	config->sweep_steps = steps;
	return 0;
}

static int parse_server(const char *text, struct load_config *config)
{
	const char *colon = strrchr(text, ':');
	uint32_t port = 0;
	if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof(config->host) ||
	    parse_u32(colon + 1, 1, 65535, &port) != 0)
		return -1;
	size_t length = (size_t)(colon - text);
	if (text[0] == '[' && colon[-1] == ']') {
		text++;
		length -= 2;
	}
	memcpy(config->host, text, length);
	config->host[length] = '\0';
	config->port = (uint16_t)port;
	return 0;
}

static int parse_number_option(int option, const char *text, struct load_config *config)
{
	uint64_t value = 0;
	switch (option) {
	case OPT_WINDOW: return parse_u32(text, 1, 1u << 20, &config->window);
	case OPT_RATE: return parse_count(text, &config->rate) != 0 || config->rate == 0 ? -1 : 0;
	case OPT_PER_DATAGRAM: return parse_u32(text, 1, NETIO_BATCH_MAX, &config->per_datagram);
	case OPT_INFLIGHT: return parse_u32(text, 1, 1u << 22, &config->inflight_max);
	case OPT_COUNT: return parse_count(text, &config->count);
	case OPT_PAYERS: return parse_u32(text, 2, 100000000, &config->payers);
	case OPT_MERCHANTS: return parse_u32(text, 1, 10000000, &config->merchants);
	case OPT_UTILITIES: return parse_u32(text, 1, 10000000, &config->utilities);
	case OPT_PUBLISHERS: return parse_u32(text, 1, 10000000, &config->publishers);
	case OPT_PAYER_FUNDS: return parse_count(text, &config->payer_funds_cents);
	case OPT_BROKE_FUNDS: return parse_count(text, &config->broke_funds_cents);
	case OPT_BASE:
		if (parse_count(text, &config->account_base) != 0 || config->account_base == 0 ||
		    config->account_base > (1ull << 62))
			return -1;
		return 0;
	case OPT_CURRENCY:
		if (parse_count(text, &value) != 0 || value == 0 || value > 999)
			return -1;
		config->currency = (uint16_t)value;
		return 0;
	case OPT_SEED: return parse_count(text, &config->seed);
	case OPT_TIMEOUT: return parse_u32(text, 1, 60000, &config->timeout_ms);
	case OPT_RETRANSMITS: return parse_u32(text, 0, 250, &config->retransmits_max);
	case OPT_CORRUPT:
		config->corrupt = true;
		return parse_count(text, &config->corrupt_account);
	default: return -1;
	}
}

static int parse_option(int option, const char *text, struct load_config *config,
			bool *no_verify)
{
	char *end = NULL;
	switch (option) {
	case OPT_SERVER: return parse_server(text, config);
	case OPT_ECHO: config->echo = true; return 0;
	case OPT_PROFILE:
		if (!strcmp(text, "flat"))
			config->profile = LOAD_PROFILE_FLAT;
		else if (!strcmp(text, "morning"))
			config->profile = LOAD_PROFILE_MORNING;
		else
			return -1;
		return 0;
	case OPT_DURATION:
		config->duration_s = strtod(text, &end);
		return end == text || *end != '\0' || !(config->duration_s >= 0) ? -1 : 0;
	case OPT_MIX: return parse_mix(text, config->mix);
	case OPT_ZIPF:
		config->zipf_s = strtod(text, &end);
		return end == text || *end != '\0' || !(config->zipf_s >= 0) || config->zipf_s > 10 ? -1 : 0;
	case OPT_BROKE: return parse_share(text, &config->broke_share);
	case OPT_RETRY: return parse_share(text, &config->retry_share);
	case OPT_REFUND: return parse_share(text, &config->refund_share);
	case OPT_HOLD: return parse_share(text, &config->hold_share);
	case OPT_EXISTING: config->use_existing = true; return 0;
	case OPT_JSON: config->json_path = text; return 0;
	case OPT_PLOT: config->plot_path = text; return 0;
	case OPT_QUIET: config->quiet = true; return 0;
	case OPT_NO_VERIFY: *no_verify = true; return 0;
	case OPT_SWEEP: return parse_sweep(text, config);
	case OPT_KEY: config->key_path = text; return 0;
	case OPT_ADMIN_KEY: config->admin_key_path = text; return 0;
	case OPT_STEP_SECONDS:
		config->sweep_step_s = strtod(text, &end);
		return end == text || *end != '\0' || !(config->sweep_step_s >= 0.2) ||
		       config->sweep_step_s > 3600 ? -1 : 0;
	default: return parse_number_option(option, text, config);
	}
}

/* Returns -1 to go on, or the exit status. */
static int parse_arguments(int argc, char **argv, struct load_config *config, bool *no_verify)
{
	int option;
	while ((option = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (option == 'h') {
			fputs(usage_text, stdout);
			return 0;
		}
		if (option == '?')
			return 2;
		if (parse_option(option, optarg, config, no_verify) != 0) {
			fprintf(stderr, "payswitch-load: bad value '%s' for --%s\n", optarg ? optarg : "",
				long_options[option - OPT_SERVER].name);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "payswitch-load: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (config->sweep_steps > 0 && (config->rate || config->count)) {
		fprintf(stderr, "payswitch-load: --sweep sets the rates and durations itself\n");
		return 2;
	}
	if (config->duration_s == 0 && config->count == 0) {
		fprintf(stderr, "payswitch-load: give --duration S or --count N\n");
		return 2;
	}
	if (config->broke_share * config->payers >= config->payers) {
		fprintf(stderr, "payswitch-load: --broke-share leaves no funded payer\n");
		return 2;
	}
	return -1;
}

/* Reads one key file; prints the path and the reason when it cannot. */
static int key_read(const char *option, const char *path, struct netio_key *key)
{
	int error = netio_key_load(path, key);
	if (error == 0)
		return 0;
	fprintf(stderr, "payswitch-load: %s %s: %s\n", option, path,
		error == -EACCES ? "readable by group or others (a key file must be mode 0600: "
				   "chmod 600 it)"
		: error == -EINVAL ? "not a payswitch key file (one line 'payswitch-key 1 ID HEX "
				     "NAME', from 'payswitch client add')"
				   : strerror(-error));
	return -1;
}

/* Loads --key and --admin-key; one alone signs everything. Returns -1 to go
 * on, or the exit status. */
static int keys_load(struct load_config *config)
{
	if (config->key_path && key_read("--key", config->key_path, &config->key) != 0)
		return 2;
	if (config->admin_key_path &&
	    key_read("--admin-key", config->admin_key_path, &config->admin_key) != 0)
		return 2;
	config->keyed = config->key_path != NULL;
	config->admin_keyed = config->admin_key_path != NULL;
	if (config->keyed && !config->admin_keyed) {
		config->admin_key = config->key;
		config->admin_keyed = true;
	} else if (config->admin_keyed && !config->keyed) {
		config->key = config->admin_key;
		config->keyed = true;
	}
	if (!config->keyed && !config->echo)
		fprintf(stderr, "payswitch-load: WARNING: no --key / --admin-key: datagrams carry "
				"no key and only a switch started --insecure-no-auth answers them "
				"(an authenticating switch stays silent)\n");
	return -1;
}

struct run {
	struct load_config config;
	struct load_accounts accounts;
	struct load_workload workload;
	struct load_echo *echo;
	struct netio_client *client;   /* the run's payments: config.key */
	struct netio_client *admin;    /* setup and verification: config.admin_key;
	                                * == client when both keys are the same */
	struct load_driver *driver;
	int64_t *expected;
	struct load_verification verification;
	bool no_verify;
	char verdict[256];
};

static int run_open(struct run *run)
{
	int error = 0;
	if (run->config.echo) {
		run->echo = load_echo_start(&run->config.port,
					    run->config.keyed ? &run->config.key : NULL, &error);
		if (run->echo == NULL) {
			fprintf(stderr, "payswitch-load: echo stand-in: %s\n", strerror(-error));
			return 3;
		}
		snprintf(run->config.host, sizeof(run->config.host), "127.0.0.1");
		run->no_verify = true;
	}
	load_accounts_layout(&run->config, &run->accounts);
	run->expected = calloc(run->accounts.total, sizeof(int64_t));
	if (run->expected == NULL || load_workload_init(&run->workload, &run->config,
							 &run->accounts) != 0) {
		fprintf(stderr, "payswitch-load: out of memory\n");
		return 3;
	}
	const struct load_config *config = &run->config;
	run->client = netio_client_open_key(config->host, config->port,
					    config->keyed ? &config->key : NULL, &error);
	run->admin = run->client;
	if (run->client != NULL && config->admin_keyed &&
	    memcmp(&config->admin_key, &config->key, sizeof(config->key)) != 0)
		run->admin = netio_client_open_key(config->host, config->port, &config->admin_key,
						   &error);
	if (run->client == NULL || run->admin == NULL) {
		fprintf(stderr, "payswitch-load: cannot reach %s:%u: %s\n", config->host,
			config->port, strerror(-error));
		return 3;
	}
	if (!config->echo) {
		fprintf(stderr, "payswitch-load: setting up %u accounts %llu..%llu on %s:%u "
				"(admin key id %u, payments key id %u)\n",
			run->accounts.total, (unsigned long long)run->accounts.base,
			(unsigned long long)(run->accounts.base + run->accounts.total - 1),
			config->host, config->port, config->admin_keyed ? config->admin_key.id : 0,
			config->keyed ? config->key.id : 0);
		if (load_setup(config, &run->accounts, run->admin, run->expected, stderr) != 0)
			return 3;
	}
	if (run->config.sweep_steps > 0)
		return -1;   /* a driver per step */
	run->driver = load_driver_create(&run->config, &run->accounts, &run->workload, run->client,
					 run->expected, &error);
	if (run->driver == NULL) {
		fprintf(stderr, "payswitch-load: %s\n", strerror(-error));
		return 3;
	}
	return -1;
}

static void run_close(struct run *run)
{
	load_driver_destroy(run->driver);
	if (run->admin && run->admin != run->client)
		netio_client_close(run->admin);
	if (run->client)
		netio_client_close(run->client);
	load_echo_stop(run->echo);
	load_workload_fini(&run->workload);
	free(run->expected);
}

/* Verifies and writes the verdict. Returns the exit status so far. */
static int run_verify(struct run *run, int driven, const struct load_totals *totals)
{
	int status = 0;
	snprintf(run->verdict, sizeof(run->verdict), "PASS");
	if (driven != 0) {
		snprintf(run->verdict, sizeof(run->verdict), "FAIL: %llu requests unanswered (%s)",
			 (unsigned long long)totals->codes[LOAD_CODE_NO_ANSWER], strerror(-driven));
		status = 1;
	}
	if (run->no_verify || status != 0)
		return status;
	if (run->config.corrupt) {
		uint64_t index = run->config.corrupt_account - run->accounts.base;
		if (run->config.corrupt_account < run->accounts.base || index >= run->accounts.total) {
			fprintf(stderr, "payswitch-load: --corrupt-tally %llu is not an account of this run\n",
				(unsigned long long)run->config.corrupt_account);
			return 2;
		}
		fprintf(stderr, "payswitch-load: test hook: expected balance of account %llu "
				"altered by +1 cent\n", (unsigned long long)run->config.corrupt_account);
		run->expected[index] += 1;
	}
	int64_t differ = load_verify(&run->config, &run->accounts, run->admin, run->expected,
				     &run->verification);
	if (differ < 0) {
		snprintf(run->verdict, sizeof(run->verdict), "FAIL: balances could not be read (%s)",
			 strerror((int)-differ));
		return 1;
	}
	if (differ > 0) {
		for (uint32_t i = 0; i < run->verification.kept_count; i++) {
			const struct load_mismatch *m = &run->verification.kept[i];
			fprintf(stderr, "VERIFICATION FAILED: account %llu: expected balance %lld, "
					"switch reports %lld (difference %lld cents)\n",
				(unsigned long long)m->account_id, (long long)m->expected,
				(long long)m->actual, (long long)(m->actual - m->expected));
		}
		snprintf(run->verdict, sizeof(run->verdict),
			 "FAIL: %lld of %u balances differ from the tally", (long long)differ,
			 run->accounts.total);
		return 1;
	}
	if (totals->codes[LEDGER_FORBIDDEN] > 0) {
		snprintf(run->verdict, sizeof(run->verdict),
			 "FAIL: %llu requests answered FORBIDDEN (the --key is not an acquirer key)",
			 (unsigned long long)totals->codes[LEDGER_FORBIDDEN]);
		return 1;
	}
	if (totals->retries_reapplied || totals->unexpected_duplicates) {
		snprintf(run->verdict, sizeof(run->verdict),
			 "FAIL: exactly-once: %llu repeats applied again, %llu unexpected duplicates",
			 (unsigned long long)totals->retries_reapplied,
			 (unsigned long long)totals->unexpected_duplicates);
		return 1;
	}
	return 0;
}

/* What authentication did: keys, FORBIDDEN answers, refused replies. */
static void run_auth(const struct run *run, struct load_auth *auth)
{
	memset(auth, 0, sizeof(*auth));
	auth->key_id = run->config.keyed ? run->config.key.id : 0;
	auth->admin_key_id = run->config.admin_keyed ? run->config.admin_key.id : 0;
	if (run->driver)
		auth->forbidden = load_driver_totals(run->driver)->codes[LEDGER_FORBIDDEN];
	struct netio_client_stats stats;
	netio_client_stats_read(run->client, &stats);
	auth->replies_invalid = stats.replies_invalid;
	if (run->admin != run->client) {
		netio_client_stats_read(run->admin, &stats);
		auth->replies_invalid += stats.replies_invalid;
	}
}

static int run_report(struct run *run, int status)
{
	struct load_report report = {
		.config = &run->config,
		.accounts = &run->accounts,
		.totals = load_driver_totals(run->driver),
		.histogram = load_driver_histogram(run->driver),
		.verification = &run->verification,
		.verdict = run->verdict,
	};
	run_auth(run, &report.auth);
	report.series = load_driver_series(run->driver, &report.series_count);
	load_report_summary(&report, stdout);
	fflush(stdout);
	if (run->config.json_path) {
		int written = load_report_json(&report, run->config.json_path);
		if (written != 0) {
			fprintf(stderr, "payswitch-load: writing %s: %s\n", run->config.json_path,
				strerror(-written));
			status = status ? status : 1;
		}
	}
	if (run->config.plot_path) {
		int plotted = load_report_plot(&report, run->config.plot_path);
		if (plotted != 0) {
			fprintf(stderr, "payswitch-load: plot %s failed (is gnuplot installed?)\n",
				run->config.plot_path);
			status = status ? status : 1;
		}
	}
	if (status == 1)
		fprintf(stderr, "payswitch-load: %s\n", run->verdict);
	return status;
}

/* --sweep: the steps, one verification, the table, JSON and plot. */
static int run_sweep(struct run *run)
{
	static struct load_sweep sweep;
	fprintf(stderr, "payswitch-load: sweep, open loop, %u per datagram, %u rates, %.1f s each%s\n",
		run->config.per_datagram, run->config.sweep_steps, run->config.sweep_step_s,
		run->config.echo ? ", echo stand-in (no switch)" : "");
	int driven = load_sweep_run(&run->config, &run->accounts, &run->workload, run->client,
				    run->expected, &sweep);
	if (driven != 0)
		fprintf(stderr, "payswitch-load: socket failure: %s\n", strerror(-driven));
	else if (sweep.totals.codes[LOAD_CODE_NO_ANSWER] > 0)
		driven = -ETIMEDOUT;
	int status = run_verify(run, driven, &sweep.totals);
	load_sweep_table(&run->config, &sweep, run->verdict, stdout);
	struct load_auth auth;
	run_auth(run, &auth);
	auth.forbidden = sweep.totals.codes[LEDGER_FORBIDDEN];
	load_report_auth(&auth, stdout);
	fflush(stdout);
	if (run->config.json_path) {
		int written = load_sweep_json(&run->config, &sweep, run->verdict, run->config.json_path);
		if (written != 0) {
			fprintf(stderr, "payswitch-load: writing %s: %s\n", run->config.json_path,
				strerror(-written));
			status = status ? status : 1;
		}
	}
	if (run->config.plot_path &&
	    load_sweep_plot(&run->config, &sweep, run->config.plot_path) != 0) {
		fprintf(stderr, "payswitch-load: plot %s failed (is gnuplot installed?)\n",
			run->config.plot_path);
		status = status ? status : 1;
	}
	if (status == 1)
		fprintf(stderr, "payswitch-load: %s\n", run->verdict);
	return status;
}

int main(int argc, char **argv)
{
	static struct run run;
	config_default(&run.config);
	int status = parse_arguments(argc, argv, &run.config, &run.no_verify);
	if (status >= 0)
		return status;
	status = keys_load(&run.config);
	if (status >= 0)
		return status;
	status = run_open(&run);
	if (status >= 0) {
		run_close(&run);
		return status;
	}
	if (run.config.sweep_steps > 0) {
		status = run_sweep(&run);
		run_close(&run);
		return status;
	}
	fprintf(stderr, "payswitch-load: %s loop, %s%u per datagram, %s%.0f s%s\n",
		run.config.rate ? "open" : "closed",
		run.config.keyed ? "authenticated, " : "NO KEY, ", run.config.per_datagram,
		run.config.count ? "count-limited, " : "", run.config.duration_s,
		run.config.echo ? ", echo stand-in (no switch)" : "");
	int driven = load_driver_run(run.driver);
	if (driven != 0 && driven != -ETIMEDOUT)
		fprintf(stderr, "payswitch-load: socket failure: %s\n", strerror(-driven));
	status = run_verify(&run, driven, load_driver_totals(run.driver));
	status = run_report(&run, status);
	run_close(&run);
	return status;
}
