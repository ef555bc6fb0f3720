/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the epoll conformance suite.
 *
 * The suite is written once against the plain epoll names and built three
 * ways: against the kernel, with -DRP_T_COMPAT against ringpoll's drop-in
 * header, and unmodified under the LD_PRELOAD shim. Every epoll call and
 * every close() of an fd must therefore be spelled epoll_create,
 * epoll_create1, epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2 or close.
 */
#ifndef T_EPOLL_H
#define T_EPOLL_H

/*
 * Every system header the suite needs is read here, <sys/epoll.h> too,
 * before <ringpoll_compat.h>, which then declares rp_epoll_* and maps the
 * epoll names and close onto them. A test file includes "t_epoll.h" and
 * nothing else.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#if defined(__has_include)
#if __has_include(<sys/pidfd.h>)
#include <sys/pidfd.h>
#define T_HAVE_PIDFD 1
#endif
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define T_HAVE_VALGRIND_H 1
#endif
#endif

#ifdef RP_T_COMPAT
#include <ringpoll_compat.h>
#endif

/*
 * Every test case runs under this timeout (Check enforces it in fork mode
 * only). The slowest test needs well under a second; 10 s leaves room for
 * valgrind and a loaded box.
 */
#define T_TIMEOUT_S 10

/*
 * How long "nothing happens" is given to happen anyway. Only used where the
 * event under test would come from another CPU or the network stack; where
 * the kernel's state changes synchronously a zero timeout is enough.
 */
#define T_QUIET_MS 50

/* How long a test waits for an event that must come. Never reached. */
#define T_LONG_MS 5000

/* One Suite per area; main.c runs them all. */
Suite *t_suite_create(void);
Suite *t_suite_ctl_errors(void);
Suite *t_suite_wait(void);
Suite *t_suite_badptr(void);
Suite *t_suite_lt(void);
Suite *t_suite_et(void);
Suite *t_suite_oneshot(void);
Suite *t_suite_flags(void);
Suite *t_suite_pipes(void);
Suite *t_suite_sockets(void);
Suite *t_suite_fdtypes(void);
Suite *t_suite_epollfd(void);
Suite *t_suite_close(void);
Suite *t_suite_fork(void);
Suite *t_suite_threads(void);
Suite *t_suite_signals(void);
Suite *t_suite_deviations(void);
Suite *t_suite_host(void);
Suite *t_suite_pollable(void);
Suite *t_suite_rawclose(void);
Suite *t_suite_taskwork(void);

/* 1 when the epoll names are ringpoll's (compat build or preload run). */
int t_emulated(void);

/*
 * A TCase with the fd-leak fixture and the timeout. Every TCase of the
 * suite is made here so none can forget either.
 */
TCase *t_tcase(const char *name);

/*
 * Add @tt to @tc, or, when @why_not is non-NULL, print
 * "skip: <test>: <why_not>" and leave it out, so a missing kernel feature
 * never counts as a pass.
 */
void t_add_unless(TCase *tc, const TTest *tt, const char *why_not);

/* Number of open fds below the soft RLIMIT_NOFILE. */
int t_fd_count(void);

/* Monotonic clock in milliseconds. */
int64_t t_now_ms(void);

/* epoll_create1(EPOLL_CLOEXEC), asserted. */
int t_epoll(void);

/* epoll_ctl with an event built from @events and @data, asserted to be 0. */
void t_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);

/* epoll_ctl as above, returning its result with errno left intact. */
int t_ctl_raw(int epfd, int op, int fd, uint32_t events, uint64_t data);

/* epoll_wait, retried on EINTR (for tests that are not about EINTR). */
int t_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);

/* close(), asserted. */
void t_close(int fd);

/* Nonblocking, close-on-exec pipe. */
void t_pipe(int fds[2]);

/* Nonblocking, close-on-exec AF_UNIX socketpair of @type. */
void t_socketpair(int type, int sv[2]);

/*
 * A nonblocking TCP listener on 127.0.0.1 with a kernel-chosen port;
 * @addr receives its address.
 */
int t_tcp_listener(struct sockaddr_in *addr);

/*
 * A connected, nonblocking TCP pair on loopback with Nagle off, so one
 * small send() is one segment that the peer sees at once.
 */
void t_tcp_pair(int *client, int *server);

/* Write @len bytes of filler to @fd, asserted to be written whole. */
void t_write(int fd, size_t len);

/* Read until EAGAIN or EOF; returns the bytes read. */
size_t t_drain(int fd);

/* Write until EAGAIN; returns the bytes written. */
size_t t_fill(int fd);

/* poll() one fd, returning revents (0 on timeout). */
int t_poll1(int fd, short events, int timeout);

/*
 * Wait until thread @tid of process @pid is asleep inside a wait system
 * call (epoll_wait, epoll_pwait, epoll_pwait2, io_uring_enter or futex,
 * the last for an emulation that parks extra waiters). This turns "the
 * other thread is blocked" into a handshake instead of a sleep. Returns 0,
 * or -1 after T_LONG_MS.
 */
int t_task_blocked(pid_t pid, pid_t tid);
/*
 * As t_task_blocked, but asleep in an epoll wait or io_uring_enter only,
 * not a futex (a lock on the way to the wait): 0, or -1 on timeout.
 */
int t_task_in_epoll_wait(pid_t pid, pid_t tid);

/*
 * NULL or an unmapped buffer is passed on purpose in a few tests. Valgrind
 * would report it as an error in the program; these markers tell it not
 * to. Without valgrind's header such tests are skipped under valgrind.
 */
#ifdef T_HAVE_VALGRIND_H
#define T_BAD_POINTER_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define T_BAD_POINTER_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define T_BAD_POINTER_BEGIN() ((void)0)
#define T_BAD_POINTER_END() ((void)0)
#endif
const char *t_bad_pointer_skip(void);

/*
 * Assertion helpers are macros so that a failure names the test's line,
 * not a line in the helper.
 */

/* @call must fail with -1 and errno @err. */
#define t_assert_errno(call, err)                                              \
	do {                                                                   \
		int ret_, errno_;                                              \
		errno = 0;                                                     \
		ret_ = (call);                                                 \
		errno_ = errno; /* ck_assert may clobber errno */              \
		ck_assert_int_eq(ret_, -1);                                    \
		ck_assert_int_eq(errno_, (err));                               \
	} while (0)

/* Exactly one event within @timeout ms, with data.u64 @tag and @mask. */
#define t_expect1(epfd, timeout, tag, mask)                                    \
	do {                                                                   \
		struct epoll_event ev_[2];                                     \
		int n_;                                                        \
		memset(ev_, 0, sizeof(ev_));                                   \
		n_ = t_wait((epfd), ev_, 2, (timeout));                        \
		ck_assert_int_eq(n_, 1);                                       \
		ck_assert_uint_eq(ev_[0].data.u64, (uint64_t)(tag));           \
		ck_assert_int_eq(ev_[0].events, (mask));                       \
	} while (0)

/* No event within @timeout ms. */
#define t_expect_none(epfd, timeout)                                           \
	do {                                                                   \
		struct epoll_event ev_[2];                                     \
		ck_assert_int_eq(t_wait((epfd), ev_, 2, (timeout)), 0);        \
	} while (0)

/*
 * A forked child must not call ck_assert: in CK_FORK=no mode a failure
 * would longjmp into the runner inside the child. It checks with this and
 * reports the failed step through its exit status instead.
 */
#define T_CHILD_REQUIRE(cond, step)                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			_exit(step);                                           \
	} while (0)

/*
 * Every fd used up: the soft RLIMIT_NOFILE lowered to a little above the
 * fds open, then /dev/null opened until EMFILE. t_fds_release closes them
 * and puts the limit back. No ck_assert: usable in a forked child.
 */
struct t_fds {
	struct rlimit old;
	int n;
	int fd[256];
};
int t_fds_exhaust(struct t_fds *f);
void t_fds_release(struct t_fds *f);

/* Is @fd a kernel epoll instance ("anon_inode:[eventpoll]")? */
int t_is_kernel_epoll(int fd);

/*
 * This process loses the right to create io_uring instances, as under a
 * container's seccomp profile: io_uring_setup fails with ENOSYS. Returns
 * 0, or -1. For forked children.
 */
int t_block_io_uring(void);

/* Reap @pid and assert it exited with status 0. */
void t_reap_child(pid_t pid);

/* pthread_create/pthread_join, asserted. */
void t_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
void t_thread_join(pthread_t t);

#endif /* T_EPOLL_H */
