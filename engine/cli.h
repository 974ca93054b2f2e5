/*
 * cli.h — subcommands of `payswitch` that talk to a running switch.
 */
#ifndef PAYSWITCH_ENGINE_CLI_H
#define PAYSWITCH_ENGINE_CLI_H

/* `payswitch account ACTION ...`: argv[0] = "account". Returns the exit status. */
int cli_account_main(int argc, char **argv);

#endif
