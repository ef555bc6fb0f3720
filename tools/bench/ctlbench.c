/* SPDX-License-Identifier: MIT */
/*
 * rpbench ctl: what one epoll_ctl costs, the kernel's epoll against
 * rp_epoll_ctl (issue 7: MOD and DEL at least 3x cheaper, ADD no dearer).
 *
 * Both APIs are called by name in this one file (no ringpoll_compat.h), on
 * the same fds, in the same process. A round runs each API on a fresh
 * instance: ADD all N fds, MOD all N, DEL all N, --iters times over.
 *
 * rp_epoll_ctl only queues SQEs; they reach the kernel with the next wait
 * (or inline, each time the SQ fills). Timing the ctl calls alone would
 * leave that work out, so every batch of N ctls is followed by one
 * epoll_wait(timeout 0), timed apart: "ctl" is the batch over N, and
 * "ctl+wait0" is batch plus wait over N, the cost a program really pays.
 *
 * Two kinds of fds, because a ready fd costs both sides a poll completion:
 * idle (one end of a socketpair nobody writes to, watched for EPOLLIN) and
 * ready (an eventfd with a count of 1, watched for EPOLLIN, level).
 *
 * Wall time is CLOCK_MONOTONIC around each batch, CPU time is
 * CLOCK_PROCESS_CPUTIME_ID (the ring's work done in our context counts).
 * The two APIs alternate A B B A across rounds, so that a slow drift of the
 * machine falls on both; medians, min and max over rounds are reported.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "ringpoll_epoll.h"

#define RPB_CTL_MAX_FDS 100000

enum { RPB_CTL_ADD, RPB_CTL_MOD, RPB_CTL_MODD, RPB_CTL_DEL, RPB_CTL_NOPS };
enum { RPB_CTL_IDLE, RPB_CTL_READY, RPB_CTL_NKINDS };
enum { RPB_CTL_KERNEL, RPB_CTL_RP, RPB_CTL_NAPIS };

static const char *const rpb_ctl_opname[RPB_CTL_NOPS] = {
	"ADD", "MOD", "MOD data", "DEL"
};
static const int rpb_ctl_opcode[RPB_CTL_NOPS] = {
	EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_MOD, EPOLL_CTL_DEL
};
static const char *const rpb_ctl_kindname[RPB_CTL_NKINDS] = { "idle",
							      "ready" };

/* One API: the kernel's epoll or ringpoll's, called through pointers. */
struct rpb_ctl_api {
	const char *name;
	int (*create1)(int flags);
	int (*ctl)(int epfd, int op, int fd, struct epoll_event *ev);
	int (*wait)(int epfd, struct epoll_event *evs, int max, int timeout);
	int (*close)(int fd);
};

static const struct rpb_ctl_api rpb_ctl_apis[RPB_CTL_NAPIS] = {
	{ "epoll", epoll_create1, epoll_ctl, epoll_wait, close },
	{ "rp", rp_epoll_create1, rp_epoll_ctl, rp_epoll_wait, rp_close },
};

/* Both clocks at one instant. */
struct rpb_ctl_stamp {
	uint64_t wall, cpu;
};

/* Sums over one round's timed iterations, for one API, kind and op. */
struct rpb_ctl_acc {
	uint64_t ctl_wall, ctl_cpu, wait_wall, wait_cpu;
};

/* Per-op figures of every round: ns per call. */
struct rpb_ctl_series {
	double *ctl_wall, *ctl_cpu, *all_wall, *all_cpu;
};

struct rpb_ctl {
	uint64_t nfds, rounds, iters;
	bool kinds[RPB_CTL_NKINDS];
	bool apis[RPB_CTL_NAPIS];
	int *fds[RPB_CTL_NKINDS]; /* the watched fds */
	int *peers;		  /* the socketpairs' other ends */
	struct epoll_event *evs;
	struct rpb_ctl_series s[RPB_CTL_NKINDS][RPB_CTL_NAPIS][RPB_CTL_NOPS];
};

static void rpb_ctl_die(const char *what, int err)
{
	fprintf(stderr, "rpbench ctl: %s: %s\n", what, strerror(err));
	exit(RPB_EXIT_FAIL);
}

static uint64_t rpb_ctl_clock(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		rpb_ctl_die("clock_gettime", errno);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void rpb_ctl_stamp(struct rpb_ctl_stamp *s)
{
	s->wall = rpb_ctl_clock(CLOCK_MONOTONIC);
	s->cpu = rpb_ctl_clock(CLOCK_PROCESS_CPUTIME_ID);
}

/*
 * MOD adds EPOLLRDHUP to what ADD asked for: a MOD that changes nothing
 * could be short-cut by an implementation, and neither interest makes an
 * idle socketpair end ready. "MOD data" then keeps the interest and
 * changes only the data, as a program that moves a connection to another
 * object does: the case that can be short-cut, measured apart.
 */
static uint32_t rpb_ctl_events(int op)
{
	return op == RPB_CTL_MOD || op == RPB_CTL_MODD ? EPOLLIN | EPOLLRDHUP :
							 EPOLLIN;
}

/* What a wait after the op must report: the same for both APIs. */
static int rpb_ctl_expect(const struct rpb_ctl *b, int kind, int op)
{
	return kind == RPB_CTL_READY && op != RPB_CTL_DEL ? (int)b->nfds : 0;
}

/* One pass: ADD, MOD, DEL on every fd, each batch followed by a wait 0. */
static void rpb_ctl_pass(struct rpb_ctl *b, int kind, int api, int epfd,
			 struct rpb_ctl_acc acc[RPB_CTL_NOPS])
{
	const struct rpb_ctl_api *a = &rpb_ctl_apis[api];
	const int *fds = b->fds[kind];

	for (int op = 0; op < RPB_CTL_NOPS; op++) {
		struct rpb_ctl_stamp t0, t1, t2;
		int n;

		rpb_ctl_stamp(&t0);
		for (uint64_t i = 0; i < b->nfds; i++) {
			struct epoll_event ev = { .events =
							  rpb_ctl_events(op) };

			ev.data.u64 = op == RPB_CTL_MODD ? i + b->nfds : i;
			if (a->ctl(epfd, rpb_ctl_opcode[op], fds[i], &ev) < 0) {
				fprintf(stderr,
					"rpbench ctl: %s epoll_ctl %s fd %d: "
					"%s\n",
					a->name, rpb_ctl_opname[op], fds[i],
					strerror(errno));
				exit(RPB_EXIT_FAIL);
			}
		}
		rpb_ctl_stamp(&t1);
		n = a->wait(epfd, b->evs, (int)b->nfds, 0);
		rpb_ctl_stamp(&t2);
		if (n < 0) {
			fprintf(stderr, "rpbench ctl: %s epoll_wait: %s\n",
				a->name, strerror(errno));
			exit(RPB_EXIT_FAIL);
		}
		/* A check that both did the same work, not a timing matter. */
		if (n != rpb_ctl_expect(b, kind, op)) {
			fprintf(stderr,
				"rpbench ctl: %s: the wait after %s on %s fds "
				"reported %d events, not %d\n",
				a->name, rpb_ctl_opname[op],
				rpb_ctl_kindname[kind], n,
				rpb_ctl_expect(b, kind, op));
			exit(RPB_EXIT_FAIL);
		}
		if (!acc)
			continue;
		acc[op].ctl_wall += t1.wall - t0.wall;
		acc[op].ctl_cpu += t1.cpu - t0.cpu;
		acc[op].wait_wall += t2.wall - t1.wall;
		acc[op].wait_cpu += t2.cpu - t1.cpu;
	}
}

/* One round of one API on one kind: a fresh instance, a warm-up, iters. */
static void rpb_ctl_round(struct rpb_ctl *b, int kind, int api, uint64_t round)
{
	const struct rpb_ctl_api *a = &rpb_ctl_apis[api];
	struct rpb_ctl_acc acc[RPB_CTL_NOPS];
	double ops = (double)b->nfds * (double)b->iters;
	int epfd;

	memset(acc, 0, sizeof(acc));
	epfd = a->create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		rpb_ctl_die("epoll_create1", errno);
	/* Measuring the kernel against itself would say nothing. */
	if (api == RPB_CTL_RP && !rp_epoll_is_ring(epfd)) {
		fprintf(stderr, "rpbench ctl: rp_epoll_create1 fell back to "
				"the kernel's epoll (no io_uring here?)\n");
		exit(RPB_EXIT_FAIL);
	}
	/*
	 * Untimed first pass: rp allocates its item table and the kernel
	 * warms its epitem slab, so both are measured in a steady state.
	 */
	rpb_ctl_pass(b, kind, api, epfd, NULL);
	for (uint64_t i = 0; i < b->iters; i++)
		rpb_ctl_pass(b, kind, api, epfd, acc);
	if (a->close(epfd) < 0)
		rpb_ctl_die("close of the epoll fd", errno);
	for (int op = 0; op < RPB_CTL_NOPS; op++) {
		struct rpb_ctl_series *s = &b->s[kind][api][op];

		s->ctl_wall[round] = (double)acc[op].ctl_wall / ops;
		s->ctl_cpu[round] = (double)acc[op].ctl_cpu / ops;
		s->all_wall[round] =
		    (double)(acc[op].ctl_wall + acc[op].wait_wall) / ops;
		s->all_cpu[round] =
		    (double)(acc[op].ctl_cpu + acc[op].wait_cpu) / ops;
	}
}

static int rpb_ctl_cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

struct rpb_ctl_stat {
	double med, min, max;
};

static struct rpb_ctl_stat rpb_ctl_stat(const double *v, uint64_t n)
{
	struct rpb_ctl_stat st;
	double *s = malloc(n * sizeof(*s));

	if (!s)
		rpb_ctl_die("malloc", ENOMEM);
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), rpb_ctl_cmp);
	st.min = s[0];
	st.max = s[n - 1];
	st.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return st;
}

/* Per-round epoll/rp ratios: rounds are paired, so their spread is real. */
static struct rpb_ctl_stat rpb_ctl_ratio(const double *k, const double *r,
					 uint64_t n)
{
	struct rpb_ctl_stat st;
	double *q = malloc(n * sizeof(*q));

	if (!q)
		rpb_ctl_die("malloc", ENOMEM);
	for (uint64_t i = 0; i < n; i++)
		q[i] = r[i] > 0 ? k[i] / r[i] : 0;
	st = rpb_ctl_stat(q, n);
	free(q);
	return st;
}

static void rpb_ctl_cell(const double *v, uint64_t n)
{
	struct rpb_ctl_stat st = rpb_ctl_stat(v, n);

	printf(" %.0f [%.0f-%.0f] |", st.med, st.min, st.max);
}

static void rpb_ctl_row(const struct rpb_ctl *b, int kind, int op, bool all)
{
	const struct rpb_ctl_series *k = &b->s[kind][RPB_CTL_KERNEL][op];
	const struct rpb_ctl_series *r = &b->s[kind][RPB_CTL_RP][op];
	const double *kw = all ? k->all_wall : k->ctl_wall;
	const double *rw = all ? r->all_wall : r->ctl_wall;
	const double *kc = all ? k->all_cpu : k->ctl_cpu;
	const double *rc = all ? r->all_cpu : r->ctl_cpu;
	uint64_t n = b->rounds;
	struct rpb_ctl_stat qw = rpb_ctl_ratio(kw, rw, n);
	struct rpb_ctl_stat qc = rpb_ctl_ratio(kc, rc, n);

	printf("| %s | %s | %s |", rpb_ctl_kindname[kind], rpb_ctl_opname[op],
	       all ? "ctl+wait0" : "ctl");
	rpb_ctl_cell(kw, n);
	rpb_ctl_cell(rw, n);
	printf(" **%.2fx** [%.2f-%.2f] |", qw.med, qw.min, qw.max);
	rpb_ctl_cell(kc, n);
	rpb_ctl_cell(rc, n);
	printf(" %.2fx [%.2f-%.2f] |\n", qc.med, qc.min, qc.max);
}

/* One side alone (--api): its figures, nothing to compare. */
static void rpb_ctl_row1(const struct rpb_ctl *b, int kind, int api, int op,
			 bool all)
{
	const struct rpb_ctl_series *s = &b->s[kind][api][op];

	printf("| %s | %s | %s |", rpb_ctl_kindname[kind], rpb_ctl_opname[op],
	       all ? "ctl+wait0" : "ctl");
	rpb_ctl_cell(all ? s->all_wall : s->ctl_wall, b->rounds);
	rpb_ctl_cell(all ? s->all_cpu : s->ctl_cpu, b->rounds);
	printf("\n");
}

static int rpb_ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: rpbench ctl [--fds N] [--rounds R] [--iters I] "
		"[--kind idle|ready|both]\n"
		"                   [--api epoll|rp|both]\n"
		"ns per epoll_ctl ADD, MOD and DEL on N fds, the kernel's "
		"epoll against\n"
		"rp_epoll_ctl, alone and with the next epoll_wait(0) shared "
		"out over the\n"
		"batch (rp's ctl work is submitted there). idle: socketpair "
		"ends, never\n"
		"ready; ready: eventfds with a count. R rounds, the APIs "
		"alternating\n"
		"(A B B A), each round a warm-up pass and I timed passes; "
		"medians [min-max]\n"
		"over rounds. --api runs one side only (to profile it). "
		"Defaults:\n"
		"--fds 1000 --rounds 9 --iters 50 --kind both --api both.\n"
		"Exit: 0 ok, 1 a failed call, 2 bad arguments.\n");
	return RPB_EXIT_USAGE;
}

static int rpb_ctl_args(struct rpb_ctl *b, int argc, char **argv)
{
	static const char prog[] = "rpbench ctl";
	int ret = 0;

	b->nfds = 1000;
	b->rounds = 9;
	b->iters = 50;
	b->kinds[RPB_CTL_IDLE] = b->kinds[RPB_CTL_READY] = true;
	b->apis[RPB_CTL_KERNEL] = b->apis[RPB_CTL_RP] = true;
	for (int i = 1; i < argc && !ret; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			rpb_ctl_usage(stdout);
			exit(0);
		} else if (strcmp(a, "--fds") == 0) {
			ret = rpb_parse_uint(prog, a, v, 1, RPB_CTL_MAX_FDS,
					     &b->nfds);
		} else if (strcmp(a, "--rounds") == 0) {
			ret = rpb_parse_uint(prog, a, v, 1, 1000, &b->rounds);
		} else if (strcmp(a, "--iters") == 0) {
			ret = rpb_parse_uint(prog, a, v, 1, 100000, &b->iters);
		} else if (strcmp(a, "--kind") == 0 && v) {
			bool idle = strcmp(v, "idle") == 0;
			bool ready = strcmp(v, "ready") == 0;
			bool both = strcmp(v, "both") == 0;

			if (!idle && !ready && !both) {
				fprintf(stderr,
					"%s: --kind: '%s' is not idle, ready "
					"or both\n",
					prog, v);
				ret = -EINVAL;
			}
			b->kinds[RPB_CTL_IDLE] = idle || both;
			b->kinds[RPB_CTL_READY] = ready || both;
		} else if (strcmp(a, "--api") == 0 && v) {
			bool ep = strcmp(v, "epoll") == 0;
			bool rp = strcmp(v, "rp") == 0;
			bool both = strcmp(v, "both") == 0;

			if (!ep && !rp && !both) {
				fprintf(stderr,
					"%s: --api: '%s' is not epoll, rp or "
					"both\n",
					prog, v);
				ret = -EINVAL;
			}
			b->apis[RPB_CTL_KERNEL] = ep || both;
			b->apis[RPB_CTL_RP] = rp || both;
		} else {
			fprintf(stderr,
				"%s: unknown or incomplete option '%s'\n", prog,
				a);
			return rpb_ctl_usage(stderr);
		}
	}
	return ret ? RPB_EXIT_USAGE : 0;
}

static double *rpb_ctl_alloc(uint64_t n)
{
	double *v = calloc(n, sizeof(*v));

	if (!v)
		rpb_ctl_die("calloc", ENOMEM);
	return v;
}

/* The fds: made once, shared by both APIs, never read from or written. */
static void rpb_ctl_open(struct rpb_ctl *b)
{
	uint64_t one = 1;

	rpb_raise_nofile();
	for (int k = 0; k < RPB_CTL_NKINDS; k++)
		b->fds[k] = calloc(b->nfds, sizeof(int));
	b->peers = calloc(b->nfds, sizeof(int));
	b->evs = calloc(b->nfds, sizeof(*b->evs));
	if (!b->fds[RPB_CTL_IDLE] || !b->fds[RPB_CTL_READY] || !b->peers ||
	    !b->evs)
		rpb_ctl_die("calloc", ENOMEM);
	for (uint64_t i = 0; i < b->nfds; i++) {
		int sv[2];

		if (b->kinds[RPB_CTL_IDLE]) {
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				       sv) < 0)
				rpb_ctl_die("socketpair (try fewer --fds)",
					    errno);
			b->fds[RPB_CTL_IDLE][i] = sv[0];
			b->peers[i] = sv[1];
		}
		if (b->kinds[RPB_CTL_READY]) {
			int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

			if (fd < 0)
				rpb_ctl_die("eventfd (try fewer --fds)", errno);
			/* A count nobody reads: readable for the whole run. */
			if (write(fd, &one, sizeof(one)) != sizeof(one))
				rpb_ctl_die("write to an eventfd", errno);
			b->fds[RPB_CTL_READY][i] = fd;
		}
	}
	for (int k = 0; k < RPB_CTL_NKINDS; k++)
		for (int a = 0; a < RPB_CTL_NAPIS; a++)
			for (int op = 0; op < RPB_CTL_NOPS; op++) {
				struct rpb_ctl_series *s = &b->s[k][a][op];

				s->ctl_wall = rpb_ctl_alloc(b->rounds);
				s->ctl_cpu = rpb_ctl_alloc(b->rounds);
				s->all_wall = rpb_ctl_alloc(b->rounds);
				s->all_cpu = rpb_ctl_alloc(b->rounds);
			}
}

/*
 * rp_close: the fds were registered with rp instances (see the header).
 * The memory goes too, so that a leak checker sees a clean run.
 */
static void rpb_ctl_close(struct rpb_ctl *b)
{
	for (uint64_t i = 0; i < b->nfds; i++) {
		if (b->kinds[RPB_CTL_IDLE] &&
		    (rp_close(b->fds[RPB_CTL_IDLE][i]) < 0 ||
		     close(b->peers[i]) < 0))
			rpb_ctl_die("close of a socketpair", errno);
		if (b->kinds[RPB_CTL_READY] &&
		    rp_close(b->fds[RPB_CTL_READY][i]) < 0)
			rpb_ctl_die("close of an eventfd", errno);
	}
	for (int k = 0; k < RPB_CTL_NKINDS; k++)
		free(b->fds[k]);
	free(b->peers);
}

static void rpb_ctl_free(struct rpb_ctl *b)
{
	for (int k = 0; k < RPB_CTL_NKINDS; k++)
		for (int a = 0; a < RPB_CTL_NAPIS; a++)
			for (int op = 0; op < RPB_CTL_NOPS; op++) {
				struct rpb_ctl_series *s = &b->s[k][a][op];

				free(s->ctl_wall);
				free(s->ctl_cpu);
				free(s->all_wall);
				free(s->all_cpu);
			}
	free(b->evs);
}

/* Which CPUs we run on: the figures mean little unpinned on a busy box. */
static void rpb_ctl_where(char *buf, size_t len)
{
	cpu_set_t set;
	size_t off = 0;

	buf[0] = 0;
	if (sched_getaffinity(0, sizeof(set), &set) < 0) {
		snprintf(buf, len, "?");
		return;
	}
	for (int c = 0; c < CPU_SETSIZE && off + 8 < len; c++)
		if (CPU_ISSET(c, &set))
			off += (size_t)snprintf(buf + off, len - off, "%s%d",
						off ? "," : "", c);
}

int rpb_ctl_main(int argc, char **argv)
{
	struct rpb_ctl b;
	char cpus[128];
	int ret, api1;

	memset(&b, 0, sizeof(b));
	ret = rpb_ctl_args(&b, argc, argv);
	if (ret)
		return ret;
	rpb_ctl_open(&b);
	for (uint64_t r = 0; r < b.rounds; r++) {
		for (int k = 0; k < RPB_CTL_NKINDS; k++) {
			/* A B, then B A: a drift costs both the same. */
			int first = (int)(r & 1);

			if (!b.kinds[k])
				continue;
			if (b.apis[first])
				rpb_ctl_round(&b, k, first, r);
			if (b.apis[!first])
				rpb_ctl_round(&b, k, !first, r);
		}
	}
	rpb_ctl_close(&b);
	api1 = b.apis[RPB_CTL_KERNEL] ? RPB_CTL_KERNEL : RPB_CTL_RP;
	rpb_ctl_where(cpus, sizeof(cpus));
	printf("rpbench ctl: %llu fds, %llu rounds x %llu passes "
	       "(+1 warm-up), APIs alternating A B B A, CPUs %s.\n"
	       "ns per call, median [min-max] over rounds; epoll/rp > 1: "
	       "rp is cheaper (ratio of each round, median [min-max]).\n"
	       "ctl+wait0: the batch of N calls plus the epoll_wait(0) after "
	       "it, over N.\n\n",
	       (unsigned long long)b.nfds, (unsigned long long)b.rounds,
	       (unsigned long long)b.iters, cpus);
	if (b.apis[RPB_CTL_KERNEL] && b.apis[RPB_CTL_RP])
		printf("| fds | op | cost | epoll wall | rp wall | epoll/rp "
		       "wall | epoll CPU | rp CPU | epoll/rp CPU |\n"
		       "|---|---|---|---:|---:|---:|---:|---:|---:|\n");
	else
		printf("| fds | op | cost | %s wall | %s CPU |\n"
		       "|---|---|---|---:|---:|\n",
		       rpb_ctl_apis[api1].name, rpb_ctl_apis[api1].name);
	for (int k = 0; k < RPB_CTL_NKINDS; k++) {
		if (!b.kinds[k])
			continue;
		for (int op = 0; op < RPB_CTL_NOPS; op++) {
			for (int all = 0; all < 2; all++) {
				if (b.apis[RPB_CTL_KERNEL] &&
				    b.apis[RPB_CTL_RP])
					rpb_ctl_row(&b, k, op, all);
				else
					rpb_ctl_row1(&b, k, api1, op, all);
			}
		}
	}
	rpb_ctl_free(&b);
	return 0;
}
