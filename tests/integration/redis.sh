#!/bin/bash
# redis-server under $RUNNER: redis-benchmark's default test set, redis-cli
# round trips checked by value, binary values of 1 B to 4 MiB and pipelined
# batches over concurrent connections checked byte for byte by a python3
# RESP client, and (under the launcher) proof of io_uring, RINGPOLL_STATS=1
# counters and RINGPOLL_DISABLE=1 pass-through; in the completion mode, that
# the mode took the server's sockets (check_cs).
IT_NAME=redis
. "$(dirname "$0")/lib.sh"
M=$(mode_label)
N_BENCH=${REDIS_BENCH_N:-20000}

# resp.py PORT big|pipe NCONN: binary values through RESP, every byte checked.
#   big: per connection SET/GET of random values of 1 B, 100 KiB, 1 MiB,
#        4 MiB and a random size, STRLEN, GETRANGE of a random slice, and a
#        1 MiB value built by APPENDs of random chunk sizes.
#   pipe: per connection 3 batches of 300 SETs of random sizes (0 B to
#        256 KiB) sent in one write while the replies are read, then the
#        GETs pipelined the same way, an MGET, and pipelined DELs.
cat >"$TMPD/resp.py" <<'EOF'
import os, random, socket, sys, threading

port, what, nconn = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
errors = []

def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = bytearray()
        self.pos = 0
    def fill(self):
        if self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0
        c = self.s.recv(1 << 20)
        if not c:
            raise EOFError("connection closed by the server")
        self.buf += c
    def line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                l = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return l
            self.fill()
    def exact(self, n):
        while len(self.buf) - self.pos < n:
            self.fill()
        d = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return d
    def reply(self):
        l = self.line()
        t, rest = l[:1], l[1:]
        if t == b"+":
            return rest
        if t == b":":
            return int(rest)
        if t == b"-":
            raise RuntimeError("server error: %r" % rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            d = self.exact(n + 2)
            if d[-2:] != b"\r\n":
                raise ValueError("bulk reply not followed by CRLF")
            return d[:-2]
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise ValueError("bad reply line %r" % l[:80])
    def call(self, *args):
        self.s.sendall(cmd(*args))
        return self.reply()
    def pipeline(self, cmds):
        # everything in one sendall from a thread while this one reads the
        # replies: neither side can stall the other on a full socket buffer
        data = b"".join(cmds)
        err = []
        def w():
            try:
                self.s.sendall(data)
            except Exception as e:
                err.append(e)
        t = threading.Thread(target=w)
        t.start()
        try:
            out = [self.reply() for _ in cmds]
        finally:
            t.join()
        if err:
            raise err[0]
        return out

def same(what, got, want):
    if got == want:
        return
    if got is None:
        raise AssertionError("%s: no value, want %d bytes" % (what, len(want)))
    m = min(len(got), len(want))
    d = next((i for i in range(m) if got[i] != want[i]), m)
    raise AssertionError("%s: %d bytes, want %d, first difference at %d"
                         % (what, len(got), len(want), d))

def big(wid):
    rnd = random.Random(wid)
    c = Conn()
    pre = b"big:%d:%d:" % (os.getpid(), wid)
    n_checked = 0
    for n in (1, 100 * 1024, 1 << 20, 4 << 20, rnd.randint(1, 3 << 20)):
        v = os.urandom(n)
        k = pre + b"%d" % n
        if c.call(b"SET", k, v) != b"OK":
            raise AssertionError("SET %d bytes" % n)
        same("GET %d bytes" % n, c.call(b"GET", k), v)
        if c.call(b"STRLEN", k) != n:
            raise AssertionError("STRLEN %d" % n)
        a = rnd.randint(0, n - 1)
        b = rnd.randint(a, n - 1)
        same("GETRANGE %d %d of %d" % (a, b, n), c.call(b"GETRANGE", k, a, b), v[a:b + 1])
        if c.call(b"DEL", k) != 1:
            raise AssertionError("DEL %d" % n)
        n_checked += 2
    # a 1 MiB value built by APPENDs of random sizes, then read back whole
    k = pre + b"app"
    want = bytearray()
    while len(want) < 1 << 20:
        chunk = os.urandom(rnd.choice([1, rnd.randint(2, 4096), rnd.randint(4096, 65536)]))
        want += chunk
        if c.call(b"APPEND", k, chunk) != len(want):
            raise AssertionError("APPEND: length differs at %d" % len(want))
    same("GET of the APPENDed value", c.call(b"GET", k), bytes(want))
    c.call(b"DEL", k)
    c.s.close()
    return n_checked + 1

def pipe(wid):
    rnd = random.Random(1000 + wid)
    c = Conn()
    n = 0
    for batch in range(3):
        keys = [b"p:%d:%d:%d:%d" % (os.getpid(), wid, batch, i) for i in range(300)]
        vals = [os.urandom(rnd.choice([0, rnd.randint(1, 100), rnd.randint(100, 16384)])
                           if rnd.random() < 0.97 else rnd.randint(16384, 262144))
                for _ in keys]
        r = c.pipeline([cmd(b"SET", k, v) for k, v in zip(keys, vals)])
        if r != [b"OK"] * len(keys):
            raise AssertionError("pipelined SETs: %r" % [x for x in r if x != b"OK"][:3])
        r = c.pipeline([cmd(b"GET", k) for k in keys])
        for k, g, v in zip(keys, r, vals):
            same("pipelined GET %r" % k, g, v)
        r = c.call(b"MGET", *keys[:100])
        for k, g, v in zip(keys, r, vals):
            same("MGET %r" % k, g, v)
        r = c.pipeline([cmd(b"DEL", k) for k in keys])
        if r != [1] * len(keys):
            raise AssertionError("pipelined DELs: %d not 1" % sum(x != 1 for x in r))
        if c.call(b"EXISTS", *keys) != 0:
            raise AssertionError("keys left after DEL")
        n += len(keys) + 100
    c.s.close()
    return n

def run(f, wid, res):
    try:
        res[wid] = f(wid)
    except Exception as e:
        errors.append("%s connection %d: %s" % (what, wid, e))

res = {}
ts = [threading.Thread(target=run, args=(big if what == "big" else pipe, w, res))
      for w in range(nconn)]
for t in ts:
    t.start()
for t in ts:
    t.join()
if errors:
    print("\n".join(errors[:20]))
    sys.exit(1)
print("%s: %d connections, %d values checked byte for byte" % (what, nconn, sum(res.values())))
EOF
resp() { timeout 60 "$PYTHON" "$TMPD/resp.py" "$PORT" "$@"; }

start_redis() {  # TAG [ENV=VAL...]
    local tag=$1; shift
    PORT=$(pick_port) || { not_ok "$M: pick a free port"; done_testing; }
    start_server "$tag" "$@" -- redis-server --save '' --appendonly no --port "$PORT" \
        --bind 127.0.0.1 --daemonize no --dir "$TMPD" --logfile ''
    if wait_port "$PORT"; then
        ok "$M: $tag: redis-server listens on 127.0.0.1:$PORT"
    else
        not_ok "$M: $tag: redis-server listens on 127.0.0.1:$PORT"
        tail -n 30 "$TMPD/$tag.out" "$TMPD/$tag.err" | diag
        return 1
    fi
}

cli() { timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

roundtrips() {  # COUNT: SET/GET/DEL checked by value
    local n=$1 i v got
    # a few single commands with awkward values
    for v in "hello" "with spaces and\ttabs" "$(head -c 3000 /dev/urandom | base64 -w0)"; do
        [ "$(cli SET rk "$v")" = OK ] || { echo "SET failed"; return 1; }
        got=$(cli --raw GET rk)
        [ "$got" = "$v" ] || { echo "GET rk: got '${got:0:60}' want '${v:0:60}'"; return 1; }
        [ "$(cli DEL rk)" = 1 ] || { echo "DEL rk != 1"; return 1; }
        [ -z "$(cli --raw GET rk)" ] || { echo "GET after DEL not empty"; return 1; }
    done
    # a batch of COUNT keys through one connection
    {
        for i in $(seq 1 "$n"); do echo "SET key:$i val-$i-$((i * 7919 % 10007))"; done
        for i in $(seq 1 "$n"); do echo "GET key:$i"; done
        for i in $(seq 1 "$n"); do echo "DEL key:$i"; done
        for i in $(seq 1 "$n"); do echo "EXISTS key:$i"; done
    } | timeout 20 redis-cli -h 127.0.0.1 -p "$PORT" >"$TMPD/batch.out" || { echo "batch redis-cli failed"; return 1; }
    {
        for i in $(seq 1 "$n"); do echo "OK"; done
        for i in $(seq 1 "$n"); do echo "val-$i-$((i * 7919 % 10007))"; done
        for i in $(seq 1 "$n"); do echo "1"; done
        for i in $(seq 1 "$n"); do echo "0"; done
    } >"$TMPD/batch.want"
    if ! cmp -s "$TMPD/batch.out" "$TMPD/batch.want"; then
        echo "batch replies differ:"; diff "$TMPD/batch.want" "$TMPD/batch.out" | head -n 20
        return 1
    fi
    echo "$((n * 4 + 12)) commands checked"
}

bench() {  # N [extra args]
    local n=$1; shift
    timeout 60 redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$n" -q "$@" >"$TMPD/bench.out" 2>&1
    local rc=$?
    tr '\r' '\n' <"$TMPD/bench.out" | grep -v '^ *$' | grep -v 'rps=' | tail -n 25
    [ $rc -eq 0 ] || { echo "redis-benchmark exit status $rc"; return 1; }
    if grep -q "ERR" "$TMPD/bench.out"; then echo "ERR in output"; return 1; fi
    local nres
    nres=$(tr '\r' '\n' <"$TMPD/bench.out" | grep -c "requests per second")
    [ "$nres" -ge 1 ] || { echo "no results"; return 1; }
}

stopped_clean() {  # TAG: stop with SIGTERM; exit status 0
    stop_server TERM
    local rc=$?
    echo "exit status $rc"; tail -n 5 "$TMPD/$1.err"
    [ $rc -eq 0 ]
}

# 1. the server under $RUNNER (or natively)
if start_redis main; then
    check "$M: redis-server on $( [ -n "$RUNNER" ] && echo io_uring || echo kernel epoll)" expect_backend "$SRV_PID"
    check "$M: redis-cli SET/GET/DEL round trips" roundtrips 200
    check "$M: redis-benchmark -n $N_BENCH default tests, no errors" bench "$N_BENCH"
    check "$M: redis-benchmark -P 16 -t set,get,lpush,lpop, no errors" bench "$N_BENCH" -P 16 -t set,get,lpush,lpop
    check "$M: binary values 1 B to 4 MiB, APPEND to 1 MiB, over 2 connections" resp big 2
    check "$M: pipelined SET/GET/MGET/DEL batches over 4 connections" resp pipe 4
    check "$M: redis-cli round trips after benchmark" roundtrips 50
    check "$M: redis-server exits cleanly on SIGTERM" stopped_clean main
    check_cs "$M: the completion mode took redis-server's sockets" "$TMPD/main.err"
fi

if [ -n "$RUNNER" ]; then
    # 2. counters at exit
    if start_redis stats RINGPOLL_STATS=1; then
        check "$M: stats run: round trips" roundtrips 50
        check "$M: stats run: binary values 1 B to 4 MiB" resp big 1
        check "$M: stats run: exits cleanly" stopped_clean stats
        check "$M: RINGPOLL_STATS=1 prints counters at exit" expect_stats "$TMPD/stats.err"
    fi
    # 3. pass-through
    if start_redis disable RINGPOLL_DISABLE=1; then
        check "$M: RINGPOLL_DISABLE=1: redis-server on kernel epoll" expect_epoll "$SRV_PID"
        check "$M: RINGPOLL_DISABLE=1: round trips" roundtrips 50
        check "$M: RINGPOLL_DISABLE=1: pipelined batches over 2 connections" resp pipe 2
        check "$M: RINGPOLL_DISABLE=1: redis-benchmark -t set,get" bench 2000 -t set,get
        check "$M: RINGPOLL_DISABLE=1: exits cleanly" stopped_clean disable
    fi
fi

done_testing
