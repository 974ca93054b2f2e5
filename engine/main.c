/*
 * main.c — the `payswitch` command and its subcommands.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "clients.h"
#include "config.h"
#include "engine.h"
#include "gateway.h"
#include "journal.h"

static const char usage_text[] =
	"usage: payswitch COMMAND [OPTIONS]\n"
	"\n"
	"A payment switch: authorizes payments over UDP, acknowledges only what is on\n"
	"disk, and keeps a journal from which every balance can be rebuilt.\n"
	"\n"
	"commands:\n"
	"  format DATA_DIR   create a data dir (shards, capacities)\n"
	"  start             run the switch (see payswitch start --help)\n"
	"  account ACTION    open, deposit, pay, hold, capture, void, refund, limits,\n"
	"                    freeze, unfreeze, close, balance, lookup over the protocol\n"
	"  audit DATA_DIR    replay every journal from genesis and check every rule\n"
	"  gateway           ISO 8583 over TCP in front of the switch (gateway --help)\n"
	"  directory ACTION  add, remove, list, check the gateway's card/terminal file\n"
	"  client ACTION     add, remove, list, rotate the client keys of a data dir\n"
	"  config            print the default configuration as a config file\n"
	"  version           print the version\n"
	"\n"
	"Every command takes --help.\n";

/* Long options shared by format and start: each maps to a config key. */
static const struct option config_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "data-dir", required_argument, NULL, 'd' },
	{ "listen", required_argument, NULL, 'l' },
	{ "metrics", required_argument, NULL, 'm' },
	{ "shards", required_argument, NULL, 's' },
	{ "workers", required_argument, NULL, 'w' },
	{ "cpus", required_argument, NULL, 'C' },
	{ "accounts", required_argument, NULL, 'a' },
	{ "transfers", required_argument, NULL, 'T' },
	{ "holds", required_argument, NULL, 'H' },
	{ "dedup-window", required_argument, NULL, 'D' },
	{ "hold-timeout", required_argument, NULL, 'O' },
	{ "ring-size", required_argument, NULL, 'r' },
	{ "latency-bound-us", required_argument, NULL, 'L' },
	{ "group-bytes", required_argument, NULL, 'g' },
	{ "journal-preallocate", required_argument, NULL, 'P' },
	{ "journal-in-flight", required_argument, NULL, 'J' },
	{ "group-wait-us", required_argument, NULL, 'W' },
	{ "durability", required_argument, NULL, 'u' },
	{ "transport", required_argument, NULL, 't' },
	{ "dpdk-args", required_argument, NULL, 'E' },
	{ "snapshot-on-stop", required_argument, NULL, 'S' },
	{ "snapshot-every-records", required_argument, NULL, 'R' },
	{ "snapshot-every-seconds", required_argument, NULL, 'K' },
	{ "snapshot-retain", required_argument, NULL, 'Q' },
	{ "insecure-no-auth", no_argument, NULL, 'N' },
	{ "auth-sessions", required_argument, NULL, 'A' },
	{ "auth-max-age-ms", required_argument, NULL, 'M' },
	{ "print-config", no_argument, NULL, 'p' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char start_help[] =
	"usage: payswitch start [--config FILE] [OPTIONS]\n"
	"\n"
	"Runs the switch on the native protocol over UDP until SIGTERM or SIGINT, then\n"
	"stops intake, drains every queue, syncs the journals and writes snapshots.\n"
	"Settings come from defaults, then --config FILE (key = value lines), then flags.\n"
	"\n"
	"  --config FILE          read settings from FILE\n"
	"  --data-dir DIR         data dir made by 'payswitch format' (default: data)\n"
	"  --listen HOST:PORT     native protocol over UDP (default: 127.0.0.1:7000)\n"
	"  --metrics HOST:PORT    Prometheus metrics at /metrics; port 0 disables\n"
	"                         (default: 127.0.0.1:9100)\n"
	"  --workers N            netio worker threads (default: 1)\n"
	"  --cpus LIST            pin threads: workers first, then shards (e.g. 0,1)\n"
	"  --ring-size N          slots of each ring, a power of two; a ring holds\n"
	"                         N - 1 (default: 65536)\n"
	"  --latency-bound-us N   answer BUSY with a retry-after hint when a request's\n"
	"                         expected wait passes N µs, instead of queueing it\n"
	"                         (default: 5000; 0: off)\n"
	"  --group-bytes N        journal bytes per group commit (default: 1048576)\n"
	"  --journal-preallocate N  zero-fill N bytes ahead of journal appends, a\n"
	"                         multiple of 4096 (default: 0, off)\n"
	"  --journal-in-flight N  group commits in flight per shard, each its own\n"
	"                         write and fdatasync, 1..16 (default: 4)\n"
	"  --group-wait-us N      while groups are in flight, submit the next one once\n"
	"                         its oldest record waited N µs (default: 1000); an idle\n"
	"                         disk takes a group at once\n"
	"  --durability MODE      durable (default): reply after fdatasync;\n"
	"                         unsafe-ack-before-sync: reply once written, a machine\n"
	"                         crash can lose acknowledged payments\n"
	"  --transport udp|dpdk   (default: udp)\n"
	"  --snapshot-on-stop B   write snapshots on a clean stop (default: true)\n"
	"  --snapshot-every-records N  while serving (one shard only, for now), the shard\n"
	"                         snapshots after N new records (default: 4M; 0: by time only)\n"
	"  --snapshot-every-seconds N  ... or after N seconds with new records\n"
	"                         (default: 300; 0 and 0: only on a clean stop)\n"
	"  --snapshot-retain N    snapshots kept per shard (default: 2)\n"
	"  --insecure-no-auth     let in datagrams without a valid key and MAC and check\n"
	"                         no roles: anyone who can send a datagram can move\n"
	"                         money. For test benches only (default: off; client\n"
	"                         keys are managed with 'payswitch client')\n"
	"  --auth-sessions N      senders whose replay windows are kept (default: 65536)\n"
	"  --auth-max-age-ms N    how far a datagram's sequence (the sender's clock, µs)\n"
	"                         may be from the switch's clock (default: 60000)\n"
	"  --print-config         print the resulting configuration and exit\n"
	"  --verbose              more log lines\n"
	"The shard count and capacities are fixed by 'payswitch format'.\n";

static const char format_help[] =
	"usage: payswitch format DATA_DIR [OPTIONS]\n"
	"\n"
	"Creates a data dir: payswitch.meta and one journal directory per shard.\n"
	"\n"
	"  --shards N            shards, one thread and one ledger each (default: 1)\n"
	"  --accounts N          accounts per shard (default: 1M; k/M/G suffixes)\n"
	"  --transfers N         deduplication window entries per shard (default: 1M)\n"
	"  --holds N             pending holds per shard (default: 65536)\n"
	"  --dedup-window S      seconds a request id is remembered (default: 600)\n"
	"  --hold-timeout S      default hold lifetime in seconds (default: 900)\n";

static int parse_config_flags(int argc, char **argv, struct engine_config *config,
			      bool *print_config, const char *help)
{
	char error[512];
	optind = 1;
	/* A first pass finds --config so that flags override the file. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc &&
		    engine_config_load_file(config, argv[i + 1], error, sizeof(error)) != 0) {
			fprintf(stderr, "payswitch: %s\n", error);
			return 2;
		}
	}
	int option;
	while ((option = getopt_long(argc, argv, "h", config_options, NULL)) != -1) {
		if (option == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (option == '?')
			return 2;
		if (option == 'c')
			continue;
		if (option == 'p') {
			*print_config = true;
			continue;
		}
		if (option == 'v') {
			config->verbose = true;
			continue;
		}
		if (option == 'N') {
			config->insecure_no_auth = true;
			continue;
		}
		const char *key = NULL;
		for (const struct option *o = config_options; o->name; o++)
			if (o->val == option)
				key = o->name;
		if (engine_config_set(config, key, optarg, error, sizeof(error)) != 0) {
			fprintf(stderr, "payswitch: %s\n", error);
			return 2;
		}
	}
	return -1;
}

static void ledger_config_from(const struct engine_config *config, struct ledger_config *ledger)
{
	ledger_config_default(ledger);
	ledger->accounts_max = config->accounts_max;
	ledger->transfers_max = config->transfers_max;
	ledger->holds_max = config->holds_max;
	ledger->dedup_window_us = config->dedup_window_s * 1000000u;
	ledger->hold_timeout_us = config->hold_timeout_s * 1000000u;
	ledger->shard_count = config->shards;
}

static int command_format(int argc, char **argv)
{
	struct engine_config config;
	engine_config_default(&config);
	bool print_config = false;
	int parsed = parse_config_flags(argc, argv, &config, &print_config, format_help);
	if (parsed >= 0)
		return parsed;
	if (optind >= argc) {
		fprintf(stderr, "payswitch format: DATA_DIR is missing\n%s", format_help);
		return 2;
	}
	const char *dir = argv[optind];
	struct ledger_config ledger;
	ledger_config_from(&config, &ledger);
	struct journal_error error = { 0 };
	int result = journal_format_dir(dir, config.shards, &ledger, &error);
	if (result < 0) {
		fprintf(stderr, "payswitch format: %s\n", error.text[0] ? error.text : strerror(-result));
		return 1;
	}
	printf("formatted %s: %u shard(s), %llu accounts, %llu transfers, %llu holds per shard, "
	       "deduplication window %llu s\n",
	       dir, config.shards, (unsigned long long)config.accounts_max,
	       (unsigned long long)config.transfers_max, (unsigned long long)config.holds_max,
	       (unsigned long long)config.dedup_window_s);
	return 0;
}

static int run_until_signal(struct engine *engine)
{
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGHUP);
	for (;;) {
		struct timespec second = { .tv_sec = 1 };
		int signal_number = sigtimedwait(&signals, NULL, &second);
		if (signal_number == SIGHUP) {
			char error[512];
			if (engine_reload_clients(engine, error, sizeof(error)) != 0)
				engine_log("error", "SIGHUP: %s; keeping the client keys loaded before",
					   error);
			continue;
		}
		if (signal_number == SIGINT || signal_number == SIGTERM) {
			engine_log("info", "signal %s: stopping intake, draining, syncing",
				   signal_number == SIGINT ? "SIGINT" : "SIGTERM");
			break;
		}
		if (atomic_load(&engine->failed)) {
			engine_log("error", "a journal failed: answering UNAVAILABLE until stopped");
			for (;;) {
				signal_number = sigwaitinfo(&signals, NULL);
				if (signal_number == SIGINT || signal_number == SIGTERM)
					break;
			}
			break;
		}
	}
	engine_request_stop(engine);
	int joined = engine_join(engine);
	engine_log(joined == 0 ? "info" : "error", "stopped%s",
		   joined == 0 ? " cleanly" : ": journal errors, see above");
	return joined == 0 ? 0 : 1;
}

static int command_start(int argc, char **argv)
{
	struct engine_config config;
	engine_config_default(&config);
	bool print_config = false;
	int parsed = parse_config_flags(argc, argv, &config, &print_config, start_help);
	if (parsed >= 0)
		return parsed;
	if (optind < argc) {
		fprintf(stderr, "payswitch start: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	char error[1024];
	if (engine_config_validate(&config, error, sizeof(error)) != 0) {
		fprintf(stderr, "payswitch start: %s\n", error);
		return 2;
	}
	if (print_config) {
		engine_config_print(&config, stdout);
		return 0;
	}
	/* Signals go to the main thread only: block them before threads exist. */
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct engine *engine = engine_create(&config, error, sizeof(error));
	if (engine == NULL) {
		engine_log("error", "%s", error);
		return 1;
	}
	if (engine_start(engine, error, sizeof(error)) != 0) {
		engine_log("error", "%s", error);
		engine_request_stop(engine);
		engine_join(engine);
		engine_destroy(engine);
		return 1;
	}
	engine_log("info", "serving: udp %s:%u, %u shard(s), %u worker(s), durability %s, "
		   "metrics http://%s:%u/metrics, data %s",
		   engine->config.listen_host, engine->config.listen_port, engine->shard_count,
		   engine->worker_count,
		   config.durability == ENGINE_DURABLE ? "durable" : "UNSAFE-ack-before-sync",
		   config.metrics_host, config.metrics_port, config.data_dir);
	int status = run_until_signal(engine);
	engine_destroy(engine);
	return status;
}

static int command_config(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		printf("usage: payswitch config\n\nPrints the default configuration as a config "
		       "file for 'payswitch start --config'.\n");
		return 0;
	}
	struct engine_config config;
	engine_config_default(&config);
	engine_config_print(&config, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	const char *command = argv[1];
	if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(command, "version") || !strcmp(command, "--version")) {
		printf("payswitch %s\n", PAYSWITCH_VERSION);
		return 0;
	}
	if (!strcmp(command, "format"))
		return command_format(argc - 1, argv + 1);
	if (!strcmp(command, "start"))
		return command_start(argc - 1, argv + 1);
	if (!strcmp(command, "account"))
		return cli_account_main(argc - 1, argv + 1);
	if (!strcmp(command, "audit"))
		return journal_audit_main(argc - 1, argv + 1);
	if (!strcmp(command, "config"))
		return command_config(argc - 1, argv + 1);
	if (!strcmp(command, "gateway"))
		return gateway_main(argc - 1, argv + 1);
	if (!strcmp(command, "directory"))
		return directory_main(argc - 1, argv + 1);
	if (!strcmp(command, "client"))
		return engine_clients_main(argc - 1, argv + 1);
	fprintf(stderr, "payswitch: unknown command '%s'\n\n%s", command, usage_text);
	return 2;
}
