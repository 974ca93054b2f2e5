/*
 * codec.c — encode, decode and validate native protocol datagrams.
 *
 * Decoding is validation plus a pointer: on a little-endian host the wire
 * layout is the in-memory layout of struct ledger_request / ledger_result, so
 * a valid datagram's payload is used in place. Every rule is in PROTOCOL.md.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "netio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "netio decodes in place: the wire is little-endian, so is the host"
#endif

_Static_assert(NETIO_DATAGRAM_MAX == 8240, "documented in PROTOCOL.md");
_Static_assert(NETIO_REPLY_MAX == 5168, "documented in PROTOCOL.md");
_Static_assert(NETIO_ERROR_SIZE == 88, "documented in PROTOCOL.md");
_Static_assert(NETIO_DATAGRAM_MAX < NETIO_RX_BUFFER_BYTES, "oversized must stay visible");
_Static_assert(NETIO_HEADER_SIZE + NETIO_BATCH_MTU1500 * NETIO_REQUEST_SIZE <= 1500 - 20 - 8,
	       "a 1500-MTU batch fits IPv4 unfragmented");
_Static_assert(NETIO_HEADER_SIZE % 8 == 0, "payload stays 8-byte aligned");
_Static_assert(NETIO_BATCH_MAX <= UINT16_MAX, "count is a u16");

static const char *const reject_names[NETIO_REJECT_COUNT_KINDS] = {
	[NETIO_REJECT_NONE] = "NONE",
	[NETIO_REJECT_SHORT] = "SHORT",
	[NETIO_REJECT_OVERSIZED] = "OVERSIZED",
	[NETIO_REJECT_MAGIC] = "MAGIC",
	[NETIO_REJECT_VERSION] = "VERSION",
	[NETIO_REJECT_TYPE] = "TYPE",
	[NETIO_REJECT_RESERVED] = "RESERVED",
	[NETIO_REJECT_COUNT_ZERO] = "COUNT_ZERO",
	[NETIO_REJECT_COUNT_MAX] = "COUNT_MAX",
	[NETIO_REJECT_LENGTH] = "LENGTH",
};

const char *netio_reject_name(unsigned reject)
{
	if (reject >= NETIO_REJECT_COUNT_KINDS)
		return "UNKNOWN";
	return reject_names[reject];
}

static uint16_t refuse(struct netio_view *view, enum netio_reject reject)
{
	view->reject = reject;
	view->count = 0;
	view->requests = NULL;
	view->results = NULL;
	return reject == NETIO_REJECT_VERSION ? LEDGER_WRONG_VERSION : LEDGER_FORMAT_ERROR;
}

static size_t element_size(uint8_t type)
{
	return type == NETIO_TYPE_REQUEST ? NETIO_REQUEST_SIZE : NETIO_RESULT_SIZE;
}

/* Whether the payload may be requests, so that a refusal echoes the first
 * request's id: REQUEST, and any type the switch does not know (a whole
 * request may still follow, and every other rule echoes it, PROTOCOL.md).
 * REPLY and ERROR carry results and are never answered. */
static bool may_carry_requests(uint8_t type)
{
	return type != NETIO_TYPE_REPLY && type != NETIO_TYPE_ERROR;
}

/* The checks in the order PROTOCOL.md lists them: the first that fails names
 * the reason. Magic before version, so that a stray packet of another
 * protocol is a format error and not a version error. */
uint16_t netio_decode(const void *buffer, size_t length, struct netio_view *view)
{
	assert(view != NULL);
	assert(buffer != NULL || length == 0);
	assert(((uintptr_t)buffer & 7) == 0);

	memset(view, 0, sizeof(*view));
	if (length < NETIO_HEADER_SIZE)
		return refuse(view, NETIO_REJECT_SHORT);

	struct netio_header header;
	memcpy(&header, buffer, sizeof(header));
	if (header.magic != NETIO_MAGIC)
		return refuse(view, NETIO_REJECT_MAGIC);
	/* From here the header is ours: echo its ids in any error reply. */
	view->header = header;
	if (length >= NETIO_HEADER_SIZE + NETIO_REQUEST_SIZE && may_carry_requests(header.type))
		memcpy(&view->first_request_id, (const uint8_t *)buffer + NETIO_HEADER_SIZE,
		       sizeof(uint64_t));
	if (length > NETIO_DATAGRAM_MAX)
		return refuse(view, NETIO_REJECT_OVERSIZED);
	if (header.version != NETIO_VERSION)
		return refuse(view, NETIO_REJECT_VERSION);
	if (header.type < NETIO_TYPE_REQUEST || header.type > NETIO_TYPE_ERROR)
		return refuse(view, NETIO_REJECT_TYPE);
	if (header.reserved0 != 0 || header.reserved1 != 0)
		return refuse(view, NETIO_REJECT_RESERVED);
	if (header.count == 0)
		return refuse(view, NETIO_REJECT_COUNT_ZERO);
	uint32_t count_max = header.type == NETIO_TYPE_ERROR ? 1 : NETIO_BATCH_MAX;
	if (header.count > count_max)
		return refuse(view, NETIO_REJECT_COUNT_MAX);
	size_t expected = NETIO_HEADER_SIZE + (size_t)header.count * element_size(header.type);
	if (length != expected)
		return refuse(view, NETIO_REJECT_LENGTH);

	const uint8_t *payload = (const uint8_t *)buffer + NETIO_HEADER_SIZE;
	view->count = header.count;
	if (header.type == NETIO_TYPE_REQUEST)
		view->requests = (const struct ledger_request *)(const void *)payload;
	else
		view->results = (const struct ledger_result *)(const void *)payload;
	view->reject = NETIO_REJECT_NONE;
	return LEDGER_OK;
}

static bool kind_moves_money(uint8_t kind)
{
	switch (kind) {
	case LEDGER_KIND_DEPOSIT:
	case LEDGER_KIND_PAY:
	case LEDGER_KIND_HOLD:
	case LEDGER_KIND_CAPTURE:
	case LEDGER_KIND_REFUND:
		return true;
	default:
		return false;
	}
}

uint16_t netio_request_check(const struct ledger_request *request)
{
	assert(request != NULL);
	/* 0 is the id of "unknown" in ERROR datagrams; it cannot name a transfer. */
	if (request->id == 0)
		return LEDGER_FORMAT_ERROR;
	/* CREDIT and RETURN are engine-internal: a client may never inject them. */
	if (request->kind == LEDGER_KIND_NONE || request->kind >= LEDGER_KIND_CREDIT)
		return LEDGER_FORMAT_ERROR;
	if (request->currency == 0)
		return LEDGER_FORMAT_ERROR;
	if (kind_moves_money(request->kind) && request->amount > (uint64_t)INT64_MAX)
		return LEDGER_FORMAT_ERROR;
	if (request->reserved != 0)
		return LEDGER_FORMAT_ERROR;
	return LEDGER_OK;
}

void netio_result_refuse(const struct ledger_request *request, uint16_t code,
			 struct ledger_result *result)
{
	assert(request != NULL && result != NULL);
	assert(code != LEDGER_OK);
	memset(result, 0, sizeof(*result));
	result->id = request->id;
	result->amount = request->amount;
	result->code = code;
}

void netio_header_init(struct netio_header *header, enum netio_type type,
		       uint32_t count, uint64_t client_id, uint64_t sequence)
{
	assert(header != NULL);
	assert(type >= NETIO_TYPE_REQUEST && type <= NETIO_TYPE_ERROR);
	assert(count >= 1 && count <= NETIO_BATCH_MAX);
	assert(type != NETIO_TYPE_ERROR || count == 1);
	memset(header, 0, sizeof(*header));
	header->magic = NETIO_MAGIC;
	header->version = NETIO_VERSION;
	header->type = (uint8_t)type;
	header->count = (uint16_t)count;
	header->client_id = client_id;
	header->sequence = sequence;
}

static size_t encode(void *buffer, size_t capacity, enum netio_type type,
		     uint64_t client_id, uint64_t sequence, const void *elements,
		     uint32_t count)
{
	assert(buffer != NULL && elements != NULL);
	size_t payload_size = (size_t)count * element_size((uint8_t)type);
	size_t size = NETIO_HEADER_SIZE + payload_size;
	assert(capacity >= size);
	(void)capacity;

	struct netio_header header;
	netio_header_init(&header, type, count, client_id, sequence);
	uint8_t *payload = (uint8_t *)buffer + NETIO_HEADER_SIZE;
	/* In place when the caller built the payload in the buffer already. */
	if ((const void *)payload != elements)
		memmove(payload, elements, payload_size);
	memcpy(buffer, &header, sizeof(header));
	return size;
}

size_t netio_encode_requests(void *buffer, size_t capacity, uint64_t client_id,
			     uint64_t sequence, const struct ledger_request *requests,
			     uint32_t count)
{
	return encode(buffer, capacity, NETIO_TYPE_REQUEST, client_id, sequence,
		      requests, count);
}

size_t netio_encode_results(void *buffer, size_t capacity, uint64_t client_id,
			    uint64_t sequence, const struct ledger_result *results,
			    uint32_t count)
{
	return encode(buffer, capacity, NETIO_TYPE_REPLY, client_id, sequence,
		      results, count);
}

size_t netio_encode_error(void *buffer, size_t capacity, uint64_t client_id,
			  uint64_t sequence, uint64_t request_id, uint16_t code)
{
	assert(code == LEDGER_FORMAT_ERROR || code == LEDGER_WRONG_VERSION ||
	       code == LEDGER_BUSY || code == LEDGER_UNAVAILABLE || code == LEDGER_FORBIDDEN);
	struct ledger_result result;
	memset(&result, 0, sizeof(result));
	result.id = request_id;
	result.code = code;
	return encode(buffer, capacity, NETIO_TYPE_ERROR, client_id, sequence, &result, 1);
}

size_t netio_encode_refusal(const struct netio_view *view, uint16_t code,
			    void *buffer, size_t capacity)
{
	assert(view != NULL);
	assert(view->reject != NETIO_REJECT_NONE);
	uint8_t type = view->header.type;
	/* Only a header whose magic matched is trusted enough to be silent on. */
	if (view->header.magic == NETIO_MAGIC &&
	    (type == NETIO_TYPE_REPLY || type == NETIO_TYPE_ERROR))
		return 0;
	return netio_encode_error(buffer, capacity, view->header.client_id,
				  view->header.sequence, view->first_request_id, code);
}
