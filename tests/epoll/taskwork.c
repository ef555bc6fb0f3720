// SPDX-License-Identifier: MIT
/*
 * An epoll instance must not disturb the threads that use it (issue 12).
 *
 * The kernel's epoll queues nothing on the thread that waits: when a
 * registered file becomes ready while that thread does something else,
 * the something else goes on as if epoll did not exist. An io_uring poll
 * completes as task work of the thread that submitted it; on a
 * COOP_TASKRUN ring (ringpoll's before) that is signalled with
 * TIF_NOTIFY_SIGNAL, which cuts any interruptible sleep of the thread
 * short. Sleeps that restart
 * (poll, nanosleep) hide it; those that do not fail with EINTR though no
 * signal came: recv and accept with SO_RCVTIMEO, sigtimedwait, the
 * kernel's own epoll_wait. The first cases pin the kernel's behaviour
 * for each: the thread waited on an instance once, then sleeps in such a
 * call while another thread makes a registered fd ready, and the call
 * ends at its timeout, not before and not with EINTR. (ringpoll's ring
 * is DEFER_TASKRUN now, owned by the thread that waits: completions run
 * in its io_uring_enter only. The kernel still notifies the thread once
 * when it frees the ring: dev_after_close_of_instance_one_eintr.)
 *
 * The last cases pin what an instance shared by threads must keep doing
 * whichever thread owns its ring: waited only in a thread that did not
 * create it, ctl from a thread that does not wait, several waiters, the
 * waiting thread gone, a close from a thread that does not wait.
 *
 * Times here are correctness bounds (a timeout is not cut short, an EOF
 * comes within a second), never speed.
 */
#include "t_epoll.h"

/* The receive timeout of the sleeping call, and when the event comes. */
#define TW_TIMEOUT_MS 800
#define TW_EVENT_MS 150
/*
 * A timeout is not reported before it: SO_RCVTIMEO is rounded up to
 * jiffies, so the only slack is how the test reads the clock.
 */
#define TW_TIMEOUT_MIN_MS (TW_TIMEOUT_MS - 100)

/* data.u64 of the fds under test and of the stop eventfd. */
#define TW_HIT 1
#define TW_OTHER 2
#define TW_STOP 99

/* A thread that writes one byte to @fd @delay_ms after it starts. */
struct tw_poke {
	pthread_t thread;
	int fd;
	int delay_ms;
	ssize_t wrote;
	int64_t at;
};

static void *poke_main(void *arg)
{
	struct tw_poke *p = arg;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)p->delay_ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
		;
	p->wrote = write(p->fd, "x", 1);
	p->at = t_now_ms();
	return NULL;
}

static void poke_start(struct tw_poke *p, int fd, int delay_ms)
{
	p->fd = fd;
	p->delay_ms = delay_ms;
	p->wrote = -2;
	p->at = 0;
	t_thread_start(&p->thread, poke_main, p);
}

/*
 * The poker's write happened while the call slept (before @before), so
 * the call slept through an event.
 */
static void poke_happened(struct tw_poke *p, int64_t before)
{
	ck_assert_int_eq(p->wrote, 1);
	ck_assert_int_lt(p->at, before);
}

/*
 * This thread registers @fd on @epfd and waits on the instance once: the
 * wait submits the poll, so its completion is this thread's task work.
 * The fd is not ready yet: the wait times out at once.
 */
static void wait_once(int epfd, int fd, uint32_t events)
{
	struct epoll_event ev[2];

	t_ctl(epfd, EPOLL_CTL_ADD, fd, events, TW_HIT);
	ck_assert_int_eq(t_wait(epfd, ev, 2, 0), 0);
}

static void set_rcvtimeo(int fd, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	ck_assert_int_eq(
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

static void set_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK), 0);
}

/*
 * The sleeping call returned @ret with @err, @elapsed ms after it began:
 * it must have timed out (EAGAIN), and not before its timeout.
 */
#define tw_assert_timed_out(what, ret, err, elapsed)                           \
	do {                                                                   \
		ck_assert_msg((ret) == -1 && (err) == EAGAIN,                  \
			      "%s: %ld (%s) after %lld ms, want EAGAIN after " \
			      "%d ms",                                         \
			      (what), (long)(ret), strerror(err),              \
			      (long long)(elapsed), TW_TIMEOUT_MS);            \
		ck_assert_msg((elapsed) >= TW_TIMEOUT_MIN_MS,                  \
			      "%s: timed out after %lld ms of %d", (what),     \
			      (long long)(elapsed), TW_TIMEOUT_MS);            \
	} while (0)

/*
 * Case 1: recv on @rd (blocking, SO_RCVTIMEO) after one wait on an
 * instance where pipe p is registered with @events, while another thread
 * writes p. The event is still there for the next wait.
 */
static void recv_not_interrupted(int rd, uint32_t events)
{
	struct tw_poke poke;
	int64_t t0, elapsed;
	int epfd = t_epoll(), p[2], err;
	ssize_t ret;
	char c;

	t_pipe(p);
	set_blocking(rd);
	set_rcvtimeo(rd, TW_TIMEOUT_MS);
	wait_once(epfd, p[0], events);
	poke_start(&poke, p[1], TW_EVENT_MS);
	t0 = t_now_ms();
	ret = recv(rd, &c, 1, 0);
	err = errno;
	elapsed = t_now_ms() - t0;
	t_thread_join(poke.thread);
	tw_assert_timed_out("recv", ret, err, elapsed);
	poke_happened(&poke, t0 + elapsed);
	t_expect1(epfd, T_LONG_MS, TW_HIT, EPOLLIN);
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
}

START_TEST(recv_with_rcvtimeo_not_interrupted_by_events_lt)
{
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	recv_not_interrupted(sv[0], EPOLLIN);
	t_close(sv[0]);
	t_close(sv[1]);
}
END_TEST

START_TEST(recv_with_rcvtimeo_not_interrupted_by_events_et)
{
	int sv[2];

	t_socketpair(SOCK_STREAM, sv);
	recv_not_interrupted(sv[0], EPOLLIN | EPOLLET);
	t_close(sv[0]);
	t_close(sv[1]);
}
END_TEST

START_TEST(recv_tcp_with_rcvtimeo_not_interrupted_by_events_lt)
{
	int c, s;

	t_tcp_pair(&c, &s);
	recv_not_interrupted(s, EPOLLIN);
	t_close(c);
	t_close(s);
}
END_TEST

/* Case 2: the same for accept on a listener that nobody connects to. */
START_TEST(accept_with_rcvtimeo_not_interrupted_by_events)
{
	struct sockaddr_in addr;
	struct tw_poke poke;
	int64_t t0, elapsed;
	int epfd = t_epoll(), p[2], l, ret, err;

	t_pipe(p);
	l = t_tcp_listener(&addr);
	set_blocking(l);
	set_rcvtimeo(l, TW_TIMEOUT_MS);
	wait_once(epfd, p[0], EPOLLIN);
	poke_start(&poke, p[1], TW_EVENT_MS);
	t0 = t_now_ms();
	ret = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	err = errno;
	elapsed = t_now_ms() - t0;
	t_thread_join(poke.thread);
	if (ret >= 0)
		t_close(ret);
	tw_assert_timed_out("accept", ret, err, elapsed);
	poke_happened(&poke, t0 + elapsed);
	t_expect1(epfd, T_LONG_MS, TW_HIT, EPOLLIN);
	t_close(l);
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/* Case 3: sigtimedwait for a blocked signal that never comes. */
START_TEST(sigtimedwait_not_interrupted_by_events)
{
	const struct timespec timeout = {TW_TIMEOUT_MS / 1000,
					 (TW_TIMEOUT_MS % 1000) * 1000000L};
	struct tw_poke poke;
	sigset_t set, old;
	int64_t t0, elapsed;
	int epfd = t_epoll(), p[2], ret, err;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	t_pipe(p);
	wait_once(epfd, p[0], EPOLLIN);
	poke_start(&poke, p[1], TW_EVENT_MS);
	t0 = t_now_ms();
	ret = sigtimedwait(&set, NULL, &timeout);
	err = errno;
	elapsed = t_now_ms() - t0;
	t_thread_join(poke.thread);
	ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	tw_assert_timed_out("sigtimedwait", ret, err, elapsed);
	poke_happened(&poke, t0 + elapsed);
	t_expect1(epfd, T_LONG_MS, TW_HIT, EPOLLIN);
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/*
 * Case 4: a wait on a kernel epoll instance, made and waited on with raw
 * syscalls so that neither the header nor the preload takes it: it
 * returns 0 at its timeout. An eventfd that never fires is registered so
 * that it is a real wait on something.
 */
static long kernel_epoll_wait(int kfd, struct epoll_event *ev, int max, int ms)
{
#ifdef SYS_epoll_wait
	return syscall(SYS_epoll_wait, kfd, ev, max, ms);
#else
	return syscall(SYS_epoll_pwait, kfd, ev, max, ms, NULL, 0);
#endif
}

START_TEST(kernel_epoll_wait_not_interrupted_by_events)
{
	struct epoll_event kev = {.events = EPOLLIN}, ev[2];
	struct tw_poke poke;
	int64_t t0, elapsed;
	int epfd = t_epoll(), p[2], kfd, efd, err;
	long ret;

	t_pipe(p);
	kfd = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
	ck_assert_int_ge(kfd, 0);
	ck_assert(t_is_kernel_epoll(kfd));
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_eq(syscall(SYS_epoll_ctl, kfd, EPOLL_CTL_ADD, efd, &kev),
			 0);
	wait_once(epfd, p[0], EPOLLIN);
	poke_start(&poke, p[1], TW_EVENT_MS);
	t0 = t_now_ms();
	ret = kernel_epoll_wait(kfd, ev, 2, TW_TIMEOUT_MS);
	err = errno;
	elapsed = t_now_ms() - t0;
	t_thread_join(poke.thread);
	ck_assert_msg(ret == 0,
		      "kernel epoll_wait: %ld (%s) after %lld ms, "
		      "want 0 after %d ms",
		      ret, ret < 0 ? strerror(err) : "", (long long)elapsed,
		      TW_TIMEOUT_MS);
	ck_assert_msg(elapsed >= TW_TIMEOUT_MIN_MS,
		      "kernel epoll_wait: timed out after %lld ms of %d",
		      (long long)elapsed, TW_TIMEOUT_MS);
	poke_happened(&poke, t0 + elapsed);
	t_expect1(epfd, T_LONG_MS, TW_HIT, EPOLLIN);
	t_close(efd);
	t_close(kfd);
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/*
 * Case 5: the instance is gone, its polls with it; the kernel's waiter
 * sleeps in recv as if it never had an instance (the registered pipe is
 * written meanwhile, too). Deviation 10: the kernel frees an io_uring in
 * its exit work and notifies each thread that submitted to it then
 * (TWA_SIGNAL), 15-25 ms after the close; a recv with a timeout asleep
 * at that moment fails with EINTR, once. The next one sleeps its time.
 */
START_TEST(dev_after_close_of_instance_one_eintr)
{
	struct tw_poke poke;
	int64_t t0, elapsed;
	int epfd = t_epoll(), p[2], sv[2], err;
	ssize_t ret;
	char c;

	t_pipe(p);
	t_socketpair(SOCK_STREAM, sv);
	set_blocking(sv[0]);
	set_rcvtimeo(sv[0], TW_TIMEOUT_MS);
	wait_once(epfd, p[0], EPOLLIN);
	poke_start(&poke, p[1], TW_EVENT_MS);
	t_close(epfd);
	t0 = t_now_ms();
	ret = recv(sv[0], &c, 1, 0);
	err = errno;
	elapsed = t_now_ms() - t0;
	if (t_emulated() && ret < 0 && err == EINTR) {
		/* Once: the ring is freed, and nothing else is left. */
		t0 = t_now_ms();
		ret = recv(sv[0], &c, 1, 0);
		err = errno;
		elapsed = t_now_ms() - t0;
	}
	t_thread_join(poke.thread);
	tw_assert_timed_out("recv after close", ret, err, elapsed);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/* ---- Case 6: ownership of an instance shared by threads ---- */

static int flag_within(atomic_int *flag, int want, int ms)
{
	const struct timespec tick = {0, 1000000};
	int64_t deadline = t_now_ms() + ms;

	while (atomic_load(flag) < want && t_now_ms() < deadline)
		nanosleep(&tick, NULL);
	return atomic_load(flag) >= want;
}

/*
 * A thread that waits on @epfd @rounds times (each up to T_LONG_MS, or
 * forever with @forever), draining pipe @rd after each wait, and counts
 * the waits done in @done. With @own_first it first waits once with a
 * zero timeout, so that it is the thread that entered the ring first.
 */
struct tw_waiter {
	pthread_t thread;
	_Atomic pid_t tid;
	int epfd;
	int rd;
	int rounds;
	bool forever;
	bool own_first;
	/* Read while the thread sleeps in its next wait: atomic. */
	atomic_int first;
	atomic_int done;
	int n[4];
	struct epoll_event ev[4][4];
};

static void *waiter_main(void *arg)
{
	struct tw_waiter *w = arg;
	struct epoll_event ev[2];

	w->tid = gettid();
	if (w->own_first)
		w->first = t_wait(w->epfd, ev, 2, 0);
	for (int i = 0; i < w->rounds; i++) {
		w->n[i] =
		    t_wait(w->epfd, w->ev[i], 4, w->forever ? -1 : T_LONG_MS);
		if (w->rd >= 0)
			(void)t_drain(w->rd);
		atomic_fetch_add(&w->done, 1);
	}
	return NULL;
}

static void waiter_start(struct tw_waiter *w, int epfd, int rd, int rounds,
			 bool forever, bool own_first)
{
	memset(w, 0, sizeof(*w));
	w->epfd = epfd;
	w->rd = rd;
	w->rounds = rounds;
	w->forever = forever;
	w->own_first = own_first;
	w->first = -2;
	for (int i = 0; i < 4; i++)
		w->n[i] = -2;
	t_thread_start(&w->thread, waiter_main, w);
}

/* 0 once the waiter has done @done waits and sleeps in the next. */
static int waiter_blocked(struct tw_waiter *w, int done)
{
	while (!w->tid)
		sched_yield();
	if (!flag_within(&w->done, done, T_LONG_MS))
		return -1;
	return t_task_blocked(getpid(), w->tid);
}

START_TEST(created_in_main_waited_only_in_other_thread)
{
	struct tw_waiter w;
	int epfd = t_epoll(), p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, TW_HIT);
	waiter_start(&w, epfd, p[0], 3, false, false);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(waiter_blocked(&w, i), 0);
		t_write(p[1], 1);
	}
	t_thread_join(w.thread);
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(w.n[i] == 1, "wait %d: %d", i, w.n[i]);
		ck_assert_uint_eq(w.ev[i][0].data.u64, TW_HIT);
		ck_assert_uint_eq(w.ev[i][0].events, EPOLLIN);
	}
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

/*
 * The owner (the thread that entered the ring first) sleeps in a wait
 * with no timeout; a ctl from another thread must reach it.
 */
START_TEST(ctl_add_from_other_thread_wakes_owner_in_infinite_wait)
{
	struct tw_waiter w;
	int epfd = t_epoll(), p[2];

	t_pipe(p);
	waiter_start(&w, epfd, -1, 1, true, true);
	ck_assert_int_eq(waiter_blocked(&w, 0), 0);
	ck_assert_int_eq(w.first, 0);
	t_write(p[1], 1);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, TW_HIT);
	t_thread_join(w.thread);
	ck_assert_int_eq(w.n[0], 1);
	ck_assert_uint_eq(w.ev[0][0].data.u64, TW_HIT);
	ck_assert_uint_eq(w.ev[0][0].events, EPOLLIN);
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

START_TEST(ctl_mod_from_other_thread_wakes_owner_in_infinite_wait)
{
	struct tw_waiter w;
	int epfd = t_epoll(), p[2];

	t_pipe(p);
	/* A pipe's write end is never readable: nothing until the MOD. */
	t_ctl(epfd, EPOLL_CTL_ADD, p[1], EPOLLIN, TW_HIT);
	waiter_start(&w, epfd, -1, 1, true, true);
	ck_assert_int_eq(waiter_blocked(&w, 0), 0);
	ck_assert_int_eq(w.first, 0);
	t_ctl(epfd, EPOLL_CTL_MOD, p[1], EPOLLOUT, TW_HIT);
	t_thread_join(w.thread);
	ck_assert_int_eq(w.n[0], 1);
	ck_assert_uint_eq(w.ev[0][0].data.u64, TW_HIT);
	ck_assert_uint_eq(w.ev[0][0].events, EPOLLOUT);
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
}
END_TEST

START_TEST(ctl_del_from_other_thread_reaches_owner_in_infinite_wait)
{
	const struct timespec quiet = {0, T_QUIET_MS * 1000000L};
	struct tw_waiter w;
	int epfd = t_epoll(), p[2], q[2];

	t_pipe(p);
	t_pipe(q);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, TW_HIT);
	t_ctl(epfd, EPOLL_CTL_ADD, q[0], EPOLLIN, TW_OTHER);
	waiter_start(&w, epfd, -1, 1, true, true);
	ck_assert_int_eq(waiter_blocked(&w, 0), 0);
	ck_assert_int_eq(w.first, 0);
	t_ctl(epfd, EPOLL_CTL_DEL, p[0], 0, 0);
	/* The deleted fd must not wake the owner; give it time to. */
	t_write(p[1], 1);
	nanosleep(&quiet, NULL);
	ck_assert_int_eq(atomic_load(&w.done), 0);
	t_write(q[1], 1);
	t_thread_join(w.thread);
	ck_assert_int_eq(w.n[0], 1);
	ck_assert_uint_eq(w.ev[0][0].data.u64, TW_OTHER);
	ck_assert_uint_eq(w.ev[0][0].events, EPOLLIN);
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
	t_close(q[0]);
	t_close(q[1]);
}
END_TEST

/*
 * Two threads wait on one instance at once; EPOLLONESHOT pipes, each
 * re-armed with MOD by the waiter that read it. The writer puts a byte in
 * a pipe only once its last byte was taken, so every write is exactly one
 * event: each must be delivered once, to one waiter, none lost.
 */
#define TW_PIPES 64
#define TW_WRITES 1000

struct tw_shared {
	int epfd;
	int p[TW_PIPES][2];
	atomic_int busy[TW_PIPES];
	atomic_int delivered, dup, err;
};

struct tw_oneshot_waiter {
	pthread_t thread;
	_Atomic pid_t tid;
	struct tw_shared *s;
	int got;
};

static void *oneshot_waiter_main(void *arg)
{
	struct tw_oneshot_waiter *w = arg;
	struct tw_shared *s = w->s;
	struct epoll_event ev[4];
	bool stop = false;

	w->tid = gettid();
	while (!stop) {
		int n = t_wait(s->epfd, ev, 4, T_LONG_MS);

		if (n <= 0) {
			atomic_fetch_add(&s->err, 1);
			return NULL;
		}
		for (int j = 0; j < n; j++) {
			uint64_t i = ev[j].data.u64;
			char c[2];

			if (i == TW_STOP) {
				stop = true;
				continue;
			}
			if (i >= TW_PIPES) {
				atomic_fetch_add(&s->err, 1);
				continue;
			}
			/* A second report of one write finds the pipe empty. */
			if (read(s->p[i][0], c, 2) != 1) {
				atomic_fetch_add(&s->dup, 1);
				continue;
			}
			if (t_ctl_raw(s->epfd, EPOLL_CTL_MOD, s->p[i][0],
				      EPOLLIN | EPOLLONESHOT, i))
				atomic_fetch_add(&s->err, 1);
			w->got++;
			atomic_fetch_add(&s->delivered, 1);
			atomic_store(&s->busy[i], 0);
		}
	}
	return NULL;
}

START_TEST(two_waiters_oneshot_every_event_delivered_once)
{
	const struct timespec quiet = {0, T_QUIET_MS * 1000000L};
	struct tw_oneshot_waiter w[2];
	struct tw_shared *s = calloc(1, sizeof(*s));
	int64_t deadline;
	uint64_t one = 1;
	int stop;

	ck_assert_ptr_nonnull(s);
	s->epfd = t_epoll();
	for (int i = 0; i < TW_PIPES; i++) {
		t_pipe(s->p[i]);
		t_ctl(s->epfd, EPOLL_CTL_ADD, s->p[i][0],
		      EPOLLIN | EPOLLONESHOT, (uint64_t)i);
	}
	stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(stop, 0);
	/* Level-triggered: once signalled it reaches both waiters. */
	t_ctl(s->epfd, EPOLL_CTL_ADD, stop, EPOLLIN, TW_STOP);
	for (int k = 0; k < 2; k++) {
		memset(&w[k], 0, sizeof(w[k]));
		w[k].s = s;
		t_thread_start(&w[k].thread, oneshot_waiter_main, &w[k]);
	}
	for (int k = 0; k < 2; k++) {
		while (!w[k].tid)
			sched_yield();
		ck_assert_int_eq(t_task_blocked(getpid(), w[k].tid), 0);
	}
	deadline = t_now_ms() + T_LONG_MS;
	for (int k = 0; k < TW_WRITES; k++) {
		int i = k % TW_PIPES;

		while (atomic_load(&s->busy[i]) && t_now_ms() < deadline)
			sched_yield();
		ck_assert_msg(!atomic_load(&s->busy[i]),
			      "write %d: pipe %d never reported", k, i);
		atomic_store(&s->busy[i], 1);
		t_write(s->p[i][1], 1);
	}
	while (atomic_load(&s->delivered) < TW_WRITES && t_now_ms() < deadline)
		sched_yield();
	/* Time for a wrong second report to show. */
	nanosleep(&quiet, NULL);
	ck_assert_int_eq(write(stop, &one, sizeof(one)), sizeof(one));
	for (int k = 0; k < 2; k++)
		t_thread_join(w[k].thread);
	ck_assert_int_eq(atomic_load(&s->err), 0);
	ck_assert_int_eq(atomic_load(&s->dup), 0);
	ck_assert_int_eq(atomic_load(&s->delivered), TW_WRITES);
	/* Who gets which is the scheduler's: neither epoll promises both. */
	ck_assert_int_eq(w[0].got + w[1].got, TW_WRITES);
	for (int i = 0; i < TW_PIPES; i++) {
		t_close(s->p[i][0]);
		t_close(s->p[i][1]);
	}
	t_close(stop);
	t_close(s->epfd);
	free(s);
}
END_TEST

/*
 * The thread that owned the ring (it waited first, so its polls are
 * armed) exits; a pipe written before it exited and not yet reported, and
 * every registration, stay with the instance for the next thread.
 */
struct tw_owner {
	pthread_t thread;
	int epfd;
	int first;
	atomic_int armed, go;
};

/*
 * A waiter's timeout holds whatever another thread does meanwhile: a
 * second thread's wait(0) neither ends the first wait early nor starts
 * its time again. Under ringpoll the second wait makes the instance the
 * kernel's epoll, where the first waiter waits on for what is left, and
 * the ring it owned is freed: the kernel's notice of that (deviation 10)
 * may end its wait once with EINTR, never later than its timeout.
 */
struct tw_timed {
	pthread_t thread;
	int epfd, n, err;
	int64_t elapsed;
};

static void *timed_main(void *arg)
{
	struct tw_timed *t = arg;
	struct epoll_event ev;
	int64_t t0 = t_now_ms();

	t->n = epoll_wait(t->epfd, &ev, 1, 600);
	t->err = errno;
	t->elapsed = t_now_ms() - t0;
	return NULL;
}

START_TEST(dev_second_waiter_keeps_first_waiters_timeout)
{
	const struct timespec later = {0, 200 * 1000000L};
	struct tw_timed t = { .epfd = t_epoll() };
	struct epoll_event ev;
	int p[2];

	t_pipe(p);
	t_ctl(t.epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, TW_HIT);
	t_thread_start(&t.thread, timed_main, &t);
	nanosleep(&later, NULL);
	ck_assert_int_eq(epoll_wait(t.epfd, &ev, 1, 0), 0);
	t_thread_join(t.thread);
	if (t_emulated() && t.n == -1) {
		ck_assert_int_eq(t.err, EINTR);
		ck_assert_msg(t.elapsed >= 150 && t.elapsed < 780,
			      "EINTR after %lld ms", (long long)t.elapsed);
	} else {
		ck_assert_int_eq(t.n, 0);
		/* Not ended by the second wait, nor counted anew. */
		ck_assert_msg(t.elapsed >= 500 && t.elapsed < 780,
			      "first wait took %lld ms of 600",
			      (long long)t.elapsed);
	}
	/* And the instance still works, for both threads' kind of call. */
	t_write(p[1], 1);
	t_expect1(t.epfd, T_LONG_MS, TW_HIT, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(t.epfd);
}
END_TEST

/*
 * A one-shot entry reported to the owner is disabled while that thread
 * handles its fd. A second thread's wait (the instance becomes the
 * kernel's epoll) must not hand it the fd's hangup: only a MOD re-enables
 * it (KNOWN.md K).
 */
START_TEST(oneshot_spent_silent_to_a_second_waiter)
{
	const struct timespec later = {0, 200 * 1000000L};
	struct tw_timed t = { .epfd = t_epoll() };
	int p[2];

	t_pipe(p);
	t_ctl(t.epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLONESHOT, TW_HIT);
	t_write(p[1], 1);
	t_expect1(t.epfd, 0, TW_HIT, EPOLLIN);
	ck_assert_uint_eq(t_drain(p[0]), 1);
	t_thread_start(&t.thread, timed_main, &t);
	nanosleep(&later, NULL);
	t_close(p[1]);
	t_thread_join(t.thread);
	ck_assert_int_eq(t.n, 0);
	t_ctl(t.epfd, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, TW_HIT);
	t_expect1(t.epfd, 0, TW_HIT, EPOLLHUP);
	t_close(p[0]);
	t_close(t.epfd);
}
END_TEST

static void *owner_main(void *arg)
{
	struct tw_owner *o = arg;
	struct epoll_event ev[2];

	o->first = t_wait(o->epfd, ev, 2, 0);
	atomic_store(&o->armed, 1);
	flag_within(&o->go, 1, T_LONG_MS);
	pthread_exit(NULL);
}

static void owner_exits_keeps_pending(uint32_t et)
{
	const struct timespec quiet = {0, T_QUIET_MS * 1000000L};
	struct tw_owner o = {.first = -2};
	int epfd = t_epoll(), p[2], q[2];

	t_pipe(p);
	t_pipe(q);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | et, TW_HIT);
	t_ctl(epfd, EPOLL_CTL_ADD, q[0], EPOLLIN | et, TW_OTHER);
	o.epfd = epfd;
	t_thread_start(&o.thread, owner_main, &o);
	ck_assert(flag_within(&o.armed, 1, T_LONG_MS));
	ck_assert_int_eq(o.first, 0);
	t_write(p[1], 1);
	/* Give the owner's poll time to complete while the owner lives. */
	nanosleep(&quiet, NULL);
	atomic_store(&o.go, 1);
	t_thread_join(o.thread);
	/* The pending event. */
	t_expect1(epfd, T_LONG_MS, TW_HIT, EPOLLIN);
	if (et) {
		t_expect_none(epfd, T_QUIET_MS);
		t_write(p[1], 1);
		t_expect1(epfd, T_LONG_MS, TW_HIT, EPOLLIN);
	} else {
		/* Still readable: reported again, then armed again. */
		t_expect1(epfd, T_LONG_MS, TW_HIT, EPOLLIN);
		t_drain(p[0]);
		t_expect_none(epfd, T_QUIET_MS);
		t_write(p[1], 1);
		t_expect1(epfd, T_LONG_MS, TW_HIT, EPOLLIN);
		t_drain(p[0]);
	}
	/* A registration that had nothing pending. */
	t_write(q[1], 1);
	t_expect1(epfd, T_LONG_MS, TW_OTHER, EPOLLIN);
	t_close(epfd);
	t_close(p[0]);
	t_close(p[1]);
	t_close(q[0]);
	t_close(q[1]);
}

START_TEST(owner_exit_keeps_pending_events_and_registrations_lt)
{
	owner_exits_keeps_pending(0);
}
END_TEST

START_TEST(owner_exit_keeps_pending_events_and_registrations_et)
{
	owner_exits_keeps_pending(EPOLLET);
}
END_TEST

/*
 * close() of a registered socket from a thread that does not wait: the
 * instance must let go of the file, so that the peer sees the end of the
 * stream, within a second.
 */
#define TW_EOF_MS 1000

static void peer_sees_eof_within(int peer, int ms)
{
	int64_t t0 = t_now_ms();
	int rev = t_poll1(peer, POLLIN, ms);
	char c;

	ck_assert_msg(rev & POLLIN, "no EOF after %lld ms",
		      (long long)(t_now_ms() - t0));
	ck_assert_int_eq(read(peer, &c, 1), 0);
}

START_TEST(close_from_other_thread_while_owner_waits_peer_sees_eof)
{
	struct tw_waiter w;
	uint64_t one = 1;
	int epfd = t_epoll(), c, s, stop;

	t_tcp_pair(&c, &s);
	stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(stop, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN, TW_HIT);
	t_ctl(epfd, EPOLL_CTL_ADD, stop, EPOLLIN, TW_STOP);
	waiter_start(&w, epfd, -1, 1, false, true);
	ck_assert_int_eq(waiter_blocked(&w, 0), 0);
	ck_assert_int_eq(w.first, 0);
	t_close(s);
	peer_sees_eof_within(c, TW_EOF_MS);
	ck_assert_int_eq(write(stop, &one, sizeof(one)), sizeof(one));
	t_thread_join(w.thread);
	ck_assert_int_eq(w.n[0], 1);
	ck_assert_uint_eq(w.ev[0][0].data.u64, TW_STOP);
	t_close(stop);
	t_close(c);
	t_close(epfd);
}
END_TEST

/* The owner is busy elsewhere: a sleep of 2 s, not a wait. */
#define TW_BUSY_MS 2000

struct tw_busy {
	pthread_t thread;
	int epfd;
	int first;
	atomic_int armed;
};

static void *busy_main(void *arg)
{
	struct tw_busy *b = arg;
	struct epoll_event ev[2];
	struct timespec ts;

	b->first = t_wait(b->epfd, ev, 2, 0);
	atomic_store(&b->armed, 1);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += TW_BUSY_MS / 1000;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
		;
	return NULL;
}

START_TEST(close_from_other_thread_while_owner_busy_peer_sees_eof)
{
	struct tw_busy b = {.first = -2};
	int epfd = t_epoll(), c, s;

	t_tcp_pair(&c, &s);
	t_ctl(epfd, EPOLL_CTL_ADD, s, EPOLLIN, TW_HIT);
	b.epfd = epfd;
	t_thread_start(&b.thread, busy_main, &b);
	ck_assert(flag_within(&b.armed, 1, T_LONG_MS));
	ck_assert_int_eq(b.first, 0);
	t_close(s);
	peer_sees_eof_within(c, TW_EOF_MS);
	t_thread_join(b.thread);
	t_close(c);
	t_close(epfd);
}
END_TEST

/*
 * Four threads wait on one instance with every signal blocked while a
 * fifth changes the interest list all the time and the main thread makes
 * events: no wait may fail with EINTR, for no signal came.
 */
#define TW_WAITERS 4

struct tw_churn {
	int epfd, efd, p[2];
	atomic_int stop, eintr, other, events, ctl_err;
};

static void block_all_signals(void)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void *churn_waiter_main(void *arg)
{
	struct tw_churn *c = arg;

	block_all_signals();
	while (!atomic_load(&c->stop)) {
		struct epoll_event ev[4];
		int n = epoll_wait(c->epfd, ev, 4, 20);

		if (n < 0 && errno == EINTR)
			atomic_fetch_add(&c->eintr, 1);
		else if (n < 0)
			atomic_fetch_add(&c->other, 1);
		else
			atomic_fetch_add(&c->events, n);
	}
	return NULL;
}

static void *churn_ctl_main(void *arg)
{
	struct tw_churn *c = arg;

	block_all_signals();
	for (unsigned i = 0; !atomic_load(&c->stop); i++) {
		int bad = 0;

		/* The pipe's write end: writable, so its arms report. */
		bad |= t_ctl_raw(c->epfd, EPOLL_CTL_ADD, c->p[1],
				 EPOLLOUT | ((i & 1) ? EPOLLET : 0), TW_OTHER);
		bad |= t_ctl_raw(c->epfd, EPOLL_CTL_MOD, c->p[1],
				 (i & 2) ? EPOLLOUT : EPOLLIN, TW_OTHER);
		bad |= t_ctl_raw(c->epfd, EPOLL_CTL_MOD, c->efd,
				 (i & 1) ? EPOLLIN | EPOLLONESHOT
					 : EPOLLIN | EPOLLOUT | EPOLLONESHOT,
				 TW_HIT);
		bad |= t_ctl_raw(c->epfd, EPOLL_CTL_DEL, c->p[1], 0, 0);
		if (bad)
			atomic_fetch_add(&c->ctl_err, 1);
		sched_yield();
	}
	return NULL;
}

START_TEST(four_waiters_ctl_churn_signals_blocked_never_see_eintr)
{
	struct tw_churn c = {.epfd = t_epoll()};
	pthread_t th[TW_WAITERS + 1];
	sigset_t old, all;
	int64_t end;

	sigfillset(&all);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &all, &old), 0);
	t_pipe(c.p);
	c.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(c.efd, 0);
	t_ctl(c.epfd, EPOLL_CTL_ADD, c.efd, EPOLLIN | EPOLLONESHOT, TW_HIT);
	for (int i = 0; i < TW_WAITERS; i++)
		t_thread_start(&th[i], churn_waiter_main, &c);
	t_thread_start(&th[TW_WAITERS], churn_ctl_main, &c);
	end = t_now_ms() + 1000;
	while (t_now_ms() < end) {
		uint64_t one = 1, v;

		ck_assert_int_eq(write(c.efd, &one, sizeof(one)), 8);
		sched_yield();
		(void)!read(c.efd, &v, sizeof(v));
	}
	atomic_store(&c.stop, 1);
	for (int i = 0; i <= TW_WAITERS; i++)
		t_thread_join(th[i]);
	ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	ck_assert_int_eq(atomic_load(&c.eintr), 0);
	ck_assert_int_eq(atomic_load(&c.other), 0);
	ck_assert_int_eq(atomic_load(&c.ctl_err), 0);
	ck_assert_int_gt(atomic_load(&c.events), 0);
	t_close(c.p[0]);
	t_close(c.p[1]);
	t_close(c.efd);
	t_close(c.epfd);
}
END_TEST

Suite *t_suite_taskwork(void)
{
	Suite *s = suite_create("taskwork");
	TCase *tc = t_tcase("taskwork");

	tcase_add_test(tc, recv_with_rcvtimeo_not_interrupted_by_events_lt);
	tcase_add_test(tc, recv_with_rcvtimeo_not_interrupted_by_events_et);
	tcase_add_test(tc, recv_tcp_with_rcvtimeo_not_interrupted_by_events_lt);
	tcase_add_test(tc, accept_with_rcvtimeo_not_interrupted_by_events);
	tcase_add_test(tc, sigtimedwait_not_interrupted_by_events);
	tcase_add_test(tc, kernel_epoll_wait_not_interrupted_by_events);
	tcase_add_test(tc, dev_after_close_of_instance_one_eintr);
	tcase_add_test(tc, created_in_main_waited_only_in_other_thread);
	tcase_add_test(tc,
		       ctl_add_from_other_thread_wakes_owner_in_infinite_wait);
	tcase_add_test(tc,
		       ctl_mod_from_other_thread_wakes_owner_in_infinite_wait);
	tcase_add_test(
	    tc, ctl_del_from_other_thread_reaches_owner_in_infinite_wait);
	tcase_add_test(tc, two_waiters_oneshot_every_event_delivered_once);
	tcase_add_test(tc, dev_second_waiter_keeps_first_waiters_timeout);
	tcase_add_test(tc, oneshot_spent_silent_to_a_second_waiter);
	tcase_add_test(tc,
		       owner_exit_keeps_pending_events_and_registrations_lt);
	tcase_add_test(tc,
		       owner_exit_keeps_pending_events_and_registrations_et);
	tcase_add_test(tc,
		       close_from_other_thread_while_owner_waits_peer_sees_eof);
	tcase_add_test(tc,
		       close_from_other_thread_while_owner_busy_peer_sees_eof);
	tcase_add_test(tc,
		       four_waiters_ctl_churn_signals_blocked_never_see_eintr);
	suite_add_tcase(s, tc);
	return s;
}
