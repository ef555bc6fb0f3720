// SPDX-License-Identifier: MIT
/*
 * epoll_wait: timeouts, maxevents, batching and fairness, the user data
 * round trip, and bad arguments.
 *
 * Elapsed-time bounds are loose on purpose: the suite runs on small, busy
 * machines. A lower bound is what the kernel promises (never early); an
 * upper bound only catches "never returned" or "ignored the timeout".
 */
#include "t_epoll.h"

/* A timeout long enough to measure, short enough to keep the suite fast. */
#define T_TIMEOUT_MS 100
/* The kernel is never early; this is our clock's millisecond rounding. */
#define T_EARLY_MS 5
/* Anything this late means the timeout was not honoured at all. */
#define T_LATE_MS 3000

/* A batch of pipes, each registered with data.u64 = its index. */
#define T_NPIPES 5
struct t_pipes {
	int epfd;
	int p[T_NPIPES][2];
};

static void pipes_open(struct t_pipes *t, uint32_t events, int ready)
{
	int i;

	t->epfd = t_epoll();
	for (i = 0; i < T_NPIPES; i++) {
		t_pipe(t->p[i]);
		t_ctl(t->epfd, EPOLL_CTL_ADD, t->p[i][0], events, i);
		if (ready)
			t_write(t->p[i][1], 1);
	}
}

static void pipes_close(struct t_pipes *t)
{
	int i;

	for (i = 0; i < T_NPIPES; i++) {
		t_close(t->p[i][0]);
		t_close(t->p[i][1]);
	}
	t_close(t->epfd);
}

/* A thread that writes one byte once the test thread sleeps in a wait. */
struct t_writer {
	pthread_t thread;
	pid_t waiter;
	int fd;
	int blocked;
};

static void *writer_main(void *arg)
{
	struct t_writer *w = arg;

	w->blocked = t_task_blocked(getpid(), w->waiter);
	if (write(w->fd, "x", 1) != 1)
		w->blocked = -2;
	return NULL;
}

static void writer_start(struct t_writer *w, int fd)
{
	w->waiter = gettid();
	w->fd = fd;
	w->blocked = -3;
	t_thread_start(&w->thread, writer_main, w);
}

static void writer_join(struct t_writer *w)
{
	t_thread_join(w->thread);
	ck_assert_int_eq(w->blocked, 0);
}

START_TEST(wait_timeout_zero_returns_at_once)
{
	int epfd = t_epoll();
	struct epoll_event ev;
	int64_t start = t_now_ms();

	ck_assert_int_eq(epoll_wait(epfd, &ev, 1, 0), 0);
	ck_assert_int_lt(t_now_ms() - start, T_LATE_MS);
	t_close(epfd);
}
END_TEST

START_TEST(wait_timeout_elapses)
{
	int epfd = t_epoll();
	struct epoll_event ev;
	int64_t start = t_now_ms(), took;

	ck_assert_int_eq(t_wait(epfd, &ev, 1, T_TIMEOUT_MS), 0);
	took = t_now_ms() - start;
	ck_assert_int_ge(took, T_TIMEOUT_MS - T_EARLY_MS);
	ck_assert_int_lt(took, T_LATE_MS);
	t_close(epfd);
}
END_TEST

START_TEST(wait_timeout_elapses_with_idle_fd)
{
	/* A registered fd that never becomes ready changes nothing. */
	int epfd = t_epoll();
	struct epoll_event ev;
	int64_t start, took;
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 0);
	start = t_now_ms();
	ck_assert_int_eq(t_wait(epfd, &ev, 1, T_TIMEOUT_MS), 0);
	took = t_now_ms() - start;
	ck_assert_int_ge(took, T_TIMEOUT_MS - T_EARLY_MS);
	ck_assert_int_lt(took, T_LATE_MS);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

/*
 * A socket whose peer shut down its writing side has EPOLLRDHUP set for
 * good. Registered for a bit that is not set (here EPOLLPRI), it must let
 * the wait sleep: no event, the whole timeout, and no CPU burnt on the way
 * (io_uring's poll always wakes for EPOLLRDHUP; a one-shot poll re-armed
 * on such a file would complete again at once).
 */
START_TEST(wait_sleeps_on_rdhup_outside_interest)
{
	struct epoll_event ev;
	struct rusage r0, r1;
	int64_t start, took, cpu_ms;
	int epfd = t_epoll(), sv[2];

	t_socketpair(SOCK_STREAM, sv);
	ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLPRI, 1);
	ck_assert_int_eq(getrusage(RUSAGE_THREAD, &r0), 0);
	start = t_now_ms();
	ck_assert_int_eq(t_wait(epfd, &ev, 1, T_TIMEOUT_MS), 0);
	took = t_now_ms() - start;
	ck_assert_int_eq(getrusage(RUSAGE_THREAD, &r1), 0);
	cpu_ms = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec +
		  r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000 +
		 (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec +
		  r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1000;
	ck_assert_int_ge(took, T_TIMEOUT_MS - T_EARLY_MS);
	ck_assert_msg(cpu_ms < T_TIMEOUT_MS / 2,
		      "the wait burnt %lld ms of CPU in %lld ms",
		      (long long)cpu_ms, (long long)took);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_ready_returns_before_timeout)
{
	int epfd = t_epoll();
	int64_t start;
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 3);
	t_write(p[1], 1);
	start = t_now_ms();
	t_expect1(epfd, T_LONG_MS, 3, EPOLLIN);
	ck_assert_int_lt(t_now_ms() - start, T_LATE_MS);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_infinite_timeout_returns_on_event)
{
	int epfd = t_epoll();
	struct t_writer w;
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 4);
	writer_start(&w, p[1]);
	t_expect1(epfd, -1, 4, EPOLLIN);
	writer_join(&w);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_any_negative_timeout_is_infinite)
{
	/* Not only -1: every negative timeout means "no timeout". */
	int epfd = t_epoll();
	struct t_writer w;
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 5);
	writer_start(&w, p[1]);
	t_expect1(epfd, -7, 5, EPOLLIN);
	writer_join(&w);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_maxevents_zero_einval)
{
	int epfd = t_epoll();
	struct epoll_event ev;

	t_assert_errno(epoll_wait(epfd, &ev, 0, 0), EINVAL);
	t_close(epfd);
}
END_TEST

/* Hidden from the compiler, which would warn about the buffer size. */
static volatile int t_negative_maxevents = -1;
static volatile int t_huge_maxevents = INT_MAX;

START_TEST(wait_maxevents_negative_einval)
{
	int epfd = t_epoll();
	struct epoll_event ev;
	int ret, err;

	/* Valgrind sizes the buffer as -1 events: tell it not to look. */
	T_BAD_POINTER_BEGIN();
	ret = epoll_wait(epfd, &ev, t_negative_maxevents, 0);
	err = errno;
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EINVAL);
	t_close(epfd);
}
END_TEST

START_TEST(wait_maxevents_too_large_einval)
{
	/* More than INT_MAX bytes of events is refused before any copy. */
	int epfd = t_epoll();
	struct epoll_event ev;
	int ret, err;

	T_BAD_POINTER_BEGIN();
	ret = epoll_wait(epfd, &ev, t_huge_maxevents, 0);
	err = errno;
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EINVAL);
	t_close(epfd);
}
END_TEST

/* Room for nothing: maxevents is checked before any copy, or none is made. */
static struct epoll_event t_static_events[1];
static volatile int t_ep_max_events =
	INT_MAX / (int)sizeof(struct epoll_event);

START_TEST(wait_maxevents_above_ep_max_events_einval)
{
	/* EP_MAX_EVENTS is INT_MAX / sizeof(struct epoll_event), exactly. */
	int epfd = t_epoll();
	int ret[2], err;

	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret[0] = epoll_wait(epfd, t_static_events, t_ep_max_events + 1, 0);
	err = errno;
	/* At the limit, and nothing ready: nothing to copy. */
	ret[1] = epoll_wait(epfd, t_static_events, t_ep_max_events, 0);
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret[0], -1);
	ck_assert_int_eq(err, EINVAL);
	ck_assert_int_eq(ret[1], 0);
	t_close(epfd);
}
END_TEST

START_TEST(wait_negative_epfd_ebadf)
{
	struct epoll_event ev;

	t_assert_errno(epoll_wait(-1, &ev, 1, 0), EBADF);
}
END_TEST

START_TEST(wait_closed_epfd_ebadf)
{
	int epfd = t_epoll();
	struct epoll_event ev;

	t_close(epfd);
	t_assert_errno(epoll_wait(epfd, &ev, 1, 0), EBADF);
}
END_TEST

START_TEST(wait_not_epoll_einval)
{
	struct epoll_event ev;
	int p[2];

	t_pipe(p);
	t_assert_errno(epoll_wait(p[0], &ev, 1, 0), EINVAL);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

START_TEST(wait_returns_all_ready)
{
	struct epoll_event ev[T_NPIPES + 3];
	struct t_pipes t;
	unsigned int seen = 0;
	int i, n;

	pipes_open(&t, EPOLLIN, 1);
	n = t_wait(t.epfd, ev, T_NPIPES + 3, 0);
	ck_assert_int_eq(n, T_NPIPES);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(ev[i].events, EPOLLIN);
		ck_assert_uint_lt(ev[i].data.u64, T_NPIPES);
		seen |= 1u << ev[i].data.u64;
	}
	/* One entry per fd: all five distinct. */
	ck_assert_uint_eq(seen, (1u << T_NPIPES) - 1);
	pipes_close(&t);
}
END_TEST

START_TEST(wait_maxevents_bounds_batch)
{
	struct epoll_event ev[T_NPIPES];
	struct t_pipes t;

	pipes_open(&t, EPOLLIN, 1);
	ck_assert_int_eq(t_wait(t.epfd, ev, 3, 0), 3);
	ck_assert_int_eq(t_wait(t.epfd, ev, 1, 0), 1);
	pipes_close(&t);
}
END_TEST

START_TEST(wait_lt_rotation_reports_every_fd)
{
	/*
	 * With more ready level-triggered fds than maxevents, a reported
	 * fd goes to the back of the line, so nobody starves: five fds,
	 * two per wait, all seen within three waits.
	 */
	struct epoll_event ev[2];
	struct t_pipes t;
	unsigned int seen = 0;
	int round, i, n;

	pipes_open(&t, EPOLLIN, 1);
	for (round = 0; round < (T_NPIPES + 1) / 2; round++) {
		n = t_wait(t.epfd, ev, 2, 0);
		ck_assert_int_eq(n, 2);
		for (i = 0; i < n; i++) {
			ck_assert_uint_lt(ev[i].data.u64, T_NPIPES);
			seen |= 1u << ev[i].data.u64;
		}
	}
	ck_assert_uint_eq(seen, (1u << T_NPIPES) - 1);
	pipes_close(&t);
}
END_TEST

/*
 * Five ready fds, two reported; two of the three left over are drained
 * before the next wait. The kernel re-polls a leftover only when a report
 * reaches it: a wait with room for one drops the two drained ones and
 * hands out the third, and nothing else is pending for edge-triggered.
 */
static void leftovers_drained(uint32_t events)
{
	struct epoll_event ev[T_NPIPES];
	struct t_pipes t;
	unsigned int seen = 0, left;
	int i, n;

	pipes_open(&t, events, 1);
	n = t_wait(t.epfd, ev, 2, 0);
	ck_assert_int_eq(n, 2);
	for (i = 0; i < n; i++)
		seen |= 1u << ev[i].data.u64;
	left = ((1u << T_NPIPES) - 1) & ~seen;
	/* Drain the two lowest leftovers; the highest stays readable. */
	for (i = 0; i < 2; i++) {
		int k = __builtin_ctz(left);

		ck_assert_uint_eq(t_drain(t.p[k][0]), 1);
		left &= ~(1u << k);
	}
	n = t_wait(t.epfd, ev, 1, 0);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(1u << ev[0].data.u64, left);
	ck_assert_uint_eq(ev[0].events, EPOLLIN);
	if (events & EPOLLET)
		t_expect_none(t.epfd, 0);
	pipes_close(&t);
}

START_TEST(wait_et_leftovers_drained_not_reported)
{
	leftovers_drained(EPOLLIN | EPOLLET);
}
END_TEST

START_TEST(wait_lt_leftovers_drained_not_reported)
{
	leftovers_drained(EPOLLIN);
}
END_TEST

START_TEST(wait_maxevents_one_round_robin)
{
	/* One at a time, five waits name five different fds. */
	struct epoll_event ev;
	struct t_pipes t;
	unsigned int seen = 0;
	int i;

	pipes_open(&t, EPOLLIN, 1);
	for (i = 0; i < T_NPIPES; i++) {
		ck_assert_int_eq(t_wait(t.epfd, &ev, 1, 0), 1);
		ck_assert_uint_lt(ev.data.u64, T_NPIPES);
		ck_assert_uint_eq(seen & (1u << ev.data.u64), 0);
		seen |= 1u << ev.data.u64;
	}
	pipes_close(&t);
}
END_TEST

START_TEST(wait_writes_only_returned_entries)
{
	/* Entries past the returned count are left as they were. */
	struct epoll_event ev[4];
	int epfd = t_epoll();
	int p[2], i;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 9);
	t_write(p[1], 1);
	memset(ev, 0xa5, sizeof(ev));
	ck_assert_int_eq(t_wait(epfd, ev, 4, 0), 1);
	ck_assert_int_eq(ev[0].events, EPOLLIN);
	ck_assert_uint_eq(ev[0].data.u64, 9);
	for (i = 1; i < 4; i++) {
		ck_assert_uint_eq(ev[i].events, 0xa5a5a5a5u);
		ck_assert_uint_eq(ev[i].data.u64, 0xa5a5a5a5a5a5a5a5ull);
	}
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_data_u64_kept)
{
	const uint64_t tag = 0xfedcba9876543210ull;
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, tag);
	t_write(p[1], 1);
	t_expect1(epfd, 0, tag, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_data_ptr_kept)
{
	struct epoll_event in, out;
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	memset(&in, 0, sizeof(in));
	in.events = EPOLLIN;
	in.data.ptr = &in;
	ck_assert_int_eq(epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &in), 0);
	t_write(p[1], 1);
	ck_assert_int_eq(t_wait(epfd, &out, 1, 0), 1);
	ck_assert_ptr_eq(out.data.ptr, &in);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_mod_replaces_data)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_write(p[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_ctl(epfd, EPOLL_CTL_MOD, p[0], EPOLLIN, 2);
	t_expect1(epfd, 0, 2, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_mod_replaces_events)
{
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_write(sv[1], 1);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN, 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLOUT, 1);
	t_expect1(epfd, 0, 1, EPOLLOUT);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLOUT, 1);
	t_expect1(epfd, 0, 1, EPOLLIN | EPOLLOUT);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_one_entry_per_fd)
{
	/* Readable and writable at once is one entry with both bits. */
	struct epoll_event ev[4];
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_write(sv[1], 1);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT, 1);
	ck_assert_int_eq(t_wait(epfd, ev, 4, 0), 1);
	ck_assert_int_eq(ev[0].events, EPOLLIN | EPOLLOUT);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_dup_fds_are_separate_registrations)
{
	/* The interest list is keyed by (file, fd): two fds, two entries. */
	struct epoll_event ev[4];
	int epfd = t_epoll();
	int p[2], d, n;

	t_pipe(p);
	d = dup(p[0]);
	ck_assert_int_ge(d, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(epfd, EPOLL_CTL_ADD, d, EPOLLIN, 2);
	t_write(p[1], 1);
	n = t_wait(epfd, ev, 4, 0);
	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(ev[0].data.u64 + ev[1].data.u64, 3);
	ck_assert_int_eq(ev[0].events, EPOLLIN);
	ck_assert_int_eq(ev[1].events, EPOLLIN);
	t_close(d);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_pwait_null_sigmask_is_wait)
{
	int epfd = t_epoll();
	struct epoll_event ev;
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 6);
	ck_assert_int_eq(epoll_pwait(epfd, &ev, 1, 0, NULL), 0);
	t_write(p[1], 1);
	memset(&ev, 0, sizeof(ev));
	ck_assert_int_eq(epoll_pwait(epfd, &ev, 1, 0, NULL), 1);
	ck_assert_int_eq(ev.events, EPOLLIN);
	ck_assert_uint_eq(ev.data.u64, 6);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

/* Hidden from the compiler, which would rightly warn at a literal NULL. */
static struct epoll_event *volatile t_null_events;

START_TEST(wait_null_events_nothing_ready_returns_zero)
{
	/* Nothing to copy, nothing to fault on. */
	int epfd = t_epoll();
	int ret;

	T_BAD_POINTER_BEGIN();
	ret = epoll_wait(epfd, t_null_events, 1, 0);
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, 0);
	t_close(epfd);
}
END_TEST

START_TEST(wait_null_events_efault_keeps_event)
{
	int epfd = t_epoll();
	int p[2], ret, err;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 8);
	t_write(p[1], 1);
	T_BAD_POINTER_BEGIN();
	ret = epoll_wait(epfd, t_null_events, 1, 0);
	err = errno;
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EFAULT);
	/* The event that could not be copied is not lost, even for ET. */
	t_expect1(epfd, 0, 8, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(wait_null_events_candidate_not_ready_returns_zero)
{
	/*
	 * Data wakes an EPOLLPRI entry with a key that has EPOLLPRI, but
	 * the socket has no urgent data: re-polled, there is nothing to
	 * copy, so no fault. The instance is nested in another, where
	 * ringpoll keeps such a wakeup as a candidate (seed 20051).
	 */
	int outer = t_epoll(), inner = t_epoll();
	int sv[2], ret;

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLPRI, 1);
	t_ctl(inner, EPOLL_CTL_ADD, sv[1], EPOLLPRI | EPOLLET, 2);
	t_write(sv[0], 18);
	T_BAD_POINTER_BEGIN();
	ret = epoll_wait(inner, t_null_events, 8, 0);
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, 0);
	t_expect_none(inner, 0);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(inner);
	t_close(outer);
}
END_TEST

Suite *t_suite_wait(void)
{
	Suite *s = suite_create("wait");
	TCase *tc = t_tcase("wait");
	const char *bad_ptr = t_bad_pointer_skip();

	tcase_add_test(tc, wait_timeout_zero_returns_at_once);
	tcase_add_test(tc, wait_timeout_elapses);
	tcase_add_test(tc, wait_timeout_elapses_with_idle_fd);
	tcase_add_test(tc, wait_sleeps_on_rdhup_outside_interest);
	tcase_add_test(tc, wait_ready_returns_before_timeout);
	tcase_add_test(tc, wait_infinite_timeout_returns_on_event);
	tcase_add_test(tc, wait_any_negative_timeout_is_infinite);
	tcase_add_test(tc, wait_maxevents_zero_einval);
	t_add_unless(tc, wait_maxevents_negative_einval, bad_ptr);
	t_add_unless(tc, wait_maxevents_too_large_einval, bad_ptr);
	t_add_unless(tc, wait_maxevents_above_ep_max_events_einval, bad_ptr);
	tcase_add_test(tc, wait_negative_epfd_ebadf);
	tcase_add_test(tc, wait_closed_epfd_ebadf);
	tcase_add_test(tc, wait_not_epoll_einval);
	tcase_add_test(tc, wait_returns_all_ready);
	tcase_add_test(tc, wait_maxevents_bounds_batch);
	tcase_add_test(tc, wait_lt_rotation_reports_every_fd);
	tcase_add_test(tc, wait_maxevents_one_round_robin);
	tcase_add_test(tc, wait_et_leftovers_drained_not_reported);
	tcase_add_test(tc, wait_lt_leftovers_drained_not_reported);
	tcase_add_test(tc, wait_writes_only_returned_entries);
	tcase_add_test(tc, wait_data_u64_kept);
	tcase_add_test(tc, wait_data_ptr_kept);
	tcase_add_test(tc, wait_mod_replaces_data);
	tcase_add_test(tc, wait_mod_replaces_events);
	tcase_add_test(tc, wait_one_entry_per_fd);
	tcase_add_test(tc, wait_dup_fds_are_separate_registrations);
	tcase_add_test(tc, wait_pwait_null_sigmask_is_wait);
	t_add_unless(tc, wait_null_events_nothing_ready_returns_zero, bad_ptr);
	t_add_unless(tc, wait_null_events_efault_keeps_event, bad_ptr);
	t_add_unless(tc, wait_null_events_candidate_not_ready_returns_zero,
		     bad_ptr);
	suite_add_tcase(s, tc);
	return s;
}
