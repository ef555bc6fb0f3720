// SPDX-License-Identifier: MIT
/*
 * Threads: an epoll instance is shared. epoll_ctl from one thread affects
 * a wait in progress in another, several threads may wait on one
 * instance, and EPOLLONESHOT or EPOLLET hand one event to one waiter.
 *
 * "The waiter is asleep" is a handshake (t_task_blocked), not a sleep.
 * Where a test must show that something does NOT reach a waiter, the
 * waiters loop until a separate stop fd is signalled, and the stop comes
 * T_QUIET_MS after the event, giving a wrong extra report time to show.
 */
#include "t_epoll.h"

/* data.u64 of the fd under test and of the stop eventfd. */
#define T_HIT 1
#define T_STOP 99

/* A thread doing one epoll_wait. */
struct t_waiter {
	pthread_t thread;
	_Atomic pid_t tid;
	int epfd;
	int n;
	struct epoll_event ev[4];
};

static void *waiter_main(void *arg)
{
	struct t_waiter *w = arg;

	w->tid = gettid();
	w->n = t_wait(w->epfd, w->ev, 4, T_LONG_MS);
	return NULL;
}

static void waiter_start(struct t_waiter *w, int epfd)
{
	memset(w->ev, 0, sizeof(w->ev));
	w->tid = 0;
	w->epfd = epfd;
	w->n = -2;
	t_thread_start(&w->thread, waiter_main, w);
}

/* 0 once the waiter sleeps in its wait. */
static int waiter_blocked(struct t_waiter *w)
{
	while (!w->tid)
		sched_yield();
	return t_task_blocked(getpid(), w->tid);
}

/* A thread that waits until it sees T_STOP, counting T_HIT events. */
struct t_looper {
	pthread_t thread;
	_Atomic pid_t tid;
	int epfd;
	atomic_int *hits;
	int failed;
};

static void *looper_main(void *arg)
{
	struct t_looper *l = arg;
	struct epoll_event ev[4];
	int n, i, stop = 0;

	l->tid = gettid();
	while (!stop) {
		n = t_wait(l->epfd, ev, 4, T_LONG_MS);
		if (n <= 0) {
			l->failed = 1;
			return NULL;
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.u64 == T_STOP)
				stop = 1;
			else
				atomic_fetch_add(l->hits, 1);
		}
	}
	return NULL;
}

static void looper_start(struct t_looper *l, int epfd, atomic_int *hits)
{
	l->tid = 0;
	l->epfd = epfd;
	l->hits = hits;
	l->failed = 0;
	t_thread_start(&l->thread, looper_main, l);
}

/*
 * Asleep in its wait itself, not on a lock on the way: a second waiter
 * has then made ringpoll's instance the kernel's epoll. (Counted asleep
 * in a futex, it was sometimes still on its way, and a write then came
 * before the move, which may report an edge once more: README, "epoll on
 * the ring"; seen once under ASan in CI.)
 */
static int looper_blocked(struct t_looper *l)
{
	while (!l->tid)
		sched_yield();
	return t_task_in_epoll_wait(getpid(), l->tid);
}

static int stop_fd_open(int epfd)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	/* Level-triggered: once signalled it reaches every waiter. */
	t_ctl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN, T_STOP);
	return fd;
}

static void stop_fd_signal(int fd)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

/* Wait (bounded) until @hits reaches @want. */
static void hits_reach(atomic_int *hits, int want)
{
	const struct timespec tick = {0, 1000000};
	int64_t deadline = t_now_ms() + T_LONG_MS;

	while (atomic_load(hits) < want && t_now_ms() < deadline)
		nanosleep(&tick, NULL);
}

static void quiet(void)
{
	const struct timespec q = {0, T_QUIET_MS * 1000000L};

	nanosleep(&q, NULL);
}

START_TEST(threads_add_from_other_thread_wakes_waiter)
{
	struct t_waiter w;
	int epfd = t_epoll();
	int p[2], blocked;

	t_pipe(p);
	t_write(p[1], 1);
	waiter_start(&w, epfd);
	blocked = waiter_blocked(&w);
	/* Ready when added: the sleeping waiter must hear of it. */
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, T_HIT);
	t_thread_join(w.thread);
	ck_assert_int_eq(blocked, 0);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(w.ev[0].events, EPOLLIN);
	ck_assert_uint_eq(w.ev[0].data.u64, T_HIT);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(threads_mod_from_other_thread_wakes_waiter)
{
	struct t_waiter w;
	int epfd = t_epoll();
	int p[2], blocked;

	t_pipe(p);
	t_write(p[1], 1);
	/* Registered, ready, but interested in nothing. */
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], 0, T_HIT);
	waiter_start(&w, epfd);
	blocked = waiter_blocked(&w);
	t_ctl(epfd, EPOLL_CTL_MOD, p[0], EPOLLIN, T_HIT);
	t_thread_join(w.thread);
	ck_assert_int_eq(blocked, 0);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(w.ev[0].events, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(threads_write_from_other_thread_wakes_waiter)
{
	struct t_waiter w;
	int epfd = t_epoll();
	int sv[2], blocked;

	t_socketpair(SOCK_STREAM, sv);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[0], EPOLLIN | EPOLLRDHUP, T_HIT);
	waiter_start(&w, epfd);
	blocked = waiter_blocked(&w);
	t_write(sv[1], 1);
	t_thread_join(w.thread);
	ck_assert_int_eq(blocked, 0);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(w.ev[0].events, EPOLLIN);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(epfd);
}
END_TEST

#define T_NWAITERS 3

START_TEST(threads_lt_event_reaches_every_waiter)
{
	/*
	 * Level-triggered and not consumed: every waiter gets it (the
	 * kernel wakes one, which passes the wakeup on).
	 */
	struct t_waiter w[T_NWAITERS];
	int epfd = t_epoll();
	int p[2], i, blocked = 0;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, T_HIT);
	for (i = 0; i < T_NWAITERS; i++)
		waiter_start(&w[i], epfd);
	for (i = 0; i < T_NWAITERS; i++)
		blocked |= waiter_blocked(&w[i]);
	t_write(p[1], 1);
	for (i = 0; i < T_NWAITERS; i++)
		t_thread_join(w[i].thread);
	ck_assert_int_eq(blocked, 0);
	for (i = 0; i < T_NWAITERS; i++) {
		ck_assert_int_eq(w[i].n, 1);
		ck_assert_int_eq(w[i].ev[0].events, EPOLLIN);
		ck_assert_uint_eq(w[i].ev[0].data.u64, T_HIT);
	}
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

/*
 * Two loopers on one instance; one write to a pipe registered with
 * @events; returns how many times the pipe was reported in total.
 */
static int hits_with_two_waiters(uint32_t events)
{
	struct t_looper l[2];
	atomic_int hits = 0;
	int epfd = t_epoll();
	int p[2], stop, i, blocked = 0, failed = 0;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], events, T_HIT);
	stop = stop_fd_open(epfd);
	for (i = 0; i < 2; i++)
		looper_start(&l[i], epfd, &hits);
	for (i = 0; i < 2; i++)
		blocked |= looper_blocked(&l[i]);
	t_write(p[1], 1);
	hits_reach(&hits, 1);
	quiet();
	stop_fd_signal(stop);
	for (i = 0; i < 2; i++) {
		t_thread_join(l[i].thread);
		failed |= l[i].failed;
	}
	ck_assert_int_eq(blocked, 0);
	ck_assert_int_eq(failed, 0);
	t_close(stop);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
	return atomic_load(&hits);
}

START_TEST(threads_oneshot_reported_to_exactly_one_waiter)
{
	ck_assert_int_eq(hits_with_two_waiters(EPOLLIN | EPOLLONESHOT), 1);
}
END_TEST

START_TEST(threads_et_edge_reported_to_exactly_one_waiter)
{
	ck_assert_int_eq(hits_with_two_waiters(EPOLLIN | EPOLLET), 1);
}
END_TEST

START_TEST(threads_del_from_other_thread_silences_fd)
{
	struct t_looper l;
	atomic_int hits = 0;
	int epfd = t_epoll();
	int p[2], stop, blocked;

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, T_HIT);
	stop = stop_fd_open(epfd);
	looper_start(&l, epfd, &hits);
	blocked = looper_blocked(&l);
	t_ctl(epfd, EPOLL_CTL_DEL, p[0], 0, 0);
	t_write(p[1], 1);
	quiet();
	stop_fd_signal(stop);
	t_thread_join(l.thread);
	ck_assert_int_eq(blocked, 0);
	ck_assert_int_eq(l.failed, 0);
	ck_assert_int_eq(atomic_load(&hits), 0);
	t_close(stop);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(threads_two_instances_on_one_fd_both_woken)
{
	/* Without EPOLLEXCLUSIVE, every instance watching the fd wakes. */
	struct t_waiter w[2];
	int ep[2] = {t_epoll(), t_epoll()};
	int efd, i, blocked = 0;
	uint64_t one = 1;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	for (i = 0; i < 2; i++) {
		t_ctl(ep[i], EPOLL_CTL_ADD, efd, EPOLLIN, T_HIT + i);
		waiter_start(&w[i], ep[i]);
	}
	for (i = 0; i < 2; i++)
		blocked |= waiter_blocked(&w[i]);
	ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
	for (i = 0; i < 2; i++)
		t_thread_join(w[i].thread);
	ck_assert_int_eq(blocked, 0);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(w[i].n, 1);
		ck_assert_int_eq(w[i].ev[0].events, EPOLLIN);
		ck_assert_uint_eq(w[i].ev[0].data.u64, T_HIT + i);
		t_close(ep[i]);
	}
	t_close(efd);
}
END_TEST

/* A thread that adds and removes fds on a shared instance. */
struct t_churn {
	pthread_t thread;
	int epfd;
	int fd;
	int rounds;
	int failed;
};

static void *churn_main(void *arg)
{
	struct t_churn *c = arg;
	int i;

	for (i = 0; i < c->rounds; i++) {
		if (t_ctl_raw(c->epfd, EPOLL_CTL_ADD, c->fd, EPOLLIN, 7) ||
		    t_ctl_raw(c->epfd, EPOLL_CTL_DEL, c->fd, 0, 0))
			c->failed = 1;
	}
	return NULL;
}

START_TEST(threads_ctl_churn_does_not_disturb_waiter)
{
	/*
	 * One thread adds and removes a never-ready fd while this thread
	 * waits on a ready one: every wait must report just that one.
	 */
	struct t_churn c;
	struct epoll_event ev[4];
	int epfd = t_epoll();
	int p[2], q[2], i, n;

	t_pipe(p);
	t_pipe(q);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, T_HIT);
	t_write(p[1], 1);
	c.epfd = epfd;
	c.fd = q[0];
	c.rounds = 2000;
	c.failed = 0;
	t_thread_start(&c.thread, churn_main, &c);
	for (i = 0; i < 2000; i++) {
		n = t_wait(epfd, ev, 4, T_LONG_MS);
		if (n != 1 || ev[0].data.u64 != T_HIT ||
		    ev[0].events != EPOLLIN)
			break;
	}
	t_thread_join(c.thread);
	ck_assert_int_eq(i, 2000);
	ck_assert_int_eq(c.failed, 0);
	t_close(p[0]);
	t_close(p[1]);
	t_close(q[0]);
	t_close(q[1]);
	t_close(epfd);
}
END_TEST

/*
 * The stress: one instance shared by threads that wait on it, threads that
 * make its fds ready, and threads that ADD, MOD, DEL and close fds on it,
 * among them fds past the 1024 and 2048 marks (an implementation's table
 * of fds may grow there while another thread looks into it). Bounded in
 * time. It asserts what must hold whatever the interleaving: each ctl
 * succeeds or fails only with the error a race explains, every byte
 * written is read by a waiter that was told it was there, and nothing
 * crashes (the sanitizer builds run it too).
 */
#define S_DATA 6     /* pipes the writers write to and the waiters read */
#define S_WAITERS 3
#define S_WRITERS 2
#define S_CHURNERS 3
#define S_SLOTS 6    /* fds each churner opens, registers and closes */
#define S_LOOPERS 2
#define S_MAX_CHUNKS 4
#define S_RUN_MS 2000

/* data.u64: the kind in the high half, an index in the low one. */
#define S_TAG_DATA (1ull << 32)
#define S_TAG_CHURN (2ull << 32)

struct s_shared {
	int epfd;
	int stop;	/* eventfd, level-triggered: ends every waiter */
	int data[S_DATA][2];
	uint32_t data_events[S_DATA];
	atomic_long written, read;
	atomic_int running;
	/* what went wrong, with the errno, for the main thread to report */
	atomic_int bad_op, bad_errno;
	/* fds at 1024 * k for k in 1..nchunks, and the second instance */
	int grow_fd[S_MAX_CHUNKS + 1];
	int nchunks;
	pthread_rwlock_t ep2_lock;
	int ep2;
	atomic_long grows;
	/*
	 * The churners' fds, for the others to MOD and DEL. A close takes
	 * the slot's lock, as does the other churner's ctl: a program that
	 * uses an fd while another thread closes it has a race of its own.
	 */
	_Atomic int slot[S_CHURNERS][S_SLOTS];
	pthread_mutex_t slot_lock[S_CHURNERS][S_SLOTS];
	int slot_base[S_CHURNERS];
};

static void s_fail(struct s_shared *s, int op, int err)
{
	int zero = 0;

	if (atomic_compare_exchange_strong(&s->bad_op, &zero, op))
		atomic_store(&s->bad_errno, err);
}

/* A ctl whose result must be 0, or one of the errors in @ok (0-ended). */
static int s_ctl(struct s_shared *s, int epfd, int op, int fd,
		 uint32_t events, uint64_t data, int what, const int *ok)
{
	int ret = t_ctl_raw(epfd, op, fd, events, data), err = errno;

	if (ret == 0)
		return 0;
	for (; ok && *ok; ok++)
		if (*ok == err)
			return -err;
	s_fail(s, what, err);
	return -err;
}

static void *s_waiter(void *arg)
{
	struct s_shared *s = arg;
	struct epoll_event ev[8];
	char buf[256];

	for (;;) {
		int n = t_wait(s->epfd, ev, 8, T_LONG_MS), i;

		if (n <= 0) {
			/* Writers write all the time: silence is a loss. */
			s_fail(s, 100, n == 0 ? ETIMEDOUT : errno);
			return NULL;
		}
		for (i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;
			int d = (int)(uint32_t)tag;
			ssize_t r;

			if (tag == T_STOP)
				return NULL;
			if ((tag >> 32) != (S_TAG_DATA >> 32))
				continue; /* a churner's fd: nothing to do */
			while ((r = read(s->data[d][0], buf, sizeof(buf))) > 0)
				atomic_fetch_add(&s->read, r);
			if (r == 0 || errno != EAGAIN)
				s_fail(s, 101, r == 0 ? EPIPE : errno);
			/* Drained: one-shot entries are armed again. */
			if (s->data_events[d] & EPOLLONESHOT)
				s_ctl(s, s->epfd, EPOLL_CTL_MOD,
				      s->data[d][0], s->data_events[d], tag,
				      102, NULL);
		}
	}
}

static void *s_writer(void *arg)
{
	struct s_shared *s = arg;
	unsigned seed = (unsigned)(uintptr_t)&seed;

	while (atomic_load(&s->running)) {
		int d = rand_r(&seed) % S_DATA;

		/* Full: the waiters are behind; that byte is not counted. */
		if (write(s->data[d][1], "x", 1) == 1)
			atomic_fetch_add(&s->written, 1);
		else if (errno != EAGAIN)
			s_fail(s, 200, errno);
		if (rand_r(&seed) % 8 == 0)
			sched_yield();
	}
	return NULL;
}

struct s_churner {
	pthread_t thread;
	struct s_shared *s;
	int me;
};

/* Events a churner registers: ready eventfds are never level-triggered. */
static uint32_t s_churn_events(unsigned *seed, int ready)
{
	static const uint32_t any[] = {
		EPOLLIN | EPOLLET, EPOLLIN | EPOLLONESHOT,
		EPOLLIN | EPOLLET | EPOLLONESHOT, EPOLLOUT | EPOLLET,
		EPOLLIN, EPOLLIN | EPOLLRDHUP,
	};

	return any[rand_r(seed) % (ready ? 4 : 6)];
}

static void *s_churner(void *arg)
{
	static const int enoent[] = {ENOENT, 0};
	static const int foreign[] = {ENOENT, 0};
	struct s_churner *c = arg;
	struct s_shared *s = c->s;
	unsigned seed = (unsigned)c->me * 7919u + 1;
	int reg[S_SLOTS] = {0}, ready[S_SLOTS] = {0};
	int slot, fd, e, o;

	while (atomic_load(&s->running)) {
		slot = rand_r(&seed) % S_SLOTS;
		fd = atomic_load(&s->slot[c->me][slot]);
		if (rand_r(&seed) % 4 == 0) {
			/*
			 * Another churner's fd, racing its owner's ctls: it
			 * may have been taken out, or not be in yet.
			 */
			o = (c->me + 1 + rand_r(&seed) % (S_CHURNERS - 1)) %
			    S_CHURNERS;
			pthread_mutex_lock(&s->slot_lock[o][slot]);
			fd = atomic_load(&s->slot[o][slot]);
			if (fd >= 0 && rand_r(&seed) % 2)
				s_ctl(s, s->epfd, EPOLL_CTL_MOD, fd,
				      EPOLLIN | EPOLLET, S_TAG_CHURN, 300,
				      foreign);
			else if (fd >= 0)
				s_ctl(s, s->epfd, EPOLL_CTL_DEL, fd, 0, 0, 301,
				      foreign);
			pthread_mutex_unlock(&s->slot_lock[o][slot]);
			continue;
		}
		if (fd < 0) {
			/* A fresh fd, up by the chunk boundary. */
			ready[slot] = rand_r(&seed) % 2;
			e = eventfd(ready[slot], EFD_NONBLOCK | EFD_CLOEXEC);
			if (e < 0) {
				s_fail(s, 302, errno);
				break;
			}
			fd = fcntl(e, F_DUPFD_CLOEXEC,
				   s->slot_base[c->me] + slot);
			if (fd < 0)
				s_fail(s, 303, errno);
			close(e);
			if (fd < 0)
				break;
			reg[slot] = 0;
			atomic_store(&s->slot[c->me][slot], fd);
			continue;
		}
		if (!reg[slot]) {
			/* Nobody else ADDs: it must go in. */
			if (s_ctl(s, s->epfd, EPOLL_CTL_ADD, fd,
				  s_churn_events(&seed, ready[slot]),
				  S_TAG_CHURN | (uint32_t)fd, 304, NULL) == 0)
				reg[slot] = 1;
			continue;
		}
		switch (rand_r(&seed) % 4) {
		case 0:
		case 1:
			/* A DEL by another churner may have come first. */
			if (s_ctl(s, s->epfd, EPOLL_CTL_MOD, fd,
				  s_churn_events(&seed, ready[slot]),
				  S_TAG_CHURN | (uint32_t)fd, 305,
				  enoent) == -ENOENT)
				reg[slot] = 0;
			break;
		case 2:
			s_ctl(s, s->epfd, EPOLL_CTL_DEL, fd, 0, 0, 306,
			      enoent);
			reg[slot] = 0;
			break;
		default:
			/* Closed while registered: the close forgets it. */
			pthread_mutex_lock(&s->slot_lock[c->me][slot]);
			atomic_store(&s->slot[c->me][slot], -1);
			if (close(fd) != 0)
				s_fail(s, 307, errno);
			pthread_mutex_unlock(&s->slot_lock[c->me][slot]);
			break;
		}
	}
	for (slot = 0; slot < S_SLOTS; slot++) {
		pthread_mutex_lock(&s->slot_lock[c->me][slot]);
		fd = atomic_exchange(&s->slot[c->me][slot], -1);
		if (fd >= 0 && close(fd) != 0)
			s_fail(s, 308, errno);
		pthread_mutex_unlock(&s->slot_lock[c->me][slot]);
	}
	return NULL;
}

/*
 * A second instance, made again and again: fds at 1024, 2048, ... go in
 * (the table grows), while the loopers MOD an fd it does not have and
 * nest their own instances in it, and it is nested in the shared one.
 */
static void *s_grower(void *arg)
{
	struct s_shared *s = arg;
	int k;

	while (atomic_load(&s->running)) {
		pthread_rwlock_wrlock(&s->ep2_lock);
		if (s->ep2 >= 0 && close(s->ep2) != 0)
			s_fail(s, 400, errno);
		s->ep2 = epoll_create1(EPOLL_CLOEXEC);
		if (s->ep2 < 0)
			s_fail(s, 401, errno);
		pthread_rwlock_unlock(&s->ep2_lock);
		if (s->ep2 < 0)
			break;
		for (k = 1; k <= s->nchunks; k++)
			s_ctl(s, s->ep2, EPOLL_CTL_ADD, s->grow_fd[k], EPOLLIN,
			      (uint64_t)k, 402, NULL);
		/* Nested in the shared instance, and out again. */
		s_ctl(s, s->epfd, EPOLL_CTL_ADD, s->ep2, EPOLLIN, S_TAG_CHURN,
		      403, NULL);
		s_ctl(s, s->epfd, EPOLL_CTL_DEL, s->ep2, 0, 0, 404, NULL);
		atomic_fetch_add(&s->grows, 1);
	}
	return NULL;
}

struct s_looper {
	pthread_t thread;
	struct s_shared *s;
	int own_fd;	/* never registered in the second instance */
	int own_ep;	/* nested in it and taken out again */
};

static void *s_looper(void *arg)
{
	static const int enoent[] = {ENOENT, 0};
	struct s_looper *l = arg;
	struct s_shared *s = l->s;
	unsigned i = 0;

	while (atomic_load(&s->running)) {
		pthread_rwlock_rdlock(&s->ep2_lock);
		if (s->ep2 >= 0) {
			if (s_ctl(s, s->ep2, EPOLL_CTL_MOD, l->own_fd, EPOLLIN,
				  0, 500, enoent) == 0)
				s_fail(s, 501, 0); /* found a ghost */
			if (++i % 4 == 0) {
				s_ctl(s, s->ep2, EPOLL_CTL_ADD, l->own_ep,
				      EPOLLIN, 0, 502, NULL);
				s_ctl(s, s->ep2, EPOLL_CTL_DEL, l->own_ep, 0,
				      0, 503, NULL);
			}
		}
		pthread_rwlock_unlock(&s->ep2_lock);
	}
	return NULL;
}

/* Raises the soft fd limit for the fds past 2048; returns the old one. */
static struct rlimit s_raise_nofile(void)
{
	struct rlimit old, rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	if (rl.rlim_cur < (S_MAX_CHUNKS + 1) * 1024 + 64) {
		rl.rlim_cur = (S_MAX_CHUNKS + 1) * 1024 + 64;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	return old;
}

START_TEST(threads_stress_wait_ctl_close_write)
{
	static struct s_shared s;
	struct rlimit old = s_raise_nofile(), now;
	pthread_t waiter[S_WAITERS], writer[S_WRITERS], grower;
	struct s_churner churner[S_CHURNERS];
	struct s_looper looper[S_LOOPERS];
	pthread_rwlockattr_t rwa;
	int64_t deadline;
	int i, j, e;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &now), 0);
	/* Chunks of 1024 fds the limit lets us reach, one fd above each. */
	s.nchunks = (int)((now.rlim_cur - 64) / 1024);
	if (s.nchunks > S_MAX_CHUNKS)
		s.nchunks = S_MAX_CHUNKS;
	if (s.nchunks < 2)
		printf("note: %s: RLIMIT_NOFILE %llu: %d fds past 1024\n",
		       __func__, (unsigned long long)now.rlim_cur, s.nchunks);
	s.epfd = t_epoll();
	s.stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(s.stop, 0);
	t_ctl(s.epfd, EPOLL_CTL_ADD, s.stop, EPOLLIN, T_STOP);
	for (i = 0; i < S_DATA; i++) {
		static const uint32_t kinds[] = {
			EPOLLIN, EPOLLIN | EPOLLET, EPOLLIN | EPOLLONESHOT,
			EPOLLIN | EPOLLET | EPOLLONESHOT,
		};

		t_pipe(s.data[i]);
		s.data_events[i] = kinds[i % 4];
		t_ctl(s.epfd, EPOLL_CTL_ADD, s.data[i][0], s.data_events[i],
		      S_TAG_DATA | (uint32_t)i);
	}
	e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(e, 0);
	for (i = 1; i <= s.nchunks; i++) {
		s.grow_fd[i] = fcntl(e, F_DUPFD_CLOEXEC, i * 1024);
		ck_assert_int_eq(s.grow_fd[i], i * 1024);
	}
	for (i = 0; i < S_CHURNERS; i++) {
		/* Each straddles a chunk boundary, 1024 or 2048 first. */
		int k = s.nchunks ? 1 + i % s.nchunks : 0;

		s.slot_base[i] = k ? k * 1024 - S_SLOTS / 2 + 16 * i : 0;
		for (j = 0; j < S_SLOTS; j++) {
			s.slot[i][j] = -1;
			pthread_mutex_init(&s.slot_lock[i][j], NULL);
		}
	}
	s.ep2 = -1;
	/* glibc's default would starve the grower behind the loopers. */
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(
		&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s.ep2_lock, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	atomic_store(&s.running, 1);
	for (i = 0; i < S_WAITERS; i++)
		t_thread_start(&waiter[i], s_waiter, &s);
	for (i = 0; i < S_WRITERS; i++)
		t_thread_start(&writer[i], s_writer, &s);
	for (i = 0; i < S_CHURNERS; i++) {
		churner[i].s = &s;
		churner[i].me = i;
		t_thread_start(&churner[i].thread, s_churner, &churner[i]);
	}
	t_thread_start(&grower, s_grower, &s);
	for (i = 0; i < S_LOOPERS; i++) {
		looper[i].s = &s;
		looper[i].own_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		ck_assert_int_ge(looper[i].own_fd, 0);
		looper[i].own_ep = t_epoll();
		t_thread_start(&looper[i].thread, s_looper, &looper[i]);
	}

	deadline = t_now_ms() + S_RUN_MS;
	while (t_now_ms() < deadline && !atomic_load(&s.bad_op))
		usleep(10000);
	atomic_store(&s.running, 0);
	for (i = 0; i < S_WRITERS; i++)
		t_thread_join(writer[i]);
	for (i = 0; i < S_CHURNERS; i++)
		t_thread_join(churner[i].thread);
	t_thread_join(grower);
	for (i = 0; i < S_LOOPERS; i++)
		t_thread_join(looper[i].thread);
	/* Every byte written is reported, and read, before long. */
	deadline = t_now_ms() + T_LONG_MS;
	while (atomic_load(&s.read) < atomic_load(&s.written) &&
	       t_now_ms() < deadline && !atomic_load(&s.bad_op))
		usleep(1000);
	stop_fd_signal(s.stop);
	for (i = 0; i < S_WAITERS; i++)
		t_thread_join(waiter[i]);

	ck_assert_msg(atomic_load(&s.bad_op) == 0, "step %d: %s",
		      atomic_load(&s.bad_op),
		      strerror(atomic_load(&s.bad_errno)));
	ck_assert_int_gt(atomic_load(&s.written), 0);
	ck_assert_int_eq(atomic_load(&s.read), atomic_load(&s.written));
	ck_assert_int_gt(atomic_load(&s.grows), 0);
	pthread_rwlock_destroy(&s.ep2_lock);
	if (s.ep2 >= 0)
		t_close(s.ep2);
	for (i = 0; i < S_LOOPERS; i++) {
		t_close(looper[i].own_fd);
		t_close(looper[i].own_ep);
	}
	for (i = 1; i <= s.nchunks; i++)
		t_close(s.grow_fd[i]);
	t_close(e);
	for (i = 0; i < S_DATA; i++) {
		t_close(s.data[i][0]);
		t_close(s.data[i][1]);
	}
	t_close(s.stop);
	t_close(s.epfd);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

Suite *t_suite_threads(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = t_tcase("threads");

	tcase_add_test(tc, threads_add_from_other_thread_wakes_waiter);
	tcase_add_test(tc, threads_mod_from_other_thread_wakes_waiter);
	tcase_add_test(tc, threads_write_from_other_thread_wakes_waiter);
	tcase_add_test(tc, threads_lt_event_reaches_every_waiter);
	tcase_add_test(tc, threads_oneshot_reported_to_exactly_one_waiter);
	tcase_add_test(tc, threads_et_edge_reported_to_exactly_one_waiter);
	tcase_add_test(tc, threads_del_from_other_thread_silences_fd);
	tcase_add_test(tc, threads_two_instances_on_one_fd_both_woken);
	tcase_add_test(tc, threads_ctl_churn_does_not_disturb_waiter);
	suite_add_tcase(s, tc);
	/* Its own case: a few seconds under a sanitizer. */
	tc = t_tcase("threads_stress");
	tcase_add_test(tc, threads_stress_wait_ctl_close_write);
	suite_add_tcase(s, tc);
	return s;
}
