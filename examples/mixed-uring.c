/* SPDX-License-Identifier: MIT */
/*
 * One thread, two rings: the program's own io_uring (liburing) for its own
 * operations, and a ringpoll epoll instance (rp_epoll_*) for an echo
 * server's sockets. The epoll instance's fd is an io_uring fd that reads
 * as ready (POLLIN) while a completion waits in it, so the program sleeps
 * in its own ring only, with an IORING_OP_POLL_ADD on that fd among its
 * operations; when the poll fires, rp_epoll_wait(..., 0) takes the events.
 *
 * rp_epoll_wait also hands the instance's queued work (new registrations,
 * re-arms) to the kernel: call it, with a timeout of 0, before each sleep
 * (README, "Differences from kernel epoll", 3).
 *
 *   cc mixed-uring.c $(pkg-config --cflags --libs ringpoll) -lpthread
 *   mixed-uring [PORT]       serve 127.0.0.1:PORT (7009)
 *   mixed-uring --self-test  serve a free port, run the client of
 *                            selftest.h, exit 0 if every byte came back
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringpoll_epoll.h>

#include "selftest.h"

/* What each of our own operations is, in its user_data. */
enum { OP_EPOLL = 1, OP_TICK, OP_QUIT };

static struct io_uring app;
static struct __kernel_timespec tick = { .tv_nsec = 100 * 1000000 };
static char quit_byte;

static void queue(int kind, int fd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&app);

	if (!sqe) { /* full: hand the queue to the kernel, take a fresh one */
		io_uring_submit(&app);
		sqe = io_uring_get_sqe(&app);
	}
	if (kind == OP_EPOLL)
		io_uring_prep_poll_add(sqe, fd, POLLIN);
	else if (kind == OP_TICK)
		io_uring_prep_timeout(sqe, &tick, 0, 0);
	else
		io_uring_prep_read(sqe, fd, &quit_byte, 1, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)kind);
}

/* Echo what can be read (see epoll-server.c); -1: close the connection. */
static int serve(int fd)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf)), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		if (n == 0)
			return -1;
		while (off < n) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w < 0 && errno != EAGAIN && errno != EINTR)
				return -1;
			off += w > 0 ? w : 0;
		}
	}
}

static void stop(void *arg)
{
	if (write(*(int *)arg, "q", 1) != 1)
		perror("pipe");
}

int main(int argc, char **argv)
{
	struct epoll_event ev, evs[64];
	struct io_uring_cqe *cqe;
	struct selftest test;
	int port = 7009, self_test = 0, lfd, ep, quit[2], done = 0, ret;
	unsigned head, seen, ticks = 0;

	if (argc > 1 && strcmp(argv[1], "--self-test") == 0)
		self_test = 1;
	else if (argc > 1)
		port = atoi(argv[1]);
	ret = io_uring_queue_init(16, &app, 0);
	if (ret < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	lfd = selftest_listen(self_test ? 0 : port, &port);
	ep = rp_epoll_create1(EPOLL_CLOEXEC);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = lfd };
	if (lfd < 0 || ep < 0 || pipe2(quit, O_CLOEXEC) < 0 ||
	    fcntl(lfd, F_SETFL, O_NONBLOCK) < 0 ||
	    rp_epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("mixed-uring");
		return 1;
	}
	printf("mixed-uring: 127.0.0.1:%d, epoll on %s\n", port,
	       rp_epoll_is_ring(ep) ? "io_uring" : "the kernel's epoll");
	fflush(stdout);
	if (self_test && selftest_start(&test, port, stop, &quit[1]) < 0)
		return 1;
	queue(OP_EPOLL, ep);
	queue(OP_TICK, -1);
	queue(OP_QUIT, quit[0]);
	while (!done) {
		/* Our epoll: submit its work, take what is ready, no wait. */
		int k = rp_epoll_wait(ep, evs, 64, 0);

		for (int i = 0; i < k; i++) {
			int fd = evs[i].data.fd, c;

			if (fd == lfd) {
				c = accept(lfd, NULL, NULL);
				ev = (struct epoll_event){ .events = EPOLLIN,
							   .data.fd = c };
				if (c >= 0 &&
				    (fcntl(c, F_SETFL, O_NONBLOCK) < 0 ||
				     rp_epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) <
					     0))
					rp_close(c);
			} else if (serve(fd) < 0) {
				rp_close(fd); /* forgets fd in the instance */
			}
		}
		if (k > 0)
			continue; /* more may be ready: look again first */
		/* Sleep in our own ring until one of our ops completes. */
		ret = io_uring_submit_and_wait(&app, 1);
		if (ret < 0 && ret != -EINTR) {
			fprintf(stderr, "io_uring_submit_and_wait: %s\n",
				strerror(-ret));
			break;
		}
		seen = 0;
		io_uring_for_each_cqe(&app, head, cqe) {
			int kind = (int)io_uring_cqe_get_data64(cqe);

			seen++;
			if (kind == OP_EPOLL) {
				queue(OP_EPOLL, ep); /* one-shot: again */
			} else if (kind == OP_TICK) {
				ticks++;
				queue(OP_TICK, -1);
			} else if (kind == OP_QUIT) {
				done = 1;
			}
		}
		io_uring_cq_advance(&app, seen);
	}
	rp_close(lfd);
	rp_close(ep);
	io_uring_queue_exit(&app);
	close(quit[0]);
	close(quit[1]);
	if (self_test) {
		printf("mixed-uring: %u ticks of our own timeout op\n", ticks);
		return selftest_finish(&test, "mixed-uring") < 0;
	}
	return 0;
}
