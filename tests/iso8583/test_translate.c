/*
 * test_translate.c — the pure half of the gateway (netio/iso_gateway.h):
 * every message flow of netio/ISO8583.md translated into its ledger request,
 * the response-code table row by row, field 7, response packing, and the
 * listeners' source allow-lists (tcp_allow_parse / tcp_allow_match).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <xxhash.h>

#include "iso_gateway.h"
#include "netio.h"

#define CARD 2u
#define MERCHANT 3u
#define TERMINAL_ACCOUNT 4u
#define ACCOUNT_102 6u
#define CARD_PAN "4000000000000002"

/* A fixed now: 2026-03-15 12:00:00 UTC. */
#define NOW_S 1773576000ull
#define NOW_US (NOW_S * 1000000ull)
#define FIELD7 "0315115959"  /* one second before now */

static bool find(const void *context, enum iso_gateway_key_kind kind, const uint8_t *key,
		 size_t length, uint64_t *account)
{
	(void)context;
	while (length > 0 && key[length - 1] == ' ')
		length--;
	struct { enum iso_gateway_key_kind kind; const char *key; uint64_t account; } rows[] = {
		{ ISO_GATEWAY_KEY_PAN, CARD_PAN, CARD },
		{ ISO_GATEWAY_KEY_PAN, "ACC102", ACCOUNT_102 },
		{ ISO_GATEWAY_KEY_MERCHANT, "MERCHANT0000001", MERCHANT },
		{ ISO_GATEWAY_KEY_TERMINAL, "TERM0002", TERMINAL_ACCOUNT },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (rows[i].kind == kind && strlen(rows[i].key) == length &&
		    memcmp(rows[i].key, key, length) == 0) {
			*account = rows[i].account;
			return true;
		}
	return false;
}

static const struct iso_gateway_directory directory = { .find = find, .context = NULL };

static void card_message(struct iso8583_message *m, const char *mti, const char *code,
			 const char *amount, const char *stan)
{
	iso8583_message_init(m, mti);
	iso8583_set_string(m, 2, CARD_PAN);
	iso8583_set_string(m, 3, code);
	iso8583_set_string(m, 4, amount);
	iso8583_set_string(m, 7, FIELD7);
	iso8583_set_string(m, 11, stan);
	iso8583_set_string(m, 41, "TERM0001");
	iso8583_set_string(m, 42, "MERCHANT0000001");
	iso8583_set_string(m, 49, "978");
}

static void translate(const struct iso8583_message *m, struct iso_gateway_translation *t)
{
	iso_gateway_translate(m, &directory, 978, NOW_US, t);
}

/* The id formula of netio/ISO8583.md: xxh3("K1|class|41|11|7|"), never 0. */
static uint64_t key1_id(const char *class_name, const char *terminal, const char *stan,
			const char *f7)
{
	char key[128];
	int length = snprintf(key, sizeof(key), "K1|%s|%s|%s|%s|", class_name, terminal, stan, f7);
	uint64_t id = XXH3_64bits(key, (size_t)length);
	return id == 0 ? 1 : id;
}

static uint64_t reversal_id(uint64_t original)
{
	uint8_t key[32];
	memcpy(key, "REV|", 4);
	memcpy(key + 4, &original, 8);
	key[12] = '|';
	uint64_t id = XXH3_64bits(key, 13);
	return id == 0 ? 1 : id;
}

Test(translate, authorization_is_a_hold)
{
	struct iso8583_message m;
	card_message(&m, "0100", "000000", "000000001000", "000001");
	struct iso_gateway_translation t;
	translate(&m, &t);
	cr_assert_null(t.code);
	cr_assert_eq(t.operation, ISO_GATEWAY_OP_AUTHORIZE);
	cr_assert_eq(t.request.kind, LEDGER_KIND_HOLD);
	cr_assert_eq(t.request.account_id, CARD);
	cr_assert_eq(t.request.other_id, MERCHANT);
	cr_assert_eq(t.request.amount, 1000);
	cr_assert_eq(t.request.currency, 978);
	cr_assert_eq(t.request.timestamp_us, NOW_US - 1000000u);
	cr_assert_eq(t.request.id, key1_id("01", "TERM0001", "000001", FIELD7));
	/* 0101 (a repeat) is the same request, byte for byte. */
	struct iso8583_message repeat;
	card_message(&repeat, "0101", "000000", "000000001000", "000001");
	struct iso_gateway_translation again;
	translate(&repeat, &again);
	cr_assert(memcmp(&t.request, &again.request, sizeof(t.request)) == 0);
}

Test(translate, purchase_is_a_pay)
{
	struct iso8583_message m;
	card_message(&m, "0200", "000000", "000000002500", "000002");
	struct iso_gateway_translation t;
	translate(&m, &t);
	cr_assert_null(t.code);
	cr_assert_eq(t.operation, ISO_GATEWAY_OP_PURCHASE);
	cr_assert_eq(t.request.kind, LEDGER_KIND_PAY);
	cr_assert_eq(t.request.account_id, CARD);
	cr_assert_eq(t.request.other_id, MERCHANT);
	cr_assert_eq(t.request.amount, 2500);
	cr_assert_eq(t.request.id, key1_id("02", "TERM0001", "000002", FIELD7));
}

Test(translate, refund_with_and_without_original)
{
	struct iso8583_message m;
	card_message(&m, "0200", "200000", "000000000500", "000003");
	struct iso_gateway_translation t;
	translate(&m, &t);
	cr_assert_null(t.code);
	cr_assert_eq(t.operation, ISO_GATEWAY_OP_REFUND);
	cr_assert_eq(t.request.kind, LEDGER_KIND_PAY, "a credit voucher: PAY merchant -> card");
	cr_assert_eq(t.request.account_id, MERCHANT);
	cr_assert_eq(t.request.other_id, CARD);
	char f90[43];
	snprintf(f90, sizeof(f90), "0200000002%s0000000000000000000000", FIELD7);
	iso8583_set_string(&m, 90, f90);
	translate(&m, &t);
	cr_assert_null(t.code);
	cr_assert_eq(t.request.kind, LEDGER_KIND_REFUND);
	cr_assert_eq(t.request.account_id, MERCHANT);
	cr_assert_eq(t.request.other_id, CARD);
	cr_assert_eq(t.request.reference_id, key1_id("02", "TERM0001", "000002", FIELD7));
}

Test(translate, balance_inquiry)
{
	struct iso8583_message m;
	iso8583_message_init(&m, "0100");
	iso8583_set_string(&m, 2, CARD_PAN);
	iso8583_set_string(&m, 3, "310000");
	iso8583_set_string(&m, 7, FIELD7);
	iso8583_set_string(&m, 11, "000004");
	iso8583_set_string(&m, 41, "TERM0001");
	struct iso_gateway_translation t;
	iso_gateway_translate(&m, &directory, 840, NOW_US, &t);
	cr_assert_null(t.code);
	cr_assert_eq(t.operation, ISO_GATEWAY_OP_BALANCE);
	cr_assert_eq(t.request.kind, LEDGER_KIND_BALANCE);
	cr_assert_eq(t.request.account_id, CARD);
	cr_assert_eq(t.request.currency, 840, "the default currency without field 49");
	iso8583_set_string(&m, 49, "978");
	iso_gateway_translate(&m, &directory, 840, NOW_US, &t);
	cr_assert_eq(t.request.currency, 978);
}

Test(translate, capture_of_an_authorization)
{
	struct iso8583_message m;
	card_message(&m, "0220", "000000", "000000000800", "000005");
	char f90[43];
	snprintf(f90, sizeof(f90), "0100000001%s0000000000000000000000", FIELD7);
	iso8583_set_string(&m, 90, f90);
	struct iso_gateway_translation t;
	translate(&m, &t);
	cr_assert_null(t.code);
	cr_assert_eq(t.operation, ISO_GATEWAY_OP_CAPTURE);
	cr_assert_eq(t.request.kind, LEDGER_KIND_CAPTURE);
	cr_assert_eq(t.request.account_id, CARD);
	cr_assert_eq(t.request.amount, 800);
	cr_assert_eq(t.request.reference_id, key1_id("01", "TERM0001", "000001", FIELD7));
	cr_assert_eq(t.request.id, key1_id("22", "TERM0001", "000005", FIELD7));
	/* A 0220 naming a 0200 is not a capture. */
	snprintf(f90, sizeof(f90), "0200000001%s0000000000000000000000", FIELD7);
	iso8583_set_string(&m, 90, f90);
	translate(&m, &t);
	cr_assert_str_eq(t.code, "12");
}

Test(translate, reversals_of_one_original_are_one_request)
{
	char f90[43];
	snprintf(f90, sizeof(f90), "0100000001%s0000000000000000000000", FIELD7);
	const char *mtis[] = { "0400", "0401", "0420", "0421" };
	const char *stans[] = { "000010", "000011", "000012", "000013" };
	struct iso_gateway_translation first;
	for (int i = 0; i < 4; i++) {
		struct iso8583_message m;
		card_message(&m, mtis[i], "000000", "000000001000", stans[i]);
		iso8583_set_string(&m, 90, f90);
		struct iso_gateway_translation t;
		translate(&m, &t);
		cr_assert_null(t.code, "%s", mtis[i]);
		cr_assert_eq(t.operation, ISO_GATEWAY_OP_REVERSE_HOLD);
		cr_assert_eq(t.request.kind, LEDGER_KIND_VOID);
		cr_assert_eq(t.request.account_id, CARD);
		cr_assert_eq(t.request.amount, 0);
		uint64_t original = key1_id("01", "TERM0001", "000001", FIELD7);
		cr_assert_eq(t.request.reference_id, original);
		cr_assert_eq(t.request.id, reversal_id(original));
		if (i == 0)
			first = t;
		cr_assert(memcmp(&first.request, &t.request, sizeof(t.request)) == 0, "%s", mtis[i]);
	}
	/* Of a purchase: a REFUND merchant -> card of field 4. */
	snprintf(f90, sizeof(f90), "0200000002%s0000000000000000000000", FIELD7);
	struct iso8583_message m;
	card_message(&m, "0400", "000000", "000000000300", "000014");
	iso8583_set_string(&m, 90, f90);
	struct iso_gateway_translation t;
	translate(&m, &t);
	cr_assert_null(t.code);
	cr_assert_eq(t.operation, ISO_GATEWAY_OP_REVERSE_PAY);
	cr_assert_eq(t.request.kind, LEDGER_KIND_REFUND);
	cr_assert_eq(t.request.account_id, MERCHANT);
	cr_assert_eq(t.request.other_id, CARD);
	cr_assert_eq(t.request.amount, 300);
}

Test(translate, network_management_and_refusals)
{
	struct iso8583_message m;
	iso8583_message_init(&m, "0800");
	iso8583_set_string(&m, 70, "301");
	struct iso_gateway_translation t;
	translate(&m, &t);
	cr_assert_eq(t.operation, ISO_GATEWAY_OP_NETWORK);
	cr_assert_str_eq(t.code, "00");
	iso8583_message_init(&m, "0800");
	translate(&m, &t);
	cr_assert_str_eq(t.code, "30", "0800 without 70");

	card_message(&m, "0100", "000000", "000000001000", "000020");
	iso8583_set_string(&m, 2, "4999999999999999");
	translate(&m, &t);
	cr_assert_str_eq(t.code, "14", "unknown PAN");
	card_message(&m, "0100", "000000", "000000001000", "000021");
	iso8583_set_string(&m, 42, "NOBODY");
	translate(&m, &t);
	cr_assert_str_eq(t.code, "03", "unknown merchant");
	card_message(&m, "0200", "010000", "000000001000", "000022");
	translate(&m, &t);
	cr_assert_str_eq(t.code, "12", "unsupported processing code");
	card_message(&m, "0100", "000000", "000000001000", "000023");
	iso8583_set_string(&m, 7, "1332000000");
	translate(&m, &t);
	cr_assert_str_eq(t.code, "30", "field 7 not a date");
	card_message(&m, "0300", "000000", "000000001000", "000024");
	translate(&m, &t);
	cr_assert_str_eq(t.code, "30", "an MTI the gateway does not speak");
	card_message(&m, "0200", "000000", "000000001000", "000025");
	iso8583_set_string(&m, 49, "000");
	translate(&m, &t);
	cr_assert_str_eq(t.code, "30", "currency 0");
	/* Payee by terminal (41) when 42 is absent; payer by 102 when 2 is. */
	iso8583_message_init(&m, "0200");
	iso8583_set_string(&m, 102, "ACC102");
	iso8583_set_string(&m, 3, "000000");
	iso8583_set_string(&m, 4, "000000000100");
	iso8583_set_string(&m, 7, FIELD7);
	iso8583_set_string(&m, 11, "000026");
	iso8583_set_string(&m, 41, "TERM0002");
	iso8583_set_string(&m, 49, "978");
	translate(&m, &t);
	cr_assert_null(t.code);
	cr_assert_eq(t.request.account_id, ACCOUNT_102);
	cr_assert_eq(t.request.other_id, TERMINAL_ACCOUNT);
	/* Neither (41, 11) nor 37: no idempotency key. */
	iso8583_message_init(&m, "0200");
	iso8583_set_string(&m, 7, FIELD7);
	translate(&m, &t);
	cr_assert_str_eq(t.code, "30");
}

Test(translate, response_code_table)
{
	struct { unsigned code; const char *field39; } rows[] = {
		{ LEDGER_OK, "00" }, { LEDGER_INSUFFICIENT_FUNDS, "51" },
		{ LEDGER_EXCEEDS_PAYMENT_LIMIT, "61" }, { LEDGER_EXCEEDS_DAILY_LIMIT, "61" },
		{ LEDGER_PAYER_NOT_FOUND, "14" }, { LEDGER_PAYEE_NOT_FOUND, "03" },
		{ LEDGER_PAYER_FROZEN, "62" }, { LEDGER_PAYER_CLOSED, "57" },
		{ LEDGER_PAYEE_FROZEN, "58" }, { LEDGER_PAYEE_CLOSED, "58" },
		{ LEDGER_ID_REUSED, "94" }, { LEDGER_AMOUNT_ZERO, "13" },
		{ LEDGER_AMOUNT_OVERFLOW, "13" }, { LEDGER_CAPTURE_EXCEEDS_HOLD, "13" },
		{ LEDGER_REFUND_EXCEEDS_PAYMENT, "13" }, { LEDGER_HOLD_NOT_FOUND, "25" },
		{ LEDGER_TRANSFER_NOT_FOUND, "25" }, { LEDGER_CURRENCY_MISMATCH, "12" },
		{ LEDGER_SAME_ACCOUNT, "12" }, { LEDGER_TOO_OLD, "12" },
		{ LEDGER_TIMESTAMP_IN_FUTURE, "12" }, { LEDGER_HOLD_EXPIRED, "12" },
		{ LEDGER_HOLD_ALREADY_CAPTURED, "12" }, { LEDGER_HOLD_ALREADY_VOIDED, "12" },
		{ LEDGER_NOT_REFUNDABLE, "12" }, { LEDGER_ACCOUNT_EXISTS, "12" },
		{ LEDGER_ACCOUNT_NOT_EMPTY, "12" }, { LEDGER_NOT_FUNDING, "12" },
		{ LEDGER_INVALID_REQUEST, "12" }, { LEDGER_INVALID_LIMITS, "12" },
		{ LEDGER_FORMAT_ERROR, "30" }, { LEDGER_BUSY, "91" }, { LEDGER_UNAVAILABLE, "91" },
		{ NETIO_CODE_NO_ANSWER, "91" }, { LEDGER_CAPACITY_FULL, "96" },
		{ LEDGER_WRONG_VERSION, "96" }, { 60000u, "96" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		cr_assert_str_eq(iso_gateway_response_code(rows[i].code), rows[i].field39,
				 "ledger code %u", rows[i].code);
}

Test(translate, field7_year_nearest_now)
{
	uint64_t t = 0;
	cr_assert(iso_gateway_field7_time((const uint8_t *)"0315120000", NOW_US, &t));
	cr_assert_eq(t, NOW_US);
	/* 31 December seen on 1 January 00:00:10 belongs to the year before. */
	uint64_t new_year_us = 1767225610ull * 1000000ull; /* 2026-01-01T00:00:10Z */
	cr_assert(iso_gateway_field7_time((const uint8_t *)"1231235959", new_year_us, &t));
	cr_assert_eq(t, new_year_us - 11000000ull);
	cr_assert_not(iso_gateway_field7_time((const uint8_t *)"0431120000", NOW_US, &t));
	cr_assert_not(iso_gateway_field7_time((const uint8_t *)"0229120000", NOW_US, &t),
		      "2026 is a common year");
	cr_assert_not(iso_gateway_field7_time((const uint8_t *)"03151200x0", NOW_US, &t));
}

Test(translate, response_packing)
{
	struct iso8583_message m;
	card_message(&m, "0200", "000000", "000000002500", "000002");
	struct iso_gateway_echo echo;
	iso_gateway_echo_capture(&m, "0210", ISO8583_FRAMING_BINARY, ISO_GATEWAY_OP_PURCHASE,
				 &echo);
	struct ledger_result result = { .id = 123456789012345ull, .code = LEDGER_OK };
	uint8_t out[ISO_GATEWAY_RESPONSE_BYTES_MAX];
	int size = iso_gateway_response_pack(&echo, "00", &result, 978, result.id, out,
					     sizeof(out));
	cr_assert_gt(size, 2);
	struct iso8583_message answer;
	cr_assert_eq(iso8583_unpack(ISO8583_FRAMING_BINARY, out + 2, (size_t)size - 2, &answer,
				    NULL), ISO8583_OK);
	cr_assert(memcmp(answer.mti, "0210", 4) == 0);
	const unsigned echoed[] = { 2, 3, 4, 7, 11, 41, 42, 49 };
	for (size_t i = 0; i < sizeof(echoed) / sizeof(echoed[0]); i++) {
		unsigned f = echoed[i];
		cr_assert_eq(answer.length[f], m.length[f], "field %u", f);
		cr_assert(memcmp(answer.value[f], m.value[f], m.length[f]) == 0, "field %u", f);
	}
	cr_assert(iso8583_has(&answer, 37) && memcmp(answer.value[37], "789012345", 9) != 0);
	cr_assert(memcmp(answer.value[37], "456789012345", 12) == 0, "37: id mod 10^12");
	cr_assert(memcmp(answer.value[38], "012345", 6) == 0, "38: id mod 10^6");
	cr_assert(memcmp(answer.value[39], "00", 2) == 0);
	cr_assert_not(iso8583_has(&answer, 54));
	/* A refusal by the gateway itself: no 38. */
	size = iso_gateway_response_pack(&echo, "14", NULL, 0, result.id, out, sizeof(out));
	cr_assert_eq(iso8583_unpack(ISO8583_FRAMING_BINARY, out + 2, (size_t)size - 2, &answer,
				    NULL), ISO8583_OK);
	cr_assert_not(iso8583_has(&answer, 38));
	cr_assert(memcmp(answer.value[39], "14", 2) == 0);
	/* A balance inquiry in ASCII framing: 54 = 00 02 CCC C/D 12 digits. */
	iso8583_set_string(&m, 3, "310000");
	iso_gateway_echo_capture(&m, "0210", ISO8583_FRAMING_ASCII, ISO_GATEWAY_OP_BALANCE, &echo);
	result.balance = -4200;
	size = iso_gateway_response_pack(&echo, "00", &result, 978, result.id, out, sizeof(out));
	cr_assert_eq(iso8583_unpack(ISO8583_FRAMING_ASCII, out + 4, (size_t)size - 4, &answer,
				    NULL), ISO8583_OK);
	cr_assert_eq(answer.length[54], 20);
	cr_assert(memcmp(answer.value[54], "0002978D000000004200", 20) == 0);
	/* A format error (operation NONE) gets no 37 or 38. */
	iso_gateway_echo_capture(&m, "0210", ISO8583_FRAMING_BINARY, ISO_GATEWAY_OP_NONE, &echo);
	size = iso_gateway_response_pack(&echo, "30", NULL, 0, 0, out, sizeof(out));
	cr_assert_eq(iso8583_unpack(ISO8583_FRAMING_BINARY, out + 2, (size_t)size - 2, &answer,
				    NULL), ISO8583_OK);
	cr_assert_not(iso8583_has(&answer, 37));
	cr_assert_not(iso8583_has(&answer, 38));
}

static bool allowed(const struct tcp_allow *allow, const char *address)
{
	struct sockaddr_storage storage = { 0 };
	if (strchr(address, ':') != NULL) {
		struct sockaddr_in6 *six = (struct sockaddr_in6 *)&storage;
		six->sin6_family = AF_INET6;
		cr_assert_eq(inet_pton(AF_INET6, address, &six->sin6_addr), 1);
	} else {
		struct sockaddr_in *four = (struct sockaddr_in *)&storage;
		four->sin_family = AF_INET;
		cr_assert_eq(inet_pton(AF_INET, address, &four->sin_addr), 1);
	}
	return tcp_allow_match(allow, (struct sockaddr *)&storage);
}

Test(allow, cidr_lists_ipv4_and_ipv6)
{
	struct tcp_allow allow;
	char error[256];
	cr_assert_eq(tcp_allow_parse("10.0.0.0/8, 192.168.1.7,2001:db8::/32 fe80::/10", &allow,
				     error, sizeof(error)), 0, "%s", error);
	cr_assert_eq(allow.count, 4);
	cr_assert(allowed(&allow, "10.255.0.1"));
	cr_assert_not(allowed(&allow, "11.0.0.1"));
	cr_assert(allowed(&allow, "192.168.1.7"));
	cr_assert_not(allowed(&allow, "192.168.1.8"));
	cr_assert(allowed(&allow, "2001:db8:ffff::1"));
	cr_assert_not(allowed(&allow, "2001:db9::1"));
	cr_assert(allowed(&allow, "febf::1"));
	cr_assert_not(allowed(&allow, "fec0::1"));
	cr_assert(allowed(&allow, "::ffff:10.1.2.3"), "IPv4-mapped matches IPv4 networks");
	cr_assert_not(allowed(&allow, "::ffff:127.0.0.1"));
	cr_assert_eq(tcp_allow_parse("0.0.0.0/0", &allow, error, sizeof(error)), 0);
	cr_assert(allowed(&allow, "127.0.0.1"));
	cr_assert_not(allowed(&allow, "::1"), "0.0.0.0/0 is IPv4 only");
	cr_assert(tcp_allow_match(NULL, NULL), "no list: everyone");
	cr_assert_neq(tcp_allow_parse("10.0.0.0/33", &allow, error, sizeof(error)), 0);
	cr_assert_neq(tcp_allow_parse("10.0.0/8", &allow, error, sizeof(error)), 0);
	cr_assert_neq(tcp_allow_parse("::/129", &allow, error, sizeof(error)), 0);
	cr_assert_neq(tcp_allow_parse("10.0.0.0/", &allow, error, sizeof(error)), 0);
	cr_assert_neq(tcp_allow_parse("", &allow, error, sizeof(error)), 0);
}
