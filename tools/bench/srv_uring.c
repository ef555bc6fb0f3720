/* SPDX-License-Identifier: MIT */
/*
 * The reference: an echo server written directly on liburing in the
 * completion model, with what a careful io_uring server uses and nothing
 * of ringpoll: one multishot accept (5.19; liburing 2.3 has the prep), one
 * recv or send in flight per connection, a single io_uring_enter per loop
 * that submits and waits, the best task-run setup the kernel has and a
 * registered ring fd. Its syscalls are those enters, the connections'
 * setsockopt (TCP only) and close.
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

/* One op per connection plus the accept: 512 connections fit in one go. */
#define RPB_U_SQ 1024
#define RPB_U_CQ 8192
#define RPB_U_BUF (64 * 1024)

/* user_data: a connection's address with the op in its low bits. */
enum {
	RPB_U_ACCEPT = 1,
	RPB_U_RECV = 2,
	RPB_U_SEND = 3,
	RPB_U_STOP = 4,
	RPB_U_KIND_MASK = 7,
};

struct rpb_uconn {
	int fd;
	uint32_t len, off;
	char buf[RPB_U_BUF];
} __attribute__((aligned(8)));

struct rpb_uring {
	struct io_uring ring;
	struct rpb_worker *w;
	bool stop;
};

static struct io_uring_sqe *rpb_u_sqe(struct rpb_uring *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) {
		/* SQ full: hand it to the kernel and take a fresh entry. */
		io_uring_submit(&u->ring);
		RPB_INC(&u->w->c, waits);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static void rpb_u_prep(struct rpb_uring *u, struct rpb_uconn *c, int kind)
{
	struct io_uring_sqe *sqe = rpb_u_sqe(u);

	if (!sqe)
		return;
	switch (kind) {
	case RPB_U_ACCEPT:
		io_uring_prep_multishot_accept(sqe, u->w->lfd, NULL, NULL,
					       SOCK_CLOEXEC);
		break;
	case RPB_U_RECV:
		io_uring_prep_recv(sqe, c->fd, c->buf, sizeof(c->buf), 0);
		break;
	case RPB_U_SEND:
		io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off,
				   MSG_NOSIGNAL);
		break;
	default:
		io_uring_prep_poll_add(sqe, u->w->stop_fd, POLLIN);
		break;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | (uint64_t)kind);
}

static void rpb_u_close(struct rpb_uring *u, struct rpb_uconn *c)
{
	close(c->fd);
	RPB_INC(&u->w->c, closes);
	RPB_ADD(&u->w->c, conns, (uint64_t)-1);
	free(c);
}

static void rpb_u_accepted(struct rpb_uring *u, const struct io_uring_cqe *cqe)
{
	struct rpb_uconn *c;
	int one = 1;

	/* The multishot accept ended (an error, or the kernel dropped it). */
	if (!(cqe->flags & IORING_CQE_F_MORE))
		rpb_u_prep(u, NULL, RPB_U_ACCEPT);
	if (cqe->res < 0)
		return;
	if (u->w->srv->nodelay) {
		setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		RPB_INC(&u->w->c, other);
	}
	c = malloc(sizeof(*c));
	if (!c) {
		close(cqe->res);
		RPB_INC(&u->w->c, closes);
		return;
	}
	c->fd = cqe->res;
	RPB_INC(&u->w->c, conns);
	rpb_u_prep(u, c, RPB_U_RECV);
}

static void rpb_u_cqe(struct rpb_uring *u, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct rpb_uconn *c =
	    (void *)(uintptr_t)(ud & ~(uint64_t)RPB_U_KIND_MASK);

	switch (ud & RPB_U_KIND_MASK) {
	case RPB_U_ACCEPT:
		rpb_u_accepted(u, cqe);
		break;
	case RPB_U_RECV:
		if (cqe->res <= 0) {
			rpb_u_close(u, c);
			break;
		}
		c->len = (uint32_t)cqe->res;
		c->off = 0;
		rpb_u_prep(u, c, RPB_U_SEND);
		break;
	case RPB_U_SEND:
		if (cqe->res < 0) {
			rpb_u_close(u, c);
			break;
		}
		RPB_ADD(&u->w->c, bytes, (uint64_t)cqe->res);
		c->off += (uint32_t)cqe->res;
		rpb_u_prep(u, c, c->off < c->len ? RPB_U_SEND : RPB_U_RECV);
		break;
	default:
		u->stop = true;
		break;
	}
}

/*
 * The raw liburing servers' ring (this one and srv_upoll.c's floor): the
 * best task-run setup the kernel has, DEFER_TASKRUN (6.1), else
 * COOP_TASKRUN (5.19), else plain. RPB_URING_SETUP picks one instead, to
 * compare the setups an epoll instance could have (issue 12):
 * defer, coop, plain, or sqpoll (RPB_SQ_IDLE_MS, default 10, the kernel
 * thread's idle time before it sleeps; RPB_SQ_CPU pins it with SQ_AFF).
 * Without the variable the ladder is unchanged.
 */
int rpb_uring_setup(struct io_uring *ring, unsigned sq, unsigned cq)
{
	static const unsigned ladder[] = {
	    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	    0,
	};
	const char *pick = getenv("RPB_URING_SETUP");
	const char *env;
	struct io_uring_params p;
	int ret = -EINVAL;

	if (pick && *pick) {
		memset(&p, 0, sizeof(p));
		if (strcmp(pick, "defer") == 0) {
			p.flags = ladder[0];
		} else if (strcmp(pick, "coop") == 0) {
			p.flags = ladder[1];
		} else if (strcmp(pick, "sqpoll") == 0) {
			p.flags = IORING_SETUP_SQPOLL;
			env = getenv("RPB_SQ_IDLE_MS");
			p.sq_thread_idle = env ? (unsigned)atoi(env) : 10;
			env = getenv("RPB_SQ_CPU");
			if (env && *env) {
				p.flags |= IORING_SETUP_SQ_AFF;
				p.sq_thread_cpu = (unsigned)atoi(env);
			}
		} else if (strcmp(pick, "plain") != 0) {
			fprintf(stderr, "rpbench: RPB_URING_SETUP=%s: "
				"defer, coop, sqpoll or plain\n", pick);
			return -EINVAL;
		}
		p.flags |= IORING_SETUP_CQSIZE;
		p.cq_entries = cq;
		ret = io_uring_queue_init_params(sq, ring, &p);
		if (ret < 0)
			fprintf(stderr, "rpbench: RPB_URING_SETUP=%s: %s\n",
				pick, strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < sizeof(ladder) / sizeof(ladder[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = ladder[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = cq;
		ret = io_uring_queue_init_params(sq, ring, &p);
		if (ret == 0)
			break;
	}
	return ret;
}

/*
 * Submits what the loop queued and waits for a completion, counting each
 * io_uring_enter in waits. Without SQPOLL that is one enter. With SQPOLL
 * the kernel thread takes the SQEs from the ring: publish the tail, enter
 * only to wake the thread when it sleeps (IORING_SQ_NEED_WAKEUP, as
 * liburing's submit does) or to sleep when no CQE is there.
 */
int rpb_uring_wait(struct io_uring *ring, struct rpb_worker *w)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned flags = 0, tail;
	int fd = ring->ring_fd, ret;

	if (!(ring->flags & IORING_SETUP_SQPOLL)) {
		ret = io_uring_submit_and_wait(ring, 1);
		RPB_INC(&w->c, waits);
		return ret;
	}
	tail = sq->sqe_tail;
	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		io_uring_smp_store_release(sq->ktail, tail);
		/* The tail store before the flag load: the kernel's pairs. */
		io_uring_smp_mb();
		if (IO_URING_READ_ONCE(*sq->kflags) & IORING_SQ_NEED_WAKEUP)
			flags |= IORING_ENTER_SQ_WAKEUP;
	}
	if (!io_uring_cq_ready(ring))
		flags |= IORING_ENTER_GETEVENTS;
	if (!flags)
		return 0;
	if (ring->enter_ring_fd != ring->ring_fd) {
		fd = ring->enter_ring_fd;
		flags |= IORING_ENTER_REGISTERED_RING;
	}
	ret = io_uring_enter((unsigned)fd, 0,
			     (flags & IORING_ENTER_GETEVENTS) ? 1 : 0, flags,
			     NULL);
	RPB_INC(&w->c, waits);
	return ret; /* liburing's enter returns -errno itself */
}

void rpb_uring_sample(struct rpb_worker *w, struct rpb_lib *lib)
{
	memset(lib, 0, sizeof(*lib));
	lib->enters = RPB_GET(&w->c, waits);
	lib->valid = true;
}

static void rpb_u_on_cqe(void *u, const struct io_uring_cqe *cqe)
{
	rpb_u_cqe(u, cqe);
}

int rpb_uring_run(struct rpb_worker *w)
{
	struct rpb_uring *u;
	int ret;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->w = w;
	ret = rpb_uring_setup(&u->ring, RPB_U_SQ, RPB_U_CQ);
	if (ret < 0) {
		free(u);
		return ret;
	}
	io_uring_register_ring_fd(&u->ring);
	rpb_u_prep(u, NULL, RPB_U_STOP);
	rpb_u_prep(u, NULL, RPB_U_ACCEPT);
	ret = rpb_uring_loop(&u->ring, w, &u->stop, rpb_u_on_cqe, NULL, u);
	/* Open connections' state dies with the process; the ring goes now. */
	io_uring_queue_exit(&u->ring);
	free(u);
	return ret;
}

int rpb_uring_loop(struct io_uring *ring, struct rpb_worker *w,
		   const bool *stop,
		   void (*on_cqe)(void *ctx, const struct io_uring_cqe *cqe),
		   void (*after)(void *ctx), void *ctx)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen;
	int ret = 0;

	while (!*stop) {
		ret = rpb_uring_wait(ring, w);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			break;
		ret = 0;
		seen = 0;
		io_uring_for_each_cqe(ring, head, cqe)
		{
			on_cqe(ctx, cqe);
			seen++;
		}
		io_uring_cq_advance(ring, seen);
		if (after)
			after(ctx);
	}
	rpb_uring_sample(w, &w->final);
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	return ret;
}
