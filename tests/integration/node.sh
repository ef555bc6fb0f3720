#!/bin/bash
# Node.js (libuv) under $RUNNER: programs whose libuv loops close their epoll
# fds with syscall(SYS_close), behind the shim's back (execSync's private
# loop, worker_threads' loops). They hung at 100% CPU under the shim when
# the number came back as another fd. Each must finish within its bound and
# print its result. And a net echo server (echo-server.js) that 20 python3
# clients check byte for byte. Under the launcher RINGPOLL_STATS=1 must show
# io_uring (and in the completion mode, check_cs: that the mode took the
# sockets).
IT_NAME=node
. "$(dirname "$0")/lib.sh"
M=$(mode_label)
JS=$(cd "$(dirname "$0")/node" && pwd)

# shellcheck disable=SC2086
check "$M: execSync, then a net server: 10 round trips" \
    bash -c "timeout -k 5 30 $RUNNER node '$JS/execsync-then-listen.js' |
        grep -qx '10 round trips ok'"
# shellcheck disable=SC2086
check "$M: 4 worker_threads, each a loop of its own, echo through the main one" \
    bash -c "N=2 W=4 timeout -k 5 30 $RUNNER node '$JS/node-workers.js' |
        grep -qx 'workers ok,ok,ok,ok'"

# an echo server: 20 connections at once stream random bytes in random
# chunk sizes, half-close, and check every byte echoed and the EOF after it
cat >"$TMPD/client.py" <<'EOF'
import os, random, socket, sys, threading

port, nconn = int(sys.argv[1]), int(sys.argv[2])
errors, total = [], []

def one(i):
    try:
        rnd = random.Random(i)
        data = os.urandom(rnd.choice([rnd.randint(1, 1000), rnd.randint(1000, 1 << 20)]))
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        def send():
            p = 0
            while p < len(data):
                n = rnd.choice([1, rnd.randint(2, 100), rnd.randint(100, 8192), rnd.randint(8192, 70000)])
                s.sendall(data[p:p + n])
                p += n
            s.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=send)
        t.start()
        got = bytearray()
        while True:
            b = s.recv(rnd.choice([1, rnd.randint(2, 4096), 65536]))
            if not b:
                break
            got += b
        t.join()
        s.close()
        if got != data:
            m = min(len(got), len(data))
            d = next((j for j in range(m) if got[j] != data[j]), m)
            errors.append("conn %d: %d bytes, want %d, first difference at %d" % (i, len(got), len(data), d))
        total.append(len(data))
    except Exception as e:
        errors.append("conn %d: %r" % (i, e))

ts = [threading.Thread(target=one, args=(i,)) for i in range(nconn)]
for t in ts: t.start()
for t in ts: t.join()
if errors:
    print("\n".join(errors[:20])); sys.exit(1)
print("%d connections, %d bytes echoed and checked" % (nconn, sum(total)))
EOF
PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
start_server echo -- node "$JS/echo-server.js" "$PORT"
if wait_port "$PORT"; then
    check "$M: echo server on $( [ -n "$RUNNER" ] && echo io_uring || echo kernel epoll)" expect_backend "$SRV_PID"
    check "$M: echo server: 20 connections stream random chunks, half-close, every byte checked" \
        timeout 40 "$PYTHON" "$TMPD/client.py" "$PORT" 20
    check "$M: echo server: exits cleanly on SIGTERM" stop_server TERM
    check_cs "$M: the completion mode took the echo server's sockets" "$TMPD/echo.err"
else
    not_ok "$M: echo server listens on 127.0.0.1:$PORT"
    tail -n 20 "$TMPD/echo.out" "$TMPD/echo.err" | diag
fi

if [ -n "$RUNNER" ]; then
    # shellcheck disable=SC2086
    check "$M: RINGPOLL_STATS=1 says node's epoll ran on io_uring" \
        bash -c "RINGPOLL_STATS=1 timeout -k 5 30 $RUNNER node \
            '$JS/execsync-then-listen.js' 2>'$TMPD/stats.err' >/dev/null;
            grep -q 'prog=node backend=io_uring' '$TMPD/stats.err'"
    check_cs "$M: the completion mode took node's sockets" "$TMPD/stats.err"
fi
done_testing
