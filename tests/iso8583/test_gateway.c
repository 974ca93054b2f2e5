/*
 * test_gateway.c — `payswitch gateway` in front of the real switch: both run
 * as child processes on free ports with a temp data dir; the test talks ISO
 * 8583 over TCP and checks answers, echoes, balances, exactly-once on
 * retransmission, reversal idempotency, malformed messages and pipelining
 * over many connections.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "iso8583.h"

#define FUNDING 1u
#define CARD 2u
#define MERCHANT 3u
#define POOR_CARD 5u
#define CARD_PAN "4000000000000002"
#define POOR_PAN "4000000000000005"
#define START_BALANCE 1000000

static struct harness h;
static pid_t gateway_pid;
static uint16_t port_binary, port_ascii;
static char field7[11];

static void write_directory(const char *path)
{
	FILE *file = fopen(path, "w");
	cr_assert(file != NULL);
	fprintf(file, "# test directory\npan %s %u\npan %s %u\nmerchant MERCHANT0000001 %u\n"
		"terminal TERM0001 %u\n", CARD_PAN, CARD, POOR_PAN, POOR_CARD, MERCHANT, MERCHANT);
	fclose(file);
}

static int connect_port(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port),
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void send_bytes(int fd, const void *bytes, size_t size)
{
	cr_assert_eq(write(fd, bytes, size), (ssize_t)size);
}

static void send_message(int fd, enum iso8583_framing framing, const struct iso8583_message *m)
{
	uint8_t out[2048];
	int size = iso8583_pack(framing, m, out, sizeof(out), NULL);
	cr_assert_gt(size, 0);
	send_bytes(fd, out, (size_t)size);
}

/* Reads one whole frame (5 s at most) into buffer; returns its size, 0 when
 * the connection closed, -1 on timeout. */
static int receive_frame(int fd, enum iso8583_framing framing, uint8_t *buffer, size_t capacity)
{
	size_t used = 0, offset = 0, length = 0;
	for (;;) {
		int frame = iso8583_frame_next(framing, buffer, used, &offset, &length);
		if (frame > 0)
			return frame;
		struct pollfd wait = { .fd = fd, .events = POLLIN };
		if (poll(&wait, 1, 5000) <= 0)
			return -1;
		/* Read only up to the frame's end: one frame per call. */
		size_t want = used < iso8583_prefix_size(framing) ? iso8583_prefix_size(framing) - used
			      : iso8583_prefix_size(framing) + ((framing == ISO8583_FRAMING_BINARY)
				? (size_t)(buffer[0] << 8 | buffer[1])
				: (size_t)atoi((char[5]){ buffer[0], buffer[1], buffer[2], buffer[3], 0 })) - used;
		cr_assert(used + want <= capacity);
		ssize_t n = read(fd, buffer + used, want);
		if (n <= 0)
			return 0;
		used += (size_t)n;
	}
}

/* Receives one response into *m (values point into buffer). */
static void receive_message(int fd, enum iso8583_framing framing, uint8_t *buffer, size_t capacity,
			    struct iso8583_message *m, int *frame_size)
{
	int size = receive_frame(fd, framing, buffer, capacity);
	cr_assert_gt(size, 0, "no answer from the gateway");
	size_t prefix = iso8583_prefix_size(framing);
	cr_assert_eq(iso8583_unpack(framing, buffer + prefix, (size_t)size - prefix, m, NULL),
		     ISO8583_OK);
	if (frame_size)
		*frame_size = size;
}

static bool field_is(const struct iso8583_message *m, unsigned field, const char *text)
{
	return iso8583_has(m, field) && m->length[field] == strlen(text) &&
	       memcmp(m->value[field], text, m->length[field]) == 0;
}

static void start_gateway(void)
{
	char directory[400], gateway_switch[64], binary[64], ascii[64], log_path[400];
	snprintf(directory, sizeof(directory), "%s/directory.txt", h.dir);
	snprintf(log_path, sizeof(log_path), "%s/gateway.log", h.dir);
	write_directory(directory);
	port_binary = harness_free_port();
	port_ascii = harness_free_port();
	snprintf(gateway_switch, sizeof(gateway_switch), "127.0.0.1:%u", h.port);
	snprintf(binary, sizeof(binary), "127.0.0.1:%u", port_binary);
	snprintf(ascii, sizeof(ascii), "127.0.0.1:%u", port_ascii);
	gateway_pid = fork();
	cr_assert(gateway_pid >= 0);
	if (gateway_pid == 0) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(log, 1);
		dup2(log, 2);
		execl(getenv("PAYSWITCH"), "payswitch", "gateway", "--directory", directory,
		      "--switch", gateway_switch, "--key", h.key_path, "--listen-binary", binary,
		      "--listen-ascii", ascii, "--timeout-ms", "200", "--retries", "10",
		      (char *)NULL);
		_exit(127);
	}
	for (int attempt = 0; attempt < 200; attempt++) {
		int fd = connect_port(port_binary);
		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(20000);
	}
	cr_assert_fail("the gateway does not listen; see %s", log_path);
}

static void setup(void)
{
	harness_init(&h, 2, NULL);
	cr_assert(harness_start(&h, NULL), "the switch did not start; see %s", h.log_path);
	harness_open(&h, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&h, CARD, 0);
	harness_open(&h, POOR_CARD, 0);
	harness_open(&h, MERCHANT, LEDGER_ACCOUNT_MERCHANT);
	harness_deposit(&h, FUNDING, CARD, START_BALANCE);
	start_gateway();
	time_t now = time(NULL);
	struct tm utc;
	gmtime_r(&now, &utc);
	strftime(field7, sizeof(field7), "%m%d%H%M%S", &utc);
}

static void teardown(void)
{
	if (gateway_pid > 0) {
		kill(gateway_pid, SIGTERM);
		int status = 0;
		for (int i = 0; i < 500 && waitpid(gateway_pid, &status, WNOHANG) == 0; i++)
			usleep(10000);
		kill(gateway_pid, SIGKILL);
		waitpid(gateway_pid, NULL, 0);
		gateway_pid = 0;
	}
	harness_fini(&h);
}

TestSuite(gateway, .init = setup, .fini = teardown, .timeout = 60);

/* A card message: 2, 3, 4, 7, 11, 41, 42, 49. */
static void card_message(struct iso8583_message *m, const char *mti, const char *pan,
			 const char *code, const char *amount, const char *stan)
{
	iso8583_message_init(m, mti);
	iso8583_set_string(m, 2, pan);
	iso8583_set_string(m, 3, code);
	iso8583_set_string(m, 4, amount);
	iso8583_set_string(m, 7, field7);
	iso8583_set_string(m, 11, stan);
	iso8583_set_string(m, 41, "TERM0001");
	iso8583_set_string(m, 42, "MERCHANT0000001");
	iso8583_set_string(m, 49, "978");
}

static void assert_echo(const struct iso8583_message *request, const struct iso8583_message *answer)
{
	static const unsigned echoed[] = { 2, 3, 4, 7, 11, 41, 42, 49 };
	for (size_t i = 0; i < sizeof(echoed) / sizeof(echoed[0]); i++) {
		unsigned f = echoed[i];
		cr_assert_eq(iso8583_has(answer, f), iso8583_has(request, f), "field %u", f);
		if (!iso8583_has(request, f))
			continue;
		cr_assert_eq(answer->length[f], request->length[f]);
		cr_assert(memcmp(answer->value[f], request->value[f], request->length[f]) == 0,
			  "field %u is not echoed byte for byte", f);
	}
}

/* Sends one message and returns the answer's field 39 in code[3]. */
static void exchange(int fd, enum iso8583_framing framing, const struct iso8583_message *request,
		     const char *expected_mti, char code[3], uint8_t *raw, int *raw_size)
{
	send_message(fd, framing, request);
	uint8_t buffer[2048];
	struct iso8583_message answer;
	int size = 0;
	receive_message(fd, framing, buffer, sizeof(buffer), &answer, &size);
	cr_assert(memcmp(answer.mti, expected_mti, 4) == 0, "MTI %.4s, expected %s", answer.mti,
		  expected_mti);
	cr_assert(iso8583_has(&answer, 39));
	memcpy(code, answer.value[39], 2);
	code[2] = '\0';
	if (memcmp(request->mti, "08", 2) != 0)
		assert_echo(request, &answer);
	if (raw != NULL) {
		memcpy(raw, buffer, (size_t)size);
		*raw_size = size;
	}
}

Test(gateway, authorization_over_both_framings)
{
	for (int framing = 0; framing < 2; framing++) {
		int fd = connect_port(framing == 0 ? port_binary : port_ascii);
		cr_assert(fd >= 0);
		struct iso8583_message m;
		card_message(&m, "0100", CARD_PAN, "000000", "000000001000", framing ? "000102" : "000101");
		char code[3];
		exchange(fd, (enum iso8583_framing)framing, &m, "0110", code, NULL, NULL);
		cr_assert_str_eq(code, "00");
		close(fd);
	}
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - 2000);
}

Test(gateway, retransmission_is_answered_with_the_original_outcome)
{
	int fd = connect_port(port_binary);
	struct iso8583_message m;
	card_message(&m, "0200", CARD_PAN, "000000", "000000002500", "000201");
	char code[3];
	uint8_t first[2048], second[2048];
	int first_size = 0, second_size = 0;
	exchange(fd, ISO8583_FRAMING_BINARY, &m, "0210", code, first, &first_size);
	cr_assert_str_eq(code, "00");
	exchange(fd, ISO8583_FRAMING_BINARY, &m, "0210", code, second, &second_size);
	cr_assert_eq(first_size, second_size);
	cr_assert(memcmp(first, second, (size_t)first_size) == 0, "the repeat's answer differs");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - 2500, "paid twice");
	/* The same key (41, 11, 7) with another amount: 94. */
	card_message(&m, "0200", CARD_PAN, "000000", "000000009999", "000201");
	exchange(fd, ISO8583_FRAMING_BINARY, &m, "0210", code, NULL, NULL);
	cr_assert_str_eq(code, "94");
	/* A decline is remembered as well. */
	card_message(&m, "0200", POOR_PAN, "000000", "000000000100", "000202");
	exchange(fd, ISO8583_FRAMING_BINARY, &m, "0210", code, NULL, NULL);
	cr_assert_str_eq(code, "51");
	exchange(fd, ISO8583_FRAMING_BINARY, &m, "0210", code, NULL, NULL);
	cr_assert_str_eq(code, "51");
	/* Unknown card and unknown merchant. */
	card_message(&m, "0200", "4999999999999999", "000000", "000000000100", "000203");
	exchange(fd, ISO8583_FRAMING_BINARY, &m, "0210", code, NULL, NULL);
	cr_assert_str_eq(code, "14");
	close(fd);
}

static void set_original(struct iso8583_message *m, char f90[43], const char *mti,
			 const char *stan)
{
	snprintf(f90, 43, "%s%s%s0000000000000000000000", mti, stan, field7);
	iso8583_set_string(m, 90, f90);
}

Test(gateway, purchase_reversal_is_idempotent)
{
	int fd = connect_port(port_binary);
	struct iso8583_message m;
	char code[3], f90[43];
	card_message(&m, "0200", CARD_PAN, "000000", "000000003000", "000301");
	exchange(fd, ISO8583_FRAMING_BINARY, &m, "0210", code, NULL, NULL);
	cr_assert_str_eq(code, "00");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - 3000);
	const char *stans[] = { "000302", "000302", "000303" };
	const char *mtis[] = { "0400", "0400", "0420" };
	for (int i = 0; i < 3; i++) {
		card_message(&m, mtis[i], CARD_PAN, "000000", "000000003000", stans[i]);
		set_original(&m, f90, "0200", "000301");
		exchange(fd, ISO8583_FRAMING_BINARY, &m, i < 2 ? "0410" : "0430", code, NULL, NULL);
		cr_assert_str_eq(code, "00", "reversal %d", i);
	}
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE, "refunded exactly once");
	cr_assert_eq(harness_balance(&h, MERCHANT), 0);
	close(fd);
}

Test(gateway, hold_capture_void)
{
	int fd = connect_port(port_ascii);
	struct iso8583_message m;
	char code[3], f90[43];
	/* Authorize 5000, capture 4000 with an advice. */
	card_message(&m, "0100", CARD_PAN, "000000", "000000005000", "000401");
	exchange(fd, ISO8583_FRAMING_ASCII, &m, "0110", code, NULL, NULL);
	cr_assert_str_eq(code, "00");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - 5000);
	card_message(&m, "0220", CARD_PAN, "000000", "000000004000", "000402");
	set_original(&m, f90, "0100", "000401");
	exchange(fd, ISO8583_FRAMING_ASCII, &m, "0230", code, NULL, NULL);
	cr_assert_str_eq(code, "00");
	exchange(fd, ISO8583_FRAMING_ASCII, &m, "0230", code, NULL, NULL); /* 0220 repeat */
	cr_assert_str_eq(code, "00");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - 4000);
	/* Authorize 700 and reverse it (0420 twice, 0421): one void. */
	card_message(&m, "0100", CARD_PAN, "000000", "000000000700", "000403");
	exchange(fd, ISO8583_FRAMING_ASCII, &m, "0110", code, NULL, NULL);
	cr_assert_str_eq(code, "00");
	const char *mtis[] = { "0420", "0420", "0421" };
	for (int i = 0; i < 3; i++) {
		card_message(&m, mtis[i], CARD_PAN, "000000", "000000000700", "000404");
		set_original(&m, f90, "0100", "000403");
		exchange(fd, ISO8583_FRAMING_ASCII, &m, "0430", code, NULL, NULL);
		cr_assert_str_eq(code, "00");
	}
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - 4000);
	/* Capturing the voided hold is an invalid transaction. */
	card_message(&m, "0220", CARD_PAN, "000000", "000000000700", "000405");
	set_original(&m, f90, "0100", "000403");
	exchange(fd, ISO8583_FRAMING_ASCII, &m, "0230", code, NULL, NULL);
	cr_assert_str_eq(code, "12");
	close(fd);
}

Test(gateway, balance_inquiry_and_network_management)
{
	int fd = connect_port(port_binary);
	struct iso8583_message m;
	card_message(&m, "0200", CARD_PAN, "310000", "000000000000", "000501");
	send_message(fd, ISO8583_FRAMING_BINARY, &m);
	uint8_t buffer[2048];
	struct iso8583_message answer;
	receive_message(fd, ISO8583_FRAMING_BINARY, buffer, sizeof(buffer), &answer, NULL);
	cr_assert(field_is(&answer, 39, "00"));
	cr_assert(field_is(&answer, 54, "0002978C000001000000"), "field 54: %.*s",
		  answer.length[54], answer.value[54]);
	const char *codes[] = { "001", "301", "002" };
	for (int i = 0; i < 3; i++) {
		iso8583_message_init(&m, "0800");
		iso8583_set_string(&m, 7, field7);
		iso8583_set_string(&m, 11, "000502");
		iso8583_set_string(&m, 70, codes[i]);
		send_message(fd, ISO8583_FRAMING_BINARY, &m);
		receive_message(fd, ISO8583_FRAMING_BINARY, buffer, sizeof(buffer), &answer, NULL);
		cr_assert(memcmp(answer.mti, "0810", 4) == 0);
		cr_assert(field_is(&answer, 39, "00") && field_is(&answer, 70, codes[i]) &&
			  field_is(&answer, 11, "000502") && field_is(&answer, 7, field7));
	}
	close(fd);
}

static void expect_code(int fd, enum iso8583_framing framing, const void *bytes, size_t size,
			const char *mti, const char *code)
{
	send_bytes(fd, bytes, size);
	uint8_t buffer[2048];
	struct iso8583_message answer;
	receive_message(fd, framing, buffer, sizeof(buffer), &answer, NULL);
	cr_assert(memcmp(answer.mti, mti, 4) == 0, "MTI %.4s, expected %s", answer.mti, mti);
	cr_assert(field_is(&answer, 39, code), "39 is %.2s, expected %s", answer.value[39], code);
}

static void expect_closed(int fd, const void *bytes, size_t size)
{
	send_bytes(fd, bytes, size);
	uint8_t buffer[256];
	struct pollfd wait = { .fd = fd, .events = POLLIN };
	cr_assert_gt(poll(&wait, 1, 5000), 0);
	cr_assert_leq(read(fd, buffer, sizeof(buffer)), 0, "the connection stays open");
	close(fd);
}

Test(gateway, malformed_messages)
{
	int fd = connect_port(port_binary);
	/* Keep-alives are accepted and not answered. */
	send_bytes(fd, "\0\0\0\0", 4);
	/* Bad bitmap: cut short after the MTI. */
	expect_code(fd, 0, "\x00\x07" "0100\x72\x20\x00", 9, "0110", "30");
	/* Field 2 longer than 19. */
	expect_code(fd, 0, "\x00\x22" "0100\x40\0\0\0\0\0\0\0" "2012345678901234567890", 36, "0110", "30");
	/* Non-digits in field 4. */
	expect_code(fd, 0, "\x00\x18" "0200\x10\0\0\0\0\0\0\0" "0000000010A0", 26, "0210", "30");
	/* Unknown MTI (a request of class 03). */
	expect_code(fd, 0, "\x00\x12" "0300\x20\0\0\0\0\0\0\0" "000000", 20, "0310", "30");
	/* Valid syntax, but no field 7: no idempotency key. */
	expect_code(fd, 0, "\x00\x12" "0200\x20\0\0\0\0\0\0\0" "000000", 20, "0210", "30");
	/* ASCII framing: a bad hex bitmap. */
	int ascii = connect_port(port_ascii);
	expect_code(ascii, 1, "0020" "0100" "72G0000000C08000", 24, "0110", "30");
	/* Cannot be parsed as far as an MTI: closed. */
	expect_closed(fd, "\x00\x06" "01X0\x00\x00", 8);
	/* A bad ASCII length prefix: closed. */
	expect_closed(ascii, "00X40100", 8);
	/* A frame longer than the maximum: closed. */
	int big = connect_port(port_binary);
	expect_closed(big, "\xff\xff" "0100", 6);
	/* Everyone else is still served. */
	int other = connect_port(port_binary);
	struct iso8583_message m;
	char code[3];
	card_message(&m, "0200", CARD_PAN, "000000", "000000000100", "000601");
	exchange(other, ISO8583_FRAMING_BINARY, &m, "0210", code, NULL, NULL);
	cr_assert_str_eq(code, "00");
	close(other);
}

#define PIPE_CONNECTIONS 16
#define PIPE_DEPTH 200

Test(gateway, pipelining_over_many_connections)
{
	int fds[PIPE_CONNECTIONS];
	static uint8_t out[PIPE_DEPTH * 128];
	for (int c = 0; c < PIPE_CONNECTIONS; c++) {
		fds[c] = connect_port(c % 2 ? port_ascii : port_binary);
		cr_assert(fds[c] >= 0);
	}
	/* Every connection writes all its requests before reading any answer. */
	for (int c = 0; c < PIPE_CONNECTIONS; c++) {
		size_t used = 0;
		for (int i = 0; i < PIPE_DEPTH; i++) {
			struct iso8583_message m;
			char stan[7];
			snprintf(stan, sizeof(stan), "%02d%04d", c, i);
			card_message(&m, "0200", CARD_PAN, "000000", "000000000001", stan);
			int size = iso8583_pack(c % 2 ? ISO8583_FRAMING_ASCII : ISO8583_FRAMING_BINARY,
						&m, out + used, sizeof(out) - used, NULL);
			cr_assert_gt(size, 0);
			used += (size_t)size;
		}
		send_bytes(fds[c], out, used);
	}
	for (int c = 0; c < PIPE_CONNECTIONS; c++) {
		bool seen[PIPE_DEPTH] = { false };
		for (int i = 0; i < PIPE_DEPTH; i++) {
			uint8_t buffer[2048];
			struct iso8583_message answer;
			receive_message(fds[c], c % 2 ? ISO8583_FRAMING_ASCII : ISO8583_FRAMING_BINARY,
					buffer, sizeof(buffer), &answer, NULL);
			cr_assert(field_is(&answer, 39, "00"));
			uint64_t stan = 0;
			cr_assert(iso8583_parse_u64(answer.value[11], 6, &stan));
			cr_assert_eq(stan / 10000, (uint64_t)c, "an answer on the wrong connection");
			cr_assert(!seen[stan % 10000], "answered twice");
			seen[stan % 10000] = true;
		}
		close(fds[c]);
	}
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - PIPE_CONNECTIONS * PIPE_DEPTH);
	cr_assert_eq(harness_balance(&h, MERCHANT), PIPE_CONNECTIONS * PIPE_DEPTH);
}
