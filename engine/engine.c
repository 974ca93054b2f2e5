/*
 * engine.c — builds the switch: recovers every shard, creates the rings and
 * transports, starts and stops the threads, writes snapshots on a clean stop.
 */
#include "engine.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "claims.h"
#include "clients.h"
#include "recovery.h"
#include "shard.h"
#include "worker.h"

/* Datagrams awaiting replies per netio worker, and how many of them may be
 * batches of more than ENGINE_SLOT_INLINE requests. */
#define ENGINE_SLOTS_MAX 65536u
#define ENGINE_BATCH_BUFFERS_MAX 4096u

uint64_t engine_now_us(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

uint64_t engine_monotonic_us(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

void engine_log(const char *level, const char *format, ...)
{
	char message[1024];
	va_list arguments;
	va_start(arguments, format);
	vsnprintf(message, sizeof(message), format, arguments);
	va_end(arguments);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm utc;
	gmtime_r(&now.tv_sec, &utc);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
	for (char *c = message; *c; c++)
		if (*c == '"')
			*c = '\'';
	fprintf(stderr, "ts=%s.%06ldZ level=%s msg=\"%s\"\n", stamp, now.tv_nsec / 1000, level,
		message);
}

static void journal_log_line(void *context, const char *line)
{
	(void)context;
	engine_log("info", "%s", line);
}

void engine_wake(struct engine_waker *waker)
{
	/* The caller just published ring elements with release stores; x86 may
	 * still order this load before them. The fence pairs with the sleeper's
	 * seq-cst store of `sleeping` before it re-checks the rings: one of the
	 * two sides sees the other, so no wake-up is lost. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&waker->sleeping, memory_order_relaxed)) {
		uint64_t one = 1;
		ssize_t written = write(waker->eventfd, &one, sizeof(one));
		(void)written;
	}
}

static int fail(char *error, size_t error_size, int code, const char *format, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *error, size_t error_size, int code, const char *format, ...)
{
	va_list arguments;
	va_start(arguments, format);
	vsnprintf(error, error_size, format, arguments);
	va_end(arguments);
	return code;
}

static int create_rings(struct engine *engine, char *error, size_t error_size)
{
	uint32_t shards = engine->shard_count;
	uint32_t workers = engine->worker_count;
	uint32_t ring_size = engine->config.ring_size;
	assert(shards > 0);
	assert(workers > 0);
	assert(workers <= ENGINE_WORKERS_MAX);
	engine->rings_in = calloc((size_t)workers * shards, sizeof(struct engine_ring));
	engine->rings_reply = calloc((size_t)workers * shards, sizeof(struct engine_ring));
	engine->rings_credit = calloc((size_t)shards * shards, sizeof(struct engine_ring));
	if (!engine->rings_in || !engine->rings_reply || !engine->rings_credit)
		return fail(error, error_size, -ENOMEM, "out of memory for rings");
	for (uint32_t w = 0; w < workers; w++) {
		for (uint32_t s = 0; s < shards; s++) {
			char name[32];
			snprintf(name, sizeof(name), "in-%u-%u", w, s);
			int result = engine_ring_create(&engine->rings_in[w * shards + s], name, ring_size,
							sizeof(struct engine_message));
			snprintf(name, sizeof(name), "reply-%u-%u", s, w);
			if (result == 0)
				result = engine_ring_create(&engine->rings_reply[s * workers + w], name,
							    ring_size, sizeof(struct engine_reply));
			if (result != 0)
				return fail(error, error_size, result, "ring %s: %s", name,
					    strerror(-result));
		}
	}
	for (uint32_t s = 0; s < shards; s++) {
		for (uint32_t t = 0; t < shards; t++) {
			if (s == t)
				continue;
			char name[32];
			snprintf(name, sizeof(name), "credit-%u-%u", s, t);
			int result = engine_ring_create(&engine->rings_credit[s * shards + t], name,
							ring_size, sizeof(struct engine_message));
			if (result != 0)
				return fail(error, error_size, result, "ring %s: %s", name,
					    strerror(-result));
		}
	}
	return 0;
}

static int create_wakers(struct engine_waker **wakers, uint32_t count)
{
	*wakers = calloc(count, sizeof(struct engine_waker));
	if (*wakers == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++) {
		(*wakers)[i].eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if ((*wakers)[i].eventfd < 0)
			return -errno;
	}
	return 0;
}

static void destroy_wakers(struct engine_waker *wakers, uint32_t count)
{
	if (wakers == NULL)
		return;
	for (uint32_t i = 0; i < count; i++)
		if (wakers[i].eventfd > 0)
			close(wakers[i].eventfd);
	free(wakers);
}

/* Recovers one shard's ledger from its snapshot and journal, then opens the
 * journal writer after the last good record. */
static int open_shard(struct engine *engine, const struct journal_meta *meta, uint32_t index,
		      char *error, size_t error_size)
{
	assert(index < engine->shard_count);
	struct engine_shard *shard = &engine->shards[index];
	shard->engine = engine;
	shard->index = index;
	struct ledger_config ledger_config;
	journal_meta_shard_config(meta, index, &ledger_config);
	int result = 0;
	shard->ledger = ledger_create(&ledger_config, &result);
	if (shard->ledger == NULL)
		return fail(error, error_size, result, "shard %u: cannot create its ledger: %s",
			    index, strerror(-result));
	struct journal_recovery_report report;
	struct journal_error journal_error = { 0 };
	/* A temp file is a snapshot a crash cut short: never read, removed. */
	int removed = journal_snapshot_clean_temp(engine->config.data_dir, index);
	if (removed < 0)
		engine_log("warn", "shard %u: cannot remove temp snapshots: %s", index,
			   strerror(-removed));
	result = journal_recover(engine->config.data_dir, index, shard->ledger, &report,
				 &journal_error);
	if (result < 0)
		return fail(error, error_size, result, "shard %u: recovery failed: %s", index,
			    journal_error.text);
	engine_log("info",
		   "shard %u recovered: snapshot sequence %llu, %llu records replayed, last "
		   "sequence %llu, %llu accounts, %.1f ms%s",
		   index, (unsigned long long)report.snapshot_sequence,
		   (unsigned long long)report.records_replayed,
		   (unsigned long long)report.last_sequence,
		   (unsigned long long)ledger_account_count(shard->ledger),
		   (double)report.elapsed_us / 1000.0, report.torn_tail ? " (torn tail cut)" : "");
	/* Postconditions of recovery (journal.h): the ledger stands where the
	 * journal ends, at or after its snapshot, having replayed what it read. */
	assert(report.last_sequence == ledger_sequence(shard->ledger));
	assert(report.snapshot_sequence <= report.last_sequence);
	assert(report.records_replayed <= report.records_read);
	assert(report.records_replayed <= report.last_sequence - report.snapshot_sequence);
	shard->now_us = ledger_now(shard->ledger);
	shard->snapshot_sequence = report.snapshot_sequence;
	shard->commit_estimate_us = ENGINE_COMMIT_PRIOR_US;
	struct journal_writer_options options;
	journal_writer_options_default(&options);
	options.group_bytes_max = engine->config.group_bytes_max;
	/* Buffers for the groups in flight plus the one filling. */
	options.groups_in_flight_max = engine->config.journal_in_flight + 1;
	/* Off by default: zero-filling ahead lowered the p50 commit latency of small
	 * groups here by ~20%, but cost ~30% of bandwidth at 1 MiB groups and
	 * lengthened p999 everywhere (bench/journal_bench --preallocate). */
	options.preallocate_bytes = engine->config.journal_preallocate;
	options.mode = engine->config.durability == ENGINE_DURABLE
			       ? JOURNAL_MODE_DURABLE : JOURNAL_MODE_UNSAFE_ACK_BEFORE_SYNC;
	shard->journal = journal_writer_open(engine->config.data_dir, index, &options,
					     &journal_error);
	if (shard->journal == NULL)
		return fail(error, error_size, journal_error.code, "shard %u: journal: %s", index,
			    journal_error.text);
	shard->committed_sequence = journal_appended_sequence(shard->journal);
	/* The writer appends right after the last record the ledger replayed:
	 * a gap or an overlap would give two decisions one sequence number. */
	assert(shard->committed_sequence == ledger_sequence(shard->ledger));
	shard->pending_capacity = ENGINE_PENDING_MAX;
	shard->pending = calloc(shard->pending_capacity, sizeof(struct engine_pending));
	shard->outboxes = calloc(engine->worker_count, sizeof(struct engine_shard_outbox));
	if (shard->pending == NULL || shard->outboxes == NULL)
		return fail(error, error_size, -ENOMEM, "shard %u: out of memory", index);
	return 0;
}

static int open_worker(struct engine *engine, uint32_t index, uint16_t port, char *error,
		       size_t error_size)
{
	struct engine_worker *worker = &engine->workers[index];
	worker->engine = engine;
	worker->index = index;
	worker->slot_capacity = ENGINE_SLOTS_MAX;
	worker->slots = calloc(worker->slot_capacity, sizeof(struct engine_slot));
	worker->buffer_capacity = ENGINE_BATCH_BUFFERS_MAX;
	worker->buffers = calloc((size_t)worker->buffer_capacity * NETIO_BATCH_MAX,
				 sizeof(struct ledger_result));
	worker->buffer_free = calloc(worker->buffer_capacity, sizeof(uint32_t));
	if (!worker->buffers || !worker->buffer_free)
		return fail(error, error_size, -ENOMEM, "worker %u: out of memory", index);
	for (uint32_t i = 0; i < worker->buffer_capacity; i++)
		worker->buffer_free[i] = worker->buffer_capacity - 1 - i;
	worker->buffer_free_count = worker->buffer_capacity;
	worker->stages = calloc(engine->shard_count, sizeof(struct engine_stage));
	worker->tx_buffers = aligned_alloc(64, (size_t)NETIO_BURST_MAX * NETIO_REPLY_MAX);
	if (!worker->slots || !worker->stages || !worker->tx_buffers)
		return fail(error, error_size, -ENOMEM, "worker %u: out of memory", index);
	for (uint32_t i = 0; i < worker->slot_capacity; i++)
		worker->slots[i].next_free = i + 1 < worker->slot_capacity ? i + 1 : ENGINE_SLOT_NONE;
	worker->slot_free_head = 0;
	struct netio_transport_config transport_config = {
		.bind_host = engine->config.listen_host,
		.port = port,
		.worker_index = index,
		.worker_count = engine->worker_count,
		.backend_args = engine->config.dpdk_args,
		.wake_fd = engine->workers_waker[index].eventfd,
	};
	const struct netio_transport_ops *ops = engine->config.transport == ENGINE_TRANSPORT_DPDK ? &netio_transport_dpdk : &netio_transport_udp;
	int result = netio_transport_open(ops, &transport_config, &worker->transport);
	if (result != 0)
		return fail(error, error_size, result, "worker %u: cannot listen on %s:%u (%s): %s",
			    index, engine->config.listen_host, port, ops->name, strerror(-result));
	return 0;
}

struct shard_opening {
	pthread_t thread;
	struct engine *engine;
	const struct journal_meta *meta;
	uint32_t index;
	int result;
	char error[512];
};

static void *open_shard_thread(void *argument)
{
	struct shard_opening *opening = argument;
	opening->result = open_shard(opening->engine, opening->meta, opening->index, opening->error,
				     sizeof(opening->error));
	return NULL;
}

/* Shards recover in parallel: each is independent until credits flow. */
static int open_shards(struct engine *engine, const struct journal_meta *meta, char *error,
		       size_t error_size)
{
	struct shard_opening *openings = calloc(engine->shard_count, sizeof(*openings));
	if (openings == NULL)
		return fail(error, error_size, -ENOMEM, "out of memory");
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		openings[s] = (struct shard_opening){ .engine = engine, .meta = meta, .index = s };
		if (pthread_create(&openings[s].thread, NULL, open_shard_thread, &openings[s]) != 0)
			open_shard_thread(&openings[s]), openings[s].thread = 0;
	}
	int result = 0;
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		if (openings[s].thread != 0)
			pthread_join(openings[s].thread, NULL);
		if (openings[s].result != 0 && result == 0) {
			result = openings[s].result;
			snprintf(error, error_size, "%s", openings[s].error);
		}
	}
	free(openings);
	return result;
}

/* A shard's window forgot an id: its claim goes, and another shard may use
 * the id from now on, but no request at or before the evicted timestamp. */
static void shard_evicted(void *context, const struct ledger_transfer_info *evicted,
			  uint64_t now_us)
{
	struct engine_shard *shard = context;
	(void)now_us;
	if (!ledger_kind_remembered(evicted->kind))
		return; /* a CREDIT: the payer's shard holds the id */
	engine_claims_note_evicted(shard->engine->claims, evicted->timestamp_us);
	/* Releases nothing only for an id a start-up found on two shards. */
	engine_claims_release(shard->engine->claims, evicted->id, shard->index);
}

struct claim_rebuild {
	struct engine *engine;
	uint32_t shard;
	uint64_t conflicts;
	uint64_t full;
};

static int claim_recovered(const struct ledger_transfer_info *info, void *context)
{
	struct claim_rebuild *rebuild = context;
	if (!ledger_kind_remembered(info->kind))
		return 0;
	uint32_t owner;
	enum engine_claim claim = engine_claims_take(rebuild->engine->claims, info->id,
						     rebuild->shard, &owner);
	if (claim == ENGINE_CLAIM_OTHER || claim == ENGINE_CLAIM_MINE) {
		if (rebuild->conflicts++ == 0)
			engine_log("error", "id %llu is remembered by shards %u and %u: decided twice "
				   "before this version; payswitch audit reports it",
				   (unsigned long long)info->id, owner, rebuild->shard);
	}
	rebuild->full += claim == ENGINE_CLAIM_FULL;
	return 0;
}

/* One id space across shards (claims.h): built from the recovered windows. */
static int create_claims(struct engine *engine, char *error, size_t error_size)
{
	if (engine->shard_count < 2)
		return 0;
	uint64_t capacity = 0;
	for (uint32_t s = 0; s < engine->shard_count; s++)
		capacity += ledger_config_get(engine->shards[s].ledger)->transfers_max + ENGINE_APPLY_MAX;
	int result = 0;
	engine->claims = engine_claims_create(capacity, &result);
	if (engine->claims == NULL)
		return fail(error, error_size, result, "id claims for %llu transfers: %s",
			    (unsigned long long)capacity, strerror(-result));
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		struct engine_shard *shard = &engine->shards[s];
		struct claim_rebuild rebuild = { .engine = engine, .shard = s };
		ledger_transfer_foreach(shard->ledger, claim_recovered, &rebuild);
		if (rebuild.full != 0)
			return fail(error, error_size, -ENOSPC, "id claims: %llu ids found no room",
				    (unsigned long long)rebuild.full);
		engine_claims_note_evicted(engine->claims, ledger_evicted_watermark(shard->ledger));
		ledger_set_evict_hook(shard->ledger, shard_evicted, shard);
	}
	return 0;
}

/* Reads the client keys of the data dir into a new key ring. */
static struct netio_keyring *clients_read(const char *data_dir, char *error, size_t error_size)
{
	struct netio_principal *principals = NULL;
	uint32_t count = 0;
	if (engine_clients_load(data_dir, &principals, &count, error, error_size) != 0)
		return NULL;
	struct netio_keyring *ring = netio_keyring_create(principals, count);
	if (ring == NULL)
		fail(error, error_size, -errno, "%s/clients: %s", data_dir,
		     errno == EEXIST ? "a key id appears twice" : "out of memory");
	engine_clients_free(principals, count);
	return ring;
}

static int create_auth(struct engine *engine, char *error, size_t error_size)
{
	const struct engine_config *config = &engine->config;
	engine->authenticate = !config->insecure_no_auth;
	pthread_mutex_init(&engine->reload_lock, NULL);
	struct netio_keyring *ring = clients_read(config->data_dir, error, error_size);
	if (ring == NULL)
		return -EINVAL;
	atomic_store(&engine->keyring, ring);
	engine->replay = netio_replay_create(config->auth_sessions,
					     (uint64_t)config->auth_max_age_ms * 1000u);
	if (engine->replay == NULL)
		return fail(error, error_size, -ENOMEM, "out of memory for %u replay windows",
			    config->auth_sessions);
	if (!engine->authenticate)
		engine_log("warn", "--insecure-no-auth: every datagram is let in, keyed or not, "
			   "and no role is checked; anyone who can reach %s:%u can move money",
			   config->listen_host, config->listen_port);
	else if (netio_keyring_count(ring) == 0)
		engine_log("warn", "no client keys in %s/clients: every datagram will be refused; "
			   "add keys with 'payswitch client add NAME --role ROLE --data-dir %s'",
			   config->data_dir, config->data_dir);
	else
		engine_log("info", "authentication on: %u client keys, %llu replay windows",
			   netio_keyring_count(ring),
			   (unsigned long long)netio_replay_capacity(engine->replay));
	return 0;
}

/* Waits (bounded) until every worker has started a loop after the key ring
 * was swapped, so none can still hold a principal of the old one. */
static bool workers_quiescent(struct engine *engine)
{
	uint64_t seen[ENGINE_WORKERS_MAX];
	assert(engine->worker_count <= ENGINE_WORKERS_MAX);
	for (uint32_t w = 0; w < engine->worker_count; w++)
		seen[w] = atomic_load_explicit(&engine->workers[w].loops, memory_order_acquire);
	for (uint32_t turn = 0; turn < 2000; turn++) {
		uint32_t passed = 0;
		for (uint32_t w = 0; w < engine->worker_count; w++)
			passed += atomic_load_explicit(&engine->workers[w].loops,
						       memory_order_acquire) >= seen[w] + 2;
		if (passed == engine->worker_count)
			return true;
		usleep(1000);
	}
	return false;
}

int engine_reload_clients(struct engine *engine, char *error, size_t error_size)
{
	assert(engine != NULL);
	pthread_mutex_lock(&engine->reload_lock);
	int result = 0;
	struct netio_keyring *ring = clients_read(engine->config.data_dir, error, error_size);
	if (ring == NULL) {
		result = -EINVAL;
		goto out;
	}
	struct netio_keyring *old = atomic_exchange_explicit(&engine->keyring, ring,
							      memory_order_acq_rel);
	/* A worker that never passes a quiescent point (stopping) keeps the
	 * old ring alive: leaked, never freed under a reader. */
	if (workers_quiescent(engine))
		netio_keyring_destroy(old);
	engine_log("info", "client keys reloaded: %u keys", netio_keyring_count(ring));
out:
	pthread_mutex_unlock(&engine->reload_lock);
	return result;
}

struct engine *engine_create(const struct engine_config *config, char *error, size_t error_size)
{
	assert(config != NULL);
	assert(error != NULL);
	assert(error_size > 0);
	struct engine *engine = calloc(1, sizeof(*engine));
	if (engine == NULL) {
		fail(error, error_size, -ENOMEM, "out of memory");
		return NULL;
	}
	engine->config = *config;
	journal_set_log(journal_log_line, NULL);
	struct journal_meta meta;
	struct journal_error journal_error = { 0 };
	int result = journal_meta_read(config->data_dir, &meta, &journal_error);
	if (result < 0) {
		fail(error, error_size, result,
		     "%s is not a payswitch data dir (%s); create it with: payswitch format %s",
		     config->data_dir, journal_error.text, config->data_dir);
		goto failed;
	}
	/* journal_meta_read() refused any other count; the config parser likewise. */
	assert(meta.shard_count >= 1);
	assert(meta.shard_count <= JOURNAL_SHARDS_MAX);
	assert(config->workers >= 1);
	engine->shard_count = meta.shard_count;
	engine->worker_count = config->workers;
	engine->shards = calloc(engine->shard_count, sizeof(struct engine_shard));
	engine->workers = calloc(engine->worker_count, sizeof(struct engine_worker));
	if (!engine->shards || !engine->workers ||
	    create_wakers(&engine->shards_waker, engine->shard_count) != 0 ||
	    create_wakers(&engine->workers_waker, engine->worker_count) != 0) {
		fail(error, error_size, -ENOMEM, "out of memory or file descriptors");
		goto failed;
	}
	if (create_rings(engine, error, error_size) != 0)
		goto failed;
	if (open_shards(engine, &meta, error, error_size) != 0)
		goto failed;
	if (create_claims(engine, error, error_size) != 0)
		goto failed;
	if (engine_recover_credits(engine, error, error_size) != 0)
		goto failed;
	if (create_auth(engine, error, error_size) != 0)
		goto failed;
	uint16_t port = config->listen_port;
	for (uint32_t w = 0; w < engine->worker_count; w++) {
		if (open_worker(engine, w, port, error, error_size) != 0)
			goto failed;
		port = netio_transport_port(engine->workers[w].transport);
	}
	engine->config.listen_port = port;
	return engine;
failed:
	engine_destroy(engine);
	return NULL;
}

static void pin(pthread_t thread, const struct engine_config *config, uint32_t index)
{
	if (index >= config->cpu_count || config->cpus[index] < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(config->cpus[index], &set);
	int result = pthread_setaffinity_np(thread, sizeof(set), &set);
	if (result != 0)
		engine_log("warn", "cannot pin thread %u to CPU %d: %s", index, config->cpus[index],
			   strerror(result));
}

int engine_start(struct engine *engine, char *error, size_t error_size)
{
	engine->started_us = engine_monotonic_us();
	if (engine->config.metrics_port != 0) {
		int result = 0;
		engine->metrics = metrics_server_start(engine->config.metrics_host,
						       engine->config.metrics_port,
						       engine_metrics_render, engine, &result);
		if (engine->metrics == NULL)
			return fail(error, error_size, result, "metrics on %s:%u: %s",
				    engine->config.metrics_host, engine->config.metrics_port,
				    strerror(-result));
	}
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		struct engine_shard *shard = &engine->shards[s];
		int result = pthread_create(&shard->thread, NULL, engine_shard_main, shard);
		if (result != 0)
			return fail(error, error_size, -result, "shard thread: %s", strerror(result));
		shard->thread_started = true;
		pin(shard->thread, &engine->config, engine->worker_count + s);
		result = engine_snapshotter_start(shard);
		if (result != 0)
			return fail(error, error_size, result, "snapshot thread: %s", strerror(-result));
	}
	for (uint32_t w = 0; w < engine->worker_count; w++) {
		struct engine_worker *worker = &engine->workers[w];
		int result = pthread_create(&worker->thread, NULL, engine_worker_main, worker);
		if (result != 0)
			return fail(error, error_size, -result, "worker thread: %s", strerror(result));
		worker->thread_started = true;
		pin(worker->thread, &engine->config, w);
	}
	return 0;
}

void engine_request_stop(struct engine *engine)
{
	atomic_store(&engine->stop_intake, true);
	for (uint32_t s = 0; s < engine->shard_count; s++)
		engine_wake(&engine->shards_waker[s]);
}

static int write_snapshots(struct engine *engine)
{
	int status = 0;
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		struct engine_shard *shard = &engine->shards[s];
		if (shard->failed)
			continue;
		struct journal_error journal_error = { 0 };
		uint64_t started = engine_monotonic_us();
		int result = engine_snapshotter_write_now(shard, &journal_error);
		if (result < 0) {
			engine_log("error", "shard %u: snapshot failed: %s", s, journal_error.text);
			status = result;
			continue;
		}
		engine_log("info", "shard %u: snapshot at sequence %llu written in %.1f ms", s,
			   (unsigned long long)ledger_sequence(shard->ledger),
			   (double)(engine_monotonic_us() - started) / 1000.0);
	}
	return status;
}

int engine_join(struct engine *engine)
{
	int status = 0;
	for (uint32_t s = 0; s < engine->shard_count; s++) {
		struct engine_shard *shard = &engine->shards[s];
		if (shard->thread_started)
			pthread_join(shard->thread, NULL);
		shard->thread_started = false;
		int closed = journal_writer_close(shard->journal);
		shard->journal = NULL;
		if (closed < 0) {
			engine_log("error", "shard %u: final journal sync failed: %s", s,
				   strerror(-closed));
			shard->failed = true;
			status = closed;
		}
		if (shard->failed)
			status = status ? status : -EIO;
		/* A capture in the writer's hands is published only if durable. */
		engine_snapshotter_stop(shard, closed == 0 && !shard->failed);
	}
	atomic_store(&engine->stop, true);
	for (uint32_t w = 0; w < engine->worker_count; w++) {
		struct engine_worker *worker = &engine->workers[w];
		if (worker->thread_started)
			pthread_join(worker->thread, NULL);
		worker->thread_started = false;
	}
	if (engine->config.snapshot_on_stop && status == 0)
		status = write_snapshots(engine);
	return status;
}

void engine_destroy(struct engine *engine)
{
	if (engine == NULL)
		return;
	metrics_server_stop(engine->metrics);
	engine_claims_destroy(engine->claims);
	netio_keyring_destroy(atomic_load(&engine->keyring));
	netio_replay_destroy(engine->replay);
	for (uint32_t w = 0; engine->workers && w < engine->worker_count; w++) {
		struct engine_worker *worker = &engine->workers[w];
		netio_transport_close(worker->transport);
		free(worker->slots);
		free(worker->buffers);
		free(worker->buffer_free);
		free(worker->stages);
		free(worker->tx_buffers);
	}
	for (uint32_t s = 0; engine->shards && s < engine->shard_count; s++) {
		struct engine_shard *shard = &engine->shards[s];
		if (shard->journal != NULL)
			journal_writer_close(shard->journal);
		engine_snapshotter_stop(shard, false);
		journal_snapshot_image_free(&shard->snapshotter.image);
		ledger_destroy(shard->ledger);
		free(shard->pending);
		free(shard->outboxes);
		free(shard->backlog);
	}
	uint32_t pairs = engine->shard_count * engine->worker_count;
	for (uint32_t i = 0; engine->rings_in && i < pairs; i++) {
		engine_ring_destroy(&engine->rings_in[i]);
		engine_ring_destroy(&engine->rings_reply[i]);
	}
	for (uint32_t i = 0; engine->rings_credit && i < engine->shard_count * engine->shard_count; i++)
		engine_ring_destroy(&engine->rings_credit[i]);
	free(engine->rings_in);
	free(engine->rings_reply);
	free(engine->rings_credit);
	destroy_wakers(engine->shards_waker, engine->shard_count);
	destroy_wakers(engine->workers_waker, engine->worker_count);
	free(engine->shards);
	free(engine->workers);
	free(engine);
}
