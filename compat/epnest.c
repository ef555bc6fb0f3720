/* SPDX-License-Identifier: MIT */
/*
 * An rp instance registered in another rp instance ("watched"). The outer
 * one polls the inner one's ring fd, which says readable when a CQE sits
 * there; that is only a hint, so before it reports the inner instance the
 * outer one asks it directly (rp__ep_child_ready). A watched instance keeps
 * every registration hooked on its file (multishot), so that a wakeup
 * reaches the outer instance even between two waits, as the kernel's
 * epitem does.
 */
#include <poll.h>
#include <stdlib.h>

#include "epctx.h"

static bool rp__ep_probe(struct rp__ep *ep);

/*
 * Does an rp instance nested in this one have an event? Asked directly:
 * its ring's readiness (a CQE is there) is only a hint.
 */
bool rp__ep_child_ready(int fd)
{
	struct rp__ep *child = rp__ep_get(fd);
	bool ready;

	if (!child)
		return false;
	pthread_mutex_lock(&child->lock);
	ready = rp__ep_probe(child);
	pthread_mutex_unlock(&child->lock);
	rp__ep_put(child);
	return ready;
}

static bool rp__ep_probe_one(struct rp__ep *ep, int fd, struct pollfd *pfd,
			     unsigned *n)
{
	struct rp__ep_item *it = rp__ep_item(ep, fd);

	if (!(it->flags & RP__EPI_USED) || (it->flags & RP__EPI_DISABLED))
		return false;
	if (it->flags & RP__EPI_EPOLL)
		return rp__ep_child_ready(fd);
	pfd[*n].fd = fd;
	pfd[*n].events = (short)rp__ep_reportable(it->events);
	pfd[*n].revents = 0;
	++*n;
	return false;
}

/*
 * Has this instance a current event? Its candidates (ready list, level
 * re-arms pending) are polled with poll(2), not re-armed on the ring: a
 * re-arm would post CQEs, which an edge-triggered outer instance would
 * take for new edges, forever. Nothing is consumed.
 */
static bool rp__ep_probe(struct rp__ep *ep)
{
	struct pollfd stack[64], *pfd = stack;
	unsigned n = 0, max = 0;
	bool ready = false;

	rp__ep_harvest(ep);
	for (uint32_t l = ep->ready_head; l; l = rp__ep_item(ep, (int)l - 1)->next)
		max++;
	max += ep->nrearm;
	if (max > 64) {
		pfd = malloc(max * sizeof(*pfd));
		if (!pfd)
			return true; /* say maybe: a spurious wakeup at worst */
	}
	for (uint32_t l = ep->ready_head; l && !ready;
	     l = rp__ep_item(ep, (int)l - 1)->next) {
		if (rp__ep_item(ep, (int)l - 1)->ready)
			ready = rp__ep_probe_one(ep, (int)l - 1, pfd, &n);
	}
	for (uint32_t i = 0; i < ep->nrearm && !ready; i++) {
		if (rp__ep_item(ep, ep->rearm[i])->flags & RP__EPI_REARM)
			ready = rp__ep_probe_one(ep, ep->rearm[i], pfd, &n);
	}
	if (!ready && n && poll(pfd, n, 0) > 0) {
		for (unsigned i = 0; i < n && !ready; i++)
			ready = (pfd[i].revents & pfd[i].events) != 0;
	}
	if (pfd != stack)
		free(pfd);
	return ready;
}

/* Becoming watched: hook every registration for good, then settle. */
void rp__ep_watch(struct rp__ep *ep)
{
	for (uint32_t c = 0; c < ep->nchunks; c++) {
		for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK; i++) {
			struct rp__ep_item *it = &ep->chunks[c][i];
			int fd = (int)(c * RP__EP_CHUNK + i);

			if (!(it->flags & RP__EPI_USED) ||
			    (it->flags & RP__EPI_DISABLED) ||
			    (it->events & EPOLLONESHOT) ||
			    (it->poll.armed && it->poll.multishot))
				continue;
			rp__poll_cancel(&ep->ring, &it->poll, RP__UD_EPOLL,
					(uint32_t)fd);
			if (!(it->flags & RP__EPI_REARM))
				rp__ep_arm(ep, fd, it);
		}
	}
	rp__ep_settle(ep);
}

bool rp__ep_reaches(struct rp__ep *from, int target, int depth)
{
	bool found = false;

	if (depth > RP__EP_MAX_NESTS)
		return true;
	for (uint32_t i = 0; i < from->nnested && !found; i++) {
		struct rp__ep *child;

		if (from->nested[i] == target)
			return true;
		child = rp__ep_get(from->nested[i]);
		if (!child)
			continue;
		pthread_mutex_lock(&child->lock);
		found = rp__ep_reaches(child, target, depth + 1);
		pthread_mutex_unlock(&child->lock);
		rp__ep_put(child);
	}
	return found;
}
