/*
 * main.c -- the `sluice` command: dispatch to the subcommands of DESIGN.md.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "engine_int.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0-dev"
#endif

static int usage(void) {
    fputs("usage: sluice serve [--config FILE]\n"
          "       sluice eval --sql SQL --topic T (--payload JSON | --payload-file F [--binary])\n"
          "                   [--sql-version 2016-03-23|2015-10-08] [--context JSON] "
          "[--template TEXT]...\n"
          "       sluice explain --sql SQL [--sql-version V]\n"
          "       sluice version\n",
          stderr);
    return CLI_USAGE;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "eval"))
        return cli_eval(argc, argv);
    if (!strcmp(cmd, "explain"))
        return cli_explain(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("sluice %s\n", SLUICE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "serve"))
        return eng_serve_main(argc, argv);
    return usage();
}
