/* SPDX-License-Identifier: MIT */
/*
 * An epoll instance on io_uring.
 *
 * Level-triggered: a one-shot poll, re-armed after its event was reported;
 * the re-arm goes in with the next wait's io_uring_enter, and a re-arm on a
 * still-ready fd completes at once, which is level semantics.
 * Edge-triggered: a multishot poll; the CQEs of one fd between two waits
 * fold into one event. EPOLLONESHOT: a one-shot poll not re-armed until MOD.
 *
 * Readiness must be current when handed out. The kernel's epoll re-polls
 * every ready item as it copies it out; a CQE is a wakeup from the past, and
 * the program may have read the data since. So a CQE found in the ring when
 * a wait starts, and an item left on the ready list by a full events array,
 * is only a candidate. The candidates are asked in one poll(2)
 * (rp__ep_confirm), as the kernel asks each ready item's file; what is
 * ready is reported with what the wait's io_uring_enter brings, and what is
 * not waits on its poll. CQEs that arrive during the wait itself are
 * current. A wait that finds events costs at most one io_uring_enter (none
 * when there is nothing to submit and no completion to run), and a poll(2)
 * besides when it found candidates.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../lib/fault.h"
#include "epctx.h"
#include "ephooks.h" /* its only calls into the registry */
#include "epoff.h"

atomic_ulong rp__ep_fork_gen;

static bool rp__ep_multishot(uint32_t events)
{
	return (events & EPOLLET) && !(events & EPOLLONESHOT);
}

/* The poll mask of a registration with these events. */
static uint32_t rp__ep_mask(uint32_t events)
{
	uint32_t mask = rp__ep_reportable(events) | (events & EPOLLEXCLUSIVE);

	/*
	 * A poll for EPOLLPRI alone misses TCP urgent data: the wakeup
	 * carries EPOLLRDBAND. Listen for that too; the bits reported are
	 * re-polled anyway (rp__ep_true_bits).
	 */
	if (events & EPOLLPRI)
		mask |= EPOLLRDBAND;
	return mask;
}

static void rp__ep_list(struct rp__ep *ep, int fd, struct rp__ep_item *it);
static uint32_t rp__ep_cs_level(struct rp__ep *ep, int fd,
				const struct rp__ep_item *it);

/*
 * A completion socket's arm: it listens to the socket's CQEs from now on,
 * and looks at its buffers once, as an arm on a ready file completes at
 * once.
 */
static int rp__ep_cs_arm(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	uint32_t bits = rp__ep_cs_level(ep, fd, it);

	it->poll.armed = true;
	it->poll.multishot = true;
	if (bits) {
		it->ready |= bits;
		rp__ep_list(ep, fd, it);
	}
	return 0;
}

/*
 * A completion socket's level. After end of file no recv is left to hear
 * of the socket's end (a reset drawn by a later write): the kernel's
 * error and hang-up bits are asked then, one poll(2) for a socket about
 * to be closed.
 */
static uint32_t rp__ep_cs_level(struct rp__ep *ep, int fd,
				const struct rp__ep_item *it)
{
	uint32_t want = rp__ep_reportable(it->events);
	uint32_t bits = rp__cs_mask(it->cs);

	if (it->cs->rx_eof && !it->cs->dead) {
		struct pollfd p = { .fd = fd, .events = 0 };

		ep->st.polls++;
		if (rp__poll0(&p, 1) > 0)
			bits |= (uint32_t)p.revents & (EPOLLERR | EPOLLHUP);
	}
	return bits & want;
}

/*
 * A plain registration of a file whose bytes a completion socket holds
 * (its socket is in another instance too, which took it in first): their
 * EPOLLIN, which no poll of the kernel's sees. Read without that
 * instance's lock: a hint, spurious at worst (the read finds them).
 */
static uint32_t rp__ep_cs_held(int fd, const struct rp__ep_item *it)
{
	if (rp__likely(!rp__cs_on) || it->cs || !rp__cs_holds(fd))
		return 0;
	return (EPOLLIN | EPOLLRDNORM) & rp__ep_reportable(it->events);
}

/* Disarms a registration's poll; a completion socket's is a flag. */
static int rp__ep_disarm(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	if (it->cs) {
		it->poll.armed = false;
		return 0;
	}
	return rp__poll_cancel(&ep->ring, &it->poll, RP__UD_EPOLL,
			       (uint32_t)fd);
}

int rp__ep_arm(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	if (it->cs)
		return rp__ep_cs_arm(ep, fd, it);
	return rp__poll_arm(&ep->ring, &it->poll, fd, rp__ep_mask(it->events),
			    rp__ep_multishot(it->events) ||
				    (it->flags & RP__EPI_HOOKED),
			    RP__UD_EPOLL, (uint32_t)fd);
}

static void rp__ep_list(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	if (it->flags & RP__EPI_LISTED)
		return;
	it->flags |= RP__EPI_LISTED;
	it->next = 0;
	if (ep->ready_tail)
		rp__ep_item(ep, (int)ep->ready_tail - 1)->next = (uint32_t)fd + 1;
	else
		ep->ready_head = (uint32_t)fd + 1;
	ep->ready_tail = (uint32_t)fd + 1;
}

/* Puts an item just popped back at the head of the ready list. */
static void rp__ep_list_head(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	it->flags |= RP__EPI_LISTED;
	it->next = ep->ready_head;
	ep->ready_head = (uint32_t)fd + 1;
	if (!ep->ready_tail)
		ep->ready_tail = ep->ready_head;
}

static void rp__ep_rearm(struct rp__ep *ep, int fd, struct rp__ep_item *it);

/*
 * An entry taken off the ready list with nothing to report must still
 * watch its file: nothing else arms it. (A MOD while it was listed left
 * its new poll for the wait to submit; a one-shot that woke for no wanted
 * bit was not re-armed because it was listed.) Level entries to re-arm
 * and disabled EPOLLONESHOT ones are dealt with elsewhere.
 */
static void rp__ep_unready(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	if ((it->flags & RP__EPI_USED) &&
	    !(it->flags & (RP__EPI_DISABLED | RP__EPI_REARM)) &&
	    !it->poll.armed)
		rp__ep_rearm(ep, fd, it);
}

/* Pops the ready list's head; NULL when empty. */
static struct rp__ep_item *rp__ep_unlist(struct rp__ep *ep, int *fd)
{
	struct rp__ep_item *it;

	if (!ep->ready_head)
		return NULL;
	*fd = (int)ep->ready_head - 1;
	it = rp__ep_item(ep, *fd);
	ep->ready_head = it->next;
	if (!ep->ready_head)
		ep->ready_tail = 0;
	it->flags &= ~RP__EPI_LISTED;
	return it;
}

/*
 * IORING_OP_FUTEX_WAIT (6.7), which liburing 2.3 does not know: the SQE's
 * fd holds the futex2 flags, addr the word, addr2 the value expected,
 * addr3 the bit mask.
 */
#define RP__OP_FUTEX_WAIT 51
#define RP__FUTEX2_SIZE_U32 0x02
#define RP__FUTEX2_PRIVATE 128

/* The wakeup's user_data slots: the futex request's and the NOP's. */
enum { RP__EP_WAKE_FUTEX, RP__EP_WAKE_NOP };

/* 0 not asked yet, 1 the kernel has FUTEX_WAIT, -1 it has not. */
static atomic_int rp__ep_futex_ok;

/*
 * Asked of the first instance's own ring: a ring made just to ask would
 * be charged to RLIMIT_MEMLOCK until the kernel frees it, later.
 */
static bool rp__ep_futex_probe(struct rp__ring *r)
{
	struct io_uring_probe *probe;
	int ok = atomic_load(&rp__ep_futex_ok);

	if (rp__likely(ok))
		return ok > 0;
	probe = io_uring_get_probe_ring(&r->uring);
	ok = probe && io_uring_opcode_supported(probe, RP__OP_FUTEX_WAIT) ?
		     1 :
		     -1;
	free(probe);
	atomic_store(&rp__ep_futex_ok, ok);
	return ok > 0;
}

bool rp__ep_futex_wake(void)
{
	return atomic_load(&rp__ep_futex_ok) >= 0;
}

/*
 * How an instance's ring is set up. Owned by one thread at a time
 * (RP__RING_OWNED: SINGLE_ISSUER|DEFER_TASKRUN, enabled by the first
 * waiter), a poll's completion is never task work for a thread outside
 * that ring's io_uring_enter: nothing interrupts the program's other
 * syscalls with EINTR. Others queue SQEs and wake the owner with the
 * FUTEX_WAIT; without it (before 6.7) a waker must submit a NOP, which
 * only a ring any thread may enter allows (COOP_TASKRUN, deviation 10).
 */
static unsigned rp__ep_ring_flags(void)
{
	return rp__ep_futex_wake() ? RP__RING_OWNED : RP__RING_SHARED;
}

/*
 * Queues the instance's FUTEX_WAIT, submitted with the next waiter's
 * enter: a waiting thread owns it, and its completion is that thread's
 * task work. It expects the word's value now: a wake between now and the
 * kernel's look makes it complete at once (-EAGAIN), a spurious wakeup
 * that arms it again, so no wake is lost to that window.
 */
static void rp__ep_wake_arm(struct rp__ep *ep)
{
	struct io_uring_sqe *sqe;

	if (!ep->wake_futex || ep->wake_armed)
		return;
	/* No SQE: the next waiter arms it before it sleeps (rp__ep_wait). */
	sqe = rp__ring_sqe(&ep->ring, NULL);
	if (!sqe)
		return;
	io_uring_prep_rw(RP__OP_FUTEX_WAIT, sqe,
			 RP__FUTEX2_SIZE_U32 | RP__FUTEX2_PRIVATE,
			 &ep->wake_word, 0,
			 __atomic_load_n(&ep->wake_word, __ATOMIC_ACQUIRE));
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
	sqe->rw_flags = 0; /* the futex_flags of the uapi's union */
	ep->wake_gen++;
	sqe->user_data = rp__ud(RP__UD_EPOLL_WAKE, RP__EP_WAKE_FUTEX,
				ep->wake_gen);
	ep->wake_armed = true;
}

/* Cancels the FUTEX_WAIT: an instance that closes or moves leaves none. */
static void rp__ep_wake_cancel(struct rp__ep *ep)
{
	struct io_uring_sqe *sqe;

	if (!ep->wake_armed)
		return;
	/*
	 * No SQE: the request stays until the ring is freed (the instance
	 * closes or moves, which is why it is cancelled); the new generation
	 * makes its CQE stale meanwhile.
	 */
	sqe = rp__ring_sqe(&ep->ring, NULL);
	if (sqe) {
		io_uring_prep_cancel64(sqe,
				       rp__ud(RP__UD_EPOLL_WAKE,
					      RP__EP_WAKE_FUTEX, ep->wake_gen),
				       0);
		sqe->user_data = rp__ud(RP__UD_IGNORE, 0, 0);
		if (ep->ring.skip_success)
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	}
	ep->wake_gen++;
	ep->wake_armed = false;
}

static void rp__ep_wake_cqe(struct rp__ep *ep, const struct io_uring_cqe *cqe)
{
	/* A NOP's, or the CQE of a request cancelled since. */
	if (rp__ud_slot(cqe->user_data) != RP__EP_WAKE_FUTEX ||
	    rp__ud_gen(cqe->user_data) != ep->wake_gen || !ep->wake_armed)
		return;
	ep->wake_armed = false;
	/*
	 * Woken (0), the word moved before the kernel looked (-EAGAIN), or
	 * the thread whose enter submitted it exited (-ECANCELED: the
	 * kernel cancels a task's futex waits then): arm again. A refusal
	 * would come back at every arm, a busy loop: this instance wakes
	 * with NOPs from now on.
	 */
	if (cqe->res == -EINVAL || cqe->res == -EOPNOTSUPP ||
	    cqe->res == -EFAULT)
		ep->wake_futex = false;
	rp__ep_wake_arm(ep);
}

/*
 * Wakes the threads asleep in the ring's io_uring_enter, called under
 * ep->lock. The word moves and a FUTEX_WAKE completes the FUTEX_WAIT the
 * sleepers submitted: its CQE ends their GETEVENTS wait. One syscall and
 * no ring entry: what a ctl queued stays in the SQ for the woken waiter
 * to submit, so only waiting threads submit (and own the polls: their
 * completions are the waiter's task work, never the ctl thread's). No fd
 * of our own either: an instance is its ring's fd and nothing else.
 *
 * The fallback, for kernels before 6.7 (no FUTEX_WAIT) or an instance
 * whose request could not be armed: a NOP, submitted by the waker with
 * whatever else is in the SQ, posts a CQE. The ring is shared (no
 * SINGLE_ISSUER), so any thread may submit to it; that enter counts in
 * ring.enters, the ctl's syscall (rp_epoll_ctl).
 */
void rp__ep_wake(struct rp__ep *ep)
{
	struct io_uring_sqe *sqe;

	if (rp__likely(ep->wake_armed)) {
		__atomic_fetch_add(&ep->wake_word, 1, __ATOMIC_SEQ_CST);
		syscall(SYS_futex, &ep->wake_word, FUTEX_WAKE_PRIVATE, INT_MAX,
			NULL, NULL, 0);
		ep->st.ctl_syscalls++;
		return;
	}
	/*
	 * A waker has no one to tell of a failure: the ctl's work is in the
	 * table and queued. No SQE for the NOP (the SQ full, and the enter
	 * that would empty it refused): the submit below hands over what is
	 * queued, whose completions wake the sleeper, or else the sleeper
	 * takes it at its next wakeup. (A sleeper arms its FUTEX_WAIT
	 * before it sleeps: rp__ep_wait.)
	 */
	sqe = rp__ring_sqe(&ep->ring, NULL);
	if (sqe) {
		io_uring_prep_nop(sqe);
		sqe->user_data = rp__ud(RP__UD_EPOLL_WAKE, RP__EP_WAKE_NOP, 0);
	}
	(void)rp__ring_submit(&ep->ring);
}

/*
 * Ring sizes. A ring's memory is charged to RLIMIT_MEMLOCK (unless the
 * user has CAP_IPC_LOCK), per user across all its processes, in whole
 * pages: one region for the SQ and CQ rings with their CQEs, one for the
 * SQEs. 64 SQEs and 128 CQEs take one page each: 8 KiB, so 1,024
 * instances fit in the common 8 MiB limit, where 256 SQEs and 4,096 CQEs
 * (84 KiB) let 97 fit. An instance starts on the small ring and grows
 * when its registrations pass half its CQ (rp__ep_grow): 16 KiB from 65
 * registrations, 44 KiB from 257, about 150 KiB from 1,025 and 530 KiB from
 * 4,097. The CQ must hold a wakeup of every registration: a CQE that
 * finds the CQ full ends its multishot (edge-triggered), and an arm made
 * again is no edge; reports there are at worst spurious, never lost, but
 * no longer the kernel's. 32,768 CQEs is io_uring's largest CQ but one
 * step.
 */
#define RP__EP_SQ_MIN 64
#define RP__EP_CQ_MIN 128
#define RP__EP_SQ_MAX 256
#define RP__EP_CQ_MAX 32768

/* Remembers which file the ring is: a raw close may give the number away. */
static void rp__ep_identify(struct rp__ep *ep)
{
	struct stat st;

	ep->dev = 0;
	ep->ino = 0;
	if (fstat(ep->fd, &st) == 0) {
		ep->dev = st.st_dev;
		ep->ino = st.st_ino;
	}
}

int rp__ep_init(struct rp__ep *ep, int flags)
{
	struct rp__ring_opts o = { .setup = RP_SETUP_AUTO,
				   .flags = rp__ep_ring_flags(),
				   .sq_entries = RP__EP_SQ_MIN,
				   .cq_entries = RP__EP_CQ_MIN };
	int ret;

	ep->chunks = NULL;
	ep->nchunks = ep->nitems = 0;
	ep->ready_head = ep->ready_tail = 0;
	ep->waiters = 0;
	ep->rearm = NULL;
	ep->nrearm = ep->rearm_cap = 0;
	ep->pfd = NULL;
	ep->npfd = ep->pfd_cap = 0;
	ep->dead = false;
	ep->lost_races = 0;
	ep->grow_at = RP__EP_CQ_MIN / 2;
	memset(&ep->cs, 0, sizeof(ep->cs));
	/* A recycled struct forgets its memory: it may be unmapped since. */
	for (unsigned i = 0; i < RP__EP_MEMS; i++) {
		atomic_store(&ep->mem.r[i], 0);
		atomic_store(&ep->mem.w[i], 0);
		ep->evok[i].p = 0;
	}
	memset(&ep->st, 0, sizeof(ep->st));
	ret = rp__ring_init(&ep->ring, &o);
	/* Owned rings need the FUTEX_WAIT to be woken by others. */
	if (ret == 0 && !rp__ep_futex_probe(&ep->ring) && ep->ring.owned) {
		rp__ring_exit(&ep->ring);
		o.flags = RP__RING_SHARED;
		ret = rp__ring_init(&ep->ring, &o);
	}
	if (ret < 0)
		return ret;
	ep->fd = ep->ring.uring.ring_fd;
	ep->fork_gen = atomic_load(&rp__ep_fork_gen);
	/* io_uring fds are born close-on-exec; epoll_create1(0) ones are not. */
	if (!(flags & EPOLL_CLOEXEC) && fcntl(ep->fd, F_SETFD, 0) < 0) {
		ret = -errno;
		goto fail;
	}
	rp__ep_identify(ep);
	ep->moved = false;
	ep->wake_armed = false;
	ep->wake_futex = rp__ep_futex_wake();
	rp__ep_wake_arm(ep);
	return 0;
fail:
	rp__ring_exit(&ep->ring);
	return ret;
}

void rp__ep_release(struct rp__ep *ep)
{
	rp__cs_set_free(ep);
	for (uint32_t i = 0; i < ep->nchunks; i++)
		free(ep->chunks[i]);
	free(ep->chunks);
	free(ep->rearm);
	ep->rearm = NULL;
	ep->nrearm = ep->rearm_cap = 0;
	free(ep->pfd);
	ep->pfd = NULL;
	ep->npfd = ep->pfd_cap = 0;
	ep->chunks = NULL;
	ep->nchunks = ep->nitems = 0;
	rp__ring_exit(&ep->ring);
}

/* ---- CQEs ---- */

/*
 * A CQE of an older generation. If it says more will come, it is a
 * multishot poll we removed while it was completing: the remove failed
 * (-EALREADY) and the poll lives on, holding its file. Remove it again.
 */
static void rp__ep_stale(struct rp__ep *ep, const struct io_uring_cqe *cqe)
{
	ep->st.stale_cqes++;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		return;
	/*
	 * No SQE for the remove: the poll's next CQE is stale too and asks
	 * again; until then it only holds its file.
	 */
	(void)rp__poll_remove_sqe(&ep->ring, cqe->user_data, NULL);
}

static void rp__ep_defer_rearm(struct rp__ep *ep, int fd,
			       struct rp__ep_item *it);

/*
 * Arms a registration from a wait (a CQE, a candidate found not ready, an
 * entry taken off the ready list, a move to a new ring). An arm fails only
 * when no SQE can be had (the SQ is full and the enter that would empty
 * it fails), and a wait has no caller to tell: the registration goes on
 * the re-arm list (RP__EPI_REARM), armed again by rp__ep_rearm_due before
 * the wait sleeps, or by the next wait. Retried, never lost: an arm on a
 * file that became ready meanwhile completes at once.
 */
static void rp__ep_rearm(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	if (rp__unlikely(rp__ep_arm(ep, fd, it) < 0))
		rp__ep_defer_rearm(ep, fd, it);
}

/*
 * A completion socket's CQE: its buffers changed. A change that brings a
 * wanted bit is a wakeup (an edge, for an edge-triggered registration, as
 * each arrival is the kernel's), unless the registration is disarmed
 * (a reported EPOLLONESHOT).
 */
static void rp__ep_cs_cqe(struct rp__ep *ep, const struct io_uring_cqe *cqe)
{
	struct rp__ep_item *it;
	struct rp__cs *cs;
	uint32_t bits;

	cs = rp__cs_cqe(ep, cqe, &bits);
	if (!cs)
		return;
	it = rp__ep_item(ep, cs->fd);
	if (it && (it->flags & RP__EPI_USED) && it->cs == cs &&
	    it->poll.armed && !(it->flags & RP__EPI_DISABLED) &&
	    (bits &= rp__ep_reportable(it->events))) {
		it->flags &= ~RP__EPI_FRESH;
		it->ready |= bits;
		rp__ep_list(ep, cs->fd, it);
	}
	/*
	 * Left for another instance and its recv over: nothing more comes
	 * into its buffer, and the registration here polls the kernel's
	 * socket from now on (rp__ep_cs_drop).
	 */
	if (cs->leaving && cs->registered && !cs->recv_armed && !cs->closed) {
		rp__ep_cs_gone(ep, cs);
		cs->registered = false;
	}
}

static void rp__ep_arm_candidate(struct rp__ep *ep, int fd,
				 struct rp__ep_item *it);

static void rp__ep_cqe(struct rp__ep *ep, const struct io_uring_cqe *cqe)
{
	int fd = (int)rp__ud_slot(cqe->user_data);
	struct rp__ep_item *it;
	uint32_t bits;

	if (rp__unlikely(rp__poll_removed(&ep->ring, cqe)))
		return;
	switch (rp__ud_kind(cqe->user_data)) {
	case RP__UD_EPOLL:
		break;
	case RP__UD_EPOLL_WAKE:
		rp__ep_wake_cqe(ep, cqe);
		return;
	case RP__UD_CS_RECV:
	case RP__UD_CS_SEND:
	case RP__UD_CS_FREE:
	case RP__UD_CS_POLL:
	case RP__UD_CS_SHUT:
		rp__ep_cs_cqe(ep, cqe);
		return;
	default:
		/* A remove that lost the race with its poll's completion. */
		return;
	}
	/*
	 * Only a MOD's update fails so (a poll never does): it found its
	 * poll, of the generation before, completing. Current or not (a
	 * second MOD's update may have followed it), that poll may live on,
	 * as a remove's may (rp__poll_removed): remove it (fuzzer seeds
	 * 1795521207555548, 1795521888567672).
	 */
	if (rp__unlikely(cqe->res == -EALREADY))
		(void)rp__poll_remove_sqe(&ep->ring,
					  rp__ud(RP__UD_EPOLL, (uint32_t)fd,
						 rp__ud_gen(cqe->user_data) -
							 1),
					  NULL);
	it = rp__ep_item(ep, fd);
	if (!it || !(it->flags & RP__EPI_USED)) {
		rp__ep_stale(ep, cqe);
		return;
	}
	switch (rp__poll_classify(&it->poll, cqe)) {
	case RP__POLL_STALE:
		rp__ep_stale(ep, cqe);
		return;
	case RP__POLL_REARM:
		/* A MOD's update found its poll completed: MOD's arm now. */
		ep->lost_races++;
		rp__ep_rearm(ep, fd, it);
		/*
		 * The kernel's ep_modify looks at the file at once; a new
		 * multishot's first CQE may come late, or not before a move
		 * to the kernel's epoll, which took it for quiet and lost its
		 * edge (fuzzer seed 1795522755564687). A candidate, asked by
		 * the report that reaches it (rp__ep_arm_candidate).
		 */
		if (it->poll.armed && it->poll.multishot) {
			it->flags |= RP__EPI_ASK;
			rp__ep_arm_candidate(ep, fd, it);
		}
		return;
	case RP__POLL_EVENT:
		break;
	}
	if (cqe->res < 0) {
		/*
		 * io_uring cancels a request when the thread that submitted
		 * it exits; the registration lives on, so arm it again. Any
		 * other error means the file is gone (closed behind our
		 * back): nothing will ever come, as with the kernel's epoll.
		 */
		if (cqe->res == -ECANCELED)
			rp__ep_rearm(ep, fd, it);
		return;
	}
	/*
	 * A reported EPOLLONESHOT entry reports nothing until MOD. Its poll
	 * was cancelled at report; a CQE of the current generation means
	 * that cancel found no SQE (rp__ep_report): cancel again here, and
	 * should that fail too, at the next CQE, or at MOD or DEL.
	 */
	if (rp__unlikely(it->flags & RP__EPI_DISABLED)) {
		if (it->poll.armed)
			(void)rp__poll_cancel(&ep->ring, &it->poll,
					      RP__UD_EPOLL, (uint32_t)fd);
		return;
	}
	/* A wakeup's key may overstate: no longer as read by poll(2). */
	it->flags &= ~RP__EPI_FRESH;
	bits = (uint32_t)cqe->res & rp__ep_reportable(it->events);
	/*
	 * A wakeup only if this CQE has a wanted bit: the item may be a
	 * candidate already (ready bits set by a MOD), and io_uring's poll
	 * also fires for EPOLLRDHUP outside the interest, which the kernel's
	 * ep_poll_callback filters out.
	 */
	if (bits) {
		it->ready |= bits;
		rp__ep_list(ep, fd, it);
	}
	/*
	 * io_uring's poll always wakes for EPOLLRDHUP: a one-shot for an
	 * interest without it, on a file whose peer shut down, would fire
	 * again as soon as armed, forever. Hook such a registration on its
	 * file for good (multishot: only wakeups post), and ask its level
	 * with poll(2) (rp__ep_true_bits).
	 */
	if (!it->poll.multishot && ((uint32_t)cqe->res & EPOLLRDHUP) &&
	    !(it->events & EPOLLRDHUP))
		it->flags |= RP__EPI_HOOKED;
	/*
	 * A one-shot that woke for bits nobody asked for keeps watching (a
	 * listed one too, if it has nothing to report: a MOD emptied it); a
	 * multishot that ended (no IORING_CQE_F_MORE) is armed again.
	 */
	if (!it->poll.armed && (it->poll.multishot || !it->ready ||
				!(it->flags & RP__EPI_LISTED)))
		rp__ep_rearm(ep, fd, it);
}

static void rp__ep_rearm_anew(struct rp__ep *ep, int fd,
			      struct rp__ep_item *it);

/*
 * The kernel dropped a CQE (rp__ring_dropped: it could not allocate an
 * overflow entry): some completion was never seen. Every poll is armed
 * anew and reports what is ready now (an edge-triggered item perhaps once
 * more: spurious, never lost); the wakeup's FUTEX_WAIT is armed again (a
 * second one is told stale by its generation). A completion socket
 * cannot know what it lost (bytes, or a send's end): it fails with EIO
 * after what it holds, never silently wrong, and its close resets the
 * peer, who would otherwise take a FIN for a whole stream.
 */
static void rp__ep_resync(struct rp__ep *ep)
{
	ep->wake_armed = false;
	for (uint32_t c = 0; c < ep->nchunks; c++) {
		for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK; i++) {
			struct rp__ep_item *it = &ep->chunks[c][i];
			int fd = (int)(c * RP__EP_CHUNK + i);

			if (!(it->flags & RP__EPI_USED) ||
			    (it->flags & RP__EPI_DISABLED))
				continue;
			if (!it->cs) {
				rp__ep_rearm_anew(ep, fd, it);
				continue;
			}
			rp__cs_unknown(it->cs);
			it->ready |= rp__cs_mask(it->cs) &
				     rp__ep_reportable(it->events);
			rp__ep_list(ep, fd, it);
		}
	}
}

void rp__ep_harvest(struct rp__ep *ep)
{
	/*
	 * Bounded: handling a CQE may arm a poll, a full SQ hands the arms
	 * to the kernel at once, and an arm on a ready file posts a CQE in
	 * that same submit. With thousands of ready fds (a CQ overflow ends
	 * their multishots, each is armed again) that would never end. What
	 * is left stays in the CQ for the next look.
	 */
	unsigned budget = 2 * ep->ring.uring.cq.ring_entries;
	unsigned n;

	do {
		n = rp__ring_harvest(&ep->ring, ep->cqes, RP__EP_CQE_BATCH);
		for (unsigned i = 0; i < n; i++)
			rp__ep_cqe(ep, &ep->cqes[i]);
		budget = budget > n ? budget - n : 0;
	} while (n == RP__EP_CQE_BATCH && budget);
	if (rp__unlikely(rp__ring_dropped(&ep->ring)))
		rp__ep_resync(ep);
}

/* Adds fd to the poll(2) batch; false if there is no room for it. */
static bool rp__ep_pfd_add(struct rp__ep *ep, int fd, struct rp__ep_item *it)
{
	if (ep->npfd == ep->pfd_cap) {
		uint32_t cap = ep->pfd_cap ? ep->pfd_cap * 2 : 64;
		struct pollfd *p;

		if (rp__unlikely(rp__fault_alloc) &&
		    rp__fault_take(&rp__fault_alloc))
			return false;
		p = realloc(ep->pfd, cap * sizeof(*p));
		if (!p)
			return false;
		ep->pfd = p;
		ep->pfd_cap = cap;
	}
	ep->pfd[ep->npfd++] = (struct pollfd){
		.fd = fd, .events = (short)rp__ep_reportable(it->events)
	};
	return true;
}

/*
 * Confirms a candidate the slow way: its poll armed anew, so that the
 * answer comes as a CQE (an edge-triggered item's multishot removed
 * first). If the remove finds no SQE, the item stays a candidate, listed
 * with the bits its CQE said: reported as they are (or asked, for keyed
 * bits), spurious at worst, never lost. A failed arm is retried
 * (rp__ep_rearm).
 */
static void rp__ep_rearm_anew(struct rp__ep *ep, int fd,
			      struct rp__ep_item *it)
{
	if (rp__unlikely(rp__ep_disarm(ep, fd, it) < 0)) {
		rp__ep_list(ep, fd, it);
		return;
	}
	it->ready = 0;
	rp__ep_rearm(ep, fd, it);
}

/*
 * Asks the candidates' files for their readiness in one poll(2), which
 * costs a few tens of ns per fd where a confirming IORING_OP_POLL_ADD
 * costs a few hundred (and, for an edge-triggered item, a remove and a
 * new multishot besides). What is ready goes on the ready list as read
 * (RP__EPI_FRESH: no second look at report time); a level-triggered item
 * that is not gets its poll armed; an edge-triggered one keeps its
 * multishot. Returns how many items it listed.
 */
static unsigned rp__ep_confirm(struct rp__ep *ep)
{
	unsigned listed = 0;
	int n;

	ep->st.polls++;
	n = rp__poll0(ep->pfd, ep->npfd);
	for (uint32_t i = 0; i < ep->npfd; i++) {
		int fd = ep->pfd[i].fd;
		struct rp__ep_item *it = rp__ep_item(ep, fd);
		uint32_t bits;

		if (n < 0) {
			/* No answer: confirm the slow way, by re-arming. */
			rp__ep_rearm_anew(ep, fd, it);
			continue;
		}
		bits = (uint32_t)ep->pfd[i].revents &
		       rp__ep_reportable(it->events);
		bits |= rp__ep_cs_held(fd, it);
		if (bits) {
			it->ready = bits;
			it->flags |= RP__EPI_FRESH;
			rp__ep_list(ep, fd, it);
			listed++;
			continue;
		}
		ep->st.stale_dropped++;
		it->ready = 0;
		if (!it->poll.armed)
			rp__ep_rearm(ep, fd, it);
	}
	ep->npfd = 0;
	return listed;
}

/*
 * Arms the registrations on the re-arm list: level entries the last wait
 * reported, and any whose arm failed (rp__ep_rearm). One that fails again
 * stays on the list, for the next look.
 */
static void rp__ep_rearm_due(struct rp__ep *ep)
{
	uint32_t n = ep->nrearm, kept = 0;

	for (uint32_t i = 0; i < n; i++) {
		int fd = ep->rearm[i];
		struct rp__ep_item *it = rp__ep_item(ep, fd);

		if (!(it->flags & RP__EPI_REARM))
			continue;
		it->flags &= ~RP__EPI_REARM;
		if (!(it->flags & RP__EPI_USED) ||
		    (it->flags & RP__EPI_DISABLED))
			continue;
		/*
		 * A hooked one stays hooked (a one-shot would spin), and its
		 * level is asked at report.
		 */
		if ((it->flags & RP__EPI_HOOKED || it->cs) && it->poll.armed) {
			it->ready |= rp__ep_reportable(it->events);
			rp__ep_list(ep, fd, it);
			continue;
		}
		/*
		 * Bytes another instance's completion socket holds for this
		 * file are level too: no poll of the kernel's sees them.
		 */
		if (rp__ep_cs_held(fd, it)) {
			it->ready |= rp__ep_reportable(it->events);
			rp__ep_list(ep, fd, it);
			if (it->poll.armed)
				continue;
		}
		/* A MOD since the report has armed it already. */
		if (it->poll.armed)
			continue;
		ep->st.rearms++;
		if (rp__unlikely(rp__ep_arm(ep, fd, it) < 0)) {
			/* kept <= i: the entries not yet looked at stay. */
			it->flags |= RP__EPI_REARM;
			ep->rearm[kept++] = fd;
		}
	}
	ep->nrearm = kept;
}

/*
 * Deals with every candidate: CQEs already in the ring and items a full
 * events array left on the ready list. With batch, the first room of them
 * are asked in one poll(2), the rest stay listed unasked (RP__EPI_ASK), and
 * the return value says how many are listed, ready; without, each one's
 * poll is armed anew, so that the answer comes as a CQE (which is what a
 * sleeper on the ring, or a poller of its fd, needs to see), and it
 * returns 0. Level-triggered items reported last time are armed again
 * either way: the wait's io_uring_enter looks at them.
 */
static unsigned rp__ep_requeue(struct rp__ep *ep, bool batch, int room)
{
	struct rp__ep_item *it;
	uint32_t ncand, l, rest_tail;
	unsigned cs_listed = 0, listed;
	int fd;

	/*
	 * DEFER_TASKRUN keeps the wakeups that came since the last wait as
	 * task work, which only an enter that asks for events runs: the
	 * wait's enter would post their CQEs as if they were current, and
	 * the program may have read the data since. Run them now, so that
	 * their CQEs are candidates like those other setups post before
	 * the wait. Without submitting: a DEL's remove queued since would
	 * fail on a poll its pending work owns (rp__ring_run_deferred). If
	 * that enter fails, they run in the wait's own enter: reported as
	 * current, spurious at worst.
	 */
	if (batch) {
		/*
		 * One enter for both: the level re-arms go in with it, and
		 * what they find ready comes back as candidates with the
		 * rest (their CQEs come after the leftovers on the list, so
		 * a full events array still rotates). A remove queued since
		 * the last submit (a DEL, a MOD) would find its poll owned by
		 * pending deferred work and fail, the poll holding its file:
		 * that work runs first then, in an enter of its own.
		 */
		rp__ep_rearm_due(ep);
		if (ep->ring.removes_queued && rp__ring_tw_pending(&ep->ring))
			(void)rp__ring_run_deferred(&ep->ring);
		if (rp__ring_tw_pending(&ep->ring) ||
		    rp__ring_unsubmitted(&ep->ring))
			(void)rp__ring_settle(&ep->ring);
	} else if (rp__ring_tw_pending(&ep->ring)) {
		(void)rp__ring_run_deferred(&ep->ring);
	}
	rp__ep_harvest(ep);
	ep->npfd = 0;
	/*
	 * The list is taken whole: a candidate that cannot be confirmed
	 * (rp__ep_rearm_anew) goes back on it, for this wait's report, and
	 * must not come round again here.
	 */
	l = ep->ready_head;
	rest_tail = ep->ready_tail;
	ep->ready_head = ep->ready_tail = 0;
	/*
	 * What this wait has no room to report is not asked now, as the
	 * kernel's ep_send_events polls only the items it reaches: with
	 * every connection ready at once, asking them all made each wait
	 * ask again the ones the last had no room for (1.7 asks per event
	 * at 512 connections and 256 slots). They stay listed, after what
	 * is asked, and are asked when a report reaches them.
	 */
	while (l && !(batch && ep->npfd + cs_listed >= (uint32_t)room)) {
		fd = (int)l - 1;
		it = rp__ep_item(ep, fd);
		l = it->next;
		it->flags &= ~(RP__EPI_LISTED | RP__EPI_FRESH | RP__EPI_ASK);
		if (!(it->flags & RP__EPI_USED) || !it->ready) {
			rp__ep_unready(ep, fd, it);
			continue;
		}
		/* A completion socket's level is its buffers': no poll(2). */
		if (it->cs) {
			ep->st.confirms++;
			it->ready = rp__ep_cs_level(ep, fd, it);
			if (!it->ready) {
				ep->st.stale_dropped++;
				continue;
			}
			it->flags |= RP__EPI_FRESH;
			rp__ep_list(ep, fd, it);
			cs_listed++;
			continue;
		}
		ep->st.confirms++;
		if (batch && rp__ep_pfd_add(ep, fd, it))
			continue;
		/* An edge-triggered item's multishot may still be armed. */
		rp__ep_rearm_anew(ep, fd, it);
	}
	/*
	 * What an earlier wait read (RP__EPI_FRESH: a report that faulted,
	 * EFAULT, left it listed) is no longer current either.
	 */
	for (uint32_t m = l; m; m = it->next) {
		it = rp__ep_item(ep, (int)m - 1);
		it->flags = (it->flags & ~RP__EPI_FRESH) | RP__EPI_ASK;
	}
	ncand = ep->npfd;
	rp__ep_rearm_due(ep);
	listed = (ncand ? rp__ep_confirm(ep) : 0) + cs_listed;
	/* The rest, still LISTED (so untouched meanwhile), goes back last. */
	if (l) {
		if (ep->ready_tail)
			rp__ep_item(ep, (int)ep->ready_tail - 1)->next = l;
		else
			ep->ready_head = l;
		ep->ready_tail = rest_tail;
	}
	return listed;
}

/* ---- reporting ---- */

static int rp__ep_enter(struct rp__ep *ep, bool wait, int64_t timeout_ns,
			const sigset_t *mask);

/* Bits a CQE may overstate: its wakeup key, not a poll of the file. */
#define RP__EP_KEYED_BITS                                                 \
	(EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND | \
	 EPOLLMSG)

/* Must the item's file be asked before its bits are reported? */
static bool rp__ep_asks(const struct rp__ep_item *it)
{
	return !(it->flags & RP__EPI_FRESH) && !it->cs &&
	       ((it->events & RP__EP_KEYED_BITS) ||
		(it->flags & (RP__EPI_HOOKED | RP__EPI_ASK)));
}

/*
 * The bits to report. A CQE carries the wakeup's key when there was one:
 * a socket's data wakeup says IN|PRI|RDNORM|RDBAND for plain data. Where
 * the interest holds such bits, ask the file itself, as the kernel's
 * ep_item_poll does.
 */
static uint32_t rp__ep_true_bits(struct rp__ep *ep, int fd,
				 struct rp__ep_item *it)
{
	uint32_t want = rp__ep_reportable(it->events);
	struct pollfd p = { .fd = fd, .events = (short)want };

	if (it->flags & RP__EPI_FRESH) {
		it->flags &= ~RP__EPI_FRESH;
		return it->ready;
	}
	if (it->cs)
		return rp__ep_cs_level(ep, fd, it);
	if (!rp__ep_asks(it))
		return it->ready;
	it->flags &= ~RP__EPI_ASK;
	ep->st.confirms++;
	ep->st.polls++;
	if (rp__poll0(&p, 1) < 0)
		return it->ready;
	return (uint32_t)p.revents & want;
}

/*
 * Asks, in one poll(2), the files of those of the next maxevents items to
 * report that rp__ep_true_bits would ask one by one (bits a CQE may
 * overstate, a hooked level entry): one syscall per
 * report instead of one per item, as rp__ep_confirm does for candidates.
 * What it read is marked RP__EPI_FRESH and reported as read; an item it
 * could not ask (no room, no answer) is asked alone, as before.
 */
static void rp__ep_ask(struct rp__ep *ep, int maxevents)
{
	struct rp__ep_item *it;
	int seen = 0, n;

	ep->npfd = 0;
	for (uint32_t l = ep->ready_head; l && seen < maxevents; l = it->next) {
		it = rp__ep_item(ep, (int)l - 1);
		if (!(it->flags & RP__EPI_USED) || !it->ready)
			continue;
		seen++;
		if (rp__ep_asks(it) && !rp__ep_pfd_add(ep, (int)l - 1, it))
			break;
	}
	if (!ep->npfd)
		return;
	ep->st.confirms += ep->npfd;
	ep->st.polls++;
	n = rp__poll0(ep->pfd, ep->npfd);
	for (uint32_t i = 0; n >= 0 && i < ep->npfd; i++) {
		it = rp__ep_item(ep, ep->pfd[i].fd);
		it->ready = (uint32_t)ep->pfd[i].revents &
			    rp__ep_reportable(it->events);
		it->flags = (it->flags & ~RP__EPI_ASK) | RP__EPI_FRESH;
	}
	ep->npfd = 0;
}

/*
 * Puts a registration on the re-arm list, once. No allocation: ADD keeps
 * room for every registration there (rp__ep_rearm_room), so that a wait
 * never has to drop one for want of memory.
 */
static void rp__ep_defer_rearm(struct rp__ep *ep, int fd,
			       struct rp__ep_item *it)
{
	if (it->flags & RP__EPI_REARM)
		return;
	it->flags |= RP__EPI_REARM;
	ep->rearm[ep->nrearm++] = fd;
}

/*
 * Room on the re-arm list for one more registration. An fd is on it at
 * most once (RP__EPI_REARM), and a deleted one keeps its place (and the
 * flag, also when added again) until the next wait: so the list never
 * holds more than the entries there now and one per registration.
 */
static int rp__ep_rearm_room(struct rp__ep *ep)
{
	uint32_t need = ep->nrearm + ep->nitems + 1, cap = ep->rearm_cap;
	int *r;

	if (rp__likely(need <= cap))
		return 0;
	while (cap < need)
		cap = cap ? cap * 2 : 64;
	r = realloc(ep->rearm, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	ep->rearm = r;
	ep->rearm_cap = cap;
	return 0;
}

/* ---- the caller's memory ---- */

/*
 * The kernel reads and writes the caller's memory with copy_{from,to}_user:
 * a bad pointer is EFAULT, never a crash. Before ringpoll touches memory
 * of the caller's, it asks the kernel whether it is there, with a syscall
 * that reads or writes 4 bytes of it and does nothing else: FUTEX_WAIT
 * with a zero timeout reads the word (then EAGAIN or ETIMEDOUT at once);
 * getcpu writes the CPU's number into memory the caller is about to get
 * anyway (an event's slot), so the write is never seen. Both are in every
 * seccomp allowlist, and valgrind passes both to the kernel (it answers
 * rt_sigprocmask itself, and misjudges a PROT_NONE page).
 * Protection is per page and pages are 4 KiB or more: a block found good
 * is remembered, and the steady state (the same events array, an event on
 * the stack) makes no syscall. What the program unmaps later is not seen
 * (README, "Differences from kernel epoll").
 */
#define RP__MEM_BLOCK 4096u
#define RP__MEM_MAX_BLOCKS 4096u

static uintptr_t rp__mem_end(uint64_t v)
{
	return (uintptr_t)(v & ~(uint64_t)(RP__MEM_BLOCK - 1)) +
	       (uintptr_t)((v & (RP__MEM_BLOCK - 1)) + 1) * RP__MEM_BLOCK;
}

/* The end of the remembered range holding [a, e), or 0. */
static uintptr_t rp__mem_find(_Atomic uint64_t *mem, uintptr_t a, uintptr_t e)
{
	for (unsigned i = 0; i < RP__EP_MEMS; i++) {
		uint64_t v = atomic_load_explicit(&mem[i],
						  memory_order_relaxed);
		uintptr_t lo = (uintptr_t)(v & ~(uint64_t)(RP__MEM_BLOCK - 1));
		uintptr_t hi = rp__mem_end(v);

		if (v && a >= lo && e <= hi && hi > lo)
			return hi;
	}
	return 0;
}

/* Remembers [lo, hi), whole blocks; returns hi. */
static uintptr_t rp__mem_add(_Atomic uint64_t *mem, atomic_uint *next,
			     uintptr_t lo, uintptr_t hi)
{
	uint64_t n = (hi - lo) / RP__MEM_BLOCK;
	unsigned i;

	/* Too long to hold in one range: good now, asked again next time. */
	if (n > RP__MEM_MAX_BLOCKS)
		return hi;

	/* An array written in order grows one range, not many. */
	for (i = 0; i < RP__EP_MEMS; i++) {
		uint64_t v = atomic_load_explicit(&mem[i],
						  memory_order_relaxed);
		uint64_t have = (v & (RP__MEM_BLOCK - 1)) + 1;

		if (v && rp__mem_end(v) == lo &&
		    have + n <= RP__MEM_MAX_BLOCKS &&
		    atomic_compare_exchange_strong(&mem[i], &v,
						   v + n))
			return hi;
	}
	i = atomic_fetch_add_explicit(next, 1, memory_order_relaxed) %
	    RP__EP_MEMS;
	atomic_store_explicit(&mem[i], (uint64_t)lo | (n - 1),
			      memory_order_relaxed);
	return hi;
}

/* Does the kernel fault on the bytes at @at? Anything but EFAULT: no. */
static bool rp__mem_faults(uintptr_t at, bool write)
{
	static const struct timespec now = { 0, 0 };
	int saved = errno; /* a call that succeeds leaves errno alone */
	bool fault;
	long ret;

	/* getcpu takes NULL as "no buffer", not as a fault. */
	if (!at)
		return true;
	if (write)
		ret = syscall(SYS_getcpu, (void *)at, NULL, NULL);
	else
		ret = syscall(SYS_futex, (void *)at, FUTEX_WAIT_PRIVATE, 0,
			      &now, NULL, 0);
	fault = ret < 0 && errno == EFAULT;
	errno = saved;
	return fault;
}

bool rp__mem_cached(struct rp__mem *m, const void *p, size_t len, bool write)
{
	uintptr_t a = (uintptr_t)p, e = a + len;

	if (e < a)
		return false;
	return rp__mem_find(m->w, a, e) ||
	       (!write && rp__mem_find(m->r, a, e));
}

void rp__mem_known(struct rp__mem *m, const void *p, size_t len, bool write)
{
	uintptr_t a = (uintptr_t)p, e = a + len;

	if (!len || e < a)
		return;
	(void)rp__mem_add(write ? m->w : m->r, write ? &m->wnext : &m->rnext,
			  a & ~(uintptr_t)(RP__MEM_BLOCK - 1),
			  (e + RP__MEM_BLOCK - 1) &
				  ~(uintptr_t)(RP__MEM_BLOCK - 1));
}

uintptr_t rp__mem_user(struct rp__mem *m, const void *p, size_t len,
		       bool write)
{
	uintptr_t a = (uintptr_t)p, e = a + len, hi, b;

	if (e < a)
		return 0;
	hi = rp__mem_find(m->w, a, e);
	if (!hi && !write)
		hi = rp__mem_find(m->r, a, e);
	if (hi)
		return hi;
	/*
	 * One probe in each block the range touches: a write inside the
	 * range, a read of the aligned word at its start in the block.
	 */
	for (b = a & ~(uintptr_t)(RP__MEM_BLOCK - 1); b < e;
	     b += RP__MEM_BLOCK) {
		uintptr_t at = b < a ? a : b;

		if (write && e - at < 4)
			at = e - 4;
		else if (!write)
			at &= ~(uintptr_t)3;
		if (rp__mem_faults(at, write))
			return 0;
	}
	return rp__mem_add(write ? m->w : m->r, write ? &m->wnext : &m->rnext,
			   a & ~(uintptr_t)(RP__MEM_BLOCK - 1),
			   (e + RP__MEM_BLOCK - 1) &
				   ~(uintptr_t)(RP__MEM_BLOCK - 1));
}

uintptr_t rp__ep_user(struct rp__ep *ep, const void *p, size_t len,
		      bool write)
{
	return rp__mem_user(&ep->mem, p, len, write);
}

/*
 * The kernel's access_ok on the whole events array, checked before the
 * wait: a range that wraps, or ends past the top of the user address
 * space, is EFAULT even with nothing ready. Where every kernel's top is
 * higher there is nothing to ask. Above that, only the kernel knows its
 * top: epoll_wait on the ring's fd checks the range and then refuses the
 * fd (EINVAL, not an epoll fd). The answer is remembered. Called with
 * ep->lock held, so that the ring's fd is ours.
 */
#if defined(__x86_64__)
/* TASK_SIZE_MAX (4-level paging) less a page; 5-level is higher */
#define RP__USER_SURE 0x7fffffffe000ull
#else
/* the lowest of arm64's, riscv64's... user address space tops */
#define RP__USER_SURE ((1ull << 38) - 2 * RP__MEM_BLOCK)
#endif

static bool rp__ep_events_ok(struct rp__ep *ep, struct epoll_event *events,
			     int maxevents)
{
	uintptr_t a = (uintptr_t)events;
	uintptr_t e = a + (uintptr_t)maxevents * sizeof(*events);
	int saved;
	bool fault;
	long ret;

	if (e < a)
		return false;
	if (rp__likely((uint64_t)e <= RP__USER_SURE))
		return true;
	for (unsigned i = 0; i < RP__EP_MEMS; i++)
		if (ep->evok[i].p == a && ep->evok[i].max >= maxevents)
			return true;
	saved = errno;
	ret = syscall(SYS_epoll_wait, ep->ring.enter_fd, events, maxevents, 0);
	fault = ret < 0 && errno == EFAULT;
	errno = saved;
	if (fault)
		return false;
	ep->evok[ep->evok_next % RP__EP_MEMS].p = a;
	ep->evok[ep->evok_next % RP__EP_MEMS].max = maxevents;
	ep->evok_next++;
	return true;
}

static int rp__ep_report(struct rp__ep *ep, struct epoll_event *events,
			 int maxevents)
{
	struct rp__ep_item *it;
	uintptr_t ok = 0; /* the end of the events known writable */
	int n = 0, fd;
	bool asked = false;

	while (n < maxevents && (it = rp__ep_unlist(ep, &fd))) {
		uintptr_t slot;

		/* Asked and found not ready: dropped below, as a candidate. */
		if (!(it->flags & RP__EPI_USED) ||
		    !(it->ready || (it->flags & RP__EPI_FRESH))) {
			rp__ep_unready(ep, fd, it);
			continue;
		}
		/*
		 * The first item whose file must be asked: ask it and the
		 * rest of this report's at once. Reports that need no asking
		 * (an interest without keyed bits) never walk the list twice.
		 */
		if (!asked && rp__ep_asks(it)) {
			asked = true;
			rp__ep_list_head(ep, fd, it);
			rp__ep_ask(ep, maxevents - n);
			continue;
		}
		it->ready = rp__ep_true_bits(ep, fd, it);
		if (!it->ready) {
			ep->st.stale_dropped++;
			if (!it->poll.armed)
				rp__ep_rearm(ep, fd, it);
			continue;
		}
		/*
		 * The kernel faults only when it has something to copy: a
		 * candidate found not ready is dropped first, the one that
		 * cannot be copied stays at the head of the list, and what
		 * was copied before it is the result.
		 */
		slot = (uintptr_t)events + (uintptr_t)n * sizeof(*events);
		if (slot + sizeof(*events) > ok &&
		    !(ok = rp__ep_user(ep, (void *)slot, sizeof(*events),
				       true))) {
			rp__ep_list_head(ep, fd, it);
			if (!n)
				return -EFAULT;
			break;
		}
		events[n].events = it->ready;
		events[n].data = it->data;
		n++;
		it->ready = 0;
		if (it->events & EPOLLONESHOT) {
			it->flags |= RP__EPI_DISABLED;
			/*
			 * A hooked entry, or a candidate listed by a MOD, is
			 * reported with its poll still armed: disarm it. If
			 * the remove finds no SQE, the poll's next CQE finds
			 * the entry disabled and tries again (rp__ep_cqe).
			 */
			if (it->poll.armed)
				(void)rp__ep_disarm(ep, fd, it);
		} else if (!(it->events & EPOLLET)) {
			/* Level: ask again in the next wait's enter. */
			rp__ep_defer_rearm(ep, fd, it);
		}
	}
	ep->st.events += (uint64_t)n;
	return n;
}

/* ---- the wait ---- */

static int rp__ep_enter(struct rp__ep *ep, bool wait, int64_t timeout_ns,
			const sigset_t *mask)
{
	uint64_t before = ep->ring.enters;
	int ret = rp__ring_enter(&ep->ring, wait, timeout_ns, mask);

	ep->st.enters += ep->ring.enters - before;
	return ret;
}

/*
 * A MOD's poll update that found its poll completed has re-armed it
 * (RP__POLL_REARM) since races was read: that arm's answer belongs in this
 * wait. A re-arm is an add, so once is enough.
 */
static void rp__ep_races(struct rp__ep *ep, uint32_t races)
{
	if (rp__likely(races == ep->lost_races))
		return;
	/*
	 * An enter that fails leaves the arm in the SQ: its answer comes
	 * with the wait's next enter instead, later but not lost.
	 */
	(void)rp__ep_enter(ep, false, 0, NULL);
	rp__ep_harvest(ep);
}

/*
 * io_uring_enter says EINTR when a signal came, and also when task work
 * was queued to this thread while it slept (TIF_NOTIFY_SIGNAL: a poll it
 * submitted completed), and the CQE it posted may have been taken by
 * another waiter. A wait whose mask blocks every signal cannot have been
 * interrupted by one: it waits on. Otherwise no difference can be seen,
 * and EINTR stands (COOP_TASKRUN's part of deviation 10).
 */
bool rp__ep_signal_possible(const sigset_t *sigmask)
{
	sigset_t cur;

	if (!sigmask) {
		if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0)
			return true;
		sigmask = &cur;
	}
	for (int sig = 1; sig < NSIG; sig++) {
		/* Never blocked; and the C library's own, kept unblocked. */
		if (sig == SIGKILL || sig == SIGSTOP ||
		    (sig >= 32 && sig < SIGRTMIN))
			continue;
		if (!sigismember(sigmask, sig))
			return true;
	}
	return false;
}

/*
 * The ring is another thread's. If that thread has exited, its ring can
 * never be entered again (SINGLE_ISSUER): move to a new ring, which this
 * thread owns. Otherwise two threads wait on the instance: it becomes
 * the kernel's epoll (rp__ep_go_kernel). A thread id reused since only
 * looks alive, and takes the second way.
 */
static int rp__ep_unowned(struct rp__ep *ep)
{
	pid_t owner = ep->ring.owner;
	struct rp__ring_opts o = {
		.setup = ep->ring.setup,
		.flags = RP__RING_OWNED,
		.sq_entries = ep->ring.uring.sq.ring_entries,
		.cq_entries = ep->ring.uring.cq.ring_entries,
	};

	if (owner && !ep->waiters &&
	    syscall(SYS_tgkill, getpid(), owner, 0) < 0 && errno == ESRCH &&
	    rp__ep_move(ep, &o) == 0 && rp__ring_own(&ep->ring, true) == 0)
		return 0;
	return rp__ep_go_kernel(ep);
}

int rp__ep_wait(struct rp__ep *ep, struct epoll_event *events, int maxevents,
		int64_t timeout_ns, const sigset_t *sigmask)
{
	uint64_t deadline = 0, now, ring0, st0;
	unsigned confirmed;
	uint32_t races;
	int n = 0, ret;

	if (timeout_ns > 0)
		deadline = rp__now_ns() + (uint64_t)timeout_ns;
	rp__ep_lock(ep);
	if (!ep->dead && !rp__ep_events_ok(ep, events, maxevents)) {
		rp__ep_unlock(ep);
		return -EFAULT;
	}
	/* The waiting thread owns the ring; the first one claims it. */
	if (!ep->dead && rp__unlikely(rp__ring_own(&ep->ring, true) < 0) &&
	    (n = rp__ep_unowned(ep)) < 0) {
		rp__ep_unlock(ep);
		return n;
	}
	ring0 = ep->ring.enters;
	st0 = ep->st.enters;
	ep->st.waits++;
	/*
	 * With a sleeper on the ring, readiness must show as CQEs: confirm
	 * by re-arming.
	 */
	confirmed = rp__ep_requeue(ep, !ep->waiters, maxevents);
	for (;;) {
		int64_t left = timeout_ns < 0 ? -1 : 0;
		unsigned submit, got, posted;
		int enter_fd;

		if (ep->dead) {
			n = ep->moved ? RP__EP_MOVED : -EBADF;
			break;
		}
		/*
		 * Arms that found no SQE on the way (rp__ep_rearm) are tried
		 * again before each look: this wait's enter submits them. (A
		 * report adds to the list only when it ends the wait.)
		 */
		if (rp__unlikely(ep->nrearm))
			rp__ep_rearm_due(ep);
		if (deadline) {
			now = rp__now_ns();
			left = now < deadline ? (int64_t)(deadline - now) : 0;
		}
		/*
		 * Entries on the ready list are asked when reported (hooked
		 * level entries): look before sleeping.
		 */
		if (left == 0 || confirmed || ep->ready_head ||
		    rp__ring_cq_ready(&ep->ring)) {
			/*
			 * Submit and look, without sleeping. The enter also
			 * submits what harvests and ctl queued: a re-arm that
			 * finds its fd ready completes in it, and belongs in
			 * this report.
			 */
			uint32_t races = ep->lost_races;

			/*
			 * Candidates confirmed and nothing to submit: the
			 * report is due now. Wakeups since the requeue's enter
			 * wait for the next wait (the kernel's, too, reports
			 * what is on its list when it looks).
			 */
			if (confirmed && !rp__ring_unsubmitted(&ep->ring))
				ret = 0;
			else
				ret = rp__ep_enter(ep, false, 0, NULL);
			confirmed = 0;
			if (rp__unlikely(ret == -EEXIST)) {
				n = rp__ep_go_kernel(ep);
				break;
			}
			rp__ep_harvest(ep);
			rp__ep_races(ep, races);
			n = rp__ep_report(ep, events, maxevents);
			/* No ring behind the number: see rp__wait. */
			if (n != 0 || (left == 0 && ret != -EOPNOTSUPP &&
				       ret != -EBADF))
				break;
			if (ret < 0 && ret != -EBUSY && ret != -EAGAIN &&
			    ret != -EINTR) {
				n = ret;
				break;
			}
			continue;
		}
		/*
		 * One enter submits the re-arms, confirmations and ctl work
		 * and sleeps: a re-arm on a ready fd completes at once and
		 * ends the sleep. The SQ tail is published under the lock;
		 * other threads may queue SQEs meanwhile and wake us through
		 * the FUTEX_WAIT (rp__ep_wake). A FUTEX_WAIT that found no
		 * SQE is tried again first: nobody else would before we wake.
		 */
		if (rp__unlikely(ep->wake_futex && !ep->wake_armed))
			rp__ep_wake_arm(ep);
		submit = rp__ring_flush(&ep->ring);
		posted = rp__ring_cq_posted(&ep->ring);
		races = ep->lost_races;
		ep->waiters++;
		/*
		 * Read under the lock: a close of the instance or a move to
		 * the kernel's epoll sets it to -1 while we sleep (a data
		 * race otherwise, seen by TSan in
		 * dev_close_instance_during_wait_*).
		 */
		enter_fd = ep->ring.enter_fd;
		rp__ep_unlock(ep);
		ret = rp__ring_wait(&ep->ring, enter_fd, submit, left,
				    sigmask);
		rp__ep_lock(ep);
		ep->st.enters++;
		ep->ring.enters++;
		if (ret > 0)
			ep->ring.sqes += (uint64_t)ret;
		ep->waiters--;
		/*
		 * A signal's handler ran while another thread moved the
		 * instance (it waited, and the hand-off found this one held):
		 * the wait still ends in EINTR, as epoll_wait's does after a
		 * handler. Waiting on in the kernel's epoll would report an
		 * edge the other thread was handed already.
		 */
		if (ep->dead) {
			if (ret == -EINTR && rp__ep_signal_possible(sigmask))
				n = -EINTR;
			else
				n = ep->moved ? RP__EP_MOVED : -EBADF;
			break;
		}
		/* Another thread waits: see rp__ep_handoff. */
		if (rp__unlikely(ep->handoff)) {
			n = rp__ep_go_kernel(ep);
			pthread_cond_broadcast(&ep->handoff_cv);
			if (n == RP__EP_MOVED && ret == -EINTR &&
			    rp__ep_signal_possible(sigmask))
				n = -EINTR;
			break;
		}
		/*
		 * Not the ring's submitter after all: the owner's thread id
		 * came back to another thread, or this is a vfork child.
		 */
		if (rp__unlikely(ret == -EEXIST)) {
			n = rp__ep_go_kernel(ep);
			break;
		}
		got = (unsigned)io_uring_cq_ready(&ep->ring.uring);
		rp__ep_harvest(ep);
		rp__ep_races(ep, races);
		n = rp__ep_report(ep, events, maxevents);
		if (n != 0)
			break;
		if (ret == -ETIME) {
			n = 0;
			break;
		}
		if (ret == -EINTR) {
			if (!rp__ep_signal_possible(sigmask))
				continue;
			n = -EINTR;
			break;
		}
		/*
		 * An enter that submitted reports the submission, never
		 * EINTR or ETIME. It returned with no CQE for us: the
		 * deadline passed, a signal came, or a CQE was posted and
		 * another waiter took it (then the CQ's tail moved, and
		 * this is no signal: wait on).
		 */
		if (ret >= 0 && submit && !got) {
			if (deadline && rp__now_ns() >= deadline) {
				n = 0;
				break;
			}
			if (rp__ring_cq_posted(&ep->ring) != posted ||
			    !rp__ep_signal_possible(sigmask))
				continue;
			n = -EINTR;
			break;
		}
		if (ret < 0 && ret != -EBUSY && ret != -EAGAIN) {
			n = ret;
			break;
		}
	}
	/*
	 * Other threads asleep on the ring: level-triggered items just
	 * reported and leftovers must reach the kernel now, where a
	 * still-ready fd completes at once and wakes the next sleeper, as
	 * the kernel's epoll passes a wakeup on.
	 */
	if (n > 0 && ep->waiters && (ep->nrearm || ep->ready_head))
		rp__ep_settle(ep);
	/*
	 * Enters not counted on the way: a full SQ handed to the kernel
	 * while re-arming, a CQ overflow flushed by a harvest.
	 */
	ep->st.enters += (ep->ring.enters - ring0) - (ep->st.enters - st0);
	rp__ep_unlock(ep);
	return n;
}

void rp__ep_settle(struct rp__ep *ep)
{
	/*
	 * Re-arms and confirmations go in now rather than in the next wait,
	 * so that the ring's fd is readable exactly when a poll of ours
	 * would find something. What they find stays in the CQ.
	 */
	rp__ep_requeue(ep, false, INT_MAX);
	/*
	 * What a failed enter could not submit stays in the SQ for the next
	 * one (a wait's): the ring's fd then says readable later, no event
	 * is lost. Nobody to tell: a poll(2) of our fd asked.
	 */
	(void)rp__ep_enter(ep, false, 0, NULL);
}

/* ---- ctl ---- */


/*
 * The kernel's ep_insert and ep_modify poll the file at once. A one-shot
 * arm on a ready file completes inside the submit; a multishot's first
 * completion is queued as task work and, now and then (about 1 in 10,000
 * on 6.18), posted only a timer tick later, so a wait(0) right after the
 * ctl would miss it. Such an entry is a candidate: the next
 * wait asks its file with the other candidates' poll(2). (Should the
 * late CQE come after that report, it is reported again: spurious, never
 * late.)
 */
static void rp__ep_arm_candidate(struct rp__ep *ep, int fd,
				 struct rp__ep_item *it)
{
	if (!it->poll.armed || !it->poll.multishot)
		return;
	it->ready |= rp__ep_reportable(it->events);
	rp__ep_list(ep, fd, it);
}

static struct rp__ep_item *rp__ep_item_make(struct rp__ep *ep, int fd)
{
	uint32_t c = (uint32_t)fd >> RP__EP_CHUNK_SHIFT;

	if (rp__unlikely(rp__fault_alloc) && rp__fault_take(&rp__fault_alloc))
		return NULL;
	if (c >= ep->nchunks) {
		struct rp__ep_item **chunks;

		chunks = realloc(ep->chunks, (c + 1) * sizeof(*chunks));
		if (!chunks)
			return NULL;
		memset(chunks + ep->nchunks, 0,
		       (c + 1 - ep->nchunks) * sizeof(*chunks));
		ep->chunks = chunks;
		ep->nchunks = c + 1;
	}
	if (!ep->chunks[c]) {
		ep->chunks[c] = calloc(RP__EP_CHUNK, sizeof(struct rp__ep_item));
		if (!ep->chunks[c])
			return NULL;
	}
	return rp__ep_item(ep, fd);
}

/*
 * A move to a bigger ring (rp__ep_grow, rp__ep_cs_ring). The new ring is
 * enabled by its first waiter; a mover that owned the old one owns it at
 * once, so that what it does before its next wait (a read in the
 * completion mode runs the ring's deferred work) finds a ring it may
 * enter.
 */
static int rp__ep_resize(struct rp__ep *ep, const struct rp__ring_opts *o)
{
	bool mine = ep->ring.owner && ep->ring.owner == rp__tid();
	int ret = rp__ep_move(ep, o);

	if (ret == 0 && mine)
		(void)rp__ring_own(&ep->ring, true);
	return ret;
}

/*
 * The registrations outgrow the CQ: every armed poll may post a CQE, and a
 * full CQ overflows into the kernel (NODROP: nothing lost), which costs an
 * io_uring_enter to flush. Move to a ring with a CQ of four times as many
 * (twice, next time). Not while a thread sleeps in the ring (it would
 * sleep on in the old one): the next ADD tries again. (An instance
 * registered in another epoll is the kernel's epoll: it has no ring to
 * move.) Without the memory for it, stay, and try again at twice as many
 * registrations.
 */
static void rp__ep_grow(struct rp__ep *ep)
{
	struct rp__ring_opts o = { .setup = ep->ring.setup,
				   .flags = rp__ep_ring_flags() };
	unsigned cq = RP__EP_CQ_MIN;

	/*
	 * Completion sockets live in this ring's file table, with requests
	 * in flight: it stays (a full CQ overflows into the kernel, which
	 * costs an enter, nothing lost).
	 */
	if (ep->dead || ep->waiters || ep->cs.nslots)
		return;
	while (cq < RP__EP_CQ_MAX && cq < 4 * ep->nitems)
		cq *= 2;
	o.cq_entries = cq;
	o.sq_entries = cq / 16 < RP__EP_SQ_MIN ? RP__EP_SQ_MIN :
		       cq / 16 > RP__EP_SQ_MAX ? RP__EP_SQ_MAX : cq / 16;
	if (cq <= ep->ring.uring.cq.ring_entries || rp__ep_resize(ep, &o) < 0) {
		ep->grow_at = ep->nitems * 2;
		return;
	}
	ep->grow_at = cq >= RP__EP_CQ_MAX ? UINT32_MAX : cq / 2;
}

/*
 * A completion socket posts a CQE for every segment it receives and one
 * for every send, and once the first one is in the ring's file table the
 * ring can no longer move (rp__ep_grow): a CQ sized for the registrations
 * so far overflowed with hundreds of sockets (echo at 512 connections:
 * 5% of the server's CPU in the kernel's overflow list, kmalloc and kfree
 * per CQE). So the first one moves the instance to a ring with room for
 * a few thousand sockets first: 4,096 CQEs (64 KiB, charged as any
 * ring's), or 4 per registration if there are more. A thread asleep in
 * the ring keeps it where it is (rp__ep_grow's reason): the CQ overflows
 * into the kernel there, which costs CPU and loses nothing.
 */
#define RP__EP_CQ_CS 4096

void rp__ep_cs_ring(struct rp__ep *ep)
{
	struct rp__ring_opts o = { .setup = ep->ring.setup,
				   .flags = rp__ep_ring_flags() };
	unsigned cq = RP__EP_CQ_CS;

	if (ep->dead || ep->waiters || ep->cs.nslots)
		return;
	while (cq < RP__EP_CQ_MAX && cq < 4 * (ep->nitems + 1))
		cq *= 2;
	if (cq <= ep->ring.uring.cq.ring_entries)
		return;
	o.cq_entries = cq;
	o.sq_entries = RP__EP_SQ_MAX;
	/* Without the memory for it: the small ring, overflowing. */
	if (rp__ep_resize(ep, &o) == 0)
		ep->grow_at = cq >= RP__EP_CQ_MAX ? UINT32_MAX : cq / 2;
}

int rp__ep_add(struct rp__ep *ep, int fd, const struct epoll_event *ev,
	       struct rp__cs *cs)
{
	struct rp__ep_item *it = rp__ep_item(ep, fd);
	int ret;

	if (it && (it->flags & RP__EPI_USED))
		return -EEXIST;
	it = rp__ep_item_make(ep, fd);
	if (!it)
		return -ENOMEM;
	ret = rp__ep_rearm_room(ep);
	if (ret < 0)
		return ret;
	it->events = ev->events | EPOLLERR | EPOLLHUP;
	it->data = ev->data;
	it->ready = 0;
	it->cs = cs;
	it->seq = ++ep->adds;
	/* Still listed, or on the re-arm list, from an old registration. */
	it->flags = (uint8_t)((it->flags & (RP__EPI_LISTED | RP__EPI_REARM)) |
			      RP__EPI_USED);
	/* it->poll keeps its generation: an old registration's CQE is stale. */
	it->poll.armed = false;
	/* No SQE: not registered, and the caller hears why. */
	ret = rp__ep_arm(ep, fd, it);
	if (ret < 0) {
		it->flags &= ~RP__EPI_USED;
		it->cs = NULL;
		return ret;
	}
	/* As ep_insert does, look at it once now: the arm's completion. */
	rp__ep_arm_candidate(ep, fd, it);
	if (rp__ep_cs_held(fd, it)) {
		it->ready |= rp__ep_reportable(it->events);
		rp__ep_list(ep, fd, it);
	}
	ep->nitems++;
	if (rp__unlikely(ep->nitems > ep->grow_at))
		rp__ep_grow(ep);
	return 0;
}

/*
 * MOD of a registration whose poll is armed and stays of its kind (one-shot
 * or multishot). The kernel's ep_modify
 * stores the interest and polls the file once.
 *
 * Level-triggered, the poll is a one-shot that has not fired: the file has
 * been ready for none of its bits since it was armed (or it has not been
 * submitted yet, and will look). When the new interest asks for no bit
 * beyond them, there is no kernel work at all: a change of data, a
 * narrower interest. A wakeup for a bit no longer wanted then costs a
 * re-arm, and a bit still wanted that it finds set is level, due anyway.
 *
 * Edge-triggered, an event is a wakeup for a wanted bit, so the poll must
 * wake for exactly those: only the same mask keeps it. It may have fired
 * already: the item becomes a candidate, asked by the next wait's poll(2),
 * which is when the kernel's epoll would ask it too.
 *
 * Anything else updates the poll in place: one SQE, where a remove and an
 * add are two.
 */
static int rp__ep_mod_armed(struct rp__ep *ep, int fd, struct rp__ep_item *it,
			    const struct epoll_event *ev, uint32_t mask)
{
	uint32_t events = ev->events | EPOLLERR | EPOLLHUP;
	bool edge = ev->events & EPOLLET;
	int ret;

	if ((mask & ~it->poll.mask) || (edge && mask != it->poll.mask) ||
	    ((it->events & EPOLLET) && !edge) ||
	    (edge && ep->waiters)) {
		/* A waiter trusts what comes in its wait: a CQE. */
		ret = rp__poll_update(&ep->ring, &it->poll, fd, mask,
				      RP__UD_EPOLL, (uint32_t)fd);
		if (ret < 0)
			return ret;
		it->ready = 0;
	} else {
		if (edge) {
			it->ready |= rp__ep_reportable(events);
			rp__ep_list(ep, fd, it);
		} else {
			it->ready = 0;
		}
		ep->st.mods_in_place++;
	}
	it->events = events;
	it->data = ev->data;
	it->flags &= ~(RP__EPI_DISABLED | RP__EPI_FRESH);
	return 0;
}

static int rp__ep_mod_one(struct rp__ep *ep, int fd,
			  const struct epoll_event *ev);

int rp__ep_mod(struct rp__ep *ep, int fd, const struct epoll_event *ev)
{
	int ret = rp__ep_mod_one(ep, fd, ev);
	struct rp__ep_item *it;

	/* As ep_modify looks anew: bytes held for it (rp__ep_cs_held). */
	if (ret == 0 && rp__unlikely(rp__cs_on) &&
	    (it = rp__ep_item(ep, fd)) && rp__ep_cs_held(fd, it)) {
		it->ready |= rp__ep_reportable(it->events);
		rp__ep_list(ep, fd, it);
	}
	return ret;
}

static int rp__ep_mod_one(struct rp__ep *ep, int fd,
			  const struct epoll_event *ev)
{
	struct rp__ep_item *it = rp__ep_item(ep, fd), old;
	int ret;

	if (!it || !(it->flags & RP__EPI_USED))
		return -ENOENT;
	/* The kernel refuses to modify an exclusive registration. */
	if (it->events & EPOLLEXCLUSIVE)
		return -EINVAL;
	/* A completion socket: its level is looked at anew, for free. */
	if (it->cs) {
		it->events = ev->events | EPOLLERR | EPOLLHUP;
		it->data = ev->data;
		it->ready = 0;
		it->flags &= ~(RP__EPI_DISABLED | RP__EPI_FRESH);
		return rp__ep_arm(ep, fd, it);
	}
	if (it->poll.armed &&
	    it->poll.multishot == rp__ep_multishot(ev->events))
		return rp__ep_mod_armed(ep, fd, it, ev,
					rp__ep_mask(ev->events));
	/* No SQE for the remove: nothing changed, the caller hears why. */
	ret = rp__poll_cancel(&ep->ring, &it->poll, RP__UD_EPOLL,
			      (uint32_t)fd);
	if (ret < 0)
		return ret;
	old = *it;
	it->events = ev->events | EPOLLERR | EPOLLHUP;
	it->data = ev->data;
	it->ready = 0;
	it->flags &= ~(RP__EPI_DISABLED | RP__EPI_FRESH);
	/* As the kernel's ep_modify, readiness is looked at anew. */
	ret = rp__ep_arm(ep, fd, it);
	if (rp__unlikely(ret < 0)) {
		/*
		 * The remove went in but no SQE is left for the new poll:
		 * the MOD fails as a whole (the caller hears why) and the
		 * registration is as it was, its old poll armed again by
		 * the next wait (the re-arm list), where an arm on a ready
		 * file completes at once: spurious at worst, never lost.
		 */
		it->events = old.events;
		it->data = old.data;
		it->ready = old.ready;
		it->flags = old.flags;
		rp__ep_defer_rearm(ep, fd, it);
		return ret;
	}
	rp__ep_arm_candidate(ep, fd, it);
	return 0;
}

int rp__ep_del(struct rp__ep *ep, int fd, bool inherited)
{
	struct rp__ep_item *it = rp__ep_item(ep, fd);
	int ret;

	if (!it || !(it->flags & RP__EPI_USED))
		return -ENOENT;
	if (inherited) {
		it->poll.armed = false;
	} else {
		ret = rp__ep_disarm(ep, fd, it);
		if (ret < 0)
			return ret;
	}
	/*
	 * The socket keeps what it buffered, read first, and leaves the
	 * mode: nobody may wait for it here any more.
	 */
	if (it->cs) {
		rp__cs_leave(ep, it->cs, false);
		it->cs = NULL;
	}
	it->ready = 0;
	it->flags &= RP__EPI_LISTED | RP__EPI_REARM;
	ep->nitems--;
	return 0;
}

void rp__ep_cs_drop(struct rp__ep *ep, struct rp__cs *cs)
{
	/*
	 * Its registration here reports from its buffer while its recv
	 * may still bring bytes, then polls the kernel's socket
	 * (rp__ep_cs_cqe, at its recv's last CQE): what arrives after is
	 * an edge the stopped recv no longer tells (the socket fuzzer,
	 * seed 2414). The bytes it still holds are level (rp__ep_cs_held)
	 * until read.
	 */
	rp__cs_leave(ep, cs, true);
	if (cs->registered && !cs->recv_armed) {
		rp__ep_cs_gone(ep, cs);
		cs->registered = false;
	}
}

void rp__ep_cs_gone(struct rp__ep *ep, struct rp__cs *cs)
{
	struct rp__ep_item *it = rp__ep_item(ep, cs->fd);

	if (!it || !(it->flags & RP__EPI_USED) || it->cs != cs)
		return;
	it->cs = NULL;
	it->poll.armed = false;
	it->poll.multishot = false;
	it->flags &= ~RP__EPI_FRESH;
	/* A poll armed on a ready file completes at once: nothing lost. */
	if (!(it->flags & RP__EPI_DISABLED)) {
		rp__ep_rearm(ep, cs->fd, it);
		/*
		 * Bytes it read ahead and still holds are level: a level
		 * registration reports them (no poll sees them; seed 657).
		 * An edge one reported them when they came.
		 */
		if (!(it->events & EPOLLET) && rp__ep_cs_held(cs->fd, it)) {
			it->ready |= rp__ep_reportable(it->events);
			rp__ep_list(ep, cs->fd, it);
		}
	}
}

void rp__ep_ctl_done(struct rp__ep *ep)
{
	/*
	 * The work is in the SQ. Someone asleep in the ring will not see it
	 * until woken. Otherwise it waits for the next wait: no syscall per
	 * ctl.
	 */
	if (ep->waiters)
		rp__ep_wake(ep);
}

/* ---- exit ---- */

void rp__ep_cancel_all(struct rp__ep *ep)
{
	/*
	 * A pending poll holds its file, and the kernel tears a ring down
	 * asynchronously after the process is gone: a listening socket
	 * would stay bound for milliseconds, and a server restarted at once
	 * would find its port in use. Cancel every poll now, and let the
	 * kernel finish the cancellations before exit closes the files.
	 */
	for (uint32_t c = 0; c < ep->nchunks; c++) {
		for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK; i++) {
			struct rp__ep_item *it = &ep->chunks[c][i];

			/*
			 * A remove that finds no SQE leaves its poll to the
			 * ring's teardown, as if the process were killed
			 * (deviation 13): late, not lost.
			 */
			if (it->poll.armed)
				(void)rp__ep_disarm(ep,
						    (int)(c * RP__EP_CHUNK + i),
						    it);
		}
	}
	/*
	 * Completion sockets: their recvs stop and their sends go out; what
	 * the last completions bring is still theirs, read after the ring
	 * is gone (orphans).
	 */
	rp__cs_release_all(ep);
	rp__ep_wake_cancel(ep);
	rp__ep_drop_removed(ep);
	rp__cs_orphan_all(ep);
}

void rp__ep_drop_removed(struct rp__ep *ep)
{
	/*
	 * A multishot that was completing survives its remove (-EALREADY);
	 * its CQE, stale now, asks for another (rp__ep_stale). Twice is
	 * enough: the second remove finds it armed. The last settle is no
	 * syscall when nothing is left to submit. A settle that fails (at
	 * close, exit, a move) leaves the removes to the ring's teardown,
	 * which cancels every request: the files are let go later, as when
	 * a process is killed (deviation 13), never kept. A poll whose
	 * deferred work is pending would survive too, with no CQE to say
	 * so, and keep a closed socket from sending its FIN: run that work
	 * first.
	 */
	if (rp__ring_tw_pending(&ep->ring) && rp__ring_unsubmitted(&ep->ring))
		(void)rp__ring_run_deferred(&ep->ring);
	for (int round = 0; round < 2; round++) {
		(void)rp__ring_settle(&ep->ring);
		rp__ep_harvest(ep);
		if (!rp__ring_unsubmitted(&ep->ring))
			break;
	}
	(void)rp__ring_settle(&ep->ring);
}

/* ---- moving to another ring ---- */

/*
 * Arms every registration that is not disabled on the instance's ring,
 * and the wakeup's FUTEX_WAIT. What was on the ready list stays there.
 */
static void rp__ep_rehook(struct rp__ep *ep)
{
	rp__ep_wake_arm(ep);
	for (uint32_t c = 0; c < ep->nchunks; c++) {
		for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK; i++) {
			struct rp__ep_item *it = &ep->chunks[c][i];

			if ((it->flags & RP__EPI_USED) &&
			    !(it->flags & RP__EPI_DISABLED))
				rp__ep_rearm(ep, (int)(c * RP__EP_CHUNK + i),
					     it);
		}
	}
}

/*
 * Our own ring, before we leave it: its CQEs go onto the ready list (the
 * pending events), then every poll is cancelled and the kernel lets go of
 * the files. A poll armed on the new ring reports what is ready at once:
 * a level-triggered item loses nothing, and an edge-triggered item's
 * pending edge is on the ready list or shows again (one more report of a
 * file that is still ready is the worst case, which edge-triggered
 * readers, reading until EAGAIN, take as a spurious wakeup).
 */
static void rp__ep_unhook(struct rp__ep *ep)
{
	rp__ep_harvest(ep);
	rp__ep_cancel_all(ep);
}

/*
 * A forked child out of fds, at its first use of an inherited instance:
 * the parent's ring gives its number up, the only one free below the
 * limit, and the new ring takes it (an instance holds no other fd that
 * could make room). Should another thread take the number meanwhile, the
 * instance is gone, as if closed; if no ring can be made, the number is
 * free for the kernel's epoll (rp__ep_to_kernel).
 */
static int rp__ep_take_number(struct rp__ep *ep, struct rp__ring *fresh,
			      const struct rp__ring_opts *o, int fdflags)
{
	int ret;

	rp__sys_close(ep->fd);
	ret = rp__ring_init(fresh, o);
	if (ret < 0)
		return ret;
	if (fresh->uring.ring_fd != ep->fd) {
		rp__ring_exit(fresh);
		return -EBADF;
	}
	if (fdflags >= 0 && !(fdflags & FD_CLOEXEC))
		fcntl(ep->fd, F_SETFD, 0);
	return 0;
}

/*
 * With ep->lock held and no thread asleep in the ring (rp__ep_grow), or in
 * a forked child at its first use of the instance: nobody enters the ring
 * being left after this (enter_fd is read under the lock). The number
 * stays: dup3 swaps the file under it in one step, so no other open can
 * take it meanwhile.
 */
int rp__ep_move(struct rp__ep *ep, const struct rp__ring_opts *o)
{
	bool inherited = rp__ep_inherited(ep);
	struct rp__ring fresh;
	int fdflags, ret;

	fdflags = fcntl(ep->fd, F_GETFD);
	ret = rp__ring_init(&fresh, o);
	if (ret == -EMFILE && inherited)
		ret = rp__ep_take_number(ep, &fresh, o, fdflags);
	if (ret < 0)
		return ret;
	if (!inherited)
		rp__ep_unhook(ep);
	if (fresh.uring.ring_fd != ep->fd &&
	    syscall(SYS_dup3, fresh.uring.ring_fd, ep->fd,
		    fdflags >= 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) <
		    0) {
		ret = -errno;
		rp__ring_exit(&fresh);
		if (!inherited)
			rp__ep_rehook(ep);
		return ret;
	}
	if (fresh.uring.ring_fd != ep->fd)
		rp__sys_close(fresh.uring.ring_fd);
	fresh.uring.ring_fd = ep->fd;
	fresh.enter_fd = ep->fd;
	/* The counters go on: callers measure enters across a ctl. */
	fresh.enters += ep->ring.enters;
	fresh.sqes += ep->ring.sqes;
	fresh.overflow_flushes += ep->ring.overflow_flushes;
	/* Unmapped, its last reference gone, the old ring is freed. */
	rp__ring_forget(&ep->ring);
	ep->ring = fresh;
	rp__ep_identify(ep);
	if (inherited) {
		/*
		 * The parent's CQEs and ready list were the parent's: the
		 * new polls report what is ready now.
		 */
		ep->waiters = 0;
		ep->ready_head = ep->ready_tail = 0;
		ep->nrearm = 0;
		for (uint32_t c = 0; c < ep->nchunks; c++) {
			for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK;
			     i++) {
				struct rp__ep_item *it = &ep->chunks[c][i];

				it->flags &= ~(RP__EPI_LISTED | RP__EPI_REARM);
				it->ready = 0;
				it->poll.armed = false;
				/*
				 * The parent's sockets and buffers: the
				 * child's registration is a plain one.
				 */
				it->cs = NULL;
			}
		}
		/* The parent's file table and buffers, not ours. */
		memset(&ep->cs, 0, sizeof(ep->cs));
		/* The word is ours now, in our memory: a new request. */
		ep->wake_armed = false;
		ep->fork_gen = atomic_load(&rp__ep_fork_gen);
	}
	rp__ep_rehook(ep);
	return 0;
}

/* ---- fork ---- */

int rp__ep_rebuild(struct rp__ep *ep)
{
	/* The parent's sizes: the registrations are the same. */
	struct rp__ring_opts o = {
		.setup = RP_SETUP_AUTO,
		.flags = rp__ep_ring_flags(),
		.sq_entries = ep->ring.uring.sq.ring_entries,
		.cq_entries = ep->ring.uring.cq.ring_entries,
	};

	return rp__ep_move(ep, &o);
}

/*
 * Entries whose report the kernel's epoll must not make again, though
 * its EPOLL_CTL_ADD polls their files. A reported EPOLLONESHOT entry
 * waits for MOD, and the kernel's is disabled only by a report: it goes
 * in with no events, but the kernel adds EPOLLERR|EPOLLHUP to any
 * interest, so a file in error or hung up (a reported connection the
 * program is about to close) would be reported again, maybe to another
 * thread. An edge-triggered entry with no edge pending (reported, or
 * never ready) would be reported again if its file is still ready. These
 * go in first, and a wait takes those reports: the entries are as they
 * were. One whose file changes only later is reported then, once.
 *
 * Whether an edge is pending is known only to a thread that can run the
 * ring's deferred completions (exact): another thread's ring may hold a
 * wakeup not run yet, so there an edge-triggered entry goes in with the
 * rest: reported again at worst, never lost.
 */
static bool rp__ep_kernel_quiet(const struct rp__ep_item *it, bool exact)
{
	if (it->flags & RP__EPI_DISABLED)
		return true;
	return exact && (it->events & EPOLLET) &&
	       !(it->events & EPOLLONESHOT) &&
	       !(it->flags & RP__EPI_LISTED) && !it->ready;
}

/*
 * The interest a disabled one-shot entry goes in with. The kernel adds
 * EPOLLERR|EPOLLHUP to any, so with none a file that errs later would be
 * reported. With every bit, on a file ready for one now, the wait that
 * follows takes its report and the kernel disables it for good; a file
 * ready for nothing gets EPOLLONESHOT alone, and is left out if it can be
 * (compat/epoff.c), else reported should it err or hang up.
 */
static uint32_t rp__ep_kernel_disabled(int fd)
{
	struct pollfd p = { .fd = fd, .events = (short)RP__EP_POLL_BITS };

	if (rp__poll0(&p, 1) > 0 && !(p.revents & POLLNVAL))
		return EPOLLONESHOT | RP__EP_POLL_BITS;
	return EPOLLONESHOT;
}

static void rp__ep_kernel_disable(int kfd)
{
	struct epoll_event evs[64];
	int n;

	do
		n = (int)syscall(SYS_epoll_pwait, kfd, evs, 64, 0, NULL,
				 _NSIG / 8);
	while (n == 64);
}

/*
 * Registers one entry in kfd. A disabled one-shot entry whose file is not
 * ready is left out, if it can be (compat/epoff.c; *tok made at the
 * first).
 */
static int rp__ep_kernel_add_one(struct rp__ep *ep, int kfd, int fd,
				 struct rp__ep_item *it,
				 struct rp__ep_off_tok **tok)
{
	struct epoll_event ev = { .events = it->events, .data = it->data };

	if (it->flags & RP__EPI_DISABLED) {
		ev.events = rp__ep_kernel_disabled(fd);
		if (ev.events == EPOLLONESHOT &&
		    (*tok || (*tok = rp__ep_off_begin(kfd))) &&
		    rp__ep_off_leave(*tok, ep->fd, fd))
			return 0;
	}
	/*
	 * An fd closed behind our back is gone (as the kernel forgets a
	 * file at its last close); other errors (memory, max_user_watches)
	 * fail the whole move.
	 */
	if (syscall(SYS_epoll_ctl, kfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
	    (errno == ENOMEM || errno == ENOSPC))
		return -errno;
	return 0;
}

static int rp__ep_seq_cmp(const void *a, const void *b)
{
	uint32_t x = ((const uint64_t *)a)[0] >> 32;
	uint32_t y = ((const uint64_t *)b)[0] >> 32;

	return x < y ? -1 : x > y;
}

/*
 * Registers ep's entries, the quiet ones or the others, in kfd, in the
 * order the program added them: the kernel's ready list is in the order
 * its entries became ready, and what a wait reports first, and whether a
 * MOD wakes a nesting epoll (ep_modify wakes only for an entry not on
 * that list), follows from it (KNOWN.md O). Without memory for the order,
 * in fd order.
 */
static int rp__ep_kernel_add(struct rp__ep *ep, int kfd, bool quiet,
			     bool exact, struct rp__ep_off_tok **tok)
{
	uint32_t n = 0, k = 0;
	uint64_t *order;
	int err = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t c = 0; c < ep->nchunks; c++) {
			for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK;
			     i++) {
				struct rp__ep_item *it = &ep->chunks[c][i];

				if (!(it->flags & RP__EPI_USED) ||
				    rp__ep_kernel_quiet(it, exact) != quiet)
					continue;
				if (pass)
					order[k++] = (uint64_t)it->seq << 32 |
						     (c * RP__EP_CHUNK + i);
				else
					n++;
			}
		}
		if (pass)
			break;
		order = n ? malloc(n * sizeof(*order)) : NULL;
		if (!order)
			break;
	}
	if (order)
		qsort(order, n, sizeof(*order), rp__ep_seq_cmp);
	/* Without memory for the order: in fd order. */
	for (uint32_t x = 0, fd = 0; x < n && !err; fd++) {
		struct rp__ep_item *it;

		if (order)
			fd = (uint32_t)order[x];
		it = rp__ep_item(ep, (int)fd);
		if (!order && (!it || !(it->flags & RP__EPI_USED) ||
			       rp__ep_kernel_quiet(it, exact) != quiet))
			continue;
		x++;
		err = rp__ep_kernel_add_one(ep, kfd, (int)fd, it, tok);
	}
	free(order);
	return err;
}

/*
 * A second thread must wait on the instance (or poll or nest it) while
 * the owner sleeps in the ring: the owner wakes and moves the instance
 * itself, for only it can take its completion sockets out of the ring
 * exactly (run the ring's deferred work, cancel their recvs, see their
 * sends end). Bounded: should it not come (stopped by a debugger, say),
 * the caller moves the instance as it can (rp__ep_cs_abandon).
 */
bool rp__ep_handoff(struct rp__ep *ep)
{
	struct timespec ts;

	/* Monotonic (rp__ep_cond_init): a clock set back does not stretch it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 1;
	ep->handoff = true;
	rp__ep_wake(ep);
	while (ep->handoff && !ep->dead && ep->waiters)
		if (pthread_cond_timedwait(&ep->handoff_cv, &ep->lock, &ts) ==
		    ETIMEDOUT)
			break;
	ep->handoff = false;
	return ep->dead;
}

/*
 * Another thread's ring, its owner away (not exact): only the owner may
 * submit or run the ring's deferred work, and nobody will enter the ring
 * again (its number is the kernel's epoll now). What the ring posted is
 * taken: received bytes into their sockets' buffers, sends' ends. Sends
 * still in the SQ were never made: they go as the orphans' bytes. A
 * recv's deferred work never runs, so what it did not take is still in
 * the kernel's socket. Unknown is only a send the kernel holds, waiting
 * for room in a full socket: how much of it went can never be known, so
 * that socket fails loudly, not silently short (rp__cs_unknown).
 */
static void rp__ep_cs_abandon(struct rp__ep *ep)
{
	unsigned head;

	if (!ep->cs.nsock)
		return;
	rp__ep_harvest(ep);
	head = io_uring_smp_load_acquire(ep->ring.uring.sq.khead);
	for (uint32_t s = 0; s < ep->cs.nslots; s++) {
		struct rp__cs *cs = ep->cs.by_slot[s];

		if (!cs)
			continue;
		if (cs->tx_out && (int32_t)(cs->send_sq - head) > 0)
			cs->tx_out = 0;
		else if (cs->tx_out)
			rp__cs_unknown(cs);
		cs->recv_armed = false;
	}
	rp__cs_release_all(ep);
	rp__cs_orphan_all(ep);
}

/*
 * Completion sockets holding unread bytes, registered in the instance
 * now in kfd (to be number ep->fd): their stand-ins (compat/epcarry.c).
 * An edge-triggered one whose edge was reported needs none (exact).
 */
static void rp__ep_kernel_carry(struct rp__ep *ep, int kfd, bool exact)
{
	for (uint32_t c = 0; c < ep->nchunks; c++) {
		for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK; i++) {
			struct rp__ep_item *it = &ep->chunks[c][i];

			if (!(it->flags & RP__EPI_USED) || !it->cs ||
			    rp__ep_kernel_quiet(it, exact))
				continue;
			pthread_mutex_lock(&rp__cs_orphan_lock);
			rp__cs_carry(it->cs, kfd, ep->fd,
				     (int)(c * RP__EP_CHUNK + i), it->events,
				     it->data.u64);
			pthread_mutex_unlock(&rp__cs_orphan_lock);
		}
	}
}

/* The move failed: the entries left out are the ring's again. */
static void rp__ep_kernel_unleave(struct rp__ep *ep,
				  struct rp__ep_off_tok *tok)
{
	if (!tok)
		return;
	for (uint32_t c = 0; c < ep->nchunks; c++)
		for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK; i++)
			if (ep->chunks[c][i].flags & RP__EPI_DISABLED)
				rp__ep_off_undo(tok,
						(int)(c * RP__EP_CHUNK + i));
	rp__ep_off_end(tok);
}

int rp__ep_to_kernel(struct rp__ep *ep)
{
	struct rp__ep_off_tok *tok = NULL;
	int err, kfd, fdflags = fcntl(ep->fd, F_GETFD);
	bool exact;

	kfd = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
	if (kfd < 0)
		return -errno;
	/* Our own ring, its work all run: the state is exact. */
	exact = ep->ring.owned && !rp__ep_inherited(ep) &&
		ep->ring.owner == rp__tid();
	/*
	 * Deferred completions first (a remove queued since would fail on
	 * a poll they own), then what ctl queued: a MOD's arm on a ready
	 * file is an edge pending too.
	 */
	if (exact) {
		rp__ring_run_deferred(&ep->ring);
		rp__ring_settle(&ep->ring);
		rp__ep_harvest(ep);
	}
	err = rp__ep_kernel_add(ep, kfd, true, exact, &tok);
	if (err == 0) {
		rp__ep_kernel_disable(kfd);
		err = rp__ep_kernel_add(ep, kfd, false, exact, &tok);
	}
	if (err < 0) {
		rp__ep_kernel_unleave(ep, tok);
		rp__sys_close(kfd);
		return err;
	}
	/*
	 * The ring's polls hold their files until the kernel's exit work
	 * cancels them, some time after the ring's last reference goes:
	 * meanwhile the last close of a registered fd would not end its
	 * file, and the kernel's epoll would keep reporting it. Cancel
	 * them now, as a close of the instance does (only the owner can:
	 * elsewhere, the exit work will).
	 */
	if (exact)
		rp__ep_cancel_all(ep);
	else
		rp__ep_cs_abandon(ep);
	if (rp__unlikely(rp__cs_on))
		rp__ep_kernel_carry(ep, kfd, exact);
	if (kfd != ep->fd) {
		if (syscall(SYS_dup3, kfd, ep->fd,
			    fdflags >= 0 && (fdflags & FD_CLOEXEC) ? O_CLOEXEC :
								     0) < 0) {
			int err = -errno;

			rp__ep_kernel_unleave(ep, tok);
			rp__sys_close(kfd);
			if (exact)
				rp__ep_rehook(ep);
			return err;
		}
		rp__sys_close(kfd);
	}
	rp__ep_off_end(tok);
	/*
	 * Whichever ring was there (ours, the parent's, or a new one half
	 * set up) is no longer behind the number. A sleeper may still be in
	 * it: the mappings go with the last reference (rp__ep_release).
	 */
	ep->ring.uring.ring_fd = -1;
	ep->ring.enter_fd = -1;
	return 0;
}
