/* SPDX-License-Identifier: MIT */
/*
 * ringpoll-run [OPTION...] [--] CMD [ARGS...]: runs CMD with
 * libringpoll-preload.so first in LD_PRELOAD, so that its epoll runs on
 * io_uring. See ringpoll-run(1).
 *
 * Where the library is looked for, in this order:
 * 1. beside this program (the build tree: build/ringpoll-run);
 * 2. the LIBDIR this program was built for, when it runs from the BINDIR
 *    it was built for (its own install);
 * 3. ../lib relative to this program (an install moved elsewhere);
 * 4. that LIBDIR, when it was not tried in 2.
 * The symlinks to this program are resolved first (/proc/self/exe).
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RINGPOLL_LIBDIR
#define RINGPOLL_LIBDIR "/usr/local/lib"
#endif
#ifndef RINGPOLL_BINDIR
#define RINGPOLL_BINDIR "/usr/local/bin"
#endif
#ifndef RINGPOLL_VERSION
#define RINGPOLL_VERSION "unknown"
#endif
#define RP_PRELOAD_NAME "libringpoll-preload.so"
#define RP_NPLACES 4
/* A directory name with "/../lib" added. */
#define RP_DIRLEN (PATH_MAX + 16)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ringpoll-run [OPTION...] [--] COMMAND [ARG...]\n"
		"Run COMMAND with its epoll on io_uring: %s is put first\n"
		"in LD_PRELOAD and COMMAND is executed.\n"
		"\n"
		"  -s, --stats     each process prints a ringpoll-stats line to "
		"stderr at exit\n"
		"                  (RINGPOLL_STATS=1)\n"
		"  -c, --completion\n"
		"                  opt-in: the reads and writes of connected "
		"stream sockets in\n"
		"                  ring-backed instances run on the completion "
		"model\n"
		"                  (RINGPOLL_COMPLETION=1)\n"
		"  -v, --verbose   say which library is preloaded; each process "
		"says once\n"
		"                  whether its epoll runs on io_uring or on the "
		"kernel, and why\n"
		"                  (RINGPOLL_DEBUG=1)\n"
		"  -q, --quiet     no messages but errors (clears RINGPOLL_DEBUG "
		"and, unless\n"
		"                  --stats is given, RINGPOLL_STATS)\n"
		"  -h, --help      print this help and exit\n"
		"  -V, --version   print the version and exit\n"
		"  --              end of options: the next word is COMMAND\n"
		"\n"
		"Options end at the first word that is not one: COMMAND's own "
		"options follow it.\n"
		"Environment: RINGPOLL_DISABLE=1 (the kernel's epoll), "
		"RINGPOLL_STATS=1,\n"
		"RINGPOLL_DEBUG=1, RINGPOLL_COMPLETION=1. Exit status: "
		"COMMAND's; 2 for a usage\n"
		"error, 126 if COMMAND cannot be run, 127 if it or the library "
		"is not found.\n"
		"See ringpoll-run(1) and ringpoll(7).\n",
		RP_PRELOAD_NAME);
}

static int usage_error(void)
{
	fprintf(stderr, "Try 'ringpoll-run --help' for more information.\n");
	return 2;
}

/* The directories to look in, in order, without repeats; returns how many. */
static int places(char dirs[RP_NPLACES][RP_DIRLEN])
{
	char self[PATH_MAX], here[PATH_MAX], up[RP_DIRLEN];
	const char *cand[RP_NPLACES];
	int n = 0, k = 0;
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (len > 0) {
		self[len] = 0;
		snprintf(here, sizeof(here), "%s", dirname(self));
		snprintf(up, sizeof(up), "%s/../lib", here);
		cand[n++] = here;
		if (strcmp(here, RINGPOLL_BINDIR) == 0)
			cand[n++] = RINGPOLL_LIBDIR;
		cand[n++] = up;
	}
	cand[n++] = RINGPOLL_LIBDIR;
	for (int i = 0; i < n; i++) {
		int seen = 0;

		for (int j = 0; j < k; j++)
			seen |= strcmp(dirs[j], cand[i]) == 0;
		if (!seen)
			snprintf(dirs[k++], RP_DIRLEN, "%s", cand[i]);
	}
	return k;
}

/* The library's path in out, or -1 after saying where it looked. */
static int find_lib(char *out, size_t len)
{
	char dirs[RP_NPLACES][RP_DIRLEN];
	int errs[RP_NPLACES];
	int n = places(dirs);

	for (int i = 0; i < n; i++) {
		snprintf(out, len, "%s/%s", dirs[i], RP_PRELOAD_NAME);
		if (access(out, R_OK) == 0)
			return 0;
		errs[i] = errno;
	}
	fprintf(stderr, "ringpoll-run: cannot find %s; looked for:\n",
		RP_PRELOAD_NAME);
	for (int i = 0; i < n; i++)
		fprintf(stderr, "  %s/%s: %s\n", dirs[i], RP_PRELOAD_NAME,
			strerror(errs[i]));
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stats", no_argument, NULL, 's' },
		{ "completion", no_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char lib[RP_DIRLEN + sizeof(RP_PRELOAD_NAME)], *preload;
	const char *old;
	int c, stats = 0, completion = 0, verbose = 0, quiet = 0;

	/* "+": stop at the first word that is not an option (COMMAND). */
	while ((c = getopt_long(argc, argv, "+scvqhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			stats = 1;
			break;
		case 'c':
			completion = 1;
			break;
		case 'v':
			verbose = 1;
			quiet = 0;
			break;
		case 'q':
			quiet = 1;
			verbose = 0;
			break;
		case 'h':
			usage(stdout);
			return fflush(stdout) == 0 ? 0 : 1;
		case 'V':
			printf("ringpoll-run (ringpoll) %s\n", RINGPOLL_VERSION);
			return fflush(stdout) == 0 ? 0 : 1;
		default:
			return usage_error();
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ringpoll-run: no command given\n");
		return usage_error();
	}
	if (find_lib(lib, sizeof(lib)) != 0)
		return 127;
	/* ld.so splits LD_PRELOAD at spaces and colons. */
	if (strpbrk(lib, " :")) {
		fprintf(stderr,
			"ringpoll-run: %s: a space or colon in the path; "
			"LD_PRELOAD cannot carry it\n",
			lib);
		return 127;
	}
	if (stats)
		setenv("RINGPOLL_STATS", "1", 1);
	else if (quiet)
		unsetenv("RINGPOLL_STATS");
	/* A mode, not a message: --quiet leaves an inherited one alone. */
	if (completion)
		setenv("RINGPOLL_COMPLETION", "1", 1);
	if (verbose)
		setenv("RINGPOLL_DEBUG", "1", 1);
	else if (quiet)
		unsetenv("RINGPOLL_DEBUG");
	/* First in the list, so that our epoll_* win. */
	old = getenv("LD_PRELOAD");
	if (old && *old) {
		preload = malloc(strlen(lib) + strlen(old) + 2);
		if (!preload) {
			perror("ringpoll-run");
			return 127;
		}
		sprintf(preload, "%s:%s", lib, old);
	} else {
		preload = lib;
	}
	setenv("LD_PRELOAD", preload, 1);
	if (verbose)
		fprintf(stderr, "ringpoll-run: LD_PRELOAD=%s %s\n", preload,
			argv[optind]);
	execvp(argv[optind], argv + optind);
	c = errno;
	fprintf(stderr, "ringpoll-run: %s: %s\n", argv[optind], strerror(c));
	return c == ENOENT ? 127 : 126;
}
