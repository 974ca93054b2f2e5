/*
 * test_fuzz.c — a million hostile buffers: netio_decode never crashes, never
 * reads past the length (ASan watches), and always agrees with an
 * independent, deliberately naive reading of PROTOCOL.md.
 */
#include <criterion/criterion.h>
#include <stdalign.h>
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
	if (length < 32)
		return NETIO_REJECT_SHORT;
	if (read_u(bytes, 0, 4) != 0x4e575350u)
		return NETIO_REJECT_MAGIC;
	if (length > 8224)
		return NETIO_REJECT_OVERSIZED;
	if (read_u(bytes, 4, 2) != 1)
		return NETIO_REJECT_VERSION;
	uint64_t type = bytes[6];
	if (type < 1 || type > 3)
		return NETIO_REJECT_TYPE;
	if (bytes[7] != 0 || read_u(bytes, 10, 2) != 0 || read_u(bytes, 12, 4) != 0)
		return NETIO_REJECT_RESERVED;
	uint64_t count = read_u(bytes, 8, 2);
	if (count == 0)
		return NETIO_REJECT_COUNT_ZERO;
	if (count > (type == 3 ? 1u : 128u))
		return NETIO_REJECT_COUNT_MAX;
	if (length != 32 + count * (type == 1 ? 64u : 40u))
		return NETIO_REJECT_LENGTH;
	return NETIO_REJECT_NONE;
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
	for (uint32_t flips = (uint32_t)(next_random() % 4); flips > 0; flips--)
		bytes[next_random() % NETIO_HEADER_SIZE] ^= (uint8_t)(1u << (next_random() % 8));
	switch (next_random() % 4) {
	case 0: length += next_random() % 3; break;
	case 1: length -= next_random() % 3; break;
	default: break;
	}
	return length;
}

static void check_one(const uint8_t *bytes, size_t length, uint64_t *valid)
{
	struct netio_view view;
	uint16_t code = netio_decode(bytes, length, &view);
	enum netio_reject expected = oracle(bytes, length);
	cr_assert_eq(view.reject, expected, "length %zu: got %s, oracle %s", length,
		     netio_reject_name(view.reject), netio_reject_name(expected));
	if (expected == NETIO_REJECT_NONE) {
		cr_assert_eq(code, LEDGER_OK);
		cr_assert(view.count >= 1 && view.count <= NETIO_BATCH_MAX);
		(*valid)++;
		if (view.requests != NULL)
			for (uint32_t i = 0; i < view.count; i++) {
				uint16_t check = netio_request_check(&view.requests[i]);
				cr_assert(check == LEDGER_OK || check == LEDGER_FORMAT_ERROR);
			}
		return;
	}
	cr_assert_eq(code, expected == NETIO_REJECT_VERSION ? LEDGER_WRONG_VERSION
							    : LEDGER_FORMAT_ERROR);
	alignas(8) uint8_t answer[NETIO_ERROR_SIZE];
	size_t size = netio_encode_refusal(&view, code, answer, sizeof(answer));
	cr_assert(size == 0 || size == NETIO_ERROR_SIZE);
}

Test(fuzz, million_buffers, .timeout = 120)
{
	/* The length is the only bound: decode must not look past it, so each
	 * buffer is a fresh heap block of exactly `length` bytes (ASan's
	 * redzone sits right behind it). */
	alignas(64) static uint8_t scratch[NETIO_RX_BUFFER_BYTES];
	for (size_t i = 0; i < sizeof(scratch); i++)
		scratch[i] = (uint8_t)next_random();
	uint64_t valid = 0;
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
		check_one(exact, length, &valid);
		free(exact);
	}
	/* The plausible half must really exercise the accepting paths. */
	cr_assert_gt(valid, ITERATIONS / 20, "only %llu valid", (unsigned long long)valid);
}
