// SPDX-License-Identifier: MIT
/*
 * epoll_create and epoll_create1: flags, size, close-on-exec, and what a
 * fresh instance looks like.
 */
#include "t_epoll.h"

START_TEST(create_returns_fd_without_cloexec)
{
	int epfd = epoll_create(1);

	ck_assert_int_ge(epfd, 0);
	/* Only epoll_create1 can ask for close-on-exec. */
	ck_assert_int_eq(fcntl(epfd, F_GETFD), 0);
	t_close(epfd);
}
END_TEST

START_TEST(create_size_zero_einval)
{
	/* The size hint is ignored, but must still be positive. */
	t_assert_errno(epoll_create(0), EINVAL);
}
END_TEST

START_TEST(create_negative_size_einval)
{
	t_assert_errno(epoll_create(-1), EINVAL);
}
END_TEST

START_TEST(create_huge_size_accepted)
{
	/* Since 2.6.8 the size is a hint; it is not an allocation. */
	int epfd = epoll_create(INT_MAX);

	ck_assert_int_ge(epfd, 0);
	t_close(epfd);
}
END_TEST

START_TEST(create1_no_flags_no_cloexec)
{
	int epfd = epoll_create1(0);

	ck_assert_int_ge(epfd, 0);
	ck_assert_int_eq(fcntl(epfd, F_GETFD), 0);
	t_close(epfd);
}
END_TEST

START_TEST(create1_cloexec_sets_fd_cloexec)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	ck_assert_int_ge(epfd, 0);
	ck_assert_int_eq(fcntl(epfd, F_GETFD), FD_CLOEXEC);
	t_close(epfd);
}
END_TEST

START_TEST(create1_nonblock_einval)
{
	/* Unlike eventfd or timerfd, an epoll fd has no O_NONBLOCK flag. */
	t_assert_errno(epoll_create1(O_NONBLOCK), EINVAL);
}
END_TEST

START_TEST(create1_unknown_flag_einval)
{
	t_assert_errno(epoll_create1(1), EINVAL);
	t_assert_errno(epoll_create1(EPOLL_CLOEXEC | 1), EINVAL);
	t_assert_errno(epoll_create1(-1), EINVAL);
}
END_TEST

START_TEST(create1_new_instance_is_empty)
{
	int epfd = t_epoll();

	t_expect_none(epfd, 0);
	t_close(epfd);
}
END_TEST

START_TEST(create1_reuses_lowest_free_fd)
{
	/* A new fd is the lowest free number, epoll fds included. */
	int epfd = t_epoll();
	int again;

	t_close(epfd);
	again = t_epoll();
	ck_assert_int_eq(again, epfd);
	t_close(again);
}
END_TEST

START_TEST(create1_instances_are_independent)
{
	int a = t_epoll(), b = t_epoll();
	int p[2];

	ck_assert_int_ne(a, b);
	t_pipe(p);
	t_ctl(a, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_write(p[1], 1);
	/* Registered in a only: b knows nothing of it. */
	t_expect_none(b, 0);
	t_expect1(a, 0, 1, EPOLLIN);
	/* The same fd can be registered in b as well, with its own data. */
	t_ctl(b, EPOLL_CTL_ADD, p[0], EPOLLIN, 2);
	t_expect1(b, 0, 2, EPOLLIN);
	t_expect1(a, 0, 1, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(a);
	t_close(b);
}
END_TEST

START_TEST(create1_epfd_read_einval)
{
	/* An epoll fd is polled, never read. */
	int epfd = t_epoll();
	char buf[16];

	t_assert_errno((int)read(epfd, buf, sizeof(buf)), EINVAL);
	t_close(epfd);
}
END_TEST

START_TEST(create1_many_instances)
{
	/* Instances are independent objects; a batch opens and closes. */
	int fds[64];
	unsigned int i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		fds[i] = t_epoll();
	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		t_close(fds[i]);
}
END_TEST

/*
 * A user with no locked memory to spare (RLIMIT_MEMLOCK, which io_uring
 * rings are charged to) still gets a working instance: the kernel's epoll
 * has no such limit, and ringpoll falls back to it. Root is not charged,
 * so the child becomes nobody first.
 */
START_TEST(create1_without_locked_memory_works)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = {0, 0};
		struct epoll_event ev;
		int epfd, p[2];

		if (geteuid() == 0)
			T_CHILD_REQUIRE(setgroups(0, NULL) == 0 &&
						setgid(65534) == 0 &&
						setuid(65534) == 0,
					1);
		T_CHILD_REQUIRE(setrlimit(RLIMIT_MEMLOCK, &rl) == 0, 2);
		epfd = epoll_create1(EPOLL_CLOEXEC);
		T_CHILD_REQUIRE(epfd >= 0, 3);
		T_CHILD_REQUIRE(t_is_kernel_epoll(epfd), 4);
		T_CHILD_REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0, 5);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = 7;
		T_CHILD_REQUIRE(epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev) == 0,
				6);
		T_CHILD_REQUIRE(epoll_wait(epfd, &ev, 1, 0) == 0, 7);
		T_CHILD_REQUIRE(write(p[1], "x", 1) == 1, 8);
		memset(&ev, 0, sizeof(ev));
		T_CHILD_REQUIRE(epoll_wait(epfd, &ev, 1, T_LONG_MS) == 1, 9);
		T_CHILD_REQUIRE(ev.events == EPOLLIN && ev.data.u64 == 7, 10);
		T_CHILD_REQUIRE(close(p[0]) == 0 && close(p[1]) == 0, 11);
		T_CHILD_REQUIRE(close(epfd) == 0, 12);
		_exit(0);
	}
	t_reap_child(pid);
}
END_TEST

Suite *t_suite_create(void)
{
	Suite *s = suite_create("create");
	TCase *tc = t_tcase("create");

	tcase_add_test(tc, create_returns_fd_without_cloexec);
	tcase_add_test(tc, create_size_zero_einval);
	tcase_add_test(tc, create_negative_size_einval);
	tcase_add_test(tc, create_huge_size_accepted);
	tcase_add_test(tc, create1_no_flags_no_cloexec);
	tcase_add_test(tc, create1_cloexec_sets_fd_cloexec);
	tcase_add_test(tc, create1_nonblock_einval);
	tcase_add_test(tc, create1_unknown_flag_einval);
	tcase_add_test(tc, create1_new_instance_is_empty);
	tcase_add_test(tc, create1_reuses_lowest_free_fd);
	tcase_add_test(tc, create1_instances_are_independent);
	tcase_add_test(tc, create1_epfd_read_einval);
	tcase_add_test(tc, create1_many_instances);
	tcase_add_test(tc, create1_without_locked_memory_works);
	suite_add_tcase(s, tc);
	return s;
}
