/* SPDX-License-Identifier: MIT */
/*
 * relisten PORT child|check: "child" listens on PORT, registers the socket
 * with epoll and exits without closing it; "check" binds PORT again. Run
 * one after the other, the port must be free: no poll may keep the
 * socket alive after its process is gone.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(0x7f000001) };
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);

	if (argc != 3)
		return 2;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (void *)&a, sizeof(a)) < 0) { perror("bind"); return 1; }
	listen(s, 8);
	if (strcmp(argv[2], "child") == 0) {
		int ep = epoll_create1(0);
		struct epoll_event ev = { .events = EPOLLIN };
		epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
		epoll_wait(ep, &ev, 1, 0);
		exit(0);
	}
	return 0;
}
