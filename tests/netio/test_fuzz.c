/*
 * test_fuzz.c — a million hostile buffers: netio_decode never crashes, never
 * reads past the length (ASan watches), and always agrees with an
 * independent, deliberately naive reading of PROTOCOL.md.
 */
#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netio.h"

#define ITERATIONS 1000000u

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
	/* xorshift64*: deterministic, so a failure replays exactly. */
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 0x2545f4914f6cdd1dull;
}

static uint64_t read_u(const uint8_t *bytes, size_t offset, size_t size)
{
	uint64_t value = 0;
	for (size_t i = 0; i < size; i++)
		value |= (uint64_t)bytes[offset + i] << (8 * i);
	return value;
}

/* The oracle: PROTOCOL.md's rules in order, byte by byte, little-endian. */
static enum netio_reject oracle(const uint8_t *bytes, size_t length)
{
	if (length < 48)
		return NETIO_REJECT_SHORT;
	if (read_u(bytes, 0, 4) != 0x4e575350u)
		return NETIO_REJECT_MAGIC;
	if (length > 8240)
		return NETIO_REJECT_OVERSIZED;
	if (read_u(bytes, 4, 2) != 2)
		return NETIO_REJECT_VERSION;
	uint64_t type = bytes[6];
	if (type < 1 || type > 3)
		return NETIO_REJECT_TYPE;
	if (bytes[7] != 0 || read_u(bytes, 10, 2) != 0)
		return NETIO_REJECT_RESERVED;
	uint64_t count = read_u(bytes, 8, 2);
	if (count == 0)
		return NETIO_REJECT_COUNT_ZERO;
	if (count > (type == 3 ? 1u : 128u))
		return NETIO_REJECT_COUNT_MAX;
	if (length != 48 + count * (type == 1 ? 64u : 40u))
		return NETIO_REJECT_LENGTH;
	return NETIO_REJECT_NONE;
}

/* PROTOCOL.md's request rules, byte by byte, for one 64-byte record. */
static uint16_t request_oracle(const uint8_t *record)
{
	uint64_t kind = record[58];
	bool moves_money = kind == 2 || kind == 3 || kind == 4 || kind == 5 || kind == 7;
	if (read_u(record, 0, 8) == 0 || kind < 1 || kind > 12 || read_u(record, 56, 2) == 0)
		return LEDGER_FORMAT_ERROR;
	if (moves_money && read_u(record, 32, 8) > (uint64_t)INT64_MAX)
		return LEDGER_FORMAT_ERROR;
	if (read_u(record, 60, 4) != 0)
		return LEDGER_FORMAT_ERROR;
	return LEDGER_OK;
}

/* A request record that passes the rules, or misses one of them. */
static void plausible_request(uint8_t *record)
{
	for (size_t i = 0; i < 64; i += 8) {
		uint64_t word = next_random();
		memcpy(record + i, &word, 8);
	}
	if (next_random() % 4 == 0)
		return; /* random bytes: almost surely malformed */
	record[58] = (uint8_t)(next_random() % 15);   /* 0, 1..12, 13/14 internal */
	memset(record + 60, 0, 4);
	if (next_random() % 2)
		record[39] &= 0x7f;                    /* amount within int64 */
	if (next_random() % 16 == 0)
		memset(record, 0, 8);                  /* id 0 */
	if (next_random() % 16 == 0)
		memset(record + 56, 0, 2);             /* currency 0 */
}

/* Fills the buffer with a datagram that is valid, or nearly. */
static size_t plausible(uint8_t *bytes)
{
	uint32_t type = 1 + (uint32_t)(next_random() % 3);
	uint32_t count = type == 3 ? 1 : 1 + (uint32_t)(next_random() % NETIO_BATCH_MAX);
	struct netio_header header;
	netio_header_init(&header, (enum netio_type)type, count, next_random(), next_random());
	memcpy(bytes, &header, sizeof(header));
	size_t length = NETIO_HEADER_SIZE + count * (type == 1 ? 64u : 40u);
	if (type == 1)
		for (uint32_t i = 0; i < count; i++)
			plausible_request(bytes + NETIO_HEADER_SIZE + (size_t)i * 64);
	for (uint32_t flips = (uint32_t)(next_random() % 4); flips > 0; flips--)
		bytes[next_random() % NETIO_HEADER_SIZE] ^= (uint8_t)(1u << (next_random() % 8));
	switch (next_random() % 4) {
	case 0: length += next_random() % 3; break;
	case 1: length -= next_random() % 3; break;
	default: break;
	}
	return length;
}

struct tally {
	uint64_t valid;             /* datagrams accepted */
	uint64_t requests_ok;       /* request records the rules accept */
	uint64_t requests_refused;  /* ... and refuse */
	uint64_t silent;            /* refused datagrams rightly not answered */
};

/* Every request record of an accepted REQUEST datagram against the oracle. */
static void check_requests(const uint8_t *bytes, const struct netio_view *view, struct tally *tally)
{
	if (view->header.type != NETIO_TYPE_REQUEST)
		return;
	cr_assert_not_null(view->requests);
	for (uint32_t i = 0; i < view->count; i++) {
		uint16_t check = netio_request_check(&view->requests[i]);
		uint16_t expected = request_oracle(bytes + NETIO_HEADER_SIZE + (size_t)i * 64);
		cr_assert_eq(check, expected, "request %u: got %u, oracle %u", i, check, expected);
		tally->requests_ok += check == LEDGER_OK;
		tally->requests_refused += check != LEDGER_OK;
	}
}

/* A refused datagram is answered by one ERROR unless its magic matched and
 * it is itself a REPLY or ERROR; the answer echoes client id and sequence. */
static void check_refusal(const uint8_t *bytes, size_t length, const struct netio_view *view,
			  uint16_t code, struct tally *tally)
{
	bool magic = length >= 48 && read_u(bytes, 0, 4) == 0x4e575350u;
	bool silent = magic && (bytes[6] == 2 || bytes[6] == 3);
	alignas(8) uint8_t answer[NETIO_ERROR_SIZE];
	size_t size = netio_encode_refusal(view, code, answer, sizeof(answer));
	cr_assert_eq(size, silent ? 0u : (size_t)NETIO_ERROR_SIZE, "length %zu", length);
	if (silent) {
		tally->silent++;
		return;
	}
	cr_assert_eq(read_u(answer, 0, 4), 0x4e575350u);
	cr_assert_eq(answer[6], 3, "an ERROR datagram");
	cr_assert_eq(read_u(answer, 16, 8), magic ? read_u(bytes, 16, 8) : 0, "client id echoed");
	cr_assert_eq(read_u(answer, 24, 8), magic ? read_u(bytes, 24, 8) : 0, "sequence echoed");
	cr_assert_eq(read_u(answer, 48 + 32, 2), code, "the result carries the code");
}

static void check_one(const uint8_t *bytes, size_t length, struct tally *tally)
{
	struct netio_view view;
	uint16_t code = netio_decode(bytes, length, &view);
	enum netio_reject expected = oracle(bytes, length);
	cr_assert_eq(view.reject, expected, "length %zu: got %s, oracle %s", length,
		     netio_reject_name(view.reject), netio_reject_name(expected));
	if (expected == NETIO_REJECT_NONE) {
		cr_assert_eq(code, LEDGER_OK);
		cr_assert(view.count >= 1 && view.count <= NETIO_BATCH_MAX);
		tally->valid++;
		check_requests(bytes, &view, tally);
		return;
	}
	cr_assert_eq(code, expected == NETIO_REJECT_VERSION ? LEDGER_WRONG_VERSION
							    : LEDGER_FORMAT_ERROR);
	check_refusal(bytes, length, &view, code, tally);
}

Test(fuzz, million_buffers, .timeout = 120)
{
	/* The length is the only bound: decode must not look past it, so each
	 * buffer is a fresh heap block of exactly `length` bytes (ASan's
	 * redzone sits right behind it). */
	alignas(64) static uint8_t scratch[NETIO_RX_BUFFER_BYTES];
	for (size_t i = 0; i < sizeof(scratch); i++)
		scratch[i] = (uint8_t)next_random();
	struct tally tally = { 0 };
	for (uint32_t iteration = 0; iteration < ITERATIONS; iteration++) {
		size_t length;
		switch (iteration % 4) {
		case 0: /* random bytes, random length */
			length = next_random() % (NETIO_RX_BUFFER_BYTES + 1);
			for (size_t i = 0; i < 64 && i < length; i++)
				scratch[i] = (uint8_t)next_random();
			break;
		case 1: /* right magic, the rest random */
			length = next_random() % (NETIO_RX_BUFFER_BYTES + 1);
			for (size_t i = 0; i < 32 && i < length; i++)
				scratch[i] = (uint8_t)next_random();
			memcpy(scratch, "PSWN", length < 4 ? length : 4);
			break;
		default: /* valid or one flipped bit / byte away */
			length = plausible(scratch);
			break;
		}
		uint8_t *exact = malloc(length ? length : 1);
		cr_assert_not_null(exact);
		memcpy(exact, scratch, length);
		check_one(exact, length, &tally);
		free(exact);
	}
	/* The plausible half must really exercise every path it claims to. */
	cr_assert_gt(tally.valid, ITERATIONS / 20, "only %llu valid", (unsigned long long)tally.valid);
	cr_assert_gt(tally.requests_ok, ITERATIONS / 20, "accepted requests");
	cr_assert_gt(tally.requests_refused, ITERATIONS / 20, "refused requests");
	cr_assert_gt(tally.silent, ITERATIONS / 100, "silent refusals");
	fprintf(stderr, "fuzz: %u buffers: %llu datagrams valid, %llu requests accepted, %llu"
		" refused, %llu refusals silent\n", ITERATIONS, (unsigned long long)tally.valid,
		(unsigned long long)tally.requests_ok, (unsigned long long)tally.requests_refused,
		(unsigned long long)tally.silent);
}
