/*
 * ledger.h — the payswitch state machine.
 *
 * One `struct ledger` is one shard of accounts. It is pure, single-threaded and
 * deterministic: the same sequence of (now_us, request) pairs applied to the
 * same initial state gives the same results and the same final state, so a
 * journal of decisions can be replayed exactly by recovery and by the audit.
 *
 * Thread-safety: none. A ledger is owned by exactly one thread at a time.
 * Memory: everything is allocated by ledger_create() from the configured
 * capacities; ledger_apply() never allocates.
 * Units: money is unsigned 64-bit minor units (cents) with an ISO 4217 numeric
 * currency; balances are signed 64-bit minor units; times are microseconds
 * since the Unix epoch (UTC).
 */
#ifndef PAYSWITCH_LEDGER_H
#define PAYSWITCH_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Result codes. Stable numbers: they are on the wire and in the journal.    */
/* The one table that documents them is ledger/RESULTS.md.                  */
/* ------------------------------------------------------------------------ */
enum ledger_result_code {
	LEDGER_OK = 0,                      /* approved / done */
	LEDGER_INSUFFICIENT_FUNDS = 1,      /* available + overdraft < amount */
	LEDGER_EXCEEDS_PAYMENT_LIMIT = 2,   /* amount > per-payment maximum */
	LEDGER_EXCEEDS_DAILY_LIMIT = 3,     /* spent today + amount > daily limit */
	LEDGER_PAYER_NOT_FOUND = 4,         /* debit account (account_id) unknown */
	LEDGER_PAYEE_NOT_FOUND = 5,         /* credit account (other_id) unknown */
	LEDGER_PAYER_FROZEN = 6,
	LEDGER_PAYEE_FROZEN = 7,
	LEDGER_PAYER_CLOSED = 8,
	LEDGER_PAYEE_CLOSED = 9,
	LEDGER_CURRENCY_MISMATCH = 10,      /* request currency != an account's */
	LEDGER_AMOUNT_ZERO = 11,
	LEDGER_AMOUNT_OVERFLOW = 12,        /* amount > INT64_MAX, or a sum would overflow */
	LEDGER_SAME_ACCOUNT = 13,           /* debit and credit are the same account */
	LEDGER_ID_REUSED = 14,              /* request id seen before with other fields */
	LEDGER_TOO_OLD = 15,                /* timestamp before the deduplication window */
	LEDGER_TIMESTAMP_IN_FUTURE = 16,    /* timestamp beyond now + future tolerance */
	LEDGER_HOLD_NOT_FOUND = 17,
	LEDGER_HOLD_EXPIRED = 18,
	LEDGER_HOLD_ALREADY_CAPTURED = 19,
	LEDGER_HOLD_ALREADY_VOIDED = 20,
	LEDGER_CAPTURE_EXCEEDS_HOLD = 21,
	LEDGER_TRANSFER_NOT_FOUND = 22,     /* refund / look-up of an unknown transfer */
	LEDGER_REFUND_EXCEEDS_PAYMENT = 23, /* cumulative refunds would exceed the payment */
	LEDGER_NOT_REFUNDABLE = 24,         /* referenced transfer is not an approved payment */
	LEDGER_ACCOUNT_EXISTS = 25,         /* open of an id already in use (even closed) */
	LEDGER_ACCOUNT_NOT_EMPTY = 26,      /* close with a balance or holds */
	LEDGER_CAPACITY_FULL = 27,          /* account or hold table full */
	LEDGER_NOT_FUNDING = 28,            /* deposit from an account without FUNDING */
	LEDGER_INVALID_REQUEST = 29,        /* unknown kind, bad flags, currency 0, ... */
	LEDGER_INVALID_LIMITS = 30,         /* new overdraft limit below what is in use */

	/* Codes the engine and netio answer with; the ledger never returns them. */
	LEDGER_FORMAT_ERROR = 40,           /* malformed datagram or request */
	LEDGER_BUSY = 41,                   /* a queue is full: retry later */
	LEDGER_UNAVAILABLE = 42,            /* journal failed: nothing more is acknowledged */
	LEDGER_WRONG_VERSION = 43,          /* protocol version not spoken */
	LEDGER_FORBIDDEN = 44,              /* the sender's key may not ask for this */

	LEDGER_RESULT_CODE_COUNT = 45,      /* bound for per-code counters */
};

/* Stable name of a code ("INSUFFICIENT_FUNDS"); "UNKNOWN" for others. */
const char *ledger_result_name(unsigned code);

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */
/* ------------------------------------------------------------------------ */
enum ledger_kind {
	LEDGER_KIND_NONE = 0,
	/* Client operations. account_id is always the debit / operated account:
	 * the engine routes every request by it. */
	LEDGER_KIND_OPEN = 1,          /* open account_id: currency, flags (account
	                                * flags), limit_overdraft = amount,
	                                * limit_payment, limit_daily */
	LEDGER_KIND_DEPOSIT = 2,       /* funding account_id -> other_id, amount */
	LEDGER_KIND_PAY = 3,           /* payer account_id -> payee other_id, amount */
	LEDGER_KIND_HOLD = 4,          /* hold amount on account_id for payee
	                                * other_id, expires at now + hold_timeout_us
	                                * (0: config default); the hold's id is the
	                                * request id */
	LEDGER_KIND_CAPTURE = 5,       /* capture reference_id (a hold of account_id):
	                                * amount (0: the whole hold); the rest is released */
	LEDGER_KIND_VOID = 6,          /* release hold reference_id of account_id */
	LEDGER_KIND_REFUND = 7,        /* merchant account_id refunds amount of payment
	                                * reference_id to its payer other_id */
	LEDGER_KIND_FREEZE = 8,        /* flags: 1 freezes, 0 unfreezes account_id */
	LEDGER_KIND_CLOSE = 9,         /* close account_id: zero balance, no holds */
	LEDGER_KIND_SET_LIMITS = 10,   /* limit_overdraft = amount, limit_payment,
	                                * limit_daily of account_id */
	LEDGER_KIND_BALANCE = 11,      /* read-only: balance of account_id */
	LEDGER_KIND_LOOKUP = 12,       /* read-only: transfer reference_id whose debit
	                                * account is account_id */

	/* Engine-internal operations: a cross-shard credit and its return.
	 * id is the id of the transfer that debited the payer on another shard. */
	LEDGER_KIND_CREDIT = 13,       /* credit other_id (local) with amount; on the
	                                * payee's shard. account_id is the remote payer;
	                                * flags: the origin's kind; reference_id: the
	                                * origin's reference (REFUND: the payment,
	                                * CAPTURE: the hold), else 0. */
	LEDGER_KIND_RETURN = 14,       /* a CREDIT was refused by the payee's shard:
	                                * give amount back to account_id (local).
	                                * The CREDIT's fields, kind RETURN, flags: the
	                                * payee's refusal code (1..LEDGER_INVALID_LIMITS).
	                                * The payer's transfer then answers that code
	                                * (repeats, LOOKUP); a returned REFUND no longer
	                                * counts as refunded, a returned CAPTURE leaves
	                                * its hold released (answered as voided). */

	LEDGER_KIND_COUNT = 15,
};

/* Account flags (request.flags of OPEN; struct ledger_account.flags). */
enum ledger_account_flags {
	LEDGER_ACCOUNT_FUNDING = 1u << 0,   /* may go negative without limit; source of deposits */
	LEDGER_ACCOUNT_MERCHANT = 1u << 1,  /* informational: accepts payments, issues refunds */
	LEDGER_ACCOUNT_FROZEN = 1u << 2,    /* set only by FREEZE */
	LEDGER_ACCOUNT_CLOSED = 1u << 3,    /* set only by CLOSE */
};
#define LEDGER_ACCOUNT_FLAGS_OPENABLE (LEDGER_ACCOUNT_FUNDING | LEDGER_ACCOUNT_MERCHANT)

/* One request: 64 bytes, the same layout in rings and in journal records. */
struct ledger_request {
	uint64_t id;              /* client-chosen, unique per transfer */
	uint64_t timestamp_us;    /* client clock; part of the request's identity */
	uint64_t account_id;      /* debit side: payer, holder, account operated on */
	uint64_t other_id;        /* credit side: payee (0 where unused) */
	uint64_t amount;          /* minor units; OPEN/SET_LIMITS: overdraft limit */
	union {
		uint64_t reference_id;   /* CAPTURE/VOID: hold id; REFUND/LOOKUP: payment id */
		uint64_t limit_payment;  /* OPEN/SET_LIMITS: per-payment maximum, 0 = none */
	};
	union {
		uint64_t hold_timeout_us; /* HOLD: lifetime, 0 = config default */
		uint64_t limit_daily;     /* OPEN/SET_LIMITS: daily spend limit, 0 = none */
	};
	uint16_t currency;        /* ISO 4217 numeric, e.g. 978 EUR; never 0 */
	uint8_t kind;             /* enum ledger_kind */
	uint8_t flags;            /* OPEN: account flags; FREEZE: 1 freeze / 0 unfreeze */
	uint32_t reserved;        /* must be 0 */
};
_Static_assert(sizeof(struct ledger_request) == 64, "request is one cache line");

/* Result flags. */
enum ledger_result_flags {
	LEDGER_RESULT_DUPLICATE = 1u << 0,      /* a repeat: original code, nothing changed */
	LEDGER_RESULT_JOURNAL = 1u << 1,        /* a decision: must be journaled before reply */
	LEDGER_RESULT_CREDIT_REMOTE = 1u << 2,  /* approved; other_id lives on another shard:
	                                         * the engine sends a CREDIT once durable */
	LEDGER_RESULT_RETURN_REMOTE = 1u << 3,  /* CREDIT refused; the engine sends a RETURN
	                                         * to the payer's shard once durable */
	/* With DUPLICATE, or on a LOOKUP: the transfer is CREDITING, so its final
	 * outcome is the payee's shard's. code is the payer's (OK); the engine
	 * must not answer it as final before every message that shard sent
	 * back about the transfer has been applied here (engine/README.md:
	 * the probe). Never set with RETURN_REMOTE. */
	LEDGER_RESULT_OUTCOME_REMOTE = 1u << 4,
};

/* One result: 40 bytes. */
struct ledger_result {
	uint64_t id;              /* the request id */
	int64_t balance;          /* available balance of account_id after the operation:
	                           * posted - held (overdraft not included) */
	uint64_t amount;          /* BALANCE: held amount; LOOKUP: transfer amount;
	                           * CAPTURE: captured; REFUND: refunded so far;
	                           * otherwise the request amount */
	uint64_t sequence;        /* ledger decision sequence (1, 2, ...); 0 when not journaled */
	uint16_t code;            /* enum ledger_result_code */
	uint16_t flags;           /* enum ledger_result_flags */
	uint32_t retry_after_us;  /* BUSY: when the switch expects room again, µs
	                           * (0: no estimate); 0 for every other code. The
	                           * ledger never sets it. */
};
_Static_assert(sizeof(struct ledger_result) == 40, "result layout is on the wire");

/* ------------------------------------------------------------------------ */
/* Accounts                                                                  */
/* ------------------------------------------------------------------------ */
/* An account record is one cache line. */
struct ledger_account {
	uint64_t id;              /* 0 = empty slot */
	int64_t balance;          /* posted balance, minor units */
	uint64_t held;            /* sum of pending holds */
	uint64_t limit_overdraft; /* balance - held may go down to -limit_overdraft */
	uint64_t limit_payment;   /* 0 = no per-payment maximum */
	uint64_t limit_daily;     /* 0 = no daily limit */
	uint64_t spent_today;     /* pays and holds approved on spent_day */
	uint32_t spent_day;       /* UTC day number (now_us / 86400e6) of spent_today */
	uint16_t currency;
	uint16_t flags;           /* enum ledger_account_flags */
};
_Static_assert(sizeof(struct ledger_account) == 64, "account is one cache line");

/* A transfer as remembered by the deduplication window (look-up, refunds). */
struct ledger_transfer_info {
	uint64_t id;
	uint64_t timestamp_us;
	uint64_t account_id;
	uint64_t other_id;
	uint64_t amount;
	uint64_t amount_done;     /* refunded (payments) or captured (holds) */
	uint16_t currency;
	uint8_t kind;
	uint8_t code;             /* the original result */
	uint8_t state;            /* enum ledger_transfer_state */
};

enum ledger_transfer_state {
	LEDGER_TRANSFER_DONE = 0,      /* nothing pending */
	LEDGER_TRANSFER_PENDING = 1,   /* a hold still pending */
	LEDGER_TRANSFER_CAPTURED = 2,
	LEDGER_TRANSFER_VOIDED = 3,
	LEDGER_TRANSFER_EXPIRED = 4,
	LEDGER_TRANSFER_RETURNED = 5,  /* its remote credit was refused and returned:
	                                * code is now the payee's refusal */
	LEDGER_TRANSFER_CREDITING = 6, /* approved here, credit sent to the payee's
	                                * shard: only that shard knows the outcome
	                                * until a RETURN arrives (if it does) */
};

/* ------------------------------------------------------------------------ */
/* Configuration and life cycle                                              */
/* ------------------------------------------------------------------------ */
struct ledger_config {
	uint64_t accounts_max;         /* accounts this shard can hold */
	uint64_t transfers_max;        /* entries of the deduplication window */
	uint64_t holds_max;            /* pending holds at once */
	uint64_t dedup_window_us;      /* requests older than now - window: TOO_OLD */
	uint64_t future_tolerance_us;  /* requests newer than now + this: TIMESTAMP_IN_FUTURE */
	uint64_t hold_timeout_us;      /* default hold lifetime */
	uint32_t shard_index;          /* this ledger's shard */
	uint32_t shard_count;          /* accounts are owned by ledger_shard_of(id, count) */
};

/* Fills a config with defaults: 1M accounts, 1M transfers, 64k holds, 10 min
 * window, 5 s future tolerance, 15 min holds, shard 0 of 1. */
void ledger_config_default(struct ledger_config *config);

/* The shard that owns an account: xxh3_64(id) % shard_count. */
uint32_t ledger_shard_of(uint64_t account_id, uint32_t shard_count);

struct ledger;

/* Creates an empty ledger. Returns NULL with *error set to a reason
 * (-EINVAL for a bad config, -ENOMEM). */
struct ledger *ledger_create(const struct ledger_config *config, int *error);
void ledger_destroy(struct ledger *ledger);

/* Applies `count` requests in order at time now_us and writes one result per
 * request. now_us must not go backwards between calls (asserted). Holds whose
 * expiry is <= now_us are released before the first request. Returns count. */
uint32_t ledger_apply(struct ledger *ledger, uint64_t now_us,
		      const struct ledger_request *requests,
		      struct ledger_result *results, uint32_t count);

/* Releases every pending hold that expired at or before now_us. Called by
 * ledger_apply(); exposed for replay and tests. Returns the number released. */
uint32_t ledger_expire_holds(struct ledger *ledger, uint64_t now_us);

/* Read-only look-ups for administration, the audit and tests. */
const struct ledger_account *ledger_account_get(const struct ledger *ledger, uint64_t id);
bool ledger_transfer_get(const struct ledger *ledger, uint64_t id,
			 struct ledger_transfer_info *info);

/* Counters. */
uint64_t ledger_account_count(const struct ledger *ledger);
uint64_t ledger_hold_count(const struct ledger *ledger);
uint64_t ledger_sequence(const struct ledger *ledger);  /* last decision sequence */
uint64_t ledger_now(const struct ledger *ledger);       /* last now_us applied */
size_t ledger_memory_bytes(const struct ledger *ledger);/* bytes allocated */
const struct ledger_config *ledger_config_get(const struct ledger *ledger);

/* Visits every account (any order). Stops early and returns the callback's
 * value when it is non-zero. */
int ledger_account_foreach(const struct ledger *ledger,
			   int (*visit)(const struct ledger_account *account, void *context),
			   void *context);

/* ------------------------------------------------------------------------ */
/* Invariants: called by tests after every step and by the audit.            */
/* Each returns 0 when it holds, or -1 and fills `report` (if not NULL) with */
/* a sentence naming the first violation.                                    */
/* ------------------------------------------------------------------------ */
struct ledger_violation {
	char text[256];
};

/* Per currency: sum of posted balances + money in transit to other shards == 0. */
int ledger_check_double_entry(const struct ledger *ledger, struct ledger_violation *report);
/* No account below its floor: balance - held >= -limit_overdraft (FUNDING exempt);
 * no negative held; no closed account with a balance. */
int ledger_check_floors(const struct ledger *ledger, struct ledger_violation *report);
/* held of every account == sum of its pending holds; every pending hold's
 * amount within what was held. */
int ledger_check_holds(const struct ledger *ledger, struct ledger_violation *report);
/* All three. */
int ledger_check_invariants(const struct ledger *ledger, struct ledger_violation *report);

/* Per-currency totals, for the audit report. Fills up to `max` entries and
 * returns how many currencies exist. transit: debited here, credited elsewhere. */
struct ledger_currency_total {
	uint16_t currency;
	__int128 balance_sum;    /* exact: a shard's balances may sum beyond int64 */
	__int128 transit;        /* exact: cumulative outflow to other shards less inflow */
	uint64_t accounts;
};
uint32_t ledger_currency_totals(const struct ledger *ledger,
				struct ledger_currency_total *totals, uint32_t max);

/* ------------------------------------------------------------------------ */
/* State serialization for snapshots (the file format is the snapshot's).    */
/* The ledger streams its whole state — accounts, holds, deduplication       */
/* window, transit totals, sequence, now — through `write`, and reads it back*/
/* through `read` into a ledger created with the same config.                */
/* Callbacks return 0 or -errno; these functions return 0 or -errno /        */
/* -EBADMSG for state that does not fit the config.                          */
/* ------------------------------------------------------------------------ */
typedef int (*ledger_write_fn)(void *context, const void *data, size_t size);
typedef int (*ledger_read_fn)(void *context, void *data, size_t size);
int ledger_state_save(const struct ledger *ledger, ledger_write_fn write, void *context);
/* Every record read is validated against the rules the ledger keeps live
 * (ownership, currencies, flags, limits, holds within held and in their
 * account's currency, window entries a decision could leave) before it is
 * inserted, and the invariants after; -EBADMSG with the first violation in
 * `report` (if not NULL). A state of another layout version is
 * -EPROTONOSUPPORT, with the ledger untouched (the caller may fall back). */
struct ledger_violation;
int ledger_state_load(struct ledger *ledger, ledger_read_fn read, void *context,
		      struct ledger_violation *report);

/* ------------------------------------------------------------------------ */
/* Additions by the ledger core (new declarations only).                     */
/* ------------------------------------------------------------------------ */

/* CREDIT requests carry in `flags` the kind of the transfer that debited the
 * payer remotely (LEDGER_KIND_PAY, _DEPOSIT, _CAPTURE, _REFUND; 0 = unknown).
 * The payee's shard uses it to tell refundable payments from refunds and
 * deposits. Any other value is INVALID_REQUEST. */

/* The deduplication window's index and ring agree (every index slot points
 * at a live entry with the right fingerprint; counts match). O(window), so
 * not part of ledger_check_invariants(); tests call it now and then. */
int ledger_check_window(const struct ledger *ledger, struct ledger_violation *report);

/* Builds the CREDIT request the engine sends to the payee's shard for a
 * result flagged LEDGER_RESULT_CREDIT_REMOTE (and not DUPLICATE): same id and
 * timestamp, account_id = payer, other_id = payee, amount and currency as
 * debited, flags = the request's kind. For CAPTURE the payee, currency and
 * captured amount are read from the deduplication window, so call it after
 * ledger_apply() returns and before the next ledger_apply() (and with
 * transfers_max larger than the batch). Returns 0, -EINVAL for a result
 * without CREDIT_REMOTE, -ENOENT if a CAPTURE was already evicted. */
int ledger_remote_credit(const struct ledger *ledger, const struct ledger_request *request,
			 const struct ledger_result *result, struct ledger_request *credit);

/* Called (when set) for every entry the deduplication window evicts, with
 * the ledger's now_us of the apply that evicted it. It observes only: the
 * ledger's decisions never depend on it, so replay stays deterministic. The
 * engine releases its cross-shard id claims with it; the audit learns when an
 * id left a shard's window. Set it before the first ledger_apply(). */
typedef void (*ledger_evict_fn)(void *context, const struct ledger_transfer_info *evicted,
				uint64_t now_us);
void ledger_set_evict_hook(struct ledger *ledger, ledger_evict_fn evict, void *context);

/* Visits every entry of the deduplication window, oldest first. Stops early
 * and returns the callback's value when it is non-zero. */
int ledger_transfer_foreach(const struct ledger *ledger,
			    int (*visit)(const struct ledger_transfer_info *info, void *context),
			    void *context);

/* The newest timestamp the window has evicted (0: none yet): requests at or
 * before it are TOO_OLD. */
uint64_t ledger_evicted_watermark(const struct ledger *ledger);

/* Whether a kind is remembered in the deduplication window under its
 * request id when decided (client kinds except BALANCE and LOOKUP). */
bool ledger_kind_remembered(uint8_t kind);

/* The ledger's table hash of an id (a bijective 64-bit mixer), for other
 * tables keyed by transfer or account ids. Not the routing hash. */
uint64_t ledger_id_mix(uint64_t id);

/* Formats a 128-bit signed amount in decimal into buf (>= 41 bytes); returns buf. */
char *ledger_format_i128(__int128 value, char *buf, size_t size);

/* The currency every command and generator takes when none is named: ISO 4217
 * numeric 978 (EUR). One name for the whole program. */
#define LEDGER_CURRENCY_DEFAULT 978

/*
 * Clocks, one definition for the whole program. The ledger itself never reads
 * a clock (every decision takes now_us from its caller, which keeps replay
 * deterministic); these serve its callers: the journal, the switch, the
 * client library, the load generators and the tests.
 */
static inline uint64_t ledger_clock_ns(clockid_t clock)
{
	struct timespec now;
	clock_gettime(clock, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}
/* CLOCK_REALTIME in microseconds: request timestamps, protocol sequences. */
static inline uint64_t ledger_realtime_us(void) { return ledger_clock_ns(CLOCK_REALTIME) / 1000u; }
/* CLOCK_MONOTONIC in nanoseconds: deadlines and latencies. */
static inline uint64_t ledger_monotonic_ns(void) { return ledger_clock_ns(CLOCK_MONOTONIC); }

#endif /* PAYSWITCH_LEDGER_H */
