// SPDX-License-Identifier: MIT
/*
 * Shared helpers for the epoll conformance suite; see t_epoll.h.
 *
 * Helpers that set things up use poll() rather than epoll to wait, so a
 * broken epoll fails the test that is about it, not the setup of another.
 */
#include "t_epoll.h"

int t_emulated(void)
{
#ifdef RP_T_COMPAT
	return 1;
#else
	/* The preload run uses the plain binary; only the shim differs. */
	const char *v = getenv("RINGPOLL_T_PRELOAD");

	return v && strcmp(v, "1") == 0;
#endif
}

static int t_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur > INT_MAX)
		return INT_MAX;
	return (int)rl.rlim_cur;
}

/*
 * Call @fn for each open fd. Valgrind keeps its own fds above the soft
 * RLIMIT_NOFILE it shows the program, and opens and closes them while the
 * program runs; fds up there are not the test's and are not counted.
 */
static int t_for_each_fd(void (*fn)(int fd, void *arg), void *arg)
{
	int limit = t_fd_limit();
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char *end;
		long fd;

		if (de->d_name[0] == '.')
			continue;
		fd = strtol(de->d_name, &end, 10);
		if (*end || fd == dirfd(d) || fd >= limit)
			continue;
		if (fn)
			fn((int)fd, arg);
		n++;
	}
	closedir(d);
	return n;
}

int t_fd_count(void)
{
	return t_for_each_fd(NULL, NULL);
}

struct t_fd_list {
	char buf[1024];
	size_t len;
};

static void t_fd_describe(int fd, void *arg)
{
	struct t_fd_list *l = arg;
	char path[64], target[128];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	target[n < 0 ? 0 : n] = '\0';
	if (l->len < sizeof(l->buf))
		l->len += snprintf(l->buf + l->len, sizeof(l->buf) - l->len,
				   " %d=%s", fd, target);
}

static int t_fds_at_setup;

static void t_leak_setup(void)
{
	t_fds_at_setup = t_fd_count();
}

/* A test that leaks an fd fails here, listing what is open. */
static void t_leak_teardown(void)
{
	struct t_fd_list l = {.len = 0};
	int n = t_fd_count();

	if (n == t_fds_at_setup)
		return;
	t_for_each_fd(t_fd_describe, &l);
	ck_abort_msg("fd leak: %d open at setup, %d at teardown:%s",
		     t_fds_at_setup, n, l.buf);
}

TCase *t_tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, t_leak_setup, t_leak_teardown);
	tcase_set_timeout(tc, T_TIMEOUT_S);
	return tc;
}

void t_add_unless(TCase *tc, const TTest *tt, const char *why_not)
{
	if (why_not) {
		printf("skip: %s: %s\n", tt->name, why_not);
		fflush(stdout);
		return;
	}
	tcase_add_test(tc, tt);
}

const char *t_bad_pointer_skip(void)
{
#ifdef T_HAVE_VALGRIND_H
	return NULL;
#else
	/* Without the client requests, valgrind would flag the bad pointer. */
	const char *pre = getenv("LD_PRELOAD");

	if (pre && strstr(pre, "vgpreload"))
		return "passes a bad pointer, valgrind.h missing to silence "
		       "valgrind";
	return NULL;
#endif
}

int64_t t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int t_epoll(void)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	ck_assert_int_ge(epfd, 0);
	return epfd;
}

int t_ctl_raw(int epfd, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev;

	/* No uninitialised byte reaches the kernel (valgrind checks). */
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = data;
	return epoll_ctl(epfd, op, fd, &ev);
}

void t_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data)
{
	int ret = t_ctl_raw(epfd, op, fd, events, data);

	ck_assert_msg(ret == 0, "epoll_ctl(%d, %d, %d, 0x%x): %s", epfd, op, fd,
		      events, strerror(errno));
}

int t_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	int ret;

	do {
		ret = epoll_wait(epfd, events, maxevents, timeout);
	} while (ret == -1 && errno == EINTR);
	return ret;
}

void t_close(int fd)
{
	int ret = close(fd);

	ck_assert_msg(ret == 0, "close(%d): %s", fd, strerror(errno));
}

void t_pipe(int fds[2])
{
	ck_assert_int_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
}

void t_socketpair(int type, int sv[2])
{
	int ret =
	    socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);

	ck_assert_int_eq(ret, 0);
}

int t_tcp_listener(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr->sin_port = 0;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

void t_tcp_pair(int *client, int *server)
{
	struct sockaddr_in addr;
	int one = 1;
	int l, c, s, ret;

	l = t_tcp_listener(&addr);
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	ret = connect(c, (struct sockaddr *)&addr, sizeof(addr));
	ck_assert(ret == 0 || errno == EINPROGRESS);
	/* The handshake finishes in softirq context: wait for it. */
	ck_assert_int_eq(t_poll1(l, POLLIN, T_LONG_MS), POLLIN);
	s = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(t_poll1(c, POLLOUT, T_LONG_MS), POLLOUT);
	ck_assert_int_eq(
	    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
	ck_assert_int_eq(
	    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
	t_close(l);
	*client = c;
	*server = s;
}

void t_write(int fd, size_t len)
{
	static const char filler[4096] = {'x'};

	while (len) {
		size_t chunk = len < sizeof(filler) ? len : sizeof(filler);
		ssize_t n = write(fd, filler, chunk);

		ck_assert_msg(n == (ssize_t)chunk, "write(%d, %zu): %zd %s", fd,
			      chunk, n, n < 0 ? strerror(errno) : "");
		len -= chunk;
	}
}

size_t t_drain(int fd)
{
	static char buf[65536];
	size_t total = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			total += n;
			continue;
		}
		if (n == 0)
			return total;
		ck_assert_msg(errno == EAGAIN, "read(%d): %s", fd,
			      strerror(errno));
		return total;
	}
}

size_t t_fill(int fd)
{
	static const char buf[65536];
	/*
	 * Big writes first to be quick, then single bytes: a pipe can take
	 * a byte into a partly used page after it refused 64 KiB.
	 */
	static const size_t chunks[] = {sizeof(buf), 1};
	size_t total = 0;
	unsigned int i;

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		for (;;) {
			ssize_t n = write(fd, buf, chunks[i]);

			if (n > 0) {
				total += n;
				continue;
			}
			ck_assert_msg(errno == EAGAIN, "write(%d): %s", fd,
				      strerror(errno));
			break;
		}
	}
	return total;
}

int t_poll1(int fd, short events, int timeout)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int ret;

	do {
		ret = poll(&pfd, 1, timeout);
	} while (ret == -1 && errno == EINTR);
	ck_assert_int_ge(ret, 0);
	return ret ? pfd.revents : 0;
}

static int t_is_wait_syscall(long nr, bool futex)
{
	if (nr == __NR_futex)
		return futex;
	switch (nr) {
#ifdef __NR_epoll_wait
	case __NR_epoll_wait:
#endif
	case __NR_epoll_pwait:
#ifdef __NR_epoll_pwait2
	case __NR_epoll_pwait2:
#endif
#ifdef __NR_io_uring_enter
	case __NR_io_uring_enter:
#endif
		return 1;
	}
	return 0;
}

/*
 * Read /proc/@pid/task/@tid/@file into @buf; returns the length, or -1.
 */
static ssize_t t_read_task_file(pid_t pid, pid_t tid, const char *file,
				char *buf, size_t len)
{
	char path[96];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)pid, (int)tid,
		 file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/*
 * 1 if the task sleeps in a wait system call, 0 if not yet, -1 if that
 * cannot be told from its syscall file.
 *
 * The kernel shows a syscall number there only while the task is off the
 * CPU inside that call, i.e. asleep on its wait queue; a running task
 * shows "running".
 */
static int t_task_in_wait_syscall(pid_t pid, pid_t tid, bool futex)
{
	char buf[128], *end;
	long nr;

	if (t_read_task_file(pid, tid, "syscall", buf, sizeof(buf)) <= 0)
		return -1;
	nr = strtol(buf, &end, 10);
	return end != buf && t_is_wait_syscall(nr, futex);
}

/*
 * Fallback where the syscall file is not readable (ptrace restrictions,
 * no CONFIG_HAVE_ARCH_TRACEHOOK): the task is in interruptible sleep.
 */
static int t_task_sleeping(pid_t pid, pid_t tid)
{
	char buf[512], *paren;

	if (t_read_task_file(pid, tid, "stat", buf, sizeof(buf)) <= 0)
		return -1;
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && paren[2] == 'S';
}

static int t_task_blocked_in(pid_t pid, pid_t tid, bool futex)
{
	int64_t deadline = t_now_ms() + T_LONG_MS;
	const struct timespec tick = {0, 1000000};
	int ret;

	do {
		ret = t_task_in_wait_syscall(pid, tid, futex);
		if (ret < 0)
			ret = t_task_sleeping(pid, tid);
		if (ret < 0)
			return -1;
		if (ret)
			return 0;
		nanosleep(&tick, NULL);
	} while (t_now_ms() < deadline);
	return -1;
}

int t_task_blocked(pid_t pid, pid_t tid)
{
	return t_task_blocked_in(pid, tid, true);
}

int t_task_in_epoll_wait(pid_t pid, pid_t tid)
{
	return t_task_blocked_in(pid, tid, false);
}

int t_fds_exhaust(struct t_fds *f)
{
	struct rlimit rl;
	int fd;

	f->n = 0;
	if (getrlimit(RLIMIT_NOFILE, &f->old) < 0)
		return -1;
	rl = f->old;
	rl.rlim_cur = (rlim_t)t_fd_count() + 16;
	if (rl.rlim_cur > f->old.rlim_cur)
		rl.rlim_cur = f->old.rlim_cur;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	while (f->n < (int)(sizeof(f->fd) / sizeof(f->fd[0]))) {
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return errno == EMFILE ? 0 : -1;
		f->fd[f->n++] = fd;
	}
	return -1;
}

void t_fds_release(struct t_fds *f)
{
	while (f->n > 0)
		close(f->fd[--f->n]);
	setrlimit(RLIMIT_NOFILE, &f->old);
}

int t_is_kernel_epoll(int fd)
{
	char path[64], link[64] = {0};

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (readlink(path, link, sizeof(link) - 1) < 0)
		return 0;
	return strcmp(link, "anon_inode:[eventpoll]") == 0;
}

int t_block_io_uring(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -1;
	return 0;
}

void t_reap_child(pid_t pid)
{
	int status, ret;

	do {
		ret = waitpid(pid, &status, 0);
	} while (ret == -1 && errno == EINTR);
	ck_assert_int_eq(ret, pid);
	ck_assert_msg(WIFEXITED(status), "child died, status 0x%x", status);
	ck_assert_msg(WEXITSTATUS(status) == 0, "child failed at step %d",
		      WEXITSTATUS(status));
}

void t_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	ck_assert_int_eq(pthread_create(t, NULL, fn, arg), 0);
}

void t_thread_join(pthread_t t)
{
	ck_assert_int_eq(pthread_join(t, NULL), 0);
}
