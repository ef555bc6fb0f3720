/* SPDX-License-Identifier: MIT */
/* Shared helpers of the unit tests (t_ prefix, as in liburing's tests). */
#ifndef T_UTIL_H
#define T_UTIL_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringpoll.h"

/* Every test case gets this limit (seconds); a hang is a failure. */
#define T_TIMEOUT 30

/*
 * valgrind runs one thread at a time and delivers signals itself: a thread
 * blocked in io_uring_enter is neither woken by another thread's eventfd
 * write nor by a signal let in through the wait's sigmask. These tests run
 * natively and under ASan instead.
 */
#define T_VALGRIND_SIGNALS \
	"valgrind serialises threads and signals around io_uring_enter"

/* The two models, for tcase_add_loop_test(tc, fn, 0, 2): _i is the model. */
#define T_MODELS 2

Suite *t_suite_ring(void);
Suite *t_suite_poll(void);
Suite *t_suite_loop(void);
Suite *t_suite_timer(void);
Suite *t_suite_async(void);
Suite *t_suite_close(void);
Suite *t_suite_scale(void);
Suite *t_suite_badinput(void);
Suite *t_suite_epoll(void);
Suite *t_suite_faults(void);

/* A TCase with the timeout and the fd-leak fixture. */
TCase *t_tcase(const char *name);
/* Prints "skip: name: why"; the caller then does not add the test. */
void t_skip(const char *name, const char *why);

struct rp_loop *t_loop(int model);
struct rp_loop *t_loop_cfg(const struct rp_loop_config *cfg);
/* Runs the loop until *flag is set, failing after timeout_ms. */
void t_run_until(struct rp_loop *loop, const volatile int *flag,
		 int timeout_ms);
int t_count_fds(void);
bool t_fd_open(int fd);
/* Raises RLIMIT_NOFILE to at least n; false if it cannot. */
bool t_nofile(unsigned n);
/* A nonblocking AF_UNIX stream pair. */
void t_socketpair(int sv[2]);
void t_pipe(int p[2]);
/* A listening TCP socket on 127.0.0.1, port chosen by the kernel. */
int t_listener(struct sockaddr_storage *addr, socklen_t *len);
/* Does this kernel accept this ring setup? */
bool t_setup_works(enum rp_setup setup);
bool t_under_valgrind(void);

/* A done callback that records its result. */
struct t_done {
	int calls;
	ssize_t res;
	rp_source src;
	int fd_open_at_call; /* was the source's fd still open? */
	int fd;
};
void t_done_cb(struct rp_loop *loop, rp_source src, ssize_t res, void *user);

#endif
