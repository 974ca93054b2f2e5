/*
 * netio.h — the native payswitch protocol: codec, client library, transports.
 *
 * The one public header of netio/. The byte layouts and every validation rule
 * are in netio/PROTOCOL.md; this header is the C view of them.
 *
 * Byte order: the wire is little-endian and the payload of a datagram is an
 * array of struct ledger_request (64 B) or struct ledger_result (40 B) exactly
 * as ledger.h lays them out, so on a little-endian host (the only kind netio
 * builds on: codec.c refuses others at compile time) decoding is a
 * validation plus a pointer, never a copy.
 *
 * Units: sizes and lengths are bytes, counts are requests or results, times
 * are milliseconds where named _ms.
 *
 * Thread-safety: the codec functions are pure (no state; any thread). A
 * client is owned by one thread. Transports: see transport.h.
 */
#ifndef PAYSWITCH_NETIO_H
#define PAYSWITCH_NETIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "transport.h"

/* ------------------------------------------------------------------------ */
/* Protocol constants (PROTOCOL.md)                                          */
/* ------------------------------------------------------------------------ */
#define NETIO_MAGIC 0x4e575350u        /* bytes "PSWN" on the wire */
#define NETIO_VERSION 2u
#define NETIO_HEADER_SIZE 48u        /* version 2: key id and MAC */
#define NETIO_MAC_OFFSET 32u         /* the MAC covers bytes [0, 32) and [48, length) */
#define NETIO_REQUEST_SIZE 64u         /* sizeof(struct ledger_request) */
#define NETIO_RESULT_SIZE 40u          /* sizeof(struct ledger_result) */
#define NETIO_BATCH_MAX 128u           /* requests (or results) per datagram */
#define NETIO_BATCH_MTU1500 22u        /* requests that fit a 1500-byte MTU unfragmented */
/* 48 + 128 * 64 = 8240 bytes: fits a 9000-byte jumbo frame (8972 bytes of UDP
 * payload over IPv4, 8952 over IPv6) and loopback (MTU 65536) unfragmented. */
#define NETIO_DATAGRAM_MAX (NETIO_HEADER_SIZE + NETIO_BATCH_MAX * NETIO_REQUEST_SIZE)
#define NETIO_REPLY_MAX (NETIO_HEADER_SIZE + NETIO_BATCH_MAX * NETIO_RESULT_SIZE) /* 5168 */
#define NETIO_ERROR_SIZE (NETIO_HEADER_SIZE + NETIO_RESULT_SIZE)               /* 88 */

enum netio_type {
	NETIO_TYPE_REQUEST = 1,   /* client -> switch: count requests */
	NETIO_TYPE_REPLY = 2,     /* switch -> client: count results (maybe one part of several) */
	NETIO_TYPE_ERROR = 3,     /* switch -> client: the whole datagram was refused; one result */
};

/* The 48-byte header that starts every datagram (version 2). */
struct netio_header {
	uint32_t magic;           /* NETIO_MAGIC */
	uint16_t version;         /* NETIO_VERSION */
	uint8_t type;             /* enum netio_type */
	uint8_t reserved0;        /* must be 0 */
	uint16_t count;           /* requests or results that follow: 1..NETIO_BATCH_MAX */
	uint16_t reserved1;       /* must be 0 */
	uint32_t key_id;          /* the client's key (replies: the key they are sealed
	                           * with); 0: none */
	uint64_t client_id;       /* chosen by the client; echoed in replies */
	uint64_t sequence;        /* datagram sequence: the client's realtime clock in
	                           * µs, strictly increasing; echoed */
	uint8_t mac[16];          /* NETIO_MAC_SIZE: keyed BLAKE2b-128 (netio_mac) */
};
_Static_assert(sizeof(struct netio_header) == NETIO_HEADER_SIZE, "header layout is on the wire");
_Static_assert(sizeof(struct ledger_request) == NETIO_REQUEST_SIZE, "request layout is on the wire");
_Static_assert(sizeof(struct ledger_result) == NETIO_RESULT_SIZE, "result layout is on the wire");

/* Why netio_decode refused a datagram (for counters and logs). */
enum netio_reject {
	NETIO_REJECT_NONE = 0,
	NETIO_REJECT_SHORT,       /* length < NETIO_HEADER_SIZE */
	NETIO_REJECT_OVERSIZED,   /* length > NETIO_DATAGRAM_MAX */
	NETIO_REJECT_MAGIC,       /* magic != NETIO_MAGIC */
	NETIO_REJECT_VERSION,     /* version != NETIO_VERSION (answered WRONG_VERSION) */
	NETIO_REJECT_TYPE,        /* type not in enum netio_type */
	NETIO_REJECT_RESERVED,    /* reserved0 or reserved1 is not 0 */
	NETIO_REJECT_COUNT_ZERO,  /* count == 0 */
	NETIO_REJECT_COUNT_MAX,   /* count > NETIO_BATCH_MAX (error: > 1) */
	NETIO_REJECT_LENGTH,      /* length != header + count * element size */
	NETIO_REJECT_COUNT_KINDS, /* bound for per-reason counters */
};

/* Stable name of a reason ("SHORT"); "UNKNOWN" for others. */
const char *netio_reject_name(unsigned reject);

/* A decoded datagram: a view into the caller's buffer. */
struct netio_view {
	struct netio_header header;               /* a copy. client_id and sequence are
	                                           * meaningful when length >= header
	                                           * and the magic matched, else 0 */
	uint32_t count;                           /* elements; 0 when refused */
	const struct ledger_request *requests;    /* REQUEST: into the buffer; else NULL */
	const struct ledger_result *results;      /* REPLY / ERROR: into the buffer; else NULL */
	uint64_t first_request_id;                /* id of the first request when the
	                                           * magic matched, the type is not REPLY
	                                           * or ERROR (REQUEST or unknown) and one
	                                           * whole request is present, else 0
	                                           * (used to answer a refused datagram,
	                                           * whatever rule refused it) */
	enum netio_reject reject;                 /* NETIO_REJECT_NONE when valid */
};

/*
 * Validates the datagram framing (not the requests) and fills *view.
 * buffer must be 8-byte aligned (asserted) so that the returned pointers can
 * be used as arrays; transports' buffers are 64-byte aligned.
 * Returns LEDGER_OK, LEDGER_FORMAT_ERROR or LEDGER_WRONG_VERSION. Never reads
 * beyond buffer + length. Pure; no allocation.
 */
uint16_t netio_decode(const void *buffer, size_t length, struct netio_view *view);

/*
 * Per-request checks the codec can make without the ledger: id 0, kind not a
 * client kind (0, >= LEDGER_KIND_CREDIT), currency 0, amount > INT64_MAX for
 * money-moving kinds (DEPOSIT, PAY, HOLD, CAPTURE, REFUND), reserved != 0.
 * Returns LEDGER_OK or LEDGER_FORMAT_ERROR. A refused request is answered with
 * netio_result_refuse(); the others of its datagram proceed.
 */
uint16_t netio_request_check(const struct ledger_request *request);

/* Fills *result for a request that netio (or the engine) refuses before the
 * ledger: id, code, amount = request amount, the rest 0. */
void netio_result_refuse(const struct ledger_request *request, uint16_t code,
			 struct ledger_result *result);

/* Writes a header. count 1..NETIO_BATCH_MAX (asserted). */
void netio_header_init(struct netio_header *header, enum netio_type type,
		       uint32_t count, uint64_t client_id, uint64_t sequence);

/*
 * Encoders. Each writes one whole datagram into buffer (capacity bytes,
 * asserted large enough) and returns its size in bytes. count is
 * 1..NETIO_BATCH_MAX (asserted). The element array may already sit at
 * buffer + NETIO_HEADER_SIZE, in which case nothing is copied.
 */
size_t netio_encode_requests(void *buffer, size_t capacity, uint64_t client_id,
			     uint64_t sequence, const struct ledger_request *requests,
			     uint32_t count);
size_t netio_encode_results(void *buffer, size_t capacity, uint64_t client_id,
			    uint64_t sequence, const struct ledger_result *results,
			    uint32_t count);
/* A datagram-level error: type ERROR, one result {id = request_id, code}. */
size_t netio_encode_error(void *buffer, size_t capacity, uint64_t client_id,
			  uint64_t sequence, uint64_t request_id, uint16_t code);

/*
 * The answer to a datagram netio_decode() refused with `code`: writes an
 * ERROR datagram echoing what could be read (client id, sequence, first
 * request id) and returns its size (NETIO_ERROR_SIZE), or returns 0 when the
 * datagram must not be answered: it declares itself a REPLY or ERROR, and
 * answering those would let two switches bounce errors at each other forever.
 */
size_t netio_encode_refusal(const struct netio_view *view, uint16_t code,
			    void *buffer, size_t capacity);

/* ------------------------------------------------------------------------ */
/* Authentication (protocol version 2; PROTOCOL.md "Authentication")          */
/* ------------------------------------------------------------------------ */
/*
 * Every datagram carries the sender's key id (header offset 12) and a MAC
 * (header offset 32, 16 bytes): keyed BLAKE2b-128 (libsodium
 * crypto_generichash) with the client's 32-byte secret over the header's
 * first 32 bytes followed by the records (bytes 48 .. length). Replies are
 * sealed with the key of the client they answer. Key id 0 means "no key":
 * such datagrams are accepted only by a switch started --insecure-no-auth.
 */
#define NETIO_KEY_SIZE 32u
#define NETIO_MAC_SIZE 16u
#define NETIO_KEY_ID_NONE 0u

/* A client's key as the client holds it. */
struct netio_key {
	uint32_t id;                      /* assigned by the operator; never 0 */
	uint8_t secret[NETIO_KEY_SIZE];
};

/*
 * Reads a key file written by `payswitch client add/rotate` (one line:
 * "payswitch-key 1 KEY_ID HEX_SECRET NAME"). Returns 0, or -errno
 * (-EINVAL for a malformed file, -EACCES when it is readable by group or
 * others: a key file must be mode 0600).
 */
int netio_key_load(const char *path, struct netio_key *key);
/* Writes the key file line for key into buffer; returns its length or -ENOSPC. */
int netio_key_format(const struct netio_key *key, const char *name, char *buffer,
		     size_t capacity);

/* MAC of a whole datagram (length >= NETIO_HEADER_SIZE) under secret. */
void netio_mac(const uint8_t secret[NETIO_KEY_SIZE], const void *datagram, size_t length,
	       uint8_t mac[NETIO_MAC_SIZE]);
/* Writes key->id and the MAC into the datagram's header (key NULL: id 0, MAC 0). */
void netio_seal(const struct netio_key *key, void *datagram, size_t length);
/* Constant-time check of the datagram's MAC under secret. */
bool netio_mac_ok(const uint8_t secret[NETIO_KEY_SIZE], const void *datagram, size_t length);

/* Roles (PROTOCOL.md "Roles"): what a key may ask for. */
enum netio_role {
	NETIO_ROLE_NONE = 0,
	NETIO_ROLE_ADMIN = 1,     /* OPEN, DEPOSIT, SET_LIMITS, FREEZE (and unfreeze), CLOSE,
	                           * BALANCE, LOOKUP */
	NETIO_ROLE_ACQUIRER = 2,  /* PAY, HOLD, CAPTURE, VOID, REFUND, LOOKUP, BALANCE: any account */
	NETIO_ROLE_TERMINAL = 3,  /* the acquirer's kinds, only for its bound accounts / merchant */
};
#define NETIO_PRINCIPAL_NAME_MAX 64u      /* bytes of a client name, NUL included */
#define NETIO_PRINCIPAL_ACCOUNTS_MAX 64u  /* accounts a terminal may be bound to */

/* A client key as the switch holds it (engine/clients.c reads them from the
 * data dir's `clients` file). */
struct netio_principal {
	uint32_t key_id;                              /* never 0 */
	uint8_t role;                                 /* enum netio_role */
	uint8_t secret[NETIO_KEY_SIZE];
	uint64_t merchant;                            /* TERMINAL: bound merchant, 0 none */
	uint32_t account_count;                       /* TERMINAL: bound accounts */
	uint64_t accounts[NETIO_PRINCIPAL_ACCOUNTS_MAX];
	char name[NETIO_PRINCIPAL_NAME_MAX];          /* [A-Za-z0-9._-]{1,63} */
};
/* Stable role name ("admin", "acquirer", "terminal"); "none" otherwise. */
const char *netio_role_name(unsigned role);
/* Parses a role name; NETIO_ROLE_NONE when unknown. */
enum netio_role netio_role_parse(const char *name);

/* ------------------------------------------------------------------------ */
/* Client library                                                            */
/* ------------------------------------------------------------------------ */
/* Requests one netio_client_call() or netio_client_send() takes at most. */
#define NETIO_CLIENT_REQUESTS_MAX (NETIO_BURST_MAX * NETIO_BATCH_MAX) /* 4096 */
/* Code of a result netio_client_call() never received an answer for. */
#define NETIO_CODE_NO_ANSWER 0xffffu

struct netio_client;

struct netio_client_stats {
	uint64_t datagrams_sent;      /* first transmissions */
	uint64_t retransmits;         /* the same requests sent again after a timeout, in
	                               * new datagrams (new sequences) */
	uint64_t replies;             /* valid REPLY / ERROR datagrams for this client */
	uint64_t replies_ignored;     /* valid but another client id, a sequence not
	                               * awaited, or a result id not awaited */
	uint64_t replies_invalid;     /* refused by netio_decode, type REQUEST, or (a keyed
	                               * client) another key id or a MAC that fails */
	uint64_t receive_errors;      /* e.g. ECONNREFUSED from an ICMP unreachable */
	uint64_t busy_retries;        /* requests sent again (new datagrams, same request
	                               * bytes) after a BUSY answer and its wait */
};

/*
 * Opens a UDP socket connected to host:port (a name or numeric IPv4/IPv6
 * address) and preallocates every buffer (about 1 MiB). The client id is
 * random (getrandom) and never 0; datagram sequences are the realtime clock
 * in µs, or one past the last used (a clock stepped back leaves them ahead of
 * it, which the switch refuses as stale once past its age bound).
 * Returns NULL with *error = -errno (-EINVAL for a bad host or port,
 * -EHOSTUNREACH when the name does not resolve, -ENOMEM, ...).
 */
struct netio_client *netio_client_open(const char *host, uint16_t port, int *error);
/* The same, sealing every datagram with key (copied) and accepting only
 * replies sealed with it (others count as replies_invalid). key NULL is
 * netio_client_open(): key id 0, for a switch run --insecure-no-auth. */
struct netio_client *netio_client_open_key(const char *host, uint16_t port,
					   const struct netio_key *key, int *error);
void netio_client_close(struct netio_client *client);
uint64_t netio_client_id(const struct netio_client *client);
int netio_client_fd(const struct netio_client *client);   /* for an external poll */
void netio_client_stats_read(const struct netio_client *client,
			     struct netio_client_stats *stats);

/*
 * Synchronous call: sends count requests (1..NETIO_CLIENT_REQUESTS_MAX) as
 * ceil(count / NETIO_BATCH_MAX) datagrams and waits until every request has
 * a result. results[i] answers requests[i]: results are matched by request id
 * within the datagram that carried the request, whatever the order and
 * however many reply datagrams the switch splits the answer into.
 * After timeout_ms (> 0) without all answers, the requests of every datagram
 * that still has unanswered ones are sent again, byte for byte, in a new
 * datagram (a new sequence and MAC: the switch refuses a datagram it has
 * seen; its exactly-once deduplication of request ids makes the retry safe).
 * A late answer to an earlier transmission still counts.
 * The waits back off: the first is timeout_ms, the one after retransmission
 * k (1, 2, ...) is netio_client_backoff_us(timeout_ms * 1000, k, ...), i.e.
 * timeout_ms * 2^k (capped at 2^NETIO_CLIENT_BACKOFF_SHIFT_MAX times) plus a
 * random 0-50%, so clients that lost answers together do not resend together.
 * Requests answered BUSY (a result, or a whole datagram refused BUSY) are not
 * returned at once: after netio_client_busy_wait_us() of the largest
 * retry_after_us among them (the hint plus 0-50%), they alone are sent again
 * in new datagrams (new sequences, the same request bytes: BUSY changed
 * nothing, so the repeat is a first decision). Every retransmission round and
 * every BUSY round takes one of the `retries`; retries = 0 sends once and
 * returns BUSY as answered. So each request is sent at most 1 + retries
 * times, and a BUSY result is returned only when the retries are spent.
 * An ERROR datagram answers every unanswered request of its datagram with its
 * code. Returns 0 when every request has a result (BUSY included); -ETIMEDOUT
 * when some have none after the last retry (their code is
 * NETIO_CODE_NO_ANSWER, their id the request id); -errno on a socket failure.
 * Replies of earlier calls or async sends are discarded (replies_ignored):
 * do not mix call with outstanding netio_client_send() datagrams.
 */
int netio_client_call(struct netio_client *client, const struct ledger_request *requests,
		      uint32_t count, struct ledger_result *results, int timeout_ms,
		      int retries);

/*
 * Backoff schedule, for netio_client_call() and for callers that own their
 * retransmissions (netio_client_send()). Pure: `random` is any uniformly
 * random 64-bit value the caller draws (only its high 32 bits are used), so
 * the same arguments give the same wait and tests can check the schedule.
 *
 * netio_client_backoff_us: base_us * 2^attempt, the power capped at
 * 2^NETIO_CLIENT_BACKOFF_SHIFT_MAX and the product at cap_us, plus a random
 * 0-50% of it. Jitter only adds, so a wait is never shorter than the
 * nominal one and the waits of attempts 0, 1, 2, ... grow strictly until
 * the cap (the largest wait of attempt k, 1.5x, is below the smallest of
 * k + 1, 2x). Returns microseconds.
 */
#define NETIO_CLIENT_BACKOFF_SHIFT_MAX 3u       /* timeouts back off up to 8x */
#define NETIO_CLIENT_BUSY_FALLBACK_US 500u      /* BUSY without a hint: 0.5 ms, doubling */
#define NETIO_CLIENT_BUSY_WAIT_MAX_US 1000000u  /* the largest hint the switch sends */
uint64_t netio_client_backoff_us(uint64_t base_us, uint32_t attempt, uint64_t cap_us,
				 uint64_t random);
/*
 * netio_client_busy_wait_us: how long to wait before sending again a request
 * answered BUSY for the busy_answers-th time in a row (>= 1) with the
 * result's retry_after_us hint (0: none). The base is the larger of the
 * hint and NETIO_CLIENT_BUSY_FALLBACK_US * 2^(busy_answers - 1) (capped at
 * NETIO_CLIENT_BUSY_WAIT_MAX_US), so a switch that keeps saying BUSY is
 * asked ever less often even when its hint is optimistic; the wait adds a
 * random 0-50% so that requests refused together come back spread out.
 */
uint64_t netio_client_busy_wait_us(uint32_t retry_after_us, uint32_t busy_answers,
				   uint64_t random);

/*
 * Asynchronous send for load generators: sends count requests
 * (1..NETIO_CLIENT_REQUESTS_MAX) as datagrams of per_datagram requests
 * (1..NETIO_BATCH_MAX; the last may be shorter) in one sendmmsg. Datagram i
 * carries requests [i * per_datagram, ...) with sequence *first_sequence + i.
 * Never blocks. Returns the number of datagrams sent, which is fewer than
 * needed when the socket buffer is full (the rest is the caller's to resend
 * later, with new sequences), or -errno. No retransmission: the caller owns
 * timeouts and BUSY answers, and should wait by netio_client_backoff_us()
 * and netio_client_busy_wait_us() (bench/load does).
 */
int netio_client_send(struct netio_client *client, const struct ledger_request *requests,
		      uint32_t count, uint32_t per_datagram, uint64_t *first_sequence);

/* One reply datagram received by netio_client_poll(). */
struct netio_reply {
	uint64_t sequence;                     /* the request datagram answered */
	const struct ledger_result *results;   /* into the client's buffers */
	uint32_t count;
	uint8_t type;                          /* NETIO_TYPE_REPLY or NETIO_TYPE_ERROR */
};

/*
 * Receives up to max (<= NETIO_BURST_MAX) reply datagrams for this client
 * into replies[], waiting up to timeout_ms when none is ready (0: no wait,
 * -1: forever). The switch answers a request datagram with one REPLY whose
 * results follow request order, but PROTOCOL.md lets an answer be split over
 * several REPLY datagrams with the same sequence (each in request order); the
 * caller counts results and matches them by id. Returns the number of replies (0 on timeout, or when only
 * datagrams that are not replies to this client arrived), or -errno.
 * Ownership: results stay valid until the next poll or call on this client.
 */
int netio_client_poll(struct netio_client *client, struct netio_reply *replies,
		      uint32_t max, int timeout_ms);

#endif /* PAYSWITCH_NETIO_H */
