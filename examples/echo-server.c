/* SPDX-License-Identifier: MIT */
/*
 * An echo server on ringpoll's loop and Async wrapper, in either model:
 *
 *   echo-server [--completion] [PORT]    serve 127.0.0.1:PORT (7007)
 *   echo-server [--completion] --self-test
 *
 * The same code runs poll-on-ring (the readiness model: try recv, and if it
 * would block wait for a poll on the ring) or, with --completion, as
 * IORING_OP_ACCEPT / RECV / SEND. --self-test serves a free port, runs the
 * client of selftest.h against it and exits 0 if every byte came back.
 *
 *   cc echo-server.c $(pkg-config --cflags --libs ringpoll) -lpthread
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringpoll.h>

#include "selftest.h"

struct conn {
	rp_source src;
	size_t len, off; /* bytes in buf, and how many went back so far */
	char buf[4096];
};

static rp_source listener;
static atomic_int stopping;

static void sent(struct rp_loop *loop, rp_source s, ssize_t n, void *user);

/* Whatever came in goes back out; 0 (the peer hung up) or an error ends. */
static void received(struct rp_loop *loop, rp_source s, ssize_t n, void *user)
{
	struct conn *c = user;

	c->len = n > 0 ? (size_t)n : 0;
	c->off = 0;
	if (n <= 0 || rp_send(loop, s, c->buf, c->len, 0, sent, c) < 0) {
		rp_source_close(loop, s);
		free(c);
	}
}

/* rp_send may send less than asked, as send(2) does: send the rest. */
static void sent(struct rp_loop *loop, rp_source s, ssize_t n, void *user)
{
	struct conn *c = user;
	int ret;

	if (n <= 0) {
		ret = -1;
	} else if ((c->off += (size_t)n) < c->len) {
		ret = rp_send(loop, s, c->buf + c->off, c->len - c->off, 0,
			      sent, c);
	} else {
		ret = rp_recv(loop, s, c->buf, sizeof(c->buf), 0, received,
			      c);
	}
	if (ret < 0) {
		rp_source_close(loop, s);
		free(c);
	}
}

static void accepted(struct rp_loop *loop, rp_source s, ssize_t fd, void *u)
{
	struct conn *c;

	(void)s;
	if (fd >= 0) {
		c = calloc(1, sizeof(*c));
		if (c && rp_source_new(loop, (int)fd, &c->src) == 0) {
			rp_recv(loop, c->src, c->buf, sizeof(c->buf), 0,
				received, c);
		} else {
			close((int)fd);
			free(c);
		}
	}
	/* The next connection; after an error too (EMFILE passes). */
	if (!atomic_load(&stopping))
		rp_accept(loop, listener, NULL, NULL, SOCK_CLOEXEC, accepted,
			  u);
}

/* From the self-test's thread: rp_loop_wake is the thread-safe call. */
static void stop(void *arg)
{
	atomic_store(&stopping, 1);
	rp_loop_wake(arg);
}

int main(int argc, char **argv)
{
	struct rp_loop_config cfg = { .model = RP_MODEL_READINESS };
	struct selftest test;
	struct rp_loop *loop;
	int port = 7007, self_test = 0, lfd, ret;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--completion") == 0)
			cfg.model = RP_MODEL_COMPLETION;
		else if (strcmp(argv[i], "--self-test") == 0)
			self_test = 1;
		else
			port = atoi(argv[i]);
	}
	ret = rp_loop_new(&loop, &cfg);
	if (ret < 0) {
		fprintf(stderr, "rp_loop_new: %s\n", rp_strerror(ret));
		return 1;
	}
	lfd = selftest_listen(self_test ? 0 : port, &port);
	if (lfd < 0 || rp_source_new(loop, lfd, &listener) < 0) {
		perror("listen");
		return 1;
	}
	printf("echo-server: %s model, 127.0.0.1:%d\n",
	       cfg.model == RP_MODEL_COMPLETION ? "completion" : "readiness",
	       port);
	fflush(stdout);
	rp_accept(loop, listener, NULL, NULL, SOCK_CLOEXEC, accepted, NULL);
	if (self_test && selftest_start(&test, port, stop, loop) < 0)
		return 1;
	while (!atomic_load(&stopping)) {
		ret = rp_loop_run_once(loop, -1);
		if (ret < 0) {
			fprintf(stderr, "rp_loop_run_once: %s\n",
				rp_strerror(ret));
			break;
		}
	}
	/* Closes the listener and every connection still open. */
	rp_loop_free(loop);
	if (self_test)
		return selftest_finish(&test, "echo-server") < 0 || ret < 0;
	return ret < 0;
}
