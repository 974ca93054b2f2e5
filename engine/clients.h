/*
 * clients.h — the operator's client-key store: DATA_DIR/clients, and the
 * `payswitch client add|remove|list|rotate` command that edits it.
 *
 * File format (one text file, mode 0600, README "Client keys"):
 *   payswitch-clients 1 NEXT_KEY_ID
 *   client NAME KEY_ID ROLE HEX_SECRET MERCHANT ACCOUNTS     (one per client)
 *   checksum XXH3_64_HEX
 * NAME: [A-Za-z0-9._-]{1,63}, unique. KEY_ID: 1 .. NEXT_KEY_ID - 1, unique.
 * ROLE: admin, acquirer or terminal. HEX_SECRET: 64 hex digits (32 bytes).
 * MERCHANT: a ledger account id or "-"; ACCOUNTS: ids joined by commas, or
 * "-". A terminal has a merchant or 1 .. NETIO_PRINCIPAL_ACCOUNTS_MAX
 * accounts; admin and acquirer have neither. The checksum line is XXH3-64
 * (the journal's hash) of every byte before it; nothing may follow it.
 *
 * Key ids are never reused: NEXT_KEY_ID only grows (add and rotate take it,
 * remove leaves it), so a removed or rotated-out key can never come back
 * under the id of another client.
 *
 * Every edit reads the file, checks it, writes DATA_DIR/clients.tmp (mode
 * 0600), fsyncs it, renames it over DATA_DIR/clients and fsyncs the
 * directory: a reader sees the old or the new file, never part of one.
 * Edits are serialised by an flock on the data dir; reads take no lock.
 *
 * Errors: functions return 0 or -errno and write a sentence naming the file
 * (and line) to `error`: -ENOENT unknown client or missing data dir,
 * -EEXIST duplicate name, -EINVAL invalid argument or invalid file,
 * -EACCES the file is readable by group or others, -ENOSPC the table or
 * the key ids are exhausted.
 *
 * Secrets: arrays of principals hold secrets; free them with
 * engine_clients_free(), which zeroes them. Thread-safety: none needed; each
 * call stands alone (no global state).
 */
#ifndef PAYSWITCH_ENGINE_CLIENTS_H
#define PAYSWITCH_ENGINE_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netio.h"

#define ENGINE_CLIENTS_FILE "clients"
#define ENGINE_CLIENTS_FORMAT_VERSION 1u
#define ENGINE_CLIENTS_MAX 65536u            /* clients in one store */
#define ENGINE_CLIENTS_LINE_BYTES_MAX 2048u  /* one client line, newline included */

/* The whole store in memory: what the file says. */
struct engine_clients {
	uint32_t next_key_id;                 /* > every key_id below; never decreases */
	uint32_t count;
	struct netio_principal *principals;   /* count entries, file order; malloc'd */
};

/*
 * The switch's view: the principals of DATA_DIR/clients (a missing file is
 * an empty table: *count 0). *out is malloc'd (never NULL on success, even
 * for 0 clients); free it with engine_clients_free(*out, *count).
 */
int engine_clients_load(const char *data_dir, struct netio_principal **out, uint32_t *count,
			char *error, size_t error_size);
/* Zeroes the secrets (sodium_memzero) and frees; principals may be NULL. */
void engine_clients_free(struct netio_principal *principals, uint32_t count);

/* Reads and validates the store; a missing file gives an empty store with
 * next_key_id 1. Release with engine_clients_release(). */
int engine_clients_read(const char *data_dir, struct engine_clients *clients, char *error,
			size_t error_size);
void engine_clients_release(struct engine_clients *clients);
/* Validates and writes the store atomically (see above). */
int engine_clients_write(const char *data_dir, const struct engine_clients *clients,
			 char *error, size_t error_size);

/*
 * Adds a client: name, role, merchant and accounts come from `spec` (its
 * key_id and secret are ignored). The client gets the next key id and a
 * fresh random secret, returned in *key (the caller zeroes it when done).
 */
int engine_clients_add(const char *data_dir, const struct netio_principal *spec,
		       struct netio_key *key, char *error, size_t error_size);
/* Removes the client named `name`; its key id is never given out again. */
int engine_clients_remove(const char *data_dir, const char *name, char *error,
			  size_t error_size);
/* Gives `name` a new key id and a new secret (returned in *key), keeping its
 * role and bindings; the old key id is gone from the store. */
int engine_clients_rotate(const char *data_dir, const char *name, struct netio_key *key,
			  char *error, size_t error_size);

/* Syntax checks shared by the file reader and the command. */
bool engine_clients_name_ok(const char *name);
/* Parses "ID[,ID...]" (non-zero, distinct, at most NETIO_PRINCIPAL_ACCOUNTS_MAX). */
int engine_clients_parse_accounts(const char *text, uint64_t *accounts, uint32_t *count,
				  char *error, size_t error_size);
/* Checks one principal's name, key id, role and bindings ("" or a reason). */
int engine_clients_check(const struct netio_principal *principal, char *error,
			 size_t error_size);

/*
 * Writes key to a new key file at path (netio_key_format, mode 0600,
 * fsynced). Without force an existing file is refused (-EEXIST); with force
 * it is replaced.
 */
int engine_clients_write_key(const char *path, const struct netio_key *key, const char *name,
			     bool force, char *error, size_t error_size);

/* `payswitch client add|remove|list|rotate ...`: argv[0] = "client".
 * Returns the exit status (0 done, 1 refused, 2 usage). */
int engine_clients_main(int argc, char **argv);

#endif /* PAYSWITCH_ENGINE_CLIENTS_H */
