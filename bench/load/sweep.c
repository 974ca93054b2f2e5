/*
 * sweep.c — payswitch-load --sweep: open loop at rising rates, one table row
 * per step, the highest rate inside the latency promise, JSON and a plot.
 */
#include "sweep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "driver.h"

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void totals_add(struct load_totals *into, const struct load_totals *from)
{
	into->created += from->created;
	into->sent += from->sent;
	into->completed += from->completed;
	into->completed_loading += from->completed_loading;
	for (uint32_t code = 0; code < LOAD_CODES; code++)
		into->codes[code] += from->codes[code];
	for (uint32_t op = 0; op < LOAD_OP_COUNT; op++) {
		into->ops[op] += from->ops[op];
		into->ops_approved[op] += from->ops_approved[op];
	}
	into->busy += from->busy;
	into->busy_retries += from->busy_retries;
	into->error_datagrams += from->error_datagrams;
	into->retransmits += from->retransmits;
	into->late_answers += from->late_answers;
	into->unexpected_duplicates += from->unexpected_duplicates;
	into->retries_sent += from->retries_sent;
	into->retries_duplicate += from->retries_duplicate;
	into->retries_reapplied += from->retries_reapplied;
	into->retries_mismatch += from->retries_mismatch;
	into->retries_unanswered += from->retries_unanswered;
	into->approved_cents += from->approved_cents;
	into->datagrams += from->datagrams;
	into->send_stalls += from->send_stalls;
	into->inflight_full += from->inflight_full;
	into->elapsed_s += from->elapsed_s;
	into->load_s += from->load_s;
	into->cpu_s += from->cpu_s;
}

static void step_fill(struct load_sweep_step *step, uint64_t rate,
		      const struct load_totals *totals, const struct histogram *histogram)
{
	memset(step, 0, sizeof(*step));
	step->offered = rate;
	step->completed = totals->completed;
	step->busy = totals->busy;
	step->busy_retries = totals->busy_retries;
	step->retransmits = totals->retransmits;
	step->late_answers = totals->late_answers;
	step->no_answer = totals->codes[LOAD_CODE_NO_ANSWER];
	step->inflight_full = totals->inflight_full;
	step->sent_per_s = totals->load_s > 0 ? (double)totals->created / totals->load_s : 0;
	/* Answers while loading, per second of loading: a switch that falls
	 * behind answers the backlog only in the drain, which does not count. */
	step->delivered_per_s =
		totals->load_s > 0 ? (double)totals->completed_loading / totals->load_s : 0;
	uint64_t answers = totals->busy + totals->completed;
	step->busy_share = answers ? (double)totals->busy / (double)answers : 0;
	step->p50_ns = histogram_percentile(histogram, 50);
	step->p90_ns = histogram_percentile(histogram, 90);
	step->p99_ns = histogram_percentile(histogram, 99);
	step->p999_ns = histogram_percentile(histogram, 99.9);
	step->max_ns = histogram->max_ns;
	step->sustained = step->no_answer == 0 && step->completed > 0 &&
			  step->delivered_per_s >= LOAD_SWEEP_SUSTAINED * (double)rate;
}

/* Runs one step at `rate`. Returns the driver's status. */
static int sweep_step(const struct load_config *config, const struct load_accounts *accounts,
		      struct load_workload *workload, struct netio_client *client,
		      int64_t *expected, uint32_t index, uint64_t nonce, double seconds,
		      struct load_sweep *sweep)
{
	struct load_config step_config = *config;
	step_config.rate = config->sweep_rates[index];
	step_config.duration_s = seconds;
	step_config.count = 0;
	step_config.quiet = true;
	step_config.id_nonce = nonce;
	int error = 0;
	workload->settling = false;
	struct load_driver *driver = load_driver_create(&step_config, accounts, workload, client,
							 expected, &error);
	if (driver == NULL)
		return error;
	int status = load_driver_run(driver);
	const struct load_totals *totals = load_driver_totals(driver);
	struct load_sweep_step *step = &sweep->steps[sweep->step_count++];
	step_fill(step, step_config.rate, totals, load_driver_histogram(driver));
	totals_add(&sweep->totals, totals);
	load_driver_destroy(driver);
	if (!config->quiet)
		fprintf(stderr, "sweep: %s offered %llu/s delivered %.0f/s busy %.2f%% p50 %.3f ms "
				"p99 %.3f ms p99.9 %.3f ms%s\n",
			sweep->step_count == 1 && seconds != config->sweep_step_s ? "(warm-up)" : "",
			(unsigned long long)step->offered, step->delivered_per_s,
			100.0 * step->busy_share, ms(step->p50_ns), ms(step->p99_ns),
			ms(step->p999_ns), step->sustained ? "" : "  (not sustained)");
	return status;
}

int load_sweep_run(const struct load_config *config, const struct load_accounts *accounts,
		   struct load_workload *workload, struct netio_client *client,
		   int64_t *expected, struct load_sweep *sweep)
{
	memset(sweep, 0, sizeof(*sweep));
	uint64_t nonce = config->id_nonce ? config->id_nonce
					  : (config->seed * 0x9e3779b97f4a7c15ull) >> 41;
	nonce &= ~1ull;
	/* Warm-up, not reported: a second at the first rate, so that the
	 * switch's commit-latency estimate (which admission control starts
	 * from a guess) and the generator's tables are not part of step 1. */
	int status = sweep_step(config, accounts, workload, client, expected, 0,
				((nonce + 2u * LOAD_SWEEP_STEPS_MAX) & ((1ull << 23) - 1u)) | 1u,
				config->sweep_step_s < 1 ? config->sweep_step_s : 1.0, sweep);
	if (status != 0 && status != -ETIMEDOUT)
		return status;
	sweep->step_count = 0;   /* its totals stay: its payments are in the tally */
	for (uint32_t i = 0; i < config->sweep_steps && i < LOAD_SWEEP_STEPS_MAX; i++) {
		/* A new id space per step (odd, so never 0, and distinct). */
		uint64_t step_nonce = ((nonce + 2u * i) & ((1ull << 23) - 1u)) | 1u;
		status = sweep_step(config, accounts, workload, client, expected, i, step_nonce,
				    config->sweep_step_s, sweep);
		if (status != 0 && status != -ETIMEDOUT)
			return status;
		const struct load_sweep_step *step = &sweep->steps[sweep->step_count - 1];
		if (step->sustained && step->p99_ns <= 5000000u && step->offered > sweep->best_5ms)
			sweep->best_5ms = step->offered;
		if (step->sustained && step->p99_ns <= 1000000u && step->offered > sweep->best_1ms)
			sweep->best_1ms = step->offered;
		if (i + 1 == config->sweep_steps)
			break;
		if (!step->sustained) {
			sweep->stop_reason = "delivered fell short of offered";
			break;
		}
		if (step->p99_ns > LOAD_SWEEP_EXPLODED_NS) {
			sweep->stop_reason = "p99 passed 50 ms";
			break;
		}
	}
	return 0;
}

void load_sweep_table(const struct load_config *config, const struct load_sweep *sweep,
		      const char *verdict, FILE *out)
{
	fprintf(out, "\n== payswitch-load sweep (open loop, %u per datagram, %.1f s per step) ==\n",
		config->per_datagram, config->sweep_step_s);
	fprintf(out, "%12s %12s %12s %7s %9s %9s %9s %9s %8s %8s\n", "offered/s", "sent/s",
		"delivered/s", "BUSY%", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "retrans",
		"late");
	for (uint32_t i = 0; i < sweep->step_count; i++) {
		const struct load_sweep_step *s = &sweep->steps[i];
		fprintf(out, "%12llu %12.0f %12.0f %7.2f %9.3f %9.3f %9.3f %9.3f %8llu %8llu%s\n",
			(unsigned long long)s->offered, s->sent_per_s, s->delivered_per_s,
			100.0 * s->busy_share, ms(s->p50_ns), ms(s->p99_ns), ms(s->p999_ns),
			ms(s->max_ns), (unsigned long long)s->retransmits,
			(unsigned long long)s->late_answers, s->sustained ? "" : "  not sustained");
	}
	if (sweep->stop_reason)
		fprintf(out, "stopped            %s\n", sweep->stop_reason);
	fprintf(out, "highest rate at p99 <= 5 ms: %llu payments/s\n",
		(unsigned long long)sweep->best_5ms);
	fprintf(out, "highest rate at p99 <= 1 ms: %llu payments/s\n",
		(unsigned long long)sweep->best_1ms);
	fprintf(out, "busy answers       %llu, retries after BUSY %llu\n",
		(unsigned long long)sweep->totals.busy,
		(unsigned long long)sweep->totals.busy_retries);
	fprintf(out, "retransmits        %llu after timeouts\n",
		(unsigned long long)sweep->totals.retransmits);
	fprintf(out, "late answers       %llu\n", (unsigned long long)sweep->totals.late_answers);
	fprintf(out, "verdict            %s\n", verdict);
}

int load_sweep_json(const struct load_config *config, const struct load_sweep *sweep,
		    const char *verdict, const char *path)
{
	FILE *file = fopen(path, "w");
	if (file == NULL)
		return -errno;
	fprintf(file, "{\n  \"tool\": \"payswitch-load\",\n  \"mode\": \"sweep\",\n");
	fprintf(file, "  \"config\": {\"server\": \"%s:%u\", \"echo\": %s, \"per_datagram\": %u, "
		      "\"step_s\": %.3f, \"timeout_ms\": %u, \"mix\": {\"coffee\": %u, \"bills\": %u, "
		      "\"news\": %u}, \"seed\": %llu},\n",
		config->host, config->port, config->echo ? "true" : "false", config->per_datagram,
		config->sweep_step_s, config->timeout_ms, config->mix[0], config->mix[1],
		config->mix[2], (unsigned long long)config->seed);
	fprintf(file, "  \"steps\": [\n");
	for (uint32_t i = 0; i < sweep->step_count; i++) {
		const struct load_sweep_step *s = &sweep->steps[i];
		fprintf(file,
			"    {\"offered_per_s\": %llu, \"sent_per_s\": %.1f, \"delivered_per_s\": %.1f, "
			"\"busy_share\": %.6f, \"completed\": %llu, \"busy\": %llu, \"busy_retries\": %llu, "
			"\"retransmits\": %llu, \"late_answers\": %llu, \"no_answer\": %llu, "
			"\"inflight_full\": %llu, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
			"\"p999_ms\": %.4f, \"max_ms\": %.4f, \"sustained\": %s}%s\n",
			(unsigned long long)s->offered, s->sent_per_s, s->delivered_per_s,
			s->busy_share, (unsigned long long)s->completed, (unsigned long long)s->busy,
			(unsigned long long)s->busy_retries, (unsigned long long)s->retransmits,
			(unsigned long long)s->late_answers, (unsigned long long)s->no_answer,
			(unsigned long long)s->inflight_full, ms(s->p50_ns), ms(s->p90_ns),
			ms(s->p99_ns), ms(s->p999_ns), ms(s->max_ns), s->sustained ? "true" : "false",
			i + 1 < sweep->step_count ? "," : "");
	}
	fprintf(file, "  ],\n  \"stop_reason\": ");
	if (sweep->stop_reason)
		fprintf(file, "\"%s\",\n", sweep->stop_reason);
	else
		fprintf(file, "null,\n");
	fprintf(file, "  \"best\": {\"p99_5ms_per_s\": %llu, \"p99_1ms_per_s\": %llu},\n",
		(unsigned long long)sweep->best_5ms, (unsigned long long)sweep->best_1ms);
	fprintf(file, "  \"totals\": {\"completed\": %llu, \"busy\": %llu, \"busy_retries\": %llu, "
		      "\"retransmits\": %llu, \"late_answers\": %llu, \"no_answer\": %llu},\n",
		(unsigned long long)sweep->totals.completed, (unsigned long long)sweep->totals.busy,
		(unsigned long long)sweep->totals.busy_retries,
		(unsigned long long)sweep->totals.retransmits,
		(unsigned long long)sweep->totals.late_answers,
		(unsigned long long)sweep->totals.codes[LOAD_CODE_NO_ANSWER]);
	fprintf(file, "  \"verdict\": \"%s\"\n}\n", verdict);
	int failed = ferror(file);
	if (fclose(file) != 0 || failed)
		return -EIO;
	return 0;
}

int load_sweep_plot(const struct load_config *config, const struct load_sweep *sweep,
		    const char *path)
{
	char data_path[4096], script_path[4096];
	snprintf(data_path, sizeof(data_path), "%s.dat", path);
	snprintf(script_path, sizeof(script_path), "%s.gp", path);
	FILE *data = fopen(data_path, "w");
	if (data == NULL)
		return -errno;
	fprintf(data, "# offered_per_s delivered_per_s p50_ms p99_ms p999_ms\n");
	for (uint32_t i = 0; i < sweep->step_count; i++) {
		const struct load_sweep_step *s = &sweep->steps[i];
		fprintf(data, "%llu %.1f %.4f %.4f %.4f\n", (unsigned long long)s->offered,
			s->delivered_per_s, ms(s->p50_ns), ms(s->p99_ns), ms(s->p999_ns));
	}
	fclose(data);
	FILE *script = fopen(script_path, "w");
	if (script == NULL)
		return -errno;
	fprintf(script,
		"set terminal pngcairo size 1200,700 font 'sans,10'\n"
		"set output '%s'\n"
		"set title 'payswitch-load sweep: open loop, %u per datagram, %.1f s per step "
		"(p99 <= 5 ms up to %llu/s)'\n"
		"set grid\nset key top left\n"
		"set xlabel 'offered rate (requests/s)'\nset format x '%%.0s%%c'\n"
		"set ylabel 'latency (ms, from the scheduled send)'\nset logscale y\n"
		"plot '%s' using 1:3 with linespoints lw 2 title 'p50', "
		"'' using 1:4 with linespoints lw 2 title 'p99', "
		"'' using 1:5 with linespoints lw 1 title 'p99.9', "
		"5 with lines dt 2 lc rgb 'red' title '5 ms', "
		"1 with lines dt 3 lc rgb 'gray' title '1 ms'\n",
		path, config->per_datagram, config->sweep_step_s,
		(unsigned long long)sweep->best_5ms, data_path);
	fclose(script);
	char command[8400];
	snprintf(command, sizeof(command), "gnuplot '%s' 2>&1", script_path);
	int ran = system(command);
	if (ran == -1 || !WIFEXITED(ran) || WEXITSTATUS(ran) != 0)
		return -ENOENT;
	return 0;
}
