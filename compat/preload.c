/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD interposition, and nothing else: each function hands over to
 * a boundary (compat/epoll.c, compat/eppollset.c; close, dup2 and
 * close_range to the registry's rp__forget, compat/epreg.c), keeps errno
 * as it was on success, and lets fds it does not own pass straight
 * through. The library exports only these symbols (compat/preload.map).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "eppollset.h"
#include "epreg.h"

#define RP_KEEP_ERRNO(call)                                                \
	do {                                                               \
		int saved_ = errno;                                        \
		int ret_ = (call);                                         \
		if (ret_ >= 0)                                             \
			errno = saved_;                                    \
		return ret_;                                               \
	} while (0)

RP_EXPORT int epoll_create(int size)
{
	RP_KEEP_ERRNO(rp_epoll_create(size));
}

RP_EXPORT int epoll_create1(int flags)
{
	RP_KEEP_ERRNO(rp_epoll_create1(flags));
}

RP_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	RP_KEEP_ERRNO(rp_epoll_ctl(epfd, op, fd, ev));
}

RP_EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max, int tmo)
{
	RP_KEEP_ERRNO(rp_epoll_wait(epfd, evs, max, tmo));
}

RP_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max,
			  int tmo, const sigset_t *ss)
{
	RP_KEEP_ERRNO(rp_epoll_pwait(epfd, evs, max, tmo, ss));
}

RP_EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max,
			   const struct timespec *tmo, const sigset_t *ss)
{
	RP_KEEP_ERRNO(rp_epoll_pwait2(epfd, evs, max, tmo, ss));
}

RP_EXPORT int close(int fd)
{
	RP_KEEP_ERRNO(rp_close(fd));
}

/* glibc's __close is the same call under another name. */
RP_EXPORT int __close(int fd)
{
	RP_KEEP_ERRNO(rp_close(fd));
}

/*
 * A vfork child shares the parent's memory: whatever it did to an instance
 * (closing fds before exec, as Python's subprocess does) would happen to
 * the parent's. vfork may be a fork; make it one, so the child has memory
 * of its own and the fork handling applies.
 */
RP_EXPORT pid_t vfork(void)
{
	return fork();
}

/*
 * RINGPOLL_STATS=1 reports from an atexit handler, which a process leaving
 * through _exit does not run (dash does, and forked children): report
 * here too. The real _exit is found when the library loads, as a signal
 * handler or a forked child may call this one.
 */
static void (*rp__real_exit)(int);

__attribute__((constructor)) static void rp__find_exit(void)
{
	rp__real_exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
}

RP_EXPORT __attribute__((noreturn)) void _exit(int status)
{
	rp__st_report(true);
	if (rp__real_exit)
		rp__real_exit(status);
	for (;;)
		syscall(SYS_exit_group, status);
}

RP_EXPORT __attribute__((noreturn)) void _Exit(int status)
{
	_exit(status);
}

/* The real calls, found once: what follows them in the link order. */
static int (*rp__real_dup2)(int, int);
static int (*rp__real_dup3)(int, int, int);
static int (*rp__real_close_range)(unsigned, unsigned, int);
static pthread_once_t rp__real_once = PTHREAD_ONCE_INIT;

static void rp__find_real(void)
{
	rp__real_dup2 = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
	rp__real_dup3 = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
	rp__real_close_range = (int (*)(unsigned, unsigned, int))dlsym(
		RTLD_NEXT, "close_range");
}

RP_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	pthread_once(&rp__real_once, rp__find_real);
	/* CLOSE_RANGE_CLOEXEC only marks fds: nothing to forget. */
	if (!(flags & CLOSE_RANGE_CLOEXEC))
		rp__forget_range(first, last);
	if (!rp__real_close_range)
		RP_KEEP_ERRNO((int)syscall(SYS_close_range, first, last,
					   flags));
	RP_KEEP_ERRNO(rp__real_close_range(first, last, flags));
}

/* dup2/dup3 onto a registered fd or an instance close it first. */
RP_EXPORT int dup2(int oldfd, int newfd)
{
	pthread_once(&rp__real_once, rp__find_real);
	if (oldfd != newfd && fcntl(oldfd, F_GETFD) >= 0)
		rp__forget(newfd);
	RP_KEEP_ERRNO(rp__real_dup2(oldfd, newfd));
}

RP_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	pthread_once(&rp__real_once, rp__find_real);
	if (oldfd != newfd && fcntl(oldfd, F_GETFD) >= 0)
		rp__forget(newfd);
	RP_KEEP_ERRNO(rp__real_dup3(oldfd, newfd, flags));
}

/*
 * poll(2) and select(2): a set that holds an instance is answered by
 * compat/eppollset.c, as the kernel's epoll fd answers (readable when a wait
 * would return events, never writable). Any other set goes to the C
 * library's call after a table lookup per fd. Found on first use: a
 * constructor of another library may poll before ours ran.
 */
static int (*_Atomic rp__real_poll)(struct pollfd *, nfds_t, int);
static int (*_Atomic rp__real_ppoll)(struct pollfd *, nfds_t,
				     const struct timespec *,
				     const sigset_t *);
static int (*_Atomic rp__real_select)(int, fd_set *, fd_set *, fd_set *,
				      struct timeval *);
static int (*_Atomic rp__real_pselect)(int, fd_set *, fd_set *, fd_set *,
				       const struct timespec *,
				       const sigset_t *);

#define RP_REAL(var, name)                                                 \
	(rp__likely(var) ? var : (var = (__typeof__(var))dlsym(RTLD_NEXT,  \
							       name)))

static int rp__poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (rp__likely(!rp__poll_rings(fds, n)))
		return RP_REAL(rp__real_poll, "poll")(fds, n, timeout);
	RP_KEEP_ERRNO(rp__poll_slow(fds, n,
				    timeout < 0 ? -1 :
						  (int64_t)timeout * 1000000,
				    NULL));
}

static int rp__ppoll(struct pollfd *fds, nfds_t n,
		     const struct timespec *timeout, const sigset_t *sigmask)
{
	if (rp__likely(!rp__poll_rings(fds, n)))
		return RP_REAL(rp__real_ppoll, "ppoll")(fds, n, timeout,
							sigmask);
	RP_KEEP_ERRNO(rp_ppoll(fds, n, timeout, sigmask));
}

RP_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return rp__poll(fds, n, timeout);
}

RP_EXPORT int ppoll(struct pollfd *fds, nfds_t n,
		    const struct timespec *timeout, const sigset_t *sigmask)
{
	return rp__ppoll(fds, n, timeout, sigmask);
}

/* _FORTIFY_SOURCE's poll and ppoll: checked, then ours. */
RP_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout,
			 size_t len)
{
	if (len / sizeof(*fds) < n)
		abort();
	return rp__poll(fds, n, timeout);
}

RP_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n,
			  const struct timespec *timeout,
			  const sigset_t *sigmask, size_t len)
{
	if (len / sizeof(*fds) < n)
		abort();
	return rp__ppoll(fds, n, timeout, sigmask);
}

RP_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		     struct timeval *timeout)
{
	if (rp__likely(!rp__select_rings(nfds, r, w, e)))
		return RP_REAL(rp__real_select, "select")(nfds, r, w, e,
							  timeout);
	RP_KEEP_ERRNO(rp_select(nfds, r, w, e, timeout));
}

RP_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
		      const struct timespec *timeout, const sigset_t *sigmask)
{
	if (rp__likely(!rp__select_rings(nfds, r, w, e)))
		return RP_REAL(rp__real_pselect, "pselect")(nfds, r, w, e,
							    timeout, sigmask);
	RP_KEEP_ERRNO(rp_pselect(nfds, r, w, e, timeout, sigmask));
}
