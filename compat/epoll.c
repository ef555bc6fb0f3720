/* SPDX-License-Identifier: MIT */
/*
 * rp_epoll_*: the epoll boundary. Checks arguments in the kernel's order,
 * finds the instance behind an fd, passes fds that are not ours to the
 * kernel, and turns -errno into -1/errno once, here.
 *
 * The kernel is called with syscall(2), not through libc's epoll_* and
 * close: under the preload those names are ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

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
};

static _Atomic(struct rp__fdent *) rp__tab[RP__TAB_CHUNKS];
/* Taken to make an instance, never on the way of a close. */
static pthread_mutex_t rp__tab_lock = PTHREAD_MUTEX_INITIALIZER;
/*
 * ADDs of an instance, one at a time: such an ADD takes two instance
 * locks (rp__ctl makes both the kernel's epoll), and two threads putting
 * A in B and B in A would take them in opposite orders. The kernel's
 * ADD that follows checks ELOOP itself. Taken before any ep->lock.
 */
static pthread_mutex_t rp__nest_lock = PTHREAD_MUTEX_INITIALIZER;
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

/* epoll's limit on maxevents (EP_MAX_EVENTS). */
#define RP__EP_MAX_EVENTS (INT_MAX / (int)sizeof(struct epoll_event))

static int rp__fail(int ret)
{
	errno = -ret;
	return -1;
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

static struct rp__fdent *rp__fdent(int fd, bool make)
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
		ep->waiters = 0;
		memset(&ep->st, 0, sizeof(ep->st));
	}
	rp__held = 0;
	/* The child's one thread has an id of its own. */
	rp__tid_cache = 0;
}

/* Under rp__tab_lock. */
static void rp__st_sum(struct rp_epoll_stats *st)
{
	*st = rp__st_closed;
	/* Closed ones too: their counters stay until the struct is reused. */
	for (uint32_t i = 0; i < rp__ep_count(); i++)
		rp__st_add(st, &rp__ep_nth(i)->st);
}

static void rp__st_total(struct rp_epoll_stats *st)
{
	pthread_mutex_lock(&rp__tab_lock);
	rp__st_sum(st);
	pthread_mutex_unlock(&rp__tab_lock);
}

/* Instances made on io_uring in this process (the stats' backend). */
static atomic_uint rp__rings_made;
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
	char prog[32], line[512];
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
static void rp__drop_stale(int fd)
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

/* A number fresh from the kernel is nobody's instance (rp__drop_stale). */
static int rp__fresh_fd(int fd)
{
	struct rp__fdent *e = fd >= 0 ? rp__fdent(fd, false) : NULL;

	if (rp__unlikely(e && (atomic_load(&e->ep) || atomic_load(&e->nreg))))
		rp__drop_stale(fd);
	return fd;
}

static int rp__kernel_create(int flags)
{
	long ret = syscall(SYS_epoll_create1, flags);

	return ret < 0 ? -errno : rp__fresh_fd((int)ret);
}

RP_EXPORT int rp_epoll_create1(int flags)
{
	struct rp__fdent *e;
	struct rp__ep *ep;
	int ret;

	if (flags & ~EPOLL_CLOEXEC)
		return rp__fail(-EINVAL);
	if (rp__disable) {
		rp__debug_once("RINGPOLL_DISABLE=1", 0);
		pthread_mutex_lock(&rp__tab_lock);
		rp__st_closed.fallbacks++;
		pthread_mutex_unlock(&rp__tab_lock);
		ret = rp__kernel_create(flags);
		return ret < 0 ? rp__fail(ret) : ret;
	}
	ep = rp__ep_alloc();
	if (!ep)
		return rp__fail(-ENOMEM);
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
		ret = rp__kernel_create(flags);
		return ret < 0 ? rp__fail(ret) : ret;
	}
	rp__fresh_fd(ep->fd);
	e = rp__fdent(ep->fd, true);
	if (!e) {
		atomic_store(&ep->refs, 1);
		rp__ep_put(ep);
		return rp__fail(-ENOMEM);
	}
	atomic_store(&ep->refs, 1); /* the table's reference */
	atomic_store_explicit(&e->ep, ep, memory_order_release);
	atomic_fetch_add(&rp__rings_made, 1);
	rp__debug_ring(ep);
	return ep->fd;
}

RP_EXPORT int rp_epoll_create(int size)
{
	if (size <= 0)
		return rp__fail(-EINVAL);
	return rp_epoll_create1(0);
}

/*
 * Can the kernel's epoll watch fd? Sockets, pipes and anonymous inodes
 * (eventfd, timerfd, signalfd, epoll) always; for the rest (regular files
 * and directories mostly refuse, some character devices and proc files do
 * not) ask a kernel epoll instance: exact, and off the hot path.
 */
static int rp__pollable(int fd, struct stat *st)
{
	struct epoll_event ev = { 0 };
	int sfd, ret;

	if (fstat(fd, st) < 0)
		return -errno;
	switch (st->st_mode & S_IFMT) {
	case S_IFSOCK:
	case S_IFIFO:
	case 0:
		return 0;
	default:
		break;
	}
	/* Made and closed each time: the host never sees a hidden fd. */
	sfd = rp__kernel_create(EPOLL_CLOEXEC);
	if (sfd < 0)
		return sfd;
	ret = (int)syscall(SYS_epoll_ctl, sfd, EPOLL_CTL_ADD, fd, &ev);
	ret = ret < 0 ? -errno : 0;
	syscall(SYS_close, sfd);
	return ret;
}

/*
 * Is fd (whose stat is st) this instance's ring under another number, a
 * dup of the epoll fd? The kernel refuses a file in itself (EINVAL). Only
 * an anonymous inode can be one. Recent kernels give each ring an inode
 * of its own; older ones share one among all anonymous files (eventfd,
 * timerfd...): kcmp(2) tells. Off the hot path: ADD, or a ctl on an fd
 * that is not registered.
 */
static bool rp__same_ring(struct rp__ep *ep, int fd, const struct stat *st,
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
	afd = eventfd(0, EFD_CLOEXEC);
	if (afd < 0)
		return false;
	ret = fstat(afd, &anon) == 0 && anon.st_ino != ring.st_ino;
	rp__sys_close(afd);
	return ret;
}

static bool rp__fd_valid(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/* The EINVAL checks, which need no table: after EBADF and EPERM. */
static int rp__ctl_einval(struct rp__ep *ep, int op, int fd,
			  const struct epoll_event *ev)
{
	/* The kernel's EPOLLEXCLUSIVE_OK_BITS. */
	uint32_t ok = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP |
		      EPOLLET | EPOLLEXCLUSIVE;

	if (fd == ep->fd)
		return -EINVAL;
	if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) &&
	    (ev->events & EPOLLEXCLUSIVE)) {
		if (op == EPOLL_CTL_MOD)
			return -EINVAL;
		if ((ev->events & ~ok) || rp_epoll_is_ring(fd))
			return -EINVAL;
	}
	return 0;
}

static int rp__ctl(struct rp__ep *ep, int op, int fd, struct epoll_event *ev)
{
	struct rp__ep *child = NULL;
	struct rp__ep_item *it;
	struct rp__fdent *e;
	uint64_t ring0, st0, calls = 0;
	struct stat st;
	bool have_st = false;
	int ret = 0;

	/*
	 * The kernel's order: EBADF, EPERM, EINVAL, then the op's own. The
	 * table is read under ep->lock only: an ADD in another thread may
	 * grow it. The checks that cost syscalls are made outside the lock.
	 */
	if (op == EPOLL_CTL_ADD) {
		ret = rp__pollable(fd, &st);
		have_st = true;
		calls = 1;
		/* An instance goes in under rp__nest_lock (see there). */
		child = ret == 0 ? rp__ep_get(fd) : NULL;
		/*
		 * The table says fd is an instance; its file says whether it
		 * still is, or was closed behind our back and the number
		 * given to another file: then forget the instance, and the
		 * ADD is of that file.
		 */
		if (rp__unlikely(child && (st.st_dev != child->dev ||
					   st.st_ino != child->ino))) {
			rp__drop_stale(fd);
			rp__ep_put(child);
			child = NULL;
		}
		if (child)
			pthread_mutex_lock(&rp__nest_lock);
		rp__ep_lock(ep);
	} else {
		rp__ep_lock(ep);
		it = rp__ep_item(ep, fd);
		/*
		 * Registered means valid (closes go through rp_close): no
		 * syscall. Otherwise the op finds the fd as it is after the
		 * checks, as the kernel's looks it up after fdget.
		 */
		if (!it || !(it->flags & RP__EPI_USED)) {
			rp__ep_unlock(ep);
			ret = rp__fd_valid(fd) ? rp__pollable(fd, &st) : -EBADF;
			have_st = ret == 0;
			rp__ep_lock(ep);
		}
	}
	if (rp__unlikely(ep->moved)) {
		ret = RP__EP_MOVED;
		goto out;
	}
	if (ret == 0)
		ret = rp__ctl_einval(ep, op, fd, ev);
	/* A dup of our own fd: the kernel's "epfd == fd" (EINVAL). */
	if (ret == 0 && have_st && rp__same_ring(ep, fd, &st, &calls))
		ret = -EINVAL;
	ep->st.ctls++;
	ep->st.ctl_syscalls += calls;
	if (ret < 0)
		goto out;
	/*
	 * An instance in an instance: the inner one is polled by the outer
	 * one's ring, which cannot run the inner ring's completions. It
	 * becomes the kernel's epoll, whose readiness is exact, and is
	 * registered as any other file.
	 */
	/*
	 * An instance in an instance: the outer ring cannot run the inner
	 * ring's completions, and only the kernel knows how deep its own
	 * epolls nest. Both become the kernel's epoll, and the ADD is its.
	 */
	if (op == EPOLL_CTL_ADD &&
	    (child || ((e = rp__fdent(fd, false)) && atomic_load(&e->kernel_ep)))) {
		if (child) {
			rp__ep_lock(child);
			ret = rp__ep_go_kernel(child);
			rp__ep_unlock(child);
			if (ret != RP__EP_MOVED)
				goto out;
		}
		ret = rp__ep_go_kernel(ep);
		goto out;
	}
	ring0 = ep->ring.enters;
	st0 = ep->st.enters;
	switch (op) {
	case EPOLL_CTL_ADD:
		ret = rp__ep_add(ep, fd, ev);
		if (ret == 0 && (e = rp__fdent(fd, true)))
			atomic_store(&e->one, atomic_fetch_add(&e->nreg, 1) ?
						      NULL :
						      ep);
		break;
	case EPOLL_CTL_MOD:
		ret = rp__ep_mod(ep, fd, ev);
		break;
	case EPOLL_CTL_DEL:
		ret = rp__ep_del(ep, fd, false);
		/*
		 * Keep counting it until its close: the remove is only
		 * queued, and the close must hand it to the kernel.
		 */
		break;
	default:
		ret = -EINVAL;
		break;
	}
	if (ret == 0)
		rp__ep_ctl_done(ep);
	/* A full SQ handed to the kernel inline is this ctl's syscall. */
	ep->st.ctl_syscalls += (ep->ring.enters - ring0) -
			       (ep->st.enters - st0);
out:
	rp__ep_unlock(ep);
	if (child) {
		pthread_mutex_unlock(&rp__nest_lock);
		rp__ep_put(child);
	}
	return ret;
}

/*
 * An instance about to be registered in a kernel epoll (one that fell
 * back): that epoll would poll the ring, which is readable only while a
 * CQE sits there, and its epitem would hold the ring's file. The instance
 * becomes the kernel's epoll first, whose readiness is exact.
 */
static void rp__ep_pin(int fd)
{
	struct rp__ep *ep = rp__ep_get(fd);

	if (!ep)
		return;
	rp__ep_lock(ep);
	rp__ep_go_kernel(ep);
	rp__ep_unlock(ep);
	rp__ep_put(ep);
}

RP_EXPORT int rp_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct epoll_event ev;
	struct rp__ep *ep;
	int ret;

	/* Like the kernel, every op but DEL reads the event first. */
	if (op != EPOLL_CTL_DEL && !event)
		return rp__fail(-EFAULT);
	ep = rp__ep_get(epfd);
	if (!ep) {
		if (op == EPOLL_CTL_ADD)
			rp__ep_pin(fd);
		return (int)syscall(SYS_epoll_ctl, epfd, op, fd, event);
	}
	/* DEL never looks at the event: any pointer will do. */
	if (op == EPOLL_CTL_DEL) {
		memset(&ev, 0, sizeof(ev));
	} else if (!rp__ep_user(ep, event, sizeof(*event), false)) {
		rp__ep_put(ep);
		return rp__fail(-EFAULT);
	} else {
		ev = *event;
	}
	ret = rp__ctl(ep, op, fd, &ev);
	rp__ep_put(ep);
	/* The instance is the kernel's epoll now (rp__ep_go_kernel). */
	if (rp__unlikely(ret == RP__EP_MOVED))
		return (int)syscall(SYS_epoll_ctl, epfd, op, fd, event);
	return ret < 0 ? rp__fail(ret) : 0;
}

/* Is ep still in the table, but its fd no ring of ours (rp__wait)? */
static bool rp__ep_stale(struct rp__ep *ep)
{
	struct rp__fdent *e = rp__fdent(ep->fd, false);
	bool dead;

	rp__ep_lock(ep);
	dead = ep->dead;
	rp__ep_unlock(ep);
	return !dead && e && atomic_load(&e->ep) == ep;
}

/*
 * epoll_pwait2 on a kernel epoll. A ring this thread used is freed by
 * the kernel's io_uring exit work, which notifies every thread that
 * submitted to it (TWA_SIGNAL) some 15-25 ms later: a wait asleep then
 * fails with EINTR, no signal having come. Under a mask that blocks every
 * signal nothing else can interrupt it: wait on, for what is left of the
 * time (deadline, 0 for none).
 */
static int rp__kernel_wait(int fd, struct epoll_event *events, int maxevents,
			   int64_t timeout_ns, uint64_t deadline,
			   const sigset_t *sigmask)
{
	for (;;) {
		struct timespec ts;
		int ret;

		if (deadline) {
			uint64_t now = rp__now_ns();

			timeout_ns = now < deadline ?
					     (int64_t)(deadline - now) :
					     0;
		}
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		ret = (int)syscall(SYS_epoll_pwait2, fd, events, maxevents,
				   timeout_ns < 0 ? NULL : &ts, sigmask,
				   _NSIG / 8);
		if (ret >= 0 || errno != EINTR ||
		    rp__ep_signal_possible(sigmask))
			return ret;
	}
}

/* One lookup per wait: the caller found ep; this drops its reference. */
static int rp__wait(struct rp__ep *ep, struct epoll_event *events,
		    int maxevents, int64_t timeout_ns, const sigset_t *sigmask)
{
	uint64_t deadline = timeout_ns > 0 ?
				    rp__now_ns() + (uint64_t)timeout_ns :
				    0;
	int ret;

	/* The kernel reads the sigmask first, whether it sleeps or not. */
	if (sigmask && !rp__ep_user(ep, sigmask, _NSIG / 8, false))
		ret = -EFAULT;
	else if (maxevents <= 0 || maxevents > RP__EP_MAX_EVENTS)
		ret = -EINVAL;
	else
		ret = rp__ep_wait(ep, events, maxevents, timeout_ns, sigmask);
	/* The kernel's epoll now: it waits for what is left of the time. */
	if (rp__unlikely(ret == RP__EP_MOVED)) {
		int fd = ep->fd;

		rp__ep_put(ep);
		return rp__kernel_wait(fd, events, maxevents, timeout_ns,
				       deadline, sigmask);
	}
	/*
	 * Our ring never says EOPNOTSUPP, nor EBADF while it is open: the
	 * number was closed behind our back. Forget the instance, and give
	 * the call to the kernel as if we had never seen the number.
	 */
	if (rp__unlikely(ret == -EOPNOTSUPP || ret == -EBADF) &&
	    rp__ep_stale(ep)) {
		int fd = ep->fd;
		struct timespec ts = { timeout_ns / 1000000000,
				       timeout_ns % 1000000000 };

		rp__drop_stale(fd);
		rp__ep_put(ep);
		return (int)syscall(SYS_epoll_pwait2, fd, events, maxevents,
				    timeout_ns < 0 ? NULL : &ts, sigmask,
				    _NSIG / 8);
	}
	rp__ep_put(ep);
	return ret < 0 ? rp__fail(ret) : ret;
}

RP_EXPORT int rp_epoll_pwait(int epfd, struct epoll_event *events,
			     int maxevents, int timeout,
			     const sigset_t *sigmask)
{
	struct rp__ep *ep = rp__ep_get(epfd);

	if (!ep) {
		uint64_t start = timeout > 0 ? rp__now_ns() : 0;
		int ret = (int)syscall(SYS_epoll_pwait, epfd, events,
				       maxevents, timeout, sigmask, _NSIG / 8);

		if (rp__likely(ret >= 0 || errno != EINTR) ||
		    rp__ep_signal_possible(sigmask))
			return ret;
		/* No signal could come: see rp__kernel_wait. */
		return rp__kernel_wait(epfd, events, maxevents,
				       timeout < 0 ? -1 : 0,
				       start ? start + (uint64_t)timeout *
							       1000000 :
					       0,
				       sigmask);
	}
	return rp__wait(ep, events, maxevents,
			timeout < 0 ? -1 : (int64_t)timeout * 1000000,
			sigmask);
}

RP_EXPORT int rp_epoll_wait(int epfd, struct epoll_event *events,
			    int maxevents, int timeout)
{
	return rp_epoll_pwait(epfd, events, maxevents, timeout, NULL);
}

RP_EXPORT int rp_epoll_pwait2(int epfd, struct epoll_event *events,
			      int maxevents, const struct timespec *timeout,
			      const sigset_t *sigmask)
{
	struct rp__ep *ep = rp__ep_get(epfd);
	struct timespec ts;
	int64_t ns = -1;

	if (!ep)
		return (int)syscall(SYS_epoll_pwait2, epfd, events, maxevents,
				    timeout, sigmask, _NSIG / 8);
	/* The kernel's order: the timeout, then the sigmask, then the rest. */
	if (timeout) {
		if (!rp__ep_user(ep, timeout, sizeof(*timeout), false)) {
			rp__ep_put(ep);
			return rp__fail(-EFAULT);
		}
		ts = *timeout;
		if (ts.tv_sec < 0 || ts.tv_nsec < 0 ||
		    ts.tv_nsec >= 1000000000) {
			rp__ep_put(ep);
			return rp__fail(-EINVAL);
		}
		ns = ts.tv_sec > INT64_MAX / 1000000000 - 1 ?
			     INT64_MAX :
			     ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	return rp__wait(ep, events, maxevents, ns, sigmask);
}

RP_EXPORT int rp_epoll_is_ring(int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);

	return e && atomic_load(&e->ep) != NULL;
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
	/* -ENOENT: fd is not (or no longer) registered here. */
	rp__ep_del(ep, fd, false);
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
	atomic_store(&e->kernel_ep, false);
	if (rp__unlikely(rp__held))
		return rp__defer_close(fd, e);
	/* An instance nested in others leaves them first. */
	if (atomic_load(&e->nreg))
		rp__close_registered(fd, e);
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

RP_EXPORT int rp_close(int fd)
{
	int ret = rp__forget(fd);

	/* An instance's close has closed its fd already. */
	if (ret != 0)
		return ret < 0 ? -1 : 0;
	return rp__sys_close(fd);
}

RP_EXPORT int rp_epoll_stats(int epfd, struct rp_epoll_stats *st)
{
	struct rp__ep *ep;

	if (!st)
		return rp__fail(-EFAULT);
	if (epfd == -1) {
		rp__st_total(st);
		return 0;
	}
	ep = rp__ep_get(epfd);
	if (!ep)
		return rp__fail(-EBADF);
	rp__ep_lock(ep);
	*st = ep->st;
	rp__ep_unlock(ep);
	rp__ep_put(ep);
	return 0;
}

/* ---- poll(2) and select(2) on an instance's fd ---- */

/*
 * The kernel's epoll fd polls EPOLLIN | EPOLLRDNORM when a wait would
 * return events, and nothing else ever; our fd is a ring, which says
 * POLLOUT while its SQ has room and POLLIN while a CQE sits in its CQ,
 * harvested or not. So a set that holds an instance is answered here:
 * each instance is asked (rp__ep_readable), and the kernel polls the
 * rest, and the rings for POLLIN alone, which a new CQE ends (then the
 * instance is asked again: a CQE is only a hint). Sets without one, the
 * common case, cost a table lookup per fd.
 */
/*
 * The caller's poll set and fd_sets are read here before the kernel sees
 * them: a bad pointer must be the kernel's EFAULT, not our SIGSEGV. A
 * block is asked once (rp__mem_user) and then trusted, as for epoll's
 * own arguments (deviation 12). A set we cannot read goes to the kernel
 * untouched.
 */
static struct rp__mem rp__poll_mem;

bool rp__poll_rings(const struct pollfd *fds, nfds_t n)
{
	if (!atomic_load_explicit(&rp__rings_made, memory_order_relaxed) ||
	    !n || n > SIZE_MAX / sizeof(*fds) ||
	    !rp__mem_user(&rp__poll_mem, fds, n * sizeof(*fds), false))
		return false;
	for (nfds_t i = 0; i < n; i++)
		if (rp_epoll_is_ring(fds[i].fd))
			return true;
	return false;
}

#define RP__POLL_IN (POLLIN | POLLRDNORM)

/* One instance in a poll set: its slot and what the caller asked. */
struct rp__pollring {
	nfds_t i;
	short events;
	bool ready;
	bool kernel; /* the number is the kernel's epoll now */
	struct rp__ep *ep;
};

static void rp__poll_ask(struct rp__pollring *r)
{
	int ret = rp__ep_readable(r->ep);

	r->ready = ret > 0;
	r->kernel = ret == RP__EP_MOVED;
}

int rp__poll_slow(struct pollfd *fds, nfds_t n, int64_t timeout_ns,
		  const sigset_t *sigmask)
{
	struct rp__pollring stack[16], *r = stack;
	uint64_t deadline = 0;
	unsigned nr = 0, max = 0;
	int ret;

	for (nfds_t i = 0; i < n; i++)
		max += rp_epoll_is_ring(fds[i].fd) != 0;
	if (max > 16) {
		r = malloc(max * sizeof(*r));
		if (!r)
			return rp__fail(-ENOMEM);
	}
	for (nfds_t i = 0; i < n && nr < max; i++) {
		struct rp__ep *ep = rp__ep_get(fds[i].fd);

		if (!ep)
			continue;
		r[nr++] = (struct rp__pollring){ .i = i,
						 .events = fds[i].events,
						 .ep = ep };
		/* The ring is asked for what the instance can say. */
		fds[i].events &= RP__POLL_IN;
	}
	if (timeout_ns > 0)
		deadline = rp__now_ns() + (uint64_t)timeout_ns;
	for (;;) {
		struct timespec ts, *tsp = NULL;
		bool any = false;
		int64_t left = timeout_ns;

		for (unsigned k = 0; k < nr; k++) {
			r[k].ready = false;
			if (!r[k].kernel && (r[k].events & RP__POLL_IN))
				rp__poll_ask(&r[k]);
			any |= r[k].ready;
		}
		if (deadline) {
			uint64_t now = rp__now_ns();

			left = now < deadline ? (int64_t)(deadline - now) : 0;
		}
		if (any)
			left = 0;
		/*
		 * To sleep until an instance has an event, the kernel must
		 * wake the poll: a DEFER_TASKRUN ring's fd says readable
		 * only when its owner has run the completions, so it wakes
		 * nobody. The instance becomes the kernel's epoll, whose fd
		 * is readable exactly when a wait would return events.
		 */
		for (unsigned k = 0; k < nr && left != 0; k++) {
			struct rp__ep *ep = r[k].ep;

			if (r[k].kernel)
				continue;
			rp__ep_lock(ep);
			if (ep->ring.owned || ep->moved)
				r[k].kernel = rp__ep_go_kernel(ep) ==
					      RP__EP_MOVED;
			rp__ep_unlock(ep);
		}
		if (left >= 0) {
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		ret = (int)syscall(SYS_ppoll, fds, n, tsp, sigmask, _NSIG / 8);
		if (ret < 0) {
			ret = -errno;
			break;
		}
		/* A CQE is a hint: the instances it woke are asked again. */
		for (unsigned k = 0; k < nr; k++) {
			struct pollfd *p = &fds[r[k].i];

			if (!r[k].kernel && !r[k].ready &&
			    (p->revents & RP__POLL_IN)) {
				rp__poll_ask(&r[k]);
				any |= r[k].ready;
			}
			/* The kernel's epoll answers exactly, as it is. */
			if (r[k].kernel)
				continue;
			p->revents = (short)((p->revents & ~RP__POLL_IN) |
					     (r[k].ready ?
						      r[k].events & RP__POLL_IN :
						      0));
		}
		ret = 0;
		for (nfds_t i = 0; i < n; i++)
			ret += fds[i].revents != 0;
		if (ret > 0 || left == 0)
			break;
	}
	for (unsigned k = 0; k < nr; k++) {
		fds[r[k].i].events = r[k].events;
		rp__ep_put(r[k].ep);
	}
	if (r != stack)
		free(r);
	return ret < 0 ? rp__fail(ret) : ret;
}

RP_EXPORT int rp_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (!rp__poll_rings(fds, n))
		return poll(fds, n, timeout);
	return rp__poll_slow(fds, n,
			     timeout < 0 ? -1 : (int64_t)timeout * 1000000,
			     NULL);
}

/* A timespec as ns, -1 for none; false if the kernel refuses it. */
static bool rp__ts_ns(const struct timespec *ts, int64_t *ns)
{
	*ns = -1;
	if (!ts)
		return true;
	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)
		return false;
	*ns = ts->tv_sec > INT64_MAX / 1000000000 - 1 ?
		      INT64_MAX :
		      ts->tv_sec * 1000000000 + ts->tv_nsec;
	return true;
}

RP_EXPORT int rp_ppoll(struct pollfd *fds, nfds_t n,
		       const struct timespec *timeout, const sigset_t *sigmask)
{
	int64_t ns;

	if (!rp__poll_rings(fds, n))
		return ppoll(fds, n, timeout, sigmask);
	if (!rp__ts_ns(timeout, &ns))
		return rp__fail(-EINVAL);
	return rp__poll_slow(fds, n, ns, sigmask);
}

#define RP__LONG_BITS (8 * (int)sizeof(unsigned long))

static unsigned long rp__set_word(const fd_set *s, int w)
{
	return s ? ((const unsigned long *)(const void *)s)[w] : 0;
}

/* fd_set as the kernel reads it: nfds bits, however many that is. */
static bool rp__set_has(const fd_set *s, int fd)
{
	return (rp__set_word(s, fd / RP__LONG_BITS) >> (fd % RP__LONG_BITS)) &
	       1;
}

static void rp__set_clr(fd_set *s, int fd)
{
	((unsigned long *)(void *)s)[fd / RP__LONG_BITS] &=
		~(1ul << (fd % RP__LONG_BITS));
}

bool rp__select_rings(int nfds, const fd_set *r, const fd_set *w,
		      const fd_set *e)
{
	size_t len = ((size_t)(nfds > 0 ? nfds : 0) + RP__LONG_BITS - 1) /
		     RP__LONG_BITS * sizeof(unsigned long);

	if (!atomic_load_explicit(&rp__rings_made, memory_order_relaxed) ||
	    nfds <= 0 ||
	    (r && !rp__mem_user(&rp__poll_mem, r, len, false)) ||
	    (w && !rp__mem_user(&rp__poll_mem, w, len, false)) ||
	    (e && !rp__mem_user(&rp__poll_mem, e, len, false)))
		return false;
	for (int wd = 0; wd * RP__LONG_BITS < nfds; wd++) {
		unsigned long bits = rp__set_word(r, wd) | rp__set_word(w, wd) |
				     rp__set_word(e, wd);

		while (bits) {
			int fd = wd * RP__LONG_BITS + __builtin_ctzl(bits);

			bits &= bits - 1;
			if (fd < nfds && rp_epoll_is_ring(fd))
				return true;
		}
	}
	return false;
}

/* The kernel's POLLIN_SET, POLLOUT_SET and POLLEX_SET (fs/select.c). */
#define RP__SEL_IN (POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR)
#define RP__SEL_OUT (POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR)
#define RP__SEL_EX (POLLPRI)

/* Writes one fd's answer back into a set; 1 if it stays set. */
static int rp__sel_back(fd_set *s, int fd, bool ready)
{
	if (!rp__set_has(s, fd))
		return 0;
	if (!ready)
		rp__set_clr(s, fd);
	return ready;
}

/*
 * select(2) on a set that holds an instance, as a poll(2) of the same fds
 * (rp__poll_slow); the sets are written back as select writes them, and
 * *left_ns is the time left, as select(2) writes back its timeval.
 */
int rp__select_slow(int nfds, fd_set *r, fd_set *w, fd_set *e,
		    int64_t timeout_ns, const sigset_t *sigmask,
		    int64_t *left_ns)
{
	struct pollfd *pfd;
	uint64_t t0 = rp__now_ns();
	nfds_t n = 0;
	int ret, count = 0;

	if (nfds < 0)
		return rp__fail(-EINVAL);
	pfd = malloc((size_t)(nfds ? nfds : 1) * sizeof(*pfd));
	if (!pfd)
		return rp__fail(-ENOMEM);
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;

		if (rp__set_has(r, fd))
			ev |= POLLIN | POLLRDNORM | POLLRDBAND;
		if (rp__set_has(w, fd))
			ev |= POLLOUT | POLLWRNORM | POLLWRBAND;
		if (rp__set_has(e, fd))
			ev |= POLLPRI;
		if (ev)
			pfd[n++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	ret = rp__poll_slow(pfd, n, timeout_ns, sigmask);
	if (ret >= 0) {
		for (nfds_t i = 0; i < n; i++) {
			if (pfd[i].revents & POLLNVAL) {
				errno = EBADF;
				ret = -1;
				break;
			}
		}
	}
	if (ret >= 0) {
		for (nfds_t i = 0; i < n; i++) {
			int fd = pfd[i].fd;
			short rev = pfd[i].revents;

			count += rp__sel_back(r, fd, rev & RP__SEL_IN);
			count += rp__sel_back(w, fd, rev & RP__SEL_OUT);
			count += rp__sel_back(e, fd, rev & RP__SEL_EX);
		}
		ret = count;
	}
	free(pfd);
	if (left_ns && timeout_ns >= 0) {
		uint64_t spent = rp__now_ns() - t0;

		*left_ns = spent < (uint64_t)timeout_ns ?
				   timeout_ns - (int64_t)spent :
				   0;
	}
	return ret;
}

RP_EXPORT int rp_select(int nfds, fd_set *r, fd_set *w, fd_set *e,
			struct timeval *timeout)
{
	int64_t ns = -1, left;
	int ret;

	if (!rp__select_rings(nfds, r, w, e))
		return select(nfds, r, w, e, timeout);
	if (timeout) {
		if (timeout->tv_sec < 0 || timeout->tv_usec < 0)
			return rp__fail(-EINVAL);
		ns = timeout->tv_sec > INT64_MAX / 1000000000 - 1 ?
			     INT64_MAX :
			     timeout->tv_sec * 1000000000 +
				     (int64_t)timeout->tv_usec * 1000;
	}
	ret = rp__select_slow(nfds, r, w, e, ns, NULL, &left);
	/* As select(2) does on Linux: the time not slept. */
	if (timeout && ret >= 0) {
		timeout->tv_sec = left / 1000000000;
		timeout->tv_usec = (left % 1000000000) / 1000;
	}
	return ret;
}

RP_EXPORT int rp_pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
			 const struct timespec *timeout,
			 const sigset_t *sigmask)
{
	int64_t ns;

	if (!rp__select_rings(nfds, r, w, e))
		return pselect(nfds, r, w, e, timeout, sigmask);
	if (!rp__ts_ns(timeout, &ns))
		return rp__fail(-EINVAL);
	return rp__select_slow(nfds, r, w, e, ns, sigmask, NULL);
}
