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

static int looper_blocked(struct t_looper *l)
{
	while (!l->tid)
		sched_yield();
	return t_task_blocked(getpid(), l->tid);
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
	return s;
}
