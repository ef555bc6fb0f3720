// SPDX-License-Identifier: MIT
/*
 * An epoll fd closed behind the library's back: syscall(SYS_close), as
 * libuv does on every loop close, or closefrom(), whose close_range runs
 * inside libc. The number then belongs to whatever the kernel gives it to
 * next, a pipe, an eventfd or a new instance, and must behave as that
 * file: the kernel has forgotten the old instance, and so must an
 * emulation. And an instance costs one fd, so a thousand instances made
 * and raw-closed leave no fd behind.
 */
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "t_epoll.h"

/* An instance with a ready pipe in it, raw-closed; returns its number. */
static int raw_closed_instance(int p[2])
{
	int epfd = t_epoll();

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_write(p[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_int_eq(syscall(SYS_close, epfd), 0);
	return epfd;
}

/* The lowest free number at or above n: n, which was just closed. */
static int take_number(int fd, int n)
{
	int got;

	if (fd == n)
		return fd;
	got = fcntl(fd, F_DUPFD_CLOEXEC, n);

	ck_assert_int_eq(got, n);
	ck_assert_int_eq(close(fd), 0);
	return got;
}

START_TEST(rawclose_number_reused_by_pipe_is_the_pipe)
{
	struct epoll_event ev;
	int p[2], q[2], num, outer = t_epoll();

	num = raw_closed_instance(p);
	t_pipe(q);
	q[0] = take_number(q[0], num);
	/* A wait on it is the kernel's wait on a pipe. */
	errno = 0;
	ck_assert_int_eq(epoll_wait(num, &ev, 1, 0), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* Registered, it is a pipe: reported when written, no ELOOP. */
	t_ctl(outer, EPOLL_CTL_ADD, num, EPOLLIN, 7);
	t_expect_none(outer, 0);
	t_write(q[1], 1);
	t_expect1(outer, T_LONG_MS, 7, EPOLLIN);
	t_close(q[0]);
	t_close(q[1]);
	t_close(p[0]);
	t_close(p[1]);
	t_close(outer);
}
END_TEST

START_TEST(rawclose_number_reused_by_eventfd_is_the_eventfd)
{
	struct epoll_event ev;
	int p[2], num, efd, outer = t_epoll();
	uint64_t one = 1;

	num = raw_closed_instance(p);
	efd = take_number(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), num);
	t_ctl(outer, EPOLL_CTL_ADD, efd, EPOLLIN, 3);
	t_expect_none(outer, 0);
	ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
	t_expect1(outer, T_LONG_MS, 3, EPOLLIN);
	errno = 0;
	ck_assert_int_eq(epoll_wait(efd, &ev, 1, 0), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* Closing the eventfd closes it, and nothing else. */
	t_close(efd);
	ck_assert_int_eq(fcntl(p[0], F_GETFD) >= 0, 1);
	t_close(p[0]);
	t_close(p[1]);
	t_close(outer);
}
END_TEST

START_TEST(rawclose_number_reused_by_new_instance_is_new)
{
	int p[2], q[2], num, epfd;

	num = raw_closed_instance(p);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_eq(epfd, num);
	/* Empty: the old instance's ready pipe is not in it. */
	t_expect_none(epfd, 0);
	t_pipe(q);
	t_ctl(epfd, EPOLL_CTL_ADD, q[0], EPOLLIN, 2);
	t_write(q[1], 1);
	t_expect1(epfd, T_LONG_MS, 2, EPOLLIN);
	/* The old one's pipe may be registered anew. */
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_close(epfd);
	t_close(q[0]);
	t_close(q[1]);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/*
 * A registered fd closed with syscall(SYS_close), its number then made
 * anew through the C library (libuv's raw close, then an accept): the
 * kernel's last close removed the registration, so the new file's ADD
 * succeeds and only it reports. The preload sees the number made and
 * forgets the old registration. Code built with the header alone sees
 * neither call: there the old registration stays until its DEL
 * (deviation 4), which is what that build asserts.
 */
START_TEST(rawclose_registered_number_made_anew_is_added)
{
	int epfd = t_epoll(), p[2], q[2], n;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_write(p[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	n = p[0];
	ck_assert_int_eq(syscall(SYS_close, n), 0);
	t_pipe(q);
	q[0] = take_number(q[0], n);
#ifdef RP_T_COMPAT
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, n, EPOLLIN, 2), EEXIST);
	t_ctl(epfd, EPOLL_CTL_DEL, n, 0, 0);
#endif
	t_ctl(epfd, EPOLL_CTL_ADD, n, EPOLLIN, 2);
	t_expect_none(epfd, 0);
	t_write(q[1], 1);
	t_expect1(epfd, 0, 2, EPOLLIN);
	t_close(n);
	t_close(p[1]);
	t_close(q[1]);
	t_close(epfd);
}
END_TEST

START_TEST(rawclose_close_range_then_reuse)
{
	int p[2], q[2], epfd, num;

	t_pipe(p);
	epfd = t_epoll();
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	/* glibc's closefrom() is close_range(2), inside libc. */
	num = epfd;
	ck_assert_int_eq(close_range((unsigned)num, (unsigned)num, 0), 0);
	errno = 0;
	ck_assert_int_eq(fcntl(num, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	t_pipe(q);
	ck_assert_int_eq(q[0], num);
	epfd = t_epoll();
	t_ctl(epfd, EPOLL_CTL_ADD, q[0], EPOLLIN, 4);
	t_write(q[1], 1);
	t_expect1(epfd, T_LONG_MS, 4, EPOLLIN);
	t_close(epfd);
	t_close(q[0]);
	t_close(q[1]);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/* The open fds of this process below 4,096. */
static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 4096; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

START_TEST(rawclose_1000_cycles_leave_no_fd)
{
	int before = count_fds();

	for (int i = 0; i < 1000; i++) {
		int epfd = epoll_create1(EPOLL_CLOEXEC), p[2];

		ck_assert_int_ge(epfd, 0);
		if (i % 2) {
			t_pipe(p);
			t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
			t_close(p[0]);
			t_close(p[1]);
		}
		ck_assert_int_eq(syscall(SYS_close, epfd), 0);
	}
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(rawclose_instance_costs_one_fd)
{
	/*
	 * With one fd left below the limit, an instance is made: the
	 * kernel's needs one fd, and so does ours.
	 */
	struct rlimit old, rl;
	int held[64], n = 0, fd, epfd;

	getrlimit(RLIMIT_NOFILE, &old);
	rl = old;
	rl.rlim_cur = (rlim_t)count_fds() + 20;
	if (rl.rlim_cur > old.rlim_max)
		rl.rlim_cur = old.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (n < 64 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		held[n++] = fd;
	ck_assert_int_ge(n, 1);
	errno = 0;
	ck_assert_int_eq(epoll_create1(EPOLL_CLOEXEC), -1);
	ck_assert_int_eq(errno, EMFILE);
	close(held[--n]);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_ge(epfd, 0);
	t_expect_none(epfd, 0);
	t_close(epfd);
	while (n)
		close(held[--n]);
	setrlimit(RLIMIT_NOFILE, &old);
}
END_TEST

Suite *t_suite_rawclose(void)
{
	Suite *s = suite_create("rawclose");
	TCase *tc = t_tcase("rawclose");

	tcase_add_test(tc, rawclose_number_reused_by_pipe_is_the_pipe);
	tcase_add_test(tc, rawclose_number_reused_by_eventfd_is_the_eventfd);
	tcase_add_test(tc, rawclose_number_reused_by_new_instance_is_new);
	tcase_add_test(tc, rawclose_registered_number_made_anew_is_added);
	tcase_add_test(tc, rawclose_close_range_then_reuse);
	tcase_add_test(tc, rawclose_1000_cycles_leave_no_fd);
	tcase_add_test(tc, rawclose_instance_costs_one_fd);
	suite_add_tcase(s, tc);
	return s;
}
