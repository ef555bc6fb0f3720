#!/bin/sh
# The shim's settings and its fallback, checked from the outside.
# Usage: tests/preload/check.sh BUILD_DIR
set -u
B=${1:-build}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
no() { fail=$((fail + 1)); echo "not ok - $1"; }
out=$B/tests/preload-out
mkdir -p "$out"
# Every command here has a hard time limit.
to="timeout -k 5 60"

# A small epoll program: prints what its epoll fd is, and echoes a pipe.
probe="$B/tests/epoll-probe"

# 1. Under ringpoll-run the epoll fd is an io_uring fd.
if $to "$B/ringpoll-run" "$probe" > "$out/run.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[io_uring\] event=ok' "$out/run.txt"; then
	ok "ringpoll-run puts epoll on io_uring"
else
	no "ringpoll-run puts epoll on io_uring"; cat "$out/run.txt"
fi

# 2. RINGPOLL_DISABLE=1: the kernel's epoll, and the program still works.
if RINGPOLL_DISABLE=1 $to "$B/ringpoll-run" "$probe" > "$out/dis.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[eventpoll\] event=ok' "$out/dis.txt"; then
	ok "RINGPOLL_DISABLE=1 passes through to the kernel's epoll"
else
	no "RINGPOLL_DISABLE=1 passes through to the kernel's epoll"
	cat "$out/dis.txt"
fi

# 2b. The same for a program recompiled with ringpoll_compat.h.
if $to "$B/tests/epoll-probe-rp" > "$out/rp.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[io_uring\] event=ok' "$out/rp.txt" &&
    RINGPOLL_DISABLE=1 $to "$B/tests/epoll-probe-rp" > "$out/rpdis.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[eventpoll\] event=ok' "$out/rpdis.txt"; then
	ok "rp_epoll_* on io_uring, and on the kernel with RINGPOLL_DISABLE=1"
else
	no "rp_epoll_* on io_uring, and on the kernel with RINGPOLL_DISABLE=1"
	cat "$out/rp.txt" "$out/rpdis.txt"
fi

# 2c. A setting is on only when it is exactly 1.
if RINGPOLL_DISABLE=yes $to "$B/tests/epoll-probe-rp" > "$out/rpyes.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[io_uring\] event=ok' "$out/rpyes.txt"; then
	ok "RINGPOLL_DISABLE=yes is not 1: ignored"
else
	no "RINGPOLL_DISABLE=yes is not 1: ignored"
fi

# 3. io_uring_setup blocked by seccomp: fallback, said once with DEBUG.
if RINGPOLL_DEBUG=1 $to "$B/tests/seccomp-run" "$B/ringpoll-run" "$probe" \
    > "$out/sec.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[eventpoll\] event=ok' "$out/sec.txt" &&
    [ "$(grep -c "^ringpoll\[[0-9]*\]: epoll-probe: epoll on the kernel's epoll: io_uring_setup failed" \
        "$out/sec.txt")" = 1 ]; then
	ok "seccomp-blocked io_uring_setup falls back, said once"
else
	no "seccomp-blocked io_uring_setup falls back, said once"
	cat "$out/sec.txt"
fi

# 3b. RINGPOLL_DEBUG=1 says once that epoll runs on io_uring, and on which
# setup (DEFER_TASKRUN owned by the waiting thread; COOP_TASKRUN before
# 6.7, plain before 5.19).
if RINGPOLL_DEBUG=1 "$B/ringpoll-run" "$probe" > "$out/dbg.txt" 2>&1 &&
    [ "$(grep -Ec '^ringpoll\[[0-9]+\]: epoll-probe: epoll on io_uring, setup (DEFER_TASKRUN|COOP_TASKRUN|PLAIN)' \
        "$out/dbg.txt")" = 1 ]; then
	ok "RINGPOLL_DEBUG=1 says the shim is active, and its ring setup"
else
	no "RINGPOLL_DEBUG=1 says the shim is active, and its ring setup"
	cat "$out/dbg.txt"
fi

# 4. The whole conformance suite under the seccomp fallback (kernel truth).
if timeout -k 5 300 "$B/tests/seccomp-run" "$B/ringpoll-run" "$B/tests/epoll-kernel" \
    > "$out/secconf.txt" 2>&1; then
	ok "conformance suite passes on the fallback"
else
	no "conformance suite passes on the fallback"
	grep -E ':F:|:E:' "$out/secconf.txt" | head
fi

# 5. --stats: one key=value line per process that loaded the shim, the
# ones that used no epoll too (sh leaves through _exit), and the two
# syscall counts.
stats_re='^ringpoll-stats pid=[0-9]+ prog=epoll-probe backend=io_uring waits=[1-9][0-9]* ctls=[1-9][0-9]* enters=[0-9]+ .* kernel_epoll_syscalls=[0-9]+ ringpoll_syscalls=[0-9]+$'
if $to "$B/ringpoll-run" --stats "$probe" > "$out/stats.txt" 2>&1 &&
    grep -Eq "$stats_re" "$out/stats.txt"; then
	ok "--stats prints counters at exit"
else
	no "--stats prints counters at exit"; cat "$out/stats.txt"
fi
if "$B/ringpoll-run" --stats sh -c "\"$probe\"; exit 0" \
    > "$out/stats-sh.txt" 2>&1 &&
    grep -Eq "$stats_re" "$out/stats-sh.txt" &&
    grep -Eq '^ringpoll-stats pid=[0-9]+ prog=sh backend=none waits=0 ctls=0 ' \
        "$out/stats-sh.txt" &&
    [ "$(grep -c '^ringpoll-stats ' "$out/stats-sh.txt")" = 2 ]; then
	ok "--stats: a line for each process, backend=none without epoll"
else
	no "--stats: a line for each process, backend=none without epoll"
	cat "$out/stats-sh.txt"
fi

# 5b. A program that spawns children with vfork (Python's subprocess):
# what the child closes before exec must not touch the parent's instances.
if command -v python3 >/dev/null 2>&1; then
	cat > "$out/sub.py" <<'PY'
import asyncio, os
async def main():
    outs = []
    for i in range(20):
        p = await asyncio.create_subprocess_exec(
            'echo', str(i), stdout=asyncio.subprocess.PIPE)
        o, _ = await p.communicate()
        outs.append(o.decode().strip())
    ring = 0
    for f in os.listdir('/proc/self/fd'):
        try:
            ring += 'io_uring' in os.readlink('/proc/self/fd/' + f)
        except OSError:
            pass  # the listing's own fd, closed by now
    print('ok' if outs == [str(i) for i in range(20)] and ring else 'bad', ring)
asyncio.run(main())
PY
	if $to "$B/ringpoll-run" python3 "$out/sub.py" > "$out/sub.txt" 2>&1 &&
	    grep -q '^ok ' "$out/sub.txt"; then
		ok "asyncio subprocesses (vfork) under ringpoll-run"
	else
		no "asyncio subprocesses (vfork) under ringpoll-run"
		tail -5 "$out/sub.txt"
	fi
else
	echo "skip: preload-asyncio-subprocesses: python3 not installed"
fi

# 5c. A server that exits without closing its listener: the port is free
# at once, as with the kernel's epoll (a pending poll holds the socket).
port=$((23000 + $$ % 1000))
bad=0
for i in 1 2 3 4 5; do
	$to "$B/ringpoll-run" "$B/tests/relisten" $port child &&
		$to "$B/tests/relisten" $port check 2>> "$out/relisten.txt" || bad=1
done
if [ $bad = 0 ]; then
	ok "a listener is released when its process exits"
else
	no "a listener is released when its process exits"
	cat "$out/relisten.txt"
fi

# 5d. A server killed by SIGKILL: no code of ours runs, and the ring's
# polls are cancelled by the kernel's asynchronous ring teardown, after the
# process is reaped: the listener stays bound for milliseconds (README,
# "Differences from kernel epoll", 13). The kernel's epoll frees it at
# once; ringpoll within the bound below.
if timeout 60 "$B/tests/relisten" $port killed 10 0 > "$out/killed.txt" 2>&1
then
	ok "kernel epoll: a SIGKILLed listener's port binds at once"
else
	no "kernel epoll: a SIGKILLed listener's port binds at once"
	cat "$out/killed.txt"
fi
if timeout 60 "$B/tests/relisten" $port killed 10 2000 "$B/ringpoll-run" \
	> "$out/killed-rp.txt" 2>&1; then
	ok "ringpoll: a SIGKILLed listener's port binds within 2 s:\
 $(cat "$out/killed-rp.txt")"
else
	no "ringpoll: a SIGKILLed listener's port binds within 2 s"
	cat "$out/killed-rp.txt"
fi

# 6. The launcher's conventions: --help on stdout with status 0, usage
# errors on stderr with status 2, -- ends the options, options end at
# the command.
$to "$B/ringpoll-run" > "$out/usage.txt" 2> "$out/usage.err"
rc=$?
if [ $rc = 2 ] && [ ! -s "$out/usage.txt" ] &&
    grep -q 'no command given' "$out/usage.err" &&
    grep -q -- '--help' "$out/usage.err"; then
	ok "ringpoll-run without a command: stderr, status 2"
else
	no "ringpoll-run without a command: stderr, status 2 (rc $rc)"
fi
"$B/ringpoll-run" --no-such-option true > "$out/bad.txt" 2> "$out/bad.err"
rc=$?
if [ $rc = 2 ] && [ ! -s "$out/bad.txt" ] && [ -s "$out/bad.err" ]; then
	ok "ringpoll-run with an unknown option: stderr, status 2"
else
	no "ringpoll-run with an unknown option: stderr, status 2 (rc $rc)"
fi
"$B/ringpoll-run" --help > "$out/help.txt" 2> "$out/help.err"
rc=$?
if [ $rc = 0 ] && [ ! -s "$out/help.err" ] &&
    grep -q '^Usage: ringpoll-run' "$out/help.txt" &&
    "$B/ringpoll-run" -h | cmp -s - "$out/help.txt"; then
	ok "ringpoll-run --help and -h: stdout, status 0"
else
	no "ringpoll-run --help and -h: stdout, status 0 (rc $rc)"
fi
if [ "$("$B/ringpoll-run" --version)" = "$("$B/ringpoll-run" -V)" ] &&
    "$B/ringpoll-run" --version | grep -Eq '^ringpoll-run \(ringpoll\) [0-9]+\.[0-9]+\.[0-9]+$'
then
	ok "ringpoll-run --version and -V"
else
	no "ringpoll-run --version and -V"
fi
# The first word that is not an option is the command: its own --help is
# its own, and -- lets a command start with a dash.
if "$B/ringpoll-run" sh -c 'echo "$1"' sh --help > "$out/cmdopt.txt" &&
    [ "$(cat "$out/cmdopt.txt")" = --help ] &&
    "$B/ringpoll-run" -q -- sh -c 'echo "$RINGPOLL_DEBUG."' \
	> "$out/dashdash.txt" && [ "$(cat "$out/dashdash.txt")" = . ]; then
	ok "options end at the command, and at --"
else
	no "options end at the command, and at --"
fi
# -v sets RINGPOLL_DEBUG=1 and names the library; -q clears an inherited
# RINGPOLL_DEBUG and RINGPOLL_STATS; -q --stats keeps the stats.
if "$B/ringpoll-run" -v "$probe" > "$out/v.txt" 2>&1 &&
    grep -q '^ringpoll-run: LD_PRELOAD=.*libringpoll-preload.so' "$out/v.txt" &&
    grep -q 'epoll-probe: epoll on io_uring' "$out/v.txt" &&
    RINGPOLL_DEBUG=1 RINGPOLL_STATS=1 "$B/ringpoll-run" -q "$probe" \
	> "$out/q.txt" 2>&1 && ! grep -q ringpoll "$out/q.txt" &&
    "$B/ringpoll-run" -q --stats "$probe" > "$out/qs.txt" 2>&1 &&
    grep -q '^ringpoll-stats ' "$out/qs.txt"; then
	ok "-v says what it does, -q silences, -q --stats still counts"
else
	no "-v says what it does, -q silences, -q --stats still counts"
	cat "$out/v.txt" "$out/q.txt" "$out/qs.txt"
fi
# -c/--completion sets RINGPOLL_COMPLETION=1, and -q, a mode's business
# not a message's, leaves it set; without it the environment is untouched.
say='echo "$RINGPOLL_COMPLETION."'
if [ "$("$B/ringpoll-run" --completion sh -c "$say")" = 1. ] &&
    [ "$("$B/ringpoll-run" -c -q sh -c "$say")" = 1. ] &&
    [ "$(env -u RINGPOLL_COMPLETION "$B/ringpoll-run" sh -c "$say")" = . ]
then
	ok "--completion and -c set RINGPOLL_COMPLETION=1, -q keeps it"
else
	no "--completion and -c set RINGPOLL_COMPLETION=1, -q keeps it"
fi
# A launcher away from its library says where it looked, with status 127.
rm -rf "$out/away" && mkdir -p "$out/away/bin" &&
    cp "$B/ringpoll-run" "$out/away/bin/"
"$out/away/bin/ringpoll-run" true > "$out/away.txt" 2>&1
rc=$?
if [ $rc = 127 ] &&
    grep -q 'cannot find libringpoll-preload.so' "$out/away.txt" &&
    grep -q "^  /.*/away/bin/libringpoll-preload.so: " "$out/away.txt" &&
    grep -q "^  /.*/away/bin/../lib/libringpoll-preload.so: " \
	"$out/away.txt"; then
	ok "a launcher without its library lists where it looked (127)"
else
	no "a launcher without its library lists where it looked (rc $rc)"
	cat "$out/away.txt"
fi
# ../lib relative to the launcher: an install moved elsewhere still works.
mkdir -p "$out/away/lib" && cp "$B/libringpoll-preload.so" "$out/away/lib/"
if "$out/away/bin/ringpoll-run" "$probe" > "$out/away2.txt" 2>&1 &&
    grep -q 'epfd=anon_inode:\[io_uring\] event=ok' "$out/away2.txt"; then
	ok "the launcher finds its library in ../lib"
else
	no "the launcher finds its library in ../lib"; cat "$out/away2.txt"
fi
$to "$B/ringpoll-run" /nonexistent/cmd > "$out/nx.txt" 2>&1
rc=$?
if [ $rc = 127 ] && grep -q 'ringpoll-run: /nonexistent/cmd' "$out/nx.txt"
then
	ok "ringpoll-run with a missing command exits 127"
else
	no "ringpoll-run with a missing command exits 127 (rc $rc)"
fi

# 7. Only the interposed symbols are exported.
syms=$(nm -D --defined-only "$B/libringpoll-preload.so" | awk '{print $3}' |
	LC_ALL=C sort | tr '\n' ' ')
want="_Exit __close __open64_2 __open_2 __openat64_2 __openat_2 __poll_chk __ppoll_chk __read_chk __recv_chk __recvfrom_chk _exit accept accept4 close close_range creat creat64 dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd fcntl fcntl64 getsockopt inotify_init inotify_init1 ioctl memfd_create open open64 openat openat64 pipe pipe2 poll ppoll pselect read readv recv recvfrom recvmsg select send sendfile sendfile64 sendmsg sendto setsockopt shutdown signalfd socket socketpair splice timerfd_create vfork write writev "
if [ "$syms" = "$want" ]; then
	ok "the shim exports only what it interposes"
else
	no "the shim exports only what it interposes: $syms"
fi

echo "$pass passed, $fail failed"
[ $fail = 0 ]
