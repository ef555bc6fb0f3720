/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for the tests (tests/unit/test_faults.c): when set, the
 * next io_uring_enter, the next blocking wait, or the next allocation of
 * an epoll table chunk fails with that errno instead of running. Zero,
 * and one predictable branch, otherwise. Included only by the code that
 * checks a hook (lib/ring.c, compat/epctx.c) and by the tests that set one.
 */
#ifndef RP_FAULT_H
#define RP_FAULT_H

extern int rp__fault_enter;
extern int rp__fault_wait;
extern int rp__fault_alloc;
/*
 * Set to 1: the next harvest loses the next CQE it takes (then 2, until
 * rp__ring_dropped says so), as the kernel drops one when it cannot
 * allocate an overflow entry.
 */
extern int rp__fault_cqdrop;

static inline int rp__fault_take(int *f)
{
	int e = *f;

	*f = 0;
	return e;
}

#endif /* RP_FAULT_H */
