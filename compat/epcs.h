/* SPDX-License-Identifier: MIT */
/*
 * Completion sockets (compat/epcs.c): the opt-in transparent completion
 * mode (RINGPOLL_COMPLETION=1, ringpoll-run --completion). A connected,
 * nonblocking stream socket registered in an instance is served by that
 * instance's ring: a multishot IORING_OP_RECV receives ahead into user
 * memory, writes are copied into a send buffer and go out as
 * IORING_OP_SEND with the next enter, and the registration's readiness is
 * the buffers' state, with no poll and no syscall. The interposed read
 * and write family (compat/epio.c) is served from the buffers.
 *
 * Every request names the socket through the ring's registered-file
 * table, never by the program's fd number: the program may close or dup2
 * over that number at any moment, and no SQE of ours can then reach
 * another file. The table takes a reference, dropped (an SQE) when the
 * socket's last request is done.
 *
 * State is guarded by the instance's lock (ep->lock), like the rest of the
 * instance; a cs struct is never freed (recycled), so that a lock-free
 * lookup by fd (struct rp__fdent's cs) is safe, checked again under the
 * lock.
 */
#ifndef RP_EPCS_H
#define RP_EPCS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct rp__ep;
struct io_uring_cqe;
struct io_uring_buf_ring;

/* RINGPOLL_COMPLETION=1, read once when the library loads. */
extern bool rp__cs_on;

/* The counters of the mode, process-wide (the stats line's cs_*). */
struct rp__cs_stats {
	atomic_ulong sockets;  /* sockets served by the mode */
	atomic_ulong declined; /* stream sockets registered plainly */
	atomic_ulong reverted; /* taken back to the plain path */
	atomic_ulong rx_bytes; /* bytes received ahead */
	atomic_ulong tx_bytes; /* bytes sent from the send buffers */
	atomic_ulong reads;    /* read-family calls served, EAGAIN too */
	atomic_ulong writes;   /* write-family calls served, EAGAIN too */
	atomic_ulong syscalls; /* syscalls of its own, enters apart */
};
extern struct rp__cs_stats rp__cs_st;

struct rp__cs {
	/* Written under the lock of ep, read without it by lookups. */
	_Atomic(struct rp__ep *) ep;
	atomic_bool live;	/* serving: fd numbers may name it */
	uint32_t slot;		/* its index in the ring's file table */
	uint32_t gen;		/* its requests' user_data generation */
	int fd;			/* the number it was registered under */
	ino_t ino;		/* its socket's inode: is a number still it? */
	unsigned nfds;		/* numbers naming it (dup aliases) */
	bool registered;	/* an epoll registration reports it */
	bool closed;		/* no number names it: finish and let go */
	/*
	 * Its instance closed or left the ring while numbers still name it:
	 * they are the kernel's socket again (the buffered bytes are gone
	 * with the ring: see README). ep is no longer its to touch.
	 */
	atomic_bool orphan;
	bool blocking;		/* O_NONBLOCK cleared since: calls wait */
	/*
	 * Out of the mode (a DEL, its instance closing): no receive ahead;
	 * what is buffered is still read and sent first, then the calls
	 * are the kernel's (RP__CS_PASS).
	 */
	bool leaving;
	bool released;		/* its ring is going: nothing more is sent */
	uint32_t lowat;		/* SO_RCVLOWAT: EPOLLIN from this many bytes */
	/*
	 * A write that went around the buffer (sendfile, splice) found the
	 * socket full: not writable until a poll of it says so.
	 */
	bool kfull;
	bool out_polled;	/* that poll is in the kernel */
	bool poll_cancelled;	/* and its cancel is queued */
	bool shut_out;		/* the shutdown is in the kernel */

	/* Received ahead: rx[rx_off, rx_off + rx_len). */
	char *rx;
	size_t rx_off, rx_len, rx_cap;
	bool rx_eof;	   /* the peer's FIN, after the data */
	int err;	   /* the socket's pending error (-errno), once */
	bool recv_armed;   /* the multishot is in the kernel */
	uint32_t recv_sq;  /* the SQ tail after it was queued (see
			    * rp__cs_recv_queued) */
	bool recv_stopped; /* cancelled: too much buffered, or leaving */

	/* To send: tx[tx_off, tx_off + tx_len); tx_out of it in flight. */
	char *tx;
	size_t tx_off, tx_len, tx_out;
	bool shut_wr;	   /* shutdown(SHUT_WR) asked */
	bool shut_queued;  /* and handed to the ring after the data */
	bool shut_done;	   /* or made at once: nothing of ours queued */
	bool dead;	   /* send side failed: nothing more goes out */
	uint32_t send_sq;  /* the SQ tail after its send was queued */

	/*
	 * Carried (compat/epcarry.c): its instance became the kernel's
	 * epoll (epoll number carry_ep) while bytes of ours were unread,
	 * which that epoll cannot see. An eventfd (carry_fd1 - 1; 0: not
	 * carried) stands in for the registration (carry_num, the
	 * interest and data below) until they are read. An orphan's.
	 */
	int carry_fd1, carry_ep, carry_num;
	uint32_t carry_events;
	uint64_t carry_data;

	struct rp__cs *next_free;
};

#define RP__CS_PAGES 512
/* Provided buffers per instance: 1 MiB, made with its first socket. */
#define RP__CS_NBUF 256u
#define RP__CS_BUFSZ 4096u
/* Places of the buffer ring remembered for bundles (rp__cs_set). */
#define RP__CS_HIST (4 * RP__CS_NBUF)

/* An instance's part: its file table, its buffer ring, its sockets. */
struct rp__cs_set {
	struct rp__cs **by_slot;
	uint32_t nslots;	/* the registered table's size; 0 none */
	uint32_t *free_slots;
	uint32_t nfree;
	struct io_uring_buf_ring *br;
	char *bufs;
	uint32_t nsock;		/* sockets served (slots in use) */
	/*
	 * Pages of the callers' buffers the kernel copied to (w) or from
	 * (r) without a fault: page number + 1, direct-mapped. A server
	 * has a buffer or two per connection, more than rp__mem's ranges
	 * hold; a miss costs a process_vm_readv.
	 */
	uint64_t pages_r[RP__CS_PAGES], pages_w[RP__CS_PAGES];
	bool broken;		/* setup failed: decline from now on */
	/*
	 * Bundles (IORING_RECVSEND_BUNDLE, 6.10+): one recv CQE for the
	 * buffers it filled, which are consecutive places of the buffer
	 * ring from the first one's. Each buffer goes in at place add_pos
	 * (the ring's tail, counted without wrapping): at[bid] is where a
	 * buffer last went, placed[place % RP__CS_HIST] is place << 16 |
	 * bid (a place overwritten since does not match: checked).
	 */
	bool bundle;
	uint32_t add_pos;
	uint32_t at[RP__CS_NBUF];
	uint64_t placed[RP__CS_HIST];
};

/*
 * ADD of fd with ev: a cs for it if it qualifies (see compat/epcs.c),
 * else NULL and the registration is a plain one. ep->lock held.
 */
struct rp__cs *rp__cs_adopt(struct rp__ep *ep, int fd, uint32_t events,
			    ino_t ino);
/* The ADD that adopted cs failed after all. */
void rp__cs_unadopt(struct rp__ep *ep, struct rp__cs *cs);

/* The readiness of cs, as tcp_poll would give it. */
uint32_t rp__cs_mask(const struct rp__cs *cs);

/*
 * A CQE of one of the mode's kinds. Returns the cs whose readiness
 * changed (*bits: the bits of this change, an edge) or NULL.
 */
struct rp__cs *rp__cs_cqe(struct rp__ep *ep, const struct io_uring_cqe *cqe,
			  uint32_t *bits);

/*
 * The read and write family on cs, ep->lock held; -errno. flags are the
 * MSG_ flags the mode serves (MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL,
 * MSG_NOSIGNAL); the caller declines the rest.
 */
ssize_t rp__cs_read(struct rp__cs *cs, struct rp__ep *ep,
		    const struct iovec *iov, int n, int flags);
ssize_t rp__cs_write(struct rp__cs *cs, struct rp__ep *ep, int fd,
		     const struct iovec *iov, int n, int flags);
/* What rp__cs_read and rp__cs_write return for "the kernel's call". */
#define RP__CS_PASS ((ssize_t)-100000)
/* Guards orphans (ep NULL above), which no instance lock guards. */
extern pthread_mutex_t rp__cs_orphan_lock;
/* Bytes a read would get now (FIONREAD's part of ours). */
size_t rp__cs_buffered(const struct rp__cs *cs);
/* shutdown(2) on cs: SHUT_WR after the data queued. -errno. */
int rp__cs_shutdown(struct rp__cs *cs, int how, int fd);
/*
 * The owner runs the ring's deferred completions, so that what the
 * kernel has received is in the buffer (a read that found it empty).
 * Returns true if it could.
 */
bool rp__cs_catch_up(struct rp__ep *ep);
/*
 * Is cs's recv still in the SQ, not submitted yet (queued by its ADD, or
 * armed again since the last enter)? The kernel's socket then holds
 * what a read must see.
 */
bool rp__cs_recv_queued(struct rp__ep *ep, const struct rp__cs *cs);

/*
 * The owner hands the queued sends to the kernel now and takes their
 * completions (a writer found the buffer full). True if it could.
 */
bool rp__cs_push(struct rp__ep *ep);

/* Submits and runs deferred work, its enters counted as the instance's. */
int rp__cs_settle(struct rp__ep *ep);

/*
 * A number that named cs is closed; the last one lets the socket go.
 * Under the lock of cs->ep, or of nothing for an orphan.
 */
void rp__cs_put_fd(struct rp__cs *cs);
/*
 * fd, a number of cs, is about to be closed (ep NULL for an orphan): the
 * last one resets the connection if bytes are unread, as the kernel's
 * close does.
 */
void rp__cs_closing(struct rp__cs *cs, struct rp__ep *ep, int fd);
/* A new number names cs too (dup). */
void rp__cs_get_fd(struct rp__cs *cs);

/*
 * The instance is closing or leaving its ring: every socket goes back to
 * the plain path, its queued sends submitted first; bytes received ahead
 * stay readable. ep->lock held.
 */
void rp__cs_release_all(struct rp__ep *ep);
/*
 * After the ring's last completions were taken (rp__ep_drop_removed):
 * the sockets still open become orphans, readable until their buffer is
 * empty, under rp__cs_orphan_lock.
 */
void rp__cs_orphan_all(struct rp__ep *ep);
/*
 * A write to the kernel's socket behind ours (sendfile) found it full:
 * EPOLLOUT waits for the socket's room, which a poll on the ring tells.
 */
void rp__cs_kernel_full(struct rp__ep *ep, struct rp__cs *cs);
/* The instance's part, when its ring is about to close. */
void rp__cs_set_free(struct rp__ep *ep);
/* Does number fd (still) name cs's socket? One fstat. */
bool rp__cs_names(const struct rp__cs *cs, int fd);
/*
 * What became of its requests cannot be known (its ring dropped a CQE,
 * maybe its; its send is in the kernel and will never be told of, the
 * ring left behind by another thread): it fails (EIO) after its bytes,
 * and its close resets the connection, so the peer is not left with a
 * stream silently short either.
 */
void rp__cs_unknown(struct rp__cs *cs);
/* EPOLL_CTL_DEL: the socket leaves the mode (see leaving). */
void rp__cs_leave(struct rp__ep *ep, struct rp__cs *cs, bool registered);
/* ADD again into the same instance, under fd: back in the mode. */
void rp__cs_rejoin(struct rp__ep *ep, struct rp__cs *cs, int fd);

/*
 * Carried registrations (compat/epcarry.c). An instance that becomes the
 * kernel's epoll (kfd, to be number epnum) registers an orphan holding
 * unread bytes, registered under fd with ev, by its stand-in. Under
 * rp__cs_orphan_lock.
 */
void rp__cs_carry(struct rp__cs *cs, int kfd, int epnum, int fd,
		  uint32_t events, uint64_t data);
/*
 * Its bytes are read (readd: the socket's own registration comes back)
 * or its last number closed (not): the stand-in goes.
 */
void rp__cs_uncarry(struct rp__cs *cs, bool readd);
/* How many are carried: the ctl below is looked at only then. */
extern atomic_uint rp__cs_carries;
/*
 * epoll_ctl on a kernel epoll: true (and *ret, 0 or -errno) if fd is
 * carried there, the call made on its stand-in.
 */
bool rp__cs_carry_ctl(int epfd, int op, int fd, const void *event,
		      int *ret);
/* A forked child: the stand-ins are the parent's; close our copies. */
void rp__cs_carry_child(struct rp__cs *cs);

#endif /* RP_EPCS_H */
