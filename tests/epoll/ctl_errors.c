// SPDX-License-Identifier: MIT
/*
 * epoll_ctl error paths: every errno the man page lists, in the order the
 * kernel checks them where two could apply, and proof that a failed call
 * leaves the interest list alone.
 */
#include "t_epoll.h"

/* An fd that is pollable and never ready for EPOLLIN: a pipe's read end. */
struct t_ctx {
	int epfd;
	int p[2];
};

static void ctx_open(struct t_ctx *c)
{
	c->epfd = t_epoll();
	t_pipe(c->p);
}

static void ctx_close(struct t_ctx *c)
{
	t_close(c->p[0]);
	t_close(c->p[1]);
	t_close(c->epfd);
}

START_TEST(ctl_add_twice_eexist)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 1);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 2),
		       EEXIST);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_failed_add_keeps_registration)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 1);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLOUT, 2),
		       EEXIST);
	t_write(c.p[1], 1);
	/* Old data and old mask: the failed ADD changed nothing. */
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_mod_unregistered_enoent)
{
	struct t_ctx c;

	ctx_open(&c);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN, 0),
		       ENOENT);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_del_unregistered_enoent)
{
	struct t_ctx c;

	ctx_open(&c);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0), ENOENT);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_del_twice_enoent)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 0);
	t_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0), ENOENT);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_mod_after_del_enoent)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 0);
	t_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN, 0),
		       ENOENT);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_add_after_del_ok)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 1);
	t_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 2);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 2, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_negative_epfd_ebadf)
{
	int p[2];

	t_pipe(p);
	t_assert_errno(t_ctl_raw(-1, EPOLL_CTL_ADD, p[0], EPOLLIN, 0), EBADF);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

START_TEST(ctl_closed_epfd_ebadf)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_close(epfd);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 0), EBADF);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

START_TEST(ctl_negative_fd_ebadf)
{
	int epfd = t_epoll();

	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, -1, EPOLLIN, 0), EBADF);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_MOD, -1, EPOLLIN, 0), EBADF);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, -1, 0, 0), EBADF);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_closed_fd_ebadf)
{
	struct t_ctx c;
	int fd;

	ctx_open(&c);
	fd = dup(c.p[0]);
	ck_assert_int_ge(fd, 0);
	t_close(fd);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, fd, EPOLLIN, 0), EBADF);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_bad_epfd_checked_before_fd)
{
	/* Both are wrong; the kernel looks at epfd first. */
	int f = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(f, 0);
	t_assert_errno(t_ctl_raw(-1, EPOLL_CTL_ADD, f, EPOLLIN, 0), EBADF);
	t_close(f);
}
END_TEST

START_TEST(ctl_regular_file_eperm)
{
	/*
	 * A regular file is always ready, so epoll refuses it rather than
	 * report it forever.
	 */
	int epfd = t_epoll();
	int f = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(f, 0);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, f, EPOLLIN, 0), EPERM);
	t_close(f);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_directory_eperm)
{
	int epfd = t_epoll();
	int d = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	ck_assert_int_ge(d, 0);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, d, EPOLLIN, 0), EPERM);
	t_close(d);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_dev_null_eperm)
{
	/* A character device without a poll method is not pollable. */
	int epfd = t_epoll();
	int d = open("/dev/null", O_RDWR | O_CLOEXEC);

	ck_assert_int_ge(d, 0);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, d, EPOLLIN, 0), EPERM);
	t_close(d);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_mod_del_regular_file_eperm)
{
	/* EPERM comes before the lookup, so MOD and DEL say EPERM too. */
	int epfd = t_epoll();
	int f = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(f, 0);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_MOD, f, EPOLLIN, 0), EPERM);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, f, 0, 0), EPERM);
	t_close(f);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_opath_fd_ebadf)
{
	/* An O_PATH fd is not an open file for I/O; epoll does not see it. */
	int epfd = t_epoll();
	int o = open("/", O_PATH | O_CLOEXEC);

	ck_assert_int_ge(o, 0);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, o, EPOLLIN, 0), EBADF);
	t_close(o);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_bad_op_einval)
{
	struct t_ctx c;

	ctx_open(&c);
	t_assert_errno(t_ctl_raw(c.epfd, 0, c.p[0], EPOLLIN, 0), EINVAL);
	t_assert_errno(t_ctl_raw(c.epfd, 4, c.p[0], EPOLLIN, 0), EINVAL);
	t_assert_errno(t_ctl_raw(c.epfd, -1, c.p[0], EPOLLIN, 0), EINVAL);
	/* Nothing was added by the bad ops. */
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0), ENOENT);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_epfd_equals_fd_einval)
{
	int epfd = t_epoll();

	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, epfd, EPOLLIN, 0),
		       EINVAL);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_dup_of_epfd_einval)
{
	/* The same file under another number: still the instance itself. */
	int epfd = t_epoll(), dupfd = fcntl(epfd, F_DUPFD_CLOEXEC, 0);
	struct epoll_event ev[2];

	ck_assert_int_ge(dupfd, 0);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_ADD, dupfd, EPOLLIN, 0),
		       EINVAL);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_MOD, dupfd, EPOLLIN, 0),
		       EINVAL);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, dupfd, 0, 0), EINVAL);
	/* Nothing was added: it does not report itself. */
	ck_assert_int_eq(t_wait(epfd, ev, 2, 0), 0);
	ck_assert_int_eq(t_wait(epfd, ev, 2, 0), 0);
	t_close(dupfd);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_dup_of_other_anon_fd_ok)
{
	/*
	 * Another anonymous-inode file (an eventfd, another instance) is
	 * not the instance, however its inode compares.
	 */
	int epfd = t_epoll(), other = t_epoll();
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int dupfd = fcntl(efd, F_DUPFD_CLOEXEC, 0);

	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(dupfd, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, dupfd, EPOLLOUT, 1);
	t_ctl(epfd, EPOLL_CTL_ADD, other, EPOLLIN, 2);
	t_expect1(epfd, 0, 1, EPOLLOUT);
	t_close(dupfd);
	t_close(efd);
	t_close(other);
	t_close(epfd);
}
END_TEST

START_TEST(ctl_epfd_not_epoll_einval)
{
	int p[2], q[2];

	t_pipe(p);
	t_pipe(q);
	t_assert_errno(t_ctl_raw(p[0], EPOLL_CTL_ADD, q[0], EPOLLIN, 0),
		       EINVAL);
	t_close(p[0]);
	t_close(p[1]);
	t_close(q[0]);
	t_close(q[1]);
}
END_TEST

START_TEST(ctl_epfd_regular_file_einval)
{
	int f = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int p[2];

	ck_assert_int_ge(f, 0);
	t_pipe(p);
	t_assert_errno(t_ctl_raw(f, EPOLL_CTL_ADD, p[0], EPOLLIN, 0), EINVAL);
	t_close(f);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

START_TEST(ctl_exclusive_ok_with_allowed_bits)
{
	/* EPOLLEXCLUSIVE may be combined with IN, OUT, ERR, HUP, ET, WAKEUP. */
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0],
	      EPOLLEXCLUSIVE | EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP |
		  EPOLLET | EPOLLWAKEUP,
	      0);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_exclusive_with_oneshot_einval)
{
	struct t_ctx c;

	ctx_open(&c);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0],
				 EPOLLEXCLUSIVE | EPOLLONESHOT | EPOLLIN, 0),
		       EINVAL);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_exclusive_with_rdhup_einval)
{
	struct t_ctx c;

	ctx_open(&c);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0],
				 EPOLLEXCLUSIVE | EPOLLRDHUP | EPOLLIN, 0),
		       EINVAL);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_exclusive_with_pri_einval)
{
	struct t_ctx c;

	ctx_open(&c);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_ADD, c.p[0],
				 EPOLLEXCLUSIVE | EPOLLPRI | EPOLLIN, 0),
		       EINVAL);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_exclusive_on_epoll_fd_einval)
{
	int outer = t_epoll(), inner = t_epoll();

	t_assert_errno(
	    t_ctl_raw(outer, EPOLL_CTL_ADD, inner, EPOLLEXCLUSIVE | EPOLLIN, 0),
	    EINVAL);
	t_close(inner);
	t_close(outer);
}
END_TEST

START_TEST(ctl_mod_with_exclusive_einval)
{
	/* EPOLLEXCLUSIVE can only be set by ADD. */
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 1);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_MOD, c.p[0],
				 EPOLLEXCLUSIVE | EPOLLIN, 2),
		       EINVAL);
	/* The failed MOD left the registration as it was. */
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_mod_of_exclusive_registration_einval)
{
	/* ...and an exclusive registration can never be modified. */
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLEXCLUSIVE | EPOLLIN, 1);
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN, 2),
		       EINVAL);
	/* DEL is the way out. */
	t_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_cycle_of_two_eloop)
{
	int a = t_epoll(), b = t_epoll();

	t_ctl(a, EPOLL_CTL_ADD, b, EPOLLIN, 0);
	t_assert_errno(t_ctl_raw(b, EPOLL_CTL_ADD, a, EPOLLIN, 0), ELOOP);
	t_close(a);
	t_close(b);
}
END_TEST

START_TEST(ctl_cycle_of_three_eloop)
{
	int a = t_epoll(), b = t_epoll(), c = t_epoll();

	t_ctl(a, EPOLL_CTL_ADD, b, EPOLLIN, 0);
	t_ctl(b, EPOLL_CTL_ADD, c, EPOLLIN, 0);
	t_assert_errno(t_ctl_raw(c, EPOLL_CTL_ADD, a, EPOLLIN, 0), ELOOP);
	t_close(a);
	t_close(b);
	t_close(c);
}
END_TEST

/*
 * The kernel allows epoll instances nested EP_MAX_NESTS (4) deep below the
 * top one: a chain of five instances is fine, a sixth is ELOOP.
 */
#define T_NEST_OK 5

START_TEST(ctl_nesting_too_deep_eloop)
{
	int ep[T_NEST_OK + 1];
	int i;

	for (i = 0; i <= T_NEST_OK; i++)
		ep[i] = t_epoll();
	for (i = 1; i < T_NEST_OK; i++)
		t_ctl(ep[i], EPOLL_CTL_ADD, ep[i - 1], EPOLLIN, i);
	t_assert_errno(t_ctl_raw(ep[T_NEST_OK], EPOLL_CTL_ADD,
				 ep[T_NEST_OK - 1], EPOLLIN, 0),
		       ELOOP);
	for (i = 0; i <= T_NEST_OK; i++)
		t_close(ep[i]);
}
END_TEST

/* Hidden from the compiler, which would rightly warn at a literal NULL. */
static struct epoll_event *volatile t_null_event;

START_TEST(ctl_add_null_event_efault)
{
	struct t_ctx c;
	int ret, err;

	ctx_open(&c);
	T_BAD_POINTER_BEGIN();
	ret = epoll_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], t_null_event);
	err = errno;
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EFAULT);
	/* Nothing was added. */
	t_assert_errno(t_ctl_raw(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0), ENOENT);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_mod_null_event_efault)
{
	struct t_ctx c;
	int ret, err;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 1);
	T_BAD_POINTER_BEGIN();
	ret = epoll_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], t_null_event);
	err = errno;
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EFAULT);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_del_null_event_ok)
{
	/* Since 2.6.9 DEL ignores the event; NULL is allowed. */
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 1);
	ck_assert_int_eq(epoll_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0], NULL), 0);
	t_write(c.p[1], 1);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(ctl_del_ignores_event_contents)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 1);
	/* A mask that ADD would refuse: DEL does not look at it. */
	t_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0],
	      EPOLLEXCLUSIVE | EPOLLONESHOT | EPOLLIN, 7);
	ctx_close(&c);
}
END_TEST

Suite *t_suite_ctl_errors(void)
{
	Suite *s = suite_create("ctl_errors");
	TCase *tc = t_tcase("ctl_errors");
	const char *bad_ptr = t_bad_pointer_skip();

	tcase_add_test(tc, ctl_add_twice_eexist);
	tcase_add_test(tc, ctl_failed_add_keeps_registration);
	tcase_add_test(tc, ctl_mod_unregistered_enoent);
	tcase_add_test(tc, ctl_del_unregistered_enoent);
	tcase_add_test(tc, ctl_del_twice_enoent);
	tcase_add_test(tc, ctl_mod_after_del_enoent);
	tcase_add_test(tc, ctl_add_after_del_ok);
	tcase_add_test(tc, ctl_negative_epfd_ebadf);
	tcase_add_test(tc, ctl_closed_epfd_ebadf);
	tcase_add_test(tc, ctl_negative_fd_ebadf);
	tcase_add_test(tc, ctl_closed_fd_ebadf);
	tcase_add_test(tc, ctl_bad_epfd_checked_before_fd);
	tcase_add_test(tc, ctl_regular_file_eperm);
	tcase_add_test(tc, ctl_directory_eperm);
	tcase_add_test(tc, ctl_dev_null_eperm);
	tcase_add_test(tc, ctl_mod_del_regular_file_eperm);
	tcase_add_test(tc, ctl_opath_fd_ebadf);
	tcase_add_test(tc, ctl_bad_op_einval);
	tcase_add_test(tc, ctl_epfd_equals_fd_einval);
	tcase_add_test(tc, ctl_dup_of_epfd_einval);
	tcase_add_test(tc, ctl_dup_of_other_anon_fd_ok);
	tcase_add_test(tc, ctl_epfd_not_epoll_einval);
	tcase_add_test(tc, ctl_epfd_regular_file_einval);
	tcase_add_test(tc, ctl_exclusive_ok_with_allowed_bits);
	tcase_add_test(tc, ctl_exclusive_with_oneshot_einval);
	tcase_add_test(tc, ctl_exclusive_with_rdhup_einval);
	tcase_add_test(tc, ctl_exclusive_with_pri_einval);
	tcase_add_test(tc, ctl_exclusive_on_epoll_fd_einval);
	tcase_add_test(tc, ctl_mod_with_exclusive_einval);
	tcase_add_test(tc, ctl_mod_of_exclusive_registration_einval);
	tcase_add_test(tc, ctl_cycle_of_two_eloop);
	tcase_add_test(tc, ctl_cycle_of_three_eloop);
	tcase_add_test(tc, ctl_nesting_too_deep_eloop);
	t_add_unless(tc, ctl_add_null_event_efault, bad_ptr);
	t_add_unless(tc, ctl_mod_null_event_efault, bad_ptr);
	tcase_add_test(tc, ctl_del_null_event_ok);
	tcase_add_test(tc, ctl_del_ignores_event_contents);
	suite_add_tcase(s, tc);
	return s;
}
