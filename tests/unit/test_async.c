/* SPDX-License-Identifier: MIT */
/*
 * The Async wrapper and the ready-made ops, each run in both models
 * (_i is the model).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "t_util.h"

static rp_source t_src(struct rp_loop *loop, int fd)
{
	rp_source s;

	ck_assert_int_eq(rp_source_new(loop, fd, &s), 0);
	return s;
}

START_TEST(recv_ready_data_completes_from_loop_only)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	struct rp_stats st;
	char buf[16] = { 0 };
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	s = t_src(loop, sv[0]);
	ck_assert_int_eq(write(sv[1], "hello", 5), 5);
	ck_assert_int_eq(rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &d),
			 0);
	/* Callbacks run from the loop, never inside the call. */
	ck_assert_int_eq(d.calls, 0);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_eq(d.res, 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_uint_eq(d.src.id, s.id);
	rp_loop_stats(loop, &st);
	if (_i == RP_MODEL_READINESS) {
		/* Tried at once: no poll, no ring. */
		ck_assert_uint_eq(st.ops_immediate, 1);
		ck_assert_uint_eq(st.polls_armed, 0);
	} else {
		ck_assert_uint_eq(st.ops_submitted, 1);
	}
	rp_source_close(loop, s);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(recv_waits_for_data_then_completes)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	struct rp_stats st;
	char buf[16] = { 0 };
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	s = t_src(loop, sv[0]);
	ck_assert_int_eq(rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &d),
			 0);
	ck_assert_int_eq(rp_loop_run_once(loop, 20), 0);
	ck_assert_int_eq(d.calls, 0);
	ck_assert_int_eq(write(sv[1], "abc", 3), 3);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, 3);
	ck_assert_mem_eq(buf, "abc", 3);
	rp_loop_stats(loop, &st);
	if (_i == RP_MODEL_READINESS) {
		/* EAGAIN, then a poll, then the retry. */
		ck_assert_uint_eq(st.polls_armed, 1);
		ck_assert_uint_eq(st.ops_retried, 1);
	}
	rp_source_close(loop, s);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

/*
 * Readiness model: a recv whose try said EAGAIN makes the next recv on that
 * source poll first (no try that would say EAGAIN again); a try that fills
 * the whole buffer makes the one after try first again.
 */
START_TEST(recv_after_eagain_polls_first)
{
	struct rp_loop *loop = t_loop(RP_MODEL_READINESS);
	struct t_done d = { .fd = -1 };
	struct rp_stats st;
	char buf[4] = { 0 };
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	s = t_src(loop, sv[0]);
	/* 1: nothing there: tried, EAGAIN, polled, retried. */
	ck_assert_int_eq(rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &d),
			 0);
	ck_assert_int_eq(write(sv[1], "ab", 2), 2);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, 2);
	rp_loop_stats(loop, &st);
	ck_assert_uint_eq(st.ops_immediate, 0);
	ck_assert_uint_eq(st.ops_poll_first, 0);
	/* 2: data already there, yet the op polls first: no try in the call. */
	ck_assert_int_eq(write(sv[1], "cdefgh", 6), 6);
	d.calls = 0;
	ck_assert_int_eq(rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &d),
			 0);
	rp_loop_stats(loop, &st);
	ck_assert_uint_eq(st.ops_poll_first, 1);
	ck_assert_uint_eq(st.polls_armed, 2);
	t_run_until(loop, &d.calls, 5000);
	/* It still gets the data, and it filled the buffer... */
	ck_assert_int_eq(d.res, 4);
	ck_assert_mem_eq(buf, "cdef", 4);
	/* 3: ...so this one is tried at once and completes without a poll. */
	d.calls = 0;
	ck_assert_int_eq(rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &d),
			 0);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, 2);
	ck_assert_mem_eq(buf, "gh", 2);
	rp_loop_stats(loop, &st);
	ck_assert_uint_eq(st.ops_immediate, 1);
	ck_assert_uint_eq(st.ops_poll_first, 1);
	ck_assert_uint_eq(st.polls_armed, 2);
	rp_source_close(loop, s);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(reader_and_writer_wait_at_once)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done r = { .fd = -1 }, w = { .fd = -1 };
	static char big[1 << 20], in[8] = { 0 };
	char sink[65536];
	int sv[2];
	ssize_t n;
	rp_source s;

	t_socketpair(sv);
	/* Fill sv[0]'s send buffer so a send has to wait. */
	while (send(sv[0], big, sizeof(big), MSG_DONTWAIT) > 0)
		;
	s = t_src(loop, sv[0]);
	ck_assert_int_eq(rp_recv(loop, s, in, sizeof(in), 0, t_done_cb, &r),
			 0);
	ck_assert_int_eq(rp_send(loop, s, big, 1000, 0, t_done_cb, &w), 0);
	ck_assert_int_eq(rp_loop_run_once(loop, 20), 0);
	ck_assert_int_eq(r.calls + w.calls, 0);
	/* The peer makes room and speaks: both complete. */
	do
		n = read(sv[1], sink, sizeof(sink));
	while (n > 0);
	ck_assert_int_eq(write(sv[1], "hi", 2), 2);
	t_run_until(loop, &r.calls, 5000);
	t_run_until(loop, &w.calls, 5000);
	ck_assert_int_eq(r.res, 2);
	ck_assert_int_eq(w.res, 1000);
	rp_source_close(loop, s);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(second_op_same_direction_is_ebusy)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	char buf[4] = { 0 };
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	s = t_src(loop, sv[0]);
	ck_assert_int_eq(rp_recv(loop, s, buf, 4, 0, t_done_cb, &d), 0);
	ck_assert_int_eq(rp_recv(loop, s, buf, 4, 0, t_done_cb, &d), -EBUSY);
	ck_assert_int_eq(rp_read(loop, s, buf, 4, t_done_cb, &d), -EBUSY);
	rp_source_close(loop, s);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, -ECANCELED);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(accept_and_connect_over_tcp)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done a = { .fd = -1 }, c = { .fd = -1 };
	struct sockaddr_storage addr, peer = { 0 };
	socklen_t len, plen = sizeof(peer);
	int lfd = t_listener(&addr, &len);
	int cfd = socket(AF_INET, SOCK_STREAM, 0);
	rp_source ls = t_src(loop, lfd), cs = t_src(loop, cfd);

	ck_assert_int_eq(rp_accept(loop, ls, (struct sockaddr *)&peer, &plen,
				   SOCK_NONBLOCK | SOCK_CLOEXEC, t_done_cb,
				   &a),
			 0);
	ck_assert_int_eq(rp_connect(loop, cs, (struct sockaddr *)&addr, len,
				    t_done_cb, &c),
			 0);
	t_run_until(loop, &a.calls, 5000);
	t_run_until(loop, &c.calls, 5000);
	ck_assert_int_eq(c.res, 0);
	ck_assert_int_ge(a.res, 0);
	ck_assert_int_eq(peer.ss_family, AF_INET);
	/* The accepted fd has the flags asked for. */
	ck_assert(fcntl((int)a.res, F_GETFL) & O_NONBLOCK);
	ck_assert(fcntl((int)a.res, F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(write((int)a.res, "z", 1), 1);
	close((int)a.res);
	rp_source_close(loop, ls);
	rp_source_close(loop, cs);
	rp_loop_free(loop);
}
END_TEST

START_TEST(connect_refused_reports_econnrefused)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done c = { .fd = -1 };
	struct sockaddr_storage addr;
	socklen_t len;
	int lfd = t_listener(&addr, &len);
	rp_source cs = t_src(loop, socket(AF_INET, SOCK_STREAM, 0));

	/* Nobody listens on the port once the listener is gone. */
	close(lfd);
	ck_assert_int_eq(rp_connect(loop, cs, (struct sockaddr *)&addr, len,
				    t_done_cb, &c),
			 0);
	t_run_until(loop, &c.calls, 5000);
	ck_assert_int_eq(c.res, -ECONNREFUSED);
	rp_source_close(loop, cs);
	rp_loop_free(loop);
}
END_TEST

START_TEST(read_write_on_a_pipe)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done r = { .fd = -1 }, w = { .fd = -1 };
	char buf[8] = { 0 };
	int p[2];
	rp_source rs, ws;

	t_pipe(p);
	rs = t_src(loop, p[0]);
	ws = t_src(loop, p[1]);
	ck_assert_int_eq(rp_read(loop, rs, buf, sizeof(buf), t_done_cb, &r),
			 0);
	ck_assert_int_eq(rp_write(loop, ws, "pipe", 4, t_done_cb, &w), 0);
	t_run_until(loop, &r.calls, 5000);
	t_run_until(loop, &w.calls, 5000);
	ck_assert_int_eq(w.res, 4);
	ck_assert_int_eq(r.res, 4);
	ck_assert_str_eq(buf, "pipe");
	/* EOF after the writer goes. */
	rp_source_close(loop, ws);
	r.calls = 0;
	rp_read(loop, rs, buf, sizeof(buf), t_done_cb, &r);
	t_run_until(loop, &r.calls, 5000);
	ck_assert_int_eq(r.res, 0);
	rp_source_close(loop, rs);
	rp_loop_free(loop);
}
END_TEST

/* A custom op: reads one byte, counting how often it was tried. */
struct t_one {
	int tries;
	char c;
};

static ssize_t t_read_one(int fd, void *arg)
{
	struct t_one *o = arg;
	ssize_t n;

	o->tries++;
	n = read(fd, &o->c, 1);
	return n < 0 ? -errno : n;
}

START_TEST(custom_op_retried_after_poll)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	struct t_one o = { 0, 0 };
	int p[2];
	rp_source s;

	t_pipe(p);
	s = t_src(loop, p[0]);
	/* In both models a custom op goes the readiness way. */
	ck_assert_int_eq(rp_read_with(loop, s, t_read_one, &o, t_done_cb, &d),
			 0);
	ck_assert_int_eq(o.tries, 1);
	ck_assert_int_eq(write(p[1], "q", 1), 1);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, 1);
	ck_assert_int_eq(o.c, 'q');
	ck_assert_int_eq(o.tries, 2);
	rp_source_close(loop, s);
	close(p[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(spurious_wakeup_rearms_and_retries)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	struct t_one o = { 0, 0 };
	struct rp_stats st;
	char c;
	int p[2];
	rp_source s;

	t_pipe(p);
	s = t_src(loop, p[0]);
	ck_assert_int_eq(rp_read_with(loop, s, t_read_one, &o, t_done_cb, &d),
			 0);
	/* The poll is in the kernel; a byte wakes it, then is stolen. */
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	ck_assert_int_eq(write(p[1], "a", 1), 1);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(rp_loop_run_once(loop, 50), 0);
	ck_assert_int_eq(d.calls, 0);
	rp_loop_stats(loop, &st);
	ck_assert_uint_eq(st.spurious_wakeups, 1);
	/* Re-armed: the next byte completes it. */
	ck_assert_int_eq(write(p[1], "b", 1), 1);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, 1);
	ck_assert_int_eq(o.c, 'b');
	rp_source_close(loop, s);
	close(p[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(cancel_pending_op_reports_ecanceled)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	char buf[4] = { 0 };
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	s = t_src(loop, sv[0]);
	ck_assert_int_eq(rp_cancel(loop, s, RP_READ), -ENOENT);
	rp_recv(loop, s, buf, 4, 0, t_done_cb, &d);
	rp_loop_run_once(loop, 0);
	ck_assert_int_eq(rp_cancel(loop, s, RP_READ), 0);
	ck_assert_int_eq(d.calls, 0);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, -ECANCELED);
	/* The source is usable afterwards. */
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	d.calls = 0;
	rp_recv(loop, s, buf, 4, 0, t_done_cb, &d);
	t_run_until(loop, &d.calls, 5000);
	ck_assert_int_eq(d.res, 1);
	rp_source_close(loop, s);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

START_TEST(timeout_fails_pending_op_with_etimedout)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done d = { .fd = -1 };
	uint64_t t0;
	char buf[4] = { 0 };
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	s = t_src(loop, sv[0]);
	ck_assert_int_eq(rp_source_timeout(loop, s, RP_READ, 50), 0);
	t0 = rp_loop_now_ms(loop);
	rp_recv(loop, s, buf, 4, 0, t_done_cb, &d);
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_eq(d.res, -ETIMEDOUT);
	ck_assert_uint_ge(rp_loop_now_ms(loop) - t0, 50);
	/* An op that completes in time is not touched by its deadline. */
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	d.calls = 0;
	rp_recv(loop, s, buf, 4, 0, t_done_cb, &d);
	ck_assert_int_eq(rp_loop_run(loop), 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_eq(d.res, 1);
	rp_source_close(loop, s);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

/* Echo 1 MiB through a socketpair with chained ops; every byte checked. */
struct t_stream {
	rp_source a, b;
	unsigned char *out, *in;
	size_t len, sent, got;
	int done;
};

static void t_stream_sent(struct rp_loop *loop, rp_source s, ssize_t n,
			  void *u)
{
	struct t_stream *t = u;

	ck_assert_int_gt(n, 0);
	t->sent += (size_t)n;
	if (t->sent < t->len)
		ck_assert_int_eq(rp_send(loop, s, t->out + t->sent,
					 t->len - t->sent, 0, t_stream_sent,
					 t),
				 0);
}

static void t_stream_got(struct rp_loop *loop, rp_source s, ssize_t n,
			 void *u)
{
	struct t_stream *t = u;

	ck_assert_int_gt(n, 0);
	t->got += (size_t)n;
	if (t->got < t->len)
		ck_assert_int_eq(rp_recv(loop, s, t->in + t->got,
					 t->len - t->got < 7777 ?
						 t->len - t->got :
						 7777,
					 0, t_stream_got, t),
				 0);
	else
		t->done = 1;
}

START_TEST(stream_of_one_mib_arrives_intact)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_stream t = { .len = 1 << 20 };
	int sv[2];

	t.out = malloc(t.len);
	t.in = calloc(1, t.len);
	for (size_t i = 0; i < t.len; i++)
		t.out[i] = (unsigned char)(i * 131 + (i >> 8));
	t_socketpair(sv);
	t.a = t_src(loop, sv[0]);
	t.b = t_src(loop, sv[1]);
	rp_send(loop, t.a, t.out, t.len, 0, t_stream_sent, &t);
	rp_recv(loop, t.b, t.in, 7777, 0, t_stream_got, &t);
	t_run_until(loop, &t.done, 20000);
	ck_assert_uint_eq(t.sent, t.len);
	ck_assert(memcmp(t.in, t.out, t.len) == 0);
	rp_source_close(loop, t.a);
	rp_source_close(loop, t.b);
	rp_loop_free(loop);
	free(t.out);
	free(t.in);
}
END_TEST

Suite *t_suite_async(void)
{
	Suite *s = suite_create("async");
	TCase *tc = t_tcase("async");

	tcase_add_loop_test(tc, recv_ready_data_completes_from_loop_only, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, recv_waits_for_data_then_completes, 0,
			    T_MODELS);
	tcase_add_test(tc, recv_after_eagain_polls_first);
	tcase_add_loop_test(tc, reader_and_writer_wait_at_once, 0, T_MODELS);
	tcase_add_loop_test(tc, second_op_same_direction_is_ebusy, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, accept_and_connect_over_tcp, 0, T_MODELS);
	tcase_add_loop_test(tc, connect_refused_reports_econnrefused, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, read_write_on_a_pipe, 0, T_MODELS);
	tcase_add_loop_test(tc, custom_op_retried_after_poll, 0, T_MODELS);
	tcase_add_loop_test(tc, spurious_wakeup_rearms_and_retries, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, cancel_pending_op_reports_ecanceled, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, timeout_fails_pending_op_with_etimedout, 0,
			    T_MODELS);
	tcase_add_loop_test(tc, stream_of_one_mib_arrives_intact, 0,
			    T_MODELS);
	suite_add_tcase(s, tc);
	return s;
}
