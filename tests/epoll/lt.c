// SPDX-License-Identifier: MIT
/*
 * Level-triggered mode, the default: an fd is reported by every wait for
 * as long as it is ready, and only while it is ready.
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

START_TEST(lt_reports_until_drained)
{
	struct t_ctx c;
	int i;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 3);
	for (i = 0; i < 3; i++)
		t_expect1(c.epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(c.p[0]), 3);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(lt_partial_read_still_reported)
{
	struct t_ctx c;
	char b;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 2);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ck_assert_int_eq(read(c.p[0], &b, 1), 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ck_assert_int_eq(read(c.p[0], &b, 1), 1);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(lt_writable_reported_every_wait)
{
	int epfd = t_epoll();
	int p[2], i;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[1], EPOLLOUT, 2);
	for (i = 0; i < 3; i++)
		t_expect1(epfd, 0, 2, EPOLLOUT);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(lt_ready_before_add_reported)
{
	/* Readiness that predates the registration counts. */
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_write(p[1], 1);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 3);
	t_expect1(epfd, 0, 3, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(lt_drained_before_wait_not_reported)
{
	/*
	 * The wakeup happened, but the data is gone by the time of the
	 * wait: the kernel re-polls and reports nothing. A stale event
	 * would hang a program that reads a blocking fd.
	 */
	struct t_ctx c;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 1);
	ck_assert_uint_eq(t_drain(c.p[0]), 1);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(lt_drained_after_report_not_reported_again)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(c.p[0]), 1);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(lt_mod_zero_events_silences)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 1);
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], 0, 1);
	t_expect_none(c.epfd, 0);
	/* Still registered: MOD back turns it on again. */
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN, 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(lt_reports_current_mask)
{
	/* Each wait reports what is true now, not what was true before. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT, 4);
	t_expect1(epfd, 0, 4, EPOLLOUT);
	t_write(sv[1], 1);
	t_expect1(epfd, 0, 4, EPOLLIN | EPOLLOUT);
	ck_assert_uint_eq(t_drain(sv[0]), 1);
	t_expect1(epfd, 0, 4, EPOLLOUT);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(lt_del_stops_reports)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_ctl(c.epfd, EPOLL_CTL_DEL, c.p[0], 0, 0);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

/*
 * MOD of an entry that is armed and not ready: a narrower interest, then
 * a wider one. Each report carries the interest and data of the last MOD.
 */
START_TEST(lt_mod_of_idle_entry_takes_new_interest_and_data)
{
	int epfd = t_epoll(), sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLRDHUP, 1);
	t_expect_none(epfd, 0);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLIN, 2);
	t_expect_none(epfd, 0);
	/* The peer shuts down writing: IN and RDHUP; only IN is asked for. */
	ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
	t_expect1(epfd, 0, 2, EPOLLIN);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLRDHUP, 3);
	t_expect1(epfd, 0, 3, EPOLLIN | EPOLLRDHUP);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(lt_more_data_still_one_entry)
{
	/* Several writes to one ready fd never make several entries. */
	struct epoll_event ev[4];
	struct t_ctx c;

	ctx_open(&c, EPOLLIN);
	t_write(c.p[1], 1);
	t_write(c.p[1], 1);
	t_write(c.p[1], 1);
	ck_assert_int_eq(t_wait(c.epfd, ev, 4, 0), 1);
	ck_assert_int_eq(ev[0].events, EPOLLIN);
	ctx_close(&c);
}
END_TEST

Suite *t_suite_lt(void)
{
	Suite *s = suite_create("lt");
	TCase *tc = t_tcase("lt");

	tcase_add_test(tc, lt_reports_until_drained);
	tcase_add_test(tc, lt_partial_read_still_reported);
	tcase_add_test(tc, lt_writable_reported_every_wait);
	tcase_add_test(tc, lt_ready_before_add_reported);
	tcase_add_test(tc, lt_drained_before_wait_not_reported);
	tcase_add_test(tc, lt_drained_after_report_not_reported_again);
	tcase_add_test(tc, lt_mod_zero_events_silences);
	tcase_add_test(tc, lt_reports_current_mask);
	tcase_add_test(tc, lt_del_stops_reports);
	tcase_add_test(tc, lt_more_data_still_one_entry);
	tcase_add_test(tc, lt_mod_of_idle_entry_takes_new_interest_and_data);
	suite_add_tcase(s, tc);
	return s;
}
