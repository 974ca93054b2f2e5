/*
 * driver.h — the send / receive loop of payswitch-load.
 *
 * Closed loop: keep `window` requests in flight, sent `per_datagram` to a
 * datagram. Open loop: send at `rate` requests/s (paced on a schedule, not
 * on answers) and measure latency from the scheduled time, so a slow switch
 * cannot hide its queueing (no coordinated omission).
 *
 * Every final answer is tallied into expected[] (approved movements per
 * account); BUSY answers are resent (same id, same timestamp); requests
 * without an answer after timeout_ms are resent with the same bytes. The
 * driver owns one netio client and runs in the calling thread only.
 */
#ifndef PAYSWITCH_BENCH_LOAD_DRIVER_H
#define PAYSWITCH_BENCH_LOAD_DRIVER_H

#include "load.h"
#include "workload.h"

struct load_driver;

/* Creates a driver over an open client. expected[] (accounts->total
 * entries) holds the balances before the run and receives the tally.
 * Returns NULL with *error = -ENOMEM or -EINVAL. */
struct load_driver *load_driver_create(const struct load_config *config,
				       const struct load_accounts *accounts,
				       struct load_workload *workload,
				       struct netio_client *client, int64_t *expected,
				       int *error);
void load_driver_destroy(struct load_driver *driver);

/* Runs the load, then settles holds and drains every request in flight.
 * Returns 0, or -errno on a socket failure, or -ETIMEDOUT when requests were
 * still unanswered at the end (counted as NO_ANSWER). */
int load_driver_run(struct load_driver *driver);

/* Results, valid after load_driver_run(). */
const struct load_totals *load_driver_totals(const struct load_driver *driver);
const struct histogram *load_driver_histogram(const struct load_driver *driver);
const struct load_second *load_driver_series(const struct load_driver *driver, uint32_t *count);

#endif
