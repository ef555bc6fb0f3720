/* SPDX-License-Identifier: MIT */
/*
 * Readiness requests: arm, update, cancel. See poll.h for the generation
 * rule that keeps a stale CQE from ever being delivered.
 */
#include <errno.h>

#include "poll.h"

int rp__poll_arm(struct rp__ring *r, struct rp__poll *p, int fd,
		 uint32_t mask, bool multishot, unsigned kind, uint32_t slot)
{
	struct io_uring_sqe *sqe;
	int err;

	sqe = rp__ring_sqe(r, &err);
	if (!sqe)
		return err;
	p->gen++;
	p->mask = mask;
	p->armed = true;
	p->multishot = multishot;
	if (multishot)
		io_uring_prep_poll_multishot(sqe, fd, mask);
	else
		io_uring_prep_poll_add(sqe, fd, mask);
	sqe->user_data = rp__ud(kind, slot, p->gen);
	return 0;
}

/*
 * A POLL_REMOVE whose own CQE nobody needs on success. A failure says
 * which request it was for (RP__UD_REMOVE_OF): -EALREADY means the request
 * was completing, and a one-shot whose completion then finds its file not
 * ready re-arms itself in the kernel, silently, under the old user_data.
 */
struct io_uring_sqe *rp__poll_remove_sqe(struct rp__ring *r, uint64_t target,
					 int *err)
{
	struct io_uring_sqe *sqe = rp__ring_sqe(r, err);

	if (!sqe)
		return NULL;
	io_uring_prep_poll_remove(sqe, target);
	sqe->user_data = target | RP__UD_REMOVE_OF;
	r->removes_queued = true;
	if (r->skip_success)
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	return sqe;
}

bool rp__poll_removed(struct rp__ring *r, const struct io_uring_cqe *cqe)
{
	if (rp__likely(!(rp__ud_kind(cqe->user_data) & RP__UD_REMOVE_OF)))
		return false;
	/*
	 * Found completing: the completion's task work was pending. A
	 * one-shot whose task work then finds its file not ready (the
	 * wakeup's key overstated, or the bytes were read meanwhile) re-arms
	 * itself in the kernel and posts nothing, holding its file for the
	 * ring's life (a closed socket's peer never saw the hangup). This
	 * remove goes in after that work has run: the poll is found
	 * re-armed, or gone (-ENOENT).
	 */
	if (cqe->res == -EALREADY)
		(void)rp__poll_remove_sqe(r,
					  cqe->user_data &
						  ~(uint64_t)RP__UD_REMOVE_OF,
					  NULL);
	return true;
}

int rp__poll_cancel(struct rp__ring *r, struct rp__poll *p, unsigned kind,
		    uint32_t slot)
{
	int err;

	if (p->armed &&
	    !rp__poll_remove_sqe(r, rp__ud(kind, slot, p->gen), &err))
		return err;
	p->gen++;
	p->armed = false;
	return 0;
}

int rp__poll_update(struct rp__ring *r, struct rp__poll *p, int fd,
		    uint32_t mask, unsigned kind, uint32_t slot)
{
	struct io_uring_sqe *sqe;
	uint64_t old;
	int err;

	if (!p->armed)
		return rp__poll_arm(r, p, fd, mask, p->multishot, kind, slot);
	old = rp__ud(kind, slot, p->gen);
	sqe = rp__ring_sqe(r, &err);
	if (!sqe)
		return err;
	p->gen++;
	p->mask = mask;
	/*
	 * Update mask and user_data in place: one SQE instead of remove and
	 * add, and the request keeps its place on the wait queue. If the old
	 * request completed meanwhile, the update fails; its CQE carries the
	 * new generation so rp__poll_classify() reports RP__POLL_REARM. A
	 * multishot stays one: the update's flags say so, as an add's do.
	 */
	io_uring_prep_poll_update(sqe, old, rp__ud(kind, slot, p->gen), mask,
				  IORING_POLL_UPDATE_EVENTS |
					  IORING_POLL_UPDATE_USER_DATA |
					  (p->multishot ? IORING_POLL_ADD_MULTI :
							  0));
	sqe->user_data = rp__ud(kind, slot, p->gen);
	if (r->skip_success)
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	return 0;
}
