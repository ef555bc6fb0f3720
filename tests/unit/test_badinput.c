/* SPDX-License-Identifier: MIT */
/* Bad input gets a clear -errno, never a crash or a leak. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "t_util.h"

static ssize_t t_nop_op(int fd, void *arg)
{
	(void)fd;
	(void)arg;
	return 0;
}

START_TEST(loop_new_rejects_bad_config)
{
	struct rp_loop_config cfg = { .model = (enum rp_model)7 };
	struct rp_loop *loop = (struct rp_loop *)1;

	ck_assert_int_eq(rp_loop_new(&loop, &cfg), -EINVAL);
	ck_assert_ptr_null(loop);
	cfg = (struct rp_loop_config){ .flags = 1u << 20 };
	ck_assert_int_eq(rp_loop_new(&loop, &cfg), -EINVAL);
	cfg = (struct rp_loop_config){ .setup = (enum rp_setup)9 };
	ck_assert_int_eq(rp_loop_new(&loop, &cfg), -EINVAL);
	ck_assert_int_eq(rp_loop_new(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(null_loop_is_einval_everywhere)
{
	rp_source s = { 1 };
	rp_timer t = { 1 };
	char b[1];

	ck_assert_int_eq(rp_loop_run(NULL), -EINVAL);
	ck_assert_int_eq(rp_loop_run_once(NULL, 0), -EINVAL);
	ck_assert_int_eq(rp_loop_wake(NULL), -EINVAL);
	ck_assert_int_eq(rp_timer_start(NULL, 1, 0, NULL, NULL, &t), -EINVAL);
	ck_assert_int_eq(rp_timer_cancel(NULL, t), -EINVAL);
	ck_assert_int_eq(rp_source_new(NULL, 0, &s), -EINVAL);
	ck_assert_int_eq(rp_source_close(NULL, s), -EBADF);
	ck_assert_int_eq(rp_recv(NULL, s, b, 1, 0, t_done_cb, NULL), -EINVAL);
	rp_loop_free(NULL);
	rp_loop_stop(NULL);
}
END_TEST

START_TEST(source_new_invalid_fd_ebadf)
{
	struct rp_loop *loop = t_loop(_i);
	rp_source s;
	int p[2];

	ck_assert_int_eq(rp_source_new(loop, -1, &s), -EBADF);
	ck_assert_int_eq(rp_source_new(loop, 1 << 29, &s), -EBADF);
	t_pipe(p);
	close(p[0]);
	close(p[1]);
	/* A closed fd. */
	ck_assert_int_eq(rp_source_new(loop, p[0], &s), -EBADF);
	rp_loop_free(loop);
}
END_TEST

START_TEST(null_callback_or_op_einval)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	char b[4];
	int p[2];
	rp_source s;

	t_pipe(p);
	rp_source_new(loop, p[0], &s);
	ck_assert_int_eq(rp_read(loop, s, b, 4, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rp_read_with(loop, s, NULL, NULL, t_done_cb, &d),
			 -EINVAL);
	ck_assert_int_eq(rp_read_with(loop, s, t_nop_op, NULL, NULL, NULL),
			 -EINVAL);
	ck_assert_int_eq(rp_read(loop, s, NULL, 4, t_done_cb, &d), -EFAULT);
	ck_assert_int_eq(rp_source_timeout(loop, s, (enum rp_dir)5, 1),
			 -EINVAL);
	ck_assert_int_eq(rp_cancel(loop, s, (enum rp_dir)5), -EINVAL);
	ck_assert_int_eq(rp_connect(loop, s, NULL, 0, t_done_cb, &d),
			 -EINVAL);
	ck_assert_int_eq(rp_accept(loop, s, NULL, NULL, 0x7fff0000,
				   t_done_cb, &d),
			 -EINVAL);
	ck_assert_int_eq(rp_timer_start(loop, 1, 0, NULL, NULL,
					&(rp_timer){ 0 }),
			 -EINVAL);
	/* Nothing was started by any of them. */
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(d.calls, 0);
	rp_source_close(loop, s);
	close(p[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(forged_and_zero_handles_ebadf)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	rp_source zero = { 0 }, forged = { (uint64_t)77 << 32 | 123456 };
	char b[4];

	ck_assert_int_eq(rp_recv(loop, zero, b, 4, 0, t_done_cb, &d), -EBADF);
	ck_assert_int_eq(rp_recv(loop, forged, b, 4, 0, t_done_cb, &d),
			 -EBADF);
	ck_assert_int_eq(rp_source_close(loop, forged), -EBADF);
	ck_assert_int_eq(rp_source_fd(loop, zero), -EBADF);
	rp_loop_free(loop);
}
END_TEST

START_TEST(fd_closed_behind_the_source_gives_ebadf)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	char b[4];
	int p[2];
	rp_source s;

	t_pipe(p);
	rp_source_new(loop, p[0], &s);
	/* The user closes the fd under the source: an error, no crash. */
	close(p[0]);
	ck_assert_int_eq(rp_read(loop, s, b, 4, t_done_cb, &d), 0);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, -EBADF);
	close(p[1]);
	/* Closing the source closes nothing else: its fd number is free. */
	ck_assert_int_eq(rp_source_close(loop, s), 0);
	rp_loop_free(loop);
}
END_TEST

Suite *t_suite_badinput(void)
{
	Suite *s = suite_create("badinput");
	TCase *tc = t_tcase("badinput");

	tcase_add_test(tc, loop_new_rejects_bad_config);
	tcase_add_test(tc, null_loop_is_einval_everywhere);
	tcase_add_loop_test(tc, source_new_invalid_fd_ebadf, 0, T_MODELS);
	tcase_add_loop_test(tc, null_callback_or_op_einval, 0, T_MODELS);
	tcase_add_loop_test(tc, forged_and_zero_handles_ebadf, 0, T_MODELS);
	tcase_add_loop_test(tc, fd_closed_behind_the_source_gives_ebadf, 0,
			    T_MODELS);
	suite_add_tcase(s, tc);
	return s;
}
