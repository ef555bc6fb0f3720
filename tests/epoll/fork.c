// SPDX-License-Identifier: MIT
/*
 * fork(): the child inherits the epoll fd and can wait on it and see
 * events; nothing the child does to its copy of the fd disturbs the
 * parent. (Changes to the shared interest list from the child are kernel
 * behaviour an emulation with a per-process ring does not share, and are
 * not tested here.)
 *
 * Children report through their exit status; see T_CHILD_REQUIRE.
 */
#include "t_epoll.h"

struct t_ctx {
	int epfd;
	int p[2];
};

static void ctx_open(struct t_ctx *c, uint32_t events)
{
	c->epfd = t_epoll();
	t_pipe(c->p);
	t_ctl(c->epfd, EPOLL_CTL_ADD, c->p[0], events, 1);
}

static void ctx_close(struct t_ctx *c)
{
	t_close(c->p[0]);
	t_close(c->p[1]);
	t_close(c->epfd);
}

/* In the child: exactly one EPOLLIN event with data 1 within @timeout. */
static void child_expect_in(int epfd, int timeout)
{
	struct epoll_event ev[2];
	int n;

	memset(ev, 0, sizeof(ev));
	n = t_wait(epfd, ev, 2, timeout);
	T_CHILD_REQUIRE(n == 1, 10);
	T_CHILD_REQUIRE(ev[0].events == EPOLLIN, 11);
	T_CHILD_REQUIRE(ev[0].data.u64 == 1, 12);
}

START_TEST(fork_child_sees_ready_event)
{
	struct t_ctx c;
	pid_t pid;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_expect_in(c.epfd, 0);
		_exit(0);
	}
	t_reap_child(pid);
	/* Level-triggered, so the child's look took nothing away. */
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(fork_child_woken_by_event_after_fork)
{
	struct t_ctx c;
	int blocked;
	pid_t pid;

	ctx_open(&c, EPOLLIN);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_expect_in(c.epfd, T_LONG_MS);
		_exit(0);
	}
	/*
	 * Write only once the child sleeps in its wait; reap it before
	 * judging the handshake so a failure leaves no child behind.
	 */
	blocked = t_task_blocked(pid, pid);
	t_write(c.p[1], 1);
	t_reap_child(pid);
	ck_assert_int_eq(blocked, 0);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(fork_child_close_leaves_parent_intact)
{
	struct t_ctx c;
	pid_t pid;

	ctx_open(&c, EPOLLIN);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Closing copies of the fds is not a DEL in the parent. */
		T_CHILD_REQUIRE(close(c.p[0]) == 0, 1);
		T_CHILD_REQUIRE(close(c.epfd) == 0, 2);
		_exit(0);
	}
	t_reap_child(pid);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN, 2);
	t_expect1(c.epfd, 0, 2, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(fork_child_exit_parent_gets_new_edges)
{
	struct t_ctx c;
	pid_t pid;

	ctx_open(&c, EPOLLIN | EPOLLET);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Exit without closing anything: the kernel closes. */
		_exit(0);
	}
	t_reap_child(pid);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(fork_child_own_instance_on_inherited_fd)
{
	struct t_ctx c;
	pid_t pid;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct epoll_event ev;
		int mine = epoll_create1(EPOLL_CLOEXEC);

		T_CHILD_REQUIRE(mine >= 0, 1);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = 1;
		T_CHILD_REQUIRE(
		    epoll_ctl(mine, EPOLL_CTL_ADD, c.p[0], &ev) == 0, 2);
		child_expect_in(mine, 0);
		T_CHILD_REQUIRE(close(mine) == 0, 3);
		_exit(0);
	}
	t_reap_child(pid);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(fork_parent_and_child_both_see_event)
{
	/* One level-triggered event, seen from both sides of a fork. */
	struct t_ctx c;
	pid_t pid;
	int go[2];
	char b;

	ctx_open(&c, EPOLLIN);
	t_pipe(go);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct pollfd pf = {.fd = go[0], .events = POLLIN};

		/* Wait until the parent has written and looked. */
		T_CHILD_REQUIRE(poll(&pf, 1, T_LONG_MS) == 1, 1);
		T_CHILD_REQUIRE(read(go[0], &b, 1) == 1, 2);
		child_expect_in(c.epfd, 0);
		_exit(0);
	}
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_write(go[1], 1);
	t_reap_child(pid);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_close(go[0]);
	t_close(go[1]);
	ctx_close(&c);
}
END_TEST

/*
 * A child that has used up its fds waits on the inherited instance. The
 * kernel's instance needs no fd for that; ringpoll's child must build its
 * own ring (or fall back to the kernel's epoll) and never enter the
 * parent's, whose events it would take away.
 */
START_TEST(fork_child_out_of_fds_waits_on_its_own)
{
	struct t_ctx c;
	int blocked;
	pid_t pid;

	ctx_open(&c, EPOLLIN);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct t_fds f;

		T_CHILD_REQUIRE(t_fds_exhaust(&f) == 0, 1);
		child_expect_in(c.epfd, T_LONG_MS);
		t_fds_release(&f);
		_exit(0);
	}
	blocked = t_task_blocked(pid, pid);
	t_write(c.p[1], 1);
	t_reap_child(pid);
	ck_assert_int_eq(blocked, 0);
	/* The parent's own event, level-triggered: still there. */
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

/*
 * A child that may not create an io_uring (a seccomp filter installed
 * after the fork) uses the inherited instance: ringpoll's child puts the
 * kernel's epoll in its place, with the same registrations, so that in
 * every build the child's instance is then a kernel epoll instance.
 */
START_TEST(fork_child_without_io_uring_falls_back)
{
	struct t_ctx c;
	int blocked;
	pid_t pid;

	ctx_open(&c, EPOLLIN);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct epoll_event ev[3];
		uint64_t seen = 0;
		int q[2], n;

		T_CHILD_REQUIRE(t_block_io_uring() == 0, 1);
		child_expect_in(c.epfd, T_LONG_MS);
		T_CHILD_REQUIRE(t_is_kernel_epoll(c.epfd), 2);
		/* A registration of the child's own works as well. */
		T_CHILD_REQUIRE(pipe2(q, O_NONBLOCK | O_CLOEXEC) == 0, 3);
		memset(ev, 0, sizeof(ev));
		ev[0].events = EPOLLIN | EPOLLET;
		ev[0].data.u64 = 2;
		T_CHILD_REQUIRE(epoll_ctl(c.epfd, EPOLL_CTL_ADD, q[0], ev) == 0,
				4);
		T_CHILD_REQUIRE(write(q[1], "x", 1) == 1, 5);
		n = t_wait(c.epfd, ev, 3, T_LONG_MS);
		T_CHILD_REQUIRE(n == 2, 6);
		for (int i = 0; i < n; i++)
			seen |= 1u << ev[i].data.u64;
		T_CHILD_REQUIRE(seen == 6, 7);
		T_CHILD_REQUIRE(close(q[0]) == 0 && close(q[1]) == 0, 8);
		_exit(0);
	}
	blocked = t_task_blocked(pid, pid);
	t_write(c.p[1], 1);
	t_reap_child(pid);
	ck_assert_int_eq(blocked, 0);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

Suite *t_suite_fork(void)
{
	Suite *s = suite_create("fork");
	TCase *tc = t_tcase("fork");

	tcase_add_test(tc, fork_child_sees_ready_event);
	tcase_add_test(tc, fork_child_woken_by_event_after_fork);
	tcase_add_test(tc, fork_child_close_leaves_parent_intact);
	tcase_add_test(tc, fork_child_exit_parent_gets_new_edges);
	tcase_add_test(tc, fork_child_own_instance_on_inherited_fd);
	tcase_add_test(tc, fork_parent_and_child_both_see_event);
	tcase_add_test(tc, fork_child_out_of_fds_waits_on_its_own);
	tcase_add_test(tc, fork_child_without_io_uring_falls_back);
	suite_add_tcase(s, tc);
	return s;
}
