/* SPDX-License-Identifier: MIT */
/*
 * The registry of instances: what is true of every instance, or of an fd
 * number, rather than of one instance's registrations.
 *
 * - the fd table: which number is which instance (struct rp__fdent, read
 *   without a lock), and every instance struct ever made, recycled, never
 *   freed (rp__ep_alloc, rp__ep_recycle), found by rp__ep_get/rp__ep_put;
 * - identity: is a number still the ring we made (rp__same_ring,
 *   rp__drop_stale, rp__fresh_fd, rp__ep_stale);
 * - fork (rp__atfork_child, rp__ep_check_fork, rp__drop_inherited), exit
 *   (rp__epoll_exit), the settings and debug messages, the stats;
 * - the close path: an fd forgets its registrations, an instance closes,
 *   a close in a signal handler is deferred (rp__forget, rp__defer_close,
 *   the pending lists);
 * - the move of an instance to the kernel's epoll (rp__ep_go_kernel).
 *
 * It calls the state machine of one instance (compat/epctx.c) and the
 * ring, never a boundary (compat/epoll.c, compat/eppollset.c), and
 * returns -errno: the boundaries convert. The state machine calls back
 * only through the hooks of compat/ephooks.h, all defined here.
 *
 * The kernel is called with syscall(2), not through libc's epoll_* and
 * close: under the preload those names are ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epoff.h"
#include "epreg.h"

_Atomic(struct rp__fdent *) rp__tab[RP__TAB_CHUNKS];
/* Taken to make an instance, never on the way of a close. */
static pthread_mutex_t rp__tab_lock = PTHREAD_MUTEX_INITIALIZER;
/* See epreg.h. */
pthread_mutex_t rp__nest_lock = PTHREAD_MUTEX_INITIALIZER;
/*
 * Instance structs are recycled, never freed: a racing lookup is safe.
 * Every struct ever made is listed in chunks that never move, so that a
 * close (which may run in a signal handler) walks them without a lock.
 */
#define RP__ALL_SHIFT 8
#define RP__ALL_CHUNK (1u << RP__ALL_SHIFT)
#define RP__ALL_CHUNKS 4096
static _Atomic(struct rp__ep *) rp__ep_free_list;
static _Atomic(struct rp__ep **) rp__ep_all[RP__ALL_CHUNKS];
static atomic_uint rp__ep_nall;

/* The i-th instance struct ever made, i below rp__ep_nall. */
static struct rp__ep *rp__ep_nth(uint32_t i)
{
	struct rp__ep **chunk = atomic_load_explicit(
		&rp__ep_all[i >> RP__ALL_SHIFT], memory_order_acquire);

	return chunk[i & (RP__ALL_CHUNK - 1)];
}

static uint32_t rp__ep_count(void)
{
	return atomic_load_explicit(&rp__ep_nall, memory_order_acquire);
}

/*
 * The settings, read once when the library loads: a program may clear its
 * environment later (nginx does in its workers). secure_getenv: a setuid
 * program ignores them. Only "1" turns one on.
 */
static bool rp__disable, rp__debug;

static bool rp__env_on(const char *name)
{
	const char *v = secure_getenv(name);

	return v && strcmp(v, "1") == 0;
}

/* The program's name for a message: one word, as key=value wants it. */
static const char *rp__prog(char *buf, size_t len)
{
	snprintf(buf, len, "%s", program_invocation_short_name);
	for (char *p = buf; *p; p++)
		if (*p == ' ' || *p == '=' || *p == '\n')
			*p = '_';
	return buf;
}

/* RINGPOLL_DEBUG=1: why this process's epoll is the kernel's; once. */
static void rp__debug_once(const char *why, int err)
{
	static atomic_int said;
	char prog[32];

	if (rp__debug && !atomic_exchange(&said, 1))
		fprintf(stderr,
			"ringpoll[%d]: %s: epoll on the kernel's epoll: %s "
			"(%s)\n",
			(int)getpid(), rp__prog(prog, sizeof(prog)), why,
			err ? strerror(err) : "as asked");
}

/*
 * RINGPOLL_DEBUG=1: that epoll runs on io_uring, on which setup, whether
 * one thread owns each ring (rp__ep_ring_flags), and how a sleeper is
 * woken (FUTEX_WAIT, or NOP before 6.7: rp__ep_wake); once.
 */
static void rp__debug_ring(const struct rp__ep *ep)
{
	static const char *const rung[] = {
		[RP_SETUP_DEFER_TASKRUN] = "DEFER_TASKRUN",
		[RP_SETUP_COOP_TASKRUN] = "COOP_TASKRUN",
		[RP_SETUP_PLAIN] = "PLAIN",
	};
	static atomic_int said;
	unsigned fl = ep->ring.setup_flags;
	char prog[32];

	if (!rp__debug || atomic_exchange(&said, 1))
		return;
	fprintf(stderr,
		"ringpoll[%d]: %s: epoll on io_uring, setup %s%s%s%s, "
		"wake %s (ring fd %d)\n",
		(int)getpid(), rp__prog(prog, sizeof(prog)),
		ep->ring.setup <= RP_SETUP_PLAIN && rung[ep->ring.setup] ?
			rung[ep->ring.setup] :
			"?",
		fl & IORING_SETUP_TASKRUN_FLAG ? "|TASKRUN_FLAG" : "",
		fl & IORING_SETUP_SUBMIT_ALL ? "|SUBMIT_ALL" : "",
		ep->ring.owned ? ", owned by the thread that waits" : "",
		rp__ep_futex_wake() ? "FUTEX_WAIT" : "NOP", ep->fd);
}

static bool rp__ep_check_fork(struct rp__ep *ep, struct rp__fdent *e);

/* A reference to an instance that is alive, taken without a lock. */
static bool rp__ep_tryget(struct rp__ep *ep)
{
	unsigned refs = atomic_load(&ep->refs);

	while (refs)
		if (atomic_compare_exchange_weak(&ep->refs, &refs, refs + 1))
			return true;
	return false;
}

struct rp__ep *rp__ep_get(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__ep *ep;

	if (!e)
		return NULL;
	for (;;) {
		ep = atomic_load_explicit(&e->ep, memory_order_acquire);
		if (!ep)
			return NULL;
		/*
		 * Never from 0: the instance may have been let go since the
		 * load (a close, a move to the kernel's epoll), and a
		 * reference taken from 0 and dropped would release it twice.
		 * A struct recycled meanwhile is another instance: the
		 * second look tells.
		 */
		if (!rp__ep_tryget(ep))
			continue;
		if (atomic_load(&e->ep) == ep)
			break;
		rp__ep_put(ep);
	}
	if (rp__unlikely(rp__ep_inherited(ep)) && !rp__ep_check_fork(ep, e)) {
		rp__ep_put(ep);
		return NULL;
	}
	return ep;
}

/* Counters of the instances already closed, for the exit report. */
static struct rp_epoll_stats rp__st_closed;

static void rp__st_add(struct rp_epoll_stats *to,
		       const struct rp_epoll_stats *st)
{
	to->waits += st->waits;
	to->enters += st->enters;
	to->events += st->events;
	to->rearms += st->rearms;
	to->confirms += st->confirms;
	to->stale_dropped += st->stale_dropped;
	to->stale_cqes += st->stale_cqes;
	to->ctls += st->ctls;
	to->ctl_syscalls += st->ctl_syscalls;
	to->fallbacks += st->fallbacks;
	to->polls += st->polls;
	to->mods_in_place += st->mods_in_place;
}

/*
 * Onto the free list without a lock (a close in a signal handler may drop
 * the last reference); taking off is under rp__tab_lock, so no two pops
 * race and a push needs no ABA care. The counters stay in the struct
 * until it is made again (rp__ep_alloc).
 */
static void rp__ep_recycle(struct rp__ep *ep)
{
	struct rp__ep *head = atomic_load(&rp__ep_free_list);

	do
		ep->next_free = head;
	while (!atomic_compare_exchange_weak(&rp__ep_free_list, &head, ep));
}

void rp__ep_put(struct rp__ep *ep)
{
	if (atomic_fetch_sub(&ep->refs, 1) != 1)
		return;
	/* The last user of a closed instance frees what it holds. */
	rp__ep_release(ep);
	rp__ep_recycle(ep);
}

/* The hand-off's condition (rp__ep_handoff) times out on the monotonic clock. */
static void rp__ep_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

/* A struct for a new instance, its old counters counted; NULL: ENOMEM. */
static struct rp__ep *rp__ep_alloc(void)
{
	struct rp__ep *ep;

	pthread_mutex_lock(&rp__tab_lock);
	ep = atomic_load(&rp__ep_free_list);
	if (ep) {
		atomic_store(&rp__ep_free_list, ep->next_free);
		rp__st_add(&rp__st_closed, &ep->st);
		memset(&ep->st, 0, sizeof(ep->st));
		/*
		 * A new lock for a new instance: nobody takes this one with
		 * refs at 0 (rp__ep_tryget). An inner instance of before may
		 * be an outer one now, and ThreadSanitizer would take the
		 * old lock order for the new one's (a lock-order inversion
		 * that cannot deadlock).
		 */
		pthread_mutex_destroy(&ep->lock);
		pthread_mutex_init(&ep->lock, NULL);
		ep->handoff = false;
	} else {
		uint32_t n = rp__ep_count(), c = n >> RP__ALL_SHIFT;
		struct rp__ep **chunk = NULL;

		if (c < RP__ALL_CHUNKS) {
			chunk = atomic_load(&rp__ep_all[c]);
			if (!chunk) {
				chunk = calloc(RP__ALL_CHUNK, sizeof(*chunk));
				atomic_store_explicit(&rp__ep_all[c], chunk,
						      memory_order_release);
			}
		}
		ep = chunk ? calloc(1, sizeof(*ep)) : NULL;
		if (ep) {
			pthread_mutex_init(&ep->lock, NULL);
			rp__ep_cond_init(&ep->handoff_cv);
			chunk[n & (RP__ALL_CHUNK - 1)] = ep;
			atomic_store_explicit(&rp__ep_nall, n + 1,
					      memory_order_release);
		}
	}
	pthread_mutex_unlock(&rp__tab_lock);
	return ep;
}

/* After fork only this thread is left: locks held by others are void. */
static void rp__atfork_child(void)
{
	atomic_fetch_add(&rp__ep_fork_gen, 1);
	pthread_mutex_init(&rp__tab_lock, NULL);
	pthread_mutex_init(&rp__nest_lock, NULL);
	/* The counters are the parent's: the child reports its own. */
	memset(&rp__st_closed, 0, sizeof(rp__st_closed));
	for (uint32_t i = 0; i < rp__ep_count(); i++) {
		struct rp__ep *ep = rp__ep_nth(i);

		pthread_mutex_init(&ep->lock, NULL);
		rp__ep_cond_init(&ep->handoff_cv);
		ep->handoff = false;
		ep->waiters = 0;
		memset(&ep->st, 0, sizeof(ep->st));
	}
	rp__held = 0;
	/* The child's one thread has an id of its own. */
	rp__tid_cache = 0;
	/*
	 * Completion sockets are the parent's: their buffers and requests
	 * stay there. The child's numbers are plain sockets again.
	 */
	if (rp__cs_on)
		rp__cs_forget_all();
}

void rp__cs_forget_all(void)
{
	for (uint32_t c = 0; c < RP__TAB_CHUNKS; c++) {
		struct rp__fdent *chunk = atomic_load(&rp__tab[c]);

		for (uint32_t i = 0; chunk && i < RP__TAB_CHUNK; i++) {
			struct rp__cs *cs = atomic_exchange(&chunk[i].cs, NULL);

			/* The parent's stand-ins: our copies go. */
			if (cs && atomic_load(&rp__cs_carries))
				rp__cs_carry_child(cs);
		}
	}
}

struct rp__cs *rp__cs_lock(int fd, struct rp__ep **epp)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__cs *cs;
	struct rp__ep *ep;

	if (!e)
		return NULL;
	cs = atomic_load_explicit(&e->cs, memory_order_acquire);
	if (!cs)
		return NULL;
	if (atomic_load(&cs->live)) {
		ep = atomic_load(&cs->ep);
		if (!ep || !rp__ep_tryget(ep))
			return NULL;
		rp__ep_lock(ep);
		if (atomic_load(&e->cs) == cs && atomic_load(&cs->live) &&
		    atomic_load(&cs->ep) == ep && !ep->dead) {
			*epp = ep;
			return cs;
		}
		/* Closed, recycled, or its instance went: an orphan now? */
		rp__ep_unlock(ep);
		rp__ep_put(ep);
	}
	if (!atomic_load(&cs->orphan))
		return NULL;
	pthread_mutex_lock(&rp__cs_orphan_lock);
	if (atomic_load(&e->cs) == cs && atomic_load(&cs->orphan)) {
		*epp = NULL;
		return cs;
	}
	pthread_mutex_unlock(&rp__cs_orphan_lock);
	return NULL;
}

void rp__cs_unlock(struct rp__ep *ep)
{
	if (!ep) {
		pthread_mutex_unlock(&rp__cs_orphan_lock);
		return;
	}
	/* A sleeping owner submits what this call queued. */
	if (ep->waiters && rp__ring_unsubmitted(&ep->ring))
		rp__ep_wake(ep);
	rp__ep_unlock(ep);
	rp__ep_put(ep);
}

void rp__cs_dup(int oldfd, int newfd)
{
	struct rp__fdent *e;
	struct rp__cs *cs;
	struct rp__ep *ep;
	bool cmsg = false;

	if (oldfd == newfd)
		return;
	/* The number newfd named before is gone: dup2 closed it. */
	rp__cs_fresh(newfd);
	if ((e = rp__fdent(oldfd, true))) {
		atomic_store(&e->dupped, true);
		cmsg = atomic_load(&e->cmsg);
	}
	if ((e = rp__fdent(newfd, true))) {
		atomic_store(&e->dupped, true);
		atomic_store(&e->cmsg, cmsg);
	}
	if (!(cs = rp__cs_lock(oldfd, &ep)))
		return;
	/*
	 * An orphan too: the new number reads what it still holds first
	 * (the sock fuzzer, seed 2120: a read through the dup went to the
	 * kernel's socket past them), then is the kernel's socket.
	 */
	e = rp__fdent(newfd, true);
	if (e) {
		rp__cs_get_fd(cs);
		atomic_store(&e->cs, cs);
	}
	rp__cs_unlock(ep);
}

/*
 * fd no longer names its completion socket, if it named one: closing, it
 * is about to be closed (the last number resets a connection with bytes
 * unread); else it was closed long ago behind our back and now names
 * another file.
 */
static void rp__cs_forget(int fd, struct rp__fdent *e, bool closing)
{
	struct rp__cs *cs;
	struct rp__ep *ep;

	/* Under the lock that guards it: no read of it is halfway. */
	cs = rp__cs_lock(fd, &ep);
	if (!cs) {
		atomic_store(&e->cs, NULL);
		return;
	}
	atomic_store(&e->cs, NULL);
	if (closing)
		rp__cs_closing(cs, ep, fd);
	rp__cs_put_fd(cs);
	rp__cs_unlock(ep);
}

bool rp__reg_alone(struct rp__ep *ep, int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__ep *x;
	struct rp__cs *cs;
	unsigned n;

	if (!e)
		return true;
	/*
	 * A completion socket of another instance: it leaves the mode there
	 * (both instances must see the kernel's readiness), and this ADD
	 * is a plain one.
	 */
	cs = atomic_load(&e->cs);
	if (cs && atomic_load(&cs->live) && (x = atomic_load(&cs->ep)) &&
	    x != ep && rp__ep_tryget(x)) {
		rp__ep_lock(x);
		if (atomic_load(&cs->live) && atomic_load(&cs->ep) == x &&
		    !x->dead)
			rp__ep_cs_drop(x, cs);
		rp__ep_unlock(x);
		rp__ep_put(x);
		return false;
	}
	n = atomic_load(&e->nreg);
	/*
	 * nreg counts since the last close we saw: after a close behind
	 * our back (libuv's) it counts registrations of the old file, so
	 * when it says "maybe", ask the instances.
	 */
	if (!n || (n == 1 && atomic_load(&e->one) == ep))
		return true;
	for (uint32_t i = 0; i < rp__ep_count(); i++) {
		struct rp__ep *x = rp__ep_nth(i);
		struct rp__ep_item *it;
		bool used;

		if (x == ep || !rp__ep_tryget(x))
			continue;
		rp__ep_lock(x);
		it = x->dead ? NULL : rp__ep_item(x, fd);
		used = it && (it->flags & RP__EPI_USED);
		rp__ep_unlock(x);
		rp__ep_put(x);
		if (used)
			return false;
	}
	return true;
}

bool rp__cs_holds(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__cs *cs = e ? atomic_load(&e->cs) : NULL;

	/* A racy read of rx_len: a hint (see rp__ep_cs_held). */
	return cs && (atomic_load(&cs->live) || atomic_load(&cs->orphan)) &&
	       __atomic_load_n(&cs->rx_len, __ATOMIC_RELAXED);
}

void rp__cs_check(int fd, const struct stat *st)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__cs *cs;

	if (e && (cs = atomic_load(&e->cs)) &&
	    (!S_ISSOCK(st->st_mode) || cs->ino != st->st_ino))
		rp__cs_forget(fd, e, false);
}

bool rp__cs_drop_orphan(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__cs *cs;
	bool dropped = false;

	if (!e)
		return true;
	pthread_mutex_lock(&rp__cs_orphan_lock);
	cs = atomic_load(&e->cs);
	if (!cs) {
		dropped = true;
	} else if (atomic_load(&cs->orphan) && !cs->rx_len && !cs->tx_len) {
		atomic_store(&e->cs, NULL);
		rp__cs_put_fd(cs);
		dropped = true;
	}
	pthread_mutex_unlock(&rp__cs_orphan_lock);
	return dropped;
}

void rp__cs_fresh(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);

	if (e) {
		atomic_store(&e->dupped, false);
		atomic_store(&e->cmsg, false);
		rp__ep_off_forget(e);
	}
	if (e && atomic_load_explicit(&e->cs, memory_order_relaxed))
		rp__cs_forget(fd, e, false);
}

/* Under rp__tab_lock. */
static void rp__st_sum(struct rp_epoll_stats *st)
{
	*st = rp__st_closed;
	/* Closed ones too: their counters stay until the struct is reused. */
	for (uint32_t i = 0; i < rp__ep_count(); i++)
		rp__st_add(st, &rp__ep_nth(i)->st);
}

void rp__st_total(struct rp_epoll_stats *st)
{
	pthread_mutex_lock(&rp__tab_lock);
	rp__st_sum(st);
	pthread_mutex_unlock(&rp__tab_lock);
}

/* Instances made on io_uring in this process (the stats' backend). */
atomic_uint rp__rings_made;
static bool rp__stats;

/*
 * RINGPOLL_STATS=1: one line of key=value pairs on stderr when the process
 * exits, as rpbench's rpbench-stats line, with the same names where they
 * mean the same (waits, ctls, enters, ctl_syscalls). Every process that
 * loaded the library says one, backend=none when it used no epoll.
 *
 * kernel_epoll_syscalls is what the kernel's epoll would have made for the
 * same calls (one per wait, one per ctl); ringpoll_syscalls is what ours
 * made (io_uring_enter, the poll(2) confirming candidates, and the ctl
 * path's fstat, inline submits and wakes). Either may be the larger: ADDs
 * cost an fstat, while waits that find their events ready in the ring and
 * ctls queued as SQEs cost nothing.
 */
void rp__st_report(bool any_context)
{
	static atomic_int said;
	struct rp_epoll_stats st;
	const char *backend;
	char prog[32], line[768];
	int n;

	if (!rp__stats || atomic_exchange(&said, 1))
		return;
	/*
	 * From _exit, perhaps in a signal handler that interrupted a holder
	 * of the lock: say nothing rather than hang.
	 */
	if (!any_context)
		pthread_mutex_lock(&rp__tab_lock);
	else if (pthread_mutex_trylock(&rp__tab_lock) != 0)
		return;
	rp__st_sum(&st);
	pthread_mutex_unlock(&rp__tab_lock);
	if (atomic_load(&rp__rings_made))
		backend = st.fallbacks ? "mixed" : "io_uring";
	else
		backend = st.fallbacks ? "epoll" : "none";
	n = snprintf(line, sizeof(line),
		     "ringpoll-stats pid=%d prog=%s backend=%s waits=%llu "
		     "ctls=%llu enters=%llu ctl_syscalls=%llu polls=%llu "
		     "events=%llu rearms=%llu confirms=%llu "
		     "stale_dropped=%llu stale_cqes=%llu mods_in_place=%llu "
		     "fallbacks=%llu kernel_epoll_syscalls=%llu "
		     "ringpoll_syscalls=%llu\n",
		     (int)getpid(), rp__prog(prog, sizeof(prog)), backend,
		     (unsigned long long)st.waits, (unsigned long long)st.ctls,
		     (unsigned long long)st.enters,
		     (unsigned long long)st.ctl_syscalls,
		     (unsigned long long)st.polls,
		     (unsigned long long)st.events,
		     (unsigned long long)st.rearms,
		     (unsigned long long)st.confirms,
		     (unsigned long long)st.stale_dropped,
		     (unsigned long long)st.stale_cqes,
		     (unsigned long long)st.mods_in_place,
		     (unsigned long long)st.fallbacks,
		     (unsigned long long)(st.waits + st.ctls),
		     (unsigned long long)(st.enters + st.ctl_syscalls +
					  st.polls));
	/* The completion mode's counters, only where it is on. */
	if (n > 0 && rp__cs_on && (size_t)n < sizeof(line))
		n += snprintf(line + n - 1, sizeof(line) - (size_t)n + 1,
			      " cs_sockets=%lu cs_declined=%lu cs_reverted=%lu"
			      " cs_rx_bytes=%lu cs_tx_bytes=%lu cs_reads=%lu"
			      " cs_writes=%lu cs_syscalls=%lu\n",
			      atomic_load(&rp__cs_st.sockets),
			      atomic_load(&rp__cs_st.declined),
			      atomic_load(&rp__cs_st.reverted),
			      atomic_load(&rp__cs_st.rx_bytes),
			      atomic_load(&rp__cs_st.tx_bytes),
			      atomic_load(&rp__cs_st.reads),
			      atomic_load(&rp__cs_st.writes),
			      atomic_load(&rp__cs_st.syscalls)) -
		     1;
	/* One write(2), not stdio: no lock, and lines of processes apart. */
	if (n > 0 && write(STDERR_FILENO, line,
			   (size_t)n < sizeof(line) ? (size_t)n :
						      sizeof(line) - 1) < 0)
		return;
}

static void rp__st_atexit(void)
{
	rp__st_report(false);
}

/* See rp__ep_cancel_all: files must not outlive the process. */
static void rp__epoll_exit(void)
{
	for (uint32_t i = 0; i < rp__ep_count(); i++) {
		struct rp__ep *ep = rp__ep_nth(i);

		/* Not waited for: another thread may be inside, or stuck. */
		if (!atomic_load(&ep->refs) || rp__ep_inherited(ep) ||
		    pthread_mutex_trylock(&ep->lock) != 0)
			continue;
		if (!ep->dead)
			rp__ep_cancel_all(ep);
		pthread_mutex_unlock(&ep->lock);
	}
}

__attribute__((constructor)) static void rp__epoll_init(void)
{
	atexit(rp__epoll_exit);
	rp__disable = rp__env_on("RINGPOLL_DISABLE");
	rp__debug = rp__env_on("RINGPOLL_DEBUG");
	pthread_atfork(NULL, NULL, rp__atfork_child);
	rp__stats = rp__env_on("RINGPOLL_STATS");
	rp__cs_on = rp__env_on("RINGPOLL_COMPLETION") && !rp__disable;
	if (rp__stats)
		atexit(rp__st_atexit);
}

static void rp__close_registered(int fd, struct rp__fdent *e);

/*
 * The kernel gave out a number that the table says is an instance, or an
 * io_uring_enter on it said it is no ring: the instance's fd was closed
 * behind our back (syscall(SYS_close), close_range inside libc) and the
 * number now names another file, or none. Forget the instance without
 * touching the number: no close, no enter, no poll. The old ring lives on
 * in our mappings only, while a sleeper may still read them; the last
 * reference unmaps it (ring_fd -1: rp__ring_exit closes nothing), and the
 * kernel frees it with its polls.
 */
void rp__drop_stale(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__ep *ep;

	if (!e)
		return;
	ep = atomic_exchange(&e->ep, NULL);
	if (atomic_load(&e->nreg))
		rp__close_registered(fd, e);
	if (!ep)
		return;
	rp__debug_once("an instance's fd was closed behind ringpoll's back "
		       "(a raw close); its number is another file's now",
		       EBADF);
	rp__ep_lock(ep);
	ep->dead = true;
	ep->ring.uring.ring_fd = -1;
	ep->ring.enter_fd = -1;
	rp__ep_unlock(ep);
	rp__ep_put(ep); /* the table's reference */
}

int rp__ep_go_kernel(struct rp__ep *ep)
{
	struct rp__fdent *e = rp__fdent(ep->fd, false);
	struct rp__ep *self = ep;
	int err;

	if (ep->dead)
		return ep->moved ? RP__EP_MOVED : -EBADF;
	/* Completion sockets: their owner, if it sleeps in the ring. */
	if (rp__unlikely(ep->cs.nsock) && ep->waiters && rp__ep_handoff(ep))
		return ep->moved ? RP__EP_MOVED : -EBADF;
	err = rp__ep_to_kernel(ep);
	if (err < 0) {
		rp__debug_once("no kernel epoll for an instance that another "
			       "thread must enter",
			       -err);
		return err;
	}
	ep->st.fallbacks++;
	ep->dead = true;
	ep->moved = true;
	if (e)
		atomic_store(&e->kernel_ep, true);
	/* Sleepers in the old ring wake, and wait on in the kernel's. */
	if (ep->waiters)
		rp__ep_wake(ep);
	if (e && atomic_compare_exchange_strong(&e->ep, &self, NULL))
		rp__ep_put(ep); /* the table's; the caller holds another */
	return RP__EP_MOVED;
}

int rp__fresh_fd(int fd)
{
	struct rp__fdent *e = fd >= 0 ? rp__fdent(fd, false) : NULL;

	/*
	 * Not in a handler that interrupted a holder of an instance lock
	 * (the forgetting takes them): what is stale stays, as after a
	 * close nobody saw.
	 */
	if (!e || rp__unlikely(rp__held))
		return fd;
	if (rp__unlikely(atomic_load(&e->ep) || atomic_load(&e->nreg)))
		rp__drop_stale(fd);
	rp__cs_fresh(fd);
	return fd;
}

int rp__kernel_create(int flags)
{
	long ret = syscall(SYS_epoll_create1, flags);

	return ret < 0 ? -errno : rp__fresh_fd((int)ret);
}

/* See epreg.h. */
int rp__ep_create(int flags)
{
	struct rp__fdent *e;
	struct rp__ep *ep;
	int ret;

	if (rp__disable) {
		rp__debug_once("RINGPOLL_DISABLE=1", 0);
		pthread_mutex_lock(&rp__tab_lock);
		rp__st_closed.fallbacks++;
		pthread_mutex_unlock(&rp__tab_lock);
		return rp__kernel_create(flags);
	}
	ep = rp__ep_alloc();
	if (!ep)
		return -ENOMEM;
	ret = rp__ep_init(ep, flags);
	if (ret < 0) {
		/*
		 * No ring for this instance: no io_uring here (old kernel,
		 * disabled, seccomp), or no locked memory left for it
		 * (RLIMIT_MEMLOCK, per user). The kernel's epoll has no such
		 * limit. Out of fds, the kernel fails as we did.
		 */
		rp__ep_recycle(ep);
		rp__debug_once(ret == -ENOMEM ?
				       "io_uring_setup failed, locked memory "
				       "(ulimit -l) used up?" :
				       "io_uring_setup failed",
			       -ret);
		pthread_mutex_lock(&rp__tab_lock);
		rp__st_closed.fallbacks++;
		pthread_mutex_unlock(&rp__tab_lock);
		return rp__kernel_create(flags);
	}
	rp__fresh_fd(ep->fd);
	e = rp__fdent(ep->fd, true);
	if (!e) {
		atomic_store(&ep->refs, 1);
		rp__ep_put(ep);
		return -ENOMEM;
	}
	atomic_store(&ep->refs, 1); /* the table's reference */
	atomic_store_explicit(&e->ep, ep, memory_order_release);
	atomic_fetch_add(&rp__rings_made, 1);
	rp__debug_ring(ep);
	return ep->fd;
}

/*
 * Is fd (whose stat is st) this instance's ring under another number, a
 * dup of the epoll fd? The kernel refuses a file in itself (EINVAL). Only
 * an anonymous inode can be one. Recent kernels give each ring an inode
 * of its own; older ones share one among all anonymous files (eventfd,
 * timerfd...): kcmp(2) tells. Off the hot path: ADD, or a ctl on an fd
 * that is not registered.
 */
bool rp__same_ring(struct rp__ep *ep, int fd, const struct stat *st,
		   uint64_t *calls)
{
	struct stat ring, anon;
	pid_t pid;
	long ret;
	int afd;

	if (fd == ep->fd)
		return true;
	if ((st->st_mode & S_IFMT) != 0)
		return false;
	(*calls)++;
	if (fstat(ep->fd, &ring) < 0 || ring.st_ino != st->st_ino ||
	    ring.st_dev != st->st_dev)
		return false;
	pid = getpid();
	(*calls)++;
	ret = syscall(SYS_kcmp, pid, pid, KCMP_FILE, fd, ep->fd);
	if (ret >= 0)
		return ret == 0;
	/*
	 * No kcmp (a seccomp filter, CONFIG_KCMP off): the same inode is the
	 * same ring where rings do not share the anonymous inode. A moment's
	 * eventfd tells (off the hot path; an instance keeps no second fd).
	 */
	(*calls) += 3;
	afd = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC);
	if (afd < 0)
		return false;
	ret = fstat(afd, &anon) == 0 && anon.st_ino != ring.st_ino;
	rp__sys_close(afd);
	return ret;
}

/* Is ep still in the table, but its fd no ring of ours (rp__wait)? */
bool rp__ep_stale(struct rp__ep *ep)
{
	struct rp__fdent *e = rp__fdent(ep->fd, false);
	bool dead;

	rp__ep_lock(ep);
	dead = ep->dead;
	rp__ep_unlock(ep);
	return !dead && e && atomic_load(&e->ep) == ep;
}

/* Closes an instance: its fd number is free when this returns. */
static int rp__close_ep(struct rp__ep *ep, struct rp__fdent *e)
{
	int fd = ep->fd, ret = 0;

	rp__ep_lock(ep);
	/*
	 * Made the kernel's epoll since the caller found it: the table's
	 * reference is gone, and the number is a plain fd to close.
	 */
	if (ep->dead) {
		rp__ep_unlock(ep);
		return RP__EP_MOVED;
	}
	/*
	 * Sleepers first, while the FUTEX_WAIT that wakes them is armed:
	 * they find the instance dead when they get the lock.
	 */
	if (ep->waiters)
		rp__ep_wake(ep);
	/*
	 * The kernel cancels a closed ring's polls later, in its exit work:
	 * until then they would hold their files. Cancel them now (only
	 * the ring's owner can: for another thread, the exit work will).
	 */
	rp__ep_cancel_all(ep);
	atomic_store(&e->ep, NULL);
	ep->dead = true;
	if (ep->waiters || atomic_load(&ep->refs) > 2) {
		/*
		 * Other threads are in the instance (asleep on the ring, or
		 * in a ctl), woken above. A sleeper
		 * holds the ring's file while in io_uring_enter, and our
		 * mappings keep it until the last user lets go; nobody may
		 * enter it by number again (enter_fd is read under the
		 * lock), so the number goes now, as close(2) would, and the
		 * close needs no fd of its own.
		 */
		ep->ring.uring.ring_fd = -1;
		ep->ring.enter_fd = -1;
		ret = (int)syscall(SYS_close, fd);
	}
	rp__ep_unlock(ep);
	rp__ep_put(ep); /* the table's reference */
	return ret;
}

/*
 * In a forked child the ring is the parent's: build our own, or, if that
 * cannot be (no fd, no locked memory, a seccomp filter since the fork),
 * put the kernel's epoll in its place with the same registrations and
 * forget the instance: every later call goes to the kernel. False if the
 * instance is not ours to use (then the caller passes the call on to the
 * kernel, which fails it: the fd is still the parent's ring, not entered).
 */
static bool rp__ep_check_fork(struct rp__ep *ep, struct rp__fdent *e)
{
	bool ours = true, gone = false;
	int ret;

	rp__ep_lock(ep);
	if (ep->dead && rp__ep_inherited(ep)) {
		ours = false;
	} else if (rp__ep_inherited(ep)) {
		ret = rp__ep_rebuild(ep);
		if (ret < 0) {
			int err = rp__ep_to_kernel(ep);

			if (err == 0) {
				rp__debug_once("no ring for an instance "
					       "in a forked child",
					       -ret);
				ep->st.fallbacks++;
				atomic_store(&e->ep, NULL);
				ep->dead = true;
				gone = true;
			} else {
				rp__debug_once("no ring and no kernel epoll "
					       "for an instance in a forked "
					       "child",
					       -err);
			}
			ours = false;
		}
	}
	rp__ep_unlock(ep);
	if (gone)
		rp__ep_put(ep); /* the table's reference */
	return ours;
}

/* Forgets fd in ep, whose lock is held, before fd's real close. */
static void rp__ep_forget_fd(struct rp__ep *ep, int fd)
{
	if (ep->dead)
		return;
	/*
	 * An instance inherited through fork and not used since: its ring
	 * is the parent's, so only the table forgets the fd.
	 */
	if (rp__ep_inherited(ep)) {
		rp__ep_del(ep, fd, true);
		return;
	}
	/*
	 * -ENOENT: fd is not (or no longer) registered here. With no remove
	 * waiting to be submitted either, this instance holds nothing of fd's:
	 * leave it alone. (A close walks every instance when fd's count of
	 * registrations says more than one, which a DEL and an ADD again
	 * make; moving another thread's instance to the kernel's epoll for
	 * nothing cost memcached's workers their rings.)
	 */
	if (rp__ep_del(ep, fd, false) == -ENOENT && !ep->ring.removes_queued)
		return;
	/*
	 * A cancelled poll (now, or by an earlier DEL whose remove is still
	 * queued) holds the file: let the kernel drop it now, so that a
	 * socket sends its FIN. Only the ring's owner can: asleep in a
	 * wait, it is woken to; away, it cannot, and the instance becomes
	 * the kernel's epoll, which drops what it no longer polls at once.
	 * A ring nobody owns yet has submitted nothing.
	 */
	if (rp__unlikely(rp__ring_own(&ep->ring, false) < 0)) {
		if (!ep->ring.owner)
			return;
		if (ep->waiters)
			rp__ep_wake(ep);
		else
			rp__ep_go_kernel(ep);
		return;
	}
	rp__ep_drop_removed(ep);
}

/* Forgets fd in every instance that has it, before the real close. */
static void rp__close_registered(int fd, struct rp__fdent *e)
{
	/*
	 * One instance at a time, no allocation (a child between fork and
	 * exec cannot afford one) and no table lock (we may be in a signal
	 * handler that interrupted its holder).
	 */
	struct rp__ep *one = atomic_load(&e->one);
	uint32_t n = rp__ep_count();

	if (atomic_load(&e->nreg) != 1)
		one = NULL;
	for (uint32_t i = 0; i < n; i++) {
		struct rp__ep *ep = one ? one : rp__ep_nth(i);

		if (rp__ep_tryget(ep)) {
			rp__ep_lock(ep);
			rp__ep_forget_fd(ep, fd);
			rp__ep_unlock(ep);
			rp__ep_put(ep);
		}
		if (one)
			break;
	}
	atomic_store(&e->nreg, 0);
	atomic_store(&e->one, NULL);
}

__thread unsigned rp__held __attribute__((tls_model("initial-exec")));
atomic_bool rp__pending_any;

/*
 * A close in a signal handler that interrupted this thread inside an
 * instance (rp__held): no lock is taken. fd goes on the pending list of
 * every live instance, and the holder of each lock forgets it before the
 * number can be registered again (an ADD takes the lock first). The
 * caller closes fd at once. Returns 1 if fd is an instance: its own
 * close waits for the thread that holds it (rp__ep_pending_late), and the
 * number stays open until then.
 */
static int rp__defer_close(int fd, struct rp__fdent *e)
{
	struct rp__ep *ep;

	if (atomic_load(&e->nreg)) {
		for (uint32_t i = 0; i < rp__ep_count(); i++) {
			struct rp__ep *x = rp__ep_nth(i);
			unsigned slot;

			if (!atomic_load(&x->refs))
				continue;
			slot = atomic_fetch_add(&x->npend, 1);
			if (slot < RP__EP_PEND)
				atomic_store(&x->pend[slot], fd + 1);
			else
				atomic_store(&x->pend_scan, true);
		}
		atomic_store(&e->nreg, 0);
		atomic_store(&rp__pending_any, true);
	}
	ep = atomic_load(&e->ep);
	if (!ep)
		return 0;
	atomic_store(&ep->close_pending, true);
	atomic_store(&rp__pending_any, true);
	return 1;
}

/* Forgets the registered fds that are closed: pending slots ran out. */
static void rp__ep_forget_closed(struct rp__ep *ep)
{
	for (uint32_t c = 0; c < ep->nchunks; c++) {
		for (uint32_t i = 0; ep->chunks[c] && i < RP__EP_CHUNK; i++) {
			int fd = (int)(c * RP__EP_CHUNK + i);

			if ((ep->chunks[c][i].flags & RP__EPI_USED) &&
			    !rp__fd_valid(fd))
				rp__ep_forget_fd(ep, fd);
		}
	}
}

void rp__ep_pending(struct rp__ep *ep)
{
	unsigned n, done = 0;

	for (;;) {
		n = atomic_load(&ep->npend);
		for (; done < n && done < RP__EP_PEND; done++) {
			int v;

			/* A handler elsewhere may be between its two steps. */
			while (!(v = atomic_exchange(&ep->pend[done], 0)))
				sched_yield();
			rp__ep_forget_fd(ep, v - 1);
		}
		if (atomic_compare_exchange_strong(&ep->npend, &n, 0))
			break;
	}
	if (atomic_exchange(&ep->pend_scan, false))
		rp__ep_forget_closed(ep);
}

static int rp__close_ep(struct rp__ep *ep, struct rp__fdent *e);

void rp__ep_pending_late(struct rp__ep *ep)
{
	if (rp__ep_has_pending(ep)) {
		rp__ep_lock(ep);
		rp__ep_unlock(ep);
	}
	if (atomic_exchange(&ep->close_pending, false)) {
		struct rp__fdent *e = rp__fdent(ep->fd, false);

		/* As rp__forget does: the last reference closes the ring. */
		if (e && atomic_load(&e->ep) == ep && rp__ep_tryget(ep)) {
			if (rp__close_ep(ep, e) == RP__EP_MOVED)
				rp__sys_close(ep->fd);
			rp__ep_put(ep);
		}
	}
	if (rp__held || !atomic_exchange(&rp__pending_any, false))
		return;
	/* Instances nobody has locked since a handler left them work. */
	for (uint32_t i = 0; i < rp__ep_count(); i++) {
		struct rp__ep *x = rp__ep_nth(i);

		if (x == ep || !(rp__ep_has_pending(x) ||
				 atomic_load(&x->close_pending)) ||
		    !rp__ep_tryget(x))
			continue;
		rp__ep_pending_late(x);
		rp__ep_put(x);
	}
}

/*
 * Closing an instance inherited through fork and never used since: no
 * ring is built for it (a child about to exec closes everything), no
 * allocation, no access to the parent's ring. The struct stays allocated
 * in this process; the caller closes the fd.
 */
static void rp__drop_inherited(struct rp__ep *ep, struct rp__fdent *e)
{
	rp__ep_lock(ep);
	atomic_store(&e->ep, NULL);
	ep->dead = true;
	rp__ring_forget(&ep->ring);
	rp__ep_unlock(ep);
}

int rp__forget(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__ep *ep;
	int ret;

	if (!e)
		return 0;
	if (atomic_exchange(&e->kernel_ep, false))
		rp__ep_off_forget_ep(fd);
	if (rp__unlikely(rp__held))
		return rp__defer_close(fd, e);
	/* An instance nested in others leaves them first. */
	if (atomic_load(&e->nreg))
		rp__close_registered(fd, e);
	/*
	 * Then the completion socket the number names: after its
	 * registrations, which point at it until their DEL.
	 */
	if (rp__unlikely(atomic_load_explicit(&e->cs, memory_order_relaxed)))
		rp__cs_forget(fd, e, true);
	atomic_store(&e->dupped, false);
	atomic_store(&e->cmsg, false);
	rp__ep_off_forget(e);
	ep = atomic_load(&e->ep);
	if (ep && rp__ep_inherited(ep)) {
		rp__drop_inherited(ep, e);
		return 0;
	}
	ep = rp__ep_get(fd);
	if (!ep)
		return 0;
	ret = rp__close_ep(ep, e);
	rp__ep_put(ep);
	if (ret == RP__EP_MOVED)
		return 0;
	return ret < 0 ? -1 : 1;
}

void rp__forget_range(unsigned first, unsigned last)
{
	unsigned end = RP__TAB_CHUNKS * RP__TAB_CHUNK - 1;

	if (last > end)
		last = end;
	for (unsigned fd = first; fd <= last && fd >= first; fd++) {
		/* Whole chunks nobody has touched hold nothing to forget. */
		if (!atomic_load(&rp__tab[fd >> RP__TAB_SHIFT])) {
			fd |= RP__TAB_CHUNK - 1;
			continue;
		}
		rp__forget((int)fd);
	}
}
