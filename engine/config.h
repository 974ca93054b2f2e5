/*
 * config.h — the switch's configuration: defaults, a `key = value` file, and
 * command-line flags (flags win over the file, the file over defaults).
 *
 * Thread-safety: filled once by the main thread before any worker starts;
 * read-only afterwards.
 */
#ifndef PAYSWITCH_ENGINE_CONFIG_H
#define PAYSWITCH_ENGINE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "journal.h"

#define ENGINE_SHARDS_MAX 16
/* A config file line, its newline excluded: the longest setting (dpdk-args,
 * 1023 bytes) with room for its key and a comment. A longer line is refused
 * with file:line rather than read in parts or accepted whole: it is not a
 * config line someone meant to write (a missing newline, a binary file). */
#define ENGINE_CONFIG_LINE_BYTES_MAX 4096u
#define ENGINE_WORKERS_MAX 16
#define ENGINE_CPUS_MAX 64

enum engine_durability {
	ENGINE_DURABLE = 0,                 /* reply only after fdatasync (default) */
	ENGINE_UNSAFE_ACK_BEFORE_SYNC = 1,  /* reply after write(2) completes: a crash can lose acked payments */
};

enum engine_transport_kind {
	ENGINE_TRANSPORT_UDP = 0,
	ENGINE_TRANSPORT_DPDK = 1,
};

struct engine_config {
	char data_dir[JOURNAL_DATA_DIR_BYTES_MAX + 1]; /* the one path limit: journal.h */
	char listen_host[128];       /* native protocol, UDP */
	uint16_t listen_port;
	char metrics_host[128];      /* Prometheus text over HTTP; port 0 disables */
	uint16_t metrics_port;
	uint32_t shards;             /* shard worker threads, each owning a ledger */
	uint32_t workers;            /* netio worker threads */
	int32_t cpus[ENGINE_CPUS_MAX];/* CPU for thread i (workers first, then shards); -1 none */
	uint32_t cpu_count;
	uint64_t accounts_max;       /* per shard */
	uint64_t transfers_max;      /* deduplication window entries per shard */
	uint64_t holds_max;          /* pending holds per shard */
	uint64_t dedup_window_s;
	uint64_t hold_timeout_s;
	uint32_t latency_bound_us;   /* admission: BUSY when a request's expected wait
	                              * (queued so far + a group commit) passes it; 0: off */
	uint32_t ring_size;          /* entries of each worker->shard ring (power of two) */
	uint32_t group_bytes_max;    /* journal group commit size limit */
	uint32_t journal_preallocate;/* zeros written ahead of appends; 0 = off (see engine/README.md) */
	uint32_t journal_in_flight;  /* group commits in flight per shard, 1..16 (engine/README.md) */
	uint32_t group_wait_us;      /* a group is submitted, while others are in flight,
	                              * once its oldest record waited this long */
	enum engine_durability durability;
	enum engine_transport_kind transport;
	char dpdk_args[1024];        /* EAL arguments for the DPDK transport */
	bool snapshot_on_stop;
	/* Online snapshots (engine/README.md "Snapshots while serving"): a shard
	 * snapshots once this many records were decided since its last one, or
	 * once this many seconds passed with at least one new record; 0 and 0:
	 * only on a clean stop. */
	uint64_t snapshot_every_records;
	uint32_t snapshot_every_seconds;
	uint32_t snapshot_retain;    /* snapshots kept per shard, 1..64 */
	bool verbose;
	/* Authentication (netio/PROTOCOL.md). */
	bool insecure_no_auth;       /* let in every datagram, keyed or not, and check
	                              * no roles: a test bench only */
	uint32_t auth_sessions;      /* senders (key, client id) whose replay windows
	                              * are remembered at once */
	uint32_t auth_max_age_ms;    /* how far a datagram's sequence (the sender's
	                              * clock) may be from the switch's */
};

/* Defaults: ./data, 127.0.0.1:7000, metrics 127.0.0.1:9100, 1 shard, 1 worker,
 * 1M accounts per shard, durable. */
void engine_config_default(struct engine_config *config);

/* Sets one key ("shards", "listen", "data-dir", ...) from text. Returns 0, or
 * -EINVAL and writes a sentence to `error` (size error_size). */
int engine_config_set(struct engine_config *config, const char *key, const char *value,
		      char *error, size_t error_size);

/* Reads `key = value` lines ('#' comments) from a file, each line whole and
 * at most ENGINE_CONFIG_LINE_BYTES_MAX bytes. Returns 0 or -errno / -EINVAL
 * (-E2BIG for a longer line) with the file name and line in `error`. */
int engine_config_load_file(struct engine_config *config, const char *path,
			    char *error, size_t error_size);

/* Checks ranges and relations between values. Returns 0 or -EINVAL with a
 * sentence in `error`. */
int engine_config_validate(const struct engine_config *config, char *error, size_t error_size);

/* Writes every key as a loadable `key = value` file. */
void engine_config_print(const struct engine_config *config, FILE *out);

/* Parses "host:port" ("7000" alone means 127.0.0.1:7000). Returns 0 or -EINVAL. */
int engine_parse_address(const char *text, char *host, size_t host_size, uint16_t *port);

/* Parses an unsigned integer with an optional k/M/G suffix (powers of 1000).
 * Returns 0 or -EINVAL. */
int engine_parse_u64(const char *text, uint64_t *value);

#endif
