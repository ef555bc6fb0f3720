/* SPDX-License-Identifier: MIT */
/*
 * Carried registrations: bytes received ahead that a kernel epoll cannot
 * see.
 *
 * An instance becomes the kernel's epoll (a second waiting thread, a
 * nesting: rp__ep_go_kernel) while completion sockets registered in it
 * hold bytes the program has not read. Those bytes left the kernel's
 * socket with our recv, so the kernel's epoll, which polls the socket,
 * would not report them: a level-triggered server would sleep on them
 * for good (cmode nested_keeps_bytes, second_waiter_*).
 *
 * So the socket's registration is carried: an eventfd, always readable,
 * is registered in the kernel's epoll in its place, with the program's
 * interest and data, and the socket itself is not, until the program has
 * read the bytes; then the eventfd goes and the socket's registration
 * comes back (ADD, which reports at once what the kernel's socket holds
 * by then). The kernel's epoll then reports as it would have: level,
 * edge (one edge for the bytes) and one-shot are its own, and so is its
 * readiness to poll(2), to a thread asleep in it, and to an epoll it is
 * nested in. EPOLLOUT is reported while carried (the eventfd is writable,
 * and so, in the mode, is nearly always the socket): spurious at worst.
 * An EPOLLHUP or EPOLLRDHUP comes after the bytes, as the kernel's does.
 *
 * A ctl of the program on a carried fd is made on the stand-in
 * (rp__cs_carry_ctl): MOD changes its interest, DEL removes it, ADD finds
 * it there (EEXIST). The stand-in is an fd, and the instance then costs
 * one more per such socket, until its bytes are read.
 *
 * All under rp__cs_orphan_lock: a carried socket is an orphan.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "epoff.h"
#include "epreg.h"

atomic_uint rp__cs_carries;

void rp__cs_carry(struct rp__cs *cs, int kfd, int epnum, int fd,
		  uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	struct rp__fdent *e = rp__fdent(fd, false);
	int efd;

	/* Still this socket's number, with bytes of ours, not carried. */
	if (!e || atomic_load(&e->cs) != cs || !atomic_load(&cs->orphan) ||
	    !cs->rx_len || cs->carry_fd1)
		return;
	efd = (int)syscall(SYS_eventfd2, 1, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return; /* no fd for it: the socket's own registration */
	if (syscall(SYS_epoll_ctl, kfd, EPOLL_CTL_ADD, efd, &ev) < 0) {
		rp__sys_close(efd);
		return;
	}
	(void)syscall(SYS_epoll_ctl, kfd, EPOLL_CTL_DEL, fd, NULL);
	cs->carry_fd1 = efd + 1;
	cs->carry_ep = epnum;
	cs->carry_num = fd;
	cs->carry_events = events;
	cs->carry_data = data;
	atomic_fetch_add(&rp__cs_carries, 1);
}

void rp__cs_uncarry(struct rp__cs *cs, bool readd)
{
	struct epoll_event ev = { .events = cs->carry_events,
				  .data.u64 = cs->carry_data };
	int efd = cs->carry_fd1 - 1;

	if (!cs->carry_fd1)
		return;
	cs->carry_fd1 = 0;
	atomic_fetch_sub(&rp__cs_carries, 1);
	/*
	 * The stand-in first (its close takes it out of the epoll): a wait
	 * in between sees neither, and there is nothing to see, the bytes
	 * being read; the ADD then reports what came since.
	 */
	readd = readd && rp__epoll_holds(cs->carry_ep, efd) &&
		rp__cs_names(cs, cs->carry_num);
	rp__sys_close(efd);
	if (readd)
		(void)syscall(SYS_epoll_ctl, cs->carry_ep, EPOLL_CTL_ADD,
			      cs->carry_num, &ev);
}

bool rp__cs_carry_ctl(int epfd, int op, int fd, const void *event, int *ret)
{
	struct rp__fdent *e = rp__fdent(fd, false);
	struct rp__cs *cs = e ? atomic_load(&e->cs) : NULL;
	struct epoll_event ev;
	bool ours = false;

	if (!cs)
		return false;
	pthread_mutex_lock(&rp__cs_orphan_lock);
	if (atomic_load(&e->cs) != cs || !atomic_load(&cs->orphan) ||
	    !cs->carry_fd1 || cs->carry_ep != epfd || cs->carry_num != fd ||
	    !rp__epoll_holds(epfd, cs->carry_fd1 - 1))
		goto out;
	ours = true;
	switch (op) {
	case EPOLL_CTL_ADD:
		*ret = -EEXIST;
		break;
	case EPOLL_CTL_MOD:
		/*
		 * The kernel reads the caller's event (EFAULT if it cannot);
		 * once it did, so can we.
		 */
		if (syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_MOD,
			    cs->carry_fd1 - 1, event) < 0) {
			*ret = -errno;
			break;
		}
		ev = *(const struct epoll_event *)event;
		cs->carry_events = ev.events;
		cs->carry_data = ev.data.u64;
		*ret = 0;
		break;
	case EPOLL_CTL_DEL:
		rp__cs_uncarry(cs, false);
		*ret = 0;
		break;
	default:
		ours = false;
	}
out:
	pthread_mutex_unlock(&rp__cs_orphan_lock);
	return ours;
}

void rp__cs_carry_child(struct rp__cs *cs)
{
	if (!cs->carry_fd1)
		return;
	rp__sys_close(cs->carry_fd1 - 1);
	cs->carry_fd1 = 0;
	atomic_fetch_sub(&rp__cs_carries, 1);
}
