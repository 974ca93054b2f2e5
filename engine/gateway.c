/*
 * gateway.c — `payswitch gateway`: ISO 8583 over TCP in, the native protocol
 * over UDP out. Translation (pure) first, then the event loop.
 */
#include "gateway.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "config.h"
#include "engine.h"
#include "netio.h"
#include "tcp_server.h"

/* ------------------------------------------------------------------------ */
/* Result codes: the one table (netio/ISO8583.md, "Response codes").         */
/* ------------------------------------------------------------------------ */
static const char *const response_codes[LEDGER_RESULT_CODE_COUNT] = {
	[LEDGER_OK] = "00",
	[LEDGER_INSUFFICIENT_FUNDS] = "51",
	[LEDGER_EXCEEDS_PAYMENT_LIMIT] = "61",
	[LEDGER_EXCEEDS_DAILY_LIMIT] = "61",
	[LEDGER_PAYER_NOT_FOUND] = "14",
	[LEDGER_PAYEE_NOT_FOUND] = "03",
	[LEDGER_PAYER_FROZEN] = "62",
	[LEDGER_PAYEE_FROZEN] = "58",
	[LEDGER_PAYER_CLOSED] = "57",
	[LEDGER_PAYEE_CLOSED] = "58",
	[LEDGER_CURRENCY_MISMATCH] = "12",
	[LEDGER_AMOUNT_ZERO] = "13",
	[LEDGER_AMOUNT_OVERFLOW] = "13",
	[LEDGER_SAME_ACCOUNT] = "12",
	[LEDGER_ID_REUSED] = "94",
	[LEDGER_TOO_OLD] = "12",
	[LEDGER_TIMESTAMP_IN_FUTURE] = "12",
	[LEDGER_HOLD_NOT_FOUND] = "25",
	[LEDGER_HOLD_EXPIRED] = "12",
	[LEDGER_HOLD_ALREADY_CAPTURED] = "12",
	[LEDGER_HOLD_ALREADY_VOIDED] = "12",
	[LEDGER_CAPTURE_EXCEEDS_HOLD] = "13",
	[LEDGER_TRANSFER_NOT_FOUND] = "25",
	[LEDGER_REFUND_EXCEEDS_PAYMENT] = "13",
	[LEDGER_NOT_REFUNDABLE] = "12",
	[LEDGER_ACCOUNT_EXISTS] = "12",
	[LEDGER_ACCOUNT_NOT_EMPTY] = "12",
	[LEDGER_CAPACITY_FULL] = "96",
	[LEDGER_NOT_FUNDING] = "12",
	[LEDGER_INVALID_REQUEST] = "12",
	[LEDGER_INVALID_LIMITS] = "12",
	[LEDGER_FORMAT_ERROR] = "30",
	[LEDGER_BUSY] = "91",
	[LEDGER_UNAVAILABLE] = "91",
	[LEDGER_WRONG_VERSION] = "96",
};

const char *gateway_response_code(unsigned ledger_code)
{
	if (ledger_code < LEDGER_RESULT_CODE_COUNT && response_codes[ledger_code] != NULL)
		return response_codes[ledger_code];
	return ledger_code == NETIO_CODE_NO_ANSWER ? "91" : "96";
}

/* ------------------------------------------------------------------------ */
/* Translation                                                               */
/* ------------------------------------------------------------------------ */
static bool two_digits(const uint8_t *text, unsigned *value)
{
	if (text[0] < '0' || text[0] > '9' || text[1] < '0' || text[1] > '9')
		return false;
	*value = (unsigned)(text[0] - '0') * 10u + (unsigned)(text[1] - '0');
	return true;
}

bool gateway_field7_time(const uint8_t field7[10], uint64_t now_us, uint64_t *timestamp_us)
{
	unsigned part[5];
	for (int i = 0; i < 5; i++)
		if (!two_digits(field7 + 2 * i, &part[i]))
			return false;
	if (part[0] < 1 || part[0] > 12 || part[1] < 1 || part[1] > 31 || part[2] > 23 ||
	    part[3] > 59 || part[4] > 59)
		return false;
	time_t now = (time_t)(now_us / 1000000u);
	struct tm today;
	gmtime_r(&now, &today);
	int64_t best = -1;
	uint64_t best_distance = UINT64_MAX;
	/* The year nearest to now: a 31 December message seen on 1 January
	 * belongs to the year before. */
	for (int year = today.tm_year - 1; year <= today.tm_year + 1; year++) {
		struct tm when = { .tm_year = year, .tm_mon = (int)part[0] - 1,
				   .tm_mday = (int)part[1], .tm_hour = (int)part[2],
				   .tm_min = (int)part[3], .tm_sec = (int)part[4] };
		time_t seconds = timegm(&when);
		if (seconds < 0 || when.tm_mday != (int)part[1])
			continue; /* 31 April, 29 February of a common year */
		uint64_t distance = seconds > now ? (uint64_t)(seconds - now) : (uint64_t)(now - seconds);
		if (distance < best_distance) {
			best_distance = distance;
			best = seconds;
		}
	}
	if (best < 0)
		return false;
	*timestamp_us = (uint64_t)best * 1000000u;
	return true;
}

/* A request id from an idempotency key: xxh3 of the key's bytes, never 0. */
static uint64_t id_of(const void *key, size_t length)
{
	uint64_t id = XXH3_64bits(key, length);
	return id == 0 ? 1 : id;
}

/* Message class of an MTI for keys: "01" authorization, "02" financial,
 * "22" advice, "04" reversal (0400 and 0420 reverse the same original). */
static bool mti_class(const char mti[4], char class_out[2])
{
	if (mti[0] != '0')
		return false;
	if (mti[1] == '1' && mti[2] == '0')
		memcpy(class_out, "01", 2);
	else if (mti[1] == '2' && mti[2] == '0')
		memcpy(class_out, "02", 2);
	else if (mti[1] == '2' && mti[2] == '2')
		memcpy(class_out, "22", 2);
	else if (mti[1] == '4' && (mti[2] == '0' || mti[2] == '2'))
		memcpy(class_out, "04", 2);
	else
		return false;
	return true;
}

/* Appends a field's bytes and a separator to a key buffer (bounded). */
static size_t key_add(uint8_t *key, size_t at, const void *value, size_t length)
{
	assert(at + length + 1 <= 128);
	memcpy(key + at, value, length);
	key[at + length] = '|';
	return at + length + 1;
}

/*
 * The id of a message's own idempotency key: (class, 41, 11, 7) when 41 and
 * 11 are present, else (class, 37, 41 if present). Returns 0 when neither.
 */
static uint64_t own_id(const struct iso8583_message *m, const char class_name[2])
{
	uint8_t key[128];
	size_t at = 0;
	if (iso8583_has(m, 41) && iso8583_has(m, 11) && iso8583_has(m, 7)) {
		at = key_add(key, at, "K1", 2);
		at = key_add(key, at, class_name, 2);
		at = key_add(key, at, m->value[41], m->length[41]);
		at = key_add(key, at, m->value[11], m->length[11]);
		at = key_add(key, at, m->value[7], m->length[7]);
	} else if (iso8583_has(m, 37)) {
		at = key_add(key, at, "K2", 2);
		at = key_add(key, at, class_name, 2);
		at = key_add(key, at, m->value[37], m->length[37]);
		if (iso8583_has(m, 41))
			at = key_add(key, at, m->value[41], m->length[41]);
	} else {
		return 0;
	}
	return id_of(key, at);
}

/* The original of an advice or reversal, from field 90 (original MTI, STAN,
 * transmission date-time) and this message's 41: the id the original got
 * as its own key, its class and its timestamp. */
struct original {
	uint64_t id;
	uint64_t timestamp_us;
	char class_name[2];
};

static const char *original_of(const struct iso8583_message *m, uint64_t now_us,
			       struct original *original)
{
	if (!iso8583_has(m, 90) || !iso8583_has(m, 41))
		return "30";
	const uint8_t *f90 = m->value[90];
	if (!mti_class((const char *)f90, original->class_name))
		return "12";
	if (!gateway_field7_time(f90 + 10, now_us, &original->timestamp_us))
		return "30";
	uint8_t key[128];
	size_t at = key_add(key, 0, "K1", 2);
	at = key_add(key, at, original->class_name, 2);
	at = key_add(key, at, m->value[41], m->length[41]);
	at = key_add(key, at, f90 + 4, 6);
	at = key_add(key, at, f90 + 10, 10);
	original->id = id_of(key, at);
	return NULL;
}

static const char *card_account(const struct iso8583_message *m, const struct directory *d,
				uint64_t *account)
{
	unsigned field = iso8583_has(m, 2) ? 2 : iso8583_has(m, 102) ? 102 : 0;
	if (field == 0)
		return "30";
	if (!directory_find(d, DIRECTORY_PAN, m->value[field], m->length[field], account))
		return "14";
	return NULL;
}

static const char *merchant_account(const struct iso8583_message *m, const struct directory *d,
				    uint64_t *account)
{
	if (iso8583_has(m, 42))
		return directory_find(d, DIRECTORY_MERCHANT, m->value[42], m->length[42], account)
			       ? NULL : "03";
	if (iso8583_has(m, 41))
		return directory_find(d, DIRECTORY_TERMINAL, m->value[41], m->length[41], account)
			       ? NULL : "03";
	if (iso8583_has(m, 103))
		return directory_find(d, DIRECTORY_PAN, m->value[103], m->length[103], account)
			       ? NULL : "03";
	return "30";
}

static const char *amount_currency(const struct iso8583_message *m, struct ledger_request *r)
{
	uint64_t currency = 0;
	if (!iso8583_has(m, 4) || !iso8583_has(m, 49) ||
	    !iso8583_parse_u64(m->value[4], m->length[4], &r->amount) ||
	    !iso8583_parse_u64(m->value[49], m->length[49], &currency))
		return "30";
	if (currency == 0 || currency > 999)
		return "30";
	r->currency = (uint16_t)currency;
	return NULL;
}

/* 0100 / 0200: HOLD, PAY, REFUND or BALANCE by processing code. */
static const char *translate_card(const struct iso8583_message *m, const struct directory *d,
				  uint16_t default_currency, uint64_t now_us,
				  struct gateway_translation *t)
{
	struct ledger_request *r = &t->request;
	if (!iso8583_has(m, 3))
		return "30";
	const uint8_t *code = m->value[3];
	bool financial = m->mti[1] == '2';
	const char *error = card_account(m, d, &r->account_id);
	if (code[0] == '3' && code[1] == '1') {
		t->operation = GATEWAY_OP_BALANCE;
		r->kind = LEDGER_KIND_BALANCE;
		uint64_t currency = default_currency;
		if (iso8583_has(m, 49) && !iso8583_parse_u64(m->value[49], 3, &currency))
			return "30";
		r->currency = (uint16_t)(currency ? currency : default_currency);
		return error;
	}
	bool refund = financial && code[0] == '2' && code[1] == '0';
	if (!(code[0] == '0' && code[1] == '0') && !refund)
		return "12";
	if (error == NULL)
		error = amount_currency(m, r);
	uint64_t merchant = 0;
	if (error == NULL)
		error = merchant_account(m, d, &merchant);
	if (error != NULL)
		return error;
	if (!refund) {
		t->operation = financial ? GATEWAY_OP_PURCHASE : GATEWAY_OP_AUTHORIZE;
		r->kind = financial ? LEDGER_KIND_PAY : LEDGER_KIND_HOLD;
		r->other_id = merchant;
		return NULL;
	}
	/* A refund debits the merchant and credits the card: of a payment named
	 * by field 90 (REFUND), or without one as a plain PAY (credit voucher). */
	t->operation = GATEWAY_OP_REFUND;
	r->other_id = r->account_id;
	r->account_id = merchant;
	r->kind = LEDGER_KIND_PAY;
	if (iso8583_has(m, 90)) {
		struct original original;
		error = original_of(m, now_us, &original);
		if (error != NULL)
			return error;
		r->kind = LEDGER_KIND_REFUND;
		r->reference_id = original.id;
	}
	return NULL;
}

/* 0220: capture of the hold of the 0100 named by field 90. */
static const char *translate_advice(const struct iso8583_message *m, const struct directory *d,
				    uint64_t now_us, struct gateway_translation *t)
{
	struct ledger_request *r = &t->request;
	t->operation = GATEWAY_OP_CAPTURE;
	r->kind = LEDGER_KIND_CAPTURE;
	const char *error = card_account(m, d, &r->account_id);
	if (error == NULL)
		error = amount_currency(m, r);
	if (error != NULL)
		return error;
	struct original original;
	error = original_of(m, now_us, &original);
	if (error != NULL)
		return error;
	if (memcmp(original.class_name, "01", 2) != 0)
		return "12";
	r->reference_id = original.id;
	return NULL;
}

/*
 * 0400 / 0420: VOID of a 0100's hold or REFUND of a 0200's payment. Every
 * reversal of one original (0400, 0401, 0420, 0421, whatever its own STAN)
 * becomes the same ledger request: id from the original's id, timestamp
 * from the original's field 7. So the original is reversed at most once and
 * every repeat is answered with the first reversal's outcome.
 */
static const char *translate_reversal(const struct iso8583_message *m, const struct directory *d,
				      uint64_t now_us, struct gateway_translation *t)
{
	struct ledger_request *r = &t->request;
	struct original original;
	const char *error = original_of(m, now_us, &original);
	uint64_t card = 0;
	if (error == NULL)
		error = card_account(m, d, &card);
	if (error == NULL)
		error = amount_currency(m, r);
	if (error != NULL)
		return error;
	if (memcmp(original.class_name, "01", 2) == 0) {
		t->operation = GATEWAY_OP_REVERSE_HOLD;
		r->kind = LEDGER_KIND_VOID;
		r->account_id = card;
		r->amount = 0;
	} else if (memcmp(original.class_name, "02", 2) == 0) {
		t->operation = GATEWAY_OP_REVERSE_PAY;
		r->kind = LEDGER_KIND_REFUND;
		error = merchant_account(m, d, &r->account_id);
		if (error != NULL)
			return error;
		r->other_id = card;
	} else {
		return "12";
	}
	r->reference_id = original.id;
	uint8_t key[32];
	size_t at = key_add(key, 0, "REV", 3);
	at = key_add(key, at, &original.id, sizeof(original.id));
	r->id = id_of(key, at);
	r->timestamp_us = original.timestamp_us;
	return NULL;
}

void gateway_translate(const struct iso8583_message *m, const struct directory *d,
		       uint16_t default_currency, uint64_t now_us, struct gateway_translation *t)
{
	memset(t, 0, sizeof(*t));
	char class_name[2];
	if (m->mti[0] == '0' && m->mti[1] == '8' && m->mti[2] == '0') {
		t->operation = GATEWAY_OP_NETWORK;
		t->code = iso8583_has(m, 70) ? "00" : "30";
		return;
	}
	if (!mti_class(m->mti, class_name) || (m->mti[3] != '0' && m->mti[3] != '1')) {
		t->code = "30"; /* an MTI this gateway does not speak */
		return;
	}
	if (!iso8583_has(m, 7) || !gateway_field7_time(m->value[7], now_us,
						       &t->request.timestamp_us)) {
		t->code = "30";
		return;
	}
	t->request.id = own_id(m, class_name);
	if (t->request.id == 0) {
		t->code = "30";
		return;
	}
	if (class_name[0] == '0' && (class_name[1] == '1' || class_name[1] == '2'))
		t->code = translate_card(m, d, default_currency, now_us, t);
	else if (class_name[0] == '2')
		t->code = translate_advice(m, d, now_us, t);
	else
		t->code = translate_reversal(m, d, now_us, t);
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                 */
/* ------------------------------------------------------------------------ */
/* Fields a response echoes byte for byte when the request had them. */
static const uint8_t echo_fields[] = { 2, 3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49, 70, 90, 102, 103 };
#define ECHO_BYTES_MAX 320u
#define RESPONSE_BYTES_MAX 1024u

/* What a response needs from its request, kept while the request is in
 * flight: the response MTI, the framing, and the echoed fields as (field,
 * length, bytes) records. */
struct echo {
	char mti[4];
	uint8_t framing;
	uint8_t operation;
	uint16_t used;
	uint8_t bytes[ECHO_BYTES_MAX];
};

static void echo_capture(const struct iso8583_message *m, const char response_mti[4],
			 uint8_t framing, uint8_t operation, struct echo *echo)
{
	memcpy(echo->mti, response_mti, 4);
	echo->framing = framing;
	echo->operation = operation;
	echo->used = 0;
	for (size_t i = 0; i < sizeof(echo_fields); i++) {
		unsigned field = echo_fields[i];
		/* Every echoed field is at most 42 characters: the sum fits. */
		if (!iso8583_has(m, field) || m->length[field] > 64)
			continue;
		assert(echo->used + 2u + m->length[field] <= ECHO_BYTES_MAX);
		echo->bytes[echo->used] = (uint8_t)field;
		echo->bytes[echo->used + 1] = (uint8_t)m->length[field];
		memcpy(echo->bytes + echo->used + 2, m->value[field], m->length[field]);
		echo->used = (uint16_t)(echo->used + 2u + m->length[field]);
	}
}

/* Field 54 for a balance inquiry: account type 00, amount type 02
 * (available balance), currency, C or D, 12 digits. */
static void balance_field(int64_t balance, uint16_t currency, char out[20])
{
	memcpy(out, "0002", 4);
	iso8583_format_u64(currency, 3, out + 4);
	out[7] = balance < 0 ? 'D' : 'C';
	uint64_t magnitude = balance < 0 ? (uint64_t)0 - (uint64_t)balance : (uint64_t)balance;
	if (!iso8583_format_u64(magnitude, 12, out + 8))
		memcpy(out + 8, "999999999999", 12);
}

/* Packs the response to `echo`. result is NULL for answers the gateway gives
 * itself (format errors, directory misses, network management). Returns the
 * frame size or -1. */
static int response_pack(const struct echo *echo, const char *code,
			 const struct ledger_result *result, uint16_t currency, uint64_t id,
			 uint8_t *out, size_t capacity)
{
	struct iso8583_message m;
	iso8583_message_init(&m, echo->mti);
	for (uint16_t at = 0; at < echo->used; at = (uint16_t)(at + 2u + echo->bytes[at + 1]))
		iso8583_set(&m, echo->bytes[at], echo->bytes + at + 2, echo->bytes[at + 1]);
	char rrn[12], authorization[6], balance[20];
	bool money = echo->operation != GATEWAY_OP_NONE && echo->operation != GATEWAY_OP_NETWORK;
	if (money && !iso8583_has(&m, 37) && id != 0) {
		iso8583_format_u64(id % 1000000000000ull, 12, rrn);
		iso8583_set(&m, 37, rrn, 12);
	}
	if (money && result != NULL && code[0] == '0' && code[1] == '0') {
		iso8583_format_u64(id % 1000000u, 6, authorization);
		iso8583_set(&m, 38, authorization, 6);
	}
	iso8583_set(&m, 39, code, 2);
	if (echo->operation == GATEWAY_OP_BALANCE && result != NULL && result->code == LEDGER_OK) {
		balance_field(result->balance, currency, balance);
		iso8583_set(&m, 54, balance, 20);
	}
	/* Echoed fields passed unpack's checks, so pack cannot refuse them. */
	return iso8583_pack((enum iso8583_framing)echo->framing, &m, out, capacity, NULL);
}

/* ------------------------------------------------------------------------ */
/* The gateway's state                                                       */
/* ------------------------------------------------------------------------ */
struct gateway_options {
	char switch_host[128];
	uint16_t switch_port;
	char listen_host[2][128];
	uint16_t listen_port[2];
	bool listen_enabled[2];          /* by enum iso8583_framing */
	char directory_path[4096];
	uint32_t connections_max;
	uint32_t pipeline_max;           /* requests in flight per connection */
	int timeout_ms;
	int retries;
	uint16_t default_currency;
	bool verbose;
};

/* One ISO message waiting for a ledger result. */
struct waiter {
	uint64_t connection;
	uint32_t next;                   /* next waiter of the same request; 0 = none */
	struct echo echo;
};

/* One ledger request in flight (several waiters when a retransmitted message
 * arrives while its original is still in flight). */
struct pending {
	struct ledger_request request;
	uint64_t sent_ms;
	uint32_t waiters;                /* first waiter index + 1; 0 = slot free */
	uint32_t attempts;
	bool queued;                     /* in the outbox */
};

#define READ_BUFFER_BYTES (16u << 10)
#define WRITE_BUFFER_BYTES (64u << 10)
#define DATAGRAM_RING 2048u          /* sent datagrams remembered for ERROR replies */
#define SCAN_INTERVAL_MS 20u

struct sent_datagram {
	uint64_t sequence;
	uint32_t count;
	uint64_t ids[NETIO_BATCH_MAX];
};

struct connection_state {
	uint64_t handle;
	uint32_t in_flight;
	bool paused;
};

struct gateway_stats {
	uint64_t messages;
	uint64_t keepalives;
	uint64_t format_errors;
	uint64_t closed_malformed;
	uint64_t answered;
	uint64_t answered_local;         /* without the switch */
	uint64_t no_answer;              /* 91 after every retry */
	uint64_t retransmits;
	uint64_t joined;                 /* a repeat joined its in-flight original */
};

struct gateway {
	struct gateway_options options;
	struct tcp_server *server;
	struct netio_client *client;
	struct directory *directory;
	int signal_fd;
	bool stopping;
	uint32_t pending_max;
	struct pending *pending;         /* pending_max slots */
	uint32_t *free_pending;
	uint32_t free_pending_count;
	uint32_t *index;                 /* id -> pending index + 1, open addressing */
	uint32_t index_mask;
	struct waiter *waiters;          /* pending_max + 1, [0] unused */
	uint32_t *free_waiters;
	uint32_t free_waiter_count;
	uint32_t *outbox;                /* pending indexes to send */
	uint32_t outbox_count;
	struct ledger_request *send_buffer; /* NETIO_CLIENT_REQUESTS_MAX */
	struct sent_datagram *sent;      /* DATAGRAM_RING */
	struct connection_state *connections;
	uint64_t last_scan_ms;
	struct gateway_stats stats;
};

static uint64_t monotonic_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static uint64_t realtime_us(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------------ */
/* id -> pending index (linear probing, backward-shift deletion)             */
/* ------------------------------------------------------------------------ */
static uint32_t index_home(const struct gateway *g, uint64_t id)
{
	return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & g->index_mask;
}

static uint32_t index_find(const struct gateway *g, uint64_t id)
{
	uint32_t slot = index_home(g, id);
	for (uint32_t probe = 0; probe <= g->index_mask; probe++) {
		uint32_t value = g->index[slot];
		if (value == 0)
			return 0;
		if (g->pending[value - 1].request.id == id)
			return value;
		slot = (slot + 1) & g->index_mask;
	}
	return 0;
}

static void index_insert(struct gateway *g, uint64_t id, uint32_t pending)
{
	uint32_t slot = index_home(g, id);
	while (g->index[slot] != 0)
		slot = (slot + 1) & g->index_mask;
	g->index[slot] = pending + 1;
}

static void index_remove(struct gateway *g, uint64_t id)
{
	uint32_t slot = index_home(g, id);
	while (g->index[slot] != 0 && g->pending[g->index[slot] - 1].request.id != id)
		slot = (slot + 1) & g->index_mask;
	assert(g->index[slot] != 0);
	g->index[slot] = 0;
	/* Backward shift: move later entries of the run into the hole when their
	 * home slot does not lie cyclically between the hole and themselves. */
	uint32_t hole = slot;
	for (uint32_t next = (slot + 1) & g->index_mask; g->index[next] != 0;
	     next = (next + 1) & g->index_mask) {
		uint32_t home = index_home(g, g->pending[g->index[next] - 1].request.id);
		bool stays = hole <= next ? (home > hole && home <= next)
					  : (home > hole || home <= next);
		if (stays)
			continue;
		g->index[hole] = g->index[next];
		g->index[next] = 0;
		hole = next;
	}
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                   */
/* ------------------------------------------------------------------------ */
static struct connection_state *connection_of(struct gateway *g, uint64_t handle)
{
	struct connection_state *state = &g->connections[(uint32_t)handle];
	return state->handle == handle ? state : NULL;
}

static void send_response(struct gateway *g, uint64_t connection, const struct echo *echo,
			  const char *code, const struct ledger_result *result,
			  uint16_t currency, uint64_t id)
{
	uint8_t frame[RESPONSE_BYTES_MAX];
	int size = response_pack(echo, code, result, currency, id, frame, sizeof(frame));
	assert(size > 0);
	g->stats.answered++;
	(void)tcp_server_send(g->server, connection, frame, (size_t)size);
}

/* Answers a message at once, without the switch. */
static void answer_local(struct gateway *g, uint64_t connection, const struct iso8583_message *m,
			 const char response_mti[4], uint8_t framing, uint8_t operation,
			 const char *code, uint64_t id)
{
	struct echo echo;
	echo_capture(m, response_mti, framing, operation, &echo);
	g->stats.answered_local++;
	send_response(g, connection, &echo, code, NULL, 0, id);
}

/* Answers every message waiting for pending request `index` and frees it.
 * result NULL: no answer from the switch (91). */
static void complete(struct gateway *g, uint32_t index, const struct ledger_result *result)
{
	struct pending *p = &g->pending[index];
	assert(p->waiters != 0);
	/* A repeat (DUPLICATE) carries the original code: a retransmitted message
	 * is answered with its original outcome (netio/ISO8583.md). */
	const char *code = result != NULL ? gateway_response_code(result->code) : "91";
	for (uint32_t w = p->waiters; w != 0;) {
		struct waiter *waiter = &g->waiters[w];
		uint32_t next = waiter->next;
		struct connection_state *state = connection_of(g, waiter->connection);
		if (state != NULL) {
			send_response(g, waiter->connection, &waiter->echo, code, result,
				      p->request.currency, p->request.id);
			assert(state->in_flight > 0);
			state->in_flight--;
			if (state->paused && state->in_flight <= g->options.pipeline_max / 2) {
				state->paused = false;
				tcp_server_resume(g->server, waiter->connection);
			}
		}
		g->free_waiters[g->free_waiter_count++] = w;
		w = next;
	}
	index_remove(g, p->request.id);
	p->waiters = 0;
	p->queued = false;
	g->free_pending[g->free_pending_count++] = index;
}

static void queue(struct gateway *g, uint32_t index)
{
	struct pending *p = &g->pending[index];
	if (p->queued)
		return;
	assert(g->outbox_count < 2 * g->pending_max);
	p->queued = true;
	g->outbox[g->outbox_count++] = index;
}

/* Takes a translated message in flight, or joins it to its in-flight twin. */
static void submit(struct gateway *g, uint64_t connection, const struct iso8583_message *m,
		   const char response_mti[4], uint8_t framing,
		   const struct gateway_translation *t)
{
	uint32_t found = index_find(g, t->request.id);
	if (found != 0 && memcmp(&g->pending[found - 1].request, &t->request,
				 sizeof(t->request)) != 0) {
		/* The key of an in-flight message reused with other fields. */
		answer_local(g, connection, m, response_mti, framing, t->operation, "94",
			     t->request.id);
		return;
	}
	if (g->free_waiter_count == 0 || (found == 0 && g->free_pending_count == 0)) {
		answer_local(g, connection, m, response_mti, framing, t->operation, "91",
			     t->request.id);
		return;
	}
	uint32_t w = g->free_waiters[--g->free_waiter_count];
	struct waiter *waiter = &g->waiters[w];
	waiter->connection = connection;
	echo_capture(m, response_mti, framing, t->operation, &waiter->echo);
	if (found != 0) {
		/* Appended: the messages of one request are answered in arrival
		 * order. The chain is at most the waiters in flight. */
		struct pending *p = &g->pending[found - 1];
		uint32_t last = p->waiters;
		while (g->waiters[last].next != 0)
			last = g->waiters[last].next;
		g->waiters[last].next = w;
		waiter->next = 0;
		g->stats.joined++;
	} else {
		uint32_t index = g->free_pending[--g->free_pending_count];
		struct pending *p = &g->pending[index];
		p->request = t->request;
		p->waiters = w;
		p->attempts = 0;
		p->queued = false;
		waiter->next = 0;
		index_insert(g, t->request.id, index);
		queue(g, index);
	}
	connection_of(g, connection)->in_flight++;
}

/* One message of a connection. Returns 0, or -1 to close the connection. */
static int handle_message(struct gateway *g, uint64_t connection, uint8_t framing,
			  const uint8_t *data, size_t length)
{
	struct iso8583_message m;
	unsigned field = 0;
	enum iso8583_error error = iso8583_unpack(framing, data, length, &m, &field);
	g->stats.messages++;
	char response_mti[4];
	if (error == ISO8583_ERROR_MTI || !iso8583_response_mti(m.mti, response_mti)) {
		engine_log("warn", "iso8583: closing a connection: %s (%.4s), %zu bytes",
			   error == ISO8583_ERROR_MTI ? "no MTI" : "not a request MTI",
			   error == ISO8583_ERROR_MTI ? "" : m.mti, length);
		g->stats.closed_malformed++;
		return -1;
	}
	if (error != ISO8583_OK) {
		g->stats.format_errors++;
		if (g->options.verbose)
			engine_log("info", "iso8583: format error %s in field %u of a %.4s",
				   iso8583_error_name(error), field, m.mti);
		answer_local(g, connection, &m, response_mti, framing, GATEWAY_OP_NONE, "30", 0);
		return 0;
	}
	struct gateway_translation t;
	gateway_translate(&m, g->directory, g->options.default_currency, realtime_us(), &t);
	if (t.code != NULL)
		answer_local(g, connection, &m, response_mti, framing, t.operation, t.code,
			     t.request.id);
	else
		submit(g, connection, &m, response_mti, framing, &t);
	return 0;
}

/* tcp_server on_data: every whole frame, until the connection must pause. */
static long on_data(void *context, uint64_t connection, uint32_t tag, const uint8_t *data,
		    size_t length)
{
	struct gateway *g = context;
	struct connection_state *state = &g->connections[(uint32_t)connection];
	if (state->handle != connection)
		*state = (struct connection_state){ .handle = connection };
	size_t consumed = 0;
	uint8_t framing = (uint8_t)tag;
	while (consumed < length) {
		if (state->in_flight >= g->options.pipeline_max) {
			state->paused = true;
			tcp_server_pause(g->server, connection);
			break;
		}
		/* Over half full, the server stops reading the connection and
		 * hands the rest back once its output drained (tcp_server.h). */
		if (tcp_server_output_bytes(g->server, connection) > WRITE_BUFFER_BYTES / 2)
			break;
		size_t offset = 0, size = 0;
		int frame = iso8583_frame_next(framing, data + consumed, length - consumed, &offset,
					       &size);
		if (frame == 0)
			break;
		if (frame < 0) {
			engine_log("warn", "iso8583: closing a connection: bad length prefix (%s)",
				   iso8583_error_name((unsigned)-frame));
			g->stats.closed_malformed++;
			return -1;
		}
		if (size == 0)
			g->stats.keepalives++;
		else if (handle_message(g, connection, framing, data + consumed + offset, size) != 0)
			return -1;
		consumed += (size_t)frame;
	}
	return (long)consumed;
}

static void on_close(void *context, uint64_t connection)
{
	struct gateway *g = context;
	struct connection_state *state = &g->connections[(uint32_t)connection];
	if (state->handle == connection)
		*state = (struct connection_state){ 0 };
}

/* ------------------------------------------------------------------------ */
/* The switch side                                                           */
/* ------------------------------------------------------------------------ */
static void absorb_result(struct gateway *g, const struct ledger_result *result)
{
	uint32_t found = index_find(g, result->id);
	if (found == 0)
		return; /* a late answer to something already answered (91) */
	/* BUSY: the switch had no room; the request stays in flight and the
	 * timeout sends it again. */
	if (result->code == LEDGER_BUSY)
		return;
	complete(g, found - 1, result);
}

/* An ERROR datagram answers every request of the datagram it refuses. */
static void absorb_error(struct gateway *g, const struct netio_reply *reply)
{
	const struct sent_datagram *sent = &g->sent[reply->sequence % DATAGRAM_RING];
	if (sent->sequence != reply->sequence || reply->count != 1)
		return;
	for (uint32_t i = 0; i < sent->count; i++) {
		struct ledger_result result = reply->results[0];
		result.id = sent->ids[i];
		absorb_result(g, &result);
	}
}

static void receive_results(struct gateway *g)
{
	struct netio_reply replies[NETIO_BURST_MAX];
	/* Bounded: the socket buffer is drained in at most 64 bursts per turn so
	 * that TCP connections get their turn too. */
	for (int turn = 0; turn < 64; turn++) {
		int n = netio_client_poll(g->client, replies, NETIO_BURST_MAX, 0);
		if (n <= 0)
			return;
		for (int r = 0; r < n; r++) {
			if (replies[r].type == NETIO_TYPE_ERROR) {
				absorb_error(g, &replies[r]);
				continue;
			}
			for (uint32_t i = 0; i < replies[r].count; i++)
				absorb_result(g, &replies[r].results[i]);
		}
	}
}

/* Sends the outbox: many requests per datagram, up to 4096 per system call.
 * What the socket cannot take stays queued for the next turn. */
static void flush_outbox(struct gateway *g)
{
	uint64_t now = monotonic_ms();
	uint32_t kept = 0;
	uint32_t at = 0;
	bool socket_full = false;
	while (at < g->outbox_count) {
		uint32_t chosen[NETIO_CLIENT_REQUESTS_MAX];
		uint32_t count = 0;
		for (; at < g->outbox_count && count < NETIO_CLIENT_REQUESTS_MAX; at++) {
			uint32_t index = g->outbox[at];
			if (!g->pending[index].queued || g->pending[index].waiters == 0)
				continue;
			if (socket_full) {
				g->outbox[kept++] = index;
				continue;
			}
			chosen[count] = index;
			g->send_buffer[count++] = g->pending[index].request;
		}
		if (count == 0)
			continue;
		uint64_t sequence = 0;
		int datagrams = netio_client_send(g->client, g->send_buffer, count, NETIO_BATCH_MAX,
						  &sequence);
		uint32_t sent = datagrams <= 0 ? 0 : (uint32_t)datagrams * NETIO_BATCH_MAX;
		sent = sent > count ? count : sent;
		for (uint32_t i = 0; i < sent; i++) {
			struct pending *p = &g->pending[chosen[i]];
			p->queued = false;
			p->sent_ms = now;
			p->attempts++;
			struct sent_datagram *d =
				&g->sent[(sequence + i / NETIO_BATCH_MAX) % DATAGRAM_RING];
			if (i % NETIO_BATCH_MAX == 0) {
				d->sequence = sequence + i / NETIO_BATCH_MAX;
				d->count = 0;
			}
			d->ids[d->count++] = p->request.id;
		}
		for (uint32_t i = sent; i < count; i++)
			g->outbox[kept++] = chosen[i];
		socket_full |= sent < count;
	}
	g->outbox_count = kept;
}

/* Every request without an answer after the timeout is sent again (the same
 * request: the switch answers a repeat with the original outcome); after
 * the last retry its messages are answered 91. */
static void scan_timeouts(struct gateway *g)
{
	uint64_t now = monotonic_ms();
	if (now - g->last_scan_ms < SCAN_INTERVAL_MS)
		return;
	g->last_scan_ms = now;
	for (uint32_t i = 0; i < g->pending_max; i++) {
		struct pending *p = &g->pending[i];
		if (p->waiters == 0 || p->queued ||
		    now - p->sent_ms < (uint64_t)g->options.timeout_ms)
			continue;
		if (p->attempts > (uint32_t)g->options.retries) {
			g->stats.no_answer++;
			complete(g, i, NULL);
			continue;
		}
		g->stats.retransmits++;
		queue(g, i);
	}
}

static void reload_directory(struct gateway *g)
{
	char error[1024];
	struct directory *fresh = directory_load(g->options.directory_path, error, sizeof(error));
	if (fresh == NULL) {
		engine_log("error", "SIGHUP: %s; keeping the directory loaded before", error);
		return;
	}
	directory_destroy(g->directory);
	g->directory = fresh;
	engine_log("info", "SIGHUP: directory %s reloaded: %llu pan, %llu merchant, "
		   "%llu terminal", g->options.directory_path,
		   (unsigned long long)directory_count(fresh, DIRECTORY_PAN),
		   (unsigned long long)directory_count(fresh, DIRECTORY_MERCHANT),
		   (unsigned long long)directory_count(fresh, DIRECTORY_TERMINAL));
}

enum { WATCH_CLIENT = 1, WATCH_SIGNAL = 2 };

static void on_watch(void *context, uint64_t token)
{
	struct gateway *g = context;
	if (token == WATCH_CLIENT) {
		receive_results(g);
		return;
	}
	struct signalfd_siginfo info;
	while (read(g->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
		if (info.ssi_signo == SIGHUP) {
			reload_directory(g);
		} else if (!g->stopping) {
			engine_log("info", "signal %s: answering what is in flight, then stopping",
				   info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			g->stopping = true;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */
static void gateway_destroy(struct gateway *g)
{
	if (g == NULL)
		return;
	tcp_server_destroy(g->server);
	netio_client_close(g->client);
	directory_destroy(g->directory);
	if (g->signal_fd >= 0)
		close(g->signal_fd);
	free(g->pending);
	free(g->free_pending);
	free(g->index);
	free(g->waiters);
	free(g->free_waiters);
	free(g->outbox);
	free(g->send_buffer);
	free(g->sent);
	free(g->connections);
	free(g);
}

static int gateway_allocate(struct gateway *g)
{
	uint32_t max = g->options.connections_max * g->options.pipeline_max;
	g->pending_max = max;
	uint32_t slots = 16;
	while (slots < 2 * max)
		slots *= 2;
	g->index_mask = slots - 1;
	g->pending = calloc(max, sizeof(*g->pending));
	g->free_pending = calloc(max, sizeof(uint32_t));
	g->index = calloc(slots, sizeof(uint32_t));
	g->waiters = calloc((size_t)max + 1, sizeof(*g->waiters));
	g->free_waiters = calloc(max, sizeof(uint32_t));
	g->outbox = calloc(2 * (size_t)max, sizeof(uint32_t));
	g->send_buffer = calloc(NETIO_CLIENT_REQUESTS_MAX, sizeof(struct ledger_request));
	g->sent = calloc(DATAGRAM_RING, sizeof(struct sent_datagram));
	g->connections = calloc(g->options.connections_max, sizeof(*g->connections));
	if (!g->pending || !g->free_pending || !g->index || !g->waiters || !g->free_waiters ||
	    !g->outbox || !g->send_buffer || !g->sent || !g->connections)
		return -ENOMEM;
	for (uint32_t i = 0; i < max; i++) {
		g->free_pending[i] = max - 1 - i;
		g->free_waiters[i] = max - i; /* waiter indexes start at 1 */
	}
	g->free_pending_count = g->free_waiter_count = max;
	return 0;
}

static const char *const framing_names[2] = { "binary", "ascii" };

static struct gateway *gateway_create(const struct gateway_options *options, char *error,
				      size_t error_size)
{
	struct gateway *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		snprintf(error, error_size, "out of memory");
		return NULL;
	}
	g->options = *options;
	g->signal_fd = -1;
	g->directory = directory_load(options->directory_path, error, error_size);
	if (g->directory == NULL)
		goto fail;
	if (gateway_allocate(g) != 0) {
		snprintf(error, error_size, "out of memory for %u requests in flight",
			 g->pending_max);
		goto fail;
	}
	int code = 0;
	g->client = netio_client_open(options->switch_host, options->switch_port, &code);
	if (g->client == NULL) {
		snprintf(error, error_size, "switch %s:%u: %s", options->switch_host,
			 options->switch_port, strerror(-code));
		goto fail;
	}
	struct tcp_server_config config = { .connections_max = options->connections_max,
					    .read_buffer_bytes = READ_BUFFER_BYTES,
					    .write_buffer_bytes = WRITE_BUFFER_BYTES,
					    .frame_max_bytes = ISO8583_FRAME_MAX };
	struct tcp_server_callbacks callbacks = { .on_data = on_data, .on_close = on_close,
						  .on_watch = on_watch };
	g->server = tcp_server_create(&config, &callbacks, g, &code);
	if (g->server == NULL) {
		snprintf(error, error_size, "tcp server: %s", strerror(-code));
		goto fail;
	}
	for (int f = 0; f < 2; f++) {
		if (!options->listen_enabled[f])
			continue;
		uint16_t port = 0;
		code = tcp_server_listen(g->server, options->listen_host[f],
					 options->listen_port[f], (uint32_t)f, &port);
		if (code != 0) {
			snprintf(error, error_size, "listen %s %s:%u: %s", framing_names[f],
				 options->listen_host[f], options->listen_port[f], strerror(-code));
			goto fail;
		}
		g->options.listen_port[f] = port;
	}
	return g;
fail:
	gateway_destroy(g);
	return NULL;
}

static int gateway_signals(struct gateway *g)
{
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGHUP);
	sigprocmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	g->signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
	if (g->signal_fd < 0)
		return -errno;
	int error = tcp_server_watch(g->server, g->signal_fd, WATCH_SIGNAL);
	if (error == 0)
		error = tcp_server_watch(g->server, netio_client_fd(g->client), WATCH_CLIENT);
	return error;
}

static int gateway_run(struct gateway *g)
{
	uint64_t stop_deadline = 0;
	for (;;) {
		int timeout = g->outbox_count > 0 ? 0 : 5;
		int n = tcp_server_run_once(g->server, timeout);
		if (n < 0) {
			engine_log("error", "event loop: %s", strerror(-n));
			return 1;
		}
		flush_outbox(g);
		scan_timeouts(g);
		if (g->stopping) {
			uint64_t now = monotonic_ms();
			if (stop_deadline == 0)
				stop_deadline = now + (uint64_t)g->options.timeout_ms *
							      (uint64_t)(g->options.retries + 2);
			if (g->free_pending_count == g->pending_max || now >= stop_deadline)
				break;
		}
	}
	/* The last answers go out with this turn's writes. */
	tcp_server_run_once(g->server, 0);
	struct tcp_server_stats tcp;
	tcp_server_stats_read(g->server, &tcp);
	engine_log("info", "stopped: %llu messages, %llu answered (%llu by the gateway), "
		   "%llu format errors, %llu connections closed for malformed frames, "
		   "%llu retransmits, %llu without an answer (91), %llu connections accepted",
		   (unsigned long long)g->stats.messages, (unsigned long long)g->stats.answered,
		   (unsigned long long)g->stats.answered_local,
		   (unsigned long long)g->stats.format_errors,
		   (unsigned long long)g->stats.closed_malformed,
		   (unsigned long long)g->stats.retransmits,
		   (unsigned long long)g->stats.no_answer, (unsigned long long)tcp.accepted);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* `payswitch gateway`                                                       */
/* ------------------------------------------------------------------------ */
static const char gateway_help[] =
	"usage: payswitch gateway --directory FILE [OPTIONS]\n"
	"\n"
	"The ISO 8583:1987 gateway: accepts terminals and acquirers over TCP, turns\n"
	"each message into a switch request over the native UDP protocol and answers\n"
	"with the ISO response. Runs until SIGTERM or SIGINT; SIGHUP reloads the\n"
	"directory. Formats, flows and response codes: netio/ISO8583.md.\n"
	"\n"
	"  --directory FILE        card/terminal directory (payswitch directory --help)\n"
	"  --switch HOST:PORT      the switch's native protocol (default 127.0.0.1:7000)\n"
	"  --listen-binary HOST:PORT  2-byte binary length, binary bitmap (jPOS\n"
	"                          PostChannel/PostPackager) (default 127.0.0.1:8583;\n"
	"                          'off' disables)\n"
	"  --listen-ascii HOST:PORT   4 ASCII digits of length, hex bitmap (jPOS\n"
	"                          ASCIIChannel/ISO87APackager) (default off)\n"
	"  --connections N         open connections at once (default 1024)\n"
	"  --pipeline N            requests in flight per connection (default 64)\n"
	"  --timeout-ms N          wait for the switch before resending (default 250)\n"
	"  --retries N             resends before answering 91 (default 8)\n"
	"  --currency N            ISO 4217 code of balance inquiries without field 49\n"
	"                          (default 978)\n"
	"  --verbose               a log line per format error\n";

static const struct option gateway_long_options[] = {
	{ "directory", required_argument, NULL, 'd' },
	{ "switch", required_argument, NULL, 's' },
	{ "listen-binary", required_argument, NULL, 'b' },
	{ "listen-ascii", required_argument, NULL, 'a' },
	{ "connections", required_argument, NULL, 'c' },
	{ "pipeline", required_argument, NULL, 'p' },
	{ "timeout-ms", required_argument, NULL, 't' },
	{ "retries", required_argument, NULL, 'r' },
	{ "currency", required_argument, NULL, 'C' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_bounded(const char *text, const char *what, uint64_t low, uint64_t high,
			 uint64_t *value)
{
	if (engine_parse_u64(text, value) != 0 || *value < low || *value > high) {
		fprintf(stderr, "payswitch gateway: %s '%s' is not in %llu..%llu\n", what, text,
			(unsigned long long)low, (unsigned long long)high);
		return -1;
	}
	return 0;
}

static int parse_listen(const char *text, struct gateway_options *o, int framing)
{
	o->listen_enabled[framing] = strcmp(text, "off") != 0;
	if (!o->listen_enabled[framing])
		return 0;
	char host[128];
	uint16_t port = 0;
	if (engine_parse_address(text, host, sizeof(host), &port) != 0) {
		fprintf(stderr, "payswitch gateway: '%s' is not HOST:PORT\n", text);
		return -1;
	}
	snprintf(o->listen_host[framing], sizeof(o->listen_host[framing]), "%s", host);
	o->listen_port[framing] = port;
	return 0;
}

static int parse_option(int option, struct gateway_options *o)
{
	uint64_t value = 0;
	switch (option) {
	case 'd':
		snprintf(o->directory_path, sizeof(o->directory_path), "%s", optarg);
		return 0;
	case 's':
		if (engine_parse_address(optarg, o->switch_host, sizeof(o->switch_host),
					 &o->switch_port) == 0)
			return 0;
		fprintf(stderr, "payswitch gateway: --switch '%s' is not HOST:PORT\n", optarg);
		return -1;
	case 'b': return parse_listen(optarg, o, ISO8583_FRAMING_BINARY);
	case 'a': return parse_listen(optarg, o, ISO8583_FRAMING_ASCII);
	case 'c':
		if (parse_bounded(optarg, "--connections", 1, 65536, &value) != 0)
			return -1;
		o->connections_max = (uint32_t)value;
		return 0;
	case 'p':
		if (parse_bounded(optarg, "--pipeline", 1, 4096, &value) != 0)
			return -1;
		o->pipeline_max = (uint32_t)value;
		return 0;
	case 't':
		if (parse_bounded(optarg, "--timeout-ms", 1, 60000, &value) != 0)
			return -1;
		o->timeout_ms = (int)value;
		return 0;
	case 'r':
		if (parse_bounded(optarg, "--retries", 0, 100, &value) != 0)
			return -1;
		o->retries = (int)value;
		return 0;
	case 'C':
		if (parse_bounded(optarg, "--currency", 1, 999, &value) != 0)
			return -1;
		o->default_currency = (uint16_t)value;
		return 0;
	case 'v': o->verbose = true; return 0;
	default: return -1;
	}
}

static void options_default(struct gateway_options *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->switch_host, sizeof(o->switch_host), "127.0.0.1");
	o->switch_port = 7000;
	snprintf(o->listen_host[ISO8583_FRAMING_BINARY], sizeof(o->listen_host[0]), "127.0.0.1");
	o->listen_port[ISO8583_FRAMING_BINARY] = 8583;
	o->listen_enabled[ISO8583_FRAMING_BINARY] = true;
	o->connections_max = 1024;
	o->pipeline_max = 64;
	o->timeout_ms = 250;
	o->retries = 8;
	o->default_currency = 978;
}

int gateway_main(int argc, char **argv)
{
	struct gateway_options options;
	options_default(&options);
	optind = 1;
	int option;
	while ((option = getopt_long(argc, argv, "h", gateway_long_options, NULL)) != -1) {
		if (option == 'h') {
			fputs(gateway_help, stdout);
			return 0;
		}
		if (parse_option(option, &options) != 0)
			return 2;
	}
	if (optind < argc || options.directory_path[0] == '\0' ||
	    (!options.listen_enabled[0] && !options.listen_enabled[1])) {
		fprintf(stderr, "payswitch gateway: --directory and one listener are needed\n%s",
			gateway_help);
		return 2;
	}
	if ((uint64_t)options.connections_max * options.pipeline_max > (1u << 22)) {
		fprintf(stderr, "payswitch gateway: --connections x --pipeline above 4M\n");
		return 2;
	}
	char error[1024];
	struct gateway *g = gateway_create(&options, error, sizeof(error));
	if (g == NULL) {
		engine_log("error", "gateway: %s", error);
		return 1;
	}
	int status = gateway_signals(g);
	if (status != 0) {
		engine_log("error", "gateway: signals: %s", strerror(-status));
		gateway_destroy(g);
		return 1;
	}
	engine_log("info", "gateway serving: iso8583 binary %s:%u%s, ascii %s:%u%s, switch "
		   "%s:%u, directory %s (%llu pan, %llu merchant, %llu terminal)",
		   g->options.listen_host[0], g->options.listen_port[0],
		   g->options.listen_enabled[0] ? "" : " (off)", g->options.listen_host[1],
		   g->options.listen_port[1], g->options.listen_enabled[1] ? "" : " (off)",
		   g->options.switch_host, g->options.switch_port, g->options.directory_path,
		   (unsigned long long)directory_count(g->directory, DIRECTORY_PAN),
		   (unsigned long long)directory_count(g->directory, DIRECTORY_MERCHANT),
		   (unsigned long long)directory_count(g->directory, DIRECTORY_TERMINAL));
	status = gateway_run(g);
	gateway_destroy(g);
	return status;
}
