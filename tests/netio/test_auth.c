/*
 * test_auth.c — protocol version 2 authentication (netio/auth.c): the MAC
 * test vector of PROTOCOL.md, every flipped bit refused, key files, the key
 * ring, replay windows, and the role of every kind.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "netio.h"

#define VECTOR_TIME_US 1767225600000000ull  /* 2026-01-01T00:00:00Z */

static const char vector_mac_hex[] = "2a687b0ee14a2190bee05255c252ca66";

static struct netio_key vector_key(void)
{
	struct netio_key key = {.id = 7};
	for (unsigned i = 0; i < NETIO_KEY_SIZE; i++)
		key.secret[i] = (uint8_t)i;
	return key;
}

static struct ledger_request vector_request(void)
{
	struct ledger_request request;
	memset(&request, 0, sizeof(request));
	request.id = 42;
	request.timestamp_us = VECTOR_TIME_US;
	request.account_id = 1001;
	request.other_id = 2001;
	request.amount = 250;
	request.currency = 978;
	request.kind = LEDGER_KIND_PAY;
	return request;
}

static void hex(const uint8_t *bytes, size_t size, char *text)
{
	for (size_t i = 0; i < size; i++)
		sprintf(text + 2 * i, "%02x", bytes[i]);
}

Test(auth, test_vector_matches_protocol_md)
{
	alignas(64) uint8_t datagram[NETIO_HEADER_SIZE + NETIO_REQUEST_SIZE];
	struct ledger_request request = vector_request();
	size_t length = netio_encode_requests(datagram, sizeof(datagram), 0x0102030405060708ull,
					      VECTOR_TIME_US, &request, 1);
	cr_assert_eq(length, 112);
	struct netio_key key = vector_key();
	netio_seal(&key, datagram, length);
	char text[2 * NETIO_MAC_SIZE + 1];
	hex(datagram + NETIO_MAC_OFFSET, NETIO_MAC_SIZE, text);
	cr_assert_str_eq(text, vector_mac_hex, "the MAC PROTOCOL.md and auth_vector.py give");
	cr_assert_eq(((struct netio_header *)datagram)->key_id, 7);
	cr_assert(netio_mac_ok(key.secret, datagram, length));
	netio_seal(NULL, datagram, length);
	cr_assert_eq(((struct netio_header *)datagram)->key_id, 0);
	uint8_t zero[NETIO_MAC_SIZE] = {0};
	cr_assert_eq(memcmp(datagram + NETIO_MAC_OFFSET, zero, NETIO_MAC_SIZE), 0);
}

static struct netio_principal principal_of(const struct netio_key *key, enum netio_role role)
{
	struct netio_principal principal;
	memset(&principal, 0, sizeof(principal));
	principal.key_id = key->id;
	principal.role = (uint8_t)role;
	memcpy(principal.secret, key->secret, NETIO_KEY_SIZE);
	snprintf(principal.name, sizeof(principal.name), "key-%u", key->id);
	return principal;
}

/* Every single-bit flip anywhere in a sealed datagram (1 and 128 requests)
 * is refused: the MAC covers every byte but itself, and a flip in the MAC
 * or the key id cannot match. */
static void flip_every_bit(uint32_t count)
{
	static alignas(64) uint8_t datagram[NETIO_DATAGRAM_MAX];
	struct ledger_request requests[NETIO_BATCH_MAX];
	for (uint32_t i = 0; i < count; i++) {
		requests[i] = vector_request();
		requests[i].id = 100 + i;
	}
	size_t length = netio_encode_requests(datagram, sizeof(datagram), 99, VECTOR_TIME_US,
					      requests, count);
	struct netio_key key = vector_key();
	struct netio_key other = vector_key();
	other.id = 8;   /* a second key in the ring: a flipped key id may land on it */
	other.secret[0] ^= 0xff;
	struct netio_principal principals[2] = {principal_of(&key, NETIO_ROLE_ACQUIRER),
						principal_of(&other, NETIO_ROLE_ADMIN)};
	struct netio_keyring *ring = netio_keyring_create(principals, 2);
	cr_assert_not_null(ring);
	netio_seal(&key, datagram, length);
	const struct netio_principal *who = NULL;
	cr_assert_eq(netio_authenticate(ring, datagram, length, &who), NETIO_AUTH_OK);
	cr_assert_eq(who->key_id, 7);
	uint64_t refused = 0;
	for (size_t byte = 0; byte < length; byte++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			datagram[byte] ^= (uint8_t)(1u << bit);
			enum netio_auth_refusal why = netio_authenticate(ring, datagram, length, &who);
			cr_assert_neq(why, NETIO_AUTH_OK, "flip of byte %zu bit %u let in", byte, bit);
			cr_assert_null(who);
			datagram[byte] ^= (uint8_t)(1u << bit);
			refused++;
		}
	}
	cr_assert_eq(refused, (uint64_t)length * 8);
	cr_assert_eq(netio_authenticate(ring, datagram, length, &who), NETIO_AUTH_OK);
	/* Cut or extended by a byte: refused too. */
	cr_assert_neq(netio_authenticate(ring, datagram, length - 1, &who), NETIO_AUTH_OK);
	cr_assert_neq(netio_authenticate(ring, datagram, length + 1, &who), NETIO_AUTH_OK);
	netio_keyring_destroy(ring);
	cr_log_info("auth: %llu single-bit flips of a %zu-byte datagram, every one refused",
		    (unsigned long long)refused, length);
}

Test(auth, every_flipped_bit_refused_one_request) { flip_every_bit(1); }
Test(auth, every_flipped_bit_refused_full_batch) { flip_every_bit(NETIO_BATCH_MAX); }

Test(auth, refusal_reasons)
{
	alignas(64) uint8_t datagram[NETIO_HEADER_SIZE + NETIO_REQUEST_SIZE];
	struct ledger_request request = vector_request();
	size_t length = netio_encode_requests(datagram, sizeof(datagram), 5, VECTOR_TIME_US,
					      &request, 1);
	struct netio_key key = vector_key();
	struct netio_principal principal = principal_of(&key, NETIO_ROLE_ACQUIRER);
	struct netio_keyring *ring = netio_keyring_create(&principal, 1);
	const struct netio_principal *who;
	/* No key at all. */
	netio_seal(NULL, datagram, length);
	cr_assert_eq(netio_authenticate(ring, datagram, length, &who), NETIO_AUTH_UNKNOWN_KEY);
	/* A key the ring does not have. */
	struct netio_key stranger = vector_key();
	stranger.id = 9;
	netio_seal(&stranger, datagram, length);
	cr_assert_eq(netio_authenticate(ring, datagram, length, &who), NETIO_AUTH_UNKNOWN_KEY);
	/* The right id, the wrong secret. */
	stranger.id = 7;
	stranger.secret[31] ^= 1;
	netio_seal(&stranger, datagram, length);
	cr_assert_eq(netio_authenticate(ring, datagram, length, &who), NETIO_AUTH_BAD_MAC);
	/* Short, other magic, version 1, oversized: nothing to check a MAC over. */
	netio_seal(&key, datagram, length);
	cr_assert_eq(netio_authenticate(ring, datagram, 47, &who), NETIO_AUTH_UNAUTHENTICATED);
	cr_assert_eq(netio_authenticate(ring, datagram, NETIO_DATAGRAM_MAX + 1, &who),
		     NETIO_AUTH_UNAUTHENTICATED);
	((struct netio_header *)datagram)->version = 1;
	cr_assert_eq(netio_authenticate(ring, datagram, length, &who), NETIO_AUTH_UNAUTHENTICATED);
	((struct netio_header *)datagram)->version = 2;
	((struct netio_header *)datagram)->magic ^= 1;
	cr_assert_eq(netio_authenticate(ring, datagram, length, &who), NETIO_AUTH_UNAUTHENTICATED);
	/* An empty ring knows nobody. */
	((struct netio_header *)datagram)->magic ^= 1;
	cr_assert_eq(netio_authenticate(NULL, datagram, length, &who), NETIO_AUTH_UNKNOWN_KEY);
	cr_assert_eq(netio_authenticate(ring, datagram, length, &who), NETIO_AUTH_OK);
	for (unsigned r = 0; r < NETIO_AUTH_REFUSAL_COUNT; r++)
		cr_assert_str_neq(netio_auth_refusal_name(r), "unknown");
	netio_keyring_destroy(ring);
}

Test(auth, keyring_sorted_lookup_and_duplicates)
{
	struct netio_principal principals[5];
	uint32_t ids[5] = {40, 3, 17, 9, 1000};
	for (int i = 0; i < 5; i++) {
		struct netio_key key = vector_key();
		key.id = ids[i];
		principals[i] = principal_of(&key, NETIO_ROLE_ADMIN);
	}
	struct netio_keyring *ring = netio_keyring_create(principals, 5);
	cr_assert_eq(netio_keyring_count(ring), 5);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(netio_keyring_find(ring, ids[i])->key_id, ids[i]);
	cr_assert_null(netio_keyring_find(ring, 0));
	cr_assert_null(netio_keyring_find(ring, 4));
	cr_assert_null(netio_keyring_find(ring, 1001));
	netio_keyring_destroy(ring);
	principals[4].key_id = 3;
	cr_assert_null(netio_keyring_create(principals, 5));
	cr_assert_eq(errno, EEXIST);
	struct netio_keyring *empty = netio_keyring_create(NULL, 0);
	cr_assert_eq(netio_keyring_count(empty), 0);
	netio_keyring_destroy(empty);
}

Test(auth, key_file_round_trip_and_mode)
{
	char path[] = "/tmp/payswitch-key-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	struct netio_key key = vector_key();
	char line[256];
	int n = netio_key_format(&key, "till-7", line, sizeof(line));
	cr_assert_gt(n, 0);
	cr_assert_eq(write(fd, line, (size_t)n), n);
	close(fd);
	cr_assert_eq(chmod(path, 0600), 0);
	struct netio_key loaded;
	cr_assert_eq(netio_key_load(path, &loaded), 0);
	cr_assert_eq(loaded.id, 7);
	cr_assert_eq(memcmp(loaded.secret, key.secret, NETIO_KEY_SIZE), 0);
	cr_assert_eq(chmod(path, 0640), 0);
	cr_assert_eq(netio_key_load(path, &loaded), -EACCES, "readable by group: refused");
	cr_assert_eq(chmod(path, 0600), 0);
	const char *bad[] = {"", "payswitch-key 2 7 00 x\n", "payswitch-key 1 0 "
			     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f x\n",
			     "payswitch-key 1 7 0001 x\n", "hello\n",
			     "payswitch-key 1 7 zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f x\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = open(path, O_WRONLY | O_TRUNC);
		cr_assert_eq(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
		close(fd);
		cr_assert_eq(netio_key_load(path, &loaded), -EINVAL, "case %zu", i);
	}
	unlink(path);
	cr_assert_eq(netio_key_load(path, &loaded), -ENOENT);
	cr_assert_eq(netio_key_format(&key, "x", line, 20), -ENOSPC);
}

/* ------------------------------------------------------------------------ */
/* Replay windows                                                            */
/* ------------------------------------------------------------------------ */
#define AGE_US 60000000ull
#define NOW VECTOR_TIME_US

Test(replay, in_order_then_replayed)
{
	struct netio_replay *replay = netio_replay_create(64, AGE_US);
	for (uint64_t s = NOW; s < NOW + 5000; s++)
		cr_assert_eq(netio_replay_check(replay, 7, 1, s, NOW), NETIO_AUTH_OK);
	for (uint64_t s = NOW + 5000 - NETIO_REPLAY_WINDOW; s < NOW + 5000; s++)
		cr_assert_eq(netio_replay_check(replay, 7, 1, s, NOW), NETIO_AUTH_REPLAYED);
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW + 4999 - NETIO_REPLAY_WINDOW, NOW),
		     NETIO_AUTH_TOO_OLD);
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW, NOW), NETIO_AUTH_TOO_OLD);
	netio_replay_destroy(replay);
}

Test(replay, reordered_within_window_accepted_once)
{
	struct netio_replay *replay = netio_replay_create(64, AGE_US);
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW + 1000, NOW), NETIO_AUTH_OK);
	/* Late arrivals below the highest, inside the window: each once. */
	for (uint64_t s = NOW + 1000 - NETIO_REPLAY_WINDOW + 1; s < NOW + 1000; s += 3) {
		cr_assert_eq(netio_replay_check(replay, 7, 1, s, NOW), NETIO_AUTH_OK);
		cr_assert_eq(netio_replay_check(replay, 7, 1, s, NOW), NETIO_AUTH_REPLAYED);
	}
	/* A jump clears what it passes over: sequences skipped are new. */
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW + 1500, NOW), NETIO_AUTH_OK);
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW + 1200, NOW), NETIO_AUTH_OK);
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW + 1000, NOW), NETIO_AUTH_REPLAYED);
	/* A far jump clears everything; the old highest is then too old. */
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW + 100000, NOW), NETIO_AUTH_OK);
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW + 1500, NOW), NETIO_AUTH_TOO_OLD);
	netio_replay_destroy(replay);
}

Test(replay, senders_are_independent_and_clock_bounded)
{
	struct netio_replay *replay = netio_replay_create(64, AGE_US);
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW, NOW), NETIO_AUTH_OK);
	cr_assert_eq(netio_replay_check(replay, 7, 2, NOW, NOW), NETIO_AUTH_OK, "other client id");
	cr_assert_eq(netio_replay_check(replay, 8, 1, NOW, NOW), NETIO_AUTH_OK, "other key");
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW, NOW), NETIO_AUTH_REPLAYED);
	cr_assert_eq(netio_replay_check(replay, 7, 3, NOW - AGE_US - 1, NOW), NETIO_AUTH_STALE);
	cr_assert_eq(netio_replay_check(replay, 7, 3, NOW + AGE_US + 1, NOW), NETIO_AUTH_STALE);
	cr_assert_eq(netio_replay_check(replay, 7, 3, NOW - AGE_US, NOW), NETIO_AUTH_OK);
	netio_replay_destroy(replay);
}

/* A table full of live senders refuses a new one rather than forget one
 * (forgetting would let its datagrams be replayed); a sender idle for more
 * than twice the age bound is forgotten safely: all it sent is STALE. */
Test(replay, full_table_refuses_then_idle_senders_make_room)
{
	struct netio_replay *replay = netio_replay_create(16, AGE_US);
	uint64_t capacity = netio_replay_capacity(replay);
	cr_assert_geq(capacity, 16);
	uint64_t accepted = 0, full = 0;
	for (uint64_t client = 1; client <= capacity * 4; client++) {
		enum netio_auth_refusal why = netio_replay_check(replay, 7, client, NOW, NOW);
		cr_assert(why == NETIO_AUTH_OK || why == NETIO_AUTH_SESSIONS_FULL);
		accepted += why == NETIO_AUTH_OK;
		full += why == NETIO_AUTH_SESSIONS_FULL;
	}
	cr_assert_leq(accepted, capacity);
	cr_assert_gt(full, 0);
	/* Everyone accepted is remembered: a replay of any is refused. */
	uint64_t replayed = 0;
	for (uint64_t client = 1; client <= capacity * 4; client++)
		replayed += netio_replay_check(replay, 7, client, NOW, NOW + 1) == NETIO_AUTH_REPLAYED;
	cr_assert_eq(replayed, accepted);
	/* 2 x age later the idle ones give way, and their old datagrams are stale. */
	uint64_t later = NOW + 2 * AGE_US + 2;
	cr_assert_eq(netio_replay_check(replay, 7, capacity * 8, later, later), NETIO_AUTH_OK);
	cr_assert_eq(netio_replay_check(replay, 7, 1, NOW, later), NETIO_AUTH_STALE);
	netio_replay_destroy(replay);
	cr_log_info("replay: capacity %llu, %llu accepted, %llu refused SESSIONS_FULL",
		    (unsigned long long)capacity, (unsigned long long)accepted,
		    (unsigned long long)full);
}

/* ------------------------------------------------------------------------ */
/* Roles                                                                     */
/* ------------------------------------------------------------------------ */
static uint16_t allows(const struct netio_principal *principal, uint8_t kind, uint64_t account,
		       uint64_t other)
{
	struct ledger_request request = vector_request();
	request.kind = kind;
	request.account_id = account;
	request.other_id = other;
	return netio_principal_allows(principal, &request);
}

Test(roles, admin_and_acquirer_kinds)
{
	struct netio_key key = vector_key();
	struct netio_principal admin = principal_of(&key, NETIO_ROLE_ADMIN);
	struct netio_principal acquirer = principal_of(&key, NETIO_ROLE_ACQUIRER);
	struct netio_principal nobody = principal_of(&key, NETIO_ROLE_NONE);
	/* PROTOCOL.md "Roles", kind by kind: 1 admin, 2 acquirer, 3 both. */
	static const int who[LEDGER_KIND_COUNT] = {
		[LEDGER_KIND_OPEN] = 1, [LEDGER_KIND_DEPOSIT] = 1, [LEDGER_KIND_PAY] = 2,
		[LEDGER_KIND_HOLD] = 2, [LEDGER_KIND_CAPTURE] = 2, [LEDGER_KIND_VOID] = 2,
		[LEDGER_KIND_REFUND] = 2, [LEDGER_KIND_FREEZE] = 1, [LEDGER_KIND_CLOSE] = 1,
		[LEDGER_KIND_SET_LIMITS] = 1, [LEDGER_KIND_BALANCE] = 3, [LEDGER_KIND_LOOKUP] = 3,
	};
	for (unsigned kind = 0; kind < 256; kind++) {
		int expected = kind < LEDGER_KIND_COUNT ? who[kind] : 0;
		cr_assert_eq(allows(&admin, (uint8_t)kind, 1, 2) == LEDGER_OK, (expected & 1) != 0,
			     "admin, kind %u", kind);
		cr_assert_eq(allows(&acquirer, (uint8_t)kind, 1, 2) == LEDGER_OK,
			     (expected & 2) != 0, "acquirer, kind %u", kind);
		cr_assert_eq(allows(&nobody, (uint8_t)kind, 1, 2), LEDGER_FORBIDDEN);
	}
	cr_assert_eq(netio_role_parse("admin"), NETIO_ROLE_ADMIN);
	cr_assert_eq(netio_role_parse("acquirer"), NETIO_ROLE_ACQUIRER);
	cr_assert_eq(netio_role_parse("terminal"), NETIO_ROLE_TERMINAL);
	cr_assert_eq(netio_role_parse("root"), NETIO_ROLE_NONE);
	cr_assert_str_eq(netio_role_name(NETIO_ROLE_TERMINAL), "terminal");
	cr_assert_str_eq(netio_role_name(99), "none");
}

Test(roles, terminal_bound_to_accounts_and_merchant)
{
	struct netio_key key = vector_key();
	struct netio_principal wallet = principal_of(&key, NETIO_ROLE_TERMINAL);
	wallet.account_count = 2;
	wallet.accounts[0] = 1001;
	wallet.accounts[1] = 1002;
	struct netio_principal till = principal_of(&key, NETIO_ROLE_TERMINAL);
	till.merchant = 2001;
	/* A wallet: the acquirer's kinds from its own accounts only. */
	cr_assert_eq(allows(&wallet, LEDGER_KIND_PAY, 1001, 2001), LEDGER_OK);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_HOLD, 1002, 2001), LEDGER_OK);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_CAPTURE, 1002, 0), LEDGER_OK);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_VOID, 1001, 0), LEDGER_OK);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_BALANCE, 1001, 0), LEDGER_OK);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_PAY, 1003, 2001), LEDGER_FORBIDDEN);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_BALANCE, 1003, 0), LEDGER_FORBIDDEN);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_PAY, 2001, 1001), LEDGER_FORBIDDEN,
		     "paying into a bound account is not paying from it");
	cr_assert_eq(allows(&wallet, LEDGER_KIND_OPEN, 1001, 0), LEDGER_FORBIDDEN);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_DEPOSIT, 1001, 1002), LEDGER_FORBIDDEN);
	cr_assert_eq(allows(&wallet, LEDGER_KIND_FREEZE, 1001, 0), LEDGER_FORBIDDEN);
	/* A merchant's till: payments and holds to it, its refunds and reads. */
	cr_assert_eq(allows(&till, LEDGER_KIND_PAY, 1001, 2001), LEDGER_OK);
	cr_assert_eq(allows(&till, LEDGER_KIND_HOLD, 1005, 2001), LEDGER_OK);
	cr_assert_eq(allows(&till, LEDGER_KIND_REFUND, 2001, 1001), LEDGER_OK);
	cr_assert_eq(allows(&till, LEDGER_KIND_BALANCE, 2001, 0), LEDGER_OK);
	cr_assert_eq(allows(&till, LEDGER_KIND_LOOKUP, 2001, 0), LEDGER_OK);
	cr_assert_eq(allows(&till, LEDGER_KIND_PAY, 1001, 2002), LEDGER_FORBIDDEN);
	cr_assert_eq(allows(&till, LEDGER_KIND_REFUND, 2002, 1001), LEDGER_FORBIDDEN);
	cr_assert_eq(allows(&till, LEDGER_KIND_PAY, 2001, 1001), LEDGER_FORBIDDEN,
		     "paying out of the merchant is not taking a payment");
	cr_assert_eq(allows(&till, LEDGER_KIND_CAPTURE, 1001, 2001), LEDGER_FORBIDDEN,
		     "a capture names the payer, not the payee: not the till's to ask");
	cr_assert_eq(allows(&till, LEDGER_KIND_VOID, 1001, 2001), LEDGER_FORBIDDEN);
	cr_assert_eq(allows(&till, LEDGER_KIND_BALANCE, 1001, 0), LEDGER_FORBIDDEN);
	/* Account 0 is never bound. */
	struct netio_principal zero = wallet;
	zero.accounts[0] = 0;
	cr_assert_eq(allows(&zero, LEDGER_KIND_PAY, 0, 2001), LEDGER_FORBIDDEN);
}
