/* SPDX-License-Identifier: MIT */
/*
 * rp_epoll_*: epoll's API and semantics on io_uring.
 *
 * Every function behaves as its epoll(7) namesake: it returns -1 and sets
 * errno on failure. The epoll fd is the io_uring fd; it can be closed with
 * rp_close (or close(2) under the preload), polled, nested and inherited.
 * An fd that is not an rp epoll instance (a kernel epoll fd, say) is passed
 * straight to the kernel, so mixing both is safe. Where io_uring cannot be
 * set up, or RINGPOLL_DISABLE=1, rp_epoll_create* return a kernel epoll fd.
 *
 * rp_close must be used instead of close(2) for fds registered with an
 * instance and for instances themselves (ringpoll_compat.h maps close onto
 * it): it cancels the fd's polls before the real close, as the kernel's
 * epoll forgets a file when it is closed.
 */
#ifndef RINGPOLL_EPOLL_H
#define RINGPOLL_EPOLL_H

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

int rp_epoll_create(int size);
int rp_epoll_create1(int flags);
int rp_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int rp_epoll_wait(int epfd, struct epoll_event *events, int maxevents,
		  int timeout);
int rp_epoll_pwait(int epfd, struct epoll_event *events, int maxevents,
		   int timeout, const sigset_t *sigmask);
int rp_epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
		    const struct timespec *timeout, const sigset_t *sigmask);
int rp_close(int fd);

/* Counters of one instance (or of all, epfd -1), for tools and tests. */
struct rp_epoll_stats {
	uint64_t waits;		   /* rp_epoll_wait/pwait/pwait2 calls */
	uint64_t enters;	   /* io_uring_enter calls */
	uint64_t events;	   /* events handed out */
	uint64_t rearms;	   /* level-triggered polls re-armed */
	uint64_t confirms;	   /* candidates re-checked before a report */
	uint64_t stale_dropped;	   /* candidates no longer ready */
	uint64_t stale_cqes;	   /* CQEs of an older generation */
	uint64_t ctls;		   /* rp_epoll_ctl calls */
	uint64_t ctl_syscalls;	   /* syscalls made by them */
	uint64_t fallbacks;	   /* instances on the kernel's epoll */
	uint64_t polls;		   /* poll(2) calls that checked readiness */
	uint64_t mods_in_place;	   /* MODs that kept the armed poll */
};

/* 0, or -1/errno (EBADF: not an rp instance). */
int rp_epoll_stats(int epfd, struct rp_epoll_stats *st);
/* 1 if fd is an rp epoll instance (on io_uring), else 0. */
int rp_epoll_is_ring(int fd);

/*
 * poll(2), ppoll(2), select(2) and pselect(2), with an rp instance's fd
 * readable exactly when a wait would return events, and never writable,
 * as the kernel's epoll fd. Sets without an instance go straight to the
 * C library's call.
 */
int rp_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int rp_ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
	     const sigset_t *sigmask);
int rp_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
	      struct timeval *timeout);
int rp_pselect(int nfds, fd_set *readfds, fd_set *writefds,
	       fd_set *exceptfds, const struct timespec *timeout,
	       const sigset_t *sigmask);

#ifdef __cplusplus
}
#endif

#endif /* RINGPOLL_EPOLL_H */
