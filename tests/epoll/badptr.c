// SPDX-License-Identifier: MIT
/*
 * Bad pointers: the kernel copies from and to the caller with
 * copy_{from,to}_user, so a pointer to nothing, to a read-only or PROT_NONE
 * page or into the kernel is EFAULT, never a crash.
 *
 * The order is the kernel's: epoll_pwait2 reads its timeout first, then
 * epoll_pwait(2) the sigmask (EFAULT even with nothing ready), then
 * maxevents is checked, then the events array's range (access_ok: a kernel
 * address is EFAULT with nothing ready); an array that is in the user's
 * range but not writable faults only when there is an event to copy, and
 * what was copied before the fault is the result. epoll_ctl reads the
 * event of every op but DEL first; DEL never looks at it.
 */
#include <sys/eventfd.h>

#include "t_epoll.h"

/* Hidden from the compiler, which would rightly warn at these. */
static struct epoll_event *volatile t_unmapped = (void *)1;
static struct epoll_event *volatile t_kernel_addr =
	(void *)(uintptr_t)0xffffffff81000000ull;
static sigset_t *volatile t_bad_mask = (void *)1;
static struct timespec *volatile t_bad_ts = (void *)1;

/* A page with @prot, or two pages of which only the first is writable. */
static void *page(int prot)
{
	void *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

static char *page_then_hole(void)
{
	char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert_int_eq(mprotect(p + 4096, 4096, PROT_NONE), 0);
	return p;
}

/* An edge-triggered pipe ready with data.u64 @tag: its event is one-time. */
static void ready_et(int epfd, int p[2], uint64_t tag)
{
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, tag);
	t_write(p[1], 1);
}

static int wait_errno(int epfd, struct epoll_event *evs, int max, int *err)
{
	int ret;

	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret = epoll_wait(epfd, evs, max, 0);
	*err = errno;
	T_BAD_POINTER_END();
	return ret;
}

/* A wait into @evs with one event ready: EFAULT, and the event is kept. */
static void expect_efault_keeps_event(struct epoll_event *evs)
{
	int epfd = t_epoll(), p[2], err;

	ready_et(epfd, p, 7);
	ck_assert_int_eq(wait_errno(epfd, evs, 1, &err), -1);
	ck_assert_int_eq(err, EFAULT);
	t_expect1(epfd, 0, 7, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}

START_TEST(badptr_wait_unmapped_events_ready_efault)
{
	expect_efault_keeps_event(t_unmapped);
}
END_TEST

START_TEST(badptr_wait_readonly_events_ready_efault)
{
	void *ro = page(PROT_READ);

	expect_efault_keeps_event(ro);
	munmap(ro, 4096);
}
END_TEST

START_TEST(badptr_wait_prot_none_events_ready_efault)
{
	void *none = page(PROT_NONE);

	expect_efault_keeps_event(none);
	munmap(none, 4096);
}
END_TEST

START_TEST(badptr_wait_kernel_events_ready_efault)
{
	expect_efault_keeps_event(t_kernel_addr);
}
END_TEST

/*
 * A wait that faults keeps its events, and they are asked again when next
 * reported: read since, they are gone (fuzzer seed 1795533872594776: the
 * second was reported, read, by a wait with room for one).
 */
START_TEST(badptr_wait_efault_then_read_reports_nothing)
{
	int epfd = t_epoll(), a = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
	int b = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC), err;
	uint64_t v;

	ck_assert_int_ge(a, 0);
	ck_assert_int_ge(b, 0);
	t_ctl(epfd, EPOLL_CTL_ADD, a, EPOLLIN, 1);
	t_ctl(epfd, EPOLL_CTL_ADD, b, EPOLLIN, 2);
	ck_assert_int_eq(wait_errno(epfd, t_unmapped, 8, &err), -1);
	ck_assert_int_eq(err, EFAULT);
	ck_assert_int_eq(read(a, &v, sizeof(v)), sizeof(v));
	ck_assert_int_eq(read(b, &v, sizeof(v)), sizeof(v));
	/* Room for one: each is asked as the report reaches it. */
	{
		struct epoll_event ev;

		ck_assert_int_eq(t_wait(epfd, &ev, 1, 0), 0);
	}
	t_close(a);
	t_close(b);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_wait_unmapped_events_idle_returns_zero)
{
	/* In the user's range and nothing to copy: no fault. */
	int epfd = t_epoll(), err;
	void *none = page(PROT_NONE);

	ck_assert_int_eq(wait_errno(epfd, t_unmapped, 4, &err), 0);
	ck_assert_int_eq(wait_errno(epfd, none, 4, &err), 0);
	munmap(none, 4096);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_wait_kernel_events_idle_efault)
{
	/* access_ok refuses a range in the kernel before anything else. */
	int epfd = t_epoll(), err;

	ck_assert_int_eq(wait_errno(epfd, t_kernel_addr, 1, &err), -1);
	ck_assert_int_eq(err, EFAULT);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_wait_fault_after_first_event_returns_copied)
{
	/* Room for one event before a PROT_NONE page; two are ready. */
	int epfd = t_epoll(), p[2], q[2], err, ret;
	char *two = page_then_hole();
	struct epoll_event *evs = (void *)(two + 4096 - sizeof(*evs));
	uint64_t first;

	ready_et(epfd, p, 1);
	ready_et(epfd, q, 2);
	ret = wait_errno(epfd, evs, 4, &err);
	ck_assert_int_eq(ret, 1);
	first = evs[0].data.u64;
	ck_assert(first == 1 || first == 2);
	/* The one that could not be copied is next. */
	t_expect1(epfd, 0, 3 - first, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(q[0]);
	t_close(q[1]);
	t_close(epfd);
	munmap(two, 8192);
}
END_TEST

START_TEST(badptr_wait_event_across_bad_page_efault)
{
	/* The first event's 12 bytes straddle the end of the good page. */
	char *two = page_then_hole();

	expect_efault_keeps_event((void *)(two + 4096 - 8));
	munmap(two, 8192);
}
END_TEST

START_TEST(badptr_wait_good_after_bad_same_instance)
{
	/* A fault does not poison the instance; a good array works again. */
	int epfd = t_epoll(), p[2], err;
	struct epoll_event ev[2];

	ready_et(epfd, p, 3);
	ck_assert_int_eq(wait_errno(epfd, t_unmapped, 2, &err), -1);
	ck_assert_int_eq(t_wait(epfd, ev, 2, 0), 1);
	ck_assert_uint_eq(ev[0].data.u64, 3);
	t_write(p[1], 1);
	ck_assert_int_eq(wait_errno(epfd, t_unmapped, 2, &err), -1);
	ck_assert_int_eq(err, EFAULT);
	t_expect1(epfd, 0, 3, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_pwait_bad_sigmask_efault)
{
	/* Read before anything else: idle, ready, or maxevents 0. */
	int epfd = t_epoll(), p[2], ret[3], err[3];
	struct epoll_event ev[2];

	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret[0] = epoll_pwait(epfd, ev, 2, 0, t_bad_mask);
	err[0] = errno;
	errno = 0;
	ret[1] = epoll_pwait(epfd, ev, 0, 0, t_bad_mask);
	err[1] = errno;
	T_BAD_POINTER_END();
	ready_et(epfd, p, 4);
	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret[2] = epoll_pwait(epfd, ev, 2, 0, t_bad_mask);
	err[2] = errno;
	T_BAD_POINTER_END();
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(ret[i], -1);
		ck_assert_int_eq(err[i], EFAULT);
	}
	t_expect1(epfd, 0, 4, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_pwait2_bad_timeout_efault)
{
	/* The timeout first: before the sigmask and maxevents. */
	int epfd = t_epoll(), p[2], ret[3], err[3];
	struct epoll_event ev[2];

	ready_et(epfd, p, 5);
	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret[0] = epoll_pwait2(epfd, ev, 2, t_bad_ts, NULL);
	err[0] = errno;
	errno = 0;
	ret[1] = epoll_pwait2(epfd, ev, 0, t_bad_ts, NULL);
	err[1] = errno;
	errno = 0;
	ret[2] = epoll_pwait2(epfd, ev, 2, t_bad_ts, t_bad_mask);
	err[2] = errno;
	T_BAD_POINTER_END();
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(ret[i], -1);
		ck_assert_int_eq(err[i], EFAULT);
	}
	t_expect1(epfd, 0, 5, EPOLLIN);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_pwait2_invalid_timeout_before_bad_sigmask)
{
	int epfd = t_epoll(), ret, err;
	struct epoll_event ev;
	struct timespec bad = { 0, -1 }, zero = { 0, 0 };

	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret = epoll_pwait2(epfd, &ev, 1, &bad, t_bad_mask);
	err = errno;
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EINVAL);
	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret = epoll_pwait2(epfd, &ev, 1, &zero, t_bad_mask);
	err = errno;
	T_BAD_POINTER_END();
	ck_assert_int_eq(ret, -1);
	ck_assert_int_eq(err, EFAULT);
	t_close(epfd);
}
END_TEST

/* epoll_ctl: 0 or -errno. */
static int ctl_errno(int epfd, int op, int fd, struct epoll_event *ev)
{
	int ret;

	T_BAD_POINTER_BEGIN();
	errno = 0;
	ret = epoll_ctl(epfd, op, fd, ev);
	if (ret < 0)
		ret = -errno;
	T_BAD_POINTER_END();
	return ret;
}

START_TEST(badptr_ctl_add_bad_event_efault)
{
	int epfd = t_epoll(), p[2];
	void *none = page(PROT_NONE);

	t_pipe(p);
	t_write(p[1], 1);
	ck_assert_int_eq(ctl_errno(epfd, EPOLL_CTL_ADD, p[0], t_unmapped),
			 -EFAULT);
	ck_assert_int_eq(ctl_errno(epfd, EPOLL_CTL_ADD, p[0], none), -EFAULT);
	ck_assert_int_eq(ctl_errno(epfd, EPOLL_CTL_ADD, p[0], t_kernel_addr),
			 -EFAULT);
	/* Read before the op is looked at, and before the fds. */
	ck_assert_int_eq(ctl_errno(epfd, 1000, p[0], t_unmapped), -EFAULT);
	ck_assert_int_eq(ctl_errno(epfd, EPOLL_CTL_ADD, -1, t_unmapped),
			 -EFAULT);
	/* Nothing was added. */
	t_expect_none(epfd, 0);
	t_assert_errno(t_ctl_raw(epfd, EPOLL_CTL_DEL, p[0], 0, 0), ENOENT);
	munmap(none, 4096);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_ctl_mod_bad_event_efault)
{
	int epfd = t_epoll(), p[2];
	void *none = page(PROT_NONE);

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	ck_assert_int_eq(ctl_errno(epfd, EPOLL_CTL_MOD, p[0], t_unmapped),
			 -EFAULT);
	ck_assert_int_eq(ctl_errno(epfd, EPOLL_CTL_MOD, p[0], none), -EFAULT);
	/* The registration is as it was. */
	t_write(p[1], 1);
	t_expect1(epfd, 0, 1, EPOLLIN);
	munmap(none, 4096);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_ctl_del_ignores_event)
{
	int epfd = t_epoll(), p[2];

	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1);
	ck_assert_int_eq(ctl_errno(epfd, EPOLL_CTL_DEL, p[0], t_unmapped), 0);
	ck_assert_int_eq(ctl_errno(epfd, EPOLL_CTL_DEL, p[0], t_kernel_addr),
			 -ENOENT);
	t_write(p[1], 1);
	t_expect_none(epfd, 0);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

START_TEST(badptr_ctl_event_on_stack_then_heap)
{
	/*
	 * The same fd MODded through events in several places (stack, heap,
	 * a page made read-only after it was written): each is read.
	 */
	int epfd = t_epoll(), p[2];
	struct epoll_event stack = { .events = EPOLLOUT, .data.u64 = 2 };
	struct epoll_event *heap = malloc(sizeof(*heap));
	struct epoll_event *ro = page(PROT_READ | PROT_WRITE);

	ck_assert_ptr_nonnull(heap);
	t_pipe(p);
	t_ctl(epfd, EPOLL_CTL_ADD, p[1], EPOLLIN, 1);
	ck_assert_int_eq(epoll_ctl(epfd, EPOLL_CTL_MOD, p[1], &stack), 0);
	t_expect1(epfd, 0, 2, EPOLLOUT);
	heap->events = EPOLLOUT;
	heap->data.u64 = 3;
	ck_assert_int_eq(epoll_ctl(epfd, EPOLL_CTL_MOD, p[1], heap), 0);
	t_expect1(epfd, 0, 3, EPOLLOUT);
	ro->events = EPOLLOUT;
	ro->data.u64 = 4;
	ck_assert_int_eq(mprotect(ro, 4096, PROT_READ), 0);
	ck_assert_int_eq(epoll_ctl(epfd, EPOLL_CTL_MOD, p[1], ro), 0);
	t_expect1(epfd, 0, 4, EPOLLOUT);
	free(heap);
	munmap(ro, 4096);
	t_close(p[0]);
	t_close(p[1]);
	t_close(epfd);
}
END_TEST

Suite *t_suite_badptr(void)
{
	Suite *s = suite_create("badptr");
	TCase *tc = t_tcase("badptr");
	const char *bad_ptr = t_bad_pointer_skip();

	t_add_unless(tc, badptr_wait_unmapped_events_ready_efault, bad_ptr);
	t_add_unless(tc, badptr_wait_readonly_events_ready_efault, bad_ptr);
	t_add_unless(tc, badptr_wait_prot_none_events_ready_efault, bad_ptr);
	t_add_unless(tc, badptr_wait_kernel_events_ready_efault, bad_ptr);
	t_add_unless(tc, badptr_wait_efault_then_read_reports_nothing,
		     bad_ptr);
	t_add_unless(tc, badptr_wait_unmapped_events_idle_returns_zero,
		     bad_ptr);
	t_add_unless(tc, badptr_wait_kernel_events_idle_efault, bad_ptr);
	t_add_unless(tc, badptr_wait_fault_after_first_event_returns_copied,
		     bad_ptr);
	t_add_unless(tc, badptr_wait_event_across_bad_page_efault, bad_ptr);
	t_add_unless(tc, badptr_wait_good_after_bad_same_instance, bad_ptr);
	t_add_unless(tc, badptr_pwait_bad_sigmask_efault, bad_ptr);
	t_add_unless(tc, badptr_pwait2_bad_timeout_efault, bad_ptr);
	t_add_unless(tc, badptr_pwait2_invalid_timeout_before_bad_sigmask,
		     bad_ptr);
	t_add_unless(tc, badptr_ctl_add_bad_event_efault, bad_ptr);
	t_add_unless(tc, badptr_ctl_mod_bad_event_efault, bad_ptr);
	t_add_unless(tc, badptr_ctl_del_ignores_event, bad_ptr);
	tcase_add_test(tc, badptr_ctl_event_on_stack_then_heap);
	suite_add_tcase(s, tc);
	return s;
}
