/* SPDX-License-Identifier: MIT */
/*
 * rpbench server: one echo server, in the I/O model its mode names, on N
 * worker threads that share one listening socket.
 *
 * The main thread serves no traffic: it waits on a signalfd and on the
 * control port, so that a report never disturbs the counters of the data
 * path. A report is one line (report.c):
 * - on a connection to the control port (default: port + 1), sent back;
 * - on SIGUSR1, written to --report FILE (or stdout);
 * - on SIGTERM/SIGINT, the workers stop and the final report goes to stdout
 *   and to --report FILE; the process then exits through exit(), so that a
 *   preloaded ringpoll prints its RINGPOLL_STATS=1 line too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

#define RPB_MAX_THREADS 64
/* Deep enough that 512 connections made at once are never refused. */
#define RPB_BACKLOG 4096
/* A control client has this long to send its request line. */
#define RPB_CTL_TIMEOUT_MS 1000

static const struct rpb_mode rpb_modes[] = {
    {"epoll", RPB_LT, rpb_kepoll_run, NULL, rpb_kepoll_sample,
     "kernel epoll, level-triggered"},
    {"epoll-et", RPB_ET, rpb_kepoll_run, NULL, rpb_kepoll_sample,
     "kernel epoll, edge-triggered (read until EAGAIN)"},
    {"epoll-oneshot", RPB_ONESHOT, rpb_kepoll_run, NULL, rpb_kepoll_sample,
     "kernel epoll, EPOLLONESHOT re-armed with EPOLL_CTL_MOD"},
    {"rp-epoll", RPB_LT, rpb_rpepoll_run, NULL, rpb_rpepoll_sample,
     "the epoll code on rp_epoll_*, level-triggered"},
    {"rp-epoll-et", RPB_ET, rpb_rpepoll_run, NULL, rpb_rpepoll_sample,
     "the epoll code on rp_epoll_*, edge-triggered"},
    {"rp-epoll-oneshot", RPB_ONESHOT, rpb_rpepoll_run, NULL, rpb_rpepoll_sample,
     "the epoll code on rp_epoll_*, EPOLLONESHOT"},
    {"rp-readiness", RPB_READINESS, rpb_async_run, rpb_async_stop,
     rpb_async_sample, "rp_loop, Async wrapper, poll-on-ring"},
    {"rp-completion", RPB_COMPLETION, rpb_async_run, rpb_async_stop,
     rpb_async_sample, "rp_loop, Async wrapper, IORING_OP_RECV/SEND"},
    {"uring", RPB_NATIVE, rpb_uring_run, NULL, rpb_uring_sample,
     "native liburing: multishot accept, recv, send"},
    {"uring-poll-lt", RPB_NATIVE, rpb_upoll_lt_run, NULL, rpb_uring_sample,
     "native liburing readiness: one-shot POLL_ADD (LT floor)"},
    {"uring-poll-et", RPB_NATIVE, rpb_upoll_et_run, NULL, rpb_uring_sample,
     "native liburing readiness: multishot POLL_ADD (ET floor)"},
    {"uring-poll-et-exact", RPB_NATIVE, rpb_upoll_et_exact_run, NULL,
     rpb_uring_sample,
     "the ET floor re-checking its CQEs with poll(2), as epoll does"},
};

#define RPB_NMODES (sizeof(rpb_modes) / sizeof(rpb_modes[0]))

static char rpb_backend[16] = "none";

/* Called by worker 0 before it serves, so no report races with it. */
void rpb_note_backend(int epfd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", epfd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return;
	link[n] = 0;
	snprintf(rpb_backend, sizeof(rpb_backend), "%s",
		 strstr(link, "io_uring") ? "io_uring" : "epoll");
}

static int rpb_server_usage(FILE *f)
{
	fprintf(f,
		"usage: rpbench server --mode MODE --port P [--threads N] "
		"[--bind ADDR]\n"
		"                      [--unix PATH] [--control-port C] "
		"[--report FILE]\n"
		"An echo server. --control-port defaults to P+1 (0: none); a "
		"connection\n"
		"to it gets one report line. SIGUSR1 writes a report to "
		"--report FILE\n"
		"(stdout without it); SIGTERM stops the server and writes the "
		"final one.\n"
		"--unix PATH: data connections on a unix stream socket at PATH "
		"instead of\n"
		"port P (a stale PATH is removed first, PATH at exit); the "
		"control port\n"
		"stays TCP: P+1, or --control-port.\n"
		"Modes:\n");
	for (size_t i = 0; i < RPB_NMODES; i++)
		fprintf(f, "  %-17s %s\n", rpb_modes[i].name,
			rpb_modes[i].about);
	fprintf(f, "The preload is measured as: ringpoll-run rpbench server "
		   "--mode epoll ...\n"
		   "(preload-completion: ringpoll-run --completion rpbench "
		   "server --mode epoll ...)\n");
	return RPB_EXIT_USAGE;
}

static int rpb_listen(const char *prog, const char *what, const char *addr,
		      uint64_t port, int flags)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd, one = 1;

	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "%s: --bind: '%s' is not an IPv4 address\n",
			prog, addr);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, RPB_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	if (errno == EADDRINUSE)
		fprintf(stderr, "%s: %s port %s:%llu is in use\n", prog, what,
			addr, (unsigned long long)port);
	else
		fprintf(stderr, "%s: %s port %s:%llu: %s\n", prog, what, addr,
			(unsigned long long)port, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -EINVAL;
}

/* The unix socket this server made, removed at exit if still ours. */
static struct {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
} rpb_unix;

static void rpb_unix_cleanup(void)
{
	struct stat st;

	/* Another server may have replaced it since: leave that one be. */
	if (stat(rpb_unix.path, &st) == 0 && st.st_dev == rpb_unix.dev &&
	    st.st_ino == rpb_unix.ino)
		unlink(rpb_unix.path);
}

/*
 * The data listener on a unix stream socket. A socket file left by a
 * server that died is removed first; one a live server answers on is
 * refused, as a port in use is, and so is a path that is not a socket.
 */
static int rpb_listen_unix(const char *prog, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "%s: --unix: '%s' is longer than %zu bytes\n",
			prog, path, sizeof(sun.sun_path) - 1);
		return -EINVAL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr,
				"%s: --unix: '%s' exists and is not a "
				"socket\n",
				prog, path);
			close(fd);
			return -EINVAL;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			fprintf(stderr, "%s: unix socket %s is in use\n", prog,
				path);
			close(fd);
			return -EINVAL;
		}
		if (unlink(path) < 0 && errno != ENOENT)
			goto fail;
		/* A failed connect leaves the socket unusable: a new one. */
		close(fd);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto fail;
	if (stat(path, &st) == 0) {
		memcpy(rpb_unix.path, sun.sun_path, sizeof(rpb_unix.path));
		rpb_unix.dev = st.st_dev;
		rpb_unix.ino = st.st_ino;
		atexit(rpb_unix_cleanup);
	}
	/* Nonblocking, as on TCP: workers race for each connection. */
	if (listen(fd, RPB_BACKLOG) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	return fd;
fail:
	fprintf(stderr, "%s: unix socket %s: %s\n", prog, path,
		strerror(errno));
	if (fd >= 0)
		close(fd);
	return -EINVAL;
}

static void *rpb_worker_main(void *arg)
{
	struct rpb_worker *w = arg;

	w->err = w->srv->mode->run(w);
	/* Tell the main thread, which sleeps in poll(). */
	if (w->err < 0 && !__atomic_load_n(&w->srv->stopping, __ATOMIC_RELAXED))
		kill(getpid(), SIGTERM);
	return NULL;
}

static void rpb_stop_workers(struct rpb_server *srv)
{
	uint64_t one = 1;

	__atomic_store_n(&srv->stopping, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < srv->nthreads; i++) {
		struct rpb_worker *w = &srv->workers[i];

		if (srv->mode->stop)
			srv->mode->stop(w);
		else if (write(w->stop_fd, &one, sizeof(one)) < 0)
			perror("rpbench server: stop");
	}
	for (int i = 0; i < srv->nthreads; i++)
		pthread_join(srv->workers[i].tid, NULL);
}

void rpb_report_take(struct rpb_server *srv, struct rpb_report *r)
{
	struct rpb_lib lib;
	struct rusage ru;

	memset(r, 0, sizeof(*r));
	snprintf(r->mode, sizeof(r->mode), "%s", srv->mode->name);
	snprintf(r->backend, sizeof(r->backend), "%s", rpb_backend);
	r->pid = (long)getpid();
	r->threads = (uint64_t)srv->nthreads;
	for (int i = 0; i < srv->nthreads; i++) {
		struct rpb_worker *w = &srv->workers[i];

		r->conns += RPB_GET(&w->c, conns);
		r->bytes += RPB_GET(&w->c, bytes);
		r->reads += RPB_GET(&w->c, reads);
		r->writes += RPB_GET(&w->c, writes);
		r->accepts += RPB_GET(&w->c, accepts);
		r->closes += RPB_GET(&w->c, closes);
		r->waits += RPB_GET(&w->c, waits);
		r->ctls += RPB_GET(&w->c, ctls);
		r->other += RPB_GET(&w->c, other);
		memset(&lib, 0, sizeof(lib));
		if (__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
			lib = w->final;
		else
			srv->mode->sample(w, &lib);
		r->enters += lib.enters;
		r->ctl_syscalls += lib.ctl_syscalls;
		r->lib_io += lib.io_syscalls;
	}
	/*
	 * On a library, epoll_wait and epoll_ctl are calls, not syscalls:
	 * count what the library says it entered the kernel for instead.
	 */
	r->syscalls = r->reads + r->writes + r->accepts + r->closes + r->other;
	if (srv->mode->flavour >= RPB_READINESS ||
	    strncmp(srv->mode->name, "rp-", 3) == 0)
		r->syscalls += r->enters + r->ctl_syscalls + r->lib_io;
	else
		r->syscalls += r->waits + r->ctls;
	getrusage(RUSAGE_SELF, &ru);
	r->utime_us = (uint64_t)ru.ru_utime.tv_sec * 1000000 +
		      (uint64_t)ru.ru_utime.tv_usec;
	r->stime_us = (uint64_t)ru.ru_stime.tv_sec * 1000000 +
		      (uint64_t)ru.ru_stime.tv_usec;
	r->cpu_us = r->utime_us + r->stime_us;
}

static void rpb_report_write(struct rpb_server *srv, const char *file,
			     bool to_stdout)
{
	struct rpb_report r;
	char line[1024];
	FILE *f;

	rpb_report_take(srv, &r);
	rpb_report_format(&r, line, sizeof(line));
	if (to_stdout || !file) {
		fputs(line, stdout);
		fflush(stdout);
	}
	if (!file)
		return;
	f = fopen(file, "w");
	if (!f) {
		fprintf(stderr, "rpbench server: --report %s: %s\n", file,
			strerror(errno));
		return;
	}
	fputs(line, f);
	fclose(f);
}

/* One control connection: read a request line, answer with the report. */
static void rpb_control(struct rpb_server *srv, int cfd)
{
	struct pollfd p = {.fd = cfd, .events = POLLIN};
	struct rpb_report r;
	char line[1024], req[64];
	ssize_t n;
	int len;

	if (poll(&p, 1, RPB_CTL_TIMEOUT_MS) <= 0)
		return;
	n = read(cfd, req, sizeof(req) - 1);
	if (n <= 0)
		return;
	req[n] = 0;
	if (strncmp(req, "stats", 5) != 0) {
		len = snprintf(line, sizeof(line),
			       "error: unknown request (send 'stats')\n");
	} else {
		rpb_report_take(srv, &r);
		len = rpb_report_format(&r, line, sizeof(line));
	}
	if (write(cfd, line, (size_t)len) < 0)
		return;
}

static int rpb_serve(struct rpb_server *srv, int ctl_fd, const char *report)
{
	struct pollfd pfd[2];
	struct signalfd_siginfo si;
	sigset_t set;
	int sfd, ret = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("rpbench server: signalfd");
		return RPB_EXIT_FAIL;
	}
	pfd[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = ctl_fd, .events = POLLIN};
	for (;;) {
		if (poll(pfd, ctl_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("rpbench server: poll");
			ret = RPB_EXIT_FAIL;
			break;
		}
		if (pfd[0].revents & POLLIN) {
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGUSR1) {
				rpb_report_write(srv, report, false);
				continue;
			}
			break;
		}
		if (ctl_fd >= 0 && (pfd[1].revents & POLLIN)) {
			int cfd = accept4(ctl_fd, NULL, NULL, SOCK_CLOEXEC);

			if (cfd >= 0) {
				rpb_control(srv, cfd);
				close(cfd);
			}
		}
	}
	rpb_stop_workers(srv);
	for (int i = 0; i < srv->nthreads; i++) {
		if (srv->workers[i].err < 0) {
			fprintf(stderr, "rpbench server: worker %d: %s\n", i,
				strerror(-srv->workers[i].err));
			ret = RPB_EXIT_FAIL;
		}
	}
	rpb_report_write(srv, report, true);
	close(sfd);
	return ret;
}

int rpb_server_main(int argc, char **argv)
{
	static const char prog[] = "rpbench server";
	const char *mode = NULL, *bind_addr = "127.0.0.1", *report = NULL;
	const char *unix_path = NULL;
	uint64_t port = 0, ctl_port = UINT64_MAX, threads = 1;
	struct rpb_server srv = {0};
	bool have_port = false;
	int lfd, ctl_fd = -1, ret;
	sigset_t set;

	/*
	 * First of all, so that a signal sent as soon as the process exists
	 * is queued for the signalfd, not fatal. Workers inherit the mask:
	 * only the main thread takes signals.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			rpb_server_usage(stdout);
			return 0;
		} else if (strcmp(a, "--mode") == 0 && v) {
			mode = v;
		} else if (strcmp(a, "--port") == 0) {
			if (rpb_parse_uint(prog, a, v, 1, 65535, &port))
				return RPB_EXIT_USAGE;
			have_port = true;
		} else if (strcmp(a, "--control-port") == 0) {
			if (rpb_parse_uint(prog, a, v, 0, 65535, &ctl_port))
				return RPB_EXIT_USAGE;
		} else if (strcmp(a, "--threads") == 0) {
			if (rpb_parse_uint(prog, a, v, 1, RPB_MAX_THREADS,
					   &threads))
				return RPB_EXIT_USAGE;
		} else if (strcmp(a, "--bind") == 0 && v) {
			bind_addr = v;
		} else if (strcmp(a, "--report") == 0 && v) {
			report = v;
		} else if (strcmp(a, "--unix") == 0 && v) {
			unix_path = v;
		} else {
			fprintf(stderr,
				"%s: unknown or incomplete option '%s'\n", prog,
				a);
			return rpb_server_usage(stderr);
		}
		i++;
	}
	/* On a unix socket, --port only names the control port. */
	if (!mode || (!have_port && !(unix_path && ctl_port != UINT64_MAX))) {
		fprintf(stderr,
			"%s: --mode and --port are required (with --unix: "
			"--port or --control-port)\n",
			prog);
		return rpb_server_usage(stderr);
	}
	for (size_t i = 0; i < RPB_NMODES; i++)
		if (strcmp(mode, rpb_modes[i].name) == 0)
			srv.mode = &rpb_modes[i];
	if (!srv.mode) {
		fprintf(stderr, "%s: unknown mode '%s'%s\n", prog, mode,
			strcmp(mode, "preload") == 0
			    ? " (run: ringpoll-run rpbench server --mode "
			      "epoll)"
			: strcmp(mode, "preload-completion") == 0
			    ? " (run: ringpoll-run --completion rpbench server "
			      "--mode epoll)"
			    : "");
		return rpb_server_usage(stderr);
	}
	if (ctl_port == UINT64_MAX)
		ctl_port = port < 65535 ? port + 1 : 0;
	rpb_raise_nofile();
	/*
	 * The control port first: if it is taken, no unix socket is left
	 * behind, and the control port stays TCP on either transport.
	 */
	if (ctl_port) {
		ctl_fd = rpb_listen(prog, "control", bind_addr, ctl_port, 0);
		if (ctl_fd < 0)
			return RPB_EXIT_USAGE;
	}
	/* Nonblocking: workers race for each connection; losers get EAGAIN. */
	if (unix_path)
		lfd = rpb_listen_unix(prog, unix_path);
	else
		lfd = rpb_listen(prog, "listen", bind_addr, port,
				 SOCK_NONBLOCK);
	if (lfd < 0)
		return RPB_EXIT_USAGE;
	srv.nodelay = !unix_path;

	srv.nthreads = (int)threads;
	srv.workers = aligned_alloc(64, sizeof(*srv.workers) * threads);
	if (!srv.workers)
		return RPB_EXIT_FAIL;
	memset(srv.workers, 0, sizeof(*srv.workers) * threads);
	for (int i = 0; i < srv.nthreads; i++) {
		struct rpb_worker *w = &srv.workers[i];

		w->srv = &srv;
		w->id = i;
		w->lfd = lfd;
		w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (w->stop_fd < 0) {
			perror("rpbench server: eventfd");
			return RPB_EXIT_FAIL;
		}
	}
	for (int i = 0; i < srv.nthreads; i++) {
		ret = pthread_create(&srv.workers[i].tid, NULL, rpb_worker_main,
				     &srv.workers[i]);
		if (ret) {
			fprintf(stderr, "%s: pthread_create: %s\n", prog,
				strerror(ret));
			exit(RPB_EXIT_FAIL);
		}
	}
	if (unix_path)
		fprintf(stderr,
			"%s: mode %s on unix:%s (control %llu), %d thread%s, "
			"pid %ld\n",
			prog, srv.mode->name, unix_path,
			(unsigned long long)ctl_port, srv.nthreads,
			srv.nthreads == 1 ? "" : "s", (long)getpid());
	else
		fprintf(stderr,
			"%s: mode %s on %s:%llu (control %llu), %d thread%s, "
			"pid %ld\n",
			prog, srv.mode->name, bind_addr,
			(unsigned long long)port, (unsigned long long)ctl_port,
			srv.nthreads, srv.nthreads == 1 ? "" : "s",
			(long)getpid());
	ret = rpb_serve(&srv, ctl_fd, report);
	exit(ret);
}
