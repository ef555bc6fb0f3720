// SPDX-License-Identifier: MIT
/*
 * close() and the interest list. Closing the last fd of a file removes
 * its registrations, so nothing is reported for it afterwards; an fd
 * number reused by a new file starts unregistered; and a registration
 * never keeps the file open. (A registration that survives close() of one
 * of several dup'd fds is kernel behaviour an emulation may not share: it
 * lives in deviations.c.)
 */
#include "t_epoll.h"

START_TEST(close_registered_fd_no_event)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_close(p[0]);
	/* The writer now has no reader: no EPOLLIN can come from there. */
	ck_assert_int_eq(t_poll1(p[1], POLLOUT, 0), POLLOUT | POLLERR);
	t_expect_none(epfd, 0);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(close_ready_registered_fd_no_event)
{
	/* Already on the ready list when closed: dropped all the same. */
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_write(p[1], 1);
	t_close(p[0]);
	t_expect_none(epfd, 0);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(close_reported_lt_fd_no_more_events)
{
	/* Reported once, re-queued as level-triggered, then closed. */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLOUT, 1);
	t_expect1(epfd, 0, 1, EPOLLOUT);
	t_close(sv[0]);
	t_expect_none(epfd, 0);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

START_TEST(close_registered_fd_then_ctl_ebadf)
{
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_close(p[0]);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, p[0], 0, 0), EBADF);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_MOD, p[0], EPOLLIN, 0), EBADF);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

/*
 * Give @fd the number @want: the lowest free number is taken by a new
 * file, and dup2() makes sure of it when something else got there first.
 */
static int renumber(int fd, int want)
{
	if (fd == want)
		return fd;
	ck_assert_int_eq(dup2(fd, want), want);
	t_close(fd);
	return want;
}

START_TEST(close_reused_number_not_registered)
{
	int epfd = t_epoll();
	int p[2], num, e;
	uint64_t one = 1;

	t_pipe(p);
	num = p[0];
	t_ctl(epfd, EPOLL_CTL_ADD, num, EPOLLIN, 1);
	t_close(num);
	e = renumber(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), num);
	ck_assert_int_eq(write(e, &one, sizeof(one)), sizeof(one));
	/* A ready file behind the old number, and no event for it. */
	t_expect_none(epfd, 0);
	t_close(e);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(close_reused_number_add_ok_mod_enoent)
{
	int epfd = t_epoll();
	int p[2], num, e;
	uint64_t one = 1;

	t_pipe(p);
	num = p[0];
	t_ctl(epfd, EPOLL_CTL_ADD, num, EPOLLIN, 1);
	t_close(num);
	e = renumber(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), num);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_MOD, e, EPOLLIN, 2), ENOENT);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, e, 0, 0), ENOENT);
	t_ctl(epfd, EPOLL_CTL_ADD, e, EPOLLIN, 2);
	ck_assert_int_eq(write(e, &one, sizeof(one)), sizeof(one));
	t_expect1(epfd, 0, 2, EPOLLIN);
	t_close(e);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(close_removes_from_every_instance)
{
	int a = t_epoll(), b = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(a, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(b, EPOLL_CTL_ADD, p[0], EPOLLIN, 2);
	t_write(p[1], 1);
	t_close(p[0]);
	t_expect_none(a, 0);
	t_expect_none(b, 0);
	t_close(p[1]);
	t_close(a);
	t_close(b);
}
END_TEST

START_TEST(close_registered_fd_releases_file)
{
	/*
	 * The registration holds no reference: once the read end is
	 * closed the pipe has no reader, and a write fails with EPIPE.
	 */
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(epfd, EPOLL_CTL_ADD, p[1], EPOLLOUT, 2);
	t_expect1(epfd, 0, 2, EPOLLOUT);
	t_close(p[0]);
	t_assert_errno((int)write(p[1], "x", 1), EPIPE);
	t_expect1(epfd, 0, 2, EPOLLOUT | EPOLLERR);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(close_registered_socket_peer_sees_fin)
{
	/*
	 * Closing a registered socket really closes it: the peer gets the
	 * FIN at once, not when the epoll instance goes away.
	 */
	int epfd = t_epoll(), peer_ep = t_epoll();
	int c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 1);
	t_ctl(peer_ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLRDHUP, 2);
	t_expect1(epfd, 0, 1, EPOLLOUT);
	t_close(c);
	t_expect1(peer_ep, T_LONG_MS, 2, EPOLLIN | EPOLLRDHUP);
	ck_assert_uint_eq(t_drain(s), 0);
	t_expect_none(epfd, 0);
	t_close(s);
	t_close(peer_ep);
	t_close(epfd);
}
END_TEST

/*
 * A unix socket's data wakeup says EPOLLPRI: a poll for PRI alone is
 * woken by every write, finds nothing and waits on. The close (or a DEL
 * and a wait) must still take it off, or it holds the socket, and the
 * peer never sees the hangup.
 */
/* The peer's socket fd sees the hangup at once: its peer is gone. */
static void expect_hangup(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT };

	ck_assert_int_eq(poll(&pfd, 1, 0), 1);
	ck_assert_int_ne(pfd.revents & POLLHUP, 0);
}

static void t_pri_close(bool del, bool mod)
{
	int epfd = t_epoll();
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    sv),
			 0);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[1], EPOLLPRI, 1);
	t_expect_none(epfd, 0);
	ck_assert_int_eq((int)write(sv[0], "x", 1), 1);
	/* Interest changed to IN and reported: level, re-armed by a wait. */
	if (mod) {
		t_ctl(epfd, EPOLL_CTL_MOD, sv[1], EPOLLIN, 1);
		t_expect1(epfd, 0, 1, EPOLLIN);
	}
	if (del) {
		t_ctl(epfd, EPOLL_CTL_DEL, sv[1], 0, 0);
		t_expect_none(epfd, 0);
	}
	t_close(sv[1]);
	expect_hangup(sv[0]);
	t_close(sv[0]);
	t_close(epfd);
}

START_TEST(close_pri_registered_socket_after_data_hangs_up)
{
	t_pri_close(false, false);
}
END_TEST

START_TEST(close_pri_registered_socket_after_mod_to_in_hangs_up)
{
	t_pri_close(false, true);
}
END_TEST

START_TEST(del_pri_registered_socket_after_data_then_close_hangs_up)
{
	t_pri_close(true, false);
}
END_TEST

START_TEST(close_after_two_mods_during_a_wakeup_hangs_up)
{
	/*
	 * The peer's shutdown wakes the registration's poll; two MODs
	 * follow before any wait. The first finds that poll completing, the
	 * second finds nothing to change; the poll then finds its file not
	 * ready and stays. The close must still take it off (the fuzzer's
	 * seed 1795521888567672).
	 */
	int epfd = t_epoll();
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[1], EPOLLRDHUP, 1);
	t_expect_none(epfd, 0);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[1], EPOLLPRI | EPOLLONESHOT, 2);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[1], EPOLLIN | EPOLLRDHUP, 3);
	ck_assert_int_eq(shutdown(sv[0], SHUT_RD), 0);
	t_expect_none(epfd, 0);
	t_close(sv[1]);
	expect_hangup(sv[0]);
	t_close(sv[0]);
	t_close(epfd);
}
END_TEST

START_TEST(close_all_registered_then_wait_times_out)
{
	/* Closing the only registered fd leaves a wait with nothing. */
	int epfd = t_epoll();
	struct epoll_event ev;
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_close(p[0]);
	t_close(p[1]);
	ck_assert_int_eq(t_wait(epfd, &ev, 1, T_QUIET_MS), 0);
	t_close(epfd);
}
END_TEST

Suite *t_suite_close(void)
{
	Suite *s = suite_create("close");
	TCase *tc = t_tcase("close");

	tcase_add_test(tc, close_registered_fd_no_event);
	tcase_add_test(tc, close_ready_registered_fd_no_event);
	tcase_add_test(tc, close_reported_lt_fd_no_more_events);
	tcase_add_test(tc, close_registered_fd_then_ctl_ebadf);
	tcase_add_test(tc, close_reused_number_not_registered);
	tcase_add_test(tc, close_reused_number_add_ok_mod_enoent);
	tcase_add_test(tc, close_removes_from_every_instance);
	tcase_add_test(tc, close_registered_fd_releases_file);
	tcase_add_test(tc, close_pri_registered_socket_after_data_hangs_up);
	tcase_add_test(tc, close_pri_registered_socket_after_mod_to_in_hangs_up);
	tcase_add_test(tc, close_after_two_mods_during_a_wakeup_hangs_up);
	tcase_add_test(tc, del_pri_registered_socket_after_data_then_close_hangs_up);
	tcase_add_test(tc, close_registered_socket_peer_sees_fin);
	tcase_add_test(tc, close_all_registered_then_wait_times_out);
	suite_add_tcase(s, tc);
	return s;
}
