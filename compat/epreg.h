/* SPDX-License-Identifier: MIT */
/*
 * The registry of instances (compat/epreg.c): which fd number is which
 * instance, and what happens to instances as a whole: their structs,
 * made and recycled; whether a number is still ours (identity); fork;
 * exit; the stats; the close path; the move to the kernel's epoll.
 *
 * Its callers are the boundaries (compat/epoll.c, compat/eppollset.c) and
 * the interposer (compat/preload.c). It calls the state machine of an
 * instance (compat/epctx.h), never a boundary. The state machine's few
 * calls back into it are the hooks of compat/ephooks.h, and nothing else.
 */
#ifndef RP_EPREG_H
#define RP_EPREG_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "epctx.h"

/* The instance behind each fd, in chunks so lookups take no lock. */
#define RP__TAB_SHIFT 10
#define RP__TAB_CHUNK (1u << RP__TAB_SHIFT)
#define RP__TAB_CHUNKS 4096 /* fds below 4M: beyond any nr_open default */

struct rp__fdent {
	_Atomic(struct rp__ep *) ep;
	/* instances that have (or had, since its last close) fd registered */
	atomic_uint nreg;
	/*
	 * While nreg is 1, the instance that registered fd: its close then
	 * visits that one alone, not every instance (an fd is nearly always
	 * in one). A struct recycled since is harmless: the fd is not
	 * registered there, or its ADD made nreg 2.
	 */
	_Atomic(struct rp__ep *) one;
	/* An instance made the kernel's epoll (rp__ep_go_kernel), until closed. */
	atomic_bool kernel_ep;
	/*
	 * The completion socket this number names (compat/epcs.h), found by
	 * the interposed read and write family without a lock; checked
	 * again under its instance's lock.
	 */
	_Atomic(struct rp__cs *) cs;
	/*
	 * Another number names its file too (a dup we saw): reads there
	 * would go around a completion socket's buffer, so the mode does
	 * not take it. Until the number is closed or made anew.
	 */
	atomic_bool dupped;
	/*
	 * Its socket's receives carry control data (SO_TIMESTAMP*, TCP_INQ
	 * asked, or inherited from its listener): bytes read ahead would
	 * come without it, so the mode does not take it, and lets it go
	 * if it has it. Until the number is closed or made anew.
	 */
	atomic_bool cmsg;
	/*
	 * Its disabled one-shot entry left out of the kernel epoll of that
	 * number (compat/epoff.c), or NULL. Under rp__ep_off_lock.
	 */
	struct rp__ep_off_tok *off;
	int off_ep;
};

/* The table's chunks: made by rp__fdent, never freed; no lock to read. */
extern _Atomic(struct rp__fdent *) rp__tab[RP__TAB_CHUNKS];

/*
 * fd's entry, NULL beyond the table; make: the chunk is allocated if it is
 * not yet (NULL if it cannot be). Inline: every poll(2) of the preload asks
 * it per fd (rp_epoll_is_ring).
 */
static inline struct rp__fdent *rp__fdent(int fd, bool make)
{
	uint32_t c = (uint32_t)fd >> RP__TAB_SHIFT;
	struct rp__fdent *chunk;

	if (fd < 0 || c >= RP__TAB_CHUNKS)
		return NULL;
	chunk = atomic_load_explicit(&rp__tab[c], memory_order_acquire);
	if (!chunk && make) {
		struct rp__fdent *fresh = calloc(RP__TAB_CHUNK, sizeof(*fresh));

		if (!fresh)
			return NULL;
		if (atomic_compare_exchange_strong(&rp__tab[c], &chunk, fresh))
			chunk = fresh;
		else
			free(fresh);
	}
	return chunk ? &chunk[(uint32_t)fd & (RP__TAB_CHUNK - 1)] : NULL;
}

/* Is fd open? Without a table: any call that can say EBADF. */
static inline bool rp__fd_valid(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/*
 * ADDs of an instance, one at a time: such an ADD takes two instance
 * locks (rp__ctl makes both the kernel's epoll), and two threads putting
 * A in B and B in A would take them in opposite orders. The kernel's
 * ADD that follows checks ELOOP itself. Taken before any ep->lock.
 */
extern pthread_mutex_t rp__nest_lock;

/* Instances made on io_uring in this process (the stats' backend). */
extern atomic_uint rp__rings_made;

/*
 * A new instance on a ring of its own, in the table; or the kernel's epoll
 * where there can be none (RINGPOLL_DISABLE=1, no io_uring, no locked
 * memory). The fd, or -errno.
 */
int rp__ep_create(int flags);
/* The kernel's epoll_create1, its number checked (rp__fresh_fd); -errno. */
int rp__kernel_create(int flags);

/*
 * Is fd (whose stat is st) this instance's ring under another number, a
 * dup of the epoll fd? calls counts the syscalls it made.
 */
bool rp__same_ring(struct rp__ep *ep, int fd, const struct stat *st,
		   uint64_t *calls);
/* fd, which the table says is an instance, names another file now. */
void rp__drop_stale(int fd);
/* Is ep still in the table, but its fd no ring of ours (rp__wait)? */
bool rp__ep_stale(struct rp__ep *ep);

/* The counters of every instance, closed ones too (rp_epoll_stats(-1)). */
void rp__st_total(struct rp_epoll_stats *st);
/*
 * RINGPOLL_STATS=1: the process's stats line on stderr, once. any_context:
 * called from _exit, perhaps in a signal handler or a forked child.
 */
void rp__st_report(bool any_context);

/*
 * Before fd stops naming its file (close, dup2 onto it): forget its
 * registrations, or close the instance it is. Returns -1/errno only if
 * closing an instance failed.
 */
int rp__forget(int fd);
/* The same for every fd in [first, last], before close_range. */
void rp__forget_range(unsigned first, unsigned last);

/*
 * The completion socket fd names, with its instance locked and a
 * reference to it (*epp), or NULL: the call is the kernel's.
 * rp__cs_unlock lets both go, waking a sleeping owner to submit what the
 * call queued.
 */
struct rp__cs *rp__cs_lock(int fd, struct rp__ep **epp);
void rp__cs_unlock(struct rp__ep *ep);
/* newfd is a dup of oldfd: it names oldfd's completion socket too. */
void rp__cs_dup(int oldfd, int newfd);
/*
 * A call made fd (accept, open, socket, ...): whatever completion socket
 * the number named was closed behind our back (a raw close, as libuv's),
 * and the number is another file's now.
 */
void rp__cs_fresh(int fd);
/*
 * The kernel gave out fd (an instance made, an accept, an open, a dup, a
 * pipe...): the number was free, so the file the table knew under it was
 * closed behind our back (syscall(SYS_close), as libuv closes; a close
 * inside libc). Whatever the table says of it is stale: an instance
 * (rp__drop_stale), registrations of the old file (dropped as a close we
 * saw drops them: the kernel's last close removed them), a completion
 * socket, a left-out one-shot record. One table lookup when there is
 * nothing. Returns fd.
 */
int rp__fresh_fd(int fd);
/*
 * Is fd registered in no instance but ep (the completion mode adopts only
 * such sockets)? Takes other instances' locks: call without ep's.
 */
bool rp__reg_alone(struct rp__ep *ep, int fd);
/* fd's file is st: forget the completion socket it named if not that. */
void rp__cs_check(int fd, const struct stat *st);
/*
 * An orphan fd names (its socket left the mode) with nothing of ours left
 * in it is forgotten, so that an ADD can take the socket in again. True
 * if fd names no completion socket now. Any lock but the orphans' held.
 */
bool rp__cs_drop_orphan(int fd);
/* In a forked child: no number names a completion socket. */
void rp__cs_forget_all(void);

#endif /* RP_EPREG_H */
