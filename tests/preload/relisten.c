/* SPDX-License-Identifier: MIT */
/*
 * relisten PORT child|check|serve, or relisten PORT killed TRIES LIMIT_MS
 * [RUNNER].
 *
 * "child" listens on PORT, registers the socket with epoll and exits
 * without closing it; "check" binds PORT again. Run one after the other,
 * the port must be free: no poll may keep the socket alive after its
 * process is gone.
 *
 * "serve" listens, registers, writes one byte to stdout and waits in
 * epoll_wait until killed. "killed" runs "[RUNNER] relisten PORT serve"
 * TRIES times, kills it with SIGKILL once it waits, reaps it, and binds
 * PORT (SO_REUSEADDR, as servers do) until that works: every bind must
 * work within LIMIT_MS, or at the first try if LIMIT_MS is 0. It prints
 * how many tries needed more than one bind, and the longest wait.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int listener(int port, int *err)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001) };
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (void *)&a, sizeof(a)) < 0) {
		*err = errno;
		close(s);
		return -1;
	}
	return s;
}

/* Once the killed server is reaped: how long until PORT binds (-1: never). */
static double rebind_ms(int port, double limit, int *binds)
{
	double t0 = now_ms(), ms;
	int s, err;

	for (*binds = 1;; ++*binds) {
		s = listener(port, &err);
		ms = now_ms() - t0;
		if (s >= 0) {
			close(s);
			return ms;
		}
		if (err != EADDRINUSE || ms > limit)
			return -1;
		usleep(100);
	}
}

static int killed(int port, int tries, double limit, char *runner)
{
	int late = 0, binds;
	double worst = 0, ms;
	char portstr[16], self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return 2;
	self[n] = '\0';
	snprintf(portstr, sizeof(portstr), "%d", port);
	for (int i = 0; i < tries; i++) {
		char *argv[] = { runner, self, portstr, "serve", NULL };
		int p[2];
		pid_t pid;
		char c;

		if (pipe(p) < 0)
			return 2;
		pid = fork();
		if (pid == 0) {
			dup2(p[1], 1);
			close(p[0]);
			execv(argv[runner ? 0 : 1], argv + (runner ? 0 : 1));
			_exit(127);
		}
		close(p[1]);
		if (read(p[0], &c, 1) != 1) {
			fprintf(stderr, "relisten: the server did not start\n");
			return 2;
		}
		close(p[0]);
		usleep(10000); /* asleep in epoll_wait by now */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		ms = rebind_ms(port, limit ? limit : 3000, &binds);
		if (ms < 0) {
			printf("port %d still in use %.0f ms after the kill\n", port, limit ? limit : 3000);
			return 1;
		}
		late += binds > 1;
		worst = ms > worst ? ms : worst;
	}
	printf("%d of %d binds after SIGKILL had to wait, the longest %.1f ms\n", late, tries, worst);
	return late && !limit ? 1 : 0;
}

int main(int argc, char **argv)
{
	int err, s;

	if (argc >= 5 && strcmp(argv[2], "killed") == 0)
		return killed(atoi(argv[1]), atoi(argv[3]), atof(argv[4]), argc > 5 ? argv[5] : NULL);
	if (argc != 3)
		return 2;
	s = listener(atoi(argv[1]), &err);
	if (s < 0) {
		fprintf(stderr, "bind: %s\n", strerror(err));
		return 1;
	}
	listen(s, 8);
	if (strcmp(argv[2], "child") == 0) {
		int ep = epoll_create1(0);
		struct epoll_event ev = { .events = EPOLLIN };
		epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
		epoll_wait(ep, &ev, 1, 0);
		exit(0);
	}
	if (strcmp(argv[2], "serve") == 0) {
		int ep = epoll_create1(0);
		struct epoll_event ev = { .events = EPOLLIN };
		epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
		if (write(1, "r", 1) != 1)
			return 1;
		for (;;)
			epoll_wait(ep, &ev, 1, -1);
	}
	return 0;
}
