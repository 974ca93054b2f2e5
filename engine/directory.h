/*
 * directory.h — the gateway's card and terminal directory: which ledger
 * account a card (PAN, or the account identification of field 102/103) debits,
 * and which account a merchant (field 42) or terminal (field 41) is paid into.
 *
 * File format (netio/ISO8583.md, "Directory file"): one entry per line,
 *   pan KEY ACCOUNT          card number or account identification -> payer
 *   merchant MID ACCOUNT     card acceptor id (field 42) -> payee
 *   terminal TID ACCOUNT     terminal id (field 41) -> payee, when 42 is absent
 * KEY: 1..28 printable characters without spaces; ACCOUNT: a ledger account
 * id, 1..2^64-1. '#' starts a comment; blank lines are ignored. A (kind, key)
 * appears at most once.
 *
 * A loaded directory is immutable (reload = load a new one and swap); look-ups
 * are O(1) and allocate nothing. Thread-safety: a loaded directory may be read
 * from any number of threads.
 */
#ifndef PAYSWITCH_ENGINE_DIRECTORY_H
#define PAYSWITCH_ENGINE_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIRECTORY_KEY_MAX 28u
#define DIRECTORY_ENTRIES_MAX (64u << 20)

enum directory_kind {
	DIRECTORY_PAN = 0,
	DIRECTORY_MERCHANT = 1,
	DIRECTORY_TERMINAL = 2,
	DIRECTORY_KIND_COUNT = 3,
};

struct directory;

/* Loads a directory file. Returns NULL with a sentence naming the file and
 * line in `error` (a syntax error, a duplicate, an I/O error). */
struct directory *directory_load(const char *path, char *error, size_t error_size);
void directory_destroy(struct directory *directory);

/* The account of (kind, key); key is not terminated. Trailing spaces of the
 * key are ignored (fields 41 and 42 are space-padded). */
bool directory_find(const struct directory *directory, enum directory_kind kind,
		    const void *key, size_t key_length, uint64_t *account);

/* Entries of one kind. */
uint64_t directory_count(const struct directory *directory, enum directory_kind kind);

/* `payswitch directory add|remove|list|check FILE ...`: argv[0] = "directory".
 * Returns the exit status. */
int directory_main(int argc, char **argv);

#endif /* PAYSWITCH_ENGINE_DIRECTORY_H */
