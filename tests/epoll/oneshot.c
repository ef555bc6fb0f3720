// SPDX-License-Identifier: MIT
/*
 * EPOLLONESHOT: after one report the registration is disabled, not
 * removed, until EPOLL_CTL_MOD arms it again. Threaded servers rely on it
 * so that one fd is handled by one thread at a time.
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

START_TEST(oneshot_reported_once)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	/* Level-triggered otherwise, but still ready: silence. */
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_silent_after_new_data)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_write(c.p[1], 1);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_not_spent_until_reported)
{
	/* Arming does not fire it; the first readiness does. */
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_expect_none(c.epfd, 0);
	t_expect_none(c.epfd, 0);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_mod_rearms)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN | EPOLLONESHOT, 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_mod_rearm_takes_new_data)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN | EPOLLONESHOT, 42);
	t_expect1(c.epfd, 0, 42, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_rearm_not_ready_waits_for_event)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(c.p[0]), 1);
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN | EPOLLONESHOT, 1);
	t_expect_none(c.epfd, 0);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_mod_without_oneshot_becomes_lt)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN, 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_spent_still_registered)
{
	/* Disabled is not deleted: ADD says EEXIST, DEL succeeds once. */
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 1),
		       EEXIST);
	t_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0), ENOENT);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_spent_hides_hangup)
{
	/*
	 * A disabled registration reports nothing at all, not even the
	 * EPOLLHUP that is otherwise always reported.
	 */
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_close(c.p[1]);
	t_expect_none(c.epfd, 0);
	/* Re-armed, the hangup is there to see. */
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN | EPOLLONESHOT, 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN | EPOLLHUP);
	t_close(c.p[0]);
	t_close(c.epfd);
}
END_TEST

/*
 * A disabled entry whose data was read, then its instance nested in
 * another epoll (ringpoll's instance becomes the kernel's epoll then, and
 * an ADD there would watch EPOLLHUP again: KNOWN.md K).
 */
static void spent_then_nested(struct t_ctx *c, int *outer)
{
	ctx_open(c, EPOLLIN | EPOLLONESHOT);
	t_write(c->p[1], 1);
	t_expect1(c->epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(c->p[0]), 1);
	*outer = t_epoll();
	t_ctl(*outer, EPOLL_CTL_ADD, c->epfd, EPOLLIN, 7);
}

/* The pipe's write end is closed already. */
static void spent_nested_close(struct t_ctx *c, int outer)
{
	t_close(c->p[0]);
	t_close(c->epfd);
	t_close(outer);
}

START_TEST(oneshot_spent_hides_hangup_after_nesting)
{
	struct t_ctx c;
	int outer;

	spent_then_nested(&c, &outer);
	t_close(c.p[1]);
	t_expect_none(c.epfd, 0);
	t_expect_none(outer, 0);
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN | EPOLLONESHOT, 2);
	t_expect1(c.epfd, 0, 2, EPOLLHUP);
	spent_nested_close(&c, outer);
}
END_TEST

START_TEST(oneshot_spent_after_nesting_ctl)
{
	/* Still registered: ADD finds it, DEL removes it, once. */
	struct t_ctx c;
	int outer;

	spent_then_nested(&c, &outer);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 3),
		       EEXIST);
	/*
	 * The kernel's ADD checks EPOLLEXCLUSIVE's rules before it finds
	 * the entry (fuzzer seed 1795532067618592, KNOWN.md M).
	 */
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0],
				 EPOLLIN | EPOLLRDHUP | EPOLLEXCLUSIVE, 3),
		       EINVAL);
	t_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0),
		       ENOENT);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN, 3),
		       ENOENT);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 4);
	t_close(c.p[1]);
	t_expect1(c.epfd, 0, 4, EPOLLHUP);
	spent_nested_close(&c, outer);
}
END_TEST

START_TEST(oneshot_spent_after_nesting_add_bad_pointer)
{
	/* ... and reads the caller's event first: EFAULT, not EEXIST. */
	struct epoll_event *volatile bad = (void *)1;
	struct t_ctx c;
	int outer, ret, err;

	spent_then_nested(&c, &outer);
	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret = epoll_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], bad);
	err = errno;
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EFAULT);
	/* Still registered, and still silent. */
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 3),
		       EEXIST);
	t_close(c.p[1]);
	t_expect_none(c.epfd, 0);
	spent_nested_close(&c, outer);
}
END_TEST

START_TEST(oneshot_spent_after_nesting_then_closed)
{
	/*
	 * Its file closed, the registration is gone: the number made anew
	 * is not registered (MOD: ENOENT), and ADD takes it.
	 */
	struct t_ctx c;
	int outer, p[2];

	spent_then_nested(&c, &outer);
	t_close(c.p[0]);
	t_close(c.p[1]);
	t_pipe(p);
	if (p[0] != c.p[0]) {
		/* Another number: nothing of the old one to see here. */
		t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_MOD, c.p[0],
					 EPOLLIN, 5),
			       EBADF);
	} else {
		t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_MOD, p[0],
					 EPOLLIN, 5),
			       ENOENT);
	}
	t_ctl(c.epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 6);
	t_close(p[1]);
	t_expect1(c.epfd, 0, 6, EPOLLHUP);
	t_close(p[0]);
	t_close(c.epfd);
	t_close(outer);
}
END_TEST

START_TEST(oneshot_spent_after_nesting_instance_closed_keeps_no_fd)
{
	/* Closing the instances leaves the pipe's two fds, nothing more. */
	struct t_ctx c;
	int outer, before = t_fd_count();

	spent_then_nested(&c, &outer);
	t_close(c.epfd);
	t_close(outer);
	ck_assert_int_eq(t_fd_count(), before + 2);
	t_close(c.p[0]);
	t_close(c.p[1]);
}
END_TEST

START_TEST(oneshot_et_rearm_reports_ready_fd)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLET | EPOLLONESHOT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_write(c.p[1], 1);
	t_expect_none(c.epfd, 0);
	/* MOD polls again; the fd is ready, so it is reported. */
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN | EPOLLET | EPOLLONESHOT,
	      1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(oneshot_each_fd_independent)
{
	/* Spending one registration leaves the others armed. */
	struct epoll_event ev[2];
	int epfd = t_epoll();
	int a[2], b[2];

	t_pipe(a);
	t_pipe(b);
	t_ctl(epfd, EPOLL_CTL_ADD, a[0], EPOLLIN | EPOLLONESHOT, 1);
	t_ctl(epfd, EPOLL_CTL_ADD, b[0], EPOLLIN | EPOLLONESHOT, 2);
	t_write(a[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_write(b[1], 1);
	ck_assert_int_eq(t_wait(epfd, ev, 2, 0), 1);
	ck_assert_uint_eq(ev[0].data.u64, 2);
	t_close(a[0]);
	t_close(a[1]);
	t_close(b[0]);
	t_close(b[1]);
	t_close(epfd);
}
END_TEST

Suite *t_suite_oneshot(void)
{
	Suite *s = suite_create("oneshot");
	TCase *tc = t_tcase("oneshot");

	tcase_add_test(tc, oneshot_reported_once);
	tcase_add_test(tc, oneshot_silent_after_new_data);
	tcase_add_test(tc, oneshot_not_spent_until_reported);
	tcase_add_test(tc, oneshot_mod_rearms);
	tcase_add_test(tc, oneshot_mod_rearm_takes_new_data);
	tcase_add_test(tc, oneshot_rearm_not_ready_waits_for_event);
	tcase_add_test(tc, oneshot_mod_without_oneshot_becomes_lt);
	tcase_add_test(tc, oneshot_spent_still_registered);
	tcase_add_test(tc, oneshot_spent_hides_hangup);
	tcase_add_test(tc, oneshot_spent_hides_hangup_after_nesting);
	tcase_add_test(tc, oneshot_spent_after_nesting_ctl);
	t_add_unless(tc, oneshot_spent_after_nesting_add_bad_pointer,
		     t_bad_pointer_skip());
	tcase_add_test(tc, oneshot_spent_after_nesting_then_closed);
	tcase_add_test(tc,
		       oneshot_spent_after_nesting_instance_closed_keeps_no_fd);
	tcase_add_test(tc, oneshot_et_rearm_reports_ready_fd);
	tcase_add_test(tc, oneshot_each_fd_independent);
	suite_add_tcase(s, tc);
	return s;
}
