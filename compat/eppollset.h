/* SPDX-License-Identifier: MIT */
/*
 * compat/eppollset.c: poll(2) and select(2) on sets that hold an
 * instance, for the interposer (compat/preload.c); rp_poll and the rest
 * are in include/ringpoll_epoll.h.
 */
#ifndef RP_EPPOLLSET_H
#define RP_EPPOLLSET_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/select.h>

/*
 * poll(2) and select(2) on sets that hold an instance.
 * rp__poll_rings and rp__select_rings say whether the set holds one (one
 * table lookup per fd, no syscall); the _slow calls answer for such a set
 * and return -1/errno as the calls they stand for.
 */
bool rp__poll_rings(const struct pollfd *fds, nfds_t n);
int rp__poll_slow(struct pollfd *fds, nfds_t n, int64_t timeout_ns,
		  const sigset_t *sigmask);
bool rp__select_rings(int nfds, const fd_set *r, const fd_set *w,
		      const fd_set *e);
int rp__select_slow(int nfds, fd_set *r, fd_set *w, fd_set *e,
		    int64_t timeout_ns, const sigset_t *sigmask,
		    int64_t *left_ns);

#endif /* RP_EPPOLLSET_H */
