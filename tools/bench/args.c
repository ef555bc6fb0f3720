/* SPDX-License-Identifier: MIT */
/* Argument parsing and small helpers shared by the server and the load. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

int rpb_parse_uint(const char *prog, const char *opt, const char *s,
		   uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s) {
		fprintf(stderr, "%s: %s needs a value\n", prog, opt);
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr,
			"%s: %s: '%s' is not a number from %llu to %llu\n",
			prog, opt, s, (unsigned long long)min,
			(unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int rpb_parse_secs(const char *prog, const char *opt, const char *s, double min,
		   double *out)
{
	char *end;
	double v;

	if (!s) {
		fprintf(stderr, "%s: %s needs a value\n", prog, opt);
		return -EINVAL;
	}
	errno = 0;
	v = strtod(s, &end);
	/* A day bounds every sane run; it also keeps the ns math in range. */
	if (errno || end == s || *end || !(v >= min) || v > 86400) {
		fprintf(stderr,
			"%s: %s: '%s' is not a number of seconds >= %g\n", prog,
			opt, s, min);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

uint64_t rpb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 512 connections and more need more than the usual soft limit of 1024. */
void rpb_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}
