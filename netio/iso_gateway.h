/*
 * iso_gateway.h — the ISO 8583 gateway: ISO 8583:1987 over TCP in
 * (tcp_server.h, optionally TLS), the native protocol over UDP out (the netio
 * client library).
 *
 * Two layers, both in netio/:
 *  - iso_translate.c, pure: the response-code table, field 7 as a timestamp,
 *    the translation of a parsed message into one struct ledger_request, and
 *    the packing of its response. Tested directly (tests/iso8583/test_translate.c).
 *  - iso_gateway.c: the event loop (one thread): in-flight requests matched by
 *    request id, retransmission, backpressure, signals.
 *
 * The card/terminal directory lives in engine/ (engine/directory.c); the
 * gateway sees it only through struct iso_gateway_directory, so netio never
 * includes engine/. The command (`payswitch gateway`: options, directory
 * loading and reloading) is engine/gateway.c.
 *
 * Message flows, field use, idempotency rules and the result-code table:
 * netio/ISO8583.md.
 */
#ifndef PAYSWITCH_NETIO_ISO_GATEWAY_H
#define PAYSWITCH_NETIO_ISO_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iso8583.h"
#include "ledger.h"
#include "tcp_server.h"

struct netio_key;

/* ------------------------------------------------------------------------ */
/* The directory, as the gateway sees it                                     */
/* ------------------------------------------------------------------------ */
enum iso_gateway_key_kind {
	ISO_GATEWAY_KEY_PAN = 0,       /* field 2, 102, 103 */
	ISO_GATEWAY_KEY_MERCHANT = 1,  /* field 42 */
	ISO_GATEWAY_KEY_TERMINAL = 2,  /* field 41 */
};

/* find: the ledger account of a key (the field's bytes as received); false
 * when unknown. Called from the gateway's thread only. */
struct iso_gateway_directory {
	bool (*find)(const void *context, enum iso_gateway_key_kind kind, const uint8_t *key,
		     size_t length, uint64_t *account);
	const void *context;
};

/* ------------------------------------------------------------------------ */
/* Translation (pure)                                                        */
/* ------------------------------------------------------------------------ */
/* The ISO 8583 response code (two characters, field 39) of a ledger result
 * code; "91" for NETIO_CODE_NO_ANSWER, "96" for codes it does not know. The
 * one table: netio/ISO8583.md. */
const char *iso_gateway_response_code(unsigned ledger_code);

/* Field 7 (MMDDhhmmss, UTC; 10 digits) as microseconds since the epoch, the
 * year being the one that puts it nearest to now_us. Returns false for
 * values that are not a date and time. Deterministic for a given field and
 * any now within months of it: a retransmission gives the same timestamp. */
bool iso_gateway_field7_time(const uint8_t field7[10], uint64_t now_us, uint64_t *timestamp_us);

enum iso_gateway_operation {
	ISO_GATEWAY_OP_NONE = 0,
	ISO_GATEWAY_OP_AUTHORIZE,      /* 0100: HOLD */
	ISO_GATEWAY_OP_PURCHASE,       /* 0200/00: PAY */
	ISO_GATEWAY_OP_REFUND,         /* 0200/20: REFUND (field 90) or PAY merchant -> card */
	ISO_GATEWAY_OP_BALANCE,        /* 0100/0200 with processing code 31: BALANCE */
	ISO_GATEWAY_OP_CAPTURE,        /* 0220: CAPTURE */
	ISO_GATEWAY_OP_REVERSE_HOLD,   /* 0400/0420 of a 0100: VOID */
	ISO_GATEWAY_OP_REVERSE_PAY,    /* 0400/0420 of a 0200: REFUND */
	ISO_GATEWAY_OP_NETWORK,        /* 0800: answered by the gateway */
};

/* What a message translates to. */
struct iso_gateway_translation {
	struct ledger_request request;   /* valid when code is NULL */
	const char *code;                /* non-NULL: answer at once with this field 39 */
	uint8_t operation;               /* enum iso_gateway_operation */
};

/* Translates a parsed request message. default_currency serves balance
 * inquiries without field 49. Pure (the directory's find must be). */
void iso_gateway_translate(const struct iso8583_message *message,
			   const struct iso_gateway_directory *directory,
			   uint16_t default_currency, uint64_t now_us,
			   struct iso_gateway_translation *translation);

/* ------------------------------------------------------------------------ */
/* Responses (pure)                                                          */
/* ------------------------------------------------------------------------ */
#define ISO_GATEWAY_ECHO_BYTES_MAX 320u
#define ISO_GATEWAY_RESPONSE_BYTES_MAX 1024u

/* What a response needs from its request, kept while the request is in
 * flight: the response MTI, the framing, the operation, and the echoed
 * fields (2 3 4 7 11 12 13 32 37 41 42 49 70 90 102 103) as (field, length,
 * bytes) records. */
struct iso_gateway_echo {
	char mti[4];
	uint8_t framing;                 /* enum iso8583_framing */
	uint8_t operation;               /* enum iso_gateway_operation */
	uint16_t used;
	uint8_t bytes[ISO_GATEWAY_ECHO_BYTES_MAX];
};

/* Captures what the response to request `message` echoes. */
void iso_gateway_echo_capture(const struct iso8583_message *message, const char response_mti[4],
			      uint8_t framing, uint8_t operation, struct iso_gateway_echo *echo);

/* Packs the response to `echo` with field 39 = code. result is NULL for
 * answers the gateway gives itself (format errors, directory misses, network
 * management). Adds 37 from id when absent (money messages), 38 on approvals
 * from the switch, 54 for an approved balance inquiry. Returns the frame
 * size (prefix included) or -1. */
int iso_gateway_response_pack(const struct iso_gateway_echo *echo, const char *code,
			      const struct ledger_result *result, uint16_t currency, uint64_t id,
			      uint8_t *out, size_t capacity);

/* ------------------------------------------------------------------------ */
/* The gateway process                                                       */
/* ------------------------------------------------------------------------ */
#define ISO_GATEWAY_ALLOW_MAX 64u

/* One listener (one per framing). */
struct iso_gateway_listener {
	bool enabled;
	char host[128];
	uint16_t port;                   /* 0: any; the bound port after create */
	/* TLS (all empty: plain TCP). certificate and key: PEM files; client_ca
	 * set: acquirers must present a certificate signed by it. */
	char tls_certificate[4096];
	char tls_key[4096];
	char tls_client_ca[4096];
	/* Source networks allowed to connect (CIDR, IPv4 and IPv6), comma
	 * separated; empty: everyone. */
	char allow[4096];
};

/* Log lines: level "info", "warn" or "error". */
typedef void iso_gateway_log_function(void *context, const char *level, const char *line);

struct iso_gateway_config {
	char switch_host[128];
	uint16_t switch_port;
	const struct netio_key *key;     /* NULL: key id 0 (switch --insecure-no-auth) */
	struct iso_gateway_listener listeners[2]; /* by enum iso8583_framing */
	uint32_t connections_max;
	uint32_t pipeline_max;           /* requests in flight per connection */
	int timeout_ms;
	int retries;
	uint16_t default_currency;
	bool verbose;
	struct iso_gateway_directory directory;
	/* SIGHUP: reload the directory (the find above sees the new one). */
	void (*reload)(void *context);
	iso_gateway_log_function *log;
	void *context;                   /* of reload and log */
};

struct iso_gateway;

/* Allocates everything (connections x pipeline requests in flight), opens
 * the client towards the switch, the listeners (TLS contexts loaded) and the
 * signal fd (SIGINT, SIGTERM, SIGHUP blocked). NULL with a message in error. */
struct iso_gateway *iso_gateway_create(const struct iso_gateway_config *config, char *error,
				       size_t error_size);

/* The bound port of a listener (framing), 0 when off. */
uint16_t iso_gateway_port(const struct iso_gateway *gateway, unsigned framing);

/* Runs until SIGTERM/SIGINT, then answers what is in flight (bounded by
 * timeout x (retries + 2)). Returns the exit status. */
int iso_gateway_run(struct iso_gateway *gateway);

void iso_gateway_destroy(struct iso_gateway *gateway);

#endif /* PAYSWITCH_NETIO_ISO_GATEWAY_H */
