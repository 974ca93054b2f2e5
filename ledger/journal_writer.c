/*
 * journal_writer.c — append-only journal writer of one shard, io_uring group
 * commit.
 *
 * Records are appended into the group being filled (4 KiB blocks of 42
 * records). journal_commit() seals the group's blocks (hashes, chain) and
 * submits one write — linked (IOSQE_IO_LINK) to an fdatasync of its own, or
 * O_DIRECT with RWF_DSYNC. Up to groups_in_flight_max - 1 groups are in
 * flight at once, each with its own write and sync, in no particular order
 * in the kernel: the link makes each group's sync start after its own write,
 * so when both completed that group's bytes are on disk whatever the others
 * did. Completions may arrive out of order; a group is retired, and the
 * durable sequence advanced over it, only when it and every group before it
 * completed (a contiguous prefix). So nothing after the first incomplete
 * group is ever reported durable, and a crash can tear only groups of the
 * last tail window (groups in flight x group bytes, recorded in every
 * segment header): recovery cuts from the first torn group on
 * (JOURNAL.md, "Writing and what a crash can leave").
 *
 * Preallocation: ext4's fdatasync after an append must also commit the
 * file's new size and extents (measured p50 ~615 us, p99 ~8 ms for 16 KiB)
 * while one after an overwrite of allocated, synced blocks flushes data only
 * (p50 ~300 us, p99 ~4.5 ms). So the writer keeps `preallocate_bytes` of
 * zeros written and synced ahead of the append position: one zero-fill write
 * of up to JOURNAL_PREALLOCATE_CHUNK_BYTES (a writev of one small zero buffer)
 * linked to an fdatasync, through the same ring, at most one in flight. It
 * carries no IOSQE_IO_DRAIN, and it only ever targets offsets at or beyond
 * the end of every sealed group; a group sealed later inside its range is
 * drained behind it, so data always lands on zeros, never the reverse. A
 * zero fill never goes beyond segment_bytes_max. Readers take a zero tail
 * after the last block as the end of the segment (JOURNAL.md).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "journal_internal.h"

enum group_state { GROUP_FREE = 0, GROUP_FILLING = 1, GROUP_IN_FLIGHT = 2 };

/* One zero buffer repeated by a writev makes a whole zero-fill chunk. */
#define ZERO_BUFFER_BYTES (64u << 10)
#define ZERO_IOVECS (JOURNAL_PREALLOCATE_CHUNK_BYTES / ZERO_BUFFER_BYTES)
/* user_data of the zero fill: group completions use slot << 1 | is_sync. */
#define ZERO_FILL_TAG (1ull << 62)
_Static_assert(JOURNAL_PREALLOCATE_CHUNK_BYTES % ZERO_BUFFER_BYTES == 0, "whole buffers");
_Static_assert(ZERO_BUFFER_BYTES % JOURNAL_BLOCK_BYTES == 0, "O_DIRECT alignment");

struct journal_zero_fill {
	uint8_t *buffer;                 /* ZERO_BUFFER_BYTES of zeros, 4 KiB aligned */
	struct iovec iovecs[ZERO_IOVECS];/* owned by the kernel while in flight */
	uint64_t end;                    /* zeros written (or submitted) up to here */
	uint64_t offset;                 /* of the fill in flight */
	uint32_t bytes;                  /* of the fill in flight */
	uint32_t cqes_pending;           /* 0 = none in flight, else write + sync */
	bool write_refused;              /* the fill in flight was refused for space */
	bool stopped;                    /* refused once: no more preallocation */
};

struct journal_group {
	uint8_t *buffer;          /* group_bytes_max, 4 KiB aligned */
	uint32_t blocks;          /* blocks started in the buffer */
	uint32_t records;
	uint32_t cqes_pending;
	uint32_t bytes;           /* submitted write size */
	uint64_t last_sequence;
	uint64_t offset;          /* file offset of the write */
	uint64_t submit_ns;
	int fd;
	enum group_state state;
};

struct journal_writer {
	char dir[JOURNAL_PATH_MAX];
	char path[JOURNAL_PATH_MAX];     /* current segment */
	uint32_t shard;
	uint32_t shard_count;
	struct journal_writer_options options;
	struct io_uring ring;
	bool ring_ready;
	struct journal_group groups[JOURNAL_GROUPS_IN_FLIGHT_MAX];
	uint32_t group_count;
	uint32_t filling;                /* the group being filled */
	uint32_t oldest;                 /* the oldest group in flight */
	uint32_t in_flight;
	int fd;
	uint32_t segment_index;
	uint64_t segment_end;            /* file offset after the last sealed group */
	uint64_t next_block_index;
	uint64_t previous_hash;          /* chain value of the last sealed block */
	uint64_t appended_sequence;
	uint64_t durable_sequence;
	uint64_t resumed_window_bytes;   /* tail window of the segment resumed */
	uint32_t resumed_in_flight_groups;
	struct journal_zero_fill zero;
	int error;
	char error_text[JOURNAL_ERROR_TEXT_BYTES];
	struct journal_writer_stats stats;
};

void journal_writer_options_default(struct journal_writer_options *options)
{
	memset(options, 0, sizeof(*options));
	options->segment_bytes_max = JOURNAL_SEGMENT_BYTES_DEFAULT;
	options->group_bytes_max = JOURNAL_GROUP_BYTES_DEFAULT;
	options->groups_in_flight_max = JOURNAL_GROUPS_IN_FLIGHT_DEFAULT + 1;
	options->sync = JOURNAL_SYNC_FDATASYNC;
	options->mode = JOURNAL_MODE_DURABLE;
	options->preallocate_bytes = JOURNAL_PREALLOCATE_BYTES_DEFAULT;
}

static bool options_valid(const struct journal_writer_options *options)
{
	return options->segment_bytes_max >= (64u << 10) &&
	       options->group_bytes_max >= JOURNAL_BLOCK_BYTES &&
	       options->group_bytes_max <= JOURNAL_GROUP_BYTES_MAX &&
	       options->group_bytes_max % JOURNAL_BLOCK_BYTES == 0 &&
	       options->segment_bytes_max >= JOURNAL_SEGMENT_HEADER_BYTES + options->group_bytes_max &&
	       options->groups_in_flight_max >= 2 &&
	       options->groups_in_flight_max <= JOURNAL_GROUPS_IN_FLIGHT_MAX &&
	       options->preallocate_bytes % JOURNAL_BLOCK_BYTES == 0 &&
	       options->preallocate_bytes <= JOURNAL_PREALLOCATE_BYTES_MAX &&
	       (options->sync == JOURNAL_SYNC_FDATASYNC || options->sync == JOURNAL_SYNC_DIRECT_DSYNC) &&
	       (options->mode == JOURNAL_MODE_DURABLE ||
		options->mode == JOURNAL_MODE_UNSAFE_ACK_BEFORE_SYNC);
}

/* Enters the failed state for good: nothing beyond durable_sequence is ever
 * reported durable again. The first failure's sentence is kept. */
static int writer_fail(struct journal_writer *writer, int code, const char *format, ...)
	__attribute__((format(printf, 3, 4)));
static int writer_fail(struct journal_writer *writer, int code, const char *format, ...)
{
	assert(code < 0);
	if (writer->error != 0)
		return writer->error;
	writer->error = code;
	va_list args;
	va_start(args, format);
	vsnprintf(writer->error_text, sizeof(writer->error_text), format, args);
	va_end(args);
	journal_log("journal: shard %u failed, nothing after sequence %" PRIu64
		    " will be acknowledged: %s", writer->shard, writer->durable_sequence,
		    writer->error_text);
	return code;
}

static int writer_preallocate(struct journal_writer *writer);

/* Bytes from the start of the oldest group that may be in flight to the end
 * of the data: every group in flight is at most group_bytes_max. */
static uint64_t writer_tail_window(const struct journal_writer *writer)
{
	assert(writer->options.groups_in_flight_max >= 2);
	return (uint64_t)(writer->options.groups_in_flight_max - 1) * writer->options.group_bytes_max;
}

static int segment_open_flags(const struct journal_writer *writer)
{
	return O_RDWR | O_CLOEXEC | (writer->options.sync == JOURNAL_SYNC_DIRECT_DSYNC ? O_DIRECT : 0);
}

/* Creates segment `index`: header written and synced, and the directory
 * entry synced, before any block goes in. */
static int segment_create(struct journal_writer *writer, uint32_t index, uint8_t *scratch)
{
	char path[JOURNAL_PATH_MAX], shard_dir[JOURNAL_PATH_MAX];
	if (journal_segment_path(path, sizeof(path), writer->dir, writer->shard, index) != 0 ||
	    journal_shard_dir(shard_dir, sizeof(shard_dir), writer->dir, writer->shard) != 0)
		return writer_fail(writer, -ENAMETOOLONG, "%s: segment %u: path longer than %u bytes",
				   writer->dir, index, JOURNAL_PATH_MAX - 1);
	int fd = open(path, segment_open_flags(writer) | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		return writer_fail(writer, -errno, "%s: create: %s", path, strerror(errno));
	memset(scratch, 0, JOURNAL_SEGMENT_HEADER_BYTES);
	journal_segment_header_make((struct journal_segment_header *)scratch, writer->shard,
				    writer->shard_count, index, writer->next_block_index,
				    writer->appended_sequence + 1, writer->previous_hash,
				    writer->options.groups_in_flight_max - 1,
				    writer->options.group_bytes_max);
	int result = journal_pwrite_full(fd, scratch, JOURNAL_SEGMENT_HEADER_BYTES, 0);
	if (result == 0 && fdatasync(fd) != 0)
		result = -errno;
	if (result == 0)
		result = journal_fsync_dir(shard_dir);
	if (result != 0) {
		close(fd);
		return writer_fail(writer, result, "%s: write header: %s", path, strerror(-result));
	}
	/* In the unsafe mode nothing synced the old segment yet. */
	if (writer->fd >= 0 && writer->options.mode != JOURNAL_MODE_DURABLE && fdatasync(writer->fd))
		journal_log("journal: %s: fdatasync: %s", writer->path, strerror(errno));
	if (writer->fd >= 0)
		close(writer->fd);
	writer->fd = fd;
	writer->segment_index = index;
	writer->segment_end = JOURNAL_SEGMENT_HEADER_BYTES;
	writer->zero.end = JOURNAL_SEGMENT_HEADER_BYTES;
	_Static_assert(sizeof(writer->path) == sizeof(path), "one size");
	memcpy(writer->path, path, sizeof(path));
	writer->stats.segments_created++;
	return 0;
}

/* The end of the segment's data below a zero tail, through a buffered fd
 * (the writer's may be O_DIRECT). */
static int segment_data_end(const struct journal_writer *writer, uint64_t file_size,
			    uint64_t *data_end)
{
	int fd = open(writer->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int result = journal_data_end(fd, file_size, JOURNAL_SEGMENT_HEADER_BYTES, data_end);
	close(fd);
	return result;
}

/* Positions the writer after the last block of an existing, clean segment. */
static int segment_resume(struct journal_writer *writer, uint32_t index, uint8_t *scratch,
			  struct journal_error *error)
{
	char why[256];
	if (journal_segment_path(writer->path, sizeof(writer->path), writer->dir, writer->shard,
				 index) != 0)
		return journal_error_set(error, -ENAMETOOLONG, "%s: segment %u: path too long",
					 writer->dir, index);
	int fd = open(writer->path, segment_open_flags(writer));
	if (fd < 0)
		return journal_error_set(error, -errno, "%s: open: %s", writer->path, strerror(errno));
	writer->fd = fd;
	writer->segment_index = index;
	struct stat status;
	if (fstat(fd, &status) != 0)
		return journal_error_set(error, -errno, "%s: stat: %s", writer->path, strerror(errno));
	uint64_t file_size = (uint64_t)status.st_size;
	uint64_t size = file_size;
	int result = file_size < JOURNAL_SEGMENT_HEADER_BYTES ? 0 : segment_data_end(writer, file_size, &size);
	if (result != 0)
		return journal_error_set(error, result, "%s: scan zero tail: %s", writer->path,
					 strerror(-result));
	if (size < JOURNAL_SEGMENT_HEADER_BYTES || size % JOURNAL_BLOCK_BYTES != 0 || size > file_size)
		return journal_error_set(error, -EUCLEAN, "%s: size %" PRIu64 " is not whole blocks:"
					 " run recovery first", writer->path, file_size);
	result = journal_pread_full(fd, scratch, JOURNAL_SEGMENT_HEADER_BYTES, 0);
	if (result != 0)
		return journal_error_set(error, result, "%s: read header: %s", writer->path,
					 strerror(-result));
	if (!journal_segment_header_valid(scratch, writer->shard, index, why, sizeof(why)))
		return journal_error_set(error, -EUCLEAN, "%s: offset 0: %s", writer->path, why);
	const struct journal_segment_header *segment = (const void *)scratch;
	writer->resumed_window_bytes = (uint64_t)segment->in_flight_groups * segment->group_bytes_max;
	writer->resumed_in_flight_groups = segment->in_flight_groups;
	writer->next_block_index = segment->first_block_index;
	writer->previous_hash = segment->previous_hash;
	writer->appended_sequence = segment->first_sequence - 1;
	writer->segment_end = size;
	/* The zero tail left by a previous writer is preallocated already. */
	writer->zero.end = file_size - file_size % JOURNAL_BLOCK_BYTES;
	if (size == JOURNAL_SEGMENT_HEADER_BYTES)
		return 0;
	uint64_t offset = size - JOURNAL_BLOCK_BYTES;
	result = journal_pread_full(fd, scratch, JOURNAL_BLOCK_BYTES, offset);
	if (result != 0)
		return journal_error_set(error, result, "%s: read offset %" PRIu64 ": %s",
					 writer->path, offset, strerror(-result));
	const struct journal_block_header *block = (const void *)scratch;
	struct journal_block_expect expect = {
		.shard = writer->shard, .segment_index = index, .block_index = block->block_index,
		.first_sequence = block->first_sequence, .previous_hash = block->previous_hash};
	if (journal_block_check(scratch, &expect, why, sizeof(why)) != JOURNAL_BLOCK_OK)
		return journal_error_set(error, -EUCLEAN, "%s: last block at offset %" PRIu64
					 ": %s: run recovery first", writer->path, offset, why);
	writer->next_block_index = block->block_index + 1;
	writer->previous_hash = block->header_hash;
	writer->appended_sequence = block->first_sequence + block->record_count - 1;
	return 0;
}

static int writer_allocate(struct journal_writer *writer)
{
	writer->group_count = writer->options.groups_in_flight_max;
	for (uint32_t i = 0; i < writer->group_count; i++) {
		void *buffer;
		if (posix_memalign(&buffer, JOURNAL_BLOCK_BYTES, writer->options.group_bytes_max))
			return -ENOMEM;
		writer->groups[i].buffer = buffer;
		writer->groups[i].fd = -1;
	}
	writer->groups[0].state = GROUP_FILLING;
	if (writer->options.preallocate_bytes > 0) {
		void *zeros;
		if (posix_memalign(&zeros, JOURNAL_BLOCK_BYTES, ZERO_BUFFER_BYTES))
			return -ENOMEM;
		memset(zeros, 0, ZERO_BUFFER_BYTES);
		writer->zero.buffer = zeros;
	}
	/* Two entries per group (write + sync) and two for the zero fill is all
	 * that can ever be queued. */
	int result = io_uring_queue_init(2 * writer->group_count + 2, &writer->ring, 0);
	if (result < 0)
		return result;
	writer->ring_ready = true;
	return 0;
}

struct journal_writer *journal_writer_open(const char *dir, uint32_t shard,
					   const struct journal_writer_options *options,
					   struct journal_error *error)
{
	struct journal_meta meta;
	if (journal_meta_read(dir, &meta, error) != 0)
		return NULL;
	if (shard >= meta.shard_count || !options_valid(options)) {
		journal_error_set(error, -EINVAL, "%s: shard %u of %u or writer options invalid", dir,
				  shard, meta.shard_count);
		return NULL;
	}
	struct journal_writer *writer = calloc(1, sizeof(*writer));
	uint32_t *indexes = NULL;
	if (writer == NULL) {
		journal_error_set(error, -ENOMEM, "journal writer: out of memory");
		return NULL;
	}
	/* journal_meta_read() checked the data dir's length: it fits. */
	int copied = journal_path_format(writer->dir, sizeof(writer->dir), "%s", dir);
	assert(copied == 0);
	(void)copied;
	writer->shard = shard;
	writer->shard_count = meta.shard_count;
	writer->options = *options;
	writer->fd = -1;
	writer->previous_hash = JOURNAL_GENESIS_HASH;
	int result = writer_allocate(writer);
	if (result != 0) {
		journal_error_set(error, result, "journal writer: allocate: %s", strerror(-result));
		goto fail;
	}
	int count = journal_segments_list(dir, shard, &indexes);
	if (count < 0) {
		journal_error_set(error, count, "%s: list shard %u: %s", dir, shard, strerror(-count));
		goto fail;
	}
	/* The first group buffer doubles as scratch: it is reset before use. */
	uint8_t *scratch = writer->groups[0].buffer;
	if (count == 0 && segment_create(writer, 0, scratch) != 0) {
		journal_error_set(error, writer->error, "%s", writer->error_text);
		goto fail;
	}
	if (count > 0 && segment_resume(writer, indexes[count - 1], scratch, error) != 0)
		goto fail;
	/* A segment promises its readers a tail window: one written with fewer
	 * groups in flight (or smaller groups, or by an older writer) is not
	 * continued, the next groups go to a segment of their own. */
	if (count > 0 && (writer->resumed_window_bytes < writer_tail_window(writer) ||
			  writer->resumed_in_flight_groups < writer->options.groups_in_flight_max - 1) &&
	    segment_create(writer, indexes[count - 1] + 1, scratch) != 0) {
		journal_error_set(error, writer->error, "%s", writer->error_text);
		goto fail;
	}
	free(indexes);
	writer->durable_sequence = writer->appended_sequence;
	if (writer_preallocate(writer) != 0) {
		journal_error_set(error, writer->error, "%s", writer->error_text);
		goto fail_open;
	}
	return writer;
fail:
	free(indexes);
fail_open:
	writer->error = -EIO;
	journal_writer_close(writer);
	return NULL;
}

static void histogram_add(struct journal_histogram *histogram, uint64_t value_us)
{
	uint32_t bucket = value_us < 2 ? 0 : 63u - (uint32_t)__builtin_clzll(value_us);
	if (bucket >= JOURNAL_HISTOGRAM_BUCKETS)
		bucket = JOURNAL_HISTOGRAM_BUCKETS - 1;
	histogram->buckets[bucket]++;
	histogram->count++;
	histogram->sum_us += value_us;
	if (value_us > histogram->max_us)
		histogram->max_us = value_us;
}

/* Retires the oldest groups whose completions are all in, in order. */
static void writer_retire(struct journal_writer *writer)
{
	while (writer->in_flight > 0) {
		struct journal_group *group = &writer->groups[writer->oldest];
		assert(group->state == GROUP_IN_FLIGHT);
		if (group->cqes_pending > 0)
			return;
		if (writer->error == 0) {
			assert(group->records > 0);
			assert(group->last_sequence > writer->durable_sequence);
			writer->durable_sequence = group->last_sequence;
			writer->stats.records_durable += group->records;
			writer->stats.commits_completed++;
			uint64_t elapsed_ns = journal_monotonic_ns() - group->submit_ns;
			histogram_add(&writer->stats.commit_latency, elapsed_ns / 1000u);
		}
		group->state = GROUP_FREE;
		writer->oldest = (writer->oldest + 1) % writer->group_count;
		writer->in_flight--;
	}
}

/* Keeps preallocate_bytes of zeros ahead of the append position: submits
 * one zero fill (writev linked to fdatasync) when the margin ran short and
 * none is in flight. Never below the end of a sealed group, never beyond
 * segment_bytes_max. */
static int writer_preallocate(struct journal_writer *writer)
{
	struct journal_zero_fill *zero = &writer->zero;
	uint64_t margin = writer->options.preallocate_bytes;
	if (margin == 0 || zero->stopped || zero->cqes_pending > 0 || writer->error != 0 ||
	    writer->fd < 0)
		return 0;
	uint64_t cap = writer->options.segment_bytes_max -
		       writer->options.segment_bytes_max % JOURNAL_BLOCK_BYTES;
	if (zero->end < writer->segment_end)
		zero->end = writer->segment_end; /* appends overtook the zeros */
	if (zero->end >= cap || zero->end - writer->segment_end >= margin)
		return 0;
	uint64_t bytes = cap - zero->end;
	uint64_t chunk = margin < JOURNAL_PREALLOCATE_CHUNK_BYTES ? margin
								  : JOURNAL_PREALLOCATE_CHUNK_BYTES;
	if (bytes > chunk)
		bytes = chunk;
	assert(bytes > 0 && bytes % JOURNAL_BLOCK_BYTES == 0 && zero->end % JOURNAL_BLOCK_BYTES == 0);
	uint32_t count = (uint32_t)((bytes + ZERO_BUFFER_BYTES - 1) / ZERO_BUFFER_BYTES);
	assert(count <= ZERO_IOVECS);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t left = bytes - (uint64_t)i * ZERO_BUFFER_BYTES;
		zero->iovecs[i] = (struct iovec){.iov_base = zero->buffer,
			.iov_len = left < ZERO_BUFFER_BYTES ? left : ZERO_BUFFER_BYTES};
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(&writer->ring);
	assert(sqe != NULL); /* two entries are reserved for the zero fill */
	io_uring_prep_writev(sqe, writer->fd, zero->iovecs, count, zero->end);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, ZERO_FILL_TAG);
	sqe = io_uring_get_sqe(&writer->ring);
	assert(sqe != NULL);
	io_uring_prep_fsync(sqe, writer->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, ZERO_FILL_TAG | 1u);
	zero->cqes_pending = 2;
	zero->offset = zero->end;
	zero->bytes = (uint32_t)bytes;
	zero->write_refused = false;
	zero->end += bytes;
	int result = io_uring_submit(&writer->ring);
	if (result < 0) {
		zero->cqes_pending = 0; /* nothing reached the kernel; nothing is submitted again */
		return writer_fail(writer, result, "%s: io_uring submit (zero fill): %s",
				   writer->path, strerror(-result));
	}
	return 0;
}

/* A zero-fill write refused for space (ENOSPC, EDQUOT, EFBIG, or short) only
 * stops preallocation: the group writes that follow meet the same limit and
 * fail the writer themselves, loudly, if their data does not fit. Any other
 * write error, and any fdatasync error, fails the writer: a failed fdatasync
 * may report (once per file) a writeback error of journal data. */
static void zero_fill_complete(struct journal_writer *writer, bool is_sync, int result)
{
	struct journal_zero_fill *zero = &writer->zero;
	assert(zero->cqes_pending > 0);
	zero->cqes_pending--;
	if (!is_sync && result == (int)zero->bytes)
		return;
	if (!is_sync && (result >= 0 || result == -ENOSPC || result == -EDQUOT || result == -EFBIG)) {
		zero->write_refused = true;
		zero->stopped = true;
		writer->stats.preallocate_stopped = true;
		journal_log("journal: %s: zero fill of %u bytes at offset %" PRIu64 " refused (%s):"
			    " preallocation stopped, commits append from here", writer->path,
			    zero->bytes, zero->offset, result >= 0 ? "short write" : strerror(-result));
		return;
	}
	if (!is_sync) {
		writer_fail(writer, result, "%s: zero fill of %u bytes at offset %" PRIu64
			    " failed: %s", writer->path, zero->bytes, zero->offset, strerror(-result));
		return;
	}
	if (result == -ECANCELED && zero->write_refused)
		return;
	if (result < 0) {
		writer_fail(writer, result, "%s: fdatasync after zero fill at offset %" PRIu64
			    " failed: %s", writer->path, zero->offset, strerror(-result));
		return;
	}
	writer->stats.bytes_preallocated += zero->bytes;
}

static void writer_complete(struct journal_writer *writer, uint64_t user_data, int result)
{
	if (user_data & ZERO_FILL_TAG) {
		zero_fill_complete(writer, user_data & 1, result);
		return;
	}
	assert((user_data >> 1) < writer->group_count);
	struct journal_group *group = &writer->groups[user_data >> 1];
	bool is_sync = user_data & 1;
	assert(group->state == GROUP_IN_FLIGHT && group->cqes_pending > 0);
	if (!is_sync && result < 0)
		writer_fail(writer, result, "%s: write of %u bytes at offset %" PRIu64 " failed: %s",
			    writer->path, group->bytes, group->offset, strerror(-result));
	else if (!is_sync && (uint32_t)result != group->bytes)
		writer_fail(writer, -EIO, "%s: short write at offset %" PRIu64 ": %d of %u bytes"
			    " (disk full or file size limit?)", writer->path, group->offset, result,
			    group->bytes);
	else if (is_sync && result < 0)
		writer_fail(writer, result, "%s: fdatasync after offset %" PRIu64 " failed: %s",
			    writer->path, group->offset, strerror(-result));
	group->cqes_pending--;
	writer_retire(writer);
}

/* Reaps what completed; with wait, first blocks for one completion. */
static int writer_reap_once(struct journal_writer *writer, bool wait)
{
	struct io_uring_cqe *cqe;
	if (wait) {
		int result;
		do
			result = io_uring_wait_cqe(&writer->ring, &cqe);
		while (result == -EINTR);
		if (result < 0)
			return writer_fail(writer, result, "%s: io_uring wait: %s", writer->path,
					   strerror(-result));
	}
	while (io_uring_peek_cqe(&writer->ring, &cqe) == 0) {
		uint64_t user_data = cqe->user_data;
		int result = cqe->res;
		io_uring_cqe_seen(&writer->ring, cqe);
		writer_complete(writer, user_data, result);
	}
	return writer->error;
}

/* Reaps what completed; with wait, blocks until a group in flight retires
 * (a zero-fill completion alone does not end the wait). Then tops up the
 * preallocation. */
static int writer_reap(struct journal_writer *writer, bool wait)
{
	uint32_t in_flight = writer->in_flight;
	bool block = wait && in_flight > 0;
	do
		writer_reap_once(writer, block);
	while (block && writer->error == 0 && writer->in_flight == in_flight);
	writer_preallocate(writer);
	return writer->error;
}

/* Waits for the zero fill in flight (its iovecs and fd are the kernel's). */
static void writer_drain_zero_fill(struct journal_writer *writer)
{
	while (writer->zero.cqes_pending > 0)
		writer_reap_once(writer, true);
}

/* Starting a new segment waits for every group in flight, so the new
 * segment never holds data synced before the end of the old one. */
static int writer_rotate(struct journal_writer *writer, uint8_t *scratch)
{
	while (writer->in_flight > 0)
		if (writer_reap(writer, true) != 0)
			return writer->error;
	writer_drain_zero_fill(writer);
	if (writer->error != 0)
		return writer->error;
	int result = segment_create(writer, writer->segment_index + 1, scratch);
	if (result == 0)
		result = writer_preallocate(writer);
	return result;
}

static int group_start_block(struct journal_writer *writer, struct journal_group *group)
{
	uint64_t group_bytes = (uint64_t)(group->blocks + 1) * JOURNAL_BLOCK_BYTES;
	if (group_bytes > writer->options.group_bytes_max)
		return -ENOBUFS;
	if (writer->segment_end + group_bytes > writer->options.segment_bytes_max) {
		if (group->blocks > 0)
			return -ENOBUFS;
		int result = writer_rotate(writer, group->buffer);
		if (result != 0)
			return result;
	}
	uint8_t *block = group->buffer + (size_t)group->blocks * JOURNAL_BLOCK_BYTES;
	memset(block, 0, JOURNAL_BLOCK_BYTES);
	struct journal_block_header *header = (struct journal_block_header *)block;
	header->first_sequence = writer->appended_sequence + 1;
	group->blocks++;
	return 0;
}

int journal_append(struct journal_writer *writer, uint64_t now_us,
		   const struct ledger_request *request, const struct ledger_result *result)
{
	if (writer->error != 0)
		return writer->error;
	assert(result->flags & LEDGER_RESULT_JOURNAL);
	assert(result->sequence == writer->appended_sequence + 1);
	struct journal_group *group = &writer->groups[writer->filling];
	assert(group->state == GROUP_FILLING);
	uint8_t *block = NULL;
	struct journal_block_header *header = NULL;
	if (group->blocks > 0) {
		block = group->buffer + (size_t)(group->blocks - 1) * JOURNAL_BLOCK_BYTES;
		header = (struct journal_block_header *)block;
	}
	if (header == NULL || header->record_count == JOURNAL_BLOCK_RECORDS) {
		int started = group_start_block(writer, group);
		if (started != 0)
			return started;
		block = group->buffer + (size_t)(group->blocks - 1) * JOURNAL_BLOCK_BYTES;
		header = (struct journal_block_header *)block;
	}
	struct journal_record *records = (struct journal_record *)(block + JOURNAL_BLOCK_HEADER_BYTES);
	journal_record_make(&records[header->record_count], now_us, request, result);
	header->record_count++;
	group->records++;
	group->last_sequence = result->sequence;
	writer->appended_sequence = result->sequence;
	writer->stats.records_appended++;
	return 0;
}

/* Fills every header of the group and chains the blocks. */
static void group_seal(struct journal_writer *writer, struct journal_group *group)
{
	for (uint32_t i = 0; i < group->blocks; i++) {
		uint8_t *block = group->buffer + (size_t)i * JOURNAL_BLOCK_BYTES;
		struct journal_block_header *header = (struct journal_block_header *)block;
		assert(header->record_count >= 1 && header->record_count <= JOURNAL_BLOCK_RECORDS);
		header->magic = JOURNAL_BLOCK_MAGIC;
		header->version = JOURNAL_FORMAT_VERSION;
		header->shard = (uint16_t)writer->shard;
		header->group_blocks = (uint16_t)group->blocks;
		header->group_position = (uint16_t)i;
		header->block_bytes = JOURNAL_BLOCK_BYTES;
		header->segment_index = writer->segment_index;
		header->block_index = writer->next_block_index++;
		header->previous_hash = writer->previous_hash;
		journal_block_seal(block);
		writer->previous_hash = header->header_hash;
	}
	group->fd = writer->fd;
	group->offset = writer->segment_end;
	group->bytes = group->blocks * JOURNAL_BLOCK_BYTES;
	writer->segment_end += group->bytes;
}

static int group_submit(struct journal_writer *writer, uint32_t slot)
{
	struct journal_group *group = &writer->groups[slot];
	assert(group->state == GROUP_FILLING);
	assert(group->bytes > 0);
	assert(group->bytes % JOURNAL_BLOCK_BYTES == 0);
	assert(group->offset % JOURNAL_BLOCK_BYTES == 0);
	assert(writer->in_flight < writer->group_count - 1);
	bool durable = writer->options.mode == JOURNAL_MODE_DURABLE;
	bool linked_sync = durable && writer->options.sync == JOURNAL_SYNC_FDATASYNC;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&writer->ring);
	assert(sqe != NULL); /* the ring holds two entries per group */
	io_uring_prep_write(sqe, group->fd, group->buffer, group->bytes, group->offset);
	if (durable && writer->options.sync == JOURNAL_SYNC_DIRECT_DSYNC)
		sqe->rw_flags = RWF_DSYNC;
	/* Only a group inside the range of the zero fill in flight waits for it
	 * (and, by IOSQE_IO_DRAIN, for every entry before it): zeros never land
	 * on data. Every other group goes at once beside those in flight. */
	const struct journal_zero_fill *zero = &writer->zero;
	bool behind_zero_fill = zero->cqes_pending > 0 &&
				group->offset + group->bytes > zero->offset &&
				group->offset < zero->offset + zero->bytes;
	sqe->flags |= (behind_zero_fill ? IOSQE_IO_DRAIN : 0) | (linked_sync ? IOSQE_IO_LINK : 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)slot << 1);
	group->cqes_pending = 1;
	if (linked_sync) {
		sqe = io_uring_get_sqe(&writer->ring);
		assert(sqe != NULL);
		io_uring_prep_fsync(sqe, group->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, ((uint64_t)slot << 1) | 1u);
		group->cqes_pending = 2;
	}
	group->submit_ns = journal_monotonic_ns();
	group->state = GROUP_IN_FLIGHT;
	writer->in_flight++;
	int result = io_uring_submit(&writer->ring);
	if (result < 0)
		return writer_fail(writer, result, "%s: io_uring submit: %s", writer->path,
				   strerror(-result));
	writer->stats.commits_submitted++;
	writer->stats.bytes_written += group->bytes;
	return 0;
}

int journal_commit(struct journal_writer *writer)
{
	if (writer->error != 0)
		return writer->error;
	struct journal_group *group = &writer->groups[writer->filling];
	if (group->records == 0)
		return 0;
	uint32_t next = (writer->filling + 1) % writer->group_count;
	if (writer->groups[next].state != GROUP_FREE)
		return -EBUSY;
	assert(writer->in_flight < writer->group_count);
	group_seal(writer, group);
	assert(writer->segment_end <= writer->options.segment_bytes_max);
	int result = group_submit(writer, writer->filling);
	writer->filling = next;
	struct journal_group *fresh = &writer->groups[next];
	fresh->blocks = 0;
	fresh->records = 0;
	fresh->state = GROUP_FILLING;
	if (result == 0)
		result = writer_preallocate(writer);
	return result;
}

int64_t journal_poll(struct journal_writer *writer, bool wait)
{
	int result = writer_reap(writer, wait);
	return result != 0 ? result : (int64_t)writer->durable_sequence;
}

uint64_t journal_durable_sequence(const struct journal_writer *writer)
{
	return writer->durable_sequence;
}

uint64_t journal_appended_sequence(const struct journal_writer *writer)
{
	return writer->appended_sequence;
}

uint32_t journal_in_flight(const struct journal_writer *writer) { return writer->in_flight; }

uint32_t journal_in_flight_max(const struct journal_writer *writer)
{
	return writer->group_count - 1;
}

int journal_writer_eventfd(struct journal_writer *writer, int eventfd)
{
	assert(eventfd >= 0);
	assert(writer->ring_ready);
	int result = io_uring_register_eventfd(&writer->ring, eventfd);
	return result < 0 ? result : 0;
}

uint64_t journal_filling_records(const struct journal_writer *writer)
{
	return writer->groups[writer->filling].records;
}

int journal_writer_failed(const struct journal_writer *writer, struct journal_error *error)
{
	if (writer->error != 0 && error != NULL) {
		error->code = writer->error;
		snprintf(error->text, sizeof(error->text), "%s", writer->error_text);
	}
	return writer->error;
}

void journal_writer_stats(const struct journal_writer *writer, struct journal_writer_stats *stats)
{
	*stats = writer->stats;
}

int journal_writer_close(struct journal_writer *writer)
{
	if (writer == NULL)
		return 0;
	if (writer->ring_ready) {
		writer->zero.stopped = true; /* no new zero fill while closing */
		while (writer->error == 0 && journal_commit(writer) == -EBUSY)
			writer_reap(writer, true);
		/* Even a failed writer reaps its groups: the kernel still owns them. */
		while (writer->in_flight > 0)
			writer_reap(writer, true);
		writer_drain_zero_fill(writer);
		if (writer->error == 0 && writer->options.mode != JOURNAL_MODE_DURABLE &&
		    writer->fd >= 0 && fdatasync(writer->fd) != 0)
			writer_fail(writer, -errno, "%s: final fdatasync: %s", writer->path,
				    strerror(errno));
		io_uring_queue_exit(&writer->ring);
	}
	if (writer->fd >= 0)
		close(writer->fd);
	for (uint32_t i = 0; i < JOURNAL_GROUPS_IN_FLIGHT_MAX; i++)
		free(writer->groups[i].buffer);
	free(writer->zero.buffer);
	int result = writer->error;
	free(writer);
	return result;
}
