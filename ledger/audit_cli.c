/*
 * audit_cli.c — the audit report (text and JSON) and the command line of
 * `payswitch audit DATA_DIR [--account ID] [--json]`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"

/* JSON string body: the texts we print hold paths and sentences only. */
static void print_json_string(FILE *out, const char *text)
{
	fputc('"', out);
	for (const char *at = text; *at; at++) {
		if (*at == '"' || *at == '\\')
			fprintf(out, "\\%c", *at);
		else if ((unsigned char)*at < 0x20)
			fprintf(out, "\\u%04x", (unsigned char)*at);
		else
			fputc(*at, out);
	}
	fputc('"', out);
}

static void print_json(FILE *out, const struct journal_audit_report *report,
		       const char *statement_json, bool has_statement)
{
	fprintf(out, "{\"ok\":%s,\"shards\":%u,\"records\":%" PRIu64 ",\"accounts\":%" PRIu64
		",\"duplicate_approvals\":%" PRIu64 ",\"snapshots_compared\":%" PRIu64
		",\"torn_tails\":%" PRIu64 ",\"violations\":%" PRIu64 ",\"elapsed_us\":%" PRIu64
		",\"first_violation\":", report->violations ? "false" : "true", report->shards,
		report->records, report->accounts, report->duplicate_approvals,
		report->snapshots_compared, report->torn_tails, report->violations,
		report->elapsed_us);
	if (report->violations)
		print_json_string(out, report->first_violation);
	else
		fputs("null", out);
	fputs(",\"codes\":{", out);
	bool first = true;
	for (unsigned code = 0; code < LEDGER_RESULT_CODE_COUNT; code++) {
		if (report->records_by_code[code] == 0)
			continue;
		fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", ledger_result_name(code),
			report->records_by_code[code]);
		first = false;
	}
	fputs("},\"currencies\":[", out);
	for (uint32_t i = 0; i < report->currency_count; i++) {
		const struct journal_audit_currency *total = &report->currencies[i];
		char balances[48], transit[48];
		fprintf(out, "%s{\"currency\":%u,\"balance_sum\":%s,\"in_transit\":%s"
			",\"accounts\":%" PRIu64 "}", i ? "," : "", total->currency,
			ledger_format_i128(total->balance_sum, balances, sizeof(balances)),
			ledger_format_i128(total->transit, transit, sizeof(transit)), total->accounts);
	}
	fputs("]", out);
	fprintf(out, ",\"cross_shard\":{\"credits\":%" PRIu64 ",\"returns\":%" PRIu64
		",\"owed_credits\":%" PRIu64 ",\"owed_returns\":%" PRIu64
		",\"ids_on_two_shards\":%" PRIu64 "}", report->cross_credits, report->cross_returns,
		report->owed_credits, report->owed_returns, report->ids_on_two_shards);
	if (has_statement)
		fprintf(out, ",\"statement\":[%s]", statement_json ? statement_json : "");
	fputs("}\n", out);
}

static void print_text(FILE *out, const struct journal_audit_report *report)
{
	fprintf(out, "shards %u, records %" PRIu64 ", accounts %" PRIu64 ", %.3f s\n",
		report->shards, report->records, report->accounts,
		(double)report->elapsed_us / 1e6);
	fprintf(out, "records by result:\n");
	for (unsigned code = 0; code < LEDGER_RESULT_CODE_COUNT; code++)
		if (report->records_by_code[code] != 0)
			fprintf(out, "  %-24s %" PRIu64 "\n", ledger_result_name(code),
				report->records_by_code[code]);
	fprintf(out, "currency   balance_sum   in_transit   accounts\n");
	for (uint32_t i = 0; i < report->currency_count; i++) {
		const struct journal_audit_currency *total = &report->currencies[i];
		char balances[48], transit[48];
		fprintf(out, "  %5u %14s %12s %10" PRIu64 "\n", total->currency,
			ledger_format_i128(total->balance_sum, balances, sizeof(balances)),
			ledger_format_i128(total->transit, transit, sizeof(transit)), total->accounts);
	}
	fprintf(out, "duplicate approvals %" PRIu64 ", snapshots compared %" PRIu64
		", torn tails %" PRIu64 "\n", report->duplicate_approvals,
		report->snapshots_compared, report->torn_tails);
	fprintf(out, "across shards: credits %" PRIu64 ", returns %" PRIu64 ", owed credits %"
		PRIu64 ", owed returns %" PRIu64 ", ids on two shards %" PRIu64 "\n",
		report->cross_credits, report->cross_returns, report->owed_credits,
		report->owed_returns, report->ids_on_two_shards);
	if (report->violations)
		fprintf(out, "AUDIT FAILED: %" PRIu64 " violation(s); first: %s\n",
			report->violations, report->first_violation);
	else
		fprintf(out, "AUDIT PASSED\n");
}

void journal_audit_print(FILE *out, const struct journal_audit_options *options,
			 const struct journal_audit_report *report, const char *statement_json)
{
	if (options->json)
		print_json(out, report, statement_json, options->has_account);
	else
		print_text(out, report);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: payswitch audit DATA_DIR [--account ID] [--json]\n"
		"\n"
		"Replays every shard's journal from genesis into a fresh ledger (config from\n"
		"DATA_DIR/payswitch.meta), verifies checksums and the block chain, re-applies\n"
		"every decision and compares it with the recorded result, checks the\n"
		"invariants (every 1M records and at each shard's end), duplicate approvals,\n"
		"the newest snapshot against the replayed state, and per currency that\n"
		"balances + money in transit sum to zero over all shards. Across shards:\n"
		"every CREDIT has its debit and every RETURN its refused CREDIT, repeats\n"
		"answer the final outcome, no id is live on two shards at once, returned\n"
		"refunds and captures no longer count. Read-only.\n"
		"\n"
		"  --account ID  also print that account's statement (every record touching it,\n"
		"                with its running posted balance on its own shard)\n"
		"  --json        machine-readable report on stdout\n"
		"  --help        this text\n"
		"\n"
		"exit status: 0 clean, 1 violation (first one named with file/offset/sequence),\n"
		"             2 usage or I/O error\n");
}

int journal_audit_main(int argc, char **argv)
{
	struct journal_audit_options options = {.out = stdout};
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			options.json = true;
		} else if (!strcmp(argv[i], "--account") && i + 1 < argc) {
			char *end;
			errno = 0;
			options.account_id = strtoull(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || options.account_id == 0) {
				fprintf(stderr, "audit: --account wants a positive integer id\n");
				return 2;
			}
			options.has_account = true;
		} else if (argv[i][0] != '-' && dir == NULL) {
			dir = argv[i];
		} else {
			fprintf(stderr, "audit: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (dir == NULL) {
		usage(stderr);
		return 2;
	}
	struct journal_audit_report report;
	int status = journal_audit(dir, &options, &report);
	if (status == 2)
		fprintf(stderr, "audit: %s\n", report.first_violation);
	return status;
}
