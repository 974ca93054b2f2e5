/*
 * gateway.h — `payswitch gateway`: the ISO 8583 gateway in front of the switch.
 *
 * A process of its own: it accepts ISO 8583:1987 over TCP (epoll, many
 * connections, pipelined; tcp_server.h), translates each message into a
 * struct ledger_request, sends those to the switch over the native UDP
 * protocol with the netio client library (many per datagram, one flush per
 * event-loop turn, the same request retransmitted on timeout) and matches
 * results back to (connection, message) by request id. The switch's shard
 * workers never see TCP. Message flows, field use, idempotency rules and the
 * result-code table: netio/ISO8583.md.
 *
 * The translation functions below are pure and exposed for the tests.
 */
#ifndef PAYSWITCH_ENGINE_GATEWAY_H
#define PAYSWITCH_ENGINE_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "directory.h"
#include "iso8583.h"
#include "ledger.h"

/* `payswitch gateway [OPTIONS]`: argv[0] = "gateway". Returns the exit status. */
int gateway_main(int argc, char **argv);

/* The ISO 8583 response code (two characters, field 39) of a ledger result
 * code; "96" for codes it does not know. The one table: netio/ISO8583.md. */
const char *gateway_response_code(unsigned ledger_code);

/* Field 7 (MMDDhhmmss, UTC; 10 digits) as microseconds since the epoch, the
 * year being the one that puts it nearest to now_us. Returns false for
 * values that are not a date and time. Deterministic for a given field and
 * any now within months of it: a retransmission gives the same timestamp. */
bool gateway_field7_time(const uint8_t field7[10], uint64_t now_us, uint64_t *timestamp_us);

/* What a message translates to. */
struct gateway_translation {
	struct ledger_request request;   /* valid when code is NULL */
	const char *code;                /* non-NULL: answer at once with this field 39 */
	uint8_t operation;               /* enum gateway_operation */
};

enum gateway_operation {
	GATEWAY_OP_NONE = 0,
	GATEWAY_OP_AUTHORIZE,      /* 0100: HOLD */
	GATEWAY_OP_PURCHASE,       /* 0200/00: PAY */
	GATEWAY_OP_REFUND,         /* 0200/20: REFUND (field 90) or PAY merchant -> card */
	GATEWAY_OP_BALANCE,        /* 0100/0200 with processing code 31: BALANCE */
	GATEWAY_OP_CAPTURE,        /* 0220: CAPTURE */
	GATEWAY_OP_REVERSE_HOLD,   /* 0400/0420 of a 0100: VOID */
	GATEWAY_OP_REVERSE_PAY,    /* 0400/0420 of a 0200: REFUND */
	GATEWAY_OP_NETWORK,        /* 0800: answered by the gateway */
};

/* Translates a parsed request message. default_currency serves balance
 * inquiries without field 49. Pure. */
void gateway_translate(const struct iso8583_message *message, const struct directory *directory,
		       uint16_t default_currency, uint64_t now_us,
		       struct gateway_translation *translation);

#endif /* PAYSWITCH_ENGINE_GATEWAY_H */
