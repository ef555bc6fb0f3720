/* SPDX-License-Identifier: MIT */
/*
 * Readiness requests on the ring: one IORING_OP_POLL_ADD for one
 * (fd, mask), owned by a consumer that tags it with a kind and a slot.
 * Every arm and every cancel moves the request to a new generation, so a
 * CQE posted for an earlier arm is recognised by rp__poll_current() and
 * dropped instead of delivered.
 */
#ifndef RP_POLL_H
#define RP_POLL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "ring.h"

struct rp__poll {
	uint32_t gen;	 /* generation of the current (or last) arm */
	uint32_t mask;	 /* the poll mask armed */
	bool armed;	 /* a request of generation gen is in the kernel */
	bool multishot;	 /* it stays armed across CQEs (IORING_CQE_F_MORE) */
};

/* Queues a POLL_ADD; multishot needs 5.13. Returns 0 or -errno. */
int rp__poll_arm(struct rp__ring *r, struct rp__poll *p, int fd,
		 uint32_t mask, bool multishot, unsigned kind, uint32_t slot);

/*
 * Queues a POLL_REMOVE for the armed request (nothing if none) and moves to
 * a new generation, so whatever the old request still posts is stale.
 */
int rp__poll_cancel(struct rp__ring *r, struct rp__poll *p, unsigned kind,
		    uint32_t slot);

/* Queues a POLL_REMOVE of the request with user_data @target. */
struct io_uring_sqe *rp__poll_remove_sqe(struct rp__ring *r, uint64_t target,
					 int *err);

/*
 * Is cqe a POLL_REMOVE's own (a failed one: RP__UD_REMOVE_OF)? One that
 * found its poll completing is sent again (see poll.c). Every harvest
 * asks, before its own kinds.
 */
bool rp__poll_removed(struct rp__ring *r, const struct io_uring_cqe *cqe);

/*
 * Changes the mask of the armed request in place (POLL_REMOVE with
 * IORING_POLL_UPDATE_*) under a new generation; arms one if none is armed.
 */
int rp__poll_update(struct rp__ring *r, struct rp__poll *p, int fd,
		    uint32_t mask, unsigned kind, uint32_t slot);

enum rp__poll_cqe {
	RP__POLL_STALE,	 /* an earlier arm's CQE, or an update's ack: drop */
	RP__POLL_EVENT,	 /* readiness (res > 0) or an error of this arm */
	RP__POLL_REARM,	 /* an update found the request gone: arm anew */
};

/*
 * Classifies a CQE of this poll's kind and slot. An EVENT or REARM that
 * ends the request (a one-shot, or a multishot without IORING_CQE_F_MORE)
 * leaves the poll unarmed.
 */
static inline enum rp__poll_cqe rp__poll_classify(struct rp__poll *p,
						  const struct io_uring_cqe *cqe)
{
	if (rp__ud_gen(cqe->user_data) != p->gen || !p->armed)
		return RP__POLL_STALE;
	/* A poll never completes with 0: this is an update acknowledged. */
	if (cqe->res == 0)
		return RP__POLL_STALE;
	if (cqe->flags & IORING_CQE_F_MORE)
		return RP__POLL_EVENT;
	p->armed = false;
	/*
	 * The update SQE carries the new generation's user_data, so its
	 * failure lands here: the old request had completed (its CQE, of the
	 * old generation, is dropped) and nothing is armed any more.
	 */
	if (cqe->res == -ENOENT || cqe->res == -EALREADY)
		return RP__POLL_REARM;
	return RP__POLL_EVENT;
}

#endif /* RP_POLL_H */
