/* SPDX-License-Identifier: MIT */
/*
 * The bounded client the examples run with --self-test: CONNS blocking
 * connections to 127.0.0.1:port, each sending ROUNDS messages of growing
 * size and checking that every byte comes back, with a receive timeout so
 * that a server that hangs fails the test instead of hanging it. When it
 * is done it calls stop(arg), which tells the server to leave its loop.
 * Not part of the library: copy an example without it, or with it.
 */
#ifndef RP_EXAMPLE_SELFTEST_H
#define RP_EXAMPLE_SELFTEST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define SELFTEST_CONNS 8
#define SELFTEST_ROUNDS 50
#define SELFTEST_MAX 3000

struct selftest {
	int port;
	void (*stop)(void *arg);
	void *arg;
	long bytes;
	int failed;
	pthread_t thread;
};

static int selftest_conn(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends len bytes on fd and reads them back; 0 if they match. */
static int selftest_echo(int fd, const char *out, size_t len)
{
	char in[SELFTEST_MAX];
	size_t got = 0;

	if (send(fd, out, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	while (got < len) {
		ssize_t n = recv(fd, in + got, len - got, 0);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return memcmp(in, out, len) == 0 ? 0 : -1;
}

static void *selftest_run(void *p)
{
	struct selftest *t = p;
	char msg[SELFTEST_MAX];
	int fds[SELFTEST_CONNS];

	for (int i = 0; i < SELFTEST_CONNS; i++) {
		fds[i] = selftest_conn(t->port);
		if (fds[i] < 0)
			t->failed = 1;
	}
	for (int r = 0; r < SELFTEST_ROUNDS && !t->failed; r++) {
		for (int i = 0; i < SELFTEST_CONNS && !t->failed; i++) {
			size_t len = 1 + (size_t)(r * 61 + i * 7) %
						 (SELFTEST_MAX - 1);

			for (size_t k = 0; k < len; k++)
				msg[k] = (char)('a' + (k + r + i) % 26);
			if (selftest_echo(fds[i], msg, len) < 0)
				t->failed = 1;
			else
				t->bytes += (long)len;
		}
	}
	for (int i = 0; i < SELFTEST_CONNS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	t->stop(t->arg);
	return NULL;
}

static int selftest_start(struct selftest *t, int port,
			  void (*stop)(void *arg), void *arg)
{
	memset(t, 0, sizeof(*t));
	t->port = port;
	t->stop = stop;
	t->arg = arg;
	return pthread_create(&t->thread, NULL, selftest_run, t) ? -1 : 0;
}

/* 0 if every byte came back. */
static int selftest_finish(struct selftest *t, const char *name)
{
	pthread_join(t->thread, NULL);
	if (t->failed) {
		fprintf(stderr, "%s: self-test failed\n", name);
		return -1;
	}
	printf("%s: self-test ok: %d connections, %ld bytes echoed\n", name,
	       SELFTEST_CONNS, t->bytes);
	return 0;
}

/* A listening socket on 127.0.0.1:port (0: any free port); its port. */
static int selftest_listen(int port, int *bound)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		close(fd);
		return -1;
	}
	*bound = ntohs(sin.sin_port);
	return fd;
}

#endif /* RP_EXAMPLE_SELFTEST_H */
