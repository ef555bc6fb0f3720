/* SPDX-License-Identifier: MIT */
/* lib/poll.c: a CQE of an earlier generation is never delivered. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/poll.h"
#include "t_util.h"

#define T_KIND RP__UD_POLL_READ
#define T_SLOT 7

struct t_pr {
	struct rp__ring r;
	struct rp__poll p;
	int fds[2];
};

static void t_pr_init(struct t_pr *t, bool pipe)
{
	struct rp__ring_opts o = { 0 };

	memset(t, 0, sizeof(*t));
	ck_assert_int_eq(rp__ring_init(&t->r, &o), 0);
	if (pipe)
		t_pipe(t->fds);
	else
		t_socketpair(t->fds);
}

static void t_pr_fini(struct t_pr *t)
{
	rp__ring_exit(&t->r);
	close(t->fds[0]);
	close(t->fds[1]);
}

/* Waits up to ms for one CQE of this test's slot. */
static bool t_next_cqe(struct t_pr *t, struct io_uring_cqe *cqe, int ms)
{
	for (;;) {
		if (rp__ring_harvest(&t->r, cqe, 1) == 1) {
			/*
			 * A remove that lost the race with the wakeup says
			 * EALREADY under the IGNORE kind; the poll's own CQE
			 * follows with its old generation.
			 */
			if (rp__ud_kind(cqe->user_data) == RP__UD_IGNORE)
				continue;
			ck_assert_uint_eq(rp__ud_slot(cqe->user_data), T_SLOT);
			return true;
		}
		if (rp__ring_enter(&t->r, true, (int64_t)ms * 1000000,
				   NULL) == -ETIME && !rp__ring_cq_ready(&t->r))
			return false;
	}
}

START_TEST(poll_oneshot_reports_and_disarms)
{
	struct t_pr t;
	struct io_uring_cqe cqe;

	t_pr_init(&t, true);
	ck_assert_int_eq(rp__poll_arm(&t.r, &t.p, t.fds[0], POLLIN, false,
				      T_KIND, T_SLOT),
			 0);
	ck_assert(t.p.armed);
	ck_assert_int_eq(write(t.fds[1], "x", 1), 1);
	ck_assert(t_next_cqe(&t, &cqe, 1000));
	ck_assert_int_eq(rp__poll_classify(&t.p, &cqe), RP__POLL_EVENT);
	ck_assert_int_eq(cqe.res, POLLIN);
	ck_assert(!t.p.armed);
	/* One-shot: nothing more, though the pipe is still readable. */
	ck_assert(!t_next_cqe(&t, &cqe, 50));
	t_pr_fini(&t);
}
END_TEST

START_TEST(poll_cancel_makes_its_cqe_stale)
{
	struct t_pr t;
	struct io_uring_cqe cqe;

	t_pr_init(&t, true);
	rp__poll_arm(&t.r, &t.p, t.fds[0], POLLIN, false, T_KIND, T_SLOT);
	ck_assert_int_eq(rp__ring_submit(&t.r), 0);
	ck_assert_int_eq(rp__poll_cancel(&t.r, &t.p, T_KIND, T_SLOT), 0);
	ck_assert(!t.p.armed);
	ck_assert_int_eq(write(t.fds[1], "x", 1), 1);
	/* The -ECANCELED CQE (if any) belongs to the old generation. */
	while (t_next_cqe(&t, &cqe, 50))
		ck_assert_int_eq(rp__poll_classify(&t.p, &cqe),
				 RP__POLL_STALE);
	t_pr_fini(&t);
}
END_TEST

START_TEST(poll_rearm_drops_earlier_generation)
{
	struct t_pr t;
	struct io_uring_cqe cqe;
	int events = 0, stale = 0;

	t_pr_init(&t, true);
	rp__poll_arm(&t.r, &t.p, t.fds[0], POLLIN, false, T_KIND, T_SLOT);
	ck_assert_int_eq(write(t.fds[1], "x", 1), 1);
	/* Let the first arm complete in the kernel, unharvested. */
	ck_assert_int_eq(rp__ring_submit(&t.r), 0);
	rp__poll_cancel(&t.r, &t.p, T_KIND, T_SLOT);
	rp__poll_arm(&t.r, &t.p, t.fds[0], POLLIN, false, T_KIND, T_SLOT);
	while (t_next_cqe(&t, &cqe, 100)) {
		if (rp__poll_classify(&t.p, &cqe) == RP__POLL_EVENT)
			events++;
		else
			stale++;
	}
	ck_assert_int_eq(events, 1);
	ck_assert_int_ge(stale, 1);
	t_pr_fini(&t);
}
END_TEST

START_TEST(poll_update_changes_mask_in_place)
{
	struct t_pr t;
	struct io_uring_cqe cqe;

	/* A socket with nothing to read but room to write. */
	t_pr_init(&t, false);
	rp__poll_arm(&t.r, &t.p, t.fds[0], POLLIN, false, T_KIND, T_SLOT);
	ck_assert(!t_next_cqe(&t, &cqe, 20));
	ck_assert_int_eq(rp__poll_update(&t.r, &t.p, t.fds[0], POLLOUT,
					 T_KIND, T_SLOT),
			 0);
	ck_assert(t_next_cqe(&t, &cqe, 1000));
	/* Without CQE_SKIP the update's ack (res 0) comes first. */
	if (rp__poll_classify(&t.p, &cqe) == RP__POLL_STALE) {
		ck_assert_int_eq(cqe.res, 0);
		ck_assert(t_next_cqe(&t, &cqe, 1000));
		ck_assert_int_eq(rp__poll_classify(&t.p, &cqe),
				 RP__POLL_EVENT);
	}
	ck_assert_int_eq(cqe.res, POLLOUT);
	t_pr_fini(&t);
}
END_TEST

START_TEST(poll_update_of_completed_request_asks_rearm)
{
	struct t_pr t;
	struct io_uring_cqe cqe;
	int rearm = 0, event = 0;

	t_pr_init(&t, true);
	rp__poll_arm(&t.r, &t.p, t.fds[0], POLLIN, false, T_KIND, T_SLOT);
	ck_assert_int_eq(write(t.fds[1], "x", 1), 1);
	/* The poll fires in the kernel; its CQE waits unharvested. */
	ck_assert_int_eq(rp__ring_enter(&t.r, true, -1, NULL), 0);
	rp__poll_update(&t.r, &t.p, t.fds[0], POLLIN | POLLRDHUP, T_KIND,
			T_SLOT);
	while (t_next_cqe(&t, &cqe, 100)) {
		switch (rp__poll_classify(&t.p, &cqe)) {
		case RP__POLL_REARM:
			rearm++;
			break;
		case RP__POLL_EVENT:
			event++;
			break;
		default:
			break;
		}
	}
	ck_assert_int_eq(rearm, 1);
	ck_assert_int_eq(event, 0);
	ck_assert(!t.p.armed);
	t_pr_fini(&t);
}
END_TEST

START_TEST(poll_multishot_stays_armed)
{
	struct t_pr t;
	struct io_uring_cqe cqe;
	char c;

	t_pr_init(&t, true);
	rp__poll_arm(&t.r, &t.p, t.fds[0], POLLIN, true, T_KIND, T_SLOT);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(write(t.fds[1], "x", 1), 1);
		ck_assert(t_next_cqe(&t, &cqe, 1000));
		ck_assert_int_eq(rp__poll_classify(&t.p, &cqe),
				 RP__POLL_EVENT);
		ck_assert(cqe.flags & IORING_CQE_F_MORE);
		ck_assert(t.p.armed);
		ck_assert_int_eq(read(t.fds[0], &c, 1), 1);
	}
	rp__poll_cancel(&t.r, &t.p, T_KIND, T_SLOT);
	while (t_next_cqe(&t, &cqe, 20))
		ck_assert_int_eq(rp__poll_classify(&t.p, &cqe),
				 RP__POLL_STALE);
	t_pr_fini(&t);
}
END_TEST

START_TEST(poll_bad_fd_reports_error)
{
	struct t_pr t;
	struct io_uring_cqe cqe;

	t_pr_init(&t, true);
	rp__poll_arm(&t.r, &t.p, 999999, POLLIN, false, T_KIND, T_SLOT);
	ck_assert(t_next_cqe(&t, &cqe, 1000));
	ck_assert_int_eq(rp__poll_classify(&t.p, &cqe), RP__POLL_EVENT);
	ck_assert_int_eq(cqe.res, -EBADF);
	t_pr_fini(&t);
}
END_TEST

Suite *t_suite_poll(void)
{
	Suite *s = suite_create("poll");
	TCase *tc = t_tcase("poll");

	tcase_add_test(tc, poll_oneshot_reports_and_disarms);
	tcase_add_test(tc, poll_cancel_makes_its_cqe_stale);
	tcase_add_test(tc, poll_rearm_drops_earlier_generation);
	tcase_add_test(tc, poll_update_changes_mask_in_place);
	tcase_add_test(tc, poll_update_of_completed_request_asks_rearm);
	tcase_add_test(tc, poll_multishot_stays_armed);
	tcase_add_test(tc, poll_bad_fd_reports_error);
	suite_add_tcase(s, tc);
	return s;
}
