/*
 * test_clients.c — the client-key store (engine/clients.c): add, list,
 * remove and rotate round trips; file mode; checksum and every flipped byte
 * refused; bad names, roles and bindings refused with file and line; key ids
 * never reused; key files that netio_key_load reads; atomic replace.
 * Every test works in a data dir of its own under /tmp.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "clients.h"
#include "netio.h"

static char data_dir[64];
static char error[PATH_MAX + 512];

static void make_dir(void)
{
	snprintf(data_dir, sizeof(data_dir), "/tmp/payswitch-clients-XXXXXX");
	cr_assert_not_null(mkdtemp(data_dir));
}

static void remove_dir(void)
{
	DIR *dir = opendir(data_dir);
	if (dir == NULL)
		return;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		if (entry->d_name[0] == '.' && (entry->d_name[1] == '\0' ||
						(entry->d_name[1] == '.' && entry->d_name[2] == '\0')))
			continue;
		char path[PATH_MAX + 256];
		snprintf(path, sizeof(path), "%s/%s", data_dir, entry->d_name);
		unlink(path);
	}
	closedir(dir);
	rmdir(data_dir);
}

TestSuite(clients, .init = make_dir, .fini = remove_dir);

static void store_path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", data_dir, name);
}

static struct netio_principal spec_of(const char *name, enum netio_role role, uint64_t merchant,
				      const uint64_t *accounts, uint32_t account_count)
{
	struct netio_principal spec;
	memset(&spec, 0, sizeof(spec));
	snprintf(spec.name, sizeof(spec.name), "%s", name);
	spec.role = (uint8_t)role;
	spec.merchant = merchant;
	spec.account_count = account_count;
	/* A count past the maximum is kept (add must refuse it); the copy stops. */
	for (uint32_t i = 0; i < account_count && i < NETIO_PRINCIPAL_ACCOUNTS_MAX; i++)
		spec.accounts[i] = accounts[i];
	return spec;
}

static uint32_t add_ok(const char *name, enum netio_role role, uint64_t merchant,
		       const uint64_t *accounts, uint32_t account_count, struct netio_key *out)
{
	struct netio_principal spec = spec_of(name, role, merchant, accounts, account_count);
	struct netio_key key;
	int result = engine_clients_add(data_dir, &spec, &key, error, sizeof(error));
	cr_assert_eq(result, 0, "add %s: %d %s", name, result, error);
	cr_assert_neq(key.id, NETIO_KEY_ID_NONE);
	if (out != NULL)
		*out = key;
	return key.id;
}

static const struct netio_principal *find(const struct netio_principal *principals,
					  uint32_t count, const char *name)
{
	for (uint32_t i = 0; i < count; i++)
		if (strcmp(principals[i].name, name) == 0)
			return &principals[i];
	return NULL;
}

static size_t read_file(const char *path, char *buffer, size_t size)
{
	FILE *file = fopen(path, "rb");
	cr_assert_not_null(file, "%s", path);
	size_t n = fread(buffer, 1, size - 1, file);
	fclose(file);
	buffer[n] = '\0';
	return n;
}

static void write_file(const char *path, const char *text, size_t length, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(write(fd, text, length), (ssize_t)length);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* Writes a store by hand: body lines and a correct checksum. */
static void write_store(const char *body)
{
	char text[8192];
	size_t length = strlen(body);
	cr_assert_lt(length + 64, sizeof(text));
	memcpy(text, body, length);
	length += (size_t)snprintf(text + length, sizeof(text) - length, "checksum %016llx\n",
				   (unsigned long long)XXH3_64bits(body, strlen(body)));
	char path[PATH_MAX];
	store_path(path, sizeof(path), "clients");
	write_file(path, text, length, 0600);
}

static int load_status(void)
{
	struct netio_principal *principals = NULL;
	uint32_t count = 0;
	int result = engine_clients_load(data_dir, &principals, &count, error, sizeof(error));
	if (result == 0)
		engine_clients_free(principals, count);
	else
		cr_assert_null(principals);
	return result;
}

#define SECRET "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

/* ------------------------------------------------------------------------ */
Test(clients, missing_file_is_an_empty_table)
{
	struct netio_principal *principals = NULL;
	uint32_t count = 7;
	cr_assert_eq(engine_clients_load(data_dir, &principals, &count, error, sizeof(error)), 0);
	cr_assert_eq(count, 0);
	cr_assert_not_null(principals);
	engine_clients_free(principals, count);
	struct engine_clients clients;
	cr_assert_eq(engine_clients_read(data_dir, &clients, error, sizeof(error)), 0);
	cr_assert_eq(clients.count, 0);
	cr_assert_eq(clients.next_key_id, 1);
	engine_clients_release(&clients);
}

Test(clients, add_list_rotate_remove_round_trip)
{
	uint64_t accounts[] = { 100, 101, 18446744073709551615ull };
	struct netio_key admin, acquirer, terminal;
	cr_assert_eq(add_ok("ops", NETIO_ROLE_ADMIN, 0, NULL, 0, &admin), 1);
	cr_assert_eq(add_ok("gateway.1", NETIO_ROLE_ACQUIRER, 0, NULL, 0, &acquirer), 2);
	cr_assert_eq(add_ok("pos_7-a", NETIO_ROLE_TERMINAL, 42, accounts, 3, &terminal), 3);
	cr_assert_neq(memcmp(admin.secret, acquirer.secret, NETIO_KEY_SIZE), 0);

	struct netio_principal *principals = NULL;
	uint32_t count = 0;
	cr_assert_eq(engine_clients_load(data_dir, &principals, &count, error, sizeof(error)), 0,
		     "%s", error);
	cr_assert_eq(count, 3);
	const struct netio_principal *t = find(principals, count, "pos_7-a");
	cr_assert_not_null(t);
	cr_assert_eq(t->key_id, terminal.id);
	cr_assert_eq(t->role, NETIO_ROLE_TERMINAL);
	cr_assert_eq(t->merchant, 42);
	cr_assert_eq(t->account_count, 3);
	cr_assert_eq(t->accounts[2], accounts[2]);
	cr_assert_eq(memcmp(t->secret, terminal.secret, NETIO_KEY_SIZE), 0);
	cr_assert_eq(find(principals, count, "ops")->role, NETIO_ROLE_ADMIN);
	cr_assert_eq(find(principals, count, "gateway.1")->role, NETIO_ROLE_ACQUIRER);
	engine_clients_free(principals, count);

	struct netio_key rotated;
	cr_assert_eq(engine_clients_rotate(data_dir, "pos_7-a", &rotated, error, sizeof(error)), 0,
		     "%s", error);
	cr_assert_eq(rotated.id, 4);
	cr_assert_neq(memcmp(rotated.secret, terminal.secret, NETIO_KEY_SIZE), 0);
	cr_assert_eq(engine_clients_load(data_dir, &principals, &count, error, sizeof(error)), 0);
	cr_assert_eq(count, 3);
	t = find(principals, count, "pos_7-a");
	cr_assert_eq(t->key_id, 4);
	cr_assert_eq(t->merchant, 42);
	cr_assert_eq(t->account_count, 3);
	cr_assert_eq(memcmp(t->secret, rotated.secret, NETIO_KEY_SIZE), 0);
	for (uint32_t i = 0; i < count; i++)
		cr_assert_neq(principals[i].key_id, terminal.id, "the old key id is gone");
	engine_clients_free(principals, count);

	cr_assert_eq(engine_clients_remove(data_dir, "gateway.1", error, sizeof(error)), 0);
	cr_assert_eq(engine_clients_load(data_dir, &principals, &count, error, sizeof(error)), 0);
	cr_assert_eq(count, 2);
	cr_assert_null(find(principals, count, "gateway.1"));
	cr_assert_not_null(find(principals, count, "ops"));
	engine_clients_free(principals, count);
}

Test(clients, duplicates_and_unknown_names_refused)
{
	add_ok("a", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL);
	struct netio_principal spec = spec_of("a", NETIO_ROLE_ACQUIRER, 0, NULL, 0);
	struct netio_key key;
	cr_assert_eq(engine_clients_add(data_dir, &spec, &key, error, sizeof(error)), -EEXIST);
	cr_assert_not_null(strstr(error, "exists already"), "%s", error);
	cr_assert_eq(key.id, NETIO_KEY_ID_NONE);
	cr_assert_eq(engine_clients_remove(data_dir, "b", error, sizeof(error)), -ENOENT);
	cr_assert_not_null(strstr(error, "no client named 'b'"), "%s", error);
	cr_assert_eq(engine_clients_rotate(data_dir, "b", &key, error, sizeof(error)), -ENOENT);
	cr_assert_eq(engine_clients_remove(data_dir, "bad name", error, sizeof(error)), -EINVAL);
}

Test(clients, key_ids_never_reused)
{
	cr_assert_eq(add_ok("a", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL), 1);
	cr_assert_eq(add_ok("b", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL), 2);
	cr_assert_eq(engine_clients_remove(data_dir, "b", error, sizeof(error)), 0);
	cr_assert_eq(add_ok("c", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL), 3);
	cr_assert_eq(engine_clients_remove(data_dir, "a", error, sizeof(error)), 0);
	cr_assert_eq(engine_clients_remove(data_dir, "c", error, sizeof(error)), 0);
	/* Empty again, yet the next id remembers every id issued. */
	cr_assert_eq(add_ok("b", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL), 4);
	struct netio_key key;
	cr_assert_eq(engine_clients_rotate(data_dir, "b", &key, error, sizeof(error)), 0);
	cr_assert_eq(key.id, 5);
	struct engine_clients clients;
	cr_assert_eq(engine_clients_read(data_dir, &clients, error, sizeof(error)), 0);
	cr_assert_eq(clients.next_key_id, 6);
	engine_clients_release(&clients);
}

Test(clients, store_is_mode_0600_and_looser_is_refused)
{
	add_ok("a", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL);
	char path[PATH_MAX];
	store_path(path, sizeof(path), "clients");
	struct stat status;
	cr_assert_eq(stat(path, &status), 0);
	cr_assert_eq(status.st_mode & 07777, 0600);
	cr_assert_eq(chmod(path, 0640), 0);
	cr_assert_eq(load_status(), -EACCES);
	cr_assert_not_null(strstr(error, path), "names the file: %s", error);
	cr_assert_not_null(strstr(error, "chmod 600"), "%s", error);
	/* Edits refuse it too, and leave it as it was. */
	struct netio_principal spec = spec_of("b", NETIO_ROLE_ADMIN, 0, NULL, 0);
	struct netio_key key;
	cr_assert_eq(engine_clients_add(data_dir, &spec, &key, error, sizeof(error)), -EACCES);
	cr_assert_eq(chmod(path, 0600), 0);
	cr_assert_eq(load_status(), 0);
}

Test(clients, atomic_replace_leaves_no_temp_file)
{
	char temp[PATH_MAX];
	store_path(temp, sizeof(temp), "clients.tmp");
	/* A temp file a crash left behind is overwritten, then renamed away. */
	write_file(temp, "junk\n", 5, 0644);
	add_ok("a", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL);
	cr_assert_eq(access(temp, F_OK), -1);
	add_ok("b", NETIO_ROLE_ACQUIRER, 0, NULL, 0, NULL);
	struct netio_key key;
	cr_assert_eq(engine_clients_rotate(data_dir, "a", &key, error, sizeof(error)), 0);
	cr_assert_eq(engine_clients_remove(data_dir, "b", error, sizeof(error)), 0);
	DIR *dir = opendir(data_dir);
	struct dirent *entry;
	int files = 0;
	while ((entry = readdir(dir)) != NULL) {
		if (entry->d_name[0] == '.')
			continue;
		cr_assert_str_eq(entry->d_name, "clients");
		files++;
	}
	closedir(dir);
	cr_assert_eq(files, 1);
}

Test(clients, checksum_mismatch_refused)
{
	add_ok("a", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL);
	char path[PATH_MAX], text[4096];
	store_path(path, sizeof(path), "clients");
	size_t length = read_file(path, text, sizeof(text));
	char *checksum = strstr(text, "checksum ");
	cr_assert_not_null(checksum);
	checksum[9] = checksum[9] == '0' ? '1' : '0';
	write_file(path, text, length, 0600);
	cr_assert_eq(load_status(), -EINVAL);
	cr_assert_not_null(strstr(error, "checksum mismatch"), "%s", error);
	cr_assert_not_null(strstr(error, path), "%s", error);
	/* A file cut short loses its checksum line. */
	write_file(path, text, (size_t)(checksum - text), 0600);
	cr_assert_eq(load_status(), -EINVAL);
	write_file(path, text, length - 1, 0600);
	cr_assert_eq(load_status(), -EINVAL);
	write_file(path, "", 0, 0600);
	cr_assert_eq(load_status(), -EINVAL);
}

Test(clients, every_flipped_byte_refused)
{
	uint64_t accounts[] = { 7, 8 };
	add_ok("a", NETIO_ROLE_ADMIN, 0, NULL, 0, NULL);
	add_ok("t", NETIO_ROLE_TERMINAL, 9, accounts, 2, NULL);
	char path[PATH_MAX], text[4096], changed[4096];
	store_path(path, sizeof(path), "clients");
	size_t length = read_file(path, text, sizeof(text));
	cr_assert_eq(load_status(), 0);
	static const uint8_t flips[] = { 0x01, 0x20, 0x80 };
	for (size_t at = 0; at < length; at++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			memcpy(changed, text, length);
			changed[at] = (char)(changed[at] ^ flips[f]);
			write_file(path, changed, length, 0600);
			cr_assert_neq(load_status(), 0, "byte %zu ^ 0x%02x was let in", at, flips[f]);
		}
	}
	write_file(path, text, length, 0600);
	cr_assert_eq(load_status(), 0, "%s", error);
}

Test(clients, bad_names_roles_and_bindings_refused_by_add)
{
	uint64_t accounts[NETIO_PRINCIPAL_ACCOUNTS_MAX + 1];
	for (uint32_t i = 0; i <= NETIO_PRINCIPAL_ACCOUNTS_MAX; i++)
		accounts[i] = i + 1;
	char long_name[NETIO_PRINCIPAL_NAME_MAX];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';   /* 63 bytes: the longest name */
	struct netio_principal specs[] = {
		spec_of("", NETIO_ROLE_ADMIN, 0, NULL, 0),
		spec_of("a b", NETIO_ROLE_ADMIN, 0, NULL, 0),
		spec_of("a/b", NETIO_ROLE_ADMIN, 0, NULL, 0),
		spec_of("caf\xc3\xa9", NETIO_ROLE_ADMIN, 0, NULL, 0),
		spec_of("x", NETIO_ROLE_NONE, 0, NULL, 0),
		spec_of("x", (enum netio_role)9, 0, NULL, 0),
		spec_of("x", NETIO_ROLE_TERMINAL, 0, NULL, 0),
		spec_of("x", NETIO_ROLE_ADMIN, 5, NULL, 0),
		spec_of("x", NETIO_ROLE_ACQUIRER, 0, accounts, 1),
		spec_of("x", NETIO_ROLE_TERMINAL, 0, accounts, NETIO_PRINCIPAL_ACCOUNTS_MAX + 1),
	};
	uint64_t repeated[] = { 5, 6, 5 }, zero[] = { 0 };
	struct netio_principal more[] = {
		spec_of("x", NETIO_ROLE_TERMINAL, 0, repeated, 3),
		spec_of("x", NETIO_ROLE_TERMINAL, 0, zero, 1),
	};
	struct netio_key key;
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		cr_assert_eq(engine_clients_add(data_dir, &specs[i], &key, error, sizeof(error)),
			     -EINVAL, "spec %zu", i);
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		cr_assert_eq(engine_clients_add(data_dir, &more[i], &key, error, sizeof(error)),
			     -EINVAL, "more %zu", i);
	/* A name of 64 bytes has no room for its NUL. */
	struct netio_principal too_long = spec_of("x", NETIO_ROLE_ADMIN, 0, NULL, 0);
	memset(too_long.name, 'y', sizeof(too_long.name));
	cr_assert_eq(engine_clients_add(data_dir, &too_long, &key, error, sizeof(error)), -EINVAL);
	cr_assert_eq(load_status(), 0);
	struct engine_clients clients;
	cr_assert_eq(engine_clients_read(data_dir, &clients, error, sizeof(error)), 0);
	cr_assert_eq(clients.count, 0, "nothing refused reached the store");
	engine_clients_release(&clients);
	/* The edges that are allowed. */
	add_ok(long_name, NETIO_ROLE_TERMINAL, 0, accounts, NETIO_PRINCIPAL_ACCOUNTS_MAX, NULL);
	add_ok("m", NETIO_ROLE_TERMINAL, 77, NULL, 0, NULL);
}

Test(clients, account_lists)
{
	uint64_t accounts[NETIO_PRINCIPAL_ACCOUNTS_MAX];
	uint32_t count = 0;
	cr_assert_eq(engine_clients_parse_accounts("1,2,18446744073709551615", accounts, &count,
						   error, sizeof(error)), 0);
	cr_assert_eq(count, 3);
	cr_assert_eq(accounts[2], UINT64_MAX);
	const char *bad[] = { "", ",", "1,", ",1", "1,,2", "0", "1,x", "-1", "+1", " 1",
			      "18446744073709551616", "1,2,1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(engine_clients_parse_accounts(bad[i], accounts, &count, error,
							   sizeof(error)), -EINVAL, "'%s'", bad[i]);
	char many[2048] = "";
	for (uint32_t i = 1; i <= NETIO_PRINCIPAL_ACCOUNTS_MAX + 1; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s%u", i > 1 ? "," : "", i);
	cr_assert_eq(engine_clients_parse_accounts(many, accounts, &count, error, sizeof(error)),
		     -EINVAL);
	cr_assert_not_null(strstr(error, "more than 64"), "%s", error);
}

/* A hand-made file (correct checksum) with one bad line: refused naming the
 * file and that line. */
static void refused_at(const char *body, unsigned line, const char *words)
{
	write_store(body);
	cr_assert_eq(load_status(), -EINVAL, "let in:\n%s", body);
	char where[PATH_MAX + 32];
	snprintf(where, sizeof(where), "%s/clients line %u:", data_dir, line);
	cr_assert_not_null(strstr(error, where), "expected '%s' in: %s", where, error);
	cr_assert_not_null(strstr(error, words), "expected '%s' in: %s", words, error);
}

Test(clients, bad_files_refused_with_file_and_line)
{
	write_store("payswitch-clients 1 3\n"
		    "client a 1 admin " SECRET " - -\n"
		    "client t 2 terminal " SECRET " 5 6,7\n");
	cr_assert_eq(load_status(), 0, "%s", error);
	refused_at("payswitch-clients 2 3\n", 1, "format version");
	refused_at("payswitch-clients 1 0\n", 1, "next key id");
	refused_at("payswitch-keys 1 3\n", 1, "not a clients file");
	refused_at("payswitch-clients 1 3\nclient a 1 king " SECRET " - -\n", 2, "unknown role");
	refused_at("payswitch-clients 1 3\nclient a 0 admin " SECRET " - -\n", 2, "bad key id");
	refused_at("payswitch-clients 1 3\nclient a 3 admin " SECRET " - -\n", 2,
		   "not below the next key id");
	refused_at("payswitch-clients 1 3\nclient a 1 admin " SECRET " - -\n"
		   "client a 2 admin " SECRET " - -\n", 3, "already used on line 2");
	refused_at("payswitch-clients 1 3\nclient a 2 admin " SECRET " - -\n"
		   "client b 2 admin " SECRET " - -\n", 3, "key id 2 is already used");
	refused_at("payswitch-clients 1 3\nclient a b 1 admin " SECRET " - -\n", 2,
		   "not a client line");
	refused_at("payswitch-clients 1 3\nclient a* 1 admin " SECRET " - -\n", 2,
		   "bad client name");
	refused_at("payswitch-clients 1 3\nclient a 1 admin 00 - -\n", 2, "bad secret");
	refused_at("payswitch-clients 1 3\nclient a 1 terminal " SECRET " - -\n", 2,
		   "a terminal needs");
	refused_at("payswitch-clients 1 3\nclient a 1 admin " SECRET " - 5\n", 2,
		   "only a terminal");
	refused_at("payswitch-clients 1 3\nclient a 1 acquirer " SECRET " 5 -\n", 2,
		   "only a terminal");
	refused_at("payswitch-clients 1 3\nclient a 1 terminal " SECRET " x -\n", 2,
		   "bad merchant");
	refused_at("payswitch-clients 1 3\nclient a 1 terminal " SECRET " - 5,5\n", 2,
		   "appears twice");
	refused_at("payswitch-clients 1 3\n\n", 2, "not a client line");
	refused_at("payswitch-clients 1 3\nclient a 1 admin " SECRET " - - extra\n", 2,
		   "not a client line");
	/* Edits refuse a bad store and leave it as it was. */
	struct netio_principal spec = spec_of("z", NETIO_ROLE_ADMIN, 0, NULL, 0);
	struct netio_key key;
	cr_assert_eq(engine_clients_add(data_dir, &spec, &key, error, sizeof(error)), -EINVAL);
}

Test(clients, missing_data_dir_refused_by_edits)
{
	char gone[PATH_MAX + 16];
	snprintf(gone, sizeof(gone), "%s/nope", data_dir);
	struct netio_principal spec = spec_of("a", NETIO_ROLE_ADMIN, 0, NULL, 0);
	struct netio_key key;
	cr_assert_eq(engine_clients_add(gone, &spec, &key, error, sizeof(error)), -ENOENT);
	cr_assert_not_null(strstr(error, "payswitch format"), "%s", error);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */
/* ------------------------------------------------------------------------ */
static int run(const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list arguments;
	va_start(arguments, first);
	for (const char *a = first; a != NULL; a = va_arg(arguments, const char *)) {
		cr_assert_lt(argc, 31);
		argv[argc++] = (char *)a;
	}
	va_end(arguments);
	argv[argc] = NULL;
	fflush(stdout);
	return engine_clients_main(argc, argv);
}

Test(clients, command_key_file_loads_and_matches_the_store)
{
	char key_path[PATH_MAX + 16];
	snprintf(key_path, sizeof(key_path), "%s/t.key", data_dir);
	cr_assert_eq(run("client", "add", "pos-1", "--role", "terminal", "--merchant", "42",
			 "--accounts", "100,101", "--key-out", key_path, "--data-dir", data_dir,
			 NULL), 0);
	struct stat status;
	cr_assert_eq(stat(key_path, &status), 0);
	cr_assert_eq(status.st_mode & 07777, 0600);
	struct netio_key key;
	cr_assert_eq(netio_key_load(key_path, &key), 0);
	struct netio_principal *principals = NULL;
	uint32_t count = 0;
	cr_assert_eq(engine_clients_load(data_dir, &principals, &count, error, sizeof(error)), 0);
	cr_assert_eq(count, 1);
	cr_assert_eq(principals[0].key_id, key.id);
	cr_assert_eq(memcmp(principals[0].secret, key.secret, NETIO_KEY_SIZE), 0);
	cr_assert_eq(principals[0].merchant, 42);
	cr_assert_eq(principals[0].account_count, 2);
	engine_clients_free(principals, count);

	/* rotate refuses to overwrite the old key file without --force... */
	cr_assert_eq(run("client", "rotate", "pos-1", "--key-out", key_path, "--data-dir",
			 data_dir, NULL), 1);
	struct netio_key same;
	cr_assert_eq(netio_key_load(key_path, &same), 0);
	cr_assert_eq(same.id, key.id, "a refused rotate changes nothing");
	/* ...and replaces it with --force. */
	cr_assert_eq(run("client", "rotate", "pos-1", "--key-out", key_path, "--force",
			 "--data-dir", data_dir, NULL), 0);
	struct netio_key rotated;
	cr_assert_eq(netio_key_load(key_path, &rotated), 0);
	cr_assert_eq(rotated.id, key.id + 1);
	cr_assert_eq(engine_clients_load(data_dir, &principals, &count, error, sizeof(error)), 0);
	cr_assert_eq(principals[0].key_id, rotated.id);
	cr_assert_eq(memcmp(principals[0].secret, rotated.secret, NETIO_KEY_SIZE), 0);
	engine_clients_free(principals, count);
	cr_assert_eq(run("client", "list", "--data-dir", data_dir, NULL), 0);
}

Test(clients, command_errors_and_exit_status)
{
	char key_path[PATH_MAX + 16], other[PATH_MAX + 16];
	snprintf(key_path, sizeof(key_path), "%s/a.key", data_dir);
	snprintf(other, sizeof(other), "%s/b.key", data_dir);
	cr_assert_eq(run("client", "list", "--data-dir", data_dir, NULL), 0, "no clients yet");
	cr_assert_eq(run("client", "add", "a", "--role", "admin", "--key-out", key_path,
			 "--data-dir", data_dir, NULL), 0);
	/* Duplicate name: refused, and its key file is not left behind. */
	cr_assert_eq(run("client", "add", "a", "--role", "admin", "--key-out", other,
			 "--data-dir", data_dir, NULL), 1);
	cr_assert_eq(access(other, F_OK), -1);
	/* An existing key file refuses the add before the store changes. */
	cr_assert_eq(run("client", "add", "b", "--role", "admin", "--key-out", key_path,
			 "--data-dir", data_dir, NULL), 1);
	struct engine_clients clients;
	cr_assert_eq(engine_clients_read(data_dir, &clients, error, sizeof(error)), 0);
	cr_assert_eq(clients.count, 1);
	cr_assert_eq(clients.next_key_id, 2);
	engine_clients_release(&clients);
	/* Usage errors. */
	cr_assert_eq(run("client", "add", "b", "--role", "king", "--key-out", other, "--data-dir",
			 data_dir, NULL), 2);
	cr_assert_eq(run("client", "add", "b", "--key-out", other, "--data-dir", data_dir, NULL), 2);
	cr_assert_eq(run("client", "add", "b", "--role", "terminal", "--accounts", "1,,2",
			 "--key-out", other, "--data-dir", data_dir, NULL), 2);
	cr_assert_eq(run("client", "add", "b", "--role", "terminal", "--key-out", other,
			 "--data-dir", data_dir, NULL), 2);
	cr_assert_eq(run("client", "add", "b", "--role", "admin", "--merchant", "3", "--key-out",
			 other, "--data-dir", data_dir, NULL), 2);
	cr_assert_eq(run("client", "add", "b c", "--role", "admin", "--key-out", other,
			 "--data-dir", data_dir, NULL), 2);
	cr_assert_eq(run("client", "add", "--role", "admin", "--data-dir", data_dir, NULL), 2);
	cr_assert_eq(run("client", "remove", "a", "b", "--data-dir", data_dir, NULL), 2);
	cr_assert_eq(run("client", "list", "--role", "admin", "--data-dir", data_dir, NULL), 2);
	cr_assert_eq(run("client", "frobnicate", NULL), 2);
	cr_assert_eq(run("client", NULL), 2);
	cr_assert_eq(access(other, F_OK), -1, "no usage error leaves a key file");
	/* Unknown names. */
	cr_assert_eq(run("client", "remove", "zz", "--data-dir", data_dir, NULL), 1);
	cr_assert_eq(run("client", "rotate", "zz", "--key-out", other, "--data-dir", data_dir,
			 NULL), 1);
	cr_assert_eq(access(other, F_OK), -1);
	/* Help. */
	cr_assert_eq(run("client", "--help", NULL), 0);
	cr_assert_eq(run("client", "add", "--help", NULL), 0);
	cr_assert_eq(run("client", "remove", "--help", NULL), 0);
	cr_assert_eq(run("client", "list", "--help", NULL), 0);
	cr_assert_eq(run("client", "rotate", "--help", NULL), 0);
	cr_assert_eq(run("client", "remove", "a", "--data-dir", data_dir, NULL), 0);
	cr_assert_eq(run("client", "list", "--data-dir", data_dir, NULL), 0);
}
