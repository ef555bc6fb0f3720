/* SPDX-License-Identifier: MIT */
/*
 * Drop-in: include this after the system headers of an epoll program and
 * link with -lringpoll -luring; epoll_create, epoll_create1, epoll_ctl,
 * epoll_wait, epoll_pwait, epoll_pwait2 and close then run on io_uring.
 */
#ifndef RINGPOLL_COMPAT_H
#define RINGPOLL_COMPAT_H

#include <unistd.h>

#include "ringpoll_epoll.h"

#define epoll_create(size) rp_epoll_create(size)
#define epoll_create1(flags) rp_epoll_create1(flags)
#define epoll_ctl(epfd, op, fd, ev) rp_epoll_ctl(epfd, op, fd, ev)
#define epoll_wait(epfd, evs, max, tmo) rp_epoll_wait(epfd, evs, max, tmo)
#define epoll_pwait(epfd, evs, max, tmo, ss) \
	rp_epoll_pwait(epfd, evs, max, tmo, ss)
#define epoll_pwait2(epfd, evs, max, tmo, ss) \
	rp_epoll_pwait2(epfd, evs, max, tmo, ss)
#define close(fd) rp_close(fd)

#endif /* RINGPOLL_COMPAT_H */
