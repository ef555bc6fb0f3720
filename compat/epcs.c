/* SPDX-License-Identifier: MIT */
/*
 * Completion sockets: the state machine of one socket in the transparent
 * completion mode (see compat/epcs.h for what the mode is).
 *
 *   receive   one multishot IORING_OP_RECV per socket, its buffers taken
 *             from the instance's provided-buffer ring. Each CQE's bytes
 *             are copied into the socket's own rx buffer at once and the
 *             buffer handed back, so a slow reader never holds the ring's
 *             buffers. EOF and errors queue behind the data. Past
 *             RP__CS_RX_MAX bytes buffered the recv is cancelled, and
 *             armed again when a read drains it: the kernel's receive
 *             window is the flow control, as without us.
 *   send      a write copies into tx and returns; one IORING_OP_SEND at a
 *             time carries the bytes at tx's head (MSG_WAITALL: all or an
 *             error), so order on the socket is the order of the writes.
 *             Its completion frees them and sends what came since.
 *   readiness tcp_poll's answer computed from these (rp__cs_mask).
 *   letting go when no fd number names the socket any more, or it leaves
 *             the mode (a DEL, a second instance, its instance's close):
 *             the recv is cancelled, what tx holds still goes out, and
 *             once every request naming its slot is done the ring's
 *             reference to the file is dropped (an IORING_OP_FILES_UPDATE
 *             of -1), whose CQE frees the slot for reuse. One that left
 *             with bytes unread keeps them (an orphan once its instance
 *             let it go) until they are read.
 *
 * All of it under ep->lock; an orphan's under rp__cs_orphan_lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epctx.h"

bool rp__cs_on;
struct rp__cs_stats rp__cs_st;

/*
 * The kernel fills a provided buffer in the background, which valgrind
 * cannot see: say so, or every byte received looks uninitialised to it.
 * (A few instructions outside valgrind; nothing without its header.)
 */
#if defined(__has_include) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define RP__CS_KERNEL_WROTE(p, n) VALGRIND_MAKE_MEM_DEFINED(p, n)
#else
#define RP__CS_KERNEL_WROTE(p, n) ((void)0)
#endif

#define RP__CS_BGID 0

/* Not in liburing 2.3's header: the kernel's values (6.10+). */
#define RP__FEAT_RECVSEND_BUNDLE (1u << 14)
#define RP__RECVSEND_BUNDLE (1u << 4)
/* Bundles where the kernel has them; 0 builds the one-buffer recv (A/B). */
#ifndef RP_CS_BUNDLES
#define RP_CS_BUNDLES 1
#endif
static const bool rp__cs_bundles = RP_CS_BUNDLES;
/* The registered-file table: at most this many sockets per instance. */
#define RP__CS_SLOTS_MAX 65536u
/* Received ahead and not read: past this the recv stops. */
#define RP__CS_RX_MAX (256u * 1024)
/* A receive buffer up to this size stays with a recycled cs. */
#define RP__CS_RX_KEEP (16u * 1024)
/* The send buffer; EPOLLOUT while at most half of it is queued. */
#define RP__CS_TX_CAP (64u * 1024)

/* The interest bits the mode can answer from its buffers. */
#define RP__CS_EVENTS                                                      \
	(EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET | EPOLLONESHOT |        \
	 EPOLLERR | EPOLLHUP | EPOLLRDNORM | EPOLLWRNORM)

/*
 * A syscall of the mode's own (checks at ADD, a send around the ring, a
 * reset's linger), counted: the stats' cs_syscalls.
 */
#define RP__CS_SYSCALL(...)                                                \
	(atomic_fetch_add_explicit(&rp__cs_st.syscalls, 1,                 \
				   memory_order_relaxed),                  \
	 syscall(__VA_ARGS__))

int rp__cs_settle(struct rp__ep *ep)
{
	uint64_t before = ep->ring.enters;
	int ret = rp__ring_settle(&ep->ring);

	/* Outside a wait: counted here, as the wait counts its own. */
	ep->st.enters += ep->ring.enters - before;
	return ret;
}

/* cs structs: recycled, never freed (a lookup may race a close). */
static pthread_mutex_t rp__cs_pool_lock = PTHREAD_MUTEX_INITIALIZER;
/* Guards orphans, which have no instance lock any more. */
pthread_mutex_t rp__cs_orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rp__cs *rp__cs_pool;
static atomic_uint rp__cs_gen;

/* What FILES_UPDATE reads when it drops a slot's file. */
static const int rp__cs_nofile = -1;

static struct rp__cs *rp__cs_new(void)
{
	struct rp__cs *cs;

	pthread_mutex_lock(&rp__cs_pool_lock);
	cs = rp__cs_pool;
	if (cs)
		rp__cs_pool = cs->next_free;
	pthread_mutex_unlock(&rp__cs_pool_lock);
	if (!cs)
		cs = calloc(1, sizeof(*cs));
	return cs;
}

static void rp__cs_recycle(struct rp__cs *cs)
{
	atomic_store(&cs->live, false);
	/*
	 * Its buffers stay with it for the next socket: freed and made
	 * again, 10,000 connections' 64 KiB send buffers landed on other
	 * pages each time (the soak's RSS grew by 30 MB a round). A large
	 * receive buffer (a slow reader's) goes.
	 */
	if (cs->rx_cap > RP__CS_RX_KEEP) {
		free(cs->rx);
		cs->rx = NULL;
		cs->rx_cap = 0;
	}
	pthread_mutex_lock(&rp__cs_pool_lock);
	cs->next_free = rp__cs_pool;
	rp__cs_pool = cs;
	pthread_mutex_unlock(&rp__cs_pool_lock);
}

/*
 * The instance's file table and buffer ring, made by the first socket.
 * Registration is the ring owner's (SINGLE_ISSUER: another thread gets
 * -EEXIST, then this socket is declined, and a later one tries again).
 * The table is registered sparse with the raw syscall: liburing's helper
 * raises RLIMIT_NOFILE on EMFILE, which the host would see.
 */
static int rp__cs_setup(struct rp__ep *ep)
{
	struct rp__cs_set *set = &ep->cs;
	struct io_uring_rsrc_register reg = { .flags =
						      IORING_RSRC_REGISTER_SPARSE };
	struct io_uring_buf_reg breg = { 0 };
	struct rlimit rl;
	uint32_t n = RP__CS_SLOTS_MAX;
	void *br = NULL;
	int ret;

	if (set->nslots)
		return 0;
	if (set->broken)
		return -EOPNOTSUPP;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n)
		n = (uint32_t)rl.rlim_cur;
	reg.nr = n;
	ret = (int)RP__CS_SYSCALL(SYS_io_uring_register, ep->ring.uring.ring_fd,
			   IORING_REGISTER_FILES2, &reg, sizeof(reg));
	if (ret < 0) {
		ret = -errno;
		if (ret != -EEXIST)
			set->broken = true;
		return ret;
	}
	set->by_slot = calloc(n, sizeof(*set->by_slot));
	set->free_slots = malloc(n * sizeof(*set->free_slots));
	set->bufs = malloc((size_t)RP__CS_NBUF * RP__CS_BUFSZ);
	if (posix_memalign(&br, 4096, RP__CS_NBUF * sizeof(struct io_uring_buf)))
		br = NULL;
	if (!set->by_slot || !set->free_slots || !set->bufs || !br) {
		ret = -ENOMEM;
		goto fail;
	}
	set->br = br;
	io_uring_buf_ring_init(set->br);
	breg.ring_addr = (uintptr_t)br;
	breg.ring_entries = RP__CS_NBUF;
	breg.bgid = RP__CS_BGID;
	atomic_fetch_add(&rp__cs_st.syscalls, 1);
	ret = io_uring_register_buf_ring(&ep->ring.uring, &breg, 0);
	if (ret < 0)
		goto fail;
	for (uint32_t i = 0; i < RP__CS_NBUF; i++) {
		io_uring_buf_ring_add(set->br, set->bufs + i * RP__CS_BUFSZ,
				      RP__CS_BUFSZ, (unsigned short)i,
				      io_uring_buf_ring_mask(RP__CS_NBUF),
				      (int)i);
		set->at[i] = i;
		set->placed[i] = (uint64_t)i << 16 | i;
	}
	io_uring_buf_ring_advance(set->br, (int)RP__CS_NBUF);
	set->add_pos = RP__CS_NBUF;
	set->bundle = rp__cs_bundles &&
		      (ep->ring.uring.features & RP__FEAT_RECVSEND_BUNDLE);
	/* Low slots first: the kernel's table is walked by index. */
	for (uint32_t i = 0; i < n; i++)
		set->free_slots[i] = n - 1 - i;
	set->nfree = n;
	set->nslots = n;
	return 0;
fail:
	(void)RP__CS_SYSCALL(SYS_io_uring_register, ep->ring.uring.ring_fd,
		      IORING_UNREGISTER_FILES, NULL, 0);
	free(set->by_slot);
	free(set->free_slots);
	free(set->bufs);
	free(br);
	set->by_slot = NULL;
	set->free_slots = NULL;
	set->bufs = NULL;
	set->br = NULL;
	set->broken = true;
	return ret;
}

static void rp__cs_buf_return(struct rp__cs_set *set, unsigned bid)
{
	io_uring_buf_ring_add(set->br, set->bufs + bid * RP__CS_BUFSZ,
			      RP__CS_BUFSZ, (unsigned short)bid,
			      io_uring_buf_ring_mask(RP__CS_NBUF), 0);
	io_uring_buf_ring_advance(set->br, 1);
	set->at[bid] = set->add_pos;
	set->placed[set->add_pos % RP__CS_HIST] =
		(uint64_t)set->add_pos << 16 | bid;
	set->add_pos++;
}

/* An SQE for cs, or NULL: then set->retry, and the next wait tries again. */
static struct io_uring_sqe *rp__cs_sqe(struct rp__ep *ep)
{
	return rp__ring_sqe(&ep->ring, NULL);
}

static void rp__cs_recv_arm(struct rp__ep *ep, struct rp__cs *cs)
{
	struct io_uring_sqe *sqe;

	if (cs->recv_armed || cs->recv_stopped || cs->rx_eof || cs->closed ||
	    cs->leaving)
		return;
	sqe = rp__cs_sqe(ep);
	if (!sqe)
		return;
	io_uring_prep_recv(sqe, (int)cs->slot, NULL, 0, 0);
	sqe->ioprio |= IORING_RECV_MULTISHOT;
	if (ep->cs.bundle)
		sqe->ioprio |= RP__RECVSEND_BUNDLE;
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
	sqe->buf_group = RP__CS_BGID;
	sqe->user_data = rp__ud(RP__UD_CS_RECV, cs->slot, cs->gen);
	cs->recv_armed = true;
	cs->recv_sq = ep->ring.uring.sq.sqe_tail;
}

bool rp__cs_recv_queued(struct rp__ep *ep, const struct rp__cs *cs)
{
	unsigned head = io_uring_smp_load_acquire(ep->ring.uring.sq.khead);

	return cs->recv_armed && (int32_t)(cs->recv_sq - head) > 0;
}

/* Queues the cancel of cs's request of this kind; false without an SQE. */
static bool rp__cs_cancel(struct rp__ep *ep, struct rp__cs *cs, unsigned kind)
{
	struct io_uring_sqe *sqe = rp__cs_sqe(ep);

	if (!sqe)
		return false;
	io_uring_prep_cancel64(sqe, rp__ud(kind, cs->slot, cs->gen), 0);
	sqe->user_data = rp__ud(RP__UD_IGNORE, 0, 0);
	return true;
}

static void rp__cs_recv_stop(struct rp__ep *ep, struct rp__cs *cs)
{
	if (cs->recv_armed && !cs->recv_stopped &&
	    rp__cs_cancel(ep, cs, RP__UD_CS_RECV))
		cs->recv_stopped = true;
}

/*
 * Receives ahead again once a reader made room after the cap stopped it.
 * Called by reads and by the stopped recv's last CQE: whichever comes
 * second finds both conditions.
 */
static void rp__cs_recv_resume(struct rp__ep *ep, struct rp__cs *cs)
{
	if (cs->recv_stopped && !cs->recv_armed && !cs->leaving &&
	    cs->rx_len < RP__CS_RX_MAX / 2) {
		cs->recv_stopped = false;
		rp__cs_recv_arm(ep, cs);
	}
}

/* Cancels the send in flight (leaving): its CQE says how much went. */
static void rp__cs_send_stop(struct rp__ep *ep, struct rp__cs *cs)
{
	if (cs->tx_out)
		(void)rp__cs_cancel(ep, cs, RP__UD_CS_SEND);
}

/*
 * The last request of a closed socket, or of one that left the mode, is
 * done: the ring lets the file go (a socket closed behind our back, as
 * libuv closes after its DEL, then sends its FIN). A closed one is
 * recycled; one that left stays an orphan, its unread bytes read first.
 */
static void rp__cs_finish(struct rp__ep *ep, struct rp__cs *cs)
{
	struct io_uring_sqe *sqe;

	/* Once: a send that finds nothing left finishes it too. */
	if (cs->slot >= ep->cs.nslots || ep->cs.by_slot[cs->slot] != cs)
		return;
	if (!(cs->closed || cs->leaving) || cs->recv_armed || cs->tx_out ||
	    (cs->tx_len && !cs->dead) || cs->shut_out ||
	    (cs->shut_wr && !cs->shut_queued && !cs->dead))
		return;
	/*
	 * One that left with bytes unread keeps its place until they are
	 * read: an ADD again (libevent's DEL and ADD) takes it back whole.
	 */
	if (!cs->closed && cs->rx_len)
		return;
	/*
	 * Every request that names the slot must be done before the slot
	 * names another socket: the kernel looks a fixed file up when it
	 * issues a request, and one it runs in its workers (a shutdown, a
	 * poll retried) is issued late.
	 */
	if (cs->out_polled) {
		if (!cs->poll_cancelled &&
		    rp__cs_cancel(ep, cs, RP__UD_CS_POLL))
			cs->poll_cancelled = true;
		return;
	}
	sqe = rp__cs_sqe(ep);
	if (!sqe)
		return; /* tried again at the socket's next CQE or wait */
	io_uring_prep_files_update(sqe, (int *)&rp__cs_nofile, 1,
				   (int)cs->slot);
	sqe->user_data = rp__ud(RP__UD_CS_FREE, cs->slot, cs->gen);
	ep->cs.by_slot[cs->slot] = NULL;
	ep->cs.nsock--;
	if (cs->closed) {
		rp__cs_recycle(cs);
		return;
	}
	/* A registration that reported from it polls the socket now. */
	if (cs->registered) {
		rp__ep_cs_gone(ep, cs);
		cs->registered = false;
	}
	pthread_mutex_lock(&rp__cs_orphan_lock);
	atomic_store(&cs->orphan, true);
	atomic_store(&cs->live, false);
	pthread_mutex_unlock(&rp__cs_orphan_lock);
}

static void rp__cs_send_next(struct rp__ep *ep, struct rp__cs *cs)
{
	struct io_uring_sqe *sqe;

	if (cs->tx_out || cs->dead || cs->released)
		return;
	if (!cs->tx_len) {
		cs->tx_off = 0;
		if (cs->shut_wr && !cs->shut_queued) {
			sqe = rp__cs_sqe(ep);
			if (!sqe)
				return;
			io_uring_prep_shutdown(sqe, (int)cs->slot, SHUT_WR);
			sqe->flags |= IOSQE_FIXED_FILE;
			sqe->user_data = rp__ud(RP__UD_CS_SHUT, cs->slot,
						cs->gen);
			cs->shut_queued = true;
			cs->shut_out = true;
			return;
		}
		rp__cs_finish(ep, cs);
		return;
	}
	sqe = rp__cs_sqe(ep);
	if (!sqe)
		return;
	io_uring_prep_send(sqe, (int)cs->slot, cs->tx + cs->tx_off, cs->tx_len,
			   MSG_WAITALL | MSG_NOSIGNAL);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = rp__ud(RP__UD_CS_SEND, cs->slot, cs->gen);
	cs->tx_out = cs->tx_len;
	cs->send_sq = ep->ring.uring.sq.sqe_tail;
}

struct rp__cs *rp__cs_adopt(struct rp__ep *ep, int fd, uint32_t events,
			    ino_t ino)
{
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	int fl, lowat = 1;
	struct rp__cs *cs;
	uint32_t slot;

	if (events & ~RP__CS_EVENTS)
		goto decline;
	/*
	 * A TCP connection whose sending side is open: established, or shut
	 * by the peer only. A listening or connecting socket is out (a
	 * connect in progress is reported by EPOLLOUT, which the mode would
	 * answer from its buffer), and so is one shut for writing already
	 * (its writes fail, EPIPE). TCP only: a unix socket may carry fds
	 * (SCM_RIGHTS), which a recv without a control buffer would drop.
	 * The syscalls, not the C library's names: under the preload
	 * getsockopt is ours, and would look the number up again, with
	 * this instance's lock held.
	 */
	if (RP__CS_SYSCALL(SYS_getsockopt, fd, IPPROTO_TCP, TCP_INFO, &ti,
			   &tl) < 0 ||
	    tl < offsetof(struct tcp_info, tcpi_retransmits) ||
	    (ti.tcpi_state != TCP_ESTABLISHED &&
	     ti.tcpi_state != TCP_CLOSE_WAIT))
		goto decline;
	/* The syscall: under the preload fcntl is ours. */
	fl = (int)RP__CS_SYSCALL(SYS_fcntl, fd, F_GETFL);
	if (fl < 0 || !(fl & O_NONBLOCK))
		goto decline;
	/*
	 * A low mark (inherited from the listener) would hold the recv
	 * back until the kernel alone has that many bytes, not counting
	 * ours: such a socket stays plain. One set later is ours to keep
	 * (rp__io_lowat).
	 */
	tl = sizeof(lowat);
	if (RP__CS_SYSCALL(SYS_getsockopt, fd, SOL_SOCKET, SO_RCVLOWAT, &lowat,
			   &tl) < 0 ||
	    lowat > 1)
		goto decline;
	if (!ep->cs.nslots)
		rp__ep_cs_ring(ep);
	if (rp__cs_setup(ep) < 0 || !ep->cs.nfree)
		goto decline;
	slot = ep->cs.free_slots[--ep->cs.nfree];
	atomic_fetch_add(&rp__cs_st.syscalls, 1);
	if (io_uring_register_files_update(&ep->ring.uring, slot, &fd, 1) != 1) {
		ep->cs.free_slots[ep->cs.nfree++] = slot;
		goto decline;
	}
	cs = rp__cs_new();
	if (!cs) {
		(void)io_uring_register_files_update(&ep->ring.uring, slot,
						     (int *)&rp__cs_nofile, 1);
		ep->cs.free_slots[ep->cs.nfree++] = slot;
		goto decline;
	}
	{
		/* Its buffers, kept from a socket before (rp__cs_recycle). */
		char *rx = cs->rx, *tx = cs->tx;
		size_t rx_cap = cs->rx_cap;

		memset(&cs->slot, 0,
		       sizeof(*cs) - offsetof(struct rp__cs, slot));
		cs->rx = rx;
		cs->rx_cap = rx_cap;
		cs->tx = tx;
	}
	atomic_store(&cs->ep, ep);
	cs->slot = slot;
	cs->gen = atomic_fetch_add(&rp__cs_gen, 1) + 1;
	cs->fd = fd;
	cs->ino = ino;
	cs->nfds = 1;
	cs->lowat = lowat > 0 ? (uint32_t)lowat : 1;
	cs->registered = true;
	atomic_store(&cs->live, true);
	ep->cs.by_slot[slot] = cs;
	ep->cs.nsock++;
	rp__cs_recv_arm(ep, cs);
	atomic_fetch_add(&rp__cs_st.sockets, 1);
	return cs;
decline:
	atomic_fetch_add(&rp__cs_st.declined, 1);
	return NULL;
}

void rp__cs_unadopt(struct rp__ep *ep, struct rp__cs *cs)
{
	cs->registered = false;
	rp__cs_put_fd(cs);
	(void)ep;
}

uint32_t rp__cs_mask(const struct rp__cs *cs)
{
	uint32_t m = 0;

	if (cs->rx_len >= cs->lowat || cs->rx_eof || cs->err)
		m |= EPOLLIN | EPOLLRDNORM;
	if (cs->rx_eof)
		m |= EPOLLRDHUP;
	/* As tcp_poll: a shut send side is writable (the write fails). */
	if (cs->dead || cs->shut_wr ||
	    (cs->tx_len <= RP__CS_TX_CAP / 2 && !cs->kfull))
		m |= EPOLLOUT | EPOLLWRNORM;
	if (cs->err)
		m |= EPOLLERR;
	if ((cs->rx_eof && cs->shut_wr) || cs->dead)
		m |= EPOLLHUP;
	return m;
}

/* Appends n bytes to rx; false if there is no memory for them. */
static bool rp__cs_rx_put(struct rp__cs *cs, const char *p, size_t n)
{
	if (cs->rx_off + cs->rx_len + n > cs->rx_cap) {
		if (cs->rx_off) {
			memmove(cs->rx, cs->rx + cs->rx_off, cs->rx_len);
			cs->rx_off = 0;
		}
		if (cs->rx_len + n > cs->rx_cap) {
			size_t cap = cs->rx_cap ? cs->rx_cap * 2 : 4096;
			char *rx;

			while (cap < cs->rx_len + n)
				cap *= 2;
			rx = realloc(cs->rx, cap);
			if (!rx)
				return false;
			cs->rx = rx;
			cs->rx_cap = cap;
		}
	}
	memcpy(cs->rx + cs->rx_off + cs->rx_len, p, n);
	cs->rx_len += n;
	return true;
}

/*
 * The buffers a recv CQE filled (one, or a bundle's several), their bytes
 * appended to cs's (NULL: dropped, a socket let go since), each handed
 * back to the ring. 0, or -ENOMEM if the bytes could not be kept, -EIO
 * if a bundle's places are not known any more (never wrong bytes).
 */
static int rp__cs_bufs_take(struct rp__cs_set *set, struct rp__cs *cs,
			    const struct io_uring_cqe *cqe)
{
	unsigned bid = (cqe->flags >> IORING_CQE_BUFFER_SHIFT) % RP__CS_NBUF;
	size_t left = cqe->res > 0 ? (size_t)cqe->res : 0;
	uint32_t pos = set->at[bid];
	int ret = 0;

	for (uint32_t i = 0;; i++) {
		size_t k = left < RP__CS_BUFSZ ? left : RP__CS_BUFSZ;

		if (i) {
			uint64_t ent = set->placed[(pos + i) % RP__CS_HIST];

			if ((uint32_t)(ent >> 16) != pos + i)
				return -EIO;
			bid = (unsigned)(ent & 0xffff);
		}
		if (k)
			RP__CS_KERNEL_WROTE(set->bufs + bid * RP__CS_BUFSZ, k);
		if (k && cs && !rp__cs_rx_put(cs, set->bufs + bid * RP__CS_BUFSZ,
					      k))
			ret = -ENOMEM;
		rp__cs_buf_return(set, bid);
		left -= k;
		if (!left || !set->bundle)
			return ret;
	}
}

static uint32_t rp__cs_recv_cqe(struct rp__ep *ep, struct rp__cs *cs,
				const struct io_uring_cqe *cqe)
{
	uint32_t bits = 0;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		/*
		 * No memory to keep the bytes: the socket fails as a
		 * socket whose kernel ran out would, never silently.
		 */
		int err = rp__cs_bufs_take(&ep->cs, cs, cqe);

		if (err && !cs->err)
			cs->err = err;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE))
		cs->recv_armed = false;
	if (cqe->res > 0) {
		atomic_fetch_add(&rp__cs_st.rx_bytes, (unsigned long)cqe->res);
		bits = EPOLLIN | EPOLLRDNORM;
		if (cs->rx_len >= RP__CS_RX_MAX)
			rp__cs_recv_stop(ep, cs);
	} else if (cqe->res == 0) {
		cs->rx_eof = true;
		bits = rp__cs_mask(cs);
	} else if (cqe->res == -EINVAL && ep->cs.bundle) {
		/* A kernel that has bundles but not with multishot: without. */
		ep->cs.bundle = false;
	} else if (cqe->res == -ENOBUFS || cqe->res == -ECANCELED) {
		/*
		 * Out of buffers (handed back above: armed again below), or
		 * cancelled: by us (recv_stopped, closed: not armed again),
		 * or by the kernel when the thread that submitted it exited
		 * (the socket lives on: armed again).
		 */
	} else {
		/* A reset, a timeout: the error once, then end of file. */
		if (!cs->err)
			cs->err = cqe->res;
		cs->rx_eof = true;
		cs->dead = true;
		bits = rp__cs_mask(cs);
	}
	if (!cs->recv_armed) {
		if (cs->closed || cs->leaving)
			rp__cs_finish(ep, cs);
		else if (cs->recv_stopped)
			rp__cs_recv_resume(ep, cs);
		else
			rp__cs_recv_arm(ep, cs);
	}
	return bits;
}

static uint32_t rp__cs_send_cqe(struct rp__ep *ep, struct rp__cs *cs,
				const struct io_uring_cqe *cqe)
{
	size_t out = cs->tx_out;

	cs->tx_out = 0;
	if (cqe->res >= 0) {
		size_t done = (size_t)cqe->res < out ? (size_t)cqe->res : out;

		cs->tx_off += done;
		cs->tx_len -= done;
		atomic_fetch_add(&rp__cs_st.tx_bytes, done);
	} else if (cqe->res != -ECANCELED) {
		/*
		 * The kernel's asynchronous error: the next call on the
		 * socket returns it; nothing more can go out.
		 */
		if (!cs->err)
			cs->err = cqe->res;
		cs->dead = true;
		cs->tx_len = 0;
	}
	rp__cs_send_next(ep, cs);
	return rp__cs_mask(cs) & (EPOLLOUT | EPOLLWRNORM | EPOLLERR |
				  EPOLLHUP);
}

struct rp__cs *rp__cs_cqe(struct rp__ep *ep, const struct io_uring_cqe *cqe,
			  uint32_t *bits)
{
	uint32_t slot = rp__ud_slot(cqe->user_data);
	struct rp__cs *cs = slot < ep->cs.nslots ? ep->cs.by_slot[slot] : NULL;

	*bits = 0;
	if (rp__ud_kind(cqe->user_data) == RP__UD_CS_FREE) {
		/* The file is let go: the slot may take another. */
		if (slot < ep->cs.nslots)
			ep->cs.free_slots[ep->cs.nfree++] = slot;
		return NULL;
	}
	if (!cs || cs->gen != rp__ud_gen(cqe->user_data)) {
		/* A buffer of a socket since let go still comes back. */
		if (cqe->flags & IORING_CQE_F_BUFFER)
			(void)rp__cs_bufs_take(&ep->cs, NULL, cqe);
		return NULL;
	}
	if (rp__ud_kind(cqe->user_data) == RP__UD_CS_RECV) {
		*bits = rp__cs_recv_cqe(ep, cs, cqe);
	} else if (rp__ud_kind(cqe->user_data) == RP__UD_CS_POLL) {
		/* Room in the socket (or an error): writable again. */
		cs->out_polled = false;
		cs->poll_cancelled = false;
		cs->kfull = false;
		*bits = rp__cs_mask(cs) & (EPOLLOUT | EPOLLWRNORM | EPOLLERR |
					   EPOLLHUP);
		rp__cs_finish(ep, cs);
	} else if (rp__ud_kind(cqe->user_data) == RP__UD_CS_SHUT) {
		cs->shut_out = false;
		rp__cs_finish(ep, cs);
	} else {
		*bits = rp__cs_send_cqe(ep, cs, cqe);
	}
	if (!atomic_load_explicit(&cs->live, memory_order_relaxed))
		return NULL; /* finished and recycled */
	return cs->registered ? cs : NULL;
}

static size_t rp__iov_len(const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Are the pages of [a, a + k) in tab (rp__cs_set's pages_r, pages_w)? */
static bool rp__cs_pages_known(const uint64_t *tab, uintptr_t a, size_t k)
{
	for (uint64_t p = a >> 12; p <= (a + k - 1) >> 12; p++)
		if (tab[p % RP__CS_PAGES] != p + 1)
			return false;
	return true;
}

static void rp__cs_pages_learn(uint64_t *tab, uintptr_t a, size_t k)
{
	if (((a + k - 1) >> 12) - (a >> 12) >= RP__CS_PAGES)
		return;
	for (uint64_t p = a >> 12; p <= (a + k - 1) >> 12; p++)
		tab[p % RP__CS_PAGES] = p + 1;
}

/*
 * Copies k (> 0) bytes between our buffer and the caller's memory (to
 * it: out), false if the kernel would fault there: a bad pointer is
 * EFAULT, as the kernel's own copy gives. Pages not known good yet are
 * copied by the kernel itself (process_vm_readv from this process:
 * exactly those bytes, no probe around them), and remembered; where that
 * call is not allowed (seccomp), probed, then copied. What the program
 * unmaps later is not seen (as rp__mem_user).
 */
static bool rp__cs_copy(struct rp__cs_set *set, struct rp__mem *mem,
			void *dst, const void *src, size_t k, bool out)
{
	const void *user = out ? dst : src;
	uintptr_t a = (uintptr_t)user;
	struct iovec l = { dst, k }, r = { (void *)src, k };
	int saved = errno;
	ssize_t n;

	if (rp__cs_pages_known(set->pages_w, a, k) ||
	    (!out && rp__cs_pages_known(set->pages_r, a, k))) {
		memcpy(dst, src, k);
		return true;
	}
	n = RP__CS_SYSCALL(SYS_process_vm_readv, getpid(), &l, 1UL, &r, 1UL,
			   0UL);
	if (n == (ssize_t)k) {
		rp__cs_pages_learn(out ? set->pages_w : set->pages_r, a, k);
		return true;
	}
	if (n < 0 && errno == EFAULT) {
		errno = saved;
		return false;
	}
	errno = saved;
	/* The probe of a write writes 4 bytes: short ones only read. */
	if (rp__mem_user(mem, user, k, out && k >= 4) < a + k)
		return false;
	memcpy(dst, src, k);
	return true;
}

/* The memory of orphans' callers (no instance to remember it in). */
static struct rp__mem rp__cs_orphan_mem;
static struct rp__cs_set rp__cs_orphan_set;

ssize_t rp__cs_read(struct rp__cs *cs, struct rp__ep *ep,
		    const struct iovec *iov, int n, int flags)
{
	struct rp__mem *mem = ep ? &ep->mem : &rp__cs_orphan_mem;
	struct rp__cs_set *set = ep ? &ep->cs : &rp__cs_orphan_set;
	size_t got = 0;

	if (!cs->rx_len) {
		if (cs->err) {
			int e = cs->err;

			if (!(flags & MSG_PEEK))
				cs->err = 0;
			return e;
		}
		if (cs->rx_eof)
			return 0;
		/*
		 * Left the mode (a DEL, its instance closed) and nothing of
		 * ours is left to read or on its way: the kernel's socket.
		 */
		if ((cs->leaving || cs->orphan) && !cs->recv_armed)
			return RP__CS_PASS;
		return -EAGAIN;
	}
	for (int i = 0; i < n && got < cs->rx_len; i++) {
		size_t k = iov[i].iov_len;

		if (k > cs->rx_len - got)
			k = cs->rx_len - got;
		if (!k)
			continue;
		if (!rp__cs_copy(set, mem, iov[i].iov_base,
				 cs->rx + cs->rx_off + got, k, true)) {
			if (!got)
				return -EFAULT;
			break;
		}
		got += k;
	}
	if (!(flags & MSG_PEEK)) {
		cs->rx_off += got;
		cs->rx_len -= got;
		if (!cs->rx_len)
			cs->rx_off = 0;
		if (ep) {
			rp__cs_recv_resume(ep, cs);
			if (!cs->rx_len && cs->leaving)
				rp__cs_finish(ep, cs);
		} else if (!cs->rx_len && cs->carry_fd1) {
			/* Read: its registration is the socket's again. */
			rp__cs_uncarry(cs, true);
		}
	}
	return (ssize_t)got;
}

/*
 * An orphan's bytes still to send, handed to the kernel's socket by the
 * next call on it: 0 when none are left, -EAGAIN while some are.
 */
static int rp__cs_orphan_flush(struct rp__cs *cs, int fd)
{
	while (cs->tx_len) {
		ssize_t r = RP__CS_SYSCALL(SYS_sendto, fd, cs->tx + cs->tx_off,
				    cs->tx_len, MSG_DONTWAIT | MSG_NOSIGNAL,
				    NULL, 0);

		if (r < 0)
			return errno == EINTR ? -EAGAIN : -errno;
		cs->tx_off += (size_t)r;
		cs->tx_len -= (size_t)r;
	}
	cs->tx_off = 0;
	/*
	 * A shutdown that waited for them, or that the ring, gone now, may
	 * not have run: again is harmless.
	 */
	if (cs->shut_wr && !cs->shut_done) {
		cs->shut_done = true;
		(void)RP__CS_SYSCALL(SYS_shutdown, fd, SHUT_WR);
	}
	return 0;
}

ssize_t rp__cs_write(struct rp__cs *cs, struct rp__ep *ep, int fd,
		     const struct iovec *iov, int n, int flags)
{
	size_t want = rp__iov_len(iov, n), put = 0, room;

	if (cs->err) {
		int e = cs->err;

		cs->err = 0;
		return e;
	}
	if (!ep) {
		int ret = rp__cs_orphan_flush(cs, fd);

		if (ret < 0)
			return ret;
		return cs->dead || cs->shut_wr ? -EPIPE : RP__CS_PASS;
	}
	if (cs->dead || cs->shut_wr)
		return -EPIPE;
	/* Left the mode: once ours are out, the kernel's socket. */
	if (cs->leaving && !cs->tx_len)
		return RP__CS_PASS;
	if (!want)
		return 0;
	/*
	 * A thread that cannot submit (the ring is another's, or nobody's
	 * before the first wait) would leave the bytes until the owner's
	 * next enter: with nothing of ours queued ahead, the kernel takes
	 * them now, in order.
	 */
	if (!cs->tx_len && rp__ring_own(&ep->ring, false) < 0) {
		struct msghdr m = { .msg_iov = (struct iovec *)iov,
				    .msg_iovlen = (size_t)n };
		ssize_t ret = RP__CS_SYSCALL(SYS_sendmsg, fd, &m,
				      flags | MSG_DONTWAIT | MSG_NOSIGNAL);

		return ret < 0 ? -errno : ret;
	}
	if (!cs->tx) {
		cs->tx = malloc(RP__CS_TX_CAP);
		if (!cs->tx)
			return -ENOMEM;
	}
	/* Nothing in flight: the queued bytes may move to the front. */
	if (!cs->tx_out && cs->tx_off) {
		memmove(cs->tx, cs->tx + cs->tx_off, cs->tx_len);
		cs->tx_off = 0;
	}
	room = RP__CS_TX_CAP - cs->tx_off - cs->tx_len;
	if (!room)
		return -EAGAIN;
	for (int i = 0; i < n && put < room; i++) {
		size_t k = iov[i].iov_len;

		if (k > room - put)
			k = room - put;
		if (!k)
			continue;
		if (!rp__cs_copy(&ep->cs, &ep->mem,
				 cs->tx + cs->tx_off + cs->tx_len + put,
				 iov[i].iov_base, k, false)) {
			if (!put)
				return -EFAULT;
			break;
		}
		put += k;
	}
	/* Appended behind a send in flight: it goes with the next. */
	cs->tx_len += put;
	rp__cs_send_next(ep, cs);
	return (ssize_t)put;
}

size_t rp__cs_buffered(const struct rp__cs *cs)
{
	return cs->rx_len;
}

int rp__cs_shutdown(struct rp__cs *cs, int how, int fd)
{
	struct rp__ep *ep = atomic_load(&cs->ep);

	/*
	 * The receive side is the kernel's to shut: the recv then ends
	 * with end of file, after what was buffered.
	 */
	if (how == SHUT_RD || how == SHUT_RDWR) {
		if (RP__CS_SYSCALL(SYS_shutdown, fd, SHUT_RD) < 0)
			return -errno;
	}
	if (how == SHUT_WR || how == SHUT_RDWR) {
		/*
		 * The FIN goes after every byte written before it: at once
		 * when nothing of ours is queued, else after the last send.
		 */
		if (!cs->tx_len && !cs->tx_out && !cs->shut_wr) {
			if (RP__CS_SYSCALL(SYS_shutdown, fd, SHUT_WR) < 0) {
				int e = -errno;

				/*
				 * Reset by the peer (a send of ours met its
				 * close; the recv ended at its FIN first and
				 * never saw the reset): nothing goes out any
				 * more, and a write is EPIPE, as the
				 * kernel's.
				 */
				if (e == -ENOTCONN)
					cs->dead = true;
				return e;
			}
			cs->shut_queued = true;
			cs->shut_done = true;
		}
		cs->shut_wr = true;
		rp__cs_send_next(ep, cs);
	}
	return 0;
}

/*
 * The owner submits what is queued and runs the deferred completions
 * (ask_tw: also when only those wait), then takes the CQEs. Another
 * thread, or nobody before the first wait, leaves it to the next wait.
 */
static bool rp__cs_enter(struct rp__ep *ep, bool ask_tw)
{
	if (rp__ring_own(&ep->ring, false) < 0 ||
	    !(rp__ring_unsubmitted(&ep->ring) ||
	      (ask_tw && rp__ring_tw_pending(&ep->ring))))
		return false;
	if (rp__cs_settle(ep) < 0)
		return false;
	rp__ep_harvest(ep);
	return true;
}

bool rp__cs_catch_up(struct rp__ep *ep)
{
	return rp__cs_enter(ep, true);
}

bool rp__cs_push(struct rp__ep *ep)
{
	return rp__cs_enter(ep, false);
}

void rp__cs_closing(struct rp__cs *cs, struct rp__ep *ep, int fd)
{
	if (cs->nfds != 1)
		return;
	if (cs->rx_len) {
		/*
		 * The kernel resets a connection closed with bytes unread,
		 * and drops what was not sent: ours are unread, so say so
		 * to it the way a program would, with a zero linger.
		 */
		struct linger l = { .l_onoff = 1, .l_linger = 0 };

		(void)RP__CS_SYSCALL(SYS_setsockopt, fd, SOL_SOCKET, SO_LINGER, &l,
			      sizeof(l));
		cs->tx_len = cs->tx_out;
		cs->dead = true;
		if (ep)
			rp__cs_send_stop(ep, cs);
	} else if (!ep && cs->tx_len) {
		/* An orphan's last bytes, as far as the socket takes them. */
		(void)rp__cs_orphan_flush(cs, fd);
	}
}

void rp__cs_get_fd(struct rp__cs *cs)
{
	cs->nfds++;
}

/*
 * Buffer rings a dying ring may still write into, and send buffers it
 * may still read (a send it never told the end of), kept (and reachable,
 * so that a leak checker sees them kept on purpose) for the process's
 * life.
 */
struct rp__cs_parked {
	void *br, *bufs;
	struct rp__cs_parked *next;
};
static struct rp__cs_parked *rp__cs_parked;

static void rp__cs_park(void *br, void *bufs)
{
	struct rp__cs_parked *p = malloc(sizeof(*p));

	if (!p)
		return; /* unreachable then, but never freed: still safe */
	p->br = br;
	p->bufs = bufs;
	pthread_mutex_lock(&rp__cs_pool_lock);
	p->next = rp__cs_parked;
	rp__cs_parked = p;
	pthread_mutex_unlock(&rp__cs_pool_lock);
}

void rp__cs_put_fd(struct rp__cs *cs)
{
	struct rp__ep *ep = atomic_load(&cs->ep);

	if (atomic_load(&cs->orphan)) {
		/* Under rp__cs_orphan_lock, taken by the caller. */
		if (--cs->nfds)
			return;
		/* Its registrations go with its last close. */
		rp__cs_uncarry(cs, false);
		/*
		 * A send whose end its ring never told (a ring torn down by
		 * another thread): its memory may still be read.
		 */
		if (cs->tx_out) {
			rp__cs_park(cs->tx, NULL);
			cs->tx = NULL;
		}
		atomic_store(&cs->orphan, false);
		rp__cs_recycle(cs);
		return;
	}
	if (--cs->nfds)
		return;
	cs->closed = true;
	cs->registered = false;
	atomic_store(&cs->live, false);
	if (cs->recv_armed) {
		/* Stopped already, for the cap: its cancel is queued. */
		if (!cs->recv_stopped)
			rp__cs_recv_stop(ep, cs);
	}
	rp__cs_send_next(ep, cs);
	rp__cs_finish(ep, cs);
}

static void rp__cs_lost(struct rp__cs *cs)
{
	if (!cs->err)
		cs->err = -EIO;
	cs->rx_eof = true;
	cs->dead = true;
	cs->tx_len = cs->tx_out;
}

bool rp__cs_names(const struct rp__cs *cs, int fd)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       st.st_ino == cs->ino;
}

void rp__cs_unknown(struct rp__cs *cs)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	rp__cs_lost(cs);
	if (rp__cs_names(cs, cs->fd))
		(void)RP__CS_SYSCALL(SYS_setsockopt, cs->fd, SOL_SOCKET,
				     SO_LINGER, &l, sizeof(l));
}

void rp__cs_leave(struct rp__ep *ep, struct rp__cs *cs, bool registered)
{
	if (cs->leaving)
		return;
	cs->leaving = true;
	cs->registered = registered;
	atomic_fetch_add(&rp__cs_st.reverted, 1);
	if (cs->recv_armed && !cs->recv_stopped)
		rp__cs_recv_stop(ep, cs);
	/*
	 * What was written goes out now if this thread may submit: nobody
	 * may wait on the instance for this socket any more.
	 */
	(void)rp__cs_push(ep);
	rp__cs_finish(ep, cs);
}

void rp__cs_rejoin(struct rp__ep *ep, struct rp__cs *cs, int fd)
{
	/*
	 * Perhaps under another of its numbers (a dup, the first one
	 * closed since): its completions find the registration by it.
	 */
	cs->fd = fd;
	cs->leaving = false;
	cs->registered = true;
	if (!cs->recv_armed) {
		cs->recv_stopped = false;
		rp__cs_recv_arm(ep, cs);
	}
}

void rp__cs_release_all(struct rp__ep *ep)
{
	for (uint32_t s = 0; s < ep->cs.nslots && ep->cs.nsock; s++) {
		struct rp__cs *cs = ep->cs.by_slot[s];

		if (!cs)
			continue;
		if (!cs->closed && !cs->leaving) {
			cs->leaving = true;
			cs->registered = false;
			atomic_fetch_add(&rp__cs_st.reverted, 1);
		}
		if (cs->recv_armed && !cs->recv_stopped)
			rp__cs_recv_stop(ep, cs);
	}
}

void rp__cs_orphan_all(struct rp__ep *ep)
{
	bool stopped = false;

	/*
	 * A send still in flight (the socket was full) is cancelled; its
	 * CQE says how much went, and the rest is the orphan's to send.
	 */
	for (uint32_t s = 0; s < ep->cs.nslots && ep->cs.nsock; s++) {
		struct rp__cs *cs = ep->cs.by_slot[s];

		if (cs) {
			cs->released = true;
			if (cs->tx_out) {
				rp__cs_send_stop(ep, cs);
				stopped = true;
			}
		}
	}
	if (stopped && rp__ring_own(&ep->ring, false) == 0 &&
	    rp__cs_settle(ep) == 0)
		rp__ep_harvest(ep);
	for (uint32_t s = 0; s < ep->cs.nslots && ep->cs.nsock; s++) {
		struct rp__cs *cs = ep->cs.by_slot[s];

		if (!cs)
			continue;
		ep->cs.by_slot[s] = NULL;
		ep->cs.nsock--;
		/*
		 * A ring nobody ever waited on submitted nothing: its recv
		 * never ran, its sends are still ours to make.
		 */
		if (ep->ring.owned && !ep->ring.owner) {
			cs->recv_armed = false;
			cs->tx_out = 0;
		}
		if (cs->closed) {
			if (cs->tx_out) { /* see rp__cs_put_fd */
				rp__cs_park(cs->tx, NULL);
				cs->tx = NULL;
			}
			rp__cs_recycle(cs);
			continue;
		}
		pthread_mutex_lock(&rp__cs_orphan_lock);
		atomic_store(&cs->orphan, true);
		atomic_store(&cs->live, false);
		/*
		 * What it still has to send goes now, through its number if
		 * that still names its socket; else with the next call.
		 */
		if ((cs->tx_len || cs->shut_wr) && !cs->tx_out && !cs->dead &&
		    rp__cs_names(cs, cs->fd))
			(void)rp__cs_orphan_flush(cs, cs->fd);
		pthread_mutex_unlock(&rp__cs_orphan_lock);
	}
}

void rp__cs_kernel_full(struct rp__ep *ep, struct rp__cs *cs)
{
	struct io_uring_sqe *sqe;

	cs->kfull = true;
	if (cs->out_polled)
		return;
	sqe = rp__cs_sqe(ep);
	if (!sqe) {
		/* No way to hear of the room: writable, spurious at worst. */
		cs->kfull = false;
		return;
	}
	io_uring_prep_poll_add(sqe, (int)cs->slot, POLLOUT);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = rp__ud(RP__UD_CS_POLL, cs->slot, cs->gen);
	cs->out_polled = true;
}

void rp__cs_set_free(struct rp__ep *ep)
{
	struct rp__cs_set *set = &ep->cs;

	/* Sockets its last look did not let go of (not the owner's). */
	rp__cs_orphan_all(ep);

	/*
	 * The kernel tears a ring down after its close, in the background:
	 * a recv still armed would pick a buffer from our ring, and write
	 * into it, after we freed both. Taken back first, they are ours to
	 * free; a thread that may not (not the owner) leaves them, 1 MiB
	 * for the rest of the process, rather than let the kernel write
	 * into freed memory.
	 */
	if (set->br && io_uring_unregister_buf_ring(&ep->ring.uring,
						    RP__CS_BGID) == 0) {
		free(set->bufs);
		free(set->br);
	} else if (set->br) {
		rp__cs_park(set->br, set->bufs);
	}
	free(set->by_slot);
	free(set->free_slots);
	memset(set, 0, sizeof(*set));
}
