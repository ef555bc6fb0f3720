/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "t_util.h"

static int t_fds_before;

int t_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static void t_leak_setup(void)
{
	t_fds_before = t_count_fds();
}

static void t_leak_teardown(void)
{
	ck_assert_int_eq(t_count_fds(), t_fds_before);
}

TCase *t_tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, t_under_valgrind() ? T_TIMEOUT * 10 : T_TIMEOUT);
	tcase_add_checked_fixture(tc, t_leak_setup, t_leak_teardown);
	return tc;
}

void t_skip(const char *name, const char *why)
{
	printf("skip: %s: %s\n", name, why);
}

bool t_under_valgrind(void)
{
	return getenv("RP_T_VALGRIND") != NULL;
}

struct rp_loop *t_loop_cfg(const struct rp_loop_config *cfg)
{
	struct rp_loop *loop = NULL;
	int ret = rp_loop_new(&loop, cfg);

	ck_assert_msg(ret == 0, "rp_loop_new: %s", strerror(-ret));
	return loop;
}

struct rp_loop *t_loop(int model)
{
	struct rp_loop_config cfg = { .model = (enum rp_model)model };

	return t_loop_cfg(&cfg);
}

void t_run_until(struct rp_loop *loop, const volatile int *flag,
		 int timeout_ms)
{
	uint64_t end = rp_loop_now_ms(loop) + (uint64_t)timeout_ms;

	while (!*flag) {
		uint64_t now = rp_loop_now_ms(loop);
		int ret;

		ck_assert_msg(now < end, "timed out waiting for the loop");
		ret = rp_loop_run_once(loop, (int)(end - now));
		ck_assert_msg(ret >= 0, "run_once: %s", strerror(-ret));
	}
}

bool t_fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

bool t_nofile(unsigned n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return false;
	if (rl.rlim_cur >= n)
		return true;
	if (rl.rlim_max < n)
		rl.rlim_max = n; /* root may raise it, up to fs.nr_open */
	rl.rlim_cur = n;
	return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

void t_socketpair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
						     SOCK_CLOEXEC,
				    0, sv),
			 0);
}

void t_pipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

int t_listener(struct sockaddr_storage *addr, socklen_t *len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)addr;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memset(addr, 0, sizeof(*addr));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof(*in);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)addr, *len), 0);
	ck_assert_int_eq(listen(fd, 128), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, len), 0);
	return fd;
}

bool t_setup_works(enum rp_setup setup)
{
	struct rp_loop_config cfg = { .setup = setup };
	struct rp_loop *loop;

	if (rp_loop_new(&loop, &cfg) < 0)
		return false;
	rp_loop_free(loop);
	return true;
}

void t_done_cb(struct rp_loop *loop, rp_source src, ssize_t res, void *user)
{
	struct t_done *d = user;

	(void)loop;
	d->calls++;
	d->res = res;
	d->src = src;
	d->fd_open_at_call = d->fd >= 0 ? t_fd_open(d->fd) : -1;
}
