/*
 * journal.h — the durable journal of ledger decisions, snapshots, crash
 * recovery and the audit. File formats with byte offsets: ledger/JOURNAL.md.
 *
 * Layout of a data dir:
 *   DATA_DIR/payswitch.meta                 format version, shard count, config
 *   DATA_DIR/shard-NNN/journal-NNNNNNNN.seg append-only segments, never deleted
 *   DATA_DIR/shard-NNN/snapshot-SEQ.snap    newest two snapshots of the shard
 *
 * Conventions of this header:
 * - Functions return 0 (or a count) on success and -errno on failure; they
 *   never rely on the global errno. Where a `struct journal_error *` is taken
 *   (may be NULL), a failure also leaves a sentence naming the file, the byte
 *   offset and what was expected versus found.
 * - Units are in the names: *_bytes, *_us (microseconds), sequences are the
 *   ledger's decision sequences (1, 2, ...), offsets are bytes from the start
 *   of a file.
 * - Thread-safety: a writer, a reader and a ledger are each owned by one
 *   thread at a time. Different shards may be handled by different threads
 *   concurrently; the same shard directory must be written by one writer.
 * - Ownership: objects returned by *_open() are released by the matching
 *   *_close(); nothing returned points into memory the caller must free.
 */
#ifndef PAYSWITCH_JOURNAL_H
#define PAYSWITCH_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ledger.h"

/* ------------------------------------------------------------------------ */
/* Constants of the on-disk format (see JOURNAL.md).                         */
/* ------------------------------------------------------------------------ */
#define JOURNAL_FORMAT_VERSION 1u
#define JOURNAL_BLOCK_BYTES 4096u          /* one block: header + records */
#define JOURNAL_BLOCK_HEADER_BYTES 64u
#define JOURNAL_RECORD_BYTES 96u
#define JOURNAL_BLOCK_RECORDS 42u          /* (4096 - 64) / 96 */
#define JOURNAL_SEGMENT_HEADER_BYTES 4096u /* one block slot: O_DIRECT alignment */
#define JOURNAL_SHARDS_MAX 1024u
#define JOURNAL_SEGMENT_BYTES_DEFAULT (1ull << 30)     /* 1 GiB */
#define JOURNAL_GROUP_BYTES_DEFAULT (1u << 20)         /* 1 MiB per commit */
#define JOURNAL_GROUP_BYTES_MAX (16u << 20)            /* hard bound of a group */
/* Buffers of a writer: 1 filling + up to 16 groups in flight. */
#define JOURNAL_GROUPS_IN_FLIGHT_MAX 17u
/* Groups in flight per shard by default (bench/journal_bench, JOURNAL.md). */
#define JOURNAL_GROUPS_IN_FLIGHT_DEFAULT 4u
#define JOURNAL_PREALLOCATE_BYTES_DEFAULT (8u << 20) /* zeros kept ahead of appends */
#define JOURNAL_PREALLOCATE_BYTES_MAX (1u << 30)
#define JOURNAL_PREALLOCATE_CHUNK_BYTES (4u << 20)   /* one zero-fill write */
/* One path limit for the whole program: every path built under a data dir
 * fits in JOURNAL_PATH_MAX bytes, the terminating NUL included (as POSIX
 * PATH_MAX). The longest name appended to a data dir is a snapshot's temp
 * file, "/shard-1023/snapshot-18446744073709551615.snap.tmp" (50 bytes), so a
 * data dir of at most JOURNAL_DATA_DIR_BYTES_MAX bytes holds every file the
 * program writes; format, start and audit refuse a longer one
 * (journal_data_dir_check()). 512 is ample for a data dir (461 bytes) and
 * keeps path buffers and the sentences naming them small. */
#define JOURNAL_PATH_MAX 512u
#define JOURNAL_FILE_NAME_BYTES_MAX 50u
#define JOURNAL_DATA_DIR_BYTES_MAX (JOURNAL_PATH_MAX - 1u - JOURNAL_FILE_NAME_BYTES_MAX)
/* A sentence: a whole path of JOURNAL_PATH_MAX and what went wrong. */
#define JOURNAL_ERROR_TEXT_BYTES (JOURNAL_PATH_MAX + 512u)

/* One journaled decision: 96 bytes on disk, little-endian (x86-64 layout). */
struct journal_record {
	struct ledger_request request; /* 0..63: the request as applied */
	uint64_t now_us;               /* 64: the now_us ledger_apply() got */
	uint64_t sequence;             /* 72: ledger decision sequence */
	int64_t balance;               /* 80: result balance */
	uint16_t code;                 /* 88: enum ledger_result_code */
	uint16_t flags;                /* 90: enum ledger_result_flags */
	uint32_t checksum;             /* 92: low 32 bits of xxh3_64(bytes 0..91) */
};
_Static_assert(sizeof(struct journal_record) == JOURNAL_RECORD_BYTES, "record is 96 bytes");

/* Fills a record from a decision and seals its checksum. Pure. */
void journal_record_make(struct journal_record *record, uint64_t now_us,
			 const struct ledger_request *request,
			 const struct ledger_result *result);
/* true when the record's checksum matches its bytes. Pure. */
bool journal_record_valid(const struct journal_record *record);

struct journal_error {
	int code;                                /* -errno, 0 = none */
	char text[JOURNAL_ERROR_TEXT_BYTES];     /* file, offset, expected vs found */
};

/* Log lines (torn tail cut, snapshot fallbacks, writer failure) go to a
 * process-wide sink, stderr by default. Set it once at start-up, before any
 * other thread uses the journal; `log` == NULL restores stderr. */
typedef void (*journal_log_fn)(void *context, const char *line);
void journal_set_log(journal_log_fn log, void *context);

/* ------------------------------------------------------------------------ */
/* Data dir: format and meta file.                                          */
/* ------------------------------------------------------------------------ */
struct journal_meta {
	uint32_t format_version;    /* JOURNAL_FORMAT_VERSION */
	uint32_t shard_count;       /* 1..JOURNAL_SHARDS_MAX */
	struct ledger_config config;/* shard_index 0; shard_count == shard_count */
};

/* Creates DATA_DIR (if missing), DATA_DIR/shard-000 ... and writes
 * payswitch.meta (temp file, fsync, rename, fsync dir). `config` gives the
 * capacities echoed into the meta file; its shard fields are ignored.
 * -EEXIST if payswitch.meta already exists. Not thread-safe per dir. */
int journal_format_dir(const char *dir, uint32_t shard_count,
		       const struct ledger_config *config, struct journal_error *error);
/* Reads and verifies DATA_DIR/payswitch.meta (checksum, version). */
int journal_meta_read(const char *dir, struct journal_meta *meta, struct journal_error *error);
/* 0 when a data dir named `dir` can hold every file the journal writes:
 * strlen(dir) in 1..JOURNAL_DATA_DIR_BYTES_MAX. Else -ENAMETOOLONG (-EINVAL
 * when empty) with a sentence naming the limit. journal_format_dir() and
 * journal_meta_read() (so start and audit) call it first. Pure. */
int journal_data_dir_check(const char *dir, struct journal_error *error);
/* The ledger config of shard `shard` from a meta file. Pure. */
void journal_meta_shard_config(const struct journal_meta *meta, uint32_t shard,
			       struct ledger_config *config);

/* ------------------------------------------------------------------------ */
/* Writer: append-only, io_uring group commit. One per shard, one thread.    */
/* ------------------------------------------------------------------------ */
enum journal_sync {
	/* write of the group linked (IOSQE_IO_LINK) to an fdatasync. Default:
	 * measured faster on this machine (bench/journal_bench.c). */
	JOURNAL_SYNC_FDATASYNC = 0,
	/* O_DIRECT file, one write per group with RWF_DSYNC. */
	JOURNAL_SYNC_DIRECT_DSYNC = 1,
};

enum journal_mode {
	/* A sequence is reported durable only once its group's data is on disk. */
	JOURNAL_MODE_DURABLE = 0,
	/* Acknowledges when the write completes, without fdatasync/RWF_DSYNC: a
	 * crash of the machine (not of the process) can lose acknowledged
	 * payments. Never the default. */
	JOURNAL_MODE_UNSAFE_ACK_BEFORE_SYNC = 1,
};

struct journal_writer_options {
	uint64_t segment_bytes_max;   /* a new segment starts beyond this; >= 64 KiB */
	uint32_t group_bytes_max;     /* bytes per commit, multiple of 4096, <= 16 MiB */
	/* Buffers: 1 filling + N-1 in flight, each its own write and sync;
	 * 2..JOURNAL_GROUPS_IN_FLIGHT_MAX. (N-1) * group_bytes_max is the tail
	 * window recorded in every segment header: what a crash may tear. */
	uint32_t groups_in_flight_max;
	enum journal_sync sync;
	enum journal_mode mode;
	/* Zeros written (and fdatasync'ed) ahead of the append position, so
	 * that group commits overwrite allocated blocks of a file whose size
	 * does not change and fdatasync has no metadata to commit. The writer
	 * keeps at least this many bytes zero-filled ahead (never beyond
	 * segment_bytes_max), in writes of up to JOURNAL_PREALLOCATE_CHUNK_BYTES
	 * through its io_uring. Multiple of 4096, <= JOURNAL_PREALLOCATE_BYTES_MAX;
	 * 0 = off (every commit appends). A zero-fill write refused for space
	 * (ENOSPC, EDQUOT, EFBIG, short write) only stops preallocation; any other
	 * zero-fill error, and any failed fdatasync, fails the writer. Cost:
	 * every byte of a segment is written twice (zeros, then data) and the
	 * group queued behind a zero fill (IOSQE_IO_DRAIN) waits for it, so
	 * large-group, bandwidth-bound writers lose MB/s and tail latency:
	 * measure with bench/journal_bench --preallocate. */
	uint32_t preallocate_bytes;
};
/* 1 GiB segments, 1 MiB groups, JOURNAL_GROUPS_IN_FLIGHT_DEFAULT groups in
 * flight (+1 filling), fdatasync, durable,
 * 8 MiB preallocated ahead. */
void journal_writer_options_default(struct journal_writer_options *options);

/* Latency of a commit: submit to durable (or written, in unsafe mode). */
#define JOURNAL_HISTOGRAM_BUCKETS 32u
struct journal_histogram {
	/* buckets[0] counts latencies < 2 us; buckets[k] counts [2^k, 2^(k+1)) us;
	 * the last bucket also counts everything longer. */
	uint64_t buckets[JOURNAL_HISTOGRAM_BUCKETS];
	uint64_t count;
	uint64_t sum_us;
	uint64_t max_us;
};
/* The latency in us below which `fraction` (0..1) of the samples fall:
 * the upper bound of the bucket that crosses it. Pure. */
uint64_t journal_histogram_quantile_us(const struct journal_histogram *histogram, double fraction);

struct journal_writer_stats {
	uint64_t records_appended;
	uint64_t records_durable;
	uint64_t bytes_written;       /* including block padding and headers */
	uint64_t commits_submitted;
	uint64_t commits_completed;
	uint64_t segments_created;
	uint64_t bytes_preallocated;  /* zeros written ahead of appends */
	bool preallocate_stopped;     /* a zero fill was refused for space */
	struct journal_histogram commit_latency; /* durable-commit latency, us */
};

struct journal_writer;

/* Opens the writer of DATA_DIR/shard-NNN and positions it after the last
 * block of the last segment (at its data end: a zero tail left by
 * preallocation is written over). The shard must be clean: freshly
 * formatted or passed through journal_recover() (which cuts a torn tail);
 * otherwise -EUCLEAN. Allocates all buffers here (groups_in_flight_max *
 * group_bytes_max, and 64 KiB of zeros when preallocating) and submits the
 * first zero fill. Returns NULL and fills *error. */
struct journal_writer *journal_writer_open(const char *dir, uint32_t shard,
					   const struct journal_writer_options *options,
					   struct journal_error *error);

/* Appends the record of one decision to the group being filled. `result`
 * must carry LEDGER_RESULT_JOURNAL and sequence == last appended + 1
 * (asserted). Returns 0; -ENOBUFS when the group is full (call
 * journal_commit(), then journal_poll() if that says -EBUSY, and append
 * again); the failure's -errno once the writer failed. Never blocks. */
int journal_append(struct journal_writer *writer, uint64_t now_us,
		   const struct ledger_request *request, const struct ledger_result *result);

/* Seals the group being filled and submits it (write + fdatasync, or
 * O_DIRECT write with RWF_DSYNC). Returns 0 (also when the group was
 * empty), -EBUSY when groups_in_flight_max - 1 groups are already in
 * flight (poll first), or the failure's -errno. */
int journal_commit(struct journal_writer *writer);

/* Reaps completions. wait == true blocks until at least one in-flight group
 * completes (returns at once when none is in flight). Returns the durable
 * sequence (>= 0) — every record with sequence <= it is on disk — or the
 * failure's -errno. After a failure the durable sequence never advances. */
int64_t journal_poll(struct journal_writer *writer, bool wait);

/* Last sequence known durable (0 = none this session and none before). */
uint64_t journal_durable_sequence(const struct journal_writer *writer);
/* Last sequence appended (durable or not). */
uint64_t journal_appended_sequence(const struct journal_writer *writer);
/* Groups submitted and not yet completed. */
uint32_t journal_in_flight(const struct journal_writer *writer);
/* The most groups that may be in flight at once (groups_in_flight_max - 1). */
uint32_t journal_in_flight_max(const struct journal_writer *writer);
/* Records appended to the group being filled (not yet submitted). */
uint64_t journal_filling_records(const struct journal_writer *writer);
/* Has the writer's io_uring signal `eventfd` on every completion, so a
 * thread sleeping in poll() on it wakes for new work and for a durable group
 * alike (io_uring_register_eventfd). Returns 0 or -errno. */
int journal_writer_eventfd(struct journal_writer *writer, int eventfd);
/* 0 or the -errno that failed the writer; its sentence in *error if not NULL. */
int journal_writer_failed(const struct journal_writer *writer, struct journal_error *error);
void journal_writer_stats(const struct journal_writer *writer, struct journal_writer_stats *stats);

/* Commits what is pending, waits for every group (and the zero fill in
 * flight, if any), and releases the writer.
 * Returns 0 when everything appended is durable, else the failure's -errno.
 * `writer` may be NULL. */
int journal_writer_close(struct journal_writer *writer);

/* ------------------------------------------------------------------------ */
/* Reader: verified sequential scan of a shard's segments.                   */
/* ------------------------------------------------------------------------ */
struct journal_position {
	uint32_t segment_index;
	uint64_t offset;           /* byte offset inside the segment file */
	uint64_t block_index;      /* shard-wide block number, from 0 */
	char path[JOURNAL_PATH_MAX]; /* the segment file */
};

enum journal_reader_flags {
	/* Cut a torn tail (ftruncate + fdatasync, and rewrite the whole records
	 * of a torn block as a block of their own) instead of only reporting it. */
	JOURNAL_READER_REPAIR = 1u << 0,
};

struct journal_reader;

/* Opens DATA_DIR/shard-NNN for a scan. from_sequence <= 1 starts at the
 * genesis (the whole chain is verified); a larger one starts at the last
 * segment whose header says it begins at or before it (the chain is then
 * verified from that segment's header on; records before from_sequence are
 * still returned). An absent set of segments reads as an empty journal. */
struct journal_reader *journal_reader_open(const char *dir, uint32_t shard, unsigned flags,
					   uint64_t from_sequence, struct journal_error *error);
/* Returns the next block's verified records: >0 = the count (records are
 * valid until the next call), 0 = end of journal, -EBADMSG on corruption
 * (checksum, chain, order, sequence gap) with the file, offset, expected and
 * found in *error, other -errno on I/O errors. A torn tail at the end of the
 * last segment reads as the end (its whole records first); see
 * journal_reader_torn(). A zero tail (preallocated zeros after a segment's
 * last block) is the clean end of that segment, not a torn tail. */
int journal_reader_next(struct journal_reader *reader, const struct journal_record **records,
			struct journal_position *position, struct journal_error *error);
/* After the end: true if a torn tail was found, with its description (and
 * whether it was cut, with JOURNAL_READER_REPAIR). */
bool journal_reader_torn(const struct journal_reader *reader, char *text, size_t text_bytes);
/* Last sequence read so far (0 = none). */
uint64_t journal_reader_sequence(const struct journal_reader *reader);
void journal_reader_close(struct journal_reader *reader);

/* ------------------------------------------------------------------------ */
/* Snapshots.                                                                */
/* ------------------------------------------------------------------------ */
#define JOURNAL_SNAPSHOTS_KEPT 2u

/* Writes the ledger's whole state to shard-NNN/snapshot-<sequence>.snap
 * (temp file, checksum, fsync, rename, fsync dir) and deletes all but the
 * newest JOURNAL_SNAPSHOTS_KEPT snapshots. Precondition (the caller's
 * promise): every decision up to ledger_sequence(ledger) is durable in the
 * journal; recovery refuses a snapshot ahead of the journal. Blocks for the
 * whole write; the ledger must not change meanwhile. */
int journal_snapshot_write(const char *dir, uint32_t shard, const struct ledger *ledger,
			   struct journal_error *error);

/* Online snapshots, in two steps so a serving shard stops only for a copy:
 * journal_snapshot_capture() (the shard's thread) streams the ledger's state
 * into a memory image — the ledger is only read, at memory speed — and
 * journal_snapshot_store() (any other thread, the ledger no longer needed)
 * hashes it, writes snapshot-SEQ.snap.tmp and fsyncs it. Once the journal is
 * durable up to the image's sequence the caller calls
 * journal_snapshot_publish(): rename to snapshot-SEQ.snap, fsync of the shard
 * dir, and all but the newest `retain` snapshots deleted. A crash before the
 * rename leaves only a .tmp (never read; journal_snapshot_clean_temp()). An
 * image is reused: its buffer grows to the largest state and is kept. */
struct journal_snapshot_image {
	uint8_t *body;            /* ledger_state_save() stream */
	uint64_t body_bytes;
	uint64_t capacity_bytes;  /* of body */
	uint32_t shard;
	uint32_t shard_count;
	uint64_t sequence;        /* ledger_sequence() at the capture */
	uint64_t now_us;          /* ledger_now() at the capture */
	uint64_t config_hash;
};
/* Copies the ledger's state into `image` (grows its buffer when needed).
 * 0, -ENOMEM, or the ledger's save error. The ledger must not change
 * meanwhile (its own thread calls this). */
int journal_snapshot_capture(const struct ledger *ledger, struct journal_snapshot_image *image);
/* Writes the image to DATA_DIR/shard-NNN/snapshot-SEQ.snap.tmp and fsyncs it. */
int journal_snapshot_store(const char *dir, const struct journal_snapshot_image *image,
			   struct journal_error *error);
/* Renames the stored temp file into place, fsyncs the dir and keeps the
 * newest `retain` (>= 1) snapshots. Precondition: the journal is durable up
 * to image->sequence. */
int journal_snapshot_publish(const char *dir, const struct journal_snapshot_image *image,
			     uint32_t retain, struct journal_error *error);
/* Releases the image's buffer. */
void journal_snapshot_image_free(struct journal_snapshot_image *image);
/* Deletes every snapshot-SEQ.snap.tmp of the shard (a snapshot a crash cut
 * short). Returns how many were removed, or -errno. Start-up only. */
int journal_snapshot_clean_temp(const char *dir, uint32_t shard);
/* Keeps the newest `retain` (>= 1) snapshots of the shard, deletes the rest. */
int journal_snapshot_prune(const char *dir, uint32_t shard, uint32_t retain);

/* Loads the newest snapshot of the shard whose checksums verify and whose
 * sequence is <= max_sequence (UINT64_MAX: any) into `ledger` (freshly
 * created with the shard's config). Returns 1 loaded (sequence in
 * *sequence), 0 none usable (ledger untouched), or -errno when loading a
 * verified snapshot failed (the ledger is then undefined: destroy it).
 * Snapshots that fail verification are logged and skipped. */
int journal_snapshot_load(const char *dir, uint32_t shard, struct ledger *ledger,
			  uint64_t max_sequence, uint64_t *sequence, struct journal_error *error);

/* ------------------------------------------------------------------------ */
/* Recovery.                                                                 */
/* ------------------------------------------------------------------------ */
struct journal_recovery_report {
	uint64_t snapshot_sequence;   /* 0 = recovered without a snapshot */
	uint64_t records_read;        /* verified */
	uint64_t records_replayed;    /* applied (sequence > snapshot's) */
	uint64_t last_sequence;       /* == ledger_sequence(ledger) afterwards */
	uint64_t segments;
	bool torn_tail;               /* a torn tail was cut */
	char torn_text[JOURNAL_ERROR_TEXT_BYTES];
	uint64_t elapsed_us;
};

/* Rebuilds the shard's ledger: newest verified snapshot (or none), then
 * every later record replayed through ledger_apply() with its now_us; every
 * replayed result must equal the recorded code, flags, balance and
 * sequence. Cuts a torn tail (log line naming file and offset). Any other
 * checksum, chain or replay mismatch stops with -EBADMSG and *error naming
 * file, offset, expected and found. `ledger` must be freshly created with
 * the shard's config; on error it is undefined (destroy it). Afterwards
 * journal_writer_open() continues after the last good record. */
int journal_recover(const char *dir, uint32_t shard, struct ledger *ledger,
		    struct journal_recovery_report *report, struct journal_error *error);

/* ------------------------------------------------------------------------ */
/* Audit: replays every journal from genesis, read-only.                     */
/* ------------------------------------------------------------------------ */
#define JOURNAL_AUDIT_CURRENCIES_MAX 64u

struct journal_audit_options {
	bool has_account;             /* print the statement of account_id */
	uint64_t account_id;
	bool json;                    /* machine output */
	FILE *out;                    /* report; NULL: no output */
	uint64_t check_every_records; /* invariants every N records; 0: 1M */
};

struct journal_audit_currency {
	uint16_t currency;
	__int128 balance_sum;         /* over every shard, exact */
	__int128 transit;             /* over every shard: credits in flight, exact */
	uint64_t accounts;
};

struct journal_audit_report {
	uint32_t shards;
	uint64_t records;
	uint64_t records_by_code[LEDGER_RESULT_CODE_COUNT];
	uint64_t duplicate_approvals; /* ids approved twice in one shard */
	uint64_t snapshots_compared;
	uint64_t accounts;
	uint32_t currency_count;
	struct journal_audit_currency currencies[JOURNAL_AUDIT_CURRENCIES_MAX];
	uint64_t torn_tails;          /* shards ending in a torn tail (not audited) */
	/* Across shards (audit_cross.c, ledger/README.md "Audit"). */
	uint64_t cross_credits;       /* non-duplicate CREDIT records */
	uint64_t cross_returns;       /* non-duplicate approved RETURN records */
	uint64_t owed_credits;        /* remote debits without their CREDIT (re-sent at start) */
	uint64_t owed_returns;        /* refused CREDITs without their RETURN (re-sent at start) */
	uint64_t ids_on_two_shards;   /* ids remembered by two shards' windows at once */
	uint64_t violations;
	char first_violation[JOURNAL_ERROR_TEXT_BYTES];
	uint64_t elapsed_us;
};

/* Audits DATA_DIR. Returns 0 clean, 1 on any violation (first one in the
 * report), 2 on a usage or I/O error (text in report->first_violation).
 * Never modifies the data dir. Allocates one or two ledgers of a shard's
 * capacity at a time. */
int journal_audit(const char *dir, const struct journal_audit_options *options,
		  struct journal_audit_report *report);

/* Part of the audit (journal_files.c): every name in DATA_DIR/shard-NNN must
 * be a file the journal writes, journal-NNNNNNNN.seg or snapshot-SEQ.snap,
 * spelled exactly as the writers spell it. A snapshot-SEQ.snap.tmp (a
 * snapshot cut short by a crash) is noted on `out` (NULL: silent) and
 * passes; any other name is a violation counted in *report, naming the file.
 * An absent shard dir holds nothing to recognise. Returns the violations
 * found (a directory that cannot be listed is one). */
uint64_t journal_audit_files(const char *dir, uint32_t shard,
			     struct journal_audit_report *report, FILE *out);

/* `payswitch audit` command line: argv[0] = "audit", then DATA_DIR
 * [--account ID] [--json] | --help. Prints to stdout, errors to stderr.
 * Returns the exit status: 0 clean, 1 violation, 2 usage or I/O error. */
int journal_audit_main(int argc, char **argv);

#endif /* PAYSWITCH_JOURNAL_H */
