/* SPDX-License-Identifier: MIT */
/*
 * Entries left out: a disabled one-shot registration that a kernel epoll
 * cannot be given.
 *
 * An instance becomes the kernel's epoll (a second waiting thread, a
 * nesting: rp__ep_go_kernel) and its registrations are added there. An
 * EPOLLONESHOT entry already reported is disabled: it reports nothing
 * until the program's MOD. The kernel's epoll has that state too, but an
 * ADD cannot make it: every ADD watches EPOLLERR|EPOLLHUP, and only a
 * report disables. A ready file's entry gets its report, taken by the
 * move itself (rp__ep_kernel_disable); the entry of a file that is not
 * ready would report its next hangup, where the kernel's disabled entry
 * says nothing, and a thread pool on one-shot entries would hand a second
 * thread an fd the first still handles (the fuzzer's seeds of KNOWN.md K).
 *
 * So such an entry is left out of the kernel's epoll and recorded here,
 * on its fd's table entry: the program's MOD adds it (reporting from
 * then on, as the kernel's re-enabled entry would), DEL forgets it, ADD
 * finds it (EEXIST, after the checks the kernel makes first), and the
 * fd's close forgets it, as does the epoll's (its records and token are
 * nobody's then). Which epoll the record is for is told by a token: an
 * eventfd, never written, registered in that epoll (kcmp
 * KCMP_EPOLL_TFD, as compat/epcarry.c checks): the number may have been
 * closed and made another epoll since. One token per move, closed when
 * its last record goes.
 *
 * All under rp__ep_off_lock; rp__ep_offs counts records, so that a ctl on
 * a kernel epoll asks here only while there are any.
 */
#include <errno.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epoff.h"
#include "epreg.h"
#include "ringpoll_epoll.h"

struct rp__ep_off_tok {
	int fd;		/* the eventfd registered in the epoll */
	unsigned refs;	/* records that name it */
};

atomic_uint rp__ep_offs;
static pthread_mutex_t rp__ep_off_lock = PTHREAD_MUTEX_INITIALIZER;
/*
 * This thread holds the lock: a close in a signal handler that interrupted
 * it must not wait for it (its record is left; see rp__ep_off_forget).
 */
static __thread bool rp__ep_off_held;

static void rp__ep_off_take(void)
{
	pthread_mutex_lock(&rp__ep_off_lock);
	rp__ep_off_held = true;
}

static void rp__ep_off_give(void)
{
	rp__ep_off_held = false;
	pthread_mutex_unlock(&rp__ep_off_lock);
}

/*
 * Is number epnum still the epoll that holds efd (a stand-in, a token of
 * ours)? The program may have closed it and made another epoll under the
 * number: one of ours must not be registered there. (Without kcmp, a
 * seccomp filter or CONFIG_KCMP off, it is trusted: a number reused so is
 * rare, and the registration not coming back would lose events for good.)
 */
bool rp__epoll_holds(int epnum, int efd)
{
	struct kcmp_epoll_slot slot = { .efd = (uint32_t)epnum,
					.tfd = (uint32_t)efd, .toff = 0 };
	pid_t pid = getpid();
	long ret = syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, efd, &slot);

	return ret == 0 || (ret < 0 && (errno == ENOSYS || errno == EPERM ||
					errno == EACCES));
}

struct rp__ep_off_tok *rp__ep_off_begin(int kfd)
{
	struct epoll_event ev = { .events = 0 };
	struct rp__ep_off_tok *tok = malloc(sizeof(*tok));

	if (!tok)
		return NULL;
	tok->refs = 0;
	tok->fd = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (tok->fd < 0) {
		free(tok);
		return NULL;
	}
	/* Never written, never hung up: it reports nothing. */
	if (syscall(SYS_epoll_ctl, kfd, EPOLL_CTL_ADD, tok->fd, &ev) < 0) {
		rp__sys_close(tok->fd);
		free(tok);
		return NULL;
	}
	return tok;
}

/* Under the lock. */
static void rp__ep_off_put(struct rp__ep_off_tok *tok)
{
	if (--tok->refs)
		return;
	rp__sys_close(tok->fd);
	free(tok);
}

void rp__ep_off_end(struct rp__ep_off_tok *tok)
{
	if (!tok)
		return;
	rp__ep_off_take();
	tok->refs++;
	rp__ep_off_put(tok);
	rp__ep_off_give();
}

bool rp__ep_off_leave(struct rp__ep_off_tok *tok, int epnum, int fd)
{
	struct rp__fdent *e = rp__fdent(fd, true);
	bool left = false;

	if (!tok || !e)
		return false;
	rp__ep_off_take();
	/* One record per fd: an fd left out of two epolls is added. */
	if (!e->off) {
		e->off = tok;
		e->off_ep = epnum;
		tok->refs++;
		atomic_fetch_add(&rp__ep_offs, 1);
		left = true;
	}
	rp__ep_off_give();
	return left;
}

/* Under the lock. */
static void rp__ep_off_drop(struct rp__fdent *e)
{
	rp__ep_off_put(e->off);
	e->off = NULL;
	atomic_fetch_sub(&rp__ep_offs, 1);
}

void rp__ep_off_undo(struct rp__ep_off_tok *tok, int fd)
{
	struct rp__fdent *e = rp__fdent(fd, false);

	rp__ep_off_take();
	if (e && tok && e->off == tok)
		rp__ep_off_drop(e);
	rp__ep_off_give();
}

void rp__ep_off_forget(struct rp__fdent *e)
{
	/*
	 * In a handler that interrupted this thread's hold: the record
	 * stays, and a MOD of the number's next file could find it (a close
	 * in a signal handler, during a ctl on a moved instance: left).
	 */
	if (!e || !atomic_load_explicit(&rp__ep_offs, memory_order_relaxed) ||
	    rp__ep_off_held)
		return;
	rp__ep_off_take();
	if (e->off)
		rp__ep_off_drop(e);
	rp__ep_off_give();
}

void rp__ep_off_forget_ep(int epnum)
{
	if (!atomic_load_explicit(&rp__ep_offs, memory_order_relaxed) ||
	    rp__ep_off_held)
		return;
	rp__ep_off_take();
	for (uint32_t c = 0; c < RP__TAB_CHUNKS; c++) {
		struct rp__fdent *chunk = atomic_load(&rp__tab[c]);

		for (uint32_t i = 0; chunk && i < RP__TAB_CHUNK; i++)
			if (chunk[i].off && chunk[i].off_ep == epnum)
				rp__ep_off_drop(&chunk[i]);
	}
	rp__ep_off_give();
}

/*
 * What the kernel's ADD checks before it finds an entry (the caller's
 * event, EFAULT; the rules of EPOLLEXCLUSIVE, EINVAL), asked of a scratch
 * epoll of our own: the program's epoll must not see the fd even for a
 * moment (a waiter there would be handed it). A ring instance is an
 * epoll to the program, which the kernel cannot know.
 */
static int rp__ep_off_add_check(int fd, const struct epoll_event *event)
{
	int sfd = rp__kernel_create(EPOLL_CLOEXEC), ret;

	if (sfd < 0)
		return 0;
	ret = (int)syscall(SYS_epoll_ctl, sfd, EPOLL_CTL_ADD, fd, event);
	ret = ret < 0 ? -errno : 0;
	syscall(SYS_close, sfd);
	if (!ret && (event->events & EPOLLEXCLUSIVE) && rp_epoll_is_ring(fd))
		ret = -EINVAL;
	return ret;
}

bool rp__ep_off_ctl(int epfd, int op, int fd, const struct epoll_event *event,
		    int *ret)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	bool ours = false;

	if (!e)
		return false;
	rp__ep_off_take();
	if (!e->off || e->off_ep != epfd)
		goto out;
	/* The number is another epoll now: the record went with the old. */
	if (!rp__epoll_holds(epfd, e->off->fd)) {
		rp__ep_off_drop(e);
		goto out;
	}
	ours = true;
	switch (op) {
	case EPOLL_CTL_ADD:
		*ret = rp__ep_off_add_check(fd, event);
		if (!*ret)
			*ret = -EEXIST;
		break;
	case EPOLL_CTL_MOD:
		/*
		 * The ADD reads the caller's event (EFAULT if it cannot);
		 * once it did, so can we: what MOD refuses is taken back.
		 */
		if (syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, fd, event) < 0) {
			*ret = -errno;
			break;
		}
		if (event->events & EPOLLEXCLUSIVE) {
			(void)syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_DEL, fd,
				      NULL);
			*ret = -EINVAL;
			break;
		}
		rp__ep_off_drop(e);
		*ret = 0;
		break;
	case EPOLL_CTL_DEL:
		rp__ep_off_drop(e);
		*ret = 0;
		break;
	default:
		ours = false;
	}
out:
	rp__ep_off_give();
	return ours;
}
