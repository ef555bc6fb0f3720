/* SPDX-License-Identifier: MIT */
/*
 * Differential fuzzer: random sequences of epoll work applied in lockstep to
 * the kernel's epoll (raw syscalls) and to rp_epoll_* in one process. Each
 * side has its own, identical set of fds; fds are named by logical id, never
 * by number. Every ctl result, every wait's event set, every read/write
 * result and the poll(2) state of every fd must agree, except for the
 * documented deviations (docs/deviations.md), which the harness avoids:
 *
 *  1. close() of one of several fds for a file: a registered fd is closed
 *     only when no dup of its file is open.
 *  2. EPOLLEXCLUSIVE: when two exclusive entries share a file, those
 *     entries (and instances that contain them) are left out of the
 *     comparison until they are deleted.
 *  3. poll(2) on the epoll fd: never done.
 *  5. fork(): the child compares level-triggered entries exactly and
 *     only asks its edge-triggered/one-shot events to be a superset of the
 *     kernel's; the parent then drains every instance on both sides.
 *  7. dup of an epoll fd: never done.
 * 11. A wakeup ringpoll cannot see (a shutdown, a socket's close, a big
 *     write to a unix stream): modelled, see M.spur. Until an instance's
 *     next wait, the kernel may report a nested instance that ringpoll does
 *     not; one-shot such entries are left out until the next ctl on them.
 *
 * Each sequence runs in a child process (a crash, a sanitizer report or a
 * hang is a failure). A failure is replayed from its recorded ops, shrunk
 * (chunks of ops dropped while the same failure stays) and printed as an
 * op list. -X steers the generator around open bugs (KNOWN.md); a replay
 * that breaks such a rule is not taken as a reproducer. Usage: usage().
 *
 * Built with -DEPOLL_FUZZ_LIBFUZZER (make fuzz-libfuzzer) it is a libFuzzer
 * target instead: the input's bytes replace the seeded PRNG as the
 * generator's source of choices (fz_take), --avoid=CLASS stands for -X, and
 * each input runs in a thread of the fuzzer's process so that coverage
 * counts; see LLVMFuzzerTestOneInput.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringpoll_epoll.h"
#include "fuzz_rng.h"

/* ------------------------------------------------------------- the model */

enum kind {
	K_PIPE,		/* end 0 reads, end 1 writes */
	K_STREAM,	/* AF_UNIX socketpair */
	K_DGRAM,
	K_SEQPACKET,
	K_EVENTFD,	/* end 0 only */
	K_EVENTFD_SEM,	/* EFD_SEMAPHORE, end 0 only */
	K_TCP,		/* end 0 client, end 1 accepted */
	K_LISTEN,	/* end 0 a listening socket: write connects, read accepts */
	NKIND
};
static const char *kind_name[NKIND] = { "pipe", "unix-stream", "unix-dgram",
					"seqpacket", "eventfd", "eventfd-sem",
					"tcp", "listener" };

#define NOBJ 6
#define NEND (NOBJ * 2)
#define NDUP 4
#define NLFD (NEND + NDUP)
#define NEP 3
#define NTGT (NLFD + NEP)	/* logical fds, then epoll instances */
#define T_BAD (NTGT)		/* a number that is no fd */
#define T_REG (NTGT + 1)	/* a regular file */
#define T_NULL (NTGT + 2)	/* /dev/null */
#define T_SELF (NTGT + 3)	/* the instance itself */
#define NTALL (NTGT + 4)
#define EPT(i) (NLFD + (i))

enum opk {
	OP_CREATE,	/* a = object slot, b = kind */
	OP_CREATE_EP,	/* a = ep slot, n = flags */
	OP_CLOSE_EP,	/* a = ep slot */
	OP_CTL,		/* a = ep slot, b = target, n = op, ev, data */
	OP_WAIT,	/* a = ep slot, n = maxevents, b = variant, ev = timeout */
	OP_WRITE,	/* a = lfd, n = size or eventfd value (data) */
	OP_READ,	/* a = lfd, n = size */
	OP_SHUT,	/* a = lfd, n = how */
	OP_CLOSE,	/* a = lfd */
	OP_DUP,		/* a = source lfd, b = dup slot */
	OP_FORK,
	OP_BADWAIT,	/* a = ep slot or -1, n = maxevents */
	NOPK
};

struct op {
	uint8_t k, a, b, pad;
	uint32_t n;
	uint32_t ev;
	uint64_t data;
};

#define MAXOPS 4096

/* Shared with the parent: the ops of the current run. */
struct oplog {
	int count;
	int failed_at;
	int sig;	/* what failed: code, op kind, direction */
	char msg[256];	/* the first failure's message, even a quiet one */
	uint8_t ran[MAXOPS];	/* replay: the op's preconditions held */
	struct op ops[MAXOPS];
};

struct model {
	int kind[NOBJ];		/* kind of each object slot, -1 if never made */
	int fd[2][NTGT];	/* side 0 kernel, 1 ringpoll; -1 closed */
	int file[NTGT];		/* file identity of each logical fd */
	int gen[NEND];
	int objof[NTGT];	/* object slot a logical fd belongs to */
	uint32_t reg[NEP][NTGT];	/* registered events | REG */
	uint8_t taint[NEP][NTGT];
	/*
	 * Deviation 11: a wakeup without a key (shutdown, a socket's close
	 * reaching its peer) or with an overstated one (a unix stream's big
	 * write says PRI) happened since this instance's last wait. The
	 * kernel wakes whoever watches an instance holding that file, and an
	 * edge-triggered entry for the instance is reported again if it has
	 * anything ready; io_uring's poll posts nothing. x_wait takes such a
	 * kernel-only report of an instance as the deviation.
	 */
	uint8_t spur[NEP];
	/* a one-shot entry the kernel spent on such a report: left out */
	uint8_t sptaint[NEP][NTGT];
	uint64_t data[NEP][NTGT];
	uint8_t lt_reported[NEP][NTGT];	/* by the last wait */
	uint8_t fresh[NEP][NTGT];	/* ET armed since the last wait */
	uint8_t pending_del[NEP];	/* a DEL since the last wait */
	int pending[NOBJ];	/* listener: connections not accepted */
	int lport[2][NOBJ];	/* listener ports */
	int tcp_listen[2], tcp_port[2];
	int regfile, devnull;
	int eflags[NEP];
};
#define REG 0x08000000u	/* no epoll flag uses bit 27 */

static struct model M;
static struct oplog *LOG;
static int verbose;
/* Known bug classes the generator can steer around (-X), see KNOWN.md. */
#define AV_NEST 1	/* no epoll instance registered in another */
#define AV_MODET 2	/* no ET arm of an LT item reported by the last wait */
#define AV_CLOSE 4	/* wait before DEL/MOD of a fresh ET arm, and DEL
			   everywhere plus a wait before a close */
#define AV_EPCLOSE 8	/* DEL everything and wait before closing an instance */
/*
 * While an instance is nested: no shutdown(2) and no close of a socket
 * (their wakeups have no key), no write over 16 KB to a unix stream (its
 * data wakeups say EPOLLPRI): deviation 11, which the comparison does not
 * model (docs/deviations.md).
 */
#define AV_KEYLESS 16
static unsigned avoid;
static struct op genq[64];
static int genq_n;
static int quiet;
static int cur_op;
static uint64_t cur_seed;
/*
 * -R N: each sequence runs N times in one child, in fresh instances and
 * fds each time (the first generates, the rest replay its ops), so that a
 * race that shows once in thousands of fresh instances is seen; replays
 * and shrinking repeat as often.
 */
static long repeat = 1, cur_rep;

#define FAIL_CTL 2
#define FAIL_WAIT 3
#define FAIL_IO 4
#define FAIL_STATE 5
#define FAIL_FORK 6
#define FAIL_HARNESS 7
#define FAIL_AVOIDED 9	/* a replayed op breaks a -X rule: not a candidate */

static int fail_dir;	/* waits: 1 ringpoll reported more, 2 less, 3 both */

/*
 * The libFuzzer build runs a sequence in the fuzzer's process, so that the
 * coverage it reaches guides the mutations: a failure jumps back to where
 * the sequence started (fz_code says why) instead of ending a child.
 * Replays and shrinking still run in children (run_one), where fz_active
 * is 0.
 */
static int fz_active, fz_code;
static sigjmp_buf fz_jmp;
#ifdef EPOLL_FUZZ_LIBFUZZER
static const int fz_mode = 1;
#else
static const int fz_mode = 0;
#endif

static void say(const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void fail(int code, const char *fmt, ...)
{
	va_list ap;

	LOG->failed_at = cur_op;
	LOG->sig = code * 1000 + LOG->ops[cur_op].k * 10 + fail_dir;
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
		if (fz_mode)
			fprintf(stderr, "op #%d: ", cur_op);
		else if (repeat > 1)
			fprintf(stderr, "seed %" PRIu64 " run %ld/%ld op #%d: ",
				cur_seed, cur_rep + 1, repeat, cur_op);
		else
			fprintf(stderr, "seed %" PRIu64 " op #%d: ", cur_seed,
				cur_op);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	if (fz_active) {
		fz_code = code;
		siglongjmp(fz_jmp, 1);
	}
	_exit(code);
}

/* A replayed sequence breaks a rule the generator keeps (-X). */
static int generating;

static void avoided(const char *why)
{
	if (generating)
		fail(FAIL_HARNESS, "the generator broke its own -X rule: %s",
		     why);
	if (LOG->count && !quiet && verbose)
		fprintf(stderr, "op #%d breaks -X: %s\n", cur_op, why);
	LOG->failed_at = cur_op;
	LOG->sig = FAIL_AVOIDED * 1000;
	_exit(FAIL_AVOIDED);
}

/* ---------------------------------------------------------- formatting */

static void fmt_events(char *buf, size_t len, uint32_t ev)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{ EPOLLIN, "IN" },	   { EPOLLPRI, "PRI" },
		{ EPOLLOUT, "OUT" },	   { EPOLLERR, "ERR" },
		{ EPOLLHUP, "HUP" },	   { EPOLLRDNORM, "RDNORM" },
		{ EPOLLRDBAND, "RDBAND" }, { EPOLLWRNORM, "WRNORM" },
		{ EPOLLWRBAND, "WRBAND" }, { EPOLLMSG, "MSG" },
		{ EPOLLRDHUP, "RDHUP" },   { EPOLLEXCLUSIVE, "EXCLUSIVE" },
		{ EPOLLWAKEUP, "WAKEUP" }, { EPOLLONESHOT, "ONESHOT" },
		{ EPOLLET, "ET" },
	};
	size_t o = 0;

	buf[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(ev & names[i].bit))
			continue;
		o += snprintf(buf + o, len - o, "%s%s", o ? "|" : "",
			      names[i].name);
		ev &= ~names[i].bit;
		if (o >= len)
			return;
	}
	if (ev)
		o += snprintf(buf + o, len - o, "%s0x%x", o ? "|" : "", ev);
	if (!o)
		snprintf(buf, len, "0");
}

static const char *tname(int t, char *buf, size_t len)
{
	if (t < NEND)
		snprintf(buf, len, "fd%d(obj%d.%c)", t, t / 2,
			 t % 2 ? 'b' : 'a');
	else if (t < NLFD)
		snprintf(buf, len, "dup%d", t - NEND);
	else if (t < NTGT)
		snprintf(buf, len, "ep%d", t - NLFD);
	else if (t == T_BAD)
		snprintf(buf, len, "badfd");
	else if (t == T_REG)
		snprintf(buf, len, "regfile");
	else if (t == T_NULL)
		snprintf(buf, len, "/dev/null");
	else if (t == T_SELF)
		snprintf(buf, len, "self");
	else
		snprintf(buf, len, "t%d", t);
	return buf;
}

static const char *ctl_name(uint32_t op)
{
	switch (op) {
	case EPOLL_CTL_ADD:
		return "ADD";
	case EPOLL_CTL_MOD:
		return "MOD";
	case EPOLL_CTL_DEL:
		return "DEL";
	default:
		return "CTL?";
	}
}

static void fmt_op(char *buf, size_t len, const struct op *o)
{
	char t[32], e[160];

	switch (o->k) {
	case OP_CREATE:
		snprintf(buf, len, "create obj%d %s", o->a, kind_name[o->b]);
		break;
	case OP_CREATE_EP:
		snprintf(buf, len, "ep%d = epoll_create1(0x%x)", o->a, o->n);
		break;
	case OP_CLOSE_EP:
		snprintf(buf, len, "close ep%d", o->a);
		break;
	case OP_CTL:
		fmt_events(e, sizeof(e), o->ev);
		snprintf(buf, len, "ep%d %s(%d) %s events=%s data=0x%" PRIx64,
			 o->a, ctl_name(o->n), o->n, tname(o->b, t, sizeof(t)),
			 e, o->data);
		break;
	case OP_WAIT:
		snprintf(buf, len, "ep%d wait maxevents=%u timeout=%u via %s",
			 o->a, o->n, o->ev,
			 o->b == 0 ? "wait" : o->b == 1 ? "pwait" : "pwait2");
		break;
	case OP_WRITE:
		snprintf(buf, len, "write %s size/value=%u",
			 tname(o->a, t, sizeof(t)), o->n);
		break;
	case OP_READ:
		snprintf(buf, len, "read %s size=%u", tname(o->a, t, sizeof(t)),
			 o->n);
		break;
	case OP_SHUT:
		snprintf(buf, len, "shutdown %s %s", tname(o->a, t, sizeof(t)),
			 o->n == SHUT_RD ? "SHUT_RD" :
			 o->n == SHUT_WR ? "SHUT_WR" : "SHUT_RDWR");
		break;
	case OP_CLOSE:
		snprintf(buf, len, "close %s", tname(o->a, t, sizeof(t)));
		break;
	case OP_DUP:
		snprintf(buf, len, "dup%d = dup(%s)", o->b - NEND,
			 tname(o->a, t, sizeof(t)));
		break;
	case OP_FORK:
		snprintf(buf, len, "fork: child waits on every instance");
		break;
	case OP_BADWAIT:
		snprintf(buf, len, "wait on %s maxevents=%d events=%s",
			 o->a == 0xff ? "/dev/null" :
					tname(EPT(o->a), t, sizeof(t)),
			 (int)o->n, o->b ? "NULL" : "ok");
		break;
	default:
		snprintf(buf, len, "op%d", o->k);
	}
}

/* ------------------------------------------------------------- helpers */

static int k_create1(int flags)
{
	return (int)syscall(SYS_epoll_create1, flags);
}

static int k_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
	return (int)syscall(SYS_epoll_ctl, ep, op, fd, ev);
}

/*
 * Both sides share one thread: io_uring task work queued for the
 * ringpoll side (a ring torn down by close, say) sets TIF_NOTIFY_SIGNAL and
 * makes a sleeping epoll_pwait of either side return EINTR. The harness
 * sends no signals: a wait that sleeps is retried on EINTR. Under -R, the
 * rings of the earlier runs are still being torn down: many times.
 */
#define EINTR_TRIES 200
static int k_wait(int ep, struct epoll_event *ev, int max, int timeout)
{
	int r, tries = 0;

	do
		r = (int)syscall(SYS_epoll_pwait, ep, ev, max, timeout, NULL,
				 (size_t)8);
	while (r < 0 && errno == EINTR && timeout && tries++ < EINTR_TRIES);
	return r;
}

static int r_wait1(int variant, int ep, struct epoll_event *ev, int max,
		   int timeout);

static int r_wait(int variant, int ep, struct epoll_event *ev, int max,
		  int timeout)
{
	int r, tries = 0;

	do
		r = r_wait1(variant, ep, ev, max, timeout);
	while (r < 0 && errno == EINTR && timeout && tries++ < EINTR_TRIES);
	return r;
}

static int r_wait1(int variant, int ep, struct epoll_event *ev, int max,
		   int timeout)
{
	sigset_t ss;
	struct timespec ts = { timeout / 1000, (timeout % 1000) * 1000000L };

	switch (variant) {
	case 0:
		return rp_epoll_wait(ep, ev, max, timeout);
	case 1:
		sigemptyset(&ss);
		return rp_epoll_pwait(ep, ev, max, timeout, &ss);
	default:
		return rp_epoll_pwait2(ep, ev, max, &ts, NULL);
	}
}

static void set_nb(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int tcp_listener(int *port)
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

static int tcp_connect(int port, int nonblock)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int one = 1;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
				(nonblock ? SOCK_NONBLOCK : 0), 0);

	if (s < 0)
		return -1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) &&
	    errno != EINPROGRESS) {
		close(s);
		return -1;
	}
	return s;
}

static int make_pair(int side, int kind, int fds[2], int *port)
{
	int ty;

	fds[0] = fds[1] = -1;
	switch (kind) {
	case K_PIPE:
		return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
	case K_STREAM:
	case K_DGRAM:
	case K_SEQPACKET:
		ty = kind == K_STREAM ? SOCK_STREAM :
		     kind == K_DGRAM ? SOCK_DGRAM : SOCK_SEQPACKET;
		return socketpair(AF_UNIX, ty | SOCK_NONBLOCK | SOCK_CLOEXEC,
				  0, fds);
	case K_EVENTFD:
	case K_EVENTFD_SEM:
		fds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC |
					    (kind == K_EVENTFD_SEM ?
						     EFD_SEMAPHORE : 0));
		return fds[0] < 0 ? -1 : 0;
	case K_TCP: {
		int one = 1;

		fds[0] = tcp_connect(M.tcp_port[side], 0);
		if (fds[0] < 0)
			return -1;
		fds[1] = accept4(M.tcp_listen[side], NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fds[1] < 0)
			return -1;
		setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		set_nb(fds[0]);
		return 0;
	}
	case K_LISTEN:
		fds[0] = tcp_listener(port);
		if (fds[0] < 0)
			return -1;
		set_nb(fds[0]);
		return 0;
	}
	return -1;
}

static int tgt_fd(int side, int ep, int t)
{
	switch (t) {
	case T_BAD:
		return 1000000;
	case T_REG:
		return M.regfile;
	case T_NULL:
		return M.devnull;
	case T_SELF:
		return M.fd[side][EPT(ep)];
	default:
		return M.fd[side][t];
	}
}

/* The logical fd of a kernel target as seen by the registration table. */
static int tgt_key(int ep, int t)
{
	return t == T_SELF ? EPT(ep) : t;
}

static int nopen_refs(int file)
{
	int n = 0;

	for (int t = 0; t < NLFD; t++)
		if (M.fd[0][t] >= 0 && M.file[t] == file)
			n++;
	return n;
}

static int registered_anywhere(int t)
{
	for (int e = 0; e < NEP; e++)
		if (M.reg[e][t])
			return 1;
	return 0;
}

static void forget_target(int t)
{
	for (int e = 0; e < NEP; e++) {
		M.reg[e][t] = 0;
		M.taint[e][t] = 0;
		M.sptaint[e][t] = 0;
	}
}

/* -------------------------------------------------------- fd state sync */

#define PMASK (POLLIN | POLLPRI | POLLOUT | POLLRDHUP | POLLRDNORM | \
	       POLLRDBAND | POLLWRNORM | POLLWRBAND | POLLMSG)

static short pstate(int fd)
{
	struct pollfd p = { .fd = fd, .events = PMASK };

	if (poll(&p, 1, 0) < 0)
		return -1;
	return p.revents;
}

/*
 * After io on one side the other side's fds must end up in the same state
 * (TCP on loopback is almost always synchronous; give it time anyway).
 */
static int kind_of(int t);

/*
 * TCP acknowledges late (delayed ACK), and the ACK frees send space: an
 * EPOLLOUT wakeup at a time of the kernel's choosing, different on each
 * side. Ask for the pending ACKs now and wait until nothing is in flight.
 */
static int tcp_quiet(void)
{
	int one = 1, busy = 0;

	for (int t = 0; t < NLFD; t++) {
		if (M.fd[0][t] < 0 || kind_of(t) != K_TCP)
			continue;
		for (int s = 0; s < 2; s++) {
			struct tcp_info ti;
			socklen_t len = sizeof(ti);

			setsockopt(M.fd[s][t], IPPROTO_TCP, TCP_QUICKACK, &one,
				   sizeof(one));
			if (getsockopt(M.fd[s][t], IPPROTO_TCP, TCP_INFO, &ti,
				       &len))
				continue;
			/* States where an ACK is still to come. */
			if (ti.tcpi_unacked &&
			    (ti.tcpi_state == TCP_ESTABLISHED ||
			     ti.tcpi_state == TCP_FIN_WAIT1 ||
			     ti.tcpi_state == TCP_CLOSE_WAIT ||
			     ti.tcpi_state == TCP_CLOSING ||
			     ti.tcpi_state == TCP_LAST_ACK))
				busy = 1;
		}
	}
	return !busy;
}

static void settle(void)
{
	int t, bad = -1;
	short k = 0, r = 0;

	for (int tries = 0; tries < 300; tries++) {
		bad = -1;
		if (!tcp_quiet()) {
			usleep(1000);
			continue;
		}
		for (t = 0; t < NLFD; t++) {
			if (M.fd[0][t] < 0)
				continue;
			k = pstate(M.fd[0][t]);
			r = pstate(M.fd[1][t]);
			if (k != r) {
				bad = t;
				break;
			}
		}
		if (bad < 0)
			return;
		usleep(1000);
	}
	char a[160], b[160], n[32];

	fmt_events(a, sizeof(a), (uint16_t)k);
	fmt_events(b, sizeof(b), (uint16_t)r);
	fail(FAIL_STATE, "poll(2) state of %s differs: kernel side %s, "
			 "ringpoll side %s",
	     tname(bad, n, sizeof(n)), a, b);
}

/* -------------------------------------------------------------- taint */

/* Two EPOLLEXCLUSIVE entries on one file: deviation 2. */
static void update_taint(void)
{
	for (int e = 0; e < NEP; e++)
		for (int t = 0; t < NTGT; t++) {
			if (!(M.reg[e][t] & EPOLLEXCLUSIVE) || t >= NLFD)
				continue;
			for (int e2 = 0; e2 < NEP; e2++)
				for (int t2 = 0; t2 < NLFD; t2++) {
					if ((e2 == e && t2 == t) ||
					    !(M.reg[e2][t2] & EPOLLEXCLUSIVE) ||
					    M.file[t2] != M.file[t])
						continue;
					M.taint[e][t] = 1;
				}
		}
}

static int ep_tainted(int e, int depth)
{
	if (depth > 6)
		return 1;
	for (int t = 0; t < NTGT; t++) {
		if (!M.reg[e][t])
			continue;
		if (M.taint[e][t] || M.sptaint[e][t])
			return 1;
		if (t >= NLFD && ep_tainted(t - NLFD, depth + 1))
			return 1;
	}
	return 0;
}

static int ev_tainted(int e, uint64_t data)
{
	int t = (int)(data & 0xff);

	if (t >= NTGT)
		return 0;
	if (M.taint[e][t] || M.sptaint[e][t])
		return 1;
	return t >= NLFD && ep_tainted(t - NLFD, 0);
}

/* ---------------------------------------------------------- event sets */

struct evset {
	int n;
	struct epoll_event ev[128];
};

static int ev_cmp(const void *a, const void *b)
{
	const struct epoll_event *x = a, *y = b;

	if (x->data.u64 != y->data.u64)
		return x->data.u64 < y->data.u64 ? -1 : 1;
	if (x->events != y->events)
		return x->events < y->events ? -1 : 1;
	return 0;
}

static void set_add(struct evset *s, const struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		int dup = 0;

		for (int j = 0; j < s->n; j++)
			if (s->ev[j].data.u64 == ev[i].data.u64 &&
			    s->ev[j].events == ev[i].events)
				dup = 1;
		if (!dup && s->n < 128)
			s->ev[s->n++] = ev[i];
	}
}

static void set_filter(struct evset *s, int e)
{
	int o = 0;

	for (int i = 0; i < s->n; i++)
		if (!ev_tainted(e, s->ev[i].data.u64))
			s->ev[o++] = s->ev[i];
	s->n = o;
}

static void set_sort(struct evset *s)
{
	qsort(s->ev, s->n, sizeof(s->ev[0]), ev_cmp);
}

static int set_eq(const struct evset *a, const struct evset *b)
{
	if (a->n != b->n)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (ev_cmp(&a->ev[i], &b->ev[i]))
			return 0;
	return 1;
}

static void fmt_set(char *buf, size_t len, const struct evset *s)
{
	size_t o = 0;
	char e[160], t[32];

	o += snprintf(buf + o, len - o, "{");
	for (int i = 0; i < s->n && o < len; i++)
		o += snprintf(buf + o, len - o, "%s%s:%s", i ? ", " : "",
			      tname((int)(s->ev[i].data.u64 & 0xff), t,
				    sizeof(t)),
			      (fmt_events(e, sizeof(e), s->ev[i].events), e));
	if (o < len)
		snprintf(buf + o, len - o, "}");
}

static void check_unique(const char *side, int e, const struct epoll_event *ev,
			 int n)
{
	for (int i = 0; i < n; i++) {
		int t = (int)(ev[i].data.u64 & 0xff);

		if (t >= NTGT || !M.reg[e][t])
			fail(FAIL_WAIT, "%s side reported data 0x%" PRIx64
					" which is not registered in ep%d",
			     side, ev[i].data.u64, e);
		if (ev[i].data.u64 != M.data[e][t])
			fail(FAIL_WAIT, "%s side reported data 0x%" PRIx64
					" for a registration whose data is 0x%"
					PRIx64, side, ev[i].data.u64,
			     M.data[e][t]);
		for (int j = 0; j < i; j++)
			if (ev[j].data.u64 == ev[i].data.u64)
				fail(FAIL_WAIT,
				     "%s side reported data 0x%" PRIx64
				     " twice in one wait",
				     side, ev[i].data.u64);
	}
}

/* ---------------------------------------------------------- executing */

static char iobuf[1 << 18];

static void cmp_ret(int code, const char *what, long k, int kerr, long r,
		    int rerr)
{
	char buf[200];

	if ((k < 0) != (r < 0) || (k < 0 && kerr != rerr) ||
	    (k >= 0 && k != r && code != FAIL_CTL)) {
		fmt_op(buf, sizeof(buf), &LOG->ops[cur_op]);
		fail(code, "%s: %s: kernel %ld (%s), ringpoll %ld (%s)", buf,
		     what, k, k < 0 ? strerror(kerr) : "ok", r,
		     r < 0 ? strerror(rerr) : "ok");
	}
}

static void close_all(void);

static int x_create(const struct op *o)
{
	int t0 = o->a * 2, fds[2][2], port[2] = { 0, 0 };

	if (M.fd[0][t0] >= 0 || M.fd[0][t0 + 1] >= 0 || o->b >= NKIND)
		return -1;
	for (int s = 0; s < 2; s++)
		if (make_pair(s, o->b, fds[s], &port[s]))
			fail(FAIL_HARNESS, "cannot create %s: %s",
			     kind_name[o->b], strerror(errno));
	M.kind[o->a] = o->b;
	M.pending[o->a] = 0;
	for (int e = 0; e < 2; e++) {
		int t = t0 + e;

		M.gen[t]++;
		M.file[t] = t + M.gen[t] * NEND;
		M.objof[t] = o->a;
		forget_target(t);
		for (int s = 0; s < 2; s++)
			M.fd[s][t] = fds[s][e];
	}
	for (int s = 0; s < 2; s++)
		M.lport[s][o->a] = port[s];
	return 0;
}

static int x_create_ep(const struct op *o)
{
	int t = EPT(o->a), k, r, ke, re;

	if (M.fd[0][t] >= 0)
		return -1;
	errno = 0;
	k = k_create1((int)o->n);
	ke = errno;
	errno = 0;
	r = rp_epoll_create1((int)o->n);
	re = errno;
	cmp_ret(FAIL_CTL, "epoll_create1", k, ke, r, re);
	if (k < 0)
		return 0;
	if (!rp_epoll_is_ring(r))
		fail(FAIL_HARNESS, "rp_epoll_create1 fell back to the kernel");
	M.fd[0][t] = k;
	M.fd[1][t] = r;
	M.file[t] = 1000 + t;
	M.objof[t] = -1;
	forget_target(t);
	for (int u = 0; u < NTGT; u++) {
		M.reg[o->a][u] = 0;
		M.taint[o->a][u] = 0;
		M.sptaint[o->a][u] = 0;
	}
	M.spur[o->a] = 0;
	return 0;
}

static void note_wait(int ep, const struct epoll_event *ev, int n);

static int x_close_ep(const struct op *o)
{
	int t = EPT(o->a), k, r, ke, re;

	if (M.fd[0][t] < 0)
		return -1;
	if (avoid & AV_EPCLOSE) {
		if (M.pending_del[o->a])
			avoided("instance closed with a DEL not submitted");
		for (int u = 0; u < NTGT; u++)
			if (M.reg[o->a][u])
				avoided("instance closed with registrations");
	}
	errno = 0;
	k = close(M.fd[0][t]);
	ke = errno;
	errno = 0;
	r = rp_close(M.fd[1][t]);
	re = errno;
	M.fd[0][t] = M.fd[1][t] = -1;
	cmp_ret(FAIL_CTL, "close", k, ke, r, re);
	forget_target(t);
	for (int u = 0; u < NTGT; u++)
		M.reg[o->a][u] = 0;
	note_wait(o->a, NULL, 0);
	return 0;
}

static int x_ctl(const struct op *o)
{
	struct epoll_event ke = { o->ev, { .u64 = o->data } }, re = ke;
	int ep = o->a, t = o->b, key = tgt_key(ep, t), k, r, kerr, rerr;
	/* No event: fine for DEL, EFAULT for ADD and MOD. */
	int use_null = (o->n == EPOLL_CTL_DEL && (o->data & 0x100)) ||
		       (o->data & 0xf00) == 0xf00;

	if (M.fd[0][EPT(ep)] < 0 || (t < NTGT && M.fd[0][t] < 0))
		return -1;
	if (key < NTGT && M.reg[ep][key]) {
		if ((avoid & AV_CLOSE) && M.fresh[ep][key] &&
		    (o->n == EPOLL_CTL_MOD || o->n == EPOLL_CTL_DEL))
			avoided("DEL/MOD of a fresh ET arm");
		if ((avoid & AV_MODET) && M.lt_reported[ep][key] &&
		    o->n == EPOLL_CTL_MOD &&
		    (o->ev & (EPOLLET | EPOLLONESHOT)) == EPOLLET)
			avoided("ET MOD of an LT item just reported");
	}
	if ((avoid & AV_NEST) && t >= NLFD && t < NTGT &&
	    o->n == EPOLL_CTL_ADD)
		avoided("nesting");
	if ((avoid & AV_MODET) && key < NTGT && M.lt_reported[ep][key] &&
	    o->n == EPOLL_CTL_ADD &&
	    (o->ev & (EPOLLET | EPOLLONESHOT)) == EPOLLET)
		avoided("ET ADD of an LT item just reported");
	errno = 0;
	k = k_ctl(M.fd[0][EPT(ep)], (int)o->n, tgt_fd(0, ep, t),
		  use_null ? NULL : &ke);
	kerr = errno;
	errno = 0;
	r = rp_epoll_ctl(M.fd[1][EPT(ep)], (int)o->n, tgt_fd(1, ep, t),
			 use_null ? NULL : &re);
	rerr = errno;
	cmp_ret(FAIL_CTL, "epoll_ctl", k, kerr, r, rerr);
	if (k < 0 || key >= NTGT)
		return 0;
	/* Both sides have the entry as this ctl says again. */
	M.sptaint[ep][key] = 0;
	switch (o->n) {
	case EPOLL_CTL_ADD:
		M.taint[ep][key] = 0;
		/* fallthrough */
	case EPOLL_CTL_MOD:
		M.reg[ep][key] = o->ev | REG;
		M.data[ep][key] = o->data;
		M.fresh[ep][key] = (o->ev & (EPOLLET | EPOLLONESHOT)) == EPOLLET;
		break;
	case EPOLL_CTL_DEL:
		M.reg[ep][key] = 0;
		M.taint[ep][key] = 0;
		M.pending_del[ep] = 1;
		break;
	}
	update_taint();
	return 0;
}

/* What ringpoll reported: for the generator's AV_MODET and AV_CLOSE. */
static void note_wait(int ep, const struct epoll_event *ev, int n)
{
	if (!ev) {
		memset(M.lt_reported[ep], 0, sizeof(M.lt_reported[ep]));
		memset(M.fresh[ep], 0, sizeof(M.fresh[ep]));
		M.pending_del[ep] = 0;
		return;
	}
	for (int i = 0; i < n; i++) {
		int t = (int)(ev[i].data.u64 & 0xff);

		if (t < NTGT && !(M.reg[ep][t] & (EPOLLET | EPOLLONESHOT)))
			M.lt_reported[ep][t] = 1;
	}
}

static int x_wait(const struct op *o)
{
	struct epoll_event kev[128], rev[128];
	struct evset ks = { 0 }, rs = { 0 };
	int ep = o->a, max = (int)o->n, k, r, kerr, rerr, tainted, kn, rn_;
	int spurious = 0;
	int kfd = M.fd[0][EPT(ep)], rfd = M.fd[1][EPT(ep)];
	char buf[200], a[2000], b[2000];

	if (kfd < 0)
		return -1;
	update_taint();
	tainted = ep_tainted(ep, 0);
	note_wait(ep, NULL, 0);
	errno = 0;
	k = k_wait(kfd, kev, max, (int)o->ev);
	kerr = errno;
	errno = 0;
	r = r_wait(o->b, rfd, rev, max, (int)o->ev);
	rerr = errno;
	if ((k < 0) != (r < 0) || (k < 0 && kerr != rerr)) {
		cmp_ret(FAIL_WAIT, "epoll_wait result", k, kerr, r, rerr);
	}
	if (k < 0)
		return 0;
	kn = k;
	rn_ = r;
	check_unique("kernel", ep, kev, k);
	check_unique("ringpoll", ep, rev, r);
	set_add(&ks, kev, k);
	set_add(&rs, rev, r);
	if (max < 64 && (k == max || r == max || tainted)) {
		/* Which subset a full array gets may differ: compare the
		 * union with what a second, large wait finds. */
		k = k_wait(kfd, kev, 64, 0);
		r = r_wait(0, rfd, rev, 64, 0);
		if (k < 0 || r < 0)
			fail(FAIL_WAIT, "second wait failed: %d/%d", k, r);
		check_unique("kernel", ep, kev, k);
		check_unique("ringpoll", ep, rev, r);
		set_add(&ks, kev, k);
		set_add(&rs, rev, r);
	}
	note_wait(ep, rs.ev, rs.n);
	set_filter(&ks, ep);
	set_filter(&rs, ep);
	set_sort(&ks);
	set_sort(&rs);
	if (M.spur[ep]) {
		int o = 0;

		/* Deviation 11: a nested instance the kernel alone reports. */
		for (int i = 0; i < ks.n; i++) {
			int t = (int)(ks.ev[i].data.u64 & 0xff);

			if (t >= NLFD && t < NTGT &&
			    !bsearch(&ks.ev[i], rs.ev, rs.n, sizeof(rs.ev[0]),
				     ev_cmp)) {
				if (M.reg[ep][t] & EPOLLONESHOT)
					M.sptaint[ep][t] = 1;
				/* It took a slot: the counts may differ. */
				spurious = 1;
				continue;
			}
			ks.ev[o++] = ks.ev[i];
		}
		ks.n = o;
		M.spur[ep] = 0;
	}
	if (verbose) {
		fmt_set(a, sizeof(a), &ks);
		say("      -> %d %s\n", kn, a);
	}
	if (!set_eq(&ks, &rs) || (!tainted && !spurious && kn != rn_)) {
		for (int i = 0; i < rs.n; i++)
			if (!bsearch(&rs.ev[i], ks.ev, ks.n, sizeof(ks.ev[0]),
				     ev_cmp))
				fail_dir |= 1;
		for (int i = 0; i < ks.n; i++)
			if (!bsearch(&ks.ev[i], rs.ev, rs.n, sizeof(rs.ev[0]),
				     ev_cmp))
				fail_dir |= 2;
		fmt_op(buf, sizeof(buf), &LOG->ops[cur_op]);
		fmt_set(a, sizeof(a), &ks);
		fmt_set(b, sizeof(b), &rs);
		fail(FAIL_WAIT, "%s: kernel %d %s, ringpoll %d %s", buf, kn,
		     a, rn_, b);
	}
	return 0;
}

static int kind_of(int t)
{
	if (t < 0 || t >= NLFD)
		return -1;
	return t < NLFD && M.objof[t] >= 0 ? M.kind[M.objof[t]] : -1;
}

static long do_write(int s, int t, uint32_t n)
{
	int fd = M.fd[s][t], kind = kind_of(t);
	uint64_t v;

	if (kind == K_EVENTFD || kind == K_EVENTFD_SEM) {
		if (n == 0xfffffffe)
			return write(fd, "\1\0\0\0", 4);
		v = n == 0xffffffff ? 0xfffffffffffffffeULL : n;
		return write(fd, &v, 8);
	}
	if (kind == K_LISTEN && t % 2 == 0) {
		int c = tcp_connect(M.lport[s][M.objof[t]], 0);

		if (c < 0)
			return -1;
		close(c);
		return 0;
	}
	return write(fd, iobuf, n > sizeof(iobuf) ? sizeof(iobuf) : n);
}

static long do_read(int s, int t, uint32_t n)
{
	int fd = M.fd[s][t], kind = kind_of(t);
	long r;

	if (kind == K_EVENTFD || kind == K_EVENTFD_SEM)
		return read(fd, iobuf, n == 0xfffffffe ? 4 : 8);
	if (kind == K_LISTEN && t % 2 == 0) {
		r = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (r >= 0) {
			close((int)r);
			r = 0;
		}
		return r;
	}
	return read(fd, iobuf, n > sizeof(iobuf) ? sizeof(iobuf) : n);
}

/*
 * A wakeup io_uring's poll does not pass on (deviation 11): every instance
 * may see a nested instance reported by the kernel alone at its next wait.
 */
static void keyless_wakeup(void)
{
	memset(M.spur, 1, sizeof(M.spur));
}

/* Is some instance registered in another one? */
static int any_nested(void)
{
	for (int ep = 0; ep < NEP; ep++)
		for (int i = 0; i < NEP; i++)
			if (M.reg[ep][EPT(i)])
				return 1;
	return 0;
}

static int x_io(const struct op *o)
{
	int t = o->a, kerr, rerr;
	long k, r;

	if (t >= NLFD || M.fd[0][t] < 0)
		return -1;
	if ((avoid & AV_KEYLESS) && o->k == OP_SHUT && any_nested())
		avoided("shutdown with a nested instance");
	if (o->k == OP_WRITE && kind_of(t) == K_LISTEN && t % 2 == 0 &&
	    M.pending[M.objof[t]] >= 6)
		return -1;
	errno = 0;
	k = o->k == OP_WRITE ? do_write(0, t, o->n) :
	    o->k == OP_READ ? do_read(0, t, o->n) :
			      shutdown(M.fd[0][t], (int)o->n);
	kerr = errno;
	errno = 0;
	r = o->k == OP_WRITE ? do_write(1, t, o->n) :
	    o->k == OP_READ ? do_read(1, t, o->n) :
			      shutdown(M.fd[1][t], (int)o->n);
	rerr = errno;
	cmp_ret(FAIL_IO, o->k == OP_WRITE ? "write" :
			 o->k == OP_READ ? "read" : "shutdown",
		k, kerr, r, rerr);
	if (kind_of(t) == K_LISTEN && t % 2 == 0 && k >= 0)
		M.pending[M.objof[t]] += o->k == OP_WRITE ? 1 :
					 o->k == OP_READ ? -1 : 0;
	if (o->k == OP_SHUT ||
	    (o->k == OP_WRITE && kind_of(t) == K_STREAM && o->n > 16384))
		keyless_wakeup();
	settle();
	return 0;
}

static int x_close(const struct op *o)
{
	int t = o->a, k, r, kerr, rerr;

	if (t >= NLFD || M.fd[0][t] < 0)
		return -1;
	/* Deviation 1: a registered fd is closed only as the last one. */
	if (registered_anywhere(t) && nopen_refs(M.file[t]) > 1)
		return -1;
	if (avoid & AV_CLOSE) {
		if (registered_anywhere(t))
			avoided("close of a registered fd");
		for (int ep = 0; ep < NEP; ep++)
			if (M.pending_del[ep])
				avoided("close with a DEL not submitted");
	}
	errno = 0;
	k = close(M.fd[0][t]);
	kerr = errno;
	errno = 0;
	r = rp_close(M.fd[1][t]);
	rerr = errno;
	M.fd[0][t] = M.fd[1][t] = -1;
	cmp_ret(FAIL_IO, "close", k, kerr, r, rerr);
	forget_target(t);
	/* A socket's close reaches its peer without a key. */
	if (kind_of(t) >= K_STREAM && kind_of(t) != K_EVENTFD &&
	    kind_of(t) != K_EVENTFD_SEM)
		keyless_wakeup();
	settle();
	return 0;
}

static int x_dup(const struct op *o)
{
	int src = o->a, d = o->b;

	if (src >= NLFD || d < NEND || d >= NLFD || M.fd[0][src] < 0 ||
	    M.fd[0][d] >= 0)
		return -1;
	for (int s = 0; s < 2; s++) {
		M.fd[s][d] = fcntl(M.fd[s][src], F_DUPFD_CLOEXEC, 0);
		if (M.fd[s][d] < 0)
			fail(FAIL_HARNESS, "dup: %s", strerror(errno));
	}
	M.file[d] = M.file[src];
	M.objof[d] = M.objof[src];
	forget_target(d);
	/* The source's end decides what the dup does. */
	return 0;
}

static int is_lt(int ep, int t)
{
	return !(M.reg[ep][t] & (EPOLLET | EPOLLONESHOT)) && t < NLFD;
}

/* Deviation 5: the child's instances are its own. */
static int x_fork(void)
{
	pid_t pid;
	int st;

	update_taint();
	/*
	 * Deviation 2 again: the child's fresh ring puts a second exclusive
	 * entry on the file, which takes wakeups from the parent's.
	 */
	for (int ep = 0; ep < NEP; ep++)
		for (int t = 0; t < NTGT; t++)
			if (M.reg[ep][t] & EPOLLEXCLUSIVE)
				M.taint[ep][t] = 1;
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		fail(FAIL_HARNESS, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* Ends with _exit, never back into a libFuzzer run. */
		fz_active = 0;
		for (int ep = 0; ep < NEP; ep++) {
			struct epoll_event kev[128], rev[128];
			struct evset ks = { 0 }, rs = { 0 };
			char a[2000], b[2000];
			int k, r, bad = 0;

			if (M.fd[0][EPT(ep)] < 0)
				continue;
			k = k_wait(M.fd[0][EPT(ep)], kev, 64, 0);
			r = rp_epoll_wait(M.fd[1][EPT(ep)], rev, 64, 0);
			if (k < 0 || r < 0) {
				say("fork child: wait failed on ep%d: %d/%d\n",
				    ep, k, r);
				_exit(1);
			}
			set_add(&ks, kev, k);
			set_add(&rs, rev, r);
			set_filter(&ks, ep);
			set_filter(&rs, ep);
			set_sort(&ks);
			set_sort(&rs);
			/* Level-triggered: equal. Others: kernel's is a
			 * subset (the child's fresh ring arms them anew). */
			for (int i = 0; i < ks.n; i++) {
				int found = 0, t = ks.ev[i].data.u64 & 0xff;

				if (t >= NLFD)
					continue;
				for (int j = 0; j < rs.n; j++)
					if (!ev_cmp(&ks.ev[i], &rs.ev[j]))
						found = 1;
				bad |= !found;
			}
			for (int j = 0; j < rs.n; j++) {
				int found = 0, t = rs.ev[j].data.u64 & 0xff;

				if (!is_lt(ep, t))
					continue;
				for (int i = 0; i < ks.n; i++)
					if (!ev_cmp(&ks.ev[i], &rs.ev[j]))
						found = 1;
				bad |= !found;
			}
			if (bad) {
				fmt_set(a, sizeof(a), &ks);
				fmt_set(b, sizeof(b), &rs);
				say("fork child, ep%d: kernel %s, ringpoll %s\n",
				    ep, a, b);
				_exit(1);
			}
		}
		/*
		 * The child's rings are torn down asynchronously after its
		 * exit, and their polls hold the parent's files meanwhile:
		 * take them off first. An instance that is the kernel's
		 * epoll now (nested) is the parent's too, as on the kernel's
		 * side: its entries stay.
		 */
		for (int ep = 0; ep < NEP; ep++) {
			struct epoll_event ev[64];

			if (M.fd[1][EPT(ep)] < 0 ||
			    !rp_epoll_is_ring(M.fd[1][EPT(ep)]))
				continue;
			for (int t = 0; t < NTGT; t++)
				if (M.reg[ep][t])
					rp_epoll_ctl(M.fd[1][EPT(ep)],
						     EPOLL_CTL_DEL,
						     M.fd[1][t], NULL);
			rp_epoll_wait(M.fd[1][EPT(ep)], ev, 64, 0);
		}
		for (int ep = 0; ep < NEP; ep++)
			if (M.fd[1][EPT(ep)] >= 0)
				rp_close(M.fd[1][EPT(ep)]);
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid)
		fail(FAIL_HARNESS, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail(FAIL_FORK, "fork child disagreed (status 0x%x)", st);
	/* The kernel child consumed edges of the shared instances. */
	for (int round = 0; round < 2; round++)
		for (int ep = 0; ep < NEP; ep++) {
			struct epoll_event ev[128];
			int n;

			if (M.fd[0][EPT(ep)] < 0)
				continue;
			k_wait(M.fd[0][EPT(ep)], ev, 64, 0);
			n = rp_epoll_wait(M.fd[1][EPT(ep)], ev, 64, 0);
			note_wait(ep, NULL, 0);
			note_wait(ep, ev, n);
		}
	return 0;
}

static int x_badwait(const struct op *o)
{
	struct epoll_event ev[8];
	int kfd, rfd, k, r, kerr, rerr;

	if (o->a == 0xff) {
		kfd = rfd = M.devnull;
	} else {
		if (M.fd[0][EPT(o->a)] < 0)
			return -1;
		kfd = M.fd[0][EPT(o->a)];
		rfd = M.fd[1][EPT(o->a)];
	}
	errno = 0;
	k = k_wait(kfd, o->b ? NULL : ev, (int)o->n, 0);
	kerr = errno;
	errno = 0;
	r = rp_epoll_wait(rfd, o->b ? NULL : ev, (int)o->n, 0);
	rerr = errno;
	/*
	 * A NULL array is EFAULT only when there is an event to copy:
	 * where a deviation lets readiness differ (2, two exclusive
	 * entries on a file; 11), so may that (seed 1795532524604737).
	 */
	if (o->b && o->a != 0xff && (k >= 0 || kerr == EFAULT) &&
	    (r >= 0 || rerr == EFAULT)) {
		update_taint();
		if (ep_tainted(o->a, 0))
			return 0;
	}
	cmp_ret(FAIL_WAIT, "bad epoll_wait", k, kerr, r, rerr);
	return 0;
}

static int exec_op(const struct op *o)
{
	switch (o->k) {
	case OP_CREATE:
		return o->a < NOBJ ? x_create(o) : -1;
	case OP_CREATE_EP:
		return o->a < NEP ? x_create_ep(o) : -1;
	case OP_CLOSE_EP:
		return o->a < NEP ? x_close_ep(o) : -1;
	case OP_CTL:
		return x_ctl(o);
	case OP_WAIT:
		return x_wait(o);
	case OP_WRITE:
	case OP_READ:
	case OP_SHUT:
		return x_io(o);
	case OP_CLOSE:
		return x_close(o);
	case OP_DUP:
		return x_dup(o);
	case OP_FORK:
		return x_fork();
	case OP_BADWAIT:
		return x_badwait(o);
	}
	return -1;
}

static void close_all(void)
{
	for (int t = 0; t < NTGT; t++) {
		if (M.fd[0][t] < 0)
			continue;
		close(M.fd[0][t]);
		rp_close(M.fd[1][t]);
		M.fd[0][t] = M.fd[1][t] = -1;
	}
}

/* ---------------------------------------------------------- generating */

static int pick_open(int lo, int hi)
{
	int c[NTGT], n = 0;

	for (int t = lo; t < hi; t++)
		if (M.fd[0][t] >= 0)
			c[n++] = t;
	return n ? c[rn(n)] : -1;
}

static uint32_t gen_events(int add)
{
	static const uint32_t base[] = {
		EPOLLIN,
		EPOLLOUT,
		EPOLLIN | EPOLLOUT,
		EPOLLIN | EPOLLRDHUP,
		EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI,
		EPOLLPRI,
		EPOLLRDHUP,
		0,
	};
	static const uint32_t extra[] = { EPOLLRDNORM, EPOLLRDBAND,
					  EPOLLWRNORM, EPOLLWRBAND, EPOLLMSG,
					  EPOLLERR, EPOLLHUP };
	uint32_t ev = base[rn(8)];

	if (rn(8) == 0)
		ev |= extra[rn(7)];
	if (rn(3) == 0)
		ev |= EPOLLET;
	if (rn(5) == 0)
		ev |= EPOLLONESHOT;
	if (rn(12) == 0)
		ev |= EPOLLWAKEUP;
	if (rn(add ? 10 : 60) == 0)
		ev |= EPOLLEXCLUSIVE;
	return ev;
}

static void gen_wait(struct op *o, int ep)
{
	memset(o, 0, sizeof(*o));
	o->k = OP_WAIT;
	o->a = ep;
	o->n = 64;
}

/* A close with AV_CLOSE: DEL everywhere, wait everywhere, close. */
static void gen_close(struct op *o, int t)
{
	struct op q[3 * NEP + 1];
	int n = 0;

	for (int ep = 0; ep < NEP; ep++) {
		if (!M.reg[ep][t])
			continue;
		memset(&q[n], 0, sizeof(q[n]));
		q[n].k = OP_CTL;
		q[n].a = ep;
		q[n].b = t;
		q[n].n = EPOLL_CTL_DEL;
		q[n].data = t;
		n++;
		if (M.fresh[ep][t]) {
			/* that DEL needs a wait before it */
			q[n] = q[n - 1];
			gen_wait(&q[n - 1], ep);
			n++;
		}
	}
	for (int ep = 0; ep < NEP; ep++)
		if (M.fd[0][EPT(ep)] >= 0)
			gen_wait(&q[n++], ep);
	memset(&q[n], 0, sizeof(q[n]));
	q[n].k = OP_CLOSE;
	q[n].a = t;
	n++;
	/* genq is popped from the end */
	*o = q[0];
	for (int i = n - 1; i >= 1; i--)
		genq[genq_n++] = q[i];
}

/* A close of an instance with AV_EPCLOSE: DEL all, wait, close. */
static void gen_close_ep(struct op *o, int ep)
{
	struct op q[NTGT + 3];
	int n = 0;

	for (int t = 0; t < NTGT; t++)
		if (M.reg[ep][t] && M.fresh[ep][t] && (avoid & AV_CLOSE)) {
			gen_wait(&q[n++], ep);
			break;
		}
	for (int t = 0; t < NTGT; t++) {
		if (!M.reg[ep][t])
			continue;
		memset(&q[n], 0, sizeof(q[n]));
		q[n].k = OP_CTL;
		q[n].a = ep;
		q[n].b = t;
		q[n].n = EPOLL_CTL_DEL;
		q[n].data = t;
		n++;
	}
	gen_wait(&q[n++], ep);
	memset(&q[n], 0, sizeof(q[n]));
	q[n].k = OP_CLOSE_EP;
	q[n].a = ep;
	n++;
	*o = q[0];
	for (int i = n - 1; i >= 1; i--)
		genq[genq_n++] = q[i];
}

static int gen_op(struct op *o)
{
	uint32_t w = rn(1000);
	int t, ep;

	memset(o, 0, sizeof(*o));
	if (w < 40) {			/* create an object */
		o->k = OP_CREATE;
		o->a = rn(NOBJ);
		o->b = rn(NKIND);
		return M.fd[0][o->a * 2] < 0 && M.fd[0][o->a * 2 + 1] < 0 ?
			       0 : -1;
	}
	if (w < 52) {			/* create an instance */
		o->k = OP_CREATE_EP;
		o->a = rn(NEP);
		o->n = rn(20) == 0 ? 1 : rn(2) ? EPOLL_CLOEXEC : 0;
		return M.fd[0][EPT(o->a)] < 0 ? 0 : -1;
	}
	if (w < 58) {			/* close an instance */
		o->k = OP_CLOSE_EP;
		o->a = rn(NEP);
		if (M.fd[0][EPT(o->a)] < 0)
			return -1;
		if (avoid & AV_EPCLOSE)
			gen_close_ep(o, o->a);
		return 0;
	}
	if (w < 330) {			/* ctl */
		ep = pick_open(NLFD, NTGT);
		if (ep < 0)
			return -1;
		o->k = OP_CTL;
		o->a = ep - NLFD;
		w = rn(100);
		if (w < 3)
			t = T_BAD + rn(4);
		else if (w < 12 && !(avoid & AV_NEST))
			t = pick_open(NLFD, NTGT);
		else
			t = pick_open(0, NLFD);
		if (t < 0)
			return -1;
		o->b = t;
		t = tgt_key(o->a, t);
		if (rn(100) == 0)
			o->n = rn(2) ? 0 : 4;
		else if (t >= NTGT || !M.reg[o->a][t])
			o->n = rn(10) ? EPOLL_CTL_ADD :
			       rn(2) ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
		else
			o->n = (w = rn(20)) < 12 ? EPOLL_CTL_MOD :
			       w < 18 ? EPOLL_CTL_DEL : EPOLL_CTL_ADD;
		o->ev = gen_events(o->n == EPOLL_CTL_ADD);
		if ((avoid & AV_MODET) && t < NTGT && M.lt_reported[o->a][t] &&
		    (o->ev & (EPOLLET | EPOLLONESHOT)) == EPOLLET)
			o->ev &= ~(uint32_t)EPOLLET;
		o->data = (rnd() & ~0x1ffULL) | ((uint64_t)rn(2) << 8) |
			  (uint64_t)(t & 0xff);
		if ((avoid & AV_CLOSE) && t < NTGT && M.fresh[o->a][t] &&
		    (o->n == EPOLL_CTL_MOD || o->n == EPOLL_CTL_DEL)) {
			/* the wait first, then this ctl */
			genq[genq_n++] = *o;
			gen_wait(o, o->a);
		}
		return 0;
	}
	if (w < 600) {			/* wait */
		ep = pick_open(NLFD, NTGT);
		if (ep < 0)
			return -1;
		o->k = OP_WAIT;
		o->a = ep - NLFD;
		o->n = rn(2) ? 64 : 1 + rn(8);
		o->b = rn(3);
		o->ev = rn(40) == 0 ? 1 : 0;
		return 0;
	}
	if (w < 960) {			/* io */
		t = pick_open(0, NLFD);
		if (t < 0)
			return -1;
		o->a = t;
		w = rn(100);
		o->k = w < 45 ? OP_WRITE : w < 90 ? OP_READ :
		       w < 96 ? OP_SHUT : OP_CLOSE;
		if ((avoid & AV_KEYLESS) && any_nested() &&
		    (o->k == OP_SHUT ||
		     (o->k == OP_CLOSE && kind_of(t) >= K_STREAM &&
		      kind_of(t) != K_EVENTFD &&
		      kind_of(t) != K_EVENTFD_SEM)))
			return -1;
		if (o->k == OP_CLOSE && (avoid & AV_CLOSE)) {
			gen_close(o, t);
			return 0;
		}
		if (kind_of(t) == K_EVENTFD || kind_of(t) == K_EVENTFD_SEM) {
			w = rn(40);
			o->n = w == 0 ? 0 : w == 1 ? 0xffffffff :
			       w == 2 ? 0xfffffffe : 1 + rn(3);
		} else if (o->k == OP_SHUT) {
			o->n = rn(3);
		} else if (o->k == OP_READ) {
			o->n = rn(3) == 0 ? sizeof(iobuf) : 1 + rn(100);
		} else {
			w = rn(20);
			o->n = w == 0 ? 65536 + rn(65536) :
			       w < 4 ? 1 + rn(8192) : 1 + rn(64);
			if (kind_of(t) == K_TCP && o->n > 16384)
				o->n = 16384;
			if ((avoid & AV_KEYLESS) && any_nested() &&
			    kind_of(t) == K_STREAM && o->n > 16384)
				o->n = 16384;
		}
		return 0;
	}
	if (w < 975) {			/* dup */
		o->k = OP_DUP;
		t = pick_open(0, NEND);
		if (t < 0)
			t = pick_open(0, NLFD);
		if (t < 0)
			return -1;
		o->a = t;
		o->b = NEND + rn(NDUP);
		return M.fd[0][o->b] < 0 ? 0 : -1;
	}
	if (w < 985) {			/* bad wait */
		o->k = OP_BADWAIT;
		o->a = rn(4) == 0 ? 0xff : rn(NEP);
		o->n = rn(2) ? 0 : (uint32_t)-1;
		/* events NULL: EFAULT only when there is an event to copy */
		if (rn(2) && o->a != 0xff) {
			o->b = 1;
			o->n = 8;
		}
		return o->a == 0xff || M.fd[0][EPT(o->a)] >= 0 ? 0 : -1;
	}
	o->k = OP_FORK;
	return 0;
}

/* ---------------------------------------------------------- one sequence */

static void child_init(void)
{
	memset(&M, 0xff, sizeof(M));
	memset(M.reg, 0, sizeof(M.reg));
	memset(M.taint, 0, sizeof(M.taint));
	memset(M.spur, 0, sizeof(M.spur));
	memset(M.sptaint, 0, sizeof(M.sptaint));
	memset(M.gen, 0, sizeof(M.gen));
	memset(M.pending, 0, sizeof(M.pending));
	memset(M.lt_reported, 0, sizeof(M.lt_reported));
	memset(M.fresh, 0, sizeof(M.fresh));
	memset(M.pending_del, 0, sizeof(M.pending_del));
	memset(iobuf, 'x', sizeof(iobuf));
	signal(SIGPIPE, SIG_IGN);
	for (int s = 0; s < 2; s++) {
		M.tcp_listen[s] = tcp_listener(&M.tcp_port[s]);
		if (M.tcp_listen[s] < 0)
			fail(FAIL_HARNESS, "listener: %s", strerror(errno));
	}
	M.regfile = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (M.regfile < 0)
		M.regfile = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	M.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
}

/* Closes the fds child_init opened. */
static void child_fini(void)
{
	for (int s = 0; s < 2; s++)
		if (M.tcp_listen[s] >= 0)
			close(M.tcp_listen[s]);
	if (M.regfile >= 0)
		close(M.regfile);
	if (M.devnull >= 0)
		close(M.devnull);
	M.tcp_listen[0] = M.tcp_listen[1] = M.regfile = M.devnull = -1;
}

/* gen: make up nops ops from the seed (or fz_data); else replay LOG. */
static void run_seq(uint64_t seed, int gen, int nops)
{
	child_init();
	cur_seed = seed;
	LOG->failed_at = -1;
	if (gen) {
		struct op o;

		rng_seed(seed);
		LOG->count = 0;
		generating = 1;
		while (LOG->count < nops && LOG->count < MAXOPS) {
			int tries = 0;

			/* The libFuzzer input is used up. */
			if (fz_data && fz_eof)
				break;

			/* A prologue: two instances and three objects. */
			if (LOG->count < 2) {
				memset(&o, 0, sizeof(o));
				o.k = OP_CREATE_EP;
				o.a = LOG->count;
				o.n = EPOLL_CLOEXEC;
			} else if (LOG->count < 5) {
				memset(&o, 0, sizeof(o));
				o.k = OP_CREATE;
				o.a = LOG->count - 2;
				o.b = rn(NKIND);
			} else if (genq_n) {
				o = genq[--genq_n];
			} else {
				while (gen_op(&o) && tries++ < 100)
					;
				if (tries > 100)
					continue;
			}
			cur_op = LOG->count;
			LOG->ops[cur_op] = o;
			if (verbose) {
				char b[200];

				fmt_op(b, sizeof(b), &o);
				say("  #%d %s\n", cur_op, b);
			}
			/* Ops a deviation rules out are not recorded. */
			LOG->count++;
			if (exec_op(&o)) {
				LOG->count--;
				if (verbose)
					say("      (skipped)\n");
			}
		}
	} else {
		for (cur_op = 0; cur_op < LOG->count; cur_op++) {
			int ran;

			LOG->ran[cur_op] = 1;
			ran = exec_op(&LOG->ops[cur_op]);
			LOG->ran[cur_op] = ran == 0;

			if (verbose && ran == 0) {
				char b[200];

				fmt_op(b, sizeof(b), &LOG->ops[cur_op]);
				say("  #%d %s\n", cur_op, b);
			}
		}
	}
	close_all();
}

static void child_run(uint64_t seed, int gen, int nops)
{
	for (cur_rep = 0; cur_rep < repeat; cur_rep++) {
		/* Each run has the time one sequence has. */
		alarm(30);
		run_seq(seed, gen && cur_rep == 0, nops);
		generating = 0;
		child_fini();
	}
	_exit(0);
}

/* Runs one sequence in a child: 0 passed, else a failure code. */
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
		fz_active = 0;
		quiet = silent;
		if (silent) {
			int fd = open("/dev/null", O_WRONLY);

			dup2(fd, 2);
			close(fd);
		}
		alarm(30);
		child_run(seed, gen, nops);
	}
	if (waitpid(pid, &st, 0) != pid) {
		perror("waitpid");
		exit(2);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 100 + WTERMSIG(st);
}

/* ----------------------------------------------------------- shrinking */

static struct op saved[MAXOPS];

/* Replays LOG's first count ops: the failure's signature, or 0. */
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

/* Drops ops while the failure (same code) stays; leaves them in LOG. */
static int shrink(int code)
{
	int n = LOG->failed_at >= 0 ? LOG->failed_at + 1 : LOG->count;
	int trials = 0;

	memcpy(saved, LOG->ops, sizeof(struct op) * n);
	for (int chunk = n / 2 > 0 ? n / 2 : 1; chunk >= 1;
	     chunk = chunk > 1 ? chunk / 2 : 0) {
		for (int i = 0; i + chunk <= n && trials < 3000;) {
			int m = 0, rc;

			for (int j = 0; j < n; j++)
				if (j < i || j >= i + chunk)
					LOG->ops[m++] = saved[j];
			trials++;
			rc = replay(m, 1);
			if (rc == code) {
				int f = LOG->failed_at;

				n = f >= 0 && f < m ? f + 1 : m;
				memcpy(saved, LOG->ops, sizeof(struct op) * n);
			} else {
				i += chunk;
			}
		}
	}
	/* Ops that did not run (their object is never made) go too. */
	memcpy(LOG->ops, saved, sizeof(struct op) * n);
	LOG->count = n;
	if (replay(n, 1) == code) {
		int m = 0;

		for (int j = 0; j < n; j++)
			if (LOG->ran[j] || j == n - 1)
				LOG->ops[m++] = saved[j];
		if (replay(m, 1) == code)
			n = m;
		else
			memcpy(LOG->ops, saved, sizeof(struct op) * n);
	}
	memcpy(saved, LOG->ops, sizeof(struct op) * n);
	LOG->count = n;
	return n;
}

static int noshrink;

/* 0: reproduced (and shrunk), 1: the recorded ops pass on replay. */
static int report(uint64_t seed, int code)
{
	int n, rc, sig = LOG->sig ? LOG->sig : code;
	char b[200];

	cur_seed = seed;
	if (fz_mode)
		fprintf(stderr, "FAIL libFuzzer input (code %d)\n", code);
	else
		fprintf(stderr, "FAIL seed %" PRIu64 " (code %d)\n", seed,
			code);
	if (LOG->msg[0])
		fprintf(stderr, "  first run: %s\n", LOG->msg);
	if (noshrink) {
		fprintf(stderr, "    ");
		replay(LOG->count, 0);
		return 0;
	}
	/* Is it reproducible from the recorded ops? */
	memcpy(saved, LOG->ops, sizeof(struct op) * LOG->count);
	n = LOG->count;
	rc = replay(n, 1);
	if (rc != sig) {
		memcpy(LOG->ops, saved, sizeof(struct op) * n);
		rc = replay(n, 1);
	}
	if (rc != sig) {
		fprintf(stderr, "  (replay gives %d, not %d: not reproducible)\n",
			rc, sig);
		return 1;
	}
	memcpy(LOG->ops, saved, sizeof(struct op) * n);
	n = shrink(sig);
	if (fz_mode)
		fprintf(stderr, "  reproducer, %d ops:\n", n);
	else
		fprintf(stderr, "  reproducer, %d ops (seed %" PRIu64 "):\n", n,
			seed);
	for (int i = 0; i < n; i++) {
		fmt_op(b, sizeof(b), &LOG->ops[i]);
		fprintf(stderr, "    %2d  %s\n", i, b);
	}
	fprintf(stderr, "  replayed:\n    ");
	memcpy(saved, LOG->ops, sizeof(struct op) * n);
	replay(n, 0);
	memcpy(LOG->ops, saved, sizeof(struct op) * n);
	LOG->count = n;
	return 0;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
	fprintf(stderr,
		"usage: epoll-fuzz [-s FIRST_SEED] [-n SEQUENCES] [-t SECONDS]\n"
		"                  [-l OPS] [-x SEED]... [-R N] [-v] [-k]\n"
		"  -s  first seed (default 1; \"random\" picks one)\n"
		"  -n  number of sequences (seeds FIRST..FIRST+N-1)\n"
		"  -t  run for SECONDS instead (with -n: whichever first)\n"
		"  -l  ops per sequence (default 200)\n"
		"  -x  skip this seed (a known failure)\n"
		"  -v  trace every op of a single run\n"
		"  -k  keep going after a failure (default: stop at 5)\n"
		"  -S  do not shrink failures, print them as they are\n"
		"  -F  a failure its replays do not reproduce is FLAKY, not\n"
		"      failed (reported, counted apart)\n"
		"  -R  run each sequence N times in one process, in fresh\n"
		"      instances and fds each time (races); replays too\n"
		"  -X  steer around a known bug: nest, modet, close, epclose,\n"
		"      keyless,\n"
		"      all\n"
		"      (tests/fuzz/KNOWN.md)\n");
	exit(2);
}

/* -X CLASS (--avoid=CLASS in the libFuzzer build): 0, or -1 if unknown. */
static int parse_avoid(const char *name)
{
	if (!strcmp(name, "nest"))
		avoid |= AV_NEST;
	else if (!strcmp(name, "modet"))
		avoid |= AV_MODET;
	else if (!strcmp(name, "close"))
		avoid |= AV_CLOSE;
	else if (!strcmp(name, "epclose"))
		avoid |= AV_EPCLOSE;
	else if (!strcmp(name, "keyless"))
		avoid |= AV_KEYLESS;
	else if (!strcmp(name, "all"))
		avoid |= AV_NEST | AV_MODET | AV_CLOSE | AV_EPCLOSE |
			 AV_KEYLESS;
	else
		return -1;
	return 0;
}

#ifdef EPOLL_FUZZ_LIBFUZZER
/*
 * libFuzzer entry (make fuzz-libfuzzer, tests/fuzz/fuzz.mk). The input's
 * bytes are the generator's random source: the same generator, the same
 * -X rules, the same lockstep checks as the seed-driven runs. Options
 * after libFuzzer's own, which ignores those starting with "--":
 *   --avoid=CLASS   as -X CLASS (FUZZ_AVOID)
 *   --ops=N         ops per sequence at most (default 200)
 * A failure is replayed from its recorded ops in children and shrunk, as
 * in the seed-driven runs. Reproduced: the reproducer is printed and the
 * run aborts, so that libFuzzer saves the input (crash-*). Not reproduced
 * by two replays: printed as FLAKY and not counted, as -F does.
 */
static int fz_nops = 200;
static long fz_runs, fz_flaky;

static void fz_summary(void)
{
	fprintf(stderr, "epoll-libfuzzer: %ld sequences, %ld flaky (not "
			"reproducible, not counted)\n", fz_runs, fz_flaky);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	for (int i = 1; i < *argc; i++) {
		const char *a = (*argv)[i];

		if (!strncmp(a, "--avoid=", 8)) {
			if (parse_avoid(a + 8))
				usage();
		} else if (!strncmp(a, "--ops=", 6)) {
			fz_nops = atoi(a + 6);
			if (fz_nops < 1 || fz_nops > MAXOPS)
				usage();
		}
	}
	LOG = mmap(NULL, sizeof(*LOG), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (LOG == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	signal(SIGPIPE, SIG_IGN);
	atexit(fz_summary);
	fprintf(stderr, "epoll-libfuzzer: up to %d ops per input, avoid 0x%x\n",
		fz_nops, avoid);
	return 0;
}

/*
 * One sequence, in a thread of its own. Closing a ring leaves its teardown
 * to the kernel, which sends task work to every thread that used it, and a
 * kernel epoll_pwait asleep in that thread returns EINTR. In a child per
 * sequence that ends with the child; here the next sequences would be
 * hit by the teardowns of all those before (more EINTRs than the harness
 * retries). A thread's exit cuts it off from the rings it used.
 */
static void *fz_sequence(void *arg)
{
	(void)arg;
	fz_code = 0;
	if (sigsetjmp(fz_jmp, 0) == 0) {
		fz_active = 1;
		run_seq(0, 1, fz_nops);
	} else {
		/* Jumped out of fail(): the fds are still open. */
		close_all();
	}
	fz_active = 0;
	generating = 0;
	child_fini();
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pthread_t t;

	fz_data = data;
	fz_len = size;
	fz_pos = 0;
	fz_eof = 0;
	genq_n = 0;
	fail_dir = 0;
	cur_seed = 0;
	/* A failure says what it saw, even one its replays do not show. */
	quiet = 0;
	LOG->sig = 0;
	LOG->msg[0] = 0;
	fz_runs++;
	if (pthread_create(&t, NULL, fz_sequence, NULL) ||
	    pthread_join(t, NULL)) {
		fprintf(stderr, "epoll-libfuzzer: no thread for the sequence\n");
		abort();
	}
	fz_data = NULL;
	if (!fz_code)
		return 0;
	if (report(0, fz_code)) {
		fz_flaky++;
		fprintf(stderr, "FLAKY libFuzzer input: not counted\n");
		return 0;
	}
	abort();
}
#else
int main(int argc, char **argv)
{
	uint64_t first = 1, skip[64];
	long nseq = -1, secs = -1, nops = 200;
	int nskip = 0, opt, keep = 0, tolerate = 0;
	long passed = 0, failed = 0, flaky = 0;
	time_t start = time(NULL);

	while ((opt = getopt(argc, argv, "s:n:t:l:x:X:R:vkSF")) != -1) {
		switch (opt) {
		case 's':
			if (!strcmp(optarg, "random"))
				first = (uint64_t)time(NULL) * 1000003ULL +
					(uint64_t)getpid();
			else
				first = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			nseq = strtol(optarg, NULL, 0);
			break;
		case 't':
			secs = strtol(optarg, NULL, 0);
			break;
		case 'l':
			nops = strtol(optarg, NULL, 0);
			break;
		case 'x':
			if (nskip < 64)
				skip[nskip++] = strtoull(optarg, NULL, 0);
			break;
		case 'X':
			if (parse_avoid(optarg))
				usage();
			break;
		case 'R':
			repeat = strtol(optarg, NULL, 0);
			if (repeat < 1)
				usage();
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
	if (nops < 1 || nops > MAXOPS)
		usage();
	LOG = mmap(NULL, sizeof(*LOG), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (LOG == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("epoll-fuzz: seeds from %" PRIu64 ", %ld ops each\n", first,
	       nops);
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
		rc = run_one(seed, 1, (int)nops, !verbose);
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
		printf("%ld flaky (not reproducible, not counted: see "
		       "FLAKY above)\n", flaky);
	printf("%ld passed, %ld failed\n", passed, failed);
	return failed ? 1 : 0;
}
#endif /* EPOLL_FUZZ_LIBFUZZER */
