/* SPDX-License-Identifier: MIT */
/*
 * rpbench server|load|ctl ...: the entry point. See bench.h for the exit codes
 * and docs/BENCHMARKS.md for how the demo uses both halves.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static int rpb_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: rpbench server --mode MODE --port P [--threads N] "
	    "[--bind ADDR]\n"
	    "                      [--control-port C] [--report FILE]\n"
	    "       rpbench load --port P --conns N --size B --depth D "
	    "--seconds S\n"
	    "                    --warmup W [--threads T] [--host ADDR] "
	    "[--control-port C]\n"
	    "       rpbench ctl [--fds N] [--rounds R] [--iters I] "
	    "[--kind idle|ready|both]\n"
	    "Run 'rpbench server --help', 'rpbench load --help' or "
	    "'rpbench ctl --help' for more.\n");
	return RPB_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return rpb_usage(stderr);
	if (strcmp(argv[1], "server") == 0)
		return rpb_server_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "load") == 0)
		return rpb_load_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "ctl") == 0)
		return rpb_ctl_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		rpb_usage(stdout);
		return 0;
	}
	fprintf(stderr, "rpbench: unknown command '%s'\n", argv[1]);
	return rpb_usage(stderr);
}
