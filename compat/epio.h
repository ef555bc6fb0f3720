/* SPDX-License-Identifier: MIT */
/*
 * The read and write family in the completion mode (compat/epio.c), for
 * the preload's interposers. served false: the number names no completion
 * socket, and the call is the C library's.
 */
#ifndef RP_EPIO_H
#define RP_EPIO_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

ssize_t rp__io_read(int fd, const struct iovec *iov, int n, int flags,
		    bool *served);
ssize_t rp__io_write(int fd, const struct iovec *iov, int n, int flags,
		     bool *served);
int rp__io_shutdown(int fd, int how, bool *served);
/*
 * Before a call that writes to the socket behind our buffer (sendfile, a
 * send with control data or MSG_OOB): 0 when nothing of ours is queued,
 * -EAGAIN while it is (the caller fails the call so, as a full socket's).
 */
int rp__io_flushed(int fd);
/* A write around the buffer found the socket full (or took less). */
void rp__io_out_full(int fd);
/* 1 and *n the bytes buffered, if fd is a completion socket; else 0. */
int rp__io_buffered(int fd, size_t *n);
/* fcntl(F_SETFL) or FIONBIO changed O_NONBLOCK. */
void rp__io_blocking(int fd, bool blocking);
/* Does the set hold a completion socket? */
bool rp__io_poll_has(const struct pollfd *fds, nfds_t n);
int rp__io_poll(struct pollfd *fds, nfds_t n, int timeout_ms,
		const sigset_t *sigmask,
		int (*real)(struct pollfd *, nfds_t, const struct timespec *,
			    const sigset_t *));

/*
 * SO_RCVLOWAT (the int at val) of a completion socket: ours, not the
 * kernel's (true). False: not one, or val is a bad pointer.
 */
bool rp__io_lowat(int fd, const void *val);
/*
 * fd's socket now gives control data with its bytes (an option asked for
 * it): out of the mode (see struct rp__fdent's cmsg). rp__io_accepted: a
 * socket accepted from lfd inherits the listener's options.
 */
void rp__io_cmsg(int fd);
void rp__io_accepted(int lfd, int fd);
bool rp__io_get_lowat(int fd, uint32_t *lowat);
/* select(2) over sets holding completion sockets, as a poll of them. */
bool rp__io_select_has(int nfds, const fd_set *r, const fd_set *w,
		       const fd_set *e);
int rp__io_select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		  const struct timespec *timeout, const sigset_t *sigmask,
		  int (*real)(struct pollfd *, nfds_t, const struct timespec *,
			      const sigset_t *));

#endif /* RP_EPIO_H */
