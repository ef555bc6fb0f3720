/* SPDX-License-Identifier: MIT */
/*
 * The server's report: one line of key=value pairs, so that a person, a
 * shell script and the load generator can all read it:
 *
 *   rpbench-stats mode=epoll backend=epoll pid=... threads=1 conns=64
 *   bytes=... reads=... writes=... accepts=... closes=... waits=... ctls=...
 *   other=... enters=... ctl_syscalls=... lib_io=... syscalls=...
 *   cpu_us=... utime_us=... stime_us=...
 *
 * syscalls is what the server's data path entered the kernel for (see
 * rpb_report_take); cpu_us is getrusage(RUSAGE_SELF), the whole process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

/* A control request is answered at once; more means the server hangs. */
#define RPB_FETCH_TIMEOUT_MS 3000

/* clang-format off */
#define RPB_U64_FIELDS(X)                                                   \
	X(threads) X(conns) X(bytes) X(reads) X(writes) X(accepts)          \
	X(closes) X(waits) X(ctls) X(other) X(enters) X(ctl_syscalls)       \
	X(lib_io) X(syscalls) X(cpu_us) X(utime_us) X(stime_us)
/* clang-format on */

int rpb_report_format(const struct rpb_report *r, char *buf, size_t len)
{
	size_t off;
	int n;

	n = snprintf(buf, len, "rpbench-stats mode=%s backend=%s pid=%ld",
		     r->mode, r->backend, r->pid);
	off = n > 0 ? (size_t)n : 0;
#define RPB_FMT(f)                                                             \
	if (off < len) {                                                       \
		n = snprintf(buf + off, len - off, " " #f "=%llu",             \
			     (unsigned long long)r->f);                        \
		off += n > 0 ? (size_t)n : 0;                                  \
	}
	RPB_U64_FIELDS(RPB_FMT)
#undef RPB_FMT
	if (off + 1 < len) {
		buf[off++] = '\n';
		buf[off] = 0;
	}
	return (int)(off < len ? off : len - 1);
}

/* The value of " key=" in line, or NULL. */
static const char *rpb_field(const char *line, const char *key)
{
	size_t klen = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == line || p[-1] == ' ') && p[klen] == '=')
			return p + klen + 1;
		p += klen;
	}
	return NULL;
}

static void rpb_word(const char *v, char *out, size_t len)
{
	size_t n = v ? strcspn(v, " \n") : 0;

	if (n >= len)
		n = len - 1;
	if (v)
		memcpy(out, v, n);
	out[n] = 0;
}

int rpb_report_parse(const char *line, struct rpb_report *r)
{
	const char *v;

	memset(r, 0, sizeof(*r));
	if (strncmp(line, "rpbench-stats ", 14) != 0)
		return -EINVAL;
	rpb_word(rpb_field(line, "mode"), r->mode, sizeof(r->mode));
	rpb_word(rpb_field(line, "backend"), r->backend, sizeof(r->backend));
	v = rpb_field(line, "pid");
	r->pid = v ? strtol(v, NULL, 10) : 0;
#define RPB_PARSE(f)                                                           \
	v = rpb_field(line, #f);                                               \
	if (!v)                                                                \
		return -EINVAL;                                                \
	r->f = strtoull(v, NULL, 10);
	RPB_U64_FIELDS(RPB_PARSE)
#undef RPB_PARSE
	return 0;
}

/* Asks host:port for a report; err says why not. */
int rpb_report_fetch(const char *host, int port, struct rpb_report *r,
		     char *err, size_t errlen)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct pollfd p;
	char line[1024];
	size_t got = 0;
	ssize_t n;
	int fd, ret = -EIO;

	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		snprintf(err, errlen, "bad address %s", host);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "control port %s:%d: %s", host, port,
			 strerror(errno));
		goto out;
	}
	if (write(fd, "stats\n", 6) != 6) {
		ret = -errno;
		snprintf(err, errlen, "control port: write: %s",
			 strerror(errno));
		goto out;
	}
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	while (got < sizeof(line) - 1) {
		if (poll(&p, 1, RPB_FETCH_TIMEOUT_MS) <= 0) {
			snprintf(err, errlen,
				 "control port: no answer in %d ms",
				 RPB_FETCH_TIMEOUT_MS);
			ret = -ETIMEDOUT;
			goto out;
		}
		n = read(fd, line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	line[got] = 0;
	ret = rpb_report_parse(line, r);
	if (ret < 0)
		snprintf(err, errlen, "control port: not a report: '%.60s'",
			 line);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}
