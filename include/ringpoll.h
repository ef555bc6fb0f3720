/* SPDX-License-Identifier: MIT */
/*
 * ringpoll: readiness-style I/O on io_uring.
 *
 * An rp_loop owns one io_uring. An rp_source wraps a file descriptor. The
 * Async wrapper (rp_read_with / rp_write_with) tries an operation at once;
 * when it would block it arms a one-shot IORING_OP_POLL_ADD and retries the
 * operation when the poll completes ("poll-on-ring", the readiness model).
 * The ready-made ops (rp_accept, rp_connect, rp_recv, rp_send, rp_read,
 * rp_write) run either that way or, in the completion model, as the
 * matching io_uring operation; the model is chosen per loop and the
 * application code does not change.
 *
 * Conventions:
 * - Every function returns 0 (or a count) on success and -errno on failure;
 *   none of them sets errno.
 * - Callbacks run only from rp_loop_run() / rp_loop_run_once(), never from
 *   inside the call that started the operation, so a callback may start the
 *   next operation without recursion.
 * - A loop belongs to the thread that created it; rp_loop_wake() is the one
 *   function that may be called from any thread.
 * - Sources and timers are handles carrying a generation: using one after it
 *   was closed gives -EBADF (sources) or -ENOENT (timers), never a crash.
 */
#ifndef RINGPOLL_H
#define RINGPOLL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RINGPOLL_VERSION_MAJOR 0
#define RINGPOLL_VERSION_MINOR 1

struct rp_loop;

/* A wrapped file descriptor; id 0 is never a valid source. */
typedef struct rp_source {
	uint64_t id;
} rp_source;

/* A timer; id 0 is never a valid timer. */
typedef struct rp_timer {
	uint64_t id;
} rp_timer;

enum rp_model {
	/* Try the syscall; on EAGAIN wait for a poll CQE and retry. */
	RP_MODEL_READINESS = 0,
	/* Submit IORING_OP_RECV, SEND, ACCEPT, ... and wait for the CQE. */
	RP_MODEL_COMPLETION = 1,
};

/*
 * Which io_uring setup to ask for. AUTO takes the best the kernel has, in
 * this order: SINGLE_ISSUER|DEFER_TASKRUN (6.1), COOP_TASKRUN (5.19), plain.
 * The others force one rung of that ladder (and fail with the kernel's
 * error if it lacks it); they exist to measure and to test the fallbacks.
 */
enum rp_setup {
	RP_SETUP_AUTO = 0,
	RP_SETUP_DEFER_TASKRUN = 1,
	RP_SETUP_COOP_TASKRUN = 2,
	RP_SETUP_PLAIN = 3,
};

/* rp_loop_config.flags */
enum {
	/* Do not register the ring fd (IORING_REGISTER_RING_FDS, 5.18). */
	RP_LOOP_NO_REGISTERED_FD = 1u << 0,
	/*
	 * Do not use IORING_ENTER_EXT_ARG for wait timeouts; queue an
	 * IORING_OP_TIMEOUT instead, as kernels before 5.11 need.
	 */
	RP_LOOP_NO_EXT_ARG = 1u << 1,
};

struct rp_loop_config {
	enum rp_model model;
	enum rp_setup setup;
	unsigned flags;
	/* SQ entries, rounded up to a power of two; 0 means 256. */
	unsigned sq_entries;
	/* CQ entries; 0 means 16 per SQ entry. Overflow never loses a CQE. */
	unsigned cq_entries;
};

/* Counters, all monotonic since rp_loop_new(). */
struct rp_stats {
	uint64_t enters;	   /* io_uring_enter calls */
	uint64_t sqes;		   /* SQEs submitted */
	uint64_t cqes;		   /* CQEs harvested */
	uint64_t polls_armed;	   /* IORING_OP_POLL_ADD queued */
	uint64_t stale_cqes;	   /* CQEs of a cancelled or older request */
	uint64_t spurious_wakeups; /* poll fired, retry still said EAGAIN */
	uint64_t ops_retried;	   /* ops retried after a poll completion */
	uint64_t ops_immediate;	   /* ops that completed without the ring */
	uint64_t ops_submitted;	   /* ops submitted as io_uring operations */
	uint64_t timers_fired;	   /* timer callbacks run */
	uint64_t cq_overflow_flushes; /* enters made to flush a CQ overflow */
	uint64_t ops_poll_first;   /* ops that waited for a poll before a try */
};

/* What the ring setup ended up with, for tools and tests. */
struct rp_ring_info {
	enum rp_setup setup;   /* the rung that succeeded */
	unsigned setup_flags;  /* IORING_SETUP_* passed to the kernel */
	unsigned features;     /* IORING_FEAT_* the kernel reported */
	unsigned sq_entries;
	unsigned cq_entries;
	int registered_fd;     /* 1 if the ring fd is registered */
	int ext_arg;	       /* 1 if waits use IORING_ENTER_EXT_ARG */
	int ring_fd;
};

enum rp_dir {
	RP_READ = 0,
	RP_WRITE = 1,
};

/*
 * An operation for rp_read_with / rp_write_with: do it once, without
 * blocking, on fd; return the result (>= 0) or -errno. -EAGAIN (or
 * -EWOULDBLOCK, -EINPROGRESS) means "not ready": the wrapper waits for
 * readiness and calls the op again.
 */
typedef ssize_t (*rp_io_fn)(int fd, void *arg);

/*
 * Called once per operation with its result: >= 0 (bytes, a new fd, 0 for
 * connect) or -errno, -ECANCELED after rp_cancel or rp_source_close,
 * -ETIMEDOUT after the source's timeout, -EIO in the completion model if
 * the kernel dropped the op's completion (how many bytes moved is unknown).
 */
typedef void (*rp_done_fn)(struct rp_loop *loop, rp_source src, ssize_t res,
			   void *user);

typedef void (*rp_timer_fn)(struct rp_loop *loop, rp_timer t, void *user);

/* Loop. cfg may be NULL for the defaults (readiness model, AUTO setup). */
int rp_loop_new(struct rp_loop **loopp, const struct rp_loop_config *cfg);
/*
 * Closes every source that is still open (their pending ops are reported
 * with -ECANCELED), waits for the kernel to release every buffer, and
 * frees the loop.
 */
void rp_loop_free(struct rp_loop *loop);
/*
 * Runs until rp_loop_stop() or until nothing is pending (no op, no timer).
 * Returns 0, or -errno if waiting on the ring failed.
 */
int rp_loop_run(struct rp_loop *loop);
/*
 * Waits at most timeout_ms (-1: no limit, 0: do not block) for something
 * to happen, runs the callbacks that are due, and returns their number.
 */
int rp_loop_run_once(struct rp_loop *loop, int timeout_ms);
/* Makes rp_loop_run() return after the current iteration. */
void rp_loop_stop(struct rp_loop *loop);
/* Interrupts a wait of the loop; safe from any thread and signal-safe. */
int rp_loop_wake(struct rp_loop *loop);
enum rp_model rp_loop_model(const struct rp_loop *loop);
void rp_loop_stats(const struct rp_loop *loop, struct rp_stats *st);
void rp_loop_ring_info(const struct rp_loop *loop, struct rp_ring_info *info);
/* Monotonic time in ms, as the loop's timers see it. */
uint64_t rp_loop_now_ms(const struct rp_loop *loop);

/* Timers: fire after after_ms, then every repeat_ms if it is not 0. */
int rp_timer_start(struct rp_loop *loop, uint64_t after_ms,
		   uint64_t repeat_ms, rp_timer_fn fn, void *user,
		   rp_timer *out);
/* -ENOENT if the timer already fired (one-shot) or was cancelled. */
int rp_timer_cancel(struct rp_loop *loop, rp_timer t);

/*
 * Sources. rp_source_new takes ownership of fd and makes it nonblocking.
 * rp_source_close reports each pending op with -ECANCELED (from the loop),
 * then closes fd; the handle is invalid as soon as the call returns.
 */
int rp_source_new(struct rp_loop *loop, int fd, rp_source *out);
int rp_source_close(struct rp_loop *loop, rp_source src);
int rp_source_fd(struct rp_loop *loop, rp_source src);
/*
 * Every later op in direction dir that does not complete at once fails
 * with -ETIMEDOUT after ms milliseconds; 0 removes the timeout.
 */
int rp_source_timeout(struct rp_loop *loop, rp_source src, enum rp_dir dir,
		      uint64_t ms);
/* Reports the pending op in direction dir with -ECANCELED. */
int rp_cancel(struct rp_loop *loop, rp_source src, enum rp_dir dir);

/*
 * The Async wrapper. One op per direction may be pending on a source (a
 * reader and a writer may wait at the same time); a second one gets
 * -EBUSY. arg must stay valid until done runs. Custom ops run in the
 * readiness way in both models: io_uring cannot run arbitrary code.
 */
int rp_read_with(struct rp_loop *loop, rp_source src, rp_io_fn op, void *arg,
		 rp_done_fn done, void *user);
int rp_write_with(struct rp_loop *loop, rp_source src, rp_io_fn op, void *arg,
		  rp_done_fn done, void *user);

/*
 * Ready-made ops. Buffers (and addr/addrlen of rp_accept) must stay valid
 * until done runs. rp_accept's result is the new fd, created with flags
 * (SOCK_NONBLOCK, SOCK_CLOEXEC); rp_connect copies addr.
 */
int rp_accept(struct rp_loop *loop, rp_source src, struct sockaddr *addr,
	      socklen_t *addrlen, int flags, rp_done_fn done, void *user);
int rp_connect(struct rp_loop *loop, rp_source src,
	       const struct sockaddr *addr, socklen_t addrlen,
	       rp_done_fn done, void *user);
int rp_recv(struct rp_loop *loop, rp_source src, void *buf, size_t len,
	    int flags, rp_done_fn done, void *user);
int rp_send(struct rp_loop *loop, rp_source src, const void *buf, size_t len,
	    int flags, rp_done_fn done, void *user);
int rp_read(struct rp_loop *loop, rp_source src, void *buf, size_t len,
	    rp_done_fn done, void *user);
int rp_write(struct rp_loop *loop, rp_source src, const void *buf, size_t len,
	     rp_done_fn done, void *user);

/* A short description of an rp_* result (strerror of -res). */
const char *rp_strerror(int res);

#ifdef __cplusplus
}
#endif

#endif /* RINGPOLL_H */
