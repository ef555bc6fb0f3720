/* SPDX-License-Identifier: MIT */
/*
 * The boundary of the read and write family in the completion mode
 * (compat/epcs.h): the preload's read, write, recv, send, ... hand each
 * call here. A number that names a completion socket is served from its
 * buffers under its instance's lock; any other goes on to the C library
 * (served false). -errno comes back; the interposer sets errno.
 *
 * A blocking socket is never adopted, but one may become blocking later
 * (fcntl, FIONBIO): its calls then wait for the buffers, the ring's owner
 * by entering the ring, another thread by sleeping between looks.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "epio.h"
#include "epreg.h"

/* The owner enters the ring for up to 1 ms; another thread sleeps 1 ms. */
static int rp__io_block(struct rp__ep *ep)
{
	struct timespec ms = { 0, 1000000 };
	int ret;

	if (rp__ring_own(&ep->ring, false) == 0) {
		uint64_t before = ep->ring.enters;

		ret = rp__ring_enter(&ep->ring, true, 1000000, NULL);
		ep->st.enters += ep->ring.enters - before;
		rp__ep_harvest(ep);
		return ret == -EINTR ? -EINTR : 0;
	}
	rp__ep_unlock(ep);
	ret = nanosleep(&ms, NULL) < 0 ? -EINTR : 0;
	rp__ep_lock(ep);
	return ret;
}

/*
 * When a blocking call on fd gives up: its SO_RCVTIMEO or SO_SNDTIMEO
 * (opt) from now, or never (UINT64_MAX). The syscall: under the preload
 * getsockopt is ours, and would take the lock this thread holds.
 */
static uint64_t rp__io_deadline(int fd, int opt)
{
	struct timeval tv = { 0, 0 };
	socklen_t len = sizeof(tv);

	atomic_fetch_add_explicit(&rp__cs_st.syscalls, 1,
				  memory_order_relaxed);
	if (syscall(SYS_getsockopt, fd, SOL_SOCKET, opt, &tv, &len) < 0 ||
	    (tv.tv_sec <= 0 && tv.tv_usec <= 0))
		return UINT64_MAX;
	return rp__now_ns() + (uint64_t)tv.tv_sec * 1000000000u +
	       (uint64_t)tv.tv_usec * 1000u;
}

/*
 * A call that met EAGAIN: on a blocking socket (and no MSG_DONTWAIT) it
 * waits and is tried again (true), until the socket's timeout for it
 * (opt: SO_RCVTIMEO, SO_SNDTIMEO; *deadline 0 until the first wait),
 * when EAGAIN stands, as the kernel's. A socket that left the mode
 * meanwhile makes it the kernel's call (RP__CS_PASS).
 */
static bool rp__io_again(struct rp__ep *ep, struct rp__cs *cs, int fd,
			 int flags, int opt, uint64_t *deadline, ssize_t *ret)
{
	if (*ret != -EAGAIN || !ep || !cs->blocking || (flags & MSG_DONTWAIT))
		return false;
	if (!*deadline)
		*deadline = rp__io_deadline(fd, opt);
	if (*deadline != UINT64_MAX && rp__now_ns() >= *deadline)
		return false;
	*ret = rp__io_block(ep);
	if (*ret < 0)
		return false;
	if (!atomic_load(&cs->live) || ep->dead) {
		*ret = RP__CS_PASS;
		return false;
	}
	return true;
}

/* Catches up and waits as the caller's socket asks; ep NULL: an orphan. */
ssize_t rp__io_read(int fd, const struct iovec *iov, int n, int flags,
		    bool *served)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);
	ssize_t ret;

	*served = cs != NULL;
	if (!cs)
		return 0;
	/*
	 * A blocking read returns what has arrived, ours and what the
	 * kernel holds for us (deferred work), as the kernel's does.
	 */
	bool waits = cs->blocking && !(flags & MSG_DONTWAIT);
	uint64_t deadline = 0;

	if (ep && waits)
		(void)rp__cs_catch_up(ep);
	for (;;) {
		ret = rp__cs_read(cs, ep, iov, n, flags);
		/* Not EAGAIN, or an orphan's: the answer stands. */
		if (ret == -EAGAIN && ep) {
			/*
			 * A ring nobody has waited on yet has submitted
			 * nothing: its recv is not in the kernel, whose
			 * socket holds every byte and the end of file. Its
			 * answer is exact (the sock fuzzer, seed 4606: an
			 * EOF read as EAGAIN). Not a call that would sleep
			 * in the kernel: a first wait meanwhile would arm
			 * the recv beside it.
			 *
			 * Its recv not submitted yet (an ADD, then a read
			 * before any wait: what the socket holds is read
			 * now), or a call that waits anyway: catch up.
			 * Otherwise an empty buffer is EAGAIN, with no
			 * syscall: bytes that came since the instance's
			 * last wait are read after its next one, which
			 * reports them (README, the completion mode).
			 */
			if (ep->ring.owned && !ep->ring.owner && !waits)
				ret = RP__CS_PASS;
			else if ((waits || rp__cs_recv_queued(ep, cs)) &&
				 rp__cs_catch_up(ep))
				ret = rp__cs_read(cs, ep, iov, n, flags);
		}
		if (!rp__io_again(ep, cs, fd, flags, SO_RCVTIMEO, &deadline,
				  &ret))
			break;
	}
	rp__cs_unlock(ep);
	if (ret == RP__CS_PASS)
		*served = false;
	else
		atomic_fetch_add_explicit(&rp__cs_st.reads, 1,
					  memory_order_relaxed);
	return ret;
}

ssize_t rp__io_write(int fd, const struct iovec *iov, int n, int flags,
		     bool *served)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);
	uint64_t deadline = 0;
	ssize_t ret;

	*served = cs != NULL;
	if (!cs)
		return 0;
	for (;;) {
		ret = rp__cs_write(cs, ep, fd, iov, n, flags);
		/*
		 * Full: the owner hands what is queued to the kernel now,
		 * and takes what the socket will hold more, so that a
		 * writer that meets EAGAIN has filled the socket, as
		 * without us, and EPOLLOUT then means the peer read.
		 */
		if (ret == -EAGAIN && ep && rp__cs_push(ep))
			ret = rp__cs_write(cs, ep, fd, iov, n, flags);
		if (!rp__io_again(ep, cs, fd, flags, SO_SNDTIMEO, &deadline,
				  &ret))
			break;
	}
	rp__cs_unlock(ep);
	if (ret == RP__CS_PASS) {
		*served = false;
		return 0;
	}
	atomic_fetch_add_explicit(&rp__cs_st.writes, 1, memory_order_relaxed);
	/* As the kernel's send on a shut or broken socket. */
	if (ret == -EPIPE && !(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
	return ret;
}

int rp__io_shutdown(int fd, int how, bool *served)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);
	int ret;

	*served = cs != NULL && ep;
	if (!cs)
		return 0;
	if (!ep) {
		rp__cs_unlock(ep);
		return 0;
	}
	ret = rp__cs_shutdown(cs, how, fd);
	rp__cs_unlock(ep);
	return ret;
}

int rp__io_flushed(int fd)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);
	int ret = 0;

	if (!cs)
		return 0;
	/* The owner hands the queued sends over and sees them done. */
	if (ep && cs->tx_len && rp__ring_own(&ep->ring, false) == 0) {
		(void)rp__cs_settle(ep);
		rp__ep_harvest(ep);
	}
	if (cs->tx_len)
		ret = -EAGAIN;
	rp__cs_unlock(ep);
	return ret;
}

void rp__io_out_full(int fd)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);

	if (!cs)
		return;
	if (ep)
		rp__cs_kernel_full(ep, cs);
	rp__cs_unlock(ep);
}

int rp__io_buffered(int fd, size_t *n)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);

	if (!cs)
		return 0;
	if (ep)
		(void)rp__cs_catch_up(ep);
	*n = rp__cs_buffered(cs);
	rp__cs_unlock(ep);
	return 1;
}

void rp__io_blocking(int fd, bool blocking)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);

	if (!cs)
		return;
	cs->blocking = blocking;
	(void)ep;
	rp__cs_unlock(ep);
}

/*
 * The poll bits of fd's completion socket, or -1 if it names none. An
 * orphan (its instance gone) with nothing of ours to send is writable as
 * the kernel's socket is: its own bits say nothing of that room
 * (RP__IO_KOUT: the kernel's POLLOUT stands).
 */
#define RP__IO_KOUT (1 << 30)

static int rp__io_mask(int fd)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);
	int m;

	if (!cs)
		return -1;
	if (ep)
		(void)rp__cs_catch_up(ep);
	m = (int)rp__cs_mask(cs);
	if (!ep && !cs->tx_len)
		m = (m & ~(POLLOUT | POLLWRNORM)) | RP__IO_KOUT;
	rp__cs_unlock(ep);
	return m;
}

/*
 * Does poll(2) or select(2) of this number need our answer? A socket in
 * the mode, or an orphan whose read-ahead bytes the kernel no longer has
 * (its instance closed: the sock fuzzer, seed 5275, polled it and the
 * kernel said not readable).
 */
static bool rp__io_ours(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__cs *cs = e ? atomic_load(&e->cs) : NULL;

	return cs && (atomic_load(&cs->live) ||
		      (atomic_load(&cs->orphan) &&
		       __atomic_load_n(&cs->rx_len, __ATOMIC_RELAXED)));
}

/* The caller's poll sets found readable: a bad pointer is the kernel's. */
static struct rp__mem rp__io_poll_mem;

bool rp__io_poll_has(const struct pollfd *fds, nfds_t n)
{
	if (!n || n > SIZE_MAX / sizeof(*fds) ||
	    !rp__mem_user(&rp__io_poll_mem, fds, n * sizeof(*fds), false))
		return false;
	for (nfds_t i = 0; i < n; i++)
		if (rp__io_ours(fds[i].fd))
			return true;
	return false;
}

/*
 * poll(2) over a set holding completion sockets. Their readiness is their
 * buffers' (data the kernel holds and the recv has not taken yet counts
 * as readable too: spurious at worst, never late); the rest is the
 * kernel's. timeout_ms -1 is no limit.
 */
int rp__io_poll(struct pollfd *fds, nfds_t n, int timeout_ms,
		const sigset_t *sigmask,
		int (*real)(struct pollfd *, nfds_t, const struct timespec *,
			    const sigset_t *))
{
	uint64_t deadline = timeout_ms > 0 ?
				    rp__now_ns() + (uint64_t)timeout_ms * 1000000 :
				    0;

	for (;;) {
		struct timespec ts = { 0, 0 }, *tp = &ts;
		int ready = 0, ret;

		for (nfds_t i = 0; i < n; i++) {
			int m = rp__io_mask(fds[i].fd);

			if (m >= 0 && (m & (fds[i].events | POLLERR | POLLHUP) &
				       ~RP__IO_KOUT))
				ready++;
		}
		if (!ready && timeout_ms < 0) {
			tp = NULL;
		} else if (!ready && timeout_ms > 0) {
			uint64_t now = rp__now_ns();

			if (now < deadline) {
				ts.tv_sec = (time_t)((deadline - now) / 1000000000);
				ts.tv_nsec = (long)((deadline - now) % 1000000000);
			}
		}
		ret = real(fds, n, tp, sigmask);
		if (ret < 0)
			return -errno;
		ret = 0;
		for (nfds_t i = 0; i < n; i++) {
			int m = rp__io_mask(fds[i].fd);

			/*
			 * Writable is the buffer's room; the kernel's
			 * readable, hang-up and error bits stand beside
			 * ours (bytes it holds are ours at the next look).
			 */
			if (m >= 0 && (m & RP__IO_KOUT))
				fds[i].revents = (short)(fds[i].revents |
					(m & (fds[i].events | POLLERR |
					      POLLHUP) & ~RP__IO_KOUT));
			else if (m >= 0)
				fds[i].revents =
					(short)((m & (fds[i].events | POLLERR |
						      POLLHUP)) |
						(fds[i].revents & ~POLLOUT &
						 ~POLLWRNORM));
			if (fds[i].revents)
				ret++;
		}
		/*
		 * The kernel's answer was a socket's only, and the buffers
		 * say no (a send still holds the room): look again.
		 */
		if (ret || timeout_ms == 0 ||
		    (deadline && rp__now_ns() >= deadline))
			return ret;
	}
}

/* The memory of setsockopt's callers, as rp__io_poll_mem. */
static struct rp__mem rp__io_opt_mem;

bool rp__io_lowat(int fd, const void *val)
{
	struct rp__ep *ep;
	struct rp__cs *cs;
	int lowat;

	cs = rp__cs_lock(fd, &ep);
	if (!cs)
		return false;
	/* A bad pointer: the kernel's call says EFAULT. */
	if (!rp__mem_user(&rp__io_opt_mem, val, sizeof(int), false)) {
		rp__cs_unlock(ep);
		return false;
	}
	lowat = *(const int *)val;
	/* The kernel's sk_rcvlowat: 0 means 1, INT_MAX at most. */
	cs->lowat = lowat > 0 ? (uint32_t)lowat : 1;
	rp__cs_unlock(ep);
	return true;
}

void rp__io_cmsg(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, true);
	struct rp__ep *ep;
	struct rp__cs *cs;

	if (!e)
		return;
	atomic_store(&e->cmsg, true);
	cs = rp__cs_lock(fd, &ep);
	if (!cs)
		return;
	/*
	 * Back to the kernel's socket, its registration a plain one; what
	 * it read ahead already is read first (without control data: the
	 * bytes came before the option).
	 */
	if (ep && !cs->leaving)
		rp__ep_cs_drop(ep, cs);
	rp__cs_unlock(ep);
}

void rp__io_accepted(int lfd, int fd)
{
	struct rp__fdent *l = rp__fdent(lfd, false), *e;

	if (fd >= 0 && l && atomic_load(&l->cmsg) && (e = rp__fdent(fd, true)))
		atomic_store(&e->cmsg, true);
}

bool rp__io_get_lowat(int fd, uint32_t *lowat)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);

	if (!cs)
		return false;
	*lowat = cs->lowat;
	rp__cs_unlock(ep);
	return true;
}

/* The caller's fd_sets found readable, as rp__io_poll_mem. */
static struct rp__mem rp__io_select_mem;

bool rp__io_select_has(int nfds, const fd_set *r, const fd_set *w,
		       const fd_set *e)
{
	const fd_set *sets[3] = { r, w, e };
	size_t bytes = ((size_t)nfds + 7) / 8;

	if (nfds <= 0 || nfds > FD_SETSIZE)
		return false;
	for (int k = 0; k < 3; k++)
		if (sets[k] && !rp__mem_user(&rp__io_select_mem, sets[k],
					     bytes, false))
			return false;
	for (int fd = 0; fd < nfds; fd++) {
		if (!((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) ||
		      (e && FD_ISSET(fd, e))))
			continue;
		if (rp__io_ours(fd))
			return true;
	}
	return false;
}

int rp__io_select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		  const struct timespec *timeout, const sigset_t *sigmask,
		  int (*real)(struct pollfd *, nfds_t, const struct timespec *,
			      const sigset_t *))
{
	struct pollfd p[FD_SETSIZE];
	nfds_t n = 0;
	int ms = -1, ret;

	if (timeout) {
		if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
		    timeout->tv_nsec >= 1000000000)
			return -EINVAL;
		ms = timeout->tv_sec > INT32_MAX / 1000 - 1 ?
			     INT32_MAX :
			     (int)(timeout->tv_sec * 1000 +
				   (timeout->tv_nsec + 999999) / 1000000);
	}
	for (int fd = 0; fd < nfds; fd++) {
		short ev = (short)((r && FD_ISSET(fd, r) ? POLLIN : 0) |
				   (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
				   (e && FD_ISSET(fd, e) ? POLLPRI : 0));

		if (ev)
			p[n++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	ret = rp__io_poll(p, n, ms, sigmask, real);
	if (ret < 0)
		return ret;
	for (nfds_t i = 0; i < n; i++)
		if (p[i].revents & POLLNVAL)
			return -EBADF;
	/* select's bits, as the kernel's POLLIN_SET, POLLOUT_SET, POLLEX_SET */
	ret = 0;
	for (nfds_t i = 0; i < n; i++) {
		int fd = p[i].fd;
		short rv = p[i].revents;

		if (r && FD_ISSET(fd, r)) {
			if (rv & (POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP |
				  POLLERR))
				ret++;
			else
				FD_CLR(fd, r);
		}
		if (w && FD_ISSET(fd, w)) {
			if (rv & (POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR))
				ret++;
			else
				FD_CLR(fd, w);
		}
		if (e && FD_ISSET(fd, e)) {
			if (rv & POLLPRI)
				ret++;
			else
				FD_CLR(fd, e);
		}
	}
	return ret;
}
