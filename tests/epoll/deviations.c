// SPDX-License-Identifier: MIT
/*
 * Behaviours where an io_uring emulation is known to differ from the
 * kernel's epoll. Each test pins the kernel's behaviour; under emulation
 * (t_emulated()) it takes a separate branch that will pin the emulation's
 * documented behaviour instead (see the README's list of deviations).
 *
 * (a) The kernel keys a registration by (file, fd) but removes it only
 *     when the file is finally released. After dup(fd), close(fd) leaves
 *     the registration alive, reporting events for the dup under the old
 *     data, and no fd can name it any more for DEL.
 * (b) EPOLLEXCLUSIVE: one wakeup of the file wakes one epoll instance
 *     that has a waiter, in registration order, and instances after it
 *     do not even queue the event.
 */
#include "t_epoll.h"

START_TEST(dev_dup_registration_survives_close_of_original)
{
	int epfd, p[2], d;

	if (t_emulated()) {
		/* TODO(rp): pin emulated behaviour */
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
		/* TODO(rp): pin emulated behaviour */
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
		/* TODO(rp): pin emulated behaviour */
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

START_TEST(dev_exclusive_wakes_one_of_several_instances)
{
	struct t_waiter w[T_NINST];
	int ep[T_NINST], efd, stop, i, woken = 0;

	if (t_emulated()) {
		/* TODO(rp): pin emulated behaviour */
		return;
	}
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(stop, 0);
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

	if (t_emulated()) {
		/* TODO(rp): pin emulated behaviour */
		return;
	}
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(stop, 0);
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
		/* TODO(rp): pin emulated behaviour */
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
	suite_add_tcase(s, tc);
	return s;
}
