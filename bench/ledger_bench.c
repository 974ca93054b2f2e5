/*
 * ledger_bench.c — PAY throughput of one ledger on one core.
 *
 * Opens N accounts (ids 1..N, each with an overdraft so that nearly every
 * payment is approved), prebuilds `ops` PAY requests in memory (uniform
 * payers, Zipf(s = 1.0) payees drawn from a Walker alias table), then times
 * only ledger_apply() over batches. Prints a table (or one JSON object) with
 * pay ops/s, allocated bytes per account (ledger_memory_bytes / N) and
 * resident bytes per account (RSS delta of create + open, /proc/self/statm).
 * Figures drift between machines: compare ratios within one run.
 */
#include <errno.h>
#include <math.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"

#define BENCH_T0 (UINT64_C(1700000000) * 1000000)
#define BENCH_CURRENCY 978
#define BENCH_RUNS_MAX 8

struct bench_options {
	uint64_t accounts[BENCH_RUNS_MAX];
	uint32_t runs;
	uint64_t ops;
	uint64_t transfers; /* deduplication window entries; 0 = config default */
	uint32_t batch;
	double zipf_s;
	bool json;
};

struct bench_figures {
	uint64_t accounts, ops;
	uint32_t batch;
	double open_seconds, pay_seconds, pay_cpu_seconds;
	size_t allocated_bytes;
	long resident_delta_bytes;
	uint64_t approved, declined;
};

static uint64_t bench_random_state = 0x2545F4914F6CDD1Du;

static uint64_t bench_random(void)
{
	uint64_t x = bench_random_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return bench_random_state = x;
}

static double bench_uniform(void) { return (double)(bench_random() >> 11) * 0x1.0p-53; }

static double bench_clock(clockid_t clock)
{
	struct timespec now;
	clock_gettime(clock, &now);
	return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static double bench_seconds(void) { return bench_clock(CLOCK_MONOTONIC); }

/* CPU time of this thread: the figure that other load on the box (a shared
 * 2-core VM) distorts least. */
static double bench_cpu_seconds(void) { return bench_clock(CLOCK_THREAD_CPUTIME_ID); }

static long bench_resident_bytes(void)
{
	long size = 0, resident = 0;
	FILE *file = fopen("/proc/self/statm", "r");
	if (file == NULL)
		return 0;
	if (fscanf(file, "%ld %ld", &size, &resident) != 2)
		resident = 0;
	fclose(file);
	return resident * sysconf(_SC_PAGESIZE);
}

/* Walker's alias table for Zipf(s) over ranks 0..n-1. */
struct bench_alias {
	float *probability;
	uint32_t *alias;
	uint64_t n;
};

static int bench_alias_build(struct bench_alias *table, uint64_t n, double s)
{
	table->n = n;
	table->probability = malloc(n * sizeof(float));
	table->alias = malloc(n * sizeof(uint32_t));
	double *weight = malloc(n * sizeof(double));
	uint32_t *small = malloc(n * sizeof(uint32_t)), *large = malloc(n * sizeof(uint32_t));
	if (!table->probability || !table->alias || !weight || !small || !large)
		return -ENOMEM;
	double total = 0;
	for (uint64_t k = 0; k < n; k++)
		total += weight[k] = 1.0 / pow((double)(k + 1), s);
	uint64_t small_count = 0, large_count = 0;
	for (uint64_t k = 0; k < n; k++) {
		weight[k] = weight[k] * (double)n / total;
		if (weight[k] < 1.0)
			small[small_count++] = (uint32_t)k;
		else
			large[large_count++] = (uint32_t)k;
	}
	while (small_count > 0 && large_count > 0) {
		uint32_t less = small[--small_count], more = large[--large_count];
		table->probability[less] = (float)weight[less];
		table->alias[less] = more;
		weight[more] = weight[more] + weight[less] - 1.0;
		if (weight[more] < 1.0)
			small[small_count++] = more;
		else
			large[large_count++] = more;
	}
	while (large_count > 0)
		table->probability[large[--large_count]] = 1.0f;
	while (small_count > 0)
		table->probability[small[--small_count]] = 1.0f; /* rounding leftovers */
	free(weight);
	free(small);
	free(large);
	return 0;
}

static uint64_t bench_alias_draw(const struct bench_alias *table)
{
	uint64_t k = (uint64_t)(((__uint128_t)bench_random() * table->n) >> 64);
	return bench_uniform() < table->probability[k] ? k : table->alias[k];
}

static void bench_alias_free(struct bench_alias *table)
{
	free(table->probability);
	free(table->alias);
}

static void bench_count(const struct ledger_result *results, uint32_t count, struct bench_figures *figures)
{
	for (uint32_t i = 0; i < count; i++) {
		if (results[i].code == LEDGER_OK)
			figures->approved++;
		else
			figures->declined++;
	}
}

/* Opens accounts 1..n through ledger_apply(), as the engine would. */
static int bench_open(struct ledger *ledger, uint64_t n, uint32_t batch, uint64_t *clock_us)
{
	struct ledger_request *requests = calloc(batch, sizeof(*requests));
	struct ledger_result *results = calloc(batch, sizeof(*results));
	if (requests == NULL || results == NULL)
		return -ENOMEM;
	for (uint64_t base = 0; base < n; base += batch) {
		uint32_t count = n - base < batch ? (uint32_t)(n - base) : batch;
		for (uint32_t i = 0; i < count; i++) {
			struct ledger_request *r = &requests[i];
			memset(r, 0, sizeof(*r));
			r->id = base + i + 1;
			r->timestamp_us = ++*clock_us;
			r->account_id = base + i + 1;
			r->amount = 1000000000; /* overdraft: payments are approved */
			r->currency = BENCH_CURRENCY;
			r->kind = LEDGER_KIND_OPEN;
		}
		ledger_apply(ledger, *clock_us, requests, results, count);
		for (uint32_t i = 0; i < count; i++)
			if (results[i].code != LEDGER_OK) {
				fprintf(stderr, "open %lu: %s\n", (unsigned long)requests[i].account_id,
					ledger_result_name(results[i].code));
				return -EINVAL;
			}
	}
	free(requests);
	free(results);
	return 0;
}

static struct ledger_request *bench_build_pays(uint64_t accounts, uint64_t ops, double s, uint64_t *clock_us)
{
	struct bench_alias zipf;
	if (bench_alias_build(&zipf, accounts, s) != 0)
		return NULL;
	struct ledger_request *requests = calloc(ops, sizeof(*requests));
	if (requests == NULL)
		return NULL;
	for (uint64_t i = 0; i < ops; i++) {
		struct ledger_request *r = &requests[i];
		uint64_t payer = 1 + (uint64_t)(((__uint128_t)bench_random() * accounts) >> 64);
		uint64_t payee = 1 + bench_alias_draw(&zipf);
		if (payee == payer)
			payee = payer % accounts + 1;
		r->id = accounts + 1 + i;
		r->timestamp_us = ++*clock_us;
		r->account_id = payer;
		r->other_id = payee;
		r->amount = 1 + bench_random() % 1000;
		r->currency = BENCH_CURRENCY;
		r->kind = LEDGER_KIND_PAY;
	}
	bench_alias_free(&zipf);
	return requests;
}

static int bench_run(uint64_t accounts, const struct bench_options *options, struct bench_figures *figures)
{
	memset(figures, 0, sizeof(*figures));
	figures->accounts = accounts;
	figures->ops = options->ops;
	figures->batch = options->batch;
	struct ledger_config config;
	ledger_config_default(&config);
	config.accounts_max = accounts;
	if (options->transfers != 0)
		config.transfers_max = options->transfers;
	uint64_t clock_us = BENCH_T0;

	long resident_before = bench_resident_bytes();
	double start = bench_seconds();
	int error = 0;
	struct ledger *ledger = ledger_create(&config, &error);
	if (ledger == NULL) {
		fprintf(stderr, "ledger_create: %s\n", strerror(-error));
		return error;
	}
	if ((error = bench_open(ledger, accounts, options->batch, &clock_us)) != 0)
		return error;
	figures->open_seconds = bench_seconds() - start;
	figures->resident_delta_bytes = bench_resident_bytes() - resident_before;
	figures->allocated_bytes = ledger_memory_bytes(ledger);

	struct ledger_request *requests = bench_build_pays(accounts, options->ops, options->zipf_s, &clock_us);
	struct ledger_result *results = calloc(options->batch, sizeof(*results));
	if (requests == NULL || results == NULL)
		return -ENOMEM;
	start = bench_seconds();
	double cpu_start = bench_cpu_seconds();
	for (uint64_t base = 0; base < options->ops; base += options->batch) {
		uint32_t count = options->ops - base < options->batch ? (uint32_t)(options->ops - base) : options->batch;
		ledger_apply(ledger, requests[base + count - 1].timestamp_us, &requests[base], results, count);
		bench_count(results, count, figures);
	}
	figures->pay_seconds = bench_seconds() - start;
	figures->pay_cpu_seconds = bench_cpu_seconds() - cpu_start;
	struct ledger_violation violation;
	if (ledger_check_invariants(ledger, &violation) != 0) {
		fprintf(stderr, "invariant broken: %s\n", violation.text);
		return -EFAULT;
	}
	free(requests);
	free(results);
	ledger_destroy(ledger);
	return 0;
}

static void bench_usage(FILE *out)
{
	fprintf(out,
		"usage: ledger_bench [--accounts N]... [--ops N] [--batch N] [--zipf S] [--transfers N] [--json]\n"
		"  PAY throughput of one ledger on one core: uniform payers, Zipf payees.\n"
		"  --accounts N  accounts in the ledger (repeatable; default: 1000000, 10000000 and\n"
		"                100000000, ~9 GB: check free memory first)\n"
		"  --ops N       payments timed per run (default 20000000)\n"
		"  --batch N     requests per ledger_apply() call (default 64)\n"
		"  --zipf S      Zipf exponent of the payee distribution (default 1.0)\n"
		"  --transfers N deduplication window entries (default: ledger default, 1048576)\n"
		"  --json        print one JSON object instead of a table\n"
		"  --help        this text\n");
}

static int bench_parse(int argc, char **argv, struct bench_options *options)
{
	static const struct option long_options[] = {
		{ "accounts", required_argument, NULL, 'a' }, { "ops", required_argument, NULL, 'o' },
		{ "batch", required_argument, NULL, 'b' },    { "zipf", required_argument, NULL, 'z' },
		{ "json", no_argument, NULL, 'j' },           { "help", no_argument, NULL, 'h' },
		{ "transfers", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	memset(options, 0, sizeof(*options));
	options->ops = 20000000;
	options->batch = 64;
	options->zipf_s = 1.0;
	int option;
	while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (option) {
		case 'a':
			if (options->runs == BENCH_RUNS_MAX)
				return -EINVAL;
			options->accounts[options->runs++] = strtoull(optarg, NULL, 10);
			break;
		case 'o': options->ops = strtoull(optarg, NULL, 10); break;
		case 'b': options->batch = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'z': options->zipf_s = strtod(optarg, NULL); break;
		case 't': options->transfers = strtoull(optarg, NULL, 10); break;
		case 'j': options->json = true; break;
		case 'h': bench_usage(stdout); exit(0);
		default: return -EINVAL;
		}
	}
	if (options->runs == 0) {
		options->accounts[options->runs++] = 1000000;
		options->accounts[options->runs++] = 10000000;
		options->accounts[options->runs++] = 100000000; /* ~9 GB: check free memory */
	}
	for (uint32_t i = 0; i < options->runs; i++)
		if (options->accounts[i] < 2)
			return -EINVAL;
	if (options->batch == 0 || options->batch > 65536 || options->ops == 0 || optind != argc)
		return -EINVAL;
	return 0;
}

static void bench_print(const struct bench_options *options, const struct bench_figures *figures)
{
	if (options->json) {
		printf("{\"bench\":\"ledger\",\"zipf_s\":%.2f,\"runs\":[", options->zipf_s);
		for (uint32_t i = 0; i < options->runs; i++) {
			const struct bench_figures *f = &figures[i];
			printf("%s{\"accounts\":%lu,\"ops\":%lu,\"batch\":%u,\"seconds\":%.3f,"
			       "\"cpu_seconds\":%.3f,\"pay_ops_per_second\":%.0f,"
			       "\"pay_ops_per_cpu_second\":%.0f,\"open_seconds\":%.3f,"
			       "\"allocated_bytes_per_account\":%.1f,\"resident_bytes_per_account\":%.1f,"
			       "\"approved\":%lu,\"declined\":%lu}",
			       i ? "," : "", (unsigned long)f->accounts, (unsigned long)f->ops, f->batch,
			       f->pay_seconds, f->pay_cpu_seconds, (double)f->ops / f->pay_seconds,
			       (double)f->ops / f->pay_cpu_seconds, f->open_seconds,
			       (double)f->allocated_bytes / (double)f->accounts,
			       (double)f->resident_delta_bytes / (double)f->accounts,
			       (unsigned long)f->approved, (unsigned long)f->declined);
		}
		printf("]}\n");
		return;
	}
	printf("ledger_bench: PAY on one core, uniform payers, Zipf(%.2f) payees; "
	       "ops/s by wall clock and by thread CPU time\n", options->zipf_s);
	printf("%11s %10s %5s %8s %12s %12s %7s %12s %11s %10s %8s\n", "accounts", "ops", "batch",
	       "seconds", "pay ops/s", "ops/cpu-s", "open s", "alloc B/acct", "rss B/acct",
	       "approved", "declined");
	for (uint32_t i = 0; i < options->runs; i++) {
		const struct bench_figures *f = &figures[i];
		printf("%11lu %10lu %5u %8.3f %12.0f %12.0f %7.2f %12.1f %11.1f %10lu %8lu\n",
		       (unsigned long)f->accounts, (unsigned long)f->ops, f->batch, f->pay_seconds,
		       (double)f->ops / f->pay_seconds, (double)f->ops / f->pay_cpu_seconds,
		       f->open_seconds, (double)f->allocated_bytes / (double)f->accounts,
		       (double)f->resident_delta_bytes / (double)f->accounts,
		       (unsigned long)f->approved, (unsigned long)f->declined);
	}
}

int main(int argc, char **argv)
{
	struct bench_options options;
	if (bench_parse(argc, argv, &options) != 0) {
		bench_usage(stderr);
		return 2;
	}
	struct bench_figures figures[BENCH_RUNS_MAX];
	for (uint32_t i = 0; i < options.runs; i++) {
		int error = bench_run(options.accounts[i], &options, &figures[i]);
		if (error != 0) {
			fprintf(stderr, "ledger_bench: run with %lu accounts failed: %s\n",
				(unsigned long)options.accounts[i], strerror(-error));
			return 1;
		}
	}
	bench_print(&options, figures);
	return 0;
}
