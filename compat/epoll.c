/* SPDX-License-Identifier: MIT */
/*
 * rp_epoll_*: the epoll boundary, and only that. Each call checks its
 * arguments in the kernel's order, finds the instance behind the fd
 * (compat/epreg.c), takes the locks it needs, hands the work to the state
 * machine of the instance (compat/epctx.c), and turns -errno into
 * -1/errno once, here. An fd that is not ours, or an instance that is the
 * kernel's epoll now (RP__EP_MOVED) or was closed behind our back, goes to
 * the kernel.
 *
 * It owns no state: the table, identity, fork, exit, stats and the close
 * path are the registry's (compat/epreg.c); poll(2) and select(2) on an
 * instance are compat/eppollset.c's. Nothing below calls back into this
 * file.
 *
 * The kernel is called with syscall(2), not through libc's epoll_* and
 * close: under the preload those names are ours.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epoff.h"
#include "epreg.h"

/* epoll's limit on maxevents (EP_MAX_EVENTS). */
#define RP__EP_MAX_EVENTS (INT_MAX / (int)sizeof(struct epoll_event))

static int rp__fail(int ret)
{
	errno = -ret;
	return -1;
}

RP_EXPORT int rp_epoll_create1(int flags)
{
	int ret;

	if (flags & ~EPOLL_CLOEXEC)
		return rp__fail(-EINVAL);
	ret = rp__ep_create(flags);
	return ret < 0 ? rp__fail(ret) : ret;
}

RP_EXPORT int rp_epoll_create(int size)
{
	if (size <= 0)
		return rp__fail(-EINVAL);
	return rp_epoll_create1(0);
}

/*
 * Can the kernel's epoll watch fd? Sockets, pipes and anonymous inodes
 * (eventfd, timerfd, signalfd, epoll) always; for the rest (regular files
 * and directories mostly refuse, some character devices and proc files do
 * not) ask a kernel epoll instance: exact, and off the hot path.
 */
static int rp__pollable(int fd, struct stat *st)
{
	struct epoll_event ev = { 0 };
	int sfd, ret;

	if (fstat(fd, st) < 0)
		return -errno;
	switch (st->st_mode & S_IFMT) {
	case S_IFSOCK:
	case S_IFIFO:
	case 0:
		return 0;
	default:
		break;
	}
	/* Made and closed each time: the host never sees a hidden fd. */
	sfd = rp__kernel_create(EPOLL_CLOEXEC);
	if (sfd < 0)
		return sfd;
	ret = (int)syscall(SYS_epoll_ctl, sfd, EPOLL_CTL_ADD, fd, &ev);
	ret = ret < 0 ? -errno : 0;
	syscall(SYS_close, sfd);
	return ret;
}

/* The EINVAL checks, which need no table: after EBADF and EPERM. */
static int rp__ctl_einval(struct rp__ep *ep, int op, int fd,
			  const struct epoll_event *ev)
{
	/* The kernel's EPOLLEXCLUSIVE_OK_BITS. */
	uint32_t ok = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP |
		      EPOLLET | EPOLLEXCLUSIVE;

	if (fd == ep->fd)
		return -EINVAL;
	if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) &&
	    (ev->events & EPOLLEXCLUSIVE)) {
		if (op == EPOLL_CTL_MOD)
			return -EINVAL;
		if ((ev->events & ~ok) || rp_epoll_is_ring(fd))
			return -EINVAL;
	}
	return 0;
}

/*
 * ADD: the registration, and in the completion mode a socket's buffers
 * (compat/epcs.h). A socket that already has them in this instance (a
 * DEL kept them) is registered on them again; one with buffers in another
 * instance stays there, and is registered plainly here.
 */
static int rp__ctl_add(struct rp__ep *ep, int fd, struct epoll_event *ev,
		       const struct stat *st, bool alone)
{
	bool sock = st && S_ISSOCK(st->st_mode);
	struct rp__fdent *e = rp__fdent(fd, true);
	struct rp__cs *cs = NULL, *had = NULL;
	int ret;

	if (rp__unlikely(rp__cs_on) && sock && e) {
		had = atomic_load(&e->cs);
		/*
		 * An orphan with nothing of ours left is forgotten, and the
		 * socket taken in anew (its struct may come back from the
		 * pool as the new one).
		 */
		if (had && atomic_load(&had->orphan) && rp__cs_drop_orphan(fd))
			had = NULL;
		if (had && atomic_load(&had->ep) == ep &&
		    atomic_load(&had->live) && !had->registered &&
		    had->ino == st->st_ino)
			cs = had;
		else if (!had && alone && !atomic_load(&e->dupped) &&
			 !atomic_load(&e->cmsg))
			cs = rp__cs_adopt(ep, fd, ev->events, st->st_ino);
	}
	ret = rp__ep_add(ep, fd, ev, cs);
	if (ret < 0) {
		if (cs && cs != had)
			rp__cs_unadopt(ep, cs);
		return ret;
	}
	if (cs == had && cs)
		rp__cs_rejoin(ep, cs, fd);
	else if (cs)
		atomic_store(&e->cs, cs);
	if (e)
		atomic_store(&e->one, atomic_fetch_add(&e->nreg, 1) ? NULL :
								       ep);
	return 0;
}

static int rp__ctl(struct rp__ep *ep, int op, int fd, struct epoll_event *ev)
{
	struct rp__ep *child = NULL;
	struct rp__ep_item *it;
	struct rp__fdent *e;
	uint64_t ring0, st0, calls = 0;
	struct stat st;
	bool have_st = false, alone = false;
	int ret = 0;

	/*
	 * The kernel's order: EBADF, EPERM, EINVAL, then the op's own. The
	 * table is read under ep->lock only: an ADD in another thread may
	 * grow it. The checks that cost syscalls are made outside the lock.
	 */
	if (op == EPOLL_CTL_ADD) {
		ret = rp__pollable(fd, &st);
		have_st = true;
		calls = 1;
		/* An instance goes in under rp__nest_lock (see there). */
		child = ret == 0 ? rp__ep_get(fd) : NULL;
		/*
		 * The table says fd is an instance; its file says whether it
		 * still is, or was closed behind our back and the number
		 * given to another file: then forget the instance, and the
		 * ADD is of that file.
		 */
		if (rp__unlikely(child && (st.st_dev != child->dev ||
					   st.st_ino != child->ino))) {
			rp__drop_stale(fd);
			rp__ep_put(child);
			child = NULL;
		}
		/*
		 * A completion socket's number closed behind our back (a raw
		 * close, as libuv's) and given to this file: forget it first,
		 * under its own instance's lock.
		 */
		if (rp__unlikely(rp__cs_on) && ret == 0) {
			rp__cs_check(fd, &st);
			alone = S_ISSOCK(st.st_mode) && rp__reg_alone(ep, fd);
		}
		if (child)
			pthread_mutex_lock(&rp__nest_lock);
		rp__ep_lock(ep);
	} else {
		rp__ep_lock(ep);
		it = rp__ep_item(ep, fd);
		/*
		 * Registered means valid (closes go through rp_close): no
		 * syscall. Otherwise the op finds the fd as it is after the
		 * checks, as the kernel's looks it up after fdget.
		 */
		if (!it || !(it->flags & RP__EPI_USED)) {
			rp__ep_unlock(ep);
			ret = rp__fd_valid(fd) ? rp__pollable(fd, &st) : -EBADF;
			have_st = ret == 0;
			rp__ep_lock(ep);
		}
	}
	if (rp__unlikely(ep->moved)) {
		ret = RP__EP_MOVED;
		goto out;
	}
	if (ret == 0)
		ret = rp__ctl_einval(ep, op, fd, ev);
	/* A dup of our own fd: the kernel's "epfd == fd" (EINVAL). */
	if (ret == 0 && have_st && rp__same_ring(ep, fd, &st, &calls))
		ret = -EINVAL;
	ep->st.ctls++;
	ep->st.ctl_syscalls += calls;
	if (ret < 0)
		goto out;
	/*
	 * An instance in an instance: the outer ring cannot run the inner
	 * ring's completions, and only the kernel knows how deep its own
	 * epolls nest. Both become the kernel's epoll, and the ADD is its.
	 */
	if (op == EPOLL_CTL_ADD &&
	    (child || ((e = rp__fdent(fd, false)) && atomic_load(&e->kernel_ep)))) {
		if (child) {
			rp__ep_lock(child);
			ret = rp__ep_go_kernel(child);
			rp__ep_unlock(child);
			if (ret != RP__EP_MOVED)
				goto out;
		}
		ret = rp__ep_go_kernel(ep);
		goto out;
	}
	ring0 = ep->ring.enters;
	st0 = ep->st.enters;
	switch (op) {
	case EPOLL_CTL_ADD:
		ret = rp__ctl_add(ep, fd, ev, have_st ? &st : NULL, alone);
		break;
	case EPOLL_CTL_MOD:
		ret = rp__ep_mod(ep, fd, ev);
		break;
	case EPOLL_CTL_DEL:
		ret = rp__ep_del(ep, fd, false);
		/*
		 * Keep counting it until its close: the remove is only
		 * queued, and the close must hand it to the kernel.
		 */
		break;
	default:
		ret = -EINVAL;
		break;
	}
	if (ret == 0)
		rp__ep_ctl_done(ep);
	/* A full SQ handed to the kernel inline is this ctl's syscall. */
	ep->st.ctl_syscalls += (ep->ring.enters - ring0) -
			       (ep->st.enters - st0);
out:
	rp__ep_unlock(ep);
	if (child) {
		pthread_mutex_unlock(&rp__nest_lock);
		rp__ep_put(child);
	}
	return ret;
}

/*
 * An instance about to be registered in a kernel epoll (one that fell
 * back): that epoll would poll the ring, which is readable only while a
 * CQE sits there, and its epitem would hold the ring's file. The instance
 * becomes the kernel's epoll first, whose readiness is exact.
 */
static void rp__ep_pin(int fd)
{
	struct rp__ep *ep = rp__ep_get(fd);

	if (!ep)
		return;
	rp__ep_lock(ep);
	rp__ep_go_kernel(ep);
	rp__ep_unlock(ep);
	rp__ep_put(ep);
}

/*
 * epoll_ctl on a kernel epoll; on a socket registered there by a stand-in
 * (compat/epcarry.c), on the stand-in.
 */
static int rp__kernel_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	int ret;

	if (rp__unlikely(atomic_load_explicit(&rp__cs_carries,
					      memory_order_relaxed)) &&
	    rp__cs_carry_ctl(epfd, op, fd, event, &ret))
		return ret < 0 ? rp__fail(ret) : 0;
	if (rp__unlikely(atomic_load_explicit(&rp__ep_offs,
					      memory_order_relaxed)) &&
	    rp__ep_off_ctl(epfd, op, fd, event, &ret))
		return ret < 0 ? rp__fail(ret) : 0;
	return (int)syscall(SYS_epoll_ctl, epfd, op, fd, event);
}

RP_EXPORT int rp_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct epoll_event ev;
	struct rp__ep *ep;
	int ret;

	/* Like the kernel, every op but DEL reads the event first. */
	if (op != EPOLL_CTL_DEL && !event)
		return rp__fail(-EFAULT);
	ep = rp__ep_get(epfd);
	if (!ep) {
		if (op == EPOLL_CTL_ADD)
			rp__ep_pin(fd);
		return rp__kernel_ctl(epfd, op, fd, event);
	}
	/* DEL never looks at the event: any pointer will do. */
	if (op == EPOLL_CTL_DEL) {
		memset(&ev, 0, sizeof(ev));
	} else if (!rp__ep_user(ep, event, sizeof(*event), false)) {
		rp__ep_put(ep);
		return rp__fail(-EFAULT);
	} else {
		ev = *event;
	}
	ret = rp__ctl(ep, op, fd, &ev);
	rp__ep_put(ep);
	/* The instance is the kernel's epoll now (rp__ep_go_kernel). */
	if (rp__unlikely(ret == RP__EP_MOVED))
		return rp__kernel_ctl(epfd, op, fd, event);
	return ret < 0 ? rp__fail(ret) : 0;
}

/*
 * epoll_pwait2 on a kernel epoll. A ring this thread used is freed by
 * the kernel's io_uring exit work, which notifies every thread that
 * submitted to it (TWA_SIGNAL) some 15-25 ms later: a wait asleep then
 * fails with EINTR, no signal having come. Under a mask that blocks every
 * signal nothing else can interrupt it: wait on, for what is left of the
 * time (deadline, 0 for none).
 */
static int rp__kernel_wait(int fd, struct epoll_event *events, int maxevents,
			   int64_t timeout_ns, uint64_t deadline,
			   const sigset_t *sigmask)
{
	for (;;) {
		struct timespec ts;
		int ret;

		if (deadline) {
			uint64_t now = rp__now_ns();

			timeout_ns = now < deadline ?
					     (int64_t)(deadline - now) :
					     0;
		}
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		ret = (int)syscall(SYS_epoll_pwait2, fd, events, maxevents,
				   timeout_ns < 0 ? NULL : &ts, sigmask,
				   _NSIG / 8);
		if (ret >= 0 || errno != EINTR ||
		    rp__ep_signal_possible(sigmask))
			return ret;
	}
}

/* One lookup per wait: the caller found ep; this drops its reference. */
static int rp__wait(struct rp__ep *ep, struct epoll_event *events,
		    int maxevents, int64_t timeout_ns, const sigset_t *sigmask)
{
	uint64_t deadline = timeout_ns > 0 ?
				    rp__now_ns() + (uint64_t)timeout_ns :
				    0;
	int ret;

	/* The kernel reads the sigmask first, whether it sleeps or not. */
	if (sigmask && !rp__ep_user(ep, sigmask, _NSIG / 8, false))
		ret = -EFAULT;
	else if (maxevents <= 0 || maxevents > RP__EP_MAX_EVENTS)
		ret = -EINVAL;
	else
		ret = rp__ep_wait(ep, events, maxevents, timeout_ns, sigmask);
	/* The kernel's epoll now: it waits for what is left of the time. */
	if (rp__unlikely(ret == RP__EP_MOVED)) {
		int fd = ep->fd;

		rp__ep_put(ep);
		return rp__kernel_wait(fd, events, maxevents, timeout_ns,
				       deadline, sigmask);
	}
	/*
	 * Our ring never says EOPNOTSUPP, nor EBADF while it is open: the
	 * number was closed behind our back. Forget the instance, and give
	 * the call to the kernel as if we had never seen the number.
	 */
	if (rp__unlikely(ret == -EOPNOTSUPP || ret == -EBADF) &&
	    rp__ep_stale(ep)) {
		int fd = ep->fd;
		struct timespec ts = { timeout_ns / 1000000000,
				       timeout_ns % 1000000000 };

		rp__drop_stale(fd);
		rp__ep_put(ep);
		return (int)syscall(SYS_epoll_pwait2, fd, events, maxevents,
				    timeout_ns < 0 ? NULL : &ts, sigmask,
				    _NSIG / 8);
	}
	rp__ep_put(ep);
	return ret < 0 ? rp__fail(ret) : ret;
}

RP_EXPORT int rp_epoll_pwait(int epfd, struct epoll_event *events,
			     int maxevents, int timeout,
			     const sigset_t *sigmask)
{
	struct rp__ep *ep = rp__ep_get(epfd);

	if (!ep) {
		uint64_t start = timeout > 0 ? rp__now_ns() : 0;
		int ret = (int)syscall(SYS_epoll_pwait, epfd, events,
				       maxevents, timeout, sigmask, _NSIG / 8);

		if (rp__likely(ret >= 0 || errno != EINTR) ||
		    rp__ep_signal_possible(sigmask))
			return ret;
		/* No signal could come: see rp__kernel_wait. */
		return rp__kernel_wait(epfd, events, maxevents,
				       timeout < 0 ? -1 : 0,
				       start ? start + (uint64_t)timeout *
							       1000000 :
					       0,
				       sigmask);
	}
	return rp__wait(ep, events, maxevents,
			timeout < 0 ? -1 : (int64_t)timeout * 1000000,
			sigmask);
}

RP_EXPORT int rp_epoll_wait(int epfd, struct epoll_event *events,
			    int maxevents, int timeout)
{
	return rp_epoll_pwait(epfd, events, maxevents, timeout, NULL);
}

RP_EXPORT int rp_epoll_pwait2(int epfd, struct epoll_event *events,
			      int maxevents, const struct timespec *timeout,
			      const sigset_t *sigmask)
{
	struct rp__ep *ep = rp__ep_get(epfd);
	struct timespec ts;
	int64_t ns = -1;

	if (!ep)
		return (int)syscall(SYS_epoll_pwait2, epfd, events, maxevents,
				    timeout, sigmask, _NSIG / 8);
	/* The kernel's order: the timeout, then the sigmask, then the rest. */
	if (timeout) {
		if (!rp__ep_user(ep, timeout, sizeof(*timeout), false)) {
			rp__ep_put(ep);
			return rp__fail(-EFAULT);
		}
		ts = *timeout;
		if (ts.tv_sec < 0 || ts.tv_nsec < 0 ||
		    ts.tv_nsec >= 1000000000) {
			rp__ep_put(ep);
			return rp__fail(-EINVAL);
		}
		ns = ts.tv_sec > INT64_MAX / 1000000000 - 1 ?
			     INT64_MAX :
			     ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	return rp__wait(ep, events, maxevents, ns, sigmask);
}

RP_EXPORT int rp_epoll_is_ring(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);

	return e && atomic_load(&e->ep) != NULL;
}

RP_EXPORT int rp_close(int fd)
{
	int ret = rp__forget(fd);

	/* An instance's close has closed its fd already. */
	if (ret != 0)
		return ret < 0 ? -1 : 0;
	return rp__sys_close(fd);
}

RP_EXPORT int rp_epoll_stats(int epfd, struct rp_epoll_stats *st)
{
	struct rp__ep *ep;

	if (!st)
		return rp__fail(-EFAULT);
	if (epfd == -1) {
		rp__st_total(st);
		return 0;
	}
	ep = rp__ep_get(epfd);
	if (!ep)
		return rp__fail(-EBADF);
	rp__ep_lock(ep);
	*st = ep->st;
	rp__ep_unlock(ep);
	rp__ep_put(ep);
	return 0;
}
