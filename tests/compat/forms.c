// SPDX-License-Identifier: MIT
/*
 * Valid epoll code must build and run unchanged with ringpoll_compat.h
 * (tests/compat/compat.mk builds this file three ways):
 *
 * - forced: `-std=c11 -include ringpoll_compat.h`, no -D_GNU_SOURCE: the
 *   header comes before this file's own #define _GNU_SOURCE, which must
 *   still take effect (pipe2, accept4 and SOCK_NONBLOCK are GNU).
 * - late (T_LATE): the header included after the system headers.
 * - no close macro (T_LATE, RINGPOLL_NO_CLOSE_MACRO): a struct with a
 *   member called close, declared before the header, used after it.
 *
 * Every form: epoll_ctl with a compound literal (commas inside the
 * braces), the epoll names as function pointers, a struct member called
 * close called through obj.close(x) and p->close(x). The epoll fd must be
 * ringpoll's, an io_uring fd. Exits 0, or the number of the failed step.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Declared before a late header and used after it: builds only without
 * the close macro (forced, the header came first and renames it all).
 */
#if !defined(T_LATE) || defined(RINGPOLL_NO_CLOSE_MACRO)
struct t_early_ops {
	int (*close)(int fd);
};
#endif

#ifdef T_LATE
#include <ringpoll_compat.h>
#endif

/* Declared after the header: renamed with its uses, if close is a macro. */
struct t_ops {
	int (*close)(int fd);
	int closes;
};

static struct t_ops *t_ops_self;

static int t_counting_close(int fd)
{
	t_ops_self->closes++;
	return close(fd);
}

#define T_REQUIRE(cond, step)                                              \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "forms: step %d failed: %s (%s)\n", \
				(step), #cond, strerror(errno));           \
			return (step);                                     \
		}                                                          \
	} while (0)

/* The epoll fd is ringpoll's: an io_uring fd. */
static int t_is_ring(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = '\0';
	return strstr(link, "io_uring") != NULL;
}

int main(void)
{
	int (*ctl)(int, int, int, struct epoll_event *) = epoll_ctl;
	int (*wait)(int, struct epoll_event *, int, int) = &epoll_wait;
	struct t_ops ops = { .close = t_counting_close }, *pops = &ops;
#if !defined(T_LATE) || defined(RINGPOLL_NO_CLOSE_MACRO)
	struct t_early_ops early = { .close = t_counting_close };
#endif
	struct epoll_event ev[2];
	int ep, p[2], sv[2];

	t_ops_self = &ops;
	ep = epoll_create1(EPOLL_CLOEXEC);
	T_REQUIRE(ep >= 0, 1);
	T_REQUIRE(t_is_ring(ep), 2);
	/* GNU names: _GNU_SOURCE took effect. */
	T_REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0, 3);
	T_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0,
		  4);
	(void)accept4;
	T_REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, p[0],
			    &(struct epoll_event){ .events = EPOLLIN,
						   .data.u64 = 1 }) == 0,
		  5);
	T_REQUIRE(ctl(ep, EPOLL_CTL_ADD, sv[0],
		      &(struct epoll_event){ .events = EPOLLIN,
					     .data.u64 = 2 }) == 0,
		  6);
	T_REQUIRE(write(p[1], "x", 1) == 1, 7);
	T_REQUIRE(wait(ep, ev, 2, 0) == 1 && ev[0].data.u64 == 1, 8);
	T_REQUIRE(epoll_pwait(ep, ev, 2, 0, NULL) == 1, 9);
	/* close through members: the fd leaves the instance. */
	T_REQUIRE(ops.close(p[0]) == 0, 10);
	T_REQUIRE(pops->close(p[1]) == 0 && ops.closes == 2, 11);
	T_REQUIRE(write(sv[1], "y", 1) == 1, 12);
	T_REQUIRE(epoll_wait(ep, ev, 2, 0) == 1 && ev[0].data.u64 == 2, 13);
#ifdef RINGPOLL_NO_CLOSE_MACRO
	/* close is libc's here: registered fds and instances need rp_close. */
	T_REQUIRE(rp_close(sv[0]) == 0 && early.close(sv[1]) == 0, 14);
	T_REQUIRE(ops.closes == 3, 15);
	T_REQUIRE(rp_close(ep) == 0, 16);
#else
#ifndef T_LATE
	T_REQUIRE(early.close(sv[0]) == 0 && ops.closes == 3, 14);
#else
	T_REQUIRE(close(sv[0]) == 0, 14);
#endif
	T_REQUIRE(close(sv[1]) == 0, 15);
	T_REQUIRE(close(ep) == 0, 16);
#endif
	T_REQUIRE(fcntl(ep, F_GETFD) < 0 && errno == EBADF, 17);
	return 0;
}
