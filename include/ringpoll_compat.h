/* SPDX-License-Identifier: MIT */
/*
 * Drop-in: epoll_create, epoll_create1, epoll_ctl, epoll_wait, epoll_pwait,
 * epoll_pwait2 and close run on io_uring (rp_epoll_* and rp_close), and
 * poll, ppoll, select and pselect see an instance as the kernel's epoll fd
 * (rp_poll...; below); link with -lringpoll -luring.
 *
 * Include it anywhere, or force it in with `-include ringpoll_compat.h`.
 * It reads no system header of its own unless <sys/epoll.h> was read
 * before it: forced in ahead of a program's own `#define _GNU_SOURCE`, it
 * must not fix the feature macros first. The names are object-like macros,
 * so every valid call builds: arguments with commas (a compound literal),
 * the names taken as function pointers. A system header read after this
 * one declares the rp_ names through them; one read before it is why
 * ringpoll_epoll.h is read here then.
 *
 * close is renamed everywhere after this header, a struct member called
 * close included (consistently: obj.close(fd) still calls the member). A
 * struct declared before the header and used after it would not build:
 * define RINGPOLL_NO_CLOSE_MACRO to leave close alone, and call rp_close
 * for the fds registered with an instance and for instances themselves.
 */
#ifndef RINGPOLL_COMPAT_H
#define RINGPOLL_COMPAT_H

/*
 * poll, ppoll, select and pselect are mapped only if <poll.h> or
 * <sys/select.h> (which <sys/types.h> reads) was read before: the names
 * are common words (a struct member called poll), and a program that did
 * not read them calls none of them.
 */
#ifdef POLLIN
#define RP__COMPAT_POLL 1
#endif
#ifdef FD_SETSIZE
#define RP__COMPAT_SELECT 1
#endif

#if defined(EPOLL_CTL_ADD) || defined(RP__COMPAT_POLL) || \
	defined(RP__COMPAT_SELECT)
/* A system header was read, unrenamed: the feature macros are fixed. */
#include "ringpoll_epoll.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* Needs no type; <unistd.h> may have been read already. */
int rp_close(int fd);
#ifdef __cplusplus
}
#endif

#define epoll_create rp_epoll_create
#define epoll_create1 rp_epoll_create1
#define epoll_ctl rp_epoll_ctl
#define epoll_wait rp_epoll_wait
#define epoll_pwait rp_epoll_pwait
#define epoll_pwait2 rp_epoll_pwait2
#ifdef RP__COMPAT_POLL
#define poll rp_poll
#define ppoll rp_ppoll
#endif
#ifdef RP__COMPAT_SELECT
#define select rp_select
#define pselect rp_pselect
#endif
#ifndef RINGPOLL_NO_CLOSE_MACRO
#define close rp_close
#endif

#endif /* RINGPOLL_COMPAT_H */
