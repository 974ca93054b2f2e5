/*
 * snapshotter.c — online snapshots of a serving shard.
 *
 * Scheme (measured, engine/README.md "Snapshots while serving"): the shard's
 * thread copies its ledger's state into a memory image
 * (journal_snapshot_capture(): ledger_state_save() into a buffer, a
 * memcpy-speed pass) and hands it to this shard's writer thread; intake stops
 * only for that copy. The writer hashes the image, writes and fsyncs
 * snapshot-SEQ.snap.tmp, waits until the journal is durable up to SEQ and
 * only then renames it into place: a snapshot never holds a decision the
 * journal could lose, so recovery never meets one ahead of the journal. At
 * most one image per shard is in the writer's hands; a snapshot due
 * meanwhile waits for it.
 *
 * Cross-shard credits: recovery (recovery.c) scans every journal after its
 * snapshot for debits without their CREDIT and refused CREDITs without their
 * RETURN. That is exact only if no obligation of this shard decided at or
 * before SEQ is still open when the snapshot is captured, so with more than
 * one shard a capture waits for a quiet point of the shard: nothing pending
 * here, nothing re-sent by recovery still unsent, and no cross-shard message
 * in flight anywhere (engine->credits_in_flight counts each one from its
 * send until its receiver released it durably). Such a point comes within a
 * few group commits of light cross-shard traffic; under sustained
 * cross-shard load it may not come (counted in the log, see README).
 */
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SNAPSHOTTER_POLL_US 1000u
#define SNAPSHOTTER_QUIET_LOG_US 10000000u /* a missed quiet point is logged every 10 s */

static int error_of(struct journal_error *error, int code)
{
	if (error != NULL) {
		error->code = code;
		snprintf(error->text, sizeof(error->text), "%s", strerror(-code));
	}
	return code;
}

static uint64_t durable_of(const struct engine_shard *shard)
{
	return __atomic_load_n(&shard->stats.sequence_durable, __ATOMIC_ACQUIRE);
}

/* Writer thread: store, wait for durability, publish. */
static void snapshotter_write(struct engine_shard *shard)
{
	struct engine_snapshotter *snapshotter = &shard->snapshotter;
	const struct engine_config *config = &shard->engine->config;
	struct journal_snapshot_image *image = &snapshotter->image;
	struct journal_error error = { 0 };
	uint64_t started = engine_monotonic_us();
	int result = journal_snapshot_store(config->data_dir, image, &error);
	/* Bounded: the shard commits what it appended within group-wait-us,
	 * and a stop either makes it durable or tells us it never will be. */
	bool stopping = false;
	while (result == 0 && durable_of(shard) < image->sequence) {
		pthread_mutex_lock(&snapshotter->lock);
		stopping = snapshotter->stop;
		pthread_mutex_unlock(&snapshotter->lock);
		if (stopping && durable_of(shard) < image->sequence)
			break;
		usleep(SNAPSHOTTER_POLL_US);
	}
	if (result == 0 && durable_of(shard) >= image->sequence)
		result = journal_snapshot_publish(config->data_dir, image, config->snapshot_retain,
						  &error);
	else if (result == 0)
		result = error_of(&error, -ECANCELED);
	if (result != 0) {
		__atomic_fetch_add(&snapshotter->failures, 1, __ATOMIC_RELAXED);
		engine_log(result == -ECANCELED ? "info" : "error",
			   "shard %u: online snapshot at sequence %llu not published: %s",
			   shard->index, (unsigned long long)image->sequence,
			   result == -ECANCELED ? "its records never became durable (stop)"
						: error.text);
		return;
	}
	__atomic_fetch_add(&snapshotter->published, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&snapshotter->published_sequence, image->sequence, __ATOMIC_RELEASE);
	if (config->verbose)
		engine_log("info", "shard %u: online snapshot at sequence %llu (%llu MB) published "
			   "in %.1f ms", shard->index, (unsigned long long)image->sequence,
			   (unsigned long long)(image->body_bytes >> 20),
			   (double)(engine_monotonic_us() - started) / 1000.0);
}

static void *snapshotter_main(void *argument)
{
	struct engine_shard *shard = argument;
	struct engine_snapshotter *snapshotter = &shard->snapshotter;
	pthread_mutex_lock(&snapshotter->lock);
	for (;;) {
		while (!snapshotter->busy && !snapshotter->stop)
			pthread_cond_wait(&snapshotter->wake, &snapshotter->lock);
		if (!snapshotter->busy)
			break; /* stop, nothing handed over */
		pthread_mutex_unlock(&snapshotter->lock);
		snapshotter_write(shard);
		pthread_mutex_lock(&snapshotter->lock);
		snapshotter->busy = false;
	}
	pthread_mutex_unlock(&snapshotter->lock);
	return NULL;
}

int engine_snapshotter_start(struct engine_shard *shard)
{
	struct engine_snapshotter *snapshotter = &shard->snapshotter;
	pthread_mutex_init(&snapshotter->lock, NULL);
	pthread_cond_init(&snapshotter->wake, NULL);
	snapshotter->last_sequence = ledger_sequence(shard->ledger);
	snapshotter->last_us = engine_monotonic_us();
	const struct engine_config *config = &shard->engine->config;
	if (config->snapshot_every_records == 0 && config->snapshot_every_seconds == 0)
		return 0;
	if (shard->engine->shard_count > 1) {
		/* Shards reach their quiet points at different moments. Between a
		 * payer's snapshot and a later payee snapshot the payee may credit a
		 * transfer and then evict it from its window; recovery would then
		 * see the debit without its CREDIT and nothing to tell that it was
		 * credited, and credit it twice. Until each snapshot records which
		 * credits of every other shard it holds, several shards snapshot
		 * only on a clean stop (engine/README.md, "Snapshots"). */
		if (shard->index == 0)
			engine_log("warn", "online snapshots are off with %u shards (one shard only, "
				   "for now): snapshots are written on a clean stop",
				   shard->engine->shard_count);
		return 0;
	}
	int result = pthread_create(&snapshotter->thread, NULL, snapshotter_main, shard);
	if (result != 0)
		return -result;
	snapshotter->thread_started = true;
	return 0;
}

static bool snapshot_due(const struct engine_shard *shard, uint64_t now_us)
{
	const struct engine_snapshotter *snapshotter = &shard->snapshotter;
	const struct engine_config *config = &shard->engine->config;
	uint64_t sequence = ledger_sequence(shard->ledger);
	if (sequence == snapshotter->last_sequence)
		return false;
	if (config->snapshot_every_records != 0 &&
	    sequence - snapshotter->last_sequence >= config->snapshot_every_records)
		return true;
	return config->snapshot_every_seconds != 0 &&
	       now_us - snapshotter->last_us >= (uint64_t)config->snapshot_every_seconds * 1000000u;
}

/* With several shards: no obligation of this shard open (see the top). */
static bool quiet_point(const struct engine_shard *shard)
{
	const struct engine *engine = shard->engine;
	if (engine->shard_count < 2)
		return true;
	return shard->pending_count == 0 && shard->backlog_sent == shard->backlog_count &&
	       atomic_load(&engine->credits_in_flight) == 0;
}

void engine_snapshotter_maybe(struct engine_shard *shard)
{
	struct engine_snapshotter *snapshotter = &shard->snapshotter;
	if (!snapshotter->thread_started || shard->failed)
		return;
	uint64_t now_us = engine_monotonic_us();
	if (!snapshot_due(shard, now_us))
		return;
	pthread_mutex_lock(&snapshotter->lock);
	bool busy = snapshotter->busy;
	pthread_mutex_unlock(&snapshotter->lock);
	if (busy)
		return; /* the last one is still being written */
	if (!quiet_point(shard)) {
		if (now_us - snapshotter->last_wait_us >= SNAPSHOTTER_QUIET_LOG_US) {
			snapshotter->last_wait_us = now_us;
			engine_log("info", "shard %u: online snapshot due, waiting for a moment "
				   "without cross-shard credits in flight", shard->index);
		}
		return;
	}
	uint64_t started = engine_monotonic_us();
	int result = journal_snapshot_capture(shard->ledger, &snapshotter->image);
	uint64_t pause_us = engine_monotonic_us() - started;
	snapshotter->last_us = now_us;
	snapshotter->last_sequence = ledger_sequence(shard->ledger);
	if (result != 0) {
		__atomic_fetch_add(&snapshotter->failures, 1, __ATOMIC_RELAXED);
		engine_log("error", "shard %u: online snapshot capture failed: %s", shard->index,
			   strerror(-result));
		return;
	}
	__atomic_fetch_add(&snapshotter->captures, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&snapshotter->pause_us_last, pause_us, __ATOMIC_RELAXED);
	if (pause_us > snapshotter->pause_us_max)
		__atomic_store_n(&snapshotter->pause_us_max, pause_us, __ATOMIC_RELAXED);
	if (shard->engine->config.verbose)
		engine_log("info", "shard %u: online snapshot at sequence %llu captured: %llu MB, "
			   "intake paused %.1f ms", shard->index,
			   (unsigned long long)snapshotter->image.sequence,
			   (unsigned long long)(snapshotter->image.body_bytes >> 20),
			   (double)pause_us / 1000.0);
	pthread_mutex_lock(&snapshotter->lock);
	snapshotter->busy = true;
	pthread_cond_signal(&snapshotter->wake);
	pthread_mutex_unlock(&snapshotter->lock);
}

void engine_snapshotter_stop(struct engine_shard *shard, bool durable)
{
	struct engine_snapshotter *snapshotter = &shard->snapshotter;
	if (durable)
		__atomic_store_n(&shard->stats.sequence_durable, ledger_sequence(shard->ledger),
				 __ATOMIC_RELEASE);
	if (snapshotter->thread_started) {
		pthread_mutex_lock(&snapshotter->lock);
		snapshotter->stop = true;
		pthread_cond_signal(&snapshotter->wake);
		pthread_mutex_unlock(&snapshotter->lock);
		pthread_join(snapshotter->thread, NULL);
		snapshotter->thread_started = false;
	}
}

int engine_snapshotter_write_now(struct engine_shard *shard, struct journal_error *error)
{
	struct engine_snapshotter *snapshotter = &shard->snapshotter;
	assert(!snapshotter->thread_started); /* the image is ours */
	const struct engine_config *config = &shard->engine->config;
	int result = journal_snapshot_capture(shard->ledger, &snapshotter->image);
	if (result != 0)
		return error_of(error, result);
	result = journal_snapshot_store(config->data_dir, &snapshotter->image, error);
	if (result == 0)
		result = journal_snapshot_publish(config->data_dir, &snapshotter->image,
						  config->snapshot_retain, error);
	return result;
}
