/* SPDX-License-Identifier: MIT */
/* Timers: order, repeat, cancel, handles after the fact. */
#include <errno.h>

#include "t_util.h"

struct t_order {
	int seq[16];
	int n;
};

struct t_tag {
	struct t_order *o;
	int id;
};

static void t_record(struct rp_loop *loop, rp_timer t, void *user)
{
	struct t_tag *tag = user;

	(void)loop;
	(void)t;
	tag->o->seq[tag->o->n++] = tag->id;
}

START_TEST(timers_fire_in_deadline_order)
{
	struct rp_loop *loop = t_loop(0);
	struct t_order o = { .n = 0 };
	/* id: deadline; equal deadlines fire in the order they were set. */
	static const uint64_t after[] = { 40, 10, 25, 10, 0 };
	struct t_tag tags[5];
	rp_timer t;

	for (int i = 0; i < 5; i++) {
		tags[i] = (struct t_tag){ &o, i };
		ck_assert_int_eq(rp_timer_start(loop, after[i], 0, t_record,
						&tags[i], &t),
				 0);
	}
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(o.n, 5);
	ck_assert_int_eq(o.seq[0], 4);
	ck_assert_int_eq(o.seq[1], 1);
	ck_assert_int_eq(o.seq[2], 3);
	ck_assert_int_eq(o.seq[3], 2);
	ck_assert_int_eq(o.seq[4], 0);
	rp_loop_free(loop);
}
END_TEST

START_TEST(timer_fires_no_earlier_than_asked)
{
	struct rp_loop *loop = t_loop(0);
	struct t_order o = { .n = 0 };
	struct t_tag tag = { &o, 1 };
	uint64_t t0 = rp_loop_now_ms(loop);
	rp_timer t;

	rp_timer_start(loop, 30, 0, t_record, &tag, &t);
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(o.n, 1);
	ck_assert_uint_ge(rp_loop_now_ms(loop) - t0, 30);
	rp_loop_free(loop);
}
END_TEST

struct t_rep {
	int n;
	int stop_at;
};

static void t_repeat(struct rp_loop *loop, rp_timer t, void *user)
{
	struct t_rep *r = user;

	if (++r->n == r->stop_at)
		ck_assert_int_eq(rp_timer_cancel(loop, t), 0);
}

START_TEST(timer_repeats_until_cancelled_in_callback)
{
	struct rp_loop *loop = t_loop(0);
	struct t_rep r = { 0, 5 };
	rp_timer t;

	rp_timer_start(loop, 1, 2, t_repeat, &r, &t);
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(r.n, 5);
	ck_assert_int_eq(rp_timer_cancel(loop, t), -ENOENT);
	rp_loop_free(loop);
}
END_TEST

START_TEST(timer_cancelled_never_fires)
{
	struct rp_loop *loop = t_loop(0);
	struct t_order o = { .n = 0 };
	struct t_tag tag = { &o, 1 };
	rp_timer t;

	rp_timer_start(loop, 10, 0, t_record, &tag, &t);
	ck_assert_int_eq(rp_timer_cancel(loop, t), 0);
	ck_assert_int_eq(rp_timer_cancel(loop, t), -ENOENT);
	ck_assert_int_eq(rp_loop_run_once(loop, 50), 0);
	ck_assert_int_eq(o.n, 0);
	rp_loop_free(loop);
}
END_TEST

START_TEST(timer_handle_after_fire_is_enoent)
{
	struct rp_loop *loop = t_loop(0);
	struct t_order o = { .n = 0 };
	struct t_tag tag = { &o, 1 };
	rp_timer t, t2;

	rp_timer_start(loop, 0, 0, t_record, &tag, &t);
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(rp_timer_cancel(loop, t), -ENOENT);
	/* The slot is reused under a new generation. */
	rp_timer_start(loop, 1000, 0, t_record, &tag, &t2);
	ck_assert_int_eq(rp_timer_cancel(loop, t), -ENOENT);
	ck_assert_int_eq(rp_timer_cancel(loop, t2), 0);
	rp_loop_free(loop);
}
END_TEST

static void t_chain(struct rp_loop *loop, rp_timer t, void *user)
{
	int *n = user;

	(void)t;
	if (++*n < 100) {
		rp_timer nt;

		ck_assert_int_eq(rp_timer_start(loop, 0, 0, t_chain, n, &nt),
				 0);
	}
}

START_TEST(timer_started_from_callback)
{
	struct rp_loop *loop = t_loop(0);
	rp_timer t;
	int n = 0;

	rp_timer_start(loop, 0, 0, t_chain, &n, &t);
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(n, 100);
	rp_loop_free(loop);
}
END_TEST

static void t_count(struct rp_loop *loop, rp_timer t, void *user)
{
	(void)loop;
	(void)t;
	++*(int *)user;
}

START_TEST(many_timers_fire_once_unless_cancelled)
{
	enum { N = 5000 };
	struct rp_loop *loop = t_loop(0);
	static int fired[N];
	static rp_timer t[N];

	for (int i = 0; i < N; i++) {
		fired[i] = 0;
		ck_assert_int_eq(rp_timer_start(loop, (uint64_t)(i * 7 % 50), 0,
						t_count, &fired[i], &t[i]),
				 0);
	}
	for (int i = 0; i < N; i += 3)
		ck_assert_int_eq(rp_timer_cancel(loop, t[i]), 0);
	ck_assert_int_eq(rp_loop_run(loop), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(fired[i], i % 3 ? 1 : 0);
	rp_loop_free(loop);
}
END_TEST

Suite *t_suite_timer(void)
{
	Suite *s = suite_create("timer");
	TCase *tc = t_tcase("timer");

	tcase_add_test(tc, timers_fire_in_deadline_order);
	tcase_add_test(tc, timer_fires_no_earlier_than_asked);
	tcase_add_test(tc, timer_repeats_until_cancelled_in_callback);
	tcase_add_test(tc, timer_cancelled_never_fires);
	tcase_add_test(tc, timer_handle_after_fire_is_enoent);
	tcase_add_test(tc, timer_started_from_callback);
	tcase_add_test(tc, many_timers_fire_once_unless_cancelled);
	suite_add_tcase(s, tc);
	return s;
}
