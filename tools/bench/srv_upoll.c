/* SPDX-License-Identifier: MIT */
/*
 * The floor of poll-on-ring: an echo server in the readiness model written
 * directly on liburing, with nothing of ringpoll, so that every run shows
 * what IORING_OP_POLL_ADD alone costs and how far each rp mode stands from
 * it. It is to rp-epoll what srv_uring.c is to rp-completion.
 *
 * Nonblocking sockets; a poll on the listener, then accept4; per connection
 * a POLLIN poll, then read and write; a short write keeps the rest and arms
 * a one-shot POLLOUT until it is written (backpressure: no reading
 * meanwhile), as srv_epoll.c does. read and write, not recv and send, as
 * srv_epoll.c too: on a socket they cost more (the vfs layer: about 5% of
 * the server's CPU per request at three calls a request, BENCHMARKS.md),
 * and a floor must make the calls of the servers it is the floor of.
 * - uring-poll-lt: one-shot polls re-armed after each event, one read per
 *   event, as rp-epoll's level-triggered entries are;
 * - uring-poll-et: one multishot poll per socket (IORING_POLL_ADD_MULTI),
 *   read until EAGAIN on each CQE, re-armed only when a CQE lacks
 *   IORING_CQE_F_MORE, as rp-epoll-et's entries are.
 * - uring-poll-et-exact: uring-poll-et that asks, with one poll(2) per
 *   batch of CQEs, whether the connections they name are still readable,
 *   and reads only those. A CQE is a wakeup from the past; the kernel's
 *   epoll re-polls each ready item as it hands it out (ep_send_events),
 *   and rp-epoll-et does the same with one poll(2) per wait. This is the
 *   floor of an exact edge-triggered epoll: what stands between it and
 *   uring-poll-et is what exactness costs, not ringpoll.
 * One io_uring_enter per loop that submits and waits, the best task-run
 * setup the kernel has and a registered ring fd, as srv_uring.c. Its
 * syscalls are those enters, accept4, read, write, setsockopt (TCP only)
 * and close. SIGPIPE is ignored (server.c), as for srv_epoll.c's writes.
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

/* Two polls per connection at most: 512 connections fit in one go. */
#define RPB_P_SQ 2048
#define RPB_P_CQ 8192
/* One read takes all a connection has at any depth the demo uses. */
#define RPB_P_BUF (64 * 1024)

/* user_data: a connection's address with the op in its low bits. */
enum {
	RPB_P_ACCEPT = 1, /* the listener's poll */
	RPB_P_IN = 2,
	RPB_P_OUT = 3,
	RPB_P_STOP = 4,
	RPB_P_REMOVE = 5, /* a POLL_REMOVE's own completion */
	RPB_P_KIND_MASK = 7,
};

struct rpb_pconn {
	int fd;
	bool in_armed; /* ET: the multishot POLLIN is live */
	bool asked;    /* exact: in this batch's poll(2) already */
	bool closing;  /* ET: fd closed, waiting for the poll's last CQE */
	char *pend;    /* what a short write left to send, or NULL */
	uint32_t off, len;
} __attribute__((aligned(8)));

struct rpb_upoll {
	struct io_uring ring;
	struct rpb_worker *w;
	bool et;
	bool exact;
	bool stop;
	/* exact: the batch's readable CQEs' connections, asked after it */
	struct rpb_pconn **ask;
	struct pollfd *pfd;
	uint32_t nask, ask_cap;
	char buf[RPB_P_BUF];
};

static struct io_uring_sqe *rpb_p_sqe(struct rpb_upoll *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) {
		/* SQ full: hand it to the kernel and take a fresh entry. */
		io_uring_submit(&u->ring);
		RPB_INC(&u->w->c, waits);
		sqe = io_uring_get_sqe(&u->ring);
	}
	/* SQPOLL: the kernel thread may not have taken them yet. */
	if (!sqe && (u->ring.flags & IORING_SETUP_SQPOLL)) {
		io_uring_sqring_wait(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static void rpb_p_poll(struct rpb_upoll *u, struct rpb_pconn *c, int fd,
		       int kind, unsigned mask, bool multi)
{
	struct io_uring_sqe *sqe = rpb_p_sqe(u);

	if (!sqe)
		return;
	if (multi)
		io_uring_prep_poll_multishot(sqe, fd, mask);
	else
		io_uring_prep_poll_add(sqe, fd, mask);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | (uint64_t)kind);
}

static void rpb_p_arm_in(struct rpb_upoll *u, struct rpb_pconn *c)
{
	rpb_p_poll(u, c, c->fd, RPB_P_IN, POLLIN, u->et);
	c->in_armed = true;
}

static void rpb_p_close(struct rpb_upoll *u, struct rpb_pconn *c)
{
	struct io_uring_sqe *sqe;

	close(c->fd);
	RPB_INC(&u->w->c, closes);
	RPB_ADD(&u->w->c, conns, (uint64_t)-1);
	free(c->pend);
	c->pend = NULL;
	/*
	 * A live multishot poll holds the file and will complete once more:
	 * cancel it, and free the connection on its last CQE, not before.
	 */
	if (u->et && c->in_armed) {
		sqe = rpb_p_sqe(u);
		if (sqe) {
			io_uring_prep_poll_remove(
			    sqe, (uint64_t)(uintptr_t)c | RPB_P_IN);
			io_uring_sqe_set_data64(sqe, RPB_P_REMOVE);
			c->closing = true;
			return;
		}
	}
	free(c);
}

static void rpb_p_accept(struct rpb_upoll *u, const struct io_uring_cqe *cqe)
{
	struct rpb_worker *w = u->w;
	struct rpb_pconn *c;
	int fd, one = 1;

	for (;;) {
		fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		RPB_INC(&w->c, accepts);
		if (fd < 0)
			break; /* EAGAIN: another worker took it */
		/* Small requests must not wait for Nagle's timer. */
		if (w->srv->nodelay) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			RPB_INC(&w->c, other);
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			RPB_INC(&w->c, closes);
			continue;
		}
		c->fd = fd;
		RPB_INC(&w->c, conns);
		rpb_p_arm_in(u, c);
		/* ET must take every pending connection; LT one per event. */
		if (!u->et)
			break;
	}
	/* One-shot, or the multishot poll ended: arm the listener again. */
	if (!u->et || !(cqe->flags & IORING_CQE_F_MORE))
		rpb_p_poll(u, NULL, w->lfd, RPB_P_ACCEPT, POLLIN, u->et);
}

/* Sends n bytes of buf back; keeps what the socket did not take. */
static int rpb_p_echo(struct rpb_upoll *u, struct rpb_pconn *c, size_t n)
{
	ssize_t wr = write(c->fd, u->buf, n);

	RPB_INC(&u->w->c, writes);
	if (wr < 0) {
		if (errno != EAGAIN)
			return -errno;
		wr = 0;
	}
	RPB_ADD(&u->w->c, bytes, (uint64_t)wr);
	if ((size_t)wr == n)
		return 0;
	c->pend = malloc(n - (size_t)wr);
	if (!c->pend)
		return -ENOMEM;
	memcpy(c->pend, u->buf + wr, n - (size_t)wr);
	c->off = 0;
	c->len = (uint32_t)(n - (size_t)wr);
	return 0;
}

/* read and echo: once (LT) or until EAGAIN (ET); false if it closed c. */
static bool rpb_p_read(struct rpb_upoll *u, struct rpb_pconn *c)
{
	ssize_t n;

	for (;;) {
		n = read(c->fd, u->buf, sizeof(u->buf));
		RPB_INC(&u->w->c, reads);
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0 || rpb_p_echo(u, c, (size_t)n) < 0) {
			rpb_p_close(u, c);
			return false;
		}
		if (c->pend) {
			rpb_p_poll(u, c, c->fd, RPB_P_OUT, POLLOUT, false);
			return true;
		}
		if (!u->et)
			return true;
	}
}

/* exact: c is asked with the batch's others (rpb_p_asked). */
static void rpb_p_defer(struct rpb_upoll *u, struct rpb_pconn *c)
{
	if (c->asked)
		return;
	if (u->nask == u->ask_cap) {
		uint32_t cap = u->ask_cap ? 2 * u->ask_cap : 256;
		struct rpb_pconn **a = realloc(u->ask, cap * sizeof(*a));
		struct pollfd *p = realloc(u->pfd, cap * sizeof(*p));

		if (a)
			u->ask = a;
		if (p)
			u->pfd = p;
		if (!a || !p) {
			/* No room to ask: read, as uring-poll-et does. */
			if (rpb_p_read(u, c) && !c->in_armed)
				rpb_p_arm_in(u, c);
			return;
		}
		u->ask_cap = cap;
	}
	c->asked = true;
	u->ask[u->nask] = c;
	u->pfd[u->nask++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
}

/* exact: one poll(2) for the batch; reads the connections still ready. */
static void rpb_p_asked(void *ctx)
{
	struct rpb_upoll *u = ctx;
	int n;

	if (!u->nask)
		return;
	n = poll(u->pfd, u->nask, 0);
	RPB_INC(&u->w->c, other);
	for (uint32_t i = 0; i < u->nask; i++) {
		struct rpb_pconn *c = u->ask[i];

		c->asked = false;
		/*
		 * Only reads close a connection, and none was read before
		 * this: c is live. Not ready (the data was read since its
		 * wakeup): no read, as an exact epoll reports nothing.
		 */
		if ((n < 0 || u->pfd[i].revents) && !rpb_p_read(u, c))
			continue;
		if (!c->in_armed)
			rpb_p_arm_in(u, c);
	}
	u->nask = 0;
}

static void rpb_p_in(struct rpb_upoll *u, struct rpb_pconn *c,
		     const struct io_uring_cqe *cqe)
{
	if (!u->et || !(cqe->flags & IORING_CQE_F_MORE))
		c->in_armed = false;
	if (c->closing) {
		if (!c->in_armed)
			free(c);
		return;
	}
	if (cqe->res < 0 && cqe->res != -ECANCELED) {
		rpb_p_close(u, c);
		return;
	}
	/* ET, a write pending: the POLLOUT's completion reads what came. */
	if (!c->pend && u->exact) {
		rpb_p_defer(u, c);
		return;
	}
	if (!c->pend && !rpb_p_read(u, c))
		return;
	/* LT waits for input again unless it waits for output. */
	if (!c->in_armed && (u->et || !c->pend))
		rpb_p_arm_in(u, c);
}

/* The rest of a short write; then back to reading. */
static void rpb_p_out(struct rpb_upoll *u, struct rpb_pconn *c,
		      const struct io_uring_cqe *cqe)
{
	ssize_t wr;

	if (cqe->res < 0 && cqe->res != -ECANCELED) {
		rpb_p_close(u, c);
		return;
	}
	wr = write(c->fd, c->pend + c->off, c->len - c->off);
	RPB_INC(&u->w->c, writes);
	if (wr < 0 && errno != EAGAIN) {
		rpb_p_close(u, c);
		return;
	}
	if (wr > 0) {
		RPB_ADD(&u->w->c, bytes, (uint64_t)wr);
		c->off += (uint32_t)wr;
	}
	if (c->off < c->len) {
		rpb_p_poll(u, c, c->fd, RPB_P_OUT, POLLOUT, false);
		return;
	}
	free(c->pend);
	c->pend = NULL;
	if (!u->et) {
		rpb_p_arm_in(u, c);
		return;
	}
	/* ET: the edges that came while sending were passed over. */
	if (rpb_p_read(u, c) && !c->in_armed)
		rpb_p_arm_in(u, c);
}

static void rpb_p_cqe(struct rpb_upoll *u, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct rpb_pconn *c =
	    (void *)(uintptr_t)(ud & ~(uint64_t)RPB_P_KIND_MASK);

	switch (ud & RPB_P_KIND_MASK) {
	case RPB_P_ACCEPT:
		rpb_p_accept(u, cqe);
		break;
	case RPB_P_IN:
		rpb_p_in(u, c, cqe);
		break;
	case RPB_P_OUT:
		rpb_p_out(u, c, cqe);
		break;
	case RPB_P_STOP:
		u->stop = true;
		break;
	default:
		break;
	}
}

static void rpb_p_on_cqe(void *u, const struct io_uring_cqe *cqe)
{
	rpb_p_cqe(u, cqe);
}

static int rpb_upoll_run(struct rpb_worker *w, bool et, bool exact)
{
	struct rpb_upoll *u;
	int ret;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->w = w;
	u->et = et;
	u->exact = exact;
	ret = rpb_uring_setup(&u->ring, RPB_P_SQ, RPB_P_CQ);
	if (ret < 0) {
		free(u);
		return ret;
	}
	io_uring_register_ring_fd(&u->ring);
	rpb_p_poll(u, NULL, w->stop_fd, RPB_P_STOP, POLLIN, false);
	rpb_p_poll(u, NULL, w->lfd, RPB_P_ACCEPT, POLLIN, et);
	ret = rpb_uring_loop(&u->ring, w, &u->stop, rpb_p_on_cqe,
			     exact ? rpb_p_asked : NULL, u);
	/* Open connections' state dies with the process; the ring goes now. */
	io_uring_queue_exit(&u->ring);
	free(u->ask);
	free(u->pfd);
	free(u);
	return ret;
}

int rpb_upoll_lt_run(struct rpb_worker *w)
{
	return rpb_upoll_run(w, false, false);
}

int rpb_upoll_et_run(struct rpb_worker *w)
{
	return rpb_upoll_run(w, true, false);
}

int rpb_upoll_et_exact_run(struct rpb_worker *w)
{
	return rpb_upoll_run(w, true, true);
}
