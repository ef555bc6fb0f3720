/* SPDX-License-Identifier: MIT */
/*
 * The epoll echo server, written once against <sys/epoll.h> and built twice:
 * as is (modes epoll, epoll-et, epoll-oneshot) and with
 * -include ringpoll_compat.h -DRPB_ON_RING (modes rp-epoll, ...), which maps
 * epoll_* and close onto rp_epoll_* and rp_close. The same binary run under
 * ringpoll-run is the preload case: libc's epoll_* are then interposed.
 *
 * It does what a typical epoll server does:
 * - level-triggered: one read per event, echo it with one write;
 * - edge-triggered: read until EAGAIN, as ET requires;
 * - EPOLLONESHOT: like level, then EPOLL_CTL_MOD to re-arm after each
 *   request, as thread-pool servers do;
 * - a short write keeps the rest, switches the interest to EPOLLOUT until it
 *   is written, then back (backpressure: no reading meanwhile).
 * It counts every syscall it makes (bench.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#ifdef RPB_ON_RING
/* rp_epoll_stats: ringpoll_compat.h maps names, it declares nothing more. */
#include <ringpoll_epoll.h>
#endif

#ifdef RPB_ON_RING
#define RPB_EP(name) rpb_rpepoll_##name
#else
#define RPB_EP(name) rpb_kepoll_##name
#endif

/* Events per wait: enough for 512 busy connections in two waits. */
#define RPB_EP_EVENTS 256
/* One read takes all a connection has at any depth the demo uses. */
#define RPB_EP_BUF (64 * 1024)

struct rpb_econn {
	char *pend; /* what a short write left to send, or NULL */
	uint32_t off, len;
};

struct rpb_ep {
	struct rpb_worker *w;
	int epfd;
	uint32_t flags; /* EPOLLET, EPOLLONESHOT or 0, on every registration */
	struct rpb_econn *conns; /* indexed by fd */
	size_t nconns;
	char buf[RPB_EP_BUF];
};

static int rpb_ep_ctl(struct rpb_ep *ep, int op, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events | ep->flags};

	ev.data.fd = fd;
	RPB_INC(&ep->w->c, ctls);
	return epoll_ctl(ep->epfd, op, fd, &ev);
}

static void rpb_ep_close(struct rpb_ep *ep, int fd)
{
	struct rpb_econn *c = &ep->conns[fd];

	free(c->pend);
	memset(c, 0, sizeof(*c));
	close(fd);
	RPB_INC(&ep->w->c, closes);
	RPB_ADD(&ep->w->c, conns, (uint64_t)-1);
}

static void rpb_ep_accept(struct rpb_ep *ep)
{
	struct rpb_worker *w = ep->w;
	int fd, one = 1;

	for (;;) {
		fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		RPB_INC(&w->c, accepts);
		if (fd < 0)
			break; /* EAGAIN: another worker took it */
		/* Small requests must not wait for Nagle's timer. */
		if (w->srv->nodelay) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			RPB_INC(&w->c, other);
		}
		if ((size_t)fd >= ep->nconns ||
		    rpb_ep_ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN) < 0) {
			close(fd);
			RPB_INC(&w->c, closes);
			continue;
		}
		RPB_INC(&w->c, conns);
		/* ET must take every pending connection; the others one. */
		if (!(ep->flags & EPOLLET))
			break;
	}
	if (ep->flags & EPOLLONESHOT)
		rpb_ep_ctl(ep, EPOLL_CTL_MOD, w->lfd, EPOLLIN);
}

/* Writes n bytes of buf back; keeps what the socket did not take. */
static int rpb_ep_echo(struct rpb_ep *ep, int fd, struct rpb_econn *c, size_t n)
{
	ssize_t wr = write(fd, ep->buf, n);

	RPB_INC(&ep->w->c, writes);
	if (wr < 0) {
		if (errno != EAGAIN)
			return -errno;
		wr = 0;
	}
	RPB_ADD(&ep->w->c, bytes, (uint64_t)wr);
	if ((size_t)wr == n)
		return 0;
	c->pend = malloc(n - (size_t)wr);
	if (!c->pend)
		return -ENOMEM;
	memcpy(c->pend, ep->buf + wr, n - (size_t)wr);
	c->off = 0;
	c->len = (uint32_t)(n - (size_t)wr);
	return 0;
}

/* The rest of a short write; back to reading once it is all out. */
static void rpb_ep_flush(struct rpb_ep *ep, int fd, struct rpb_econn *c)
{
	ssize_t wr = write(fd, c->pend + c->off, c->len - c->off);

	RPB_INC(&ep->w->c, writes);
	if (wr < 0 && errno != EAGAIN) {
		rpb_ep_close(ep, fd);
		return;
	}
	if (wr > 0) {
		RPB_ADD(&ep->w->c, bytes, (uint64_t)wr);
		c->off += (uint32_t)wr;
	}
	if (c->off < c->len) {
		if (ep->flags & EPOLLONESHOT)
			rpb_ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
		return;
	}
	free(c->pend);
	c->pend = NULL;
	rpb_ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
}

static void rpb_ep_conn(struct rpb_ep *ep, int fd)
{
	struct rpb_econn *c = &ep->conns[fd];
	ssize_t n;

	if (c->pend) {
		rpb_ep_flush(ep, fd, c);
		return;
	}
	for (;;) {
		n = read(fd, ep->buf, sizeof(ep->buf));
		RPB_INC(&ep->w->c, reads);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0 || rpb_ep_echo(ep, fd, c, (size_t)n) < 0) {
			rpb_ep_close(ep, fd);
			return;
		}
		if (c->pend) {
			rpb_ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
			return;
		}
		if (!(ep->flags & EPOLLET))
			break;
	}
	if (ep->flags & EPOLLONESHOT)
		rpb_ep_ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
}

void RPB_EP(sample)(struct rpb_worker *w, struct rpb_lib *lib)
{
	memset(lib, 0, sizeof(*lib));
#ifdef RPB_ON_RING
	struct rp_epoll_stats st;
	struct rpb_ep *ep = w->priv;

	if (ep && rp_epoll_stats(ep->epfd, &st) == 0) {
		/* The instance's own poll(2) calls are syscalls too. */
		lib->enters = st.enters + st.polls;
		lib->ctl_syscalls = st.ctl_syscalls;
		lib->valid = true;
	}
#else
	(void)w;
#endif
}

int RPB_EP(run)(struct rpb_worker *w)
{
	struct epoll_event evs[RPB_EP_EVENTS], ev = {.events = EPOLLIN};
	const struct rpb_mode *mode = w->srv->mode;
	struct rlimit rl = {0};
	struct rpb_ep *ep;
	int n, ret = 0;

	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->w = w;
	if (mode->flavour == RPB_ET)
		ep->flags = EPOLLET;
	else if (mode->flavour == RPB_ONESHOT)
		ep->flags = EPOLLONESHOT;
	getrlimit(RLIMIT_NOFILE, &rl);
	ep->nconns = rl.rlim_cur > 0 && rl.rlim_cur < (1u << 22) ? rl.rlim_cur
								 : (1u << 22);
	ep->conns = calloc(ep->nconns, sizeof(*ep->conns));
	ep->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!ep->conns || ep->epfd < 0)
		return ep->conns ? -errno : -ENOMEM;
	w->priv = ep;
	if (w->id == 0)
		rpb_note_backend(ep->epfd);
	ev.data.fd = w->stop_fd;
	if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, w->stop_fd, &ev) < 0 ||
	    rpb_ep_ctl(ep, EPOLL_CTL_ADD, w->lfd, EPOLLIN) < 0)
		return -errno;
	for (;;) {
		n = epoll_wait(ep->epfd, evs, RPB_EP_EVENTS, -1);
		RPB_INC(&w->c, waits);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == w->stop_fd)
				goto out;
			if (fd == w->lfd)
				rpb_ep_accept(ep);
			else
				rpb_ep_conn(ep, fd);
		}
	}
out:
	RPB_EP(sample)(w, &w->final);
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	return ret;
}
