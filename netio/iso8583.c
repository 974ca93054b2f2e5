/*
 * iso8583.c — ISO 8583:1987 field definitions, the binary (PostPackager) and
 * ASCII (ISO87APackager) packagers, and length-prefix framing. Pure.
 */
#include "iso8583.h"

#include <assert.h>
#include <string.h>

#define N ISO8583_TYPE_N
#define AN ISO8583_TYPE_AN
#define ANS ISO8583_TYPE_ANS
#define XN ISO8583_TYPE_XN
#define Z ISO8583_TYPE_Z
#define B ISO8583_TYPE_B

/* ISO 8583:1987 data elements. Lengths: fixed (0 digits) or LL/LLL variable.
 * b lengths are bytes; x+n lengths count the sign character too (C/D + 8). */
static const struct iso8583_field_def field_defs[ISO8583_FIELD_MAX + 1] = {
	[1] = { B, 0, 8, "Secondary bitmap" },
	[2] = { N, 2, 19, "Primary account number (PAN)" },
	[3] = { N, 0, 6, "Processing code" },
	[4] = { N, 0, 12, "Amount, transaction" },
	[5] = { N, 0, 12, "Amount, settlement" },
	[6] = { N, 0, 12, "Amount, cardholder billing" },
	[7] = { N, 0, 10, "Transmission date and time (MMDDhhmmss)" },
	[8] = { N, 0, 8, "Amount, cardholder billing fee" },
	[9] = { N, 0, 8, "Conversion rate, settlement" },
	[10] = { N, 0, 8, "Conversion rate, cardholder billing" },
	[11] = { N, 0, 6, "System trace audit number (STAN)" },
	[12] = { N, 0, 6, "Time, local transaction (hhmmss)" },
	[13] = { N, 0, 4, "Date, local transaction (MMDD)" },
	[14] = { N, 0, 4, "Date, expiration (YYMM)" },
	[15] = { N, 0, 4, "Date, settlement" },
	[16] = { N, 0, 4, "Date, conversion" },
	[17] = { N, 0, 4, "Date, capture" },
	[18] = { N, 0, 4, "Merchant type" },
	[19] = { N, 0, 3, "Acquiring institution country code" },
	[20] = { N, 0, 3, "PAN extended, country code" },
	[21] = { N, 0, 3, "Forwarding institution country code" },
	[22] = { N, 0, 3, "Point of service entry mode" },
	[23] = { N, 0, 3, "Application PAN sequence number" },
	[24] = { N, 0, 3, "Network international identifier" },
	[25] = { N, 0, 2, "Point of service condition code" },
	[26] = { N, 0, 2, "Point of service capture code" },
	[27] = { N, 0, 1, "Authorizing identification response length" },
	[28] = { XN, 0, 9, "Amount, transaction fee" },
	[29] = { XN, 0, 9, "Amount, settlement fee" },
	[30] = { XN, 0, 9, "Amount, transaction processing fee" },
	[31] = { XN, 0, 9, "Amount, settlement processing fee" },
	[32] = { N, 2, 11, "Acquiring institution identification code" },
	[33] = { N, 2, 11, "Forwarding institution identification code" },
	[34] = { ANS, 2, 28, "Primary account number, extended" },
	[35] = { Z, 2, 37, "Track 2 data" },
	[36] = { N, 3, 104, "Track 3 data" },
	[37] = { AN, 0, 12, "Retrieval reference number" },
	[38] = { AN, 0, 6, "Authorization identification response" },
	[39] = { AN, 0, 2, "Response code" },
	[40] = { AN, 0, 3, "Service restriction code" },
	[41] = { ANS, 0, 8, "Card acceptor terminal identification" },
	[42] = { ANS, 0, 15, "Card acceptor identification code" },
	[43] = { ANS, 0, 40, "Card acceptor name/location" },
	[44] = { AN, 2, 25, "Additional response data" },
	[45] = { AN, 2, 76, "Track 1 data" },
	[46] = { AN, 3, 999, "Additional data - ISO" },
	[47] = { AN, 3, 999, "Additional data - national" },
	[48] = { AN, 3, 999, "Additional data - private" },
	[49] = { AN, 0, 3, "Currency code, transaction" },
	[50] = { AN, 0, 3, "Currency code, settlement" },
	[51] = { AN, 0, 3, "Currency code, cardholder billing" },
	[52] = { B, 0, 8, "Personal identification number data" },
	[53] = { N, 0, 16, "Security related control information" },
	[54] = { AN, 3, 120, "Additional amounts" },
	[55] = { ANS, 3, 999, "Reserved ISO" },
	[56] = { ANS, 3, 999, "Reserved ISO" },
	[57] = { ANS, 3, 999, "Reserved national" },
	[58] = { ANS, 3, 999, "Reserved national" },
	[59] = { ANS, 3, 999, "Reserved national" },
	[60] = { ANS, 3, 999, "Reserved national" },
	[61] = { ANS, 3, 999, "Reserved private" },
	[62] = { ANS, 3, 999, "Reserved private" },
	[63] = { ANS, 3, 999, "Reserved private" },
	[64] = { B, 0, 8, "Message authentication code (MAC)" },
	[65] = { B, 0, 1, "Bitmap, extended" },
	[66] = { N, 0, 1, "Settlement code" },
	[67] = { N, 0, 2, "Extended payment code" },
	[68] = { N, 0, 3, "Receiving institution country code" },
	[69] = { N, 0, 3, "Settlement institution country code" },
	[70] = { N, 0, 3, "Network management information code" },
	[71] = { N, 0, 4, "Message number" },
	[72] = { N, 0, 4, "Message number, last" },
	[73] = { N, 0, 6, "Date, action (YYMMDD)" },
	[74] = { N, 0, 10, "Credits, number" },
	[75] = { N, 0, 10, "Credits, reversal number" },
	[76] = { N, 0, 10, "Debits, number" },
	[77] = { N, 0, 10, "Debits, reversal number" },
	[78] = { N, 0, 10, "Transfer number" },
	[79] = { N, 0, 10, "Transfer, reversal number" },
	[80] = { N, 0, 10, "Inquiries number" },
	[81] = { N, 0, 10, "Authorizations, number" },
	[82] = { N, 0, 12, "Credits, processing fee amount" },
	[83] = { N, 0, 12, "Credits, transaction fee amount" },
	[84] = { N, 0, 12, "Debits, processing fee amount" },
	[85] = { N, 0, 12, "Debits, transaction fee amount" },
	[86] = { N, 0, 16, "Credits, amount" },
	[87] = { N, 0, 16, "Credits, reversal amount" },
	[88] = { N, 0, 16, "Debits, amount" },
	[89] = { N, 0, 16, "Debits, reversal amount" },
	[90] = { N, 0, 42, "Original data elements" },
	[91] = { AN, 0, 1, "File update code" },
	[92] = { AN, 0, 2, "File security code" },
	[93] = { AN, 0, 5, "Response indicator" },
	[94] = { AN, 0, 7, "Service indicator" },
	[95] = { AN, 0, 42, "Replacement amounts" },
	[96] = { B, 0, 8, "Message security code" },
	[97] = { XN, 0, 17, "Amount, net settlement" },
	[98] = { ANS, 0, 25, "Payee" },
	[99] = { N, 2, 11, "Settlement institution identification code" },
	[100] = { N, 2, 11, "Receiving institution identification code" },
	[101] = { ANS, 2, 17, "File name" },
	[102] = { ANS, 2, 28, "Account identification 1" },
	[103] = { ANS, 2, 28, "Account identification 2" },
	[104] = { ANS, 3, 100, "Transaction description" },
	[105] = { ANS, 3, 999, "Reserved ISO" },
	[106] = { ANS, 3, 999, "Reserved ISO" },
	[107] = { ANS, 3, 999, "Reserved ISO" },
	[108] = { ANS, 3, 999, "Reserved ISO" },
	[109] = { ANS, 3, 999, "Reserved ISO" },
	[110] = { ANS, 3, 999, "Reserved ISO" },
	[111] = { ANS, 3, 999, "Reserved ISO" },
	[112] = { ANS, 3, 999, "Reserved national" },
	[113] = { ANS, 3, 999, "Reserved national" },
	[114] = { ANS, 3, 999, "Reserved national" },
	[115] = { ANS, 3, 999, "Reserved national" },
	[116] = { ANS, 3, 999, "Reserved national" },
	[117] = { ANS, 3, 999, "Reserved national" },
	[118] = { ANS, 3, 999, "Reserved national" },
	[119] = { ANS, 3, 999, "Reserved national" },
	[120] = { ANS, 3, 999, "Reserved private" },
	[121] = { ANS, 3, 999, "Reserved private" },
	[122] = { ANS, 3, 999, "Reserved private" },
	[123] = { ANS, 3, 999, "Reserved private" },
	[124] = { ANS, 3, 999, "Reserved private" },
	[125] = { ANS, 3, 999, "Reserved private" },
	[126] = { ANS, 3, 999, "Reserved private" },
	[127] = { ANS, 3, 999, "Reserved private" },
	[128] = { B, 0, 8, "Message authentication code (MAC)" },
};

static const char *const error_names[ISO8583_ERROR_COUNT] = {
	[ISO8583_OK] = "OK",
	[ISO8583_ERROR_PREFIX] = "PREFIX",
	[ISO8583_ERROR_FRAME_LENGTH] = "FRAME_LENGTH",
	[ISO8583_ERROR_MTI] = "MTI",
	[ISO8583_ERROR_BITMAP] = "BITMAP",
	[ISO8583_ERROR_TRUNCATED] = "TRUNCATED",
	[ISO8583_ERROR_LENGTH_DIGITS] = "LENGTH_DIGITS",
	[ISO8583_ERROR_TOO_LONG] = "TOO_LONG",
	[ISO8583_ERROR_NOT_NUMERIC] = "NOT_NUMERIC",
	[ISO8583_ERROR_BAD_HEX] = "BAD_HEX",
	[ISO8583_ERROR_TRAILING] = "TRAILING",
	[ISO8583_ERROR_NO_SPACE] = "NO_SPACE",
};

const struct iso8583_field_def *iso8583_field_def(unsigned field)
{
	assert(field >= 1 && field <= ISO8583_FIELD_MAX);
	return &field_defs[field];
}

const char *iso8583_error_name(unsigned error)
{
	return error < ISO8583_ERROR_COUNT ? error_names[error] : "UNKNOWN";
}

void iso8583_message_init(struct iso8583_message *message, const char mti[4])
{
	memset(message, 0, sizeof(*message));
	memcpy(message->mti, mti, 4);
}

void iso8583_set(struct iso8583_message *message, unsigned field, const void *value,
		 uint16_t length)
{
	assert(field >= 2 && field <= ISO8583_FIELD_MAX && value != NULL);
	message->value[field] = value;
	message->length[field] = length;
}

void iso8583_set_string(struct iso8583_message *message, unsigned field, const char *value)
{
	size_t length = strlen(value);
	assert(length <= 999);
	iso8583_set(message, field, value, (uint16_t)length);
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool digits_only(const uint8_t *text, size_t length)
{
	for (size_t i = 0; i < length; i++)
		if (!is_digit(text[i]))
			return false;
	return true;
}

/* Reads `count` (<= 9) ASCII digits; false on a non-digit. */
static bool read_digits(const uint8_t *text, size_t count, uint32_t *value)
{
	uint32_t result = 0;
	for (size_t i = 0; i < count; i++) {
		if (!is_digit(text[i]))
			return false;
		result = result * 10u + (uint32_t)(text[i] - '0');
	}
	*value = result;
	return true;
}

static bool char_allowed(uint8_t type, uint8_t c, size_t index)
{
	switch (type) {
	case ISO8583_TYPE_N: return is_digit(c);
	case ISO8583_TYPE_XN: return index == 0 ? (c == 'C' || c == 'D') : is_digit(c);
	case ISO8583_TYPE_Z: return is_digit(c) || c == '=' || c == 'D';
	case ISO8583_TYPE_AN:
	case ISO8583_TYPE_ANS: return c >= 0x20 && c <= 0x7e;
	default: return true;
	}
}

enum iso8583_error iso8583_check_value(unsigned field, const uint8_t *value, size_t length)
{
	assert(field >= 2 && field <= ISO8583_FIELD_MAX);
	const struct iso8583_field_def *def = &field_defs[field];
	if (def->length_digits == 0 ? length != def->length_max : length > def->length_max)
		return ISO8583_ERROR_TOO_LONG;
	for (size_t i = 0; i < length; i++)
		if (!char_allowed(def->type, value[i], i))
			return ISO8583_ERROR_NOT_NUMERIC;
	return ISO8583_OK;
}

size_t iso8583_prefix_size(enum iso8583_framing framing)
{
	return framing == ISO8583_FRAMING_BINARY ? ISO8583_PREFIX_BINARY : ISO8583_PREFIX_ASCII;
}

int iso8583_frame_next(enum iso8583_framing framing, const uint8_t *buffer, size_t length,
		       size_t *message_offset, size_t *message_length)
{
	size_t prefix = iso8583_prefix_size(framing);
	if (length < prefix)
		return 0;
	uint32_t announced = 0;
	if (framing == ISO8583_FRAMING_BINARY)
		announced = ((uint32_t)buffer[0] << 8) | buffer[1];
	else if (!read_digits(buffer, 4, &announced))
		return -ISO8583_ERROR_PREFIX;
	if (announced > ISO8583_MESSAGE_MAX)
		return -ISO8583_ERROR_FRAME_LENGTH;
	if (length < prefix + announced)
		return 0;
	*message_offset = prefix;
	*message_length = announced;
	return (int)(prefix + announced);
}

static int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes 2 * count hex characters into count bytes; false on a bad one. */
static bool hex_decode(const uint8_t *text, size_t count, uint8_t *out)
{
	for (size_t i = 0; i < count; i++) {
		int high = hex_value(text[2 * i]);
		int low = hex_value(text[2 * i + 1]);
		if (high < 0 || low < 0)
			return false;
		out[i] = (uint8_t)(high << 4 | low);
	}
	return true;
}

static void hex_encode(const uint8_t *bytes, size_t count, uint8_t *out)
{
	static const char digits[] = "0123456789ABCDEF";
	for (size_t i = 0; i < count; i++) {
		out[2 * i] = (uint8_t)digits[bytes[i] >> 4];
		out[2 * i + 1] = (uint8_t)digits[bytes[i] & 15];
	}
}

/* A parse cursor over one message. */
struct cursor {
	const uint8_t *data;
	size_t length;
	size_t offset;
};

/* Reads one bitmap (8 bytes of bits) at the cursor. */
static enum iso8583_error read_bitmap(enum iso8583_framing framing, struct cursor *cursor,
				      uint8_t bitmap[8])
{
	size_t size = framing == ISO8583_FRAMING_BINARY ? 8 : 16;
	if (cursor->length - cursor->offset < size)
		return ISO8583_ERROR_BITMAP;
	const uint8_t *at = cursor->data + cursor->offset;
	if (framing == ISO8583_FRAMING_BINARY)
		memcpy(bitmap, at, 8);
	else if (!hex_decode(at, 8, bitmap))
		return ISO8583_ERROR_BITMAP;
	cursor->offset += size;
	return ISO8583_OK;
}

/*
 * b fields in the ASCII packager are hex on the wire and cannot be pointed
 * to as bytes, so unpack checks them and points at the hex text; its length
 * counts bytes all the same. iso8583_field_bytes() is not needed by the
 * gateway (it uses no b field); pack accepts raw bytes only.
 */
static enum iso8583_error read_field(enum iso8583_framing framing, struct cursor *cursor,
				     unsigned field, struct iso8583_message *message)
{
	const struct iso8583_field_def *def = &field_defs[field];
	size_t left = cursor->length - cursor->offset;
	const uint8_t *at = cursor->data + cursor->offset;
	uint32_t length = def->length_max;
	if (def->length_digits != 0) {
		if (left < def->length_digits)
			return ISO8583_ERROR_TRUNCATED;
		if (!read_digits(at, def->length_digits, &length))
			return ISO8583_ERROR_LENGTH_DIGITS;
		if (length > def->length_max)
			return ISO8583_ERROR_TOO_LONG;
		at += def->length_digits;
		left -= def->length_digits;
	}
	size_t wire = length;
	if (def->type == ISO8583_TYPE_B && framing == ISO8583_FRAMING_ASCII)
		wire = 2u * length;
	if (left < wire)
		return ISO8583_ERROR_TRUNCATED;
	if (def->type == ISO8583_TYPE_B && framing == ISO8583_FRAMING_ASCII) {
		for (size_t i = 0; i < wire; i++)
			if (hex_value(at[i]) < 0)
				return ISO8583_ERROR_BAD_HEX;
	} else {
		for (size_t i = 0; i < wire; i++)
			if (!char_allowed(def->type, at[i], i))
				return ISO8583_ERROR_NOT_NUMERIC;
	}
	message->value[field] = at;
	message->length[field] = (uint16_t)length;
	cursor->offset = (size_t)(at - cursor->data) + wire;
	return ISO8583_OK;
}

enum iso8583_error iso8583_unpack(enum iso8583_framing framing, const uint8_t *data,
				  size_t length, struct iso8583_message *message,
				  unsigned *error_field)
{
	unsigned unused;
	if (error_field == NULL)
		error_field = &unused;
	*error_field = 0;
	memset(message, 0, sizeof(*message));
	if (length < 4 || !digits_only(data, 4))
		return ISO8583_ERROR_MTI;
	memcpy(message->mti, data, 4);
	struct cursor cursor = { .data = data, .length = length, .offset = 4 };
	uint8_t bitmap[16] = { 0 };
	enum iso8583_error error = read_bitmap(framing, &cursor, bitmap);
	if (error != ISO8583_OK)
		return error;
	unsigned last = 64;
	if (bitmap[0] & 0x80) {
		error = read_bitmap(framing, &cursor, bitmap + 8);
		if (error != ISO8583_OK)
			return error;
		/* 1987 has no tertiary bitmap: bit 65 must be clear. */
		if (bitmap[8] & 0x80)
			return ISO8583_ERROR_BITMAP;
		last = 128;
	}
	for (unsigned field = 2; field <= last; field++) {
		if (!(bitmap[(field - 1) / 8] & (0x80u >> ((field - 1) % 8))))
			continue;
		error = read_field(framing, &cursor, field, message);
		if (error != ISO8583_OK) {
			*error_field = field;
			return error;
		}
	}
	if (cursor.offset != length)
		return ISO8583_ERROR_TRAILING;
	return ISO8583_OK;
}

/* Packs one field's length prefix and value. Returns bytes written or -error. */
static int write_field(enum iso8583_framing framing, unsigned field, const uint8_t *value,
		       size_t length, uint8_t *out, size_t capacity)
{
	const struct iso8583_field_def *def = &field_defs[field];
	if (def->type == ISO8583_TYPE_B) {
		if (length != def->length_max)
			return -ISO8583_ERROR_TOO_LONG;
	} else {
		enum iso8583_error error = iso8583_check_value(field, value, length);
		if (error != ISO8583_OK)
			return -(int)error;
	}
	bool hex = def->type == ISO8583_TYPE_B && framing == ISO8583_FRAMING_ASCII;
	size_t wire = hex ? 2 * length : length;
	if (capacity < def->length_digits + wire)
		return -ISO8583_ERROR_NO_SPACE;
	size_t at = 0;
	if (def->length_digits != 0) {
		char digits[4];
		iso8583_format_u64(length, def->length_digits, digits);
		memcpy(out, digits, def->length_digits);
		at = def->length_digits;
	}
	if (hex)
		hex_encode(value, length, out + at);
	else
		memcpy(out + at, value, length);
	return (int)(at + wire);
}

static int write_bitmap(enum iso8583_framing framing, const uint8_t bits[8], uint8_t *out,
			size_t capacity)
{
	size_t size = framing == ISO8583_FRAMING_BINARY ? 8 : 16;
	if (capacity < size)
		return -ISO8583_ERROR_NO_SPACE;
	if (framing == ISO8583_FRAMING_BINARY)
		memcpy(out, bits, 8);
	else
		hex_encode(bits, 8, out);
	return (int)size;
}

int iso8583_pack(enum iso8583_framing framing, const struct iso8583_message *message,
		 uint8_t *out, size_t capacity, unsigned *error_field)
{
	unsigned unused;
	if (error_field == NULL)
		error_field = &unused;
	*error_field = 0;
	if (!digits_only((const uint8_t *)message->mti, 4))
		return -ISO8583_ERROR_MTI;
	uint8_t bitmap[16] = { 0 };
	bool secondary = false;
	for (unsigned field = 2; field <= ISO8583_FIELD_MAX; field++) {
		if (message->value[field] == NULL)
			continue;
		bitmap[(field - 1) / 8] |= (uint8_t)(0x80u >> ((field - 1) % 8));
		secondary |= field > 64;
	}
	if (secondary)
		bitmap[0] |= 0x80;
	size_t prefix = iso8583_prefix_size(framing);
	if (capacity < prefix + 4)
		return -ISO8583_ERROR_NO_SPACE;
	size_t at = prefix;
	memcpy(out + at, message->mti, 4);
	at += 4;
	for (unsigned half = 0; half < (secondary ? 2u : 1u); half++) {
		int n = write_bitmap(framing, bitmap + 8 * half, out + at, capacity - at);
		if (n < 0)
			return n;
		at += (size_t)n;
	}
	for (unsigned field = 2; field <= ISO8583_FIELD_MAX; field++) {
		if (message->value[field] == NULL)
			continue;
		int n = write_field(framing, field, message->value[field], message->length[field],
				    out + at, capacity - at);
		if (n < 0) {
			*error_field = field;
			return n;
		}
		at += (size_t)n;
	}
	size_t body = at - prefix;
	if (body > (framing == ISO8583_FRAMING_ASCII ? 9999u : ISO8583_MESSAGE_MAX))
		return -ISO8583_ERROR_FRAME_LENGTH;
	if (framing == ISO8583_FRAMING_BINARY) {
		out[0] = (uint8_t)(body >> 8);
		out[1] = (uint8_t)body;
	} else {
		char digits[5];
		iso8583_format_u64(body, 4, digits);
		memcpy(out, digits, 4);
	}
	return (int)at;
}

bool iso8583_parse_u64(const uint8_t *digits, size_t length, uint64_t *value)
{
	if (length == 0 || length > 19)
		return false;
	uint64_t result = 0;
	for (size_t i = 0; i < length; i++) {
		if (!is_digit(digits[i]))
			return false;
		result = result * 10u + (uint64_t)(digits[i] - '0');
	}
	*value = result;
	return true;
}

bool iso8583_format_u64(uint64_t value, unsigned width, char *out)
{
	assert(width >= 1 && width <= 20);
	for (unsigned i = width; i-- > 0;) {
		out[i] = (char)('0' + value % 10u);
		value /= 10u;
	}
	return value == 0;
}

bool iso8583_response_mti(const char mti[4], char response[4])
{
	if (!digits_only((const uint8_t *)mti, 4))
		return false;
	if (mti[2] != '0' && mti[2] != '2')
		return false;
	response[0] = mti[0];
	response[1] = mti[1];
	response[2] = (char)(mti[2] + 1);
	response[3] = '0';
	return true;
}
