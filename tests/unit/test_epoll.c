/* SPDX-License-Identifier: MIT */
/*
 * rp_epoll_* beyond conformance: what it costs (syscalls), what its fd is,
 * scale, stale candidates, fallback and pass-through. Conformance itself
 * is tests/epoll/.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grp.h>
#include <pthread.h>

#include "../../compat/epctx.h"
#include "ringpoll_epoll.h"
#include "t_util.h"

static struct rp_epoll_stats t_st(int epfd)
{
	struct rp_epoll_stats st;

	ck_assert_int_eq(rp_epoll_stats(epfd, &st), 0);
	return st;
}

static void t_ctl(int epfd, int op, int fd, uint32_t events, uint64_t u64)
{
	struct epoll_event ev = { .events = events, .data.u64 = u64 };

	ck_assert_int_eq(rp_epoll_ctl(epfd, op, fd, &ev), 0);
}

START_TEST(epoll_fd_is_the_ring_fd)
{
	int epfd = rp_epoll_create1(EPOLL_CLOEXEC);
	char path[64], link[64] = { 0 };

	ck_assert_int_ge(epfd, 0);
	ck_assert_int_eq(rp_epoll_is_ring(epfd), 1);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", epfd);
	ck_assert_int_gt(readlink(path, link, sizeof(link) - 1), 0);
	ck_assert_str_eq(link, "anon_inode:[io_uring]");
	ck_assert_int_eq(rp_close(epfd), 0);
	ck_assert_int_eq(rp_epoll_is_ring(epfd), 0);
}
END_TEST

/*
 * A MOD that the armed poll covers (new data, a narrower level-triggered
 * interest) keeps it: no SQE, no kernel work; one that widens the interest
 * updates it, and the new bit is reported.
 */
START_TEST(epoll_mod_keeps_or_updates_armed_poll)
{
	int epfd = rp_epoll_create1(0), sv[2];
	struct epoll_event ev;
	struct rp_epoll_stats a, b;
	char c;

	t_socketpair(sv);
	/* Armed for IN|RDHUP after the wait; nothing is ready. */
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLRDHUP, 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	a = t_st(epfd);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLRDHUP, 2);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLIN, 3);
	b = t_st(epfd);
	ck_assert_uint_eq(b.mods_in_place - a.mods_in_place, 2);
	/* Nothing queued, nothing pending: a wait(0) does not even enter. */
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	ck_assert_uint_eq(t_st(epfd).enters, b.enters);
	/* The kept poll reports with the new data and interest. */
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 1000), 1);
	ck_assert_uint_eq(ev.data.u64, 3);
	ck_assert_uint_eq(ev.events, EPOLLIN);
	ck_assert_int_eq(read(sv[0], &c, 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	/* Wider: an update, and the socket's room to write shows at once. */
	b = t_st(epfd);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLOUT, 4);
	ck_assert_uint_eq(t_st(epfd).mods_in_place, b.mods_in_place);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 1000), 1);
	ck_assert_uint_eq(ev.data.u64, 4);
	ck_assert_uint_eq(ev.events, EPOLLOUT);
	rp_close(sv[0]);
	rp_close(sv[1]);
	rp_close(epfd);
}
END_TEST

START_TEST(epoll_mod_and_del_make_no_syscall)
{
	int epfd = rp_epoll_create1(0), p[2];
	struct epoll_event ev;
	struct rp_epoll_stats a, b;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	a = t_st(epfd);
	for (int i = 0; i < 1000; i++)
		t_ctl(epfd, EPOLL_CTL_MOD, p[0],
		      i % 2 ? EPOLLIN : EPOLLIN | EPOLLET, (uint64_t)i);
	ck_assert_int_eq(rp_epoll_ctl(epfd, EPOLL_CTL_DEL, p[0], NULL), 0);
	b = t_st(epfd);
	/*
	 * 1001 ctls: SQEs, not syscalls. Each MOD here switches between
	 * level and edge, a remove and an add: 2,000 SQEs, handed to the
	 * kernel a full SQ (64 on an instance with few registrations) at a
	 * time, and counted as ctl syscalls.
	 */
	ck_assert_uint_eq(b.ctls - a.ctls, 1001);
	ck_assert_uint_eq(b.enters, a.enters);
	ck_assert_uint_le(b.ctl_syscalls - a.ctl_syscalls, 2001 / 64 + 1);
	/*
	 * And the next wait takes them all in one enter, plus one for each
	 * CQ-full of the 1,000 cancelled polls' CQEs (-ECANCELED) that
	 * overflowed: an instance with few registrations has 128 CQEs.
	 */
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	ck_assert_uint_le(t_st(epfd).enters - b.enters, 1 + 1000 / 128 + 1);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(epfd);
}
END_TEST

START_TEST(epoll_busy_wait_costs_one_enter)
{
	int epfd = rp_epoll_create1(0), p[2];
	struct epoll_event ev;
	struct rp_epoll_stats a, b;

	t_pipe(p);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 7);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, -1), 1);
	a = t_st(epfd);
	/* Level-triggered and never drained: every wait reports it. */
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, -1), 1);
		ck_assert_uint_eq(ev.data.u64, 7);
	}
	b = t_st(epfd);
	ck_assert_uint_eq(b.enters - a.enters, 100);
	ck_assert_uint_eq(b.rearms - a.rearms, 100);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(epfd);
}
END_TEST

struct t_sleeper {
	int epfd;
	int n;
	struct epoll_event ev;
};

static void *t_sleep(void *arg)
{
	struct t_sleeper *sl = arg;

	sl->n = rp_epoll_wait(sl->epfd, &sl->ev, 1, 10000);
	return NULL;
}

/* Threads asleep in the instance's ring (or on the way there). */
static uint32_t t_ep_waiters(int epfd)
{
	struct rp__ep *ep = rp__ep_get(epfd);
	uint32_t n;

	ck_assert_ptr_nonnull(ep);
	rp__ep_lock(ep);
	n = ep->waiters;
	rp__ep_unlock(ep);
	rp__ep_put(ep);
	return n;
}

static void t_sleeper_start(struct t_sleeper *sl, pthread_t *th)
{
	int tries = 5000;

	ck_assert_int_eq(pthread_create(th, NULL, t_sleep, sl), 0);
	/* Bounded (5 s): a sleeper that never gets there fails the test. */
	while (t_ep_waiters(sl->epfd) == 0) {
		ck_assert_int_gt(--tries, 0);
		usleep(1000);
	}
	usleep(20000); /* into the kernel */
}

/*
 * A ctl from another thread wakes a sleeper with one syscall, a
 * FUTEX_WAKE, and enters no ring: the MOD's poll update stays in the SQ
 * for the woken sleeper's own enter, and its poll completes there. Before
 * 6.7 (no FUTEX_WAIT) the waker's NOP enter submits it instead.
 */
START_TEST(epoll_ctl_wakes_sleeper_with_one_syscall)
{
	struct t_sleeper sl = { .epfd = rp_epoll_create1(0) };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 43 };
	bool futex = rp__ep_futex_wake();
	struct rp_epoll_stats a, b;
	uint64_t ring0, sys0;
	struct rp__ep *ep;
	pthread_t th;
	int p[2], q[2];

	t_pipe(p);
	t_pipe(q);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(write(q[1], "x", 1), 1);
	/* A read end is never writable; a MOD costs no syscall of its own. */
	t_ctl(sl.epfd, EPOLL_CTL_ADD, p[0], EPOLLOUT, 1);
	t_ctl(sl.epfd, EPOLL_CTL_ADD, q[0], EPOLLOUT, 2);

	/* Through the API: the ctl's one syscall. */
	t_sleeper_start(&sl, &th);
	a = t_st(sl.epfd);
	t_ctl(sl.epfd, EPOLL_CTL_MOD, p[0], EPOLLIN, 42);
	b = t_st(sl.epfd);
	ck_assert_uint_eq(b.ctl_syscalls - a.ctl_syscalls, 1);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(sl.n, 1);
	ck_assert_uint_eq(sl.ev.data.u64, 42);

	/*
	 * As rp_epoll_ctl does it, in one hold of the lock: the sleeper
	 * cannot enter meanwhile, so a ring enter would be the ctl's.
	 */
	t_ctl(sl.epfd, EPOLL_CTL_DEL, p[0], 0, 0);
	t_sleeper_start(&sl, &th);
	ep = rp__ep_get(sl.epfd);
	ck_assert_ptr_nonnull(ep);
	rp__ep_lock(ep);
	ring0 = ep->ring.enters;
	sys0 = ep->st.ctl_syscalls;
	ck_assert_int_eq(rp__ep_mod(ep, q[0], &ev), 0);
	rp__ep_ctl_done(ep);
	ck_assert_uint_eq(ep->ring.enters - ring0, (futex ? 0u : 1u));
	ck_assert_uint_eq(ep->st.ctl_syscalls - sys0, (futex ? 1u : 0u));
	ck_assert_uint_eq(rp__ring_unsubmitted(&ep->ring) > 0, futex);
	rp__ep_unlock(ep);
	rp__ep_put(ep);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(sl.n, 1);
	ck_assert_uint_eq(sl.ev.data.u64, 43);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(q[0]);
	rp_close(q[1]);
	rp_close(sl.epfd);
}
END_TEST

START_TEST(epoll_stale_candidate_is_dropped)
{
	int epfd = rp_epoll_create1(0), p[2];
	struct epoll_event ev;
	char buf[8];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	/*
	 * A new edge posts a CQE; the program reads the data before it
	 * waits. The kernel's epoll re-polls and reports nothing: so must
	 * we, though the CQE is in the ring.
	 */
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	ck_assert_uint_ge(t_st(epfd).confirms, 1);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(epfd);
}
END_TEST

/*
 * A data wakeup's key overstates (a unix socket's says IN|PRI|RDNORM|
 * RDBAND), so an interest holding such bits has its files asked before a
 * report: all of one report's in one poll(2), not one each.
 */
START_TEST(epoll_keyed_bits_asked_in_one_poll)
{
	int epfd = rp_epoll_create1(0), sv[4][2];
	struct epoll_event ev[8];
	uint64_t polls, seen = 0;
	char buf[8];
	int n;

	for (int i = 0; i < 4; i++) {
		t_socketpair(sv[i]);
		t_ctl(epfd, EPOLL_CTL_ADD, sv[i][0],
		      EPOLLIN | EPOLLPRI | EPOLLRDNORM, (uint64_t)i);
		ck_assert_int_eq(write(sv[i][1], "x", 1), 1);
	}
	polls = t_st(epfd).polls;
	n = rp_epoll_wait(epfd, ev, 8, 1000);
	ck_assert_int_eq(n, 4);
	for (int i = 0; i < n; i++) {
		ck_assert_uint_eq(ev[i].events, EPOLLIN | EPOLLRDNORM);
		seen |= 1u << ev[i].data.u64;
	}
	ck_assert_uint_eq(seen, 0xf);
	ck_assert_uint_eq(t_st(epfd).polls - polls, 1);
	/* Level: re-armed by the next wait, one drained: three, one poll. */
	ck_assert_int_eq(read(sv[0][0], buf, sizeof(buf)), 1);
	polls = t_st(epfd).polls;
	n = rp_epoll_wait(epfd, ev, 8, 1000);
	ck_assert_int_eq(n, 3);
	for (int i = 0; i < n; i++) {
		ck_assert_uint_ne(ev[i].data.u64, 0);
		ck_assert_uint_eq(ev[i].events, EPOLLIN | EPOLLRDNORM);
	}
	ck_assert_uint_eq(t_st(epfd).polls - polls, 1);
	for (int i = 0; i < 4; i++) {
		rp_close(sv[i][0]);
		rp_close(sv[i][1]);
	}
	rp_close(epfd);
}
END_TEST

START_TEST(epoll_kernel_fd_passes_through)
{
	int kfd = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC), p[2];
	struct epoll_event ev;

	ck_assert_int_ge(kfd, 0);
	ck_assert_int_eq(rp_epoll_is_ring(kfd), 0);
	t_pipe(p);
	t_ctl(kfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 3);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(kfd, &ev, 1, 1000), 1);
	ck_assert_uint_eq(ev.data.u64, 3);
	errno = 0;
	ck_assert_int_eq(rp_epoll_stats(kfd, &(struct rp_epoll_stats){ 0 }),
			 -1);
	ck_assert_int_eq(errno, EBADF);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(kfd);
}
END_TEST

/*
 * As many registrations as the fd limit allows, up to 100,000: every
 * 97th fd made ready, every one of those reported exactly once.
 */
START_TEST(epoll_many_registrations)
{
	enum { WANT = 100000 };
	struct rlimit rl;
	int n, epfd, (*p)[2], seen = 0, want = 0;
	struct epoll_event ev[256];
	char *hit;

	getrlimit(RLIMIT_NOFILE, &rl);
	n = t_nofile(WANT + 200) ? WANT : (int)rl.rlim_max - 200;
	if (n < WANT)
		t_nofile((unsigned)rl.rlim_max);
	n /= 2; /* pipes: both ends registered, only read ends fire */
	p = calloc((size_t)n, sizeof(*p));
	hit = calloc((size_t)n, 1);
	epfd = rp_epoll_create1(0);
	for (int i = 0; i < n; i++) {
		t_pipe(p[i]);
		t_ctl(epfd, EPOLL_CTL_ADD, p[i][0], EPOLLIN, (uint64_t)i);
		t_ctl(epfd, EPOLL_CTL_ADD, p[i][1], EPOLLIN, (uint64_t)i);
	}
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 256, 0), 0);
	for (int i = 0; i < n; i += 97, want++)
		ck_assert_int_eq(write(p[i][1], "x", 1), 1);
	while (seen < want) {
		int k = rp_epoll_wait(epfd, ev, 256, 5000);

		ck_assert_int_gt(k, 0);
		for (int j = 0; j < k; j++) {
			int i = (int)ev[j].data.u64;
			char c;

			ck_assert_int_eq(i % 97, 0);
			ck_assert_int_eq(hit[i], 0);
			hit[i] = 1;
			ck_assert_int_eq(read(p[i][0], &c, 1), 1);
			seen++;
		}
	}
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 256, 0), 0);
	printf("epoll_many_registrations: %d fds registered on one "
	       "instance (fd limit %llu)\n",
	       2 * n, (unsigned long long)rl.rlim_max);
	for (int i = 0; i < n; i++) {
		rp_close(p[i][0]);
		rp_close(p[i][1]);
	}
	rp_close(epfd);
	free(p);
	free(hit);
}
END_TEST

static int t_io_uring_fds(void)
{
	char path[64], link[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		ssize_t k;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		k = readlink(path, link, sizeof(link) - 1);
		if (k < 0)
			continue;
		link[k] = 0;
		n += strcmp(link, "anon_inode:[io_uring]") == 0;
	}
	return n;
}

START_TEST(epoll_child_closing_inherited_fds_builds_no_ring)
{
	int epfd = rp_epoll_create1(0), p[2], status;
	struct epoll_event ev;
	pid_t pid;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/*
		 * As a child about to exec does: close what it inherited. No
		 * ring may be built for that (it would allocate after fork)
		 * and nothing of the instance may stay open.
		 */
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
				 offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
				 __NR_io_uring_setup, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { 4, f };
		int before = t_count_fds();

		/* A ring built here would be io_uring_setup: fatal. */
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(4);
		rp_close(p[0]);
		rp_close(epfd);
		if (t_io_uring_fds() != 0)
			_exit(2);
		/* The pipe end and the ring (an instance's one fd) are gone. */
		_exit(t_count_fds() == before - 2 ? 0 : 3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "child killed by signal %d",
		      WTERMSIG(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* The parent's instance is untouched. */
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 1);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(epfd);
}
END_TEST

/* The CQ size of the ring under an instance. */
static unsigned t_ep_cq(int epfd)
{
	struct rp__ep *ep = rp__ep_get(epfd);
	unsigned n;

	ck_assert_ptr_nonnull(ep);
	n = ep->ring.uring.cq.ring_entries;
	rp__ep_put(ep);
	return n;
}

/*
 * An instance starts on a small ring (128 CQEs, two pages of locked
 * memory) and moves to bigger ones as registrations come, here to 8,192
 * CQEs, under the same fd number: events pending at each move (a CQE not
 * harvested yet, leftovers of a full events array) are reported once,
 * what is not ready is not reported, a reported EPOLLONESHOT entry stays
 * disabled until MOD.
 */
START_TEST(epoll_ring_grows_keeping_events)
{
	enum { N = 1100 };
	int (*p)[2] = calloc(N, sizeof(*p)), epfd, n, got = 0;
	struct epoll_event ev[64];
	char link[64] = { 0 }, path[64], c;
	static char seen[N];

	ck_assert(t_nofile(2 * N + 100));
	epfd = rp_epoll_create1(0);
	ck_assert_int_ge(epfd, 0);
	ck_assert_uint_eq(t_ep_cq(epfd), 128);
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < 60; i++) {
		t_pipe(p[i]);
		t_ctl(epfd, EPOLL_CTL_ADD, p[i][0],
		      i == 50 ? EPOLLIN | EPOLLONESHOT : EPOLLIN | EPOLLET,
		      (uint64_t)i);
	}
	/* 50 reported once: disabled, though it stays readable. */
	ck_assert_int_eq(write(p[50][1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 64, 1000), 1);
	ck_assert_uint_eq(ev[0].data.u64, 50);
	/* 0..9 ready, 4 reported (and read): 6 left over. */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(write(p[i][1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 4, 1000), 4);
	for (int i = 0; i < 4; i++) {
		int k = (int)ev[i].data.u64;

		ck_assert_int_lt(k, 10);
		ck_assert_int_eq(seen[k], 0);
		seen[k] = 1;
		ck_assert_int_eq(read(p[k][0], &c, 1), 1);
	}
	/* 10..14 ready after the last wait: their CQEs are not harvested. */
	for (int i = 10; i < 15; i++)
		ck_assert_int_eq(write(p[i][1], "x", 1), 1);
	/* Three moves: at 65 registrations, at 257, at 1,025. */
	for (int i = 60; i < N; i++) {
		t_pipe(p[i]);
		t_ctl(epfd, EPOLL_CTL_ADD, p[i][0], EPOLLIN, (uint64_t)i);
	}
	ck_assert_uint_eq(t_ep_cq(epfd), 8192);
	ck_assert_int_eq(rp_epoll_is_ring(epfd), 1);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", epfd);
	ck_assert_int_gt(readlink(path, link, sizeof(link) - 1), 0);
	ck_assert_str_eq(link, "anon_inode:[io_uring]");
	/* The 11 pending, once each, and nothing else. */
	while ((n = rp_epoll_wait(epfd, ev, 64, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			int k = (int)ev[i].data.u64;

			ck_assert_int_lt(k, 15);
			ck_assert_int_eq(seen[k], 0);
			ck_assert_uint_eq(ev[i].events, EPOLLIN);
			seen[k] = 1;
			got++;
		}
	}
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(got, 11);
	/* The new ring reports: a MOD re-enables 50, a level fd is seen. */
	t_ctl(epfd, EPOLL_CTL_MOD, p[50][0], EPOLLIN | EPOLLONESHOT, 50);
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 64, 1000), 1);
	ck_assert_uint_eq(ev[0].data.u64, 50);
	ck_assert_int_eq(write(p[700][1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 64, 1000), 1);
	ck_assert_uint_eq(ev[0].data.u64, 700);
	for (int i = 0; i < N; i++) {
		rp_close(p[i][0]);
		rp_close(p[i][1]);
	}
	rp_close(epfd);
	free(p);
}
END_TEST

/*
 * An instance registered in a kernel epoll instance becomes the kernel's
 * epoll, under the same number with the same registrations: the kernel's
 * registration is on that file, whose readiness is exact, and an rp ring
 * there would be read by nobody but its owner. Everything goes on.
 */
START_TEST(epoll_instance_in_kernel_epoll_is_kernel_epoll)
{
	enum { N = 100 };
	int kfd = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
	int epfd = rp_epoll_create1(0), p[N][2];
	struct epoll_event ev;

	ck_assert_int_ge(kfd, 0);
	for (int i = 0; i < N; i++) {
		t_pipe(p[i]);
		t_ctl(epfd, EPOLL_CTL_ADD, p[i][0], EPOLLIN, (uint64_t)i);
	}
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	ck_assert(rp_epoll_is_ring(epfd));
	t_ctl(kfd, EPOLL_CTL_ADD, epfd, EPOLLIN, 1000);
	ck_assert(!rp_epoll_is_ring(epfd));
	ck_assert_int_eq(write(p[N - 1][1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(kfd, &ev, 1, 1000), 1);
	ck_assert_uint_eq(ev.data.u64, 1000);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 1);
	ck_assert_uint_eq(ev.data.u64, N - 1);
	for (int i = 0; i < N; i++) {
		rp_close(p[i][0]);
		rp_close(p[i][1]);
	}
	rp_close(epfd);
	rp_close(kfd);
}
END_TEST

/*
 * Ring memory is charged to RLIMIT_MEMLOCK, per user, across processes
 * (root, with CAP_IPC_LOCK, is not charged). As a user of its own with
 * the common 8 MiB, at least 1,000 instances are rings; the next one is
 * the kernel's epoll, counted in fallbacks, and works.
 */
START_TEST(epoll_1000_instances_in_8_mib)
{
	enum { MAX = 1100 };
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* A uid nobody else uses: its locked memory is ours alone. */
		uid_t uid = 2000000000u + (uid_t)getpid();
		struct rlimit ml = { 8u << 20, 8u << 20 };
		struct rp_epoll_stats st0, st1;
		struct epoll_event ev = { .events = EPOLLIN };
		static int fds[MAX];
		int n, p[2];

		if (!t_nofile(2 * MAX + 100) || setrlimit(RLIMIT_MEMLOCK, &ml) < 0)
			_exit(1);
		if (setgroups(0, NULL) < 0 || setgid(uid) < 0 ||
		    setuid(uid) < 0)
			_exit(2);
		rp_epoll_stats(-1, &st0);
		for (n = 0; n < MAX; n++) {
			fds[n] = rp_epoll_create1(EPOLL_CLOEXEC);
			if (fds[n] < 0)
				_exit(3);
			if (!rp_epoll_is_ring(fds[n]))
				break;
		}
		printf("epoll_1000_instances_in_8_mib: %d instances on rings "
		       "in 8 MiB of locked memory\n", n);
		fflush(stdout);
		if (n < 1000)
			_exit(4);
		if (n == MAX)
			_exit(5);
		rp_epoll_stats(-1, &st1);
		if (st1.fallbacks - st0.fallbacks != 1)
			_exit(6);
		ev.data.u64 = 9;
		if (pipe(p) < 0 ||
		    rp_epoll_ctl(fds[n], EPOLL_CTL_ADD, p[0], &ev) < 0 ||
		    write(p[1], "x", 1) != 1)
			_exit(7);
		memset(&ev, 0, sizeof(ev));
		if (rp_epoll_wait(fds[n], &ev, 1, 1000) != 1 ||
		    ev.data.u64 != 9)
			_exit(8);
		for (int i = 0; i <= n; i++)
			rp_close(fds[i]);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child failed at step %d (status 0x%x)",
		      WEXITSTATUS(status), status);
}
END_TEST

/*
 * With locked memory for the small ring only, an instance that outgrows
 * it stays on it: 200 registrations, all ready at once, overflow its 128
 * CQEs into the kernel (NODROP) and every one is reported.
 */
START_TEST(epoll_ring_stays_small_without_memory)
{
	enum { N = 200 };
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uid_t uid = 2100000000u + (uid_t)getpid();
		struct rlimit ml = { 8192, 8192 };
		struct epoll_event ev[64];
		static char seen[N];
		int epfd, p[N][2], n, got = 0;

		if (!t_nofile(2 * N + 100) || setrlimit(RLIMIT_MEMLOCK, &ml) < 0)
			_exit(1);
		if (setgroups(0, NULL) < 0 || setgid(uid) < 0 ||
		    setuid(uid) < 0)
			_exit(2);
		epfd = rp_epoll_create1(0);
		if (epfd < 0 || !rp_epoll_is_ring(epfd))
			_exit(3);
		for (int i = 0; i < N; i++) {
			struct epoll_event e = { .events = EPOLLIN,
						 .data.u64 = (uint64_t)i };

			if (pipe2(p[i], O_NONBLOCK) < 0 ||
			    rp_epoll_ctl(epfd, EPOLL_CTL_ADD, p[i][0], &e) < 0)
				_exit(4);
		}
		if (t_ep_cq(epfd) != 128 || !rp_epoll_is_ring(epfd))
			_exit(5);
		if (rp_epoll_wait(epfd, ev, 64, 0) != 0)
			_exit(6);
		for (int i = 0; i < N; i++)
			if (write(p[i][1], "x", 1) != 1)
				_exit(7);
		while (got < N && (n = rp_epoll_wait(epfd, ev, 64, 1000)) > 0) {
			for (int i = 0; i < n; i++) {
				int k = (int)ev[i].data.u64;
				char c;

				if (k >= N || seen[k] || read(p[k][0], &c, 1) != 1)
					_exit(8);
				seen[k] = 1;
				got++;
			}
		}
		if (got != N || rp_epoll_wait(epfd, ev, 64, 0) != 0)
			_exit(9);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child failed at step %d (status 0x%x)",
		      WEXITSTATUS(status), status);
}
END_TEST

Suite *t_suite_epoll(void)
{
	Suite *s = suite_create("epoll");
	TCase *tc = t_tcase("epoll");

	tcase_add_test(tc, epoll_fd_is_the_ring_fd);
	tcase_add_test(tc, epoll_mod_and_del_make_no_syscall);
	tcase_add_test(tc, epoll_mod_keeps_or_updates_armed_poll);
	tcase_add_test(tc, epoll_busy_wait_costs_one_enter);
	/* A sleeper in another thread's io_uring_enter: see T_VALGRIND_SIGNALS. */
	if (t_under_valgrind())
		t_skip("epoll_ctl_wakes_sleeper_with_one_syscall",
		       T_VALGRIND_SIGNALS);
	else
		tcase_add_test(tc, epoll_ctl_wakes_sleeper_with_one_syscall);
	tcase_add_test(tc, epoll_stale_candidate_is_dropped);
	tcase_add_test(tc, epoll_keyed_bits_asked_in_one_poll);
	tcase_add_test(tc, epoll_kernel_fd_passes_through);
	tcase_add_test(tc, epoll_many_registrations);
	tcase_add_test(tc, epoll_child_closing_inherited_fds_builds_no_ring);
	tcase_add_test(tc, epoll_ring_grows_keeping_events);
	tcase_add_test(tc, epoll_instance_in_kernel_epoll_is_kernel_epoll);
	if (geteuid() == 0) {
		tcase_add_test(tc, epoll_1000_instances_in_8_mib);
		tcase_add_test(tc, epoll_ring_stays_small_without_memory);
	} else {
		t_skip("epoll_1000_instances_in_8_mib",
		       "not root: cannot become a user of its own, whose "
		       "locked memory no other process shares");
		t_skip("epoll_ring_stays_small_without_memory",
		       "not root: cannot become a user of its own");
	}
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_max < 100000 + 200)
			t_skip("epoll_100000_registrations",
			       "the fd limit's hard maximum is below 100,200 "
			       "and cannot be raised here; "
			       "epoll_many_registrations uses what it allows");
	}
	suite_add_tcase(s, tc);
	return s;
}
