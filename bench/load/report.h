/*
 * report.h — the end-of-run summary, the JSON file and the plot.
 */
#ifndef PAYSWITCH_BENCH_LOAD_REPORT_H
#define PAYSWITCH_BENCH_LOAD_REPORT_H

#include <stdio.h>

#include "load.h"
#include "verify.h"

struct load_report {
	const struct load_config *config;
	const struct load_accounts *accounts;
	const struct load_totals *totals;
	const struct histogram *histogram;
	const struct load_second *series;
	uint32_t series_count;
	const struct load_verification *verification;
	const char *verdict;         /* "PASS", "FAIL: ..." */
};

void load_report_summary(const struct load_report *report, FILE *out);
/* Returns 0 or -errno. */
int load_report_json(const struct load_report *report, const char *path);
/* Writes PATH.dat and PATH.gp next to the PNG and runs gnuplot.
 * Returns 0, or -errno / -ENOENT when gnuplot is missing or failed. */
int load_report_plot(const struct load_report *report, const char *path);

#endif
