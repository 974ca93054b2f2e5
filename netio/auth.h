/*
 * auth.h — the switch's side of protocol version 2 authentication: the key
 * ring it looks senders up in, role checks, and the replay windows. Clients
 * need only netio.h (netio_seal, netio_key_load). PROTOCOL.md
 * "Authentication", "Roles" and "Replay protection" are the reference.
 *
 * Thread-safety: a key ring is immutable once built and may be read by any
 * number of threads; the engine swaps whole rings on SIGHUP. The replay
 * table is shared by every worker (per-bucket spinlocks).
 */
#ifndef PAYSWITCH_NETIO_AUTH_H
#define PAYSWITCH_NETIO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netio.h"

/* Why a datagram was not let in (counted by reason in /metrics). */
enum netio_auth_refusal {
	NETIO_AUTH_OK = 0,
	NETIO_AUTH_UNAUTHENTICATED,  /* no checkable header: short, other magic or version, oversized */
	NETIO_AUTH_UNKNOWN_KEY,      /* key id 0 or not in the key ring */
	NETIO_AUTH_BAD_MAC,          /* the MAC does not match the key */
	NETIO_AUTH_REPLAYED,         /* this sender's sequence was seen already */
	NETIO_AUTH_TOO_OLD,          /* below this sender's window */
	NETIO_AUTH_STALE,            /* the sequence (sender's µs clock) is outside now ± max age */
	NETIO_AUTH_SESSIONS_FULL,    /* no room to remember a new sender */
	NETIO_AUTH_REFUSAL_COUNT,
};
const char *netio_auth_refusal_name(unsigned refusal);   /* "bad_mac" */

/* Roles: LEDGER_OK, or LEDGER_FORBIDDEN when the principal may not ask for
 * this request (kind, or accounts outside a terminal's bindings). */
uint16_t netio_principal_allows(const struct netio_principal *principal,
				const struct ledger_request *request);

struct netio_keyring;
/* Copies count principals (sorted by key id; duplicate ids: NULL, errno
 * EEXIST). Memory from sodium_malloc: guarded, zeroed when destroyed. */
struct netio_keyring *netio_keyring_create(const struct netio_principal *principals,
					   uint32_t count);
void netio_keyring_destroy(struct netio_keyring *ring);
uint32_t netio_keyring_count(const struct netio_keyring *ring);
const struct netio_principal *netio_keyring_find(const struct netio_keyring *ring,
						 uint32_t key_id);

/* Who sent this datagram: NETIO_AUTH_OK and *principal (into ring), or the
 * reason it is not authentic. Checks only what the MAC needs (length,
 * magic, version, key id, MAC); the framing rules come after, from
 * netio_decode, and are answered since the sender is then known. */
enum netio_auth_refusal netio_authenticate(const struct netio_keyring *ring, const void *datagram,
					   size_t length, const struct netio_principal **principal);

/* Sequences a sender's window remembers below its highest. */
#define NETIO_REPLAY_WINDOW 1024u
struct netio_replay;
/* Room for at least `sessions` senders (key id, client id); max_age_us:
 * how far a sequence may be from the switch's realtime clock. */
struct netio_replay *netio_replay_create(uint32_t sessions, uint64_t max_age_us);
void netio_replay_destroy(struct netio_replay *replay);
uint64_t netio_replay_capacity(const struct netio_replay *replay);
/* Accepts (and remembers) or refuses one authenticated datagram. now_us:
 * CLOCK_REALTIME in µs. */
enum netio_auth_refusal netio_replay_check(struct netio_replay *replay, uint32_t key_id,
					   uint64_t client_id, uint64_t sequence, uint64_t now_us);

#endif /* PAYSWITCH_NETIO_AUTH_H */
