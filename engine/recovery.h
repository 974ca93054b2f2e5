/*
 * recovery.h — re-sending cross-shard credits a crash interrupted.
 */
#ifndef PAYSWITCH_ENGINE_RECOVERY_H
#define PAYSWITCH_ENGINE_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

struct engine;
struct engine_shard;

/* After every shard is recovered: scans the journals after each snapshot and
 * queues on each shard's backlog the CREDIT and RETURN messages that never
 * reached their shard. Start-up only (allocates). Returns 0 or -errno with a
 * sentence in `error`. */
int engine_recover_credits(struct engine *engine, char *error, size_t error_size);

/* Sends as much of the shard's backlog as the rings take; shard thread only.
 * Returns how many were sent. */
uint32_t engine_shard_send_backlog(struct engine_shard *shard);

#endif
