/* ledger_state_save / ledger_state_load: a loaded ledger behaves identically. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_test_util.h"

struct buffer {
	unsigned char *data;
	size_t size, capacity, offset;
};

static int buffer_write(void *context, const void *data, size_t size)
{
	struct buffer *buffer = context;
	if (buffer->size + size > buffer->capacity) {
		buffer->capacity = (buffer->size + size) * 2;
		buffer->data = realloc(buffer->data, buffer->capacity);
		cr_assert_not_null(buffer->data);
	}
	memcpy(buffer->data + buffer->size, data, size);
	buffer->size += size;
	return 0;
}

static int buffer_read(void *context, void *data, size_t size)
{
	struct buffer *buffer = context;
	if (buffer->offset + size > buffer->size)
		return -ENODATA;
	memcpy(data, buffer->data + buffer->offset, size);
	buffer->offset += size;
	return 0;
}

static struct ledger_config config;
static struct lt a, b;
enum { BANK = 1, ACCOUNTS = 40 };

static uint64_t rng = 99;
static uint64_t next(void)
{
	rng = rng * 6364136223846793005u + 1442695040888963407u;
	return rng >> 33;
}

/* A varied request on the given lt (ids from t->next_id), reusing old ids now and then. */
static struct ledger_request random_request(struct lt *t)
{
	static const uint8_t kinds[] = { LEDGER_KIND_PAY, LEDGER_KIND_PAY, LEDGER_KIND_PAY, LEDGER_KIND_HOLD,
					 LEDGER_KIND_CAPTURE, LEDGER_KIND_VOID, LEDGER_KIND_REFUND,
					 LEDGER_KIND_DEPOSIT, LEDGER_KIND_FREEZE };
	uint64_t r = next();
	struct ledger_request request = lt_req(t, kinds[r % sizeof(kinds)], 2 + next() % ACCOUNTS,
					       2 + next() % ACCOUNTS, next() % 300);
	if (request.kind == LEDGER_KIND_DEPOSIT)
		request.account_id = BANK;
	if (request.kind == LEDGER_KIND_HOLD)
		request.hold_timeout_us = 1 + next() % 5000;
	if (request.kind == LEDGER_KIND_CAPTURE || request.kind == LEDGER_KIND_VOID ||
	    request.kind == LEDGER_KIND_REFUND)
		request.reference_id = t->next_id - 1 - next() % 200;
	if (request.kind == LEDGER_KIND_FREEZE)
		request.flags = next() % 4 == 0;
	return request;
}

static void build(void)
{
	lt_config(&config);
	config.transfers_max = 300; /* evictions and a watermark are part of the state */
	config.holds_max = 32;
	lt_init(&a, &config);
	lt_open(&a, BANK, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	for (uint64_t id = 2; id < 2 + ACCOUNTS; id++) {
		struct ledger_request open = lt_req(&a, LEDGER_KIND_OPEN, id, 0, id % 3 == 0 ? 100 : 0);
		open.limit_daily = id % 5 == 0 ? 2000 : 0;
		LT_CODE(lt_do(&a, open), LEDGER_OK);
		LT_CODE(lt_deposit(&a, BANK, id, 1000), LEDGER_OK);
	}
	for (int i = 0; i < 2000; i++) {
		a.now += next() % 50;
		lt_do(&a, random_request(&a));
	}
}

static void save_load(struct buffer *buffer)
{
	memset(buffer, 0, sizeof(*buffer));
	cr_assert_eq(ledger_state_save(a.ledger, buffer_write, buffer), 0);
	lt_init(&b, &config);
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, buffer, NULL), 0);
	cr_assert_eq(buffer->offset, buffer->size);
	b.now = a.now;
	b.next_id = a.next_id;
}

Test(state, loaded_ledger_behaves_identically)
{
	build();
	struct buffer buffer;
	save_load(&buffer);
	cr_assert_eq(ledger_account_count(a.ledger), ledger_account_count(b.ledger));
	cr_assert_eq(ledger_hold_count(a.ledger), ledger_hold_count(b.ledger));
	cr_assert_gt(ledger_hold_count(a.ledger), 0);
	cr_assert_eq(ledger_sequence(a.ledger), ledger_sequence(b.ledger));
	cr_assert_eq(ledger_now(a.ledger), ledger_now(b.ledger));
	for (int i = 0; i < 5000; i++) {
		uint64_t step = next() % 60;
		a.now += step;
		b.now += step;
		struct ledger_request request = random_request(&a);
		b.next_id = a.next_id;
		if (i % 50 == 7) /* replay an old request: duplicate, TOO_OLD or ID_REUSED */
			request.id -= 250 + next() % 100;
		struct ledger_result ra = lt_do(&a, request);
		struct ledger_result rb = lt_do(&b, request);
		cr_assert_eq(memcmp(&ra, &rb, sizeof(ra)), 0, "step %d: %s vs %s", i,
			     ledger_result_name(ra.code), ledger_result_name(rb.code));
	}
	for (uint64_t id = 1; id < 2 + ACCOUNTS; id++)
		cr_assert_eq(memcmp(ledger_account_get(a.ledger, id), ledger_account_get(b.ledger, id),
				    sizeof(struct ledger_account)), 0);
	/* Saving both again gives byte-identical state streams but for slot order:
	 * compare sizes and the headers. */
	struct buffer again_a = { 0 }, again_b = { 0 };
	ledger_state_save(a.ledger, buffer_write, &again_a);
	ledger_state_save(b.ledger, buffer_write, &again_b);
	cr_assert_eq(again_a.size, again_b.size);
	cr_assert_eq(memcmp(again_a.data, again_b.data, 512), 0);
	free(again_a.data);
	free(again_b.data);
	free(buffer.data);
	lt_fini(&a);
	lt_fini(&b);
}

Test(state, refuses_what_does_not_fit)
{
	build();
	struct buffer buffer = { 0 };
	cr_assert_eq(ledger_state_save(a.ledger, buffer_write, &buffer), 0);
	/* into a ledger that is not fresh */
	cr_assert_eq(ledger_state_load(a.ledger, buffer_read, &buffer, NULL), -EINVAL);
	/* into another config */
	struct ledger_config other = config;
	other.accounts_max++;
	lt_init(&b, &other);
	buffer.offset = 0;
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, NULL), -EBADMSG);
	lt_fini(&b);
	/* truncated */
	lt_init(&b, &config);
	buffer.offset = 0;
	buffer.size -= 10;
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, NULL), -ENODATA);
	lt_fini(&b);
	/* corrupt magic */
	buffer.size += 10;
	buffer.data[0] ^= 1;
	lt_init(&b, &config);
	buffer.offset = 0;
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, NULL), -EBADMSG);
	lt_fini(&b);
	free(buffer.data);
	lt_fini(&a);
}

static int failing_write(void *context, const void *data, size_t size)
{
	(void)data;
	(void)size;
	return --*(int *)context > 0 ? 0 : -EIO;
}

Test(state, write_errors_propagate)
{
	build();
	int budget = 5;
	cr_assert_eq(ledger_state_save(a.ledger, failing_write, &budget), -EIO);
	lt_fini(&a);
}

/* Finds the first place where two u64 values follow each other in the stream. */
static size_t find_pair(const struct buffer *buffer, uint64_t first, uint64_t second)
{
	for (size_t at = 0; at + 16 <= buffer->size; at += 8) {
		uint64_t words[2];
		memcpy(words, buffer->data + at, sizeof(words));
		if (words[0] == first && words[1] == second)
			return at;
	}
	cr_assert_fail("pattern not in the state stream");
	return 0;
}

/* Issue 16, defect 11: a snapshot is trusted no further than the rules. A hold
 * in a currency its account does not have loaded, and the first capture
 * aborted; now the load refuses it and says why. */
Test(state, refuses_a_hold_in_another_currency)
{
	lt_config(&config);
	lt_init(&a, &config);
	lt_open(&a, BANK, LEDGER_ACCOUNT_FUNDING, 0, 0, 0);
	lt_open(&a, 2, 0, 0, 0, 0);
	lt_open(&a, 3, LEDGER_ACCOUNT_MERCHANT, 0, 0, 0);
	LT_CODE(lt_deposit(&a, BANK, 2, 1000), LEDGER_OK);
	struct ledger_result hold = lt_hold(&a, 2, 3, 400, 0);
	LT_CODE(hold, LEDGER_OK);
	struct buffer buffer = { 0 };
	cr_assert_eq(ledger_state_save(a.ledger, buffer_write, &buffer), 0);
	/* struct ledger_hold: id, account_id, other_id, amount, expires, heap index, currency */
	size_t at = find_pair(&buffer, hold.id, 2);
	uint16_t currency = 840;
	memcpy(buffer.data + at + 44, &currency, sizeof(currency));
	lt_init(&b, &config);
	struct ledger_violation violation = { .text = "" };
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, &violation), -EBADMSG);
	cr_assert(strstr(violation.text, "currency 840") != NULL, "%s", violation.text);
	lt_fini(&b);
	/* A hold larger than its account holds. */
	currency = 978;
	memcpy(buffer.data + at + 44, &currency, sizeof(currency));
	uint64_t amount = 401;
	memcpy(buffer.data + at + 24, &amount, sizeof(amount));
	lt_init(&b, &config);
	buffer.offset = 0;
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, &violation), -EBADMSG);
	cr_assert(strstr(violation.text, "impossible") != NULL, "%s", violation.text);
	lt_fini(&b);
	/* An account below its floor. */
	amount = 400;
	memcpy(buffer.data + at + 24, &amount, sizeof(amount));
	size_t account = find_pair(&buffer, 2, 1000);
	int64_t balance = -5;
	memcpy(buffer.data + account + 8, &balance, sizeof(balance));
	lt_init(&b, &config);
	buffer.offset = 0;
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, &violation), -EBADMSG);
	cr_assert(strstr(violation.text, "account 2") != NULL, "%s", violation.text);
	lt_fini(&b);
	/* Put right, it loads. */
	balance = 1000;
	memcpy(buffer.data + account + 8, &balance, sizeof(balance));
	lt_init(&b, &config);
	buffer.offset = 0;
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, &violation), 0, "%s",
		     violation.text);
	lt_fini(&b);
	free(buffer.data);
	lt_fini(&a);
}

/* A state of another layout version is told apart from a bad one, and leaves
 * the ledger untouched, so recovery can fall back to the journal. */
Test(state, another_version_leaves_the_ledger_untouched)
{
	build();
	struct buffer buffer = { 0 };
	cr_assert_eq(ledger_state_save(a.ledger, buffer_write, &buffer), 0);
	uint32_t version;
	memcpy(&version, buffer.data + 8, sizeof(version)); /* after the u64 magic */
	uint32_t older = version - 1;
	memcpy(buffer.data + 8, &older, sizeof(older));
	lt_init(&b, &config);
	struct ledger_violation violation = { .text = "" };
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, &violation),
		     -EPROTONOSUPPORT);
	cr_assert(strstr(violation.text, "state version") != NULL, "%s", violation.text);
	memcpy(buffer.data + 8, &version, sizeof(version));
	buffer.offset = 0;
	cr_assert_eq(ledger_state_load(b.ledger, buffer_read, &buffer, &violation), 0, "%s",
		     violation.text);
	cr_assert_eq(ledger_account_count(b.ledger), ledger_account_count(a.ledger));
	lt_fini(&b);
	free(buffer.data);
	lt_fini(&a);
}
