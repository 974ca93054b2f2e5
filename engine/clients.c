/*
 * clients.c — the client-key store (DATA_DIR/clients) and `payswitch client`.
 *
 * clients.h has the file format and the rules; this file reads, checks and
 * writes it. Secrets pass through heap buffers (the file's text, the
 * principals); every such buffer is zeroed with sodium_memzero before it is
 * freed.
 */
#include "clients.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <xxhash.h>

#define CLIENTS_MAGIC "payswitch-clients"
#define CLIENTS_TEMP_SUFFIX ".tmp"
#define CHECKSUM_WORD "checksum"
/* "checksum " + 16 hex digits + "\n" */
#define CHECKSUM_LINE_BYTES (sizeof(CHECKSUM_WORD) + 16u + 1u)
#define HEADER_LINE_BYTES_MAX 64u
/* The largest file a full table can make: a header, ENGINE_CLIENTS_MAX
 * lines and the checksum. Anything bigger is refused before it is read. */
#define CLIENTS_FILE_BYTES_MAX \
	((size_t)HEADER_LINE_BYTES_MAX + (size_t)ENGINE_CLIENTS_MAX * ENGINE_CLIENTS_LINE_BYTES_MAX + \
	 CHECKSUM_LINE_BYTES)
/* Longest rendering of one client line: "client " + name 63 + id 10 +
 * role 8 + secret 64 + merchant 20 + 6 separators and a newline, plus 21
 * bytes per account. */
#define LINE_FIXED_BYTES_MAX 200u
#define LINE_ACCOUNT_BYTES_MAX 21u
_Static_assert(LINE_FIXED_BYTES_MAX + NETIO_PRINCIPAL_ACCOUNTS_MAX * LINE_ACCOUNT_BYTES_MAX <=
		       ENGINE_CLIENTS_LINE_BYTES_MAX,
	       "a full client line fits the line limit");
_Static_assert(ENGINE_CLIENTS_MAX < UINT32_MAX, "counts fit uint32_t");

static const char run_hint[] =
	"a running switch picks up the change on SIGHUP: kill -HUP $(pidof payswitch)\n";

static int say(char *error, size_t error_size, int code, const char *format, ...)
	__attribute__((format(printf, 4, 5)));

static int say(char *error, size_t error_size, int code, const char *format, ...)
{
	if (error != NULL && error_size > 0) {
		va_list arguments;
		va_start(arguments, format);
		vsnprintf(error, error_size, format, arguments);
		va_end(arguments);
	}
	return code;
}

static void sodium_ready(void)
{
	int status = sodium_init();   /* idempotent and thread-safe */
	assert(status >= 0);
	(void)status;
}

static int join_path(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */
/* ------------------------------------------------------------------------ */
bool engine_clients_name_ok(const char *name)
{
	size_t length = strnlen(name, NETIO_PRINCIPAL_NAME_MAX);
	if (length == 0 || length >= NETIO_PRINCIPAL_NAME_MAX)
		return false;
	for (size_t i = 0; i < length; i++) {
		char c = name[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

int engine_clients_check(const struct netio_principal *principal, char *error, size_t error_size)
{
	assert(principal != NULL);
	if (!engine_clients_name_ok(principal->name))
		return say(error, error_size, -EINVAL,
			   "bad client name (1 to 63 of A-Z a-z 0-9 . _ -)");
	if (principal->key_id == NETIO_KEY_ID_NONE)
		return say(error, error_size, -EINVAL, "key id 0 is not a key");
	bool terminal = principal->role == NETIO_ROLE_TERMINAL;
	if (principal->role != NETIO_ROLE_ADMIN && principal->role != NETIO_ROLE_ACQUIRER &&
	    !terminal)
		return say(error, error_size, -EINVAL, "unknown role %u", principal->role);
	if (principal->account_count > NETIO_PRINCIPAL_ACCOUNTS_MAX)
		return say(error, error_size, -EINVAL, "%u accounts (at most %u)",
			   principal->account_count, NETIO_PRINCIPAL_ACCOUNTS_MAX);
	bool bound = principal->merchant != 0 || principal->account_count > 0;
	if (terminal && !bound)
		return say(error, error_size, -EINVAL,
			   "a terminal needs a merchant or at least one account");
	if (!terminal && bound)
		return say(error, error_size, -EINVAL,
			   "only a terminal is bound to a merchant or accounts (an %s key acts on "
			   "any account)",
			   netio_role_name(principal->role));
	for (uint32_t i = 0; i < principal->account_count; i++) {
		if (principal->accounts[i] == 0)
			return say(error, error_size, -EINVAL, "account 0 is not an account");
		for (uint32_t j = 0; j < i; j++)
			if (principal->accounts[j] == principal->accounts[i])
				return say(error, error_size, -EINVAL, "account %llu appears twice",
					   (unsigned long long)principal->accounts[i]);
	}
	return 0;
}

/* A decimal uint64_t, digits only (no sign, no spaces), no overflow. */
static bool parse_u64(const char *text, uint64_t *value)
{
	if (text[0] < '0' || text[0] > '9')
		return false;
	uint64_t result = 0;
	for (const char *c = text; *c; c++) {
		if (*c < '0' || *c > '9')
			return false;
		uint64_t digit = (uint64_t)(*c - '0');
		if (result > (UINT64_MAX - digit) / 10u)
			return false;
		result = result * 10u + digit;
	}
	*value = result;
	return true;
}

int engine_clients_parse_accounts(const char *text, uint64_t *accounts, uint32_t *count,
				  char *error, size_t error_size)
{
	*count = 0;
	const char *at = text;
	for (;;) {
		const char *comma = strchr(at, ',');
		size_t length = comma ? (size_t)(comma - at) : strlen(at);
		char number[24];
		uint64_t account = 0;
		if (length == 0 || length >= sizeof(number))
			return say(error, error_size, -EINVAL,
				   "bad account list '%s' (account ids joined by commas)", text);
		memcpy(number, at, length);
		number[length] = '\0';
		if (!parse_u64(number, &account) || account == 0)
			return say(error, error_size, -EINVAL,
				   "bad account list '%s': '%s' is not an account id (1 .. 2^64-1)",
				   text, number);
		if (*count == NETIO_PRINCIPAL_ACCOUNTS_MAX)
			return say(error, error_size, -EINVAL,
				   "bad account list: more than %u accounts",
				   NETIO_PRINCIPAL_ACCOUNTS_MAX);
		for (uint32_t i = 0; i < *count; i++)
			if (accounts[i] == account)
				return say(error, error_size, -EINVAL,
					   "bad account list: account %llu appears twice",
					   (unsigned long long)account);
		accounts[(*count)++] = account;
		if (comma == NULL)
			return 0;
		at = comma + 1;
	}
}

/* ------------------------------------------------------------------------ */
/* The whole table: names and key ids unique, ids below next_key_id          */
/* ------------------------------------------------------------------------ */
static int compare_by_name(const void *a, const void *b, void *context)
{
	const struct netio_principal *principals = context;
	return strcmp(principals[*(const uint32_t *)a].name,
		      principals[*(const uint32_t *)b].name);
}

static int compare_by_key_id(const void *a, const void *b, void *context)
{
	const struct netio_principal *principals = context;
	uint32_t x = principals[*(const uint32_t *)a].key_id;
	uint32_t y = principals[*(const uint32_t *)b].key_id;
	return x < y ? -1 : x > y;
}

/* File line of principal i: the header is line 1. */
static uint32_t line_of(uint32_t index)
{
	return index + 2u;
}

/* Sorts an index by name, then by key id, and checks neighbours: O(n log n)
 * for the 65,536 clients a table may hold. */
static int check_unique(const char *path, const struct engine_clients *clients, char *error,
			size_t error_size)
{
	uint32_t count = clients->count;
	if (count < 2)
		return 0;
	uint32_t *order = malloc((size_t)count * sizeof(*order));
	if (order == NULL)
		return say(error, error_size, -ENOMEM, "%s: out of memory", path);
	struct netio_principal *principals = clients->principals;
	int result = 0;
	for (uint32_t i = 0; i < count; i++)
		order[i] = i;
	qsort_r(order, count, sizeof(*order), compare_by_name, principals);
	for (uint32_t i = 1; i < count && result == 0; i++) {
		uint32_t a = order[i - 1], b = order[i];
		if (strcmp(principals[a].name, principals[b].name) == 0)
			result = say(error, error_size, -EINVAL,
				     "%s line %u: client name '%s' is already used on line %u", path,
				     line_of(a > b ? a : b), principals[b].name, line_of(a < b ? a : b));
	}
	qsort_r(order, count, sizeof(*order), compare_by_key_id, principals);
	for (uint32_t i = 1; i < count && result == 0; i++) {
		uint32_t a = order[i - 1], b = order[i];
		if (principals[a].key_id == principals[b].key_id)
			result = say(error, error_size, -EINVAL,
				     "%s line %u: key id %u is already used on line %u", path,
				     line_of(a > b ? a : b), principals[b].key_id,
				     line_of(a < b ? a : b));
	}
	free(order);
	return result;
}

static int check_table(const char *path, const struct engine_clients *clients, char *error,
		       size_t error_size)
{
	if (clients->next_key_id == NETIO_KEY_ID_NONE)
		return say(error, error_size, -EINVAL, "%s line 1: next key id 0", path);
	if (clients->count > ENGINE_CLIENTS_MAX)
		return say(error, error_size, -EINVAL, "%s: %u clients (at most %u)", path,
			   clients->count, ENGINE_CLIENTS_MAX);
	for (uint32_t i = 0; i < clients->count; i++) {
		const struct netio_principal *principal = &clients->principals[i];
		char reason[256];
		if (engine_clients_check(principal, reason, sizeof(reason)) != 0)
			return say(error, error_size, -EINVAL, "%s line %u: %s", path, line_of(i),
				   reason);
		if (principal->key_id >= clients->next_key_id)
			return say(error, error_size, -EINVAL,
				   "%s line %u: key id %u is not below the next key id %u of line 1",
				   path, line_of(i), principal->key_id, clients->next_key_id);
	}
	return check_unique(path, clients, error, error_size);
}

/* ------------------------------------------------------------------------ */
/* Parsing the file's text                                                   */
/* ------------------------------------------------------------------------ */
#define CLIENT_FIELDS 7u

/* Splits line (NUL-terminated, no newline) at single spaces into at most
 * `capacity` fields; returns how many, or capacity + 1 when there are more. */
static uint32_t split_fields(char *line, char **fields, uint32_t capacity)
{
	uint32_t count = 0;
	char *at = line;
	for (;;) {
		if (count == capacity)
			return capacity + 1;
		fields[count++] = at;
		char *space = strchr(at, ' ');
		if (space == NULL)
			return count;
		*space = '\0';
		at = space + 1;
	}
}

static int parse_bindings(char *merchant_text, char *accounts_text,
			  struct netio_principal *principal, char *reason, size_t reason_size)
{
	principal->merchant = 0;
	principal->account_count = 0;
	if (strcmp(merchant_text, "-") != 0 &&
	    (!parse_u64(merchant_text, &principal->merchant) || principal->merchant == 0))
		return say(reason, reason_size, -EINVAL, "bad merchant '%s' (an account id or -)",
			   merchant_text);
	if (strcmp(accounts_text, "-") == 0)
		return 0;
	return engine_clients_parse_accounts(accounts_text, principal->accounts,
					     &principal->account_count, reason, reason_size);
}

/* "client NAME KEY_ID ROLE HEX_SECRET MERCHANT ACCOUNTS": syntax only;
 * check_table() judges the values. */
static int parse_client(char *line, struct netio_principal *principal, char *reason,
			size_t reason_size)
{
	char *fields[CLIENT_FIELDS];
	memset(principal, 0, sizeof(*principal));
	if (split_fields(line, fields, CLIENT_FIELDS) != CLIENT_FIELDS ||
	    strcmp(fields[0], "client") != 0)
		return say(reason, reason_size, -EINVAL,
			   "not a client line (client NAME KEY_ID ROLE SECRET MERCHANT ACCOUNTS)");
	if (strlen(fields[1]) >= NETIO_PRINCIPAL_NAME_MAX || !engine_clients_name_ok(fields[1]))
		return say(reason, reason_size, -EINVAL,
			   "bad client name (1 to 63 of A-Z a-z 0-9 . _ -)");
	memcpy(principal->name, fields[1], strlen(fields[1]) + 1);
	uint64_t key_id = 0;
	if (!parse_u64(fields[2], &key_id) || key_id == 0 || key_id >= UINT32_MAX)
		return say(reason, reason_size, -EINVAL, "bad key id '%s'", fields[2]);
	principal->key_id = (uint32_t)key_id;
	principal->role = (uint8_t)netio_role_parse(fields[3]);
	if (principal->role == NETIO_ROLE_NONE)
		return say(reason, reason_size, -EINVAL,
			   "unknown role '%s' (admin, acquirer, terminal)", fields[3]);
	size_t secret_length = 0;
	if (strlen(fields[4]) != 2u * NETIO_KEY_SIZE ||
	    sodium_hex2bin(principal->secret, NETIO_KEY_SIZE, fields[4], strlen(fields[4]), NULL,
			   &secret_length, NULL) != 0 ||
	    secret_length != NETIO_KEY_SIZE)
		return say(reason, reason_size, -EINVAL, "bad secret (%u hex digits)",
			   2u * NETIO_KEY_SIZE);
	return parse_bindings(fields[5], fields[6], principal, reason, reason_size);
}

static int parse_header(char *line, uint32_t *next_key_id, char *reason, size_t reason_size)
{
	char *fields[3];
	uint64_t version = 0, next = 0;
	if (split_fields(line, fields, 3) != 3 || strcmp(fields[0], CLIENTS_MAGIC) != 0)
		return say(reason, reason_size, -EINVAL,
			   "not a clients file (" CLIENTS_MAGIC " VERSION NEXT_KEY_ID)");
	if (!parse_u64(fields[1], &version) || version != ENGINE_CLIENTS_FORMAT_VERSION)
		return say(reason, reason_size, -EINVAL, "format version '%s' (this build reads %u)",
			   fields[1], ENGINE_CLIENTS_FORMAT_VERSION);
	if (!parse_u64(fields[2], &next) || next == 0 || next > UINT32_MAX)
		return say(reason, reason_size, -EINVAL, "bad next key id '%s'", fields[2]);
	*next_key_id = (uint32_t)next;
	return 0;
}

/* The last line must be "checksum HEX" over every byte before it. Returns
 * the length of the checked part (where the checksum line starts). */
static int check_checksum(const char *path, const char *text, size_t length, size_t *body,
			  char *error, size_t error_size)
{
	if (length == 0 || text[length - 1] != '\n')
		return say(error, error_size, -EINVAL,
			   "%s: does not end with a checksum line (truncated?)", path);
	size_t start = length - 1;
	while (start > 0 && text[start - 1] != '\n')
		start--;
	char expected[CHECKSUM_LINE_BYTES + 1];
	snprintf(expected, sizeof(expected), CHECKSUM_WORD " %016llx\n",
		 (unsigned long long)XXH3_64bits(text, start));
	if (length - start != CHECKSUM_LINE_BYTES ||
	    memcmp(text + start, CHECKSUM_WORD " ", sizeof(CHECKSUM_WORD)) != 0)
		return say(error, error_size, -EINVAL,
			   "%s: the last line is not 'checksum HEX' (truncated or edited?)", path);
	if (memcmp(text + start, expected, CHECKSUM_LINE_BYTES) != 0)
		return say(error, error_size, -EINVAL,
			   "%s: checksum mismatch (the file is corrupt or was edited by hand; "
			   "restore it or rebuild it with 'payswitch client')",
			   path);
	*body = start;
	return 0;
}

/* Lines of the body after the header: the number of clients it claims. */
static uint32_t count_lines(const char *text, size_t length)
{
	uint64_t lines = 0;
	for (const char *at = text; (at = memchr(at, '\n', length - (size_t)(at - text))) != NULL;
	     at++)
		lines++;
	return lines > UINT32_MAX ? UINT32_MAX : (uint32_t)lines;
}

/* Parses text (modified in place) into clients; the array has one spare
 * entry so that add can append without copying secrets around. */
static int parse_text(const char *path, char *text, size_t length, struct engine_clients *clients,
		      char *error, size_t error_size)
{
	size_t body = 0;
	int result = check_checksum(path, text, length, &body, error, error_size);
	if (result != 0)
		return result;
	uint32_t lines = count_lines(text, body);
	if (lines == 0)
		return say(error, error_size, -EINVAL, "%s line 1: the header is missing", path);
	if (lines - 1u > ENGINE_CLIENTS_MAX)
		return say(error, error_size, -EINVAL, "%s: %u clients (at most %u)", path,
			   lines - 1u, ENGINE_CLIENTS_MAX);
	clients->principals = calloc((size_t)lines, sizeof(struct netio_principal));
	if (clients->principals == NULL)
		return say(error, error_size, -ENOMEM, "%s: out of memory", path);
	if (memchr(text, '\0', body) != NULL)
		return say(error, error_size, -EINVAL, "%s: contains a NUL byte", path);
	char reason[256];
	char *line = text;
	for (uint32_t number = 1; number <= lines; number++) {
		/* Every body line ends with a newline: the checksum line follows. */
		char *end = strchr(line, '\n');
		assert(end != NULL && end < text + body);
		*end = '\0';
		result = number == 1
				 ? parse_header(line, &clients->next_key_id, reason, sizeof(reason))
				 : parse_client(line, &clients->principals[number - 2u], reason,
						sizeof(reason));
		if (result != 0)
			return say(error, error_size, result, "%s line %u: %s", path, number, reason);
		clients->count = number - 1u;
		line = end + 1;
	}
	return check_table(path, clients, error, error_size);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */
/* Reads the whole of fd (a regular file of `size` bytes) into a new buffer. */
static char *read_whole(int fd, size_t size, int *result)
{
	char *text = malloc(size + 1);
	if (text == NULL) {
		*result = -ENOMEM;
		return NULL;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, text + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*result = n < 0 ? -errno : -EIO;   /* shrank while read: a writer not ours */
			sodium_memzero(text, size + 1);
			free(text);
			return NULL;
		}
		got += (size_t)n;
	}
	text[size] = '\0';
	*result = 0;
	return text;
}

/* Opens path for reading and checks what it is: a regular file nobody but
 * its owner may read, of a plausible size. */
static int open_checked(const char *path, size_t *size, char *error, size_t error_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT
				       : say(error, error_size, -errno, "%s: %s", path, strerror(errno));
	struct stat status;
	int result = 0;
	if (fstat(fd, &status) != 0)
		result = say(error, error_size, -errno, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(status.st_mode))
		result = say(error, error_size, -EINVAL, "%s: not a regular file", path);
	else if ((status.st_mode & 077) != 0)
		result = say(error, error_size, -EACCES,
			     "%s: mode %04o lets group or others read the client secrets; refusing "
			     "it (chmod 600 %s)",
			     path, (unsigned)(status.st_mode & 07777), path);
	else if ((uint64_t)status.st_size > CLIENTS_FILE_BYTES_MAX)
		result = say(error, error_size, -EINVAL, "%s: %lld bytes, more than %zu clients fill",
			     path, (long long)status.st_size, CLIENTS_FILE_BYTES_MAX);
	if (result != 0) {
		close(fd);
		return result;
	}
	*size = (size_t)status.st_size;
	return fd;
}

static int read_path(const char *path, struct engine_clients *clients, char *error,
		     size_t error_size)
{
	memset(clients, 0, sizeof(*clients));
	size_t size = 0;
	int fd = open_checked(path, &size, error, error_size);
	if (fd == -ENOENT) {
		/* No file yet: an empty table, ids from 1, one spare slot. */
		clients->next_key_id = 1;
		clients->principals = calloc(1, sizeof(struct netio_principal));
		return clients->principals != NULL ? 0
						    : say(error, error_size, -ENOMEM, "out of memory");
	}
	if (fd < 0)
		return fd;
	int result = 0;
	char *text = read_whole(fd, size, &result);
	close(fd);
	if (text == NULL)
		return say(error, error_size, result, "%s: %s", path, strerror(-result));
	result = parse_text(path, text, size, clients, error, error_size);
	sodium_memzero(text, size + 1);
	free(text);
	if (result != 0)
		engine_clients_release(clients);
	return result;
}

int engine_clients_read(const char *data_dir, struct engine_clients *clients, char *error,
			size_t error_size)
{
	assert(data_dir != NULL);
	assert(clients != NULL);
	sodium_ready();
	char path[PATH_MAX];
	if (join_path(path, sizeof(path), data_dir, ENGINE_CLIENTS_FILE) != 0)
		return say(error, error_size, -ENAMETOOLONG, "%s: path too long", data_dir);
	return read_path(path, clients, error, error_size);
}

void engine_clients_free(struct netio_principal *principals, uint32_t count)
{
	if (principals == NULL)
		return;
	sodium_memzero(principals, (size_t)count * sizeof(*principals));
	free(principals);
}

void engine_clients_release(struct engine_clients *clients)
{
	if (clients == NULL)
		return;
	/* The array has count + 1 entries (the spare one may hold a secret). */
	engine_clients_free(clients->principals, clients->count + 1u);
	memset(clients, 0, sizeof(*clients));
}

int engine_clients_load(const char *data_dir, struct netio_principal **out, uint32_t *count,
			char *error, size_t error_size)
{
	assert(out != NULL);
	assert(count != NULL);
	*out = NULL;
	*count = 0;
	struct engine_clients clients;
	int result = engine_clients_read(data_dir, &clients, error, error_size);
	if (result != 0)
		return result;
	/* Hand over count + 1 entries as count: the spare one is zero here. */
	*out = clients.principals;
	*count = clients.count;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */
static size_t format_bindings(const struct netio_principal *principal, char *out, size_t size)
{
	int n = principal->merchant == 0
			? snprintf(out, size, " -")
			: snprintf(out, size, " %llu", (unsigned long long)principal->merchant);
	size_t at = (size_t)n;
	for (uint32_t i = 0; i < principal->account_count; i++)
		at += (size_t)snprintf(out + at, size - at, "%s%llu", i == 0 ? " " : ",",
				       (unsigned long long)principal->accounts[i]);
	if (principal->account_count == 0)
		at += (size_t)snprintf(out + at, size - at, " -");
	assert(at < size);
	return at;
}

static size_t format_client(const struct netio_principal *principal, char *out, size_t size)
{
	char hex[2 * NETIO_KEY_SIZE + 1];
	sodium_bin2hex(hex, sizeof(hex), principal->secret, NETIO_KEY_SIZE);
	int n = snprintf(out, size, "client %s %u %s %s", principal->name, principal->key_id,
			 netio_role_name(principal->role), hex);
	sodium_memzero(hex, sizeof(hex));
	assert(n > 0 && (size_t)n < size);
	size_t at = (size_t)n;
	at += format_bindings(principal, out + at, size - at);
	assert(at + 1 < size);
	out[at++] = '\n';
	out[at] = '\0';
	return at;
}

/* Renders the whole file; *text is malloc'd (zero it before freeing). */
static int format_text(const struct engine_clients *clients, char **text, size_t *length)
{
	size_t capacity = HEADER_LINE_BYTES_MAX + CHECKSUM_LINE_BYTES + 1;
	for (uint32_t i = 0; i < clients->count; i++)
		capacity += LINE_FIXED_BYTES_MAX +
			    (size_t)clients->principals[i].account_count * LINE_ACCOUNT_BYTES_MAX;
	char *out = malloc(capacity);
	if (out == NULL)
		return -ENOMEM;
	size_t at = (size_t)snprintf(out, capacity, CLIENTS_MAGIC " %u %u\n",
				     ENGINE_CLIENTS_FORMAT_VERSION, clients->next_key_id);
	for (uint32_t i = 0; i < clients->count; i++)
		at += format_client(&clients->principals[i], out + at, capacity - at);
	at += (size_t)snprintf(out + at, capacity - at, CHECKSUM_WORD " %016llx\n",
			       (unsigned long long)XXH3_64bits(out, at));
	assert(at < capacity);
	*text = out;
	*length = at;
	return 0;
}

/* Compares what the file holds (not padding or bytes past the name). */
static bool principal_same(const struct netio_principal *a, const struct netio_principal *b)
{
	return a->key_id == b->key_id && a->role == b->role && a->merchant == b->merchant &&
	       a->account_count == b->account_count &&
	       strcmp(a->name, b->name) == 0 &&
	       sodium_memcmp(a->secret, b->secret, NETIO_KEY_SIZE) == 0 &&
	       memcmp(a->accounts, b->accounts, (size_t)a->account_count * sizeof(a->accounts[0])) == 0;
}

/* Check after rendering, before the disk: the text must read back as the
 * very table it was made from. */
static int check_round_trip(const char *path, const char *text, size_t length,
			    const struct engine_clients *clients, char *error, size_t error_size)
{
	char *copy = malloc(length + 1);
	if (copy == NULL)
		return say(error, error_size, -ENOMEM, "out of memory");
	memcpy(copy, text, length + 1);
	struct engine_clients back;
	memset(&back, 0, sizeof(back));
	int result = parse_text(path, copy, length, &back, error, error_size);
	sodium_memzero(copy, length + 1);
	free(copy);
	bool same = result == 0 && back.count == clients->count &&
		    back.next_key_id == clients->next_key_id;
	for (uint32_t i = 0; same && i < back.count; i++)
		same = principal_same(&back.principals[i], &clients->principals[i]);
	if (result == 0 && !same)
		result = say(error, error_size, -EIO, "%s: the rendered table does not read back",
			     path);
	engine_clients_release(&back);
	return result;
}

static int write_all(int fd, const char *text, size_t length)
{
	size_t done = 0;
	while (done < length) {
		ssize_t n = write(fd, text + done, length - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* temp → fsync → rename over path → fsync the directory. */
static int replace_atomically(const char *data_dir, const char *path, const char *text,
			      size_t length, char *error, size_t error_size)
{
	char temp[PATH_MAX];
	if (join_path(temp, sizeof(temp), data_dir, ENGINE_CLIENTS_FILE CLIENTS_TEMP_SUFFIX) != 0)
		return say(error, error_size, -ENAMETOOLONG, "%s: path too long", data_dir);
	/* A temp file left by a crash is stale: the lock says no one writes it. */
	int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return say(error, error_size, -errno, "%s: %s", temp, strerror(errno));
	int result = fchmod(fd, 0600) != 0 ? -errno : write_all(fd, text, length);
	if (result == 0 && fsync(fd) != 0)
		result = -errno;
	if (close(fd) != 0 && result == 0)
		result = -errno;
	if (result == 0 && rename(temp, path) != 0)
		result = -errno;
	if (result != 0) {
		unlink(temp);
		return say(error, error_size, result, "%s: %s", temp, strerror(-result));
	}
	int dir_fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0 || fsync(dir_fd) != 0)
		result = say(error, error_size, -errno, "%s: fsync of the directory: %s", data_dir,
			     strerror(errno));
	if (dir_fd >= 0)
		close(dir_fd);
	return result;
}

int engine_clients_write(const char *data_dir, const struct engine_clients *clients,
			 char *error, size_t error_size)
{
	assert(data_dir != NULL);
	assert(clients != NULL);
	sodium_ready();
	char path[PATH_MAX];
	if (join_path(path, sizeof(path), data_dir, ENGINE_CLIENTS_FILE) != 0)
		return say(error, error_size, -ENAMETOOLONG, "%s: path too long", data_dir);
	int result = check_table(path, clients, error, error_size);
	if (result != 0)
		return result;
	char *text = NULL;
	size_t length = 0;
	if (format_text(clients, &text, &length) != 0)
		return say(error, error_size, -ENOMEM, "out of memory");
	result = check_round_trip(path, text, length, clients, error, error_size);
	if (result == 0)
		result = replace_atomically(data_dir, path, text, length, error, error_size);
	sodium_memzero(text, length);
	free(text);
	return result;
}

/* ------------------------------------------------------------------------ */
/* Edits: lock, read, change, write                                          */
/* ------------------------------------------------------------------------ */
/* An exclusive flock on the data dir serialises edits (two `client add` at
 * once would otherwise both take the same next key id). Returns the fd. */
static int lock_dir(const char *data_dir, char *error, size_t error_size)
{
	int fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return say(error, error_size, -errno, "data dir %s: %s%s", data_dir, strerror(errno),
			   errno == ENOENT ? " (payswitch format creates it)" : "");
	while (flock(fd, LOCK_EX) != 0) {
		if (errno == EINTR)
			continue;
		int result = say(error, error_size, -errno, "data dir %s: flock: %s", data_dir,
				 strerror(errno));
		close(fd);
		return result;
	}
	return fd;
}

static void unlock_dir(int fd)
{
	close(fd);   /* releases the flock */
}

static int find_name(const struct engine_clients *clients, const char *name)
{
	for (uint32_t i = 0; i < clients->count; i++)
		if (strcmp(clients->principals[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Gives principal the next key id and a fresh secret; copies both to key. */
static int issue_key(const char *data_dir, struct engine_clients *clients,
		     struct netio_principal *principal, struct netio_key *key, char *error,
		     size_t error_size)
{
	/* The id UINT32_MAX is never issued, so next_key_id cannot wrap to 0. */
	if (clients->next_key_id >= UINT32_MAX)
		return say(error, error_size, -ENOSPC, "%s/%s: every key id has been issued",
			   data_dir, ENGINE_CLIENTS_FILE);
	principal->key_id = clients->next_key_id++;
	randombytes_buf(principal->secret, NETIO_KEY_SIZE);
	key->id = principal->key_id;
	memcpy(key->secret, principal->secret, NETIO_KEY_SIZE);
	return 0;
}

enum edit { EDIT_ADD, EDIT_REMOVE, EDIT_ROTATE };

static int apply_edit(const char *data_dir, struct engine_clients *clients, enum edit edit,
		      const struct netio_principal *spec, struct netio_key *key, char *error,
		      size_t error_size)
{
	int found = find_name(clients, spec->name);
	if (edit == EDIT_ADD && found >= 0)
		return say(error, error_size, -EEXIST,
			   "client '%s' exists already (key id %u); 'payswitch client rotate' "
			   "gives it a new key, 'remove' deletes it",
			   spec->name, clients->principals[found].key_id);
	if (edit != EDIT_ADD && found < 0)
		return say(error, error_size, -ENOENT, "no client named '%s' in %s/%s", spec->name,
			   data_dir, ENGINE_CLIENTS_FILE);
	if (edit == EDIT_ADD && clients->count >= ENGINE_CLIENTS_MAX)
		return say(error, error_size, -ENOSPC, "%s/%s: %u clients, the most a store holds",
			   data_dir, ENGINE_CLIENTS_FILE, ENGINE_CLIENTS_MAX);
	if (edit == EDIT_REMOVE) {
		struct netio_principal *gone = &clients->principals[found];
		memmove(gone, gone + 1, (size_t)(clients->count - (uint32_t)found - 1u) * sizeof(*gone));
		clients->count--;
		/* The old last entry is now the spare one: no secret stays there. */
		sodium_memzero(&clients->principals[clients->count], sizeof(*gone));
		return 0;
	}
	if (edit == EDIT_ADD) {
		/* The spare entry read_path() allocated past the last client. */
		struct netio_principal *added = &clients->principals[clients->count];
		memset(added, 0, sizeof(*added));
		memcpy(added->name, spec->name, strlen(spec->name) + 1);
		added->role = spec->role;
		added->merchant = spec->merchant;
		added->account_count = spec->account_count;
		memcpy(added->accounts, spec->accounts,
		       (size_t)spec->account_count * sizeof(spec->accounts[0]));
		int result = issue_key(data_dir, clients, added, key, error, error_size);
		if (result == 0)
			clients->count++;
		return result;
	}
	return issue_key(data_dir, clients, &clients->principals[found], key, error, error_size);
}

static int edit_store(const char *data_dir, enum edit edit, const struct netio_principal *spec,
		      struct netio_key *key, char *error, size_t error_size)
{
	int lock = lock_dir(data_dir, error, error_size);
	if (lock < 0)
		return lock;
	struct engine_clients clients;
	int result = engine_clients_read(data_dir, &clients, error, error_size);
	if (result == 0)
		result = apply_edit(data_dir, &clients, edit, spec, key, error, error_size);
	if (result == 0)
		result = engine_clients_write(data_dir, &clients, error, error_size);
	engine_clients_release(&clients);
	unlock_dir(lock);
	if (result != 0 && key != NULL)
		sodium_memzero(key, sizeof(*key));
	return result;
}

int engine_clients_add(const char *data_dir, const struct netio_principal *spec,
		       struct netio_key *key, char *error, size_t error_size)
{
	assert(data_dir != NULL);
	assert(spec != NULL);
	assert(key != NULL);
	memset(key, 0, sizeof(*key));
	struct netio_principal checked = *spec;
	checked.key_id = 1;   /* a placeholder: the store assigns the id */
	int result = engine_clients_check(&checked, error, error_size);
	sodium_memzero(&checked, sizeof(checked));
	if (result != 0)
		return result;
	struct netio_principal clean = *spec;
	clean.key_id = NETIO_KEY_ID_NONE;
	sodium_memzero(clean.secret, sizeof(clean.secret));
	result = edit_store(data_dir, EDIT_ADD, &clean, key, error, error_size);
	sodium_memzero(&clean, sizeof(clean));
	return result;
}

static int edit_by_name(const char *data_dir, enum edit edit, const char *name,
			struct netio_key *key, char *error, size_t error_size)
{
	assert(data_dir != NULL);
	assert(name != NULL);
	if (!engine_clients_name_ok(name))
		return say(error, error_size, -EINVAL,
			   "bad client name '%s' (1 to 63 of A-Z a-z 0-9 . _ -)", name);
	struct netio_principal spec;
	memset(&spec, 0, sizeof(spec));
	memcpy(spec.name, name, strlen(name) + 1);
	return edit_store(data_dir, edit, &spec, key, error, error_size);
}

int engine_clients_remove(const char *data_dir, const char *name, char *error,
			  size_t error_size)
{
	return edit_by_name(data_dir, EDIT_REMOVE, name, NULL, error, error_size);
}

int engine_clients_rotate(const char *data_dir, const char *name, struct netio_key *key,
			  char *error, size_t error_size)
{
	assert(key != NULL);
	memset(key, 0, sizeof(*key));
	return edit_by_name(data_dir, EDIT_ROTATE, name, key, error, error_size);
}

/* ------------------------------------------------------------------------ */
/* Key files                                                                 */
/* ------------------------------------------------------------------------ */
#define KEY_FILE_BYTES_MAX 512u

/* Opens path for a key file before the store changes, so that a key file
 * that cannot be written refuses the edit instead of leaving a client whose
 * secret nobody holds. *created: the file is new (unlink it if the store
 * then refuses). Never follows a symlink. */
static int key_file_open(const char *path, bool force, bool *created, char *error,
			 size_t error_size)
{
	*created = true;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST && force) {
		*created = false;
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd >= 0)
		return fd;
	if (errno == EEXIST)
		return say(error, error_size, -EEXIST,
			   "key file %s exists already (--force replaces it, --key-out FILE "
			   "writes another)",
			   path);
	return say(error, error_size, -errno, "key file %s: %s", path, strerror(errno));
}

static int key_file_fill(int fd, const char *path, const struct netio_key *key, const char *name,
			 char *error, size_t error_size)
{
	char text[KEY_FILE_BYTES_MAX];
	int length = netio_key_format(key, name, text, sizeof(text));
	int result = length < 0 ? length : 0;
	if (result == 0 && (ftruncate(fd, 0) != 0 || fchmod(fd, 0600) != 0))
		result = -errno;
	if (result == 0)
		result = write_all(fd, text, (size_t)length);
	if (result == 0 && fsync(fd) != 0)
		result = -errno;
	sodium_memzero(text, sizeof(text));
	if (result != 0)
		return say(error, error_size, result, "key file %s: %s", path, strerror(-result));
	return 0;
}

int engine_clients_write_key(const char *path, const struct netio_key *key, const char *name,
			     bool force, char *error, size_t error_size)
{
	assert(path != NULL);
	assert(key != NULL);
	assert(name != NULL);
	sodium_ready();
	bool created = false;
	int fd = key_file_open(path, force, &created, error, error_size);
	if (fd < 0)
		return fd;
	int result = key_file_fill(fd, path, key, name, error, error_size);
	if (close(fd) != 0 && result == 0)
		result = say(error, error_size, -errno, "key file %s: %s", path, strerror(errno));
	if (result != 0 && created)
		unlink(path);
	return result;
}

/* ------------------------------------------------------------------------ */
/* `payswitch client`                                                        */
/* ------------------------------------------------------------------------ */
static const char client_help[] =
	"usage: payswitch client ACTION [NAME] [OPTIONS]\n"
	"\n"
	"Manages the client keys of a data dir (DATA_DIR/clients, mode 0600): who may\n"
	"send datagrams to the switch, and with which role. Every edit writes a\n"
	"temporary file, syncs it and renames it over the store; a running switch\n"
	"reloads the keys on SIGHUP (kill -HUP $(pidof payswitch)).\n"
	"\n"
	"actions:\n"
	"  add NAME --role ROLE [--accounts LIST] [--merchant ID] [--key-out FILE]\n"
	"                  issue a key; write it to FILE (default NAME.key)\n"
	"  remove NAME     delete a client; its key is refused from then on\n"
	"  list            name, key id, role and bindings of every client\n"
	"  rotate NAME [--key-out FILE]\n"
	"                  a new key id and secret for NAME; the old key is refused\n"
	"Every action takes --data-dir DIR (default: data) and --help.\n"
	"Exit status: 0 done, 1 refused (duplicate, unknown name, invalid store), 2 usage.\n";

static const char add_help[] =
	"usage: payswitch client add NAME --role admin|acquirer|terminal [--accounts LIST]\n"
	"                            [--merchant ID] [--key-out FILE] [--force]\n"
	"                            [--data-dir DIR]\n"
	"\n"
	"Issues a key for a new client NAME ([A-Za-z0-9._-], 1 to 63 characters): the\n"
	"next key id (ids are never reused) and a random 32-byte secret. Writes the\n"
	"client's key file (mode 0600) for netio_key_load / --key options.\n"
	"\n"
	"  --role ROLE       admin: open, deposit, limits, freeze, unfreeze, close,\n"
	"                    balance, lookup; acquirer: pay, hold, capture, void,\n"
	"                    refund, lookup, balance for any account; terminal: the\n"
	"                    acquirer's kinds for its bound accounts or merchant only\n"
	"  --accounts LIST   terminal: account ids it acts for, joined by commas\n"
	"                    (at most 64)\n"
	"  --merchant ID     terminal: the merchant account it is paid into\n"
	"                    (a terminal needs --accounts, --merchant or both)\n"
	"  --key-out FILE    where to write the key file (default: NAME.key here)\n"
	"  --force           replace FILE if it exists\n"
	"  --data-dir DIR    the switch's data dir (default: data)\n";

static const char remove_help[] =
	"usage: payswitch client remove NAME [--data-dir DIR]\n"
	"\n"
	"Deletes client NAME. Its key id is never issued again; a running switch\n"
	"refuses the key from its next datagram once reloaded (SIGHUP).\n";

static const char list_help[] =
	"usage: payswitch client list [--data-dir DIR]\n"
	"\n"
	"Prints name, key id, role and bindings of every client (never a secret).\n";

static const char rotate_help[] =
	"usage: payswitch client rotate NAME [--key-out FILE] [--force] [--data-dir DIR]\n"
	"\n"
	"Gives client NAME a new key id and a new secret, keeping its role and\n"
	"bindings; the old key id is gone (refused once a running switch reloads on\n"
	"SIGHUP). Writes the new key file to FILE (default: NAME.key here; --force\n"
	"replaces an existing one, such as the old key file).\n";

struct client_command {
	const char *action;
	const char *help;
	bool takes_name;
	bool takes_bindings;   /* --role, --accounts, --merchant */
	bool takes_key_out;    /* --key-out, --force */
};

static const struct client_command client_commands[] = {
	{ "add", add_help, true, true, true },
	{ "remove", remove_help, true, false, false },
	{ "list", list_help, false, false, false },
	{ "rotate", rotate_help, true, false, true },
};

struct client_arguments {
	const char *name;
	const char *data_dir;
	const char *role;
	const char *accounts;
	const char *merchant;
	const char *key_out;
	bool force;
};

static const struct option client_options[] = {
	{ "data-dir", required_argument, NULL, 'd' },
	{ "role", required_argument, NULL, 'r' },
	{ "accounts", required_argument, NULL, 'a' },
	{ "merchant", required_argument, NULL, 'm' },
	{ "key-out", required_argument, NULL, 'k' },
	{ "force", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Returns -1 to go on, or an exit status (0 after --help, 2 usage). */
static int client_parse(const struct client_command *command, int argc, char **argv,
			struct client_arguments *arguments)
{
	memset(arguments, 0, sizeof(*arguments));
	arguments->data_dir = "data";
	optind = 0;   /* glibc: a full re-initialisation, the command may run twice */
	opterr = 1;
	int option;
	while ((option = getopt_long(argc, argv, "+h", client_options, NULL)) != -1 ||
	       optind < argc) {
		if (option == -1) {
			/* A positional argument; options may follow it ("+": stop at it). */
			if (arguments->name != NULL || !command->takes_name) {
				fprintf(stderr, "payswitch client %s: unexpected argument '%s'\n",
					command->action, argv[optind]);
				return 2;
			}
			arguments->name = argv[optind++];
			continue;
		}
		bool binding = option == 'r' || option == 'a' || option == 'm';
		bool key_out = option == 'k' || option == 'f';
		if (option == '?' || (binding && !command->takes_bindings) ||
		    (key_out && !command->takes_key_out)) {
			for (const struct option *o = client_options; option != '?' && o->name; o++)
				if (o->val == option)
					fprintf(stderr, "payswitch client %s: --%s is not an option of "
							"%s\n",
						command->action, o->name, command->action);
			fprintf(stderr, "%s", command->help);
			return 2;
		}
		switch (option) {
		case 'h': fputs(command->help, stdout); return 0;
		case 'd': arguments->data_dir = optarg; break;
		case 'r': arguments->role = optarg; break;
		case 'a': arguments->accounts = optarg; break;
		case 'm': arguments->merchant = optarg; break;
		case 'k': arguments->key_out = optarg; break;
		case 'f': arguments->force = true; break;
		default: return 2;
		}
	}
	if (command->takes_name && arguments->name == NULL) {
		fprintf(stderr, "payswitch client %s: NAME is missing\n\n%s", command->action,
			command->help);
		return 2;
	}
	return -1;
}

/* Builds the principal `add` asks for from its flags. */
static int spec_from(const struct client_arguments *arguments, struct netio_principal *spec)
{
	char reason[256];
	memset(spec, 0, sizeof(*spec));
	if (!engine_clients_name_ok(arguments->name)) {
		fprintf(stderr, "payswitch client add: bad client name '%s' (1 to 63 of A-Z a-z "
				"0-9 . _ -)\n", arguments->name);
		return 2;
	}
	memcpy(spec->name, arguments->name, strlen(arguments->name) + 1);
	if (arguments->role == NULL) {
		fprintf(stderr, "payswitch client add: --role admin|acquirer|terminal is missing\n");
		return 2;
	}
	spec->role = (uint8_t)netio_role_parse(arguments->role);
	if (spec->role == NETIO_ROLE_NONE) {
		fprintf(stderr, "payswitch client add: unknown role '%s' (admin, acquirer, "
				"terminal)\n", arguments->role);
		return 2;
	}
	if (arguments->merchant != NULL &&
	    (!parse_u64(arguments->merchant, &spec->merchant) || spec->merchant == 0)) {
		fprintf(stderr, "payswitch client add: bad --merchant '%s' (an account id, 1 .. "
				"2^64-1)\n", arguments->merchant);
		return 2;
	}
	if (arguments->accounts != NULL &&
	    engine_clients_parse_accounts(arguments->accounts, spec->accounts,
					  &spec->account_count, reason, sizeof(reason)) != 0) {
		fprintf(stderr, "payswitch client add: %s\n", reason);
		return 2;
	}
	spec->key_id = 1;   /* checked as a placeholder; the store assigns it */
	if (engine_clients_check(spec, reason, sizeof(reason)) != 0) {
		fprintf(stderr, "payswitch client add: %s\n", reason);
		return 2;
	}
	spec->key_id = NETIO_KEY_ID_NONE;
	return -1;
}

/* "merchant 42, accounts 100,101", or "any account" (admin, acquirer) */
static void print_bindings(const struct netio_principal *principal)
{
	if (principal->role != NETIO_ROLE_TERMINAL) {
		fputs("any account", stdout);
		return;
	}
	if (principal->merchant != 0)
		printf("merchant %llu%s", (unsigned long long)principal->merchant,
		       principal->account_count > 0 ? ", " : "");
	if (principal->account_count > 0)
		fputs("accounts ", stdout);
	for (uint32_t i = 0; i < principal->account_count; i++)
		printf("%s%llu", i == 0 ? "" : ",", (unsigned long long)principal->accounts[i]);
}

static void print_client(const char *verb, const struct netio_principal *principal)
{
	printf("%s client %s: key id %u, role %s, ", verb, principal->name, principal->key_id,
	       netio_role_name(principal->role));
	print_bindings(principal);
	putchar('\n');
}

/* Where the key file went, as an absolute path when it can be had. */
static void print_key_file(const char *path)
{
	char absolute[PATH_MAX];
	printf("key file: %s (mode 0600: hand it to the client, keep it secret)\n",
	       realpath(path, absolute) != NULL ? absolute : path);
	printf("%s", run_hint);
}

static const char *key_path(const struct client_arguments *arguments, char *buffer, size_t size)
{
	if (arguments->key_out != NULL)
		return arguments->key_out;
	snprintf(buffer, size, "%s.key", arguments->name);   /* name ≤ 63 bytes: fits */
	return buffer;
}

/* add and rotate: open the key file, change the store, then fill the file. */
static int issue_command(const struct client_arguments *arguments,
			 const struct netio_principal *spec, const char *action)
{
	char error[PATH_MAX + 512];
	char default_path[NETIO_PRINCIPAL_NAME_MAX + 8];
	const char *path = key_path(arguments, default_path, sizeof(default_path));
	bool created = false;
	int fd = key_file_open(path, arguments->force, &created, error, sizeof(error));
	if (fd < 0) {
		fprintf(stderr, "payswitch client %s: %s\n", action, error);
		return 1;
	}
	struct netio_key key;
	int result = spec != NULL
			     ? engine_clients_add(arguments->data_dir, spec, &key, error, sizeof(error))
			     : engine_clients_rotate(arguments->data_dir, arguments->name, &key, error,
						     sizeof(error));
	if (result == 0)
		result = key_file_fill(fd, path, &key, arguments->name, error, sizeof(error));
	close(fd);
	if (result != 0 && key.id != NETIO_KEY_ID_NONE)
		fprintf(stderr, "payswitch client %s: %s; the store holds key id %u for %s: "
				"'payswitch client rotate %s' issues another\n",
			action, error, key.id, arguments->name, arguments->name);
	else if (result != 0)
		fprintf(stderr, "payswitch client %s: %s\n", action, error);
	if (result != 0 && created && key.id == NETIO_KEY_ID_NONE)
		unlink(path);
	sodium_memzero(&key, sizeof(key));
	return result == 0 ? 0 : 1;
}

static int print_issued(const struct client_arguments *arguments, const char *verb)
{
	struct engine_clients clients;
	char error[PATH_MAX + 512];
	char default_path[NETIO_PRINCIPAL_NAME_MAX + 8];
	if (engine_clients_read(arguments->data_dir, &clients, error, sizeof(error)) != 0) {
		fprintf(stderr, "payswitch client: %s\n", error);
		return 1;
	}
	int found = find_name(&clients, arguments->name);
	if (found >= 0)
		print_client(verb, &clients.principals[found]);
	engine_clients_release(&clients);
	print_key_file(key_path(arguments, default_path, sizeof(default_path)));
	return 0;
}

static int command_add(const struct client_arguments *arguments)
{
	struct netio_principal spec;
	int status = spec_from(arguments, &spec);
	if (status < 0)
		status = issue_command(arguments, &spec, "add");
	return status == 0 ? print_issued(arguments, "added") : status;
}

static int command_rotate(const struct client_arguments *arguments)
{
	int status = issue_command(arguments, NULL, "rotate");
	return status == 0 ? print_issued(arguments, "rotated") : status;
}

static int command_remove(const struct client_arguments *arguments)
{
	char error[PATH_MAX + 512];
	if (engine_clients_remove(arguments->data_dir, arguments->name, error, sizeof(error)) != 0) {
		fprintf(stderr, "payswitch client remove: %s\n", error);
		return 1;
	}
	printf("removed client %s (its key id is never issued again)\n%s", arguments->name,
	       run_hint);
	return 0;
}

static int command_list(const struct client_arguments *arguments)
{
	struct engine_clients clients;
	char error[PATH_MAX + 512];
	if (engine_clients_read(arguments->data_dir, &clients, error, sizeof(error)) != 0) {
		fprintf(stderr, "payswitch client list: %s\n", error);
		return 1;
	}
	if (clients.count == 0)
		printf("no clients yet in %s ('payswitch client add NAME --role ROLE')\n",
		       arguments->data_dir);
	else
		printf("%-24s %10s  %-8s  %s\n", "NAME", "KEY_ID", "ROLE", "BINDINGS");
	for (uint32_t i = 0; i < clients.count; i++) {
		const struct netio_principal *principal = &clients.principals[i];
		printf("%-24s %10u  %-8s  ", principal->name, principal->key_id,
		       netio_role_name(principal->role));
		print_bindings(principal);
		putchar('\n');
	}
	engine_clients_release(&clients);
	return 0;
}

int engine_clients_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(client_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const struct client_command *command = NULL;
	for (size_t i = 0; i < sizeof(client_commands) / sizeof(client_commands[0]); i++)
		if (strcmp(argv[1], client_commands[i].action) == 0)
			command = &client_commands[i];
	if (command == NULL) {
		fprintf(stderr, "payswitch client: unknown action '%s'\n\n%s", argv[1], client_help);
		return 2;
	}
	struct client_arguments arguments;
	int status = client_parse(command, argc - 1, argv + 1, &arguments);
	if (status >= 0)
		return status;
	if (command->takes_bindings)
		return command_add(&arguments);
	if (!strcmp(command->action, "remove"))
		return command_remove(&arguments);
	if (!strcmp(command->action, "rotate"))
		return command_rotate(&arguments);
	return command_list(&arguments);
}
