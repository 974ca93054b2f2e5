/*
 * directory.c — load, look up and edit the gateway's card/terminal directory.
 */
#include "directory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "config.h"

static const char *const kind_names[DIRECTORY_KIND_COUNT] = { "pan", "merchant", "terminal" };

/* A directory line, its newline excluded. An entry takes at most 58 bytes
 * ("merchant" + a 28-byte key + a 20-digit account); the rest is room for a
 * comment. A longer line is refused with file:line rather than read in
 * parts (where the tail of a comment became an entry) or accepted whole: a
 * line this long is not an entry someone meant to write. */
#define DIRECTORY_LINE_BYTES_MAX 1024u

struct entry {
	uint64_t account;
	uint8_t kind;
	uint8_t key_length;
	char key[DIRECTORY_KEY_MAX];
};

struct directory {
	struct entry *entries;
	uint64_t entry_count;
	uint64_t entry_capacity;
	uint32_t *slots;          /* entry index + 1; 0 = empty */
	uint64_t slot_mask;
	uint64_t counts[DIRECTORY_KIND_COUNT];
};

/* One parsed line. */
struct line {
	int kind;                 /* -1: blank or comment */
	char key[DIRECTORY_KEY_MAX + 1];
	uint64_t account;
};

static uint64_t hash_key(uint8_t kind, const void *key, size_t length)
{
	return XXH3_64bits_withSeed(key, length, kind + 1u);
}

static size_t trim_key(const void *key, size_t length)
{
	const char *text = key;
	while (length > 0 && text[length - 1] == ' ')
		length--;
	return length;
}

bool directory_find(const struct directory *directory, enum directory_kind kind,
		    const void *key, size_t key_length, uint64_t *account)
{
	key_length = trim_key(key, key_length);
	if (directory == NULL || key_length == 0 || key_length > DIRECTORY_KEY_MAX)
		return false;
	uint64_t slot = hash_key((uint8_t)kind, key, key_length) & directory->slot_mask;
	for (uint64_t probe = 0; probe <= directory->slot_mask; probe++) {
		uint32_t index = directory->slots[slot];
		if (index == 0)
			return false;
		const struct entry *entry = &directory->entries[index - 1];
		if (entry->kind == kind && entry->key_length == key_length &&
		    memcmp(entry->key, key, key_length) == 0) {
			*account = entry->account;
			return true;
		}
		slot = (slot + 1) & directory->slot_mask;
	}
	return false;
}

uint64_t directory_count(const struct directory *directory, enum directory_kind kind)
{
	return directory->counts[kind];
}

void directory_destroy(struct directory *directory)
{
	if (directory == NULL)
		return;
	free(directory->entries);
	free(directory->slots);
	free(directory);
}

/* Parses one line (modified in place). Returns 0 or -1 with a reason. */
static int parse_line(char *text, struct line *line, const char **reason)
{
	line->kind = -1;
	char *comment = strchr(text, '#');
	if (comment)
		*comment = '\0';
	char *save = NULL;
	char *kind = strtok_r(text, " \t\r\n", &save);
	if (kind == NULL)
		return 0;
	char *key = strtok_r(NULL, " \t\r\n", &save);
	char *account = strtok_r(NULL, " \t\r\n", &save);
	*reason = "expected: pan|merchant|terminal KEY ACCOUNT";
	if (key == NULL || account == NULL || strtok_r(NULL, " \t\r\n", &save) != NULL)
		return -1;
	for (int k = 0; k < DIRECTORY_KIND_COUNT; k++)
		if (strcmp(kind, kind_names[k]) == 0)
			line->kind = k;
	*reason = "unknown kind (pan, merchant, terminal)";
	if (line->kind < 0)
		return -1;
	*reason = "KEY is longer than 28 characters";
	if (strlen(key) > DIRECTORY_KEY_MAX)
		return -1;
	for (const char *c = key; *c; c++) {
		*reason = "KEY has a character outside printable ASCII";
		if (*c < 0x21 || *c > 0x7e)
			return -1;
	}
	*reason = "ACCOUNT is not a ledger account id (1..2^64-1)";
	char *end = NULL;
	errno = 0;
	unsigned long long value = strtoull(account, &end, 10);
	if (errno != 0 || end == account || *end != '\0' || value == 0 || account[0] == '-')
		return -1;
	strcpy(line->key, key);
	line->account = value;
	return 0;
}

static int directory_insert(struct directory *directory, const struct line *line)
{
	uint64_t ignored;
	size_t length = strlen(line->key);
	if (directory_find(directory, (enum directory_kind)line->kind, line->key, length, &ignored))
		return -EEXIST;
	if (directory->entry_count >= directory->entry_capacity)
		return -ENOSPC;
	uint64_t index = directory->entry_count++;
	struct entry *entry = &directory->entries[index];
	entry->account = line->account;
	entry->kind = (uint8_t)line->kind;
	entry->key_length = (uint8_t)length;
	memcpy(entry->key, line->key, length);
	uint64_t slot = hash_key(entry->kind, entry->key, length) & directory->slot_mask;
	while (directory->slots[slot] != 0)
		slot = (slot + 1) & directory->slot_mask;
	directory->slots[slot] = (uint32_t)(index + 1);
	directory->counts[line->kind]++;
	return 0;
}

static uint64_t count_lines(FILE *file)
{
	uint64_t lines = 1;
	int c;
	while ((c = fgetc(file)) != EOF)
		lines += c == '\n';
	rewind(file);
	return lines;
}

/* One line read whole (getline): checked against the limit, parsed, inserted.
 * Returns 0 or -1 with "directory FILE:LINE: reason" in `error`. */
static int directory_line(struct directory *directory, char *text, size_t length,
			  const char *path, uint64_t number, char *error, size_t error_size)
{
	unsigned long long at = (unsigned long long)number;
	size_t content = length - (length > 0 && text[length - 1] == '\n');
	if (content > DIRECTORY_LINE_BYTES_MAX) {
		snprintf(error, error_size, "directory %s:%llu: line of %zu bytes, longer than the"
			 " limit of %u", path, at, content, DIRECTORY_LINE_BYTES_MAX);
		return -1;
	}
	if (memchr(text, '\0', length) != NULL) {
		snprintf(error, error_size, "directory %s:%llu: a NUL byte in the line", path, at);
		return -1;
	}
	struct line line;
	const char *reason = "";
	if (parse_line(text, &line, &reason) != 0) {
		snprintf(error, error_size, "directory %s:%llu: %s", path, at, reason);
		return -1;
	}
	int inserted = line.kind < 0 ? 0 : directory_insert(directory, &line);
	if (inserted != 0)
		/* The table has a slot per newline + 1, one per line read whole:
		 * -ENOSPC would mean the file changed under us. */
		snprintf(error, error_size, "directory %s:%llu: %s %s %s", path, at,
			 kind_names[line.kind], line.key,
			 inserted == -EEXIST ? "appears twice" : "does not fit the table");
	return inserted == 0 ? 0 : -1;
}

static int directory_read_lines(struct directory *directory, FILE *file, const char *path,
				char *error, size_t error_size)
{
	char *text = NULL;
	size_t capacity = 0;
	ssize_t length;
	int result = 0;
	for (uint64_t number = 1; result == 0 && (length = getline(&text, &capacity, file)) >= 0;
	     number++)
		result = directory_line(directory, text, (size_t)length, path, number, error,
					error_size);
	if (result == 0 && ferror(file)) {
		snprintf(error, error_size, "directory %s: read error", path);
		result = -1;
	}
	free(text);
	return result;
}

struct directory *directory_load(const char *path, char *error, size_t error_size)
{
	FILE *file = fopen(path, "r");
	if (file == NULL) {
		snprintf(error, error_size, "directory %s: %s", path, strerror(errno));
		return NULL;
	}
	uint64_t lines = count_lines(file);
	struct directory *directory = calloc(1, sizeof(*directory));
	if (lines > DIRECTORY_ENTRIES_MAX) {
		snprintf(error, error_size, "directory %s: more than %u lines", path,
			 DIRECTORY_ENTRIES_MAX);
		goto fail;
	}
	uint64_t slots = 16;
	while (slots < 2 * lines)
		slots *= 2;
	if (directory != NULL) {
		directory->entries = calloc(lines, sizeof(struct entry));
		directory->slots = calloc(slots, sizeof(uint32_t));
		directory->entry_capacity = lines;
		directory->slot_mask = slots - 1;
	}
	if (!directory || !directory->entries || !directory->slots) {
		snprintf(error, error_size, "directory %s: out of memory", path);
		goto fail;
	}
	if (directory_read_lines(directory, file, path, error, error_size) != 0)
		goto fail;
	fclose(file);
	return directory;
fail:
	fclose(file);
	directory_destroy(directory);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* `payswitch directory`                                                     */
/* ------------------------------------------------------------------------ */
static const char directory_help[] =
	"usage: payswitch directory ACTION FILE [ARGUMENTS]\n"
	"\n"
	"Manages the ISO 8583 gateway's card/terminal directory file. Edits write a\n"
	"temporary file, sync it and rename it over FILE, so a gateway (re)loading it\n"
	"sees the old or the new file, never half of one. Send SIGHUP to a running\n"
	"'payswitch gateway' to make it reload.\n"
	"\n"
	"actions:\n"
	"  add FILE pan|merchant|terminal KEY ACCOUNT   (FILE is created if missing)\n"
	"  remove FILE pan|merchant|terminal KEY\n"
	"  list FILE                                    print every entry\n"
	"  check FILE                                   validate; print counts\n"
	"Exit status: 0 done, 1 refused (duplicate, not found, invalid file), 2 usage.\n";

/* Reads the whole file into a NUL-terminated buffer (empty when missing and
 * allowed). Returns NULL on error. */
static char *read_all(const char *path, bool missing_ok)
{
	FILE *file = fopen(path, "r");
	if (file == NULL)
		return missing_ok && errno == ENOENT ? calloc(1, 1) : NULL;
	fseek(file, 0, SEEK_END);
	long size = ftell(file);
	rewind(file);
	char *text = size >= 0 ? malloc((size_t)size + 2) : NULL;
	size_t got = text ? fread(text, 1, (size_t)size, file) : 0;
	fclose(file);
	if (text == NULL)
		return NULL;
	text[got] = '\0';
	return text;
}

/* Writes text to path through path.tmp: write, fsync, rename, fsync dir. */
static int replace_file(const char *path, const char *text)
{
	/* The program's one path limit (journal.h) holds here too. */
	char temp[JOURNAL_PATH_MAX];
	int named = snprintf(temp, sizeof(temp), "%s.tmp.%d", path, (int)getpid());
	if (named < 0 || (size_t)named >= sizeof(temp))
		return -ENAMETOOLONG;
	int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t length = strlen(text);
	int error = 0;
	if (write(fd, text, length) != (ssize_t)length || fsync(fd) != 0)
		error = errno ? -errno : -EIO;
	close(fd);
	if (error == 0 && rename(temp, path) != 0)
		error = -errno;
	if (error != 0) {
		unlink(temp);
		return error;
	}
	char dir[JOURNAL_PATH_MAX];
	memcpy(dir, path, strlen(path) + 1); /* shorter than temp */
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	int dir_fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd >= 0) {
		(void)fsync(dir_fd);
		close(dir_fd);
	}
	return 0;
}

/* Rewrites FILE without the line of (kind, key); *found tells whether it was
 * there. Returns the new text (caller frees) or NULL. */
static char *without_entry(const char *text, int kind, const char *key, bool *found)
{
	size_t length = strlen(text);
	char *out = malloc(length + 1);
	if (out == NULL)
		return NULL;
	size_t at = 0;
	*found = false;
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		size_t size = end ? (size_t)(end - line) + 1 : strlen(line);
		/* A line longer than the limit (newline included) is never an entry:
		 * kept as it is, never parsed in part. */
		char copy[DIRECTORY_LINE_BYTES_MAX + 2];
		struct line parsed = { .kind = -1 };
		const char *reason;
		bool fits = size < sizeof(copy);
		if (fits) {
			memcpy(copy, line, size);
			copy[size] = '\0';
		}
		bool match = fits && parse_line(copy, &parsed, &reason) == 0 && parsed.kind == kind &&
			     strcmp(parsed.key, key) == 0;
		if (match)
			*found = true;
		else {
			memcpy(out + at, line, size);
			at += size;
		}
		line += size;
	}
	out[at] = '\0';
	return out;
}

static int parse_kind(const char *text)
{
	for (int k = 0; k < DIRECTORY_KIND_COUNT; k++)
		if (strcmp(text, kind_names[k]) == 0)
			return k;
	fprintf(stderr, "payswitch directory: unknown kind '%s' (pan, merchant, terminal)\n", text);
	return -1;
}

static int command_add(const char *path, char **arguments)
{
	char line_text[256];
	snprintf(line_text, sizeof(line_text), "%s %s %s", arguments[0], arguments[1], arguments[2]);
	struct line line;
	const char *reason = "";
	char parse_copy[256];
	strcpy(parse_copy, line_text);
	if (parse_kind(arguments[0]) < 0)
		return 2;
	if (parse_line(parse_copy, &line, &reason) != 0) {
		fprintf(stderr, "payswitch directory add: %s\n", reason);
		return 2;
	}
	char *text = read_all(path, true);
	if (text == NULL) {
		fprintf(stderr, "payswitch directory: %s: %s\n", path, strerror(errno));
		return 1;
	}
	bool found = false;
	char *rest = without_entry(text, line.kind, line.key, &found);
	free(rest);
	if (found) {
		fprintf(stderr, "payswitch directory add: %s %s already exists (remove it first)\n",
			kind_names[line.kind], line.key);
		free(text);
		return 1;
	}
	size_t length = strlen(text);
	char *updated = malloc(length + sizeof(line_text) + 2);
	int status = 1;
	if (updated != NULL) {
		snprintf(updated, length + sizeof(line_text) + 2, "%s%s%s\n", text,
			 length > 0 && text[length - 1] != '\n' ? "\n" : "", line_text);
		int error = replace_file(path, updated);
		if (error != 0)
			fprintf(stderr, "payswitch directory: %s: %s\n", path, strerror(-error));
		status = error == 0 ? 0 : 1;
	}
	free(updated);
	free(text);
	return status;
}

static int command_remove(const char *path, char **arguments)
{
	int kind = parse_kind(arguments[0]);
	if (kind < 0)
		return 2;
	char *text = read_all(path, false);
	if (text == NULL) {
		fprintf(stderr, "payswitch directory: %s: %s\n", path, strerror(errno));
		return 1;
	}
	bool found = false;
	char *updated = without_entry(text, kind, arguments[1], &found);
	int status = 1;
	if (updated != NULL && !found)
		fprintf(stderr, "payswitch directory remove: %s %s not found\n", kind_names[kind],
			arguments[1]);
	if (updated != NULL && found) {
		int error = replace_file(path, updated);
		if (error != 0)
			fprintf(stderr, "payswitch directory: %s: %s\n", path, strerror(-error));
		status = error == 0 ? 0 : 1;
	}
	free(updated);
	free(text);
	return status;
}

static int command_list(const char *path, bool list)
{
	char error[512];
	struct directory *directory = directory_load(path, error, sizeof(error));
	if (directory == NULL) {
		fprintf(stderr, "payswitch directory: %s\n", error);
		return 1;
	}
	for (uint64_t i = 0; list && i < directory->entry_count; i++) {
		const struct entry *entry = &directory->entries[i];
		printf("%s %.*s %llu\n", kind_names[entry->kind], entry->key_length, entry->key,
		       (unsigned long long)entry->account);
	}
	if (!list)
		printf("%s: ok, %llu pan, %llu merchant, %llu terminal\n", path,
		       (unsigned long long)directory->counts[DIRECTORY_PAN],
		       (unsigned long long)directory->counts[DIRECTORY_MERCHANT],
		       (unsigned long long)directory->counts[DIRECTORY_TERMINAL]);
	directory_destroy(directory);
	return 0;
}

int directory_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(directory_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *action = argv[1];
	/* Arguments after the action, FILE included. */
	int needed = !strcmp(action, "add") ? 4 : !strcmp(action, "remove") ? 3 : 1;
	if (strcmp(action, "add") && strcmp(action, "remove") && strcmp(action, "list") &&
	    strcmp(action, "check")) {
		fprintf(stderr, "payswitch directory: unknown action '%s'\n\n%s", action,
			directory_help);
		return 2;
	}
	if (argc - 2 != needed) {
		fputs(directory_help, stderr);
		return 2;
	}
	const char *path = argv[2];
	if (!strcmp(action, "add"))
		return command_add(path, argv + 3);
	if (!strcmp(action, "remove"))
		return command_remove(path, argv + 3);
	return command_list(path, !strcmp(action, "list"));
}
