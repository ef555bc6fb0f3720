/* SPDX-License-Identifier: MIT */
/*
 * What each ring setup an epoll instance could have costs when nothing
 * goes through it (issue 12): how fast a sleeping waiter wakes, and what
 * an SQPOLL ring's kernel thread costs idle or under a trickle of events.
 * Standalone: liburing and pthreads, nothing of ringpoll.
 *
 *   ringsetup wake SETUP [N [GAP_US [IDLE_MS]]]
 *	SETUP: defer, coop, sqpoll or epoll (the kernel's). A waiter thread
 *	(CPU 0) sleeps in io_uring_enter(GETEVENTS) for a one-shot POLL_ADD
 *	on a pipe (epoll: in epoll_wait on it); a waker (CPU 1) waits until
 *	the waiter is asleep (state S in /proc), then GAP_US more (default
 *	50), takes the time and writes a byte. The waiter takes the time
 *	when its wait returns. Prints the median, p10, p90 and p99 of N
 *	(default 10000) wakes, in us. For sqpoll, IDLE_MS is the kernel
 *	thread's idle time (default 1): a GAP_US above it finds the thread
 *	asleep, one below it finds the thread polling.
 *   ringsetup idle N IDLE_MS SECONDS [attach] [PERIOD_MS]
 *	N SQPOLL rings (attach: all on the first one's kernel thread with
 *	IORING_SETUP_ATTACH_WQ), each with a POLL_ADD armed on a pipe. Then
 *	SECONDS of nothing (or, with PERIOD_MS, a byte into one ring's pipe
 *	every PERIOD_MS, its poll re-armed): prints the threads created, the
 *	kernel threads' CPU over those seconds (from /proc/self/task), and
 *	what the rings added to VmRSS and to the system's KernelStack.
 */
#include <dirent.h>
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double now_us(void)
{
	return (double)now_ns() / 1e3;
}

static void pin(int cpu)
{
	const char *env = getenv("RS_PIN");
	cpu_set_t set;

	if ((env && strcmp(env, "0") == 0) || cpu < 0 || cpu >= (int)sysconf(_SC_NPROCESSORS_ONLN))
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int ring_init(struct io_uring *r, const char *setup, unsigned idle_ms,
		     int attach_fd)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	if (strcmp(setup, "defer") == 0) {
		p.flags = IORING_SETUP_SINGLE_ISSUER |
			  IORING_SETUP_DEFER_TASKRUN;
	} else if (strcmp(setup, "coop") == 0) {
		p.flags = IORING_SETUP_COOP_TASKRUN |
			  IORING_SETUP_TASKRUN_FLAG;
	} else if (strcmp(setup, "sqpoll") == 0) {
		p.flags = IORING_SETUP_SQPOLL;
		p.sq_thread_idle = idle_ms;
		if (getenv("RS_SQ_CPU")) {
			p.flags |= IORING_SETUP_SQ_AFF;
			p.sq_thread_cpu = (unsigned)atoi(getenv("RS_SQ_CPU"));
		}
		if (attach_fd >= 0) {
			p.flags |= IORING_SETUP_ATTACH_WQ;
			p.wq_fd = (unsigned)attach_fd;
		}
	} else if (strcmp(setup, "plain") != 0) {
		return -EINVAL;
	}
	return io_uring_queue_init_params(8, r, &p);
}

/* Arm a one-shot poll and hand it to the kernel (SQPOLL: its thread). */
static void arm(struct io_uring *r, int fd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);

	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, 1);
	io_uring_submit(r);
}

/* ---- wake ---- */

static struct {
	const char *setup;
	int n, gap_us;
	unsigned idle_ms;
	int pfd[2];
	pid_t waiter_tid;
	uint64_t t0;	/* the waker's time before its write, in ns */
	int armed;	/* the waiter is about to sleep */
	double *lat;
} W;

static void *waiter(void *arg)
{
	struct io_uring r;
	struct io_uring_cqe *cqe;
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = -1, ret;
	char c;

	(void)arg;
	pin(0);
	W.waiter_tid = (pid_t)syscall(SYS_gettid);
	if (strcmp(W.setup, "epoll") == 0) {
		ep = epoll_create1(0);
		epoll_ctl(ep, EPOLL_CTL_ADD, W.pfd[0], &ev);
	} else {
		ret = ring_init(&r, W.setup, W.idle_ms, -1);
		if (ret < 0) {
			fprintf(stderr, "ringsetup: %s: %s\n", W.setup,
				strerror(-ret));
			exit(1);
		}
	}
	for (int i = 0; i < W.n; i++) {
		if (ep < 0)
			arm(&r, W.pfd[0]);
		__atomic_store_n(&W.armed, 1, __ATOMIC_RELEASE);
		if (ep >= 0) {
			while (epoll_wait(ep, &ev, 1, -1) != 1)
				;
		} else {
			while (io_uring_wait_cqe(&r, &cqe) < 0)
				;
			io_uring_cqe_seen(&r, cqe);
		}
		W.lat[i] = (double)(now_ns() -
				    __atomic_load_n(&W.t0, __ATOMIC_ACQUIRE)) /
			   1e3;
		if (read(W.pfd[0], &c, 1) != 1)
			exit(1);
	}
	if (ep >= 0)
		close(ep);
	else
		io_uring_queue_exit(&r);
	return NULL;
}

/* The waiter's state letter from /proc: 'S' once it sleeps. */
static char task_state(pid_t tid)
{
	char path[64], buf[256], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	p = p ? strrchr(buf, ')') : NULL;
	return p && p[1] ? p[2] : '?';
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int wake_main(int argc, char **argv)
{
	pthread_t t;
	double d;

	W.setup = argv[2];
	W.n = argc > 3 ? atoi(argv[3]) : 10000;
	W.gap_us = argc > 4 ? atoi(argv[4]) : 50;
	W.idle_ms = argc > 5 ? (unsigned)atoi(argv[5]) : 1;
	W.lat = calloc((size_t)W.n, sizeof(double));
	if (!W.lat || pipe(W.pfd) < 0)
		return 1;
	pin(1);
	pthread_create(&t, NULL, waiter, NULL);
	for (int i = 0; i < W.n; i++) {
		while (!__atomic_exchange_n(&W.armed, 0, __ATOMIC_ACQ_REL))
			sched_yield();
		while (!__atomic_load_n(&W.waiter_tid, __ATOMIC_ACQUIRE) ||
		       task_state(W.waiter_tid) != 'S')
			sched_yield();
		d = now_us() + W.gap_us;
		while (now_us() < d)
			;
		__atomic_store_n(&W.t0, now_ns(), __ATOMIC_RELEASE);
		if (write(W.pfd[1], "x", 1) != 1)
			return 1;
	}
	pthread_join(t, NULL);
	if (getenv("RS_DUMP")) {
		FILE *f = fopen(getenv("RS_DUMP"), "a");

		for (int i = 0; f && i < W.n; i++)
			fprintf(f, "%.3f\n", W.lat[i]);
		if (f)
			fclose(f);
	}
	qsort(W.lat, (size_t)W.n, sizeof(double), cmp_d);
	printf("wake setup=%s n=%d gap_us=%d idle_ms=%u median_us=%.2f "
	       "p10_us=%.2f p90_us=%.2f p99_us=%.2f\n",
	       W.setup, W.n, W.gap_us,
	       strcmp(W.setup, "sqpoll") == 0 ? W.idle_ms : 0,
	       W.lat[W.n / 2], W.lat[W.n / 10], W.lat[W.n * 9 / 10],
	       W.lat[W.n * 99 / 100]);
	return 0;
}

/* ---- idle ---- */

/* CPU ticks of every thread but the calling one, and their number. */
static long others_ticks(int *nthreads)
{
	char path[300], buf[512], *p;
	pid_t self = (pid_t)syscall(SYS_gettid);
	unsigned long ut, st;
	struct dirent *de;
	long sum = 0;
	DIR *d = opendir("/proc/self/task");
	FILE *f;

	*nthreads = 0;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || atoi(de->d_name) == self)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat",
			 de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		p = p ? strrchr(buf, ')') : NULL;
		/* after ')': state ppid pgrp sess tty tpgid flags minflt
		 * cminflt majflt cmajflt utime stime */
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				"%*u %*u %lu %lu", &ut, &st) == 2) {
			sum += (long)(ut + st);
			(*nthreads)++;
		}
	}
	if (d)
		closedir(d);
	return sum;
}

static long meminfo_kb(const char *file, const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen(file, "r");

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			v = atol(line + n + 1);
	if (f)
		fclose(f);
	return v;
}

static int idle_main(int argc, char **argv)
{
	int n, secs, attach, period_ms, nthr, nthr0, events = 0;
	unsigned idle_ms;
	struct io_uring *rings;
	struct io_uring_cqe *cqe;
	long rss0, ks0, rss1, ks1, t0, t1;
	double end, next;
	int (*pfd)[2];
	char c;

	if (argc < 5)
		return 2;
	n = atoi(argv[2]);
	idle_ms = (unsigned)atoi(argv[3]);
	secs = atoi(argv[4]);
	attach = argc > 5 && strcmp(argv[5], "attach") == 0;
	period_ms = argc > 6 ? atoi(argv[6]) : 0;
	rings = calloc((size_t)n, sizeof(*rings));
	pfd = calloc((size_t)n, sizeof(*pfd));
	if (!rings || !pfd)
		return 1;
	others_ticks(&nthr0);
	rss0 = meminfo_kb("/proc/self/status", "VmRSS");
	ks0 = meminfo_kb("/proc/meminfo", "KernelStack");
	for (int i = 0; i < n; i++) {
		int ret = ring_init(&rings[i], "sqpoll", idle_ms,
				    attach && i ? rings[0].ring_fd : -1);

		if (ret < 0 || pipe(pfd[i]) < 0) {
			fprintf(stderr, "ringsetup: ring %d: %s\n", i,
				strerror(-ret));
			return 1;
		}
		arm(&rings[i], pfd[i][0]);
	}
	/* Let every kernel thread pass its idle time and go to sleep. */
	usleep(idle_ms * 1000 + 200000);
	rss1 = meminfo_kb("/proc/self/status", "VmRSS");
	ks1 = meminfo_kb("/proc/meminfo", "KernelStack");
	t0 = others_ticks(&nthr);
	end = now_us() + secs * 1e6;
	next = now_us();
	while (now_us() < end) {
		if (!period_ms) {
			usleep(100000);
			continue;
		}
		next += period_ms * 1000.0;
		if (write(pfd[0][1], "x", 1) != 1)
			return 1;
		io_uring_wait_cqe(&rings[0], &cqe);
		io_uring_cqe_seen(&rings[0], cqe);
		if (read(pfd[0][0], &c, 1) != 1)
			return 1;
		arm(&rings[0], pfd[0][0]);
		events++;
		while (now_us() < next)
			usleep((useconds_t)(next - now_us()));
	}
	t1 = others_ticks(&nthr);
	printf("idle n=%d attach=%d idle_ms=%u seconds=%d period_ms=%d "
	       "events=%d threads_added=%d kthread_cpu_pct=%.2f "
	       "vmrss_kb_added=%ld kernelstack_kb_added=%ld\n",
	       n, attach, idle_ms, secs, period_ms, events, nthr - nthr0,
	       100.0 * (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK) /
		   secs,
	       rss1 - rss0, ks1 - ks0);
	for (int i = 0; i < n; i++)
		io_uring_queue_exit(&rings[i]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "wake") == 0)
		return wake_main(argc, argv);
	if (argc >= 5 && strcmp(argv[1], "idle") == 0)
		return idle_main(argc, argv);
	fprintf(stderr, "usage: ringsetup wake SETUP [N [GAP_US [IDLE_MS]]]\n"
			"       ringsetup idle N IDLE_MS SECONDS [attach|-] "
			"[PERIOD_MS]\n");
	return 2;
}
