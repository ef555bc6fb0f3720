// SPDX-License-Identifier: MIT
/*
 * Behaviours where the io_uring emulation differs from the kernel's epoll.
 * Each test pins the kernel's behaviour; under emulation (t_emulated()) it
 * takes a separate branch that pins what ringpoll does instead. Every one
 * is described, with its reason, in docs/deviations.md.
 *
 * (a) The kernel keys a registration by (file, fd) but removes it only
 *     when the file is finally released. After dup(fd), close(fd) leaves
 *     the registration alive, reporting events for the dup under the old
 *     data, and no fd can name it any more for DEL. ringpoll's close()
 *     forgets fd in every instance at once, dup or no dup.
 * (b) EPOLLEXCLUSIVE: one wakeup of the file wakes one epoll instance
 *     that has a waiter, in registration order, and instances after it
 *     do not even queue the event. Under ringpoll each instance has an
 *     exclusive io_uring poll on the file: the first one armed takes the
 *     wakeup, whether or not anyone waits on its instance, and the
 *     instances take turns as their one-shot polls are re-armed.
 * (c) poll(2) on the epoll fd as a raw syscall: the kernel says POLLIN
 *     while an entry is ready, never POLLOUT. ringpoll's epoll fd is its
 *     io_uring fd: POLLOUT always, POLLIN only while a completion sits in
 *     its ring. (The C library's poll family is ringpoll's: pollable.c.)
 * (d) close() of an instance while another thread sleeps in epoll_wait on
 *     it (README, difference 9): the kernel's waiter holds the file, so it
 *     sleeps on in the orphaned instance, which still reports events and
 *     times out as usual. ringpoll ends that wait with -1/EBADF.
 * (e) Which thread runs a completion: the ring's owner, the thread that
 *     waits, inside its own io_uring_enter (DEFER_TASKRUN). A second
 *     waiting thread makes the instance the kernel's epoll, so the
 *     second_waiter_* tests pin the kernel's behaviour in both builds:
 *     the waiter has its event whatever the first thread is doing (asleep
 *     elsewhere, spinning, in a vfork). What is left of difference 10 is
 *     pinned in taskwork.c.
 * (f) Withdrawn: nested wakeups (epollfd.c, epollfd_nested_*_is_an_edge).
 * (g) Memory unmapped after ringpoll used it (README, difference 12): the
 *     kernel copies events with copy_to_user, so an events array unmapped
 *     since the last wait is EFAULT. ringpoll asks the kernel about a
 *     range of memory the first time it sees it and remembers the answer:
 *     the same address, unmapped since, is written to and the program gets
 *     SIGSEGV.
 */
#include "t_epoll.h"

START_TEST(dev_dup_registration_survives_close_of_original)
{
	int epfd, p[2], d;

	if (t_emulated()) {
		epfd = t_epoll();
		t_pipe(p);
		t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
		/* Submit the ADD: the poll is armed in the kernel. */
		t_expect_none(epfd, 0);
		d = dup(p[0]);
		ck_assert_int_ge(d, 0);
		t_close(p[0]);
		/* close() forgot p[0] everywhere, though d keeps the file. */
		t_write(p[1], 1);
		t_expect_none(epfd, 0);
		ck_assert_uint_eq(t_drain(d), 1);
		t_write(p[1], 1);
		t_expect_none(epfd, 0);
		/* Nothing is left under either number. */
		t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, d, 0, 0), ENOENT);
		t_close(d);
		t_close(p[1]);
		t_close(epfd);
		return;
	}
	epfd = t_epoll();
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	d = dup(p[0]);
	ck_assert_int_ge(d, 0);
	t_close(p[0]);
	/* The file is still open through d, so the entry stays. */
	t_write(p[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	ck_assert_uint_eq(t_drain(d), 1);
	t_expect_none(epfd, 0);
	t_write(p[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	t_close(d);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(dev_dup_registration_cannot_be_deleted)
{
	int epfd, p[2], d;

	if (t_emulated()) {
		epfd = t_epoll();
		t_pipe(p);
		t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
		d = dup(p[0]);
		ck_assert_int_ge(d, 0);
		t_close(p[0]);
		/* The same errors as the kernel's... */
		t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, p[0], 0, 0),
			       EBADF);
		t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, d, 0, 0), ENOENT);
		/* ...but there is no orphan: the dup alone reports. */
		t_ctl(epfd, EPOLL_CTL_ADD, d, EPOLLIN, 2);
		t_write(p[1], 1);
		t_expect1(epfd, 0, 2, EPOLLIN);
		t_close(d);
		t_close(p[1]);
		t_close(epfd);
		return;
	}
	epfd = t_epoll();
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	d = dup(p[0]);
	ck_assert_int_ge(d, 0);
	t_close(p[0]);
	/* The old number is closed, and the dup is a different key. */
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, p[0], 0, 0), EBADF);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, d, 0, 0), ENOENT);
	/* The dup can be registered alongside the orphaned entry. */
	t_ctl(epfd, EPOLL_CTL_ADD, d, EPOLLIN, 2);
	t_write(p[1], 1);
	{
		struct epoll_event ev[4];

		ck_assert_int_eq(t_wait(epfd, ev, 4, 0), 2);
		ck_assert_uint_eq(ev[0].data.u64 + ev[1].data.u64, 3);
	}
	t_close(d);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(dev_dup_last_close_removes_registration)
{
	/* Closing the last fd releases the file: the entry goes with it. */
	int epfd, p[2], d;

	if (t_emulated()) {
		epfd = t_epoll();
		t_pipe(p);
		t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
		d = dup(p[0]);
		ck_assert_int_ge(d, 0);
		t_close(p[0]);
		t_write(p[1], 1);
		/* The entry went with the first close, not the last. */
		t_expect_none(epfd, 0);
		t_close(d);
		/* The cancelled poll kept no reference to the file either. */
		ck_assert_int_eq(t_poll1(p[1], POLLOUT, 0), POLLOUT | POLLERR);
		t_expect_none(epfd, 0);
		t_close(p[1]);
		t_close(epfd);
		return;
	}
	epfd = t_epoll();
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	d = dup(p[0]);
	ck_assert_int_ge(d, 0);
	t_close(p[0]);
	t_write(p[1], 1);
	t_close(d);
	/* No reader is left anywhere: the registration held none. */
	ck_assert_int_eq(t_poll1(p[1], POLLOUT, 0), POLLOUT | POLLERR);
	t_expect_none(epfd, 0);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

/*
 * A thread doing one epoll_wait. A waiter that must NOT be woken by the
 * event under test is released later through a stop eventfd registered
 * (level-triggered, not exclusive) in every instance.
 */
#define T_STOP 99

struct t_waiter {
	pthread_t thread;
	_Atomic pid_t tid;
	atomic_int *done;
	int epfd;
	int n;
	struct epoll_event ev[4];
};

static void *waiter_main(void *arg)
{
	struct t_waiter *w = arg;

	w->tid = gettid();
	w->n = t_wait(w->epfd, w->ev, 4, T_LONG_MS);
	atomic_fetch_add(w->done, 1);
	return NULL;
}

static void waiter_start(struct t_waiter *w, int epfd, atomic_int *done)
{
	memset(w->ev, 0, sizeof(w->ev));
	w->tid = 0;
	w->done = done;
	w->epfd = epfd;
	w->n = -2;
	t_thread_start(&w->thread, waiter_main, w);
}

static int waiter_blocked(struct t_waiter *w)
{
	while (!w->tid)
		sched_yield();
	return t_task_blocked(getpid(), w->tid);
}

/* 1 if the waiter's wait reported @data, with exactly EPOLLIN. */
static int waiter_got(struct t_waiter *w, uint64_t data)
{
	int i;

	for (i = 0; i < w->n; i++)
		if (w->ev[i].data.u64 == data)
			return w->ev[i].events == EPOLLIN;
	return 0;
}

static void efd_signal(int fd)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

/*
 * @n instances, each with the eventfd @efd (exclusive, data = index) and
 * @stop, each with a sleeping waiter; signal @efd once, let a wrong second
 * wakeup have T_QUIET_MS to happen, then release everyone through @stop.
 */
static void exclusive_round(int n, int *ep, struct t_waiter *w, int efd,
			    int stop)
{
	const struct timespec tick = {0, 1000000};
	const struct timespec quiet = {0, T_QUIET_MS * 1000000L};
	atomic_int done = 0;
	int64_t deadline;
	int i, blocked = 0;

	for (i = 0; i < n; i++) {
		ep[i] = t_epoll();
		t_ctl(ep[i], EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, i);
		t_ctl(ep[i], EPOLL_CTL_ADD, stop, EPOLLIN, T_STOP);
	}
	for (i = 0; i < n; i++)
		waiter_start(&w[i], ep[i], &done);
	/* Every instance must have its waiter asleep before the event. */
	for (i = 0; i < n; i++)
		blocked |= waiter_blocked(&w[i]);
	efd_signal(efd);
	deadline = t_now_ms() + T_LONG_MS;
	while (atomic_load(&done) < 1 && t_now_ms() < deadline)
		nanosleep(&tick, NULL);
	nanosleep(&quiet, NULL);
	efd_signal(stop);
	for (i = 0; i < n; i++) {
		t_thread_join(w[i].thread);
		/* Nobody timed out: each was woken by something. */
		ck_assert_int_ge(w[i].n, 1);
	}
	ck_assert_int_eq(blocked, 0);
}

#define T_NINST 3

/*
 * Emulated: @n instances with the eventfd @efd (exclusive, data = index),
 * their polls armed in the order @arm by this thread, which owns them
 * all (an instance waited on by a second thread is the kernel's epoll,
 * whose EPOLLEXCLUSIVE is the kernel's). Then one wakeup of the file.
 */
static void exclusive_armed(int n, int *ep, int efd, const int *arm)
{
	int i;

	for (i = 0; i < n; i++) {
		ep[i] = t_epoll();
		t_ctl(ep[i], EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, i);
	}
	for (i = 0; i < n; i++)
		t_expect_none(ep[arm[i]], 0);
	efd_signal(efd);
}

START_TEST(dev_exclusive_wakes_one_of_several_instances)
{
	struct t_waiter w[T_NINST];
	int ep[T_NINST], efd, stop, i, woken = 0;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(stop, 0);
	if (t_emulated()) {
		/* Armed last to first: the order of arming is what counts. */
		static const int arm[T_NINST] = {2, 1, 0};

		exclusive_armed(T_NINST, ep, efd, arm);
		/* The first armed, not the first registered, has it. */
		t_expect1(ep[2], 0, 2, EPOLLIN);
		t_expect_none(ep[1], 0);
		t_expect_none(ep[0], 0);
		for (i = 0; i < T_NINST; i++)
			t_close(ep[i]);
		t_close(stop);
		t_close(efd);
		return;
	}
	exclusive_round(T_NINST, ep, w, efd, stop);
	for (i = 0; i < T_NINST; i++)
		woken += waiter_got(&w[i], i);
	/* The eventfd stays readable, yet one wakeup woke one instance. */
	ck_assert_int_eq(woken, 1);
	/* The first registered is the first on the file's wait queue. */
	ck_assert_int_eq(waiter_got(&w[0], 0), 1);
	for (i = 0; i < T_NINST; i++)
		t_close(ep[i]);
	t_close(stop);
	t_close(efd);
}
END_TEST

START_TEST(dev_exclusive_unwoken_instance_misses_ready_fd)
{
	/*
	 * The instance that was not woken did not queue the event either:
	 * a wait on it finds nothing, though the eventfd is readable.
	 */
	struct t_waiter w[2];
	int ep[2], efd, stop, i;
	uint64_t v;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(stop, 0);
	if (t_emulated()) {
		/*
		 * Armed in registration order, the emulation matches the
		 * kernel: ep[1]'s poll never fired, so it has no event.
		 */
		static const int arm[2] = {0, 1};

		exclusive_armed(2, ep, efd, arm);
		ck_assert_int_eq(t_poll1(efd, POLLIN, 0), POLLIN);
		t_expect_none(ep[1], 0);
		t_expect_none(ep[1], 0);
		/* ep[0]'s re-arm finds the eventfd readable: level. */
		t_expect1(ep[0], 0, 0, EPOLLIN);
		t_expect1(ep[0], 0, 0, EPOLLIN);
		for (i = 0; i < 2; i++)
			t_close(ep[i]);
		t_close(stop);
		t_close(efd);
		return;
	}
	exclusive_round(2, ep, w, efd, stop);
	ck_assert_int_eq(waiter_got(&w[0], 0), 1);
	ck_assert_int_eq(waiter_got(&w[1], 1), 0);
	/* Quiet the stop fd so only the eventfd could still be reported. */
	ck_assert_int_eq(read(stop, &v, sizeof(v)), sizeof(v));
	ck_assert_int_eq(t_poll1(efd, POLLIN, 0), POLLIN);
	t_expect_none(ep[1], 0);
	/* The woken one queued it, level-triggered: still there. */
	t_expect1(ep[0], 0, 0, EPOLLIN);
	for (i = 0; i < 2; i++)
		t_close(ep[i]);
	t_close(stop);
	t_close(efd);
}
END_TEST

/*
 * Under emulation an instance with nobody waiting takes the wakeup all the
 * same: its io_uring poll completes and counts as the one woken, so the
 * waiter on the other instance sleeps on and that instance never has the
 * event. Its waiter is released through @stop after T_QUIET_MS.
 */
static void exclusive_idle_takes_wakeup(void)
{
	const struct timespec quiet = {0, T_QUIET_MS * 1000000L};
	struct t_waiter w;
	atomic_int done = 0;
	int idle, busy, efd, stop, blocked;
	uint64_t v;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(stop, 0);
	idle = t_epoll();
	busy = t_epoll();
	t_ctl(idle, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, 1);
	t_ctl(busy, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, 2);
	t_ctl(busy, EPOLL_CTL_ADD, stop, EPOLLIN, T_STOP);
	/* Arm idle's poll first, then busy's. */
	t_expect_none(idle, 0);
	t_expect_none(busy, 0);
	waiter_start(&w, busy, &done);
	blocked = waiter_blocked(&w);
	efd_signal(efd);
	nanosleep(&quiet, NULL);
	/* Still asleep: the wakeup went to idle. */
	ck_assert_int_eq(atomic_load(&done), 0);
	efd_signal(stop);
	t_thread_join(w.thread);
	ck_assert_int_eq(blocked, 0);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(waiter_got(&w, T_STOP), 1);
	ck_assert_int_eq(read(stop, &v, sizeof(v)), sizeof(v));
	t_expect1(idle, 0, 1, EPOLLIN);
	/* busy missed it for good, though the eventfd is readable. */
	ck_assert_int_eq(t_poll1(efd, POLLIN, 0), POLLIN);
	t_expect_none(busy, 0);
	t_close(idle);
	t_close(busy);
	t_close(stop);
	t_close(efd);
}

START_TEST(dev_exclusive_instance_without_waiter_still_queues)
{
	/*
	 * An instance with nobody waiting does not count as woken: the
	 * wakeup goes on to the next instance, and both have the event.
	 */
	struct t_waiter w;
	atomic_int done = 0;
	int idle, busy, efd, blocked;

	if (t_emulated()) {
		exclusive_idle_takes_wakeup();
		return;
	}
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	idle = t_epoll();
	busy = t_epoll();
	/* idle first, so it is first on the eventfd's wait queue. */
	t_ctl(idle, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, 1);
	t_ctl(busy, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, 2);
	waiter_start(&w, busy, &done);
	blocked = waiter_blocked(&w);
	efd_signal(efd);
	t_thread_join(w.thread);
	ck_assert_int_eq(blocked, 0);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(waiter_got(&w, 2), 1);
	t_expect1(idle, 0, 1, EPOLLIN);
	t_close(idle);
	t_close(busy);
	t_close(efd);
}
END_TEST

START_TEST(dev_exclusive_no_waiter_anywhere)
{
	/*
	 * With no waiter in any instance, no instance counts as woken:
	 * every one of them queues the event, at each wakeup.
	 */
	int ep[T_NINST], efd, i, r;
	uint64_t v;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	for (i = 0; i < T_NINST; i++) {
		ep[i] = t_epoll();
		t_ctl(ep[i], EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE, i);
		/* Under emulation: submit the ADD, arming in order. */
		t_expect_none(ep[i], 0);
	}
	for (r = 0; r < 2 * T_NINST; r++) {
		efd_signal(efd);
		if (t_emulated()) {
			/*
			 * One instance per wakeup, the first on the wait
			 * queue. Its one-shot poll left the queue and is
			 * re-armed, at the back, by the wait that follows
			 * the report: the instances take turns.
			 */
			for (i = 0; i < T_NINST; i++) {
				if (i == r % T_NINST)
					t_expect1(ep[i], 0, i, EPOLLIN);
				else
					t_expect_none(ep[i], 0);
			}
		} else {
			for (i = 0; i < T_NINST; i++)
				t_expect1(ep[i], 0, i, EPOLLIN);
		}
		ck_assert_int_eq(read(efd, &v, sizeof(v)), sizeof(v));
		/* Nothing left anywhere; under emulation, the re-arm. */
		for (i = 0; i < T_NINST; i++)
			t_expect_none(ep[i], 0);
	}
	for (i = 0; i < T_NINST; i++)
		t_close(ep[i]);
	t_close(efd);
}
END_TEST

/*
 * (c) poll(2) on the epoll fd itself, made as a raw syscall: the C
 * library's poll, ppoll, select and pselect are ringpoll's (tests in
 * pollable.c), but a raw syscall polls the io_uring fd: writable while the
 * ring has room, and readable only while a completion waits in it.
 */
static int raw_poll1(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	struct timespec ts = { 0, 0 };

	ck_assert_int_ge(syscall(SYS_ppoll, &p, 1, &ts, NULL, _NSIG / 8), 0);
	return p.revents;
}

START_TEST(dev_epollfd_raw_poll_sees_ring)
{
	int epfd = t_epoll();

	ck_assert_int_eq(raw_poll1(epfd, POLLIN | POLLOUT),
			 t_emulated() ? POLLOUT : 0);
	/* The C library's poll answers as the kernel's epoll fd. */
	ck_assert_int_eq(t_poll1(epfd, POLLIN | POLLOUT, 0), 0);
	t_close(epfd);
}
END_TEST

/*
 * (d) close() of an instance while a thread waits on it. The waiter's
 * epoll_wait is made directly, not through t_wait: its errno and how long
 * it took are the result.
 */
struct t_closewait {
	pthread_t thread;
	_Atomic pid_t tid;
	atomic_int done;
	int epfd;
	int timeout;
	int n;
	int err;
	int64_t elapsed;
	struct epoll_event ev[2];
};

static void *closewait_main(void *arg)
{
	struct t_closewait *c = arg;
	int64_t start;

	c->tid = gettid();
	start = t_now_ms();
	errno = 0;
	c->n = epoll_wait(c->epfd, c->ev, 2, c->timeout);
	c->err = errno;
	c->elapsed = t_now_ms() - start;
	atomic_store(&c->done, 1);
	return NULL;
}

/* Starts the waiter on @epfd and returns once it sleeps in its wait. */
static void closewait_start(struct t_closewait *c, int epfd, int timeout)
{
	memset(c, 0, sizeof(*c));
	c->epfd = epfd;
	c->timeout = timeout;
	c->n = -2;
	t_thread_start(&c->thread, closewait_main, c);
	while (!c->tid)
		sched_yield();
	ck_assert_int_eq(t_task_blocked(getpid(), c->tid), 0);
}

/* Polls @flag until it is set or @ms pass; returns its value. */
static int t_flag_within(atomic_int *flag, int ms)
{
	const struct timespec tick = {0, 1000000};
	int64_t deadline = t_now_ms() + ms;

	while (!atomic_load(flag) && t_now_ms() < deadline)
		nanosleep(&tick, NULL);
	return atomic_load(flag);
}

START_TEST(dev_close_instance_during_wait_event_after)
{
	const struct timespec quiet = {0, T_QUIET_MS * 1000000L};
	struct t_closewait c;
	int epfd, p[2];

	epfd = t_epoll();
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	closewait_start(&c, epfd, T_LONG_MS);
	t_close(epfd);
	/* On both, the number is free once close() returns. */
	t_assert_errno(fcntl(epfd, F_GETFD), EBADF);
	if (t_emulated()) {
		/* The wait ends at the close, with nothing to report. */
		ck_assert_int_eq(t_flag_within(&c.done, T_LONG_MS), 1);
		t_write(p[1], 1);
		t_thread_join(c.thread);
		ck_assert_int_eq(c.n, -1);
		ck_assert_int_eq(c.err, EBADF);
		ck_assert_int_lt(c.elapsed, T_LONG_MS);
		t_close(p[0]);
		t_close(p[1]);
		return;
	}
	/*
	 * The waiter's reference keeps the instance alive, registrations
	 * and all: it sleeps on, and an event still reaches it.
	 */
	nanosleep(&quiet, NULL);
	ck_assert_int_eq(atomic_load(&c.done), 0);
	ck_assert_int_eq(t_task_blocked(getpid(), c.tid), 0);
	t_write(p[1], 1);
	t_thread_join(c.thread);
	ck_assert_int_eq(c.n, 1);
	ck_assert_uint_eq(c.ev[0].data.u64, 1);
	ck_assert_int_eq(c.ev[0].events, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/* Long enough to tell "ended at the close" from "ran to its timeout". */
#define T_ORPHAN_MS 500

START_TEST(dev_close_instance_during_wait_timeout)
{
	struct t_closewait c;
	int epfd;

	epfd = t_epoll();
	closewait_start(&c, epfd, T_ORPHAN_MS);
	t_close(epfd);
	t_thread_join(c.thread);
	if (t_emulated()) {
		/* Ended by the close, well before its timeout. */
		ck_assert_int_eq(c.n, -1);
		ck_assert_int_eq(c.err, EBADF);
		ck_assert_int_lt(c.elapsed, T_ORPHAN_MS);
		return;
	}
	/* Nothing ends the orphan's wait but its timeout. */
	ck_assert_int_eq(c.n, 0);
	/* Two millisecond stamps: allow one for truncation. */
	ck_assert_int_ge(c.elapsed, T_ORPHAN_MS - 1);
}
END_TEST

/*
 * The same, with every fd used up when close() is called: the close must
 * not depend on a free fd. On both, close() returns 0 and the number is
 * free at once; ringpoll's waiter ends with EBADF, the kernel's sleeps on.
 */
START_TEST(dev_close_instance_during_wait_no_free_fd)
{
	const struct timespec quiet = {0, T_QUIET_MS * 1000000L};
	struct t_closewait c;
	struct t_fds f;
	int epfd, p[2], ret, err = 0;

	epfd = t_epoll();
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	closewait_start(&c, epfd, T_LONG_MS);
	ret = t_fds_exhaust(&f);
	if (ret == 0) {
		ret = close(epfd);
		err = fcntl(epfd, F_GETFD) < 0 ? errno : 0;
	}
	t_fds_release(&f);
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(err, EBADF);
	if (t_emulated()) {
		ck_assert_int_eq(t_flag_within(&c.done, T_LONG_MS), 1);
		t_write(p[1], 1);
		t_thread_join(c.thread);
		ck_assert_int_eq(c.n, -1);
		ck_assert_int_eq(c.err, EBADF);
		t_close(p[0]);
		t_close(p[1]);
		return;
	}
	nanosleep(&quiet, NULL);
	ck_assert_int_eq(atomic_load(&c.done), 0);
	ck_assert_int_eq(t_task_blocked(getpid(), c.tid), 0);
	t_write(p[1], 1);
	t_thread_join(c.thread);
	ck_assert_int_eq(c.n, 1);
	ck_assert_uint_eq(c.ev[0].data.u64, 1);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/*
 * (e) The thread that submits a poll runs its completion. Every test arms
 * the pipe's poll in thread A (epoll_wait with a zero timeout submits the
 * ADD), then A does something else while thread B sleeps in epoll_wait on
 * the same instance, and the pipe becomes readable. Whether and when B is
 * woken depends on A under ringpoll, never under the kernel.
 */
enum t_sub_mode {
	T_SUB_SLEEP, /* A sleeps in epoll_wait on another instance */
	T_SUB_SPIN,  /* A spins in user space, no syscall */
	T_SUB_VFORK, /* A is a vfork parent: uninterruptible sleep */
};

struct t_submitter {
	pthread_t thread;
	_Atomic pid_t tid;
	atomic_int armed;
	atomic_int stop;
	atomic_int done;
	enum t_sub_mode mode;
	int epfd;
	int other;
	int armed_n;
	/* T_SUB_SLEEP: the result of the wait on other */
	int n;
	int err;
	struct epoll_event ev[2];
	/* T_SUB_VFORK: the child says started[1], waits on release[0] */
	int started[2];
	int release[2];
	pid_t child;
	int status;
};

/*
 * The vfork child shares A's memory and runs on its own stack: raw
 * syscalls only, and no sanitizer instrumentation, whose state (TLS,
 * shadow stack) is A's.
 */
__attribute__((no_sanitize_address, no_sanitize_thread)) static int
submitter_child(void *arg)
{
	struct t_submitter *a = arg;
	static char byte;

	syscall(SYS_write, a->started[1], "s", 1);
	/* A blocking read: A stays in vfork until the test releases us. */
	syscall(SYS_read, a->release[0], &byte, 1);
	return 0;
}

#define T_CHILD_STACK (256 * 1024)

static void *submitter_main(void *arg)
{
	struct t_submitter *a = arg;
	struct epoll_event ev[2];

	a->tid = gettid();
	/* Submits the ADD: the pipe's poll is A's. */
	a->armed_n = epoll_wait(a->epfd, ev, 2, 0);
	atomic_store(&a->armed, 1);
	switch (a->mode) {
	case T_SUB_SLEEP:
		errno = 0;
		a->n = epoll_wait(a->other, a->ev, 2, T_LONG_MS);
		a->err = errno;
		break;
	case T_SUB_SPIN:
		/* Atomic loads only: nothing here enters the kernel. */
		while (!atomic_load(&a->stop))
			;
		break;
	case T_SUB_VFORK: {
		/*
		 * clone(CLONE_VM | CLONE_VFORK), as posix_spawn does: the
		 * parent sleeps uninterruptibly until the child exits.
		 * Not vfork(): the preload turns that into fork().
		 */
		char *stack = mmap(NULL, T_CHILD_STACK, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1,
				   0);

		if (stack == MAP_FAILED)
			break;
		a->child = clone(submitter_child, stack + T_CHILD_STACK,
				 CLONE_VM | CLONE_VFORK | SIGCHLD, a);
		if (a->child > 0 && waitpid(a->child, &a->status, 0) < 0)
			a->status = -1;
		munmap(stack, T_CHILD_STACK);
		break;
	}
	}
	atomic_store(&a->done, 1);
	return NULL;
}

/* Starts A on @epfd and returns once its poll is armed. */
static void submitter_start(struct t_submitter *a, enum t_sub_mode mode,
			    int epfd, int other)
{
	memset(a, 0, sizeof(*a));
	a->mode = mode;
	a->epfd = epfd;
	a->other = other;
	a->armed_n = -2;
	a->n = -2;
	a->status = -1;
	a->started[0] = a->started[1] = a->release[0] = a->release[1] = -1;
	if (mode == T_SUB_VFORK) {
		/* Blocking: the child's read must sleep. */
		ck_assert_int_eq(pipe2(a->started, O_CLOEXEC), 0);
		ck_assert_int_eq(pipe2(a->release, O_CLOEXEC), 0);
	}
	t_thread_start(&a->thread, submitter_main, a);
	ck_assert_int_eq(t_flag_within(&a->armed, T_LONG_MS), 1);
	ck_assert_int_eq(a->armed_n, 0);
}

/* 'D' while @tid sleeps uninterruptibly; 0 if its state is unreadable. */
static char t_task_state(pid_t tid)
{
	char path[64], buf[512], *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	t_close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* Returns once A's vfork child runs and A sleeps in the clone. */
static void submitter_in_vfork(struct t_submitter *a)
{
	const struct timespec tick = {0, 1000000};
	int64_t deadline = t_now_ms() + T_LONG_MS;
	char c;

	ck_assert_int_eq(t_poll1(a->started[0], POLLIN, T_LONG_MS), POLLIN);
	ck_assert_int_eq(read(a->started[0], &c, 1), 1);
	/*
	 * Running the task work needs A out of the kernel: before it sleeps
	 * in the clone a pending completion would still be run (the clone
	 * restarts). So the event comes only once A is asleep.
	 */
	while (t_task_state(a->tid) != 'D' && t_now_ms() < deadline)
		nanosleep(&tick, NULL);
	ck_assert_int_eq(t_task_state(a->tid), 'D');
}

static void submitter_finish(struct t_submitter *a)
{
	if (a->mode == T_SUB_SPIN)
		atomic_store(&a->stop, 1);
	if (a->mode == T_SUB_VFORK)
		ck_assert_int_eq(write(a->release[1], "r", 1), 1);
	t_thread_join(a->thread);
	if (a->mode == T_SUB_VFORK) {
		ck_assert_int_gt(a->child, 0);
		ck_assert_msg(WIFEXITED(a->status) && !WEXITSTATUS(a->status),
			      "vfork child status 0x%x", a->status);
		t_close(a->started[0]);
		t_close(a->started[1]);
		t_close(a->release[0]);
		t_close(a->release[1]);
	}
}

/*
 * TSan intercepts clone() and takes the CLONE_VM child for a forked one;
 * with the memory shared, the parent then believes itself that child and
 * refuses to start threads. The other submitter tests cover the threads.
 */
static const char *t_clone_vm_skip(void)
{
#if defined(__SANITIZE_THREAD__)
	return "clone(CLONE_VM) confuses ThreadSanitizer";
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
	return "clone(CLONE_VM) confuses ThreadSanitizer";
#endif
#endif
	return NULL;
}

START_TEST(second_waiter_while_owner_sleeps_elsewhere)
{
	/*
	 * A asleep in another instance's wait is woken to run the
	 * completion (ringpoll) or not involved at all (kernel): B gets the
	 * event while A sleeps on, and A's own wait is not disturbed, no
	 * EINTR, no early return.
	 */
	struct t_submitter a;
	struct t_waiter w;
	atomic_int done = 0;
	int epfd, other, stop, p[2];

	epfd = t_epoll();
	other = t_epoll();
	stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(stop, 0);
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(other, EPOLL_CTL_ADD, stop, EPOLLIN, T_STOP);
	submitter_start(&a, T_SUB_SLEEP, epfd, other);
	ck_assert_int_eq(t_task_blocked(getpid(), a.tid), 0);
	waiter_start(&w, epfd, &done);
	ck_assert_int_eq(waiter_blocked(&w), 0);
	t_write(p[1], 1);
	t_thread_join(w.thread);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(waiter_got(&w, 1), 1);
	ck_assert_int_eq(atomic_load(&a.done), 0);
	ck_assert_int_eq(t_task_blocked(getpid(), a.tid), 0);
	efd_signal(stop);
	submitter_finish(&a);
	ck_assert_int_eq(a.n, 1);
	ck_assert_uint_eq(a.ev[0].data.u64, T_STOP);
	ck_assert_int_eq(a.ev[0].events, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(stop);
	t_close(other);
	t_close(epfd);
}
END_TEST

START_TEST(second_waiter_while_owner_spins)
{
	/*
	 * A spins without a syscall until B has its event. Under ringpoll
	 * the completion waits for A to leave the kernel, which the
	 * scheduler tick makes it do within 1/HZ: B is woken late by that
	 * much (too little to assert), not at A's next syscall, which comes
	 * only after B's wait. Under the kernel A is not involved.
	 */
	struct t_submitter a;
	struct t_waiter w;
	atomic_int done = 0;
	int epfd, p[2];

	epfd = t_epoll();
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	submitter_start(&a, T_SUB_SPIN, epfd, -1);
	waiter_start(&w, epfd, &done);
	ck_assert_int_eq(waiter_blocked(&w), 0);
	t_write(p[1], 1);
	t_thread_join(w.thread);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(waiter_got(&w, 1), 1);
	ck_assert_int_eq(atomic_load(&a.done), 0);
	submitter_finish(&a);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(second_waiter_while_owner_in_vfork)
{
	/*
	 * A sleeps uninterruptibly, as a vfork (posix_spawn) parent does
	 * until its child execs or exits. The kernel reports the event to
	 * B at once. So does ringpoll: a second waiting thread makes the
	 * instance the kernel's epoll (A's ring could not be entered by B,
	 * and A runs nothing while it sleeps so).
	 */
	struct t_submitter a;
	struct t_waiter w;
	atomic_int done = 0;
	int epfd, p[2];

	epfd = t_epoll();
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	submitter_start(&a, T_SUB_VFORK, epfd, -1);
	submitter_in_vfork(&a);
	waiter_start(&w, epfd, &done);
	ck_assert_int_eq(waiter_blocked(&w), 0);
	t_write(p[1], 1);
	t_thread_join(w.thread);
	/* The event came while A was still in the vfork. */
	ck_assert_int_eq(t_task_state(a.tid), 'D');
	submitter_finish(&a);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(waiter_got(&w, 1), 1);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(dev_events_unmapped_after_use)
{
	int st, ret;
	pid_t pid;

	/* In a child, which may die of it; the instance is the child's. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int epfd = epoll_create1(EPOLL_CLOEXEC), p[2];
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
		void *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		T_CHILD_REQUIRE(epfd >= 0 && buf != MAP_FAILED, 1);
		T_CHILD_REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0, 2);
		T_CHILD_REQUIRE(epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev) == 0,
				3);
		T_CHILD_REQUIRE(write(p[1], "x", 1) == 1, 4);
		T_CHILD_REQUIRE(epoll_wait(epfd, buf, 1, 0) == 1, 5);
		T_CHILD_REQUIRE(munmap(buf, 4096) == 0, 6);
		T_CHILD_REQUIRE(write(p[1], "x", 1) == 1, 7);
		/* Die of it: a sanitizer's handler would exit instead. */
		signal(SIGSEGV, SIG_DFL);
		T_BAD_POINTER_BEGIN();
		ret = epoll_wait(epfd, buf, 1, 0);
		T_BAD_POINTER_END();
		T_CHILD_REQUIRE(ret == -1 && errno == EFAULT, 8);
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	if (t_emulated())
		ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
			      "status 0x%x", st);
	else
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "status 0x%x", st);
}
END_TEST

Suite *t_suite_deviations(void)
{
	Suite *s = suite_create("deviations");
	TCase *tc = t_tcase("deviations");

	tcase_add_test(tc, dev_dup_registration_survives_close_of_original);
	tcase_add_test(tc, dev_dup_registration_cannot_be_deleted);
	tcase_add_test(tc, dev_dup_last_close_removes_registration);
	tcase_add_test(tc, dev_exclusive_wakes_one_of_several_instances);
	tcase_add_test(tc, dev_exclusive_unwoken_instance_misses_ready_fd);
	tcase_add_test(tc, dev_exclusive_instance_without_waiter_still_queues);
	tcase_add_test(tc, dev_exclusive_no_waiter_anywhere);
	tcase_add_test(tc, dev_epollfd_raw_poll_sees_ring);
	tcase_add_test(tc, dev_close_instance_during_wait_event_after);
	tcase_add_test(tc, dev_close_instance_during_wait_timeout);
	tcase_add_test(tc, dev_close_instance_during_wait_no_free_fd);
	tcase_add_test(tc, second_waiter_while_owner_sleeps_elsewhere);
	tcase_add_test(tc, second_waiter_while_owner_spins);
	t_add_unless(tc, second_waiter_while_owner_in_vfork, t_clone_vm_skip());
	t_add_unless(tc, dev_events_unmapped_after_use, t_bad_pointer_skip());
	suite_add_tcase(s, tc);
	return s;
}
