/*
 * journal_internal.h — on-disk structures and helpers shared by the journal's
 * source files. Not a public header: the contract is journal.h + JOURNAL.md.
 */
#ifndef PAYSWITCH_JOURNAL_INTERNAL_H
#define PAYSWITCH_JOURNAL_INTERNAL_H

#include <stdarg.h>

#include "journal.h"

#define JOURNAL_BLOCK_MAGIC 0x424a5350u    /* "PSJB" little-endian */
#define JOURNAL_SEGMENT_MAGIC 0x534a5350u  /* "PSJS" */
#define JOURNAL_SNAPSHOT_MAGIC 0x4e535350u /* "PSSN" */
#define JOURNAL_GENESIS_HASH 0ull          /* previous_hash of the first block */
#define JOURNAL_BLOCK_BODY_BYTES (JOURNAL_BLOCK_BYTES - JOURNAL_BLOCK_HEADER_BYTES)
#define JOURNAL_GROUP_BLOCKS_MAX (JOURNAL_GROUP_BYTES_MAX / JOURNAL_BLOCK_BYTES)

_Static_assert(JOURNAL_BLOCK_RECORDS * JOURNAL_RECORD_BYTES == JOURNAL_BLOCK_BODY_BYTES,
	       "records fill a block exactly");
_Static_assert(JOURNAL_GROUP_BLOCKS_MAX <= UINT16_MAX, "group_blocks fits 16 bits");

/* Block header: bytes 0..63 of every 4 KiB block. */
struct journal_block_header {
	uint32_t magic;           /* 0 */
	uint16_t version;         /* 4 */
	uint16_t record_count;    /* 6: 1..42 */
	uint16_t shard;           /* 8 */
	uint16_t group_blocks;    /* 10: blocks of the commit group of this block */
	uint16_t group_position;  /* 12: index of this block in its group */
	uint16_t block_bytes;     /* 14: 4096 */
	uint32_t segment_index;   /* 16 */
	uint32_t reserved;        /* 20: 0 */
	uint64_t block_index;     /* 24: shard-wide, from 0 */
	uint64_t first_sequence;  /* 32: sequence of record 0 */
	uint64_t previous_hash;   /* 40: header_hash of the previous block */
	uint64_t body_hash;       /* 48: xxh3_64 of bytes 64..4095 (zero padded) */
	uint64_t header_hash;     /* 56: xxh3_64 of bytes 0..55: the chain value */
};
_Static_assert(sizeof(struct journal_block_header) == JOURNAL_BLOCK_HEADER_BYTES, "64 bytes");

/* Segment header: bytes 0..63 of a segment; 64..4095 are zero. */
struct journal_segment_header {
	uint32_t magic;           /* 0 */
	uint16_t version;         /* 4 */
	uint16_t shard;           /* 6 */
	uint32_t segment_index;   /* 8 */
	uint32_t shard_count;     /* 12 */
	uint64_t first_block_index; /* 16 */
	uint64_t first_sequence;  /* 24 */
	uint64_t previous_hash;   /* 32: chain value of the previous segment's last block */
	uint64_t created_us;      /* 40: wall clock, informational */
	/* 48, 52: the tail window, what a crash may tear: at most
	 * in_flight_groups groups of at most group_bytes_max bytes each were in
	 * flight. Both 0 in segments of writers with one group in flight
	 * (format 1 as first written): only the last group may be torn. */
	uint32_t in_flight_groups;
	uint32_t group_bytes_max;
	uint64_t header_hash;     /* 56: xxh3_64 of bytes 0..55 */
};
_Static_assert(sizeof(struct journal_segment_header) == 64, "64 bytes");

/* Snapshot header: bytes 0..63 of a snapshot; the ledger state follows. */
struct journal_snapshot_header {
	uint32_t magic;           /* 0 */
	uint16_t version;         /* 4 */
	uint16_t header_bytes;    /* 6: 64 */
	uint32_t shard;           /* 8 */
	uint32_t shard_count;     /* 12 */
	uint64_t sequence;        /* 16: ledger_sequence() at the snapshot */
	uint64_t now_us;          /* 24: ledger_now() at the snapshot */
	uint64_t body_bytes;      /* 32 */
	uint64_t body_hash;       /* 40: xxh3_64 of the body */
	uint64_t config_hash;     /* 48: xxh3_64 of struct ledger_config */
	uint64_t header_hash;     /* 56: xxh3_64 of bytes 0..55 */
};
_Static_assert(sizeof(struct journal_snapshot_header) == 64, "64 bytes");

/* Outcome of checking one block in isolation and against its expected place. */
enum journal_block_check {
	JOURNAL_BLOCK_OK = 0,
	JOURNAL_BLOCK_INVALID = 1,    /* not self-consistent: torn or corrupt */
	JOURNAL_BLOCK_MISPLACED = 2,  /* self-consistent but not where it belongs */
};

struct journal_block_expect {
	uint32_t shard;
	uint32_t segment_index;
	uint64_t block_index;
	uint64_t first_sequence;
	uint64_t previous_hash;
};

uint64_t journal_hash(const void *data, size_t size);
uint64_t journal_block_header_hash(const struct journal_block_header *header);
uint64_t journal_segment_header_hash(const struct journal_segment_header *header);

/* Checks a whole block; on failure writes why (expected vs found) to `why`. */
enum journal_block_check journal_block_check(const uint8_t *block,
					     const struct journal_block_expect *expect,
					     char *why, size_t why_bytes);
/* Self-consistency of the header alone (magic, version, hash, counts). */
bool journal_block_header_valid(const struct journal_block_header *header);
/* Seals a block in place: body hash then header hash. */
void journal_block_seal(uint8_t *block);

void journal_segment_header_make(struct journal_segment_header *header, uint32_t shard,
				 uint32_t shard_count, uint32_t segment_index,
				 uint64_t first_block_index, uint64_t first_sequence,
				 uint64_t previous_hash, uint32_t in_flight_groups,
				 uint32_t group_bytes_max);
/* Checks a 4096-byte segment header block; why on failure. */
bool journal_segment_header_valid(const uint8_t *block, uint32_t shard, uint32_t segment_index,
				  char *why, size_t why_bytes);

/* Paths, into buffers of JOURNAL_PATH_MAX bytes: 0, or -ENAMETOOLONG when
 * the path does not fit in `size` bytes (path then holds a truncated text
 * that must not be used). journal_data_dir_check() makes that impossible
 * for a data dir that passed it; the check here is the second line. */
int journal_path_format(char *path, size_t size, const char *format, ...)
	__attribute__((format(printf, 3, 4)));
int journal_shard_dir(char *path, size_t size, const char *dir, uint32_t shard);
int journal_segment_path(char *path, size_t size, const char *dir, uint32_t shard,
			 uint32_t segment_index);
/* Segment indexes present in a shard dir, sorted; returns count or -errno.
 * *indexes is malloc'd (free it). */
int journal_segments_list(const char *dir, uint32_t shard, uint32_t **indexes);
/* Snapshot sequences present, sorted descending; count or -errno. */
int journal_snapshots_list(const char *dir, uint32_t shard, uint64_t **sequences);

/* Errors and log. */
int journal_error_set(struct journal_error *error, int code, const char *format, ...)
	__attribute__((format(printf, 3, 4)));
void journal_log(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* I/O helpers: full reads/writes with EINTR handling; -errno or 0. A short
 * read returns -ENODATA. */
int journal_pread_full(int fd, void *buffer, size_t size, uint64_t offset);
int journal_write_full(int fd, const void *buffer, size_t size);
int journal_pwrite_full(int fd, const void *buffer, size_t size, uint64_t offset);
int journal_fsync_dir(const char *path);
uint64_t journal_now_us(void);
uint64_t journal_monotonic_ns(void);

/* The end of the data of a segment file of `file_size` bytes: the offset,
 * rounded up to a whole block, just after the last non-zero byte at or
 * beyond `floor` (a multiple of 4096), or `floor` when every byte from
 * there on is zero. Bytes from *data_end on are the zero tail (preallocated,
 * never written). *data_end > file_size when the last block is partial and
 * not all zero. Reads backwards through the zero tail; 0 or -errno. */
int journal_data_end(int fd, uint64_t file_size, uint64_t floor, uint64_t *data_end);

/* Last sequence of the last self-consistent block of the shard's last
 * segment (a cheap upper bound of what recovery will keep); 0 if none. */
uint64_t journal_tail_sequence(const char *dir, uint32_t shard);

/* Replays the records with sequence > after through ledger_apply() (runs of
 * equal now_us in one call) and compares every result with the record.
 * Returns the number of records examined before the first mismatch (count
 * when none), with the mismatch described in `why`. *applied counts the
 * records applied. */
uint32_t journal_replay(struct ledger *ledger, const struct journal_record *records,
			uint32_t count, uint64_t after, uint64_t *applied, char *why,
			size_t why_bytes);

/* Prints the audit report (text or JSON per options) with the statement
 * (JSON array body, or NULL) to `out`. */
void journal_audit_print(FILE *out, const struct journal_audit_options *options,
			 const struct journal_audit_report *report, const char *statement_json);

#endif /* PAYSWITCH_JOURNAL_INTERNAL_H */
