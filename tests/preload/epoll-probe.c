/* SPDX-License-Identifier: MIT */
/*
 * A plain epoll program for the shim's tests: one pipe, one event, and a
 * line saying what the epoll fd really is.
 */
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 };
	char path[64], link[64] = { 0 };
	int epfd = epoll_create1(EPOLL_CLOEXEC), p[2], n;

	if (epfd < 0 || pipe(p) < 0)
		return 1;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev) < 0)
		return 1;
	if (write(p[1], "x", 1) != 1)
		return 1;
	n = epoll_wait(epfd, &ev, 1, 5000);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", epfd);
	if (readlink(path, link, sizeof(link) - 1) < 0)
		return 1;
	printf("epfd=%s event=%s\n", link,
	       n == 1 && ev.data.u64 == 42 ? "ok" : "missing");
	close(p[0]);
	close(p[1]);
	close(epfd);
	return n == 1 ? 0 : 1;
}
