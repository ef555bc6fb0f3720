/* SPDX-License-Identifier: MIT */
/*
 * The registry's hooks: the only calls the state machine of an instance
 * (compat/epctx.c, compat/eppoll.c, the inline locks of compat/epctx.h)
 * makes into the registry (compat/epreg.c), which is otherwise the one
 * that calls it. Calls go one way, boundary -> registry -> state machine
 * -> ring; these go back up, each for a reason the state machine cannot
 * settle alone:
 *
 *   rp__ep_go_kernel    a thread other than the ring's owner must enter
 *                       it (epctx.c rp__ep_wait, eppoll.c rp__ep_readable):
 *                       the instance leaves the table and becomes the
 *                       kernel's epoll, which only the registry may do.
 *   rp__ep_get,         a registered fd that is an instance is found by
 *   rp__ep_put            its number, a lookup in the registry's table
 *                       (epctx.c rp__ep_del and rp__ep_to_kernel,
 *                       eppoll.c); the last put recycles the struct.
 *   rp__ep_pending,     rp__ep_lock and rp__ep_unlock (epctx.h) forget
 *   rp__ep_pending_late,  the fds that a signal handler closed while a
 *   rp__held,             thread held an instance lock: the close path
 *   rp__pending_any       is the registry's.
 *
 * Nothing else of compat/epreg.c may be called from the state machine; a
 * new need is a new hook here, with its reason.
 */
#ifndef RP_EPHOOKS_H
#define RP_EPHOOKS_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

struct rp__ep;

/*
 * An instance that a thread other than its ring's owner must enter (a
 * second waiting thread, a close or poll from another thread while the
 * owner is away, a kernel epoll or another instance that registers it)
 * becomes the kernel's epoll under the same number, with the same
 * registrations: several threads may then wait, and nobody's syscalls
 * are interrupted. With ep->lock held and a reference of the caller's;
 * sleepers are woken. Returns RP__EP_MOVED, or -errno if it stays (no
 * fd or memory for the kernel's epoll).
 */
#define RP__EP_MOVED (-EXDEV)
int rp__ep_go_kernel(struct rp__ep *ep);

/*
 * The instance fd is, with a reference, or NULL; the last put of a
 * closed instance releases it (rp__ep_release) and recycles the struct.
 */
struct rp__ep *rp__ep_get(int fd);
void rp__ep_put(struct rp__ep *ep);

/*
 * close() is async-signal-safe, and ours takes instance locks: a handler
 * that interrupted its own thread inside an instance would wait for
 * itself. So each thread counts the instance locks it holds or is taking
 * (counted before the lock call, so a handler that lands inside it knows
 * too). While it holds any, a close in a handler takes no lock: it leaves
 * the fd on each instance's pending list (rp__defer_close in epreg.c),
 * and the next holder of each lock forgets it before doing anything
 * else; the interrupted thread does so as it lets go of its locks.
 */
extern __thread unsigned rp__held __attribute__((tls_model("initial-exec")));
/* Set when a handler deferred a close anywhere; see rp__ep_unlock. */
extern atomic_bool rp__pending_any;

void rp__ep_pending(struct rp__ep *ep);

/*
 *   rp__cs_holds        does a completion socket hold bytes read ahead
 *                       for fd (epctx.c: a plain registration of the same
 *                       socket in another instance reports them)? The
 *                       fd table is the registry's.
 */
bool rp__cs_holds(int fd);
void rp__ep_pending_late(struct rp__ep *ep);

#endif /* RP_EPHOOKS_H */
