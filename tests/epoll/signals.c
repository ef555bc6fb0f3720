// SPDX-License-Identifier: MIT
/*
 * Signals and the wait calls: EINTR (epoll_wait is never restarted, not
 * even with SA_RESTART), the atomic signal mask of epoll_pwait and
 * epoll_pwait2, and epoll_pwait2's timespec timeout.
 *
 * Signals are sent with pthread_kill to the test thread once it is asleep
 * in the wait (t_task_blocked), or made pending beforehand while blocked;
 * never "after a while".
 */
#include "t_epoll.h"

static volatile sig_atomic_t t_sig_hits;

static void on_sig(int sig)
{
	(void)sig;
	t_sig_hits++;
}

/* SIGUSR1 handled by on_sig with @flags, unblocked in this thread. */
struct t_sigctx {
	struct sigaction old_act;
	sigset_t old_mask, usr1;
	int epfd;
	int p[2];
};

static void sig_open(struct t_sigctx *s, int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, &s->old_act), 0);
	sigemptyset(&s->usr1);
	sigaddset(&s->usr1, SIGUSR1);
	ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &s->usr1, &s->old_mask),
			 0);
	t_sig_hits = 0;
	s->epfd = t_epoll();
	t_pipe(s->p);
	t_ctl(s->epfd, EPOLL_CTL_ADD, s->p[0], EPOLLIN, 1);
}

static void sig_close(struct t_sigctx *s)
{
	const struct timespec zero = {0, 0};

	/* Nothing of ours may stay pending for the next test. */
	while (sigtimedwait(&s->usr1, NULL, &zero) == SIGUSR1)
		;
	ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &s->old_mask, NULL), 0);
	ck_assert_int_eq(sigaction(SIGUSR1, &s->old_act, NULL), 0);
	t_close(s->p[0]);
	t_close(s->p[1]);
	t_close(s->epfd);
}

/* Block SIGUSR1 and make it pending for this thread. */
static void sig_make_pending(struct t_sigctx *s)
{
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &s->usr1, NULL), 0);
	ck_assert_int_eq(pthread_kill(pthread_self(), SIGUSR1), 0);
	ck_assert_int_eq(t_sig_hits, 0);
}

static int sig_is_pending(void)
{
	sigset_t set;

	ck_assert_int_eq(sigpending(&set), 0);
	return sigismember(&set, SIGUSR1);
}

static int sig_is_blocked(void)
{
	sigset_t set;

	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &set), 0);
	return sigismember(&set, SIGUSR1);
}

/*
 * A helper thread that, once @target sleeps in a wait, sends it SIGUSR1
 * and then, if @wake_fd >= 0, writes a byte to @wake_fd.
 */
struct t_kicker {
	pthread_t thread;
	pthread_t target;
	pid_t target_tid;
	int wake_fd;
	int blocked;
};

static void *kicker_main(void *arg)
{
	struct t_kicker *k = arg;

	/*
	 * Asleep in the wait itself, not in a futex on the way (under TSan
	 * the thread blocks in its runtime's locks too): a signal before the
	 * wait would leave the wait to time out (once in CI, under TSan).
	 */
	k->blocked = t_task_in_epoll_wait(getpid(), k->target_tid);
	pthread_kill(k->target, SIGUSR1);
	/* The signal is queued by now: pthread_kill queues synchronously. */
	if (k->wake_fd >= 0 && write(k->wake_fd, "w", 1) != 1)
		k->blocked = -2;
	return NULL;
}

static void kicker_start(struct t_kicker *k, int wake_fd)
{
	k->target = pthread_self();
	k->target_tid = gettid();
	k->wake_fd = wake_fd;
	k->blocked = -3;
	t_thread_start(&k->thread, kicker_main, k);
}

static void kicker_join(struct t_kicker *k)
{
	t_thread_join(k->thread);
	ck_assert_int_eq(k->blocked, 0);
}

static void wait_interrupted(int sa_flags)
{
	struct epoll_event ev;
	struct t_sigctx s;
	struct t_kicker k;
	int ret, err;

	sig_open(&s, sa_flags);
	kicker_start(&k, -1);
	ret = epoll_wait(s.epfd, &ev, 1, T_LONG_MS);
	err = errno;
	kicker_join(&k);
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EINTR);
	ck_assert_int_eq(t_sig_hits, 1);
	sig_close(&s);
}

START_TEST(sig_wait_eintr_without_sa_restart)
{
	wait_interrupted(0);
}
END_TEST

START_TEST(sig_wait_eintr_even_with_sa_restart)
{
	/* signal(7): epoll_wait is never restarted after a handler. */
	wait_interrupted(SA_RESTART);
}
END_TEST

START_TEST(sig_pwait_mask_unblocks_pending_signal)
{
	struct epoll_event ev;
	struct t_sigctx s;
	sigset_t none;
	int ret, err;

	sig_open(&s, 0);
	sig_make_pending(&s);
	sigemptyset(&none);
	/* The mask is swapped atomically: the signal lands in the wait. */
	ret = epoll_pwait(s.epfd, &ev, 1, T_LONG_MS, &none);
	err = errno;
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EINTR);
	ck_assert_int_eq(t_sig_hits, 1);
	/* ...and the caller's mask is back afterwards. */
	ck_assert_int_eq(sig_is_blocked(), 1);
	sig_close(&s);
}
END_TEST

START_TEST(sig_pwait_mask_defers_signal_until_return)
{
	/*
	 * The wait's mask blocks SIGUSR1, which arrives during the wait: it
	 * does not interrupt, and is delivered as the old mask comes back.
	 */
	struct epoll_event ev;
	struct t_sigctx s;
	struct t_kicker k;
	int ret, hits_after;

	sig_open(&s, 0);
	kicker_start(&k, s.p[1]);
	memset(&ev, 0, sizeof(ev));
	ret = epoll_pwait(s.epfd, &ev, 1, T_LONG_MS, &s.usr1);
	hits_after = t_sig_hits;
	kicker_join(&k);
	ck_assert_int_eq(ret, 1);
	ck_assert_int_eq(ev.events, EPOLLIN);
	ck_assert_int_eq(hits_after, 1);
	ck_assert_int_eq(sig_is_blocked(), 0);
	sig_close(&s);
}
END_TEST

START_TEST(sig_pwait_ready_event_wins_over_pending_signal)
{
	/*
	 * Events already there are returned before the signal is looked
	 * at; the old mask comes back and the signal stays pending.
	 */
	struct epoll_event ev;
	struct t_sigctx s;
	sigset_t none;

	sig_open(&s, 0);
	t_write(s.p[1], 1);
	sig_make_pending(&s);
	sigemptyset(&none);
	memset(&ev, 0, sizeof(ev));
	ck_assert_int_eq(epoll_pwait(s.epfd, &ev, 1, T_LONG_MS, &none), 1);
	ck_assert_int_eq(ev.events, EPOLLIN);
	ck_assert_int_eq(t_sig_hits, 0);
	ck_assert_int_eq(sig_is_pending(), 1);
	sig_close(&s);
}
END_TEST

START_TEST(sig_pwait_blocked_signal_no_eintr)
{
	/* Pending but blocked by the wait's own mask: a plain timeout. */
	struct epoll_event ev;
	struct t_sigctx s;

	sig_open(&s, 0);
	sig_make_pending(&s);
	ck_assert_int_eq(epoll_pwait(s.epfd, &ev, 1, T_QUIET_MS, &s.usr1), 0);
	ck_assert_int_eq(t_sig_hits, 0);
	ck_assert_int_eq(sig_is_pending(), 1);
	sig_close(&s);
}
END_TEST

/* A timeout long enough to measure, and the slack allowed below it. */
#define T_TIMEOUT_MS 100
#define T_EARLY_MS 5
#define T_LATE_MS 3000

START_TEST(sig_pwait2_timespec_timeout_elapses)
{
	const struct timespec ts = {0, T_TIMEOUT_MS * 1000000L};
	struct epoll_event ev;
	struct t_sigctx s;
	int64_t start, took;

	sig_open(&s, 0);
	start = t_now_ms();
	ck_assert_int_eq(epoll_pwait2(s.epfd, &ev, 1, &ts, NULL), 0);
	took = t_now_ms() - start;
	ck_assert_int_ge(took, T_TIMEOUT_MS - T_EARLY_MS);
	ck_assert_int_lt(took, T_LATE_MS);
	sig_close(&s);
}
END_TEST

START_TEST(sig_pwait2_zero_timespec_returns_at_once)
{
	const struct timespec zero = {0, 0};
	struct epoll_event ev;
	struct t_sigctx s;
	int64_t start;

	sig_open(&s, 0);
	start = t_now_ms();
	ck_assert_int_eq(epoll_pwait2(s.epfd, &ev, 1, &zero, NULL), 0);
	ck_assert_int_lt(t_now_ms() - start, T_LATE_MS);
	t_write(s.p[1], 1);
	memset(&ev, 0, sizeof(ev));
	ck_assert_int_eq(epoll_pwait2(s.epfd, &ev, 1, &zero, NULL), 1);
	ck_assert_int_eq(ev.events, EPOLLIN);
	ck_assert_uint_eq(ev.data.u64, 1);
	sig_close(&s);
}
END_TEST

/* A thread that writes a byte once @waiter sleeps in a wait. */
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

START_TEST(sig_pwait2_null_timeout_is_infinite)
{
	struct t_writer w = {.fd = -1};
	struct epoll_event ev;
	struct t_sigctx s;
	int ret;

	sig_open(&s, 0);
	w.waiter = gettid();
	w.fd = s.p[1];
	t_thread_start(&w.thread, writer_main, &w);
	/* Returns only because of the event, after sleeping for it. */
	memset(&ev, 0, sizeof(ev));
	do {
		ret = epoll_pwait2(s.epfd, &ev, 1, NULL, NULL);
	} while (ret == -1 && errno == EINTR);
	t_thread_join(w.thread);
	ck_assert_int_eq(w.blocked, 0);
	ck_assert_int_eq(ret, 1);
	ck_assert_int_eq(ev.events, EPOLLIN);
	sig_close(&s);
}
END_TEST

START_TEST(sig_pwait2_invalid_timespec_einval)
{
	const struct timespec big_ns = {0, 1000000000L};
	const struct timespec neg_ns = {0, -1};
	const struct timespec neg_s = {-1, 0};
	struct epoll_event ev;
	struct t_sigctx s;

	sig_open(&s, 0);
	t_assert_errno(epoll_pwait2(s.epfd, &ev, 1, &big_ns, NULL), EINVAL);
	t_assert_errno(epoll_pwait2(s.epfd, &ev, 1, &neg_ns, NULL), EINVAL);
	/* Unlike a negative int timeout, a negative timespec is invalid. */
	t_assert_errno(epoll_pwait2(s.epfd, &ev, 1, &neg_s, NULL), EINVAL);
	sig_close(&s);
}
END_TEST

START_TEST(sig_pwait2_mask_unblocks_pending_signal)
{
	const struct timespec ts = {T_LONG_MS / 1000, 0};
	struct epoll_event ev;
	struct t_sigctx s;
	sigset_t none;
	int ret, err;

	sig_open(&s, 0);
	sig_make_pending(&s);
	sigemptyset(&none);
	ret = epoll_pwait2(s.epfd, &ev, 1, &ts, &none);
	err = errno;
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EINTR);
	ck_assert_int_eq(t_sig_hits, 1);
	ck_assert_int_eq(sig_is_blocked(), 1);
	sig_close(&s);
}
END_TEST

START_TEST(sig_pwait2_interrupted_by_signal)
{
	const struct timespec ts = {T_LONG_MS / 1000, 0};
	struct epoll_event ev;
	struct t_sigctx s;
	struct t_kicker k;
	int ret, err;

	sig_open(&s, SA_RESTART);
	kicker_start(&k, -1);
	ret = epoll_pwait2(s.epfd, &ev, 1, &ts, NULL);
	err = errno;
	kicker_join(&k);
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EINTR);
	ck_assert_int_eq(t_sig_hits, 1);
	sig_close(&s);
}
END_TEST

/* NULL when epoll_pwait2 works here, else why it does not. */
static const char *pwait2_missing(void)
{
	const struct timespec zero = {0, 0};
	struct epoll_event ev;
	int epfd, ret, err;

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return "epoll_create1 failed";
	ret = epoll_pwait2(epfd, &ev, 1, &zero, NULL);
	err = errno;
	close(epfd);
	if (ret == -1 && err == ENOSYS)
		return "epoll_pwait2 not supported (ENOSYS; kernel < 5.11, "
		       "old libc, or valgrind)";
	return NULL;
}

Suite *t_suite_signals(void)
{
	Suite *s = suite_create("signals");
	TCase *tc = t_tcase("signals");
	const char *no_pwait2 = pwait2_missing();

	tcase_add_test(tc, sig_wait_eintr_without_sa_restart);
	tcase_add_test(tc, sig_wait_eintr_even_with_sa_restart);
	tcase_add_test(tc, sig_pwait_mask_unblocks_pending_signal);
	tcase_add_test(tc, sig_pwait_mask_defers_signal_until_return);
	tcase_add_test(tc, sig_pwait_ready_event_wins_over_pending_signal);
	tcase_add_test(tc, sig_pwait_blocked_signal_no_eintr);
	t_add_unless(tc, sig_pwait2_timespec_timeout_elapses, no_pwait2);
	t_add_unless(tc, sig_pwait2_zero_timespec_returns_at_once, no_pwait2);
	t_add_unless(tc, sig_pwait2_null_timeout_is_infinite, no_pwait2);
	t_add_unless(tc, sig_pwait2_invalid_timespec_einval, no_pwait2);
	t_add_unless(tc, sig_pwait2_mask_unblocks_pending_signal, no_pwait2);
	t_add_unless(tc, sig_pwait2_interrupted_by_signal, no_pwait2);
	suite_add_tcase(s, tc);
	return s;
}
