/* SPDX-License-Identifier: MIT */
/*
 * rp_poll, rp_ppoll, rp_select, rp_pselect: poll(2) and select(2) on sets
 * that hold an instance's fd, a boundary of its own beside compat/epoll.c
 * (the preload interposes the poll family, compat/preload.c). Converts
 * -errno to -1/errno as the calls it stands for.
 *
 * It finds instances in the registry (compat/epreg.c), asks each the
 * state machine's question (rp__ep_readable: would a wait return events),
 * and moves one to the kernel's epoll where the kernel must wake the poll
 * (rp__ep_go_kernel). It owns no state but its probe of the caller's
 * memory, and nothing calls back into it.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "eppollset.h"
#include "epreg.h"

static int rp__fail(int ret)
{
	errno = -ret;
	return -1;
}

/*
 * The kernel's epoll fd polls EPOLLIN | EPOLLRDNORM when a wait would
 * return events, and nothing else ever; our fd is a ring, which says
 * POLLOUT while its SQ has room and POLLIN while a CQE sits in its CQ,
 * harvested or not. So a set that holds an instance is answered here:
 * each instance is asked (rp__ep_readable), and the kernel polls the
 * rest, and the rings for POLLIN alone, which a new CQE ends (then the
 * instance is asked again: a CQE is only a hint). Sets without one, the
 * common case, cost a table lookup per fd.
 */
/*
 * The caller's poll set and fd_sets are read here before the kernel sees
 * them: a bad pointer must be the kernel's EFAULT, not our SIGSEGV. A
 * block is asked once (rp__mem_user) and then trusted, as for epoll's
 * own arguments (deviation 12). A set we cannot read goes to the kernel
 * untouched.
 */
static struct rp__mem rp__poll_mem;

bool rp__poll_rings(const struct pollfd *fds, nfds_t n)
{
	if (!atomic_load_explicit(&rp__rings_made, memory_order_relaxed) ||
	    !n || n > SIZE_MAX / sizeof(*fds) ||
	    !rp__mem_user(&rp__poll_mem, fds, n * sizeof(*fds), false))
		return false;
	for (nfds_t i = 0; i < n; i++)
		if (rp_epoll_is_ring(fds[i].fd))
			return true;
	return false;
}

#define RP__POLL_IN (POLLIN | POLLRDNORM)

/* One instance in a poll set: its slot and what the caller asked. */
struct rp__pollring {
	nfds_t i;
	short events;
	bool ready;
	bool kernel; /* the number is the kernel's epoll now */
	struct rp__ep *ep;
};

static void rp__poll_ask(struct rp__pollring *r)
{
	int ret = rp__ep_readable(r->ep);

	r->ready = ret > 0;
	r->kernel = ret == RP__EP_MOVED;
}

int rp__poll_slow(struct pollfd *fds, nfds_t n, int64_t timeout_ns,
		  const sigset_t *sigmask)
{
	struct rp__pollring stack[16], *r = stack;
	uint64_t deadline = 0;
	unsigned nr = 0, max = 0;
	int ret;

	for (nfds_t i = 0; i < n; i++)
		max += rp_epoll_is_ring(fds[i].fd) != 0;
	if (max > 16) {
		r = malloc(max * sizeof(*r));
		if (!r)
			return rp__fail(-ENOMEM);
	}
	for (nfds_t i = 0; i < n && nr < max; i++) {
		struct rp__ep *ep = rp__ep_get(fds[i].fd);

		if (!ep)
			continue;
		r[nr++] = (struct rp__pollring){ .i = i,
						 .events = fds[i].events,
						 .ep = ep };
		/* The ring is asked for what the instance can say. */
		fds[i].events &= RP__POLL_IN;
	}
	if (timeout_ns > 0)
		deadline = rp__now_ns() + (uint64_t)timeout_ns;
	for (;;) {
		struct timespec ts, *tsp = NULL;
		bool any = false;
		int64_t left = timeout_ns;

		for (unsigned k = 0; k < nr; k++) {
			r[k].ready = false;
			if (!r[k].kernel && (r[k].events & RP__POLL_IN))
				rp__poll_ask(&r[k]);
			any |= r[k].ready;
		}
		if (deadline) {
			uint64_t now = rp__now_ns();

			left = now < deadline ? (int64_t)(deadline - now) : 0;
		}
		if (any)
			left = 0;
		/*
		 * To sleep until an instance has an event, the kernel must
		 * wake the poll: a DEFER_TASKRUN ring's fd says readable
		 * only when its owner has run the completions, so it wakes
		 * nobody. The instance becomes the kernel's epoll, whose fd
		 * is readable exactly when a wait would return events.
		 */
		for (unsigned k = 0; k < nr && left != 0; k++) {
			struct rp__ep *ep = r[k].ep;

			if (r[k].kernel)
				continue;
			rp__ep_lock(ep);
			if (ep->ring.owned || ep->moved)
				r[k].kernel = rp__ep_go_kernel(ep) ==
					      RP__EP_MOVED;
			rp__ep_unlock(ep);
		}
		if (left >= 0) {
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		ret = (int)syscall(SYS_ppoll, fds, n, tsp, sigmask, _NSIG / 8);
		if (ret < 0) {
			ret = -errno;
			break;
		}
		/* A CQE is a hint: the instances it woke are asked again. */
		for (unsigned k = 0; k < nr; k++) {
			struct pollfd *p = &fds[r[k].i];

			if (!r[k].kernel && !r[k].ready &&
			    (p->revents & RP__POLL_IN)) {
				rp__poll_ask(&r[k]);
				any |= r[k].ready;
			}
			/* The kernel's epoll answers exactly, as it is. */
			if (r[k].kernel)
				continue;
			p->revents = (short)((p->revents & ~RP__POLL_IN) |
					     (r[k].ready ?
						      r[k].events & RP__POLL_IN :
						      0));
		}
		ret = 0;
		for (nfds_t i = 0; i < n; i++)
			ret += fds[i].revents != 0;
		if (ret > 0 || left == 0)
			break;
	}
	for (unsigned k = 0; k < nr; k++) {
		fds[r[k].i].events = r[k].events;
		rp__ep_put(r[k].ep);
	}
	if (r != stack)
		free(r);
	return ret < 0 ? rp__fail(ret) : ret;
}

RP_EXPORT int rp_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (!rp__poll_rings(fds, n))
		return poll(fds, n, timeout);
	return rp__poll_slow(fds, n,
			     timeout < 0 ? -1 : (int64_t)timeout * 1000000,
			     NULL);
}

/* A timespec as ns, -1 for none; false if the kernel refuses it. */
static bool rp__ts_ns(const struct timespec *ts, int64_t *ns)
{
	*ns = -1;
	if (!ts)
		return true;
	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)
		return false;
	*ns = ts->tv_sec > INT64_MAX / 1000000000 - 1 ?
		      INT64_MAX :
		      ts->tv_sec * 1000000000 + ts->tv_nsec;
	return true;
}

RP_EXPORT int rp_ppoll(struct pollfd *fds, nfds_t n,
		       const struct timespec *timeout, const sigset_t *sigmask)
{
	int64_t ns;

	if (!rp__poll_rings(fds, n))
		return ppoll(fds, n, timeout, sigmask);
	if (!rp__ts_ns(timeout, &ns))
		return rp__fail(-EINVAL);
	return rp__poll_slow(fds, n, ns, sigmask);
}

#define RP__LONG_BITS (8 * (int)sizeof(unsigned long))

static unsigned long rp__set_word(const fd_set *s, int w)
{
	return s ? ((const unsigned long *)(const void *)s)[w] : 0;
}

/* fd_set as the kernel reads it: nfds bits, however many that is. */
static bool rp__set_has(const fd_set *s, int fd)
{
	return (rp__set_word(s, fd / RP__LONG_BITS) >> (fd % RP__LONG_BITS)) &
	       1;
}

static void rp__set_clr(fd_set *s, int fd)
{
	((unsigned long *)(void *)s)[fd / RP__LONG_BITS] &=
		~(1ul << (fd % RP__LONG_BITS));
}

bool rp__select_rings(int nfds, const fd_set *r, const fd_set *w,
		      const fd_set *e)
{
	size_t len = ((size_t)(nfds > 0 ? nfds : 0) + RP__LONG_BITS - 1) /
		     RP__LONG_BITS * sizeof(unsigned long);

	if (!atomic_load_explicit(&rp__rings_made, memory_order_relaxed) ||
	    nfds <= 0 ||
	    (r && !rp__mem_user(&rp__poll_mem, r, len, false)) ||
	    (w && !rp__mem_user(&rp__poll_mem, w, len, false)) ||
	    (e && !rp__mem_user(&rp__poll_mem, e, len, false)))
		return false;
	for (int wd = 0; wd * RP__LONG_BITS < nfds; wd++) {
		unsigned long bits = rp__set_word(r, wd) | rp__set_word(w, wd) |
				     rp__set_word(e, wd);

		while (bits) {
			int fd = wd * RP__LONG_BITS + __builtin_ctzl(bits);

			bits &= bits - 1;
			if (fd < nfds && rp_epoll_is_ring(fd))
				return true;
		}
	}
	return false;
}

/* The kernel's POLLIN_SET, POLLOUT_SET and POLLEX_SET (fs/select.c). */
#define RP__SEL_IN (POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR)
#define RP__SEL_OUT (POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR)
#define RP__SEL_EX (POLLPRI)

/* Writes one fd's answer back into a set; 1 if it stays set. */
static int rp__sel_back(fd_set *s, int fd, bool ready)
{
	if (!rp__set_has(s, fd))
		return 0;
	if (!ready)
		rp__set_clr(s, fd);
	return ready;
}

/*
 * select(2) on a set that holds an instance, as a poll(2) of the same fds
 * (rp__poll_slow); the sets are written back as select writes them, and
 * *left_ns is the time left, as select(2) writes back its timeval.
 */
int rp__select_slow(int nfds, fd_set *r, fd_set *w, fd_set *e,
		    int64_t timeout_ns, const sigset_t *sigmask,
		    int64_t *left_ns)
{
	struct pollfd *pfd;
	uint64_t t0 = rp__now_ns();
	nfds_t n = 0;
	int ret, count = 0;

	if (nfds < 0)
		return rp__fail(-EINVAL);
	pfd = malloc((size_t)(nfds ? nfds : 1) * sizeof(*pfd));
	if (!pfd)
		return rp__fail(-ENOMEM);
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;

		if (rp__set_has(r, fd))
			ev |= POLLIN | POLLRDNORM | POLLRDBAND;
		if (rp__set_has(w, fd))
			ev |= POLLOUT | POLLWRNORM | POLLWRBAND;
		if (rp__set_has(e, fd))
			ev |= POLLPRI;
		if (ev)
			pfd[n++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	ret = rp__poll_slow(pfd, n, timeout_ns, sigmask);
	if (ret >= 0) {
		for (nfds_t i = 0; i < n; i++) {
			if (pfd[i].revents & POLLNVAL) {
				errno = EBADF;
				ret = -1;
				break;
			}
		}
	}
	if (ret >= 0) {
		for (nfds_t i = 0; i < n; i++) {
			int fd = pfd[i].fd;
			short rev = pfd[i].revents;

			count += rp__sel_back(r, fd, rev & RP__SEL_IN);
			count += rp__sel_back(w, fd, rev & RP__SEL_OUT);
			count += rp__sel_back(e, fd, rev & RP__SEL_EX);
		}
		ret = count;
	}
	free(pfd);
	if (left_ns && timeout_ns >= 0) {
		uint64_t spent = rp__now_ns() - t0;

		*left_ns = spent < (uint64_t)timeout_ns ?
				   timeout_ns - (int64_t)spent :
				   0;
	}
	return ret;
}

RP_EXPORT int rp_select(int nfds, fd_set *r, fd_set *w, fd_set *e,
			struct timeval *timeout)
{
	int64_t ns = -1, left;
	int ret;

	if (!rp__select_rings(nfds, r, w, e))
		return select(nfds, r, w, e, timeout);
	if (timeout) {
		if (timeout->tv_sec < 0 || timeout->tv_usec < 0)
			return rp__fail(-EINVAL);
		ns = timeout->tv_sec > INT64_MAX / 1000000000 - 1 ?
			     INT64_MAX :
			     timeout->tv_sec * 1000000000 +
				     (int64_t)timeout->tv_usec * 1000;
	}
	ret = rp__select_slow(nfds, r, w, e, ns, NULL, &left);
	/* As select(2) does on Linux: the time not slept. */
	if (timeout && ret >= 0) {
		timeout->tv_sec = left / 1000000000;
		timeout->tv_usec = (left % 1000000000) / 1000;
	}
	return ret;
}

RP_EXPORT int rp_pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
			 const struct timespec *timeout,
			 const sigset_t *sigmask)
{
	int64_t ns;

	if (!rp__select_rings(nfds, r, w, e))
		return pselect(nfds, r, w, e, timeout, sigmask);
	if (!rp__ts_ns(timeout, &ns))
		return rp__fail(-EINVAL);
	return rp__select_slow(nfds, r, w, e, ns, sigmask, NULL);
}
