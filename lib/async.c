/* SPDX-License-Identifier: MIT */
/*
 * Sources and the Async wrapper.
 *
 * Readiness model: try the op; if it would block, arm a one-shot poll
 * (POLLIN|POLLPRI to read, POLLOUT to write) and try again when it fires.
 * Completion model: the ready-made ops become IORING_OP_ACCEPT, CONNECT,
 * RECV, SEND, READ and WRITE; custom ops still go the readiness way.
 *
 * Each source has one op slot per direction, so a reader and a writer can
 * wait at once and no op ever allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

/* The most bytes one read or write moves, as Linux's read(2) caps it. */
#define RP__IO_MAX 0x7ffff000u

static const uint32_t rp__dir_mask[2] = { POLLIN | POLLPRI, POLLOUT };
static const unsigned rp__dir_poll_kind[2] = { RP__UD_POLL_READ,
					       RP__UD_POLL_WRITE };
static const unsigned rp__dir_op_kind[2] = { RP__UD_OP_READ, RP__UD_OP_WRITE };
static const unsigned rp__dir_resync_kind[2] = { RP__UD_RESYNC_READ,
						 RP__UD_RESYNC_WRITE };

/* ---- the source table ---- */

static int rp__src_grow(struct rp_loop *loop)
{
	struct rp__src **chunks, *c;
	uint32_t base = loop->nchunks * RP__SRC_CHUNK;

	/* Slots must fit the 24 bits of user_data. */
	if (base + RP__SRC_CHUNK > RP__UD_SLOT_MAX)
		return -ENOSPC;
	chunks = realloc(loop->chunks, (loop->nchunks + 1) * sizeof(*chunks));
	if (!chunks)
		return -ENOMEM;
	loop->chunks = chunks;
	c = calloc(RP__SRC_CHUNK, sizeof(*c));
	if (!c)
		return -ENOMEM;
	chunks[loop->nchunks++] = c;
	for (uint32_t i = RP__SRC_CHUNK; i > 0; i--) {
		c[i - 1].fd = -1;
		c[i - 1].gen = 1;
		c[i - 1].next_free = loop->free_src;
		loop->free_src = base + i;
	}
	loop->nslots = base + RP__SRC_CHUNK;
	return 0;
}

static struct rp__src *rp__src_get(struct rp_loop *loop, rp_source h,
				   uint32_t *slot)
{
	uint32_t i = (uint32_t)h.id;
	struct rp__src *s;

	if (!loop || i >= loop->nslots)
		return NULL;
	s = rp__src_at(loop, i);
	if (s->state != RP__SRC_OPEN || s->gen != h.id >> 32)
		return NULL;
	*slot = i;
	return s;
}

RP_EXPORT int rp_source_new(struct rp_loop *loop, int fd, rp_source *out)
{
	struct rp__src *s;
	uint32_t slot;
	int fl, ret;

	if (!loop || !out)
		return -EINVAL;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (!loop->free_src) {
		ret = rp__src_grow(loop);
		if (ret < 0)
			return ret;
	}
	slot = loop->free_src - 1;
	s = rp__src_at(loop, slot);
	loop->free_src = s->next_free;
	s->fd = fd;
	s->state = RP__SRC_OPEN;
	s->timeout_ms[0] = s->timeout_ms[1] = 0;
	s->op[0].poll_first = s->op[1].poll_first = false;
	*out = rp__src_handle(s, slot);
	return 0;
}

/* The last op of a closing source was reported: close fd, free the slot. */
static void rp__src_finish(struct rp_loop *loop, struct rp__src *s,
			   uint32_t slot)
{
	/*
	 * A POLL_REMOVE for this fd may still sit in the SQ. Hand it to the
	 * kernel before the fd number can be reused, and let the kernel
	 * finish the cancelled poll now, so that the poll's file reference
	 * goes with close() and a socket sends its FIN.
	 */
	rp__ring_settle(&loop->ring);
	close(s->fd);
	s->fd = -1;
	s->state = RP__SRC_FREE;
	s->gen = s->gen + 1 ? s->gen + 1 : 1;
	s->next_free = loop->free_src;
	loop->free_src = slot + 1;
}

RP_EXPORT int rp_source_fd(struct rp_loop *loop, rp_source h)
{
	uint32_t slot;
	struct rp__src *s = rp__src_get(loop, h, &slot);

	return s ? s->fd : -EBADF;
}

RP_EXPORT int rp_source_timeout(struct rp_loop *loop, rp_source h,
				enum rp_dir dir, uint64_t ms)
{
	uint32_t slot;
	struct rp__src *s = rp__src_get(loop, h, &slot);

	if (!s)
		return -EBADF;
	if (dir != RP_READ && dir != RP_WRITE)
		return -EINVAL;
	if (ms > UINT64_MAX / 2 / 1000000)
		return -EINVAL;
	s->timeout_ms[dir] = ms;
	return 0;
}

/* ---- reporting ---- */

void rp__op_report(struct rp_loop *loop, uint32_t slot, unsigned dir,
		   ssize_t res)
{
	struct rp__src *s = rp__src_at(loop, slot);
	struct rp__op *op = &s->op[dir];
	rp_done_fn done = op->done;
	void *user = op->user;

	if (op->deadline.id) {
		rp__timer_cancel_internal(loop, op->deadline);
		op->deadline.id = 0;
	}
	if (op->timed_out && res == -ECANCELED)
		res = -ETIMEDOUT;
	if (rp__unlikely(op->resync)) {
		if (op->resync >= RP__RESYNC_LOST)
			loop->lost_ops--;
		op->resync = RP__RESYNC_NONE;
	}
	op->state = RP__OP_IDLE;
	op->timed_out = op->cancelling = false;
	loop->pending_ops--;
	/* Idle before the call: the callback may start the next op. */
	done(loop, rp__src_handle(s, slot), res, user);
	if (s->state == RP__SRC_CLOSING && s->op[0].state == RP__OP_IDLE &&
	    s->op[1].state == RP__OP_IDLE)
		rp__src_finish(loop, s, slot);
}

static void rp__op_defer(struct rp_loop *loop, uint32_t slot, unsigned dir,
			 ssize_t res)
{
	struct rp__op *op = &rp__src_at(loop, slot)->op[dir];

	op->res = res;
	op->state = RP__OP_DONE;
	rp__dq_push(loop, slot, dir);
}

/* ---- trying an op (readiness) and submitting it (completion) ---- */

static ssize_t rp__op_try(int fd, struct rp__op *op)
{
	ssize_t r;
	int err;
	socklen_t len = sizeof(err);

	do {
		switch (op->kind) {
		case RP__OPK_CUSTOM:
			r = op->fn(fd, op->arg);
			/* Custom ops return -errno; no errno to look at. */
			if (r == -EWOULDBLOCK || r == -EINPROGRESS)
				r = -EAGAIN;
			return r;
		case RP__OPK_ACCEPT:
			r = accept4(fd, op->u.acc.addr, op->u.acc.addrlen,
				    op->u.acc.flags);
			break;
		case RP__OPK_CONNECT:
			if (op->u.con.started) {
				/* POLLOUT came: SO_ERROR has the verdict. */
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
					       &len) < 0)
					return -errno;
				return err ? -err : 0;
			}
			r = connect(fd, (struct sockaddr *)&op->u.con.ss,
				    op->u.con.len);
			if (r < 0 && errno == EINPROGRESS) {
				op->u.con.started = true;
				return -EAGAIN;
			}
			break;
		case RP__OPK_RECV:
			r = recv(fd, op->u.io.buf, op->u.io.len,
				 op->u.io.flags);
			break;
		case RP__OPK_SEND:
			r = send(fd, op->u.io.buf, op->u.io.len,
				 op->u.io.flags);
			break;
		case RP__OPK_READ:
			r = read(fd, op->u.io.buf, op->u.io.len);
			break;
		default:
			r = write(fd, op->u.io.buf, op->u.io.len);
			break;
		}
	} while (r < 0 && errno == EINTR);
	if (r >= 0)
		return r;
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static int rp__op_submit(struct rp_loop *loop, struct rp__src *s,
			 uint32_t slot, unsigned dir)
{
	struct rp__op *op = &s->op[dir];
	struct io_uring_sqe *sqe;
	int err;

	sqe = rp__ring_sqe(&loop->ring, &err);
	if (!sqe)
		return err;
	switch (op->kind) {
	case RP__OPK_ACCEPT:
		io_uring_prep_accept(sqe, s->fd, op->u.acc.addr,
				     op->u.acc.addrlen, op->u.acc.flags);
		break;
	case RP__OPK_CONNECT:
		io_uring_prep_connect(sqe, s->fd,
				      (struct sockaddr *)&op->u.con.ss,
				      op->u.con.len);
		break;
	case RP__OPK_RECV:
		io_uring_prep_recv(sqe, s->fd, op->u.io.buf, op->u.io.len,
				   op->u.io.flags);
		break;
	case RP__OPK_SEND:
		io_uring_prep_send(sqe, s->fd, op->u.io.buf, op->u.io.len,
				   op->u.io.flags);
		break;
	case RP__OPK_READ:
		/* Offset -1: the file position, as read(2) (5.6). */
		io_uring_prep_read(sqe, s->fd, op->u.io.buf, op->u.io.len,
				   (uint64_t)-1);
		break;
	default:
		io_uring_prep_write(sqe, s->fd, op->u.io.buf, op->u.io.len,
				    (uint64_t)-1);
		break;
	}
	op->gen++;
	sqe->user_data = rp__ud(rp__dir_op_kind[dir], slot, op->gen);
	op->state = RP__OP_INFLIGHT;
	loop->st.ops_submitted++;
	return 0;
}

static int rp__op_wait(struct rp_loop *loop, struct rp__src *s, uint32_t slot,
		       unsigned dir)
{
	int ret;

	ret = rp__poll_arm(&loop->ring, &s->op[dir].poll, s->fd,
			   rp__dir_mask[dir], false, rp__dir_poll_kind[dir],
			   slot);
	if (ret < 0)
		return ret;
	s->op[dir].state = RP__OP_WAITING;
	loop->st.polls_armed++;
	return 0;
}

static bool rp__op_native(const struct rp_loop *loop, const struct rp__op *op)
{
	return loop->model == RP_MODEL_COMPLETION &&
	       op->kind != RP__OPK_CUSTOM;
}

/*
 * Poll first, try after: the heuristic of io_uring's own
 * IORING_RECVSEND_POLL_FIRST. In a request/response exchange the read
 * that follows a reply finds nothing: trying it costs a syscall that says
 * EAGAIN, then the poll. So once a try of a data op said EAGAIN, the next
 * op of that direction arms its poll at once; a try that fills the whole
 * buffer (data comes faster than it is read, or a send that had room)
 * goes back to trying first. Custom ops, accept and connect always try.
 */
static bool rp__op_streams(const struct rp__op *op)
{
	return op->kind == RP__OPK_RECV || op->kind == RP__OPK_READ ||
	       op->kind == RP__OPK_SEND || op->kind == RP__OPK_WRITE;
}

static void rp__op_learn(struct rp__op *op, ssize_t res)
{
	if (!rp__op_streams(op))
		return;
	if (res == -EAGAIN)
		op->poll_first = true;
	else if (res < 0 || (size_t)res == op->u.io.len)
		op->poll_first = false;
}

/* Starts a filled-in op: at once if it can, else on the ring. */
static int rp__op_go(struct rp_loop *loop, struct rp__src *s, uint32_t slot,
		     unsigned dir)
{
	struct rp__op *op = &s->op[dir];
	ssize_t res;
	int ret;

	if (rp__op_native(loop, op)) {
		ret = rp__op_submit(loop, s, slot, dir);
	} else if (op->poll_first && rp__op_streams(op)) {
		loop->st.ops_poll_first++;
		ret = rp__op_wait(loop, s, slot, dir);
	} else {
		res = rp__op_try(s->fd, op);
		rp__op_learn(op, res);
		if (res != -EAGAIN) {
			loop->st.ops_immediate++;
			loop->pending_ops++;
			rp__op_defer(loop, slot, dir, res);
			return 0;
		}
		ret = rp__op_wait(loop, s, slot, dir);
	}
	if (ret < 0) {
		op->state = RP__OP_IDLE;
		return ret;
	}
	loop->pending_ops++;
	if (s->timeout_ms[dir]) {
		struct rp__timer *t;

		ret = rp__timer_start(loop, s->timeout_ms[dir] * 1000000, true,
				      &op->deadline);
		if (ret < 0) {
			/* No deadline, no op: take it back as cancelled. */
			rp_cancel(loop, rp__src_handle(s, slot), dir);
			return 0;
		}
		t = &loop->timers[(uint32_t)op->deadline.id];
		t->src_slot = slot;
		t->src_dir = dir;
	}
	return 0;
}

/* Checks the arguments every op has and claims the direction's slot. */
static struct rp__op *rp__op_begin(struct rp_loop *loop, rp_source h,
				   unsigned dir, rp_done_fn done,
				   struct rp__src **sp, uint32_t *slot,
				   int *err)
{
	struct rp__src *s;
	struct rp__op *op;

	*err = -EINVAL;
	if (!loop || !done)
		return NULL;
	s = rp__src_get(loop, h, slot);
	*err = -EBADF;
	if (!s)
		return NULL;
	op = &s->op[dir];
	*err = -EBUSY;
	if (op->state != RP__OP_IDLE)
		return NULL;
	op->done = done;
	op->timed_out = op->cancelling = false;
	op->deadline.id = 0;
	*sp = s;
	return op;
}

static int rp__with(struct rp_loop *loop, rp_source h, unsigned dir,
		    rp_io_fn fn, void *arg, rp_done_fn done, void *user)
{
	struct rp__src *s;
	struct rp__op *op;
	uint32_t slot;
	int err;

	if (!fn)
		return -EINVAL;
	op = rp__op_begin(loop, h, dir, done, &s, &slot, &err);
	if (!op)
		return err;
	op->kind = RP__OPK_CUSTOM;
	op->fn = fn;
	op->arg = arg;
	op->user = user;
	return rp__op_go(loop, s, slot, dir);
}

RP_EXPORT int rp_read_with(struct rp_loop *loop, rp_source h, rp_io_fn op,
			   void *arg, rp_done_fn done, void *user)
{
	return rp__with(loop, h, RP_READ, op, arg, done, user);
}

RP_EXPORT int rp_write_with(struct rp_loop *loop, rp_source h, rp_io_fn op,
			    void *arg, rp_done_fn done, void *user)
{
	return rp__with(loop, h, RP_WRITE, op, arg, done, user);
}

static int rp__io(struct rp_loop *loop, rp_source h, unsigned dir,
		  unsigned kind, void *buf, size_t len, int flags,
		  rp_done_fn done, void *user)
{
	struct rp__src *s;
	struct rp__op *op;
	uint32_t slot;
	int err;

	if (!buf && len)
		return -EFAULT;
	op = rp__op_begin(loop, h, dir, done, &s, &slot, &err);
	if (!op)
		return err;
	op->kind = kind;
	op->user = user;
	op->u.io.buf = buf;
	op->u.io.len = len > RP__IO_MAX ? RP__IO_MAX : len;
	op->u.io.flags = flags;
	return rp__op_go(loop, s, slot, dir);
}

RP_EXPORT int rp_recv(struct rp_loop *loop, rp_source h, void *buf,
		      size_t len, int flags, rp_done_fn done, void *user)
{
	return rp__io(loop, h, RP_READ, RP__OPK_RECV, buf, len, flags, done,
		      user);
}

RP_EXPORT int rp_send(struct rp_loop *loop, rp_source h, const void *buf,
		      size_t len, int flags, rp_done_fn done, void *user)
{
	/* A library must not kill its host with SIGPIPE. */
	return rp__io(loop, h, RP_WRITE, RP__OPK_SEND, (void *)buf, len,
		      flags | MSG_NOSIGNAL, done, user);
}

RP_EXPORT int rp_read(struct rp_loop *loop, rp_source h, void *buf,
		      size_t len, rp_done_fn done, void *user)
{
	return rp__io(loop, h, RP_READ, RP__OPK_READ, buf, len, 0, done,
		      user);
}

RP_EXPORT int rp_write(struct rp_loop *loop, rp_source h, const void *buf,
		       size_t len, rp_done_fn done, void *user)
{
	return rp__io(loop, h, RP_WRITE, RP__OPK_WRITE, (void *)buf, len, 0,
		      done, user);
}

RP_EXPORT int rp_accept(struct rp_loop *loop, rp_source h,
			struct sockaddr *addr, socklen_t *addrlen, int flags,
			rp_done_fn done, void *user)
{
	struct rp__src *s;
	struct rp__op *op;
	uint32_t slot;
	int err;

	if ((addr && !addrlen) || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
		return -EINVAL;
	op = rp__op_begin(loop, h, RP_READ, done, &s, &slot, &err);
	if (!op)
		return err;
	op->kind = RP__OPK_ACCEPT;
	op->user = user;
	op->u.acc.addr = addr;
	op->u.acc.addrlen = addrlen;
	op->u.acc.flags = flags;
	return rp__op_go(loop, s, slot, RP_READ);
}

RP_EXPORT int rp_connect(struct rp_loop *loop, rp_source h,
			 const struct sockaddr *addr, socklen_t addrlen,
			 rp_done_fn done, void *user)
{
	struct rp__src *s;
	struct rp__op *op;
	uint32_t slot;
	int err;

	if (!addr || addrlen == 0 ||
	    addrlen > sizeof(struct sockaddr_storage))
		return -EINVAL;
	op = rp__op_begin(loop, h, RP_WRITE, done, &s, &slot, &err);
	if (!op)
		return err;
	op->kind = RP__OPK_CONNECT;
	op->user = user;
	memcpy(&op->u.con.ss, addr, addrlen);
	op->u.con.len = addrlen;
	op->u.con.started = false;
	return rp__op_go(loop, s, slot, RP_WRITE);
}

/* ---- CQEs ---- */

/*
 * Completion model: a connect that the recovery from a dropped CQE
 * cancelled goes on in the socket; submitting it again would say EALREADY.
 * It ends the readiness way: POLLOUT, then SO_ERROR (rp__op_try).
 */
static bool rp__op_connecting(const struct rp__op *op)
{
	return op->kind == RP__OPK_CONNECT && op->u.con.started;
}

/*
 * The op's own CQE came after a recovery's cancel (rp__loop_recover). A
 * -ECANCELED that nobody else asked for is that cancel's: the op moved
 * nothing and goes in again as it was. Returns the callbacks run (0 or 1),
 * or -1 if the CQE is to be reported as usual.
 */
static int rp__op_resynced(struct rp_loop *loop, struct rp__src *s,
			   uint32_t slot, unsigned dir, int res)
{
	struct rp__op *op = &s->op[dir];
	int err;

	if (op->resync >= RP__RESYNC_LOST)
		loop->lost_ops--;
	op->resync = RP__RESYNC_NONE;
	if (res != -ECANCELED || op->cancelling)
		return -1;
	if (op->kind == RP__OPK_CONNECT) {
		op->u.con.started = true;
		err = rp__op_wait(loop, s, slot, dir);
	} else {
		err = rp__op_submit(loop, s, slot, dir);
	}
	if (err == 0)
		return 0;
	rp__op_report(loop, slot, dir, err);
	return 1;
}

/* Returns the number of callbacks run (0 or 1). */
int rp__src_cqe(struct rp_loop *loop, const struct io_uring_cqe *cqe)
{
	unsigned kind = rp__ud_kind(cqe->user_data);
	uint32_t slot = rp__ud_slot(cqe->user_data);
	unsigned dir = kind == RP__UD_POLL_WRITE || kind == RP__UD_OP_WRITE;
	struct rp__src *s;
	struct rp__op *op;
	ssize_t res;

	if (slot >= loop->nslots)
		goto stale;
	s = rp__src_at(loop, slot);
	op = &s->op[dir];
	if (kind == RP__UD_OP_READ || kind == RP__UD_OP_WRITE) {
		if (op->state != RP__OP_INFLIGHT ||
		    rp__ud_gen(cqe->user_data) != op->gen)
			goto stale;
		if (rp__unlikely(op->resync)) {
			int r = rp__op_resynced(loop, s, slot, dir, cqe->res);

			if (r >= 0)
				return r;
		}
		/*
		 * A nonblocking fd can make the kernel answer EAGAIN instead
		 * of waiting; wait for readiness, then submit again.
		 */
		if (cqe->res == -EAGAIN && !op->cancelling) {
			if (rp__op_wait(loop, s, slot, dir) == 0)
				return 0;
		}
		rp__op_report(loop, slot, dir, cqe->res);
		return 1;
	}
	if (op->state != RP__OP_WAITING ||
	    rp__poll_classify(&op->poll, cqe) != RP__POLL_EVENT)
		goto stale;
	/* A failed poll (bad fd) ends the op with its error. */
	if (cqe->res < 0) {
		rp__op_report(loop, slot, dir, cqe->res);
		return 1;
	}
	if (rp__op_native(loop, op) && !rp__op_connecting(op)) {
		res = rp__op_submit(loop, s, slot, dir);
		if (res == 0)
			return 0;
		rp__op_report(loop, slot, dir, res);
		return 1;
	}
	loop->st.ops_retried++;
	res = rp__op_try(s->fd, op);
	rp__op_learn(op, res);
	if (res == -EAGAIN) {
		/* Woken, but someone else took the data, or it was PRI. */
		loop->st.spurious_wakeups++;
		res = rp__op_wait(loop, s, slot, dir);
		if (res == 0)
			return 0;
	}
	rp__op_report(loop, slot, dir, res);
	return 1;
stale:
	loop->st.stale_cqes++;
	return 0;
}

/*
 * Queues the cancel of dir's op in flight, by its user_data; the cancel's
 * own CQE comes as ud (none when it succeeds, where the ring can skip it).
 */
static int rp__op_cancel_sqe(struct rp_loop *loop, uint32_t slot,
			     unsigned dir, uint32_t gen, uint64_t ud)
{
	struct io_uring_sqe *sqe;
	int err;

	sqe = rp__ring_sqe(&loop->ring, &err);
	if (!sqe)
		return err;
	io_uring_prep_cancel64(sqe, rp__ud(rp__dir_op_kind[dir], slot, gen), 0);
	sqe->user_data = ud;
	if (loop->ring.skip_success)
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	return 0;
}

/* ---- after a dropped CQE (rp__loop_recover) ---- */

/* Looks again at one op whose completion may have been the dropped one. */
static int rp__op_resync(struct rp_loop *loop, struct rp__src *s,
			 uint32_t slot, unsigned dir)
{
	struct rp__op *op = &s->op[dir];
	int err;

	switch (op->state) {
	case RP__OP_WAITING:
		/* Remove first: one poll in flight, never two. */
		err = rp__poll_cancel(&loop->ring, &op->poll,
				      rp__dir_poll_kind[dir], slot);
		return err < 0 ? err : rp__op_wait(loop, s, slot, dir);
	case RP__OP_INFLIGHT:
		/*
		 * Asked again after a second drop: the first cancel's CQE
		 * may have been the one lost. Its answer is in
		 * rp__src_resync_cqe.
		 */
		err = rp__op_cancel_sqe(loop, slot, dir, op->gen,
					rp__ud(rp__dir_resync_kind[dir], slot,
					       op->gen));
		if (err < 0)
			return err;
		if (op->resync == RP__RESYNC_NONE)
			op->resync = RP__RESYNC_ASKED;
		return 0;
	default:
		/* Idle, or its result is known already (DONE). */
		return 0;
	}
}

int rp__src_resync(struct rp_loop *loop)
{
	int err = 0;

	for (uint32_t slot = 0; slot < loop->nslots; slot++) {
		struct rp__src *s = rp__src_at(loop, slot);

		if (s->state == RP__SRC_FREE)
			continue;
		for (unsigned dir = 0; dir < 2; dir++) {
			int ret = rp__op_resync(loop, s, slot, dir);

			if (ret < 0)
				err = ret;
		}
	}
	return err;
}

void rp__src_resync_cqe(struct rp_loop *loop, const struct io_uring_cqe *cqe)
{
	uint32_t slot = rp__ud_slot(cqe->user_data);
	unsigned dir = rp__ud_kind(cqe->user_data) == RP__UD_RESYNC_WRITE;
	struct rp__op *op;

	if (slot >= loop->nslots)
		return;
	op = &rp__src_at(loop, slot)->op[dir];
	/*
	 * Found (0): cancelled, its -ECANCELED follows. -EALREADY: it was
	 * completing, its CQE follows. Not found: its CQE was posted before
	 * this one, and it has not been seen: dropped, or posted late by
	 * the kernel's deferred work (rp__src_lost looks once more). An op
	 * whose CQE came already, or a later op of the slot, is not this.
	 */
	if (cqe->res >= 0 || cqe->res == -EALREADY ||
	    op->state != RP__OP_INFLIGHT ||
	    op->gen != rp__ud_gen(cqe->user_data) ||
	    op->resync != RP__RESYNC_ASKED)
		return;
	op->resync = RP__RESYNC_LOST;
	loop->lost_ops++;
}

/*
 * !end: the ops found lost so far are to be confirmed (the caller then
 * lets the kernel post what it holds and harvests). end: those confirmed
 * and still without a CQE end with -EIO: whether (and how many) bytes
 * moved is unknown, and a wrong count would be silent corruption. The
 * kernel is done with their buffers: the cancel found nothing to stop.
 * Returns the callbacks run.
 */
int rp__src_lost(struct rp_loop *loop, bool end)
{
	int n = 0;

	/* nslots is read each time: a callback may add sources. */
	for (uint32_t slot = 0; loop->lost_ops && slot < loop->nslots;
	     slot++) {
		struct rp__src *s = rp__src_at(loop, slot);

		for (unsigned dir = 0; dir < 2; dir++) {
			struct rp__op *op = &s->op[dir];

			if (!end && op->resync == RP__RESYNC_LOST) {
				op->resync = RP__RESYNC_CONFIRM;
			} else if (end && op->resync == RP__RESYNC_CONFIRM) {
				rp__op_report(loop, slot, dir, -EIO);
				n++;
			}
		}
	}
	return n;
}

/* ---- cancel, timeout, close ---- */

/* Ends a pending op early with res (-ECANCELED or -ETIMEDOUT). */
static int rp__op_cancel(struct rp_loop *loop, struct rp__src *s,
			 uint32_t slot, unsigned dir, ssize_t res)
{
	struct rp__op *op = &s->op[dir];
	int err;

	switch (op->state) {
	case RP__OP_WAITING:
		err = rp__poll_cancel(&loop->ring, &op->poll,
				      rp__dir_poll_kind[dir], slot);
		if (err < 0)
			return err;
		rp__op_defer(loop, slot, dir, res);
		return 0;
	case RP__OP_INFLIGHT:
		/*
		 * The kernel owns the buffer until the op's own CQE: ask it
		 * to stop and report whatever that CQE says (-ECANCELED, or
		 * the result if the op won the race).
		 */
		if (op->cancelling)
			return 0;
		err = rp__op_cancel_sqe(loop, slot, dir, op->gen,
					rp__ud(RP__UD_IGNORE, 0, 0));
		if (err < 0)
			return err;
		op->cancelling = true;
		op->timed_out = res == -ETIMEDOUT;
		return 0;
	case RP__OP_DONE:
		return -EALREADY;
	default:
		return -ENOENT;
	}
}

RP_EXPORT int rp_cancel(struct rp_loop *loop, rp_source h, enum rp_dir dir)
{
	uint32_t slot;
	struct rp__src *s = rp__src_get(loop, h, &slot);

	if (!s)
		return -EBADF;
	if (dir != RP_READ && dir != RP_WRITE)
		return -EINVAL;
	return rp__op_cancel(loop, s, slot, dir, -ECANCELED);
}

void rp__op_deadline(struct rp_loop *loop, uint32_t slot, unsigned dir,
		     rp_timer t)
{
	struct rp__src *s;
	struct rp__op *op;

	if (slot >= loop->nslots)
		return;
	s = rp__src_at(loop, slot);
	op = &s->op[dir];
	if (op->deadline.id != t.id)
		return;
	op->deadline.id = 0;
	rp__op_cancel(loop, s, slot, dir, -ETIMEDOUT);
}

static void rp__src_close(struct rp_loop *loop, struct rp__src *s,
			  uint32_t slot)
{
	s->state = RP__SRC_CLOSING;
	for (unsigned dir = 0; dir < 2; dir++)
		rp__op_cancel(loop, s, slot, dir, -ECANCELED);
	if (s->op[0].state == RP__OP_IDLE && s->op[1].state == RP__OP_IDLE)
		rp__src_finish(loop, s, slot);
}

RP_EXPORT int rp_source_close(struct rp_loop *loop, rp_source h)
{
	uint32_t slot;
	struct rp__src *s = rp__src_get(loop, h, &slot);

	if (!s)
		return -EBADF;
	rp__src_close(loop, s, slot);
	return 0;
}

void rp__src_close_all(struct rp_loop *loop)
{
	for (uint32_t slot = 0; slot < loop->nslots; slot++) {
		struct rp__src *s = rp__src_at(loop, slot);

		if (s->state == RP__SRC_OPEN)
			rp__src_close(loop, s, slot);
	}
}

void rp__src_free_all(struct rp_loop *loop)
{
	for (uint32_t slot = 0; slot < loop->nslots; slot++) {
		struct rp__src *s = rp__src_at(loop, slot);

		/* Only if the ring failed while ops were being drained. */
		if (s->state != RP__SRC_FREE && s->fd >= 0)
			close(s->fd);
	}
	for (uint32_t i = 0; i < loop->nchunks; i++)
		free(loop->chunks[i]);
	free(loop->chunks);
	loop->chunks = NULL;
	loop->nchunks = loop->nslots = 0;
}
