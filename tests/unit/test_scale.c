/* SPDX-License-Identifier: MIT */
/* Many sources: 10,000 on one loop, a CQ overflow, a full SQ. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "t_util.h"

struct t_many {
	int *calls;
	ssize_t *res;
	char *buf;
	int done, n;
};

struct t_one_src {
	struct t_many *m;
	int idx;
};

static void t_one_cb(struct rp_loop *loop, rp_source src, ssize_t res,
		     void *user)
{
	struct t_one_src *o = user;

	(void)loop;
	(void)src;
	o->m->calls[o->idx]++;
	o->m->res[o->idx] = res;
	o->m->done++;
}

/*
 * n sources on n/2 socketpairs, a pending read on each, then a byte sent
 * to every one at once: each read completes exactly once, with its byte.
 */
static void t_many(const struct rp_loop_config *cfg, int n,
		   bool expect_overflow)
{
	struct rp_loop *loop = t_loop_cfg(cfg);
	struct t_many m = { .n = n };
	struct t_one_src *os = calloc((size_t)n, sizeof(*os));
	int (*p)[2] = calloc((size_t)n, sizeof(*p));
	rp_source *s = calloc((size_t)n, sizeof(*s));
	struct rp_stats st;
	uint64_t end;

	m.calls = calloc((size_t)n, sizeof(int));
	m.res = calloc((size_t)n, sizeof(ssize_t));
	m.buf = calloc((size_t)n, 1);
	for (int i = 0; i < n; i += 2) {
		t_socketpair(p[i]);
		p[i + 1][0] = p[i][1];
		p[i + 1][1] = p[i][0];
	}
	for (int i = 0; i < n; i++) {
		os[i] = (struct t_one_src){ &m, i };
		ck_assert_int_eq(rp_source_new(loop, p[i][0], &s[i]), 0);
		ck_assert_int_eq(rp_read(loop, s[i], &m.buf[i], 1, t_one_cb,
					 &os[i]),
				 0);
	}
	/* Every op is waiting in the kernel. */
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	for (int i = 0; i < n; i++) {
		char c = (char)('a' + i % 26);

		ck_assert_int_eq(write(p[i][1], &c, 1), 1);
	}
	end = rp_loop_now_ms(loop) + 60000;
	while (m.done < n) {
		ck_assert_msg(rp_loop_now_ms(loop) < end, "%d of %d done",
			      m.done, n);
		ck_assert_int_ge(rp_loop_run_once(loop, 1000), 0);
	}
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(m.calls[i], 1);
		ck_assert_int_eq(m.res[i], 1);
		ck_assert_int_eq(m.buf[i], 'a' + i % 26);
	}
	rp_loop_stats(loop, &st);
	if (expect_overflow)
		ck_assert_uint_gt(st.cq_overflow_flushes, 0);
	for (int i = 0; i < n; i++)
		rp_source_close(loop, s[i]);
	rp_loop_free(loop);
	free(os);
	free(p);
	free(s);
	free(m.calls);
	free(m.res);
	free(m.buf);
}

START_TEST(ten_thousand_sources_on_one_loop)
{
	struct rp_loop_config cfg = { .model = (enum rp_model)_i };

	ck_assert(t_nofile(10000 + 100));
	t_many(&cfg, 10000, false);
}
END_TEST

START_TEST(cq_overflow_with_thousands_ready_loses_nothing)
{
	/*
	 * 2,000 completions at once into a 32-entry CQ. COOP_TASKRUN posts
	 * them all as the writes return; DEFER_TASKRUN posts them in small
	 * batches as the loop asks, and may never overflow.
	 */
	struct rp_loop_config cfg = { .model = (enum rp_model)_i,
				      .setup = RP_SETUP_COOP_TASKRUN,
				      .sq_entries = 16,
				      .cq_entries = 32 };

	if (!t_setup_works(RP_SETUP_COOP_TASKRUN))
		cfg.setup = RP_SETUP_PLAIN;
	t_many(&cfg, 2000, true);
}
END_TEST

START_TEST(full_sq_of_four_carries_thousand_ops)
{
	struct rp_loop_config cfg = { .model = (enum rp_model)_i,
				      .sq_entries = 4,
				      .cq_entries = 8 };

	t_many(&cfg, 1000, false);
}
END_TEST

Suite *t_suite_scale(void)
{
	Suite *s = suite_create("scale");
	TCase *tc = t_tcase("scale");

	tcase_add_loop_test(tc, ten_thousand_sources_on_one_loop, 0, T_MODELS);
	tcase_add_loop_test(tc, cq_overflow_with_thousands_ready_loses_nothing,
			    0, T_MODELS);
	tcase_add_loop_test(tc, full_sq_of_four_carries_thousand_ops, 0,
			    T_MODELS);
	suite_add_tcase(s, tc);
	return s;
}
