// SPDX-License-Identifier: MIT
/*
 * An epoll fd is itself pollable: poll() and another epoll see it as
 * readable while its own interest list has a ready entry. Event loops
 * nest one inside another this way (glib in libuv, a library's private
 * loop in an application's). poll(2) on the epoll fd is tested in
 * pollable.c; an edge-triggered nesting differs under emulation: its tests
 * are in deviations.c.
 */
#include "t_epoll.h"

/* outer watches inner, inner watches a pipe. */
struct t_nest {
	int outer, inner;
	int p[2];
};

static void nest_open(struct t_nest *n, uint32_t outer_events)
{
	n->outer = t_epoll();
	n->inner = t_epoll();
	t_pipe(n->p);
	t_ctl(n->inner, EPOLL_CTL_ADD, n->p[0], EPOLLIN, 1);
	t_ctl(n->outer, EPOLL_CTL_ADD, n->inner, outer_events, 2);
}

static void nest_close(struct t_nest *n)
{
	t_close(n->p[0]);
	t_close(n->p[1]);
	t_close(n->inner);
	t_close(n->outer);
}

START_TEST(epollfd_nested_reports_in)
{
	struct t_nest n;

	nest_open(&n, EPOLLIN);
	t_expect_none(n.outer, 0);
	t_write(n.p[1], 1);
	t_expect1(n.outer, 0, 2, EPOLLIN);
	/* Looking did not consume: the inner event is still there. */
	t_expect1(n.inner, 0, 1, EPOLLIN);
	nest_close(&n);
}
END_TEST

START_TEST(epollfd_nested_never_writable)
{
	struct t_nest n;

	nest_open(&n, EPOLLIN | EPOLLOUT);
	t_expect_none(n.outer, 0);
	t_write(n.p[1], 1);
	t_expect1(n.outer, 0, 2, EPOLLIN);
	nest_close(&n);
}
END_TEST

START_TEST(epollfd_nested_lt_until_inner_drained)
{
	struct t_nest n;

	nest_open(&n, EPOLLIN);
	t_write(n.p[1], 1);
	t_expect1(n.outer, 0, 2, EPOLLIN);
	t_expect1(n.outer, 0, 2, EPOLLIN);
	ck_assert_uint_eq(t_drain(n.p[0]), 1);
	t_expect_none(n.outer, 0);
	nest_close(&n);
}
END_TEST

START_TEST(epollfd_nested_inner_consumed_edge_clears_outer)
{
	/* The inner's only entry is edge-triggered and already taken. */
	int outer = t_epoll(), inner = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(inner, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 1);
	t_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, 2);
	t_write(p[1], 1);
	t_expect1(inner, 0, 1, EPOLLIN);
	t_expect_none(outer, 0);
	t_close(p[0]);
	t_close(p[1]);
	t_close(inner);
	t_close(outer);
}
END_TEST

START_TEST(epollfd_nested_et_outer_one_report_per_edge)
{
	struct t_nest n;

	nest_open(&n, EPOLLIN | EPOLLET);
	t_write(n.p[1], 1);
	t_expect1(n.outer, 0, 2, EPOLLIN);
	t_expect_none(n.outer, 0);
	/* New data wakes inner, which wakes outer: a new edge. */
	t_write(n.p[1], 1);
	t_expect1(n.outer, 0, 2, EPOLLIN);
	nest_close(&n);
}
END_TEST

START_TEST(epollfd_nested_three_levels)
{
	int top = t_epoll(), mid = t_epoll(), low = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(low, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(mid, EPOLL_CTL_ADD, low, EPOLLIN, 2);
	t_ctl(top, EPOLL_CTL_ADD, mid, EPOLLIN, 3);
	t_expect_none(top, 0);
	t_write(p[1], 1);
	t_expect1(top, 0, 3, EPOLLIN);
	t_expect1(mid, 0, 2, EPOLLIN);
	t_expect1(low, 0, 1, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(top);
	t_close(mid);
	t_close(low);
}
END_TEST

/* A thread blocked in epoll_wait(@epfd), with what it got. */
struct t_waiter {
	pthread_t thread;
	_Atomic pid_t tid;
	int epfd;
	int n;
	struct epoll_event ev;
};

static void *waiter_main(void *arg)
{
	struct t_waiter *w = arg;

	w->tid = gettid();
	w->n = t_wait(w->epfd, &w->ev, 1, T_LONG_MS);
	return NULL;
}

START_TEST(epollfd_nested_wakes_blocked_outer_waiter)
{
	struct t_waiter w = {.n = -1};
	struct t_nest n;

	nest_open(&n, EPOLLIN);
	w.epfd = n.outer;
	t_thread_start(&w.thread, waiter_main, &w);
	while (!w.tid)
		sched_yield();
	ck_assert_int_eq(t_task_blocked(getpid(), w.tid), 0);
	t_write(n.p[1], 1);
	t_thread_join(w.thread);
	ck_assert_int_eq(w.n, 1);
	ck_assert_int_eq(w.ev.events, EPOLLIN);
	ck_assert_uint_eq(w.ev.data.u64, 2);
	nest_close(&n);
}
END_TEST

START_TEST(epollfd_close_inner_removes_from_outer)
{
	struct t_nest n;

	nest_open(&n, EPOLLIN);
	t_write(n.p[1], 1);
	t_expect1(n.outer, 0, 2, EPOLLIN);
	t_close(n.inner);
	t_expect_none(n.outer, 0);
	/* The number is free again, so DEL cannot name it. */
	t_assert_errno(t_ctl_raw(n.outer, EPOLL_CTL_DEL, n.inner, 0, 0), EBADF);
	t_close(n.p[0]);
	t_close(n.p[1]);
	t_close(n.outer);
}
END_TEST

START_TEST(epollfd_close_frees_instance_fds_still_usable)
{
	/*
	 * Closing an instance drops its interest list, not the fds in it:
	 * they still work and can join a new instance.
	 */
	int epfd = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(epfd, EPOLL_CTL_ADD, p[1], EPOLLOUT, 2);
	t_close(epfd);
	t_write(p[1], 1);
	ck_assert_uint_eq(t_drain(p[0]), 1);
	epfd = t_epoll();
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 3);
	t_write(p[1], 1);
	t_expect1(epfd, 0, 3, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(epollfd_same_fd_in_two_instances)
{
	int a = t_epoll(), b = t_epoll();
	int p[2];

	t_pipe(p);
	t_ctl(a, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	t_ctl(b, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 2);
	t_write(p[1], 1);
	t_expect1(a, 0, 1, EPOLLIN);
	t_expect1(b, 0, 2, EPOLLIN);
	/* Each instance keeps its own mode. */
	t_expect1(a, 0, 1, EPOLLIN);
	t_expect_none(b, 0);
	/* Removing it from one leaves the other alone. */
	t_ctl(a, EPOLL_CTL_DEL, p[0], 0, 0);
	t_write(p[1], 1);
	t_expect_none(a, 0);
	t_expect1(b, 0, 2, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(a);
	t_close(b);
}
END_TEST

START_TEST(epollfd_nested_reports_rdnorm)
{
	/* An epoll fd polls EPOLLIN | EPOLLRDNORM, masked by the interest. */
	struct t_nest n;
	int rdnorm_only = t_epoll();

	nest_open(&n, EPOLLIN | EPOLLRDNORM);
	t_write(n.p[1], 1);
	t_expect1(n.outer, 0, 2, EPOLLIN | EPOLLRDNORM);
	/*
	 * RDNORM alone: found ready when added. (A later wakeup would not
	 * queue it: the key of an epoll fd's wakeup is EPOLLIN.)
	 */
	t_ctl(rdnorm_only, EPOLL_CTL_ADD, n.inner, EPOLLRDNORM, 3);
	t_expect1(rdnorm_only, 0, 3, EPOLLRDNORM);
	t_close(rdnorm_only);
	nest_close(&n);
}
END_TEST

START_TEST(epollfd_nested_interest_without_in_never_ready)
{
	/*
	 * Only EPOLLIN | EPOLLRDNORM can match: an inner entry wanting
	 * EPOLLPRI alone never makes its instance ready (seed 139).
	 */
	int top = t_epoll(), mid = t_epoll(), low = t_epoll();
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct t_nest n;

	ck_assert_int_ge(efd, 0);
	t_ctl(low, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLET, 1);
	t_ctl(mid, EPOLL_CTL_ADD, low, EPOLLPRI | EPOLLONESHOT, 2);
	t_ctl(top, EPOLL_CTL_ADD, mid, EPOLLIN | EPOLLET, 3);
	t_write(efd, 8);
	t_expect_none(top, 0);
	t_expect_none(mid, 0);
	t_expect1(low, 0, 1, EPOLLIN);
	/* Two levels, the inner instance ready before and after the ADD. */
	nest_open(&n, EPOLLPRI | EPOLLOUT);
	t_write(n.p[1], 1);
	t_expect_none(n.outer, 0);
	t_expect1(n.inner, 0, 1, EPOLLIN);
	nest_close(&n);
	t_close(efd);
	t_close(low);
	t_close(mid);
	t_close(top);
}
END_TEST

START_TEST(epollfd_nested_oneshot_et)
{
	/*
	 * Reported once, then disabled until MOD, whatever the inner
	 * instance does; its own level report in between does not hide it
	 * (seeds 20, 293).
	 */
	struct t_nest n;
	int sv[2];

	nest_open(&n, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT | EPOLLET);
	t_write(n.p[1], 1);
	t_expect1(n.inner, 0, 1, EPOLLIN);
	t_expect1(n.outer, 0, 2, EPOLLIN);
	t_write(n.p[1], 1);
	t_socketpair(SOCK_STREAM, sv);
	t_ctl(n.inner, EPOLL_CTL_ADD, sv[0], EPOLLOUT, 4);
	t_expect_none(n.outer, 0);
	/* MOD looks again, as ep_modify does. */
	t_ctl(n.outer, EPOLL_CTL_MOD, n.inner, EPOLLIN | EPOLLET, 5);
	t_expect1(n.outer, 0, 5, EPOLLIN);
	t_expect_none(n.outer, 0);
	t_close(sv[0]);
	t_close(sv[1]);
	nest_close(&n);
}
END_TEST

START_TEST(epollfd_nested_et_no_edge_without_wakeup)
{
	/*
	 * MOD of an entry that is on the inner ready list already wakes
	 * nobody: the edge-triggered outer entry, reported, stays quiet
	 * (seed 123). So does the inner one becoming watched.
	 */
	int outer = t_epoll(), inner = t_epoll();
	int sv[2];

	t_socketpair(SOCK_SEQPACKET, sv);
	t_ctl(inner, EPOLL_CTL_ADD, sv[1], EPOLLIN | EPOLLOUT | EPOLLET, 1);
	t_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN | EPOLLET, 2);
	t_expect1(outer, 0, 2, EPOLLIN);
	t_ctl(inner, EPOLL_CTL_MOD, sv[1],
	      EPOLLIN | EPOLLOUT | EPOLLONESHOT | EPOLLET, 3);
	t_expect_none(outer, 0);
	/* A wakeup of a registered file is an edge. */
	t_write(sv[0], 1);
	t_expect1(outer, 0, 2, EPOLLIN);
	t_close(sv[0]);
	t_close(sv[1]);
	t_close(inner);
	t_close(outer);
}
END_TEST

/*
 * A wakeup without a key (shutdown(2) wakes a socket's waiters so): the
 * kernel's ep_poll_callback takes it for an event and wakes the instances
 * that watch this one, so an edge-triggered outer entry is reported
 * again. (Once a deviation; a nested instance is the kernel's epoll now.)
 */
START_TEST(epollfd_nested_keyless_wakeup_is_an_edge)
{
	int outer = t_epoll(), inner = t_epoll(), efd, dg[2];

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	t_socketpair(SOCK_DGRAM, dg);
	/* Inner: one entry reported once (ET), one that is never ready. */
	t_ctl(inner, EPOLL_CTL_ADD, efd, EPOLLOUT | EPOLLET, 1);
	t_ctl(inner, EPOLL_CTL_ADD, dg[0], EPOLLPRI, 2);
	t_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN | EPOLLET, 3);
	t_expect1(outer, 0, 3, EPOLLIN);
	t_expect_none(outer, 0);
	/* Keyless wakeup of dg[0]; nothing it is registered for is set. */
	ck_assert_int_eq(shutdown(dg[0], SHUT_WR), 0);
	t_expect1(outer, 0, 3, EPOLLIN);
	t_close(dg[0]);
	t_close(dg[1]);
	t_close(efd);
	t_close(outer);
	t_close(inner);
}
END_TEST

/*
 * A wakeup whose key says more than the file has.
 * A unix stream's data wakeup carries EPOLLIN|EPOLLPRI|EPOLLRDNORM|
 * EPOLLRDBAND; an entry watching EPOLLPRI alone takes it in the kernel
 * (and is dropped when re-polled), which wakes the outer instance. Written
 * in one go, 100 KB arrive in several such wakeups, none of which io_uring
 * posts: a nested instance is the kernel's epoll (rp__ep_go_kernel).
 */
START_TEST(epollfd_nested_overstated_key_wakeup_is_an_edge)
{
	int outer = t_epoll(), inner = t_epoll(), efd, us[2];
	size_t len = 100000;
	char *buf = calloc(1, len);

	ck_assert_ptr_nonnull(buf);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	t_socketpair(SOCK_STREAM, us);
	t_ctl(inner, EPOLL_CTL_ADD, efd, EPOLLOUT | EPOLLET, 1);
	t_ctl(inner, EPOLL_CTL_ADD, us[0], EPOLLPRI, 2);
	t_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN | EPOLLET, 3);
	t_expect1(outer, 0, 3, EPOLLIN);
	t_expect_none(outer, 0);
	ck_assert_int_eq(write(us[1], buf, len), (ssize_t)len);
	t_expect1(outer, 0, 3, EPOLLIN);
	free(buf);
	t_close(us[0]);
	t_close(us[1]);
	t_close(efd);
	t_close(outer);
	t_close(inner);
}
END_TEST

/*
 * Nesting makes both instances the kernel's epoll, and the ring an
 * instance was lets go of its files some time later unless its polls are
 * cancelled at the move: each test repeats its round so that a ring left
 * to the kernel's teardown is caught while it lives.
 */
#define T_NEST_ROUNDS 16

/*
 * The last close of a file registered in an instance nested since ends
 * the file at once, which its peer sees, and the instance forgets it
 * (seeds 327, 359).
 */
START_TEST(epollfd_nested_last_close_ends_file)
{
	for (int round = 0; round < T_NEST_ROUNDS; round++) {
		int outer = t_epoll(), inner = t_epoll(), dg[2];

		t_socketpair(SOCK_DGRAM, dg);
		/* Looked at once: not ready, so watched for it from now on. */
		t_ctl(inner, EPOLL_CTL_ADD, dg[0], EPOLLIN, 1);
		t_expect_none(inner, 0);
		t_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, 2);
		t_expect_none(outer, 0);
		t_close(dg[0]);
		errno = 0;
		ck_assert_int_eq(write(dg[1], "x", 1), -1);
		ck_assert_int_eq(errno, ECONNREFUSED);
		t_expect_none(inner, 0);
		t_expect_none(outer, 0);
		t_close(dg[1]);
		t_close(outer);
		t_close(inner);
	}
}
END_TEST

/*
 * An EPOLLEXCLUSIVE entry of an instance nested since: its file's next
 * wakeup is the kernel's epoll's, not taken by an exclusive poll of the
 * ring the instance was before (seed 111).
 */
START_TEST(epollfd_nesting_keeps_the_edge_of_a_mod)
{
	/*
	 * A MOD to edge-triggered on a hung-up socket is an edge (the
	 * kernel's ep_modify polls the file). After MODs that change the
	 * interest twice, the instance nested before any wait still reports
	 * it (fuzzer seed 1795522755564687: the second MOD's update found its
	 * poll completed, and the edge of the new arm was lost in the move).
	 */
	struct epoll_event ev[4];
	int outer = t_epoll(), epfd = t_epoll();
	int sv[2], n;

	t_socketpair(SOCK_STREAM, sv);
	t_close(sv[0]);
	t_ctl(epfd, EPOLL_CTL_ADD, sv[1], EPOLLPRI, 1);
	ck_assert_int_eq(t_wait(epfd, ev, 4, 0), 1);
	ck_assert_int_eq(t_wait(epfd, ev, 4, 0), 1);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[1], EPOLLOUT | EPOLLET, 2);
	t_ctl(epfd, EPOLL_CTL_MOD, sv[1], EPOLLRDHUP | EPOLLET, 3);
	t_ctl(outer, EPOLL_CTL_ADD, epfd, EPOLLIN, 9);
	n = t_wait(epfd, ev, 4, 0);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(ev[0].data.u64, 3);
	ck_assert_uint_eq(ev[0].events, EPOLLHUP | EPOLLRDHUP);
	t_expect_none(epfd, 0);
	t_close(sv[1]);
	t_close(epfd);
	t_close(outer);
}
END_TEST

/*
 * The kernel's ready list is in the order its entries became ready: for
 * entries ready when added, the order of the ADDs. A wait with room for
 * one reports the first added, nested or not (ringpoll's move to the
 * kernel's epoll added them in fd order; fuzzer seed 1795534182609895,
 * KNOWN.md O, where that order decided whether a MOD woke the outer
 * instance).
 */
START_TEST(epollfd_nesting_keeps_the_order_of_adds)
{
	int outer = t_epoll(), epfd = t_epoll(), p[3][2];
	struct epoll_event ev;

	for (int i = 0; i < 3; i++) {
		t_pipe(p[i]);
		t_write(p[i][1], 1);
	}
	/* Added last to first: the fd order is the reverse. */
	for (int i = 2; i >= 0; i--)
		t_ctl(epfd, EPOLL_CTL_ADD, p[i][0], EPOLLIN, (uint64_t)i);
	t_ctl(outer, EPOLL_CTL_ADD, epfd, EPOLLIN, 9);
	ck_assert_int_eq(t_wait(epfd, &ev, 1, 0), 1);
	ck_assert_uint_eq(ev.data.u64, 2);
	for (int i = 0; i < 3; i++) {
		t_close(p[i][0]);
		t_close(p[i][1]);
	}
	t_close(epfd);
	t_close(outer);
}
END_TEST

START_TEST(epollfd_nested_exclusive_wakeup_after_nesting)
{
	for (int round = 0; round < T_NEST_ROUNDS; round++) {
		int outer = t_epoll(), inner = t_epoll(), efd;
		uint64_t one = 1;

		efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		ck_assert_int_ge(efd, 0);
		t_ctl(inner, EPOLL_CTL_ADD, efd,
		      EPOLLIN | EPOLLEXCLUSIVE | EPOLLET, 1);
		t_expect_none(inner, 0);
		t_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, 2);
		t_expect_none(outer, 0);
		ck_assert_int_eq(write(efd, &one, sizeof(one)),
				 (ssize_t)sizeof(one));
		t_expect1(outer, 0, 2, EPOLLIN);
		t_expect1(inner, 0, 1, EPOLLIN);
		t_close(efd);
		t_close(outer);
		t_close(inner);
	}
}
END_TEST

Suite *t_suite_epollfd(void)
{
	Suite *s = suite_create("epollfd");
	TCase *tc = t_tcase("epollfd");

	tcase_add_test(tc, epollfd_nested_reports_in);
	tcase_add_test(tc, epollfd_nested_never_writable);
	tcase_add_test(tc, epollfd_nested_lt_until_inner_drained);
	tcase_add_test(tc, epollfd_nested_inner_consumed_edge_clears_outer);
	tcase_add_test(tc, epollfd_nested_et_outer_one_report_per_edge);
	tcase_add_test(tc, epollfd_nested_three_levels);
	tcase_add_test(tc, epollfd_nested_wakes_blocked_outer_waiter);
	tcase_add_test(tc, epollfd_close_inner_removes_from_outer);
	tcase_add_test(tc, epollfd_close_frees_instance_fds_still_usable);
	tcase_add_test(tc, epollfd_same_fd_in_two_instances);
	tcase_add_test(tc, epollfd_nested_reports_rdnorm);
	tcase_add_test(tc, epollfd_nested_interest_without_in_never_ready);
	tcase_add_test(tc, epollfd_nested_oneshot_et);
	tcase_add_test(tc, epollfd_nested_et_no_edge_without_wakeup);
	tcase_add_test(tc, epollfd_nested_keyless_wakeup_is_an_edge);
	tcase_add_test(tc, epollfd_nested_overstated_key_wakeup_is_an_edge);
	tcase_add_test(tc, epollfd_nested_last_close_ends_file);
	tcase_add_test(tc, epollfd_nested_exclusive_wakeup_after_nesting);
	tcase_add_test(tc, epollfd_nesting_keeps_the_edge_of_a_mod);
	tcase_add_test(tc, epollfd_nesting_keeps_the_order_of_adds);
	suite_add_tcase(s, tc);
	return s;
}
