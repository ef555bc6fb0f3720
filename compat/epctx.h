/* SPDX-License-Identifier: MIT */
/*
 * One epoll instance on one io_uring: the interest table, the ready list
 * and the wait (compat/epctx.c; the instance fd's own readiness in
 * compat/eppoll.c), the state machine. Its callers are the registry (compat/epreg.c), which finds the
 * instance, and the boundaries (compat/epoll.c, compat/eppollset.c),
 * which check arguments and convert -errno to -1/errno; everything here
 * returns -errno. It calls the ring (lib/), and the registry only through
 * the hooks of compat/ephooks.h, never a boundary.
 */
#ifndef RP_EPCTX_H
#define RP_EPCTX_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../lib/poll.h"
#include "../lib/ring.h"
#include "ringpoll_epoll.h"
#include "ephooks.h"
#include "epcs.h"

/* compat's CQE kinds, after lib's (lib/internal.h). */
enum {
	RP__UD_EPOLL = RP__UD_COMPAT, /* an epoll registration's poll */
	RP__UD_EPOLL_WAKE,	      /* an epoll instance's wakeup */
	RP__UD_CS_RECV,		      /* a completion socket's recv */
	RP__UD_CS_SEND,		      /* a completion socket's send */
	RP__UD_CS_FREE,		      /* its file let go: the slot is free */
	RP__UD_CS_POLL,		      /* its socket has room again */
	RP__UD_CS_SHUT,		      /* its shutdown(SHUT_WR) is done */
};

#if defined(__SANITIZE_THREAD__)
#define RP__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RP__TSAN 1
#endif
#endif
#ifdef RP__TSAN
void __sanitizer_syscall_pre_impl_close(long fd);
#endif

/*
 * close(2) as a syscall: under the preload, close and dup3 are ours, and
 * would look the fd up again. ThreadSanitizer learns of closes from its
 * close() interceptor: told nothing, it takes the number's reuse by
 * another thread (an eventfd, a pipe) for a race on the old file.
 */
static inline int rp__sys_close(int fd)
{
#ifdef RP__TSAN
	__sanitizer_syscall_pre_impl_close(fd);
#endif
	return (int)syscall(SYS_close, fd);
}

/*
 * The states of a registration (struct rp__ep_item: flags, ready, and
 * its poll's armed and multishot). A one-shot poll serves level-triggered
 * and EPOLLONESHOT interests, a multishot edge-triggered ones and HOOKED
 * ones. A completion socket's registration (it->cs, compat/epcs.h) goes
 * through the same states with a poll that is only a flag: its wakeups
 * are the socket's CQEs, and asking its level costs nothing. Each flag
 * and why it exists:
 *
 *   USED      the fd is registered. The table is indexed by fd (no
 *             lookup structure), so a slot exists for every fd below the
 *             highest one registered, and this says it holds one.
 *   LISTED    threaded on the ready list through it->next. The list is
 *             intrusive (no allocation per event); the flag lists an item
 *             once, and keeps a deleted item's link, still threaded, from
 *             being reused until the list is next walked.
 *   DISABLED  an EPOLLONESHOT entry was reported: no poll, nothing
 *             reported until MOD re-enables it (the kernel's
 *             EP_PRIVATE_BITS).
 *   REARM     on the re-arm list (ep->rearm, once per fd). A level entry
 *             reported is armed again by the next wait, not at once, so
 *             that a full events array rotates through every ready fd as
 *             the kernel's does; and an arm that found no SQE in a wait
 *             is retried from there (rp__ep_rearm).
 *   FRESH     ready holds what poll(2) read just now (rp__ep_confirm,
 *             rp__ep_ask): reported as read, without a second look. One
 *             poll(2) per wait, not per item.
 *   HOOKED    a one-shot interest hooked as a multishot for good:
 *             io_uring's poll always wakes for EPOLLRDHUP, so a one-shot
 *             for an interest without it, on a socket whose peer shut
 *             down, would complete at every arm and a wait would spin. A
 *             multishot posts only on wakeups; the level is asked with
 *             poll(2) at report (rp__ep_asks).
 *   ASK       a candidate past the events array's room when the wait
 *             began: not asked then (the kernel's ep_send_events polls
 *             only the items it reaches); asked at report if reached
 *             (rp__ep_ask), else by the next wait with the others.
 *
 * The states that occur (USED set unless said; "armed" is it->poll.armed):
 *
 *   state       flags, poll            means; event -> next state
 *   watching    armed                  waits on its file.
 *                                      CQE with a wanted bit -> candidate
 *                                      (a one-shot's poll is spent);
 *                                      CQE for bits not wanted: one-shot
 *                                      armed again, stays; CQE ending a
 *                                      multishot: armed again, stays.
 *                                      MOD -> watching (poll updated in
 *                                      place, or removed and armed anew)
 *                                      or candidate (an ET MOD, a new
 *                                      multishot: the kernel looks at once)
 *                                      DEL -> free
 *   candidate   LISTED, ready != 0     a CQE or a ctl says it may be
 *                                      ready; the CQE may be stale. The
 *                                      next wait asks it (one poll(2) for
 *                                      all: rp__ep_requeue):
 *                                      ready -> confirmed;
 *                                      not -> watching (armed if spent).
 *                                      Reported unasked when its bits need
 *                                      no asking and the wait's own enter
 *                                      brought them (they are current).
 *   confirmed   LISTED|FRESH           read by poll(2) this wait. Report:
 *                                      level -> due; edge -> watching
 *                                      (multishot still armed);
 *                                      EPOLLONESHOT -> disabled. A full
 *                                      events array leaves it listed: a
 *                                      candidate again at the next wait.
 *   unasked     LISTED|ASK, ready != 0 a candidate the wait found past
 *                                      maxevents. Reached by the report:
 *                                      asked with the others it reaches
 *                                      -> confirmed, or watching; not
 *                                      reached -> candidate next wait.
 *   due         REARM, not armed       a level entry reported, or any
 *                                      entry whose arm found no SQE. The
 *                                      next look of a wait arms it ->
 *                                      watching (an arm on a ready file
 *                                      completes at once: level). Its arm
 *                                      failing again -> due.
 *   hooked-due  REARM|HOOKED, armed    a hooked level entry reported: the
 *                                      next wait lists it -> candidate.
 *   emptied     LISTED, ready == 0     listed, its bits dropped since (a
 *                                      MOD, a poll of the instance's fd).
 *                                      Popped -> watching (armed if not).
 *   disabled    DISABLED, not armed    EPOLLONESHOT reported. MOD ->
 *                                      watching or candidate; DEL -> free.
 *                                      (A CQE of a poll whose remove
 *                                      found no SQE is dropped here, and
 *                                      the remove tried again.)
 *   free        not USED               no registration. LISTED or REARM
 *                                      may stay set while the lists still
 *                                      hold the fd (a DEL, or an ADD whose
 *                                      arm failed); their walks skip it,
 *                                      and an ADD keeps both flags.
 *                                      ADD -> watching, or candidate (a
 *                                      multishot: its first CQE may come
 *                                      a tick late, rp__ep_arm_candidate)
 *
 * HOOKED stays with the registration until DEL; a hooked entry goes
 * through the same states with its multishot armed. A failed ctl leaves
 * the state it found (rp__ep_add, rp__ep_mod, rp__ep_del).
 */
enum {
	RP__EPI_USED = 1u << 0,
	RP__EPI_LISTED = 1u << 1,
	RP__EPI_DISABLED = 1u << 2,
	RP__EPI_REARM = 1u << 3,
	RP__EPI_FRESH = 1u << 4,
	RP__EPI_HOOKED = 1u << 5,
	RP__EPI_ASK = 1u << 6,
};

/*
 * A registration, found by its fd: the table is indexed by fd, as redis'
 * ae.c does, in chunks so that addresses stay put. 48 bytes.
 */
struct rp__ep_item {
	epoll_data_t data;
	struct rp__poll poll;
	/* When it was added (ep->adds): a move adds in that order. */
	uint32_t seq;
	/*
	 * A completion socket (compat/epcs.h): no poll, its poll.armed
	 * says the registration listens to the socket's CQEs, and its
	 * readiness is the socket's buffers (rp__cs_mask), asked for free.
	 */
	struct rp__cs *cs;
	uint32_t events;   /* as registered, EPOLLERR|EPOLLHUP added */
	uint32_t ready;	   /* revents folded from CQEs since the last report */
	uint32_t next;	   /* ready list: fd + 1 of the next item, 0 ends */
	uint8_t flags;
};

#define RP__EP_CHUNK_SHIFT 10
#define RP__EP_CHUNK (1u << RP__EP_CHUNK_SHIFT)
#define RP__EP_CQE_BATCH 64
/* Closes from signal handlers a holder of the lock forgets one by one. */
#define RP__EP_PEND 16
/* Ranges of the caller's memory remembered as good: see rp__mem_user. */
#define RP__EP_MEMS 8

/*
 * The caller's memory a probe found readable (r) or writable (w): each
 * lo | (4 KiB blocks - 1), 0 empty. Read and added to without a lock.
 */
struct rp__mem {
	_Atomic uint64_t r[RP__EP_MEMS], w[RP__EP_MEMS];
	atomic_uint rnext, wnext;
};

/*
 * Can the kernel read (or write) [p, p + len)? Asks it once per 4 KiB
 * block and remembers the answer in m (compat/epctx.c). Returns the end
 * of the range known good, 0 if the kernel would fault.
 */
uintptr_t rp__mem_user(struct rp__mem *m, const void *p, size_t len,
		       bool write);
/* Is [p, p + len) known good already (no probe)? */
bool rp__mem_cached(struct rp__mem *m, const void *p, size_t len, bool write);
/* The kernel just copied [p, p + len): remember its blocks as good. */
void rp__mem_known(struct rp__mem *m, const void *p, size_t len, bool write);

/*
 * poll(2) with a zero timeout, as the library asks its own questions: the
 * syscall, not the C library's poll, which the preload interposes (a
 * lookup per fd on every wait's confirmation, for nothing). -1/errno.
 */
static inline int rp__poll0(struct pollfd *fds, nfds_t n)
{
	static const struct timespec zero;

	return (int)syscall(SYS_ppoll, fds, n, &zero, NULL, (size_t)0);
}

/*
 * Who guards what. One mutex per instance, ep->lock, guards nearly all of
 * it: a ctl, a wait and a close of another fd may run in any threads at
 * once, and the table grows by realloc under an ADD, so even a lookup
 * (rp__ep_item) needs the lock. A waiter drops it only to sleep in
 * io_uring_enter.
 *
 *   field                 guard        why / notes
 *   fd                    none         set before the instance is published
 *                                      in the fd table; rebuilt under the
 *                                      same number after fork
 *   refs                  atomic       rp__ep_get/put, lock-free lookup
 *   fork_gen              ep->lock     written in rp__ep_rebuild; read
 *                                      unlocked as a hint, then again
 *                                      under the lock
 *   lock                  -            re-initialised in the fork child
 *   dead, ring,           ep->lock     the sleeper reads ring.enter_fd under
 *     waiters, lost_races              the lock, then enters unlocked with
 *                                      that fd: only init-time fields of the
 *                                      ring (enter_flags, ext_arg) unlocked
 *   wake_gen, wake_armed, ep->lock     wake_word changes under the lock too,
 *     wake_futex, wake_word            atomically: the kernel reads it
 *   chunks, nchunks and   ep->lock     realloc'd by ADD: a lookup outside
 *     the items in them,               the lock reads freed memory
 *     nitems, ready list,
 *     rearm, pfd
 *   st                    ep->lock     every counter, ctls included;
 *                                      rp_epoll_stats copies it under it
 *   cqes                  ep->lock     the harvest's scratch
 *   next_free             atomic CAS   pushed lock-free (a close in a
 *                                      signal handler may drop the last
 *                                      reference), popped under
 *                                      rp__tab_lock (epreg.c)
 *   pend, npend,          atomic       filled by signal handlers with no
 *     pend_scan,                       lock; emptied by the lock's holder
 *     close_pending                    (rp__ep_pending)
 *   (epreg.c) fd -> ep,   atomic       looked up without a lock by every
 *     nreg, the list of                call; see rp__ep_get; a close walks
 *     all instances                    all instances without a lock
 *
 * Lock order: rp__nest_lock, then the instance a ctl is on, then the
 * instance it ADDs (both become the kernel's epoll: rp__ctl in epoll.c;
 * no instance is ever nested). rp__tab_lock only makes instances and
 * sums counters; it is never taken on a close's way, which may be a
 * signal handler's. Instance locks go through rp__ep_lock and
 * rp__ep_unlock (below), never pthread_mutex_lock directly.
 */
struct rp__ep {
	int fd; /* the ring fd, which is the epoll fd */
	bool dead;
	/* dead because the number is the kernel's epoll now: rp__ep_go_kernel */
	bool moved;
	atomic_uint refs;
	uint64_t fork_gen; /* rp__ep_fork_gen when the ring was made */
	pthread_mutex_t lock;
	struct rp__ring ring;

	struct rp__ep_item **chunks;
	uint32_t nchunks;
	uint32_t nitems;
	uint32_t ready_head, ready_tail;
	/*
	 * Level-triggered items reported by the last wait. They are armed
	 * again after the leftovers are confirmed, so that a full events
	 * array rotates through every ready fd, as the kernel's does.
	 */
	int *rearm;
	uint32_t nrearm, rearm_cap;
	/* Candidates and level items checked by one poll(2): rp__ep_confirm */
	struct pollfd *pfd;
	uint32_t npfd, pfd_cap;

	/* The ring's file when made: is a number still ours? (rp__ctl) */
	dev_t dev;
	ino_t ino;
	/* Threads asleep in io_uring_enter: rp__ep_wake wakes them. */
	uint32_t waiters;
	/*
	 * Another thread must wait on the instance while its owner sleeps
	 * in the ring, and completion sockets are in it: the owner, woken,
	 * moves it to the kernel's epoll itself, exactly, and signals
	 * handoff_cv (rp__ep_handoff).
	 */
	bool handoff;
	pthread_cond_t handoff_cv;
	/*
	 * The wakeup: a FUTEX_WAIT on wake_word kept armed on the ring, a
	 * waker bumps the word and FUTEX_WAKEs it (rp__ep_wake). wake_gen
	 * tells a stale CQE; wake_futex is false where the kernel has no
	 * FUTEX_WAIT (then a NOP wakes).
	 */
	uint32_t wake_word;
	uint32_t wake_gen;
	bool wake_armed, wake_futex;
	/* Poll updates that lost the race with their poll's completion. */
	uint32_t lost_races;
	/* ADDs made, the last one's rp__ep_item.seq. */
	uint32_t adds;
	/* More registrations than this: a bigger ring (rp__ep_grow). */
	uint32_t grow_at;

	/*
	 * The caller's memory a probe found readable (rmem) or writable
	 * (wmem): lo | (4 KiB blocks - 1), 0 empty. Read without the lock.
	 */
	struct rp__mem mem;
	/* events arrays the kernel's access_ok passed: rp__ep_events_ok */
	struct {
		uintptr_t p;
		int max;
	} evok[RP__EP_MEMS];
	uint32_t evok_next;

	struct rp_epoll_stats st;
	/* The completion sockets this ring serves (compat/epcs.h). */
	struct rp__cs_set cs;
	struct io_uring_cqe cqes[RP__EP_CQE_BATCH];
	struct rp__ep *next_free;

	/*
	 * fds closed by a signal handler while this thread (or another)
	 * held or was taking our lock: forgotten by the holder, under the
	 * lock, before anyone can ADD the number again (rp__ep_pending).
	 * fd + 1 per slot; past RP__EP_PEND slots, a scan for closed fds.
	 */
	atomic_int pend[RP__EP_PEND];
	atomic_uint npend;
	atomic_bool pend_scan;
	atomic_bool close_pending; /* our own fd was closed so */
};

extern atomic_ulong rp__ep_fork_gen;

/*
 * A close in a signal handler that interrupted a holder of an instance
 * lock is deferred: rp__held, rp__pending_any and rp__ep_pending* are the
 * registry's hooks (compat/ephooks.h), which the locks below run.
 */
static inline bool rp__ep_has_pending(struct rp__ep *ep)
{
	return atomic_load_explicit(&ep->npend, memory_order_relaxed) ||
	       atomic_load_explicit(&ep->pend_scan, memory_order_relaxed);
}

static inline void rp__ep_lock(struct rp__ep *ep)
{
	rp__held++;
	atomic_signal_fence(memory_order_seq_cst);
	pthread_mutex_lock(&ep->lock);
	if (rp__unlikely(rp__ep_has_pending(ep)))
		rp__ep_pending(ep);
}

static inline void rp__ep_unlock(struct rp__ep *ep)
{
	if (rp__unlikely(rp__ep_has_pending(ep)))
		rp__ep_pending(ep);
	pthread_mutex_unlock(&ep->lock);
	atomic_signal_fence(memory_order_seq_cst);
	rp__held--;
	atomic_signal_fence(memory_order_seq_cst);
	/* A handler may have come between the look above and here. */
	if (rp__unlikely(rp__ep_has_pending(ep) ||
			 atomic_load_explicit(&ep->close_pending,
					      memory_order_relaxed) ||
			 (!rp__held &&
			  atomic_load_explicit(&rp__pending_any,
					       memory_order_relaxed))))
		rp__ep_pending_late(ep);
}

/* In a forked child that has not used the instance since the fork. */
static inline bool rp__ep_inherited(const struct rp__ep *ep)
{
	return ep->fork_gen != atomic_load(&rp__ep_fork_gen);
}

/* The readiness bits epoll reports; EPOLLERR and EPOLLHUP always. */
#define RP__EP_POLL_BITS                                                  \
	(EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP | EPOLLRDNORM |       \
	 EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG)

static inline uint32_t rp__ep_reportable(uint32_t events)
{
	return (events & RP__EP_POLL_BITS) | EPOLLERR | EPOLLHUP;
}

/* Arms fd's poll as its registration says (one-shot or multishot). */
int rp__ep_arm(struct rp__ep *ep, int fd, struct rp__ep_item *it);
/* Moves the CQEs in the ring onto the ready list. */
void rp__ep_harvest(struct rp__ep *ep);

/*
 * compat/eppoll.c: would a wait return events now? Settles the instance
 * if not. 1 or 0; RP__EP_MOVED if the number is the kernel's epoll now,
 * which answers.
 */
int rp__ep_readable(struct rp__ep *ep);

int rp__ep_init(struct rp__ep *ep, int flags);
/* Releases the ring and the table; the struct itself is recycled. */
void rp__ep_release(struct rp__ep *ep);
/* At exit: every poll cancelled, so that no file outlives the process. */
void rp__ep_cancel_all(struct rp__ep *ep);
/*
 * Hands queued removes to the kernel and lets it finish them, so that no
 * cancelled poll still holds its file (a socket then sends its FIN).
 */
void rp__ep_drop_removed(struct rp__ep *ep);
/*
 * Puts the instance on a new ring set up as o says, under the same fd
 * number, every registration armed there. Its own ring's pending events
 * are kept and its polls cancelled first; a forked parent's ring is never
 * entered. On failure the instance stays where it was.
 */
int rp__ep_move(struct rp__ep *ep, const struct rp__ring_opts *o);
/* In a forked child: a fresh ring under the same fd, interest re-armed. */
int rp__ep_rebuild(struct rp__ep *ep);
/*
 * In a forked child that cannot have a ring: the kernel's epoll under the
 * same fd number, with the same registrations. The caller then forgets
 * the instance. On failure nothing changed.
 */
int rp__ep_to_kernel(struct rp__ep *ep);
/*
 * ep->lock held, the owner asleep in the ring: asks it to move the
 * instance to the kernel's epoll itself and waits (up to a second) for
 * that. True if the instance moved (or closed) meanwhile.
 */
bool rp__ep_handoff(struct rp__ep *ep);

static inline struct rp__ep_item *rp__ep_item(struct rp__ep *ep, int fd)
{
	uint32_t c = (uint32_t)fd >> RP__EP_CHUNK_SHIFT;

	if (c >= ep->nchunks || !ep->chunks[c])
		return NULL;
	return &ep->chunks[c][(uint32_t)fd & (RP__EP_CHUNK - 1)];
}

/* All called with ep->lock held. */
/* cs: a completion socket for fd (rp__cs_adopt), or NULL. */
int rp__ep_add(struct rp__ep *ep, int fd, const struct epoll_event *ev,
	       struct rp__cs *cs);
int rp__ep_mod(struct rp__ep *ep, int fd, const struct epoll_event *ev);
/* inherited: the ring is a forked parent's; touch only the table. */
int rp__ep_del(struct rp__ep *ep, int fd, bool inherited);
/*
 * cs leaves the mode (its socket goes into another instance too): its
 * registration here becomes a plain one, what it buffered reported.
 */
void rp__ep_cs_drop(struct rp__ep *ep, struct rp__cs *cs);
/* cs, registered here and leaving, has let its socket go: a plain one. */
void rp__ep_cs_gone(struct rp__ep *ep, struct rp__cs *cs);
/*
 * Before the instance's first completion socket: a ring whose CQ holds
 * what many sockets post between two waits (see rp__ep_grow).
 */
void rp__ep_cs_ring(struct rp__ep *ep);
/* Hands kernel work queued by ctl to the kernel if anybody needs it now. */
void rp__ep_ctl_done(struct rp__ep *ep);
void rp__ep_wake(struct rp__ep *ep);
/* True if instances wake with IORING_OP_FUTEX_WAIT (probed once). */
bool rp__ep_futex_wake(void);
/*
 * Something polls this instance's fd now: hand the kernel all pending
 * work, so that the ring's readiness is ours.
 */
void rp__ep_settle(struct rp__ep *ep);

/*
 * Waits as epoll_pwait does; timeout_ns -1 is no limit. Takes and drops
 * ep->lock itself.
 */
int rp__ep_wait(struct rp__ep *ep, struct epoll_event *events, int maxevents,
		int64_t timeout_ns, const sigset_t *sigmask);

/*
 * The end of the caller's memory known good around [p, p + len) (len 4 to
 * 16), probed on first sight; 0 if the kernel would fault there (EFAULT).
 * write: memory the caller is about to get: the probe may write it.
 */
uintptr_t rp__ep_user(struct rp__ep *ep, const void *p, size_t len,
		      bool write);

/*
 * Could a signal interrupt a wait under sigmask (NULL: the thread's)? An
 * EINTR under a mask that blocks every signal was no signal.
 */
bool rp__ep_signal_possible(const sigset_t *sigmask);

#endif /* RP_EPCTX_H */
