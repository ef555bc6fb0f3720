/* SPDX-License-Identifier: MIT */
/*
 * Regressions from real programs off the happy path (issue 11): hangs,
 * lost events and spurious errors that the kernel's epoll does not have.
 * Each case was a reproducer first; each runs against the kernel too.
 */
#include "t_epoll.h"

/*
 * A level-triggered interest without EPOLLRDHUP on a socket whose peer
 * shut down writing is reported by every wait, at once: the end of the
 * stream is readable for good. (It was reported twice, then each wait
 * slept its whole timeout.)
 */
static void half_closed_reported_every_wait(int rd, int wr)
{
	struct epoll_event ev;
	int epfd = t_epoll();

	t_write(wr, 1);
	ck_assert_int_eq(shutdown(wr, SHUT_WR), 0);
	t_ctl(epfd, EPOLL_CTL_ADD, rd, EPOLLIN, 7);
	for (int i = 0; i < 4; i++) {
		int64_t t0 = t_now_ms();

		ck_assert_int_eq(t_wait(epfd, &ev, 1, 2000), 1);
		ck_assert_msg(t_now_ms() - t0 < 1000, "wait %d slept", i);
		ck_assert_uint_eq(ev.events, EPOLLIN);
		ck_assert_uint_eq(ev.data.u64, 7);
	}
	t_close(epfd);
}

START_TEST(lt_half_closed_unix_reported_every_wait)
{
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	half_closed_reported_every_wait(sv[0], sv[1]);
	t_close(sv[0]);
	t_close(sv[1]);
}
END_TEST

START_TEST(lt_half_closed_tcp_reported_every_wait)
{
	int c, s;

	t_tcp_pair(&c, &s);
	half_closed_reported_every_wait(s, c);
	t_close(c);
	t_close(s);
}
END_TEST

/*
 * Found by the fuzzer: an entry left on the ready list by a full events
 * array, then MODed to no events, must still see the EPOLLHUP that comes
 * later (it was never armed again).
 */
START_TEST(lt_hup_after_mod_to_no_events_is_reported)
{
	struct epoll_event ev[4];
	int sv[2], epfd = t_epoll();

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLOUT, 1);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[1], EPOLLIN | EPOLLOUT, 2);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[1], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 2);
	ck_assert_int_eq(shutdown(sv[1], SHUT_RD), 0);
	ck_assert_int_eq(t_wait(epfd, ev, 1, 0), 1);
	ck_assert_uint_eq(ev[0].data.u64, 1);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[1], 0, 2);
	t_close(sv[0]);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(t_wait(epfd, ev, 4, T_LONG_MS), 1);
		ck_assert_uint_eq(ev[0].data.u64, 2);
		ck_assert_uint_eq(ev[0].events, EPOLLHUP);
	}
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

/*
 * Thousands of edge-triggered fds ready at once: every wait returns, each
 * fd is reported once, then nothing. (At about 8,400 a wait never
 * returned: harvested CQEs re-armed polls, a full SQ submitted them, and
 * they posted CQEs again.)
 */
#define T_MANY_READY 8400

START_TEST(et_thousands_ready_each_reported_once)
{
	struct rlimit rl, rl0;
	struct epoll_event ev[100];
	unsigned char *seen;
	int n, total = 0, epfd, (*p)[2];

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl0 = rl;
	n = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 2 * T_MANY_READY + 64 ?
		    T_MANY_READY :
		    (int)(rl.rlim_max - 64) / 2;
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	p = calloc((size_t)n, sizeof(*p));
	seen = calloc((size_t)n, 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(seen);
	epfd = t_epoll();
	for (int i = 0; i < n; i++) {
		t_pipe(p[i]);
		t_ctl(epfd, EPOLL_CTL_ADD, p[i][0], EPOLLIN | EPOLLET,
		      (uint64_t)i);
		t_write(p[i][1], 1);
	}
	while (total < n) {
		int got = t_wait(epfd, ev, 100, 2000);

		ck_assert_int_gt(got, 0);
		for (int j = 0; j < got; j++) {
			uint64_t i = ev[j].data.u64;

			ck_assert_uint_lt(i, (uint64_t)n);
			ck_assert_msg(!seen[i], "fd %llu reported twice",
				      (unsigned long long)i);
			seen[i] = 1;
		}
		total += got;
	}
	ck_assert_int_eq(t_wait(epfd, ev, 100, 0), 0);
	for (int i = 0; i < n; i++) {
		t_close(p[i][0]);
		t_close(p[i][1]);
	}
	t_close(epfd);
	free(p);
	free(seen);
	/* Back to what the fixture counts fds under. */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl0), 0);
}
END_TEST

/*
 * A ctl is looked at when it is made, as ep_insert and ep_modify poll the
 * file: a wait(0) right after it sees a ready fd, in every fresh instance.
 * (An edge-triggered arm's completion sometimes came a timer tick late.)
 */
static void ctl_then_wait0_reports(bool mod)
{
	for (int i = 0; i < 4000; i++) {
		struct epoll_event ev[4];
		int p[2], epfd = t_epoll();

		t_pipe(p);
		if (mod) {
			t_ctl(epfd, EPOLL_CTL_ADD, p[1], EPOLLIN | EPOLLOUT, 1);
			t_ctl(epfd, EPOLL_CTL_MOD, p[1],
			      EPOLLET | EPOLLOUT | EPOLLPRI, 1);
		} else {
			t_ctl(epfd, EPOLL_CTL_ADD, p[1], EPOLLET | EPOLLOUT, 1);
		}
		ck_assert_msg(t_wait(epfd, ev, 4, 0) == 1, "instance %d", i);
		ck_assert_uint_eq(ev[0].events, EPOLLOUT);
		t_close(epfd);
		t_close(p[0]);
		t_close(p[1]);
	}
}

START_TEST(et_add_then_wait0_reports_in_fresh_instances)
{
	ctl_then_wait0_reports(false);
}
END_TEST

START_TEST(et_mod_then_wait0_reports_in_fresh_instances)
{
	ctl_then_wait0_reports(true);
}
END_TEST

/*
 * Two threads wait on one instance with every signal blocked while a third
 * makes events and MODs: no wait may fail with EINTR, for no signal came.
 * (One waiter took the CQE the other's enter had waited for, and the
 * other called that a signal.)
 */
struct waiters {
	int epfd, efd;
	atomic_int stop, eintr, other, events;
};

static void *waiter_main(void *arg)
{
	struct waiters *w = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&w->stop)) {
		struct epoll_event ev;
		int n = epoll_wait(w->epfd, &ev, 1, 20);

		if (n < 0 && errno == EINTR)
			atomic_fetch_add(&w->eintr, 1);
		else if (n < 0)
			atomic_fetch_add(&w->other, 1);
		else
			atomic_fetch_add(&w->events, n);
	}
	return NULL;
}

START_TEST(two_waiters_with_signals_blocked_never_see_eintr)
{
	struct waiters w = { .epfd = t_epoll() };
	pthread_t th[2];
	sigset_t all;
	int64_t end;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(w.efd, 0);
	t_ctl(w.epfd, EPOLL_CTL_ADD, w.efd, EPOLLIN | EPOLLONESHOT, 1);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, waiter_main, &w), 0);
	end = t_now_ms() + 1000;
	for (unsigned i = 0; t_now_ms() < end; i++) {
		uint64_t one = 1, v;

		ck_assert_int_eq(write(w.efd, &one, sizeof(one)), 8);
		/* Now and then the other way of changing an entry. */
		t_ctl(w.epfd, EPOLL_CTL_MOD, w.efd,
		      (i & 1) ? EPOLLIN | EPOLLONESHOT :
				EPOLLIN | EPOLLOUT | EPOLLONESHOT,
		      1);
		sched_yield();
		(void)!read(w.efd, &v, sizeof(v));
	}
	atomic_store(&w.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&w.eintr), 0);
	ck_assert_int_eq(atomic_load(&w.other), 0);
	ck_assert_int_gt(atomic_load(&w.events), 0);
	t_close(w.efd);
	t_close(w.epfd);
}
END_TEST

/*
 * close() is async-signal-safe: a signal handler that closes a registered
 * fd while the thread it interrupted is inside epoll_wait must neither
 * deadlock nor keep the file alive (the peer sees the end of the stream).
 */
static volatile sig_atomic_t victim = -1;
static volatile sig_atomic_t closes;

static void close_victim(int sig)
{
	int saved = errno;

	(void)sig;
	if (victim >= 0) {
		close(victim);
		victim = -1;
		closes++;
	}
	errno = saved;
}

START_TEST(close_in_signal_handler_during_wait)
{
	struct sigaction sa = { .sa_handler = close_victim };
	struct itimerval it = { .it_interval = { 0, 200 },
				.it_value = { 0, 200 } };
	struct itimerval off = { 0 };
	int epfd = t_epoll(), peer = -1, rounds = 0;
	int64_t end = t_now_ms() + 2000;

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	closes = 0;
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	while (closes < 2000 && t_now_ms() < end) {
		struct epoll_event ev[8];

		if (victim < 0) {
			if (peer >= 0) {
				/* The handler's close ended the stream. */
				char c;

				ck_assert_int_eq(t_poll1(peer, POLLIN, 5000),
						 POLLIN | POLLHUP);
				ck_assert_int_eq(read(peer, &c, 1), 1);
				ck_assert_int_eq(read(peer, &c, 1), 0);
				t_close(peer);
				rounds++;
			}
			int sv[2];

			t_socketpair(SOCK_STREAM, sv);
			t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT,
			      0);
			t_write(sv[0], 1);
			peer = sv[1];
			victim = sv[0];
		}
		if (epoll_wait(epfd, ev, 8, 0) < 0)
			ck_assert_int_eq(errno, EINTR);
	}
	ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	signal(SIGALRM, SIG_DFL);
	if (victim >= 0)
		t_close(victim);
	if (peer >= 0)
		t_close(peer);
	ck_assert_int_gt(rounds, 10);
	t_close(epfd);
}
END_TEST

Suite *t_suite_host(void)
{
	Suite *s = suite_create("host");
	TCase *tc = t_tcase("host");

	tcase_add_test(tc, lt_half_closed_unix_reported_every_wait);
	tcase_add_test(tc, lt_half_closed_tcp_reported_every_wait);
	tcase_add_test(tc, lt_hup_after_mod_to_no_events_is_reported);
	tcase_add_test(tc, et_thousands_ready_each_reported_once);
	tcase_add_test(tc, et_add_then_wait0_reports_in_fresh_instances);
	tcase_add_test(tc, et_mod_then_wait0_reports_in_fresh_instances);
	tcase_add_test(tc, two_waiters_with_signals_blocked_never_see_eintr);
	tcase_add_test(tc, close_in_signal_handler_during_wait);
	suite_add_tcase(s, tc);
	return s;
}
