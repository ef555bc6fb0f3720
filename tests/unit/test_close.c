/* SPDX-License-Identifier: MIT */
/* Closing sources and loops: pending ops, fds, FIN, handles. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "t_util.h"

START_TEST(close_reports_pending_ops_before_fd_closes)
{
	struct rp_loop *loop = t_loop(_i);
	static char big[1 << 20];
	struct t_done r = { .fd = -1 }, w = { .fd = -1 };
	char buf[4];
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	while (send(sv[0], big, sizeof(big), MSG_DONTWAIT) > 0)
		;
	ck_assert_int_eq(rp_source_new(loop, sv[0], &s), 0);
	r.fd = w.fd = sv[0];
	rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &r);
	rp_send(loop, s, big, 1000, 0, t_done_cb, &w);
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	ck_assert_int_eq(rp_source_close(loop, s), 0);
	t_run_until(loop, &r.calls, 5000);
	t_run_until(loop, &w.calls, 5000);
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_int_eq(w.res, -ECANCELED);
	/* Reported while the fd was still open, closed right after. */
	ck_assert_int_eq(r.fd_open_at_call, 1);
	ck_assert_int_eq(w.fd_open_at_call, 1);
	ck_assert(!t_fd_open(sv[0]));
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(close_without_ops_closes_fd_at_once)
{
	struct rp_loop *loop = t_loop(_i);
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	rp_source_new(loop, sv[0], &s);
	ck_assert_int_eq(rp_source_close(loop, s), 0);
	ck_assert(!t_fd_open(sv[0]));
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(close_with_pending_poll_sends_fin)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	struct sockaddr_storage addr;
	socklen_t len;
	int lfd = t_listener(&addr, &len);
	int cfd = socket(AF_INET, SOCK_STREAM, 0), afd;
	struct pollfd pfd;
	char buf[4];
	rp_source s;

	ck_assert_int_eq(connect(cfd, (struct sockaddr *)&addr, len), 0);
	afd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(afd, 0);
	rp_source_new(loop, afd, &s);
	rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &d);
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	rp_source_close(loop, s);
	t_run_until(loop, &d.calls, 5000);
	/*
	 * The kernel's poll held a reference to the socket; unless it was
	 * removed, close() would not release it and the peer would hang.
	 */
	pfd = (struct pollfd){ .fd = cfd, .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
	ck_assert_int_eq(read(cfd, buf, sizeof(buf)), 0);
	close(cfd);
	close(lfd);
	rp_loop_free(loop);
}
END_TEST

START_TEST(close_after_wakeup_read_elsewhere_hangs_up)
{
	/*
	 * Readiness model: the recv's poll is woken (its completion queued
	 * as task work), the bytes are read behind the loop's back, and the
	 * source is closed. The poll's remove finds it completing; the
	 * completion then finds nothing to read and re-arms the poll in the
	 * kernel, silently. Unless removed again it holds the socket, and
	 * the peer never sees the hangup.
	 */
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	struct pollfd pfd;
	char buf[4];
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	ck_assert_int_eq(rp_source_new(loop, sv[0], &s), 0);
	rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &d);
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	ck_assert_int_eq(read(sv[0], buf, sizeof(buf)), 1);
	ck_assert_int_eq(rp_source_close(loop, s), 0);
	t_run_until(loop, &d.calls, 5000);
	for (int i = 0; i < 3; i++)
		(void)rp_loop_run_once(loop, 0);
	pfd = (struct pollfd){ .fd = sv[1], .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
	ck_assert_int_ne(pfd.revents & POLLHUP, 0);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(handle_is_dead_after_close)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	char buf[4];
	int sv[2];
	rp_source s, s2;

	t_socketpair(sv);
	rp_source_new(loop, sv[0], &s);
	rp_source_close(loop, s);
	ck_assert_int_eq(rp_source_close(loop, s), -EBADF);
	ck_assert_int_eq(rp_recv(loop, s, buf, 4, 0, t_done_cb, &d), -EBADF);
	ck_assert_int_eq(rp_source_fd(loop, s), -EBADF);
	/* A new source in the same slot does not revive the old handle. */
	ck_assert_int_eq(rp_source_new(loop, sv[1], &s2), 0);
	ck_assert_uint_ne(s.id, s2.id);
	ck_assert_int_eq(rp_recv(loop, s, buf, 4, 0, t_done_cb, &d), -EBADF);
	ck_assert_int_eq(rp_source_fd(loop, s2), sv[1]);
	rp_source_close(loop, s2);
	ck_assert_int_eq(d.calls, 0);
	rp_loop_free(loop);
}
END_TEST

static void t_reuse_in_callback(struct rp_loop *loop, rp_source src,
				ssize_t res, void *user)
{
	int *calls = user;
	char buf[1];

	(void)res;
	++*calls;
	/* The source is closing: no new op on it. */
	ck_assert_int_eq(rp_recv(loop, src, buf, 1, 0, t_reuse_in_callback,
				 user),
			 -EBADF);
}

START_TEST(op_from_cancel_callback_on_closed_source_ebadf)
{
	struct rp_loop *loop = t_loop(_i);
	char buf[4];
	int sv[2], calls = 0;
	rp_source s;

	t_socketpair(sv);
	rp_source_new(loop, sv[0], &s);
	rp_recv(loop, s, buf, 4, 0, t_reuse_in_callback, &calls);
	rp_source_close(loop, s);
	t_run_until(loop, &calls, 5000);
	ck_assert_int_eq(calls, 1);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(loop_free_reports_and_closes_everything)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d[4];
	char buf[4][4];
	int sv[4][2];
	rp_source s;

	for (int i = 0; i < 4; i++) {
		t_socketpair(sv[i]);
		d[i] = (struct t_done){ .fd = sv[i][0] };
		rp_source_new(loop, sv[i][0], &s);
		rp_recv(loop, s, buf[i], 4, 0, t_done_cb, &d[i]);
	}
	rp_loop_run_once(loop, 0);
	rp_loop_free(loop);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(d[i].calls, 1);
		ck_assert_int_eq(d[i].res, -ECANCELED);
		ck_assert(!t_fd_open(sv[i][0]));
		close(sv[i][1]);
	}
}
END_TEST

Suite *t_suite_close(void)
{
	Suite *s = suite_create("close");
	TCase *tc = t_tcase("close");

	tcase_add_loop_test(tc, close_reports_pending_ops_before_fd_closes, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, close_without_ops_closes_fd_at_once, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, close_with_pending_poll_sends_fin, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, close_after_wakeup_read_elsewhere_hangs_up, 0,
			    1);
	tcase_add_loop_test(tc, handle_is_dead_after_close, 0, T_MODELS);
	tcase_add_loop_test(tc, op_from_cancel_callback_on_closed_source_ebadf,
			    0, T_MODELS);
	tcase_add_loop_test(tc, loop_free_reports_and_closes_everything, 0,
			    T_MODELS);
	suite_add_tcase(s, tc);
	return s;
}
