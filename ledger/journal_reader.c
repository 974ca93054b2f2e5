/*
 * journal_reader.c — verified sequential scan of a shard's journal, and the
 * torn-tail rule.
 *
 * Every block is checked on its own (magic, header hash, body hash, record
 * checksums, record sequences) and in its place (block index, chain hash,
 * shard, segment, first sequence). A block that is self-consistent but out
 * of place is corruption. A block that is not self-consistent is a torn tail
 * only if it lies in the groups the writer could have had in flight: in the
 * last segment, with the data from the start of its group to the data end
 * inside the segment's tail window (groups in flight x group bytes, in the
 * segment header), and every self-consistent block after it at its own
 * index in a group that starts no earlier than the torn one. Those later
 * groups may be complete: the writer never reported them durable, because
 * the durable sequence advances only over a contiguous prefix of completed
 * groups (journal_writer.c), so recovery cuts them with the torn one. A
 * segment header with no window (an older writer, one group in flight)
 * allows only the last group. Anything else stops the scan with the file,
 * the offset, what was expected and found.
 *
 * A segment's data ends before its zero tail: the bytes after the last
 * non-zero block, all zero, that the writer preallocated and never wrote
 * (see journal_data_end()). Reaching the zero tail is the end of the
 * segment, not a torn tail. Everything before it follows the rules above,
 * with the zero tail taking the place of the end of the file: an all-zero
 * block followed by data is a bad block like any other.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_internal.h"

#define READER_BUFFER_BYTES (1u << 20)

struct journal_reader {
	char dir[JOURNAL_PATH_MAX];
	char path[JOURNAL_PATH_MAX];
	uint32_t shard;
	unsigned flags;
	uint32_t *segments;
	uint32_t segment_count;
	uint32_t segment_at;              /* position in segments[] */
	int fd;
	uint64_t file_size;
	uint64_t data_end;                /* start of the zero tail (block aligned) */
	uint64_t tail_window_bytes;       /* of the current segment; 0 = one group */
	uint32_t tail_window_groups;      /* groups that may be in flight; 0 = one */
	uint64_t offset;                  /* next block */
	uint8_t *buffer;                  /* READER_BUFFER_BYTES, aligned */
	uint64_t buffer_offset;
	uint64_t buffer_valid;
	uint8_t *scratch;                 /* one block */
	bool expect_seeded;
	struct journal_block_expect expect;
	bool have_last_good;              /* in the current segment */
	struct journal_block_header last_good;
	uint64_t sequence;
	bool ended;
	bool torn;
	char torn_text[JOURNAL_ERROR_TEXT_BYTES];
	struct journal_record salvage[JOURNAL_BLOCK_RECORDS];
	uint32_t salvage_count;
	struct journal_position salvage_position;
};

static int reader_corrupt(struct journal_reader *reader, struct journal_error *error,
			  uint64_t offset, const char *why)
{
	return journal_error_set(error, -EBADMSG, "%s: offset %" PRIu64 ": %s", reader->path,
				 offset, why);
}

static int segment_header_read(struct journal_reader *reader, uint32_t index, uint8_t *block,
			       char *why, size_t why_bytes)
{
	char path[JOURNAL_PATH_MAX];
	if (journal_segment_path(path, sizeof(path), reader->dir, reader->shard, index) != 0)
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int result = journal_pread_full(fd, block, JOURNAL_SEGMENT_HEADER_BYTES, 0);
	close(fd);
	if (result == 0 && !journal_segment_header_valid(block, reader->shard, index, why, why_bytes))
		result = -EBADMSG;
	return result;
}

/* Picks the segment to start from: genesis, or the last one beginning at or
 * before from_sequence. */
static int reader_choose_start(struct journal_reader *reader, uint64_t from_sequence,
			       struct journal_error *error)
{
	char why[256];
	for (uint32_t i = 0; i < reader->segment_count; i++)
		if (reader->segments[i] != i)
			return journal_error_set(error, -EBADMSG, "%s/shard-%03u: segment %u missing"
						 " (found %u in its place)", reader->dir,
						 reader->shard, i, reader->segments[i]);
	if (from_sequence <= 1)
		return 0;
	for (uint32_t i = reader->segment_count; i-- > 1;) {
		int result = segment_header_read(reader, i, reader->scratch, why, sizeof(why));
		if (result == -EBADMSG || result == -ENODATA)
			continue; /* judged when the scan reaches it */
		if (result != 0)
			return journal_error_set(error, result, "segment %u of shard %u: %s", i,
						 reader->shard, strerror(-result));
		const struct journal_segment_header *header = (const void *)reader->scratch;
		if (header->first_sequence <= from_sequence) {
			reader->segment_at = i;
			return 0;
		}
	}
	return 0;
}

struct journal_reader *journal_reader_open(const char *dir, uint32_t shard, unsigned flags,
					   uint64_t from_sequence, struct journal_error *error)
{
	struct journal_reader *reader = calloc(1, sizeof(*reader));
	if (reader == NULL) {
		journal_error_set(error, -ENOMEM, "journal reader: out of memory");
		return NULL;
	}
	if (journal_path_format(reader->dir, sizeof(reader->dir), "%s", dir) != 0 ||
	    journal_shard_dir(reader->path, sizeof(reader->path), dir, shard) != 0) {
		free(reader);
		journal_error_set(error, -ENAMETOOLONG, "journal reader: shard %u: path longer than"
				  " %u bytes", shard, JOURNAL_PATH_MAX - 1);
		return NULL;
	}
	reader->shard = shard;
	reader->flags = flags;
	reader->fd = -1;
	void *buffer = NULL, *scratch = NULL;
	if (posix_memalign(&buffer, JOURNAL_BLOCK_BYTES, READER_BUFFER_BYTES) ||
	    posix_memalign(&scratch, JOURNAL_BLOCK_BYTES, JOURNAL_BLOCK_BYTES)) {
		free(buffer);
		free(reader);
		journal_error_set(error, -ENOMEM, "journal reader: out of memory");
		return NULL;
	}
	reader->buffer = buffer;
	reader->scratch = scratch;
	int count = journal_segments_list(dir, shard, &reader->segments);
	if (count < 0) {
		journal_error_set(error, count, "%s: list: %s", reader->path, strerror(-count));
		goto fail;
	}
	reader->segment_count = (uint32_t)count;
	if (reader_choose_start(reader, from_sequence, error) != 0)
		goto fail;
	return reader;
fail:
	journal_reader_close(reader);
	return NULL;
}

void journal_reader_close(struct journal_reader *reader)
{
	if (reader == NULL)
		return;
	if (reader->fd >= 0)
		close(reader->fd);
	free(reader->segments);
	free(reader->buffer);
	free(reader->scratch);
	free(reader);
}

uint64_t journal_reader_sequence(const struct journal_reader *reader) { return reader->sequence; }

bool journal_reader_torn(const struct journal_reader *reader, char *text, size_t text_bytes)
{
	if (reader->torn && text != NULL)
		snprintf(text, text_bytes, "%s", reader->torn_text);
	return reader->torn;
}

static bool reader_on_last_segment(const struct journal_reader *reader)
{
	return reader->segment_at + 1 == reader->segment_count;
}

/* The last segment's header never made it to disk whole: the crash hit
 * while the segment was being created. Remove it (with REPAIR). */
static int reader_torn_header(struct journal_reader *reader, const char *why)
{
	reader->torn = true;
	reader->ended = true;
	bool repair = reader->flags & JOURNAL_READER_REPAIR;
	snprintf(reader->torn_text, sizeof(reader->torn_text),
		 "torn tail: %s: segment header incomplete (%s, %" PRIu64 " bytes)%s", reader->path,
		 why, reader->file_size, repair ? ": segment removed" : "");
	if (repair) {
		char shard_dir[JOURNAL_PATH_MAX];
		if (journal_shard_dir(shard_dir, sizeof(shard_dir), reader->dir, reader->shard) != 0)
			return -ENAMETOOLONG;
		if (unlink(reader->path) != 0 || journal_fsync_dir(shard_dir) != 0)
			return -errno;
	}
	journal_log("journal: %s", reader->torn_text);
	return 0;
}

static int reader_segment_begin(struct journal_reader *reader, struct journal_error *error)
{
	char why[256];
	uint32_t index = reader->segments[reader->segment_at];
	if (journal_segment_path(reader->path, sizeof(reader->path), reader->dir, reader->shard,
				 index) != 0)
		return journal_error_set(error, -ENAMETOOLONG, "%s: segment %u: path too long",
					 reader->dir, index);
	bool repair = reader->flags & JOURNAL_READER_REPAIR;
	reader->fd = open(reader->path, (repair ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	struct stat status;
	if (reader->fd < 0 || fstat(reader->fd, &status) != 0)
		return journal_error_set(error, -errno, "%s: open: %s", reader->path, strerror(errno));
	posix_fadvise(reader->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	reader->file_size = (uint64_t)status.st_size;
	reader->buffer_valid = 0;
	reader->have_last_good = false;
	reader->offset = JOURNAL_SEGMENT_HEADER_BYTES;
	bool complete = reader->file_size >= JOURNAL_SEGMENT_HEADER_BYTES;
	if (complete && journal_pread_full(reader->fd, reader->scratch, JOURNAL_SEGMENT_HEADER_BYTES, 0))
		return journal_error_set(error, -EIO, "%s: read header: %s", reader->path,
					 strerror(errno));
	if (!complete)
		snprintf(why, sizeof(why), "file shorter than its header");
	if (!complete || !journal_segment_header_valid(reader->scratch, reader->shard, index, why,
						       sizeof(why))) {
		if (reader_on_last_segment(reader) &&
		    reader->file_size <= JOURNAL_SEGMENT_HEADER_BYTES)
			return reader_torn_header(reader, why);
		return reader_corrupt(reader, error, 0, why);
	}
	int scanned = journal_data_end(reader->fd, reader->file_size, JOURNAL_SEGMENT_HEADER_BYTES,
				       &reader->data_end);
	if (scanned != 0)
		return journal_error_set(error, scanned, "%s: scan zero tail: %s", reader->path,
					 strerror(-scanned));
	const struct journal_segment_header *header = (const void *)reader->scratch;
	reader->tail_window_bytes = (uint64_t)header->in_flight_groups * header->group_bytes_max;
	reader->tail_window_groups = header->in_flight_groups;
	if (reader->tail_window_groups == 0 || reader->tail_window_bytes == 0) {
		reader->tail_window_bytes = 0;
		reader->tail_window_groups = 0;
	}
	if (!reader->expect_seeded) {
		/* Where the scan starts the header is trusted; at genesis it must be one. */
		if (index == 0 && (header->first_block_index != 0 ||
				   header->previous_hash != JOURNAL_GENESIS_HASH))
			return reader_corrupt(reader, error, 0, "segment 0 is not a genesis segment");
		reader->expect = (struct journal_block_expect){.shard = reader->shard,
			.block_index = header->first_block_index,
			.first_sequence = header->first_sequence,
			.previous_hash = header->previous_hash};
		reader->sequence = header->first_sequence - 1;
		reader->expect_seeded = true;
	} else if (header->first_block_index != reader->expect.block_index ||
		   header->first_sequence != reader->expect.first_sequence ||
		   header->previous_hash != reader->expect.previous_hash) {
		snprintf(why, sizeof(why), "segment header: expected block %" PRIu64 " sequence %"
			 PRIu64 " previous hash %016" PRIx64 ", found %" PRIu64 " %" PRIu64
			 " %016" PRIx64, reader->expect.block_index, reader->expect.first_sequence,
			 reader->expect.previous_hash, header->first_block_index,
			 header->first_sequence, header->previous_hash);
		return reader_corrupt(reader, error, 0, why);
	}
	reader->expect.segment_index = index;
	return 0;
}

/* A pointer to the whole block at `offset`, from the read-ahead buffer. */
static const uint8_t *reader_block(struct journal_reader *reader, uint64_t offset,
				   struct journal_error *error)
{
	if (offset < reader->buffer_offset ||
	    offset + JOURNAL_BLOCK_BYTES > reader->buffer_offset + reader->buffer_valid) {
		uint64_t end = reader->data_end < reader->file_size ? reader->data_end
								    : reader->file_size;
		uint64_t want = end - offset;
		want -= want % JOURNAL_BLOCK_BYTES;
		if (want > READER_BUFFER_BYTES)
			want = READER_BUFFER_BYTES;
		int result = journal_pread_full(reader->fd, reader->buffer, want, offset);
		if (result != 0) {
			journal_error_set(error, result == -ENODATA ? -EIO : result,
					  "%s: read at offset %" PRIu64 ": %s", reader->path, offset,
					  strerror(-result));
			return NULL;
		}
		reader->buffer_offset = offset;
		reader->buffer_valid = want;
	}
	return reader->buffer + (offset - reader->buffer_offset);
}

static bool block_self_consistent(const uint8_t *block)
{
	const struct journal_block_header *header = (const void *)block;
	struct journal_block_expect own = {.shard = header->shard,
		.segment_index = header->segment_index, .block_index = header->block_index,
		.first_sequence = header->first_sequence, .previous_hash = header->previous_hash};
	char why[256];
	return journal_block_check(block, &own, why, sizeof(why)) == JOURNAL_BLOCK_OK;
}

/* The data a crash may have left torn: one group for a segment without a
 * window (written with one group in flight), else the segment's window. */
static uint64_t reader_tail_allowance(const struct journal_reader *reader)
{
	if (reader->tail_window_bytes == 0)
		return JOURNAL_GROUP_BYTES_MAX + JOURNAL_BLOCK_BYTES;
	return reader->tail_window_bytes + JOURNAL_BLOCK_BYTES;
}

/* Checks one self-consistent block found after the bad block at `offset`:
 * at its own index, in a group that starts at or after the torn group, and
 * (without a window) in the torn group itself, data end inside it. */
static bool reader_tail_block_fits(const struct journal_reader *reader,
				   const struct journal_block_header *header, uint64_t at,
				   uint64_t offset, uint64_t torn_group)
{
	uint64_t bad_index = reader->expect.block_index;
	uint64_t slot_index = bad_index + (at - offset) / JOURNAL_BLOCK_BYTES;
	uint64_t group = header->block_index - header->group_position;
	uint64_t group_end = group + header->group_blocks;
	uint64_t data_blocks_end = bad_index + (reader->data_end - offset) / JOURNAL_BLOCK_BYTES;
	assert(at > offset);
	if (header->block_index != slot_index || header->shard != reader->shard ||
	    header->segment_index != reader->expect.segment_index ||
	    header->first_sequence < reader->expect.first_sequence + (slot_index - bad_index))
		return false;
	if (reader->tail_window_bytes == 0)
		return (group == bad_index || group == torn_group) && data_blocks_end <= group_end;
	return group >= torn_group;
}

/* Decides whether the bad block at `offset` (index expect.block_index) is a
 * torn tail: the data from the start of its group to the data end must fit
 * the tail window, and every self-consistent block after it must sit at its
 * own index in a group no earlier than the torn one. Returns 0 or -EBADMSG. */
static int reader_tail_is_torn(struct journal_reader *reader, uint64_t offset,
			       struct journal_error *error)
{
	char why[256];
	uint64_t bad_index = reader->expect.block_index;
	uint64_t torn_group = bad_index; /* the first group that may be incomplete */
	const struct journal_block_header *good = &reader->last_good;
	if (reader->have_last_good && good->group_position + 1u < good->group_blocks)
		torn_group = good->block_index - good->group_position;
	assert(torn_group <= bad_index);
	uint64_t torn_offset = offset - (bad_index - torn_group) * JOURNAL_BLOCK_BYTES;
	assert(torn_offset >= JOURNAL_SEGMENT_HEADER_BYTES);
	/* Past data_end every byte is zero: only the data counts. */
	uint64_t data_end = reader->data_end;
	uint64_t end = data_end < reader->file_size ? data_end : reader->file_size;
	uint64_t allowance = reader_tail_allowance(reader);
	uint64_t last_group = torn_group;  /* groups after the torn one seen so far */
	uint64_t groups_after = 0;
	if (data_end - torn_offset > allowance) {
		snprintf(why, sizeof(why), "bad block: %" PRIu64 " bytes of data from its group at"
			 " offset %" PRIu64 ", more than the %" PRIu64 " bytes that may be in flight:"
			 " not a torn tail", data_end - torn_offset, torn_offset, allowance);
		return reader_corrupt(reader, error, offset, why);
	}
	for (uint64_t at = offset + JOURNAL_BLOCK_BYTES; at + JOURNAL_BLOCK_BYTES <= end;
	     at += JOURNAL_BLOCK_BYTES) {
		int result = journal_pread_full(reader->fd, reader->scratch, JOURNAL_BLOCK_BYTES, at);
		if (result != 0)
			return journal_error_set(error, result, "%s: read at offset %" PRIu64 ": %s",
						 reader->path, at, strerror(-result));
		if (!block_self_consistent(reader->scratch))
			continue;
		const struct journal_block_header *header = (const void *)reader->scratch;
		if (!reader_tail_block_fits(reader, header, at, offset, torn_group)) {
			snprintf(why, sizeof(why), "bad block followed by a valid block %" PRIu64
				 " of group %" PRIu64 " at offset %" PRIu64 " that no write in flight"
				 " with it could have left: corruption, not a torn tail",
				 header->block_index, header->block_index - header->group_position, at);
			return reader_corrupt(reader, error, offset, why);
		}
		uint64_t group = header->block_index - header->group_position;
		if (group != last_group) {
			assert(group > last_group);
			groups_after++;
			last_group = group;
		}
		/* Every group after the torn one was submitted while it was in
		 * flight and held a slot until it retired: they and it were all in
		 * flight at once. */
		if (reader->tail_window_groups > 0 && groups_after + 1 > reader->tail_window_groups) {
			snprintf(why, sizeof(why), "bad block followed by %" PRIu64 " valid groups"
				 " (up to offset %" PRIu64 "): with it more than the %u groups that"
				 " may be in flight, corruption, not a torn tail", groups_after, at,
				 reader->tail_window_groups);
			return reader_corrupt(reader, error, offset, why);
		}
	}
	return 0;
}

/* Whole records of the torn block whose header is right: they are kept. */
static void reader_salvage(struct journal_reader *reader, const uint8_t *block, uint64_t available)
{
	const struct journal_block_header *header = (const void *)block;
	reader->salvage_count = 0;
	if (available < JOURNAL_BLOCK_HEADER_BYTES || !journal_block_header_valid(header) ||
	    header->block_index != reader->expect.block_index ||
	    header->previous_hash != reader->expect.previous_hash ||
	    header->first_sequence != reader->expect.first_sequence ||
	    header->shard != reader->shard || header->segment_index != reader->expect.segment_index)
		return;
	const struct journal_record *records = (const void *)(block + JOURNAL_BLOCK_HEADER_BYTES);
	for (uint32_t i = 0; i < header->record_count; i++) {
		if (JOURNAL_BLOCK_HEADER_BYTES + (uint64_t)(i + 1) * JOURNAL_RECORD_BYTES > available)
			break;
		if (!journal_record_valid(&records[i]) ||
		    records[i].sequence != header->first_sequence + i)
			break;
		reader->salvage[reader->salvage_count++] = records[i];
	}
}

/* Cuts the file at `offset` and writes the salvaged records back as a block
 * of their own, then syncs: after this the segment is clean. */
static int reader_repair(struct journal_reader *reader, uint64_t offset)
{
	if (ftruncate(reader->fd, (off_t)offset) != 0)
		return -errno;
	if (reader->salvage_count > 0) {
		uint8_t *block = reader->scratch;
		memset(block, 0, JOURNAL_BLOCK_BYTES);
		struct journal_block_header *header = (struct journal_block_header *)block;
		*header = (struct journal_block_header){.magic = JOURNAL_BLOCK_MAGIC,
			.version = JOURNAL_FORMAT_VERSION,
			.record_count = (uint16_t)reader->salvage_count,
			.shard = (uint16_t)reader->shard, .group_blocks = 1, .group_position = 0,
			.block_bytes = JOURNAL_BLOCK_BYTES,
			.segment_index = reader->expect.segment_index,
			.block_index = reader->expect.block_index,
			.first_sequence = reader->expect.first_sequence,
			.previous_hash = reader->expect.previous_hash};
		memcpy(block + JOURNAL_BLOCK_HEADER_BYTES, reader->salvage,
		       reader->salvage_count * sizeof(struct journal_record));
		journal_block_seal(block);
		int result = journal_pwrite_full(reader->fd, block, JOURNAL_BLOCK_BYTES, offset);
		if (result != 0)
			return result;
	}
	return fdatasync(reader->fd) == 0 ? 0 : -errno;
}

static int reader_tail(struct journal_reader *reader, uint64_t offset, const char *why,
		       struct journal_error *error)
{
	if (!reader_on_last_segment(reader))
		return reader_corrupt(reader, error, offset, why);
	int result = reader_tail_is_torn(reader, offset, error);
	if (result != 0)
		return result;
	uint64_t available = reader->file_size - offset;
	if (available > JOURNAL_BLOCK_BYTES)
		available = JOURNAL_BLOCK_BYTES;
	memset(reader->scratch, 0, JOURNAL_BLOCK_BYTES);
	result = journal_pread_full(reader->fd, reader->scratch, available, offset);
	if (result != 0)
		return journal_error_set(error, result, "%s: read at offset %" PRIu64 ": %s",
					 reader->path, offset, strerror(-result));
	reader_salvage(reader, reader->scratch, available);
	bool repair = reader->flags & JOURNAL_READER_REPAIR;
	reader->torn = true;
	reader->ended = true;
	snprintf(reader->torn_text, sizeof(reader->torn_text),
		 "torn tail: %s: offset %" PRIu64 ": %s; %" PRIu64 " bytes (%" PRIu64 " before"
		 " the zero tail) %s, %u whole records of the torn block kept", reader->path,
		 offset, why, reader->file_size - offset,
		 (reader->data_end < reader->file_size ? reader->data_end : reader->file_size) - offset,
		 repair ? "cut" : "not audited", reader->salvage_count);
	if (repair && (result = reader_repair(reader, offset)) != 0)
		return journal_error_set(error, result, "%s: cut torn tail at offset %" PRIu64 ": %s",
					 reader->path, offset, strerror(-result));
	journal_log("journal: %s", reader->torn_text);
	reader->salvage_position = (struct journal_position){
		.segment_index = reader->expect.segment_index, .offset = offset,
		.block_index = reader->expect.block_index};
	_Static_assert(sizeof(reader->salvage_position.path) == sizeof(reader->path), "one size");
	memcpy(reader->salvage_position.path, reader->path, sizeof(reader->path));
	if (reader->salvage_count > 0)
		reader->sequence = reader->salvage[reader->salvage_count - 1].sequence;
	return 0;
}

static void reader_accept(struct journal_reader *reader, const struct journal_block_header *header,
			  uint64_t offset, struct journal_position *position)
{
	if (position != NULL) {
		position->segment_index = reader->expect.segment_index;
		position->offset = offset;
		position->block_index = header->block_index;
		_Static_assert(sizeof(position->path) == sizeof(reader->path), "one size");
		memcpy(position->path, reader->path, sizeof(reader->path));
	}
	reader->last_good = *header;
	reader->have_last_good = true;
	reader->expect.block_index++;
	reader->expect.first_sequence += header->record_count;
	reader->expect.previous_hash = header->header_hash;
	reader->sequence = header->first_sequence + header->record_count - 1;
	reader->offset = offset + JOURNAL_BLOCK_BYTES;
}

int journal_reader_next(struct journal_reader *reader, const struct journal_record **records,
			struct journal_position *position, struct journal_error *error)
{
	char why[256];
	while (!reader->ended) {
		if (reader->fd < 0) {
			if (reader->segment_at >= reader->segment_count) {
				reader->ended = true;
				break;
			}
			int result = reader_segment_begin(reader, error);
			if (result != 0 || reader->ended)
				return result;
		}
		uint64_t offset = reader->offset;
		/* The end of the file or the start of its zero tail. */
		if (offset == reader->file_size || offset == reader->data_end) {
			close(reader->fd);
			reader->fd = -1;
			reader->segment_at++;
			continue;
		}
		if (offset + JOURNAL_BLOCK_BYTES > reader->file_size) {
			snprintf(why, sizeof(why), "partial block: %" PRIu64 " of %u bytes",
				 reader->file_size - offset, JOURNAL_BLOCK_BYTES);
			int result = reader_tail(reader, offset, why, error);
			if (result != 0)
				return result;
			break;
		}
		const uint8_t *block = reader_block(reader, offset, error);
		if (block == NULL)
			return error != NULL ? error->code : -EIO;
		enum journal_block_check check = journal_block_check(block, &reader->expect, why,
								     sizeof(why));
		if (check == JOURNAL_BLOCK_MISPLACED)
			return reader_corrupt(reader, error, offset, why);
		if (check == JOURNAL_BLOCK_INVALID) {
			int result = reader_tail(reader, offset, why, error);
			if (result != 0)
				return result;
			break;
		}
		const struct journal_block_header *header = (const void *)block;
		reader_accept(reader, header, offset, position);
		*records = (const struct journal_record *)(block + JOURNAL_BLOCK_HEADER_BYTES);
		return header->record_count;
	}
	if (reader->salvage_count > 0) {
		uint32_t count = reader->salvage_count;
		reader->salvage_count = 0;
		if (position != NULL)
			*position = reader->salvage_position;
		*records = reader->salvage;
		return (int)count;
	}
	return 0;
}
