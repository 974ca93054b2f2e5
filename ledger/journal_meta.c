/*
 * journal_meta.c — `payswitch format`: the data dir, its shard dirs and the
 * payswitch.meta file (text, one "key value" a line, last line a checksum).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_internal.h"

#define META_NAME "payswitch.meta"
#define META_BYTES_MAX 4096u

static int meta_text(char *text, size_t size, uint32_t shard_count,
		     const struct ledger_config *config)
{
	int length = snprintf(text, size,
		"payswitch-meta %u\n"
		"shard_count %u\n"
		"accounts_max %" PRIu64 "\n"
		"transfers_max %" PRIu64 "\n"
		"holds_max %" PRIu64 "\n"
		"dedup_window_us %" PRIu64 "\n"
		"future_tolerance_us %" PRIu64 "\n"
		"hold_timeout_us %" PRIu64 "\n",
		JOURNAL_FORMAT_VERSION, shard_count, config->accounts_max,
		config->transfers_max, config->holds_max, config->dedup_window_us,
		config->future_tolerance_us, config->hold_timeout_us);
	if (length < 0 || (size_t)length >= size)
		return -EOVERFLOW;
	int tail = snprintf(text + length, size - (size_t)length, "checksum %016" PRIx64 "\n",
			    journal_hash(text, (size_t)length));
	return length + tail;
}

static int write_meta(const char *dir, const char *text, size_t size, struct journal_error *error)
{
	char path[JOURNAL_PATH_MAX], temporary[JOURNAL_PATH_MAX];
	if (journal_path_format(path, sizeof(path), "%s/" META_NAME, dir) != 0 ||
	    journal_path_format(temporary, sizeof(temporary), "%s/" META_NAME ".tmp", dir) != 0)
		return journal_error_set(error, -ENAMETOOLONG, "%s: path too long", META_NAME);
	int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return journal_error_set(error, -errno, "%s: create: %s", temporary, strerror(errno));
	int result = journal_write_full(fd, text, size);
	if (result == 0 && fsync(fd) != 0)
		result = -errno;
	close(fd);
	if (result == 0 && rename(temporary, path) != 0)
		result = -errno;
	if (result == 0)
		result = journal_fsync_dir(dir);
	if (result != 0)
		return journal_error_set(error, result, "%s: write: %s", path, strerror(-result));
	return 0;
}

int journal_format_dir(const char *dir, uint32_t shard_count,
		       const struct ledger_config *config, struct journal_error *error)
{
	if (shard_count == 0 || shard_count > JOURNAL_SHARDS_MAX)
		return journal_error_set(error, -EINVAL, "shard count %u not in 1..%u", shard_count,
					 JOURNAL_SHARDS_MAX);
	int checked = journal_data_dir_check(dir, error);
	if (checked != 0)
		return checked;
	char path[JOURNAL_PATH_MAX];
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return journal_error_set(error, -errno, "%s: mkdir: %s", dir, strerror(errno));
	if (journal_path_format(path, sizeof(path), "%s/" META_NAME, dir) != 0)
		return journal_error_set(error, -ENAMETOOLONG, "%s: path too long", META_NAME);
	if (access(path, F_OK) == 0)
		return journal_error_set(error, -EEXIST, "%s: already formatted", path);
	for (uint32_t shard = 0; shard < shard_count; shard++) {
		if (journal_shard_dir(path, sizeof(path), dir, shard) != 0)
			return journal_error_set(error, -ENAMETOOLONG, "shard %u: path too long", shard);
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return journal_error_set(error, -errno, "%s: mkdir: %s", path,
						 strerror(errno));
	}
	char text[META_BYTES_MAX];
	int length = meta_text(text, sizeof(text), shard_count, config);
	if (length < 0)
		return journal_error_set(error, length, "%s: meta too long", dir);
	/* The meta file is written last: its presence means the dir is complete. */
	return write_meta(dir, text, (size_t)length, error);
}

static int parse_u64(const char *text, const char *key, uint64_t *value)
{
	char pattern[64];
	snprintf(pattern, sizeof(pattern), "\n%s ", key);
	const char *at = strstr(text, pattern);
	if (at == NULL)
		return -EBADMSG;
	char *end;
	errno = 0;
	*value = strtoull(at + strlen(pattern), &end, 10);
	return errno || *end != '\n' ? -EBADMSG : 0;
}

static int meta_parse(const char *text, struct journal_meta *meta)
{
	uint64_t values[7];
	static const char *const keys[7] = {"shard_count", "accounts_max", "transfers_max",
		"holds_max", "dedup_window_us", "future_tolerance_us", "hold_timeout_us"};
	unsigned version;
	if (sscanf(text, "payswitch-meta %u\n", &version) != 1)
		return -EBADMSG;
	for (int i = 0; i < 7; i++)
		if (parse_u64(text, keys[i], &values[i]) != 0)
			return -EBADMSG;
	memset(meta, 0, sizeof(*meta));
	meta->format_version = version;
	meta->shard_count = (uint32_t)values[0];
	meta->config.accounts_max = values[1];
	meta->config.transfers_max = values[2];
	meta->config.holds_max = values[3];
	meta->config.dedup_window_us = values[4];
	meta->config.future_tolerance_us = values[5];
	meta->config.hold_timeout_us = values[6];
	meta->config.shard_index = 0;
	meta->config.shard_count = meta->shard_count;
	return 0;
}

int journal_meta_read(const char *dir, struct journal_meta *meta, struct journal_error *error)
{
	char path[JOURNAL_PATH_MAX], text[META_BYTES_MAX + 1];
	int checked = journal_data_dir_check(dir, error);
	if (checked != 0)
		return checked;
	if (journal_path_format(path, sizeof(path), "%s/" META_NAME, dir) != 0)
		return journal_error_set(error, -ENAMETOOLONG, "%s: path too long", META_NAME);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return journal_error_set(error, -errno, "%s: open: %s", path, strerror(errno));
	ssize_t size = read(fd, text, META_BYTES_MAX);
	int saved = errno;
	close(fd);
	if (size < 0)
		return journal_error_set(error, -saved, "%s: read: %s", path, strerror(saved));
	text[size] = 0;
	char *checksum_line = strstr(text, "checksum ");
	if (checksum_line == NULL)
		return journal_error_set(error, -EBADMSG, "%s: no checksum line", path);
	uint64_t expected = strtoull(checksum_line + 9, NULL, 16);
	uint64_t found = journal_hash(text, (size_t)(checksum_line - text));
	if (expected != found)
		return journal_error_set(error, -EBADMSG,
					 "%s: checksum expected %016" PRIx64 ", found %016" PRIx64,
					 path, expected, found);
	/* Parse with a leading newline so every key, the first too, is "\nkey ". */
	if (meta_parse(text, meta) != 0)
		return journal_error_set(error, -EBADMSG, "%s: malformed", path);
	if (meta->format_version != JOURNAL_FORMAT_VERSION)
		return journal_error_set(error, -EPROTO, "%s: format version %u, expected %u", path,
					 meta->format_version, JOURNAL_FORMAT_VERSION);
	if (meta->shard_count == 0 || meta->shard_count > JOURNAL_SHARDS_MAX)
		return journal_error_set(error, -EBADMSG, "%s: shard count %u out of range", path,
					 meta->shard_count);
	return 0;
}

void journal_meta_shard_config(const struct journal_meta *meta, uint32_t shard,
			       struct ledger_config *config)
{
	*config = meta->config;
	config->shard_index = shard;
	config->shard_count = meta->shard_count;
}
