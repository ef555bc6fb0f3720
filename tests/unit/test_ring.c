/* SPDX-License-Identifier: MIT */
/* lib/ring.c: setup ladder, SQ full, CQ overflow, waits and their cost. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/ring.h"
#include "t_util.h"

static void t_ring(struct rp__ring *r, enum rp_setup setup, unsigned flags,
		   unsigned sq, unsigned cq)
{
	struct rp__ring_opts o = { setup, flags, sq, cq };
	int ret = rp__ring_init(r, &o);

	ck_assert_msg(ret == 0, "rp__ring_init: %s", strerror(-ret));
}

static void t_nop(struct rp__ring *r, uint32_t slot)
{
	int err = 0;
	struct io_uring_sqe *sqe = rp__ring_sqe(r, &err);

	ck_assert_msg(sqe != NULL, "no SQE: %s", strerror(-err));
	io_uring_prep_nop(sqe);
	sqe->user_data = rp__ud(RP__UD_POLL_READ, slot, 1);
}

/* Harvests until n CQEs came, checking each NOP slot arrives once. */
static void t_harvest_nops(struct rp__ring *r, unsigned n)
{
	struct io_uring_cqe cqes[32];
	unsigned char *seen = calloc(n, 1);
	unsigned got = 0;

	while (got < n) {
		unsigned k = rp__ring_harvest(r, cqes, 32);

		if (!k) {
			ck_assert_int_eq(rp__ring_enter(r, true, 1000000000,
							NULL),
					 0);
			continue;
		}
		for (unsigned i = 0; i < k; i++) {
			uint32_t slot = rp__ud_slot(cqes[i].user_data);

			ck_assert_uint_lt(slot, n);
			ck_assert_int_eq(seen[slot], 0);
			seen[slot] = 1;
		}
		got += k;
	}
	ck_assert_uint_eq(rp__ring_harvest(r, cqes, 32), 0);
	free(seen);
}

static const unsigned t_rung_flags[] = {
	[RP_SETUP_DEFER_TASKRUN] = IORING_SETUP_DEFER_TASKRUN,
	[RP_SETUP_COOP_TASKRUN] = IORING_SETUP_COOP_TASKRUN,
	[RP_SETUP_PLAIN] = 0,
};

START_TEST(ring_forced_setup_is_used)
{
	/* _i is the rung; the suite only adds the rungs the kernel has. */
	struct rp__ring r;
	struct rp_ring_info info;

	t_ring(&r, (enum rp_setup)_i, 0, 0, 0);
	rp__ring_info(&r, &info);
	ck_assert_int_eq(info.setup, _i);
	ck_assert_uint_eq(info.setup_flags &
				  (IORING_SETUP_DEFER_TASKRUN |
				   IORING_SETUP_COOP_TASKRUN),
			  t_rung_flags[_i]);
	t_nop(&r, 0);
	t_harvest_nops(&r, 1);
	rp__ring_exit(&r);
}
END_TEST

START_TEST(ring_auto_takes_best_rung)
{
	struct rp__ring r;
	enum rp_setup best = t_setup_works(RP_SETUP_DEFER_TASKRUN) ?
				     RP_SETUP_DEFER_TASKRUN :
			     t_setup_works(RP_SETUP_COOP_TASKRUN) ?
				     RP_SETUP_COOP_TASKRUN :
				     RP_SETUP_PLAIN;

	t_ring(&r, RP_SETUP_AUTO, 0, 0, 0);
	ck_assert_int_eq(r.setup, best);
	rp__ring_exit(&r);
}
END_TEST

START_TEST(ring_shared_never_single_issuer)
{
	struct rp__ring r;

	t_ring(&r, RP_SETUP_AUTO, RP__RING_SHARED, 0, 0);
	ck_assert_uint_eq(r.setup_flags & IORING_SETUP_SINGLE_ISSUER, 0);
	ck_assert_uint_eq(r.enter_flags, 0);
	rp__ring_exit(&r);
}
END_TEST

START_TEST(ring_no_registered_fd_flag)
{
	struct rp__ring r;
	struct rp_ring_info info;

	t_ring(&r, RP_SETUP_AUTO, RP__RING_NO_REGISTERED_FD, 0, 0);
	rp__ring_info(&r, &info);
	ck_assert_int_eq(info.registered_fd, 0);
	t_nop(&r, 0);
	t_harvest_nops(&r, 1);
	rp__ring_exit(&r);
}
END_TEST

START_TEST(ring_sq_full_flushes_instead_of_failing)
{
	struct rp__ring r;
	unsigned n = 100;

	t_ring(&r, RP_SETUP_AUTO, 0, 4, 256);
	ck_assert_uint_eq(r.uring.sq.ring_entries, 4);
	for (unsigned i = 0; i < n; i++)
		t_nop(&r, i);
	/* 100 SQEs through a 4-entry SQ: the getter submitted on its own. */
	ck_assert_uint_ge(r.enters, n / 4 - 1);
	t_harvest_nops(&r, n);
	ck_assert_uint_eq(r.sqes, n);
	rp__ring_exit(&r);
}
END_TEST

START_TEST(ring_cq_overflow_loses_no_cqe)
{
	struct rp__ring r;
	unsigned n = 3000;

	t_ring(&r, RP_SETUP_AUTO, 0, 8, 16);
	ck_assert_uint_eq(r.uring.cq.ring_entries, 16);
	for (unsigned i = 0; i < n; i++)
		t_nop(&r, i);
	ck_assert_int_eq(rp__ring_submit(&r), 0);
	t_harvest_nops(&r, n);
	ck_assert_uint_gt(r.overflow_flushes, 0);
	rp__ring_exit(&r);
}
END_TEST

static void t_wait_times_out(unsigned flags)
{
	struct rp__ring r;
	struct io_uring_cqe cqe;
	uint64_t t0;
	int ret;

	t_ring(&r, RP_SETUP_AUTO, flags, 0, 0);
	t0 = rp__now_ns();
	ret = rp__ring_enter(&r, true, 50 * 1000000, NULL);
	/*
	 * With EXT_ARG the kernel says ETIME; with a timeout SQE the wait
	 * ends on that SQE's CQE, which harvest drops.
	 */
	ck_assert(ret == -ETIME || ret == 0);
	ck_assert_uint_ge(rp__now_ns() - t0, 45 * 1000000);
	ck_assert_uint_lt(rp__now_ns() - t0, 5000ull * 1000000);
	ck_assert_uint_eq(rp__ring_harvest(&r, &cqe, 1), 0);
	rp__ring_exit(&r);
}

START_TEST(ring_wait_timeout_ext_arg)
{
	struct rp__ring r;

	t_ring(&r, RP_SETUP_AUTO, 0, 0, 0);
	ck_assert(r.ext_arg);
	rp__ring_exit(&r);
	t_wait_times_out(0);
}
END_TEST

START_TEST(ring_wait_timeout_without_ext_arg)
{
	t_wait_times_out(RP__RING_NO_EXT_ARG);
}
END_TEST

START_TEST(ring_enter_skipped_when_cqe_ready)
{
	struct rp__ring r;
	uint64_t enters;

	t_ring(&r, RP_SETUP_AUTO, 0, 0, 0);
	t_nop(&r, 0);
	ck_assert_int_eq(rp__ring_enter(&r, true, -1, NULL), 0);
	ck_assert(rp__ring_cq_ready(&r));
	enters = r.enters;
	/* A CQE is waiting and nothing is queued: no syscall. */
	ck_assert_int_eq(rp__ring_enter(&r, true, -1, NULL), 0);
	ck_assert_int_eq(rp__ring_enter(&r, false, 0, NULL), 0);
	ck_assert_uint_eq(r.enters, enters);
	t_harvest_nops(&r, 1);
	rp__ring_exit(&r);
}
END_TEST

static volatile sig_atomic_t t_got_usr1;

static void t_on_usr1(int sig)
{
	(void)sig;
	t_got_usr1 = 1;
}

static void *t_send_usr1(void *arg)
{
	usleep(50 * 1000);
	kill(getpid(), SIGUSR1);
	(void)arg;
	return NULL;
}

static void t_sigmask_wait(unsigned flags)
{
	struct sigaction sa = { .sa_handler = t_on_usr1 };
	struct rp__ring r;
	sigset_t block, old, during;
	pthread_t th;
	uint64_t t0;
	int ret;

	/* Blocked outside the wait, let in by the wait's mask only. */
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	sigprocmask(SIG_SETMASK, NULL, &during);
	sigdelset(&during, SIGUSR1);
	t_got_usr1 = 0;
	t_ring(&r, RP_SETUP_AUTO, flags, 0, 0);
	ck_assert_int_eq(pthread_create(&th, NULL, t_send_usr1, NULL), 0);
	t0 = rp__now_ns();
	ret = rp__ring_enter(&r, true, 5000ll * 1000000, &during);
	/*
	 * EINTR, or 0 when the enter also submitted a timeout SQE: the
	 * kernel then reports the SQEs it took, not the interruption.
	 */
	ck_assert(ret == -EINTR || (ret == 0 && (flags & RP__RING_NO_EXT_ARG)));
	ck_assert_int_eq(t_got_usr1, 1);
	ck_assert_uint_lt(rp__now_ns() - t0, 4000ull * 1000000);
	pthread_join(th, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR1, SIG_DFL);
	rp__ring_exit(&r);
}

START_TEST(ring_wait_sigmask_lets_signal_in)
{
	t_sigmask_wait(0);
}
END_TEST

START_TEST(ring_wait_sigmask_without_ext_arg)
{
	t_sigmask_wait(RP__RING_NO_EXT_ARG);
}
END_TEST

Suite *t_suite_ring(void)
{
	static const char *names[] = { "auto", "defer_taskrun",
				       "coop_taskrun", "plain" };
	Suite *s = suite_create("ring");
	TCase *tc = t_tcase("ring");

	for (int i = RP_SETUP_DEFER_TASKRUN; i <= RP_SETUP_PLAIN; i++) {
		if (t_setup_works((enum rp_setup)i))
			tcase_add_loop_test(tc, ring_forced_setup_is_used, i,
					    i + 1);
		else
			t_skip(names[i], "this kernel rejects the setup");
	}
	tcase_add_test(tc, ring_auto_takes_best_rung);
	tcase_add_test(tc, ring_shared_never_single_issuer);
	tcase_add_test(tc, ring_no_registered_fd_flag);
	tcase_add_test(tc, ring_sq_full_flushes_instead_of_failing);
	tcase_add_test(tc, ring_cq_overflow_loses_no_cqe);
	tcase_add_test(tc, ring_wait_timeout_ext_arg);
	tcase_add_test(tc, ring_wait_timeout_without_ext_arg);
	tcase_add_test(tc, ring_enter_skipped_when_cqe_ready);
	if (t_under_valgrind()) {
		t_skip("ring_wait_sigmask_*", T_VALGRIND_SIGNALS);
	} else {
		tcase_add_test(tc, ring_wait_sigmask_lets_signal_in);
		tcase_add_test(tc, ring_wait_sigmask_without_ext_arg);
	}
	suite_add_tcase(s, tc);
	return s;
}
