/*
 * test_codec.c — encode / decode round trips for every request kind, replies
 * and errors, and the per-request checks.
 */
#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "netio.h"

static alignas(64) uint8_t buffer[NETIO_RX_BUFFER_BYTES];

static struct ledger_request valid_request(uint8_t kind, uint64_t id)
{
	struct ledger_request request;
	memset(&request, 0, sizeof(request));
	request.id = id;
	request.timestamp_us = 1700000000000000ull + id;
	request.account_id = 1000 + id;
	request.other_id = kind == LEDGER_KIND_PAY || kind == LEDGER_KIND_DEPOSIT ? 2000 + id : 0;
	request.amount = 100 * id;
	request.reference_id = kind == LEDGER_KIND_CAPTURE ? id - 1 : 0;
	request.hold_timeout_us = kind == LEDGER_KIND_HOLD ? 60000000 : 0;
	request.currency = 978;
	request.kind = kind;
	request.flags = kind == LEDGER_KIND_OPEN ? LEDGER_ACCOUNT_MERCHANT : 0;
	return request;
}

Test(codec, constants)
{
	cr_assert_eq(NETIO_DATAGRAM_MAX, 8240);
	cr_assert_eq(NETIO_REPLY_MAX, 5168);
	cr_assert_eq(NETIO_ERROR_SIZE, 88);
	cr_assert_eq(sizeof(struct netio_header), 48);
	cr_assert_eq(NETIO_VERSION, 2);
	/* "PSWN" in wire order. */
	uint32_t magic = NETIO_MAGIC;
	cr_assert_eq(memcmp(&magic, "PSWN", 4), 0);
}

Test(codec, request_round_trip_every_kind)
{
	for (uint8_t kind = LEDGER_KIND_OPEN; kind < LEDGER_KIND_CREDIT; kind++) {
		struct ledger_request request = valid_request(kind, 7 + kind);
		cr_assert_eq(netio_request_check(&request), LEDGER_OK, "kind %u", kind);
		size_t size = netio_encode_requests(buffer, sizeof(buffer), 42, kind, &request, 1);
		cr_assert_eq(size, NETIO_HEADER_SIZE + NETIO_REQUEST_SIZE);
		struct netio_view view;
		cr_assert_eq(netio_decode(buffer, size, &view), LEDGER_OK);
		cr_assert_eq(view.reject, NETIO_REJECT_NONE);
		cr_assert_eq(view.header.type, NETIO_TYPE_REQUEST);
		cr_assert_eq(view.header.client_id, 42);
		cr_assert_eq(view.header.sequence, kind);
		cr_assert_eq(view.count, 1);
		cr_assert_null(view.results);
		/* Zero copy: the view points into the buffer. */
		cr_assert_eq((const void *)view.requests, (const void *)(buffer + NETIO_HEADER_SIZE));
		cr_assert_eq(memcmp(view.requests, &request, sizeof(request)), 0, "kind %u", kind);
	}
}

Test(codec, full_batch_round_trip)
{
	static struct ledger_request requests[NETIO_BATCH_MAX];
	for (uint32_t i = 0; i < NETIO_BATCH_MAX; i++)
		requests[i] = valid_request((uint8_t)(1 + i % 12), i + 1);
	size_t size = netio_encode_requests(buffer, sizeof(buffer), UINT64_MAX, UINT64_MAX - 1,
					    requests, NETIO_BATCH_MAX);
	cr_assert_eq(size, NETIO_DATAGRAM_MAX);
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, size, &view), LEDGER_OK);
	cr_assert_eq(view.count, NETIO_BATCH_MAX);
	cr_assert_eq(view.header.client_id, UINT64_MAX);
	cr_assert_eq(view.header.sequence, UINT64_MAX - 1);
	cr_assert_eq(memcmp(view.requests, requests, sizeof(requests)), 0);
	cr_assert_eq(view.first_request_id, 1);
}

Test(codec, results_round_trip)
{
	static struct ledger_result results[NETIO_BATCH_MAX];
	for (uint32_t i = 0; i < NETIO_BATCH_MAX; i++) {
		results[i].id = i + 1;
		results[i].balance = -(int64_t)i * 1000;
		results[i].amount = i;
		results[i].sequence = 1000 + i;
		results[i].code = (uint16_t)(i % LEDGER_RESULT_CODE_COUNT);
		results[i].flags = LEDGER_RESULT_JOURNAL;
	}
	for (uint32_t count = 1; count <= NETIO_BATCH_MAX; count++) {
		size_t size = netio_encode_results(buffer, sizeof(buffer), 9, count, results, count);
		cr_assert_eq(size, NETIO_HEADER_SIZE + count * NETIO_RESULT_SIZE);
		struct netio_view view;
		cr_assert_eq(netio_decode(buffer, size, &view), LEDGER_OK);
		cr_assert_eq(view.header.type, NETIO_TYPE_REPLY);
		cr_assert_eq(view.count, count);
		cr_assert_null(view.requests);
		cr_assert_eq(memcmp(view.results, results, count * sizeof(results[0])), 0);
	}
}

Test(codec, error_round_trip)
{
	size_t size = netio_encode_error(buffer, sizeof(buffer), 5, 6, 77, LEDGER_WRONG_VERSION);
	cr_assert_eq(size, NETIO_ERROR_SIZE);
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, size, &view), LEDGER_OK);
	cr_assert_eq(view.header.type, NETIO_TYPE_ERROR);
	cr_assert_eq(view.count, 1);
	cr_assert_eq(view.results[0].id, 77);
	cr_assert_eq(view.results[0].code, LEDGER_WRONG_VERSION);
	cr_assert_eq(view.header.client_id, 5);
	cr_assert_eq(view.header.sequence, 6);
}

Test(codec, encode_in_place)
{
	struct ledger_result *in_place = (struct ledger_result *)(void *)(buffer + NETIO_HEADER_SIZE);
	for (uint32_t i = 0; i < 10; i++) {
		memset(&in_place[i], 0, sizeof(in_place[i]));
		in_place[i].id = 100 + i;
	}
	size_t size = netio_encode_results(buffer, sizeof(buffer), 1, 2, in_place, 10);
	struct netio_view view;
	cr_assert_eq(netio_decode(buffer, size, &view), LEDGER_OK);
	for (uint32_t i = 0; i < 10; i++)
		cr_assert_eq(view.results[i].id, 100 + i);
}

Test(codec, request_checks)
{
	struct ledger_request request = valid_request(LEDGER_KIND_PAY, 1);
	cr_assert_eq(netio_request_check(&request), LEDGER_OK);

	struct ledger_request bad = request;
	bad.id = 0;
	cr_assert_eq(netio_request_check(&bad), LEDGER_FORMAT_ERROR);
	const uint8_t bad_kinds[] = {LEDGER_KIND_NONE, LEDGER_KIND_CREDIT, LEDGER_KIND_RETURN,
				     LEDGER_KIND_COUNT, 200, 255};
	for (size_t i = 0; i < sizeof(bad_kinds); i++) {
		bad = request;
		bad.kind = bad_kinds[i];
		cr_assert_eq(netio_request_check(&bad), LEDGER_FORMAT_ERROR, "kind %u", bad_kinds[i]);
	}
	bad = request;
	bad.currency = 0;
	cr_assert_eq(netio_request_check(&bad), LEDGER_FORMAT_ERROR);
	bad = request;
	bad.reserved = 1;
	cr_assert_eq(netio_request_check(&bad), LEDGER_FORMAT_ERROR);

	/* amount > INT64_MAX is refused for every kind that moves money ... */
	const uint8_t money[] = {LEDGER_KIND_DEPOSIT, LEDGER_KIND_PAY, LEDGER_KIND_HOLD,
				 LEDGER_KIND_CAPTURE, LEDGER_KIND_REFUND};
	for (size_t i = 0; i < sizeof(money); i++) {
		bad = valid_request(money[i], 3);
		bad.amount = (uint64_t)INT64_MAX;
		cr_assert_eq(netio_request_check(&bad), LEDGER_OK, "kind %u", money[i]);
		bad.amount = (uint64_t)INT64_MAX + 1;
		cr_assert_eq(netio_request_check(&bad), LEDGER_FORMAT_ERROR, "kind %u", money[i]);
		bad.amount = UINT64_MAX;
		cr_assert_eq(netio_request_check(&bad), LEDGER_FORMAT_ERROR, "kind %u", money[i]);
	}
	/* ... and left to the ledger where amount is not money moved. */
	bad = valid_request(LEDGER_KIND_BALANCE, 3);
	bad.amount = UINT64_MAX;
	cr_assert_eq(netio_request_check(&bad), LEDGER_OK);

	struct ledger_result result;
	netio_result_refuse(&request, LEDGER_FORMAT_ERROR, &result);
	cr_assert_eq(result.id, request.id);
	cr_assert_eq(result.code, LEDGER_FORMAT_ERROR);
	cr_assert_eq(result.amount, request.amount);
	cr_assert_eq(result.sequence, 0);
	cr_assert_eq(result.flags, 0);
}

Test(codec, reject_names)
{
	cr_assert_str_eq(netio_reject_name(NETIO_REJECT_NONE), "NONE");
	cr_assert_str_eq(netio_reject_name(NETIO_REJECT_LENGTH), "LENGTH");
	cr_assert_str_eq(netio_reject_name(NETIO_REJECT_COUNT_KINDS), "UNKNOWN");
	cr_assert_str_eq(netio_reject_name(9999), "UNKNOWN");
}
