/* SPDX-License-Identifier: MIT */
/*
 * The io_uring underneath: setup with feature probing, SQE allocation that
 * never fails for a full SQ, submit-and-wait, and CQE harvest that never
 * loses a CQE to an overflow. Used by the loop (lib/loop.c) and by the
 * epoll layer (compat/epctx.c).
 */
#ifndef RP_RING_H
#define RP_RING_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>
#include <liburing.h>

#include "ringpoll.h"
#include "internal.h"

/* rp__ring_opts.flags */
enum {
	RP__RING_NO_REGISTERED_FD = RP_LOOP_NO_REGISTERED_FD,
	RP__RING_NO_EXT_ARG = RP_LOOP_NO_EXT_ARG,
	/*
	 * More than one thread submits (the epoll layer): SINGLE_ISSUER and
	 * registered ring fds, both bound to one task, are out.
	 */
	RP__RING_SHARED = 1u << 8,
	/*
	 * One thread at a time submits and waits, and it need not be the
	 * thread that made the ring (the epoll layer): SINGLE_ISSUER and
	 * DEFER_TASKRUN, set up disabled, so that the first thread that
	 * enters it (rp__ring_own) becomes its owner. A completion is then
	 * never task work for any other thread, nor for the owner outside
	 * its own io_uring_enter. Other threads queue SQEs only.
	 */
	RP__RING_OWNED = 1u << 9,
};

struct rp__ring_opts {
	enum rp_setup setup;
	unsigned flags;
	unsigned sq_entries;
	unsigned cq_entries;
};

struct rp__ring {
	struct io_uring uring;
	unsigned enter_flags;	/* IORING_ENTER_REGISTERED_RING or 0 */
	int enter_fd;		/* registered index or the ring fd */
	bool ext_arg;
	bool skip_success;	/* IOSQE_CQE_SKIP_SUCCESS works (5.17) */
	enum rp_setup setup;
	unsigned setup_flags;
	/* The timespec of a wait timeout SQE; the kernel reads it at issue. */
	struct __kernel_timespec timeout_ts;
	uint64_t enters, sqes, overflow_flushes;
	/*
	 * The kernel's count of CQEs it dropped (NODROP holds only while it
	 * can allocate the overflow entry: GFP_ATOMIC, charged to the
	 * cgroup), when last looked at: rp__ring_dropped.
	 */
	unsigned cq_dropped;
	/*
	 * RP__RING_OWNED: the thread that may enter (its tid), 0 until one
	 * does. SQEs queued by other threads while the SQ is full wait in
	 * the backlog, in order, for the owner to submit them.
	 */
	bool owned;
	pid_t owner;
	/*
	 * A POLL_REMOVE waits in the SQ. Under DEFER_TASKRUN, submitted
	 * while its poll's completion is pending as deferred work, it finds
	 * the poll owned by that work and fails: run the work first
	 * (rp__ring_run_deferred). Cleared by a submitting enter.
	 */
	bool removes_queued;
	struct io_uring_sqe *backlog;
	unsigned nbacklog, backlog_cap;
};

/* The calling thread's id, cached (reset in a forked child). */
extern __thread pid_t rp__tid_cache __attribute__((tls_model("initial-exec")));
pid_t rp__tid_slow(void);

static inline pid_t rp__tid(void)
{
	return rp__likely(rp__tid_cache) ? rp__tid_cache : rp__tid_slow();
}

int rp__ring_own_slow(struct rp__ring *r, bool claim);

/*
 * May the calling thread enter the ring? 0 if so: a ring that is not
 * RP__RING_OWNED, or owned by this thread, or (claim) owned by nobody
 * yet, which the caller then owns. -EXDEV if another thread owns it (or
 * nobody, without claim: then nothing was ever submitted). Other errors
 * are the enable's.
 */
static inline int rp__ring_own(struct rp__ring *r, bool claim)
{
	if (rp__likely(!r->owned || r->owner == rp__tid()))
		return 0;
	return rp__ring_own_slow(r, claim);
}

int rp__ring_init(struct rp__ring *r, const struct rp__ring_opts *o);
void rp__ring_exit(struct rp__ring *r);
void rp__ring_info(const struct rp__ring *r, struct rp_ring_info *info);

/* An SQE, prepared by the caller; NULL (and -errno) only if submit fails. */
struct io_uring_sqe *rp__ring_sqe_slow(struct rp__ring *r, int *err);

static inline struct io_uring_sqe *rp__ring_sqe(struct rp__ring *r, int *err)
{
	struct io_uring_sqe *sqe;

	/* Once there is a backlog, later SQEs queue behind it. */
	if (rp__likely(!r->nbacklog) &&
	    rp__likely((sqe = io_uring_get_sqe(&r->uring)) != NULL))
		return sqe;
	return rp__ring_sqe_slow(r, err);
}

/* SQEs queued in user space and not yet handed to the kernel. */
static inline unsigned rp__ring_unsubmitted(const struct rp__ring *r)
{
	return r->uring.sq.sqe_tail - *r->uring.sq.khead + r->nbacklog;
}

/*
 * Submits what is queued and, if wait, blocks until a CQE is there, the
 * timeout (ns, -1 for none) passes, or a signal arrives (with mask as the
 * signal mask meanwhile, if not NULL). Returns 0 or -ETIME, -EINTR, ...
 * Makes no syscall when nothing is queued and a CQE is ready already, or
 * when nothing is queued and it is not asked to wait.
 */
int rp__ring_enter(struct rp__ring *r, bool wait, int64_t timeout_ns,
		   const sigset_t *mask);

/*
 * Submits what is queued and runs the completions the kernel deferred
 * (DEFER_TASKRUN), without waiting: afterwards no cancelled request holds
 * a file. No syscall when nothing is queued or deferred.
 */
int rp__ring_settle(struct rp__ring *r);

/*
 * Publishes queued SQEs (the SQ tail) and returns how many the kernel has
 * not taken yet. With several threads, call it under their lock. The
 * owner's flush moves the backlog into the SQ first, submitting as it
 * goes if the SQ fills.
 */
unsigned rp__ring_flush(struct rp__ring *r);

/*
 * Submits the submit SQEs rp__ring_flush() published and blocks until a
 * CQE is there, the timeout passes or a signal arrives. It does not touch
 * the SQ, so other threads may queue SQEs meanwhile. Needs
 * IORING_FEAT_EXT_ARG for a timeout. Returns the number submitted or
 * -errno; when it submitted, the kernel reports the submission, not ETIME
 * or EINTR: the caller must tell those apart itself. It updates no
 * counter (the caller may not hold its lock): the caller does. It enters
 * through @fd, which the caller read from r->enter_fd under its lock:
 * closing an epoll instance under a waiter replaces r->enter_fd.
 */
int rp__ring_wait(struct rp__ring *r, int fd, unsigned submit,
		  int64_t timeout_ns, const sigset_t *mask);

/*
 * Drops this process's mappings of a ring inherited through fork(), without
 * entering or closing it: it is still the parent's.
 */
void rp__ring_forget(struct rp__ring *r);

/* Submits what is queued without waiting; returns 0 or -errno. */
int rp__ring_submit(struct rp__ring *r);

/*
 * Copies up to max CQEs out of the CQ and frees their slots, flushing a
 * kernel-side overflow into the CQ when the CQ runs dry. Drops the CQEs of
 * the ring's own wait timeouts. Returns the number copied.
 */
unsigned rp__ring_harvest(struct rp__ring *r, struct io_uring_cqe *out,
			  unsigned max);

/*
 * Has the kernel dropped a CQE since the last look? Then some completion
 * was never seen: the caller must find again what it would have said.
 */
bool rp__ring_dropped(struct rp__ring *r);

/*
 * The CQ's tail: how many CQEs the kernel has posted (mod 2^32). Comparing
 * two readings tells whether anything was posted in between, whoever
 * harvested it since.
 */
static inline unsigned rp__ring_cq_posted(const struct rp__ring *r)
{
	return io_uring_smp_load_acquire(r->uring.cq.ktail);
}

/* Completions deferred to the owner's next GETEVENTS (DEFER_TASKRUN). */
static inline bool rp__ring_tw_pending(const struct rp__ring *r)
{
	return r->setup == RP_SETUP_DEFER_TASKRUN &&
	       (IO_URING_READ_ONCE(*r->uring.sq.kflags) & IORING_SQ_TASKRUN);
}

/*
 * The owner runs the deferred completions, submitting nothing: a poll
 * whose wakeup's task work is pending belongs to that work, and a remove
 * submitted before it runs fails (-EALREADY) and leaves the poll armed,
 * holding its file. 0, or -errno (-EXDEV: not the owner).
 */
int rp__ring_run_deferred(struct rp__ring *r);

/* True if a CQE can be harvested now without entering the kernel. */
static inline bool rp__ring_cq_ready(const struct rp__ring *r)
{
	return io_uring_cq_ready(&r->uring) != 0;
}

#endif /* RP_RING_H */
