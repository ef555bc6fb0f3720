/* SPDX-License-Identifier: MIT */
/*
 * Is a wait due? The answer poll(2) and select(2) give for an instance's
 * fd (rp__ep_readable), as the kernel's ep_eventpoll_poll gives it: the
 * ring's own readiness (a CQE sits there) is only a hint, so the
 * instance is asked directly (rp__ep_probe), and nothing is consumed.
 */
#include <poll.h>
#include <stdlib.h>

#include "epctx.h"
#include "ephooks.h" /* its only calls into the registry */

/* Adds a registration that is due to the poll(2) batch, if it may report. */
static void rp__ep_probe_add(struct rp__ep *ep, int fd, struct pollfd *pfd,
			     unsigned *n)
{
	struct rp__ep_item *it = rp__ep_item(ep, fd);

	if (!(it->flags & RP__EPI_USED) || (it->flags & RP__EPI_DISABLED))
		return;
	pfd[*n].fd = fd;
	pfd[*n].events = (short)rp__ep_reportable(it->events);
	pfd[*n].revents = 0;
	++*n;
}

/*
 * As __ep_eventpoll_poll does, drop from the ready list the entries found
 * not ready before the first one that is: they are no candidates any
 * more, and the next wait need not ask them again (rp__ep_requeue arms
 * what is left unarmed). Entries were polled in list order, so they are
 * the ones before the first ready pfd, or all of them.
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
 * re-arms pending) are asked in one poll(2), as rp__ep_confirm asks them,
 * not re-armed on the ring: a poll of our fd only looks. Nothing is
 * consumed.
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
	for (uint32_t l = ep->ready_head; l;
	     l = rp__ep_item(ep, (int)l - 1)->next) {
		if (rp__ep_item(ep, (int)l - 1)->ready)
			rp__ep_probe_add(ep, (int)l - 1, pfd, &n);
	}
	for (uint32_t i = 0; i < ep->nrearm; i++) {
		if (rp__ep_item(ep, ep->rearm[i])->flags & RP__EPI_REARM)
			rp__ep_probe_add(ep, ep->rearm[i], pfd, &n);
	}
	if (n && rp__poll0(pfd, n) >= 0) {
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
 * kernel's ep_eventpoll_poll answers? Asked by rp__ep_probe: nothing is
 * consumed. Found idle, the work pending (level re-arms, ctl work,
 * entries the probe dropped) goes to the kernel now, so that the next
 * event shows as a CQE and makes the ring's fd readable.
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
