/*
 * journal_files.c — the names of a data dir: the one path limit
 * (JOURNAL_PATH_MAX, journal.h) checked against a data dir, and the audit's
 * check that a shard dir holds nothing but the files the journal writes.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"

/* The longest name appended to a data dir: the temp file of a snapshot at
 * the largest sequence in the last shard's dir. */
#define FILE_NAME_LONGEST "/shard-1023/snapshot-18446744073709551615.snap.tmp"
_Static_assert(sizeof(FILE_NAME_LONGEST) - 1 == JOURNAL_FILE_NAME_BYTES_MAX,
	       "JOURNAL_FILE_NAME_BYTES_MAX counts the longest file name");
_Static_assert(JOURNAL_SHARDS_MAX <= 1024u, "shard-NNNN has at most 4 digits (1023)");
_Static_assert(sizeof("/shard-1023/journal-4294967295.seg") <= sizeof(FILE_NAME_LONGEST),
	       "a segment name is shorter");
_Static_assert(sizeof("/payswitch.meta.tmp") <= sizeof(FILE_NAME_LONGEST),
	       "the meta file's temp name is shorter");
_Static_assert(JOURNAL_DATA_DIR_BYTES_MAX + JOURNAL_FILE_NAME_BYTES_MAX + 1 == JOURNAL_PATH_MAX,
	       "a data dir of the limit plus the longest name fills a path exactly");

int journal_data_dir_check(const char *dir, struct journal_error *error)
{
	size_t length = strlen(dir);
	if (length == 0)
		return journal_error_set(error, -EINVAL, "the data dir is an empty name");
	if (length > JOURNAL_DATA_DIR_BYTES_MAX)
		return journal_error_set(error, -ENAMETOOLONG,
					 "data dir '%.40s...' is %zu bytes long; the limit is %u"
					 " bytes (paths are at most %u bytes, and the longest file"
					 " name added to the data dir takes %u)", dir, length,
					 JOURNAL_DATA_DIR_BYTES_MAX, JOURNAL_PATH_MAX - 1,
					 JOURNAL_FILE_NAME_BYTES_MAX);
	return 0;
}

/* true when `name` is exactly prefix + the canonical digits of a number
 * (as `digits_format` prints it) + suffix; the number in *value. */
static bool name_numbered(const char *name, const char *prefix, const char *digits_format,
			  const char *suffix, uint64_t *value)
{
	size_t prefix_bytes = strlen(prefix);
	if (strncmp(name, prefix, prefix_bytes) != 0 || name[prefix_bytes] < '0' ||
	    name[prefix_bytes] > '9')
		return false;
	char *end;
	errno = 0;
	*value = strtoull(name + prefix_bytes, &end, 10);
	if (errno != 0 || strcmp(end, suffix) != 0)
		return false;
	char canonical[JOURNAL_PATH_MAX];
	int length = snprintf(canonical, sizeof(canonical), digits_format, *value);
	return length > 0 && (size_t)length == (size_t)(end - name - prefix_bytes) &&
	       memcmp(canonical, name + prefix_bytes, (size_t)length) == 0;
}

enum file_kind { FILE_UNKNOWN = 0, FILE_KNOWN = 1, FILE_SNAPSHOT_TEMP = 2 };

static enum file_kind file_kind(const char *name)
{
	uint64_t value;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return FILE_KNOWN;
	if (name_numbered(name, "journal-", "%08" PRIu64, ".seg", &value))
		return value <= UINT32_MAX ? FILE_KNOWN : FILE_UNKNOWN;
	if (name_numbered(name, "snapshot-", "%" PRIu64, ".snap", &value))
		return FILE_KNOWN;
	/* The snapshot writer renames its temp file only once it is whole and
	 * synced, so a temp file is a snapshot a crash cut short: recovery never
	 * reads it (it lists *.snap only) and every record it held is in the
	 * journal, which the audit replays. Noted, not failed: a crash while
	 * snapshotting loses nothing, and the audit must not say it did. */
	if (name_numbered(name, "snapshot-", "%" PRIu64, ".snap.tmp", &value))
		return FILE_SNAPSHOT_TEMP;
	return FILE_UNKNOWN;
}

static void files_violation(struct journal_audit_report *report, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
static void files_violation(struct journal_audit_report *report, const char *format, ...)
{
	if (report->violations++ == 0) {
		va_list args;
		va_start(args, format);
		vsnprintf(report->first_violation, sizeof(report->first_violation), format, args);
		va_end(args);
	}
}

uint64_t journal_audit_files(const char *dir, uint32_t shard,
			     struct journal_audit_report *report, FILE *out)
{
	char path[JOURNAL_PATH_MAX];
	uint64_t before = report->violations;
	if (journal_shard_dir(path, sizeof(path), dir, shard) != 0) {
		files_violation(report, "shard %u: path longer than %u bytes", shard,
				JOURNAL_PATH_MAX - 1);
		return 1;
	}
	DIR *handle = opendir(path);
	if (handle == NULL && errno == ENOENT)
		return 0;
	if (handle == NULL) {
		files_violation(report, "%s: list: %s", path, strerror(errno));
		return 1;
	}
	const struct dirent *entry;
	while ((entry = readdir(handle)) != NULL) {
		enum file_kind kind = file_kind(entry->d_name);
		if (kind == FILE_SNAPSHOT_TEMP && out != NULL)
			fprintf(out, "note: %s/%s: temp file of a snapshot cut short by a crash;"
				" never read (its records are in the journal)\n", path, entry->d_name);
		if (kind != FILE_UNKNOWN)
			continue;
		files_violation(report, "%s/%s: not a file the switch writes (journal-NNNNNNNN.seg"
				" or snapshot-SEQ.snap)", path, entry->d_name);
		if (out != NULL)
			fprintf(out, "unrecognised file: %s/%s\n", path, entry->d_name);
	}
	closedir(handle);
	return report->violations - before;
}
