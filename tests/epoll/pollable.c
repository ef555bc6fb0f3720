// SPDX-License-Identifier: MIT
/*
 * The epoll fd is readable exactly when an epoll_wait would return events,
 * and never writable (epoll(7)): poll, ppoll, select and pselect on it, and
 * a kernel epoll instance that holds it. Event loops rely on it: an
 * embedder polls libuv's backend fd, GLib and Qt poll nested loops' fds.
 * None of these calls consumes an event: the wait after them reports it.
 */
#include "t_epoll.h"

/* What select says for fd in each set: bit 0 read, 1 write, 2 except. */
static int sel1(int fd, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	fd_set r, w, e;
	int n, ret = 0;

	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&e);
	FD_SET(fd, &r);
	FD_SET(fd, &w);
	FD_SET(fd, &e);
	n = select(fd + 1, &r, &w, &e, &tv);
	ck_assert_int_ge(n, 0);
	ret = (FD_ISSET(fd, &r) ? 1 : 0) | (FD_ISSET(fd, &w) ? 2 : 0) |
	      (FD_ISSET(fd, &e) ? 4 : 0);
	ck_assert_int_eq(n, __builtin_popcount((unsigned)ret));
	return ret;
}

static int psel1(int fd)
{
	struct timespec ts = { 0, 0 };
	fd_set r, w;
	int n;

	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(fd, &r);
	FD_SET(fd, &w);
	n = pselect(fd + 1, &r, &w, NULL, &ts, NULL);
	ck_assert_int_ge(n, 0);
	return (FD_ISSET(fd, &r) ? 1 : 0) | (FD_ISSET(fd, &w) ? 2 : 0);
}

static int ppoll1(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	struct timespec ts = { 0, 0 };

	ck_assert_int_ge(ppoll(&p, 1, &ts, NULL), 0);
	return p.revents;
}

/* Each of the four calls, with a zero timeout: all say the same. */
static void expect_all(int epfd, bool readable)
{
	ck_assert_int_eq(t_poll1(epfd, POLLIN | POLLOUT, 0),
			 readable ? POLLIN : 0);
	ck_assert_int_eq(ppoll1(epfd, POLLIN | POLLOUT | POLLRDNORM),
			 readable ? POLLIN | POLLRDNORM : 0);
	ck_assert_int_eq(sel1(epfd, 0), readable ? 1 : 0);
	ck_assert_int_eq(psel1(epfd), readable ? 1 : 0);
}

START_TEST(pollable_idle_instance)
{
	int epfd = t_epoll();
	int p[2];

	expect_all(epfd, false);
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(epfd, EPOLL_CTL_ADD, p[1], EPOLLIN, 2);
	expect_all(epfd, false);
	t_expect_none(epfd, 0);
	expect_all(epfd, false);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(pollable_write_makes_readable)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_write(p[1], 1);
	/* The ADD was made before the write, and not waited on since. */
	expect_all(epfd, true);
	/* Nothing consumed: the wait reports it. */
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(p[0]), 1);
	expect_all(epfd, false);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(pollable_level_data_left_then_read)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_write(p[1], 2);
	t_expect1(epfd, 0, 1, EPOLLIN);
	/* Level: the data left makes the next wait report it again. */
	expect_all(epfd, true);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(p[0]), 2);
	/* Read: the next poll says no, though the wait reported it. */
	expect_all(epfd, false);
	t_expect_none(epfd, 0);
	/* New data after that shows again. */
	t_write(p[1], 1);
	expect_all(epfd, true);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(pollable_edge_not_consumed)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 1);
	t_write(p[1], 1);
	expect_all(epfd, true);
	t_expect1(epfd, 0, 1, EPOLLIN);
	/* The edge was reported; the data left makes no new one. */
	expect_all(epfd, false);
	t_write(p[1], 1);
	expect_all(epfd, true);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

/* Another instance that holds this one asked it (and took its CQE). */
START_TEST(pollable_after_outer_instance_harvested)
{
	int outer = t_epoll(), inner = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(inner, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, 2);
	t_write(p[1], 1);
	t_expect1(outer, 1000, 2, EPOLLIN);
	expect_all(inner, true);
	t_expect1(inner, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(p[0]), 1);
	expect_all(inner, false);
	t_close(p[0]);
	t_close(p[1]);
	t_close(inner);
	t_close(outer);
}
END_TEST

struct t_later {
	int fd;
	int delay_ms;
};

static void *write_later(void *arg)
{
	struct t_later *l = arg;

	usleep((useconds_t)l->delay_ms * 1000);
	t_write(l->fd, 1);
	return NULL;
}

/* A poll asleep on an idle instance is woken by a write to its pipe. */
static void sleeper(int how)
{
	int epfd = t_epoll();
	struct t_later l;
	pthread_t th;
	int p[2], got;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	/* Reported and read once: the level re-arm is pending too. */
	t_write(p[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(p[0]), 1);
	l = (struct t_later){ .fd = p[1], .delay_ms = 50 };
	ck_assert_int_eq(pthread_create(&th, NULL, write_later, &l), 0);
	if (how == 0) {
		got = t_poll1(epfd, POLLIN | POLLOUT, 10000) == POLLIN;
	} else {
		ck_assert_int_eq(sel1(epfd, 10000), 1);
		got = 1;
	}
	ck_assert_int_eq(got, 1);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}

START_TEST(pollable_poll_woken_by_write)
{
	sleeper(0);
}
END_TEST

START_TEST(pollable_select_woken_by_write)
{
	sleeper(1);
}
END_TEST

/* Sets that hold other fds with the instance are answered as usual. */
START_TEST(pollable_mixed_set)
{
	int epfd = t_epoll();
	struct pollfd pf[3];
	int p[2], q[2];

	t_pipe(p);
	t_pipe(q);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	pf[0] = (struct pollfd){ .fd = q[1], .events = POLLOUT };
	pf[1] = (struct pollfd){ .fd = epfd, .events = POLLIN | POLLOUT };
	pf[2] = (struct pollfd){ .fd = q[0], .events = POLLIN };
	ck_assert_int_eq(poll(pf, 3, 0), 1);
	ck_assert_int_eq(pf[0].revents, POLLOUT);
	ck_assert_int_eq(pf[1].revents, 0);
	ck_assert_int_eq(pf[2].revents, 0);
	/* The caller's events are left as they were. */
	ck_assert_int_eq(pf[1].events, POLLIN | POLLOUT);
	t_write(p[1], 1);
	ck_assert_int_eq(poll(pf, 3, 1000), 2);
	ck_assert_int_eq(pf[1].revents, POLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(q[0]);
	t_close(q[1]);
	t_close(epfd);
}
END_TEST

/*
 * An instance registered in a kernel epoll instance (made with the raw
 * syscall, so it is the kernel's in every build): the kernel's instance
 * reports it readable when it has an event.
 */
START_TEST(pollable_in_kernel_epoll)
{
	int kep = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
	int epfd = t_epoll();
	int p[2];

	ck_assert_int_ge(kep, 0);
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	/* EPOLLIN only: the kernel polls our ring, writable (difference 3). */
	t_ctl(kep, EPOLL_CTL_ADD, epfd, EPOLLIN, 2);
	/*
	 * ringpoll: the ADD's own completions may make one spurious report
	 * here (README, difference 3); the instance's wait clears them.
	 */
	t_expect_none(epfd, 0);
	t_expect_none(kep, 0);
	t_write(p[1], 1);
	t_expect1(kep, 1000, 2, EPOLLIN);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(p[0]), 1);
	t_expect_none(epfd, 0);
	t_write(p[1], 1);
	t_expect1(kep, 1000, 2, EPOLLIN);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
	t_close(kep);
}
END_TEST

/*
 * With an instance in the process, poll(2) and select(2) read the caller's
 * set before the kernel does: a bad pointer must still be the kernel's
 * EFAULT, never a crash.
 */
START_TEST(pollable_bad_pointer_is_efault)
{
	int epfd = t_epoll();
	void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	struct timeval tv = { 0 };
	/* Through a volatile: the compiler must not see the bad value. */
	struct pollfd *volatile bad = (struct pollfd *)1;

	ck_assert_ptr_ne(none, MAP_FAILED);
	T_BAD_POINTER_BEGIN();
	t_assert_errno(poll(bad, 1, 0), EFAULT);
	t_assert_errno(poll(none, 1, 0), EFAULT);
	t_assert_errno(select(epfd + 1, none, NULL, NULL, &tv), EFAULT);
	T_BAD_POINTER_END();
	ck_assert_int_eq(munmap(none, 4096), 0);
	t_close(epfd);
}
END_TEST

Suite *t_suite_pollable(void)
{
	Suite *s = suite_create("pollable");
	TCase *tc = t_tcase("pollable");

	tcase_add_test(tc, pollable_idle_instance);
	tcase_add_test(tc, pollable_write_makes_readable);
	tcase_add_test(tc, pollable_level_data_left_then_read);
	tcase_add_test(tc, pollable_edge_not_consumed);
	tcase_add_test(tc, pollable_after_outer_instance_harvested);
	tcase_add_test(tc, pollable_poll_woken_by_write);
	tcase_add_test(tc, pollable_select_woken_by_write);
	tcase_add_test(tc, pollable_mixed_set);
	tcase_add_test(tc, pollable_in_kernel_epoll);
	t_add_unless(tc, pollable_bad_pointer_is_efault, t_bad_pointer_skip());
	suite_add_tcase(s, tc);
	return s;
}
