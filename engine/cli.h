/*
 * cli.h -- the `sluice` subcommands (engine/main.c dispatches to them).
 * Exit codes are part of the command-line contract in DESIGN.md.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include "sql.h"

enum {
    CLI_FIRED = 0,
    CLI_NOT_FIRED = 1,
    CLI_COMPILE_ERROR = 2,
    CLI_RUNTIME_ERROR = 3,
    CLI_USAGE = 64,
};

/* `sluice eval ...` and `sluice explain ...`; argv[1] is the subcommand. Thread: main. */
int cli_eval(int argc, char **argv);
int cli_explain(int argc, char **argv);

#endif
