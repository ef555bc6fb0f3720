/* SPDX-License-Identifier: MIT */
/*
 * A plain epoll echo server, level-triggered, nonblocking. Nothing in it
 * knows about ringpoll: build it with the drop-in header and its epoll
 * runs on io_uring; build it without and it runs on the kernel's epoll.
 *
 *   cc epoll-server.c -include ringpoll_compat.h \
 *       $(pkg-config --cflags --libs ringpoll) -lpthread     (io_uring)
 *   cc epoll-server.c -lpthread                              (kernel)
 *
 *   epoll-server [PORT]       serve 127.0.0.1:PORT (7008)
 *   epoll-server --self-test  serve a free port, run the client of
 *                             selftest.h, exit 0 if every byte came back
 *
 * It says which epoll it got: /proc/self/fd shows anon_inode:[io_uring]
 * for ringpoll's, anon_inode:[eventpoll] for the kernel's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "selftest.h"
/* (ringpoll_compat.h comes in here through -include, after the system
 * headers; #include <ringpoll_compat.h> at this point does the same.) */

#define MAX_EVENTS 64

static int add(int ep, int fd, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * Echo what can be read. A write that finds the socket full is retried
 * at once: short, but it spins while the peer does not read; a real
 * server keeps the rest and waits for EPOLLOUT.
 */
static int serve(int fd)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf)), off = 0;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
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
	uint64_t one = 1;

	if (write(*(int *)arg, &one, sizeof(one)) < 0)
		perror("eventfd");
}

int main(int argc, char **argv)
{
	struct epoll_event evs[MAX_EVENTS];
	struct selftest test;
	char link[64], path[64];
	int port = 7008, self_test = 0, lfd, ep, quit, done = 0;
	ssize_t n;

	if (argc > 1 && strcmp(argv[1], "--self-test") == 0)
		self_test = 1;
	else if (argc > 1)
		port = atoi(argv[1]);
	lfd = selftest_listen(self_test ? 0 : port, &port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	quit = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (lfd < 0 || ep < 0 || quit < 0 ||
	    fcntl(lfd, F_SETFL, O_NONBLOCK) < 0 || add(ep, lfd, EPOLLIN) < 0 ||
	    add(ep, quit, EPOLLIN) < 0) {
		perror("epoll-server");
		return 1;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", ep);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	printf("epoll-server: 127.0.0.1:%d, epoll fd %s\n", port, link);
	fflush(stdout);
	if (self_test && selftest_start(&test, port, stop, &quit) < 0)
		return 1;
	while (!done) {
		int k = epoll_wait(ep, evs, MAX_EVENTS, -1);

		if (k < 0 && errno != EINTR) {
			perror("epoll_wait");
			break;
		}
		for (int i = 0; i < k; i++) {
			int fd = evs[i].data.fd, c;

			if (fd == quit) {
				done = 1;
			} else if (fd == lfd) {
				c = accept(lfd, NULL, NULL);
				if (c >= 0 &&
				    (fcntl(c, F_SETFL, O_NONBLOCK) < 0 ||
				     add(ep, c, EPOLLIN) < 0))
					close(c);
			} else if (serve(fd) < 0) {
				/* close forgets fd in the epoll instance:
				 * under ringpoll it is rp_close. */
				close(fd);
			}
		}
	}
	close(quit);
	close(lfd);
	close(ep);
	if (self_test)
		return selftest_finish(&test, "epoll-server") < 0;
	return 0;
}
