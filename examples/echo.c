/* SPDX-License-Identifier: MIT */
/* A TCP echo server and its client on one loop: cc echo.c -lringpoll -luring */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ringpoll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct conn {
	rp_source src;
	char buf[64];
};

static struct conn server, client;
static rp_source listener;

static void server_sent(struct rp_loop *loop, rp_source s, ssize_t n, void *u);

/* The server echoes whatever it receives, until the client hangs up. */
static void server_got(struct rp_loop *loop, rp_source s, ssize_t n, void *u)
{
	if (n <= 0) {
		rp_source_close(loop, s);
		return;
	}
	rp_send(loop, s, server.buf, (size_t)n, 0, server_sent, u);
}

static void server_sent(struct rp_loop *loop, rp_source s, ssize_t n, void *u)
{
	(void)n;
	rp_recv(loop, s, server.buf, sizeof(server.buf), 0, server_got, u);
}

static void accepted(struct rp_loop *loop, rp_source s, ssize_t fd, void *u)
{
	(void)s;
	if (fd < 0 || rp_source_new(loop, (int)fd, &server.src) < 0)
		return;
	rp_recv(loop, server.src, server.buf, sizeof(server.buf), 0,
		server_got, u);
	rp_source_close(loop, listener);
}

static void client_got(struct rp_loop *loop, rp_source s, ssize_t n, void *u)
{
	(void)u;
	printf("echoed: %.*s\n", (int)(n > 0 ? n : 0), client.buf);
	rp_source_close(loop, s);
}

static void client_sent(struct rp_loop *loop, rp_source s, ssize_t n, void *u)
{
	(void)n;
	rp_recv(loop, s, client.buf, sizeof(client.buf), 0, client_got, u);
}

static void connected(struct rp_loop *loop, rp_source s, ssize_t res, void *u)
{
	static const char msg[] = "hello, ring";

	if (res < 0) {
		fprintf(stderr, "connect: %s\n", rp_strerror((int)res));
		rp_loop_stop(loop);
		return;
	}
	rp_send(loop, s, msg, strlen(msg), 0, client_sent, u);
}

int main(int argc, char **argv)
{
	struct rp_loop_config cfg = { .model = RP_MODEL_READINESS };
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	struct rp_loop *loop;
	int lfd, cfd, ret;

	if (argc > 1 && strcmp(argv[1], "completion") == 0)
		cfg.model = RP_MODEL_COMPLETION;
	ret = rp_loop_new(&loop, &cfg);
	if (ret < 0) {
		fprintf(stderr, "rp_loop_new: %s\n", rp_strerror(ret));
		return 1;
	}
	/* Listen on an ephemeral loopback port and connect to it. */
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, len) < 0 ||
	    listen(lfd, 8) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len) < 0)
		return 1;
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	rp_source_new(loop, lfd, &listener);
	rp_source_new(loop, cfd, &client.src);
	rp_accept(loop, listener, NULL, NULL, SOCK_CLOEXEC, accepted, NULL);
	rp_connect(loop, client.src, (struct sockaddr *)&addr, len, connected,
		   NULL);
	ret = rp_loop_run(loop);
	rp_loop_free(loop);
	return ret < 0;
}
