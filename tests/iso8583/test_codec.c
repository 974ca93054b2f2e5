/*
 * test_codec.c — ISO 8583:1987 codec: byte-exact conformance vectors for every
 * message type the gateway speaks in both framings, round trips, framing and
 * malformed messages.
 *
 * The expected bytes below were written from the standard's field
 * definitions (n fixed, LLVAR n..19 for field 2, n 42 for field 90, LLLVAR
 * an..120 for field 54, LLVAR ans..28 for field 102), the binary framing
 * (2-byte big-endian length, binary bitmap: jPOS PostChannel/PostPackager)
 * and the ASCII framing (4 ASCII digits, upper-case hex bitmap: jPOS
 * ASCIIChannel/ISO87APackager) — not by calling the encoder.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "iso8583.h"

struct field_value {
	unsigned field;
	const char *value;
};

struct vector {
	enum iso8583_framing framing;
	const char *mti;
	struct field_value fields[16];
	size_t size;
	const char *bytes;
};

static const struct vector vectors[] = {
	{ ISO8583_FRAMING_BINARY, "0100", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000001"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"} }, 92,
	  "\x00""Z0100r \x00""\x00""\x00""\xc0""\x80""\x00""1640000000000000020000000000000010001122091946000001TERM0001MERCHANT0000001978" },
	{ ISO8583_FRAMING_BINARY, "0110", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000001"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"} }, 112,
	  "\x00""n0110r \x00""\x00""\x0e""\xc0""\x80""\x00""164000000000000002000000000000001000112209194600000100000012345612345600TERM0001MERCHANT0000001978" },
	{ ISO8583_FRAMING_BINARY, "0200", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000002"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"} }, 92,
	  "\x00""Z0200r \x00""\x00""\x00""\xc0""\x80""\x00""1640000000000000020000000000000010001122091946000002TERM0001MERCHANT0000001978" },
	{ ISO8583_FRAMING_BINARY, "0210", { {2, "4000000000000002"}, {3, "310000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000002"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {54, "0002978C000000097000"} }, 135,
	  "\x00""\x85""0210r \x00""\x00""\x0e""\xc0""\x84""\x00""164000000000000002310000000000001000112209194600000200000012345612345600TERM0001MERCHANT00000019780200002978C000000097000" },
	{ ISO8583_FRAMING_BINARY, "0220", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000003"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 142,
	  "\x00""\x8c""0220\xf2"" \x00""\x00""\x00""\xc0""\x80""\x00""\x00""\x00""\x00""@\x00""\x00""\x00""\x00""1640000000000000020000000000000010001122091946000003TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_BINARY, "0230", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000003"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 162,
	  "\x00""\xa0""0230\xf2"" \x00""\x00""\x0e""\xc0""\x80""\x00""\x00""\x00""\x00""@\x00""\x00""\x00""\x00""164000000000000002000000000000001000112209194600000300000012345612345600TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_BINARY, "0400", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000004"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 142,
	  "\x00""\x8c""0400\xf2"" \x00""\x00""\x00""\xc0""\x80""\x00""\x00""\x00""\x00""@\x00""\x00""\x00""\x00""1640000000000000020000000000000010001122091946000004TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_BINARY, "0410", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000004"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 162,
	  "\x00""\xa0""0410\xf2"" \x00""\x00""\x0e""\xc0""\x80""\x00""\x00""\x00""\x00""@\x00""\x00""\x00""\x00""164000000000000002000000000000001000112209194600000400000012345612345600TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_BINARY, "0420", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000005"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"}, {102, "ACCT-1"} }, 150,
	  "\x00""\x94""0420\xf2"" \x00""\x00""\x00""\xc0""\x80""\x00""\x00""\x00""\x00""@\x04""\x00""\x00""\x00""1640000000000000020000000000000010001122091946000005TERM0001MERCHANT000000197801000000011122091946000000000000000000000006ACCT-1" },
	{ ISO8583_FRAMING_BINARY, "0421", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000005"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 142,
	  "\x00""\x8c""0421\xf2"" \x00""\x00""\x00""\xc0""\x80""\x00""\x00""\x00""\x00""@\x00""\x00""\x00""\x00""1640000000000000020000000000000010001122091946000005TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_BINARY, "0430", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000005"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 162,
	  "\x00""\xa0""0430\xf2"" \x00""\x00""\x0e""\xc0""\x80""\x00""\x00""\x00""\x00""@\x00""\x00""\x00""\x00""164000000000000002000000000000001000112209194600000500000012345612345600TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_BINARY, "0800", { {7, "1122091946"}, {11, "000009"}, {70, "301"} }, 41,
	  "\x00""'0800\x82"" \x00""\x00""\x00""\x00""\x00""\x00""\x04""\x00""\x00""\x00""\x00""\x00""\x00""\x00""1122091946000009301" },
	{ ISO8583_FRAMING_BINARY, "0810", { {7, "1122091946"}, {11, "000009"}, {39, "00"}, {70, "301"} }, 43,
	  "\x00"")0810\x82"" \x00""\x00""\x02""\x00""\x00""\x00""\x04""\x00""\x00""\x00""\x00""\x00""\x00""\x00""112209194600000900301" },
	{ ISO8583_FRAMING_ASCII, "0100", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000001"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"} }, 102,
	  "009801007220000000C080001640000000000000020000000000000010001122091946000001TERM0001MERCHANT0000001978" },
	{ ISO8583_FRAMING_ASCII, "0110", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000001"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"} }, 122,
	  "01180110722000000EC08000164000000000000002000000000000001000112209194600000100000012345612345600TERM0001MERCHANT0000001978" },
	{ ISO8583_FRAMING_ASCII, "0200", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000002"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"} }, 102,
	  "009802007220000000C080001640000000000000020000000000000010001122091946000002TERM0001MERCHANT0000001978" },
	{ ISO8583_FRAMING_ASCII, "0210", { {2, "4000000000000002"}, {3, "310000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000002"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {54, "0002978C000000097000"} }, 145,
	  "01410210722000000EC08400164000000000000002310000000000001000112209194600000200000012345612345600TERM0001MERCHANT00000019780200002978C000000097000" },
	{ ISO8583_FRAMING_ASCII, "0220", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000003"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 160,
	  "01560220F220000000C0800000000040000000001640000000000000020000000000000010001122091946000003TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_ASCII, "0230", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000003"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 180,
	  "01760230F22000000EC080000000004000000000164000000000000002000000000000001000112209194600000300000012345612345600TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_ASCII, "0400", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000004"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 160,
	  "01560400F220000000C0800000000040000000001640000000000000020000000000000010001122091946000004TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_ASCII, "0410", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000004"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 180,
	  "01760410F22000000EC080000000004000000000164000000000000002000000000000001000112209194600000400000012345612345600TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_ASCII, "0420", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000005"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"}, {102, "ACCT-1"} }, 168,
	  "01640420F220000000C0800000000040040000001640000000000000020000000000000010001122091946000005TERM0001MERCHANT000000197801000000011122091946000000000000000000000006ACCT-1" },
	{ ISO8583_FRAMING_ASCII, "0421", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000005"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 160,
	  "01560421F220000000C0800000000040000000001640000000000000020000000000000010001122091946000005TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_ASCII, "0430", { {2, "4000000000000002"}, {3, "000000"}, {4, "000000001000"}, {7, "1122091946"}, {11, "000005"}, {37, "000000123456"}, {38, "123456"}, {39, "00"}, {41, "TERM0001"}, {42, "MERCHANT0000001"}, {49, "978"}, {90, "010000000111220919460000000000000000000000"} }, 180,
	  "01760430F22000000EC080000000004000000000164000000000000002000000000000001000112209194600000500000012345612345600TERM0001MERCHANT0000001978010000000111220919460000000000000000000000" },
	{ ISO8583_FRAMING_ASCII, "0800", { {7, "1122091946"}, {11, "000009"}, {70, "301"} }, 59,
	  "00550800822000000000000004000000000000001122091946000009301" },
	{ ISO8583_FRAMING_ASCII, "0810", { {7, "1122091946"}, {11, "000009"}, {39, "00"}, {70, "301"} }, 61,
	  "0057081082200000020000000400000000000000112209194600000900301" },
};

static void build(const struct vector *v, struct iso8583_message *m)
{
	iso8583_message_init(m, v->mti);
	for (int i = 0; i < 16 && v->fields[i].field != 0; i++)
		iso8583_set_string(m, v->fields[i].field, v->fields[i].value);
}

Test(codec, pack_is_byte_exact_for_every_message_type_and_framing)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		struct iso8583_message m;
		build(v, &m);
		uint8_t out[1024];
		unsigned field = 0;
		int size = iso8583_pack(v->framing, &m, out, sizeof(out), &field);
		cr_assert_eq(size, (int)v->size, "%s framing %d: size %d, expected %zu (field %u)",
			     v->mti, v->framing, size, v->size, field);
		cr_assert(memcmp(out, v->bytes, v->size) == 0, "%s framing %d: bytes differ",
			  v->mti, v->framing);
	}
}

Test(codec, unpack_of_every_vector_gives_its_fields)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		const uint8_t *bytes = (const uint8_t *)v->bytes;
		size_t offset = 0, length = 0;
		int frame = iso8583_frame_next(v->framing, bytes, v->size, &offset, &length);
		cr_assert_eq(frame, (int)v->size);
		cr_assert_eq(offset + length, v->size);
		/* One byte short: more is needed. */
		cr_assert_eq(iso8583_frame_next(v->framing, bytes, v->size - 1, &offset, &length), 0);
		struct iso8583_message m;
		cr_assert_eq(iso8583_unpack(v->framing, bytes + offset, length, &m, NULL), ISO8583_OK,
			     "%s", v->mti);
		cr_assert(memcmp(m.mti, v->mti, 4) == 0);
		unsigned present = 0;
		for (int f = 0; f < 16 && v->fields[f].field != 0; f++) {
			unsigned n = v->fields[f].field;
			size_t size = strlen(v->fields[f].value);
			cr_assert(iso8583_has(&m, n), "%s field %u", v->mti, n);
			cr_assert_eq(m.length[n], size);
			cr_assert(memcmp(m.value[n], v->fields[f].value, size) == 0);
			present++;
		}
		unsigned found = 0;
		for (unsigned n = 2; n <= ISO8583_FIELD_MAX; n++)
			found += iso8583_has(&m, n);
		cr_assert_eq(found, present);
	}
}

Test(codec, round_trip_of_every_field_type_with_secondary_bitmap)
{
	for (int framing = 0; framing < 2; framing++) {
		struct iso8583_message m;
		iso8583_message_init(&m, "0200");
		static const uint8_t mac[8] = { 0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, 9 };
		iso8583_set_string(&m, 2, "1234567890123456789");      /* n..19, at the maximum */
		iso8583_set_string(&m, 28, "D00000100");                /* x+n 8 */
		iso8583_set_string(&m, 35, "4000000000000002=2512");    /* z..37 */
		iso8583_set_string(&m, 43, "SHOP 1 / CITY, !@#$%^&*()_+-=[]{};:'<>..");
		iso8583_set_string(&m, 48, "");                          /* LLLVAR, empty */
		iso8583_set(&m, 52, mac, 8);                            /* b 64 */
		iso8583_set_string(&m, 70, "301");
		iso8583_set_string(&m, 103, "ACCOUNT-0000000000000000-MAX");
		iso8583_set(&m, 128, mac, 8);
		uint8_t out[1024];
		int size = iso8583_pack(framing, &m, out, sizeof(out), NULL);
		cr_assert_gt(size, 0);
		size_t offset = 0, length = 0;
		cr_assert_eq(iso8583_frame_next(framing, out, (size_t)size, &offset, &length), size);
		struct iso8583_message back;
		cr_assert_eq(iso8583_unpack(framing, out + offset, length, &back, NULL), ISO8583_OK);
		for (unsigned n = 2; n <= 128; n++) {
			cr_assert_eq(iso8583_has(&back, n), iso8583_has(&m, n), "field %u", n);
			if (!iso8583_has(&m, n) || n == 52 || n == 128)
				continue;
			cr_assert_eq(back.length[n], m.length[n]);
			cr_assert(memcmp(back.value[n], m.value[n], m.length[n]) == 0);
		}
		if (framing == ISO8583_FRAMING_BINARY)
			cr_assert(memcmp(back.value[52], mac, 8) == 0);
		else
			cr_assert(memcmp(back.value[52], "0001027F80FEFF09", 16) == 0);
	}
}

Test(codec, pack_refuses_what_unpack_would)
{
	struct iso8583_message m;
	iso8583_message_init(&m, "0100");
	iso8583_set_string(&m, 4, "12AB00000000");
	uint8_t out[256];
	unsigned field = 0;
	cr_assert_eq(iso8583_pack(ISO8583_FRAMING_BINARY, &m, out, sizeof(out), &field),
		     -ISO8583_ERROR_NOT_NUMERIC);
	cr_assert_eq(field, 4);
	iso8583_message_init(&m, "0100");
	iso8583_set_string(&m, 2, "12345678901234567890"); /* 20 > 19 */
	cr_assert_eq(iso8583_pack(ISO8583_FRAMING_ASCII, &m, out, sizeof(out), &field),
		     -ISO8583_ERROR_TOO_LONG);
	iso8583_message_init(&m, "0100");
	iso8583_set_string(&m, 11, "12345"); /* fixed 6 */
	cr_assert_eq(iso8583_pack(ISO8583_FRAMING_ASCII, &m, out, sizeof(out), &field),
		     -ISO8583_ERROR_TOO_LONG);
	iso8583_message_init(&m, "0100");
	iso8583_set_string(&m, 11, "123456");
	cr_assert_eq(iso8583_pack(ISO8583_FRAMING_ASCII, &m, out, 20, &field),
		     -ISO8583_ERROR_NO_SPACE);
}

/* Unpacks a message body given as text (the binary framing unless said). */
static enum iso8583_error unpack_text(enum iso8583_framing framing, const char *text, size_t size,
				      struct iso8583_message *m, unsigned *field)
{
	return iso8583_unpack(framing, (const uint8_t *)text, size, m, field);
}

Test(codec, malformed_messages)
{
	struct iso8583_message m;
	unsigned field = 0;
	/* MTI */
	cr_assert_eq(unpack_text(0, "01", 2, &m, &field), ISO8583_ERROR_MTI);
	cr_assert_eq(unpack_text(0, "01X0\x20\0\0\0\0\0\0\0000001", 18, &m, &field), ISO8583_ERROR_MTI);
	/* Bitmap: truncated, bad hex, bit 65 (no tertiary bitmap in 1987) */
	cr_assert_eq(unpack_text(0, "0100\x20\0\0", 7, &m, &field), ISO8583_ERROR_BITMAP);
	cr_assert(memcmp(m.mti, "0100", 4) == 0, "the MTI is known for the 30 answer");
	cr_assert_eq(unpack_text(1, "01002000000000G00000000001", 26, &m, &field),
		     ISO8583_ERROR_BITMAP);
	cr_assert_eq(unpack_text(1, "0100A0000000000000008000000000000000", 36, &m, &field),
		     ISO8583_ERROR_BITMAP);
	/* Field 2 announcing 20 digits (> 19) */
	cr_assert_eq(unpack_text(0, "0100\x40\0\0\0\0\0\0\0" "2012345678901234567890", 34, &m,
				 &field), ISO8583_ERROR_TOO_LONG);
	cr_assert_eq(field, 2);
	/* LL not digits */
	cr_assert_eq(unpack_text(0, "0100\x40\0\0\0\0\0\0\0" "1A1234", 18, &m, &field),
		     ISO8583_ERROR_LENGTH_DIGITS);
	/* Non-digits in n fields: 3 and 11; 2 in the ASCII framing */
	cr_assert_eq(unpack_text(0, "0100\x20\0\0\0\0\0\0\0" "00A000", 18, &m, &field),
		     ISO8583_ERROR_NOT_NUMERIC);
	cr_assert_eq(field, 3);
	cr_assert_eq(unpack_text(1, "01004000000000000000" "0412 4", 26, &m, &field),
		     ISO8583_ERROR_NOT_NUMERIC);
	/* A field beyond the end; fields before it stay parsed */
	cr_assert_eq(unpack_text(0, "0100\x30\0\0\0\0\0\0\0" "000000" "00000000", 26, &m, &field),
		     ISO8583_ERROR_TRUNCATED);
	cr_assert_eq(field, 4);
	cr_assert(iso8583_has(&m, 3) && !iso8583_has(&m, 4));
	/* Trailing bytes */
	cr_assert_eq(unpack_text(0, "0100\x20\0\0\0\0\0\0\0" "000000X", 19, &m, &field),
		     ISO8583_ERROR_TRAILING);
	/* b field not hex in the ASCII framing (field 52) */
	cr_assert_eq(unpack_text(1, "01000000000000001000" "000102030405060Z", 36, &m, &field),
		     ISO8583_ERROR_BAD_HEX);
}

Test(codec, framing_prefixes_and_keepalives)
{
	size_t offset = 0, length = 0;
	const uint8_t zero_binary[2] = { 0, 0 };
	cr_assert_eq(iso8583_frame_next(ISO8583_FRAMING_BINARY, zero_binary, 2, &offset, &length), 2);
	cr_assert_eq(length, 0, "a zero-length frame is a keep-alive");
	cr_assert_eq(iso8583_frame_next(ISO8583_FRAMING_ASCII, (const uint8_t *)"0000", 4, &offset,
					&length), 4);
	cr_assert_eq(length, 0);
	cr_assert_eq(iso8583_frame_next(ISO8583_FRAMING_ASCII, (const uint8_t *)"00A1", 4, &offset,
					&length), -ISO8583_ERROR_PREFIX);
	const uint8_t huge[2] = { 0x23, 0x29 }; /* 9001 > 8192 */
	cr_assert_eq(iso8583_frame_next(ISO8583_FRAMING_BINARY, huge, 2, &offset, &length),
		     -ISO8583_ERROR_FRAME_LENGTH);
	cr_assert_eq(iso8583_frame_next(ISO8583_FRAMING_ASCII, (const uint8_t *)"9000", 4, &offset,
					&length), -ISO8583_ERROR_FRAME_LENGTH);
	cr_assert_eq(iso8583_frame_next(ISO8583_FRAMING_BINARY, zero_binary, 1, &offset, &length), 0);
}

Test(codec, response_mti_and_numbers)
{
	char out[4];
	cr_assert(iso8583_response_mti("0100", out) && memcmp(out, "0110", 4) == 0);
	cr_assert(iso8583_response_mti("0101", out) && memcmp(out, "0110", 4) == 0);
	cr_assert(iso8583_response_mti("0421", out) && memcmp(out, "0430", 4) == 0);
	cr_assert(iso8583_response_mti("0220", out) && memcmp(out, "0230", 4) == 0);
	cr_assert(!iso8583_response_mti("0110", out));
	cr_assert(!iso8583_response_mti("01A0", out));
	uint64_t value = 0;
	cr_assert(iso8583_parse_u64((const uint8_t *)"000000001000", 12, &value) && value == 1000);
	cr_assert(!iso8583_parse_u64((const uint8_t *)"12 4", 4, &value));
	cr_assert(!iso8583_parse_u64((const uint8_t *)"99999999999999999999", 20, &value));
	char digits[6];
	cr_assert(iso8583_format_u64(42, 6, digits) && memcmp(digits, "000042", 6) == 0);
	cr_assert(!iso8583_format_u64(1000000, 6, digits));
}

Test(codec, every_field_is_defined)
{
	for (unsigned n = 1; n <= 128; n++) {
		const struct iso8583_field_def *d = iso8583_field_def(n);
		cr_assert(d->type != ISO8583_TYPE_NONE && d->length_max > 0 && d->name != NULL,
			  "field %u", n);
		cr_assert(d->length_digits == 0 || d->length_digits == 2 || d->length_digits == 3);
	}
	cr_assert_eq(iso8583_field_def(2)->length_max, 19);
	cr_assert_eq(iso8583_field_def(90)->length_max, 42);
	cr_assert_eq(iso8583_field_def(102)->length_digits, 2);
}
