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
#include <time.h>

#include "epio.h"
#include "epreg.h"

/* The owner enters the ring for up to 1 ms; another thread sleeps 1 ms. */
static int rp__io_block(struct rp__ep *ep)
{
	struct timespec ms = { 0, 1000000 };
	int ret;

	if (rp__ring_own(&ep->ring, false) == 0) {
		ret = rp__ring_enter(&ep->ring, true, 1000000, NULL);
		rp__ep_harvest(ep);
		return ret == -EINTR ? -EINTR : 0;
	}
	rp__ep_unlock(ep);
	ret = nanosleep(&ms, NULL) < 0 ? -EINTR : 0;
	rp__ep_lock(ep);
	return ret;
}

ssize_t rp__io_read(int fd, const struct iovec *iov, int n, int flags,
		    bool *served)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);
	ssize_t ret;

	*served = cs != NULL;
	if (!cs)
		return 0;
	for (;;) {
		ret = rp__cs_read(cs, iov, n, flags);
		/* What the kernel has received may wait in deferred work. */
		if (ret == -EAGAIN && rp__cs_catch_up(ep))
			ret = rp__cs_read(cs, iov, n, flags);
		if (ret != -EAGAIN || !cs->blocking || (flags & MSG_DONTWAIT))
			break;
		ret = rp__io_block(ep);
		if (ret < 0 || !atomic_load(&cs->live) || ep->dead)
			break;
	}
	rp__cs_unlock(ep);
	return ret;
}

ssize_t rp__io_write(int fd, const struct iovec *iov, int n, int flags,
		     bool *served)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);
	ssize_t ret;

	*served = cs != NULL;
	if (!cs)
		return 0;
	for (;;) {
		ret = rp__cs_write(cs, fd, iov, n, flags);
		/*
		 * Full: the owner hands what is queued to the kernel now,
		 * and takes what the socket will hold more, so that a
		 * writer that meets EAGAIN has filled the socket, as
		 * without us, and EPOLLOUT then means the peer read.
		 */
		if (ret == -EAGAIN && rp__cs_push(ep))
			ret = rp__cs_write(cs, fd, iov, n, flags);
		if (ret != -EAGAIN || !cs->blocking || (flags & MSG_DONTWAIT))
			break;
		ret = rp__io_block(ep);
		if (ret < 0 || !atomic_load(&cs->live) || ep->dead)
			break;
	}
	rp__cs_unlock(ep);
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

	*served = cs != NULL;
	if (!cs)
		return 0;
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
	if (cs->tx_len && rp__ring_own(&ep->ring, false) == 0) {
		(void)rp__ring_settle(&ep->ring);
		rp__ep_harvest(ep);
	}
	if (cs->tx_len)
		ret = -EAGAIN;
	rp__cs_unlock(ep);
	return ret;
}

int rp__io_buffered(int fd, size_t *n)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);

	if (!cs)
		return 0;
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
	rp__cs_unlock(ep);
}

/* The poll bits of fd's completion socket, or -1 if it names none. */
static int rp__io_mask(int fd)
{
	struct rp__ep *ep;
	struct rp__cs *cs = rp__cs_lock(fd, &ep);
	int m;

	if (!cs)
		return -1;
	(void)rp__cs_catch_up(ep);
	m = (int)rp__cs_mask(cs);
	rp__cs_unlock(ep);
	return m;
}

/* The caller's poll sets found readable: a bad pointer is the kernel's. */
static struct rp__mem rp__io_poll_mem;

bool rp__io_poll_has(const struct pollfd *fds, nfds_t n)
{
	if (!n || n > SIZE_MAX / sizeof(*fds) ||
	    !rp__mem_user(&rp__io_poll_mem, fds, n * sizeof(*fds), false))
		return false;
	for (nfds_t i = 0; i < n; i++) {
		struct rp__fdent *e = rp__fdent(fds[i].fd, false);
		struct rp__cs *cs;

		if (e && (cs = atomic_load(&e->cs)) && atomic_load(&cs->live))
			return true;
	}
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

			if (m >= 0 && (m & (fds[i].events | POLLERR | POLLHUP)))
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
			if (m >= 0)
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
