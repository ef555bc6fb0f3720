/* SPDX-License-Identifier: MIT */
/*
 * An rp instance registered in another rp instance ("watched"). The outer
 * one polls the inner one's ring fd, which says readable when a CQE sits
 * there; that is only a hint, so before it reports the inner instance the
 * outer one asks it directly (rp__ep_child_bits). A watched instance keeps
 * every registration hooked on its file (multishot), so that a wakeup
 * reaches the outer instance even between two waits, as the kernel's
 * epitem does. Whether the outer entry is queued follows the inner
 * instance's wakeups, counted as the kernel would make them (below).
 */
#include <poll.h>
#include <stdlib.h>

#include "epctx.h"
#include "ephooks.h" /* its only calls into the registry */

static bool rp__ep_probe(struct rp__ep *ep);

/*
 * Wakeups. The kernel's epoll fd wakes whoever polls it (ep_poll_safewake,
 * key EPOLLIN) when one of its entries is woken by its file and wants the
 * event (ep_poll_callback, even if already on the ready list), or is found
 * ready by EPOLL_CTL_ADD or MOD while not on the ready list. That wakeup
 * queues an outer entry only if the entry's interest has EPOLLIN and it is
 * not disabled; the outer entry is then reported if the inner instance has
 * an event by the time the outer one looks, once for ET and ONESHOT.
 *
 * Our ring's CQEs are not those wakeups: a poll armed on a ready file
 * completes at once (re-arms, a MOD of an entry already on the ready list),
 * and a CQE is consumed by whoever harvests first. So every instance counts
 * its wakeups (ep->wakes), an outer entry remembers the count it saw last
 * (it->wakes), and the poll on the inner ring only wakes a sleeping waiter.
 * A watched instance marks an arm on a file that is ready already
 * (RP__EPI_QUIET): its first completion is not a wakeup.
 */

/* Would arming this mask on fd complete at once? Only asked when watched. */
bool rp__ep_quiet_arm(int fd, uint32_t mask)
{
	struct pollfd p = { .fd = fd, .events = (short)mask };

	return rp__poll0(&p, 1) > 0 && !(p.revents & POLLNVAL);
}

/* An inner instance's wakeups so far, with what it has not harvested. */
static uint32_t rp__ep_child_wakes(struct rp__ep *child)
{
	uint32_t wakes;

	rp__ep_lock(child);
	rp__ep_harvest(child);
	rp__ep_nest_look(child);
	wakes = child->wakes;
	rp__ep_unlock(child);
	return wakes;
}

/*
 * Has the inner instance registered as fd woken since we last looked, in a
 * way that queues our entry? Counts our own wakeup if so.
 */
bool rp__ep_nest_woken(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	struct rp__ep *child = rp__ep_get(fd);
	uint32_t wakes;

	if (!child)
		return false;
	wakes = rp__ep_child_wakes(child);
	rp__ep_put(child);
	if (wakes == it->wakes)
		return false;
	it->wakes = wakes;
	if (!(it->events & EPOLLIN) || (it->flags & RP__EPI_DISABLED))
		return false;
	ep->wakes++;
	return true;
}

/* Queues each inner instance that woke since we last looked. */
void rp__ep_nest_look(struct rp__ep *ep)
{
	for (uint32_t i = 0; i < ep->nnested; i++) {
		int fd = ep->nested[i];
		struct rp__ep_item *it = rp__ep_item(ep, fd);

		if (it && (it->flags & RP__EPI_USED) &&
		    rp__ep_nest_woken(ep, fd, it)) {
			it->ready |= EPOLLIN;
			rp__ep_queue(ep, fd, it);
		}
	}
}

/* At ADD: what the inner instance did before does not concern us. */
void rp__ep_nest_sync(int fd, struct rp__ep_item *it)
{
	struct rp__ep *child = rp__ep_get(fd);

	if (!child)
		return;
	it->wakes = rp__ep_child_wakes(child);
	rp__ep_put(child);
}

/*
 * What an rp instance nested in this one reports for a registration with
 * these events. Asked directly: its ring's readiness (a CQE is there) is
 * only a hint. The kernel's epoll fd polls EPOLLIN | EPOLLRDNORM when it
 * has an event, nothing else ever, and ep_item_poll masks that with the
 * interest: an interest without either bit is never ready, and then the
 * inner instance is not even asked (asking has no effect but the answer).
 */
uint32_t rp__ep_child_bits(int fd, uint32_t events)
{
	uint32_t bits = (EPOLLIN | EPOLLRDNORM) & events;
	struct rp__ep *child;
	bool ready;

	if (!bits)
		return 0;
	child = rp__ep_get(fd);
	if (!child)
		return 0;
	rp__ep_lock(child);
	ready = rp__ep_probe(child);
	rp__ep_unlock(child);
	rp__ep_put(child);
	return ready ? bits : 0;
}

static bool rp__ep_probe_one(struct rp__ep *ep, int fd, struct pollfd *pfd,
			     unsigned *n)
{
	struct rp__ep_item *it = rp__ep_item(ep, fd);

	if (!(it->flags & RP__EPI_USED) || (it->flags & RP__EPI_DISABLED))
		return false;
	if (it->flags & RP__EPI_EPOLL)
		return rp__ep_child_bits(fd, it->events) != 0;
	pfd[*n].fd = fd;
	pfd[*n].events = (short)rp__ep_reportable(it->events);
	pfd[*n].revents = 0;
	++*n;
	return false;
}

/*
 * As __ep_eventpoll_poll does, drop from the ready list the entries found
 * not ready before the first one that is: whether a later ctl wakes
 * anybody depends on it (an entry not on the list wakes at MOD). Entries
 * were polled in list order, so they are the ones before the first ready
 * pfd, or all of them.
 */
static void rp__ep_probe_drop(struct rp__ep *ep, struct pollfd *pfd,
			      unsigned n, bool ready)
{
	unsigned i = 0;

	for (uint32_t l = ep->ready_head; l && i < n;
	     l = rp__ep_item(ep, (int)l - 1)->next) {
		struct rp__ep_item *it = rp__ep_item(ep, (int)l - 1);

		if (!it->ready || pfd[i].fd != (int)l - 1)
			continue;
		if (ready && (pfd[i].revents & pfd[i].events))
			return;
		it->ready = 0;
		i++;
	}
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
	rp__ep_nest_look(ep);
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
	/* An inner instance found ready first: the fds were not polled. */
	if (!ready && n && rp__poll0(pfd, n) >= 0) {
		for (unsigned i = 0; i < n && !ready; i++)
			ready = (pfd[i].revents & pfd[i].events) != 0;
		rp__ep_probe_drop(ep, pfd, n, ready);
	}
	if (pfd != stack)
		free(pfd);
	return ready;
}

/*
 * poll(2) or select(2) on this instance's fd: has it an event, as the
 * kernel's ep_eventpoll_poll answers? Asked as an outer instance asks
 * (rp__ep_probe): nothing is consumed. Found idle, the work pending (level
 * re-arms, ctl work, entries the probe dropped) goes to the kernel now, so
 * that the next event shows as a CQE and makes the ring's fd readable.
 */
int rp__ep_readable(struct rp__ep *ep)
{
	int ready = 0;

	rp__ep_lock(ep);
	/*
	 * Settling enters the ring, which only its owner may do: a poll
	 * from another thread makes the instance the kernel's epoll, which
	 * then answers for itself.
	 */
	if (!ep->dead && rp__ring_own(&ep->ring, true) < 0)
		rp__ep_go_kernel(ep);
	if (ep->dead) {
		ready = ep->moved ? RP__EP_MOVED : 0;
	} else {
		ready = rp__ep_probe(ep);
		if (!ready)
			rp__ep_settle(ep);
	}
	rp__ep_unlock(ep);
	return ready;
}

/*
 * Becoming watched: hook every registration for good, then settle. Work
 * queued before is submitted and its completions listed first: they are
 * wakeups (an ADD of a ready fd), the re-arms below are not.
 */
void rp__ep_watch(struct rp__ep *ep)
{
	rp__ep_settle(ep);
	rp__ep_harvest(ep);
	for (uint32_t c = 0; c < ep->nchunks; c++) {
		for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK; i++) {
			struct rp__ep_item *it = &ep->chunks[c][i];
			int fd = (int)(c * RP__EP_CHUNK + i);

			if (!(it->flags & RP__EPI_USED) ||
			    (it->flags & RP__EPI_DISABLED) ||
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
	rp__ep_lock(from);
	for (uint32_t i = 0; i < from->nnested && !found; i++) {
		struct rp__ep *child;

		if (from->nested[i] == target) {
			found = true;
			break;
		}
		child = rp__ep_get(from->nested[i]);
		if (!child)
			continue;
		found = rp__ep_reaches(child, target, depth + 1);
		rp__ep_put(child);
	}
	rp__ep_unlock(from);
	return found;
}
