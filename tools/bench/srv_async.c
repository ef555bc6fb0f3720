/* SPDX-License-Identifier: MIT */
/*
 * The echo server on ringpoll's Async wrapper: rp_accept, rp_recv, rp_send
 * on an rp_loop. One program, two modes: rp-readiness runs it in the
 * readiness model (try the syscall, poll-on-ring on EAGAIN), rp-completion
 * in the completion model (IORING_OP_ACCEPT/RECV/SEND). The code does not
 * change between them; only rp_loop_config.model does.
 *
 * The library makes the recv/send/accept syscalls in the readiness model,
 * so they are counted from rp_loop_stats (rpb_async_sample), not here.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringpoll.h>

#include "bench.h"

/* The same read size as the epoll server, so both do the same work. */
#define RPB_A_BUF (64 * 1024)

struct rpb_aconn {
	struct rpb_worker *w;
	rp_source src;
	size_t len, off;
	char buf[RPB_A_BUF];
};

struct rpb_async {
	struct rp_loop *loop;
	rp_source listener;
};

static void rpb_a_recv(struct rp_loop *loop, struct rpb_aconn *c);

static void rpb_a_close(struct rp_loop *loop, struct rpb_aconn *c, ssize_t res)
{
	/* -ECANCELED: the loop is being freed and closes the source. */
	if (res != -ECANCELED) {
		rp_source_close(loop, c->src);
		RPB_INC(&c->w->c, closes);
	}
	RPB_ADD(&c->w->c, conns, (uint64_t)-1);
	free(c);
}

static void rpb_a_sent(struct rp_loop *loop, rp_source s, ssize_t n, void *u)
{
	struct rpb_aconn *c = u;

	(void)s;
	if (n < 0) {
		rpb_a_close(loop, c, n);
		return;
	}
	RPB_ADD(&c->w->c, bytes, (uint64_t)n);
	c->off += (size_t)n;
	if (c->off < c->len) {
		if (rp_send(loop, c->src, c->buf + c->off, c->len - c->off, 0,
			    rpb_a_sent, c) < 0)
			rpb_a_close(loop, c, 0);
		return;
	}
	rpb_a_recv(loop, c);
}

static void rpb_a_got(struct rp_loop *loop, rp_source s, ssize_t n, void *u)
{
	struct rpb_aconn *c = u;

	(void)s;
	if (n <= 0) {
		rpb_a_close(loop, c, n);
		return;
	}
	c->len = (size_t)n;
	c->off = 0;
	if (rp_send(loop, c->src, c->buf, c->len, 0, rpb_a_sent, c) < 0)
		rpb_a_close(loop, c, 0);
}

static void rpb_a_recv(struct rp_loop *loop, struct rpb_aconn *c)
{
	if (rp_recv(loop, c->src, c->buf, sizeof(c->buf), 0, rpb_a_got, c) < 0)
		rpb_a_close(loop, c, 0);
}

static void rpb_a_accepted(struct rp_loop *loop, rp_source s, ssize_t fd,
			   void *u)
{
	struct rpb_worker *w = u;
	struct rpb_aconn *c;
	int one = 1;

	/* Another worker may have taken it; ask for the next one first. */
	if (fd != -ECANCELED)
		rp_accept(loop, s, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC,
			  rpb_a_accepted, w);
	if (fd < 0)
		return;
	if (w->srv->nodelay) {
		setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		RPB_INC(&w->c, other);
	}
	c = malloc(sizeof(*c));
	if (!c || rp_source_new(loop, (int)fd, &c->src) < 0) {
		free(c);
		close((int)fd);
		RPB_INC(&w->c, closes);
		return;
	}
	c->w = w;
	RPB_INC(&w->c, conns);
	rpb_a_recv(loop, c);
}

void rpb_async_sample(struct rpb_worker *w, struct rpb_lib *lib)
{
	struct rpb_async *a = w->priv;
	struct rp_stats st;

	memset(lib, 0, sizeof(*lib));
	if (!a)
		return;
	rp_loop_stats(a->loop, &st);
	lib->enters = st.enters;
	/*
	 * In the readiness model every op is first tried as a syscall
	 * (immediate, or EAGAIN and a poll armed) and tried again after
	 * each poll completion (retried); a spurious wakeup re-arms without
	 * another attempt, and an op that polls first (the last try said
	 * EAGAIN) arms without one. In the completion model nothing is tried.
	 */
	if (rp_loop_model(a->loop) == RP_MODEL_READINESS)
		lib->io_syscalls = st.ops_immediate + st.ops_retried +
				   st.polls_armed - st.spurious_wakeups -
				   st.ops_poll_first;
	lib->valid = true;
}

void rpb_async_stop(struct rpb_worker *w)
{
	struct rpb_async *a = __atomic_load_n(&w->priv, __ATOMIC_SEQ_CST);

	if (a)
		rp_loop_wake(a->loop);
}

int rpb_async_run(struct rpb_worker *w)
{
	struct rp_loop_config cfg = {.model = RP_MODEL_READINESS};
	struct rpb_async *a;
	int fd, ret;

	if (w->srv->mode->flavour == RPB_COMPLETION)
		cfg.model = RP_MODEL_COMPLETION;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	ret = rp_loop_new(&a->loop, &cfg);
	if (ret < 0)
		return ret;
	/* rp_source_new owns its fd: each worker gets its own dup. */
	fd = dup(w->lfd);
	if (fd < 0)
		return -errno;
	ret = rp_source_new(a->loop, fd, &a->listener);
	if (ret < 0)
		return ret;
	ret = rp_accept(a->loop, a->listener, NULL, NULL,
			SOCK_NONBLOCK | SOCK_CLOEXEC, rpb_a_accepted, w);
	if (ret < 0)
		return ret;
	__atomic_store_n(&w->priv, a, __ATOMIC_SEQ_CST);
	/*
	 * A stop that saw priv still NULL sent no wake: check the flag after
	 * publishing priv (both sides seq_cst, so one of them sees the other).
	 */
	while (!__atomic_load_n(&w->srv->stopping, __ATOMIC_SEQ_CST)) {
		ret = rp_loop_run_once(a->loop, -1);
		if (ret < 0 && ret != -EINTR)
			break;
		ret = 0;
	}
	rpb_async_sample(w, &w->final);
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	return ret;
}
