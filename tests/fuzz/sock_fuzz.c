/* SPDX-License-Identifier: MIT */
/*
 * Socket fuzzer: random sequences of reads, writes and epoll work on
 * connected TCP loopback pairs, every byte checked against an oracle. It
 * calls the plain libc names (epoll_*, read, send, ...), so the same
 * binary runs natively (the kernel's answers), under ringpoll-run (the
 * preload), and under RINGPOLL_COMPLETION=1 ringpoll-run (the completion
 * mode of issue 15, whose interposed read and write family serves the
 * registered sockets from its own buffers).
 *
 * Each connection has an end A, which the sequence registers in epoll
 * instances (ADD, MOD between IN/OUT/IN|OUT, LT/ET, ONESHOT re-arm, DEL),
 * dups, closes and makes blocking, and a plain end B that is never
 * registered, so that what B reads is what went over the wire. Each
 * direction carries a pseudo-random byte stream indexed by offset
 * (pat()): every byte read must be the next one of its stream (none twice,
 * none lost), EOF comes exactly after the last byte the writer got
 * accepted before its shutdown or close, and the epoll and poll(2)
 * reports must agree with what the oracle knows:
 *
 *  - an event is only reported for a registration that is enabled, with
 *    the data of its last ADD/MOD, within its interest plus ERR|HUP;
 *    EPOLLIN only if something can be read, RDHUP only after the peer's
 *    shutdown, HUP only with both directions shut, ERR only after a reset;
 *  - a wait that returned fewer than maxevents reports a level-triggered
 *    EPOLLIN while bytes (or EOF) are known to be at A, EPOLLOUT while
 *    little is in flight, and an edge-triggered EPOLLIN after new bytes
 *    (or an ADD/MOD) while bytes are there;
 *  - after a wait or poll reported readable, or a peek saw bytes, a read
 *    returns data, EOF or an error, never EAGAIN;
 *  - FIONREAD never counts more than is unread, and all of it when the
 *    oracle knows it arrived.
 *
 * "Known to be at the reader" (strict): every byte of the stream was
 * written while at most STRICT_MAX were unread (so no byte waits for the
 * receiver's window). Under the completion mode two designed behaviours
 * are allowed (README, "The completion mode"): A's writes, shutdown and
 * close reach the wire with A's instance's next epoll_wait (the oracle
 * asks for two waits on every instance), and A's reads see what B sent
 * (bytes, its FIN) after those waits too: a read that finds A's buffer
 * empty says EAGAIN without asking the kernel, and the wait that brings
 * the bytes reports them; and only once the ring is owned (an instance
 * waited on at least once). A
 * socket closed with unread bytes resets the connection (as the kernel
 * does: the peer may then see its stream cut short and ECONNRESET). An
 * instance closed while it served A leaves A's bytes received ahead to be
 * read first, every one checked (an allowance for their loss, from
 * before the mode kept them, is gone).
 *
 * Each sequence runs in a child; a failure is replayed from its recorded
 * ops, shrunk and printed as an op list (as epoll_fuzz.c does). Results
 * depend on timing only where the kernel's do (none are asserted there),
 * so a replay normally reproduces. Usage: usage().
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_rng.h"

#define NCONN 4
#define NEP 2
/* Unread bytes up to this are all in the reader's receive queue. */
#define STRICT_MAX (16 * 1024)
#define BIG (320 * 1024)
#define REG 0x08000000u
#define MAXOPS 2048

/* ---------------------------------------------------------------- ops */

enum opk {
	OP_CONN,	/* c; flags 1: A is the accepted end; 2: A blocking */
	OP_EPNEW,	/* e; flags 1: wait once at once (owned) */
	OP_EPCLOSE,	/* e */
	OP_ADD,		/* e, c, slot, ev */
	OP_MOD,		/* e, c, ev */
	OP_DEL,		/* e, c */
	OP_WAIT,	/* e, n = maxevents, t = timeout */
	OP_WRITE,	/* c, side, call, n, flags */
	OP_READ,	/* c, side, call, n, flags */
	OP_SHUT,	/* c, side */
	OP_CLOSE,	/* c, side, slot (A's number) */
	OP_DUP,		/* c */
	OP_FIONREAD,	/* c, side */
	OP_POLL,	/* c, side */
	OP_NBLOCK,	/* c, n: 1 nonblocking, 0 blocking; call 1: FIONBIO */
	OP_FLUSH,	/* waits on every instance, twice */
	OP_DRAIN,	/* c, side: reads what the oracle knows is coming */
	NOPK
};

static const char *opname[NOPK] = { "conn", "epoll_create", "epoll_close",
				    "ADD", "MOD", "DEL", "wait", "write",
				    "read", "shutdown", "close", "dup",
				    "FIONREAD", "poll", "nonblock", "flush",
				    "drain" };

struct op {
	uint8_t k, c, e, side, call, slot;
	uint16_t flags;
	uint32_t n, ev;
	int32_t t;
};

/* What the checks saw, over all sequences (printed at the end). */
enum { ST_BYTES, ST_STRICT_READ, ST_EOF, ST_MUST_IN, ST_MUST_OUT, ST_EVENTS,
       ST_EXACT_FIONREAD, ST_NSTAT };
static const char *stat_name[ST_NSTAT] = {
	"bytes checked", "reads that had to find data", "EOFs checked",
	"waits that had to report EPOLLIN", "waits that had to report EPOLLOUT",
	"events checked", "exact FIONREADs"
};

struct oplog {
	uint64_t stat[ST_NSTAT];
	int count, failed_at, sig;
	/* The first failure's message, printed even when it ran quiet. */
	char msg[256];
	uint8_t ran[MAXOPS];
	struct op ops[MAXOPS];
};
static struct oplog *LOG;

/* ------------------------------------------------------------- model */

/* One direction's stream: writer's end to reader's end. */
struct dir {
	uint64_t key, sent, rcvd;
	uint8_t shut;	/* the writer shut or closed: EOF after sent */
	uint8_t eof;	/* the reader saw EOF */
	uint8_t strict;	/* all of sent is at the reader (no window stall) */
	uint8_t trunc;	/* a reset may cut it short */
	uint8_t fneed[NEP]; /* completion mode: A's waits before delivery */
	uint32_t peek;	/* a peek saw this many unread */
	uint8_t promised; /* a report said readable: no EAGAIN */
};

struct conn {
	int open;
	unsigned gen;
	int afd[2];	/* A's numbers: the original and a dup */
	int bfd;	/* B, plain, nonblocking */
	int a_nb;	/* A's O_NONBLOCK */
	int a_gone, b_gone; /* closed (last number) */
	uint8_t reset;	/* an RST may come: errors allowed */
	struct dir d[2]; /* 0: A to B, 1: B to A */
	uint32_t reg[NEP]; /* interest | REG */
	uint64_t data[NEP];
	uint8_t slot[NEP]; /* the number registered: afd[slot] */
	uint8_t off[NEP];  /* ONESHOT reported: disabled until MOD */
	uint8_t etin[NEP]; /* ET: an EPOLLIN edge is due */
	uint8_t home;	/* instances A was added to (its buffers' home) */
};

struct epi {
	int fd;
	int owned;	/* waited on at least once: its ring has an owner */
	unsigned gen;
};

static struct {
	struct conn c[NCONN];
	struct epi ep[NEP];
	unsigned gen;
	int lfd, port;
} M;

static int cmode;	/* RINGPOLL_COMPLETION=1: the completion mode */

/*
 * -X CLASS: ops the generator (and a replay) leaves out, to steer around
 * an open bug of the completion mode (tests/fuzz/SOCK-KNOWN.md). The rules
 * do not depend on the mode, so a seed makes the same ops in all runs.
 */
#define AV_PREDUP 1	/* two numbers for A only while A is registered */
#define AV_SHUT 2	/* after A's shutdown: no ADD, DEL, instance close */
#define AV_MULTI 4	/* A in one instance at a time */
#define AV_FIONREAD 8	/* no FIONREAD on A */
#define AV_DEL 16	/* no DEL (or instance close) with B->A unread */
static unsigned avoid;
static const char *avoid_name[] = { "predup", "shut", "multi", "fionread",
				    "del" };
static int verbose, quiet;
static int cur_op;
static uint64_t cur_seed;
static int nops_max = 150;

#define FAIL_CHECK 2	/* an oracle check */
#define FAIL_LOST 3	/* bytes or EOF never came */
#define FAIL_HARNESS 7

static void fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

static void fail(int code, const char *fmt, ...)
{
	va_list ap;

	LOG->failed_at = cur_op;
	LOG->sig = code * 1000 + (cur_op >= 0 && cur_op < LOG->count ?
				  LOG->ops[cur_op].k : 99);
	if (!LOG->msg[0]) {
		int n = snprintf(LOG->msg, sizeof(LOG->msg), "op #%d: ",
				 cur_op);

		va_start(ap, fmt);
		if (n > 0 && (size_t)n < sizeof(LOG->msg))
			vsnprintf(LOG->msg + n, sizeof(LOG->msg) - (size_t)n,
				  fmt, ap);
		va_end(ap);
	}
	if (!quiet) {
		fprintf(stderr, "seed %" PRIu64 " op #%d: ", cur_seed, cur_op);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	_exit(code);
}

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
	va_list ap;

	if (!verbose || quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* The stream's byte at offset o. */
static uint8_t pat(uint64_t key, uint64_t o)
{
	uint64_t x = (o >> 3) * 0x9E3779B97F4A7C15ULL ^ key;

	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 32;
	return (uint8_t)(x >> ((o & 7) * 8));
}

static void fill(uint8_t *p, uint64_t key, uint64_t o, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(key, o + i);
}

static const char *dname(int d)
{
	return d ? "B->A" : "A->B";
}

/* Bytes read from stream d of c at offset rcvd: must be the next ones. */
static void check_bytes(struct conn *c, int d, const uint8_t *p, size_t n)
{
	struct dir *s = &c->d[d];

	for (size_t i = 0; i < n; i++) {
		uint64_t o = s->rcvd + i, lo, hi, at = UINT64_MAX;

		if (p[i] == pat(s->key, o))
			continue;
		/* Where do these bytes come from: earlier (twice), later? */
		lo = o > (1u << 20) ? o - (1u << 20) : 0;
		hi = s->sent;
		for (uint64_t q = lo; q < hi && at == UINT64_MAX; q++) {
			size_t k = 0;

			while (k < 16 && i + k < n && q + k < hi &&
			       p[i + k] == pat(s->key, q + k))
				k++;
			if (k == 16 || (k && i + k == n))
				at = q;
		}
		if (at == UINT64_MAX)
			fail(FAIL_CHECK, "conn %d %s: byte at offset %" PRIu64
			     " is 0x%02x, expected 0x%02x (not from the "
			     "stream)", (int)(c - M.c), dname(d), o, p[i],
			     pat(s->key, o));
		fail(FAIL_CHECK, "conn %d %s: bytes at offset %" PRIu64
		     " are the stream's from offset %" PRIu64 " (%s)",
		     (int)(c - M.c), dname(d), o, at,
		     at < o ? "a byte twice" : "bytes lost");
	}
}

static uint64_t unread(const struct dir *s)
{
	return s->sent - s->rcvd;
}

/* Completion mode: A's writes are delivered by its instance's waits. */
static int flushed(const struct dir *s)
{
	for (int e = 0; e < NEP; e++)
		if (s->fneed[e])
			return 0;
	return 1;
}

static void need_flush(struct dir *s)
{
	if (!cmode)
		return;
	for (int e = 0; e < NEP; e++)
		s->fneed[e] = M.ep[e].fd >= 0 ? 2 : 0;
}

/* A's reads see what arrived: its instances have owners (cmode). */
static int a_sees(const struct conn *c)
{
	if (!cmode)
		return 1;
	for (int e = 0; e < NEP; e++)
		if ((c->home & (1u << e)) && M.ep[e].fd >= 0 &&
		    !M.ep[e].owned)
			return 0;
	return 1;
}

/*
 * Stream d's bytes are all at its reader, or will be once the instances
 * wait (the completion mode's delivery, flushed()).
 */
static int at_reader_after_waits(const struct conn *c, int d)
{
	const struct dir *s = &c->d[d];

	if (!s->strict || s->trunc)
		return 0;
	if (d == 1 && !a_sees(c))
		return 0;
	/*
	 * Completion mode: A's shutdown runs in an io_uring worker, which
	 * holds A's socket lock while it does; B's bytes wait in the
	 * socket's backlog until it is done, which B's EOF tells (seeds 934
	 * and 46353: the bytes came with the next wait after the check).
	 */
	if (cmode && d == 1 && c->d[0].shut && !c->d[0].eof)
		return 0;
	return 1;
}

/*
 * Stream d's bytes are all at its reader, in the reader's reach: the
 * reader's reads cannot say EAGAIN while some are unread.
 */
static int known_at_reader(const struct conn *c, int d)
{
	return flushed(&c->d[d]) && at_reader_after_waits(c, d);
}

/* Something (bytes or EOF) is known readable on stream d. */
static int readable_known(const struct conn *c, int d)
{
	const struct dir *s = &c->d[d];

	/* Seen before an ADD to a ring with no owner yet: not A's yet. */
	if (d == 1 && !a_sees(c))
		return 0;
	if (s->peek || s->promised)
		return 1;
	if (!known_at_reader(c, d))
		return 0;
	/*
	 * Completion mode: A's FIN goes with IORING_OP_SHUTDOWN, which
	 * io_uring always runs in a worker (or with the ring's last
	 * reference to a closed socket): B sees it soon after the wait
	 * that submitted it, not at once. drain() checks that it comes.
	 */
	if (cmode && d == 0 && !unread(s))
		return 0;
	return unread(s) > 0 || s->shut;
}

/* Something might be readable on stream d (else EPOLLIN is wrong). */
static int readable_maybe(const struct conn *c, int d)
{
	const struct dir *s = &c->d[d];

	return unread(s) > 0 || s->shut || s->trunc || c->reset;
}

/* A (or B) surely writable: little in flight, nothing broken. */
static int writable_known(const struct conn *c, int d)
{
	const struct dir *s = &c->d[d];

	if (s->shut)
		return 1;
	return !c->reset && s->strict && unread(s) <= STRICT_MAX / 4 &&
	       flushed(s);
}

/* ------------------------------------------------------------- setup */

static int listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 16) ||
	    getsockname(s, (struct sockaddr *)&a, &al)) {
		close(s);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return s;
}

static int tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(M.port);
	if (connect(s, (struct sockaddr *)&a, sizeof(a))) {
		close(s);
		return -1;
	}
	fds[0] = s;
	fds[1] = accept4(M.lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] < 0) {
		close(s);
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
	}
	return 0;
}

static struct conn *conn_of(int c)
{
	return c < NCONN && M.c[c].open ? &M.c[c] : NULL;
}

static int a_fd(const struct conn *c)
{
	return c->afd[0] >= 0 ? c->afd[0] : c->afd[1];
}

/* ----------------------------------------------------------- the ops */

static int x_conn(const struct op *o)
{
	struct conn *c = &M.c[o->c];
	int fds[2];

	if (o->c >= NCONN || c->open)
		return 1;
	if (tcp_pair(fds))
		fail(FAIL_HARNESS, "connect: %s", strerror(errno));
	memset(c, 0, sizeof(*c));
	c->open = 1;
	c->gen = ++M.gen;
	c->afd[0] = fds[o->flags & 1];
	c->afd[1] = -1;
	c->bfd = fds[!(o->flags & 1)];
	c->a_nb = 1;
	if (o->flags & 2) {
		fcntl(c->afd[0], F_SETFL,
		      fcntl(c->afd[0], F_GETFL) & ~O_NONBLOCK);
		c->a_nb = 0;
	}
	for (int d = 0; d < 2; d++) {
		c->d[d].key = (cur_seed << 20) ^ (c->gen * 2 + d) *
					       0xD6E8FEB86659FD93ULL;
		c->d[d].strict = 1;
	}
	return 0;
}

static int x_epnew(const struct op *o)
{
	struct epi *p = &M.ep[o->e];

	if (o->e >= NEP || p->fd >= 0)
		return 1;
	p->fd = epoll_create1(EPOLL_CLOEXEC);
	if (p->fd < 0)
		fail(FAIL_HARNESS, "epoll_create1: %s", strerror(errno));
	p->owned = 0;
	p->gen++;
	if (o->flags & 1) {
		struct epoll_event ev[4];

		if (epoll_wait(p->fd, ev, 4, 0) != 0)
			fail(FAIL_CHECK, "a new instance's wait returned "
			     "something");
		p->owned = 1;
	}
	return 0;
}

static void reg_forget(struct conn *c, int e)
{
	c->reg[e] = 0;
	c->off[e] = 0;
	c->etin[e] = 0;
}

static int x_epclose(const struct op *o)
{
	struct epi *p = &M.ep[o->e];

	if (o->e >= NEP || p->fd < 0)
		return 1;
	for (int i = 0; i < NCONN; i++) {
		struct conn *c = &M.c[i];

		if (!c->open || !c->reg[o->e])
			continue;
		if (((avoid & AV_SHUT) && c->d[0].shut) ||
		    ((avoid & AV_DEL) && unread(&c->d[1])))
			return 1;
	}
	if (close(p->fd))
		fail(FAIL_CHECK, "close of instance: %s", strerror(errno));
	p->fd = -1;
	for (int i = 0; i < NCONN; i++) {
		struct conn *c = &M.c[i];

		if (!c->open)
			continue;
		reg_forget(c, o->e);
		for (int d = 0; d < 2; d++)
			c->d[d].fneed[o->e] = 0;
	}
	return 0;
}

static uint64_t mkdata(int ci, int e)
{
	return ((uint64_t)M.c[ci].gen << 16) | ((uint64_t)e << 8) |
	       (uint64_t)ci;
}

/* ADD/MOD looked at the socket: an ET EPOLLIN is due if bytes are there. */
static void note_arm(struct conn *c, int e)
{
	c->etin[e] = (c->reg[e] & EPOLLET) && (c->reg[e] & EPOLLIN) &&
		     readable_known(c, 1);
}

static int registered(const struct conn *c)
{
	for (int e = 0; e < NEP; e++)
		if (c->reg[e])
			return 1;
	return 0;
}

static int x_add(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	struct epoll_event ev;
	int fd;

	if (!c || o->e >= NEP || M.ep[o->e].fd < 0 || c->a_gone ||
	    c->reg[o->e] || o->slot > 1 || c->afd[o->slot] < 0)
		return 1;
	if ((avoid & AV_PREDUP) && !registered(c) && c->afd[!o->slot] >= 0)
		return 1;
	if ((avoid & AV_SHUT) && c->d[0].shut)
		return 1;
	if ((avoid & AV_MULTI) && registered(c))
		return 1;
	fd = c->afd[o->slot];
	ev.events = o->ev;
	ev.data.u64 = mkdata(o->c, o->e);
	if (epoll_ctl(M.ep[o->e].fd, EPOLL_CTL_ADD, fd, &ev))
		fail(FAIL_CHECK, "ADD: %s", strerror(errno));
	c->reg[o->e] = o->ev | REG;
	c->data[o->e] = ev.data.u64;
	c->slot[o->e] = o->slot;
	c->off[o->e] = 0;
	c->home |= 1u << o->e;
	note_arm(c, o->e);
	return 0;
}

static int x_mod(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	struct epoll_event ev;

	if (!c || o->e >= NEP || !c->reg[o->e])
		return 1;
	ev.events = o->ev;
	ev.data.u64 = mkdata(o->c, o->e) ^ 0x1000000u * (o->ev & 0xff);
	if (epoll_ctl(M.ep[o->e].fd, EPOLL_CTL_MOD, c->afd[c->slot[o->e]],
		      &ev))
		fail(FAIL_CHECK, "MOD: %s", strerror(errno));
	c->reg[o->e] = o->ev | REG;
	c->data[o->e] = ev.data.u64;
	c->off[o->e] = 0;
	note_arm(c, o->e);
	return 0;
}

static void do_del(struct conn *c, int e)
{
	struct epoll_event ev = { 0 };

	if (epoll_ctl(M.ep[e].fd, EPOLL_CTL_DEL, c->afd[c->slot[e]], &ev))
		fail(FAIL_CHECK, "DEL: %s", strerror(errno));
	reg_forget(c, e);
}

static int x_del(const struct op *o)
{
	struct conn *c = conn_of(o->c);

	if (!c || o->e >= NEP || !c->reg[o->e])
		return 1;
	if (((avoid & AV_SHUT) && c->d[0].shut) ||
	    ((avoid & AV_DEL) && unread(&c->d[1])))
		return 1;
	do_del(c, o->e);
	return 0;
}

static void fmt_ev(char *b, size_t len, uint32_t ev)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = { { EPOLLIN, "IN" },	   { EPOLLOUT, "OUT" },
		      { EPOLLRDHUP, "RDHUP" },	   { EPOLLERR, "ERR" },
		      { EPOLLHUP, "HUP" },	   { EPOLLPRI, "PRI" },
		      { EPOLLRDNORM, "RDNORM" },   { EPOLLWRNORM, "WRNORM" },
		      { EPOLLET, "ET" },	   { EPOLLONESHOT, "ONESHOT" } };
	size_t n = 0;

	b[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (ev & names[i].bit)
			n += (size_t)snprintf(b + n, n < len ? len - n : 0,
					      "%s%s", n ? "|" : "",
					      names[i].name);
	if (!n)
		snprintf(b, len, "0");
}

/* What a report of bits says about c, checked against the oracle. */
static void check_bits(struct conn *c, uint32_t bits, const char *who)
{
	char b[96];

	fmt_ev(b, sizeof(b), bits);
	if ((bits & (EPOLLIN | EPOLLRDNORM)) && !readable_maybe(c, 1))
		fail(FAIL_CHECK, "%s reports %s for conn %d: nothing unread "
		     "(B->A sent %" PRIu64 ", read %" PRIu64 "), no EOF",
		     who, b, (int)(c - M.c), c->d[1].sent, c->d[1].rcvd);
	if ((bits & EPOLLRDHUP) && !c->d[1].shut && !c->d[1].trunc &&
	    !c->reset)
		fail(FAIL_CHECK, "%s reports %s for conn %d: B did not shut "
		     "down", who, b, (int)(c - M.c));
	if ((bits & EPOLLHUP) && !(c->d[0].shut && c->d[1].shut) &&
	    !c->reset)
		fail(FAIL_CHECK, "%s reports %s for conn %d: not both "
		     "directions shut, no reset", who, b, (int)(c - M.c));
	if ((bits & EPOLLERR) && !c->reset)
		fail(FAIL_CHECK, "%s reports %s for conn %d: no reset", who,
		     b, (int)(c - M.c));
	if (bits & (EPOLLIN | EPOLLRDNORM | EPOLLERR | EPOLLHUP))
		c->d[1].promised = 1;
}

static int do_wait(int e, int max, int timeout)
{
	struct epoll_event ev[16];
	uint8_t seen[NCONN] = { 0 }, must_in[NCONN], must_out[NCONN];
	int n;

	if (max > 16)
		max = 16;
	do
		n = epoll_wait(M.ep[e].fd, ev, max, timeout);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fail(FAIL_CHECK, "epoll_wait: %s", strerror(errno));
	M.ep[e].owned = 1;
	for (int i = 0; i < NCONN; i++)
		for (int d = 0; d < 2; d++)
			if (M.c[i].open && M.c[i].d[d].fneed[e])
				M.c[i].d[d].fneed[e]--;
	/* What a wait that returns fewer than max must report. */
	for (int i = 0; i < NCONN; i++) {
		struct conn *c = &M.c[i];
		uint32_t r = c->reg[e];

		must_in[i] = must_out[i] = 0;
		if (n >= max || !c->open || !r || c->off[e])
			continue;
		must_in[i] = (r & EPOLLIN) && readable_known(c, 1) &&
			     (!(r & EPOLLET) || c->etin[e]);
		must_out[i] = (r & EPOLLOUT) && !(r & EPOLLET) &&
			      writable_known(c, 0);
	}
	for (int i = 0; i < n; i++) {
		int ci = (int)(ev[i].data.u64 & 0xff);
		struct conn *c = ci < NCONN ? &M.c[ci] : NULL;
		uint32_t want;
		char b[96], w[96];

		fmt_ev(b, sizeof(b), ev[i].events);
		trace("      ep%d: conn %d %s\n", e, ci, b);
		if (!c || !c->open || !c->reg[e] ||
		    c->data[e] != ev[i].data.u64)
			fail(FAIL_CHECK, "ep%d reports data 0x%" PRIx64
			     " (%s), not a registration of it", e,
			     (uint64_t)ev[i].data.u64, b);
		if (seen[ci]++)
			fail(FAIL_CHECK, "ep%d reports conn %d twice", e, ci);
		if (c->off[e])
			fail(FAIL_CHECK, "ep%d reports conn %d (%s), a "
			     "ONESHOT registration reported already", e, ci,
			     b);
		want = (c->reg[e] & ~REG) | EPOLLERR | EPOLLHUP;
		if (c->reg[e] & EPOLLIN)
			want |= EPOLLRDNORM;
		if (c->reg[e] & EPOLLOUT)
			want |= EPOLLWRNORM;
		if (ev[i].events & ~want) {
			fmt_ev(w, sizeof(w), c->reg[e] & ~REG);
			fail(FAIL_CHECK, "ep%d reports conn %d %s, interest "
			     "%s", e, ci, b, w);
		}
		check_bits(c, ev[i].events, "epoll_wait");
		LOG->stat[ST_EVENTS]++;
		if (c->reg[e] & EPOLLONESHOT)
			c->off[e] = 1;
		if (ev[i].events & EPOLLIN)
			c->etin[e] = 0;
	}
	/* Every ready registration was reported: the missing ones? */
	for (int i = 0; i < NCONN; i++) {
		if (must_in[i]) {
			LOG->stat[ST_MUST_IN]++;
			if (!seen[i])
				fail(FAIL_CHECK, "ep%d does not report conn "
				     "%d's EPOLLIN (%s; B->A sent %" PRIu64
				     ", read %" PRIu64 "%s)", e, i,
				     M.c[i].reg[e] & EPOLLET ?
					     "ET, an edge due" : "LT",
				     M.c[i].d[1].sent, M.c[i].d[1].rcvd,
				     M.c[i].d[1].shut ? ", shut" : "");
		}
		if (must_out[i]) {
			LOG->stat[ST_MUST_OUT]++;
			if (!seen[i])
				fail(FAIL_CHECK, "ep%d does not report conn "
				     "%d's EPOLLOUT (LT; A->B unread %" PRIu64
				     ")", e, i, unread(&M.c[i].d[0]));
		}
	}
	return n;
}

static int x_wait(const struct op *o)
{
	if (o->e >= NEP || M.ep[o->e].fd < 0)
		return 1;
	do_wait(o->e, (int)o->n, o->t);
	return 0;
}

static int x_flush(void)
{
	for (int k = 0; k < 2; k++)
		for (int e = 0; e < NEP; e++)
			if (M.ep[e].fd >= 0)
				do_wait(e, 16, 0);
	return 0;
}

/* The fd an op on side uses: A's (either number) or B's. */
static int side_fd(struct conn *c, int side, int slot)
{
	if (side == 1)
		return c->b_gone ? -1 : c->bfd;
	if (c->a_gone)
		return -1;
	if (slot <= 1 && c->afd[slot] >= 0)
		return c->afd[slot];
	return a_fd(c);
}

static uint8_t iob[BIG + 64];

/* Calls: 0 write/read, 1 send/recv, 2 writev/readv, 3 sendmsg/recvmsg,
 * 4 sendto/recvfrom. */
static const char *wcall[5] = { "write", "send", "writev", "sendmsg",
				"sendto" };
static const char *rcall[5] = { "read", "recv", "readv", "recvmsg",
				"recvfrom" };

static ssize_t do_io(int fd, int wr, int call, uint8_t *p, size_t n,
		     int flags)
{
	struct iovec v[3];
	struct msghdr m = { .msg_iov = v };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	size_t a = n / 3, b = n / 2;

	v[0] = (struct iovec){ p, a };
	v[1] = (struct iovec){ p + a, b - a };
	v[2] = (struct iovec){ p + b, n - b };
	m.msg_iovlen = 3;
	switch (call) {
	case 0:
		return wr ? write(fd, p, n) : read(fd, p, n);
	case 1:
		return wr ? send(fd, p, n, flags) : recv(fd, p, n, flags);
	case 2:
		return wr ? writev(fd, v, 3) : readv(fd, v, 3);
	case 3:
		return wr ? sendmsg(fd, &m, flags) : recvmsg(fd, &m, flags);
	default:
		return wr ? sendto(fd, p, n, flags, NULL, 0) :
			    recvfrom(fd, p, n, flags, (struct sockaddr *)&ss,
				     &sl);
	}
}

/* Does an op on a blocking A risk waiting forever? Then DONTWAIT it. */
static int a_blocking(const struct conn *c, int side)
{
	return side == 0 && !c->a_nb;
}

static int x_write(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	int side = o->side, d = side, fd, flags = o->flags, err;
	struct dir *s;
	size_t n = o->n > BIG ? BIG : o->n;
	ssize_t r;

	if (!c || (fd = side_fd(c, side, o->slot)) < 0)
		return 1;
	s = &c->d[d];
	if (a_blocking(c, side) && !(flags & MSG_DONTWAIT) &&
	    (unread(s) + n > STRICT_MAX / 2 || !s->strict || c->reset)) {
		if (o->call == 0 || o->call == 2)
			return 1;
		flags |= MSG_DONTWAIT;
	}
	fill(iob, s->key, s->sent, n);
	r = do_io(fd, 1, o->call, iob, n, flags);
	err = errno;
	trace("      -> %zd%s%s\n", r, r < 0 ? " " : "",
	      r < 0 ? strerror(err) : "");
	if (r >= 0) {
		if ((size_t)r > n)
			fail(FAIL_CHECK, "%s of %zu returned %zd", wcall[o->call],
			     n, r);
		/* write(2) of nothing is 0 whatever the socket's state. */
		if (s->shut && n)
			fail(FAIL_CHECK, "%s after shutdown(SHUT_WR) returned "
			     "%zd, not EPIPE", wcall[o->call], r);
		if (r == 0 && n)
			fail(FAIL_CHECK, "%s of %zu returned 0",
			     wcall[o->call], n);
		s->sent += (uint64_t)r;
		if (unread(s) > STRICT_MAX)
			s->strict = 0;
		/*
		 * Completion mode: A's writes reach the wire with its
		 * instances' waits, and what B sends reaches A's reads
		 * with them (an empty buffer is EAGAIN until a wait).
		 */
		if (r)
			need_flush(s);
		/* A fresh arrival at A: an ET EPOLLIN edge (the wait that
		 * brings it to A's buffer reports it). */
		if (side == 1 && r && at_reader_after_waits(c, 1))
			for (int e = 0; e < NEP; e++)
				if ((c->reg[e] & EPOLLET) &&
				    (c->reg[e] & EPOLLIN))
					c->etin[e] = 1;
		/*
		 * Bytes to a closed end draw an RST, which drops what that
		 * end still had to send (past the window, or in the
		 * completion mode not yet flushed): its stream may end early.
		 */
		if (r && (side == 1 ? c->a_gone : c->b_gone)) {
			struct dir *back = &c->d[!d];

			c->reset = 1;
			if (!back->strict || !flushed(back))
				back->trunc = 1;
		}
		return 0;
	}
	if (err == EAGAIN) {
		if (s->shut)
			fail(FAIL_CHECK, "%s after shutdown(SHUT_WR): EAGAIN, "
			     "not EPIPE", wcall[o->call]);
		if (writable_known(c, d) && n <= STRICT_MAX / 4 && unread(s) == 0)
			fail(FAIL_CHECK, "%s of %zu: EAGAIN with nothing in "
			     "flight (%s)", wcall[o->call], n, dname(d));
		return 0;
	}
	if (err == EPIPE && (s->shut || c->reset))
		return 0;
	if (err == ECONNRESET && c->reset)
		return 0;
	fail(FAIL_CHECK, "%s of %zu (%s): %s", wcall[o->call], n, dname(d),
	     strerror(err));
}

static void got_eof(struct conn *c, int d, const char *what)
{
	struct dir *s = &c->d[d];

	if (!s->shut && !s->trunc && !c->reset)
		fail(FAIL_CHECK, "%s: EOF on %s, but the writer did not shut "
		     "down (sent %" PRIu64 ", read %" PRIu64 ")", what,
		     dname(d), s->sent, s->rcvd);
	if (s->rcvd != s->sent && !s->trunc)
		fail(FAIL_CHECK, "%s: EOF on %s after %" PRIu64 " of %" PRIu64
		     " bytes", what, dname(d), s->rcvd, s->sent);
	s->eof = 1;
}

/*
 * One read of up to n on side; returns what it returned (-errno). The
 * oracle's checks of bytes, EOF and EAGAIN.
 */
static ssize_t do_read(struct conn *c, int side, int slot, int call,
		       size_t n, int flags)
{
	int d = !side, fd = side_fd(c, side, slot), err;
	struct dir *s = &c->d[d];
	int zero_ok = n == 0, peek;
	int must = readable_known(c, d) && (n || call == 0 || call == 2);
	ssize_t r;

	/* read and readv have no flags. */
	if (call == 0 || call == 2)
		flags = 0;
	peek = flags & MSG_PEEK;
	r = do_io(fd, 0, call, iob, n, flags);
	err = errno;
	trace("      -> %zd%s%s\n", r, r < 0 ? " " : "",
	      r < 0 ? strerror(err) : "");
	if (r > 0) {
		if ((size_t)r > n)
			fail(FAIL_CHECK, "%s of %zu returned %zd",
			     rcall[call], n, r);
		if (s->eof && !s->trunc)
			fail(FAIL_CHECK, "%s on %s: %zd bytes after EOF",
			     rcall[call], dname(d), r);
		if ((uint64_t)r > unread(s))
			fail(FAIL_CHECK, "%s on %s: %zd bytes, only %" PRIu64
			     " unread (sent %" PRIu64 ")", rcall[call],
			     dname(d), r, unread(s), s->sent);
		check_bytes(c, d, iob, (size_t)r);
		LOG->stat[ST_BYTES] += (uint64_t)r;
		if (must)
			LOG->stat[ST_STRICT_READ]++;
		if (peek) {
			s->peek = (uint32_t)r;
			return r;
		}
		s->rcvd += (uint64_t)r;
		s->peek = 0;
		s->promised = 0;
		if (unread(s) == 0 && !s->trunc)
			s->strict = 1;
		return r;
	}
	if (r == 0) {
		if (zero_ok) {
			/* read(2) of nothing: 0 whatever is queued. */
			return 0;
		}
		got_eof(c, d, rcall[call]);
		LOG->stat[ST_EOF]++;
		return 0;
	}
	if (zero_ok && err == EAGAIN && call != 0 && call != 2) {
		/* recv of nothing: EAGAIN on an empty socket. */
		if (s->peek)
			fail(FAIL_CHECK, "%s of 0: EAGAIN, a peek saw %u "
			     "bytes", rcall[call], s->peek);
		return -err;
	}
	if (err == EAGAIN) {
		if (must)
			fail(FAIL_CHECK, "%s of %zu on %s: EAGAIN, but %s "
			     "(sent %" PRIu64 ", read %" PRIu64 "%s)",
			     rcall[call], n, dname(d),
			     s->peek ? "a peek saw bytes" :
			     s->promised ? "a report said readable" :
			     "they are known to have arrived",
			     s->sent, s->rcvd, s->shut ? ", shut" : "");
		if (s->eof && !s->trunc)
			fail(FAIL_CHECK, "%s on %s after EOF: EAGAIN, not 0",
			     rcall[call], dname(d));
		return -err;
	}
	if ((err == ECONNRESET || err == EPIPE || err == ETIMEDOUT) &&
	    (c->reset || s->trunc)) {
		s->promised = 0;
		s->peek = 0;
		return -err;
	}
	fail(FAIL_CHECK, "%s of %zu on %s: %s", rcall[call], n, dname(d),
	     strerror(err));
}

static int x_read(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	int flags = o->flags;

	if (!c || side_fd(c, o->side, o->slot) < 0)
		return 1;
	if (a_blocking(c, o->side) && !(flags & MSG_DONTWAIT) &&
	    !readable_known(c, !o->side)) {
		if (o->call == 0 || o->call == 2)
			return 1;
		flags |= MSG_DONTWAIT;
	}
	do_read(c, o->side, o->slot, o->call, o->n > BIG ? BIG : o->n,
		flags);
	return 0;
}

static int x_shut(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	int fd;

	if (!c || (fd = side_fd(c, o->side, o->slot)) < 0)
		return 1;
	/* Both FINs went (or an RST): the connection is closed. */
	if (shutdown(fd, SHUT_WR) &&
	    !(errno == ENOTCONN &&
	      (c->reset || c->d[0].shut || c->d[1].shut)))
		fail(FAIL_CHECK, "shutdown: %s", strerror(errno));
	c->d[o->side].shut = 1;
	need_flush(&c->d[o->side]);
	return 0;
}

/* The last number of an end is closed. */
static void end_closed(struct conn *c, int side)
{
	struct dir *in = &c->d[!side], *out = &c->d[side];

	if (side == 0) {
		c->a_gone = 1;
		for (int e = 0; e < NEP; e++)
			reg_forget(c, e);
	} else {
		c->b_gone = 1;
	}
	/* Closed with bytes unread (or on their way): a reset. */
	if (unread(in) && !in->eof) {
		c->reset = 1;
		out->trunc = 1;
	}
	out->shut = 1;
	need_flush(out);
	if (c->a_gone && c->b_gone)
		c->open = 0;
}

static int x_close(const struct op *o)
{
	struct conn *c = conn_of(o->c);

	if (!c)
		return 1;
	if (o->side == 1) {
		if (c->b_gone)
			return 1;
		if (close(c->bfd))
			fail(FAIL_CHECK, "close B: %s", strerror(errno));
		end_closed(c, 1);
		return 0;
	}
	if (c->a_gone || o->slot > 1 || c->afd[o->slot] < 0)
		return 1;
	/*
	 * Deviation 1 (docs/deviations.md): a registered number is closed
	 * only as its file's last; with a dup open, DEL it first.
	 */
	if (c->afd[!o->slot] >= 0) {
		for (int e = 0; e < NEP; e++)
			if (c->reg[e] && c->slot[e] == o->slot &&
			    (((avoid & AV_SHUT) && c->d[0].shut) ||
			     ((avoid & AV_DEL) && unread(&c->d[1]))))
				return 1;
		for (int e = 0; e < NEP; e++)
			if (c->reg[e] && c->slot[e] == o->slot)
				do_del(c, e);
	}
	if (close(c->afd[o->slot]))
		fail(FAIL_CHECK, "close A: %s", strerror(errno));
	c->afd[o->slot] = -1;
	if (c->afd[!o->slot] < 0)
		end_closed(c, 0);
	return 0;
}

static int x_dup(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	int s;

	if (!c || c->a_gone)
		return 1;
	if ((avoid & AV_PREDUP) && !registered(c))
		return 1;
	s = c->afd[0] < 0 ? 0 : c->afd[1] < 0 ? 1 : -1;
	if (s < 0)
		return 1;
	c->afd[s] = o->n & 1 ? fcntl(a_fd(c), F_DUPFD_CLOEXEC, 3) :
			       dup(a_fd(c));
	if (c->afd[s] < 0)
		fail(FAIL_CHECK, "dup: %s", strerror(errno));
	return 0;
}

static int x_fionread(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	int fd, v = -1, d;
	struct dir *s;

	if (!c || (fd = side_fd(c, o->side, o->slot)) < 0)
		return 1;
	if ((avoid & AV_FIONREAD) && o->side == 0)
		return 1;
	d = !o->side;
	s = &c->d[d];
	if (ioctl(fd, FIONREAD, &v))
		fail(FAIL_CHECK, "FIONREAD: %s", strerror(errno));
	trace("      -> %d\n", v);
	if (v < 0 || (uint64_t)v > unread(s))
		fail(FAIL_CHECK, "FIONREAD on %s: %d, unread %" PRIu64,
		     dname(d), v, unread(s));
	if (known_at_reader(c, d) && (uint64_t)v != unread(s))
		fail(FAIL_CHECK, "FIONREAD on %s: %d, but %" PRIu64 " are "
		     "known to have arrived", dname(d), v, unread(s));
	if (known_at_reader(c, d))
		LOG->stat[ST_EXACT_FIONREAD]++;
	if (v > 0 && (uint32_t)v > s->peek)
		s->peek = (uint32_t)v;
	return 0;
}

static int x_poll(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	struct pollfd p;
	int d, n;

	if (!c || (p.fd = side_fd(c, o->side, o->slot)) < 0)
		return 1;
	d = !o->side;
	p.events = POLLIN | POLLOUT | POLLRDHUP;
	p.revents = 0;
	n = poll(&p, 1, 0);
	if (n < 0)
		fail(FAIL_CHECK, "poll: %s", strerror(errno));
	trace("      -> 0x%x\n", p.revents);
	if (o->side == 0) {
		check_bits(c, (uint32_t)p.revents, "poll");
	} else {
		/* B: IN only with something on A->B. */
		if ((p.revents & POLLIN) && !readable_maybe(c, 0))
			fail(FAIL_CHECK, "poll on B says POLLIN: nothing "
			     "unread, no EOF");
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			c->d[0].promised = 1;
	}
	if (!(p.revents & POLLIN) && readable_known(c, d) &&
	    !(c->d[d].promised && !c->d[d].peek && !known_at_reader(c, d)))
		fail(FAIL_CHECK, "poll on %s: no POLLIN (revents 0x%x), but "
		     "%" PRIu64 " bytes%s are known to be there",
		     o->side ? "B" : "A", p.revents, unread(&c->d[d]),
		     c->d[d].shut ? " and EOF" : "");
	if (!(p.revents & POLLOUT) && writable_known(c, o->side))
		fail(FAIL_CHECK, "poll on %s: no POLLOUT (revents 0x%x)",
		     o->side ? "B" : "A", p.revents);
	return 0;
}

static int x_nblock(const struct op *o)
{
	struct conn *c = conn_of(o->c);
	int fd, on = (int)(o->n & 1);

	if (!c || (fd = side_fd(c, 0, o->slot)) < 0)
		return 1;
	if (o->call) {
		if (ioctl(fd, FIONBIO, &on))
			fail(FAIL_CHECK, "FIONBIO: %s", strerror(errno));
	} else {
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK :
						      fl & ~O_NONBLOCK))
			fail(FAIL_CHECK, "fcntl: %s", strerror(errno));
	}
	c->a_nb = on;
	return 0;
}

/*
 * Reads stream d to its end as the oracle knows it (all of sent, then
 * EOF if shut), giving the writer's instances waits: bytes that never
 * come are lost.
 */
static void drain(struct conn *c, int d, int need_eof)
{
	struct dir *s = &c->d[d];
	int side = !d, tries = 0;

	if ((side == 0 && c->a_gone) || (side == 1 && c->b_gone))
		return;
	while (!s->eof) {
		ssize_t r;

		if (!need_eof && unread(s) == 0)
			break;
		r = do_read(c, side, 0, 1, 65536, MSG_DONTWAIT);
		if (r == 0)
			break;
		if (r > 0) {
			tries = 0;
			continue;
		}
		if (r != -EAGAIN) {
			/* A reset: the rest may be gone. */
			if (s->trunc || c->reset)
				return;
		}
		if (++tries > 2000)
			fail(FAIL_LOST, "%s: %" PRIu64 " of %" PRIu64 " bytes "
			     "read%s, nothing more comes", dname(d), s->rcvd,
			     s->sent, need_eof && s->shut ? ", no EOF" : "");
		x_flush();
		if (tries > 10) {
			struct pollfd p = { .fd = side_fd(c, side, 0),
					    .events = POLLIN };

			poll(&p, 1, 1);
		}
	}
}

static int x_drain(const struct op *o)
{
	struct conn *c = conn_of(o->c);

	if (!c || (o->side == 0 ? c->a_gone : c->b_gone))
		return 1;
	if (a_blocking(c, o->side))
		return 1;
	drain(c, !o->side, 0);
	return 0;
}

static int exec_op(const struct op *o)
{
	switch (o->k) {
	case OP_CONN:
		return x_conn(o);
	case OP_EPNEW:
		return x_epnew(o);
	case OP_EPCLOSE:
		return x_epclose(o);
	case OP_ADD:
		return x_add(o);
	case OP_MOD:
		return x_mod(o);
	case OP_DEL:
		return x_del(o);
	case OP_WAIT:
		return x_wait(o);
	case OP_WRITE:
		return x_write(o);
	case OP_READ:
		return x_read(o);
	case OP_SHUT:
		return x_shut(o);
	case OP_CLOSE:
		return x_close(o);
	case OP_DUP:
		return x_dup(o);
	case OP_FIONREAD:
		return x_fionread(o);
	case OP_POLL:
		return x_poll(o);
	case OP_NBLOCK:
		return x_nblock(o);
	case OP_FLUSH:
		return x_flush();
	case OP_DRAIN:
		return x_drain(o);
	}
	return 1;
}

/*
 * The end: every connection still open is shut down from both sides and
 * read to its end; every byte and both EOFs must come.
 */
static void finish(void)
{
	cur_op = LOG->count;
	for (int i = 0; i < NCONN; i++) {
		struct conn *c = &M.c[i];

		if (!c->open)
			continue;
		if (!c->a_gone) {
			if (!c->a_nb) {
				int fd = a_fd(c),
				    fl = fcntl(fd, F_GETFL);

				fcntl(fd, F_SETFL, fl | O_NONBLOCK);
				c->a_nb = 1;
			}
			if (!c->d[0].shut) {
				shutdown(a_fd(c), SHUT_WR);
				c->d[0].shut = 1;
				need_flush(&c->d[0]);
			}
		}
		if (!c->b_gone && !c->d[1].shut) {
			shutdown(c->bfd, SHUT_WR);
			c->d[1].shut = 1;
			need_flush(&c->d[1]);
		}
		/* Every byte, then EOF, unless a reset may cut it. */
		drain(c, 0, 1);
		drain(c, 1, 1);
	}
}

static void close_all(void)
{
	for (int i = 0; i < NCONN; i++) {
		struct conn *c = &M.c[i];

		if (!c->open)
			continue;
		for (int s = 0; s < 2; s++)
			if (c->afd[s] >= 0)
				close(c->afd[s]);
		if (!c->b_gone)
			close(c->bfd);
		c->open = 0;
	}
	for (int e = 0; e < NEP; e++)
		if (M.ep[e].fd >= 0)
			close(M.ep[e].fd);
	close(M.lfd);
}

/* --------------------------------------------------------- generator */

static uint32_t gen_events(void)
{
	static const uint32_t io[] = { EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT,
				       EPOLLIN, EPOLLIN | EPOLLRDHUP };
	uint32_t ev = io[rn(5)];

	if (rn(3) == 0)
		ev |= EPOLLET;
	if (rn(5) == 0)
		ev |= EPOLLONESHOT;
	return ev;
}

static uint32_t gen_size(void)
{
	switch (rn(10)) {
	case 0:
		return 0;
	case 1:
	case 2:
		return 1 + rn(16);
	case 3:
	case 4:
	case 5:
		return 1 + rn(1500);
	case 6:
	case 7:
		return 1 + rn(8192);
	case 8:
		return 1 + rn(65536);
	default:
		return rn(8) ? 1 + rn(4096) : 65536 + rn(BIG - 65536);
	}
}

static int pick_conn(void)
{
	int n = 0, pick[NCONN];

	for (int i = 0; i < NCONN; i++)
		if (M.c[i].open)
			pick[n++] = i;
	return n ? pick[rn((uint32_t)n)] : -1;
}

static int pick_ep(void)
{
	int n = 0, pick[NEP];

	for (int i = 0; i < NEP; i++)
		if (M.ep[i].fd >= 0)
			pick[n++] = i;
	return n ? pick[rn((uint32_t)n)] : -1;
}

static void gen_op(struct op *o)
{
	int c = pick_conn(), e = pick_ep(), r = (int)rn(100);

	memset(o, 0, sizeof(*o));
	o->c = (uint8_t)(c < 0 ? 0 : c);
	o->e = (uint8_t)(e < 0 ? 0 : e);
	o->slot = (uint8_t)rn(2);
	o->side = (uint8_t)rn(2);
	if (c < 0 || r < 3) {
		o->k = OP_CONN;
		o->c = (uint8_t)rn(NCONN);
		o->flags = (uint16_t)(rn(2) | (rn(8) == 0 ? 2 : 0));
		return;
	}
	if (e < 0 || r < 4) {
		o->k = OP_EPNEW;
		o->e = (uint8_t)rn(NEP);
		o->flags = rn(3) != 0;
		return;
	}
	if (r < 5) {
		o->k = OP_EPCLOSE;
		return;
	}
	if (r < 12) {
		o->k = M.c[c].reg[e] ? (rn(3) ? OP_MOD : OP_DEL) : OP_ADD;
		o->ev = gen_events();
		return;
	}
	if (r < 30) {
		o->k = OP_WAIT;
		o->n = 1 + rn(rn(2) ? 4 : 16);
		o->t = rn(4) ? 0 : (int32_t)rn(4);
		return;
	}
	if (r < 50) {
		o->k = OP_WRITE;
		o->call = (uint8_t)rn(5);
		o->n = gen_size();
		o->flags = (uint16_t)((rn(2) ? MSG_NOSIGNAL : 0) |
				      (rn(3) == 0 ? MSG_DONTWAIT : 0));
		return;
	}
	if (r < 72) {
		o->k = OP_READ;
		o->call = (uint8_t)rn(5);
		o->n = gen_size();
		if (o->call != 0 && o->call != 2)
			o->flags = (uint16_t)((rn(5) == 0 ? MSG_PEEK : 0) |
					      (rn(3) == 0 ? MSG_DONTWAIT : 0));
		return;
	}
	if (r < 74) {
		o->k = OP_SHUT;
		return;
	}
	if (r < 76) {
		o->k = OP_CLOSE;
		return;
	}
	if (r < 78) {
		o->k = OP_DUP;
		o->n = rn(2);
		return;
	}
	if (r < 81) {
		o->k = OP_FIONREAD;
		return;
	}
	if (r < 85) {
		o->k = OP_POLL;
		return;
	}
	if (r < 87) {
		o->k = OP_NBLOCK;
		o->n = rn(3) != 0;
		o->call = (uint8_t)rn(2);
		return;
	}
	if (r < 95) {
		o->k = OP_FLUSH;
		return;
	}
	o->k = OP_DRAIN;
}

static void fmt_op(char *b, size_t len, const struct op *o)
{
	char ev[96];
	const char *sd = o->side ? "B" : "A";

	switch (o->k) {
	case OP_CONN:
		snprintf(b, len, "conn %d = connect (A the %s end%s)", o->c,
			 o->flags & 1 ? "accepted" : "connecting",
			 o->flags & 2 ? ", blocking" : "");
		break;
	case OP_EPNEW:
		snprintf(b, len, "ep%d = epoll_create1%s", o->e,
			 o->flags & 1 ? ", wait 0" : "");
		break;
	case OP_EPCLOSE:
		snprintf(b, len, "close ep%d", o->e);
		break;
	case OP_ADD:
	case OP_MOD:
		fmt_ev(ev, sizeof(ev), o->ev);
		snprintf(b, len, "ep%d %s conn %d A%s %s", o->e,
			 opname[o->k], o->c,
			 o->k == OP_ADD && o->slot ? "(dup)" : "", ev);
		break;
	case OP_DEL:
		snprintf(b, len, "ep%d DEL conn %d", o->e, o->c);
		break;
	case OP_WAIT:
		snprintf(b, len, "ep%d wait maxevents=%u timeout=%d", o->e,
			 o->n, o->t);
		break;
	case OP_WRITE:
	case OP_READ:
		snprintf(b, len, "conn %d %s %s %u%s%s%s", o->c, sd,
			 o->k == OP_WRITE ? wcall[o->call] : rcall[o->call],
			 o->n, o->flags & MSG_PEEK ? " PEEK" : "",
			 o->flags & MSG_DONTWAIT ? " DONTWAIT" : "",
			 o->flags & MSG_NOSIGNAL ? " NOSIGNAL" : "");
		break;
	case OP_CLOSE:
		snprintf(b, len, "conn %d close %s%s", o->c, sd,
			 o->side ? "" : o->slot ? " number 1" : " number 0");
		break;
	case OP_NBLOCK:
		snprintf(b, len, "conn %d A %s %s", o->c,
			 o->call ? "FIONBIO" : "fcntl",
			 o->n & 1 ? "nonblocking" : "blocking");
		break;
	case OP_DUP:
		snprintf(b, len, "conn %d dup A", o->c);
		break;
	case OP_FLUSH:
		snprintf(b, len, "flush (wait 0 on every instance, twice)");
		break;
	default:
		snprintf(b, len, "conn %d %s %s", o->c, sd, opname[o->k]);
	}
}

/* ---------------------------------------------------------- running */

static void run_seq(uint64_t seed, int gen, int nops)
{
	memset(&M, 0, sizeof(M));
	for (int e = 0; e < NEP; e++)
		M.ep[e].fd = -1;
	M.lfd = listener(&M.port);
	if (M.lfd < 0)
		fail(FAIL_HARNESS, "listener: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	cur_seed = seed;
	LOG->failed_at = -1;
	if (gen) {
		rng_seed(seed);
		LOG->count = 0;
		while (LOG->count < nops) {
			struct op o;
			char b[160];

			if (LOG->count == 0) {
				memset(&o, 0, sizeof(o));
				o.k = OP_EPNEW;
				o.flags = rn(4) != 0;
			} else {
				gen_op(&o);
			}
			cur_op = LOG->count;
			LOG->ops[LOG->count++] = o;
			if (verbose) {
				fmt_op(b, sizeof(b), &o);
				trace("  #%d %s\n", cur_op, b);
			}
			if (exec_op(&o))
				LOG->count--;
		}
	} else {
		for (cur_op = 0; cur_op < LOG->count; cur_op++) {
			char b[160];

			if (verbose) {
				fmt_op(b, sizeof(b), &LOG->ops[cur_op]);
				trace("  #%d %s\n", cur_op, b);
			}
			LOG->ran[cur_op] = exec_op(&LOG->ops[cur_op]) == 0;
		}
	}
	finish();
	close_all();
}

static int run_one(uint64_t seed, int gen, int nops, int silent)
{
	pid_t pid;
	int st;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		quiet = silent;
		alarm(30);
		run_seq(seed, gen, nops);
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid) {
		perror("waitpid");
		exit(2);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 100 + WTERMSIG(st);
}

static struct op saved[MAXOPS];

static int replay(int count, int silent)
{
	int rc;

	LOG->count = count;
	LOG->sig = 0;
	rc = run_one(cur_seed, 0, 0, silent);
	if (rc == 0)
		return 0;
	return LOG->sig ? LOG->sig : rc;
}

/* Drops chunks of ops while the same failure stays; leaves them in LOG. */
static int shrink(int sig)
{
	int n = LOG->failed_at >= 0 && LOG->failed_at < LOG->count ?
			LOG->failed_at + 1 : LOG->count;
	int trials = 0;

	memcpy(saved, LOG->ops, sizeof(struct op) * (size_t)n);
	for (int chunk = n / 2 > 0 ? n / 2 : 1; chunk >= 1;
	     chunk = chunk > 1 ? chunk / 2 : 0) {
		for (int i = 0; i + chunk <= n && trials < 1500;) {
			int m = 0;

			for (int j = 0; j < n; j++)
				if (j < i || j >= i + chunk)
					LOG->ops[m++] = saved[j];
			trials++;
			if (replay(m, 1) == sig) {
				int f = LOG->failed_at;

				n = f >= 0 && f < m ? f + 1 : m;
				memcpy(saved, LOG->ops,
				       sizeof(struct op) * (size_t)n);
			} else {
				i += chunk;
			}
		}
	}
	memcpy(LOG->ops, saved, sizeof(struct op) * (size_t)n);
	LOG->count = n;
	/* Ops that did not run go too. */
	if (replay(n, 1) == sig) {
		int m = 0;

		for (int j = 0; j < n; j++)
			if (LOG->ran[j] || j == n - 1)
				LOG->ops[m++] = saved[j];
		if (replay(m, 1) == sig)
			n = m;
		else
			memcpy(LOG->ops, saved, sizeof(struct op) * (size_t)n);
	}
	LOG->count = n;
	return n;
}

static int noshrink;

/* 0: reproduced (and shrunk), 1: the recorded ops pass on replay. */
static int report(uint64_t seed, int code)
{
	int n, at, sig = LOG->sig ? LOG->sig : code, rc = 0;
	char b[160];

	cur_seed = seed;
	fprintf(stderr, "FAIL seed %" PRIu64 " (code %d)\n", seed, code);
	if (LOG->msg[0])
		fprintf(stderr, "  first run: %s\n", LOG->msg);
	if (noshrink)
		return 0;
	n = LOG->count;
	at = LOG->failed_at;
	memcpy(saved, LOG->ops, sizeof(struct op) * (size_t)n);
	for (int i = 0; i < 3 && (rc = replay(n, 1)) != sig; i++)
		memcpy(LOG->ops, saved, sizeof(struct op) * (size_t)n);
	if (rc != sig) {
		fprintf(stderr, "  (replays give %d, not %d: not "
			"reproducible); the first run's ops:\n", rc, sig);
		for (int i = 0; i < n && i <= at; i++) {
			fmt_op(b, sizeof(b), &saved[i]);
			fprintf(stderr, "    %2d  %s\n", i, b);
		}
		return 1;
	}
	memcpy(LOG->ops, saved, sizeof(struct op) * (size_t)n);
	n = shrink(sig);
	fprintf(stderr, "  reproducer, %d ops (seed %" PRIu64 "):\n", n,
		seed);
	for (int i = 0; i < n; i++) {
		fmt_op(b, sizeof(b), &LOG->ops[i]);
		fprintf(stderr, "    %2d  %s\n", i, b);
	}
	fprintf(stderr, "  replayed:\n    ");
	memcpy(saved, LOG->ops, sizeof(struct op) * (size_t)n);
	replay(n, 0);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: sock-fuzz [-s FIRST_SEED] [-n SEQUENCES] [-t SECONDS]\n"
		"                 [-l OPS] [-x SEED]... [-X CLASS]... [-v] [-k]\n"
		"                 [-S] [-F]\n"
		"  -s  first seed (default 1; \"random\" picks one)\n"
		"  -n  number of sequences (seeds FIRST..FIRST+N-1)\n"
		"  -t  run for SECONDS instead (with -n: whichever first)\n"
		"  -l  ops per sequence (default 150)\n"
		"  -x  skip this seed (a known failure)\n"
		"  -v  trace every op of a single run\n"
		"  -k  keep going after a failure (default: stop at 5)\n"
		"  -S  do not shrink failures\n"
		"  -F  a failure its replays do not reproduce is FLAKY, not\n"
		"      failed\n"
		"  -X  steer around an open bug of the completion mode:\n"
		"      predup, shut, multi, fionread, del, all\n"
		"      (tests/fuzz/SOCK-KNOWN.md)\n"
		"Run it natively, under ringpoll-run, and under\n"
		"RINGPOLL_COMPLETION=1 ringpoll-run (the oracle allows the\n"
		"completion mode's designed behaviours when that is set).\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t first = 1, skip[64];
	long nseq = -1, secs = -1, passed = 0, failed = 0, flaky = 0;
	int nskip = 0, opt, keep = 0, tolerate = 0;
	const char *cm = getenv("RINGPOLL_COMPLETION");
	time_t start = time(NULL);

	while ((opt = getopt(argc, argv, "s:n:t:l:x:X:vkSF")) != -1) {
		switch (opt) {
		case 'X': {
			unsigned i, n = sizeof(avoid_name) / sizeof(*avoid_name);

			for (i = 0; i < n && strcmp(optarg, avoid_name[i]); i++)
				;
			if (!strcmp(optarg, "all"))
				avoid = ~0u;
			else if (i < n)
				avoid |= 1u << i;
			else
				usage();
			break;
		}
		case 's':
			first = !strcmp(optarg, "random") ?
					(uint64_t)time(NULL) * 1000003ULL +
						(uint64_t)getpid() :
					strtoull(optarg, NULL, 0);
			break;
		case 'n':
			nseq = strtol(optarg, NULL, 0);
			break;
		case 't':
			secs = strtol(optarg, NULL, 0);
			break;
		case 'l':
			nops_max = (int)strtol(optarg, NULL, 0);
			break;
		case 'x':
			if (nskip < 64)
				skip[nskip++] = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			verbose = 1;
			break;
		case 'k':
			keep = 1;
			break;
		case 'S':
			noshrink = 1;
			break;
		case 'F':
			tolerate = 1;
			break;
		default:
			usage();
		}
	}
	if (nseq < 0 && secs < 0)
		nseq = 100;
	if (nops_max < 1 || nops_max > MAXOPS)
		usage();
	cmode = cm && !strcmp(cm, "1");
	LOG = mmap(NULL, sizeof(*LOG), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (LOG == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("sock-fuzz: seeds from %" PRIu64 ", %d ops each%s\n", first,
	       nops_max, cmode ? ", completion mode" : "");
	for (uint64_t seed = first;; seed++) {
		int rc, skipped = 0;

		if (nseq >= 0 && (long)(seed - first) >= nseq)
			break;
		if (secs >= 0 && time(NULL) - start >= secs)
			break;
		for (int i = 0; i < nskip; i++)
			skipped |= skip[i] == seed;
		if (skipped)
			continue;
		LOG->sig = 0;
		LOG->msg[0] = 0;
		rc = run_one(seed, 1, nops_max, !verbose);
		if (rc == 0) {
			passed++;
			continue;
		}
		if (verbose) {
			failed++;
			fprintf(stderr, "FAIL seed %" PRIu64 " (code %d)\n",
				seed, rc);
			continue;
		}
		if (report(seed, rc) && tolerate && !noshrink) {
			flaky++;
			fprintf(stderr, "FLAKY seed %" PRIu64 ": not counted "
				"(-F)\n", seed);
			continue;
		}
		failed++;
		if (!keep && failed >= 5)
			break;
	}
	if (flaky)
		printf("%ld flaky (not reproducible, not counted: see FLAKY "
		       "above)\n", flaky);
	for (int i = 0; i < ST_NSTAT; i++)
		printf("  %" PRIu64 " %s\n", LOG->stat[i], stat_name[i]);
	printf("%ld passed, %ld failed\n", passed, failed);
	return failed ? 1 : 0;
}
