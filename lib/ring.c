/* SPDX-License-Identifier: MIT */
/*
 * io_uring setup and the two hot paths around it: entering the kernel
 * (submit, wait) and harvesting CQEs.
 *
 * liburing sets the ring up and hands out SQEs; entering the kernel is done
 * here so that every io_uring_enter is counted, skipped when it would do
 * nothing, and given exactly the flags it needs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault.h"
#include "ring.h"

/*
 * The ladder of setups, best first. DEFER_TASKRUN runs completions only when
 * we ask for them (no task_work interrupts), COOP_TASKRUN runs them at the
 * next syscall instead of with an IPI; both cost about 20% less CPU per
 * request than a plain ring here. TASKRUN_FLAG makes the kernel say in the
 * SQ flags when completions are waiting to be run, so a non-blocking peek
 * can skip io_uring_enter when there is nothing.
 */
static const struct {
	enum rp_setup setup;
	unsigned flags;
} rp__rungs[] = {
	{ RP_SETUP_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER |
					  IORING_SETUP_DEFER_TASKRUN |
					  IORING_SETUP_TASKRUN_FLAG },
	{ RP_SETUP_COOP_TASKRUN,
	  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG },
	{ RP_SETUP_PLAIN, 0 },
};

/* Deferred completions a GETEVENTS for none runs (IO_LOCAL_TW_DEFAULT_MAX). */
#define RP__LOCAL_TW_MAX 20
/* Plain enters for them before one that runs them all (rp__ring_sys_enter). */
#define RP__LOCAL_TW_ROUNDS 4

/* Default SQ size: enough for a burst of re-arms between two waits. */
#define RP__SQ_DEFAULT 256
/*
 * Default CQ size per SQ entry. Every armed poll may post a CQE, and many
 * more polls are armed than SQEs are queued at once; overflow is handled
 * (never lost) but costs an extra io_uring_enter, so keep it rare.
 */
#define RP__CQ_PER_SQ 16

static int rp__ring_try(struct rp__ring *r, unsigned sq, unsigned cq,
			unsigned flags, struct io_uring_params *p)
{
	/*
	 * SUBMIT_ALL (5.18) keeps submitting after an SQE fails at prep, so
	 * one bad re-arm cannot hold back the others; retry without it on
	 * older kernels.
	 */
	static const unsigned extra[] = { IORING_SETUP_SUBMIT_ALL, 0 };
	int ret = -EINVAL;

	for (unsigned i = 0; i < 2; i++) {
		memset(p, 0, sizeof(*p));
		p->flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | flags |
			   extra[i];
		p->cq_entries = cq;
		ret = io_uring_queue_init_params(sq, &r->uring, p);
		if (ret != -EINVAL)
			return ret;
	}
	return ret;
}

int rp__ring_init(struct rp__ring *r, const struct rp__ring_opts *o)
{
	struct io_uring_params p;
	unsigned sq = o->sq_entries ? o->sq_entries : RP__SQ_DEFAULT;
	unsigned cq = o->cq_entries ? o->cq_entries : sq * RP__CQ_PER_SQ;
	unsigned flags;
	int ret = -EINVAL;
	size_t i;

	memset(r, 0, sizeof(*r));
	if (o->setup > RP_SETUP_PLAIN)
		return -EINVAL;
	if (cq < sq)
		cq = sq;
	for (i = 0; i < sizeof(rp__rungs) / sizeof(rp__rungs[0]); i++) {
		if (o->setup != RP_SETUP_AUTO && o->setup != rp__rungs[i].setup)
			continue;
		if ((o->flags & RP__RING_SHARED) &&
		    (rp__rungs[i].flags & IORING_SETUP_SINGLE_ISSUER))
			continue;
		flags = rp__rungs[i].flags;
		if ((o->flags & RP__RING_OWNED) &&
		    (flags & IORING_SETUP_SINGLE_ISSUER))
			flags |= IORING_SETUP_R_DISABLED;
		ret = rp__ring_try(r, sq, cq, flags, &p);
		/* EINVAL: this kernel lacks the rung, try the next one. */
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0)
		return ret;
	r->setup = rp__rungs[i].setup;
	r->setup_flags = p.flags;
	/*
	 * Without NODROP (5.5) a full CQ silently drops completions, which
	 * would lose events: refuse such a kernel (the minimum is 5.13).
	 */
	if (!(p.features & IORING_FEAT_NODROP)) {
		io_uring_queue_exit(&r->uring);
		return -EOPNOTSUPP;
	}
	r->ext_arg = (p.features & IORING_FEAT_EXT_ARG) &&
		     !(o->flags & RP__RING_NO_EXT_ARG);
	r->skip_success = p.features & IORING_FEAT_CQE_SKIP;
	r->cq_dropped = IO_URING_READ_ONCE(*r->uring.cq.koverflow);
	r->enter_fd = r->uring.ring_fd;
	r->owned = (p.flags & IORING_SETUP_R_DISABLED) != 0;
	/*
	 * A registered ring fd (5.18) saves the fdget/fdput of every enter.
	 * It is registered for the calling task only, so a ring entered from
	 * several threads cannot use it, nor can one whose owner is not
	 * known yet.
	 */
	if (!(o->flags & (RP__RING_NO_REGISTERED_FD | RP__RING_SHARED |
			  RP__RING_OWNED)) &&
	    io_uring_register_ring_fd(&r->uring) == 1) {
		r->enter_fd = r->uring.enter_ring_fd;
		r->enter_flags = IORING_ENTER_REGISTERED_RING;
	}
	return 0;
}

void rp__ring_exit(struct rp__ring *r)
{
	int fd = r->uring.ring_fd;

	/*
	 * Not io_uring_queue_exit: liburing unmaps with raw syscalls, which
	 * ThreadSanitizer does not see, and a ring mapped later at the same
	 * address then looks like a race with this one's SQE writes (an
	 * instance made the kernel's epoll keeps its mappings until its
	 * last reference, in whichever thread). rp__ring_forget unmaps
	 * through the C library.
	 */
	if (r->uring.sq.ring_ptr) {
		if (r->enter_flags & IORING_ENTER_REGISTERED_RING)
			io_uring_unregister_ring_fd(&r->uring);
		rp__ring_forget(r);
	} else {
		free(r->backlog);
		memset(r, 0, sizeof(*r));
		r->uring.ring_fd = -1;
	}
	if (fd > 0)
		syscall(SYS_close, fd);
}

void rp__ring_info(const struct rp__ring *r, struct rp_ring_info *info)
{
	memset(info, 0, sizeof(*info));
	info->setup = r->setup;
	info->setup_flags = r->setup_flags;
	info->features = r->uring.features;
	info->sq_entries = r->uring.sq.ring_entries;
	info->cq_entries = r->uring.cq.ring_entries;
	info->registered_fd = r->enter_flags != 0;
	info->ext_arg = r->ext_arg;
	info->ring_fd = r->uring.ring_fd;
}

__thread pid_t rp__tid_cache __attribute__((tls_model("initial-exec")));

pid_t rp__tid_slow(void)
{
	rp__tid_cache = (pid_t)syscall(SYS_gettid);
	return rp__tid_cache;
}

int rp__ring_own_slow(struct rp__ring *r, bool claim)
{
	if (r->owner || !claim)
		return -EXDEV;
	/* The thread that enables a SINGLE_ISSUER ring is its submitter. */
	if (syscall(__NR_io_uring_register, r->uring.ring_fd,
		    IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
		return -errno;
	r->owner = rp__tid();
	return 0;
}

/* Publishes queued SQEs to the kernel; returns how many it has not read. */
static unsigned rp__ring_publish(struct rp__ring *r)
{
	struct io_uring_sq *sq = &r->uring.sq;
	unsigned tail = sq->sqe_tail;

	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		io_uring_smp_store_release(sq->ktail, tail);
	}
	return tail - io_uring_smp_load_acquire(sq->khead);
}

int rp__fault_enter, rp__fault_wait, rp__fault_alloc, rp__fault_cqdrop;

static int rp__ring_sys_enter(struct rp__ring *r, unsigned submit,
			      unsigned want, unsigned flags, const void *arg,
			      size_t argsz);

/* The owner moves the backlog into the SQ, submitting when it is full. */
static void rp__ring_drain(struct rp__ring *r)
{
	unsigned i = 0;

	while (i < r->nbacklog) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);

		if (sqe) {
			*sqe = r->backlog[i++];
			continue;
		}
		if (rp__ring_sys_enter(r, rp__ring_publish(r), 0,
				       r->setup == RP_SETUP_DEFER_TASKRUN ?
					       IORING_ENTER_GETEVENTS :
					       0,
				       NULL, 0) < 0)
			break;
	}
	memmove(r->backlog, r->backlog + i,
		(r->nbacklog - i) * sizeof(*r->backlog));
	r->nbacklog -= i;
}

unsigned rp__ring_flush(struct rp__ring *r)
{
	if (rp__unlikely(r->nbacklog) && rp__ring_own(r, false) == 0)
		rp__ring_drain(r);
	return rp__ring_publish(r);
}

/* An SQE for a thread that may not submit, behind the others. */
static struct io_uring_sqe *rp__ring_backlog(struct rp__ring *r, int *err)
{
	struct io_uring_sqe *sqe;

	if (r->nbacklog == r->backlog_cap) {
		unsigned cap = r->backlog_cap ? 2 * r->backlog_cap : 64;
		struct io_uring_sqe *b =
			realloc(r->backlog, cap * sizeof(*b));

		if (!b) {
			if (err)
				*err = -ENOMEM;
			return NULL;
		}
		r->backlog = b;
		r->backlog_cap = cap;
	}
	sqe = &r->backlog[r->nbacklog++];
	memset(sqe, 0, sizeof(*sqe));
	return sqe;
}

static int rp__ring_sys_enter(struct rp__ring *r, unsigned submit,
			      unsigned want, unsigned flags, const void *arg,
			      size_t argsz)
{
	unsigned tail = rp__ring_cq_posted(r);
	long ret;

	if (rp__unlikely(rp__fault_enter))
		return -rp__fault_take(&rp__fault_enter);
	r->enters++;
	ret = syscall(__NR_io_uring_enter, r->enter_fd, submit, want,
		      flags | r->enter_flags, arg, argsz);
	/*
	 * EBADR: the kernel dropped CQEs (see cq_dropped), told once; the
	 * caller learns it from rp__ring_dropped after its harvest.
	 */
	if (ret < 0 && errno != EBADR)
		return -errno;
	if (ret < 0)
		ret = 0;
	if (submit)
		r->removes_queued = false;
	/*
	 * DEFER_TASKRUN: a GETEVENTS that waits for nothing runs at most 20
	 * deferred completions (IO_LOCAL_TW_DEFAULT_MAX) and leaves the
	 * rest for later enters, flagged. While one ran that many and more
	 * are flagged, enter again: a plain enter costs less than the timer
	 * of one that asks for a CQ's worth with a zero timeout, which runs
	 * them all and is left for thousands.
	 */
	for (unsigned round = 0;
	     r->setup == RP_SETUP_DEFER_TASKRUN &&
	     (flags & IORING_ENTER_GETEVENTS) && !want &&
	     rp__ring_cq_posted(r) - tail >= RP__LOCAL_TW_MAX &&
	     (IO_URING_READ_ONCE(*r->uring.sq.kflags) & IORING_SQ_TASKRUN);
	     round++) {
		static const struct __kernel_timespec zero;
		struct io_uring_getevents_arg all = {
			.ts = (uint64_t)(uintptr_t)&zero,
		};
		bool timer = round >= RP__LOCAL_TW_ROUNDS && r->ext_arg;

		tail = rp__ring_cq_posted(r);
		r->enters++;
		if (syscall(__NR_io_uring_enter, r->enter_fd, 0,
			    timer ? r->uring.cq.ring_entries : 0,
			    IORING_ENTER_GETEVENTS | r->enter_flags |
				    (timer ? IORING_ENTER_EXT_ARG : 0),
			    timer ? &all : NULL, timer ? sizeof(all) : 0) < 0 &&
		    errno != ETIME && errno != EBADR)
			return -errno;
		if (timer)
			break;
	}
	r->sqes += (uint64_t)ret;
	return 0;
}

int rp__ring_enter(struct rp__ring *r, bool wait, int64_t timeout_ns,
		   const sigset_t *mask)
{
	struct io_uring_getevents_arg arg;
	struct __kernel_timespec ts;
	unsigned submit, sqflags, flags = 0, want = 0;
	const void *argp = NULL;
	size_t argsz = 0;
	int err;

	if (rp__unlikely(r->owned) && (err = rp__ring_own(r, false)) < 0)
		return err;
	submit = rp__ring_flush(r);
	sqflags = IO_URING_READ_ONCE(*r->uring.sq.kflags);
	/*
	 * Completions are waiting to be posted, or posted ones overflowed.
	 * Under DEFER_TASKRUN what the submission itself completes (a poll
	 * armed on a ready file) is posted only by GETEVENTS, too.
	 */
	if ((sqflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) ||
	    (submit && r->setup == RP_SETUP_DEFER_TASKRUN))
		flags |= IORING_ENTER_GETEVENTS;
	if (wait && timeout_ns != 0 && !io_uring_cq_ready(&r->uring)) {
		want = 1;
		flags |= IORING_ENTER_GETEVENTS;
	}
	if (!submit && !flags)
		return 0;
	if (want && (timeout_ns > 0 || mask)) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		if (r->ext_arg) {
			memset(&arg, 0, sizeof(arg));
			arg.sigmask = (uint64_t)(uintptr_t)mask;
			arg.sigmask_sz = _NSIG / 8;
			arg.ts = timeout_ns > 0 ? (uint64_t)(uintptr_t)&ts : 0;
			flags |= IORING_ENTER_EXT_ARG;
			argp = &arg;
			argsz = sizeof(arg);
		} else {
			if (timeout_ns > 0) {
				struct io_uring_sqe *sqe =
					rp__ring_sqe(r, &err);

				if (!sqe)
					return err;
				/*
				 * count 1: the timeout completes when any CQE
				 * is posted, so it never outlives the wait by
				 * more than one CQE. harvest() drops its CQE.
				 */
				r->timeout_ts = ts;
				io_uring_prep_timeout(sqe, &r->timeout_ts, 1,
						      0);
				sqe->user_data = rp__ud(RP__UD_TIMEOUT, 0, 0);
				submit = rp__ring_flush(r);
			}
			argp = mask;
			argsz = mask ? _NSIG / 8 : 0;
		}
	}
	return rp__ring_sys_enter(r, submit, want, flags, argp, argsz);
}

int rp__ring_wait(struct rp__ring *r, int fd, unsigned submit,
		  int64_t timeout_ns, const sigset_t *mask)
{
	struct io_uring_getevents_arg arg = {
		.sigmask = (uint64_t)(uintptr_t)mask,
		.sigmask_sz = _NSIG / 8,
	};
	struct __kernel_timespec ts;
	unsigned flags = IORING_ENTER_GETEVENTS | r->enter_flags;
	const void *argp = mask;
	size_t argsz = mask ? _NSIG / 8 : 0;
	long ret;

	if (timeout_ns >= 0) {
		if (!r->ext_arg)
			return -EOPNOTSUPP;
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		arg.ts = (uint64_t)(uintptr_t)&ts;
	}
	if (r->ext_arg) {
		flags |= IORING_ENTER_EXT_ARG;
		argp = &arg;
		argsz = sizeof(arg);
	}
	if (rp__unlikely(rp__fault_enter))
		return -rp__fault_take(&rp__fault_enter);
	if (rp__unlikely(rp__fault_wait))
		return -rp__fault_take(&rp__fault_wait);
	/* No counters here: the caller may not hold its lock. */
	ret = syscall(__NR_io_uring_enter, fd, submit, 1, flags, argp, argsz);
	/* EBADR: CQEs dropped, told once (rp__ring_dropped says it). */
	if (ret < 0 && errno == EBADR)
		return 0;
	return ret < 0 ? -errno : (int)ret;
}

void rp__ring_forget(struct rp__ring *r)
{
	struct io_uring *u = &r->uring;

	free(r->backlog);
	munmap(u->sq.sqes, u->sq.ring_entries * sizeof(struct io_uring_sqe));
	if (u->cq.ring_ptr && u->cq.ring_ptr != u->sq.ring_ptr)
		munmap(u->cq.ring_ptr, u->cq.ring_sz);
	munmap(u->sq.ring_ptr, u->sq.ring_sz);
	memset(r, 0, sizeof(*r));
	r->uring.ring_fd = -1;
}

int rp__ring_submit(struct rp__ring *r)
{
	return rp__ring_enter(r, false, 0, NULL);
}

int rp__ring_run_deferred(struct rp__ring *r)
{
	int err;

	if (rp__unlikely(r->owned) && (err = rp__ring_own(r, false)) < 0)
		return err;
	err = rp__ring_sys_enter(r, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
	return err < 0 ? err : 0;
}

int rp__ring_settle(struct rp__ring *r)
{
	unsigned submit, sqflags;
	int err;

	if (rp__unlikely(r->owned) && (err = rp__ring_own(r, false)) < 0)
		return err;
	submit = rp__ring_flush(r);
	sqflags = IO_URING_READ_ONCE(*r->uring.sq.kflags);

	if (!submit && !(sqflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)))
		return 0;
	/*
	 * Only DEFER_TASKRUN keeps completions back until GETEVENTS; other
	 * setups run them on the way out of this syscall.
	 */
	return rp__ring_sys_enter(r, submit, 0,
				  r->setup == RP_SETUP_DEFER_TASKRUN ?
					  IORING_ENTER_GETEVENTS :
					  0,
				  NULL, 0);
}

struct io_uring_sqe *rp__ring_sqe_slow(struct rp__ring *r, int *err)
{
	struct io_uring_sqe *sqe;
	int ret;

	/* Not ours to submit: the owner will, in order. */
	if (r->owned && rp__ring_own(r, false) < 0)
		return rp__ring_backlog(r, err);
	/* The SQ is full: hand it to the kernel and take a fresh entry. */
	ret = rp__ring_submit(r);
	if (rp__unlikely(r->nbacklog))
		return rp__ring_backlog(r, err);
	sqe = io_uring_get_sqe(&r->uring);
	if (!sqe && err)
		*err = ret < 0 ? ret : -EBUSY;
	return sqe;
}

bool rp__ring_dropped(struct rp__ring *r)
{
	unsigned now = IO_URING_READ_ONCE(*r->uring.cq.koverflow);

	if (rp__likely(now == r->cq_dropped) &&
	    rp__likely(rp__fault_cqdrop != 2))
		return false;
	r->cq_dropped = now;
	if (rp__fault_cqdrop == 2)
		rp__fault_cqdrop = 0;
	return true;
}

unsigned rp__ring_harvest(struct rp__ring *r, struct io_uring_cqe *out,
			  unsigned max)
{
	struct io_uring_cq *cq = &r->uring.cq;
	unsigned n = 0;

	for (;;) {
		unsigned head = *cq->khead;
		unsigned tail = io_uring_smp_load_acquire(cq->ktail);

		for (; head != tail && n < max; head++) {
			const struct io_uring_cqe *cqe =
				&cq->cqes[head & cq->ring_mask];

			if (rp__unlikely(rp__ud_kind(cqe->user_data) ==
					 RP__UD_TIMEOUT))
				continue;
			/* The test's dropped CQE: 1 drops one, 2 says so. */
			if (rp__unlikely(rp__fault_cqdrop == 1)) {
				rp__fault_cqdrop = 2;
				continue;
			}
			out[n++] = *cqe;
		}
		io_uring_smp_store_release(cq->khead, head);
		if (n == max || head != tail)
			break;
		/*
		 * The CQ is drained. If it overflowed, the kernel holds the
		 * rest (NODROP) until an enter with GETEVENTS flushes them.
		 */
		if (!(IO_URING_READ_ONCE(*r->uring.sq.kflags) &
		      IORING_SQ_CQ_OVERFLOW) ||
		    rp__ring_own(r, false) < 0)
			break;
		r->overflow_flushes++;
		if (rp__ring_sys_enter(r, 0, 0, IORING_ENTER_GETEVENTS, NULL,
				       0) < 0 ||
		    io_uring_smp_load_acquire(cq->ktail) == tail)
			break;
	}
	return n;
}
