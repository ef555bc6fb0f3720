/* SPDX-License-Identifier: MIT */
/* lib/loop.c: run, run_once, stop, wake from another thread, stats. */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "t_util.h"

START_TEST(run_returns_when_nothing_pending)
{
	struct rp_loop *loop = t_loop(_i);

	ck_assert_int_eq(rp_loop_run(loop), 0);
	rp_loop_free(loop);
}
END_TEST

START_TEST(run_once_honours_timeout)
{
	struct rp_loop *loop = t_loop(_i);
	uint64_t t0 = rp_loop_now_ms(loop);

	ck_assert_int_eq(rp_loop_run_once(loop, 50), 0);
	ck_assert_uint_ge(rp_loop_now_ms(loop) - t0, 45);
	ck_assert_uint_lt(rp_loop_now_ms(loop) - t0, 5000);
	rp_loop_free(loop);
}
END_TEST

START_TEST(run_once_zero_does_not_block)
{
	struct rp_loop *loop = t_loop(_i);
	uint64_t t0 = rp_loop_now_ms(loop);

	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	ck_assert_uint_lt(rp_loop_now_ms(loop) - t0, 1000);
	rp_loop_free(loop);
}
END_TEST

static void t_tick_stop(struct rp_loop *loop, rp_timer t, void *user)
{
	int *n = user;

	(void)t;
	if (++*n == 3)
		rp_loop_stop(loop);
}

START_TEST(stop_ends_run_with_work_pending)
{
	struct rp_loop *loop = t_loop(_i);
	rp_timer t;
	int n = 0;

	ck_assert_int_eq(rp_timer_start(loop, 1, 1, t_tick_stop, &n, &t), 0);
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(n, 3);
	/* The repeating timer is still there; a new run goes on. */
	ck_assert_int_eq(rp_timer_cancel(loop, t), 0);
	rp_loop_free(loop);
}
END_TEST

static void *t_waker(void *arg)
{
	usleep(50 * 1000);
	ck_assert_int_eq(rp_loop_wake(arg), 0);
	return NULL;
}

START_TEST(wake_from_another_thread_ends_wait)
{
	struct rp_loop *loop = t_loop(_i);
	uint64_t t0 = rp_loop_now_ms(loop);
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, t_waker, loop), 0);
	/* Nothing pending: without the wake this waits 20 s. */
	ck_assert_int_eq(rp_loop_run_once(loop, 20000), 0);
	ck_assert_uint_lt(rp_loop_now_ms(loop) - t0, 10000);
	pthread_join(th, NULL);
	rp_loop_free(loop);
}
END_TEST

START_TEST(wakes_coalesce_and_do_not_linger)
{
	struct rp_loop *loop = t_loop(_i);
	uint64_t t0;

	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(rp_loop_wake(loop), 0);
	ck_assert_int_eq(rp_loop_run_once(loop, 5000), 0);
	/* All 100 were consumed by that one iteration. */
	t0 = rp_loop_now_ms(loop);
	ck_assert_int_eq(rp_loop_run_once(loop, 50), 0);
	ck_assert_uint_ge(rp_loop_now_ms(loop) - t0, 45);
	/* And the wake is armed again. */
	ck_assert_int_eq(rp_loop_wake(loop), 0);
	t0 = rp_loop_now_ms(loop);
	ck_assert_int_eq(rp_loop_run_once(loop, 5000), 0);
	ck_assert_uint_lt(rp_loop_now_ms(loop) - t0, 2500);
	rp_loop_free(loop);
}
END_TEST

START_TEST(stats_count_enters_and_ring_info)
{
	struct rp_loop *loop = t_loop(_i);
	struct rp_ring_info info;
	struct rp_stats st;

	ck_assert_int_eq(rp_loop_model(loop), _i);
	rp_loop_ring_info(loop, &info);
	ck_assert_int_ge(info.ring_fd, 0);
	ck_assert_uint_ge(info.cq_entries, info.sq_entries);
	rp_loop_run_once(loop, 0);
	rp_loop_stats(loop, &st);
	/* The wake poll was submitted in one enter. */
	ck_assert_uint_eq(st.sqes, 1);
	ck_assert_uint_ge(st.enters, 1);
	rp_loop_free(loop);
}
END_TEST

Suite *t_suite_loop(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = t_tcase("loop");

	tcase_add_loop_test(tc, run_returns_when_nothing_pending, 0, T_MODELS);
	tcase_add_loop_test(tc, run_once_honours_timeout, 0, T_MODELS);
	tcase_add_loop_test(tc, run_once_zero_does_not_block, 0, T_MODELS);
	tcase_add_loop_test(tc, stop_ends_run_with_work_pending, 0, T_MODELS);
	if (t_under_valgrind())
		t_skip("wake_from_another_thread_ends_wait",
		       T_VALGRIND_SIGNALS);
	else
		tcase_add_loop_test(tc, wake_from_another_thread_ends_wait, 0,
				    T_MODELS);
	tcase_add_loop_test(tc, wakes_coalesce_and_do_not_linger, 0, T_MODELS);
	tcase_add_loop_test(tc, stats_count_enters_and_ring_info, 0, T_MODELS);
	suite_add_tcase(s, tc);
	return s;
}
