/* SPDX-License-Identifier: MIT */
/*
 * rpbench: an echo server in every I/O model ringpoll offers, next to the
 * kernel's epoll and native io_uring, and a closed-loop load generator that
 * checks every echoed byte. Shared declarations.
 *
 * Exit codes: 0 success, 1 a failed run (mismatch, server gone, I/O error),
 * 2 bad input (unknown mode, bad arguments, port in use).
 */
#ifndef RPBENCH_H
#define RPBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#define RPB_EXIT_FAIL 1
#define RPB_EXIT_USAGE 2

/*
 * One worker's counters. Only the worker writes them; the main thread reads
 * them while the worker runs (a control request), so every store is a
 * relaxed atomic: a plain mov on x86, no lock prefix on the hot path.
 */
struct rpb_counters {
	uint64_t bytes;	  /* bytes echoed back */
	uint64_t reads;	  /* read(2)/recv(2) calls */
	uint64_t writes;  /* write(2)/send(2) calls */
	uint64_t accepts; /* accept4(2) calls */
	uint64_t closes;  /* close(2) calls on connections */
	uint64_t waits;	  /* epoll_wait calls (uring: io_uring_enter) */
	uint64_t ctls;	  /* epoll_ctl calls */
	uint64_t other;	  /* other data-path syscalls (setsockopt) */
	uint64_t conns;	  /* connections open now */
};

#define RPB_ADD(c, field, n)                                                   \
	__atomic_store_n(&(c)->field, (c)->field + (n), __ATOMIC_RELAXED)
#define RPB_INC(c, field) RPB_ADD(c, field, 1)
#define RPB_GET(c, field) __atomic_load_n(&(c)->field, __ATOMIC_RELAXED)

/*
 * What a mode's library did on top of the calls the server makes itself:
 * io_uring_enter calls, syscalls made by epoll_ctl, and syscalls the Async
 * wrapper made on the server's behalf (its recv/send/accept attempts).
 */
struct rpb_lib {
	uint64_t enters;
	uint64_t ctl_syscalls;
	uint64_t io_syscalls;
	bool valid; /* the mode has library counters */
};

struct rpb_server;

struct rpb_worker {
	struct rpb_server *srv;
	int id;
	int lfd;     /* the listening socket, shared by every worker */
	int stop_fd; /* an eventfd the main thread writes to stop the worker */
	pthread_t tid;
	int err;	      /* run()'s result, -errno */
	void *priv;	      /* the mode's state (an rp_loop) */
	struct rpb_lib final; /* library counters taken as run() ended */
	bool done;	      /* final is set */
	struct rpb_counters c;
} __attribute__((aligned(64)));

enum rpb_flavour {
	RPB_LT = 0,
	RPB_ET = 1,
	RPB_ONESHOT = 2,
	RPB_READINESS = 3,
	RPB_COMPLETION = 4,
	RPB_NATIVE = 5,
};

struct rpb_mode {
	const char *name;
	enum rpb_flavour flavour;
	/* The worker thread's body: serve until stop_fd is readable. */
	int (*run)(struct rpb_worker *w);
	/* Ends run() from the main thread; NULL: write to stop_fd. */
	void (*stop)(struct rpb_worker *w);
	/* The library's counters for one worker (or all, per mode). */
	void (*sample)(struct rpb_worker *w, struct rpb_lib *lib);
	const char *about;
};

struct rpb_server {
	const struct rpb_mode *mode;
	int nthreads;
	struct rpb_worker *workers;
	/*
	 * Data connections are TCP: set TCP_NODELAY on each. False on a unix
	 * socket, where the option does not exist (EOPNOTSUPP): skipped, and
	 * not counted as a syscall.
	 */
	bool nodelay;
	int stopping; /* read by workers with __atomic_load_n */
};

/* Snapshot of a server, as written on its report line. */
struct rpb_report {
	char mode[32];
	char backend[16]; /* what the epoll fd is: epoll, io_uring, or none */
	long pid;
	uint64_t threads, conns, bytes, reads, writes, accepts, closes, waits,
	    ctls, other, enters, ctl_syscalls, lib_io, syscalls;
	uint64_t cpu_us, utime_us, stime_us;
};

/* server.c */
int rpb_server_main(int argc, char **argv);
/* The epoll modes say what their epoll fd really is (a preload swaps it). */
void rpb_note_backend(int epfd);

/* load.c */
int rpb_load_main(int argc, char **argv);

/* ctlbench.c: epoll_ctl against rp_epoll_ctl */
int rpb_ctl_main(int argc, char **argv);

/* srv_epoll.c, built twice: once on the kernel's epoll, once on rp_epoll */
int rpb_kepoll_run(struct rpb_worker *w);
void rpb_kepoll_sample(struct rpb_worker *w, struct rpb_lib *lib);
int rpb_rpepoll_run(struct rpb_worker *w);
void rpb_rpepoll_sample(struct rpb_worker *w, struct rpb_lib *lib);

/* srv_async.c */
int rpb_async_run(struct rpb_worker *w);
void rpb_async_stop(struct rpb_worker *w);
void rpb_async_sample(struct rpb_worker *w, struct rpb_lib *lib);

/* srv_uring.c */
int rpb_uring_run(struct rpb_worker *w);
struct io_uring;
struct io_uring_cqe;
int rpb_uring_setup(struct io_uring *ring, unsigned sq, unsigned cq);
int rpb_uring_wait(struct io_uring *ring, struct rpb_worker *w);
/*
 * The loop both liburing servers run until *stop: wait (rpb_uring_wait),
 * hand each CQE to on_cqe, then after (if any) once per batch; at the end
 * sample the counters and mark the worker done. Returns 0 or the wait's error.
 */
int rpb_uring_loop(struct io_uring *ring, struct rpb_worker *w,
		   const bool *stop,
		   void (*on_cqe)(void *ctx, const struct io_uring_cqe *cqe),
		   void (*after)(void *ctx), void *ctx);
void rpb_uring_sample(struct rpb_worker *w, struct rpb_lib *lib);

/* srv_upoll.c: the floor, readiness on liburing's poll alone */
int rpb_upoll_lt_run(struct rpb_worker *w);
int rpb_upoll_et_run(struct rpb_worker *w);
int rpb_upoll_et_exact_run(struct rpb_worker *w);

/* report.c: the report line, written by the server, parsed by load */
void rpb_report_take(struct rpb_server *srv, struct rpb_report *r);
int rpb_report_format(const struct rpb_report *r, char *buf, size_t len);
int rpb_report_parse(const char *line, struct rpb_report *r);
int rpb_report_fetch(const char *host, int port, struct rpb_report *r,
		     char *err, size_t errlen);

/* hist.c: a log-bucket latency histogram in nanoseconds */
#define RPB_HIST_SUB_BITS 7
#define RPB_HIST_BUCKETS ((64 - RPB_HIST_SUB_BITS + 1) << RPB_HIST_SUB_BITS)
struct rpb_hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[RPB_HIST_BUCKETS];
};
void rpb_hist_add(struct rpb_hist *h, uint64_t ns);
void rpb_hist_merge(struct rpb_hist *into, const struct rpb_hist *from);
uint64_t rpb_hist_pct(const struct rpb_hist *h, double pct);

/* args.c */
int rpb_parse_uint(const char *prog, const char *opt, const char *s,
		   uint64_t min, uint64_t max, uint64_t *out);
int rpb_parse_secs(const char *prog, const char *opt, const char *s, double min,
		   double *out);
uint64_t rpb_now_ns(void);
void rpb_raise_nofile(void);

#endif /* RPBENCH_H */
