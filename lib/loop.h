/* SPDX-License-Identifier: MIT */
/*
 * The loop's internals, shared by loop.c (run, timers, wake) and async.c
 * (sources and the Async wrapper).
 */
#ifndef RP_LOOP_H
#define RP_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "poll.h"
#include "ring.h"

enum rp__op_state {
	RP__OP_IDLE = 0,
	RP__OP_WAITING,	 /* a poll is armed; retry when it fires */
	RP__OP_INFLIGHT, /* completion model: the io_uring op is in flight */
	RP__OP_DONE,	 /* result known, callback queued on the loop */
};

enum rp__op_kind {
	RP__OPK_CUSTOM = 0,
	RP__OPK_ACCEPT,
	RP__OPK_CONNECT,
	RP__OPK_RECV,
	RP__OPK_SEND,
	RP__OPK_READ,
	RP__OPK_WRITE,
};

/* What is known of an op in flight after a dropped CQE (rp__loop_recover). */
enum rp__op_resync {
	RP__RESYNC_NONE = 0,
	RP__RESYNC_ASKED,   /* a cancel by its user_data is on its way */
	RP__RESYNC_LOST,    /* the cancel did not find it: its CQE went */
	RP__RESYNC_CONFIRM, /* ... and the kernel was asked to post it */
};

struct rp__op {
	uint8_t state;
	uint8_t kind;
	bool timed_out;	  /* the deadline fired: report -ETIMEDOUT */
	bool cancelling;  /* completion model: an ASYNC_CANCEL is queued */
	bool poll_first;  /* readiness: the last try said EAGAIN, see rp__op_go */
	uint8_t resync;	  /* after a dropped CQE: enum rp__op_resync */
	uint32_t gen;	  /* completion model: generation of the SQE */
	uint32_t next;	  /* deferred queue link, see rp__dq_* */
	struct rp__poll poll;
	ssize_t res;
	rp_io_fn fn;
	void *arg;
	rp_done_fn done;
	void *user;
	rp_timer deadline;
	union {
		struct {
			void *buf;
			size_t len;
			int flags;
		} io;
		struct {
			struct sockaddr *addr;
			socklen_t *addrlen;
			int flags;
		} acc;
		struct {
			struct sockaddr_storage ss;
			socklen_t len;
			bool started;
		} con;
	} u;
};

enum rp__src_state {
	RP__SRC_FREE = 0,
	RP__SRC_OPEN,
	RP__SRC_CLOSING, /* closed by the user, ops still to be reported */
};

struct rp__src {
	int fd;
	uint8_t state;
	uint32_t gen;
	uint32_t next_free;
	uint64_t timeout_ms[2];
	struct rp__op op[2];
};

/*
 * Sources live in fixed-size chunks so their addresses never move: a
 * callback may create sources while the dispatcher holds a pointer.
 */
#define RP__SRC_CHUNK_SHIFT 10
#define RP__SRC_CHUNK (1u << RP__SRC_CHUNK_SHIFT)

struct rp__timer {
	uint64_t when_ns;
	uint64_t seq;	    /* FIFO order among equal deadlines */
	uint64_t repeat_ns;
	uint32_t gen;
	uint32_t heap_idx;  /* RP__TIMER_IDLE when not scheduled */
	uint32_t next_free;
	bool internal;	    /* an op deadline, not a user timer */
	rp_timer_fn fn;
	void *user;
	uint32_t src_slot;  /* internal: the op it bounds */
	uint8_t src_dir;
};

#define RP__TIMER_IDLE UINT32_MAX
/* CQEs copied out of the ring per harvest. */
#define RP__CQE_BATCH 64

struct rp_loop {
	struct rp__ring ring;
	enum rp_model model;
	bool stop;
	bool freeing;

	struct rp__src **chunks;
	uint32_t nchunks;
	uint32_t nslots;
	uint32_t free_src;	/* slot + 1 of the first free slot, 0: none */
	uint32_t pending_ops;	/* started and not yet reported */
	/* A dropped CQE: see rp__loop_recover. */
	bool resync_due;	/* polls and ops in flight to look at again */
	uint32_t lost_ops;	/* ops RP__RESYNC_LOST or _CONFIRM */

	/* Ops whose result is known, waiting for their callback. */
	uint32_t dq_head, dq_tail;

	struct rp__timer *timers;
	uint32_t ntimers;
	uint32_t free_timer;	/* index + 1, 0: none */
	uint32_t *heap;
	uint32_t heap_len;
	uint32_t user_timers;	/* scheduled user timers: keep run() alive */
	uint64_t timer_seq;

	int wake_fd;
	struct rp__poll wake_poll;
	atomic_int wake_pending;

	struct rp_stats st;
	struct io_uring_cqe cqes[RP__CQE_BATCH];
};

static inline struct rp__src *rp__src_at(struct rp_loop *loop, uint32_t slot)
{
	return &loop->chunks[slot >> RP__SRC_CHUNK_SHIFT]
			    [slot & (RP__SRC_CHUNK - 1)];
}

static inline rp_source rp__src_handle(const struct rp__src *s, uint32_t slot)
{
	return (rp_source){ (uint64_t)s->gen << 32 | slot };
}

/* loop.c */
int rp__timer_start(struct rp_loop *loop, uint64_t after_ns, bool internal,
		    rp_timer *out);
void rp__timer_cancel_internal(struct rp_loop *loop, rp_timer h);
void rp__dq_push(struct rp_loop *loop, uint32_t slot, unsigned dir);

/* async.c */
int rp__src_cqe(struct rp_loop *loop, const struct io_uring_cqe *cqe);
void rp__op_report(struct rp_loop *loop, uint32_t slot, unsigned dir,
		   ssize_t res);
void rp__op_deadline(struct rp_loop *loop, uint32_t slot, unsigned dir,
		     rp_timer t);
void rp__src_close_all(struct rp_loop *loop);
void rp__src_free_all(struct rp_loop *loop);
int rp__src_resync(struct rp_loop *loop);
void rp__src_resync_cqe(struct rp_loop *loop, const struct io_uring_cqe *cqe);
int rp__src_lost(struct rp_loop *loop, bool end);

#endif /* RP_LOOP_H */
