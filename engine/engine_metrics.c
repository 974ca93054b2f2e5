/*
 * engine_metrics.c — the engine's Prometheus exposition (GET /metrics).
 *
 * Runs on the HTTP thread: reads counters with relaxed loads and ring
 * occupancy with rte_ring_count(), both safe while the workers run.
 */
#include "engine.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "netio.h"
#include "shard.h"
#include "worker.h"

typedef uint64_t (*worker_counter_fn)(const struct engine_worker_stats *stats);
typedef uint64_t (*shard_counter_fn)(const struct engine_shard_stats *stats);

#define WORKER_COUNTER(field)                                                           \
	static uint64_t worker_##field(const struct engine_worker_stats *stats)         \
	{                                                                               \
		return metrics_read(&stats->field);                                     \
	}
#define SHARD_COUNTER(field)                                                            \
	static uint64_t shard_##field(const struct engine_shard_stats *stats)           \
	{                                                                               \
		return metrics_read(&stats->field);                                     \
	}

WORKER_COUNTER(datagrams_received)
WORKER_COUNTER(datagrams_sent)
WORKER_COUNTER(requests)
WORKER_COUNTER(malformed_datagrams)
WORKER_COUNTER(format_errors)
WORKER_COUNTER(busy)
WORKER_COUNTER(replies)
WORKER_COUNTER(replies_dropped)
WORKER_COUNTER(forbidden)
SHARD_COUNTER(requests)
SHARD_COUNTER(duplicates)
SHARD_COUNTER(records)
SHARD_COUNTER(groups)
SHARD_COUNTER(credits_sent)
SHARD_COUNTER(credits_received)
SHARD_COUNTER(returns_sent)
SHARD_COUNTER(probes_sent)
SHARD_COUNTER(claims_refused)
SHARD_COUNTER(claims_full)
SHARD_COUNTER(too_old_elsewhere)
SHARD_COUNTER(admission_busy)
SHARD_COUNTER(commit_estimate_us)
SHARD_COUNTER(pending)
SHARD_COUNTER(journal_failed)

/* A per-reason counter array of every worker's stats (at `offset`), summed
 * over workers: one sample per reason 1..count-1, labelled by name_of. */
static void render_by_reason(const struct engine *engine, struct metrics_text *text,
			     const char *name, const char *help, size_t offset, unsigned count,
			     const char *(*name_of)(unsigned))
{
	metrics_text_header(text, name, "counter", help);
	for (unsigned reason = 1; reason < count; reason++) {
		uint64_t total = 0;
		for (uint32_t w = 0; w < engine->worker_count; w++) {
			const uint64_t *counters = (const uint64_t *)(const void *)(
				(const char *)&engine->workers[w].stats + offset);
			total += metrics_read(&counters[reason]);
		}
		metrics_text_printf(text, "%s{reason=\"%s\"} %llu\n", name, name_of(reason),
				    (unsigned long long)total);
	}
}

static const struct {
	const char *name;
	const char *type;
	const char *help;
	worker_counter_fn read;
} worker_metrics[] = {
	{ "payswitch_datagrams_received_total", "counter", "Datagrams received.", worker_datagrams_received },
	{ "payswitch_datagrams_sent_total", "counter", "Reply datagrams sent.", worker_datagrams_sent },
	{ "payswitch_requests_total", "counter", "Requests received in valid datagrams.", worker_requests },
	{ "payswitch_malformed_datagrams_total", "counter", "Datagrams refused by the codec.", worker_malformed_datagrams },
	{ "payswitch_format_errors_total", "counter", "Requests refused by the codec (FORMAT_ERROR).", worker_format_errors },
	{ "payswitch_busy_total", "counter", "Requests answered BUSY because a ring or the slot table was full.", worker_busy },
	{ "payswitch_replies_total", "counter", "Results sent to clients.", worker_replies },
	{ "payswitch_replies_dropped_total", "counter", "Reply datagrams the socket never accepted.", worker_replies_dropped },
	{ "payswitch_forbidden_total", "counter", "Requests answered FORBIDDEN: the sender's role or bindings do not allow them.", worker_forbidden },
};

static const struct {
	const char *name;
	const char *type;
	const char *help;
	shard_counter_fn read;
} shard_metrics[] = {
	{ "payswitch_shard_requests_total", "counter", "Requests applied to the ledger.", shard_requests },
	{ "payswitch_shard_duplicates_total", "counter", "Repeated requests answered with their original outcome.", shard_duplicates },
	{ "payswitch_journal_records_total", "counter", "Journal records committed.", shard_records },
	{ "payswitch_journal_groups_total", "counter", "Group commits submitted.", shard_groups },
	{ "payswitch_credits_sent_total", "counter", "Cross-shard credits sent once durable.", shard_credits_sent },
	{ "payswitch_credits_received_total", "counter", "Cross-shard credits applied.", shard_credits_received },
	{ "payswitch_returns_sent_total", "counter", "Cross-shard credits refused and returned.", shard_returns_sent },
	{ "payswitch_probes_sent_total", "counter", "Repeats and look-ups of a cross-shard transfer answered through the payee's shard.", shard_probes_sent },
	{ "payswitch_claims_refused_total", "counter", "Requests refused ID_REUSED because another shard decided their id.", shard_claims_refused },
	{ "payswitch_claims_full_total", "counter", "Requests answered BUSY because the id claims table had no room.", shard_claims_full },
	{ "payswitch_too_old_elsewhere_total", "counter", "Requests refused TOO_OLD by another shard's eviction watermark.", shard_too_old_elsewhere },
	{ "payswitch_admission_busy_total", "counter", "Requests answered BUSY with a retry-after hint: their expected wait passed the latency bound.", shard_admission_busy },
	{ "payswitch_commit_estimate_us", "gauge", "Moving average of a group commit's latency, used by admission control.", shard_commit_estimate_us },
	{ "payswitch_pending_decisions", "gauge", "Decisions waiting for durability.", shard_pending },
	{ "payswitch_journal_failed", "gauge", "1 when the shard's journal failed and nothing more is acknowledged.", shard_journal_failed },
};

static void render_workers(struct engine *engine, struct metrics_text *text)
{
	for (size_t m = 0; m < sizeof(worker_metrics) / sizeof(worker_metrics[0]); m++) {
		metrics_text_header(text, worker_metrics[m].name, worker_metrics[m].type,
				    worker_metrics[m].help);
		for (uint32_t w = 0; w < engine->worker_count; w++)
			metrics_text_printf(text, "%s{worker=\"%u\"} %llu\n", worker_metrics[m].name, w,
					    (unsigned long long)worker_metrics[m].read(
						    &engine->workers[w].stats));
	}
	render_by_reason(engine, text, "payswitch_malformed_by_reason_total",
			 "Malformed datagrams by the codec's reason.",
			 offsetof(struct engine_worker_stats, rejects), NETIO_REJECT_COUNT_KINDS,
			 netio_reject_name);
	render_by_reason(engine, text, "payswitch_auth_refused_total",
			 "Datagrams not let in (never answered), by reason.",
			 offsetof(struct engine_worker_stats, auth_refused), NETIO_AUTH_REFUSAL_COUNT,
			 netio_auth_refusal_name);
	metrics_text_header(text, "payswitch_client_keys", "gauge",
			    "Client keys loaded (DATA_DIR/clients; reloaded on SIGHUP).");
	metrics_text_printf(text, "payswitch_client_keys %u\n",
			    netio_keyring_count(atomic_load(&engine->keyring)));
	metrics_text_header(text, "payswitch_authentication", "gauge",
			    "1 when datagrams must carry a valid key and MAC, 0 with --insecure-no-auth.");
	metrics_text_printf(text, "payswitch_authentication %d\n", engine->authenticate ? 1 : 0);
	metrics_text_header(text, "payswitch_results_total", "counter",
			    "Results sent to clients by result code.");
	for (unsigned code = 0; code < LEDGER_RESULT_CODE_COUNT; code++) {
		uint64_t total = 0;
		for (uint32_t w = 0; w < engine->worker_count; w++)
			total += metrics_read(&engine->workers[w].stats.results[code]);
		if (total > 0 || code == LEDGER_OK)
			metrics_text_printf(text, "payswitch_results_total{code=\"%s\"} %llu\n",
					    ledger_result_name(code), (unsigned long long)total);
	}
	metrics_text_header(text, "payswitch_request_latency_us", "histogram",
			    "Microseconds from receiving a datagram to sending its reply.");
	struct metrics_histogram total = { 0 };
	for (uint32_t w = 0; w < engine->worker_count; w++) {
		const struct metrics_histogram *h = &engine->workers[w].stats.request_latency_us;
		for (unsigned b = 0; b < METRICS_HISTOGRAM_BUCKETS; b++)
			total.buckets[b] += metrics_read(&h->buckets[b]);
		total.sum += metrics_read(&h->sum);
	}
	metrics_text_histogram(text, "payswitch_request_latency_us", "", &total);
}

static void render_rings(struct engine *engine, struct metrics_text *text)
{
	metrics_text_header(text, "payswitch_ring_occupancy", "gauge",
			    "Elements waiting in each ring (kind in, reply or credit).");
	for (uint32_t w = 0; w < engine->worker_count; w++) {
		for (uint32_t s = 0; s < engine->shard_count; s++) {
			metrics_text_printf(text,
					    "payswitch_ring_occupancy{kind=\"in\",worker=\"%u\",shard=\"%u\"} %u\n",
					    w, s,
					    engine_ring_count(&engine->rings_in[w * engine->shard_count + s]));
			metrics_text_printf(text,
					    "payswitch_ring_occupancy{kind=\"reply\",worker=\"%u\",shard=\"%u\"} %u\n",
					    w, s,
					    engine_ring_count(&engine->rings_reply[s * engine->worker_count + w]));
		}
	}
	for (uint32_t s = 0; s < engine->shard_count; s++)
		for (uint32_t t = 0; t < engine->shard_count; t++)
			if (s != t)
				metrics_text_printf(text,
						    "payswitch_ring_occupancy{kind=\"credit\",from=\"%u\",to=\"%u\"} %u\n",
						    s, t,
						    engine_ring_count(&engine->rings_credit[s * engine->shard_count + t]));
	metrics_text_header(text, "payswitch_ring_capacity", "gauge", "Capacity of every ring.");
	metrics_text_printf(text, "payswitch_ring_capacity %u\n", engine->config.ring_size - 1);
}

static void render_shards(struct engine *engine, struct metrics_text *text)
{
	for (size_t m = 0; m < sizeof(shard_metrics) / sizeof(shard_metrics[0]); m++) {
		metrics_text_header(text, shard_metrics[m].name, shard_metrics[m].type,
				    shard_metrics[m].help);
		for (uint32_t s = 0; s < engine->shard_count; s++)
			metrics_text_printf(text, "%s{shard=\"%u\"} %llu\n", shard_metrics[m].name, s,
					    (unsigned long long)shard_metrics[m].read(
						    &engine->shards[s].stats));
	}
	metrics_text_header(text, "payswitch_journal_lag_records", "gauge",
			    "Decisions applied but not yet durable.");
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		const struct engine_shard_stats *stats = &engine->shards[s].stats;
		uint64_t applied = metrics_read(&stats->sequence_applied);
		uint64_t durable = metrics_read(&stats->sequence_durable);
		metrics_text_printf(text, "payswitch_journal_lag_records{shard=\"%u\"} %llu\n", s,
				    (unsigned long long)(applied > durable ? applied - durable : 0));
	}
	metrics_text_header(text, "payswitch_journal_durable_sequence", "gauge",
			    "Last ledger sequence on disk.");
	for (uint32_t s = 0; s < engine->shard_count; s++)
		metrics_text_printf(text, "payswitch_journal_durable_sequence{shard=\"%u\"} %llu\n", s,
				    (unsigned long long)metrics_read(
					    &engine->shards[s].stats.sequence_durable));
	metrics_text_header(text, "payswitch_journal_group_records", "histogram",
			    "Records per group commit.");
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		char labels[32];
		snprintf(labels, sizeof(labels), "shard=\"%u\"", s);
		metrics_text_histogram(text, "payswitch_journal_group_records", labels,
				       &engine->shards[s].stats.group_records);
	}
	metrics_text_header(text, "payswitch_journal_commit_latency_us", "histogram",
			    "Microseconds from submitting a group (write + fdatasync) to durable.");
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		char labels[32];
		snprintf(labels, sizeof(labels), "shard=\"%u\"", s);
		metrics_text_histogram(text, "payswitch_journal_commit_latency_us", labels,
				       &engine->shards[s].stats.commit_latency_us);
	}
}

/* Transport counters, read through netio_transport_stats_read() (safe while
 * the worker runs). Drop reasons are the DPDK backend's; UDP reports 0. */
#define TRANSPORT_FIELD(field, help) \
	{ #field, help, offsetof(struct netio_transport_stats, field) }

static const struct {
	const char *name;
	const char *help;
	size_t offset;
} transport_counters[] = {
	TRANSPORT_FIELD(rx_datagrams, "Datagrams received by the transport."),
	TRANSPORT_FIELD(rx_bytes, "Payload bytes received."),
	TRANSPORT_FIELD(rx_truncated, "Datagrams larger than a receive buffer."),
	TRANSPORT_FIELD(rx_errors, "Receive calls that failed."),
	TRANSPORT_FIELD(tx_datagrams, "Datagrams sent."),
	TRANSPORT_FIELD(tx_errors, "Datagrams the kernel or port refused."),
	TRANSPORT_FIELD(tx_full, "Send bursts stopped by a full queue."),
	TRANSPORT_FIELD(rx_frames, "Frames delivered by the DPDK port."),
	TRANSPORT_FIELD(arp_replies, "ARP requests answered (DPDK)."),
	TRANSPORT_FIELD(icmp_replies, "ICMP echo requests answered (DPDK)."),
	TRANSPORT_FIELD(tx_no_mbuf, "Send bursts stopped by an empty mbuf pool (DPDK)."),
};

static const struct {
	const char *reason;
	size_t offset;
} transport_drops[] = {
	{ "ether_type", offsetof(struct netio_transport_stats, drop_ether_type) },
	{ "ether_dst", offsetof(struct netio_transport_stats, drop_ether_dst) },
	{ "truncated", offsetof(struct netio_transport_stats, drop_truncated) },
	{ "ip_header", offsetof(struct netio_transport_stats, drop_ip_header) },
	{ "ip_checksum", offsetof(struct netio_transport_stats, drop_ip_checksum) },
	{ "ip_fragment", offsetof(struct netio_transport_stats, drop_ip_fragment) },
	{ "ip_dst", offsetof(struct netio_transport_stats, drop_ip_dst) },
	{ "ip_protocol", offsetof(struct netio_transport_stats, drop_ip_protocol) },
	{ "udp_length", offsetof(struct netio_transport_stats, drop_udp_length) },
	{ "udp_checksum", offsetof(struct netio_transport_stats, drop_udp_checksum) },
	{ "udp_port", offsetof(struct netio_transport_stats, drop_udp_port) },
	{ "arp", offsetof(struct netio_transport_stats, drop_arp) },
	{ "icmp", offsetof(struct netio_transport_stats, drop_icmp) },
};

static uint64_t stat_at(const struct netio_transport_stats *stats, size_t offset)
{
	uint64_t value;
	memcpy(&value, (const char *)stats + offset, sizeof(value));
	return value;
}

static void render_transports(struct engine *engine, struct metrics_text *text)
{
	struct netio_transport_stats stats[ENGINE_WORKERS_MAX];
	for (uint32_t w = 0; w < engine->worker_count; w++)
		netio_transport_stats_read(engine->workers[w].transport, &stats[w]);
	for (size_t c = 0; c < sizeof(transport_counters) / sizeof(transport_counters[0]); c++) {
		char name[96];
		snprintf(name, sizeof(name), "payswitch_transport_%s_total", transport_counters[c].name);
		metrics_text_header(text, name, "counter", transport_counters[c].help);
		for (uint32_t w = 0; w < engine->worker_count; w++)
			metrics_text_printf(text, "%s{worker=\"%u\"} %llu\n", name, w,
					    (unsigned long long)stat_at(&stats[w],
									transport_counters[c].offset));
	}
	metrics_text_header(text, "payswitch_transport_drops_total", "counter",
			    "Frames the DPDK transport dropped, by reason.");
	for (size_t d = 0; d < sizeof(transport_drops) / sizeof(transport_drops[0]); d++) {
		uint64_t total = 0;
		for (uint32_t w = 0; w < engine->worker_count; w++)
			total += stat_at(&stats[w], transport_drops[d].offset);
		metrics_text_printf(text, "payswitch_transport_drops_total{reason=\"%s\"} %llu\n",
				    transport_drops[d].reason, (unsigned long long)total);
	}
}

void engine_metrics_render(void *context, struct metrics_text *text)
{
	struct engine *engine = context;
	metrics_text_header(text, "payswitch_up", "gauge", "1 while the switch serves.");
	metrics_text_printf(text, "payswitch_up 1\n");
	metrics_text_header(text, "payswitch_uptime_seconds", "gauge", "Seconds since start.");
	metrics_text_printf(text, "payswitch_uptime_seconds %.3f\n",
			    (double)(engine_monotonic_us() - engine->started_us) / 1e6);
	metrics_text_header(text, "payswitch_credits_in_flight", "gauge",
			    "Cross-shard credits and returns sent and not yet decided.");
	metrics_text_printf(text, "payswitch_credits_in_flight %lld\n",
			    (long long)atomic_load(&engine->credits_in_flight));
	render_workers(engine, text);
	render_shards(engine, text);
	render_rings(engine, text);
	render_transports(engine, text);
}
