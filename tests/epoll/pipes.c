// SPDX-License-Identifier: MIT
/*
 * Pipes and FIFOs: readable, writable, full, and the two ways a pipe ends.
 */
#include "t_epoll.h"

struct t_ctx {
	int epfd;
	int p[2];
};

static void ctx_open(struct t_ctx *c)
{
	c->epfd = t_epoll();
	t_pipe(c->p);
}

static void ctx_close(struct t_ctx *c)
{
	if (c->p[0] >= 0)
		t_close(c->p[0]);
	if (c->p[1] >= 0)
		t_close(c->p[1]);
	t_close(c->epfd);
}

START_TEST(pipe_empty_read_end_not_ready)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN | EPOLLOUT, 0);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(pipe_data_read_end_in)
{
	/* EPOLLOUT asked for too; a read end is never writable. */
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN | EPOLLOUT, 0);
	t_write(c.p[1], 1);
	t_expect1(c.epfd, 0, 0, EPOLLIN);
	ctx_close(&c);
}
END_TEST

START_TEST(pipe_write_end_out)
{
	/* EPOLLIN asked for too; a write end is never readable. */
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[1], EPOLLIN | EPOLLOUT, 1);
	t_expect1(c.epfd, 0, 1, EPOLLOUT);
	ctx_close(&c);
}
END_TEST

START_TEST(pipe_full_not_writable)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[1], EPOLLOUT, 1);
	ck_assert_uint_gt(t_fill(c.p[1]), 0);
	t_expect_none(c.epfd, 0);
	ctx_close(&c);
}
END_TEST

START_TEST(pipe_drained_writable_again)
{
	struct t_ctx c;
	size_t filled;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[1], EPOLLOUT, 1);
	filled = t_fill(c.p[1]);
	t_expect_none(c.epfd, 0);
	ck_assert_uint_eq(t_drain(c.p[0]), filled);
	t_expect1(c.epfd, 0, 1, EPOLLOUT);
	ctx_close(&c);
}
END_TEST

START_TEST(pipe_writer_closed_hup)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 0);
	t_close(c.p[1]);
	c.p[1] = -1;
	/* No data left: hangup alone, and no EPOLLIN. */
	t_expect1(c.epfd, 0, 0, EPOLLHUP);
	/* A hangup is a level: it stays. */
	t_expect1(c.epfd, 0, 0, EPOLLHUP);
	ctx_close(&c);
}
END_TEST

START_TEST(pipe_writer_closed_with_data_in_hup)
{
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN | EPOLLRDHUP, 0);
	t_write(c.p[1], 1);
	t_close(c.p[1]);
	c.p[1] = -1;
	/* EPOLLRDHUP is a socket bit: pipes never set it. */
	t_expect1(c.epfd, 0, 0, EPOLLIN | EPOLLHUP);
	ck_assert_uint_eq(t_drain(c.p[0]), 1);
	t_expect1(c.epfd, 0, 0, EPOLLHUP);
	ctx_close(&c);
}
END_TEST

START_TEST(pipe_reader_closed_out_err)
{
	/* Writable in the sense that write() will not block: it fails. */
	struct t_ctx c;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[1], EPOLLOUT, 1);
	t_close(c.p[0]);
	c.p[0] = -1;
	t_expect1(c.epfd, 0, 1, EPOLLOUT | EPOLLERR);
	ctx_close(&c);
}
END_TEST

START_TEST(pipe_both_ends_one_instance)
{
	struct epoll_event ev[4];
	struct t_ctx c;
	int n, i;

	ctx_open(&c);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[0], EPOLLIN, 0);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.p[1], EPOLLOUT, 1);
	t_expect1(c.epfd, 0, 1, EPOLLOUT);
	t_write(c.p[1], 1);
	n = t_wait(c.epfd, ev, 4, 0);
	ck_assert_int_eq(n, 2);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(ev[i].events,
				 ev[i].data.u64 ? EPOLLOUT : EPOLLIN);
	ck_assert_uint_ne(ev[0].data.u64, ev[1].data.u64);
	ctx_close(&c);
}
END_TEST

/* A FIFO in a private directory, removed again by fifo_close(). */
struct t_fifo {
	char dir[64];
	char path[96];
};

static void fifo_make(struct t_fifo *f)
{
	strcpy(f->dir, "/tmp/rp-epoll-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/fifo", f->dir);
	ck_assert_int_eq(mkfifo(f->path, 0600), 0);
}

static void fifo_remove(struct t_fifo *f)
{
	ck_assert_int_eq(unlink(f->path), 0);
	ck_assert_int_eq(rmdir(f->dir), 0);
}

START_TEST(pipe_fifo_without_writer_yet_not_hup)
{
	/*
	 * A FIFO reader that never had a writer is not hung up: the
	 * writer may still come. Only a writer that came and went is.
	 */
	struct t_fifo f;
	int epfd = t_epoll();
	int r, w;

	fifo_make(&f);
	r = open(f.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(r, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, r, EPOLLIN, 5);
	t_expect_none(epfd, 0);
	w = open(f.path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(w, 0);
	t_expect_none(epfd, 0);
	t_write(w, 1);
	t_expect1(epfd, 0, 5, EPOLLIN);
	t_close(w);
	t_expect1(epfd, 0, 5, EPOLLIN | EPOLLHUP);
	t_close(r);
	t_close(epfd);
	fifo_remove(&f);
}
END_TEST

Suite *t_suite_pipes(void)
{
	Suite *s = suite_create("pipes");
	TCase *tc = t_tcase("pipes");

	tcase_add_test(tc, pipe_empty_read_end_not_ready);
	tcase_add_test(tc, pipe_data_read_end_in);
	tcase_add_test(tc, pipe_write_end_out);
	tcase_add_test(tc, pipe_full_not_writable);
	tcase_add_test(tc, pipe_drained_writable_again);
	tcase_add_test(tc, pipe_writer_closed_hup);
	tcase_add_test(tc, pipe_writer_closed_with_data_in_hup);
	tcase_add_test(tc, pipe_reader_closed_out_err);
	tcase_add_test(tc, pipe_both_ends_one_instance);
	tcase_add_test(tc, pipe_fifo_without_writer_yet_not_hup);
	suite_add_tcase(s, tc);
	return s;
}
