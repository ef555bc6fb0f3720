// SPDX-License-Identifier: MIT
/*
 * Sockets: AF_UNIX stream and datagram pairs, TCP on loopback (listen,
 * accept, connect, refused connect, FIN, RST), and send-buffer space.
 *
 * The masks are the kernel's exact answers here. Some surprise: a TCP
 * socket that was never connected is EPOLLOUT|EPOLLHUP, a refused connect
 * also sets EPOLLIN and EPOLLRDHUP, and a datagram peer's close is no
 * hangup at all.
 */
#include "t_epoll.h"

START_TEST(sock_stream_pair_writable)
{
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 0);
	t_expect1(epfd, 0, 0, EPOLLOUT);
	t_write(sv[1], 1);
	t_expect1(epfd, 0, 0, EPOLLIN | EPOLLOUT);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(sock_stream_peer_close_in_out_hup_rdhup)
{
	/* EOF is readable, writes fail at once, and both hangups are set. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 0);
	t_close(sv[1]);
	t_expect1(epfd, 0, 0, EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDHUP);
	t_close(sv[0]);
	t_close(epfd);
}
END_TEST

START_TEST(sock_stream_own_shutdown_wr_still_writable)
{
	/* write() would fail with EPIPE rather than block: still EPOLLOUT. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 0);
	ck_assert_int_eq(shutdown(sv[0], SHUT_WR), 0);
	t_expect1(epfd, 0, 0, EPOLLOUT);
	ck_assert_int_eq(shutdown(sv[0], SHUT_RD), 0);
	t_expect1(epfd, 0, 0, EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDHUP);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(sock_stream_close_registered_end)
{
	/*
	 * Both ends in one instance: closing one removes its entry, and
	 * the other sees the hangup.
	 */
	struct epoll_event ev[4];
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[1], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 1);
	ck_assert_int_eq(t_wait(epfd, ev, 4, 0), 2);
	t_close(sv[0]);
	t_expect1(epfd, 0, 1, EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDHUP);
	t_close(sv[1]);
	t_expect_none(epfd, 0);
	t_close(epfd);
}
END_TEST

START_TEST(sock_dgram_pair_in_out)
{
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_DGRAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT, 0);
	t_expect1(epfd, 0, 0, EPOLLOUT);
	ck_assert_int_eq(send(sv[1], "d", 1, 0), 1);
	t_expect1(epfd, 0, 0, EPOLLIN | EPOLLOUT);
	ck_assert_uint_eq(t_drain(sv[0]), 1);
	t_expect1(epfd, 0, 0, EPOLLOUT);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(sock_dgram_peer_close_no_hup)
{
	/* Datagram sockets have no connection to hang up. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_DGRAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 0);
	t_close(sv[1]);
	t_expect1(epfd, 0, 0, EPOLLOUT);
	t_close(sv[0]);
	t_close(epfd);
}
END_TEST

START_TEST(sock_unix_full_not_writable_then_drained_writable)
{
	int epfd = t_epoll();
	size_t filled;
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLOUT, 0);
	t_expect1(epfd, 0, 0, EPOLLOUT);
	filled = t_fill(sv[0]);
	ck_assert_uint_gt(filled, 0);
	t_expect_none(epfd, 0);
	ck_assert_uint_eq(t_drain(sv[1]), filled);
	t_expect1(epfd, 0, 0, EPOLLOUT);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_listener_not_ready)
{
	struct sockaddr_in addr;
	int epfd = t_epoll();
	int l = t_tcp_listener(&addr);

	/* A listener is never writable, and readable only with a backlog. */
	t_ctl(epfd, EPOLL_CTL_ADD, l, EPOLLIN | EPOLLOUT, 0);
	t_expect_none(epfd, 0);
	t_close(l);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_listener_ready_after_connect)
{
	struct sockaddr_in addr;
	int epfd = t_epoll();
	int l = t_tcp_listener(&addr);
	int c, s, ret;

	t_ctl(epfd, EPOLL_CTL_ADD, l, EPOLLIN | EPOLLOUT, 7);
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	ret = connect(c, (struct sockaddr *)&addr, sizeof(addr));
	ck_assert(ret == 0 || errno == EINPROGRESS);
	t_expect1(epfd, T_LONG_MS, 7, EPOLLIN);
	s = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ck_assert_int_ge(s, 0);
	/* The backlog is empty again. */
	t_expect_none(epfd, 0);
	t_close(s);
	t_close(c);
	t_close(l);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_connect_becomes_writable)
{
	struct sockaddr_in addr;
	int epfd = t_epoll();
	int l = t_tcp_listener(&addr);
	int c, s, ret, err = -1;
	socklen_t len = sizeof(err);

	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	ret = connect(c, (struct sockaddr *)&addr, sizeof(addr));
	ck_assert(ret == 0 || errno == EINPROGRESS);
	t_ctl(epfd, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 8);
	t_expect1(epfd, T_LONG_MS, 8, EPOLLOUT);
	ck_assert_int_eq(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len), 0);
	ck_assert_int_eq(err, 0);
	s = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ck_assert_int_ge(s, 0);
	t_close(s);
	t_close(c);
	t_close(l);
	t_close(epfd);
}
END_TEST

/*
 * Bound but not listening: a SYN to it is answered with RST, and keeping
 * it bound means no one else can take the port during the test.
 */
static int closed_port(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int b;

	b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(b, 0);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(b, (struct sockaddr *)addr, sizeof(*addr)), 0);
	ck_assert_int_eq(getsockname(b, (struct sockaddr *)addr, &len), 0);
	return b;
}

START_TEST(sock_tcp_connect_refused_out_err_hup)
{
	struct sockaddr_in addr;
	int epfd = t_epoll();
	int b = closed_port(&addr);
	int c, err = -1;
	socklen_t len = sizeof(err);

	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	t_assert_errno(connect(c, (struct sockaddr *)&addr, sizeof(addr)),
		       EINPROGRESS);
	t_ctl(epfd, EPOLL_CTL_ADD, c, EPOLLOUT, 9);
	t_expect1(epfd, T_LONG_MS, 9, EPOLLOUT | EPOLLERR | EPOLLHUP);
	ck_assert_int_eq(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len), 0);
	ck_assert_int_eq(err, ECONNREFUSED);
	/* Reading SO_ERROR clears the error; the hangup stays. */
	t_expect1(epfd, 0, 9, EPOLLOUT | EPOLLHUP);
	t_close(c);
	t_close(b);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_connect_refused_full_mask)
{
	struct sockaddr_in addr;
	int epfd = t_epoll();
	int b = closed_port(&addr);
	int c;

	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	t_assert_errno(connect(c, (struct sockaddr *)&addr, sizeof(addr)),
		       EINPROGRESS);
	t_ctl(epfd, EPOLL_CTL_ADD, c,
	      EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP, 10);
	/* A refused socket is closed both ways: readable (EOF) as well. */
	t_expect1(epfd, T_LONG_MS, 10,
		  EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP);
	t_close(c);
	t_close(b);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_never_connected_out_hup)
{
	/*
	 * A fresh TCP socket is "closed": EPOLLHUP, and EPOLLOUT because
	 * a write fails at once instead of blocking.
	 */
	int epfd = t_epoll();
	int c;

	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLOUT, 11);
	t_expect1(epfd, 0, 11, EPOLLOUT | EPOLLHUP);
	t_close(c);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_accepted_writable_then_readable)
{
	int epfd = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 12);
	t_expect1(epfd, 0, 12, EPOLLOUT);
	t_write(c, 1);
	ck_assert_int_eq(t_poll1(s, POLLIN, T_LONG_MS), POLLIN);
	t_expect1(epfd, 0, 12, EPOLLIN | EPOLLOUT);
	ck_assert_uint_eq(t_drain(s), 1);
	t_expect1(epfd, 0, 12, EPOLLOUT);
	t_close(c);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_data_wakes_waiter)
{
	int epfd = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN, 13);
	t_expect_none(epfd, 0);
	t_write(c, 100);
	t_expect1(epfd, T_LONG_MS, 13, EPOLLIN);
	t_close(c);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_peer_fin_in_out_rdhup)
{
	/* Half-closed by the peer: we can still write, hence no EPOLLHUP. */
	int epfd = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 14);
	t_close(c);
	ck_assert_int_eq(t_poll1(s, POLLRDHUP, T_LONG_MS), POLLRDHUP);
	t_expect1(epfd, 0, 14, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_write_after_peer_close_err_hup)
{
	/* Writing into a closed connection draws a RST: now it is over. */
	int epfd = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 15);
	t_close(c);
	ck_assert_int_eq(t_poll1(s, POLLRDHUP, T_LONG_MS), POLLRDHUP);
	t_write(s, 1);
	ck_assert_int_eq(t_poll1(s, 0, T_LONG_MS), POLLERR | POLLHUP);
	t_expect1(epfd, 0, 15,
		  EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(sock_tcp_full_not_writable_then_drained_writable)
{
	int64_t deadline;
	int epfd = t_epoll();
	struct epoll_event ev;
	int c, s, n;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, c, EPOLLOUT, 16);
	t_expect1(epfd, 0, 16, EPOLLOUT);
	/*
	 * Late ACKs free send space after the first EAGAIN; keep filling
	 * until poll() has seen no space for a while.
	 */
	deadline = t_now_ms() + T_LONG_MS;
	do {
		t_fill(c);
		ck_assert_int_lt(t_now_ms(), deadline);
	} while (t_poll1(c, POLLOUT, T_QUIET_MS));
	t_expect_none(epfd, 0);
	/*
	 * Draining the reader lets the queued data flow and the ACKs
	 * return; send space comes back a little after each drain.
	 */
	deadline = t_now_ms() + T_LONG_MS;
	do {
		t_drain(s);
		memset(&ev, 0, sizeof(ev));
		n = t_wait(epfd, &ev, 1, 10);
		ck_assert_int_lt(t_now_ms(), deadline);
	} while (n == 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(ev.events, EPOLLOUT);
	ck_assert_uint_eq(ev.data.u64, 16);
	t_close(c);
	t_close(s);
	t_close(epfd);
}
END_TEST

START_TEST(sock_udp_unconnected_writable)
{
	int epfd = t_epoll();
	int u;

	u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(u, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, u, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 17);
	t_expect1(epfd, 0, 17, EPOLLOUT);
	t_close(u);
	t_close(epfd);
}
END_TEST

START_TEST(sock_udp_datagram_readable)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);
	int epfd = t_epoll();
	int u, v;

	u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	v = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(u, 0);
	ck_assert_int_ge(v, 0);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(u, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(getsockname(u, (struct sockaddr *)&addr, &len), 0);
	t_ctl(epfd, EPOLL_CTL_ADD, u, EPOLLIN, 18);
	t_expect_none(epfd, 0);
	ck_assert_int_eq(
	    sendto(v, "u", 1, 0, (struct sockaddr *)&addr, sizeof(addr)), 1);
	t_expect1(epfd, T_LONG_MS, 18, EPOLLIN);
	ck_assert_uint_eq(t_drain(u), 1);
	t_expect_none(epfd, 0);
	t_close(u);
	t_close(v);
	t_close(epfd);
}
END_TEST

Suite *t_suite_sockets(void)
{
	Suite *s = suite_create("sockets");
	TCase *tc = t_tcase("sockets");

	tcase_add_test(tc, sock_stream_pair_writable);
	tcase_add_test(tc, sock_stream_peer_close_in_out_hup_rdhup);
	tcase_add_test(tc, sock_stream_own_shutdown_wr_still_writable);
	tcase_add_test(tc, sock_stream_close_registered_end);
	tcase_add_test(tc, sock_dgram_pair_in_out);
	tcase_add_test(tc, sock_dgram_peer_close_no_hup);
	tcase_add_test(tc, sock_unix_full_not_writable_then_drained_writable);
	tcase_add_test(tc, sock_tcp_listener_not_ready);
	tcase_add_test(tc, sock_tcp_listener_ready_after_connect);
	tcase_add_test(tc, sock_tcp_connect_becomes_writable);
	tcase_add_test(tc, sock_tcp_connect_refused_out_err_hup);
	tcase_add_test(tc, sock_tcp_connect_refused_full_mask);
	tcase_add_test(tc, sock_tcp_never_connected_out_hup);
	tcase_add_test(tc, sock_tcp_accepted_writable_then_readable);
	tcase_add_test(tc, sock_tcp_data_wakes_waiter);
	tcase_add_test(tc, sock_tcp_peer_fin_in_out_rdhup);
	tcase_add_test(tc, sock_tcp_write_after_peer_close_err_hup);
	tcase_add_test(tc, sock_tcp_full_not_writable_then_drained_writable);
	tcase_add_test(tc, sock_udp_unconnected_writable);
	tcase_add_test(tc, sock_udp_datagram_readable);
	suite_add_tcase(s, tc);
	return s;
}
