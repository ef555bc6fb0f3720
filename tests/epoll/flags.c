// SPDX-License-Identifier: MIT
/*
 * Event bits: only the requested ones come back, except EPOLLERR and
 * EPOLLHUP which are always reported; EPOLLRDHUP, EPOLLPRI and the
 * *NORM aliases; EPOLLWAKEUP accepted and never echoed.
 */
#include "t_epoll.h"

START_TEST(flags_err_reported_unrequested)
{
	/* A pipe's write end whose reader is gone is in error. */
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[1], 0, 1);
	t_expect_none(epfd, 0);
	t_close(p[0]);
	t_expect1(epfd, 0, 1, EPOLLERR);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_hup_reported_unrequested)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], 0, 1);
	t_expect_none(epfd, 0);
	t_close(p[1]);
	t_expect1(epfd, 0, 1, EPOLLHUP);
	t_close(p[0]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_hup_socket_reported_unrequested)
{
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], 0, 1);
	t_write(sv[1], 1);
	/* Readable and writable, but neither was asked for. */
	t_expect_none(epfd, 0);
	t_close(sv[1]);
	t_expect1(epfd, 0, 1, EPOLLHUP);
	t_close(sv[0]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_only_requested_bits_reported)
{
	/* The socket is readable and writable; only EPOLLIN is asked for. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_write(sv[1], 1);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN, 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_rdhup_after_peer_shutdown_wr)
{
	/* The peer will send no more: readable (EOF) and EPOLLRDHUP. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLRDHUP, 1);
	t_expect_none(epfd, 0);
	ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
	t_expect1(epfd, 0, 1, EPOLLIN | EPOLLRDHUP);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_rdhup_tcp_after_peer_shutdown_wr)
{
	int epfd = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLRDHUP, 1);
	t_expect_none(epfd, 0);
	ck_assert_int_eq(shutdown(c, SHUT_WR), 0);
	/* The FIN crosses the loopback in softirq context: wait for it. */
	t_expect1(epfd, T_LONG_MS, 1, EPOLLIN | EPOLLRDHUP);
	t_close(c);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(flags_rdhup_not_reported_unless_requested)
{
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN, 1);
	ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_pri_tcp_oob)
{
	int epfd = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLPRI, 1);
	t_expect_none(epfd, 0);
	ck_assert_int_eq(send(c, "!", 1, MSG_OOB), 1);
	t_expect1(epfd, T_LONG_MS, 1, EPOLLPRI);
	t_close(c);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(flags_pri_cleared_by_oob_read)
{
	/*
	 * With only the urgent byte queued the socket is not readable in
	 * the normal sense: the urgent byte is out of band.
	 */
	int epfd = t_epoll();
	char b = 0;
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLPRI, 1);
	ck_assert_int_eq(send(c, "!", 1, MSG_OOB), 1);
	t_expect1(epfd, T_LONG_MS, 1, EPOLLPRI);
	ck_assert_int_eq(recv(s, &b, 1, MSG_OOB), 1);
	ck_assert_int_eq(b, '!');
	t_expect_none(epfd, 0);
	t_close(c);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(flags_pri_and_in_with_normal_data)
{
	int epfd = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLPRI, 1);
	ck_assert_int_eq(send(c, "ab", 2, 0), 2);
	t_expect1(epfd, T_LONG_MS, 1, EPOLLIN);
	ck_assert_int_eq(send(c, "!", 1, MSG_OOB), 1);
	/*
	 * The entry is ready already, so a wait would not wait for the
	 * urgent byte; poll() does.
	 */
	ck_assert_int_eq(t_poll1(s, POLLPRI, T_LONG_MS), POLLPRI);
	t_expect1(epfd, 0, 1, EPOLLIN | EPOLLPRI);
	t_close(c);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(flags_wakeup_accepted_not_reported)
{
	/*
	 * EPOLLWAKEUP is a request (hold a wakeup source), not a state;
	 * without CAP_BLOCK_SUSPEND it is dropped silently. Either way
	 * ADD succeeds and the event does not echo it.
	 */
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLWAKEUP, 1);
	t_write(p[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_ctl(epfd, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLWAKEUP, 2);
	t_expect1(epfd, 0, 2, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_rdnorm_wrnorm_reported_as_requested)
{
	/* The *NORM aliases come back only if asked for, bit for bit. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_write(sv[1], 1);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLRDNORM, 1);
	t_expect1(epfd, 0, 1, EPOLLRDNORM);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLIN | EPOLLRDNORM, 1);
	t_expect1(epfd, 0, 1, EPOLLIN | EPOLLRDNORM);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLWRNORM, 1);
	t_expect1(epfd, 0, 1, EPOLLWRNORM);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[0], EPOLLOUT | EPOLLWRNORM, 1);
	t_expect1(epfd, 0, 1, EPOLLOUT | EPOLLWRNORM);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_control_bits_not_echoed)
{
	/* EPOLLET and EPOLLONESHOT shape delivery; they are not events. */
	struct epoll_event ev;
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET | EPOLLONESHOT, 1);
	t_write(p[1], 1);
	ck_assert_int_eq(t_wait(epfd, &ev, 1, 0), 1);
	ck_assert_uint_eq(ev.events, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(flags_err_hup_with_requested_bits)
{
	/* Reset by the peer: error, hangup and everything readable. */
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	int epfd = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 1);
	t_expect1(epfd, 0, 1, EPOLLOUT);
	/* A zero linger makes close() send RST instead of FIN. */
	ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)),
			 0);
	t_close(c);
	/* Writable already: let poll() wait for the reset to land. */
	ck_assert_int_eq(t_poll1(s, 0, T_LONG_MS), POLLERR | POLLHUP);
	t_expect1(epfd, 0, 1,
		  EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP);
	t_close(s);
	t_close(epfd);
}
END_TEST

Suite *t_suite_flags(void)
{
	Suite *s = suite_create("flags");
	TCase *tc = t_tcase("flags");

	tcase_add_test(tc, flags_err_reported_unrequested);
	tcase_add_test(tc, flags_hup_reported_unrequested);
	tcase_add_test(tc, flags_hup_socket_reported_unrequested);
	tcase_add_test(tc, flags_only_requested_bits_reported);
	tcase_add_test(tc, flags_rdhup_after_peer_shutdown_wr);
	tcase_add_test(tc, flags_rdhup_tcp_after_peer_shutdown_wr);
	tcase_add_test(tc, flags_rdhup_not_reported_unless_requested);
	tcase_add_test(tc, flags_pri_tcp_oob);
	tcase_add_test(tc, flags_pri_cleared_by_oob_read);
	tcase_add_test(tc, flags_pri_and_in_with_normal_data);
	tcase_add_test(tc, flags_wakeup_accepted_not_reported);
	tcase_add_test(tc, flags_rdnorm_wrnorm_reported_as_requested);
	tcase_add_test(tc, flags_control_bits_not_echoed);
	tcase_add_test(tc, flags_err_hup_with_requested_bits);
	suite_add_tcase(s, tc);
	return s;
}
