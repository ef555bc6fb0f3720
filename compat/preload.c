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
#include <limits.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epio.h"
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

static int rp__fresh(int fd);

/* A new instance's number is checked as it is made (rp__fresh_fd). */
RP_EXPORT int epoll_create(int size)
{
	return rp_epoll_create(size);
}

RP_EXPORT int epoll_create1(int flags)
{
	return rp_epoll_create1(flags);
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
	int ret;

	pthread_once(&rp__real_once, rp__find_real);
	if (oldfd != newfd && fcntl(oldfd, F_GETFD) >= 0)
		rp__forget(newfd);
	ret = rp__real_dup2(oldfd, newfd);
	if (ret >= 0 && rp__unlikely(rp__cs_on))
		rp__cs_dup(oldfd, ret);
	return ret;
}

RP_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	int ret;

	pthread_once(&rp__real_once, rp__find_real);
	if (oldfd != newfd && fcntl(oldfd, F_GETFD) >= 0)
		rp__forget(newfd);
	ret = rp__real_dup3(oldfd, newfd, flags);
	if (ret >= 0 && rp__unlikely(rp__cs_on))
		rp__cs_dup(oldfd, ret);
	return ret;
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

/* The result of a served call: -errno to -1/errno. */
static ssize_t rp__cs_ret(ssize_t ret)
{
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

/* ppoll as the C library has it, for compat/epio.c's poll. */
static int rp__real_ppoll_fn(struct pollfd *fds, nfds_t n,
			     const struct timespec *t, const sigset_t *ss)
{
	return RP_REAL(rp__real_ppoll, "ppoll")(fds, n, t, ss);
}

static int rp__poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (rp__unlikely(rp__cs_on) && !rp__poll_rings(fds, n) &&
	    rp__io_poll_has(fds, n))
		RP_KEEP_ERRNO((int)rp__cs_ret(rp__io_poll(
			fds, n, timeout < 0 ? -1 : timeout, NULL,
			rp__real_ppoll_fn)));
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
	if (rp__unlikely(rp__cs_on) && !rp__poll_rings(fds, n) &&
	    rp__io_poll_has(fds, n))
		RP_KEEP_ERRNO((int)rp__cs_ret(rp__io_poll(
			fds, n,
			!timeout ? -1 :
				   (int)(timeout->tv_sec * 1000 +
					 (timeout->tv_nsec + 999999) / 1000000),
			sigmask, rp__real_ppoll_fn)));
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
	if (rp__unlikely(rp__cs_on) && !rp__select_rings(nfds, r, w, e) &&
	    rp__io_select_has(nfds, r, w, e)) {
		struct timespec ts, *tp = NULL;

		if (timeout) {
			ts.tv_sec = timeout->tv_sec;
			ts.tv_nsec = timeout->tv_usec * 1000;
			tp = &ts;
		}
		RP_KEEP_ERRNO((int)rp__cs_ret(rp__io_select(
			nfds, r, w, e, tp, NULL, rp__real_ppoll_fn)));
	}
	if (rp__likely(!rp__select_rings(nfds, r, w, e)))
		return RP_REAL(rp__real_select, "select")(nfds, r, w, e,
							  timeout);
	RP_KEEP_ERRNO(rp_select(nfds, r, w, e, timeout));
}

RP_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
		      const struct timespec *timeout, const sigset_t *sigmask)
{
	if (rp__unlikely(rp__cs_on) && !rp__select_rings(nfds, r, w, e) &&
	    rp__io_select_has(nfds, r, w, e))
		RP_KEEP_ERRNO((int)rp__cs_ret(rp__io_select(
			nfds, r, w, e, timeout, sigmask, rp__real_ppoll_fn)));
	if (rp__likely(!rp__select_rings(nfds, r, w, e)))
		return RP_REAL(rp__real_pselect, "pselect")(nfds, r, w, e,
							    timeout, sigmask);
	RP_KEEP_ERRNO(rp_pselect(nfds, r, w, e, timeout, sigmask));
}

/*
 * The completion mode (RINGPOLL_COMPLETION=1, compat/epcs.h): the read
 * and write family, and every call that could see a socket's buffers,
 * go through compat/epio.c when the number names a completion socket.
 * With the mode off each is one branch in front of the C library's.
 */
#define RP_CS_REAL(type, name, args)                                       \
	static type(*_Atomic rp__real_##name) args;                        \
	static type(*rp__real_fn_##name(void)) args                        \
	{                                                                  \
		return RP_REAL(rp__real_##name, #name);                    \
	}

RP_CS_REAL(ssize_t, read, (int, void *, size_t))
RP_CS_REAL(ssize_t, readv, (int, const struct iovec *, int))
RP_CS_REAL(ssize_t, recv, (int, void *, size_t, int))
RP_CS_REAL(ssize_t, recvfrom, (int, void *, size_t, int, struct sockaddr *,
			       socklen_t *))
RP_CS_REAL(ssize_t, recvmsg, (int, struct msghdr *, int))
RP_CS_REAL(ssize_t, write, (int, const void *, size_t))
RP_CS_REAL(ssize_t, writev, (int, const struct iovec *, int))
RP_CS_REAL(ssize_t, sendto, (int, const void *, size_t, int,
			     const struct sockaddr *, socklen_t))
RP_CS_REAL(ssize_t, sendmsg, (int, const struct msghdr *, int))
RP_CS_REAL(int, shutdown, (int, int))
RP_CS_REAL(int, fcntl, (int, int, ...))
RP_CS_REAL(int, fcntl64, (int, int, ...))
RP_CS_REAL(int, ioctl, (int, unsigned long, ...))
RP_CS_REAL(int, dup, (int))
RP_CS_REAL(ssize_t, sendfile, (int, int, off_t *, size_t))
RP_CS_REAL(ssize_t, sendfile64, (int, int, off64_t *, size_t))
RP_CS_REAL(ssize_t, splice, (int, loff_t *, int, loff_t *, size_t,
			     unsigned int))
RP_CS_REAL(int, setsockopt, (int, int, int, const void *, socklen_t))
RP_CS_REAL(int, getsockopt, (int, int, int, void *, socklen_t *))

/* Receive flags the buffers serve; MSG_OOB and MSG_ERRQUEUE are apart. */
#define RP_CS_RECV_FLAGS                                                   \
	(MSG_PEEK | MSG_DONTWAIT | MSG_WAITALL | MSG_NOSIGNAL |            \
	 MSG_CMSG_CLOEXEC | MSG_TRUNC)
#define RP_CS_SEND_FLAGS                                                   \
	(MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE | MSG_EOR | MSG_CONFIRM)

RP_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	/* A read of nothing is 0 from the kernel, whatever is queued. */
	if (rp__unlikely(rp__cs_on) && len) {
		struct iovec v = { buf, len };
		bool served;
		ssize_t ret = rp__io_read(fd, &v, 1, 0, &served);

		if (served)
			return rp__cs_ret(ret);
	}
	return rp__real_fn_read()(fd, buf, len);
}

RP_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		abort();
	return read(fd, buf, len);
}

static size_t rp__iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;

	for (size_t i = 0; iov && i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static bool rp__iov_empty(const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		if (iov[i].iov_len)
			return false;
	return true;
}

RP_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	if (rp__unlikely(rp__cs_on) && n > 0 && n <= IOV_MAX && iov &&
	    !rp__iov_empty(iov, n)) {
		bool served;
		ssize_t ret = rp__io_read(fd, iov, n, 0, &served);

		if (served)
			return rp__cs_ret(ret);
	}
	return rp__real_fn_readv()(fd, iov, n);
}

RP_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	if (rp__unlikely(rp__cs_on) && !(flags & ~RP_CS_RECV_FLAGS)) {
		struct iovec v = { buf, len };
		bool served;
		ssize_t ret = rp__io_read(fd, &v, 1, flags, &served);

		if (served)
			return rp__cs_ret(ret);
	}
	return rp__real_fn_recv()(fd, buf, len, flags);
}

RP_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen,
			     int flags)
{
	if (len > buflen)
		abort();
	return recv(fd, buf, len, flags);
}

RP_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
			   struct sockaddr *from, socklen_t *fromlen)
{
	if (rp__unlikely(rp__cs_on) && !(flags & ~RP_CS_RECV_FLAGS)) {
		struct iovec v = { buf, len };
		bool served;
		ssize_t ret = rp__io_read(fd, &v, 1, flags, &served);

		if (served) {
			/* A connected stream socket names no sender. */
			if (ret >= 0 && from && fromlen)
				*fromlen = 0;
			return rp__cs_ret(ret);
		}
	}
	return rp__real_fn_recvfrom()(fd, buf, len, flags, from, fromlen);
}

RP_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len,
				 size_t buflen, int flags,
				 struct sockaddr *from, socklen_t *fromlen)
{
	if (len > buflen)
		abort();
	return recvfrom(fd, buf, len, flags, from, fromlen);
}

RP_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (rp__unlikely(rp__cs_on) && msg && !(flags & ~RP_CS_RECV_FLAGS) &&
	    msg->msg_iovlen <= IOV_MAX) {
		bool served;
		ssize_t ret = rp__io_read(fd, msg->msg_iov,
					  (int)msg->msg_iovlen, flags,
					  &served);

		if (served) {
			if (ret >= 0) {
				msg->msg_namelen = 0;
				msg->msg_controllen = 0;
				msg->msg_flags = 0;
			}
			return rp__cs_ret(ret);
		}
	}
	return rp__real_fn_recvmsg()(fd, msg, flags);
}

RP_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	if (rp__unlikely(rp__cs_on)) {
		struct iovec v = { (void *)buf, len };
		bool served;
		ssize_t ret = rp__io_write(fd, &v, 1, 0, &served);

		if (served)
			return rp__cs_ret(ret);
	}
	return rp__real_fn_write()(fd, buf, len);
}

RP_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	if (rp__unlikely(rp__cs_on) && n >= 0 && n <= IOV_MAX) {
		bool served;
		ssize_t ret = rp__io_write(fd, iov, n, 0, &served);

		if (served)
			return rp__cs_ret(ret);
	}
	return rp__real_fn_writev()(fd, iov, n);
}

/*
 * A send the buffers cannot carry (MSG_OOB, control data, an address)
 * goes to the kernel after ours: EAGAIN while ours are queued.
 */
static bool rp__cs_behind(int fd)
{
	int ret = rp__io_flushed(fd);

	if (ret < 0) {
		errno = -ret;
		return true;
	}
	return false;
}

/*
 * A write that went around a completion socket's buffer and found the
 * socket full, or took less than asked: its EPOLLOUT waits for room.
 */
static ssize_t rp__cs_around(int fd, ssize_t ret, size_t len)
{
	if (rp__unlikely(rp__cs_on) &&
	    ((ret < 0 && errno == EAGAIN) || (ret >= 0 && (size_t)ret < len))) {
		int saved = errno;

		rp__io_out_full(fd);
		errno = saved;
	}
	return ret;
}

/* send(2) is sendto(2) with no address, in the kernel as here. */
RP_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	return sendto(fd, buf, len, flags, NULL, 0);
}

RP_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
			 const struct sockaddr *to, socklen_t tolen)
{
	if (rp__unlikely(rp__cs_on)) {
		if (!to && !(flags & ~RP_CS_SEND_FLAGS)) {
			struct iovec v = { (void *)buf, len };
			bool served;
			ssize_t ret = rp__io_write(fd, &v, 1, flags, &served);

			if (served)
				return rp__cs_ret(ret);
		} else if (rp__cs_behind(fd)) {
			return -1;
		}
	}
	return rp__cs_around(fd, rp__real_fn_sendto()(fd, buf, len, flags, to,
						      tolen),
			     len);
}

RP_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (rp__unlikely(rp__cs_on) && msg) {
		if (!msg->msg_name && !msg->msg_controllen &&
		    !(flags & ~RP_CS_SEND_FLAGS) && msg->msg_iovlen <= IOV_MAX) {
			bool served;
			ssize_t ret = rp__io_write(fd, msg->msg_iov,
						   (int)msg->msg_iovlen, flags,
						   &served);

			if (served)
				return rp__cs_ret(ret);
		} else if (rp__cs_behind(fd)) {
			return -1;
		}
	}
	return rp__cs_around(fd, rp__real_fn_sendmsg()(fd, msg, flags),
			     msg ? rp__iov_total(msg->msg_iov, msg->msg_iovlen) :
				   0);
}

RP_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t len)
{
	if (rp__unlikely(rp__cs_on) && rp__cs_behind(out))
		return -1;
	return rp__cs_around(out, rp__real_fn_sendfile()(out, in, off, len),
			     len);
}

RP_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t len)
{
	if (rp__unlikely(rp__cs_on) && rp__cs_behind(out))
		return -1;
	return rp__cs_around(out, rp__real_fn_sendfile64()(out, in, off, len),
			     len);
}

/*
 * splice out of a completion socket: its buffered bytes first, through a
 * peek, a write to the other end and the read of what that took (the
 * pipe may take less). Into one: after what it queued, as sendfile.
 */
RP_EXPORT ssize_t splice(int in, loff_t *in_off, int out, loff_t *out_off,
			 size_t len, unsigned int flags)
{
	if (rp__unlikely(rp__cs_on)) {
		char buf[65536];
		struct iovec v = { buf, len < sizeof(buf) ? len : sizeof(buf) };
		bool served;
		ssize_t got, put;

		if (rp__cs_behind(out))
			return -1;
		got = len && !in_off ?
			      rp__io_read(in, &v, 1, MSG_PEEK | MSG_DONTWAIT,
					  &served) :
			      (served = false, 0);
		if (served && got > 0) {
			put = rp__real_fn_write()(out, buf, (size_t)got);
			if (put <= 0)
				return put;
			v.iov_len = (size_t)put;
			return rp__cs_ret(rp__io_read(in, &v, 1, MSG_DONTWAIT,
						      &served));
		}
		if (served && got != -EAGAIN)
			return rp__cs_ret(got);
		/* Nothing buffered and nothing for the kernel to give: */
		if (served)
			return rp__cs_ret(-EAGAIN);
	}
	return rp__cs_around(out, rp__real_fn_splice()(in, in_off, out,
						       out_off, len, flags),
			     len);
}

/*
 * Options that make a TCP socket's receives carry control data (what
 * tcp_recvmsg puts there: receive timestamps, TCP_CM_INQ), turned on.
 */
static bool rp__cmsg_opt(int level, int name, const void *val,
			 socklen_t len)
{
	bool ts = level == SOL_SOCKET &&
		  (name == SO_TIMESTAMP_OLD || name == SO_TIMESTAMPNS_OLD ||
		   name == SO_TIMESTAMPING_OLD || name == SO_TIMESTAMP_NEW ||
		   name == SO_TIMESTAMPNS_NEW || name == SO_TIMESTAMPING_NEW);
	bool inq = level == IPPROTO_TCP && name == TCP_INQ;

	/* SO_TIMESTAMPING takes flags, or a struct that starts with them. */
	return (ts || inq) && val && len >= sizeof(int) &&
	       *(const int *)val != 0;
}

/*
 * SO_RCVLOWAT on a completion socket is ours: EPOLLIN from that many
 * buffered bytes, as tcp_poll. The kernel's own would count only what
 * the recv has not taken yet, and hold the recv back. An option that
 * brings control data takes the socket out of the mode (rp__io_cmsg).
 */
RP_EXPORT int setsockopt(int fd, int level, int name, const void *val,
			 socklen_t len)
{
	int ret;

	if (rp__unlikely(rp__cs_on) && level == SOL_SOCKET &&
	    name == SO_RCVLOWAT && len >= sizeof(int) &&
	    rp__io_lowat(fd, val))
		return 0;
	ret = rp__real_fn_setsockopt()(fd, level, name, val, len);
	if (ret == 0 && rp__unlikely(rp__cs_on) &&
	    rp__cmsg_opt(level, name, val, len)) {
		int saved = errno;

		rp__io_cmsg(fd);
		errno = saved;
	}
	return ret;
}

RP_EXPORT int getsockopt(int fd, int level, int name, void *val,
			 socklen_t *len)
{
	int ret = rp__real_fn_getsockopt()(fd, level, name, val, len);
	uint32_t lowat;

	if (ret == 0 && rp__unlikely(rp__cs_on) && level == SOL_SOCKET &&
	    name == SO_RCVLOWAT && val && len && *len >= sizeof(int) &&
	    rp__io_get_lowat(fd, &lowat))
		*(int *)val = (int)lowat;
	return ret;
}

RP_EXPORT int shutdown(int fd, int how)
{
	if (rp__unlikely(rp__cs_on) &&
	    (how == SHUT_RD || how == SHUT_WR || how == SHUT_RDWR)) {
		bool served;
		int ret = rp__io_shutdown(fd, how, &served);

		if (served)
			return (int)rp__cs_ret(ret);
	}
	return rp__real_fn_shutdown()(fd, how);
}

RP_EXPORT int dup(int fd)
{
	int ret = rp__fresh(rp__real_fn_dup()(fd));

	if (ret >= 0 && rp__unlikely(rp__cs_on))
		rp__cs_dup(fd, ret);
	return ret;
}

/*
 * fcntl's argument is an int or a pointer, by command: passed on as the
 * pointer-sized word it arrived in (the x86-64 and aarch64 ABIs pass
 * either so).
 */
static int rp__fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	int ret = real(fd, cmd, arg);

	if (ret >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		rp__fresh(ret);
	if (ret < 0 || !rp__unlikely(rp__cs_on))
		return ret;
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		rp__cs_dup(fd, ret);
	else if (cmd == F_SETFL)
		rp__io_blocking(fd, !((long)arg & O_NONBLOCK));
	return ret;
}

RP_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return rp__fcntl(rp__real_fn_fcntl(), fd, cmd, arg);
}

RP_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return rp__fcntl(rp__real_fn_fcntl64() ? rp__real_fn_fcntl64() :
						 rp__real_fn_fcntl(),
			 fd, cmd, arg);
}

RP_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	size_t n;
	int ret;

	bool ours = false;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	/*
	 * What is readable is ours and the kernel's: ours first (taking in
	 * what the recv has received), then the kernel's rest.
	 */
	if (rp__unlikely(rp__cs_on) && req == FIONREAD && arg)
		ours = rp__io_buffered(fd, &n);
	ret = rp__real_fn_ioctl()(fd, req, arg);
	if (ret < 0 || !rp__unlikely(rp__cs_on))
		return ret;
	if (ours)
		*(int *)arg += (int)n;
	else if (req == FIONBIO && arg)
		rp__io_blocking(fd, !*(int *)arg);
	return ret;
}

/*
 * Calls that make an fd number: what the number named was closed behind
 * our back (libuv closes with syscall(SYS_close)); its registrations and
 * completion socket are forgotten, and the number is the new file's
 * (rp__fresh_fd): an ADD of it is not EEXIST, reads and writes are its.
 */
static int rp__fresh(int fd)
{
	if (fd >= 0) {
		int saved = errno;

		rp__fresh_fd(fd);
		errno = saved;
	}
	return fd;
}

RP_CS_REAL(int, accept, (int, struct sockaddr *, socklen_t *))
RP_CS_REAL(int, accept4, (int, struct sockaddr *, socklen_t *, int))
RP_CS_REAL(int, socket, (int, int, int))
RP_CS_REAL(int, socketpair, (int, int, int, int *))
RP_CS_REAL(int, open, (const char *, int, ...))
RP_CS_REAL(int, open64, (const char *, int, ...))
RP_CS_REAL(int, openat, (int, const char *, int, ...))
RP_CS_REAL(int, openat64, (int, const char *, int, ...))
RP_CS_REAL(int, __open_2, (const char *, int))
RP_CS_REAL(int, __open64_2, (const char *, int))
RP_CS_REAL(int, __openat_2, (int, const char *, int))
RP_CS_REAL(int, __openat64_2, (int, const char *, int))
RP_CS_REAL(int, creat, (const char *, mode_t))
RP_CS_REAL(int, creat64, (const char *, mode_t))
RP_CS_REAL(int, pipe, (int *))
RP_CS_REAL(int, pipe2, (int *, int))
RP_CS_REAL(int, eventfd, (unsigned int, int))
RP_CS_REAL(int, memfd_create, (const char *, unsigned int))
RP_CS_REAL(int, timerfd_create, (int, int))
RP_CS_REAL(int, signalfd, (int, const sigset_t *, int))
RP_CS_REAL(int, inotify_init, (void))
RP_CS_REAL(int, inotify_init1, (int))

RP_EXPORT int accept(int fd, struct sockaddr *a, socklen_t *l)
{
	int s = rp__fresh(rp__real_fn_accept()(fd, a, l));

	if (rp__unlikely(rp__cs_on))
		rp__io_accepted(fd, s);
	return s;
}

RP_EXPORT int accept4(int fd, struct sockaddr *a, socklen_t *l, int flags)
{
	int s = rp__fresh(rp__real_fn_accept4()(fd, a, l, flags));

	if (rp__unlikely(rp__cs_on))
		rp__io_accepted(fd, s);
	return s;
}

RP_EXPORT int socket(int domain, int type, int proto)
{
	return rp__fresh(rp__real_fn_socket()(domain, type, proto));
}

RP_EXPORT int socketpair(int domain, int type, int proto, int sv[2])
{
	int ret = rp__real_fn_socketpair()(domain, type, proto, sv);

	if (ret == 0) {
		rp__fresh(sv[0]);
		rp__fresh(sv[1]);
	}
	return ret;
}

/* open's mode is there only with O_CREAT or O_TMPFILE; passed on always. */
#define RP_OPEN_MODE(flags)                                                	mode_t mode = 0;                                                   	if ((flags) & (O_CREAT | O_TMPFILE)) {                             		va_list ap;                                                		va_start(ap, flags);                                       		mode = va_arg(ap, mode_t);                                 		va_end(ap);                                                	}

RP_EXPORT int open(const char *path, int flags, ...)
{
	RP_OPEN_MODE(flags)
	return rp__fresh(rp__real_fn_open()(path, flags, mode));
}

RP_EXPORT int open64(const char *path, int flags, ...)
{
	RP_OPEN_MODE(flags)
	return rp__fresh(rp__real_fn_open64()(path, flags, mode));
}

RP_EXPORT int openat(int dir, const char *path, int flags, ...)
{
	RP_OPEN_MODE(flags)
	return rp__fresh(rp__real_fn_openat()(dir, path, flags, mode));
}

RP_EXPORT int openat64(int dir, const char *path, int flags, ...)
{
	RP_OPEN_MODE(flags)
	return rp__fresh(rp__real_fn_openat64()(dir, path, flags, mode));
}

RP_EXPORT int __open_2(const char *path, int flags)
{
	return rp__fresh(rp__real_fn___open_2()(path, flags));
}

RP_EXPORT int __open64_2(const char *path, int flags)
{
	return rp__fresh(rp__real_fn___open64_2()(path, flags));
}

RP_EXPORT int __openat_2(int dir, const char *path, int flags)
{
	return rp__fresh(rp__real_fn___openat_2()(dir, path, flags));
}

RP_EXPORT int __openat64_2(int dir, const char *path, int flags)
{
	return rp__fresh(rp__real_fn___openat64_2()(dir, path, flags));
}

RP_EXPORT int creat(const char *path, mode_t mode)
{
	return rp__fresh(rp__real_fn_creat()(path, mode));
}

RP_EXPORT int creat64(const char *path, mode_t mode)
{
	return rp__fresh(rp__real_fn_creat64()(path, mode));
}

RP_EXPORT int pipe(int fds[2])
{
	int ret = rp__real_fn_pipe()(fds);

	if (ret == 0) {
		rp__fresh(fds[0]);
		rp__fresh(fds[1]);
	}
	return ret;
}

RP_EXPORT int pipe2(int fds[2], int flags)
{
	int ret = rp__real_fn_pipe2()(fds, flags);

	if (ret == 0) {
		rp__fresh(fds[0]);
		rp__fresh(fds[1]);
	}
	return ret;
}

RP_EXPORT int eventfd(unsigned int n, int flags)
{
	return rp__fresh(rp__real_fn_eventfd()(n, flags));
}

RP_EXPORT int memfd_create(const char *name, unsigned int flags)
{
	return rp__fresh(rp__real_fn_memfd_create()(name, flags));
}

RP_EXPORT int timerfd_create(int clock, int flags)
{
	return rp__fresh(rp__real_fn_timerfd_create()(clock, flags));
}

RP_EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
	return rp__fresh(rp__real_fn_signalfd()(fd, mask, flags));
}

RP_EXPORT int inotify_init(void)
{
	return rp__fresh(rp__real_fn_inotify_init()());
}

RP_EXPORT int inotify_init1(int flags)
{
	return rp__fresh(rp__real_fn_inotify_init1()(flags));
}

/*
 * Found when the library loads, not at first use: write is also the stats
 * line's, which _exit may print from a signal handler, where dlsym is not
 * safe to call.
 */
__attribute__((constructor)) static void rp__find_io(void)
{
	(void)rp__real_fn_read();
	(void)rp__real_fn_readv();
	(void)rp__real_fn_recv();
	(void)rp__real_fn_recvfrom();
	(void)rp__real_fn_recvmsg();
	(void)rp__real_fn_write();
	(void)rp__real_fn_writev();
	(void)rp__real_fn_sendto();
	(void)rp__real_fn_sendmsg();
	(void)rp__real_fn_shutdown();
	(void)rp__real_fn_fcntl();
	(void)rp__real_fn_fcntl64();
	(void)rp__real_fn_ioctl();
	(void)rp__real_fn_dup();
	(void)rp__real_fn_sendfile();
	(void)rp__real_fn_sendfile64();
	(void)rp__real_fn_splice();
	(void)rp__real_fn_setsockopt();
	(void)rp__real_fn_getsockopt();
	(void)rp__real_fn_accept();
	(void)rp__real_fn_accept4();
	(void)rp__real_fn_socket();
	(void)rp__real_fn_socketpair();
	(void)rp__real_fn_open();
	(void)rp__real_fn_open64();
	(void)rp__real_fn_openat();
	(void)rp__real_fn_openat64();
	(void)rp__real_fn_pipe();
	(void)rp__real_fn_pipe2();
}
