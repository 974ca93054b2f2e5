/*
 * harness.c — the real switch as a child process, for integration tests.
 */
#include "harness.h"

#include "auth.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *binary(void)
{
	const char *path = getenv("PAYSWITCH");
	cr_assert(path != NULL, "PAYSWITCH (path of the payswitch binary) is not set");
	return path;
}

uint16_t harness_free_port(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert(fd >= 0);
	struct sockaddr_in address = { .sin_family = AF_INET,
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert(bind(fd, (struct sockaddr *)&address, sizeof(address)) == 0);
	socklen_t length = sizeof(address);
	getsockname(fd, (struct sockaddr *)&address, &length);
	close(fd);
	return ntohs(address.sin_port);
}

/* Runs the binary with argv, output appended to the log; waits when `wait`. */
static pid_t run(struct harness *harness, char *const *argv, bool wait, int *status,
		 int stdout_fd)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (!wait && harness->file_size_limit != 0) {
			/* A write past the limit fails with EFBIG instead of killing. */
			signal(SIGXFSZ, SIG_IGN);
			struct rlimit limit = { harness->file_size_limit, harness->file_size_limit };
			setrlimit(RLIMIT_FSIZE, &limit);
		}
		int log = open(harness->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (log >= 0) {
			dup2(stdout_fd >= 0 ? stdout_fd : log, 1);
			dup2(log, 2);
		}
		execv(binary(), argv);
		_exit(127);
	}
	if (wait) {
		int child = 0;
		waitpid(pid, &child, 0);
		*status = WIFEXITED(child) ? WEXITSTATUS(child) : 128 + WTERMSIG(child);
	}
	return pid;
}

void harness_init(struct harness *harness, uint32_t shards, const char *const *format_flags)
{
	memset(harness, 0, sizeof(*harness));
	snprintf(harness->dir, sizeof(harness->dir), "/tmp/payswitch-test-XXXXXX");
	cr_assert(mkdtemp(harness->dir) != NULL);
	snprintf(harness->data_dir, sizeof(harness->data_dir), "%s/data", harness->dir);
	snprintf(harness->log_path, sizeof(harness->log_path), "%s/switch.log", harness->dir);
	harness->shards = shards;
	harness->next_id = ledger_realtime_us() << 8;
	char shards_text[16];
	snprintf(shards_text, sizeof(shards_text), "%u", shards);
	/* Small capacities: a test needs thousands of accounts, not millions, and
	 * allocating a million-account ledger per shard would dominate its time. */
	char *argv[32] = { "payswitch", "format", harness->data_dir, "--shards", shards_text,
			   "--accounts", "100000", "--transfers", "1000000" };
	int argc = 9;
	for (int i = 0; format_flags && format_flags[i] && argc < 31; i++)
		argv[argc++] = (char *)format_flags[i];
	int status = -1;
	run(harness, argv, true, &status, -1);
	cr_assert_eq(status, 0, "payswitch format failed; see %s", harness->log_path);
	snprintf(harness->key_path, sizeof(harness->key_path), "%s/acquirer.key", harness->dir);
	snprintf(harness->admin_key_path, sizeof(harness->admin_key_path), "%s/admin.key",
		 harness->dir);
	const char *admin[] = {"add", "test-admin", "--role", "admin", "--key-out",
			       harness->admin_key_path, NULL};
	const char *acquirer[] = {"add", "test-acquirer", "--role", "acquirer", "--key-out",
				  harness->key_path, NULL};
	cr_assert_eq(harness_client_command(harness, admin), 0, "client add; see %s",
		     harness->log_path);
	cr_assert_eq(harness_client_command(harness, acquirer), 0, "client add; see %s",
		     harness->log_path);
	cr_assert_eq(netio_key_load(harness->admin_key_path, &harness->admin_key), 0);
	cr_assert_eq(netio_key_load(harness->key_path, &harness->key), 0);
}

int harness_client_command(struct harness *harness, const char *const *arguments)
{
	char *argv[32] = { "payswitch", "client" };
	int argc = 2;
	for (int i = 0; arguments[i] != NULL && argc < 28; i++)
		argv[argc++] = (char *)arguments[i];
	argv[argc++] = "--data-dir";
	argv[argc++] = harness->data_dir;
	int status = -1;
	run(harness, argv, true, &status, -1);
	return status;
}

struct netio_client *harness_client_for(struct harness *harness, uint8_t kind)
{
	/* The switch's own role table decides (netio_principal_allows): what
	 * the acquirer may not ask for goes out with the admin key. */
	static const struct netio_principal acquirer = { .key_id = 1,
							 .role = NETIO_ROLE_ACQUIRER };
	struct ledger_request request = { .kind = kind };
	return netio_principal_allows(&acquirer, &request) == LEDGER_OK ? harness->client
									: harness->admin;
}

void harness_seal(struct harness *harness, void *datagram, size_t length, bool admin)
{
	static uint64_t last;
	uint64_t sequence = ledger_realtime_us();
	if (sequence <= last)
		sequence = last + 1;
	last = sequence;
	((struct netio_header *)datagram)->sequence = sequence;
	netio_seal(admin ? &harness->admin_key : &harness->key, datagram, length);
}

/* The end of the switch's log on stderr: why a start failed. */
static void harness_show_log(const struct harness *harness)
{
	FILE *log = fopen(harness->log_path, "r");
	if (log == NULL)
		return;
	static char text[8192];
	fseek(log, 0, SEEK_END);
	long size = ftell(log);
	fseek(log, size > (long)sizeof(text) - 1 ? size - (long)sizeof(text) + 1 : 0, SEEK_SET);
	size_t got = fread(text, 1, sizeof(text) - 1, log);
	text[got] = '\0';
	fclose(log);
	fprintf(stderr, "--- end of %s ---\n%s--- end ---\n", harness->log_path, text);
}

bool harness_start(struct harness *harness, const char *const *flags)
{
	if (harness->port == 0)
		harness->port = harness_free_port();
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", harness->port);
	char metrics[64];
	snprintf(metrics, sizeof(metrics), "127.0.0.1:%u", harness->metrics_port);
	char *argv[48] = { "payswitch", "start", "--data-dir", harness->data_dir, "--listen", listen,
			   "--metrics", metrics };
	int argc = 8;
	for (int i = 0; flags && flags[i] && argc < 47; i++)
		argv[argc++] = (char *)flags[i];
	harness->pid = run(harness, argv, false, NULL, -1);
	if (harness->client == NULL) {
		int error = 0;
		harness->client = netio_client_open_key("127.0.0.1", harness->port, &harness->key,
							&error);
		cr_assert(harness->client != NULL, "client: %s", strerror(-error));
		harness->admin = netio_client_open_key("127.0.0.1", harness->port,
						       &harness->admin_key, &error);
		cr_assert(harness->admin != NULL, "client: %s", strerror(-error));
	}
	/* Ready when a BALANCE of an unknown account is answered. */
	for (int attempt = 0; attempt < 200; attempt++) {
		int status = 0;
		if (waitpid(harness->pid, &status, WNOHANG) == harness->pid) {
			harness->pid = 0;
			harness_show_log(harness);
			return false;
		}
		struct ledger_request probe = harness_request(harness, LEDGER_KIND_BALANCE, 1, 0, 0);
		struct ledger_result result = { 0 };
		if (netio_client_call(harness->client, &probe, 1, &result, 100, 0) == 0)
			return true;
	}
	harness_show_log(harness);
	return false;
}

static int wait_exit(pid_t pid, int seconds)
{
	for (int i = 0; i < seconds * 100; i++) {
		int status = 0;
		pid_t done = waitpid(pid, &status, WNOHANG);
		if (done == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int harness_stop(struct harness *harness)
{
	if (harness->pid == 0)
		return -1;
	kill(harness->pid, SIGTERM);
	int status = wait_exit(harness->pid, 30);
	harness->pid = 0;
	return status;
}

void harness_kill(struct harness *harness)
{
	if (harness->pid == 0)
		return;
	kill(harness->pid, SIGKILL);
	waitpid(harness->pid, NULL, 0);
	harness->pid = 0;
}

int harness_audit(struct harness *harness, const char *extra, char *output, size_t size)
{
	char path[320];
	snprintf(path, sizeof(path), "%s/audit.out", harness->dir);
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(out >= 0);
	char *argv[8] = { "payswitch", "audit", harness->data_dir };
	if (extra != NULL)
		argv[3] = (char *)extra;
	int status = -1;
	run(harness, argv, true, &status, out);
	close(out);
	if (output != NULL && size > 0) {
		FILE *file = fopen(path, "r");
		size_t got = file ? fread(output, 1, size - 1, file) : 0;
		output[got] = '\0';
		if (file)
			fclose(file);
	}
	return status;
}

void harness_fini(struct harness *harness)
{
	harness_kill(harness);
	if (harness->client)
		netio_client_close(harness->client);
	if (harness->admin)
		netio_client_close(harness->admin);
	harness->client = NULL;
	harness->admin = NULL;
	if (getenv("PAYSWITCH_KEEP") == NULL && harness->dir[0] != '\0') {
		char command[400];
		snprintf(command, sizeof(command), "rm -rf '%s'", harness->dir);
		int ignored = system(command);
		(void)ignored;
	}
}

struct ledger_request harness_request(struct harness *harness, uint8_t kind, uint64_t account,
				      uint64_t other, uint64_t amount)
{
	struct ledger_request request = { 0 };
	request.id = ++harness->next_id;
	request.timestamp_us = ledger_realtime_us();
	request.kind = kind;
	request.account_id = account;
	request.other_id = other;
	request.amount = amount;
	request.currency = 978;
	return request;
}

/* BUSY is an answer a client retries (same bytes) after the switch's hint:
 * admission control answers it whenever a request's wait passes the latency
 * bound, which a loaded test machine reaches now and then. */
#define HARNESS_BUSY_ROUNDS 200

static void harness_wait_hint(const struct ledger_result *results, uint32_t count)
{
	uint32_t wait_us = 1000;
	for (uint32_t i = 0; i < count; i++)
		if (results[i].code == LEDGER_BUSY && results[i].retry_after_us > wait_us)
			wait_us = results[i].retry_after_us;
	usleep(wait_us > 100000 ? 100000 : wait_us);
}

struct ledger_result harness_call(struct harness *harness, const struct ledger_request *request)
{
	struct ledger_result result = { 0 };
	for (int round = 0; round < HARNESS_BUSY_ROUNDS; round++) {
		netio_client_call(harness_client_for(harness, request->kind), request, 1, &result,
				  2000, 5);
		if (result.code != LEDGER_BUSY)
			break;
		harness_wait_hint(&result, 1);
	}
	return result;
}

/* Calls requests[0..count) in runs that one client (one role) may send,
 * each run in chunks of up to NETIO_CLIENT_REQUESTS_MAX. */
static int call_by_role(struct harness *harness, const struct ledger_request *requests,
			uint32_t count, struct ledger_result *results)
{
	uint32_t done = 0;
	while (done < count) {
		struct netio_client *client = harness_client_for(harness, requests[done].kind);
		uint32_t chunk = 1;
		while (done + chunk < count && chunk < NETIO_CLIENT_REQUESTS_MAX &&
		       harness_client_for(harness, requests[done + chunk].kind) == client)
			chunk++;
		int called = netio_client_call(client, requests + done, chunk, results + done, 3000,
					       5);
		if (called != 0)
			return called;
		done += chunk;
	}
	return 0;
}

int harness_call_many_once(struct harness *harness, const struct ledger_request *requests,
			   uint32_t count, struct ledger_result *results)
{
	uint32_t done = 0;
	while (done < count) {
		uint32_t chunk = count - done;
		if (chunk > NETIO_CLIENT_REQUESTS_MAX)
			chunk = NETIO_CLIENT_REQUESTS_MAX;
		int called = call_by_role(harness, requests + done, chunk, results + done);
		if (called != 0)
			return called;
		done += chunk;
	}
	return 0;
}

/* Sends again, same bytes, only the requests answered BUSY. */
static int harness_retry_busy(struct harness *harness, const struct ledger_request *requests,
			      uint32_t count, struct ledger_result *results)
{
	static struct ledger_request again[NETIO_CLIENT_REQUESTS_MAX];
	static struct ledger_result answers[NETIO_CLIENT_REQUESTS_MAX];
	static uint32_t where[NETIO_CLIENT_REQUESTS_MAX];
	for (uint32_t start = 0; start < count;) {
		uint32_t busy = 0;
		for (; start < count && busy < NETIO_CLIENT_REQUESTS_MAX; start++)
			if (results[start].code == LEDGER_BUSY) {
				where[busy] = start;
				again[busy++] = requests[start];
			}
		if (busy == 0)
			continue;
		int called = call_by_role(harness, again, busy, answers);
		if (called != 0)
			return called;
		for (uint32_t i = 0; i < busy; i++)
			results[where[i]] = answers[i];
	}
	return 0;
}

int harness_call_many(struct harness *harness, const struct ledger_request *requests,
		      uint32_t count, struct ledger_result *results)
{
	int called = harness_call_many_once(harness, requests, count, results);
	for (int round = 0; called == 0 && round < HARNESS_BUSY_ROUNDS; round++) {
		uint32_t busy = 0;
		for (uint32_t i = 0; i < count; i++)
			busy += results[i].code == LEDGER_BUSY;
		if (busy == 0)
			break;
		harness_wait_hint(results, count);
		called = harness_retry_busy(harness, requests, count, results);
	}
	return called;
}

void harness_open(struct harness *harness, uint64_t id, uint8_t flags)
{
	struct ledger_request request = harness_request(harness, LEDGER_KIND_OPEN, id, 0, 0);
	request.flags = flags;
	struct ledger_result result = harness_call(harness, &request);
	cr_assert_eq(result.code, LEDGER_OK, "open %llu: %s", (unsigned long long)id,
		     ledger_result_name(result.code));
}

void harness_deposit(struct harness *harness, uint64_t funding, uint64_t id, uint64_t amount)
{
	struct ledger_request request = harness_request(harness, LEDGER_KIND_DEPOSIT, funding, id,
							amount);
	struct ledger_result result = harness_call(harness, &request);
	cr_assert_eq(result.code, LEDGER_OK, "deposit to %llu: %s", (unsigned long long)id,
		     ledger_result_name(result.code));
}

int64_t harness_balance(struct harness *harness, uint64_t id)
{
	struct ledger_request request = harness_request(harness, LEDGER_KIND_BALANCE, id, 0, 0);
	struct ledger_result result = harness_call(harness, &request);
	cr_assert_eq(result.code, LEDGER_OK, "balance of %llu: %s", (unsigned long long)id,
		     ledger_result_name(result.code));
	return result.balance;
}

size_t harness_raw(struct harness *harness, const void *bytes, size_t length, void *reply,
		   size_t reply_size, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert(fd >= 0);
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(harness->port),
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert(connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0);
	ssize_t sent = send(fd, bytes, length, 0);
	cr_assert_eq((size_t)sent, length, "send: %s", strerror(errno));
	struct pollfd descriptor = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	if (poll(&descriptor, 1, timeout_ms) == 1) {
		ssize_t received = recv(fd, reply, reply_size, 0);
		got = received > 0 ? (size_t)received : 0;
	}
	close(fd);
	return got;
}

long harness_metrics(struct harness *harness, char *buffer, size_t size)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	struct sockaddr_in address = { .sin_family = AF_INET,
				       .sin_port = htons(harness->metrics_port),
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
		close(fd);
		return -1;
	}
	static const char request[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
	if (send(fd, request, sizeof(request) - 1, 0) < 0) {
		close(fd);
		return -1;
	}
	size_t total = 0;
	for (;;) {
		struct pollfd descriptor = { .fd = fd, .events = POLLIN };
		if (poll(&descriptor, 1, 5000) != 1 || total + 1 >= size)
			break;
		ssize_t got = recv(fd, buffer + total, size - 1 - total, 0);
		if (got <= 0)
			break;
		total += (size_t)got;
	}
	buffer[total] = '\0';
	close(fd);
	return (long)total;
}
