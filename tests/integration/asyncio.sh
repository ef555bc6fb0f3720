#!/bin/bash
# A python3 asyncio TCP echo server (default event loop: selectors.EpollSelector)
# under $RUNNER; a python3 client opens 50 connections at once, sends random
# payloads and checks every echoed byte. Under the launcher also proof of
# io_uring, RINGPOLL_STATS=1 counters and RINGPOLL_DISABLE=1 pass-through.
IT_NAME=asyncio
. "$(dirname "$0")/lib.sh"
M=$(mode_label)

cat >"$TMPD/server.py" <<'EOF'
import asyncio, signal, sys

async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

async def main(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port, backlog=256)
    loop = asyncio.get_running_loop()
    print("selector:", type(loop._selector).__name__, flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    print("stopped", flush=True)

asyncio.run(main(int(sys.argv[1])))
EOF

cat >"$TMPD/client.py" <<'EOF'
import asyncio, os, random, sys

port, nconn, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

async def one(i):
    rnd = random.Random(i)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    total = 0
    for k in range(rounds):
        n = rnd.choice([1, rnd.randint(2, 1500), rnd.randint(1500, 70000), rnd.randint(70000, 300000)])
        payload = os.urandom(n)
        w.write(payload)
        await w.drain()
        got = await r.readexactly(n)
        if got != payload:
            bad = next(j for j in range(n) if got[j] != payload[j])
            raise AssertionError("conn %d round %d: %d bytes, first difference at %d" % (i, k, n, bad))
        total += n
    w.write_eof()                     # half-close: the server must close too
    rest = await r.read()
    if rest:
        raise AssertionError("conn %d: %d extra bytes after EOF" % (i, len(rest)))
    w.close()
    await w.wait_closed()
    return total

async def main():
    res = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(nconn))), 40)
    print("%d connections, %d rounds each, %d bytes echoed and checked" % (nconn, rounds, sum(res)))

asyncio.run(main())
EOF

start_echo() {  # TAG [ENV=VAL...]
    local tag=$1; shift
    PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
    start_server "$tag" "$@" -- "$PYTHON" "$TMPD/server.py" "$PORT"
    if wait_port "$PORT"; then
        ok "$M: $tag: asyncio echo server listens on 127.0.0.1:$PORT ($(head -n1 "$TMPD/$tag.out"))"
    else
        not_ok "$M: $tag: asyncio echo server listens on 127.0.0.1:$PORT"
        tail -n 30 "$TMPD/$tag.out" "$TMPD/$tag.err" | diag
        return 1
    fi
}

client() { timeout 50 "$PYTHON" "$TMPD/client.py" "$PORT" "$1" "$2"; }

stopped_clean() {  # TAG: SIGTERM (handled by the loop); exit status 0
    stop_server TERM
    local rc=$?
    echo "exit status $rc"; tail -n 5 "$TMPD/$1.out" "$TMPD/$1.err"
    [ $rc -eq 0 ] && grep -q '^stopped' "$TMPD/$1.out"
}

if start_echo main; then
    check "$M: python3 on $( [ -n "$RUNNER" ] && echo io_uring || echo kernel epoll)" expect_backend "$SRV_PID"
    check "$M: 50 connections echo random payloads, every byte checked" client 50 8
    check "$M: 1 connection, 40 rounds" client 1 40
    check "$M: asyncio server exits cleanly on SIGTERM" stopped_clean main
fi

if [ -n "$RUNNER" ]; then
    if start_echo stats RINGPOLL_STATS=1; then
        check "$M: stats run: 10 connections echo" client 10 4
        check "$M: stats run: exits cleanly" stopped_clean stats
        check "$M: RINGPOLL_STATS=1 prints counters at exit" expect_stats "$TMPD/stats.err"
    fi
    if start_echo disable RINGPOLL_DISABLE=1; then
        check "$M: RINGPOLL_DISABLE=1: python3 on kernel epoll" expect_epoll "$SRV_PID"
        check "$M: RINGPOLL_DISABLE=1: 50 connections echo" client 50 2
        check "$M: RINGPOLL_DISABLE=1: exits cleanly" stopped_clean disable
    fi
fi

done_testing
