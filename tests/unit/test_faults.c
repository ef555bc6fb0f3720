/* SPDX-License-Identifier: MIT */
/*
 * Faults: the kernel saying EINTR, EBUSY or EAGAIN to io_uring_enter, a
 * failed allocation, no fds left, a full SQ, an overflowing CQ, a full SQ
 * whose submit fails (a ctl fails with that error and changes nothing, a
 * wait arms again later). After each, the instance is consistent, no
 * event is lost, and the caller gets the error epoll would give. Last, a
 * CQE the kernel dropped under an rp_loop (faults_loop): no op waits
 * forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../compat/epcs.h"
#include "../../compat/epctx.h"
#include "../../compat/epio.h"
#include "../../lib/fault.h"
#include "ringpoll_epoll.h"
#include "t_util.h"

static void t_add(int epfd, int fd, uint32_t events, uint64_t u64)
{
	struct epoll_event ev = { .events = events, .data.u64 = u64 };

	ck_assert_int_eq(rp_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev), 0);
}

/* A pipe with a byte in it, registered level-triggered. */
static int t_ready_pipe(int epfd, int p[2], uint64_t u64)
{
	t_pipe(p);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	t_add(epfd, p[0], EPOLLIN, u64);
	return p[0];
}

START_TEST(fault_enter_errors_lose_nothing)
{
	/* _i: which error the kernel gives the submitting enter. */
	static const int errs[] = { EINTR, EBUSY, EAGAIN };
	int epfd = rp_epoll_create1(0), p[2];
	struct epoll_event ev;

	int n;

	t_ready_pipe(epfd, p, 5);
	rp__fault_enter = errs[_i];
	/*
	 * The ADD's SQE stays queued. EBUSY and EAGAIN are retried inside
	 * the wait. An EINTR of the enter that only submits (the requeue's)
	 * is no sleep cut short: the wait's own enter submits what is
	 * queued; one of the enter that sleeps is the caller's, as
	 * epoll_wait's would be, and the next wait submits it. Either way
	 * nothing is lost.
	 */
	errno = 0;
	n = rp_epoll_wait(epfd, &ev, 1, 2000);
	ck_assert_int_eq(rp__fault_enter, 0);
	if (n == -1) {
		ck_assert_int_eq(errs[_i], EINTR);
		ck_assert_int_eq(errno, EINTR);
		n = rp_epoll_wait(epfd, &ev, 1, 2000);
	}
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(ev.data.u64, 5);
	/* Level-triggered: still there, the re-arm went in too. */
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(epfd);
}
END_TEST

/*
 * The kernel drops a CQE when its CQ is full and it cannot allocate an
 * overflow entry (memory, the cgroup's limit): the poll completion it
 * carried is never seen. Whatever it was (a ready fd's first report, a
 * report of an fd that became ready while watched), the wait still
 * reports it, and the fd is watched after.
 */
START_TEST(fault_dropped_cqe_loses_no_event)
{
	int epfd = rp_epoll_create1(0), p[2], q[2];
	struct epoll_event ev[4];

	/* A ready fd's first completion. */
	t_ready_pipe(epfd, p, 1);
	rp__fault_cqdrop = 1;
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 4, 2000), 1);
	ck_assert_int_eq(rp__fault_cqdrop, 0);
	ck_assert_uint_eq(ev[0].data.u64, 1);
	ck_assert_int_eq(read(p[0], ev, 1), 1);
	/* A watched fd that becomes ready. */
	t_pipe(q);
	t_add(epfd, q[0], EPOLLIN, 2);
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 4, 0), 0);
	rp__fault_cqdrop = 1;
	ck_assert_int_eq(write(q[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 4, 2000), 1);
	ck_assert_int_eq(rp__fault_cqdrop, 0);
	ck_assert_uint_eq(ev[0].data.u64, 2);
	ck_assert_int_eq(read(q[0], ev, 1), 1);
	/* Both watched on: each reported when ready again. */
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 4, 0), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 4, 2000), 1);
	ck_assert_uint_eq(ev[0].data.u64, 1);
	ck_assert_int_eq(write(q[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 4, 2000), 2);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(q[0]);
	rp_close(q[1]);
	rp_close(epfd);
}
END_TEST

/* A connected TCP pair: *srv nonblocking, as the mode takes it in. */
static void t_tcp_pair(int *srv, int *peer)
{
	struct sockaddr_storage a;
	socklen_t len;
	int lfd = t_listener(&a, &len);

	*peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(*peer, 0);
	ck_assert_int_eq(connect(*peer, (struct sockaddr *)&a, len), 0);
	*srv = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ck_assert_int_ge(*srv, 0);
	close(lfd);
}

static ssize_t t_cs_read(int fd, char *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	bool served;
	ssize_t n = rp__io_read(fd, &iov, 1, 0, &served);

	ck_assert(served);
	return n;
}

/*
 * A completion socket whose CQE the kernel drops cannot know what it lost
 * (bytes received ahead, a send's end): it must fail loudly, never read
 * short or hang. What it held before is read first, then EIO; the wait
 * reports it; its close resets the peer, who sent bytes nobody read.
 */
START_TEST(fault_dropped_cqe_fails_completion_socket)
{
	unsigned long before = atomic_load(&rp__cs_st.sockets);
	int epfd, fd, peer;
	struct epoll_event ev;
	char buf[16];

	rp__cs_on = true;
	epfd = rp_epoll_create1(0);
	t_tcp_pair(&fd, &peer);
	t_add(epfd, fd, EPOLLIN, 7);
	if (atomic_load(&rp__cs_st.sockets) == before) {
		/* No multishot recv with a buffer ring (kernel < 6.0). */
		t_skip("fault_dropped_cqe_fails_completion_socket",
		       "the completion mode declined the socket");
		goto out;
	}
	ck_assert_int_eq(write(peer, "abc", 3), 3);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 7);
	/* "abc" is the socket's; the recv that brings "def" is lost. */
	ck_assert_int_eq(write(peer, "def", 3), 3);
	usleep(20 * 1000);
	rp__fault_cqdrop = 1;
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_int_eq(rp__fault_cqdrop, 0);
	ck_assert_uint_eq(ev.data.u64, 7);
	ck_assert_uint_eq(ev.events & (EPOLLIN | EPOLLERR), EPOLLIN | EPOLLERR);
	ck_assert_int_eq(t_cs_read(fd, buf, sizeof(buf)), 3);
	ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
	ck_assert_int_eq(t_cs_read(fd, buf, sizeof(buf)), -EIO);
	/* Then as a reset socket whose error was read: the end, hung up. */
	ck_assert_int_eq(t_cs_read(fd, buf, sizeof(buf)), 0);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.events & (EPOLLHUP | EPOLLERR), EPOLLHUP);
	ck_assert_int_eq(rp_close(fd), 0);
	/* The peer is told: its "def" was never read. */
	{
		struct timeval tv = { .tv_sec = 2 };
		ssize_t n;

		ck_assert_int_eq(setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO,
					    &tv, sizeof(tv)), 0);
		n = read(peer, buf, sizeof(buf));
		ck_assert_msg(n == -1 && errno == ECONNRESET,
			      "peer read %zd (%s), not a reset", n,
			      n < 0 ? strerror(errno) : "-");
	}
out:
	close(peer);
	rp_close(epfd);
	rp__cs_on = false;
}
END_TEST

START_TEST(fault_wait_eintr_is_reported_and_recovers)
{
	int epfd = rp_epoll_create1(0), p[2];
	struct epoll_event ev;

	t_pipe(p);
	t_add(epfd, p[0], EPOLLIN, 9);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	rp__fault_wait = EINTR;
	errno = 0;
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 1000), -1);
	ck_assert_int_eq(errno, EINTR);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 9);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(epfd);
}
END_TEST

START_TEST(fault_alloc_gives_enomem_and_stays_usable)
{
	int epfd = rp_epoll_create1(0), p[2], q[2];
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };

	t_pipe(p);
	rp__fault_alloc = ENOMEM;
	errno = 0;
	ck_assert_int_eq(rp_epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev), -1);
	ck_assert_int_eq(errno, ENOMEM);
	/* Not registered: MOD says so, as the kernel would. */
	errno = 0;
	ck_assert_int_eq(rp_epoll_ctl(epfd, EPOLL_CTL_MOD, p[0], &ev), -1);
	ck_assert_int_eq(errno, ENOENT);
	/* And the next ADD works. */
	t_ready_pipe(epfd, q, 2);
	t_add(epfd, p[0], EPOLLIN, 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 2);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(q[0]);
	rp_close(q[1]);
	rp_close(epfd);
}
END_TEST

START_TEST(fault_one_fd_left_makes_a_ring_without_leak)
{
	struct rlimit old, rl;
	struct rp_epoll_stats st0, st1;
	int fds = t_count_fds(), epfd, fd, n = 0;
	int *held = calloc(64, sizeof(int));

	getrlimit(RLIMIT_NOFILE, &old);
	rl = old;
	rl.rlim_cur = (rlim_t)fds + 40;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (n < 64) {
		fd = open("/dev/null", O_RDONLY);
		if (fd < 0)
			break;
		held[n++] = fd;
	}
	ck_assert_int_ge(n, 1);
	/* No fd at all: the kernel's epoll_create1 fails as well. */
	errno = 0;
	ck_assert_int_eq(rp_epoll_create1(0), -1);
	ck_assert_int_eq(errno, EMFILE);
	/*
	 * One fd: an instance is its ring's fd and nothing else, so a ring
	 * fits (EMFILE only where the kernel's epoll gives it).
	 */
	close(held[--n]);
	ck_assert_int_eq(rp_epoll_stats(-1, &st0), 0);
	epfd = rp_epoll_create1(0);
	ck_assert_int_ge(epfd, 0);
	ck_assert(rp_epoll_is_ring(epfd));
	ck_assert_int_eq(rp_epoll_stats(-1, &st1), 0);
	ck_assert_uint_eq(st1.fallbacks - st0.fallbacks, 0);
	/* Nothing half-made stays open: that was the last fd. */
	errno = 0;
	ck_assert_int_eq(open("/dev/null", O_RDONLY), -1);
	ck_assert_int_eq(errno, EMFILE);
	rp_close(epfd);
	while (n)
		close(held[--n]);
	free(held);
	setrlimit(RLIMIT_NOFILE, &old);
}
END_TEST

START_TEST(fault_full_sq_and_overflowing_cq_lose_nothing)
{
	/*
	 * 5,000 ready fds added with no wait in between: 5,000 SQEs through
	 * a 256-entry SQ, then 5,000 completions into a 4,096-entry CQ.
	 * Every fd is reported exactly once per round.
	 */
	enum { N = 5000 };
	int epfd = rp_epoll_create1(0), (*p)[2] = calloc(N, sizeof(*p));
	char *seen = calloc(N, 1);
	struct epoll_event ev[512];
	int got = 0;

	ck_assert(t_nofile(2 * N + 200));
	for (int i = 0; i < N; i++)
		t_ready_pipe(epfd, p[i], (uint64_t)i);
	while (got < N) {
		int k = rp_epoll_wait(epfd, ev, 512, 5000);

		ck_assert_int_gt(k, 0);
		for (int j = 0; j < k; j++) {
			int i = (int)ev[j].data.u64;
			char c;

			ck_assert_int_eq(seen[i], 0);
			seen[i] = 1;
			ck_assert_int_eq(read(p[i][0], &c, 1), 1);
			got++;
		}
	}
	ck_assert_int_eq(rp_epoll_wait(epfd, ev, 512, 0), 0);
	for (int i = 0; i < N; i++) {
		rp_close(p[i][0]);
		rp_close(p[i][1]);
	}
	rp_close(epfd);
	free(p);
	free(seen);
}
END_TEST

/*
 * Fills the instance's SQ with NOPs until `leave` entries are free: the
 * next SQE past them needs a submit, which rp__fault_enter then fails
 * (as the kernel's io_uring_enter may, with EBUSY or ENOMEM). The ring is
 * the calling thread's (it waited first): SQEs go to the SQ, no backlog.
 */
static void t_fill_sq(struct rp__ep *ep, unsigned leave)
{
	ck_assert_uint_eq(ep->ring.nbacklog, 0);
	while (io_uring_sq_space_left(&ep->ring.uring) > leave) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ep->ring.uring);

		io_uring_prep_nop(sqe);
		sqe->user_data = rp__ud(RP__UD_IGNORE, 0, 0);
	}
}

static void t_ctl_fails(int epfd, int op, int fd, uint32_t events,
			uint64_t u64, int err)
{
	struct epoll_event ev = { .events = events, .data.u64 = u64 };

	errno = 0;
	ck_assert_msg(rp_epoll_ctl(epfd, op, fd, &ev) == -1,
		      "op %d events %#x: succeeded", op, (unsigned)events);
	ck_assert_int_eq(errno, err);
	/* The fault was the ctl's: its arm or remove asked for the enter. */
	ck_assert_int_eq(rp__fault_enter, 0);
}

START_TEST(fault_ctl_without_sqe_fails_and_changes_nothing)
{
	int epfd = rp_epoll_create1(0), p[2], q[2];
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 9 };
	struct rp__ep *ep;
	char c;

	t_pipe(p);
	t_pipe(q);
	/* The first wait makes this thread the ring's owner. */
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	ep = rp__ep_get(epfd);
	ck_assert_ptr_nonnull(ep);

	/* ADD: no SQE for the poll, not registered, the caller is told. */
	t_fill_sq(ep, 0);
	rp__fault_enter = EBUSY;
	t_ctl_fails(epfd, EPOLL_CTL_ADD, p[0], EPOLLIN, 1, EBUSY);
	errno = 0;
	ck_assert_int_eq(rp_epoll_ctl(epfd, EPOLL_CTL_MOD, p[0], &ev), -1);
	ck_assert_int_eq(errno, ENOENT);
	t_add(epfd, p[0], EPOLLIN, 1);
	t_add(epfd, q[0], EPOLLIN, 7);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);

	/* MOD whose remove finds no SQE: nothing changed. */
	t_fill_sq(ep, 0);
	rp__fault_enter = ENOMEM;
	t_ctl_fails(epfd, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLET, 2, ENOMEM);
	/*
	 * MOD whose remove went in but whose new poll finds no SQE: the
	 * MOD fails as a whole, the registration stays as it was (level,
	 * data 1), and its old poll is armed again by the next wait.
	 */
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0); /* SQ emptied */
	t_fill_sq(ep, 1);
	rp__fault_enter = EBUSY;
	t_ctl_fails(epfd, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLET, 3, EBUSY);
	rp__ep_lock(ep);
	ck_assert(!rp__ep_item(ep, p[0])->poll.armed);
	ck_assert(rp__ep_item(ep, p[0])->flags & RP__EPI_REARM);
	rp__ep_unlock(ep);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 1);
	ck_assert_uint_eq(ev.events, EPOLLIN);
	/* Still level-triggered. */
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 1);

	/* DEL whose remove finds no SQE: still registered. */
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0); /* armed */
	t_fill_sq(ep, 0);
	rp__fault_enter = EBUSY;
	t_ctl_fails(epfd, EPOLL_CTL_DEL, p[0], 0, 0, EBUSY);
	ck_assert_int_eq(write(p[1], "z", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 1);
	ck_assert_int_eq(rp_epoll_ctl(epfd, EPOLL_CTL_DEL, p[0], NULL), 0);
	/* The other registration saw none of it. */
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	ck_assert_int_eq(write(q[1], "y", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 7);
	rp__ep_put(ep);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(q[0]);
	rp_close(q[1]);
	rp_close(epfd);
}
END_TEST

START_TEST(fault_wait_rearm_without_sqe_is_retried)
{
	int epfd = rp_epoll_create1(0), p[2];
	struct epoll_event ev;
	struct rp__ep *ep;
	uint64_t rearms;

	t_ready_pipe(epfd, p, 4);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 4);
	ep = rp__ep_get(epfd);
	ck_assert_ptr_nonnull(ep);
	/*
	 * The level re-arm of the next wait finds the SQ full, and the
	 * enter that would empty it fails: the registration stays on the
	 * re-arm list, armed again before the wait looks. A wait that does
	 * not sleep (timeout 0) still finds the event.
	 */
	rearms = ep->st.rearms;
	t_fill_sq(ep, 0);
	rp__fault_enter = EBUSY;
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 1);
	ck_assert_uint_eq(ev.data.u64, 4);
	ck_assert_int_eq(rp__fault_enter, 0);
	/* Two tries: the one that failed, and the one that armed it. */
	ck_assert_uint_eq(ep->st.rearms - rearms, 2);
	/* And the registration goes on as before. */
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 1);
	ck_assert_uint_eq(ev.data.u64, 4);
	rp__ep_put(ep);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(epfd);
}
END_TEST

START_TEST(fault_wait_rearm_without_sqe_keeps_watching)
{
	int epfd = rp_epoll_create1(0), p[2];
	struct epoll_event ev;
	struct rp__ep *ep;
	char c;

	/*
	 * A level entry reported and then read: the next wait's re-arm
	 * finds the SQ full and the enter failing. That wait finds nothing
	 * (timeout 0), and the registration must still watch its file: the
	 * next byte is seen by a wait that sleeps.
	 */
	t_pipe(p);
	t_add(epfd, p[0], EPOLLIN, 6);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	ep = rp__ep_get(epfd);
	ck_assert_ptr_nonnull(ep);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	/* Reported and read: the level re-arm is due; make it fail. */
	t_fill_sq(ep, 0);
	rp__fault_enter = EAGAIN;
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 0), 0);
	ck_assert_int_eq(rp__fault_enter, 0);
	ck_assert_int_eq(write(p[1], "y", 1), 1);
	ck_assert_int_eq(rp_epoll_wait(epfd, &ev, 1, 2000), 1);
	ck_assert_uint_eq(ev.data.u64, 6);
	rp__ep_put(ep);
	rp_close(p[0]);
	rp_close(p[1]);
	rp_close(epfd);
}
END_TEST

/* ---- the loop (lib/loop.c): a CQE the kernel dropped ---- */

/* Requests the kernel holds in its poll table for the loop's ring. */
static int t_ring_polls(struct rp_loop *loop)
{
	struct rp_ring_info info;
	char path[64], line[256];
	bool in = false;
	int n = 0;
	FILE *f;

	rp_loop_ring_info(loop, &info);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", info.ring_fd);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "PollList:", 9))
			in = true;
		else if (in && !strncmp(line, "  op=", 5))
			n++;
		else if (in)
			break;
	}
	fclose(f);
	return n;
}

static ssize_t t_recv_fn(int fd, void *arg)
{
	ssize_t r = recv(fd, arg, 16, 0);

	return r < 0 ? -errno : r;
}

/*
 * A source waits for readiness (readiness model: rp_recv; completion
 * model: a custom op, which goes the readiness way too) and the kernel
 * drops its poll's CQE: the loop arms its poll anew and the op gets its
 * data. Another source that waited meanwhile is armed anew too, its old
 * poll removed first: one poll each, never two.
 */
START_TEST(fault_loop_dropped_poll_cqe_still_delivers)
{
	struct rp_loop *loop = t_loop(_i);
	struct t_done da = { .fd = -1 }, db = { .fd = -1 };
	char a[16] = { 0 }, b[16] = { 0 };
	int sa[2], sb[2];
	rp_source s, t;

	t_socketpair(sa);
	t_socketpair(sb);
	ck_assert_int_eq(rp_source_new(loop, sa[0], &s), 0);
	ck_assert_int_eq(rp_source_new(loop, sb[0], &t), 0);
	if (_i == RP_MODEL_READINESS) {
		ck_assert_int_eq(rp_recv(loop, s, a, 16, 0, t_done_cb, &da), 0);
		ck_assert_int_eq(rp_recv(loop, t, b, 16, 0, t_done_cb, &db), 0);
	} else {
		ck_assert_int_eq(rp_read_with(loop, s, t_recv_fn, a, t_done_cb,
					      &da), 0);
		ck_assert_int_eq(rp_read_with(loop, t, t_recv_fn, b, t_done_cb,
					      &db), 0);
	}
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	/* The wake's poll and one per source. */
	ck_assert_int_eq(t_ring_polls(loop), 3);
	rp__fault_cqdrop = 1;
	ck_assert_int_eq(write(sa[1], "a", 1), 1);
	t_run_until(loop, &da.calls, 2000);
	ck_assert_int_eq(rp__fault_cqdrop, 0);
	ck_assert_int_eq(da.calls, 1);
	ck_assert_int_eq(da.res, 1);
	ck_assert_int_eq(a[0], 'a');
	ck_assert_int_eq(db.calls, 0);
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	ck_assert_int_eq(t_ring_polls(loop), 2);
	ck_assert_int_eq(write(sb[1], "b", 1), 1);
	t_run_until(loop, &db.calls, 2000);
	ck_assert_int_eq(db.calls, 1);
	ck_assert_int_eq(db.res, 1);
	ck_assert_int_eq(b[0], 'b');
	ck_assert_int_eq(rp_source_close(loop, s), 0);
	ck_assert_int_eq(rp_source_close(loop, t), 0);
	close(sa[1]);
	close(sb[1]);
	rp_loop_free(loop);
}
END_TEST

/*
 * Completion model: the kernel drops a recv's CQE. How many bytes it
 * took is unknown: the recv fails with -EIO, never a silently wrong
 * count, and the source goes on working. A recv in flight on another
 * source, whose CQE was not the dropped one, is cancelled and submitted
 * again, and gets its data exactly.
 */
START_TEST(fault_loop_dropped_recv_cqe_fails_with_eio)
{
	struct rp_loop *loop = t_loop(RP_MODEL_COMPLETION);
	struct t_done da = { .fd = -1 }, db = { .fd = -1 };
	char a[16] = { 0 }, b[16] = { 0 };
	struct rp_stats st;
	int sa[2], sb[2];
	rp_source s, t;

	t_socketpair(sa);
	t_socketpair(sb);
	ck_assert_int_eq(rp_source_new(loop, sa[0], &s), 0);
	ck_assert_int_eq(rp_source_new(loop, sb[0], &t), 0);
	ck_assert_int_eq(rp_recv(loop, s, a, sizeof(a), 0, t_done_cb, &da), 0);
	ck_assert_int_eq(rp_recv(loop, t, b, sizeof(b), 0, t_done_cb, &db), 0);
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	rp__fault_cqdrop = 1;
	ck_assert_int_eq(write(sa[1], "a", 1), 1);
	t_run_until(loop, &da.calls, 2000);
	ck_assert_int_eq(rp__fault_cqdrop, 0);
	ck_assert_int_eq(da.calls, 1);
	ck_assert_int_eq(da.res, -EIO);
	/* The other recv is in flight again, once. */
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	ck_assert_int_eq(db.calls, 0);
	rp_loop_stats(loop, &st);
	ck_assert_uint_eq(st.ops_submitted, 3);
	ck_assert_int_eq(t_ring_polls(loop), 2);
	ck_assert_int_eq(write(sb[1], "xy", 2), 2);
	t_run_until(loop, &db.calls, 2000);
	ck_assert_int_eq(db.calls, 1);
	ck_assert_int_eq(db.res, 2);
	ck_assert_mem_eq(b, "xy", 2);
	/* The source that lost a completion still works. */
	da.calls = 0;
	ck_assert_int_eq(rp_recv(loop, s, a, sizeof(a), 0, t_done_cb, &da), 0);
	ck_assert_int_eq(write(sa[1], "z", 1), 1);
	t_run_until(loop, &da.calls, 2000);
	ck_assert_int_eq(da.calls, 1);
	ck_assert_int_eq(da.res, 1);
	ck_assert_int_eq(a[0], 'z');
	ck_assert_int_eq(rp_source_close(loop, s), 0);
	ck_assert_int_eq(rp_source_close(loop, t), 0);
	close(sa[1]);
	close(sb[1]);
	rp_loop_free(loop);
}
END_TEST

/*
 * Completion model: a source is closed with a recv in flight and the
 * kernel drops the cancelled recv's CQE. The op still ends (-EIO: what
 * it did before the cancel is unknown), the source's fd is closed after
 * its callback, and the loop frees without waiting for it (the fixture
 * checks that no fd is left).
 */
START_TEST(fault_loop_dropped_cqe_of_closed_source_frees)
{
	struct rp_loop *loop = t_loop(RP_MODEL_COMPLETION);
	struct t_done d = { .fd = -1 };
	char buf[16];
	int sv[2];
	rp_source s;

	t_socketpair(sv);
	d.fd = sv[0];
	ck_assert_int_eq(rp_source_new(loop, sv[0], &s), 0);
	ck_assert_int_eq(rp_recv(loop, s, buf, sizeof(buf), 0, t_done_cb, &d),
			 0);
	ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	ck_assert_int_eq(rp_source_close(loop, s), 0);
	rp__fault_cqdrop = 1;
	t_run_until(loop, &d.calls, 2000);
	ck_assert_int_eq(rp__fault_cqdrop, 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_eq(d.res, -EIO);
	ck_assert_int_eq(d.fd_open_at_call, 1);
	ck_assert(!t_fd_open(sv[0]));
	ck_assert_int_eq(rp_loop_run(loop), 0);
	close(sv[1]);
	rp_loop_free(loop);
}
END_TEST

/*
 * The kernel drops the CQE of the loop's wake: the wake is armed anew and
 * a later rp_loop_wake still ends a wait (without the recovery, the wake
 * stays marked pending and never writes again: the wait runs its 3 s).
 */
START_TEST(fault_loop_dropped_wake_cqe_still_wakes)
{
	struct rp_loop *loop = t_loop(_i);
	struct rp_stats st0, st1;

	rp__fault_cqdrop = 1;
	ck_assert_int_eq(rp_loop_wake(loop), 0);
	ck_assert_int_eq(rp_loop_run_once(loop, 2000), 0);
	ck_assert_int_eq(rp__fault_cqdrop, 0);
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(rp_loop_run_once(loop, 0), 0);
	rp_loop_stats(loop, &st0);
	ck_assert_int_eq(rp_loop_wake(loop), 0);
	ck_assert_int_eq(rp_loop_run_once(loop, 3000), 0);
	rp_loop_stats(loop, &st1);
	ck_assert_uint_gt(st1.cqes, st0.cqes);
	ck_assert_int_eq(t_ring_polls(loop), 1);
	rp_loop_free(loop);
}
END_TEST

Suite *t_suite_faults(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = t_tcase("faults");

	tcase_add_loop_test(tc, fault_enter_errors_lose_nothing, 0, 3);
	tcase_add_test(tc, fault_wait_eintr_is_reported_and_recovers);
	tcase_add_test(tc, fault_dropped_cqe_loses_no_event);
	tcase_add_test(tc, fault_dropped_cqe_fails_completion_socket);
	tcase_add_test(tc, fault_alloc_gives_enomem_and_stays_usable);
	tcase_add_test(tc, fault_one_fd_left_makes_a_ring_without_leak);
	tcase_add_test(tc, fault_full_sq_and_overflowing_cq_lose_nothing);
	tcase_add_test(tc, fault_ctl_without_sqe_fails_and_changes_nothing);
	tcase_add_test(tc, fault_wait_rearm_without_sqe_is_retried);
	tcase_add_test(tc, fault_wait_rearm_without_sqe_keeps_watching);
	suite_add_tcase(s, tc);
	tc = t_tcase("faults_loop");
	tcase_add_loop_test(tc, fault_loop_dropped_poll_cqe_still_delivers, 0,
			    T_MODELS);
	tcase_add_test(tc, fault_loop_dropped_recv_cqe_fails_with_eio);
	tcase_add_test(tc, fault_loop_dropped_cqe_of_closed_source_frees);
	tcase_add_loop_test(tc, fault_loop_dropped_wake_cqe_still_wakes, 0,
			    T_MODELS);
	suite_add_tcase(s, tc);
	return s;
}
