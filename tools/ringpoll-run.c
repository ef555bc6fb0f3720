/* SPDX-License-Identifier: MIT */
/*
 * ringpoll-run [--stats] [--] CMD ARGS...: runs CMD with
 * libringpoll-preload.so first in LD_PRELOAD, so its epoll runs on
 * io_uring. The library is looked for beside this program, then in
 * RINGPOLL_LIBDIR's place at build time.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RINGPOLL_LIBDIR
#define RINGPOLL_LIBDIR "/usr/local/lib"
#endif
#define RP_PRELOAD_NAME "libringpoll-preload.so"

static int usage(void)
{
	fprintf(stderr,
		"usage: ringpoll-run [--stats] [--] CMD [ARGS...]\n"
		"Runs CMD with its epoll on io_uring (LD_PRELOAD=%s).\n"
		"  --stats  print ringpoll's counters to stderr at exit\n"
		"Settings: RINGPOLL_DISABLE=1 (kernel epoll), RINGPOLL_DEBUG=1\n",
		RP_PRELOAD_NAME);
	return 2;
}

static int find_lib(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = 0;
		snprintf(out, len, "%s/%s", dirname(self), RP_PRELOAD_NAME);
		if (access(out, R_OK) == 0)
			return 0;
	}
	snprintf(out, len, "%s/%s", RINGPOLL_LIBDIR, RP_PRELOAD_NAME);
	return access(out, R_OK);
}

int main(int argc, char **argv)
{
	char lib[PATH_MAX], *preload;
	const char *old = getenv("LD_PRELOAD");
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--stats") == 0) {
			setenv("RINGPOLL_STATS", "1", 1);
		} else if (strcmp(argv[i], "-h") == 0 ||
			   strcmp(argv[i], "--help") == 0) {
			usage();
			return 0;
		} else {
			fprintf(stderr, "ringpoll-run: unknown option %s\n",
				argv[i]);
			return usage();
		}
	}
	if (i >= argc)
		return usage();
	if (find_lib(lib, sizeof(lib)) != 0) {
		fprintf(stderr, "ringpoll-run: cannot find %s\n",
			RP_PRELOAD_NAME);
		return 127;
	}
	/* First in the list, so that our epoll_* win. */
	if (old && *old) {
		preload = malloc(strlen(lib) + strlen(old) + 2);
		if (!preload)
			return 127;
		sprintf(preload, "%s:%s", lib, old);
	} else {
		preload = lib;
	}
	setenv("LD_PRELOAD", preload, 1);
	execvp(argv[i], argv + i);
	fprintf(stderr, "ringpoll-run: %s: %s\n", argv[i], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
