/*
 * journal_format.c — records, block and segment headers, paths, the meta
 * file, errors and small I/O helpers. Pure functions except the I/O helpers.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "journal_internal.h"

uint64_t journal_hash(const void *data, size_t size) { return XXH3_64bits(data, size); }

/* ---------------------------------------------------------------- records */

void journal_record_make(struct journal_record *record, uint64_t now_us,
			 const struct ledger_request *request,
			 const struct ledger_result *result)
{
	assert(result->flags & LEDGER_RESULT_JOURNAL);
	assert(result->sequence != 0);
	assert(result->id == request->id);
	record->request = *request;
	record->now_us = now_us;
	record->sequence = result->sequence;
	record->balance = result->balance;
	record->code = result->code;
	record->flags = result->flags;
	record->checksum = (uint32_t)XXH3_64bits(record, offsetof(struct journal_record, checksum));
}

bool journal_record_valid(const struct journal_record *record)
{
	return record->checksum ==
	       (uint32_t)XXH3_64bits(record, offsetof(struct journal_record, checksum));
}

/* ----------------------------------------------------------------- blocks */

uint64_t journal_block_header_hash(const struct journal_block_header *header)
{
	return XXH3_64bits(header, offsetof(struct journal_block_header, header_hash));
}

uint64_t journal_segment_header_hash(const struct journal_segment_header *header)
{
	return XXH3_64bits(header, offsetof(struct journal_segment_header, header_hash));
}

bool journal_block_header_valid(const struct journal_block_header *header)
{
	return header->magic == JOURNAL_BLOCK_MAGIC && header->version == JOURNAL_FORMAT_VERSION &&
	       header->block_bytes == JOURNAL_BLOCK_BYTES && header->record_count >= 1 &&
	       header->record_count <= JOURNAL_BLOCK_RECORDS && header->group_blocks >= 1 &&
	       header->group_blocks <= JOURNAL_GROUP_BLOCKS_MAX &&
	       header->group_position < header->group_blocks && header->reserved == 0 &&
	       header->header_hash == journal_block_header_hash(header);
}

void journal_block_seal(uint8_t *block)
{
	struct journal_block_header *header = (struct journal_block_header *)block;
	header->body_hash = XXH3_64bits(block + JOURNAL_BLOCK_HEADER_BYTES, JOURNAL_BLOCK_BODY_BYTES);
	header->header_hash = journal_block_header_hash(header);
}

/* Self-consistency of the records of a block whose header is valid. */
static enum journal_block_check block_check_records(const uint8_t *block, char *why,
						    size_t why_bytes)
{
	const struct journal_block_header *header = (const struct journal_block_header *)block;
	uint64_t body_hash = XXH3_64bits(block + JOURNAL_BLOCK_HEADER_BYTES, JOURNAL_BLOCK_BODY_BYTES);
	if (body_hash != header->body_hash) {
		snprintf(why, why_bytes, "body hash: expected %016" PRIx64 ", found %016" PRIx64,
			 header->body_hash, body_hash);
		return JOURNAL_BLOCK_INVALID;
	}
	const struct journal_record *records =
		(const struct journal_record *)(block + JOURNAL_BLOCK_HEADER_BYTES);
	for (uint32_t i = 0; i < header->record_count; i++) {
		if (!journal_record_valid(&records[i])) {
			snprintf(why, why_bytes, "record %u checksum mismatch", i);
			return JOURNAL_BLOCK_INVALID;
		}
		if (records[i].sequence != header->first_sequence + i) {
			snprintf(why, why_bytes,
				 "record %u sequence: expected %" PRIu64 ", found %" PRIu64, i,
				 header->first_sequence + i, records[i].sequence);
			return JOURNAL_BLOCK_INVALID;
		}
	}
	return JOURNAL_BLOCK_OK;
}

enum journal_block_check journal_block_check(const uint8_t *block,
					     const struct journal_block_expect *expect,
					     char *why, size_t why_bytes)
{
	const struct journal_block_header *header = (const struct journal_block_header *)block;
	if (!journal_block_header_valid(header)) {
		if (header->magic != JOURNAL_BLOCK_MAGIC)
			snprintf(why, why_bytes, "block magic: expected %08x, found %08x",
				 JOURNAL_BLOCK_MAGIC, header->magic);
		else
			snprintf(why, why_bytes,
				 "block header hash: expected %016" PRIx64 ", found %016" PRIx64
				 " (or a field out of range)",
				 header->header_hash, journal_block_header_hash(header));
		return JOURNAL_BLOCK_INVALID;
	}
	enum journal_block_check check = block_check_records(block, why, why_bytes);
	if (check != JOURNAL_BLOCK_OK)
		return check;
	if (header->block_index != expect->block_index) {
		snprintf(why, why_bytes, "block index: expected %" PRIu64 ", found %" PRIu64,
			 expect->block_index, header->block_index);
		return JOURNAL_BLOCK_MISPLACED;
	}
	if (header->previous_hash != expect->previous_hash) {
		snprintf(why, why_bytes,
			 "chain: previous hash expected %016" PRIx64 ", found %016" PRIx64,
			 expect->previous_hash, header->previous_hash);
		return JOURNAL_BLOCK_MISPLACED;
	}
	if (header->shard != expect->shard || header->segment_index != expect->segment_index) {
		snprintf(why, why_bytes, "shard/segment: expected %u/%u, found %u/%u", expect->shard,
			 expect->segment_index, header->shard, header->segment_index);
		return JOURNAL_BLOCK_MISPLACED;
	}
	if (header->first_sequence != expect->first_sequence) {
		snprintf(why, why_bytes, "first sequence: expected %" PRIu64 ", found %" PRIu64,
			 expect->first_sequence, header->first_sequence);
		return JOURNAL_BLOCK_MISPLACED;
	}
	return JOURNAL_BLOCK_OK;
}

/* --------------------------------------------------------------- segments */

void journal_segment_header_make(struct journal_segment_header *header, uint32_t shard,
				 uint32_t shard_count, uint32_t segment_index,
				 uint64_t first_block_index, uint64_t first_sequence,
				 uint64_t previous_hash, uint32_t in_flight_groups,
				 uint32_t group_bytes_max)
{
	assert(group_bytes_max % JOURNAL_BLOCK_BYTES == 0);
	assert(group_bytes_max <= JOURNAL_GROUP_BYTES_MAX);
	assert(in_flight_groups < JOURNAL_GROUPS_IN_FLIGHT_MAX);
	memset(header, 0, sizeof(*header));
	header->magic = JOURNAL_SEGMENT_MAGIC;
	header->version = JOURNAL_FORMAT_VERSION;
	header->shard = (uint16_t)shard;
	header->segment_index = segment_index;
	header->shard_count = shard_count;
	header->first_block_index = first_block_index;
	header->first_sequence = first_sequence;
	header->previous_hash = previous_hash;
	header->created_us = journal_now_us();
	header->in_flight_groups = in_flight_groups;
	header->group_bytes_max = group_bytes_max;
	header->header_hash = journal_segment_header_hash(header);
}

bool journal_segment_header_valid(const uint8_t *block, uint32_t shard, uint32_t segment_index,
				  char *why, size_t why_bytes)
{
	const struct journal_segment_header *header = (const struct journal_segment_header *)block;
	if (header->magic != JOURNAL_SEGMENT_MAGIC || header->version != JOURNAL_FORMAT_VERSION) {
		snprintf(why, why_bytes, "segment magic/version: expected %08x/%u, found %08x/%u",
			 JOURNAL_SEGMENT_MAGIC, JOURNAL_FORMAT_VERSION, header->magic,
			 header->version);
		return false;
	}
	uint64_t hash = journal_segment_header_hash(header);
	if (hash != header->header_hash) {
		snprintf(why, why_bytes,
			 "segment header hash: expected %016" PRIx64 ", found %016" PRIx64,
			 header->header_hash, hash);
		return false;
	}
	if (header->shard != shard || header->segment_index != segment_index) {
		snprintf(why, why_bytes, "segment shard/index: expected %u/%u, found %u/%u", shard,
			 segment_index, header->shard, header->segment_index);
		return false;
	}
	for (uint32_t i = sizeof(*header); i < JOURNAL_SEGMENT_HEADER_BYTES; i++) {
		if (block[i] != 0) {
			snprintf(why, why_bytes, "segment header padding byte %u is not zero", i);
			return false;
		}
	}
	return true;
}

/* ------------------------------------------------------------------ paths */

int journal_path_format(char *path, size_t size, const char *format, ...)
{
	assert(size > 0);
	va_list args;
	va_start(args, format);
	int length = vsnprintf(path, size, format, args);
	va_end(args);
	if (length < 0 || (size_t)length >= size)
		return -ENAMETOOLONG;
	return 0;
}

int journal_shard_dir(char *path, size_t size, const char *dir, uint32_t shard)
{
	return journal_path_format(path, size, "%s/shard-%03u", dir, shard);
}

int journal_segment_path(char *path, size_t size, const char *dir, uint32_t shard,
			 uint32_t segment_index)
{
	return journal_path_format(path, size, "%s/shard-%03u/journal-%08u.seg", dir, shard,
				   segment_index);
}

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int compare_u64_descending(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x < y) - (x > y);
}

/* Lists names matching prefix%<digits>suffix exactly; values into a growing array. */
static int list_numbered(const char *dir, uint32_t shard, const char *prefix, const char *suffix,
			 uint64_t **values)
{
	char path[JOURNAL_PATH_MAX];
	*values = NULL;
	if (journal_shard_dir(path, sizeof(path), dir, shard) != 0)
		return -ENAMETOOLONG;
	DIR *handle = opendir(path);
	if (handle == NULL)
		return errno == ENOENT ? 0 : -errno;
	size_t count = 0, capacity = 0;
	size_t prefix_bytes = strlen(prefix), suffix_bytes = strlen(suffix);
	struct dirent *entry;
	while ((entry = readdir(handle)) != NULL) {
		const char *name = entry->d_name;
		size_t name_bytes = strlen(name);
		if (name_bytes <= prefix_bytes + suffix_bytes || strncmp(name, prefix, prefix_bytes) ||
		    strcmp(name + name_bytes - suffix_bytes, suffix))
			continue;
		char *end;
		errno = 0;
		unsigned long long value = strtoull(name + prefix_bytes, &end, 10);
		if (errno || end != name + name_bytes - suffix_bytes)
			continue;
		if (count == capacity) {
			capacity = capacity ? capacity * 2 : 16;
			uint64_t *grown = realloc(*values, capacity * sizeof(uint64_t));
			if (grown == NULL) {
				free(*values);
				*values = NULL;
				closedir(handle);
				return -ENOMEM;
			}
			*values = grown;
		}
		(*values)[count++] = value;
	}
	closedir(handle);
	return (int)count;
}

int journal_segments_list(const char *dir, uint32_t shard, uint32_t **indexes)
{
	uint64_t *values;
	int count = list_numbered(dir, shard, "journal-", ".seg", &values);
	*indexes = NULL;
	if (count <= 0)
		return count;
	uint32_t *out = malloc((size_t)count * sizeof(uint32_t));
	if (out == NULL) {
		free(values);
		return -ENOMEM;
	}
	for (int i = 0; i < count; i++)
		out[i] = (uint32_t)values[i];
	free(values);
	qsort(out, (size_t)count, sizeof(uint32_t), compare_u32);
	*indexes = out;
	return count;
}

int journal_snapshots_list(const char *dir, uint32_t shard, uint64_t **sequences)
{
	int count = list_numbered(dir, shard, "snapshot-", ".snap", sequences);
	if (count > 0)
		qsort(*sequences, (size_t)count, sizeof(uint64_t), compare_u64_descending);
	return count;
}

/* ------------------------------------------------------------ errors, log */

static journal_log_fn log_sink;
static void *log_context;

void journal_set_log(journal_log_fn log, void *context)
{
	log_sink = log;
	log_context = context;
}

void journal_log(const char *format, ...)
{
	char line[JOURNAL_ERROR_TEXT_BYTES + 256];
	va_list args;
	va_start(args, format);
	vsnprintf(line, sizeof(line), format, args);
	va_end(args);
	if (log_sink != NULL)
		log_sink(log_context, line);
	else
		fprintf(stderr, "%s\n", line);
}

int journal_error_set(struct journal_error *error, int code, const char *format, ...)
{
	assert(code < 0);
	if (error != NULL) {
		error->code = code;
		va_list args;
		va_start(args, format);
		vsnprintf(error->text, sizeof(error->text), format, args);
		va_end(args);
	}
	return code;
}

/* ------------------------------------------------------------ I/O helpers */

int journal_pread_full(int fd, void *buffer, size_t size, uint64_t offset)
{
	uint8_t *at = buffer;
	while (size > 0) {
		ssize_t done = pread(fd, at, size, (off_t)offset);
		if (done < 0 && errno == EINTR)
			continue;
		if (done < 0)
			return -errno;
		if (done == 0)
			return -ENODATA;
		at += done;
		size -= (size_t)done;
		offset += (uint64_t)done;
	}
	return 0;
}

int journal_pwrite_full(int fd, const void *buffer, size_t size, uint64_t offset)
{
	const uint8_t *at = buffer;
	while (size > 0) {
		ssize_t done = pwrite(fd, at, size, (off_t)offset);
		if (done < 0 && errno == EINTR)
			continue;
		if (done < 0)
			return -errno;
		at += done;
		size -= (size_t)done;
		offset += (uint64_t)done;
	}
	return 0;
}

int journal_write_full(int fd, const void *buffer, size_t size)
{
	const uint8_t *at = buffer;
	while (size > 0) {
		ssize_t done = write(fd, at, size);
		if (done < 0 && errno == EINTR)
			continue;
		if (done < 0)
			return -errno;
		at += done;
		size -= (size_t)done;
	}
	return 0;
}

int journal_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int result = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return result;
}

uint64_t journal_now_us(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

uint64_t journal_monotonic_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

uint64_t journal_histogram_quantile_us(const struct journal_histogram *histogram, double fraction)
{
	if (histogram->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(fraction * (double)histogram->count);
	if (rank >= histogram->count)
		rank = histogram->count - 1;
	uint64_t seen = 0;
	for (uint32_t k = 0; k < JOURNAL_HISTOGRAM_BUCKETS; k++) {
		seen += histogram->buckets[k];
		if (seen > rank)
			return k + 1 < 64 ? (UINT64_C(1) << (k + 1)) : histogram->max_us;
	}
	return histogram->max_us;
}

/* Index one past the last non-zero byte of buffer[0..size), 0 if all zero. */
static size_t last_nonzero_end(const uint8_t *buffer, size_t size)
{
	while (size % sizeof(uint64_t) != 0) {
		if (buffer[size - 1] != 0)
			return size;
		size--;
	}
	while (size > 0) {
		uint64_t word;
		memcpy(&word, buffer + size - sizeof(word), sizeof(word));
		if (word != 0)
			break;
		size -= sizeof(word);
	}
	while (size > 0 && buffer[size - 1] == 0)
		size--;
	return size;
}

int journal_data_end(int fd, uint64_t file_size, uint64_t floor, uint64_t *data_end)
{
	/* Bounded: one pass backwards over the zero tail, 1 MiB per read. */
	enum { SCAN_BYTES = 1u << 20 };
	assert(floor % JOURNAL_BLOCK_BYTES == 0);
	*data_end = floor;
	uint8_t *buffer = malloc(SCAN_BYTES);
	if (buffer == NULL)
		return -ENOMEM;
	int result = 0;
	for (uint64_t end = file_size; end > floor;) {
		uint64_t start = end - floor > SCAN_BYTES ? end - SCAN_BYTES : floor;
		result = journal_pread_full(fd, buffer, (size_t)(end - start), start);
		if (result != 0)
			break;
		size_t found = last_nonzero_end(buffer, (size_t)(end - start));
		if (found > 0) {
			uint64_t last = start + found;
			*data_end = (last + JOURNAL_BLOCK_BYTES - 1) / JOURNAL_BLOCK_BYTES *
				    JOURNAL_BLOCK_BYTES;
			break;
		}
		end = start;
	}
	free(buffer);
	return result;
}

uint64_t journal_tail_sequence(const char *dir, uint32_t shard)
{
	uint32_t *indexes;
	int count = journal_segments_list(dir, shard, &indexes);
	if (count <= 0)
		return 0;
	char path[JOURNAL_PATH_MAX];
	int named = journal_segment_path(path, sizeof(path), dir, shard, indexes[count - 1]);
	free(indexes);
	int fd = named == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return 0;
	struct stat status;
	uint64_t result = 0;
	uint8_t *block = malloc(JOURNAL_BLOCK_BYTES);
	if (block == NULL || fstat(fd, &status) != 0)
		goto out;
	/* A preallocated zero tail is not part of the journal: start below it. */
	uint64_t data_end;
	if ((uint64_t)status.st_size < JOURNAL_SEGMENT_HEADER_BYTES ||
	    journal_data_end(fd, (uint64_t)status.st_size, JOURNAL_SEGMENT_HEADER_BYTES,
			     &data_end) != 0)
		data_end = (uint64_t)status.st_size;
	if (data_end > (uint64_t)status.st_size)
		data_end = (uint64_t)status.st_size;
	uint64_t blocks = data_end / JOURNAL_BLOCK_BYTES;
	/* Walk back at most one group plus one block: earlier groups are synced. */
	for (uint64_t i = blocks; i > 1 && blocks - i <= JOURNAL_GROUP_BLOCKS_MAX; i--) {
		if (journal_pread_full(fd, block, JOURNAL_BLOCK_BYTES,
				       (i - 1) * JOURNAL_BLOCK_BYTES) != 0)
			break;
		const struct journal_block_header *header = (const void *)block;
		if (journal_block_header_valid(header)) {
			result = header->first_sequence + header->record_count - 1;
			goto out;
		}
	}
	if (blocks >= 1 && journal_pread_full(fd, block, JOURNAL_BLOCK_BYTES, 0) == 0) {
		const struct journal_segment_header *header = (const void *)block;
		if (header->magic == JOURNAL_SEGMENT_MAGIC && header->first_sequence > 0)
			result = header->first_sequence - 1;
	}
out:
	free(block);
	close(fd);
	return result;
}
