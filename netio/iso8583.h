/*
 * iso8583.h — ISO 8583:1987 codec: field definitions, two packagers, framing.
 *
 * The byte layouts, field table, message flows and result codes are in
 * netio/ISO8583.md; this header is the C view of them.
 *
 * Two packagers ("framings"), chosen per listener:
 *   ISO8583_FRAMING_BINARY  2-byte big-endian length prefix, ASCII MTI, binary
 *                           bitmap(s), ASCII fields, binary (b) fields raw —
 *                           jPOS PostChannel + PostPackager, and the common npm
 *                           and Java libraries.
 *   ISO8583_FRAMING_ASCII   4 ASCII decimal digits of length, ASCII MTI, bitmap
 *                           as 16 (32) upper-case hex characters, ASCII fields,
 *                           b fields as hex — jPOS ASCIIChannel + ISO87APackager.
 * A length prefix of 0 is a keep-alive: no message, no answer.
 *
 * Everything here is pure (no state, no allocation, any thread). A parsed
 * message is a view: its value pointers point into the caller's frame buffer.
 * Units: lengths are bytes, except that a field's `length` is in characters
 * for ASCII fields and in bytes for b fields (what the standard calls its
 * length), and is the length of the value without any length prefix.
 */
#ifndef PAYSWITCH_NETIO_ISO8583_H
#define PAYSWITCH_NETIO_ISO8583_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISO8583_FIELD_MAX 128u
/* The largest message (without its length prefix) the codec accepts. A frame
 * announcing more is a bad length: the connection is closed. 8 KiB holds every
 * message the gateway handles many times over; the ASCII framing's 4 digits
 * cap it at 9999 anyway. */
#define ISO8583_MESSAGE_MAX 8192u
#define ISO8583_PREFIX_BINARY 2u
#define ISO8583_PREFIX_ASCII 4u
#define ISO8583_FRAME_MAX (ISO8583_MESSAGE_MAX + ISO8583_PREFIX_ASCII)

enum iso8583_framing {
	ISO8583_FRAMING_BINARY = 0,
	ISO8583_FRAMING_ASCII = 1,
};

/* Field content types of ISO 8583:1987. */
enum iso8583_type {
	ISO8583_TYPE_NONE = 0, /* field 1 (the secondary bitmap) is handled apart */
	ISO8583_TYPE_N,        /* numeric digits 0-9 */
	ISO8583_TYPE_AN,       /* alphanumeric (and space) */
	ISO8583_TYPE_ANS,      /* printable ASCII 0x20..0x7e */
	ISO8583_TYPE_XN,       /* 'C' or 'D' then digits (amounts with a sign) */
	ISO8583_TYPE_Z,        /* track 2/3: digits, '=', 'D' */
	ISO8583_TYPE_B,        /* binary; length in bytes */
};

struct iso8583_field_def {
	uint8_t type;          /* enum iso8583_type */
	uint8_t length_digits; /* 0: fixed length; 2: LLVAR; 3: LLLVAR */
	uint16_t length_max;   /* fixed length, or the maximum of a variable one */
	const char *name;
};

/* Definition of field 1..128 (asserted). */
const struct iso8583_field_def *iso8583_field_def(unsigned field);

/* Why a frame or a message was refused (counters, logs, tests). */
enum iso8583_error {
	ISO8583_OK = 0,
	ISO8583_ERROR_PREFIX,        /* ASCII length prefix not 4 digits */
	ISO8583_ERROR_FRAME_LENGTH,  /* announced length > ISO8583_MESSAGE_MAX */
	ISO8583_ERROR_MTI,           /* fewer than 4 bytes, or not 4 digits */
	ISO8583_ERROR_BITMAP,        /* truncated, bad hex, or bit 65 set (1987: no tertiary) */
	ISO8583_ERROR_TRUNCATED,     /* a field runs beyond the end of the message */
	ISO8583_ERROR_LENGTH_DIGITS, /* a variable length prefix is not digits */
	ISO8583_ERROR_TOO_LONG,      /* a variable length above the field's maximum */
	ISO8583_ERROR_NOT_NUMERIC,   /* a character not allowed by the field's type */
	ISO8583_ERROR_BAD_HEX,       /* ASCII packager: a b field that is not hex */
	ISO8583_ERROR_TRAILING,      /* bytes after the last field */
	ISO8583_ERROR_NO_SPACE,      /* pack: the output buffer is too small */
	ISO8583_ERROR_COUNT,
};

/* Stable name of an error ("TOO_LONG"); "UNKNOWN" for others. */
const char *iso8583_error_name(unsigned error);

/*
 * A message: the MTI and, per field, a value and its length. value[f] ==
 * NULL means field f is absent. Parsing points values into the frame (zero
 * copy); building points them wherever the caller keeps its bytes. Field 1
 * (the secondary bitmap) is never set by the caller: pack derives both bitmaps
 * from which fields are present.
 */
struct iso8583_message {
	char mti[4];
	const uint8_t *value[ISO8583_FIELD_MAX + 1];
	uint16_t length[ISO8583_FIELD_MAX + 1];
};

/* Clears every field and sets the MTI (4 characters, not terminated). */
void iso8583_message_init(struct iso8583_message *message, const char mti[4]);
static inline bool iso8583_has(const struct iso8583_message *message, unsigned field)
{
	return field <= ISO8583_FIELD_MAX && message->value[field] != NULL;
}
/* Sets field f to (value, length); the bytes must outlive the message. */
void iso8583_set(struct iso8583_message *message, unsigned field, const void *value,
		 uint16_t length);
/* Sets field f to a NUL-terminated string. */
void iso8583_set_string(struct iso8583_message *message, unsigned field, const char *value);

/*
 * Framing. Looks at the start of a stream buffer (length bytes) and finds the
 * first frame. Returns:
 *   0                    more bytes are needed;
 *   > 0                  the frame's total size (prefix + message): the
 *                        message is buffer[*message_offset ..
 *                        *message_offset + *message_length); a message_length
 *                        of 0 is a keep-alive;
 *   -ISO8583_ERROR_PREFIX / -ISO8583_ERROR_FRAME_LENGTH: the stream cannot be
 *                        resynchronized: close the connection.
 */
int iso8583_frame_next(enum iso8583_framing framing, const uint8_t *buffer, size_t length,
		       size_t *message_offset, size_t *message_length);

/* The prefix size of a framing (2 or 4). */
size_t iso8583_prefix_size(enum iso8583_framing framing);

/*
 * Parses one message (without its length prefix) into *message. Stops at the
 * first error and returns it; fields parsed before it stay set (so that a
 * format-error answer can echo them), *error_field names the field at fault
 * (0 for the MTI or bitmap; may be NULL). message->mti is set whenever the
 * error is not ISO8583_ERROR_MTI. Never reads beyond data + length.
 */
enum iso8583_error iso8583_unpack(enum iso8583_framing framing, const uint8_t *data,
				  size_t length, struct iso8583_message *message,
				  unsigned *error_field);

/*
 * Packs a message with its length prefix into out (capacity bytes). Values
 * are validated as unpack would (type, length); returns the frame size, or
 * -enum iso8583_error (*error_field set when not NULL).
 */
int iso8583_pack(enum iso8583_framing framing, const struct iso8583_message *message,
		 uint8_t *out, size_t capacity, unsigned *error_field);

/* Checks one value against a field's definition (type, length). */
enum iso8583_error iso8583_check_value(unsigned field, const uint8_t *value, size_t length);

/* Helpers for numeric fields: parse up to 19 digits into *value (false on a
 * non-digit, an empty value or overflow); write value as exactly `width`
 * zero-padded digits (false when it does not fit). */
bool iso8583_parse_u64(const uint8_t *digits, size_t length, uint64_t *value);
bool iso8583_format_u64(uint64_t value, unsigned width, char *out);

/* The response MTI of a request MTI ("0100" -> "0110", "0420" -> "0430",
 * "0421" -> "0430"); false when the MTI is not a request or advice (its third
 * digit is not 0 or 2) or not four digits. */
bool iso8583_response_mti(const char mti[4], char response[4]);

#endif /* PAYSWITCH_NETIO_ISO8583_H */
