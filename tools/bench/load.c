/* SPDX-License-Identifier: MIT */
/*
 * rpbench load: a closed-loop load generator for the echo server.
 *
 * Each connection keeps --depth requests of --size bytes in flight; a new
 * request leaves as soon as an answer completes. Every byte sent comes from
 * a pseudo-random pattern, offset per connection, so every byte echoed back
 * is checked where it lands in the stream: a lost, doubled, reordered or
 * mixed-up byte fails the run. Latency is from the moment a request is
 * issued to the moment its last byte is back, kept in a log-bucket
 * histogram (hist.c). Around the measured window it asks the server for a
 * report on its control port, and divides the server's CPU time and
 * syscalls by the requests answered in between.
 *
 * The client is plain kernel epoll on its own threads: it is the same for
 * every server mode, so it cancels out of every ratio.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* A prime, so that no request size lines the pattern up with itself. */
#define RPB_PATLEN 65521
/* Connections start at different places in the pattern. */
#define RPB_SKEW 7919
#define RPB_L_BUF (64 * 1024)
#define RPB_L_EVENTS 256
/* How often a worker looks at the stop flag when nothing happens. */
#define RPB_L_TICK_MS 50
/* No answer at all for this long: the server hangs or is stopped. */
#define RPB_STALL_NS (5 * 1000000000ull)
#define RPB_CONNECT_TIMEOUT_S 5
/* Connections opened between two round trips (rpb_l_settle). */
#define RPB_CONNECT_BATCH 1000
#define RPB_MAX_CONNS 100000
#define RPB_MAX_SIZE (1u << 20)

static unsigned char rpb_pat[2 * RPB_PATLEN];

struct rpb_lconn {
	int fd;
	uint32_t id;
	uint64_t issued; /* requests issued */
	uint64_t done;	 /* requests answered in full */
	uint64_t sent;	 /* bytes written */
	uint64_t rcvd;	 /* bytes read and checked */
	uint64_t *t0;	 /* issue time of request k at [k % depth] */
	bool want_out;
};

struct rpb_load;

struct rpb_lthread {
	struct rpb_load *ld;
	int epfd;
	struct rpb_lconn *conns;
	int nconns;
	pthread_t tid;
	uint64_t reqs; /* answered while measuring */
	uint64_t all;  /* answered at any time, for the stall check */
	int failed;
	char msg[256];
	struct rpb_hist hist;
	char rbuf[RPB_L_BUF];
};

struct rpb_load {
	const char *host;
	const char *unix_path; /* data connections here, not host:port */
	char target[128];      /* host:port or unix:PATH, for messages */
	uint64_t port, ctl_port, conns, size, depth, threads;
	double seconds, warmup;
	int measuring, stop, failed; /* __atomic */
	struct rpb_lthread *th;
};

static __attribute__((format(printf, 2, 3))) void
rpb_l_fail(struct rpb_lthread *t, const char *fmt, ...)
{
	va_list ap;

	if (t->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
	t->failed = 1;
	__atomic_store_n(&t->ld->failed, 1, __ATOMIC_RELAXED);
}

static void rpb_pat_init(void)
{
	/* xorshift64: the same pattern in every run. */
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < RPB_PATLEN; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		rpb_pat[i] = (unsigned char)(x >> 32);
	}
	/* Doubled, so any slice of up to RPB_PATLEN bytes is contiguous. */
	memcpy(rpb_pat + RPB_PATLEN, rpb_pat, RPB_PATLEN);
}

static const unsigned char *rpb_pat_at(const struct rpb_lconn *c, uint64_t off)
{
	return rpb_pat + (off + (uint64_t)c->id * RPB_SKEW) % RPB_PATLEN;
}

static void rpb_l_gone(struct rpb_lthread *t, struct rpb_lconn *c,
		       const char *why)
{
	rpb_l_fail(t,
		   "connection %u: %s after %llu bytes echoed: the server "
		   "is gone or dropped the connection",
		   c->id, why, (unsigned long long)c->rcvd);
}

static void rpb_l_out(struct rpb_lthread *t, struct rpb_lconn *c, bool on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0)};

	if (c->want_out == on)
		return;
	ev.data.ptr = c;
	epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = on;
}

/* Writes what the issued requests still owe the socket. */
static void rpb_l_write(struct rpb_lthread *t, struct rpb_lconn *c)
{
	uint64_t want = c->issued * t->ld->size;

	while (c->sent < want) {
		uint64_t len = want - c->sent;
		ssize_t n;

		if (len > RPB_PATLEN)
			len = RPB_PATLEN;
		n = write(c->fd, rpb_pat_at(c, c->sent), (size_t)len);
		if (n < 0) {
			if (errno == EAGAIN) {
				rpb_l_out(t, c, true);
				return;
			}
			rpb_l_gone(t, c, strerror(errno));
			return;
		}
		c->sent += (uint64_t)n;
	}
	rpb_l_out(t, c, false);
}

/* Checks n echoed bytes against what was sent at the same offsets. */
static int rpb_l_check(struct rpb_lthread *t, struct rpb_lconn *c,
		       const unsigned char *p, size_t n)
{
	uint64_t off = c->rcvd;

	if (c->rcvd + n > c->sent) {
		rpb_l_fail(t,
			   "connection %u: %zu bytes back at offset %llu, "
			   "but only %llu were sent",
			   c->id, n, (unsigned long long)off,
			   (unsigned long long)c->sent);
		return -1;
	}
	while (n) {
		size_t len = n > RPB_PATLEN ? RPB_PATLEN : n;
		const unsigned char *want = rpb_pat_at(c, off);

		if (memcmp(p, want, len) != 0) {
			size_t i = 0;

			while (p[i] == want[i])
				i++;
			rpb_l_fail(t,
				   "connection %u: echoed byte %llu is 0x%02x, "
				   "sent 0x%02x: the echo is corrupt",
				   c->id, (unsigned long long)(off + i), p[i],
				   want[i]);
			return -1;
		}
		p += len;
		off += len;
		n -= len;
	}
	return 0;
}

static void rpb_l_read(struct rpb_lthread *t, struct rpb_lconn *c,
		       bool measuring, bool stopping)
{
	const struct rpb_load *ld = t->ld;
	ssize_t n = read(c->fd, t->rbuf, sizeof(t->rbuf));
	uint64_t now;

	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		rpb_l_gone(t, c, n == 0 ? "end of stream" : strerror(errno));
		return;
	}
	if (rpb_l_check(t, c, (unsigned char *)t->rbuf, (size_t)n) < 0)
		return;
	c->rcvd += (uint64_t)n;
	now = rpb_now_ns();
	while ((c->done + 1) * ld->size <= c->rcvd) {
		uint64_t lat = now - c->t0[c->done % ld->depth];

		if (measuring) {
			rpb_hist_add(&t->hist, lat);
			t->reqs++;
		}
		c->done++;
		if (!stopping) {
			c->t0[c->issued % ld->depth] = now;
			c->issued++;
		}
	}
	__atomic_store_n(&t->all, t->all + 1, __ATOMIC_RELAXED);
	rpb_l_write(t, c);
}

static void *rpb_l_thread(void *arg)
{
	struct rpb_lthread *t = arg;
	struct rpb_load *ld = t->ld;
	struct epoll_event evs[RPB_L_EVENTS];
	uint64_t now = rpb_now_ns();

	for (int i = 0; i < t->nconns; i++) {
		struct rpb_lconn *c = &t->conns[i];

		for (uint64_t k = 0; k < ld->depth; k++)
			c->t0[k] = now;
		/* Past a settling round trip's request, if it made one. */
		c->issued = c->done + ld->depth;
		rpb_l_write(t, c);
	}
	while (!t->failed && !__atomic_load_n(&ld->stop, __ATOMIC_RELAXED)) {
		bool measuring =
		    __atomic_load_n(&ld->measuring, __ATOMIC_RELAXED);
		bool stopping = __atomic_load_n(&ld->stop, __ATOMIC_RELAXED);
		int n = epoll_wait(t->epfd, evs, RPB_L_EVENTS, RPB_L_TICK_MS);

		if (n < 0 && errno != EINTR) {
			rpb_l_fail(t, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n && !t->failed; i++) {
			struct rpb_lconn *c = evs[i].data.ptr;

			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				rpb_l_read(t, c, measuring, stopping);
			if (!t->failed && (evs[i].events & EPOLLOUT))
				rpb_l_write(t, c);
		}
	}
	return NULL;
}

static int rpb_l_connect(struct rpb_load *ld, struct rpb_lconn *c)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct sockaddr *sa = (struct sockaddr *)&sin;
	socklen_t salen = sizeof(sin);
	struct timeval tv = {.tv_sec = RPB_CONNECT_TIMEOUT_S};
	int one = 1;

	if (ld->unix_path) {
		/* Its length was checked with the arguments. */
		memcpy(sun.sun_path, ld->unix_path,
		       strlen(ld->unix_path) + 1);
		sa = (struct sockaddr *)&sun;
		salen = sizeof(sun);
	} else {
		sin.sin_port = htons((uint16_t)ld->port);
		inet_pton(AF_INET, ld->host, &sin.sin_addr);
	}
	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	/* SO_SNDTIMEO bounds a blocking connect, too (unix sockets too). */
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, sa, salen) < 0)
		return -errno;
	/* A unix socket has no Nagle to turn off. */
	if (!ld->unix_path)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	tv.tv_sec = 0;
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int rpb_load_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: rpbench load --port P [--conns N] [--size B] "
	    "[--depth D] [--seconds S]\n"
	    "                    [--warmup W] [--threads T] [--host ADDR] "
	    "[--control-port C]\n"
	    "                    [--unix PATH]\n"
	    "Closed loop: N connections each keep D requests of B bytes in "
	    "flight for\n"
	    "W + S seconds; the last S are measured. Every echoed byte is "
	    "checked.\n"
	    "Defaults: --conns 64 --size 64 --depth 1 --seconds 5 --warmup 1 "
	    "--threads 1\n"
	    "--host 127.0.0.1 --control-port P+1 (0: do not ask the server "
	    "for a report).\n"
	    "--unix PATH: connect to the server's unix socket instead of "
	    "ADDR:P; the\n"
	    "control port stays TCP on ADDR (P+1, or --control-port).\n"
	    "Exit: 0 ok, 1 failed run (mismatch, server gone), 2 bad "
	    "arguments.\n");
	return RPB_EXIT_USAGE;
}

static int rpb_load_args(struct rpb_load *ld, int argc, char **argv)
{
	static const char prog[] = "rpbench load";
	struct in_addr ia;
	bool have_port = false;
	int ret = 0;

	ld->host = "127.0.0.1";
	ld->ctl_port = UINT64_MAX;
	ld->conns = 64;
	ld->size = 64;
	ld->depth = 1;
	ld->threads = 1;
	ld->seconds = 5;
	ld->warmup = 1;
	for (int i = 1; i < argc && !ret; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			rpb_load_usage(stdout);
			exit(0);
		} else if (strcmp(a, "--port") == 0) {
			ret = rpb_parse_uint(prog, a, v, 1, 65535, &ld->port);
			have_port = true;
		} else if (strcmp(a, "--control-port") == 0) {
			ret =
			    rpb_parse_uint(prog, a, v, 0, 65535, &ld->ctl_port);
		} else if (strcmp(a, "--conns") == 0) {
			ret = rpb_parse_uint(prog, a, v, 1, RPB_MAX_CONNS,
					     &ld->conns);
		} else if (strcmp(a, "--size") == 0) {
			ret = rpb_parse_uint(prog, a, v, 1, RPB_MAX_SIZE,
					     &ld->size);
		} else if (strcmp(a, "--depth") == 0) {
			ret = rpb_parse_uint(prog, a, v, 1, 1024, &ld->depth);
		} else if (strcmp(a, "--threads") == 0) {
			ret = rpb_parse_uint(prog, a, v, 1, 64, &ld->threads);
		} else if (strcmp(a, "--seconds") == 0) {
			ret = rpb_parse_secs(prog, a, v, 0.01, &ld->seconds);
		} else if (strcmp(a, "--warmup") == 0) {
			ret = rpb_parse_secs(prog, a, v, 0, &ld->warmup);
		} else if (strcmp(a, "--unix") == 0 && v) {
			ld->unix_path = v;
			if (strlen(v) >= sizeof(((struct sockaddr_un *)0)
						    ->sun_path)) {
				fprintf(stderr,
					"%s: --unix: '%s' is too long for a "
					"unix socket address\n",
					prog, v);
				ret = -EINVAL;
			}
		} else if (strcmp(a, "--host") == 0 && v) {
			ld->host = v;
			if (inet_pton(AF_INET, v, &ia) != 1) {
				fprintf(stderr,
					"%s: --host: '%s' is not an IPv4 "
					"address\n",
					prog, v);
				ret = -EINVAL;
			}
		} else {
			fprintf(stderr,
				"%s: unknown or incomplete option '%s'\n", prog,
				a);
			return rpb_load_usage(stderr);
		}
	}
	if (ret)
		return RPB_EXIT_USAGE;
	/* On a unix socket, --port only names the control port. */
	if (!have_port && !(ld->unix_path && ld->ctl_port != UINT64_MAX)) {
		fprintf(stderr,
			"%s: --port is required (with --unix: --port or "
			"--control-port)\n",
			prog);
		return rpb_load_usage(stderr);
	}
	if (ld->threads > ld->conns)
		ld->threads = ld->conns;
	if (ld->ctl_port == UINT64_MAX)
		ld->ctl_port = ld->port < 65535 ? ld->port + 1 : 0;
	/* What connection errors name: the socket, or host:port. */
	if (ld->unix_path)
		snprintf(ld->target, sizeof(ld->target), "unix:%s",
			 ld->unix_path);
	else
		snprintf(ld->target, sizeof(ld->target), "%s:%llu", ld->host,
			 (unsigned long long)ld->port);
	return 0;
}

/*
 * The server takes connections from its listen queue as it likes (the
 * benchmark's level-triggered servers one per wait); a load that connects
 * faster fills the queue (4,096), and the kernel then drops handshakes'
 * last ACKs (TcpExt ListenOverflows). Such a connection is established on
 * our side only, and can end up established on the server's with no FIN
 * ever reaching it: the soak saw one such socket left open in some dozens
 * of runs, a fd no epoll could have reported. So every RPB_CONNECT_BATCH
 * connections the batch's last one makes a round trip: the queue is
 * FIFO, so the server has then taken the whole batch. It counts as that
 * connection's first request, answered.
 */
static int rpb_l_settle(const struct rpb_load *ld, struct rpb_lconn *c)
{
	static unsigned char buf[RPB_PATLEN];
	struct pollfd p = {.fd = c->fd};

	while (c->rcvd < ld->size) {
		ssize_t n;

		if (c->sent < ld->size) {
			size_t len = ld->size - c->sent;

			if (len > RPB_PATLEN)
				len = RPB_PATLEN;
			n = write(c->fd, rpb_pat_at(c, c->sent), len);
			if (n > 0)
				c->sent += (uint64_t)n;
		} else {
			size_t len = ld->size - c->rcvd;

			if (len > sizeof(buf))
				len = sizeof(buf);
			n = read(c->fd, buf, len);
			if (n == 0)
				return -ECONNRESET;
			if (n > 0) {
				if (memcmp(buf, rpb_pat_at(c, c->rcvd),
					   (size_t)n) != 0)
					return -EPROTO;
				c->rcvd += (uint64_t)n;
			}
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n < 0) {
			p.events = c->sent < ld->size ? POLLOUT : POLLIN;
			if (poll(&p, 1, RPB_CONNECT_TIMEOUT_S * 1000) == 0)
				return -ETIMEDOUT;
		}
	}
	c->issued = c->done = 1;
	return 0;
}

/* Sets up the threads and their connections; a message on failure. */
static int rpb_load_open(struct rpb_load *ld)
{
	uint64_t per = (ld->conns + ld->threads - 1) / ld->threads, id = 0;

	ld->th = calloc(ld->threads, sizeof(*ld->th));
	if (!ld->th)
		return -ENOMEM;
	for (uint64_t i = 0; i < ld->threads; i++) {
		struct rpb_lthread *t = &ld->th[i];

		t->ld = ld;
		t->epfd = epoll_create1(EPOLL_CLOEXEC);
		t->conns = calloc(per, sizeof(*t->conns));
		if (t->epfd < 0 || !t->conns)
			return -ENOMEM;
		for (; t->nconns < (int)per && id < ld->conns; id++) {
			struct rpb_lconn *c = &t->conns[t->nconns++];
			struct epoll_event ev = {.events = EPOLLIN};
			int ret;

			c->id = (uint32_t)id;
			c->fd = -1;
			c->t0 = calloc(ld->depth, sizeof(*c->t0));
			if (!c->t0)
				return -ENOMEM;
			ret = rpb_l_connect(ld, c);
			if (ret == 0 && ld->conns > RPB_CONNECT_BATCH &&
			    (id % RPB_CONNECT_BATCH == RPB_CONNECT_BATCH - 1 ||
			     id == ld->conns - 1))
				ret = rpb_l_settle(ld, c);
			if (ret < 0) {
				fprintf(stderr,
					"rpbench load: connection %llu to "
					"%s: %s%s\n",
					(unsigned long long)id, ld->target,
					strerror(-ret),
					ret == -ECONNREFUSED || ret == -ENOENT
					    ? " (is the server running?)"
					    : "");
				return ret;
			}
			ev.data.ptr = c;
			if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
				return -errno;
		}
	}
	return 0;
}

static uint64_t rpb_load_progress(const struct rpb_load *ld)
{
	uint64_t sum = 0;

	for (uint64_t i = 0; i < ld->threads; i++)
		sum += __atomic_load_n(&ld->th[i].all, __ATOMIC_RELAXED);
	return sum;
}

/* Sleeps until deadline; false if a worker failed or the server stalls. */
static bool rpb_load_sleep(struct rpb_load *ld, uint64_t deadline,
			   uint64_t *last, uint64_t *last_ns)
{
	struct timespec tick = {.tv_nsec = 20 * 1000000};
	uint64_t now;

	while ((now = rpb_now_ns()) < deadline) {
		uint64_t p;

		if (__atomic_load_n(&ld->failed, __ATOMIC_RELAXED))
			return false;
		p = rpb_load_progress(ld);
		if (p != *last) {
			*last = p;
			*last_ns = now;
		} else if (now - *last_ns > RPB_STALL_NS) {
			fprintf(
			    stderr,
			    "rpbench load: no answer from the server for "
			    "%llu s: it hangs or is gone\n",
			    (unsigned long long)(RPB_STALL_NS / 1000000000ull));
			return false;
		}
		if (deadline - now < (uint64_t)tick.tv_nsec)
			tick.tv_nsec = (long)(deadline - now);
		nanosleep(&tick, NULL);
	}
	return true;
}

static int rpb_load_fetch(struct rpb_load *ld, struct rpb_report *r)
{
	char err[160];

	if (!ld->ctl_port)
		return -ENOENT;
	if (rpb_report_fetch(ld->host, (int)ld->ctl_port, r, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "rpbench load: no server report: %s\n", err);
		return -EIO;
	}
	return 0;
}

/* This process's CPU time in microseconds. */
static uint64_t rpb_cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static double rpb_us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

int rpb_load_main(int argc, char **argv)
{
	struct rpb_load ld = {0};
	struct rpb_report r0, r1;
	struct rpb_hist *h;
	uint64_t t0, t1, last = 0, last_ns, reqs = 0, c0, c1;
	bool ok, have_srv;
	double secs, rps, cpu = -1, sys = -1;
	int ret;

	ret = rpb_load_args(&ld, argc, argv);
	if (ret)
		return ret;
	signal(SIGPIPE, SIG_IGN);
	rpb_raise_nofile();
	rpb_pat_init();
	ret = rpb_load_open(&ld);
	if (ret < 0) {
		if (ret == -ENOMEM)
			fprintf(stderr, "rpbench load: out of memory or fds\n");
		return RPB_EXIT_FAIL;
	}
	for (uint64_t i = 0; i < ld.threads; i++) {
		ret = pthread_create(&ld.th[i].tid, NULL, rpb_l_thread,
				     &ld.th[i]);
		if (ret) {
			fprintf(stderr, "rpbench load: pthread_create: %s\n",
				strerror(ret));
			return RPB_EXIT_FAIL;
		}
	}
	last_ns = rpb_now_ns();
	ok = rpb_load_sleep(&ld, last_ns + (uint64_t)(ld.warmup * 1e9), &last,
			    &last_ns);
	have_srv = ok && rpb_load_fetch(&ld, &r0) == 0;
	t0 = rpb_now_ns();
	c0 = rpb_cpu_us();
	__atomic_store_n(&ld.measuring, 1, __ATOMIC_RELAXED);
	if (ok)
		ok = rpb_load_sleep(&ld, t0 + (uint64_t)(ld.seconds * 1e9),
				    &last, &last_ns);
	__atomic_store_n(&ld.measuring, 0, __ATOMIC_RELAXED);
	t1 = rpb_now_ns();
	c1 = rpb_cpu_us();
	if (ok && have_srv)
		have_srv = rpb_load_fetch(&ld, &r1) == 0;
	__atomic_store_n(&ld.stop, 1, __ATOMIC_RELAXED);
	h = calloc(1, sizeof(*h));
	for (uint64_t i = 0; i < ld.threads; i++) {
		struct rpb_lthread *t = &ld.th[i];

		pthread_join(t->tid, NULL);
		if (t->failed) {
			fprintf(stderr, "rpbench load: %s\n", t->msg);
			ok = false;
		}
		reqs += t->reqs;
		if (h)
			rpb_hist_merge(h, &t->hist);
		for (int k = 0; k < t->nconns; k++) {
			close(t->conns[k].fd);
			free(t->conns[k].t0);
		}
		free(t->conns);
		close(t->epfd);
	}
	free(ld.th);
	if (!ok || !h)
		return RPB_EXIT_FAIL;
	secs = (double)(t1 - t0) / 1e9;
	rps = (double)reqs / secs;
	if (have_srv && r1.pid != r0.pid) {
		fprintf(stderr,
			"rpbench load: the server restarted (pid %ld, "
			"then %ld)\n",
			r0.pid, r1.pid);
		return RPB_EXIT_FAIL;
	}
	if (have_srv && reqs) {
		cpu = (double)(r1.cpu_us - r0.cpu_us) / (double)reqs;
		sys = (double)(r1.syscalls - r0.syscalls) / (double)reqs;
	}
	printf("rpbench load: %llu conns, %llu B, depth %llu, %.2f s measured "
	       "(+%.2f s warmup)\n",
	       (unsigned long long)ld.conns, (unsigned long long)ld.size,
	       (unsigned long long)ld.depth, secs, ld.warmup);
	printf("requests/s  %.0f (%llu requests, every byte checked)\n", rps,
	       (unsigned long long)reqs);
	printf("latency us  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
	       rpb_us(rpb_hist_pct(h, 50)), rpb_us(rpb_hist_pct(h, 99)),
	       rpb_us(rpb_hist_pct(h, 99.9)), rpb_us(h->max));
	printf("client      %.2f us CPU per request (%.0f%% of a CPU)\n",
	       reqs ? (double)(c1 - c0) / (double)reqs : 0.0,
	       (double)(c1 - c0) / 1e4 / secs);
	if (have_srv)
		printf("server      mode %s (epoll fd: %s), %.2f us CPU and "
		       "%.3f syscalls per request\n",
		       r1.mode, r1.backend, cpu, sys);
	else
		printf("server      no report (control port %llu)\n",
		       (unsigned long long)ld.ctl_port);
	printf("result: rps=%.1f p50_us=%.2f p99_us=%.2f p999_us=%.2f "
	       "server_cpu_us_per_req=%.4f server_syscalls_per_req=%.4f "
	       "client_cpu_us_per_req=%.4f requests=%llu seconds=%.4f mode=%s "
	       "backend=%s\n",
	       rps, rpb_us(rpb_hist_pct(h, 50)), rpb_us(rpb_hist_pct(h, 99)),
	       rpb_us(rpb_hist_pct(h, 99.9)), cpu, sys,
	       reqs ? (double)(c1 - c0) / (double)reqs : 0.0,
	       (unsigned long long)reqs, secs, have_srv ? r1.mode : "?",
	       have_srv ? r1.backend : "?");
	free(h);
	return 0;
}
