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
    [ "$(grep -c "ringpoll: using the kernel's epoll: io_uring_setup failed" \
        "$out/sec.txt")" = 1 ]; then
	ok "seccomp-blocked io_uring_setup falls back, said once"
else
	no "seccomp-blocked io_uring_setup falls back, said once"
	cat "$out/sec.txt"
fi

# 4. The whole conformance suite under the seccomp fallback (kernel truth).
if timeout -k 5 300 "$B/tests/seccomp-run" "$B/ringpoll-run" "$B/tests/epoll-kernel" \
    > "$out/secconf.txt" 2>&1; then
	ok "conformance suite passes on the fallback"
else
	no "conformance suite passes on the fallback"
	grep -E ':F:|:E:' "$out/secconf.txt" | head
fi

# 5. --stats prints the counters at exit.
if $to "$B/ringpoll-run" --stats "$probe" > "$out/stats.txt" 2>&1 &&
    grep -Eq '^ringpoll\[[0-9]+\]: waits [1-9][0-9]* enters [0-9]+ .*syscalls_saved -?[0-9]+$' \
        "$out/stats.txt"; then
	ok "--stats prints counters at exit"
else
	no "--stats prints counters at exit"; cat "$out/stats.txt"
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

# 6. Bad usage: a clear message and a non-zero exit.
$to "$B/ringpoll-run" > "$out/usage.txt" 2>&1
rc=$?
if [ $rc = 2 ] && grep -q usage "$out/usage.txt"; then
	ok "ringpoll-run without a command says usage"
else
	no "ringpoll-run without a command says usage (rc $rc)"
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
	sort | tr '\n' ' ')
want="__close close close_range dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait vfork "
if [ "$syms" = "$want" ]; then
	ok "the shim exports only what it interposes"
else
	no "the shim exports only what it interposes: $syms"
fi

echo "$pass passed, $fail failed"
[ $fail = 0 ]
