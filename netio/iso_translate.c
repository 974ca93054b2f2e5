/*
 * iso_translate.c — the pure half of the ISO 8583 gateway: the response-code
 * table, field 7, ISO → ledger translation and response packing
 * (iso_gateway.h; moved from engine/gateway.c).
 */
#include "iso_gateway.h"

#include <assert.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "netio.h"

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

const char *iso_gateway_response_code(unsigned ledger_code)
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

bool iso_gateway_field7_time(const uint8_t field7[10], uint64_t now_us, uint64_t *timestamp_us)
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
	if (!iso_gateway_field7_time(f90 + 10, now_us, &original->timestamp_us))
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

static const char *card_account(const struct iso8583_message *m,
				const struct iso_gateway_directory *d,
				uint64_t *account)
{
	unsigned field = iso8583_has(m, 2) ? 2 : iso8583_has(m, 102) ? 102 : 0;
	if (field == 0)
		return "30";
	if (!d->find(d->context, ISO_GATEWAY_KEY_PAN, m->value[field], m->length[field], account))
		return "14";
	return NULL;
}

static const char *merchant_account(const struct iso8583_message *m,
				    const struct iso_gateway_directory *d,
				    uint64_t *account)
{
	if (iso8583_has(m, 42))
		return d->find(d->context, ISO_GATEWAY_KEY_MERCHANT, m->value[42], m->length[42], account)
			       ? NULL : "03";
	if (iso8583_has(m, 41))
		return d->find(d->context, ISO_GATEWAY_KEY_TERMINAL, m->value[41], m->length[41], account)
			       ? NULL : "03";
	if (iso8583_has(m, 103))
		return d->find(d->context, ISO_GATEWAY_KEY_PAN, m->value[103], m->length[103], account)
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
static const char *translate_card(const struct iso8583_message *m,
				  const struct iso_gateway_directory *d,
				  uint16_t default_currency, uint64_t now_us,
				  struct iso_gateway_translation *t)
{
	struct ledger_request *r = &t->request;
	if (!iso8583_has(m, 3))
		return "30";
	const uint8_t *code = m->value[3];
	bool financial = m->mti[1] == '2';
	const char *error = card_account(m, d, &r->account_id);
	if (code[0] == '3' && code[1] == '1') {
		t->operation = ISO_GATEWAY_OP_BALANCE;
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
		t->operation = financial ? ISO_GATEWAY_OP_PURCHASE : ISO_GATEWAY_OP_AUTHORIZE;
		r->kind = financial ? LEDGER_KIND_PAY : LEDGER_KIND_HOLD;
		r->other_id = merchant;
		return NULL;
	}
	/* A refund debits the merchant and credits the card: of a payment named
	 * by field 90 (REFUND), or without one as a plain PAY (credit voucher). */
	t->operation = ISO_GATEWAY_OP_REFUND;
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
static const char *translate_advice(const struct iso8583_message *m,
				    const struct iso_gateway_directory *d,
				    uint64_t now_us, struct iso_gateway_translation *t)
{
	struct ledger_request *r = &t->request;
	t->operation = ISO_GATEWAY_OP_CAPTURE;
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
static const char *translate_reversal(const struct iso8583_message *m,
				      const struct iso_gateway_directory *d,
				      uint64_t now_us, struct iso_gateway_translation *t)
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
		t->operation = ISO_GATEWAY_OP_REVERSE_HOLD;
		r->kind = LEDGER_KIND_VOID;
		r->account_id = card;
		r->amount = 0;
	} else if (memcmp(original.class_name, "02", 2) == 0) {
		t->operation = ISO_GATEWAY_OP_REVERSE_PAY;
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

void iso_gateway_translate(const struct iso8583_message *m,
			   const struct iso_gateway_directory *d,
			   uint16_t default_currency, uint64_t now_us,
			   struct iso_gateway_translation *t)
{
	memset(t, 0, sizeof(*t));
	char class_name[2];
	if (m->mti[0] == '0' && m->mti[1] == '8' && m->mti[2] == '0') {
		t->operation = ISO_GATEWAY_OP_NETWORK;
		t->code = iso8583_has(m, 70) ? "00" : "30";
		return;
	}
	if (!mti_class(m->mti, class_name) || (m->mti[3] != '0' && m->mti[3] != '1')) {
		t->code = "30"; /* an MTI this gateway does not speak */
		return;
	}
	if (!iso8583_has(m, 7) || !iso_gateway_field7_time(m->value[7], now_us,
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

void iso_gateway_echo_capture(const struct iso8583_message *m, const char response_mti[4],
			      uint8_t framing, uint8_t operation, struct iso_gateway_echo *echo)
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
		assert(echo->used + 2u + m->length[field] <= ISO_GATEWAY_ECHO_BYTES_MAX);
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
int iso_gateway_response_pack(const struct iso_gateway_echo *echo, const char *code,
			      const struct ledger_result *result, uint16_t currency, uint64_t id,
			      uint8_t *out, size_t capacity)
{
	struct iso8583_message m;
	iso8583_message_init(&m, echo->mti);
	for (uint16_t at = 0; at < echo->used; at = (uint16_t)(at + 2u + echo->bytes[at + 1]))
		iso8583_set(&m, echo->bytes[at], echo->bytes + at + 2, echo->bytes[at + 1]);
	char rrn[12], authorization[6], balance[20];
	bool money = echo->operation != ISO_GATEWAY_OP_NONE && echo->operation != ISO_GATEWAY_OP_NETWORK;
	if (money && !iso8583_has(&m, 37) && id != 0) {
		iso8583_format_u64(id % 1000000000000ull, 12, rrn);
		iso8583_set(&m, 37, rrn, 12);
	}
	if (money && result != NULL && code[0] == '0' && code[1] == '0') {
		iso8583_format_u64(id % 1000000u, 6, authorization);
		iso8583_set(&m, 38, authorization, 6);
	}
	iso8583_set(&m, 39, code, 2);
	if (echo->operation == ISO_GATEWAY_OP_BALANCE && result != NULL && result->code == LEDGER_OK) {
		balance_field(result->balance, currency, balance);
		iso8583_set(&m, 54, balance, 20);
	}
	/* Echoed fields passed unpack's checks, so pack cannot refuse them. */
	return iso8583_pack((enum iso8583_framing)echo->framing, &m, out, capacity, NULL);
}

