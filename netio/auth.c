/*
 * auth.c — protocol version 2 authentication: MACs, key files, roles, the
 * key ring the switch looks senders up in, and the replay windows.
 *
 * The cryptography is libsodium's (keyed BLAKE2b through crypto_generichash,
 * sodium_memcmp for the constant-time comparison); nothing here is
 * hand-written cryptography. PROTOCOL.md "Authentication" is the reference.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "netio.h"

_Static_assert(NETIO_MAC_SIZE >= crypto_generichash_BYTES_MIN, "libsodium's minimum output");
_Static_assert(NETIO_KEY_SIZE >= crypto_generichash_KEYBYTES_MIN, "libsodium's minimum key");
_Static_assert(NETIO_KEY_SIZE <= crypto_generichash_KEYBYTES_MAX, "libsodium's maximum key");
_Static_assert(offsetof(struct netio_header, mac) == NETIO_MAC_OFFSET, "PROTOCOL.md layout");
_Static_assert(offsetof(struct netio_header, key_id) == 12, "PROTOCOL.md layout");

/* libsodium must be initialised before use (it picks the fastest BLAKE2b
 * for this CPU, and sodium_malloc needs the page size). sodium_init is
 * thread-safe and idempotent; the flag only saves its lock on the hot path. */
static atomic_bool sodium_ready;

static void sodium_ensure(void)
{
	if (atomic_load_explicit(&sodium_ready, memory_order_acquire))
		return;
	int status = sodium_init();
	assert(status >= 0);
	(void)status;
	atomic_store_explicit(&sodium_ready, true, memory_order_release);
}

/* ------------------------------------------------------------------------ */
/* MACs                                                                      */
/* ------------------------------------------------------------------------ */
void netio_mac(const uint8_t secret[NETIO_KEY_SIZE], const void *datagram, size_t length,
	       uint8_t mac[NETIO_MAC_SIZE])
{
	sodium_ensure();
	assert(secret != NULL);
	assert(datagram != NULL);
	assert(length >= NETIO_HEADER_SIZE);
	const uint8_t *bytes = datagram;
	crypto_generichash_state state;
	crypto_generichash_init(&state, secret, NETIO_KEY_SIZE, NETIO_MAC_SIZE);
	crypto_generichash_update(&state, bytes, NETIO_MAC_OFFSET);
	crypto_generichash_update(&state, bytes + NETIO_HEADER_SIZE, length - NETIO_HEADER_SIZE);
	crypto_generichash_final(&state, mac, NETIO_MAC_SIZE);
}

void netio_seal(const struct netio_key *key, void *datagram, size_t length)
{
	assert(datagram != NULL);
	assert(length >= NETIO_HEADER_SIZE);
	struct netio_header *header = datagram;
	if (key == NULL) {
		header->key_id = NETIO_KEY_ID_NONE;
		memset(header->mac, 0, NETIO_MAC_SIZE);
		return;
	}
	assert(key->id != NETIO_KEY_ID_NONE);
	header->key_id = key->id;
	uint8_t mac[NETIO_MAC_SIZE];
	netio_mac(key->secret, datagram, length, mac);
	memcpy(header->mac, mac, NETIO_MAC_SIZE);
}

bool netio_mac_ok(const uint8_t secret[NETIO_KEY_SIZE], const void *datagram, size_t length)
{
	assert(length >= NETIO_HEADER_SIZE);
	uint8_t mac[NETIO_MAC_SIZE];
	netio_mac(secret, datagram, length, mac);
	const uint8_t *carried = (const uint8_t *)datagram + NETIO_MAC_OFFSET;
	return sodium_memcmp(mac, carried, NETIO_MAC_SIZE) == 0;
}

/* ------------------------------------------------------------------------ */
/* Key files                                                                 */
/* ------------------------------------------------------------------------ */
#define KEY_FILE_MAGIC "payswitch-key"
#define KEY_FILE_VERSION 1
#define KEY_FILE_MAX 512

int netio_key_format(const struct netio_key *key, const char *name, char *buffer,
		     size_t capacity)
{
	assert(key != NULL);
	assert(name != NULL);
	sodium_ensure();
	char hex[2 * NETIO_KEY_SIZE + 1];
	sodium_bin2hex(hex, sizeof(hex), key->secret, NETIO_KEY_SIZE);
	int n = snprintf(buffer, capacity, "%s %d %u %s %s\n", KEY_FILE_MAGIC, KEY_FILE_VERSION,
			 key->id, hex, name);
	sodium_memzero(hex, sizeof(hex));
	if (n < 0 || (size_t)n >= capacity)
		return -ENOSPC;
	return n;
}

static int key_parse(char *text, struct netio_key *key)
{
	char magic[16], hex[2 * NETIO_KEY_SIZE + 2], name[NETIO_PRINCIPAL_NAME_MAX];
	int version = 0;
	unsigned long id = 0;
	int fields = sscanf(text, "%15s %d %lu %65s %63s", magic, &version, &id, hex, name);
	int error = -EINVAL;
	if (fields < 4 || strcmp(magic, KEY_FILE_MAGIC) != 0 || version != KEY_FILE_VERSION)
		goto out;
	if (id == 0 || id > UINT32_MAX || strlen(hex) != 2 * NETIO_KEY_SIZE)
		goto out;
	size_t length = 0;
	if (sodium_hex2bin(key->secret, NETIO_KEY_SIZE, hex, strlen(hex), NULL, &length, NULL) != 0 ||
	    length != NETIO_KEY_SIZE)
		goto out;
	key->id = (uint32_t)id;
	error = 0;
out:
	sodium_memzero(hex, sizeof(hex));
	return error;
}

int netio_key_load(const char *path, struct netio_key *key)
{
	assert(path != NULL);
	assert(key != NULL);
	sodium_ensure();
	memset(key, 0, sizeof(*key));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat status;
	int error = 0;
	char text[KEY_FILE_MAX + 1];
	if (fstat(fd, &status) != 0) {
		error = -errno;
		goto out;
	}
	if ((status.st_mode & 077) != 0) {
		error = -EACCES;
		goto out;
	}
	ssize_t n = read(fd, text, KEY_FILE_MAX);
	if (n < 0) {
		error = -errno;
		goto out;
	}
	text[n] = '\0';
	error = key_parse(text, key);
out:
	sodium_memzero(text, sizeof(text));
	close(fd);
	if (error != 0)
		sodium_memzero(key, sizeof(*key));
	return error;
}

/* ------------------------------------------------------------------------ */
/* Roles                                                                     */
/* ------------------------------------------------------------------------ */
static const char *const role_names[] = {
	[NETIO_ROLE_NONE] = "none",
	[NETIO_ROLE_ADMIN] = "admin",
	[NETIO_ROLE_ACQUIRER] = "acquirer",
	[NETIO_ROLE_TERMINAL] = "terminal",
};

const char *netio_role_name(unsigned role)
{
	if (role > NETIO_ROLE_TERMINAL)
		return "none";
	return role_names[role];
}

enum netio_role netio_role_parse(const char *name)
{
	for (unsigned role = NETIO_ROLE_ADMIN; role <= NETIO_ROLE_TERMINAL; role++)
		if (strcmp(name, role_names[role]) == 0)
			return (enum netio_role)role;
	return NETIO_ROLE_NONE;
}

static bool kind_is_admin(uint8_t kind)
{
	switch (kind) {
	case LEDGER_KIND_OPEN:
	case LEDGER_KIND_DEPOSIT:
	case LEDGER_KIND_FREEZE:
	case LEDGER_KIND_CLOSE:
	case LEDGER_KIND_SET_LIMITS:
	case LEDGER_KIND_BALANCE:
	case LEDGER_KIND_LOOKUP:
		return true;
	default:
		return false;
	}
}

static bool kind_is_acquirer(uint8_t kind)
{
	switch (kind) {
	case LEDGER_KIND_PAY:
	case LEDGER_KIND_HOLD:
	case LEDGER_KIND_CAPTURE:
	case LEDGER_KIND_VOID:
	case LEDGER_KIND_REFUND:
	case LEDGER_KIND_BALANCE:
	case LEDGER_KIND_LOOKUP:
		return true;
	default:
		return false;
	}
}

static bool bound_account(const struct netio_principal *principal, uint64_t account)
{
	assert(principal->account_count <= NETIO_PRINCIPAL_ACCOUNTS_MAX);
	if (account == 0)
		return false;
	for (uint32_t i = 0; i < principal->account_count; i++)
		if (principal->accounts[i] == account)
			return true;
	return false;
}

/* A terminal acts for its bound accounts (a wallet: anything the acquirer
 * may do, from them) or its merchant (payments and holds to it, refunds,
 * balances and look-ups of it). A merchant terminal cannot CAPTURE or VOID:
 * those requests name the payer and the hold, not the payee, so netio
 * cannot tell whose hold it is (PROTOCOL.md "Roles"). */
static bool terminal_allows(const struct netio_principal *principal,
			    const struct ledger_request *request)
{
	if (!kind_is_acquirer(request->kind))
		return false;
	if (bound_account(principal, request->account_id))
		return true;
	if (principal->merchant == 0)
		return false;
	switch (request->kind) {
	case LEDGER_KIND_PAY:
	case LEDGER_KIND_HOLD:
		return request->other_id == principal->merchant;
	case LEDGER_KIND_REFUND:
	case LEDGER_KIND_BALANCE:
	case LEDGER_KIND_LOOKUP:
		return request->account_id == principal->merchant;
	default:
		return false;
	}
}

uint16_t netio_principal_allows(const struct netio_principal *principal,
				const struct ledger_request *request)
{
	assert(principal != NULL);
	assert(request != NULL);
	bool allowed = false;
	switch (principal->role) {
	case NETIO_ROLE_ADMIN: allowed = kind_is_admin(request->kind); break;
	case NETIO_ROLE_ACQUIRER: allowed = kind_is_acquirer(request->kind); break;
	case NETIO_ROLE_TERMINAL: allowed = terminal_allows(principal, request); break;
	default: allowed = false; break;
	}
	return allowed ? LEDGER_OK : LEDGER_FORBIDDEN;
}

/* ------------------------------------------------------------------------ */
/* Key ring: principals sorted by key id, immutable once built               */
/* ------------------------------------------------------------------------ */
struct netio_keyring {
	uint32_t count;
	struct netio_principal principals[];
};

static int principal_compare(const void *a, const void *b)
{
	const struct netio_principal *x = a, *y = b;
	return x->key_id < y->key_id ? -1 : x->key_id > y->key_id;
}

struct netio_keyring *netio_keyring_create(const struct netio_principal *principals,
					   uint32_t count)
{
	assert(principals != NULL || count == 0);
	sodium_ensure();
	struct netio_keyring *ring =
		sodium_malloc(sizeof(*ring) + (size_t)count * sizeof(struct netio_principal));
	if (ring == NULL)
		return NULL;
	ring->count = count;
	if (count > 0)
		memcpy(ring->principals, principals, (size_t)count * sizeof(*principals));
	qsort(ring->principals, count, sizeof(*principals), principal_compare);
	for (uint32_t i = 1; i < count; i++) {
		assert(ring->principals[i].key_id != NETIO_KEY_ID_NONE);
		if (ring->principals[i].key_id == ring->principals[i - 1].key_id) {
			netio_keyring_destroy(ring);
			errno = EEXIST;
			return NULL;
		}
	}
	return ring;
}

void netio_keyring_destroy(struct netio_keyring *ring)
{
	if (ring != NULL)
		sodium_free(ring);   /* zeroes the secrets */
}

uint32_t netio_keyring_count(const struct netio_keyring *ring)
{
	return ring == NULL ? 0 : ring->count;
}

const struct netio_principal *netio_keyring_find(const struct netio_keyring *ring,
						 uint32_t key_id)
{
	if (ring == NULL || key_id == NETIO_KEY_ID_NONE)
		return NULL;
	uint32_t low = 0, high = ring->count;
	while (low < high) {
		uint32_t middle = low + (high - low) / 2;
		uint32_t found = ring->principals[middle].key_id;
		if (found == key_id)
			return &ring->principals[middle];
		if (found < key_id)
			low = middle + 1;
		else
			high = middle;
	}
	return NULL;
}

static const char *const auth_refusal_names[NETIO_AUTH_REFUSAL_COUNT] = {
	[NETIO_AUTH_OK] = "ok",
	[NETIO_AUTH_UNAUTHENTICATED] = "unauthenticated",
	[NETIO_AUTH_UNKNOWN_KEY] = "unknown_key",
	[NETIO_AUTH_BAD_MAC] = "bad_mac",
	[NETIO_AUTH_REPLAYED] = "replayed",
	[NETIO_AUTH_TOO_OLD] = "too_old",
	[NETIO_AUTH_STALE] = "stale",
	[NETIO_AUTH_SESSIONS_FULL] = "sessions_full",
};

const char *netio_auth_refusal_name(unsigned refusal)
{
	if (refusal >= NETIO_AUTH_REFUSAL_COUNT)
		return "unknown";
	return auth_refusal_names[refusal];
}

enum netio_auth_refusal netio_authenticate(const struct netio_keyring *ring, const void *datagram,
					   size_t length, const struct netio_principal **principal)
{
	assert(principal != NULL);
	*principal = NULL;
	/* Framing a MAC can be checked over: a whole header of this version,
	 * no longer than the largest datagram. Anything else is not ours to
	 * answer (PROTOCOL.md: no reply to an unauthenticated source). */
	if (length < NETIO_HEADER_SIZE || length > NETIO_DATAGRAM_MAX)
		return NETIO_AUTH_UNAUTHENTICATED;
	struct netio_header header;
	memcpy(&header, datagram, sizeof(header));
	if (header.magic != NETIO_MAGIC || header.version != NETIO_VERSION)
		return NETIO_AUTH_UNAUTHENTICATED;
	const struct netio_principal *found = netio_keyring_find(ring, header.key_id);
	if (found == NULL)
		return NETIO_AUTH_UNKNOWN_KEY;
	if (!netio_mac_ok(found->secret, datagram, length))
		return NETIO_AUTH_BAD_MAC;
	*principal = found;
	return NETIO_AUTH_OK;
}

/* ------------------------------------------------------------------------ */
/* Replay windows                                                            */
/* ------------------------------------------------------------------------ */
#define REPLAY_WAYS 4u
#define REPLAY_WINDOW_WORDS (NETIO_REPLAY_WINDOW / 64u)
_Static_assert(NETIO_REPLAY_WINDOW % 64u == 0, "whole words");

/* One sender (key id, client id): the highest sequence accepted and which
 * of the NETIO_REPLAY_WINDOW sequences at or below it were seen. */
struct replay_session {
	uint32_t key_id;           /* 0: free */
	uint32_t reserved;
	uint64_t client_id;
	uint64_t highest;
	uint64_t last_us;          /* realtime of the last accepted datagram */
	uint64_t seen[REPLAY_WINDOW_WORDS];
};

struct replay_bucket {
	atomic_flag lock;
	struct replay_session sessions[REPLAY_WAYS];
};

struct netio_replay {
	uint32_t bucket_mask;
	uint64_t max_age_us;
	struct replay_bucket *buckets;
};

struct netio_replay *netio_replay_create(uint32_t sessions, uint64_t max_age_us)
{
	assert(max_age_us > 0);
	uint32_t buckets = 1;
	while ((uint64_t)buckets * REPLAY_WAYS < sessions && buckets < (1u << 30))
		buckets *= 2;
	struct netio_replay *replay = calloc(1, sizeof(*replay));
	if (replay == NULL)
		return NULL;
	replay->buckets = calloc(buckets, sizeof(struct replay_bucket));
	if (replay->buckets == NULL) {
		free(replay);
		return NULL;
	}
	for (uint32_t b = 0; b < buckets; b++)
		atomic_flag_clear(&replay->buckets[b].lock);
	replay->bucket_mask = buckets - 1;
	replay->max_age_us = max_age_us;
	return replay;
}

void netio_replay_destroy(struct netio_replay *replay)
{
	if (replay == NULL)
		return;
	free(replay->buckets);
	free(replay);
}

uint64_t netio_replay_capacity(const struct netio_replay *replay)
{
	return ((uint64_t)replay->bucket_mask + 1) * REPLAY_WAYS;
}

static uint32_t replay_bucket_of(const struct netio_replay *replay, uint32_t key_id,
				 uint64_t client_id)
{
	uint64_t h = (client_id ^ ((uint64_t)key_id << 32 | key_id)) * 0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 32) & replay->bucket_mask;
}

static void session_mark(struct replay_session *session, uint64_t sequence)
{
	uint64_t bit = sequence % NETIO_REPLAY_WINDOW;
	session->seen[bit / 64] |= 1ull << (bit % 64);
}

static bool session_seen(const struct replay_session *session, uint64_t sequence)
{
	uint64_t bit = sequence % NETIO_REPLAY_WINDOW;
	return (session->seen[bit / 64] >> (bit % 64)) & 1u;
}

/* Moves the window up to `sequence`: the bits of every sequence passed over
 * (highest + 1 .. sequence) are cleared, they were never seen. */
static void session_advance(struct replay_session *session, uint64_t sequence)
{
	assert(sequence > session->highest);
	uint64_t distance = sequence - session->highest;
	if (distance >= NETIO_REPLAY_WINDOW) {
		memset(session->seen, 0, sizeof(session->seen));
	} else {
		for (uint64_t s = session->highest + 1; s <= sequence; s++) {
			uint64_t bit = s % NETIO_REPLAY_WINDOW;
			session->seen[bit / 64] &= ~(1ull << (bit % 64));
		}
	}
	session->highest = sequence;
}

static enum netio_auth_refusal session_accept(struct replay_session *session, uint64_t sequence,
					      uint64_t now_us)
{
	if (sequence > session->highest) {
		session_advance(session, sequence);
	} else {
		if (session->highest - sequence >= NETIO_REPLAY_WINDOW)
			return NETIO_AUTH_TOO_OLD;
		if (session_seen(session, sequence))
			return NETIO_AUTH_REPLAYED;
	}
	session_mark(session, sequence);
	session->last_us = now_us;
	return NETIO_AUTH_OK;
}

/* A free way, or one idle for more than twice the freshness bound: every
 * datagram it accepted is then refused STALE whatever window it lands in
 * (PROTOCOL.md "Replay protection" has the argument). */
static struct replay_session *session_claim(const struct netio_replay *replay,
					    struct replay_bucket *bucket, uint64_t now_us)
{
	struct replay_session *free_way = NULL;
	for (uint32_t w = 0; w < REPLAY_WAYS; w++) {
		struct replay_session *s = &bucket->sessions[w];
		if (s->key_id == NETIO_KEY_ID_NONE)
			return s;
		if (now_us > s->last_us && now_us - s->last_us > 2 * replay->max_age_us &&
		    (free_way == NULL || s->last_us < free_way->last_us))
			free_way = s;
	}
	return free_way;
}

enum netio_auth_refusal netio_replay_check(struct netio_replay *replay, uint32_t key_id,
					   uint64_t client_id, uint64_t sequence, uint64_t now_us)
{
	assert(replay != NULL);
	assert(key_id != NETIO_KEY_ID_NONE);
	/* The sequence is the sender's realtime clock in µs (or just past it):
	 * outside now ± max_age it is refused whatever the window says. */
	if (sequence + replay->max_age_us < now_us || sequence > now_us + replay->max_age_us)
		return NETIO_AUTH_STALE;
	struct replay_bucket *bucket =
		&replay->buckets[replay_bucket_of(replay, key_id, client_id)];
	while (atomic_flag_test_and_set_explicit(&bucket->lock, memory_order_acquire))
		continue;
	enum netio_auth_refusal verdict = NETIO_AUTH_SESSIONS_FULL;
	struct replay_session *session = NULL;
	for (uint32_t w = 0; w < REPLAY_WAYS && session == NULL; w++)
		if (bucket->sessions[w].key_id == key_id &&
		    bucket->sessions[w].client_id == client_id)
			session = &bucket->sessions[w];
	if (session == NULL) {
		session = session_claim(replay, bucket, now_us);
		if (session != NULL) {
			memset(session, 0, sizeof(*session));
			session->key_id = key_id;
			session->client_id = client_id;
			session->highest = sequence;
			session_mark(session, sequence);
			session->last_us = now_us;
			verdict = NETIO_AUTH_OK;
		}
	} else {
		verdict = session_accept(session, sequence, now_us);
	}
	atomic_flag_clear_explicit(&bucket->lock, memory_order_release);
	return verdict;
}
