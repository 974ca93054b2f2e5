/*
 * harness.h — runs the real `payswitch` binary for integration tests: a temp
 * data dir, a free port, start / stop / kill -9, the audit, and a client.
 *
 * The binary's path comes from the PAYSWITCH environment variable, which
 * tests/engine/meson.build sets. Every wait is bounded.
 */
#ifndef PAYSWITCH_TESTS_HARNESS_H
#define PAYSWITCH_TESTS_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ledger.h"
#include "netio.h"

struct harness {
	char dir[256];            /* temp dir holding data/ and switch.log */
	char data_dir[300];
	char log_path[300];
	uint16_t port;
	uint16_t metrics_port;    /* 0: metrics disabled */
	pid_t pid;                /* running switch, 0 when none */
	uint32_t shards;
	struct netio_client *client;   /* signs with the acquirer key */
	struct netio_client *admin;    /* signs with the admin key */
	struct netio_key key;          /* acquirer: pay, hold, capture, void, refund, reads */
	struct netio_key admin_key;    /* admin: open, deposit, limits, freeze, close */
	char key_path[320];            /* their key files, made by `payswitch client add` */
	char admin_key_path[320];
	uint64_t next_id;
	uint64_t file_size_limit;  /* RLIMIT_FSIZE of the next start (0: none): makes
	                            * journal writes fail with EFBIG like a full disk */
};

/* Creates a temp dir and formats a data dir with `shards` shards and the given
 * extra format flags (NULL-terminated, may be NULL), and adds two client keys
 * with `payswitch client add`: "test-admin" (admin) and "test-acquirer"
 * (acquirer). Calls go out through the client whose role allows each
 * request's kind. Asserts on failure. */
void harness_init(struct harness *harness, uint32_t shards, const char *const *format_flags);
/* Starts the switch with extra flags (NULL-terminated, may be NULL) and waits
 * until it answers (at most 20 s). Returns true when it serves. */
bool harness_start(struct harness *harness, const char *const *flags);
/* SIGTERM and wait (at most 30 s). Returns the exit status, or -1. */
int harness_stop(struct harness *harness);
/* SIGKILL and reap. */
void harness_kill(struct harness *harness);
/* Runs `payswitch audit DATA_DIR [extra]`; returns its exit status and keeps
 * its stdout in `output` (size bytes) when not NULL. */
int harness_audit(struct harness *harness, const char *extra, char *output, size_t size);
/* Stops anything running and removes the temp dir. */
void harness_fini(struct harness *harness);

/* Requests. ids come from harness->next_id; timestamps are now. */
struct ledger_request harness_request(struct harness *harness, uint8_t kind, uint64_t account,
				      uint64_t other, uint64_t amount);
/* One synchronous call (timeout 2 s, 5 retries). Returns the result; code
 * NETIO_CODE_NO_ANSWER when none came. */
struct ledger_result harness_call(struct harness *harness, const struct ledger_request *request);
/* harness_call and harness_call_many retry requests answered BUSY (same
 * bytes, after the retry-after hint, bounded rounds), as a client should. */
/* Calls count requests in datagrams of up to NETIO_BATCH_MAX. Returns 0 when all answered. */
int harness_call_many(struct harness *harness, const struct ledger_request *requests,
		      uint32_t count, struct ledger_result *results);
/* The same without retrying BUSY: what the switch answered the first time. */
int harness_call_many_once(struct harness *harness, const struct ledger_request *requests,
			   uint32_t count, struct ledger_result *results);

/* Opens account `id` (flags) in currency 978; asserts approval. */
void harness_open(struct harness *harness, uint64_t id, uint8_t flags);
/* Deposits from funding account `funding`; asserts approval. */
void harness_deposit(struct harness *harness, uint64_t funding, uint64_t id, uint64_t amount);
/* Available balance of an account (asserts the BALANCE call answered OK). */
int64_t harness_balance(struct harness *harness, uint64_t id);

/* Sends raw bytes to the switch's port from a fresh socket and waits up to
 * timeout_ms for one answer; returns its length (0 = none) in reply. The
 * bytes go as they are: seal them first (harness_seal) to be let in. */
size_t harness_raw(struct harness *harness, const void *bytes, size_t length, void *reply,
		   size_t reply_size, int timeout_ms);

/* Seals a datagram built by hand with the acquirer key (admin: the admin
 * key), with a fresh sequence (the realtime clock, strictly increasing) so
 * the switch's replay window lets it in. length >= NETIO_HEADER_SIZE. */
void harness_seal(struct harness *harness, void *datagram, size_t length, bool admin);
/* Runs `payswitch client ARGS...` on the harness's data dir (argv NULL-terminated,
 * without "payswitch client"); returns its exit status. */
int harness_client_command(struct harness *harness, const char *const *argv);
/* The client whose key may ask for this kind (admin kinds: the admin). */
struct netio_client *harness_client_for(struct harness *harness, uint8_t kind);

/* A free UDP/TCP port on 127.0.0.1 (bound and released). */
uint16_t harness_free_port(void);

/* GET /metrics into buffer; returns bytes or -1. */
long harness_metrics(struct harness *harness, char *buffer, size_t size);

#endif
