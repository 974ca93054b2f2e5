/*
 * snapshot.c — snapshot-<sequence>.snap files: a 64-byte header then the
 * ledger's state as ledger_state_save() streams it. Written to a .tmp file,
 * synced, renamed, and the directory synced; verified (header hash, config,
 * body hash) in a first pass before ledger_state_load() sees a byte of it.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "journal_internal.h"

#define SNAPSHOT_BUFFER_BYTES (8u << 20)

struct snapshot_stream {
	int fd;
	uint8_t *buffer;
	size_t used;       /* write: bytes buffered; read: bytes consumed */
	size_t valid;      /* read: bytes in the buffer */
	uint64_t total;    /* body bytes through the stream */
	uint64_t limit;    /* read: body bytes in the file */
	XXH3_state_t *hash;
	int error;
};

/* 0, or -ENAMETOOLONG. ".snap.tmp" is the longest name the program writes
 * (JOURNAL_FILE_NAME_BYTES_MAX counts it). */
static int snapshot_path(char *path, size_t size, const char *dir, uint32_t shard,
			 uint64_t sequence, const char *suffix)
{
	assert(path != NULL);
	assert(size > 0);
	assert(dir != NULL);
	assert(suffix != NULL);
	return journal_path_format(path, size, "%s/shard-%03u/snapshot-%" PRIu64 ".snap%s", dir,
				   shard, sequence, suffix);
}

static uint64_t config_hash(const struct ledger_config *config)
{
	struct ledger_config copy = *config;
	copy.shard_index = 0; /* the header carries the shard itself */
	return XXH3_64bits(&copy, sizeof(copy));
}

static int stream_flush(struct snapshot_stream *stream)
{
	assert(stream->used <= SNAPSHOT_BUFFER_BYTES);
	int result = journal_write_full(stream->fd, stream->buffer, stream->used);
	stream->used = 0;
	return result;
}

static int stream_write(void *context, const void *data, size_t size)
{
	struct snapshot_stream *stream = context;
	assert(stream != NULL);
	assert(data != NULL);
	assert(stream->used < SNAPSHOT_BUFFER_BYTES); /* a full buffer was flushed */
	XXH3_64bits_update(stream->hash, data, size);
	stream->total += size;
	const uint8_t *at = data;
	while (size > 0) {
		size_t room = SNAPSHOT_BUFFER_BYTES - stream->used;
		size_t part = size < room ? size : room;
		memcpy(stream->buffer + stream->used, at, part);
		stream->used += part;
		at += part;
		size -= part;
		assert(stream->used <= SNAPSHOT_BUFFER_BYTES);
		if (stream->used == SNAPSHOT_BUFFER_BYTES) {
			int result = stream_flush(stream);
			if (result != 0)
				return result;
		}
	}
	return 0;
}

static int stream_read(void *context, void *data, size_t size)
{
	struct snapshot_stream *stream = context;
	if (stream->total + size > stream->limit)
		return -EBADMSG; /* the ledger wants more than the body holds */
	uint8_t *at = data;
	while (size > 0) {
		if (stream->used == stream->valid) {
			ssize_t done = read(stream->fd, stream->buffer, SNAPSHOT_BUFFER_BYTES);
			if (done < 0 && errno == EINTR)
				continue;
			if (done <= 0)
				return done < 0 ? -errno : -EBADMSG;
			stream->used = 0;
			stream->valid = (size_t)done;
		}
		size_t part = stream->valid - stream->used;
		if (part > size)
			part = size;
		memcpy(at, stream->buffer + stream->used, part);
		stream->used += part;
		stream->total += part;
		at += part;
		size -= part;
		assert(stream->used <= stream->valid);
	}
	assert(stream->total <= stream->limit); /* never reads past the body */
	return 0;
}

int journal_snapshot_prune(const char *dir, uint32_t shard, uint32_t retain)
{
	assert(retain >= 1); /* the newest snapshot is never deleted here */
	uint64_t *sequences;
	int count = journal_snapshots_list(dir, shard, &sequences);
	if (count < 0)
		return count;
	char path[JOURNAL_PATH_MAX];
	for (int i = (int)retain; i < count; i++) {
		if (snapshot_path(path, sizeof(path), dir, shard, sequences[i], "") != 0)
			journal_log("journal: %s/shard-%03u: snapshot %" PRIu64 ": path too long", dir,
				    shard, sequences[i]);
		else if (unlink(path) != 0)
			journal_log("journal: %s: unlink: %s", path, strerror(errno));
	}
	free(sequences);
	return 0;
}

static int snapshot_prune(const char *dir, uint32_t shard)
{
	return journal_snapshot_prune(dir, shard, JOURNAL_SNAPSHOTS_KEPT);
}

static int snapshot_stream_body(struct snapshot_stream *stream, const struct ledger *ledger,
				struct journal_snapshot_header *header)
{
	int result = journal_pwrite_full(stream->fd, header, sizeof(*header), 0);
	if (result == 0 && lseek(stream->fd, sizeof(*header), SEEK_SET) < 0)
		result = -errno;
	if (result == 0)
		result = ledger_state_save(ledger, stream_write, stream);
	if (result == 0)
		result = stream_flush(stream);
	if (result != 0)
		return result;
	assert(stream->used == 0); /* everything hashed reached the file */
	assert(stream->total > 0); /* the state has a header at least */
	header->body_bytes = stream->total;
	header->body_hash = XXH3_64bits_digest(stream->hash);
	header->header_hash = XXH3_64bits(header, offsetof(struct journal_snapshot_header, header_hash));
	result = journal_pwrite_full(stream->fd, header, sizeof(*header), 0);
	if (result == 0 && fsync(stream->fd) != 0)
		result = -errno;
	return result;
}

int journal_snapshot_write(const char *dir, uint32_t shard, const struct ledger *ledger,
			   struct journal_error *error)
{
	assert(dir != NULL);
	assert(ledger != NULL);
	const struct ledger_config *config = ledger_config_get(ledger);
	assert(shard == config->shard_index); /* a shard's state goes to its own directory */
	assert(config->shard_count <= JOURNAL_SHARDS_MAX);
	struct journal_snapshot_header header = {.magic = JOURNAL_SNAPSHOT_MAGIC,
		.version = JOURNAL_FORMAT_VERSION, .header_bytes = sizeof(header), .shard = shard,
		.shard_count = config->shard_count, .sequence = ledger_sequence(ledger),
		.now_us = ledger_now(ledger), .config_hash = config_hash(config)};
	char path[JOURNAL_PATH_MAX], temporary[JOURNAL_PATH_MAX], shard_dir[JOURNAL_PATH_MAX];
	if (snapshot_path(path, sizeof(path), dir, shard, header.sequence, "") != 0 ||
	    snapshot_path(temporary, sizeof(temporary), dir, shard, header.sequence, ".tmp") != 0 ||
	    journal_shard_dir(shard_dir, sizeof(shard_dir), dir, shard) != 0)
		return journal_error_set(error, -ENAMETOOLONG, "%s/shard-%03u: snapshot %" PRIu64
					 ": path longer than %u bytes", dir, shard,
					 header.sequence, JOURNAL_PATH_MAX - 1);
	struct snapshot_stream stream = {.fd = -1};
	stream.buffer = malloc(SNAPSHOT_BUFFER_BYTES);
	stream.hash = XXH3_createState();
	int result = -ENOMEM;
	if (stream.buffer == NULL || stream.hash == NULL)
		goto out;
	XXH3_64bits_reset(stream.hash);
	stream.fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	result = stream.fd < 0 ? -errno : snapshot_stream_body(&stream, ledger, &header);
	if (stream.fd >= 0)
		close(stream.fd);
	if (result == 0 && rename(temporary, path) != 0)
		result = -errno;
	if (result == 0)
		result = journal_fsync_dir(shard_dir);
	if (result == 0)
		result = snapshot_prune(dir, shard);
	else
		unlink(temporary);
out:
	free(stream.buffer);
	XXH3_freeState(stream.hash);
	if (result != 0)
		return journal_error_set(error, result, "%s: snapshot: %s", path, strerror(-result));
	return 0;
}

/* Pass 1: the header and the body hash. Leaves the header in *header. */
static int snapshot_verify(int fd, const char *path, uint32_t shard,
			   const struct ledger_config *config, struct snapshot_stream *stream,
			   struct journal_snapshot_header *header, char *why, size_t why_bytes)
{
	struct stat status;
	if (fstat(fd, &status) != 0 || journal_pread_full(fd, header, sizeof(*header), 0) != 0) {
		snprintf(why, why_bytes, "%s: cannot read header", path);
		return -EBADMSG;
	}
	uint64_t hash = XXH3_64bits(header, offsetof(struct journal_snapshot_header, header_hash));
	if (header->magic != JOURNAL_SNAPSHOT_MAGIC || header->version != JOURNAL_FORMAT_VERSION ||
	    hash != header->header_hash || header->shard != shard ||
	    header->config_hash != config_hash(config) ||
	    header->body_bytes != (uint64_t)status.st_size - sizeof(*header)) {
		snprintf(why, why_bytes, "%s: offset 0: header invalid (magic, version, hash %016"
			 PRIx64 " vs %016" PRIx64 ", shard, config or size)", path,
			 header->header_hash, hash);
		return -EBADMSG;
	}
	XXH3_64bits_reset(stream->hash);
	for (uint64_t offset = sizeof(*header); offset < (uint64_t)status.st_size;) {
		uint64_t part = (uint64_t)status.st_size - offset;
		if (part > SNAPSHOT_BUFFER_BYTES)
			part = SNAPSHOT_BUFFER_BYTES;
		if (journal_pread_full(fd, stream->buffer, part, offset) != 0) {
			snprintf(why, why_bytes, "%s: offset %" PRIu64 ": read failed", path, offset);
			return -EBADMSG;
		}
		XXH3_64bits_update(stream->hash, stream->buffer, part);
		offset += part;
	}
	hash = XXH3_64bits_digest(stream->hash);
	if (hash != header->body_hash) {
		snprintf(why, why_bytes, "%s: body hash expected %016" PRIx64 ", found %016" PRIx64,
			 path, header->body_hash, hash);
		return -EBADMSG;
	}
	return 0;
}

/* Pass 2: the state itself. */
static int snapshot_load_body(int fd, struct snapshot_stream *stream, struct ledger *ledger,
			      const struct journal_snapshot_header *header,
			      struct ledger_violation *violation)
{
	if (lseek(fd, sizeof(*header), SEEK_SET) < 0)
		return -errno;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	stream->fd = fd;
	stream->used = stream->valid = 0;
	stream->total = 0;
	stream->limit = header->body_bytes;
	assert(ledger_sequence(ledger) == 0); /* only into a fresh ledger */
	int result = ledger_state_load(ledger, stream_read, stream, violation);
	assert(stream->total <= stream->limit);
	if (result == 0 && stream->total != header->body_bytes)
		result = -EBADMSG, snprintf(violation->text, sizeof(violation->text),
					    "the body holds more than the state");
	if (result == 0 && (ledger_sequence(ledger) != header->sequence ||
			    ledger_now(ledger) != header->now_us))
		result = -EBADMSG, snprintf(violation->text, sizeof(violation->text),
					    "sequence or time differ from the header's");
	return result;
}

int journal_snapshot_load(const char *dir, uint32_t shard, struct ledger *ledger,
			  uint64_t max_sequence, uint64_t *sequence, struct journal_error *error)
{
	assert(dir != NULL);
	assert(ledger != NULL);
	assert(sequence != NULL);
	uint64_t *sequences;
	*sequence = 0;
	int count = journal_snapshots_list(dir, shard, &sequences);
	if (count < 0)
		return journal_error_set(error, count, "%s/shard-%03u: list: %s", dir, shard,
					 strerror(-count));
	struct snapshot_stream stream = {.fd = -1};
	stream.buffer = malloc(SNAPSHOT_BUFFER_BYTES);
	stream.hash = XXH3_createState();
	int result = stream.buffer && stream.hash ? 0 : -ENOMEM;
	char path[JOURNAL_PATH_MAX], why[JOURNAL_ERROR_TEXT_BYTES];
	for (int i = 0; result == 0 && i < count; i++) {
		if (snapshot_path(path, sizeof(path), dir, shard, sequences[i], "") != 0) {
			result = journal_error_set(error, -ENAMETOOLONG, "%s/shard-%03u: snapshot %"
						   PRIu64 ": path too long", dir, shard, sequences[i]);
			break;
		}
		if (sequences[i] > max_sequence) {
			journal_log("journal: %s is ahead of the journal (last sequence %" PRIu64
				    "): skipped", path, max_sequence);
			continue;
		}
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct journal_snapshot_header header;
		if (fd < 0 || snapshot_verify(fd, path, shard, ledger_config_get(ledger), &stream,
					      &header, why, sizeof(why)) != 0) {
			if (fd < 0)
				snprintf(why, sizeof(why), "%s: open: %s", path, strerror(errno));
			journal_log("journal: snapshot rejected, falling back to an older one: %s", why);
			if (fd >= 0)
				close(fd);
			continue;
		}
		struct ledger_violation violation = { .text = "" };
		result = snapshot_load_body(fd, &stream, ledger, &header, &violation);
		close(fd);
		if (result == -EPROTONOSUPPORT) {
			/* Written by another version: the journal still holds it all. */
			journal_log("journal: %s: %s: falling back to an older snapshot or the"
				    " journal from genesis", path, violation.text);
			result = 0;
			continue;
		}
		if (result != 0) {
			/* The checksums held, so the state itself is wrong: loud, not skipped. */
			journal_error_set(error, result, "%s: offset %" PRIu64 " (end of the record "
					  "refused): load: %s%s%s", path,
					  (uint64_t)sizeof(header) + stream.total, strerror(-result),
					  violation.text[0] ? ": " : "", violation.text);
			break;
		}
		/* Postcondition: the state is the header's (snapshot_load_body checked). */
		assert(ledger_sequence(ledger) == header.sequence);
		assert(ledger_now(ledger) == header.now_us);
		*sequence = header.sequence;
		result = 1;
	}
	if (result == -ENOMEM)
		journal_error_set(error, result, "snapshot: out of memory");
	free(sequences);
	free(stream.buffer);
	XXH3_freeState(stream.hash);
	return result;
}

/* ---- online snapshots: capture in memory, store and publish elsewhere ---- */

static int image_write(void *context, const void *data, size_t size)
{
	struct journal_snapshot_image *image = context;
	assert(image->body_bytes <= image->capacity_bytes);
	if (image->body_bytes + size > image->capacity_bytes) {
		/* Grows by half again: a state of B bytes costs O(log B) copies once,
		 * then the buffer is kept for every later capture. */
		uint64_t capacity = image->capacity_bytes ? image->capacity_bytes : 1u << 20;
		while (capacity < image->body_bytes + size)
			capacity += capacity / 2;
		uint8_t *grown = realloc(image->body, capacity);
		if (grown == NULL)
			return -ENOMEM;
		image->body = grown;
		image->capacity_bytes = capacity;
	}
	memcpy(image->body + image->body_bytes, data, size);
	image->body_bytes += size;
	return 0;
}

int journal_snapshot_capture(const struct ledger *ledger, struct journal_snapshot_image *image)
{
	assert(ledger != NULL);
	assert(image != NULL);
	const struct ledger_config *config = ledger_config_get(ledger);
	assert(config->shard_count <= JOURNAL_SHARDS_MAX);
	image->body_bytes = 0;
	image->shard = config->shard_index;
	image->shard_count = config->shard_count;
	image->sequence = ledger_sequence(ledger);
	image->now_us = ledger_now(ledger);
	image->config_hash = config_hash(config);
	int result = ledger_state_save(ledger, image_write, image);
	assert(result != 0 || image->body_bytes > 0); /* the state has a header at least */
	return result;
}

void journal_snapshot_image_free(struct journal_snapshot_image *image)
{
	if (image == NULL)
		return;
	free(image->body);
	image->body = NULL;
	image->body_bytes = image->capacity_bytes = 0;
}

static int image_paths(const char *dir, const struct journal_snapshot_image *image, char *path,
		       char *temporary, char *shard_dir, struct journal_error *error)
{
	if (snapshot_path(path, JOURNAL_PATH_MAX, dir, image->shard, image->sequence, "") != 0 ||
	    snapshot_path(temporary, JOURNAL_PATH_MAX, dir, image->shard, image->sequence,
			  ".tmp") != 0 ||
	    journal_shard_dir(shard_dir, JOURNAL_PATH_MAX, dir, image->shard) != 0)
		return journal_error_set(error, -ENAMETOOLONG, "%s/shard-%03u: snapshot %" PRIu64
					 ": path longer than %u bytes", dir, image->shard,
					 image->sequence, JOURNAL_PATH_MAX - 1);
	return 0;
}

int journal_snapshot_store(const char *dir, const struct journal_snapshot_image *image,
			   struct journal_error *error)
{
	assert(dir != NULL);
	assert(image != NULL);
	assert(image->body_bytes > 0); /* captured */
	char path[JOURNAL_PATH_MAX], temporary[JOURNAL_PATH_MAX], shard_dir[JOURNAL_PATH_MAX];
	int result = image_paths(dir, image, path, temporary, shard_dir, error);
	if (result != 0)
		return result;
	struct journal_snapshot_header header = {.magic = JOURNAL_SNAPSHOT_MAGIC,
		.version = JOURNAL_FORMAT_VERSION, .header_bytes = sizeof(header),
		.shard = image->shard, .shard_count = image->shard_count,
		.sequence = image->sequence, .now_us = image->now_us,
		.body_bytes = image->body_bytes, .config_hash = image->config_hash};
	header.body_hash = XXH3_64bits(image->body, image->body_bytes);
	header.header_hash = XXH3_64bits(&header, offsetof(struct journal_snapshot_header, header_hash));
	int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return journal_error_set(error, -errno, "%s: create: %s", temporary, strerror(errno));
	result = journal_write_full(fd, &header, sizeof(header));
	if (result == 0)
		result = journal_write_full(fd, image->body, image->body_bytes);
	if (result == 0 && fsync(fd) != 0)
		result = -errno;
	close(fd);
	if (result != 0) {
		unlink(temporary);
		return journal_error_set(error, result, "%s: write: %s", temporary, strerror(-result));
	}
	return 0;
}

int journal_snapshot_publish(const char *dir, const struct journal_snapshot_image *image,
			     uint32_t retain, struct journal_error *error)
{
	assert(retain >= 1);
	char path[JOURNAL_PATH_MAX], temporary[JOURNAL_PATH_MAX], shard_dir[JOURNAL_PATH_MAX];
	int result = image_paths(dir, image, path, temporary, shard_dir, error);
	if (result != 0)
		return result;
	if (rename(temporary, path) != 0)
		return journal_error_set(error, -errno, "%s: rename: %s", temporary, strerror(errno));
	result = journal_fsync_dir(shard_dir);
	if (result == 0)
		result = journal_snapshot_prune(dir, image->shard, retain);
	if (result != 0)
		return journal_error_set(error, result, "%s: publish: %s", path, strerror(-result));
	return 0;
}

int journal_snapshot_clean_temp(const char *dir, uint32_t shard)
{
	char shard_dir[JOURNAL_PATH_MAX], path[JOURNAL_PATH_MAX];
	if (journal_shard_dir(shard_dir, sizeof(shard_dir), dir, shard) != 0)
		return -ENAMETOOLONG;
	DIR *handle = opendir(shard_dir);
	if (handle == NULL)
		return errno == ENOENT ? 0 : -errno;
	int removed = 0;
	const struct dirent *entry;
	while ((entry = readdir(handle)) != NULL) {
		size_t length = strlen(entry->d_name);
		const char *suffix = ".snap.tmp";
		if (strncmp(entry->d_name, "snapshot-", 9) != 0 || length < 9 + strlen(suffix) ||
		    strcmp(entry->d_name + length - strlen(suffix), suffix) != 0)
			continue;
		if (journal_path_format(path, sizeof(path), "%s/%s", shard_dir, entry->d_name) != 0)
			continue;
		if (unlink(path) == 0) {
			removed++;
			journal_log("journal: %s: removed (a snapshot a crash cut short)", path);
		}
	}
	closedir(handle);
	if (removed > 0 && journal_fsync_dir(shard_dir) != 0)
		journal_log("journal: %s: fsync after removing temp snapshots failed", shard_dir);
	return removed;
}
