/*
 * report.c — summary table, JSON and gnuplot output of payswitch-load.
 */
#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *const op_names[LOAD_OP_COUNT] = {
	"coffee", "bills", "news", "refund", "hold", "capture", "void",
};

static const char *code_name(uint32_t code)
{
	return code == LOAD_CODE_NO_ANSWER ? "NO_ANSWER" : ledger_result_name(code);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double throughput(const struct load_totals *totals)
{
	return totals->elapsed_s > 0 ? (double)totals->completed / totals->elapsed_s : 0;
}

void load_report_auth(const struct load_auth *auth, FILE *out)
{
	if (auth->key_id == 0 && auth->admin_key_id == 0)
		fprintf(out, "authentication     none (key id 0)");
	else
		fprintf(out, "authentication     payments key id %u, admin key id %u",
			auth->key_id, auth->admin_key_id);
	fprintf(out, "; FORBIDDEN answers %llu; replies failing authentication %llu\n",
		(unsigned long long)auth->forbidden, (unsigned long long)auth->replies_invalid);
}

void load_report_summary(const struct load_report *report, FILE *out)
{
	const struct load_config *config = report->config;
	const struct load_totals *totals = report->totals;
	const struct histogram *histogram = report->histogram;
	fprintf(out, "\n== payswitch-load summary (%s, %s loop%s, %u per datagram) ==\n",
		config->echo ? "echo stand-in, no switch" : "switch",
		config->rate ? "open" : "closed", config->rate ? "" : "", config->per_datagram);
	if (config->rate)
		fprintf(out, "target rate        %llu requests/s (%s profile)\n",
			(unsigned long long)config->rate,
			config->profile == LOAD_PROFILE_MORNING ? "morning" : "flat");
	else
		fprintf(out, "window             %u requests in flight\n", config->window);
	fprintf(out, "requests           %llu in %.2f s (load %.2f s)\n",
		(unsigned long long)totals->completed, totals->elapsed_s, totals->load_s);
	fprintf(out, "throughput         %.0f requests/s\n", throughput(totals));
	fprintf(out, "generator CPU      %.2f s = %.0f requests per CPU-second\n", totals->cpu_s,
		totals->cpu_s > 0 ? (double)totals->completed / totals->cpu_s : 0);
	fprintf(out, "latency            p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  "
		     "max %.3f ms\n",
		ms(histogram_percentile(histogram, 50)), ms(histogram_percentile(histogram, 90)),
		ms(histogram_percentile(histogram, 99)), ms(histogram_percentile(histogram, 99.9)),
		ms(histogram->max_ns));
	fprintf(out, "results by code   ");
	for (uint32_t code = 0; code < LOAD_CODES; code++)
		if (totals->codes[code])
			fprintf(out, " %s=%llu", code_name(code), (unsigned long long)totals->codes[code]);
	fprintf(out, "\nrequests by kind  ");
	for (uint32_t op = 0; op < LOAD_OP_COUNT; op++)
		if (totals->ops[op])
			fprintf(out, " %s=%llu (approved %llu)", op_names[op],
				(unsigned long long)totals->ops[op],
				(unsigned long long)totals->ops_approved[op]);
	fprintf(out, "\nmoney approved     %llu.%02llu (pay + capture)\n",
		(unsigned long long)(totals->approved_cents / 100),
		(unsigned long long)(totals->approved_cents % 100));
	fprintf(out, "busy answers       %llu, whole datagrams refused %llu\n",
		(unsigned long long)totals->busy, (unsigned long long)totals->error_datagrams);
	fprintf(out, "retries after BUSY %llu (after the hint + jitter)\n",
		(unsigned long long)totals->busy_retries);
	fprintf(out, "retransmits        %llu after timeouts (backed off, jittered)\n",
		(unsigned long long)totals->retransmits);
	fprintf(out, "late answers       %llu\n", (unsigned long long)totals->late_answers);
	fprintf(out, "deliberate retries %llu: duplicate %llu, re-applied %llu, other code %llu, "
		     "unanswered %llu\n",
		(unsigned long long)totals->retries_sent, (unsigned long long)totals->retries_duplicate,
		(unsigned long long)totals->retries_reapplied,
		(unsigned long long)totals->retries_mismatch,
		(unsigned long long)totals->retries_unanswered);
	fprintf(out, "datagrams          %llu sent, %llu send stalls, %llu open-loop skips\n",
		(unsigned long long)totals->datagrams, (unsigned long long)totals->send_stalls,
		(unsigned long long)totals->inflight_full);
	load_report_auth(&report->auth, out);
	const struct load_verification *verification = report->verification;
	if (verification->done)
		fprintf(out, "verification       %llu accounts, %llu differ (%u balance reads)\n",
			(unsigned long long)verification->accounts_checked,
			(unsigned long long)verification->mismatches, verification->rounds);
	else
		fprintf(out, "verification       skipped\n");
	fprintf(out, "verdict            %s\n", report->verdict);
}

static void json_histogram(FILE *file, const struct histogram *histogram)
{
	fprintf(file,
		"{\"count\": %llu, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
		"\"p999_ms\": %.4f, \"max_ms\": %.4f, \"mean_ms\": %.4f}",
		(unsigned long long)histogram->count, ms(histogram_percentile(histogram, 50)),
		ms(histogram_percentile(histogram, 90)), ms(histogram_percentile(histogram, 99)),
		ms(histogram_percentile(histogram, 99.9)), ms(histogram->max_ns),
		histogram_mean_ns(histogram) / 1e6);
}

static void json_config(FILE *file, const struct load_config *config)
{
	fprintf(file,
		"  \"config\": {\"server\": \"%s:%u\", \"echo\": %s, \"mode\": \"%s\", \"rate\": %llu, "
		"\"profile\": \"%s\", \"window\": %u, \"per_datagram\": %u, \"duration_s\": %.3f, "
		"\"count\": %llu, \"mix\": {\"coffee\": %u, \"bills\": %u, \"news\": %u}, "
		"\"zipf\": %.3f, \"payers\": %u, \"merchants\": %u, \"utilities\": %u, "
		"\"publishers\": %u, \"broke_share\": %.4f, \"retry_share\": %.4f, "
		"\"refund_share\": %.4f, \"hold_share\": %.4f, \"account_base\": %llu, "
		"\"use_existing\": %s, \"timeout_ms\": %u, \"seed\": %llu},\n",
		config->host, config->port, config->echo ? "true" : "false",
		config->rate ? "open" : "closed", (unsigned long long)config->rate,
		config->profile == LOAD_PROFILE_MORNING ? "morning" : "flat", config->window,
		config->per_datagram, config->duration_s, (unsigned long long)config->count,
		config->mix[0], config->mix[1], config->mix[2], config->zipf_s, config->payers,
		config->merchants, config->utilities, config->publishers, config->broke_share,
		config->retry_share, config->refund_share, config->hold_share,
		(unsigned long long)config->account_base, config->use_existing ? "true" : "false",
		config->timeout_ms, (unsigned long long)config->seed);
}

static void json_totals(FILE *file, const struct load_totals *totals)
{
#define FIELD(name) fprintf(file, "\"%s\": %llu, ", #name, (unsigned long long)totals->name)
	fprintf(file, "  \"totals\": {");
	FIELD(created); FIELD(sent); FIELD(completed); FIELD(busy); FIELD(busy_retries);
	FIELD(error_datagrams);
	FIELD(retransmits); FIELD(late_answers); FIELD(unexpected_duplicates); FIELD(retries_sent);
	FIELD(retries_duplicate); FIELD(retries_reapplied); FIELD(retries_mismatch);
	FIELD(retries_unanswered); FIELD(approved_cents); FIELD(datagrams); FIELD(send_stalls);
	FIELD(inflight_full);
#undef FIELD
	fprintf(file, "\"elapsed_s\": %.4f, \"load_s\": %.4f, \"cpu_s\": %.4f, "
		      "\"throughput_per_s\": %.1f, \"requests_per_cpu_s\": %.1f},\n",
		totals->elapsed_s, totals->load_s, totals->cpu_s, throughput(totals),
		totals->cpu_s > 0 ? (double)totals->completed / totals->cpu_s : 0.0);
	fprintf(file, "  \"codes\": {");
	const char *separator = "";
	for (uint32_t code = 0; code < LOAD_CODES; code++) {
		if (!totals->codes[code])
			continue;
		fprintf(file, "%s\"%s\": %llu", separator, code_name(code),
			(unsigned long long)totals->codes[code]);
		separator = ", ";
	}
	fprintf(file, "},\n  \"kinds\": {");
	for (uint32_t op = 0; op < LOAD_OP_COUNT; op++)
		fprintf(file, "%s\"%s\": {\"sent\": %llu, \"approved\": %llu}", op ? ", " : "",
			op_names[op], (unsigned long long)totals->ops[op],
			(unsigned long long)totals->ops_approved[op]);
	fprintf(file, "},\n");
}

static void json_verification(FILE *file, const struct load_verification *verification)
{
	fprintf(file, "  \"verification\": {\"done\": %s, \"accounts\": %llu, \"mismatches\": %llu, "
		      "\"rounds\": %u, \"expected_sum\": %lld, \"actual_sum\": %lld, \"differences\": [",
		verification->done ? "true" : "false",
		(unsigned long long)verification->accounts_checked,
		(unsigned long long)verification->mismatches, verification->rounds,
		(long long)verification->expected_sum, (long long)verification->actual_sum);
	for (uint32_t i = 0; i < verification->kept_count; i++)
		fprintf(file, "%s{\"account\": %llu, \"expected\": %lld, \"actual\": %lld}",
			i ? ", " : "", (unsigned long long)verification->kept[i].account_id,
			(long long)verification->kept[i].expected,
			(long long)verification->kept[i].actual);
	fprintf(file, "]},\n");
}

int load_report_json(const struct load_report *report, const char *path)
{
	FILE *file = fopen(path, "w");
	if (file == NULL)
		return -errno;
	fprintf(file, "{\n  \"tool\": \"payswitch-load\",\n");
	json_config(file, report->config);
	json_totals(file, report->totals);
	fprintf(file, "  \"latency\": ");
	json_histogram(file, report->histogram);
	fprintf(file, ",\n");
	json_verification(file, report->verification);
	fprintf(file, "  \"auth\": {\"key_id\": %u, \"admin_key_id\": %u, \"forbidden\": %llu, "
		      "\"replies_invalid\": %llu},\n",
		report->auth.key_id, report->auth.admin_key_id,
		(unsigned long long)report->auth.forbidden,
		(unsigned long long)report->auth.replies_invalid);
	fprintf(file, "  \"verdict\": \"%s\",\n  \"series\": [\n", report->verdict);
	for (uint32_t i = 0; i < report->series_count; i++) {
		const struct load_second *s = &report->series[i];
		fprintf(file,
			"    {\"t_s\": %.3f, \"span_s\": %.3f, \"sent\": %llu, \"completed\": %llu, \"approved\": %llu, "
			"\"declined\": %llu, \"busy\": %llu, \"busy_retries\": %llu, \"retransmits\": %llu, \"p50_ms\": %.4f, "
			"\"p99_ms\": %.4f, \"p999_ms\": %.4f, \"max_ms\": %.4f}%s\n",
			s->t_s, s->span_s, (unsigned long long)s->sent, (unsigned long long)s->completed,
			(unsigned long long)s->approved, (unsigned long long)s->declined,
			(unsigned long long)s->busy, (unsigned long long)s->busy_retries,
			(unsigned long long)s->retransmits, ms(s->p50_ns),
			ms(s->p99_ns), ms(s->p999_ns), ms(s->max_ns),
			i + 1 < report->series_count ? "," : "");
	}
	fprintf(file, "  ]\n}\n");
	int failed = ferror(file);
	if (fclose(file) != 0 || failed)
		return -EIO;
	return 0;
}

static int write_plot_files(const struct load_report *report, const char *path,
			    const char *data_path, const char *script_path)
{
	FILE *data = fopen(data_path, "w");
	if (data == NULL)
		return -errno;
	fprintf(data, "# t_s completed_per_s approved_per_s declined_per_s p50_ms p99_ms p999_ms\n");
	for (uint32_t i = 0; i < report->series_count; i++) {
		const struct load_second *s = &report->series[i];
		fprintf(data, "%.3f %.1f %.1f %.1f %.4f %.4f %.4f\n", s->t_s,
			(double)s->completed / s->span_s, (double)s->approved / s->span_s,
			(double)s->declined / s->span_s, ms(s->p50_ns), ms(s->p99_ns), ms(s->p999_ns));
	}
	fclose(data);
	FILE *script = fopen(script_path, "w");
	if (script == NULL)
		return -errno;
	const struct load_config *config = report->config;
	fprintf(script,
		"set terminal pngcairo size 1200,800 font 'sans,10'\n"
		"set output '%s'\n"
		"set multiplot layout 2,1 title 'payswitch-load: %s loop, %u per datagram%s'\n"
		"set grid\nset key top right\n"
		"set xlabel 'time (s)'\nset ylabel 'requests/s'\nset format y '%%.0s%%c'\n"
		"set yrange [0:*]\nset xrange [0:*]\n"
		"plot '%s' using 1:2 with linespoints lw 2 title 'answered', "
		"'' using 1:3 with lines lw 2 title 'approved', "
		"'' using 1:4 with lines lw 1 title 'declined'\n"
		"set ylabel 'latency (ms)'\nset format y '%%g'\nset logscale y\nset yrange [*:*]\n"
		"plot '%s' using 1:5 with linespoints lw 2 title 'p50', "
		"'' using 1:6 with linespoints lw 2 title 'p99', "
		"'' using 1:7 with lines lw 1 title 'p99.9'\n"
		"unset multiplot\n",
		path, config->rate ? "open" : "closed", config->per_datagram,
		config->echo ? " (echo stand-in)" : "", data_path, data_path);
	fclose(script);
	return 0;
}

int load_report_plot(const struct load_report *report, const char *path)
{
	char data_path[4096], script_path[4096];
	snprintf(data_path, sizeof(data_path), "%s.dat", path);
	snprintf(script_path, sizeof(script_path), "%s.gp", path);
	int status = write_plot_files(report, path, data_path, script_path);
	if (status != 0)
		return status;
	char command[8400];
	snprintf(command, sizeof(command), "gnuplot '%s' 2>&1", script_path);
	int ran = system(command);
	if (ran == -1 || !WIFEXITED(ran) || WEXITSTATUS(ran) != 0)
		return -ENOENT;
	return 0;
}
