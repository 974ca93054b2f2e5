/*
 * test_validation.c — every datagram-level rule of PROTOCOL.md, one test
 * each, with the reason and the answer the switch sends.
 */
#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "netio.h"

static alignas(64) uint8_t buffer[NETIO_RX_BUFFER_BYTES];
static alignas(64) uint8_t answer[NETIO_RX_BUFFER_BYTES];

/* A valid request datagram of `count` requests (ids 11, 12, ...). */
static size_t valid_datagram(uint32_t count)
{
	static struct ledger_request requests[NETIO_BATCH_MAX];
	for (uint32_t i = 0; i < count; i++) {
		memset(&requests[i], 0, sizeof(requests[i]));
		requests[i].id = 11 + i;
		requests[i].account_id = 1;
		requests[i].other_id = 2;
		requests[i].amount = 5;
		requests[i].currency = 978;
		requests[i].kind = LEDGER_KIND_PAY;
	}
	return netio_encode_requests(buffer, sizeof(buffer), 0xc11e, 0x5e9, requests, count);
}

static struct netio_header *header(void)
{
	return (struct netio_header *)(void *)buffer;
}

/* Decodes, checks the code and reason, then checks the switch's answer. */
static void expect(size_t length, uint16_t code, enum netio_reject reject, bool echoes_ids)
{
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, length, &view), code, "length %zu", length);
	cr_assert_eq(view.reject, reject, "reason %s", netio_reject_name(view.reject));
	cr_assert_eq(view.count, 0);
	cr_assert_null(view.requests);
	cr_assert_null(view.results);
	size_t size = netio_encode_refusal(&view, code, answer, sizeof(answer));
	cr_assert_eq(size, NETIO_ERROR_SIZE);
	struct netio_view reply;
	cr_assert_eq(netio_decode(answer, size, &reply), LEDGER_OK);
	cr_assert_eq(reply.header.type, NETIO_TYPE_ERROR);
	cr_assert_eq(reply.results[0].code, code);
	cr_assert_eq(reply.header.client_id, echoes_ids ? 0xc11e : 0);
	cr_assert_eq(reply.header.sequence, echoes_ids ? 0x5e9 : 0);
	/* PROTOCOL.md: the id of the first request when one whole request could
	 * be read (valid_datagram's first id is 11), else 0, whatever the rule. */
	bool whole_request = echoes_ids && length >= NETIO_HEADER_SIZE + NETIO_REQUEST_SIZE;
	cr_assert_eq(reply.results[0].id, whole_request ? 11 : 0, "%s, length %zu: id %llu",
		     netio_reject_name(reject), length,
		     (unsigned long long)reply.results[0].id);
	cr_assert_eq(reply.results[0].balance, 0);
	cr_assert_eq(reply.results[0].amount, 0);
	cr_assert_eq(reply.results[0].sequence, 0);
	cr_assert_eq(reply.results[0].flags, 0);
}

Test(validation, valid_one_and_max)
{
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, valid_datagram(1), &view), LEDGER_OK);
	cr_assert_eq(view.count, 1);
	cr_assert_eq(netio_decode(buffer, valid_datagram(NETIO_BATCH_MAX), &view), LEDGER_OK);
	cr_assert_eq(view.count, NETIO_BATCH_MAX);
}

Test(validation, short)
{
	valid_datagram(1);
	for (size_t length = 0; length < NETIO_HEADER_SIZE; length++)
		expect(length, LEDGER_FORMAT_ERROR, NETIO_REJECT_SHORT, false);
}

Test(validation, oversized)
{
	valid_datagram(NETIO_BATCH_MAX);
	expect(NETIO_DATAGRAM_MAX + 1, LEDGER_FORMAT_ERROR, NETIO_REJECT_OVERSIZED, true);
	expect(NETIO_RX_BUFFER_BYTES, LEDGER_FORMAT_ERROR, NETIO_REJECT_OVERSIZED, true);
}

Test(validation, wrong_magic)
{
	size_t length = valid_datagram(1);
	header()->magic = 0x4e575351;
	expect(length, LEDGER_FORMAT_ERROR, NETIO_REJECT_MAGIC, false);
	header()->magic = 0;
	expect(length, LEDGER_FORMAT_ERROR, NETIO_REJECT_MAGIC, false);
}

Test(validation, wrong_version)
{
	size_t length = valid_datagram(1);
	header()->version = 0;
	expect(length, LEDGER_WRONG_VERSION, NETIO_REJECT_VERSION, true);
	header()->version = 1;   /* version 1 had no key id and no MAC */
	expect(length, LEDGER_WRONG_VERSION, NETIO_REJECT_VERSION, true);
	header()->version = 3;
	expect(length, LEDGER_WRONG_VERSION, NETIO_REJECT_VERSION, true);
	/* A future version may be longer: still a version error, not a length one. */
	header()->count = 200;
	expect(length + 7, LEDGER_WRONG_VERSION, NETIO_REJECT_VERSION, true);
}

Test(validation, first_request_id_echoed)
{
	size_t length = valid_datagram(3);
	header()->reserved1 = 1;
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, length, &view), LEDGER_FORMAT_ERROR);
	cr_assert_eq(view.first_request_id, 11);
	netio_encode_refusal(&view, LEDGER_FORMAT_ERROR, answer, sizeof(answer));
	cr_assert_eq(netio_decode(answer, NETIO_ERROR_SIZE, &view), LEDGER_OK);
	cr_assert_eq(view.results[0].id, 11);
}

Test(validation, bad_type)
{
	size_t length = valid_datagram(1);
	const uint8_t types[] = {0, 4, 255};
	for (size_t i = 0; i < sizeof(types); i++) {
		header()->type = types[i];
		expect(length, LEDGER_FORMAT_ERROR, NETIO_REJECT_TYPE, true);
	}
}

/* Issue 14, defect 8: an unknown type carrying a whole request was answered
 * with id 0, where every other rule echoes the first request's id. */
Test(validation, unknown_type_echoes_first_request_id)
{
	size_t length = valid_datagram(3);
	header()->type = 7;
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, length, &view), LEDGER_FORMAT_ERROR);
	cr_assert_eq(view.reject, NETIO_REJECT_TYPE);
	cr_assert_eq(view.first_request_id, 11);
	cr_assert_eq(netio_encode_refusal(&view, LEDGER_FORMAT_ERROR, answer, sizeof(answer)),
		     NETIO_ERROR_SIZE);
	cr_assert_eq(netio_decode(answer, NETIO_ERROR_SIZE, &view), LEDGER_OK);
	cr_assert_eq(view.results[0].id, 11);
	/* Combined with a later rule, or a future version, the same id. */
	header()->reserved1 = 1;
	expect(length, LEDGER_FORMAT_ERROR, NETIO_REJECT_TYPE, true);
	header()->version = 1;   /* version 1 had no key id and no MAC */
	expect(length, LEDGER_WRONG_VERSION, NETIO_REJECT_VERSION, true);
	header()->version = 3;
	expect(length, LEDGER_WRONG_VERSION, NETIO_REJECT_VERSION, true);
	/* Less than one whole request after the header: 0. */
	header()->version = NETIO_VERSION;
	expect(NETIO_HEADER_SIZE + NETIO_REQUEST_SIZE - 1, LEDGER_FORMAT_ERROR,
	       NETIO_REJECT_TYPE, true);
}

Test(validation, reserved_non_zero)
{
	size_t length = valid_datagram(2);
	header()->reserved0 = 1;
	expect(length, LEDGER_FORMAT_ERROR, NETIO_REJECT_RESERVED, true);
	header()->reserved0 = 0;
	header()->reserved1 = 0x8000;
	expect(length, LEDGER_FORMAT_ERROR, NETIO_REJECT_RESERVED, true);
	header()->reserved1 = 0;
	/* Offset 12 was reserved in version 1; it is the key id now, which the
	 * codec leaves to authentication (netio_authenticate). */
	header()->key_id = 0xffffffff;
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, length, &view), LEDGER_OK);
	cr_assert_eq(view.header.key_id, 0xffffffff);
}

Test(validation, count_zero)
{
	valid_datagram(1);
	header()->count = 0;
	expect(NETIO_HEADER_SIZE, LEDGER_FORMAT_ERROR, NETIO_REJECT_COUNT_ZERO, true);
	expect(NETIO_HEADER_SIZE + NETIO_REQUEST_SIZE, LEDGER_FORMAT_ERROR,
	       NETIO_REJECT_COUNT_ZERO, true);
}

Test(validation, count_beyond_max)
{
	valid_datagram(NETIO_BATCH_MAX);
	header()->count = NETIO_BATCH_MAX + 1;
	expect(NETIO_DATAGRAM_MAX, LEDGER_FORMAT_ERROR, NETIO_REJECT_COUNT_MAX, true);
	header()->count = UINT16_MAX;
	expect(NETIO_DATAGRAM_MAX, LEDGER_FORMAT_ERROR, NETIO_REJECT_COUNT_MAX, true);
}

Test(validation, count_beyond_datagram)
{
	size_t length = valid_datagram(4);
	header()->count = 5;
	expect(length, LEDGER_FORMAT_ERROR, NETIO_REJECT_LENGTH, true);
	/* Cut mid-request. */
	valid_datagram(4);
	expect(length - 1, LEDGER_FORMAT_ERROR, NETIO_REJECT_LENGTH, true);
	expect(NETIO_HEADER_SIZE, LEDGER_FORMAT_ERROR, NETIO_REJECT_LENGTH, true);
}

Test(validation, trailing_bytes)
{
	size_t length = valid_datagram(4);
	expect(length + 1, LEDGER_FORMAT_ERROR, NETIO_REJECT_LENGTH, true);
	expect(length + NETIO_REQUEST_SIZE, LEDGER_FORMAT_ERROR, NETIO_REJECT_LENGTH, true);
}

Test(validation, error_datagram_has_one_result)
{
	netio_encode_error(buffer, sizeof(buffer), 0xc11e, 0x5e9, 0, LEDGER_FORMAT_ERROR);
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, NETIO_ERROR_SIZE, &view), LEDGER_OK);
	header()->count = 2;
	cr_assert_eq(netio_decode(buffer, NETIO_HEADER_SIZE + 2 * NETIO_RESULT_SIZE, &view),
		     LEDGER_FORMAT_ERROR);
	cr_assert_eq(view.reject, NETIO_REJECT_COUNT_MAX);
}

Test(validation, replies_are_measured_in_results)
{
	struct ledger_result results[3];
	memset(results, 0, sizeof(results));
	size_t length = netio_encode_results(buffer, sizeof(buffer), 1, 1, results, 3);
	cr_assert_eq(length, NETIO_HEADER_SIZE + 3 * NETIO_RESULT_SIZE);
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, length, &view), LEDGER_OK);
	cr_assert_eq(netio_decode(buffer, NETIO_HEADER_SIZE + 3 * NETIO_REQUEST_SIZE, &view),
		     LEDGER_FORMAT_ERROR);
	cr_assert_eq(view.reject, NETIO_REJECT_LENGTH);
}

Test(validation, no_answer_to_replies_or_errors)
{
	/* A malformed reply or error datagram is dropped, never answered:
	 * answering would let two switches bounce errors forever. */
	struct ledger_result result;
	memset(&result, 0, sizeof(result));
	size_t length = netio_encode_results(buffer, sizeof(buffer), 1, 1, &result, 1);
	header()->reserved1 = 1;
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, length, &view), LEDGER_FORMAT_ERROR);
	cr_assert_eq(netio_encode_refusal(&view, LEDGER_FORMAT_ERROR, answer, sizeof(answer)), 0);
	header()->reserved1 = 0;
	header()->type = NETIO_TYPE_ERROR;
	header()->version = 9;
	cr_assert_eq(netio_decode(buffer, length, &view), LEDGER_WRONG_VERSION);
	cr_assert_eq(netio_encode_refusal(&view, LEDGER_WRONG_VERSION, answer, sizeof(answer)), 0);
}

Test(validation, per_request_checks_leave_others_alone)
{
	size_t length = valid_datagram(4);
	struct ledger_request *requests = (struct ledger_request *)(void *)(buffer + NETIO_HEADER_SIZE);
	requests[1].currency = 0;
	requests[2].amount = UINT64_MAX;
	struct netio_view view;
	/* The datagram is fine: the per-request rules are the request's. */
	cr_assert_eq(netio_decode(buffer, length, &view), LEDGER_OK);
	cr_assert_eq(netio_request_check(&view.requests[0]), LEDGER_OK);
	cr_assert_eq(netio_request_check(&view.requests[1]), LEDGER_FORMAT_ERROR);
	cr_assert_eq(netio_request_check(&view.requests[2]), LEDGER_FORMAT_ERROR);
	cr_assert_eq(netio_request_check(&view.requests[3]), LEDGER_OK);
}
