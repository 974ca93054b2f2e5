/*
 * echo.h — an in-process stand-in switch that approves everything at once,
 * so that `payswitch-load --echo` measures the generator's own cost.
 * Not a ledger: balances are not kept and verification is skipped.
 */
#ifndef PAYSWITCH_BENCH_LOAD_ECHO_H
#define PAYSWITCH_BENCH_LOAD_ECHO_H

#include <pthread.h>
#include <stdint.h>

#include "netio.h"

struct load_echo;

/* Binds 127.0.0.1 on a free port (*port) and starts the answering thread.
 * key (copied; NULL: none) authenticates requests and seals replies.
 * Returns NULL with *error = -errno. */
struct load_echo *load_echo_start(uint16_t *port, const struct netio_key *key, int *error);
void load_echo_stop(struct load_echo *echo);

#endif
