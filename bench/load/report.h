/*
 * report.h — the end-of-run summary, the JSON file and the plot.
 */
#ifndef PAYSWITCH_BENCH_LOAD_REPORT_H
#define PAYSWITCH_BENCH_LOAD_REPORT_H

#include <stdio.h>

#include "load.h"
#include "verify.h"

/* Authentication of a run (PROTOCOL.md "Authentication"). */
struct load_auth {
	uint32_t key_id;             /* the payments' key; 0: none */
	uint32_t admin_key_id;       /* setup and verification; 0: none */
	uint64_t forbidden;          /* final answers FORBIDDEN (the key's role refused) */
	uint64_t replies_invalid;    /* replies refused by the client: a bad MAC, another
	                              * key, or malformed (netio_client_stats) */
};

struct load_report {
	const struct load_config *config;
	const struct load_accounts *accounts;
	const struct load_totals *totals;
	const struct histogram *histogram;
	const struct load_second *series;
	uint32_t series_count;
	const struct load_verification *verification;
	const char *verdict;         /* "PASS", "FAIL: ..." */
	struct load_auth auth;
};

/* One summary line: the keys, FORBIDDEN answers, replies failing authentication. */
void load_report_auth(const struct load_auth *auth, FILE *out);

void load_report_summary(const struct load_report *report, FILE *out);
/* Returns 0 or -errno. */
int load_report_json(const struct load_report *report, const char *path);
/* Writes PATH.dat and PATH.gp next to the PNG and runs gnuplot.
 * Returns 0, or -errno / -ENOENT when gnuplot is missing or failed. */
int load_report_plot(const struct load_report *report, const char *path);

#endif
