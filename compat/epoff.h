/* SPDX-License-Identifier: MIT */
/*
 * Disabled one-shot entries a move to the kernel's epoll leaves out: see
 * compat/epoff.c.
 */
#ifndef RP_EPOFF_H
#define RP_EPOFF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>

/*
 * rp__ep_off_begin registers a token in kfd (NULL if it cannot: the
 * entries are added as before); rp__ep_off_leave records fd left out of
 * epoll number epnum (false: add it); rp__ep_off_undo takes one back (the
 * move failed); rp__ep_off_end lets the move's hold of the token go.
 * rp__ep_off_ctl answers a ctl on a kernel epoll for a recorded fd
 * (false: not ours, the kernel answers); rp__ep_off_forget at the close or
 * remaking of the fd of table entry e.
 */
struct rp__ep_off_tok;
struct rp__fdent;
extern atomic_uint rp__ep_offs;
struct rp__ep_off_tok *rp__ep_off_begin(int kfd);
bool rp__ep_off_leave(struct rp__ep_off_tok *tok, int epnum, int fd);
void rp__ep_off_undo(struct rp__ep_off_tok *tok, int fd);
void rp__ep_off_end(struct rp__ep_off_tok *tok);
bool rp__ep_off_ctl(int epfd, int op, int fd, const struct epoll_event *event,
		    int *ret);
void rp__ep_off_forget(struct rp__fdent *e);
/* The kernel epoll of number epnum is closed: its records go. */
void rp__ep_off_forget_ep(int epnum);
/* Is number epnum still the epoll that holds efd (a token, a stand-in)? */
bool rp__epoll_holds(int epnum, int efd);

#endif /* RP_EPOFF_H */
