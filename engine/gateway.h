/*
 * gateway.h — `payswitch gateway`: the command of the ISO 8583 gateway.
 *
 * Only the command lives here: options and the config file, the directory
 * (engine/directory.h) loaded and reloaded on SIGHUP, the acquirer key, and
 * the wiring into netio's gateway (netio/iso_gateway.h), which owns the
 * translation, the response packing and the event loop. Message flows,
 * options and the result-code table: netio/ISO8583.md.
 */
#ifndef PAYSWITCH_ENGINE_GATEWAY_H
#define PAYSWITCH_ENGINE_GATEWAY_H

/* main.c reaches directory_main() through this header. */
#include "directory.h"

/* `payswitch gateway [OPTIONS]`: argv[0] = "gateway". Returns the exit status. */
int gateway_main(int argc, char **argv);

#endif /* PAYSWITCH_ENGINE_GATEWAY_H */
