// SPDX-License-Identifier: MIT
/*
 * Edge-triggered mode: an fd is reported once per wakeup of the file, not
 * once per wait. What counts as an edge is the file's wakeup, so new data
 * on an already readable pipe or socket is a new edge (pipes made this so
 * again in 5.14 for programs that relied on it).
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

START_TEST(et_one_report_per_edge)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLET);
	t_write(c.p[1], 2);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	/* Data is still there, but there was no new edge. */
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(et_new_data_new_edge_pipe)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLET);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	/* Not drained, yet a new write is a new edge. */
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(et_new_data_new_edge_socket)
{
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLET, 2);
	t_write(sv[1], 1);
	t_expect1(epfd, 0, 2, EPOLLIN);
	t_expect_none(epfd, 0);
	t_write(sv[1], 1);
	t_expect1(epfd, 0, 2, EPOLLIN);
	t_expect_none(epfd, 0);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(et_edges_between_waits_fold)
{
	/* Three edges before anyone waits are one event. */
	struct epoll_event ev[4];
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLET);
	t_write(c.p[1], 1);
	t_write(c.p[1], 1);
	t_write(c.p[1], 1);
	ck_assert_int_eq(t_wait(c.epfd, ev, 4, 0), 1);
	ck_assert_int_eq(ev[0].events, EPOLLIN);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(et_partial_read_no_new_edge)
{
	struct t_ctx c;
	char b;

	ctx_open(&c, EPOLLIN | EPOLLET);
	t_write(c.p[1], 2);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ck_assert_int_eq(read(c.p[0], &b, 1), 1);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(et_ready_before_add_reported_once)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_write(p[1], 1);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 3);
	t_expect1(epfd, 0, 3, EPOLLIN);
	t_expect_none(epfd, 0);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(et_drained_before_wait_not_reported)
{
	/* An edge whose data was read before the wait is dropped. */
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLET);
	t_write(c.p[1], 1);
	ck_assert_uint_eq(t_drain(c.p[0]), 1);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(et_drained_after_wakeup_not_reported)
{
	/*
	 * The poll is armed, then an edge comes and its data is read before
	 * the wait: the wakeup happened, yet the kernel re-polls the file
	 * when it hands the event out and drops it. Neither a wait that looks
	 * nor one that sleeps may report it.
	 */
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLET);
	t_expect_none(c.epfd, 0);
	t_write(c.p[1], 1);
	ck_assert_uint_eq(t_drain(c.p[0]), 1);
	t_expect_none(c.epfd, 0);
	t_write(c.p[1], 1);
	ck_assert_uint_eq(t_drain(c.p[0]), 1);
	t_expect_none(c.epfd, 20);
	/* And the next edge is reported. */
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(et_mod_rearms_ready_fd)
{
	/* MOD polls the fd again; a ready fd gives a fresh event. */
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLET);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 1, EPOLLIN);
	t_expect_none(c.epfd, 0);
	t_ctl(c.epfd, EPOLL_CTL_MOD, c.p[0], EPOLLIN | EPOLLET, 5);
	t_expect1(c.epfd, 0, 5, EPOLLIN);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(et_writable_socket_reported_once)
{
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLOUT | EPOLLET, 4);
	t_expect1(epfd, 0, 4, EPOLLOUT);
	t_expect_none(epfd, 0);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(et_writable_new_edge_when_peer_reads)
{
	/*
	 * Writing does not make an EPOLLOUT edge; the peer consuming the
	 * data frees send space, and that wakeup does.
	 */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLOUT | EPOLLET, 4);
	t_expect1(epfd, 0, 4, EPOLLOUT);
	t_write(sv[0], 1);
	t_expect_none(epfd, 0);
	ck_assert_uint_eq(t_drain(sv[1]), 1);
	t_expect1(epfd, 0, 4, EPOLLOUT);
	t_expect_none(epfd, 0);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(et_incoming_data_no_out_edge)
{
	/* An EPOLLIN wakeup is not an edge for an EPOLLOUT-only entry. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLOUT | EPOLLET, 4);
	t_expect1(epfd, 0, 4, EPOLLOUT);
	t_write(sv[1], 1);
	t_expect_none(epfd, 0);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(et_event_reports_full_current_mask)
{
	/*
	 * The edge was EPOLLIN, but the event carries everything that is
	 * true when it is handed out: the socket is writable too.
	 */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT | EPOLLET, 6);
	t_expect1(epfd, 0, 6, EPOLLOUT);
	t_expect_none(epfd, 0);
	t_write(sv[1], 1);
	t_expect1(epfd, 0, 6, EPOLLIN | EPOLLOUT);
	t_expect_none(epfd, 0);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(et_hangup_is_an_edge)
{
	struct t_ctx c;

	ctx_open(&c, EPOLLIN | EPOLLET);
	t_close(c.p[1]);
	t_expect1(c.epfd, 0, 1, EPOLLHUP);
	t_expect_none(c.epfd, 0);
	t_close(c.p[0]);
	t_close(c.epfd);
}
END_TEST

START_TEST(et_eventfd_each_write_new_edge)
{
	int epfd = t_epoll();
	uint64_t one = 1;
	int efd, i;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLET, 7);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
		t_expect1(epfd, 0, 7, EPOLLIN);
		t_expect_none(epfd, 0);
	}
	t_close(efd);
	t_close(epfd);
}
END_TEST

Suite *t_suite_et(void)
{
	Suite *s = suite_create("et");
	TCase *tc = t_tcase("et");

	tcase_add_test(tc, et_one_report_per_edge);
	tcase_add_test(tc, et_new_data_new_edge_pipe);
	tcase_add_test(tc, et_new_data_new_edge_socket);
	tcase_add_test(tc, et_edges_between_waits_fold);
	tcase_add_test(tc, et_partial_read_no_new_edge);
	tcase_add_test(tc, et_ready_before_add_reported_once);
	tcase_add_test(tc, et_drained_before_wait_not_reported);
	tcase_add_test(tc, et_drained_after_wakeup_not_reported);
	tcase_add_test(tc, et_mod_rearms_ready_fd);
	tcase_add_test(tc, et_writable_socket_reported_once);
	tcase_add_test(tc, et_writable_new_edge_when_peer_reads);
	tcase_add_test(tc, et_incoming_data_no_out_edge);
	tcase_add_test(tc, et_event_reports_full_current_mask);
	tcase_add_test(tc, et_hangup_is_an_edge);
	tcase_add_test(tc, et_eventfd_each_write_new_edge);
	suite_add_tcase(s, tc);
	return s;
}
