/*
 * test_tls.c — the gateway's TLS listeners and source allow-lists against the
 * real switch (`payswitch start` + `payswitch gateway` as child processes),
 * with a real TLS client (Node's tls module: tls_client.js). Certificates are
 * made at test time with `openssl req` in the test's temp dir (bounded by
 * `timeout`); no private key is committed.
 *
 * The binary listener is TLS with a server certificate only; the ASCII
 * listener is TLS and verifies client certificates against a CA. Checked: a
 * purchase over TLS is approved and charged once; a plaintext client of a TLS
 * listener gets no answer and nothing is charged; without a client
 * certificate the verifying listener refuses the handshake (nothing charged),
 * with one signed by the CA it approves; a source outside the allow-list is
 * closed at accept, counted in the log, and nothing is charged. The gateway
 * reads its acquirer key and allow-list from a --config file (config keys
 * `key` and `binary-allow`), so an approval also shows the key was used;
 * without the key the switch serves nothing (91).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "harness.h"
#include "iso8583.h"

#define FUNDING 1u
#define CARD 2u
#define MERCHANT 3u
#define CARD_PAN "4000000000000002"
#define START_BALANCE 1000000

#ifndef TLS_CLIENT_JS
#error "TLS_CLIENT_JS: the path of tls_client.js (tests/iso8583/meson.build)"
#endif

static struct harness h;
static pid_t gateway_pid;
static uint16_t port_binary, port_ascii;
static char field7[11];
static char log_path[400];

static void run_shell(const char *command)
{
	int status = system(command);
	cr_assert(status == 0, "failed (%d): %s", status, command);
}

/* A CA, a server certificate signed by it, and a client certificate signed
 * by it; EC P-256 keys, valid one day. Every openssl run is bounded. */
static void make_certificates(void)
{
	char command[4096];
	snprintf(command, sizeof(command),
		 "cd '%s' && T='timeout 20 openssl' && "
		 "$T req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout ca.key -out ca.pem -days 1 -subj /CN=payswitch-test-ca 2>/dev/null && "
		 "$T req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null && "
		 "$T x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "-out server.pem -days 1 2>/dev/null && "
		 "$T req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout client.key -out client.csr -subj /CN=acquirer-1 2>/dev/null && "
		 "$T x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "-out client.pem -days 1 2>/dev/null", h.dir);
	run_shell(command);
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
	return fd;
}

/* Starts the gateway: binary TLS, ASCII TLS + client certificates; allow
 * (may be NULL) is the binary listener's allow-list. The acquirer key and
 * the allow-list come from a --config file, the rest from flags. */
static void start_gateway_keyed(const char *allow, bool with_key)
{
	char directory[400], gateway_switch[64], binary[64], ascii[64];
	char cert[400], key[400], ca[400], config[400];
	snprintf(directory, sizeof(directory), "%s/directory.txt", h.dir);
	snprintf(log_path, sizeof(log_path), "%s/gateway.log", h.dir);
	snprintf(cert, sizeof(cert), "%s/server.pem", h.dir);
	snprintf(key, sizeof(key), "%s/server.key", h.dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", h.dir);
	FILE *file = fopen(directory, "w");
	cr_assert(file != NULL);
	fprintf(file, "pan %s %u\nmerchant MERCHANT0000001 %u\n", CARD_PAN, CARD, MERCHANT);
	fclose(file);
	snprintf(config, sizeof(config), "%s/gateway.conf", h.dir);
	file = fopen(config, "w");
	cr_assert(file != NULL);
	if (with_key)
		fprintf(file, "# the gateway's own acquirer key\nkey = %s\n", h.key_path);
	if (allow != NULL)
		fprintf(file, "binary-allow = %s   # only these networks\n", allow);
	fclose(file);
	port_binary = harness_free_port();
	port_ascii = harness_free_port();
	snprintf(gateway_switch, sizeof(gateway_switch), "127.0.0.1:%u", h.port);
	snprintf(binary, sizeof(binary), "127.0.0.1:%u", port_binary);
	snprintf(ascii, sizeof(ascii), "127.0.0.1:%u", port_ascii);
	const char *argv[40] = { "payswitch", "gateway", "--directory", directory,
				 "--switch", gateway_switch, "--config", config,
				 "--listen-binary", binary, "--listen-ascii", ascii,
				 "--binary-tls-cert", cert, "--binary-tls-key", key,
				 "--ascii-tls-cert", cert, "--ascii-tls-key", key,
				 "--ascii-tls-client-ca", ca, "--timeout-ms", "200",
				 /* without the key nothing answers: 91 soon */
				 "--retries", with_key ? "10" : "2" };
	gateway_pid = fork();
	cr_assert(gateway_pid >= 0);
	if (gateway_pid == 0) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(log, 1);
		dup2(log, 2);
		execv(getenv("PAYSWITCH"), (char *const *)argv);
		_exit(127);
	}
	for (int attempt = 0; attempt < 200; attempt++) {
		int fd = connect_port(port_ascii);
		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(20000);
	}
	cr_assert_fail("the gateway does not listen; see %s", log_path);
}

static void start_gateway(const char *allow)
{
	start_gateway_keyed(allow, true);
}

static void stop_gateway(void)
{
	if (gateway_pid <= 0)
		return;
	kill(gateway_pid, SIGTERM);
	int status = 0;
	for (int i = 0; i < 500 && waitpid(gateway_pid, &status, WNOHANG) == 0; i++)
		usleep(10000);
	kill(gateway_pid, SIGKILL);
	waitpid(gateway_pid, NULL, 0);
	gateway_pid = 0;
}

static void setup(void)
{
	harness_init(&h, 2, NULL);
	cr_assert(harness_start(&h, NULL), "the switch did not start; see %s", h.log_path);
	harness_open(&h, FUNDING, LEDGER_ACCOUNT_FUNDING);
	harness_open(&h, CARD, 0);
	harness_open(&h, MERCHANT, LEDGER_ACCOUNT_MERCHANT);
	harness_deposit(&h, FUNDING, CARD, START_BALANCE);
	make_certificates();
	time_t now = time(NULL);
	struct tm utc;
	gmtime_r(&now, &utc);
	strftime(field7, sizeof(field7), "%m%d%H%M%S", &utc);
}

static void teardown(void)
{
	stop_gateway();
	harness_fini(&h);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 90);

/* A 0200 purchase of `amount` minor units, packed in framing. */
static int purchase_frame(enum iso8583_framing framing, const char *stan, const char *amount,
			  uint8_t *out, size_t capacity)
{
	struct iso8583_message m;
	iso8583_message_init(&m, "0200");
	iso8583_set_string(&m, 2, CARD_PAN);
	iso8583_set_string(&m, 3, "000000");
	iso8583_set_string(&m, 4, amount);
	iso8583_set_string(&m, 7, field7);
	iso8583_set_string(&m, 11, stan);
	iso8583_set_string(&m, 41, "TERM0001");
	iso8583_set_string(&m, 42, "MERCHANT0000001");
	iso8583_set_string(&m, 49, "978");
	int size = iso8583_pack(framing, &m, out, capacity, NULL);
	cr_assert_gt(size, 0);
	return size;
}

/* Runs tls_client.js; returns its one line of output in line. */
static void tls_exchange(uint16_t port, enum iso8583_framing framing, const uint8_t *frame,
			 int size, bool client_certificate, char *line, size_t line_size)
{
	char hex[4096];
	for (int i = 0; i < size; i++)
		snprintf(hex + 2 * i, 3, "%02x", frame[i]);
	char command[8192];
	int at = snprintf(command, sizeof(command), "timeout 20 node '%s' 127.0.0.1 %u '%s/ca.pem' %s %s",
			  TLS_CLIENT_JS, port, h.dir,
			  framing == ISO8583_FRAMING_ASCII ? "ascii" : "binary", hex);
	if (client_certificate)
		snprintf(command + at, sizeof(command) - (size_t)at, " '%s/client.pem' '%s/client.key'",
			 h.dir, h.dir);
	FILE *pipe = popen(command, "r");
	cr_assert(pipe != NULL);
	line[0] = '\0';
	char *got = fgets(line, (int)line_size, pipe);
	int status = pclose(pipe);
	cr_assert(got != NULL && status == 0, "tls_client.js failed (%d): %s", status, command);
	line[strcspn(line, "\n")] = '\0';
}

/* The field 39 of a "FRAME hex" line. */
static void answer_code(const char *line, enum iso8583_framing framing, char code[3])
{
	cr_assert(strncmp(line, "FRAME ", 6) == 0, "no answer over TLS: %s", line);
	static uint8_t bytes[4096];
	size_t length = strlen(line + 6) / 2;
	cr_assert(length < sizeof(bytes));
	for (size_t i = 0; i < length; i++) {
		unsigned value = 0;
		sscanf(line + 6 + 2 * i, "%2x", &value);
		bytes[i] = (uint8_t)value;
	}
	struct iso8583_message m;
	size_t prefix = iso8583_prefix_size(framing);
	cr_assert_eq(iso8583_unpack(framing, bytes + prefix, length - prefix, &m, NULL), ISO8583_OK);
	cr_assert(memcmp(m.mti, "0210", 4) == 0);
	cr_assert(iso8583_has(&m, 39));
	memcpy(code, m.value[39], 2);
	code[2] = '\0';
}

Test(tls, purchase_over_tls_is_approved)
{
	start_gateway(NULL);
	uint8_t frame[2048];
	int size = purchase_frame(ISO8583_FRAMING_BINARY, "000301", "000000001000", frame,
				  sizeof(frame));
	char line[8192], code[3];
	tls_exchange(port_binary, ISO8583_FRAMING_BINARY, frame, size, false, line, sizeof(line));
	answer_code(line, ISO8583_FRAMING_BINARY, code);
	cr_assert_str_eq(code, "00");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - 1000);
}

Test(tls, plaintext_client_of_a_tls_listener_is_not_charged)
{
	start_gateway(NULL);
	uint8_t frame[2048];
	int size = purchase_frame(ISO8583_FRAMING_BINARY, "000302", "000000001000", frame,
				  sizeof(frame));
	int fd = connect_port(port_binary);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, frame, (size_t)size), size);
	/* The gateway answers with a TLS alert at most, then closes: never an
	 * ISO 8583 answer. Read until closed (bounded: 5 s). */
	uint8_t reply[4096];
	size_t used = 0;
	for (;;) {
		struct pollfd wait = { .fd = fd, .events = POLLIN };
		cr_assert_gt(poll(&wait, 1, 5000), 0, "the gateway kept a plaintext client open");
		ssize_t n = read(fd, reply + used, sizeof(reply) - used);
		if (n <= 0)
			break;
		used += (size_t)n;
		cr_assert(used < sizeof(reply));
	}
	close(fd);
	cr_assert(used < 4 || memcmp(reply + 2, "0210", 4) != 0, "a plaintext answer");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE);
}

Test(tls, client_certificate_is_required_when_verification_is_on)
{
	start_gateway(NULL);
	uint8_t frame[2048];
	int size = purchase_frame(ISO8583_FRAMING_ASCII, "000303", "000000000700", frame,
				  sizeof(frame));
	char line[8192], code[3];
	tls_exchange(port_ascii, ISO8583_FRAMING_ASCII, frame, size, false, line, sizeof(line));
	cr_assert(strncmp(line, "FRAME ", 6) != 0, "answered without a client certificate");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE);
	/* The same message with a certificate signed by the CA is approved. */
	tls_exchange(port_ascii, ISO8583_FRAMING_ASCII, frame, size, true, line, sizeof(line));
	answer_code(line, ISO8583_FRAMING_ASCII, code);
	cr_assert_str_eq(code, "00");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE - 700);
}

Test(tls, source_outside_the_allow_list_is_refused)
{
	start_gateway("10.0.0.0/8,2001:db8::/32");
	uint8_t frame[2048];
	int size = purchase_frame(ISO8583_FRAMING_BINARY, "000304", "000000001000", frame,
				  sizeof(frame));
	char line[8192];
	tls_exchange(port_binary, ISO8583_FRAMING_BINARY, frame, size, false, line, sizeof(line));
	cr_assert(strncmp(line, "FRAME ", 6) != 0, "127.0.0.1 is not in the allow-list: %s", line);
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE);
	stop_gateway();
	/* Counted and logged (the stop line carries the count). */
	FILE *file = fopen(log_path, "r");
	cr_assert(file != NULL);
	char text[4096];
	bool logged = false, counted = false;
	while (fgets(text, sizeof(text), file) != NULL) {
		logged |= strstr(text, "refused: not in the allow-list") != NULL;
		counted |= strstr(text, "1 refused by the allow-list") != NULL;
	}
	fclose(file);
	cr_assert(logged, "no log line for the refused source; see %s", log_path);
	cr_assert(counted, "the refusal is not counted; see %s", log_path);
}

/* Without --key the gateway sends key id 0, which a switch with
 * authentication on (the default) drops unanswered: the message gets 91 after
 * the retries and nothing is charged. */
Test(tls, gateway_without_its_key_is_not_served)
{
	start_gateway_keyed(NULL, false);
	uint8_t frame[2048];
	int size = purchase_frame(ISO8583_FRAMING_BINARY, "000305", "000000001000", frame,
				  sizeof(frame));
	char line[8192], code[3];
	tls_exchange(port_binary, ISO8583_FRAMING_BINARY, frame, size, false, line, sizeof(line));
	answer_code(line, ISO8583_FRAMING_BINARY, code);
	cr_assert_str_eq(code, "91");
	cr_assert_eq(harness_balance(&h, CARD), START_BALANCE);
}
