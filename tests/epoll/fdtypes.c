// SPDX-License-Identifier: MIT
/*
 * Special files that event loops watch: eventfd, timerfd, signalfd,
 * pidfd and inotify. Each has its own idea of readable and writable.
 */
#include "t_epoll.h"

static int efd_open(unsigned int initval, int flags)
{
	int fd = eventfd(initval, flags | EFD_NONBLOCK | EFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static void efd_add(int fd, uint64_t v)
{
	ck_assert_int_eq(write(fd, &v, sizeof(v)), sizeof(v));
}

static uint64_t efd_take(int fd)
{
	uint64_t v = 0;

	ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
	return v;
}

START_TEST(eventfd_zero_writable_not_readable)
{
	int epfd = t_epoll();
	int fd = efd_open(0, 0);

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT, 1);
	t_expect1(epfd, 0, 1, EPOLLOUT);
	t_close(fd);
	t_close(epfd);
}
END_TEST

START_TEST(eventfd_write_makes_readable)
{
	int epfd = t_epoll();
	int fd = efd_open(0, 0);

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT, 1);
	efd_add(fd, 3);
	t_expect1(epfd, 0, 1, EPOLLIN | EPOLLOUT);
	ck_assert_uint_eq(efd_take(fd), 3);
	t_expect1(epfd, 0, 1, EPOLLOUT);
	t_close(fd);
	t_close(epfd);
}
END_TEST

START_TEST(eventfd_initial_value_readable)
{
	int epfd = t_epoll();
	int fd = efd_open(2, 0);

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN, 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_close(fd);
	t_close(epfd);
}
END_TEST

START_TEST(eventfd_semaphore_readable_until_zero)
{
	int epfd = t_epoll();
	int fd = efd_open(0, EFD_SEMAPHORE);

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN, 1);
	efd_add(fd, 2);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(efd_take(fd), 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(efd_take(fd), 1);
	t_expect_none(epfd, 0);
	t_close(fd);
	t_close(epfd);
}
END_TEST

START_TEST(eventfd_at_max_not_writable)
{
	/* At 0xfffffffffffffffe another write of 1 would block. */
	int epfd = t_epoll();
	int fd = efd_open(0, 0);

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT, 1);
	efd_add(fd, UINT64_MAX - 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	efd_take(fd);
	t_expect1(epfd, 0, 1, EPOLLOUT);
	t_close(fd);
	t_close(epfd);
}
END_TEST

static int tfd_open(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static void tfd_arm(int fd, int flags, time_t sec, long nsec, long period)
{
	struct itimerspec its = {
	    .it_value = {.tv_sec = sec, .tv_nsec = nsec},
	    .it_interval = {.tv_sec = 0, .tv_nsec = period},
	};

	ck_assert_int_eq(timerfd_settime(fd, flags, &its, NULL), 0);
}

START_TEST(timerfd_disarmed_not_ready)
{
	int epfd = t_epoll();
	int fd = tfd_open();

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT, 1);
	/* A timerfd is never writable, and unarmed never readable. */
	t_expect_none(epfd, T_QUIET_MS);
	t_close(fd);
	t_close(epfd);
}
END_TEST

START_TEST(timerfd_expiry_readable_read_clears)
{
	int epfd = t_epoll();
	int fd = tfd_open();
	uint64_t ticks = 0;

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN, 1);
	tfd_arm(fd, 0, 0, 1000000, 0);
	t_expect1(epfd, T_LONG_MS, 1, EPOLLIN);
	ck_assert_int_eq(read(fd, &ticks, sizeof(ticks)), sizeof(ticks));
	ck_assert_uint_eq(ticks, 1);
	t_expect_none(epfd, 0);
	t_close(fd);
	t_close(epfd);
}
END_TEST

START_TEST(timerfd_past_absolute_time_fires)
{
	/* An absolute time already gone expires immediately. */
	int epfd = t_epoll();
	int fd = tfd_open();

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN, 1);
	tfd_arm(fd, TFD_TIMER_ABSTIME, 0, 1, 0);
	t_expect1(epfd, T_LONG_MS, 1, EPOLLIN);
	t_close(fd);
	t_close(epfd);
}
END_TEST

START_TEST(timerfd_disarm_clears_readiness)
{
	int epfd = t_epoll();
	int fd = tfd_open();

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN, 1);
	tfd_arm(fd, 0, 0, 1000000, 0);
	t_expect1(epfd, T_LONG_MS, 1, EPOLLIN);
	/* Setting a timer resets the expiry count, even to "disarmed". */
	tfd_arm(fd, 0, 0, 0, 0);
	t_expect_none(epfd, 0);
	t_close(fd);
	t_close(epfd);
}
END_TEST

/* 5 ms between ticks: quick, and T_QUIET_MS spans several of them. */
#define T_TICK_NS 5000000L

START_TEST(timerfd_periodic_rearms_only_on_read)
{
	/*
	 * A periodic timerfd wakes once and then waits to be read: the
	 * timer is restarted by read(), which counts the missed periods.
	 * So no new edge comes while the expiry is unread.
	 */
	int epfd = t_epoll();
	int fd = tfd_open();
	uint64_t ticks = 0;

	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET, 1);
	tfd_arm(fd, 0, 0, T_TICK_NS, T_TICK_NS);
	t_expect1(epfd, T_LONG_MS, 1, EPOLLIN);
	t_expect_none(epfd, T_QUIET_MS);
	ck_assert_int_eq(read(fd, &ticks, sizeof(ticks)), sizeof(ticks));
	ck_assert_uint_ge(ticks, T_QUIET_MS * 1000000L / T_TICK_NS);
	t_expect1(epfd, T_LONG_MS, 1, EPOLLIN);
	tfd_arm(fd, 0, 0, 0, 0);
	t_close(fd);
	t_close(epfd);
}
END_TEST

/*
 * signalfd reports signals pending for the thread that polls it, so the
 * signal is sent to, blocked in and waited for by the test thread.
 */
struct t_sig {
	sigset_t set, old;
	int fd;
};

static void sig_open(struct t_sig *s)
{
	sigemptyset(&s->set);
	sigaddset(&s->set, SIGUSR2);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &s->set, &s->old), 0);
	s->fd = signalfd(-1, &s->set, SFD_NONBLOCK | SFD_CLOEXEC);
	ck_assert_int_ge(s->fd, 0);
}

static void sig_close(struct t_sig *s)
{
	const struct timespec zero = {0, 0};

	/* Unblocking a pending SIGUSR2 would kill the runner: flush it. */
	while (sigtimedwait(&s->set, NULL, &zero) == SIGUSR2)
		;
	t_close(s->fd);
	ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &s->old, NULL), 0);
}

START_TEST(signalfd_no_signal_not_ready)
{
	int epfd = t_epoll();
	struct t_sig s;

	sig_open(&s);
	t_ctl(epfd, EPOLL_CTL_ADD, s.fd, EPOLLIN | EPOLLOUT, 1);
	t_expect_none(epfd, 0);
	sig_close(&s);
	t_close(epfd);
}
END_TEST

START_TEST(signalfd_pending_signal_readable)
{
	struct signalfd_siginfo si;
	int epfd = t_epoll();
	struct t_sig s;

	sig_open(&s);
	t_ctl(epfd, EPOLL_CTL_ADD, s.fd, EPOLLIN, 1);
	ck_assert_int_eq(pthread_kill(pthread_self(), SIGUSR2), 0);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_int_eq(read(s.fd, &si, sizeof(si)), sizeof(si));
	ck_assert_uint_eq(si.ssi_signo, SIGUSR2);
	/* Reading dequeued the signal. */
	t_expect_none(epfd, 0);
	sig_close(&s);
	t_close(epfd);
}
END_TEST

#ifdef T_HAVE_PIDFD
START_TEST(pidfd_readable_on_exit_hup_on_reap)
{
	int epfd = t_epoll();
	int go[2], pfd, status;
	pid_t pid;
	char b;

	t_pipe(go);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Block until the parent says go (closes its write end). */
		struct pollfd pf = {.fd = go[0], .events = POLLIN};

		close(go[1]);
		T_CHILD_REQUIRE(poll(&pf, 1, T_LONG_MS) == 1, 1);
		T_CHILD_REQUIRE(read(go[0], &b, 1) == 0, 2);
		_exit(0);
	}
	pfd = pidfd_open(pid, 0);
	ck_assert_int_ge(pfd, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, pfd, EPOLLIN, 1);
	t_expect_none(epfd, 0);
	t_close(go[1]);
	/* Exited but not yet reaped: readable. */
	t_expect1(epfd, T_LONG_MS, 1, EPOLLIN);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Reaped: the process is gone, which is a hangup. */
	t_expect1(epfd, 0, 1, EPOLLIN | EPOLLHUP);
	t_close(pfd);
	t_close(go[0]);
	t_close(epfd);
}
END_TEST

static const char *pidfd_missing(void)
{
	int fd = pidfd_open(getpid(), 0);

	if (fd < 0)
		return "pidfd_open not available";
	close(fd);
	return NULL;
}
#endif

START_TEST(inotify_readable_after_event)
{
	char dir[] = "/tmp/rp-epoll-XXXXXX", path[64];
	int epfd = t_epoll();
	int in, f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ck_assert_int_ge(in, 0);
	ck_assert_int_ge(inotify_add_watch(in, dir, IN_CREATE), 0);
	t_ctl(epfd, EPOLL_CTL_ADD, in, EPOLLIN, 1);
	t_expect_none(epfd, 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(f, 0);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_uint_gt(t_drain(in), 0);
	t_expect_none(epfd, 0);
	t_close(f);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	t_close(in);
	t_close(epfd);
}
END_TEST

Suite *t_suite_fdtypes(void)
{
	Suite *s = suite_create("fdtypes");
	TCase *tc = t_tcase("fdtypes");

	tcase_add_test(tc, eventfd_zero_writable_not_readable);
	tcase_add_test(tc, eventfd_write_makes_readable);
	tcase_add_test(tc, eventfd_initial_value_readable);
	tcase_add_test(tc, eventfd_semaphore_readable_until_zero);
	tcase_add_test(tc, eventfd_at_max_not_writable);
	tcase_add_test(tc, timerfd_disarmed_not_ready);
	tcase_add_test(tc, timerfd_expiry_readable_read_clears);
	tcase_add_test(tc, timerfd_past_absolute_time_fires);
	tcase_add_test(tc, timerfd_disarm_clears_readiness);
	tcase_add_test(tc, timerfd_periodic_rearms_only_on_read);
	tcase_add_test(tc, signalfd_no_signal_not_ready);
	tcase_add_test(tc, signalfd_pending_signal_readable);
#ifdef T_HAVE_PIDFD
	t_add_unless(tc, pidfd_readable_on_exit_hup_on_reap, pidfd_missing());
#else
	printf("skip: pidfd_readable_on_exit_hup_on_reap: no <sys/pidfd.h>\n");
#endif
	tcase_add_test(tc, inotify_readable_after_event);
	suite_add_tcase(s, tc);
	return s;
}
