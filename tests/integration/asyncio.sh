#!/bin/bash
# python3 asyncio TCP echo servers (default event loop: selectors.EpollSelector;
# streams, a Protocol, and sock_recv/sock_sendall) under $RUNNER; a python3
# client opens 50 connections at once, sends random payloads in random chunk
# sizes, half-closes, resets some, and checks every echoed byte and the EOF
# after it. Under the launcher also proof of io_uring, RINGPOLL_STATS=1
# counters and RINGPOLL_DISABLE=1 pass-through; in the completion mode, that
# the mode took the server's sockets (check_cs).
IT_NAME=asyncio
. "$(dirname "$0")/lib.sh"
M=$(mode_label)

# server.py PORT: three echo servers on PORT, PORT+1, PORT+2, one process,
# one loop: asyncio streams (at EOF: write_eof after the echo, then close),
# a Protocol (flow control by pause_reading/resume_reading; at EOF: close,
# which flushes), and loop.sock_recv/sock_sendall on the bare socket (at
# EOF: shutdown(SHUT_WR), then close).
cat >"$TMPD/server.py" <<'EOF'
import asyncio, signal, socket, sys

async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
    def data_received(self, data):
        self.t.write(data)
    def pause_writing(self):
        self.t.pause_reading()
    def resume_writing(self):
        self.t.resume_reading()
    def eof_received(self):
        return False

async def sock_echo(loop, conn):
    try:
        while True:
            data = await loop.sock_recv(conn, 32768)
            if not data:
                break
            await loop.sock_sendall(conn, data)
        conn.shutdown(socket.SHUT_WR)
    except ConnectionError:
        pass
    finally:
        conn.close()

async def sock_server(loop, lsock):
    tasks = set()
    while True:
        conn, _ = await loop.sock_accept(lsock)
        conn.setblocking(False)
        t = loop.create_task(sock_echo(loop, conn))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

async def main(port):
    loop = asyncio.get_running_loop()
    s1 = await asyncio.start_server(echo, "127.0.0.1", port, backlog=256)
    s2 = await loop.create_server(Echo, "127.0.0.1", port + 1, backlog=256)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port + 2))
    ls.listen(256)
    ls.setblocking(False)
    st = loop.create_task(sock_server(loop, ls))
    print("selector:", type(loop._selector).__name__, flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with s1, s2:
        await stop.wait()
    st.cancel()
    ls.close()
    print("stopped", flush=True)

asyncio.run(main(int(sys.argv[1])))
EOF

# client.py PORT NCONN ROUNDS: NCONN connections at once, spread over the
# three servers; by turns:
#   pingpong: ROUNDS payloads of 1 B to 300 KB, each echoed and checked before
#     the next, then write_eof: the server must end the stream too
#   stream: up to 1 MB of random bytes written in random chunk sizes while
#     a reader reads in random sizes; write_eof after the last byte: every
#     byte must come back, in order, then EOF
#   abort (every 10th): some bytes, then a reset (SO_LINGER 0): the server
#     must survive it (the other connections and its clean exit say so)
cat >"$TMPD/client.py" <<'EOF'
import asyncio, os, random, socket, struct, sys

port, nconn, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def check(what, got, want):
    if got != want:
        m = min(len(got), len(want))
        d = next((j for j in range(m) if got[j] != want[j]), m)
        raise AssertionError("%s: %d bytes, want %d, first difference at %d" % (what, len(got), len(want), d))

async def pingpong(i, rnd, r, w):
    total = 0
    for k in range(rounds):
        n = rnd.choice([1, rnd.randint(2, 1500), rnd.randint(1500, 70000), rnd.randint(70000, 300000)])
        payload = os.urandom(n)
        w.write(payload)
        await w.drain()
        got = await r.readexactly(n)
        check("conn %d round %d" % (i, k), got, payload)
        total += n
    w.write_eof()                     # half-close: the server must close too
    rest = await r.read()
    if rest:
        raise AssertionError("conn %d: %d extra bytes after EOF" % (i, len(rest)))
    return total

async def stream(i, rnd, r, w):
    data = os.urandom(rnd.choice([rnd.randint(1, 1000), rnd.randint(1000, 1 << 20)]))
    async def send():
        p = 0
        while p < len(data):
            n = rnd.choice([1, rnd.randint(2, 100), rnd.randint(100, 8192), rnd.randint(8192, 70000)])
            w.write(data[p:p + n])
            p += n
            if rnd.random() < 0.3:
                await w.drain()
            if rnd.random() < 0.05:
                await asyncio.sleep(0.001)
        await w.drain()
        w.write_eof()
    async def recv():
        got = bytearray()
        while True:
            b = await r.read(rnd.choice([1, rnd.randint(2, 4096), 65536]))
            if not b:
                return bytes(got)
            got += b
    _, got = await asyncio.gather(send(), recv())
    check("conn %d stream" % i, got, data)
    return len(data)

async def abort(i, rnd, r, w):
    w.write(os.urandom(rnd.randint(1, 200000)))
    await w.drain()
    await r.read(rnd.randint(1, 1000))
    sock = w.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()
    return 0

async def one(i):
    rnd = random.Random(i)
    kind = abort if i % 10 == 9 else (pingpong, stream)[i % 2]
    r, w = await asyncio.open_connection("127.0.0.1", port + i % 3)
    n = await kind(i, rnd, r, w)
    if kind is not abort:
        w.close()
        await w.wait_closed()
    return kind.__name__, n

async def main():
    res = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(nconn))), 40)
    kinds = {}
    for k, n in res:
        c, b = kinds.get(k, (0, 0))
        kinds[k] = (c + 1, b + n)
    print("%d connections on 3 servers: %s; every byte echoed checked" % (nconn,
          ", ".join("%d %s (%d bytes)" % (c, k, b) for k, (c, b) in sorted(kinds.items()))))

asyncio.run(main())
EOF

start_echo() {  # TAG [ENV=VAL...]
    local tag=$1; shift
    local i
    for i in $(seq 1 50); do
        PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
        [ -z "$(ss -Hltn "sport >= :$PORT and sport <= :$((PORT + 2))" 2>/dev/null)" ] && break
    done
    start_server "$tag" "$@" -- "$PYTHON" "$TMPD/server.py" "$PORT"
    if wait_port "$PORT" && wait_port $((PORT + 1)) && wait_port $((PORT + 2)); then
        ok "$M: $tag: asyncio echo servers listen on 127.0.0.1:$PORT-$((PORT + 2)) ($(head -n1 "$TMPD/$tag.out"))"
    else
        not_ok "$M: $tag: asyncio echo servers listen on 127.0.0.1:$PORT-$((PORT + 2))"
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
    check "$M: 50 connections: ping-pong, streams in random chunks, half-close, resets; every byte checked" client 50 8
    check "$M: 1 connection, 40 rounds" client 1 40
    check "$M: 200 connections at once, 2 rounds" client 200 2
    check "$M: asyncio server exits cleanly on SIGTERM" stopped_clean main
    check_cs "$M: the completion mode took the server's sockets" "$TMPD/main.err"
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
