/* SPDX-License-Identifier: MIT */
/*
 * rp_loop: one io_uring, one thread. An iteration enters the kernel at most
 * once (submit what is queued and wait, in one io_uring_enter), dispatches
 * the CQEs, fires the timers that are due and runs the callbacks of ops
 * that completed without the ring.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

uint64_t rp__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- timers: a binary min-heap of indices into loop->timers ---- */

static bool rp__timer_before(const struct rp_loop *loop, uint32_t a,
			     uint32_t b)
{
	const struct rp__timer *ta = &loop->timers[a], *tb = &loop->timers[b];

	return ta->when_ns < tb->when_ns ||
	       (ta->when_ns == tb->when_ns && ta->seq < tb->seq);
}

static void rp__heap_set(struct rp_loop *loop, uint32_t pos, uint32_t t)
{
	loop->heap[pos] = t;
	loop->timers[t].heap_idx = pos;
}

static void rp__heap_up(struct rp_loop *loop, uint32_t pos)
{
	uint32_t t = loop->heap[pos];

	while (pos > 0) {
		uint32_t parent = (pos - 1) / 2;

		if (!rp__timer_before(loop, t, loop->heap[parent]))
			break;
		rp__heap_set(loop, pos, loop->heap[parent]);
		pos = parent;
	}
	rp__heap_set(loop, pos, t);
}

static void rp__heap_down(struct rp_loop *loop, uint32_t pos)
{
	uint32_t t = loop->heap[pos];

	for (;;) {
		uint32_t c = 2 * pos + 1;

		if (c >= loop->heap_len)
			break;
		if (c + 1 < loop->heap_len &&
		    rp__timer_before(loop, loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!rp__timer_before(loop, loop->heap[c], t))
			break;
		rp__heap_set(loop, pos, loop->heap[c]);
		pos = c;
	}
	rp__heap_set(loop, pos, t);
}

static void rp__heap_remove(struct rp_loop *loop, uint32_t t)
{
	uint32_t pos = loop->timers[t].heap_idx;
	uint32_t last = loop->heap[--loop->heap_len];

	loop->timers[t].heap_idx = RP__TIMER_IDLE;
	if (last == t)
		return;
	rp__heap_set(loop, pos, last);
	rp__heap_up(loop, pos);
	rp__heap_down(loop, loop->timers[last].heap_idx);
}

static void rp__heap_insert(struct rp_loop *loop, uint32_t t)
{
	loop->timers[t].seq = loop->timer_seq++;
	loop->heap[loop->heap_len] = t;
	loop->timers[t].heap_idx = loop->heap_len++;
	rp__heap_up(loop, loop->heap_len - 1);
}

static int rp__timer_alloc(struct rp_loop *loop, uint32_t *idx)
{
	if (!loop->free_timer) {
		uint32_t n = loop->ntimers ? loop->ntimers * 2 : 64;
		struct rp__timer *t;
		uint32_t *h;

		t = realloc(loop->timers, n * sizeof(*t));
		if (!t)
			return -ENOMEM;
		loop->timers = t;
		h = realloc(loop->heap, n * sizeof(*h));
		if (!h)
			return -ENOMEM;
		loop->heap = h;
		for (uint32_t i = n; i > loop->ntimers; i--) {
			memset(&t[i - 1], 0, sizeof(*t));
			t[i - 1].heap_idx = RP__TIMER_IDLE;
			t[i - 1].gen = 1;
			t[i - 1].next_free = loop->free_timer;
			loop->free_timer = i;
		}
		loop->ntimers = n;
	}
	*idx = loop->free_timer - 1;
	loop->free_timer = loop->timers[*idx].next_free;
	return 0;
}

static void rp__timer_release(struct rp_loop *loop, uint32_t idx)
{
	struct rp__timer *t = &loop->timers[idx];

	if (t->heap_idx != RP__TIMER_IDLE)
		rp__heap_remove(loop, idx);
	if (!t->internal)
		loop->user_timers--;
	/* A new generation: the old handle now gets -ENOENT. */
	t->gen = t->gen + 1 ? t->gen + 1 : 1;
	t->next_free = loop->free_timer;
	loop->free_timer = idx + 1;
}

static struct rp__timer *rp__timer_get(struct rp_loop *loop, rp_timer h,
				       uint32_t *idx)
{
	uint32_t i = (uint32_t)h.id;

	if (i >= loop->ntimers || loop->timers[i].gen != h.id >> 32 ||
	    loop->timers[i].heap_idx == RP__TIMER_IDLE)
		return NULL;
	*idx = i;
	return &loop->timers[i];
}

int rp__timer_start(struct rp_loop *loop, uint64_t after_ns, bool internal,
		    rp_timer *out)
{
	struct rp__timer *t;
	uint32_t idx;
	int ret;

	ret = rp__timer_alloc(loop, &idx);
	if (ret < 0)
		return ret;
	t = &loop->timers[idx];
	t->when_ns = rp__now_ns() + after_ns;
	t->repeat_ns = 0;
	t->internal = internal;
	if (!internal)
		loop->user_timers++;
	rp__heap_insert(loop, idx);
	*out = (rp_timer){ (uint64_t)t->gen << 32 | idx };
	return 0;
}

RP_EXPORT int rp_timer_start(struct rp_loop *loop, uint64_t after_ms,
			     uint64_t repeat_ms, rp_timer_fn fn, void *user,
			     rp_timer *out)
{
	/* Beyond this, ms * 1e6 overflows the nanosecond clock. */
	const uint64_t max_ms = UINT64_MAX / 2 / 1000000;
	rp_timer h;
	int ret;

	if (!loop || !fn || !out || after_ms > max_ms || repeat_ms > max_ms)
		return -EINVAL;
	ret = rp__timer_start(loop, after_ms * 1000000, false, &h);
	if (ret < 0)
		return ret;
	loop->timers[(uint32_t)h.id].repeat_ns = repeat_ms * 1000000;
	loop->timers[(uint32_t)h.id].fn = fn;
	loop->timers[(uint32_t)h.id].user = user;
	*out = h;
	return 0;
}

RP_EXPORT int rp_timer_cancel(struct rp_loop *loop, rp_timer h)
{
	uint32_t idx;

	if (!loop)
		return -EINVAL;
	if (!rp__timer_get(loop, h, &idx))
		return -ENOENT;
	rp__timer_release(loop, idx);
	return 0;
}

static int rp__timers_run(struct rp_loop *loop)
{
	uint64_t now = rp__now_ns();
	int n = 0;

	while (loop->heap_len) {
		uint32_t idx = loop->heap[0];
		struct rp__timer *t = &loop->timers[idx];
		rp_timer h = { (uint64_t)t->gen << 32 | idx };

		if (t->when_ns > now)
			break;
		loop->st.timers_fired++;
		n++;
		if (t->internal) {
			uint32_t slot = t->src_slot;
			unsigned dir = t->src_dir;

			rp__timer_release(loop, idx);
			rp__op_deadline(loop, slot, dir, h);
			continue;
		}
		if (t->repeat_ns) {
			/*
			 * Reschedule from the deadline, not from now, so a
			 * repeating timer does not drift; seq keeps its place
			 * behind timers due at the same time. One that fell
			 * behind skips the periods it missed instead of firing
			 * them all in this pass (after rp_loop_stop too).
			 */
			rp__heap_remove(loop, idx);
			t->when_ns += t->repeat_ns;
			if (t->when_ns <= now)
				t->when_ns += ((now - t->when_ns) / t->repeat_ns +
					       1) * t->repeat_ns;
			rp__heap_insert(loop, idx);
			t->fn(loop, h, t->user);
		} else {
			rp_timer_fn fn = t->fn;
			void *user = t->user;

			rp__timer_release(loop, idx);
			fn(loop, h, user);
		}
	}
	return n;
}

/* Nanoseconds until the first timer, -1 if none. */
static int64_t rp__timers_next(struct rp_loop *loop)
{
	uint64_t now, when;

	if (!loop->heap_len)
		return -1;
	when = loop->timers[loop->heap[0]].when_ns;
	now = rp__now_ns();
	return when > now ? (int64_t)(when - now) : 0;
}

/* Cancels an op deadline; internal, so a stale handle is fine. */
void rp__timer_cancel_internal(struct rp_loop *loop, rp_timer h)
{
	uint32_t idx;

	if (rp__timer_get(loop, h, &idx))
		rp__timer_release(loop, idx);
}

/* ---- deferred callbacks: a FIFO linked through rp__op.next ---- */

/* Links encode slot * 2 + dir, plus one so that 0 ends the list. */
void rp__dq_push(struct rp_loop *loop, uint32_t slot, unsigned dir)
{
	uint32_t link = slot * 2 + dir + 1;

	rp__src_at(loop, slot)->op[dir].next = 0;
	if (loop->dq_tail) {
		uint32_t t = loop->dq_tail - 1;

		rp__src_at(loop, t / 2)->op[t % 2].next = link;
	} else {
		loop->dq_head = link;
	}
	loop->dq_tail = link;
}

/*
 * Runs the callbacks queued before this call; those queued by them wait for
 * the next iteration, after the ring has been looked at, so that a source
 * that is always ready cannot starve the others.
 */
static int rp__dq_run(struct rp_loop *loop)
{
	uint32_t link = loop->dq_head;
	int n = 0;

	loop->dq_head = loop->dq_tail = 0;
	while (link) {
		uint32_t slot = (link - 1) / 2;
		unsigned dir = (link - 1) % 2;
		struct rp__op *op = &rp__src_at(loop, slot)->op[dir];

		link = op->next;
		rp__op_report(loop, slot, dir, op->res);
		n++;
	}
	return n;
}

/* ---- cross-thread wake: an eventfd with a multishot poll ---- */

static int rp__wake_arm(struct rp_loop *loop)
{
	return rp__poll_arm(&loop->ring, &loop->wake_poll, loop->wake_fd,
			    POLLIN, true, RP__UD_WAKE, 0);
}

static void rp__wake_cqe(struct rp_loop *loop, const struct io_uring_cqe *cqe)
{
	uint64_t v;

	if (rp__poll_classify(&loop->wake_poll, cqe) == RP__POLL_STALE) {
		loop->st.stale_cqes++;
		return;
	}
	/* Clear the flag before draining: a wake after this writes again. */
	atomic_store(&loop->wake_pending, 0);
	while (read(loop->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	if (!loop->wake_poll.armed)
		rp__wake_arm(loop);
}

RP_EXPORT int rp_loop_wake(struct rp_loop *loop)
{
	uint64_t one = 1;

	if (!loop)
		return -EINVAL;
	/* Only the first wake since the loop last drained pays a write. */
	if (atomic_exchange(&loop->wake_pending, 1))
		return 0;
	while (write(loop->wake_fd, &one, sizeof(one)) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* ---- the loop ---- */

RP_EXPORT int rp_loop_new(struct rp_loop **loopp,
			  const struct rp_loop_config *cfg)
{
	static const struct rp_loop_config defaults;
	struct rp__ring_opts o;
	struct rp_loop *loop;
	int ret;

	if (!loopp)
		return -EINVAL;
	*loopp = NULL;
	if (!cfg)
		cfg = &defaults;
	if (cfg->model != RP_MODEL_READINESS &&
	    cfg->model != RP_MODEL_COMPLETION)
		return -EINVAL;
	if (cfg->flags & ~(unsigned)(RP_LOOP_NO_REGISTERED_FD |
				     RP_LOOP_NO_EXT_ARG))
		return -EINVAL;
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->model = cfg->model;
	loop->wake_fd = -1;
	o = (struct rp__ring_opts){ cfg->setup, cfg->flags, cfg->sq_entries,
				    cfg->cq_entries };
	ret = rp__ring_init(&loop->ring, &o);
	if (ret < 0) {
		free(loop);
		return ret;
	}
	/* Blocking reads never happen: the poll says when it is readable. */
	loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->wake_fd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = rp__wake_arm(loop);
	if (ret < 0)
		goto fail;
	*loopp = loop;
	return 0;
fail:
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	rp__ring_exit(&loop->ring);
	free(loop);
	return ret;
}

static int rp__cqes_run(struct rp_loop *loop)
{
	int n = 0;
	unsigned got;

	do {
		got = rp__ring_harvest(&loop->ring, loop->cqes,
				       RP__CQE_BATCH);
		loop->st.cqes += got;
		for (unsigned i = 0; i < got; i++) {
			const struct io_uring_cqe *cqe = &loop->cqes[i];

			switch (rp__ud_kind(cqe->user_data)) {
			case RP__UD_WAKE:
				rp__wake_cqe(loop, cqe);
				break;
			case RP__UD_POLL_READ:
			case RP__UD_POLL_WRITE:
			case RP__UD_OP_READ:
			case RP__UD_OP_WRITE:
				n += rp__src_cqe(loop, cqe);
				break;
			case RP__UD_RESYNC_READ:
			case RP__UD_RESYNC_WRITE:
				rp__src_resync_cqe(loop, cqe);
				break;
			default:
				/* Failed removes and cancels: harmless. */
				(void)rp__poll_removed(&loop->ring, cqe);
				break;
			}
		}
	} while (got == RP__CQE_BATCH);
	return n;
}

/*
 * The kernel dropped a CQE (rp__ring_dropped: its CQ was full and it could
 * not allocate an overflow entry, under memory or cgroup pressure). Some
 * completion was never seen, and which one is unknown; the op it ended
 * would wait forever, and rp_loop_free with it. So every request that
 * may have been that one is looked at again:
 * - a poll (the wake's, a readiness op's, a completion op's that waits
 *   for readiness) is removed and armed anew. It reports what is ready
 *   now: a spurious wakeup at worst (the retry says EAGAIN and polls
 *   again). The remove leaves one poll in flight, never two; the new
 *   generation makes whatever the old one still posts stale.
 * - an op in flight (completion model) is cancelled by its user_data.
 *   Found: it moved nothing (-ECANCELED) and is submitted again as it was
 *   (rp__op_resynced). Completing: its own CQE follows. Not found: its
 *   CQE was posted before the cancel's; if it is still missing once the
 *   kernel has run its deferred completions, it was the dropped one. How
 *   many bytes it moved is unknown, so it ends with -EIO, never with a
 *   silently wrong count (as the epoll layer's completion sockets do,
 *   rp__cs_lost).
 * Timers are the loop's own heap, not requests on the ring: they have no
 * CQE to lose (the wait timeout's CQE is dropped by the harvest anyway).
 * Returns the callbacks run.
 */
static int rp__loop_recover(struct rp_loop *loop)
{
	int n = 0;

	/* Bounded: no cancel is queued meanwhile, so no new loss comes. */
	while (loop->lost_ops) {
		n += rp__src_lost(loop, false);
		(void)rp__ring_run_deferred(&loop->ring);
		n += rp__cqes_run(loop);
		loop->resync_due |= rp__ring_dropped(&loop->ring);
		n += rp__src_lost(loop, true);
	}
	if (loop->resync_due) {
		/*
		 * Without an SQE (a submit failed) it is tried again after
		 * the next harvest.
		 */
		loop->resync_due =
			rp__poll_cancel(&loop->ring, &loop->wake_poll,
					RP__UD_WAKE, 0) < 0 ||
			rp__wake_arm(loop) < 0 || rp__src_resync(loop) < 0;
	}
	return n;
}

RP_EXPORT int rp_loop_run_once(struct rp_loop *loop, int timeout_ms)
{
	int64_t tmo, next;
	int ret, n;

	if (!loop)
		return -EINVAL;
	if (loop->dq_head) {
		tmo = 0;
	} else {
		tmo = timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000;
		next = rp__timers_next(loop);
		if (next >= 0 && (tmo < 0 || next < tmo))
			tmo = next;
	}
	ret = rp__ring_enter(&loop->ring, true, tmo, NULL);
	/*
	 * ETIME: the timeout passed. EINTR: a signal. EBUSY/EAGAIN: the
	 * kernel wants the CQ drained (or memory) before it takes more
	 * SQEs; draining is what comes next, and the SQEs stay queued.
	 */
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY &&
	    ret != -EAGAIN)
		return ret;
	n = rp__cqes_run(loop);
	/* The one branch a dropped CQE costs: see rp__loop_recover. */
	loop->resync_due |= rp__ring_dropped(&loop->ring);
	if (rp__unlikely(loop->resync_due || loop->lost_ops))
		n += rp__loop_recover(loop);
	n += rp__timers_run(loop);
	n += rp__dq_run(loop);
	return n;
}

static bool rp__loop_alive(const struct rp_loop *loop)
{
	return loop->pending_ops || loop->user_timers || loop->dq_head;
}

RP_EXPORT int rp_loop_run(struct rp_loop *loop)
{
	int ret = 0;

	if (!loop)
		return -EINVAL;
	while (!loop->stop && rp__loop_alive(loop)) {
		ret = rp_loop_run_once(loop, -1);
		if (ret < 0)
			break;
		ret = 0;
	}
	loop->stop = false;
	return ret;
}

RP_EXPORT void rp_loop_stop(struct rp_loop *loop)
{
	if (loop)
		loop->stop = true;
}

RP_EXPORT void rp_loop_free(struct rp_loop *loop)
{
	if (!loop)
		return;
	loop->freeing = true;
	/* User timers must not fire while the loop is being torn down. */
	for (uint32_t i = 0; i < loop->ntimers; i++) {
		if (loop->timers[i].heap_idx != RP__TIMER_IDLE &&
		    !loop->timers[i].internal)
			rp__timer_release(loop, i);
	}
	rp__src_close_all(loop);
	/*
	 * In the completion model the kernel may still be writing into the
	 * user's buffers: wait for every cancelled op's CQE before the ring
	 * goes. A ring that stopped working cannot deliver them; give up
	 * rather than hang.
	 */
	while (loop->pending_ops) {
		if (rp_loop_run_once(loop, -1) < 0)
			break;
	}
	rp__src_free_all(loop);
	rp__ring_exit(&loop->ring);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	free(loop->timers);
	free(loop->heap);
	free(loop);
}

RP_EXPORT enum rp_model rp_loop_model(const struct rp_loop *loop)
{
	return loop ? loop->model : RP_MODEL_READINESS;
}

RP_EXPORT void rp_loop_stats(const struct rp_loop *loop, struct rp_stats *st)
{
	if (!loop || !st)
		return;
	*st = loop->st;
	st->enters = loop->ring.enters;
	st->sqes = loop->ring.sqes;
	st->cq_overflow_flushes = loop->ring.overflow_flushes;
}

RP_EXPORT void rp_loop_ring_info(const struct rp_loop *loop,
				 struct rp_ring_info *info)
{
	if (loop && info)
		rp__ring_info(&loop->ring, info);
}

RP_EXPORT uint64_t rp_loop_now_ms(const struct rp_loop *loop)
{
	(void)loop;
	return rp__now_ns() / 1000000;
}

RP_EXPORT const char *rp_strerror(int res)
{
	return strerror(res < 0 ? -res : res);
}
